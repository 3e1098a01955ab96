"""What every command shares: argument types, the model options and the model they name,
progress on stderr, and writing output files."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from rich.console import Console

from ..engine.cost import PATH_T
from ..errors import (
    InvalidArgumentError,
    SymbpttError,
    UnknownNameError,
)
from ..models.dims import Dims

OWN_PROCESS = False  #: True in the `symbptt` command's own process (console_main)

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
    from ..models.spec import ACTIVATIONS, MODEL_OPTIONS, REDUCTIONS

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


#: The built-ins' defaults: any other value of these options is refused for a model file.
_DEFAULTS = {
    "no_bias": [],
    "h0": "input",
    "inputs": "dense",
    "activation": "tanh",
    "reduction": "sum",
    "truncate": None,
    "gate_order": None,
    "c0": None,
    "reset": None,
}


def is_model_file(value: str) -> bool:
    """Whether --model names a model file rather than a built-in (rnn, lstm, gru)."""
    from ..models import ALIASES, MODELS

    return value not in MODELS and value not in ALIASES


def model_spec(args: argparse.Namespace):
    """The model variant the command line asked for (one sentence for an impossible one); a
    model file is read, and its derivatives checked, before anything else."""
    from ..models import model_named
    from ..models.spec import MODEL_OPTIONS

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

    from ..engine.trust import ensure_trusted
    from ..models import filespec

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
    from ..formula.ast import Binary, Index, Name, Step
    from ..models.modelfile import _walk

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
    from ..errors import DimensionError

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


def _write_output(path, data: str | bytes, force: bool) -> None:
    """Write a file atomically, never replacing one without --force; one sentence on failure."""
    from ..derivation.output import write_new

    try:
        write_new(path, data, force=force)
    except OSError as exc:
        raise _UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def _output_path(args: argparse.Namespace, formats: tuple[str, ...]):
    """-o FILE checked before any work: its format (from --format or the suffix), and no
    surprise overwrite."""

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


def _fmt(a: np.ndarray) -> str:
    return np.array2string(np.asarray(a), precision=5, suppress_small=True, max_line_width=80)


def _max_rel_error(a: np.ndarray, b: np.ndarray) -> float:
    scale = max(float(np.max(np.abs(b), initial=0.0)), 1e-300)
    return float(np.max(np.abs(a - b), initial=0.0)) / scale
