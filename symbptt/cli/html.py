"""`symbptt html`: the interactive page (graph beside the derivation)."""

from __future__ import annotations

import argparse
import shutil
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


from .common import (
    _output_path,
    _Progress,
    _UsageError,
    _variant_arguments,
    _whole,
    _write_output,
    model_spec,
)


def register(sub) -> None:
    """Add the `html` command to the command line."""
    ht = sub.add_parser(
        "html",
        help="write an interactive page: the unrolled graph (click a node to light the paths "
        "through it and see their terms) beside the verified derivation",
    )
    ht.add_argument("--T", type=_whole, default=3, help="time steps (paths listed for T <= 4)")
    ht.add_argument(
        "--wrt", default=None, help="the parameter (default W_h, or a file's recurrent weight)"
    )
    ht.add_argument("--convention", choices=("row", "column"), default="row", help="default row")
    ht.add_argument("-o", "--output", default=None, metavar="FILE.html", help="the page")
    ht.add_argument("--force", action="store_true", help="replace an existing file")
    ht.set_defaults(format=None)
    _variant_arguments(ht)


def run_html(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Write the interactive derivation page: one self-contained HTML file."""
    from ..pictures.page import page

    spec = model_spec(args)
    path, _ = _output_path(args, ("html",))
    if path is None:
        raise _UsageError("write the page with -o FILE.html")
    if shutil.which("dot") is None:
        raise _UsageError(
            "Graphviz's dot program is not installed (Debian: apt-get install graphviz); the "
            "page draws the unrolled graph with it"
        )
    with _Progress(err):
        html = page(spec, args.T, args.wrt, convention=args.convention)
    _write_output(path, html, args.force)
    print(f"symbptt: wrote {path} ({len(html) // 1024} KiB, no network needed)", file=sys.stderr)
    return 0
