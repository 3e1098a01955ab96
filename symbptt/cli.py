"""The `symbptt` command line: derive, write, audit and check BPTT, and draw it.

`derive` a gradient through every path, `latex` its matrix-form derivation as a document,
`audit` a hand-written derivation, `check` user code; `graph`, `contributions` and `html` draw
the unrolled graph, the gradient by path length and an interactive page.

Every error symbptt raises on purpose becomes one line on stderr and a non-zero exit code, never
a traceback: 1 when a numerical check fails (or checked code raised, hung or crashed), 2 for a
usage error, 3 for an internal error of symbptt.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from rich.console import Console

from .checking import FORMS, LAYOUTS, PRECISIONS, STYLES
from .engine.cost import PATH_T
from .errors import (
    InternalError,
    InvalidArgumentError,
    SymbpttError,
    TargetError,
    UnknownNameError,
)
from .models.dims import GRADIENT_NAMES, Dims, resolve_name

__all__ = ["main"]

#: Largest T for which `derive` lists and evaluates every path (W_h has T(T+1)/2 of them).
MAX_PATH_T = PATH_T
#: Path counts are also reported for every T up to this one (how they grow with T).
GROWTH_T = 8
#: Relative agreement demanded between the symbolic result and the NumPy BPTT.
RTOL = 1e-9


class _UsageError(SymbpttError):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would exit 2 with usage; keep one line
        raise _UsageError(message)


def _whole(text: str) -> int:
    """A whole number; whether it is in range is for the model to say (Dims names the field)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _at_least(low: int):
    def parse(text: str) -> int:
        value = _whole(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} must be at least {low}")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (0 < value < math.inf):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (0 < value < math.inf):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number")
    return value


def _scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (0 < value <= 1e6):
        raise argparse.ArgumentTypeError(f"{text!r} must be a number in (0, 1e6]")
    return value


def _variant_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a model variant, one per option of `spec.Options`."""
    from .models.spec import ACTIVATIONS, MODEL_OPTIONS, REDUCTIONS

    group = parser.add_argument_group("model variant")
    group.add_argument(
        "--model",
        default=None,
        metavar="rnn|lstm|gru|FILE",
        help="the cell: the vanilla RNN (default), the LSTM (CS231n's), the GRU (PyTorch's), or "
        "a model file: your cell written as its forward equations (docs/models.md)",
    )
    group.add_argument(
        "--size",
        action="append",
        default=[],
        metavar="NAME=N",
        help="a model file's own size, e.g. --size K=3 (repeatable; N, D, H, C, T have their "
        "own options)",
    )
    group.add_argument(
        "--gate-order",
        choices=MODEL_OPTIONS["gate_order"],
        default=None,
        help="LSTM: the gates' blocks in W_x, W_h, b: ifog (CS231n, default) or ifgo (PyTorch)",
    )
    group.add_argument(
        "--c0",
        choices=MODEL_OPTIONS["c0"],
        default=None,
        help="LSTM: c0 fixed at zero (default) or an input with a gradient",
    )
    group.add_argument(
        "--reset",
        choices=MODEL_OPTIONS["reset"],
        default=None,
        help="GRU: the reset gate applied after the product with W_hn (PyTorch, default) or "
        "before it (the original GRU)",
    )
    group.add_argument(
        "--no-bias",
        action="append",
        default=[],
        metavar="NAME",
        help="the model has no such bias (b or c; b or b_y for the LSTM; b_x, b_h or c for the "
        "GRU; repeatable)",
    )
    group.add_argument(
        "--h0",
        choices=("input", "zero"),
        default="input",
        help="h0 an input (default) or fixed at zero",
    )
    group.add_argument(
        "--inputs",
        choices=("dense", "tokens"),
        default="dense",
        help="x as vectors (default) or as integer token ids",
    )
    group.add_argument(
        "--activation",
        choices=ACTIVATIONS,
        default="tanh",
        help="the hidden layer's (default tanh)",
    )
    group.add_argument(
        "--reduction",
        choices=REDUCTIONS,
        default="sum",
        help="the loss summed (default) or averaged over all N*T terms",
    )
    group.add_argument(
        "--truncate",
        type=_at_least(0),
        default=None,
        metavar="K",
        help="K-step truncated BPTT: only paths with t - k <= K",
    )


#: The model variant options of the built-ins, and how a model file says the same.
FILE_WAYS = {
    "no_bias": ("--no-bias", "leave the bias out of its rule and of the declarations"),
    "h0": ("--h0 zero", "write the boundary h[0] = 0"),
    "inputs": ("--inputs tokens", "declare x[t]: (N,) in D and write onehot(x[t]) @ W_x"),
    "activation": ("--activation", "write the function in the rule: h[t] = relu(a[t])"),
    "reduction": ("--reduction mean", "write L = sum(t, ...) / (N * T)"),
    "truncate": (
        "--truncate",
        "a model file's derivatives are checked against finite differences of full BPTT only, "
        "so truncation is not offered for it",
    ),
    "gate_order": ("--gate-order", "write each gate's block: colblock(a[t], k, 4)"),
    "c0": ("--c0", "write the boundary c[0] = c0 (an input) or c[0] = 0"),
    "reset": ("--reset", "write the reset gate where your GRU applies it"),
}
_DEFAULTS = {"no_bias": [], "h0": "input", "inputs": "dense", "activation": "tanh"}
_DEFAULTS.update(reduction="sum", truncate=None, gate_order=None, c0=None, reset=None)


def is_model_file(value: str) -> bool:
    """Whether --model names a model file rather than a built-in (rnn, lstm, gru)."""
    from .models import ALIASES, MODELS

    return value not in MODELS and value not in ALIASES


def model_spec(args: argparse.Namespace):
    """The model variant the command line asked for (one sentence for an impossible one); a
    model file is read, and its derivatives checked, before anything else."""
    from .models import model_named
    from .models.spec import MODEL_OPTIONS

    if args.model is None:
        args.model = "rnn"
    if is_model_file(args.model):
        spec = _file_spec(args)
        if getattr(args, "wrt", "") is None:
            args.wrt = default_wrt(spec)
        return spec
    if getattr(args, "wrt", "") is None:
        args.wrt = "W_h"
    if getattr(args, "size", None):
        raise _UsageError(
            f"--size {args.size[0]}: the built-in models have the sizes N, D, H, C (and T); "
            "--size gives a model file's own"
        )
    chosen = {k: getattr(args, k) for k in MODEL_OPTIONS if getattr(args, k) is not None}
    try:
        return model_named(args.model).variant(
            no_bias=tuple(args.no_bias),
            h0=args.h0,
            inputs=args.inputs,
            activation=args.activation,
            reduction=args.reduction,
            truncate=args.truncate,
            **chosen,
        )
    except (InvalidArgumentError, UnknownNameError) as exc:
        raise _UsageError(str(exc)) from None


def _file_spec(args: argparse.Namespace):
    from pathlib import Path

    from .engine.trust import ensure_trusted
    from .models import filespec

    if not args.model.strip():
        raise _UsageError("--model is empty: choose rnn, lstm or gru, or give a model file's path")
    path = Path(args.model)
    if not path.exists():
        raise _UsageError(
            f"--model {args.model}: choose rnn, lstm or gru, or give a model file's path "
            f"(there is no file {args.model})"
        )
    if path.is_dir():
        raise _UsageError(f"--model {args.model} is a folder, not a model file")
    for option, default in _DEFAULTS.items():
        value = getattr(args, option, default)
        if value != default and value is not None:
            flag, way = FILE_WAYS[option]
            raise _UsageError(f"{flag} is an option of the built-in models; in a model file, {way}")
    convention = getattr(args, "convention", "row") or "row"
    spec = filespec.from_file(path, convention=convention)
    ensure_trusted(spec)
    return spec


def default_wrt(spec) -> str:
    """A model file's default --wrt: the weight that multiplies a state at t-1 (its W_h),
    else its first weight."""
    from .formula.ast import Binary, Index, Name, Step
    from .models.modelfile import _walk

    for rule in spec.definition.rules:
        for node in _walk(rule.expr):
            if (
                isinstance(node, Binary)
                and node.op in ("@", "*")
                and isinstance(node.left, Step)
                and node.left.index == Index("t", -1)
                and isinstance(node.right, Name)
                and node.right.name in spec.parameters
            ):
                return node.right.name
    return spec.parameters[0] if spec.parameters else spec.gradient_names[0]


def dims_of_args(args: argparse.Namespace, spec) -> Dims:
    """The sizes the command line gives: --N --D --H --C --T and each --size NAME=N, checked
    against the sizes the model uses."""
    from .errors import DimensionError

    more: dict[str, int] = {}
    for item in getattr(args, "size", []) or []:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise _UsageError(f"--size {item!r} is not of the form NAME=N, e.g. K=3")
        if name in ("N", "D", "H", "C", "T"):
            raise _UsageError(f"--size {item}: give {name} with --{name} {value.strip()}")
        try:
            more[name] = int(value)
        except ValueError:
            raise _UsageError(f"--size {item}: {value.strip()!r} is not a whole number") from None
        if name in more and list(more).count(name) > 1:
            raise _UsageError(f"--size {name} is given twice")
    used = [n for n in spec.size_names if n not in ("N", "D", "H", "C")]
    unknown = [n for n in more if n not in used]
    if unknown:
        have = ", ".join(spec.size_names) + ", T"
        raise _UsageError(
            f"--size {unknown[0]}: the {spec.name} model has no size {unknown[0]} ({have})"
        )
    missing = [n for n in used if n not in more]
    if missing:
        raise _UsageError(
            f"the {spec.name} model uses the size {missing[0]}: give it with --size {missing[0]}=3"
        )
    try:
        return Dims(N=args.N, D=args.D, H=args.H, C=args.C, T=args.T, more=more)
    except DimensionError as exc:
        raise _UsageError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="symbptt", description=__doc__.splitlines()[0])
    from . import __version__

    parser.add_argument("--version", action="version", version=f"symbptt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
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
    _variant_arguments(lx)
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
    k = sub.add_parser(
        "check",
        help="check hand-written BPTT functions on random shapes and say what is wrong",
        description="Check hand-written BPTT: each function runs in its own worker process "
        "with time and memory limits; exit 0 when every target is right, 1 when any is wrong "
        "or failed, 2 for usage errors, 4 when right on ordinary inputs but NaN or inf on "
        "saturated ones.",
    )
    k.add_argument(
        "targets",
        nargs="+",
        metavar="TARGET",
        help="path/to/file.py:function, or file.py:forward,backward for a layer pair; the "
        "path may be a glob pattern (subs/*/rnn.py:f)",
    )
    k.add_argument(
        "--form",
        choices=FORMS,
        default=None,
        help="full: loss and every gradient; layer: one RNN layer's VJP given dh on every h_t "
        "(default: layer for a forward/backward pair, else full)",
    )
    k.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="row",
        help="row: x W, as in the model; column: W x, weights transposed, biases (H, 1)",
    )
    k.add_argument(
        "--style",
        choices=STYLES,
        default="plain",
        help="char-rnn: a min-char-rnn lossFun(inputs, targets, hprev) reading its weights "
        "and sizes from module globals, one sequence per call",
    )
    k.add_argument(
        "--globals",
        default="",
        metavar="NAME=D|H|C",
        help="char-rnn style: more size globals to set, e.g. seq_length=D",
    )
    k.add_argument(
        "--defs-only",
        action="store_true",
        help="import the file running only its imports, definitions and constant "
        "assignments (a training script's top level never runs)",
    )
    k.add_argument(
        "--clip",
        type=_positive,
        default=None,
        metavar="V",
        help="your code clips each gradient entry to [-V, V]; the truth is clipped the same",
    )
    k.add_argument(
        "--clip-norm",
        type=_positive,
        default=None,
        metavar="V",
        help="your code scales the parameters' gradients to a global L2 norm of at most V",
    )
    k.add_argument(
        "--allow-broadcast-shapes",
        action="store_true",
        help="accept a gradient shaped like its parameter up to axes of size 1 (db (1, H) "
        "for b (H,))",
    )
    k.add_argument(
        "--step",
        choices=("auto", "yes", "no"),
        default="auto",
        help="for a pair: yes, the one-step pair (x (N, D), T = 1); auto (default): when the "
        "forward function's name has the word step or cell",
    )
    k.add_argument(
        "--no-probe",
        action="store_true",
        help="skip the saturated inputs (pre-activations and logits of about 1000) tried "
        "after a right verdict",
    )
    k.add_argument("--batch-first", action="store_true", help="x is (N, T, D), y is (N, T)")
    conv = k.add_argument_group(
        "conventions: how the code holds the model's arrays (docs/checking.md)"
    )
    conv.add_argument(
        "--convention",
        default=None,
        metavar="FILE|auto",
        help="a convention file (TOML) to grade with, or auto: check under the convention "
        "the search finds",
    )
    conv.add_argument(
        "--sequence",
        default=None,
        metavar="AXES",
        help="axes of x and dh: TNF (default), NTF (= --batch-first), FNT (features first), "
        "TF (one example per call)",
    )
    conv.add_argument("--state", default=None, metavar="AXES", help="axes of h0: NF, FN or F")
    conv.add_argument(
        "--bias", default=None, choices=("F", "1F", "F1"), help="a bias as (H,), (1, H), (H, 1)"
    )
    conv.add_argument(
        "--gates",
        default=None,
        metavar="ORDER",
        help="the gates' order, e.g. fgio (LSTM: i f o g; GRU: r z n)",
    )
    conv.add_argument(
        "--weights",
        default=None,
        choices=("fused", "per-gate"),
        help="one matrix for all gates (default) or one per gate",
    )
    conv.add_argument(
        "--stack",
        default=None,
        metavar="ROWS",
        help="terms stacked into one array, in row order: hx, xh, 1xh (a bias row), 12 (two "
        "biases)",
    )
    conv.add_argument(
        "--split-bias", action="store_true", help="the bias as the sum b_ih + b_hh (PyTorch's)"
    )
    conv.add_argument(
        "--update",
        default=None,
        choices=("prev", "new"),
        help="GRU: z weighs h_{t-1} (prev, PyTorch's) or the new state (new)",
    )
    conv.add_argument(
        "--path",
        action="append",
        default=[],
        metavar="DIR",
        help="another folder the code imports from (repeatable)",
    )
    conv.add_argument(
        "--write-convention",
        default=None,
        metavar="FILE",
        help="write the convention the check used as TOML (for --convention FILE)",
    )
    conv.add_argument("--force", action="store_true", help="replace an existing FILE")
    k.add_argument("--names", default="", help="your names, e.g. W_h=Whh,W_x=Wxh,V=Why")
    k.add_argument("--order", default="", help="order of a returned gradient tuple, e.g. W_x,W_h")
    k.add_argument(
        "--only",
        default="",
        help="the gradients (and loss) your function returns, e.g. W_h,W_x; default: all",
    )
    k.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None,
        help="judge every answer at this precision; default: float64 and float32 answers at "
        "their own, lower ones refused",
    )
    k.add_argument("--examples", type=_at_least(1), default=100, help="random problems to try")
    k.add_argument(
        "--seed", type=_at_least(0), default=0, help="seed of the search (reproducible checks)"
    )
    k.add_argument(
        "--tolerance",
        action="append",
        default=[],
        metavar="DTYPE=RTOL",
        help="relative tolerance for answers judged at DTYPE, e.g. float32=1e-3 (repeatable)",
    )
    k.add_argument("--timeout", type=_seconds, default=5.0, help="seconds per call (default 5)")
    k.add_argument(
        "--total-timeout",
        type=_seconds,
        default=300.0,
        help="seconds for the whole check of one target (default 300)",
    )
    k.add_argument(
        "--memory",
        type=_at_least(16),
        default=2048,
        metavar="MB",
        help="memory your code may use, in MiB (default 2048)",
    )
    k.add_argument(
        "--forbid-import",
        default="",
        metavar="MODULES",
        help="modules the code may not import, e.g. symbptt,torch,jax",
    )
    k.add_argument(
        "--jobs", type=_at_least(1), default=1, help="targets checked in parallel (default 1)"
    )
    _variant_arguments(k)
    formats = k.add_mutually_exclusive_group()
    formats.add_argument(
        "--json", action="store_true", help="print each report as one line of JSON"
    )
    formats.add_argument("--csv", action="store_true", help="print a CSV grade book")
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
    return parser


class _Progress:
    """Progress on stderr for work that turns out to be long: nothing for the first 2 s, then
    a transient bar on a terminal, or a plain line every 5 s when stderr is a pipe or file."""

    DELAY, EVERY = 2.0, 5.0

    def __init__(self, console: Console) -> None:
        self.console, self.started = console, time.monotonic()
        self.bar = None
        self.tasks: dict[str, int] = {}
        self.last_line = 0.0

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        elapsed = now - self.started
        if elapsed < self.DELAY:
            return
        if not self.console.is_terminal:
            if now - self.last_line >= self.EVERY:
                self.last_line = now
                self.console.print(
                    f"symbptt: {stage} {done}/{total} ({elapsed:.0f} s)", highlight=False
                )
            return
        if self.bar is None:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self.bar.start()
        if stage not in self.tasks:
            self.tasks[stage] = self.bar.add_task(stage, total=total)
        self.bar.update(self.tasks[stage], completed=done, total=total)


def run_latex(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Derive, verify and write the matrix-form derivation (stdout, or -o FILE [--pdf])."""
    from pathlib import Path

    from .derivation import derivation, format_of
    from .derivation.output import compile_pdf, write_new

    spec = model_spec(args)
    path = Path(args.output) if args.output else None
    fmt = args.format or (format_of(path) if path else "tex")
    if args.pdf and (path is None or fmt != "tex"):
        raise _UsageError("--pdf needs -o FILE.tex (the PDF is written beside it)")
    if args.body and fmt != "tex":
        raise _UsageError("--body applies to the tex format only")
    if args.body and args.pdf:
        raise _UsageError("--pdf compiles a standalone document; drop --body")
    pdf = path.with_suffix(".pdf") if args.pdf else None
    if pdf is not None and shutil.which("pdflatex") is None:
        from .derivation.output import PDFLATEX_MISSING

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


def _write_output(path, data: str | bytes, force: bool) -> None:
    """Write a file atomically, never replacing one without --force; one sentence on failure."""
    from .derivation.output import write_new

    try:
        write_new(path, data, force=force)
    except OSError as exc:
        raise _UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def _output_path(args: argparse.Namespace, formats: tuple[str, ...]):
    """-o FILE checked before any work: its format (from --format or the suffix), and no
    surprise overwrite."""
    from pathlib import Path

    path = Path(args.output) if args.output else None
    suffix = path.suffix.lower().lstrip(".") if path else ""
    suffix = {"htm": "html"}.get(suffix, suffix)
    if suffix and suffix not in formats:
        raise _UsageError(
            f"-o {path}: a .{suffix} file is not something this command writes "
            f"({', '.join('.' + f for f in formats)})"
        )
    if args.format and suffix and args.format != suffix:
        raise _UsageError(f"-o {path} and --format {args.format} disagree: give one of them")
    fmt = args.format or suffix or formats[0]
    if fmt not in formats:
        raise _UsageError(f"--format {fmt}: choose one of {', '.join(formats)}")
    if path is not None and path.is_dir():
        raise _UsageError(
            f"{path} is a folder; give a file name such as {path / ('out.' + formats[0])}"
        )
    if path is not None and (path.is_symlink() or (path.exists() and not path.is_file())):
        raise _UsageError(
            f"{path} is not a regular file (a link, a pipe or a device): symbptt writes new "
            "files and replaces only regular ones"
        )
    if path is not None and path.exists() and not args.force:
        raise _UsageError(f"{path} exists; pass --force to replace it")
    return path, fmt


def run_graph(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Draw the unrolled graph with the paths from a parameter highlighted."""
    from .pictures.graph import FORMATS, graph_figure, render

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
    from .pictures.contributions import contributions, plot

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


def run_html(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Write the interactive derivation page: one self-contained HTML file."""
    from .pictures.page import page

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


def run_audit(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Audit a derivation; 0 when every rule holds, 1 when one does not."""
    from pathlib import Path

    from .audit import audit

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
    from .audit.sources import format_of

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


def _max_rel_error(a: np.ndarray, b: np.ndarray) -> float:
    scale = max(float(np.max(np.abs(b), initial=0.0)), 1e-300)
    return float(np.max(np.abs(a - b), initial=0.0)) / scale


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
    from .engine.compile import compile_gradients, compile_paths
    from .engine.derivatives import Derivation, derive, sum_paths
    from .engine.graph import unroll

    spec = model_spec(args)
    dims = dims_of_args(args, spec)
    wrt = _gradient_name(spec, args.wrt)
    from .engine import cost

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
    from .models.spec import describe_model

    return describe_model(spec.describe()) or "the full model"


def _model_check(spec) -> dict:
    """How a model file's derivatives were checked before first use (derive's record)."""
    from .engine.trust import ensure_trusted

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
    from .models.spec import describe_model

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


def _mapping(text: str) -> dict[str, str]:
    pairs = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        ours, sep, theirs = item.partition("=")
        if not sep or not ours.strip() or not theirs.strip():
            raise _UsageError(f"--names entry {item!r} is not of the form W_h=Whh")
        pairs[ours.strip()] = theirs.strip()
    return pairs


def _tolerances(items: list[str]) -> dict:
    from .checking.check import TOLERANCES, Tolerance

    table = {}
    for item in items:
        dtype, sep, value = item.partition("=")
        if dtype not in TOLERANCES or not sep:
            raise _UsageError(
                f"--tolerance {item!r} is not of the form DTYPE=RTOL with DTYPE one of "
                f"{', '.join(TOLERANCES)}"
            )
        try:
            rtol = float(value)
        except ValueError:
            rtol = -1.0
        if not (0 < rtol < 1):
            raise _UsageError(f"--tolerance {item!r}: RTOL must be a number between 0 and 1")
        table[dtype] = Tolerance(rtol=rtol, floor=TOLERANCES[dtype].floor)
    return table


def _names_list(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def check_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of check_gradients that the command line asked for, validated."""
    from .checking.check import validate_options
    from .checking.convention import Convention
    from .errors import InvalidArgumentError

    model_given = args.model is not None
    convention = _convention_of(args)
    legacy = not isinstance(convention, Convention)
    from_file = isinstance(convention, str) and convention != "auto"
    options = dict(
        form=args.form,
        layout=args.layout if legacy else "row",
        batch_first=args.batch_first if legacy else False,
        names=_mapping(args.names) if legacy else None,
        order=_names_list(args.order) or None,
        only=_names_list(args.only) or None,
        precision=args.precision,
        max_examples=args.examples,
        seed=args.seed,
        tolerances=_tolerances(args.tolerance),
        timeout=args.timeout,
        total_timeout=args.total_timeout,
        memory_mb=args.memory,
        forbid_imports=tuple(_names_list(args.forbid_import)),
        model=model_spec(args) if model_given or not from_file else None,  # the file's
        style=args.style,
        globals=_mapping(args.globals) or None,
        defs_only=args.defs_only,
        clip=args.clip,
        clip_norm=args.clip_norm,
        allow_broadcast_shapes=args.allow_broadcast_shapes,
        probe=not args.no_probe,
        step={"auto": None, "yes": True, "no": False}[args.step],
        convention=convention,
        path=tuple(args.path),
    )
    try:  # our own options are checked before any user code runs
        checked = {k: v for k, v in options.items() if k not in ("convention", "path")}
        if isinstance(convention, Convention):
            checked["arrays"] = convention
        if from_file:
            from .checking.conventionfile import load

            loaded = load(Path(convention))
            checked["arrays"] = loaded.arrays
            checked["model"] = checked["model"] or loaded.model
            checked["form"] = checked["form"] or loaded.form
        validate_options(fn=args.targets[0], **checked)
    except InvalidArgumentError as exc:
        raise _UsageError(str(exc)) from None
    return options


#: The convention options, by their argparse names.
_CONVENTION_FLAGS = ("sequence", "state", "bias", "gates", "weights", "stack", "update")


def _convention_of(args: argparse.Namespace):
    """None (only today's options: --layout, --batch-first, --names), a Convention (any of
    the convention options), a convention file's path, or "auto"."""
    from .checking.convention import Convention
    from .errors import InvalidArgumentError

    flags = {k: getattr(args, k) for k in _CONVENTION_FLAGS if getattr(args, k) is not None}
    if args.split_bias:
        flags["split"] = True
    if args.convention is not None:
        if flags:
            raise _UsageError(
                f"--convention {args.convention} declares the convention: drop "
                + ", ".join(f"--{k.replace('_', '-')}" for k in flags)
            )
        if args.convention != "auto" and not Path(args.convention).is_file():
            raise _UsageError(f"--convention {args.convention}: no such file (or use auto)")
        return args.convention
    if not flags:
        return None
    if args.batch_first and "sequence" in flags:
        raise _UsageError("--batch-first is --sequence NTF: give one of them")
    try:
        return Convention(
            layout=args.layout,
            sequence=flags.pop("sequence", "NTF" if args.batch_first else "TNF"),
            names=_mapping(args.names),
            **flags,
        )
    except InvalidArgumentError as exc:
        raise _UsageError(str(exc)) from None


@contextlib.contextmanager
def _private_hypothesis_storage():
    """Hypothesis caches what it learns under ./.hypothesis; keep that out of the user's
    folder (an explicit HYPOTHESIS_STORAGE_DIRECTORY is respected)."""
    if os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        yield
        return
    folder = tempfile.mkdtemp(prefix="symbptt-hypothesis-")
    os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = folder
    try:
        yield
    finally:
        os.environ.pop("HYPOTHESIS_STORAGE_DIRECTORY", None)
        shutil.rmtree(folder, ignore_errors=True)


def run_check(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Check every target, print the report(s); 0 all right, 1 any wrong or failed."""
    with _private_hypothesis_storage():
        return _run_check(args, out, err)


def _run_check(args: argparse.Namespace, out: Console, err: Console) -> int:
    if _OWN_PROCESS:
        from .checking.isolation import adopt_orphans

        adopt_orphans()
    from .checking.batch import check_targets, csv_table, expand_targets, verdict

    options = check_options(args)
    targets = expand_targets(args.targets)
    if args.write_convention and len(targets) != 1:
        raise _UsageError(
            f"--write-convention writes one target's convention; {len(targets)} targets given"
        )
    if len(targets) == 1 and not args.csv:
        return _check_single(targets[0], options, args, out, err)
    total = len(targets)

    from .checking.report import safe_text

    def announce(done: int, record: dict) -> None:
        wrong = [r["name"] for r in record.get("results", []) if r.get("status") == "WRONG"]
        detail = f" ({', '.join(wrong)})" if wrong else ""
        err.print(
            f"[{done}/{total}] {safe_text(record['target'])}: {verdict(record).upper()}{detail}",
            highlight=False,
            soft_wrap=True,
        )

    records = check_targets(targets, options, jobs=args.jobs, on_result=announce)
    if args.json:
        for record in records:
            print(json.dumps(record))
    elif args.csv:
        sys.stdout.write(csv_table(records))
    else:
        _render_summary(records, out)
    statuses = {exit_status(r) for r in records}
    return 1 if 1 in statuses else max(statuses)


def _check_single(target: str, options: dict, args, out: Console, err: Console) -> int:
    from .checking.batch import failed_record
    from .checking.check import check_gradients

    with _Progress(err) as progress:
        try:
            report = check_gradients(
                target, **options, progress=lambda done, total: progress("examples", done, total)
            )
        except TargetError as exc:
            suggestion = getattr(exc, "suggestion", None)
            if args.write_convention and suggestion:  # asked for: the one that fits, saved
                _write_convention(args, suggestion["toml"], err)
            if args.json:  # the same record a batch gives; the exit status still says usage
                record = failed_record(target, str(exc))
                if suggestion:
                    record["suggestion"] = suggestion
                print(json.dumps(record))
            raise
    if args.write_convention and report.toml:
        _write_convention(args, report.toml, err)
    if args.json:
        record = report.to_dict()
        record["target"] = target
        print(json.dumps(record))
    else:
        report.render(out)
    return exit_status(report.to_dict())


def _write_convention(args, text: str, err: Console) -> None:
    """Save a convention file (never over an existing file without --force)."""
    from .checking.conventionfile import save
    from .errors import InvalidArgumentError

    try:
        save(Path(args.write_convention), text, force=args.force)
    except InvalidArgumentError as exc:
        raise _UsageError(str(exc)) from None
    except OSError as exc:
        raise _UsageError(f"cannot write {args.write_convention}: {exc}") from None
    err.print(f"wrote the convention to {args.write_convention}", highlight=False)


def exit_status(record: dict) -> int:
    """0 right; 4 right on ordinary inputs but NaN or inf on saturated ones; 1 otherwise."""
    if record.get("ok"):
        return 0
    wrong = any(r.get("status") == "WRONG" for r in record.get("results", []))
    if record.get("overflow") and not wrong and not record.get("error"):
        return 4
    return 1


def _render_summary(records: list[dict], out: Console) -> None:
    from rich.table import Table

    from .checking.batch import verdict
    from .checking.report import safe_text

    table = Table(title=f"symbptt check: {len(records)} targets")
    for col in ("target", "verdict", "wrong", "smallest failing shape", "error"):
        table.add_column(col, overflow="fold")
    colours = {"right": "green", "wrong": "red", "error": "yellow"}
    for r in records:
        v = verdict(r)
        wrong = [x["name"] for x in r.get("results", []) if x.get("status") == "WRONG"]
        dims = " ".join(f"{name}={size}" for name, size in (r.get("dims") or {}).items())
        error = r.get("error") or ""
        table.add_row(
            safe_text(r["target"]),
            f"[{colours[v]}]{v.upper()}[/{colours[v]}]",
            ", ".join(wrong),
            dims,
            safe_text(error if len(error) <= 200 else error[:200] + "..."),
        )
    out.print(table)
    right = sum(1 for r in records if r["ok"])
    out.print(f"{right} of {len(records)} right")


def _fmt(a: np.ndarray) -> str:
    return np.array2string(np.asarray(a), precision=5, suppress_small=True, max_line_width=80)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `symbptt` console script; returns the exit code."""
    try:
        args = _parser().parse_args(argv)  # before rich is imported: --help stays quick
        from rich.console import Console

        out, err = Console(), Console(stderr=True)
        commands = {
            "derive": run_derive,
            "latex": run_latex,
            "audit": run_audit,
            "check": run_check,
            "graph": run_graph,
            "contributions": run_contributions,
            "html": run_html,
        }
        return commands[args.command](args, out, err)
    except InternalError as e:
        print(f"symbptt: internal error: {e}", file=sys.stderr)
        return 3
    except SymbpttError as e:
        print(f"symbptt: error: {e}", file=sys.stderr)
        return 2
    except (RecursionError, MemoryError) as e:
        what = "memory" if isinstance(e, MemoryError) else "recursion depth"
        print(f"symbptt: error: ran out of {what} at these sizes; try a smaller T", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("symbptt: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `symbptt check ... --json | head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as e:  # a bug of ours: one line, exit 3 (SYMBPTT_DEBUG=1 shows it whole)
        if os.environ.get("SYMBPTT_DEBUG"):
            raise
        print(
            f"symbptt: internal error: {type(e).__name__}: {e} (please report it; "
            "SYMBPTT_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 3


#: True in the `symbptt` command's own process (not when main() is called from Python).
_OWN_PROCESS = False


def console_main() -> None:
    """The `symbptt` command: `main` in a process of its own, whose only children are the
    workers that run user code, so `check` adopts (and later kills) whatever they leave."""
    global _OWN_PROCESS
    _OWN_PROCESS = True
    sys.exit(main())


if __name__ == "__main__":
    console_main()
