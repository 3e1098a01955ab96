"""Benchmark: what the sandbox costs (bubblewrap, a cgroup, a clean environment).

1. `symbptt check` of a correct function (examples/rnn_layers.py's pair, 100 examples), whole
   process, `--sandbox auto` (bubblewrap when it works here) vs `--sandbox off` (the baseline),
   interleaved, median of --repeat runs. Target <= 1.3x.
2. A grade book of --submissions copies of that pair at `--jobs 2`, sandboxed vs off (the
   baseline), ABBA order. Target <= 1.3x. Every verdict must be right in both modes.

Speed is reported, never asserted; the exit status is non-zero only when a verdict is not
what it must be, or when the sandbox is not in use in the sandboxed runs.

    python bench/sandbox.py [--quick] [--out bench/results/sandbox.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PAIR = "rnn_forward,rnn_backward"
FLAGS = ["--form", "layer", "--batch-first"]


def _run(argv: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "symbptt", "check", *argv], capture_output=True, text=True, cwd=ROOT
    )
    return time.perf_counter() - t0, done


def single(examples: int, repeat: int, problems: list[str]) -> list[dict]:
    target = f"examples/rnn_layers.py:{PAIR}"
    modes = {"off": "off", "sandboxed": "auto"}
    times: dict[str, list[float]] = {m: [] for m in modes}
    isolation: dict[str, set[str]] = {m: set() for m in modes}
    for _ in range(repeat):  # interleaved: a load on the machine hits both alike
        for mode, value in modes.items():
            argv = [target, *FLAGS, "--examples", str(examples), "--sandbox", value, "--json"]
            seconds, done = _run(argv)
            times[mode].append(seconds)
            if done.returncode != 0:
                problems.append(f"single check ({mode}) exited {done.returncode}: {done.stderr}")
                continue
            isolation[mode].add(json.loads(done.stdout.splitlines()[-1]).get("isolation"))
    if not any(i and i.startswith("bubblewrap") for i in isolation["sandboxed"]):
        problems.append(f"the sandboxed runs were not sandboxed: {isolation['sandboxed']}")
    base = statistics.median(times["off"])
    return [
        {
            "what": "single_check",
            "mode": mode,
            "isolation": sorted(str(i) for i in isolation[mode]),
            "examples": examples,
            "seconds": times[mode],
            "median_seconds": statistics.median(times[mode]),
            "ratio_to_off": statistics.median(times[mode]) / base,
        }
        for mode in modes
    ]


def grade_book(count: int, examples: int, jobs: int, repeat: int, problems: list[str]) -> list:
    folder = Path(tempfile.mkdtemp(prefix="symbptt-bench-sandbox-"))
    try:
        source = (ROOT / "examples" / "rnn_layers.py").read_text()
        for i in range(count):
            sub = folder / f"student{i:03d}"
            sub.mkdir()
            (sub / "rnn_layers.py").write_text(source)
        pattern = f"{folder}/student*/rnn_layers.py:{PAIR}"
        common = [*FLAGS, "--examples", str(examples), "--jobs", str(jobs), "--json"]
        modes = {"off": "off", "sandboxed": "auto"}
        order = ["off", "sandboxed"] + ["sandboxed", "off"] * (repeat > 1)
        times: dict[str, list[float]] = {m: [] for m in modes}
        for mode in order:  # ABBA when repeated
            seconds, done = _run([pattern, *common, "--sandbox", modes[mode]])
            times[mode].append(seconds)
            records = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
            right = sum(1 for r in records if r.get("ok"))
            if done.returncode != 0 or right != count:
                problems.append(f"grade book ({mode}): exit {done.returncode}, {right}/{count}")
            print(f"  grade book, {mode:9s}: {seconds:6.1f} s, {right}/{count} right", flush=True)
        base = statistics.mean(times["off"])
        return [
            {
                "what": "grade_book",
                "mode": mode,
                "submissions": count,
                "examples": examples,
                "jobs": jobs,
                "seconds": times[mode],
                "mean_seconds": statistics.mean(times[mode]),
                "ratio_to_off": statistics.mean(times[mode]) / base,
            }
            for mode in modes
        ]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "sandbox.json")
    parser.add_argument("--quick", action="store_true", help="one run each, 20 submissions")
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=None, help="single checks (default 5)")
    parser.add_argument("--submissions", type=int, default=None, help="default 100")
    parser.add_argument("--grade-examples", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 5)
    count = args.submissions or (20 if args.quick else 100)
    problems: list[str] = []
    t0 = time.perf_counter()
    records = single(args.examples, repeat, problems)
    print(f"\n{'single check, whole process':32s} {'median s':>9s} {'ratio':>6s}  isolation")
    for r in records:
        print(
            f"{r['mode']:32s} {r['median_seconds']:9.2f} {r['ratio_to_off']:6.2f}  "
            f"{', '.join(r['isolation'])}"
        )
    print(
        f"\ngrade book: {count} submissions, --examples {args.grade_examples}, --jobs {args.jobs}"
    )
    books = grade_book(count, args.grade_examples, args.jobs, 1 if args.quick else 2, problems)
    print(f"{'mode':12s} {'runs s':>16s} {'mean s':>8s} {'ratio':>6s}")
    for r in books:
        runs = ", ".join(f"{s:.1f}" for s in r["seconds"])
        print(f"{r['mode']:12s} {runs:>16s} {r['mean_seconds']:8.1f} {r['ratio_to_off']:6.2f}")
    records += books
    records.append({"what": "run", "seconds": time.perf_counter() - t0, "problems": problems})
    for p in problems:
        print(f"!! {p}", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
