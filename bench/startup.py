"""Benchmark: how long a whole `symbptt` process takes to start and finish a small job.

Each command runs as a fresh process, --repeat times (median); the baseline, measured in the
same run, is `python -c "import numpy, symengine"`. Targets: `symbptt --help` within 1.5x of
the baseline, `symbptt derive --T 3 --N 2 --D 2 --H 2 --C 3 --wrt W_h` within 2x.

    python bench/startup.py [--repeat 7] [--out bench/results/startup.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

COMMANDS = {
    "baseline: import numpy, symengine": [sys.executable, "-c", "import numpy, symengine"],
    "symbptt --help": [sys.executable, "-m", "symbptt", "--help"],
    "symbptt derive --T 3 (README example)": [
        sys.executable,
        "-m",
        "symbptt",
        "derive",
        "--T",
        "3",
        "--N",
        "2",
        "--D",
        "2",
        "--H",
        "2",
        "--C",
        "3",
        "--wrt",
        "W_h",
    ],
}
TARGETS = {"symbptt --help": 1.5, "symbptt derive --T 3 (README example)": 2.0}


def _seconds(argv: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "startup.json")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)

    seconds = {label: _seconds(command, args.repeat) for label, command in COMMANDS.items()}
    base = seconds["baseline: import numpy, symengine"]
    records = []
    print(f"{'command':42s} {'seconds':>8s} {'ratio':>6s} {'target':>7s}")
    for label, s in seconds.items():
        target = TARGETS.get(label)
        records.append({"command": label, "seconds": s, "ratio": s / base, "target": target})
        shown = f"<= {target:g}x" if target else ""
        print(f"{label:42s} {s:8.3f} {s / base:6.2f} {shown:>7s}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
