"""`symbptt audit`: a hand-written derivation read and judged rule by rule."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


from .common import _DEFAULTS, _UsageError, _variant_arguments, model_spec


def register(sub) -> None:
    """Add the `audit` command to the command line."""
    au = sub.add_parser(
        "audit",
        help="audit a hand-written BPTT derivation (text or LaTeX) rule by rule: which line is "
        "wrong, why, a counterexample, and the correct rule",
    )
    au.add_argument("file", metavar="FILE", help="the derivation (- for standard input)")
    au.add_argument(
        "--format",
        choices=("text", "latex", "markdown", "notebook"),
        default=None,
        help="text: the formula language; latex: paper notation; markdown: the math of a "
        "Markdown page; notebook: a Jupyter notebook's markdown cells (default: from the "
        "suffix, .tex, .md, .ipynb, else text)",
    )
    au.add_argument(
        "--convention",
        choices=("row", "column"),
        default=None,
        help="row: a_t = b + h_{t-1} W_h + x_t W_x; column: a_t = b + W_h h_{t-1} + W_x x_t "
        "(default: as the derivation's forward equations write it, else row)",
    )
    au.add_argument(
        "--map",
        default="",
        metavar="AUTHOR=MODEL,...",
        help="the author's symbols as the model's, e.g. W=W_h,U=W_x,delta=da",
    )
    au.add_argument(
        "--loss",
        default=None,
        metavar="NAME",
        help="the loss's name in the derivation when it is not found from its definition "
        "(e.g. --loss Q for dQ/dh_t); L, J, E, C and the one a line `X = \\sum_t ...` "
        "defines are found",
    )
    au.add_argument(
        "--one-example",
        action="store_true",
        help="the equations are written for one example (N = 1), as textbooks write them",
    )
    au.add_argument("--json", action="store_true", help="print the report as one JSON object")
    _variant_arguments(au)


def run_audit(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Audit a derivation; 0 when every rule holds, 1 when one does not."""

    from ..audit import audit

    if args.file == "-":
        source, suffix = sys.stdin.read(), ""
    else:
        path = Path(args.file)
        if not path.is_file():
            raise _UsageError(f"no such file: {args.file}")
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise _UsageError(f"cannot read {args.file}: {exc}") from None
        suffix = path.suffix.lower()
    from ..audit.sources import format_of

    fmt = args.format or format_of(suffix)
    explicit = args.model is not None
    options = any(
        getattr(args, option, default) not in (default, None)
        for option, default in _DEFAULTS.items()
    )
    spec = model_spec(args) if explicit or options else None
    report = audit(
        source,
        format=fmt,
        model=spec if explicit else None,
        options_model=spec if options and not explicit else None,
        convention=args.convention,
        mapping=args.map,
        one_example=args.one_example,
        loss=args.loss,
    )
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        sys.stdout.write(report.text())
    return 0 if report.ok else 1
