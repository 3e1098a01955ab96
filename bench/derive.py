"""Benchmark: time to derive and compile all gradients, symbptt vs a naive SymPy baseline.

symbptt: unroll the graph, one reverse sweep over the shared DAG, per-node code generation.
Naive baseline: expand the scalar loss in SymPy, `diff` it w.r.t. every input entry (forward mode
on one big tree), then `lambdify(cse=True)`; stopped by a time cap. Both run in this process so
their ratio is measured under the same load. Also times evaluation of the compiled gradients
against the NumPy BPTT, and NumPy BPTT against PyTorch CPU autograd when torch is installed.

    python bench/derive.py                # full grid (several minutes)
    python bench/derive.py --quick --out FILE   # headline points only (about two minutes)
"""

from __future__ import annotations

import argparse
import json
import platform
import signal
import sys
import time
import timeit
from pathlib import Path

import numpy as np
import sympy as sp

from symbptt import reference
from symbptt.engine.compile import compile_gradients
from symbptt.engine.derivatives import derive
from symbptt.engine.graph import unroll
from symbptt.models.dims import Dims, random_point

HERE = Path(__file__).resolve().parent


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout


def time_symbptt(dims: Dims, repeats: int = 3) -> dict:
    best = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        derivation = derive(unroll(dims))
        t1 = time.perf_counter()
        compile_gradients(derivation)
        t2 = time.perf_counter()
        if best is None or t2 - t0 < best[0] + best[1]:
            best = (t1 - t0, t2 - t1)
        if t2 - t0 > 1.0:
            break
    return _record("symbptt", dims, *best)


def _naive_build(dims: Dims):
    """The textbook approach: one expanded SymPy loss, `diff` per input entry, `lambdify`."""
    N, D, H, C, T = dims.N, dims.D, dims.H, dims.C, dims.T

    def mat(name, r, c):
        return sp.Matrix(r, c, sp.symbols(f"{name}_0:{r * c}"))

    W_x, W_h, V = mat("W_x", D, H), mat("W_h", H, H), mat("V", H, C)
    b, c, h0 = mat("b", 1, H), mat("c", 1, C), mat("h0", N, H)
    h = h0
    xs = [mat(f"x{t}", N, D) for t in range(T)]
    Ys = [mat(f"Y{t}", N, C) for t in range(T)]
    ones = sp.ones(N, 1)
    loss = sp.Integer(0)
    for t in range(T):
        h = (h * W_h + xs[t] * W_x + ones * b).applyfunc(sp.tanh)
        o = h * V + ones * c
        for i in range(N):
            lse = sp.log(sum(sp.exp(o[i, k]) for k in range(C)))
            loss += lse - sum(Ys[t][i, k] * o[i, k] for k in range(C))
    wrt = [s for m in (W_x, W_h, b, V, c, h0, *xs) for s in m]
    return loss, wrt, [s for m in Ys for s in m]


def time_naive(dims: Dims, cap: float) -> dict:
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, cap)
    try:
        t0 = time.perf_counter()
        loss, wrt, labels = _naive_build(dims)
        grads = [sp.diff(loss, s) for s in wrt]
        t1 = time.perf_counter()
        sp.lambdify([*wrt, *labels], [loss, *grads], cse=True)
        t2 = time.perf_counter()
        return _record("naive_sympy", dims, t1 - t0, t2 - t1)
    except _Timeout:
        return _record("naive_sympy", dims, None, None, capped_at=cap)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _record(method, dims, derive_s, compile_s, **extra) -> dict:
    total = None if derive_s is None else derive_s + compile_s
    return {
        "method": method,
        **dims.as_dict(),
        "derive_s": derive_s,
        "compile_s": compile_s,
        "total_s": total,
        **extra,
    }


def time_evaluation(dims: Dims) -> dict:
    """Seconds per call: compiled symbolic gradients vs the NumPy BPTT, same inputs."""
    fn = compile_gradients(derive(unroll(dims)))
    arrays = random_point(dims, 0)
    sym = min(timeit.repeat(lambda: fn.call_unchecked(arrays), number=200, repeat=5)) / 200
    ref = (
        min(timeit.repeat(lambda: reference.forward_backward_dict(arrays), number=200, repeat=5))
        / 200
    )
    return {
        "what": "evaluate",
        **dims.as_dict(),
        "symbptt_s": sym,
        "numpy_bptt_s": ref,
        "ratio": sym / ref,
    }


def time_torch(dims: Dims) -> dict | None:
    """NumPy BPTT vs PyTorch CPU autograd (float64) on the same arrays, if torch is installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(2)
    arrays = random_point(dims, 0)

    def torch_step():
        t = {k: torch.tensor(v, requires_grad=k != "y") for k, v in arrays.items()}
        h, loss = t["h0"], 0.0
        for s in range(dims.T):
            h = torch.tanh(t["b"] + h @ t["W_h"] + t["x"][s] @ t["W_x"])
            o = t["c"] + h @ t["V"]
            loss = loss + torch.nn.functional.cross_entropy(o, t["y"][s], reduction="sum")
        loss.backward()
        return loss.item(), t["W_h"].grad.numpy()

    np_loss, np_grads = reference.forward_backward_dict(arrays)
    torch_loss, torch_dwh = torch_step()  # same numbers, or the timing means nothing
    assert abs(torch_loss - np_loss) <= 1e-9 * abs(np_loss)
    assert np.allclose(torch_dwh, np_grads["W_h"], rtol=1e-8, atol=1e-10)
    ref = min(timeit.repeat(lambda: reference.forward_backward_dict(arrays), number=5, repeat=5))
    tor = min(timeit.repeat(torch_step, number=5, repeat=5))
    return {
        "what": "numpy_vs_torch",
        **dims.as_dict(),
        "numpy_bptt_s": ref / 5,
        "torch_s": tor / 5,
        "ratio_numpy_over_torch": ref / tor,
        "torch_version": torch.__version__,
    }


def _fmt(v):
    return "capped" if v is None else f"{v:.4f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="headline points only")
    parser.add_argument("--cap", type=float, default=120.0, help="naive baseline time cap, s")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "derive.json")
    args = parser.parse_args(argv)

    base = dict(N=2, D=2, C=2)
    if args.quick:
        sym_points = [Dims(H=3, T=5, **base), Dims(H=4, T=200, **base)]
        naive_points = [Dims(H=3, T=5, **base)]
    else:
        sym_points = [
            Dims(H=H, T=T, **base)
            for H in (1, 2, 3, 4, 8)
            for T in (1, 2, 5, 8, 10, 20, 50, 100, 200)
        ]
        naive_points = [Dims(H=H, T=T, **base) for H in (1, 2, 3) for T in (1, 2, 3, 5, 8)]
    records = []
    time_symbptt(Dims(H=2, T=2, **base))  # warm-up: imports and first-call caches
    for dims in sym_points:
        records.append(time_symbptt(dims))
        print(f"symbptt      H={dims.H} T={dims.T:<4} {_fmt(records[-1]['total_s'])} s", flush=True)
    capped_h = set()
    for dims in naive_points:
        if dims.H in capped_h:  # a larger T after a capped one would be capped too
            records.append(
                _record("naive_sympy", dims, None, None, capped_at=args.cap, skipped=True)
            )
            continue
        records.append(time_naive(dims, args.cap))
        if records[-1]["total_s"] is None:
            capped_h.add(dims.H)
        print(f"naive_sympy  H={dims.H} T={dims.T:<4} {_fmt(records[-1]['total_s'])} s", flush=True)

    by = {(r["method"], r["H"], r["T"]): r["total_s"] for r in records}
    print("\n  H    T   symbptt_s   naive_s   naive/symbptt")
    for r in records:
        if r["method"] != "symbptt":
            continue
        naive = by.get(("naive_sympy", r["H"], r["T"]), "n/a")
        ratio = f"{naive / r['total_s']:.0f}x" if isinstance(naive, float) else ""
        naive_txt = naive if isinstance(naive, str) else _fmt(naive)
        print(f"{r['H']:>3} {r['T']:>4} {r['total_s']:>11.4f} {naive_txt:>9} {ratio:>14}")
    for H in sorted({r["H"] for r in records if r["method"] == "symbptt"}):
        t100, t200 = by.get(("symbptt", H, 100)), by.get(("symbptt", H, 200))
        if t100 and t200:
            print(f"growth H={H}: time(T=200)/time(T=100) = {t200 / t100:.2f} (linear: 2.0)")

    extras = []
    for dims in (
        [Dims(2, 2, 2, 3, 3)]
        if args.quick
        else [Dims(2, 2, 2, 3, 3), Dims(1, 1, 1, 2, 5), Dims(3, 3, 4, 4, 10)]
    ):
        extras.append(time_evaluation(dims))
        e = extras[-1]
        print(
            f"evaluate {dims}: symbptt {e['symbptt_s'] * 1e6:.0f} us, NumPy BPTT "
            f"{e['numpy_bptt_s'] * 1e6:.0f} us, ratio {e['ratio']:.2f}"
        )
    if not args.quick:
        t = time_torch(Dims(N=32, D=64, H=128, C=64, T=50))
        if t is None:
            print("torch not installed: NumPy vs PyTorch comparison skipped")
        else:
            extras.append(t)
            print(
                f"N=32 D=64 H=128 C=64 T=50: NumPy BPTT {t['numpy_bptt_s'] * 1e3:.2f} ms, "
                f"PyTorch autograd {t['torch_s'] * 1e3:.2f} ms, "
                f"NumPy/torch {t['ratio_numpy_over_torch']:.2f}"
            )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp.json")
    tmp.write_text(json.dumps(records, indent=1) + "\n")
    tmp.replace(args.out)  # never leave a half-written results file
    side = args.out.with_name(args.out.stem + "_extras.json")
    side.write_text(
        json.dumps(
            {"machine": platform.platform(), "python": sys.version, "records": extras}, indent=1
        )
        + "\n"
    )
    print(f"wrote {args.out} and {side}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
