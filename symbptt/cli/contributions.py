"""`symbptt contributions`: the gradient by path length."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


from .common import (
    _at_least,
    _output_path,
    _variant_arguments,
    _whole,
    _write_output,
    dims_of_args,
    model_spec,
)


def register(sub) -> None:
    """Add the `contributions` command to the command line."""
    co = sub.add_parser(
        "contributions",
        help="the gradient of a recurrent weight by path length t - k, per scale of W_h "
        "(vanishing and exploding gradients), with its bound",
    )
    for dim, default in (("T", 20), ("N", 2), ("D", 3), ("H", 8), ("C", 4)):
        co.add_argument(f"--{dim}", type=_whole, default=default, help=f"default {default}")
    co.add_argument("--wrt", default=None, help="W_h (default), W_x or b; a file's weights")
    co.add_argument(
        "--scale",
        type=_scales,
        default=(0.5, 1.0, 2.0),
        help="largest singular values of W_h to compare (default 0.5,1,2)",
    )
    co.add_argument("--seed", type=_at_least(0), default=0, help="seed of the random weights")
    co.add_argument("-o", "--output", default=None, metavar="FILE.png", help="write the plot")
    co.add_argument("--force", action="store_true", help="replace an existing file")
    co.add_argument("--json", action="store_true", help="print the numbers as JSON")
    co.set_defaults(format=None)
    _variant_arguments(co)


def _scales(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} must be numbers separated by commas") from None
    if not values or any(not (0 < v < 1e3) for v in values):
        raise argparse.ArgumentTypeError(f"{text!r} must be positive numbers below 1000")
    return values


def run_contributions(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Norms of the gradient's temporal components by lag, per weight scale (a plot, JSON)."""
    from ..pictures.contributions import contributions, plot

    spec = model_spec(args)
    path, _ = _output_path(args, ("png",)) if args.output else (None, "png")
    dims = dims_of_args(args, spec)
    result = contributions(spec, dims, args.wrt, args.scale, seed=args.seed)
    if path is not None:
        _write_output(path, plot(result), args.force)
    if args.json:
        print(json.dumps(result.as_dict()))
        return 0
    from rich.table import Table

    lags = sorted({0, 1, 2, 5, 10, dims.T // 2, dims.T - 1} & set(range(dims.T)))
    table = Table(title=f"‖C_l‖ of dL/d{result.wrt} by lag l = t - k (T = {dims.T})")
    table.add_column("σ", no_wrap=True)
    for lag in lags:
        table.add_column(f"l={lag}", justify="right", no_wrap=True)
    table.add_column("total", justify="right", no_wrap=True)
    for scale, norms, total in zip(result.scales, result.norms, result.totals):
        table.add_row(f"{scale:g}", *(f"{norms[k]:.1e}" for k in lags), f"{total:.1e}")
    out.print(table)
    worst = max(result.sum_errors) / max(max(result.totals), 1e-300)
    out.print(
        f"σ is the largest singular value of {result.weight}; the components add up to the "
        f"total gradient (relative error {worst:.1e})"
    )
    if path is not None:
        print(f"symbptt: wrote {path}", file=sys.stderr)
    return 0
