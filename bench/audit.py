"""Benchmark: how long `symbptt audit` takes on real derivations.

In process (median of --repeat): the seed blog's LaTeX transcription (docs/audit/seed.tex),
the 16 rules `symbptt latex --format text --wrt all` writes, and five wrong rules (each
classified: the search for the small change that makes it right is the costly part). As whole
processes: `symbptt audit docs/audit/seed.tex` against the baseline
`python -c "import numpy, symengine"` measured in the same run.

    python bench/audit.py [--repeat 5] [--out bench/results/audit.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # bench/timing.py

from timing import median_seconds  # noqa: E402

SEED = HERE.parent / "docs" / "audit" / "seed.tex"

WRONG = [
    "dV = sum(t, h[t].T @ do[t]) * 2",
    "dh[t] = do[t] @ V + da[t+1] @ W_h.T",
    "dW_h = sum(t, h[t].T @ da[t])",
    "da[t] = dh[t] * (1 - a[t]**2)",
    "dx[t] = da[t] @ W_h.T",
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "audit.json")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    from symbptt.audit import audit
    from symbptt.derivation import derivation

    seed = SEED.read_text()
    text = derivation(3, "all").text()
    wrong = "\n".join(WRONG)
    audit(seed, format="latex")  # warm the imports
    cases = {
        "seed blog, LaTeX (10 rules)": lambda: audit(seed, format="latex"),
        "symbptt latex --format text --wrt all (16 rules)": lambda: audit(text),
        "5 wrong rules, each classified": lambda: audit(wrong),
    }
    rows = {name: median_seconds(f, args.repeat) for name, f in cases.items()}
    commands = {
        "baseline: import numpy, symengine": [sys.executable, "-c", "import numpy, symengine"],
        "symbptt audit docs/audit/seed.tex": [sys.executable, "-m", "symbptt", "audit", str(SEED)],
    }
    processes = {
        name: median_seconds(lambda a=argv_: subprocess.run(a, capture_output=True), args.repeat)
        for name, argv_ in commands.items()
    }
    baseline = processes["baseline: import numpy, symengine"]
    print(f"{'in process':52} {'seconds':>8}")
    for name, seconds in rows.items():
        print(f"{name:52} {seconds:8.3f}")
    print(f"\n{'whole process':52} {'seconds':>8} {'x baseline':>10}")
    for name, seconds in processes.items():
        print(f"{name:52} {seconds:8.3f} {seconds / baseline:10.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "repeat": args.repeat,
                "in_process": rows,
                "processes": {
                    k: {"seconds": v, "ratio_to_baseline": v / baseline}
                    for k, v in processes.items()
                },
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
