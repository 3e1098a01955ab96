"""Benchmark: measure the whole `symbptt derive` pipeline and fit the cost model of symbptt/cost.py.

Every point runs in a fresh subprocess (so the peak memory is that process's ru_maxrss, imports
included, and no cache carries over): unroll, the reverse sweep, compile_gradients(partials=True),
evaluation at a random point against the NumPy BPTT and, for T <= cost.PATH_T, listing, compiling
and evaluating every path of --wrt: what `symbptt derive` does before printing. The grid varies
N, D, H, C, T and wrt one at a time. The constants are fitted by relative least squares with
non-negative coefficients (time and memory separately), then scaled up by a margin so that no
grid point took longer, or more memory, than predicted. Paste the printed constants into
symbptt/cost.py.

    python bench/cost.py                  # the grid (about 5 minutes on 2 cores), fit, table
    python bench/cost.py --quick          # a third of the grid (the fit is then rougher)
    python bench/cost.py --refit FILE...  # refit saved measurements, no new runs
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from symbptt.engine import cost
from symbptt.models.dims import Dims

HERE = Path(__file__).resolve().parent
#: A point running longer than this is stopped and left out of the fit.
CAP_SECONDS = 150.0
#: Points are run again (up to three times in all) while their runs add up to less than this.
REPEAT_BELOW = 4.0


def run_point(dims: Dims, wrt: str) -> dict:
    """The derive pipeline at one size, in this process; stage times and peak memory."""
    from symbptt import reference
    from symbptt.engine.compile import compile_gradients, compile_paths
    from symbptt.engine.derivatives import derive, sum_paths
    from symbptt.engine.graph import unroll
    from symbptt.models.dims import SHARED_PARAMETERS, random_point

    stages = {}
    started = last = time.perf_counter()

    peaks = {}

    def lap(name: str) -> None:
        nonlocal last
        now = time.perf_counter()
        stages[name] = now - last
        peaks[name] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
        last = now

    graph = unroll(dims, max_seconds=None)
    lap("unroll")
    derivation = derive(graph)
    lap("derive")
    gradients = compile_gradients(derivation, [wrt], partials=True)
    lap("compile")
    arrays = random_point(dims, seed=0)
    symbolic = gradients(arrays)
    _, grads_ref = reference.forward_backward_dict(arrays)
    total = symbolic[wrt]
    scale = max(float(np.max(np.abs(grads_ref[wrt]))), 1e-300)
    error = float(np.max(np.abs(total - grads_ref[wrt]))) / scale
    if wrt in SHARED_PARAMETERS:
        partials = sum(symbolic[f"{wrt}^({k})"] for k in range(1, dims.T + 1))
        error = max(error, float(np.max(np.abs(partials - total))) / scale)
    derivation.path_count(wrt)
    lap("evaluate")
    if dims.T <= cost.PATH_T:
        listed = derivation.paths(wrt)
        evaluated = compile_paths(derivation, listed)(arrays)
        values = [evaluated[f"path{i}"] for i in range(len(listed))]
        summed = sum_paths(listed, values, total.shape)
        error = max(error, float(np.max(np.abs(summed - total))) / scale)
        lap("paths")
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "seconds": seconds,
        "bytes": peak,
        "stages": stages,
        "peak_bytes_after": peaks,
        "max_rel_error": error,
    }


def measure_once(dims: Dims, wrt: str) -> dict:
    """run_point in a fresh interpreter; {"capped": True} if it ran past CAP_SECONDS."""
    argv = [sys.executable, __file__, "--child", *map(str, dims.as_dict().values()), wrt]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=CAP_SECONDS)
    except subprocess.TimeoutExpired:
        return {"capped": True, "seconds": CAP_SECONDS}
    if done.returncode != 0:
        raise RuntimeError(f"point {dims} {wrt} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(dims: Dims, wrt: str) -> dict:
    """The fastest of up to three runs while they take under REPEAT_BELOW seconds in all (a
    short run is mostly noise: process warm-up, other load); peak memory is the largest seen."""
    runs = [measure_once(dims, wrt)]
    while len(runs) < 3 and sum(r["seconds"] for r in runs) < REPEAT_BELOW:
        runs.append(measure_once(dims, wrt))
    best = min(runs, key=lambda r: r["seconds"])
    if not best.get("capped"):
        best["bytes"] = max(r["bytes"] for r in runs)
        best["runs"] = [r["seconds"] for r in runs]
    return best


def grid(quick: bool) -> list[tuple[Dims, str]]:
    """Sizes that vary one dimension (or the gradient) at a time, each under about 60 s."""

    def d(N=2, D=2, H=2, C=3, T=3):
        return Dims(N=N, D=D, H=H, C=C, T=T)

    points = [(d(), "W_h")]  # the README example
    points += [(d(N=N), "W_h") for N in (50, 150, 300)]  # one big softmax sum per step
    points += [(d(C=C), "W_h") for C in (100, 250, 400)]  # and long rows in it
    points += [(d(N=1, C=700), "W_h"), (d(N=20, C=40), "W_h")]
    points += [(d(H=H), "W_h") for H in (16, 48, 96)] + [(d(N=1, H=128), "W_h")]  # H^3
    points += [(d(D=D), "W_h") for D in (200, 1000)] + [(d(D=300, H=16), "W_h")]
    points += [(d(T=T), "W_h") for T in (10, 40, 41)]  # paths stop after T=40
    points += [(d(H=4, C=2, T=200), "W_h"), (d(H=8, C=2, T=200), "W_h")]  # the docs' figures
    points += [(d(N=1, D=1, H=1, C=2, T=T), "W_h") for T in (1000, 3000)]  # T^2 in L
    points += [(d(H=8, T=40), "W_h"), (d(N=1, D=1, H=16, C=2, T=30), "W_h")]  # path chains
    # ... and path roots (H^2 sums of N terms for W_h)
    points += [(d(H=24, T=40), "W_h"), (d(N=16, H=4, T=40), "W_h"), (d(N=60, T=20), "W_h")]
    base = dict(N=4, D=3, H=4, C=3, T=30)
    points += [(d(**base), w) for w in ("W_x", "b", "V", "c", "h0", "x")]
    points += [(d(N=64, H=4, T=20), "V"), (d(D=40, H=4, T=20), "x"), (d(N=32, T=40), "b")]
    points += [(d(N=1, D=1, H=24, C=2, T=30), "h0"), (d(H=6, T=400), "V")]
    if quick:
        points = points[::3]
    return points


#: Which work counts each stage of the pipeline is fitted on (the rest cost that stage nothing).
#: The per-stage constants of a count are added up into the one constant symbptt/cost.py keeps.
STAGES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # stage: (the stage times it covers, its work counts)
    "graph": (
        ("unroll", "derive"),
        ("fixed", "steps", "entries", "terms", "in_sums", "out_sums", "softmax")
        + ("softmax_rows", "loss_sum"),
    ),
    "compile": (
        ("compile", "evaluate"),
        ("fixed", "steps", "entries", "terms", "hidden_blocks", "softmax", "softmax_rows")
        + ("loss_sum",),
    ),
    "paths": (
        ("paths",),
        ("path_blocks", "path_entries", "path_terms", "path_chain", "path_roots")
        + ("path_softmax", "path_forward"),
    ),
}
#: The work counts peak memory is fitted on.
#: What is kept (symbols, definitions, emitted code) grows with these; quadratic *work* frees
#: its intermediates, so the memory has no (N*C)^2 or H^3 term.
MEMORY_COUNTS = ("fixed", "steps", "entries", "terms", "softmax_rows", "path_blocks")
MEMORY_COUNTS += ("path_entries", "path_terms", "path_forward")


def merge(runs: list[list[dict]]) -> list[dict]:
    """One record per point: the fastest of the saved runs (noise only ever slows a run down),
    with the largest peak memory seen."""
    best: dict[tuple, dict] = {}
    for records in runs:
        for r in records:
            key = (tuple(r["dims"].values()), r["wrt"])
            old = best.get(key)
            if old is None or r["seconds"] < old["seconds"]:
                best[key] = {**r, "bytes": max(r.get("bytes", 0), (old or {}).get("bytes", 0))}
            else:
                old["bytes"] = max(old.get("bytes", 0), r.get("bytes", 0))
    return list(best.values())


def features(records: list[dict], keys) -> np.ndarray:
    return np.array(
        [[cost.work(Dims(**r["dims"]), r["wrt"])[k] for k in keys] for r in records], dtype=float
    )


def nnls(A: np.ndarray, b: np.ndarray, iterations: int = 500) -> np.ndarray:
    """min ||A x - b|| subject to x >= 0 (Lawson and Hanson's active set method)."""
    n = A.shape[1]
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    for _ in range(iterations):
        w = A.T @ (b - A @ x)
        if passive.all() or w[~passive].max() <= 1e-12 * max(1.0, np.abs(w).max()):
            break
        passive[np.argmax(np.where(passive, -np.inf, w))] = True
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(A[:, passive], b, rcond=None)[0]
            if (z[passive] > 0).all():
                x = z
                break
            bad = passive & (z <= 0)
            step = np.min(x[bad] / (x[bad] - z[bad]))
            x = x + step * (z - x)
            passive &= x > 1e-15
    return x


def relative_fit(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative c minimising the sum of ((X c - y) / y)^2."""
    scale = np.where(X.max(axis=0) > 0, X.max(axis=0), 1.0)  # columns of similar size
    return nnls((X / scale) / y[:, None], np.ones(len(y))) / scale


def margin_of(X: np.ndarray, y: np.ndarray, coef: np.ndarray) -> float:
    """The factor that makes every prediction at least its measurement, plus 2 % for the
    rounding of the constants to 3 digits, itself rounded up to 2 decimals."""
    return max(1.0, math.ceil(float(np.max(y / (X @ coef))) * 1.02 * 100) / 100)


def fit_time(records: list[dict]) -> tuple[dict, float]:
    """Fit each stage's time on its own counts, add the constants up, apply the margin."""
    constants = dict.fromkeys(cost.WORK_COUNTS, 0.0)
    for stage_times, keys in STAGES.values():
        rows = [r for r in records if all(s in r["stages"] for s in stage_times)]
        y = np.array([sum(r["stages"][s] for s in stage_times) for r in rows])
        coef = relative_fit(features(rows, keys), np.maximum(y, 1e-3))
        for k, c in zip(keys, coef):
            constants[k] += float(c)
    keys = tuple(constants)
    coef = np.array([constants[k] for k in keys])
    X = features(records, keys)
    margin = margin_of(X, np.array([r["seconds"] for r in records]), coef)
    return {k: float(f"{c * margin:.3g}") for k, c in zip(keys, coef) if c > 0}, margin


def fit_memory(records: list[dict]) -> tuple[dict, float]:
    X = features(records, MEMORY_COUNTS)
    y = np.array([r["bytes"] for r in records], dtype=float)
    coef = relative_fit(X, y)
    margin = margin_of(X, y, coef)
    return {k: float(f"{c * margin:.3g}") for k, c in zip(MEMORY_COUNTS, coef) if c > 0}, margin


def predict(records: list[dict], constants: dict[str, float], target: str) -> np.ndarray:
    keys = tuple(constants)
    return features(records, keys) @ np.array([constants[k] for k in keys])


def _label(r: dict) -> str:
    d = r["dims"]
    return f"N={d['N']} D={d['D']} H={d['H']} C={d['C']} T={d['T']} {r['wrt']}"


def report(records: list[dict], seconds: dict, size: dict) -> dict:
    """Print the table; return the fit quality over the points that finished."""
    done = [r for r in records if not r.get("capped")]
    ps, pb = predict(done, seconds, "seconds"), predict(done, size, "bytes")
    mb = 1024**2
    print(
        f"\n{'size':<34} {'meas s':>8} {'pred s':>8} {'ratio':>6} {'meas MB':>8} "
        f"{'pred MB':>8} {'ratio':>6}"
    )
    for r, s, b in zip(done, ps, pb):
        print(
            f"{_label(r):<34} {r['seconds']:8.2f} {s:8.2f} {s / r['seconds']:6.2f} "
            f"{r['bytes'] / mb:8.0f} {b / mb:8.0f} {b / r['bytes']:6.2f}"
        )
    for r in records:
        if r.get("capped"):
            p = predict([r], seconds, "seconds")[0]
            print(f"{_label(r):<34} > {CAP_SECONDS:.0f} s (stopped), predicted {p:.0f} s")
    rs = ps / np.array([r["seconds"] for r in done])
    rb = pb / np.array([r["bytes"] for r in done])
    quality = {
        "time_ratio_min": float(rs.min()),
        "time_ratio_max": float(rs.max()),
        "time_ratio_median": float(np.median(rs)),
        "memory_ratio_min": float(rb.min()),
        "memory_ratio_max": float(rb.max()),
        "memory_ratio_median": float(np.median(rb)),
        "points": len(done),
        "measured_seconds_total": float(sum(r["seconds"] for r in done)),
    }
    print(
        f"\npredicted/measured time: min {rs.min():.2f}, median {np.median(rs):.2f}, "
        f"max {rs.max():.2f}; memory: min {rb.min():.2f}, median {np.median(rb):.2f}, "
        f"max {rb.max():.2f} ({len(done)} points)"
    )
    return quality


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a third of the grid")
    parser.add_argument(
        "--refit",
        type=Path,
        nargs="+",
        metavar="FILE",
        help="refit the measurements saved in these files (the fastest run of each point)",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "cost.json")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        *sizes, wrt = args.child
        print(json.dumps(run_point(Dims(*map(int, sizes)), wrt)))
        return 0

    if args.refit:
        records = merge([json.loads(f.read_text())["points"] for f in args.refit])
    else:
        records = []
        started = time.perf_counter()
        for dims, wrt in grid(args.quick):
            r = {"dims": dims.as_dict(), "wrt": wrt, **measure(dims, wrt)}
            records.append(r)
            mem = "" if r.get("capped") else f"{r['bytes'] / 1024**2:6.0f} MB"
            print(f"{_label(r):<34} {r['seconds']:7.2f} s {mem}", flush=True)
        print(f"grid measured in {time.perf_counter() - started:.0f} s")
    done = [r for r in records if not r.get("capped")]
    seconds, time_margin = fit_time(done)
    size, memory_margin = fit_memory(done)
    quality = report(records, seconds, size)
    print(f"margins applied: time x{time_margin}, memory x{memory_margin}")
    print("\n# paste into symbptt/cost.py")
    print(f"SECONDS_PER_UNIT = {json.dumps(seconds, indent=4)}")
    print(f"BYTES_PER_UNIT = {json.dumps(size, indent=4)}")
    installed = any(cost.SECONDS_PER_UNIT.values())
    if installed:
        print("\nwith the constants now in symbptt/cost.py:")
        quality["installed"] = report(records, cost.SECONDS_PER_UNIT, cost.BYTES_PER_UNIT)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp.json")
    tmp.write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "python": sys.version,
                "cap_seconds": CAP_SECONDS,
                "runs_merged": len(args.refit) if args.refit else 1,
                "seconds_per_unit": seconds,
                "bytes_per_unit": size,
                "margins": {"time": time_margin, "memory": memory_margin},
                "quality": quality,
                "points": records,
            },
            indent=1,
        )
        + "\n"
    )
    tmp.replace(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
