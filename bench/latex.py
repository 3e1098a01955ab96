"""Benchmark: how long a verified matrix-form derivation takes to generate.

In-process, median of --repeat runs: `derivation(T, wrt)` (rule application, the paths for
T <= 4, the verification of every line against the engine, the layout) at T = 3 and T = 10 for
W_h and for every parameter, both conventions, and the share of it spent verifying. As whole
processes: `symbptt latex --T 3 --wrt W_h -o d.tex --pdf` (the issue's command) and the same
at T = 10, against the baseline `symbptt derive --T 3 --wrt W_h` measured in the same run.

    python bench/latex.py [--repeat 5] [--out bench/results/latex.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # bench/timing.py

from timing import median_seconds  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "latex.json")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    from symbptt.derivation import derivation

    derivation(3, "W_h")  # warm the imports once
    rows = []
    for T in (3, 10):
        for wrt in ("W_h", "all"):
            for convention in ("row", "column"):
                results = []

                def run(T=T, wrt=wrt, convention=convention, results=results):
                    results.append(derivation(T, wrt, convention=convention))

                seconds = median_seconds(run, args.repeat)
                last = results[-1]
                rows.append(
                    {
                        "what": f"derivation(T={T}, wrt={wrt}, {convention})",
                        "seconds": seconds,
                        "verify_seconds": last.verification.seconds,
                        "arrays_checked": last.verification.comparisons,
                        "paths": last.verification.paths,
                        "tex_bytes": len(last.latex()),
                    }
                )

    with tempfile.TemporaryDirectory() as work:
        cli = [sys.executable, "-m", "symbptt"]
        commands = {
            "baseline: symbptt derive --T 3 --wrt W_h": [*cli, "derive", "--T", "3"],
            "symbptt latex --T 3 --wrt W_h -o d.tex": [
                *cli,
                "latex",
                "--T",
                "3",
                "-o",
                "d.tex",
                "--force",
            ],
            "symbptt latex --T 10 --wrt W_h -o d.tex": [
                *cli,
                "latex",
                "--T",
                "10",
                "-o",
                "d.tex",
                "--force",
            ],
        }
        if shutil.which("pdflatex"):
            commands["symbptt latex --T 3 --wrt W_h -o d.tex --pdf"] = [
                *cli, "latex", "--T", "3", "-o", "d.tex", "--pdf", "--force"
            ]  # fmt: skip
            commands["symbptt latex --T 10 --wrt W_h -o d.tex --pdf"] = [
                *cli, "latex", "--T", "10", "-o", "d.tex", "--pdf", "--force"
            ]  # fmt: skip
        processes = {}
        for name, argv_ in commands.items():
            processes[name] = median_seconds(
                lambda a=argv_: subprocess.run(a, check=True, capture_output=True, cwd=work),
                args.repeat,
            )
    baseline = processes["baseline: symbptt derive --T 3 --wrt W_h"]

    print(f"{'in process':48} {'seconds':>8} {'verify':>8} {'arrays':>7} {'paths':>6}")
    for r in rows:
        print(
            f"{r['what']:48} {r['seconds']:8.3f} {r['verify_seconds']:8.3f} "
            f"{r['arrays_checked']:7d} {r['paths']:6d}"
        )
    print(f"\n{'whole process':48} {'seconds':>8} {'x baseline':>10}")
    for name, seconds in processes.items():
        print(f"{name:48} {seconds:8.3f} {seconds / baseline:10.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "python": sys.version.split()[0],
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
