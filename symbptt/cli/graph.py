"""`symbptt graph`: the unrolled graph as a picture."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


from .common import _output_path, _UsageError, _variant_arguments, _whole, _write_output, model_spec


def register(sub) -> None:
    """Add the `graph` command to the command line."""
    gr = sub.add_parser(
        "graph",
        help="draw the unrolled graph, every edge with its local Jacobian, the paths from a "
        "parameter to the loss highlighted",
    )
    gr.add_argument("--T", type=_whole, default=3, help="time steps (1 to 8, default 3)")
    gr.add_argument(
        "--wrt",
        default=None,
        help="the paths from this input (default W_h, or a file's recurrent weight)",
    )
    gr.add_argument(
        "--through", default=None, metavar="NODE", help="only the paths through NODE, e.g. h_2"
    )
    gr.add_argument(
        "--to", default=None, metavar="L_t", help="only the paths ending in the loss term L_t"
    )
    gr.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="FILE",
        help="write FILE.svg, FILE.png (Graphviz's dot) or FILE.dot; default DOT on stdout",
    )
    gr.add_argument(
        "--format", choices=("dot", "svg", "png"), default=None, help="default: from -o's suffix"
    )
    gr.add_argument(
        "--convention",
        choices=("row", "column"),
        default="row",
        help="the edges' Jacobians in the row (default) or the column convention",
    )
    gr.add_argument("--force", action="store_true", help="replace an existing file")
    _variant_arguments(gr)


def run_graph(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Draw the unrolled graph with the paths from a parameter highlighted."""
    from ..pictures.graph import FORMATS, graph_figure, render

    spec = model_spec(args)
    path, fmt = _output_path(args, FORMATS)
    if fmt != "dot" and path is None:
        raise _UsageError(f"--format {fmt} is binary or an image: write it with -o FILE.{fmt}")
    figure = graph_figure(
        spec, args.T, args.wrt, through=args.through, to=args.to, convention=args.convention
    )
    data = render(figure, fmt)
    if path is None:
        sys.stdout.write(data.decode())
    else:
        _write_output(path, data, args.force)
        print(f"symbptt: wrote {path} ({figure.caption.split(';')[0]})", file=sys.stderr)
    return 0
