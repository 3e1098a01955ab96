"""`symbptt latex`: the matrix-form derivation as a document, every line verified."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


from .common import _Progress, _UsageError, _variant_arguments, _whole, model_spec


def register(sub) -> None:
    """Add the `latex` command to the command line."""
    lx = sub.add_parser(
        "latex",
        help="write the matrix-form BPTT derivation (LaTeX, Markdown or the formula language), "
        "every line checked numerically first",
    )
    lx.add_argument("--T", type=_whole, default=3, help="time steps (paths listed for T <= 4)")
    lx.add_argument(
        "--wrt",
        default=None,
        help="a parameter, a comma list, or all (default W_h; a model file's recurrent weight)",
    )
    lx.add_argument(
        "--convention",
        choices=("row", "column"),
        default="row",
        help="row: a_t = b + h_{t-1} W_h + x_t W_x (default); column: a_t = b + W_h h_{t-1} + "
        "W_x x_t",
    )
    lx.add_argument(
        "--format",
        choices=("tex", "md", "text"),
        default=None,
        help="default: from the -o file's suffix (.tex, .md, else text), or tex",
    )
    lx.add_argument("-o", "--output", default=None, metavar="FILE", help="write to FILE")
    lx.add_argument("--force", action="store_true", help="replace existing files")
    lx.add_argument("--pdf", action="store_true", help="also compile FILE.pdf with pdflatex")
    lx.add_argument("--body", action="store_true", help="LaTeX body only, for \\input")
    lx.add_argument("--names", default="", help="your symbols, e.g. W_h=W,W_x=U")
    lx.add_argument(
        "--expand", action="store_true", help="add one entry written out in the raw inputs"
    )
    lx.add_argument(
        "--handout",
        action="store_true",
        help="for a class: the path listing and the verification paragraph go to an appendix",
    )
    lx.add_argument(
        "--notation",
        choices=("fraction", "delta"),
        default="fraction",
        help="how the adjoint of a per-step quantity is written: fraction dL/da_t (default) "
        "or delta, the lecture notes' δ^a_t (tex and md; a parameter's gradient stays dL/dW)",
    )
    _variant_arguments(lx)


def run_latex(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Derive, verify and write the matrix-form derivation (stdout, or -o FILE [--pdf])."""

    from ..derivation import derivation, format_of
    from ..derivation.output import compile_pdf, write_new

    spec = model_spec(args)
    path = Path(args.output) if args.output else None
    fmt = args.format or (format_of(path) if path else "tex")
    if args.pdf and (path is None or fmt != "tex"):
        raise _UsageError("--pdf needs -o FILE.tex (the PDF is written beside it)")
    if args.notation == "delta" and fmt == "text":
        raise _UsageError(
            "--notation delta applies to the tex and md formats; the formula language writes "
            "every adjoint dNAME"
        )
    if args.body and fmt != "tex":
        raise _UsageError("--body applies to the tex format only")
    if args.body and args.pdf:
        raise _UsageError("--pdf compiles a standalone document; drop --body")
    pdf = path.with_suffix(".pdf") if args.pdf else None
    if pdf is not None and shutil.which("pdflatex") is None:
        from ..derivation.output import PDFLATEX_MISSING

        raise _UsageError(PDFLATEX_MISSING)
    if path is not None and path.is_dir():
        raise _UsageError(f"{path} is a folder; give a file name such as {path / 'bptt.tex'}")
    if path is not None and path.suffix.lower() == ".pdf":
        raise _UsageError(
            f"-o {path}: write the .tex and add --pdf (-o {path.with_suffix('.tex')} --pdf)"
        )
    for target in filter(None, (path, pdf)):  # before any work: never a surprise overwrite
        if target.exists() and not args.force:
            raise _UsageError(f"{target} exists; pass --force to replace it")
    with _Progress(err) as progress:
        result = derivation(
            args.T,
            args.wrt,
            model=spec,
            convention=args.convention,
            names=args.names,
            expand=args.expand,
            handout=args.handout,
            notation=args.notation,
            progress=progress,
        )
    text = result.render(fmt, body=args.body)
    if path is None:
        sys.stdout.write(text)
        return 0
    write_new(path, text, force=args.force)
    written = [str(path)]
    if pdf is not None:
        compile_pdf(result.latex(), pdf, force=args.force)
        written.append(str(pdf))
    v = result.verification
    print(
        f"symbptt: wrote {' and '.join(written)} ({v.comparisons} arrays checked against the "
        f"engine, largest relative difference {v.max_error:.1e}; {result.seconds:.2f} s)",
        file=sys.stderr,
    )
    return 0
