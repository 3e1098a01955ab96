"""Benchmark: what isolating user code costs, and what batch mode saves.

1. A correct function, 100 examples, warm symbolic cache: in this process (`isolate=False`,
   the baseline) vs a forked worker (a callable) vs a fresh interpreter (a `file.py:function`
   target); then as a user runs it, a fresh process each (imports, cold cache): the API with
   `isolate=False` (the baseline) vs `symbptt check file.py:f`. Target: worker <= 1.5x
   in-process. Each is the median of --repeat runs.
2. A class of submissions (the corpus cases of tests/bptt_corpus.py, cycled to --submissions
   files): `symbptt check <all> --jobs 2` in one run vs one `symbptt check <one>` process each
   in sequence (the baseline).

    python bench/isolation.py [--submissions 100] [--out bench/results/isolation.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parent / "tests" / "bptt_corpus.py"
sys.path.insert(0, str(CORPUS.parent))


def _timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def overhead(examples: int, repeat: int) -> list[dict]:
    from bptt_corpus import case_by_name

    from symbptt.checking.check import check_gradients

    fn = case_by_name("correct_row_vectorised").fn
    target = f"{CORPUS}:correct_row_vectorised"
    check_gradients(fn, max_examples=examples, isolate=False)  # warm the symbolic cache

    def run(what):
        report = check_gradients(what[0], max_examples=examples, isolate=what[1])
        assert report.ok, report.to_dict()

    modes = {
        "in-process (baseline)": (fn, False),
        "forked worker (callable)": (fn, True),
        "fresh interpreter (target)": (target, True),
    }
    seconds = {label: _timed(lambda m=mode: run(m), repeat) for label, mode in modes.items()}
    base = seconds["in-process (baseline)"]
    records = [
        {"what": "overhead", "mode": label, "examples": examples, "seconds": s, "ratio": s / base}
        for label, s in seconds.items()
    ]
    # As a user runs it: a fresh process each, imports and a cold symbolic cache included.
    in_process = (
        f"import sys; sys.path.insert(0, {str(CORPUS.parent)!r})\n"
        "from bptt_corpus import correct_row_vectorised as f\n"
        "from symbptt.checking.check import check_gradients\n"
        f"assert check_gradients(f, max_examples={examples}, isolate=False).ok\n"
    )
    fresh = {
        "fresh process, in-process (baseline)": [sys.executable, "-c", in_process],
        "fresh process, symbptt check (worker)": [
            sys.executable,
            "-m",
            "symbptt",
            "check",
            target,
            "--examples",
            str(examples),
        ],
    }
    cold = {}
    for label, argv in fresh.items():
        cold[label] = _timed(
            lambda a=argv: subprocess.run(a, check=True, capture_output=True), repeat
        )
    base = cold["fresh process, in-process (baseline)"]
    records += [
        {"what": "overhead", "mode": label, "examples": examples, "seconds": s, "ratio": s / base}
        for label, s in cold.items()
    ]
    return records


def batch(count: int, jobs: int) -> list[dict]:
    from bptt_corpus import ALL_CASES

    cases = [c for c in ALL_CASES if c.form == "full" and c.only is None]
    folder = Path(tempfile.mkdtemp(prefix="symbptt-bench-"))
    targets, layouts = [], []
    for i in range(count):
        case = cases[i % len(cases)]
        sub = folder / f"student{i:03d}"
        sub.mkdir()
        (sub / "rnn.py").write_text(
            f"import sys\nsys.path.insert(0, {str(CORPUS.parent)!r})\n"
            f"from bptt_corpus import {case.fn.__name__} as loss_and_grads\n"
        )
        targets.append(f"{sub / 'rnn.py'}:loss_and_grads")
        layouts.append(case.layout)
    records = []
    for layout in ("row", "column"):
        group = [t for t, lay in zip(targets, layouts) if lay == layout]
        common = ["--layout", layout, "--examples", "100"]
        t0 = time.perf_counter()
        for target in group:
            subprocess.run(
                [sys.executable, "-m", "symbptt", "check", target, *common],
                capture_output=True,
            )
        sequential = time.perf_counter() - t0
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "symbptt", "check", *group, *common, "--jobs", str(jobs)],
            capture_output=True,
            text=True,
        )
        batched = time.perf_counter() - t0
        assert done.returncode in (0, 1), done.stderr
        records.append(
            {
                "what": "batch",
                "layout": layout,
                "submissions": len(group),
                "jobs": jobs,
                "one_process_each_seconds": sequential,
                "batch_seconds": batched,
                "speedup": sequential / batched,
            }
        )
    return records


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "isolation.json")
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--submissions", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)

    records = overhead(args.examples, args.repeat)
    print(f"{'mode':40s} {'seconds':>8s} {'ratio':>6s}   ({args.examples} examples)")
    for r in records:
        print(f"{r['mode']:40s} {r['seconds']:8.3f} {r['ratio']:6.2f}")
    batched = batch(args.submissions, args.jobs)
    print(f"\n{'layout':8s} {'subs':>5s} {'one each s':>11s} {'--jobs s':>9s} {'speedup':>8s}")
    for r in batched:
        print(
            f"{r['layout']:8s} {r['submissions']:5d} {r['one_process_each_seconds']:11.1f} "
            f"{r['batch_seconds']:9.1f} {r['speedup']:8.2f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records + batched, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
