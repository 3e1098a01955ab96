"""Benchmark: how far correct float32 BPTT is from the float64 truth, at the problems a check
draws, and the float32 tolerance set from it (issue 20, item 6).

Correct implementations computing in float32 throughout (every input cast to float32 first,
every intermediate float32, checked below) are run on the problems a check draws: the random
small ones (N, D, H 1..3, C 2..4, T 1..4), the generic shape (N=3 D=2 H=3 C=4 T=4), the long
one with large gradients (T=8, output weights x30) and the larger ones (N, D, H, C 4..9,
T 2..8). Each answer is measured as the check measures it (`judging._measure`: max|got -
truth| over max(max|truth|, floor * the largest true gradient), with float32's floor). The
table gives the largest relative error seen per kind of problem; the checker's float32 rtol
must be at least MARGIN times the largest of all; a dW_h 0.1% off (and 0.15%), cast to
float32, is measured against it.

    python bench/float32_tolerance.py [--problems 300] [--out bench/results/float32_tolerance.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the corpus's float32 implementation

#: The tolerance is this many times the largest error of correct float32 code.
MARGIN = 10.0


def layer_float32(x, h0, W_x, W_h, b, dh):
    """The CS231n layer's VJP in float32 throughout."""
    f = np.float32
    x, h0, W_x, W_h, b, dh = (np.asarray(a, dtype=f) for a in (x, h0, W_x, W_h, b, dh))
    T, N, _ = x.shape
    H = h0.shape[1]
    hs = np.zeros((T + 1, N, H), dtype=f)
    hs[0] = h0
    for t in range(T):
        hs[t + 1] = np.tanh(hs[t] @ W_h + x[t] @ W_x + b)
    dW_x, dW_h, db, dx = (np.zeros_like(a) for a in (W_x, W_h, b, x))
    carry = np.zeros((N, H), dtype=f)
    for t in reversed(range(T)):
        da = (dh[t] + carry) * (f(1.0) - hs[t + 1] * hs[t + 1])
        dW_x += x[t].T @ da
        dW_h += hs[t].T @ da
        db += da.sum(axis=0)
        dx[t] = da @ W_x.T
        carry = da @ W_h.T
    return {"x": dx, "h0": carry, "W_x": dW_x, "W_h": dW_h, "b": db}


def _problems(count: int, seed: int):
    """(kind, Problem) pairs drawn as a check draws them."""
    from symbptt.checking.problems import GENERIC, _problem
    from symbptt.checking.run import LARGE_SCALE, LARGE_T, LARGER_SIZES, LARGER_T
    from symbptt.models import VANILLA
    from symbptt.models.dims import Dims

    rng = np.random.default_rng(seed)
    out = []
    for form in ("full", "layer"):
        for k in range(count):
            point = int(rng.integers(0, 2**32 - 1))
            kind = ("small", "small", "generic", "large x30", "larger")[k % 5]
            if kind == "small":
                dims = Dims(*(int(rng.integers(lo, hi + 1)) for lo, hi in _SMALL))
            elif kind == "generic":
                dims = GENERIC
            elif kind == "large x30":
                dims = Dims(N=GENERIC.N, D=GENERIC.D, H=GENERIC.H, C=GENERIC.C, T=LARGE_T)
            else:
                lo, hi = LARGER_SIZES
                sizes = [int(rng.integers(lo, hi + 1)) for _ in range(4)]
                dims = Dims(*sizes, T=int(rng.integers(2, LARGER_T + 1)))
            scale = LARGE_SCALE if kind == "large x30" else 1.0
            arrays = VANILLA.random_point(dims, point, scale=scale)
            problem = _problem(dims, arrays, form, point, VANILLA, reference=kind == "larger")
            if kind == "large x30" and form == "layer":
                problem.arrays["dh"] = problem.arrays["dh"] * scale
            out.append((form, kind, problem))
    return out


_LAYER, _FULL = ("x", "h0", "W_x", "W_h", "b"), ("V", "c")
_SMALL = ((1, 3), (1, 3), (1, 3), (2, 4), (1, 4))  # N, D, H, C, T: rnn_shapes()'s defaults


def measure(count: int, seed: int) -> dict:
    from bptt_corpus import correct_row_float32

    from symbptt.checking.judging import TOLERANCES, Tolerance, _measure
    from symbptt.checking.problems import _truth

    floor = TOLERANCES["float32"].floor
    loose = Tolerance(rtol=0.5, floor=floor)
    worst: dict[tuple[str, str], float] = {}
    offs = {0.001: [], 0.0015: []}  # the relative error a dW_h off by that much shows
    for form, kind, problem in _problems(count, seed):
        loss, truth = _truth(form, problem)
        truth = {n: v for n, v in truth.items() if n in (*_LAYER, *_FULL)}
        a = problem.arrays
        if form == "full":
            got_loss, got = correct_row_float32(**{k: a[k] for k in a if k != "dh"})
        else:
            layer = ("x", "h0", "W_x", "W_h", "b", "dh")
            got_loss, got = None, layer_float32(**{k: a[k] for k in layer})
        assert all(np.asarray(v).dtype == np.float32 for v in got.values()), "not float32"
        scale = max(float(np.abs(v).max(initial=0.0)) for v in truth.values())
        rels = [_measure(got[n], truth[n], loose, scale).rel for n in truth]
        if got_loss is not None:
            assert np.asarray(got_loss).dtype == np.float32
            rels.append(_measure(got_loss, loss, loose, abs(loss)).rel)
        key = (form, kind)
        worst[key] = max(worst.get(key, 0.0), max(rels))
        for off in offs:
            wrong = (got["W_h"].astype(np.float64) * (1 + off)).astype(np.float32)
            offs[off].append(_measure(wrong, truth["W_h"], loose, scale).rel)
    largest = max(worst.values())
    tolerance = TOLERANCES["float32"].rtol
    assert tolerance >= MARGIN * largest, "the checker's float32 tolerance lacks its margin"
    return {
        "problems": len(_problems(count, seed)),
        "seed": seed,
        "floor": floor,
        "worst": [
            {"form": f, "problems": k, "max_rel_error": v} for (f, k), v in sorted(worst.items())
        ],
        "largest": largest,
        "margin_required": MARGIN,
        "margin": tolerance / largest,
        "tolerance": tolerance,
        "dW_h_off": {
            str(off): {
                "min_rel_error": min(v),
                "max_rel_error": max(v),
                "share_wrong": float(np.mean([r > tolerance for r in v])),
            }
            for off, v in offs.items()
        },
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=300, help="problems per form")
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "float32_tolerance.json")
    args = parser.parse_args(argv)
    result = measure(args.problems, args.seed)
    print(f"{'form':<6} {'problems':<10} {'max rel error':>14}")
    for row in result["worst"]:
        print(f"{row['form']:<6} {row['problems']:<10} {row['max_rel_error']:>14.2e}")
    print(
        f"largest {result['largest']:.2e}; the checker's float32 rtol {result['tolerance']:g} "
        f"is {result['margin']:.1f}x that (at least {MARGIN:g}x required)"
    )
    for off, row in result["dW_h_off"].items():
        print(
            f"dW_h {float(off) * 100:g}% off: relative error {row['min_rel_error']:.2e} to "
            f"{row['max_rel_error']:.2e}; above the tolerance on {row['share_wrong']:.1%} of "
            "problems"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
