"""Benchmark: `symbptt check` on a correct hand-written BPTT with 100 random shapes.

Times the Python API (`check_gradients`, warm and cold symbolic cache) and the command line
as a user runs it (a fresh process: imports included), also on code as people write it (the
char-RNN script and the CS231n pair in examples/), against the plain command line measured in
the same run. Target: under 10 s on this machine.

    python bench/check.py [--out bench/results/check.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parent / "tests" / "bptt_corpus.py"
sys.path.insert(0, str(CORPUS.parent))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "check.json")
    parser.add_argument("--examples", type=int, default=100)
    args = parser.parse_args(argv)

    from bptt_corpus import case_by_name

    from symbptt.checking.check import check_gradients
    from symbptt.engine.compile import gradient_function

    records = []
    for name, layout in (
        ("correct_row_vectorised", "row"),
        ("correct_column_karpathy", "column"),
        ("correct_row_batch_loop", "row"),
    ):
        fn = case_by_name(name).fn
        for cache in ("cold", "warm"):
            if cache == "cold":
                gradient_function.cache_clear()
            t0 = time.perf_counter()
            report = check_gradients(fn, layout=layout, max_examples=args.examples)
            elapsed = time.perf_counter() - t0
            assert report.ok, name
            records.append(
                {
                    "what": "api",
                    "function": name,
                    "cache": cache,
                    "examples": report.examples,
                    "distinct_shapes": report.distinct_shapes,
                    "seconds": elapsed,
                }
            )
            print(
                f"api  {name:26s} {cache} cache: {report.examples} examples over "
                f"{report.distinct_shapes} shapes in {elapsed:.2f} s"
            )
    # Wider bounds so that the examples cover at least 100 *distinct* shapes, all cold.
    from symbptt.strategies import rnn_shapes

    gradient_function.cache_clear()
    wide = rnn_shapes(max_N=4, max_D=4, max_H=4, max_C=5, max_T=6)
    t0 = time.perf_counter()
    report = check_gradients(
        case_by_name("correct_row_vectorised").fn, shapes=wide, max_examples=160
    )
    elapsed = time.perf_counter() - t0
    assert report.ok and report.distinct_shapes >= 100, report.distinct_shapes
    records.append(
        {
            "what": "api_wide",
            "function": "correct_row_vectorised",
            "cache": "cold",
            "examples": report.examples,
            "distinct_shapes": report.distinct_shapes,
            "seconds": elapsed,
        }
    )
    print(
        f"api  correct_row_vectorised     wide bounds: {report.examples} examples over "
        f"{report.distinct_shapes} distinct shapes in {elapsed:.2f} s (target < 10 s)"
    )
    t0 = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "symbptt",
            "check",
            f"{CORPUS}:correct_row_vectorised",
            "--examples",
            str(args.examples),
        ],
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - t0
    assert done.returncode == 0, done.stderr
    records.append(
        {
            "what": "cli",
            "function": "correct_row_vectorised",
            "examples": args.examples,
            "seconds": elapsed,
        }
    )
    print(f"cli  correct_row_vectorised     fresh process: {elapsed:.2f} s (target < 10 s)")
    baseline = elapsed
    examples = HERE.parent / "examples"
    styled = {
        "char-rnn script (lossFun, --style char-rnn --defs-only --clip 5)": [
            f"{examples / 'char_rnn.py'}:lossFun",
            "--style",
            "char-rnn",
            "--defs-only",
            "--clip",
            "5",
        ],
        "CS231n pair (rnn_forward,rnn_backward --form layer --batch-first)": [
            f"{examples / 'rnn_layers.py'}:rnn_forward,rnn_backward",
            "--form",
            "layer",
            "--batch-first",
        ],
    }
    for label, target in styled.items():
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "symbptt", "check", *target, "--examples", str(args.examples)],
            capture_output=True,
            text=True,
        )
        elapsed = time.perf_counter() - t0
        assert done.returncode == 0, done.stdout + done.stderr
        records.append(
            {
                "what": "cli_style",
                "function": label,
                "examples": args.examples,
                "seconds": elapsed,
                "ratio_to_plain_cli": elapsed / baseline,
            }
        )
        print(
            f"cli  {label}: {elapsed:.2f} s, {elapsed / baseline:.2f}x the plain check "
            "(target < 10 s)"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
