"""Benchmark: model files (issue 17), each figure against a baseline measured in the same run.

1. `symbptt derive --H 4 --T 200` of the vanilla RNN as a file (symbptt/models/text/rnn.txt)
   against the built-in spec, whole processes, median of --repeat (target: <= 1.2x). The
   file's first-use check is cached beforehand: it is timed on its own below.
2. The first-use check of each gallery file (finite differences of its own equations at three
   shapes against the engine's and the recurrences' gradients), in a fresh process with an
   empty cache, minus the same process's start-up (target: <= 1 s), and the largest error.
3. Start-up: `symbptt derive --T 3` against `python -c "import numpy, symengine"` (target:
   <= 2x): the model-file reader and lark load only when a file is given.

    python bench/models.py [--repeat 5] [--out bench/results/models.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEXT = HERE.parent / "symbptt" / "models" / "text"


def _seconds(argv: list[str], repeat: int, env=None) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _first_use(name: str, repeat: int, torch: bool) -> tuple[float, float, float]:
    """Seconds of the first-use check of one gallery file (a fresh process and cache each
    time, symbptt's imports excluded, PyTorch's included), the largest relative error, and
    PyTorch's (with `torch`, when it is installed; without, as if it were not)."""
    script = (
        ("" if torch else "import sys; sys.modules['torch'] = None\n") + "import sys, time\n"
        "from symbptt.models import from_file\n"
        "from symbptt.engine.trust import check_model\n"
        "import symbptt.engine.compile, symbptt.engine.matrix_form, symbptt.models.evaluate\n"
        f"spec = from_file({str(TEXT / (name + '.txt'))!r})\n"
        "t = time.perf_counter(); r = check_model(spec); s = time.perf_counter() - t\n"
        "print(s, r.max_error, r.torch_error if r.torch_error is not None else -1)\n"
    )
    runs = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "XDG_CACHE_HOME": cache}
            out = subprocess.run(
                [sys.executable, "-c", script], check=True, capture_output=True, text=True, env=env
            )
            runs.append(tuple(float(v) for v in out.stdout.split()))
    seconds = statistics.median(r[0] for r in runs)
    return seconds, max(r[1] for r in runs), max(r[2] for r in runs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "models.json")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    from symbptt.models.filespec import GALLERY

    records: dict = {}
    symbptt = [sys.executable, "-m", "symbptt"]
    derive = ["derive", "--N", "2", "--D", "3", "--H", "4", "--C", "3", "--T", "200"]
    rnn_file = str(TEXT / "rnn.txt")
    subprocess.run(
        [*symbptt, "derive", "--model", rnn_file, "--T", "2"], check=True, capture_output=True
    )  # the first-use check, cached: timed below
    built_in = _seconds([*symbptt, *derive], args.repeat)
    from_file = _seconds([*symbptt, *derive, "--model", rnn_file], args.repeat)
    records["derive_T200"] = {
        "built_in_seconds": built_in,
        "file_seconds": from_file,
        "ratio": from_file / built_in,
        "target": 1.2,
    }
    print(f"{'derive H=4 T=200 (whole process)':44} {'s':>7} {'x built-in':>11}")
    print(f"{'  built-in vanilla RNN':44} {built_in:>7.2f} {1.0:>11.2f}")
    print(f"{'  rnn.txt':44} {from_file:>7.2f} {from_file / built_in:>11.2f}")

    try:
        import torch  # noqa: F401

        has_torch = True
    except ImportError:
        has_torch = False
    print(
        f"\n{'first-use check (fresh process, cache)':30} {'s':>6} {'error':>8} "
        f"{'with torch s':>13} {'torch error':>12}"
    )
    checks = {}
    for name in GALLERY:
        seconds, error, _ = _first_use(name, max(1, args.repeat // 2), torch=False)
        checks[name] = {"seconds": seconds, "max_relative_error": error}
        shown = ""
        if has_torch:
            with_torch, _, torch_error = _first_use(name, 1, torch=True)
            checks[name].update(seconds_with_torch=with_torch, torch_max_relative_error=torch_error)
            shown = f"{with_torch:>13.2f} {torch_error:>12.1e}"
        print(f"{'  ' + name:30} {seconds:>6.2f} {error:>8.1e} {shown}")
    records["first_use_check"] = {"target_seconds": 1.0, "files": checks}

    derive_t3 = [*symbptt, "derive", "--T", "3", "--N", "2", "--D", "2", "--H", "2", "--C", "3"]
    baseline = _seconds([sys.executable, "-c", "import numpy, symengine"], args.repeat)
    # As `pip install .` leaves symbptt: its modules compiled to bytecode. An editable
    # install under PYTHONDONTWRITEBYTECODE=1 (this machine's default) compiles every module
    # from source at every start: measured too, for comparison with earlier figures.
    with tempfile.TemporaryDirectory() as prefix:
        source = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        source.pop("PYTHONPYCACHEPREFIX", None)
        from_source = _seconds(derive_t3, args.repeat, env=source)
        compiled = {**os.environ, "PYTHONPYCACHEPREFIX": prefix}
        compiled.pop("PYTHONDONTWRITEBYTECODE", None)
        subprocess.run(derive_t3, check=True, capture_output=True, env=compiled)
        start = _seconds(derive_t3, args.repeat, env=compiled)
    records["startup"] = {
        "baseline_seconds": baseline,
        "derive_T3_seconds": start,
        "ratio": start / baseline,
        "derive_T3_from_source_seconds": from_source,
        "ratio_from_source": from_source / baseline,
        "target": 2.0,
    }
    print(f"\n{'start-up':48} {'s':>7} {'x baseline':>11}")
    label = '  python -c "import numpy, symengine"'
    print(f"{label:48} {baseline:>7.2f} {1.0:>11.2f}")
    label = "  symbptt derive --T 3 (bytecode, as installed)"
    print(f"{label:48} {start:>7.2f} {start / baseline:>11.2f}")
    label = "  symbptt derive --T 3 (compiled at every start)"
    print(f"{label:48} {from_source:>7.2f} {from_source / baseline:>11.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
