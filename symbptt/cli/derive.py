"""`symbptt derive`: the gradient through every path of the unrolled graph, checked numerically."""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from rich.console import Console

from ..errors import (
    InternalError,
    SymbpttError,
)
from ..models.dims import GRADIENT_NAMES, Dims, resolve_name
from .common import (
    GROWTH_T,
    MAX_PATH_T,
    RTOL,
    _at_least,
    _fmt,
    _max_rel_error,
    _Progress,
    _scale,
    _UsageError,
    _variant_arguments,
    _whole,
    dims_of_args,
    model_spec,
)


def register(sub) -> None:
    """Add the `derive` command to the command line."""
    d = sub.add_parser(
        "derive",
        help="derive dL/dθ through every path of the unrolled graph and check it numerically",
    )
    for dim, default in (("T", 3), ("N", 2), ("D", 2), ("H", 2), ("C", 3)):
        d.add_argument(f"--{dim}", type=_whole, default=default, help=f"default {default}")
    d.add_argument(
        "--wrt",
        default=None,
        help=f"one of {', '.join(GRADIENT_NAMES)} (the LSTM has b_y for c, and c0 with --c0 "
        "input; the GRU b_x and b_h for b)",
    )
    d.add_argument("--seed", type=_at_least(0), default=0, help="seed of the random point")
    d.add_argument("--scale", type=_scale, default=1.0, help="scale of V and c (logit size)")
    d.add_argument("--json", action="store_true", help="print one JSON object instead")
    d.add_argument(
        "--convention",
        choices=("row", "column"),
        default="row",
        help="the convention a model file is written in (default row); numbers are printed in rows",
    )
    d.add_argument(
        "--max-paths",
        type=_at_least(1),
        default=64,
        help="list the paths only when there are at most this many (default 64); they are "
        "always counted",
    )
    _variant_arguments(d)


def run_derive(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Derive, evaluate every path and the total at a seeded point, compare with NumPy BPTT."""
    record = derive_and_check(args, err)
    if args.json:
        print(json.dumps(record))
    else:
        _render_derivation(record, out)
    if not record["agrees"]:  # two independent derivations disagree: a bug of symbptt's
        worst = max(record["max_relative_errors"].items(), key=lambda item: item[1])
        raise InternalError(
            f"the symbolic derivation and the NumPy BPTT disagree ({worst[0].replace('_', ' ')}: "
            f"max relative error {worst[1]:.1e}); please report this with the command line"
        )
    return 0


def derive_and_check(args: argparse.Namespace, err: Console) -> dict:
    """Every number `derive` shows, checked, as one JSON-ready record."""
    from ..engine.compile import compile_gradients, compile_paths
    from ..engine.derivatives import Derivation, derive, sum_paths
    from ..engine.graph import unroll

    spec = model_spec(args)
    dims = dims_of_args(args, spec)
    wrt = _gradient_name(spec, args.wrt)
    from ..engine import cost

    # refuse what would take minutes or more memory than there is
    cost.guard(dims, wrt, truncate=spec.options.truncate, spec=spec)
    started = time.perf_counter()
    with _Progress(err) as report:
        graph = unroll(dims, progress=report, spec=spec)
        derivation = derive(graph, progress=report)
        gradients = compile_gradients(derivation, [wrt], partials=True)
    arrays = spec.random_point(dims, seed=args.seed, scale=args.scale)
    symbolic = gradients(arrays)
    loss_ref, grads_ref = spec.truth(arrays)
    total = symbolic[wrt]
    shared = wrt in spec.parameters
    partials = {k: symbolic[f"{wrt}^({k})"] for k in range(1, dims.T + 1)} if shared else {}
    errors = {
        "symbolic_vs_bptt": _max_rel_error(total, grads_ref[wrt]),
        "loss_vs_bptt": abs(float(symbolic["loss"]) - loss_ref) / max(abs(loss_ref), 1e-300),
    }
    if partials:
        errors["partials_sum_vs_total"] = _max_rel_error(sum(partials.values()), total)
    paths = None
    kept = derivation.path_count(wrt)
    if dims.T <= MAX_PATH_T and kept <= args.max_paths:
        listed = derivation.paths(wrt)
        evaluated = compile_paths(derivation, listed)(arrays)
        values = [evaluated[f"path{i}"] for i in range(len(listed))]
        errors["paths_sum_vs_total"] = _max_rel_error(sum_paths(listed, values, total.shape), total)
        if partials:
            errors["partials_vs_their_paths"] = max(
                _max_rel_error(sum(v for p, v in zip(listed, values) if p.entry_step == k), part)
                for k, part in partials.items()
            )
        paths = [
            {
                "nodes": list(p.shown),
                "entry_step": p.entry_step,
                "loss_step": p.loss_step,
                "value": v.tolist(),
            }
            for p, v in zip(listed, values)
        ]
    growth = {}
    for steps in range(1, min(dims.T, GROWTH_T) + 1):  # the count at each shorter T, too
        # a count depends on T only: the smallest sizes unroll fastest
        tiny = spec.complete(Dims(N=1, D=1, H=1, C=2, T=steps), 1)
        smaller = graph if steps == dims.T else unroll(tiny, spec=spec, max_seconds=None)
        growth[str(steps)] = Derivation(smaller, [], [], {}).path_count(wrt)
    used = {k: v for k, v in dims.as_dict().items() if k in (*spec.size_names, "T")}
    return {
        "model": spec.describe(),
        "dims": used,
        **({"model_check": _model_check(spec)} if spec.from_file else {}),
        "wrt": wrt,
        "seed": args.seed,
        "arrays": {k: np.asarray(v).tolist() for k, v in arrays.items()},
        "loss": float(symbolic["loss"]),
        "path_count": kept,
        "path_growth": growth,
        "paths_dropped": derivation.path_count(wrt, truncated=False) - kept,
        "paths": paths,
        "max_paths": args.max_paths,
        "partials": {str(k): v.tolist() for k, v in partials.items()},
        "total": total.tolist(),
        "bptt_total": grads_ref[wrt].tolist(),
        "max_relative_errors": errors,
        "agrees": all(e <= RTOL for e in errors.values()),
        "seconds": time.perf_counter() - started,
        "graph_nodes": len(graph),
    }


def _gradient_name(spec, name: str) -> str:
    """The canonical name of a gradient this variant has (one sentence when it has none)."""
    try:
        return resolve_name(name, spec.gradient_names)
    except SymbpttError:
        if name in {i.name for i in spec.base_inputs}:
            flag = {"h0": " (drop --h0 zero)", "c0": " (add --c0 input)"}.get(name, "")
            raise _UsageError(
                f"--wrt {name}: this variant ({_describe_variant(spec)}) has no gradient with "
                f"respect to {name}{flag}; it has {', '.join(spec.gradient_names)}"
            ) from None
        raise


def _describe_variant(spec) -> str:
    from ..models.spec import describe_model

    return describe_model(spec.describe()) or "the full model"


def _model_check(spec) -> dict:
    """How a model file's derivatives were checked before first use (derive's record)."""
    from ..engine.trust import ensure_trusted

    record = ensure_trusted(spec)
    return {
        "shapes": record.shapes,
        "max_relative_error": record.max_error,
        "torch_max_relative_error": record.torch_error,
        "cached": record.cached,
        "sentence": record.sentence(),
    }


def _render_derivation(record: dict, out: Console) -> None:
    d, wrt = record["dims"], record["wrt"]
    sizes = " ".join(f"{k}={v}" for k, v in d.items())
    out.print(
        f"[bold]dL/d{wrt}[/bold] for {sizes}: "
        f"{record['path_count']} paths through the unrolled graph ({record['graph_nodes']} nodes, "
        f"{record['seconds']:.2f} s)"
    )
    if "model_check" in record:
        out.print(f"model file: {record['model_check']['sentence']}", highlight=False)
    from ..models.spec import describe_model

    variant = describe_model(record["model"])
    if variant:
        out.print(f"model: {variant}", highlight=False)
    if record["paths_dropped"]:
        out.print(
            f"{record['paths_dropped']} longer paths dropped by truncation "
            f"(only t - k <= {record['model']['truncate']} counts)"
        )
    if record["paths"] is not None:
        from rich.table import Table

        table = Table(show_lines=False)
        for col in ("#", "path", "k", "t", f"contribution (at seed {record['seed']})"):
            table.add_column(col)
        for i, p in enumerate(record["paths"], 1):
            table.add_row(
                str(i),
                " -> ".join(p["nodes"]),
                str(p["entry_step"]),
                str(p["loss_step"]),
                _fmt(p["value"]),
            )
        out.print(table)
    elif record["dims"]["T"] > MAX_PATH_T:
        out.print(f"(paths are listed for T <= {MAX_PATH_T}; use a smaller T to see each one)")
    else:
        out.print(
            f"(paths are listed when there are at most {record['max_paths']}: --max-paths "
            "raises the cap)"
        )
    growth = record["path_growth"]
    if len(growth) > 1:
        counts = list(growth.values())
        ratio = counts[-1] / counts[-2] if counts[-2] else float("nan")
        out.print(
            "paths from "
            + wrt
            + " by T: "
            + ", ".join(f"T={k}: {v}" for k, v in growth.items())
            + f" (x{ratio:.2f} for the last step)"
        )
    if record["partials"] and record["paths"] is not None:
        out.print("partial derivatives (the use at step k only, every other use held fixed):")
        for k, partial in record["partials"].items():
            out.print(f"  dL/d{wrt}^({k}) = {_fmt(partial)}")
    out.print(f"total derivative dL/d{wrt} = {_fmt(record['total'])}")
    out.print(f"NumPy BPTT        dL/d{wrt} = {_fmt(record['bptt_total'])}")
    if "model_check" in record:
        out.print("(for a model file, NumPy BPTT is its matrix-form recurrences evaluated)")
    for name, e in record["max_relative_errors"].items():
        out.print(f"  max relative error {name.replace('_', ' ')}: {e:.1e}")
    verdict = "[green]agrees[/green]" if record["agrees"] else "[red]DISAGREES[/red]"
    out.print(f"symbolic derivation {verdict} with NumPy BPTT (tolerance {RTOL:g})")
