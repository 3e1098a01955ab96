"""Benchmark: the LSTM and the GRU (issue 11) against the vanilla RNN measured in the same run.

1. Derive + compile every gradient at H=4 (N=2, D=3, C=3) for T = 5, 10, 20, 50 and each cell
   (target: T=50 under 10 s), with the graph's size and the path count from W_h.
2. `symbptt check` of the correct CS231n-style LSTM and GRU layer pairs in examples/ with 100
   random shapes, as a user runs it (a fresh process), against the vanilla pair (target: 10 s).

    python bench/gated.py [--out bench/results/gated.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "gated.json")
    parser.add_argument("--steps", default="5,10,20,50")
    args = parser.parse_args(argv)

    from symbptt.engine.compile import compile_gradients
    from symbptt.engine.derivatives import Derivation, derive
    from symbptt.engine.graph import unroll
    from symbptt.models import GRU, LSTM, VANILLA
    from symbptt.models.dims import Dims

    records = []
    print(f"{'model':8} {'T':>4} {'nodes':>7} {'derive+compile s':>17} {'x vanilla':>10}")
    for T in (int(t) for t in args.steps.split(",")):
        dims = Dims(N=2, D=3, H=4, C=3, T=T)
        base = None
        for spec in (VANILLA, LSTM, GRU):
            t0 = time.perf_counter()
            graph = unroll(dims, spec=spec, max_seconds=None)
            derivation = derive(graph)
            compile_gradients(derivation, list(spec.gradient_names))
            seconds = time.perf_counter() - t0
            base = seconds if spec is VANILLA else base
            paths = Derivation(graph, [], [], {}).path_count("W_h") if T <= 20 else None
            records.append(
                {
                    "what": "derive+compile",
                    "model": spec.name,
                    "dims": dims.as_dict(),
                    "nodes": len(graph),
                    "seconds": seconds,
                    "ratio_to_vanilla": seconds / base,
                    "paths_from_W_h": paths,
                }
            )
            print(f"{spec.name:8} {T:>4} {len(graph):>7} {seconds:>17.2f} {seconds / base:>10.2f}")

    print(f"\n{'check (fresh process, 100 examples)':40} {'s':>6} {'x vanilla':>10}")
    base = None
    for model, pair in (
        ("rnn", "rnn_forward,rnn_backward"),
        ("lstm", "lstm_forward,lstm_backward"),
        ("gru", "gru_forward,gru_backward"),
    ):
        command = [
            sys.executable,
            "-m",
            "symbptt",
            "check",
            f"{EXAMPLES / 'rnn_layers.py'}:{pair}",
            "--form",
            "layer",
            "--batch-first",
            "--model",
            model,
        ]
        t0 = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        assert done.returncode == 0, done.stdout + done.stderr
        base = seconds if model == "rnn" else base
        records.append(
            {"what": "check", "model": model, "seconds": seconds, "ratio_to_rnn": seconds / base}
        )
        print(f"{model + ' layer pair':40} {seconds:>6.2f} {seconds / base:>10.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=1) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
