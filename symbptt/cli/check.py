"""`symbptt check`: user code checked on random shapes, one target or a grade book."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

from ..checking import FORMS, LAYOUTS, PRECISIONS, STYLES
from ..errors import (
    InvalidArgumentError,
    TargetError,
)
from . import common
from .common import (
    _at_least,
    _positive,
    _Progress,
    _seconds,
    _UsageError,
    _variant_arguments,
    model_spec,
)


def register(sub) -> None:
    """Add the `check` command to the command line."""
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
        help="path/to/file.py:function; file.py:forward,backward (a layer pair, also "
        "a.py:forward,b.py:backward); file.py:Class or file.py:Class.method; nb.ipynb:... "
        "(a notebook's definitions); the path may be a glob pattern (subs/*/rnn.py:f)",
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
    conv.add_argument(
        "--force",
        action="store_true",
        help="replace an existing FILE (of --write-convention and -o)",
    )
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
        "--seed",
        type=_at_least(0),
        default=None,
        help="seed of every problem drawn; default: a new one per check, printed in the report "
        "(--seed S replays that check exactly)",
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
        "--sandbox",
        choices=("auto", "required", "off"),
        default="auto",
        help="run each target's worker under bubblewrap (private /proc, read-only root, hidden "
        "home, /tmp and grader's folder, no network, a cgroup when writable): auto (when it "
        "works here; the report's isolation says which), required (a usage error when it does "
        "not), off (resource limits only); see docs/threat-model.md",
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
    k.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="FILE",
        help="also write the grade book to FILE: JSON lines (.jsonl, .json) or CSV (.csv), "
        "atomically, once every check has ended (never over an existing FILE without --force)",
    )


def _mapping(text: str) -> dict[str, str]:
    pairs = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        ours, sep, theirs = item.partition("=")
        if not sep or not ours.strip() or not theirs.strip():
            raise _UsageError(f"--names entry {item!r} is not of the form W_h=Whh")
        pairs[ours.strip()] = theirs.strip()
    return pairs


def _tolerances(items: list[str]) -> dict:
    from ..checking.check import TOLERANCES, Tolerance

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
    from ..checking.check import validate_options
    from ..checking.convention import Convention

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
        sandbox=args.sandbox,
    )
    if args.sandbox == "required":  # graders: refuse before any user code runs
        from ..checking import sandbox

        found = sandbox.probe()
        if not found.works:
            raise _UsageError(f"--sandbox required: {found.why}")
    try:  # our own options are checked before any user code runs
        checked = {k: v for k, v in options.items() if k not in ("convention", "path", "sandbox")}
        if isinstance(convention, Convention):
            checked["arrays"] = convention
        if from_file:
            from ..checking.conventionfile import load

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
    from ..checking.convention import Convention

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
    if common.OWN_PROCESS:
        from ..checking.isolation import adopt_orphans

        adopt_orphans()
    from ..checking.batch import (
        BatchInterrupted,
        book_format,
        check_targets,
        csv_table,
        expand_targets,
        json_lines,
        verdict,
    )

    options = check_options(args)
    targets = expand_targets(args.targets)
    if args.write_convention and len(targets) != 1:
        raise _UsageError(
            f"--write-convention writes one target's convention; {len(targets)} targets given"
        )
    if args.output is not None:
        _check_book_path(args.output, args.force, book_format)
    if len(targets) == 1 and not args.csv and args.output is None:
        return _check_single(targets[0], options, args, out, err)
    total = len(targets)

    from ..checking.report import safe_text

    def announce(done: int, record: dict) -> None:
        wrong = [r["name"] for r in record.get("results", []) if r.get("status") == "WRONG"]
        detail = f" ({', '.join(wrong)})" if wrong else ""
        err.print(
            f"[{done}/{total}] {safe_text(record['target'])}: {verdict(record).upper()}{detail}",
            highlight=False,
            soft_wrap=True,
        )

    interrupted = None
    try:  # in checker processes under a watchdog, even one at a time
        records = check_targets(
            targets, options, jobs=args.jobs, on_result=announce, processes=True
        )
    except BatchInterrupted as exc:
        records, interrupted = exc.records, exc.signum
        for signum in (signal.SIGINT, signal.SIGTERM):  # the book is written whatever comes
            signal.signal(signum, signal.SIG_IGN)
    # every checker process is dead here: the parent alone writes what follows
    if args.json:
        sys.stdout.write(json_lines(records))
    elif args.csv:
        sys.stdout.write(csv_table(records))
    else:
        _render_summary(records, out)
    if args.output is not None:
        _write_book(args.output, records, args.force)
        err.print(f"wrote the grade book to {safe_text(args.output)}", highlight=False)
    if interrupted is not None:
        sys.stdout.flush()
        err.print(
            f"symbptt: interrupted ({signal.Signals(interrupted).name}); "
            f"{sum(1 for r in records if not r.get('interrupted'))} of {total} checked",
            highlight=False,
        )
        return 128 + interrupted
    statuses = {exit_status(r) for r in records}
    return 1 if 1 in statuses else max(statuses)


def _check_book_path(path: str, force: bool, book_format) -> None:
    """A usage error, before any check runs, for a grade book we would not write."""
    if book_format(path) is None:
        raise _UsageError(f"-o {path}: a grade book ends in .csv, .jsonl or .json")
    where = Path(path)
    if where.is_dir():
        raise _UsageError(f"-o {path} is a folder")
    if where.exists() and not force:
        raise _UsageError(f"-o {path} exists: pass --force to replace it")
    if not where.parent.resolve().is_dir():
        raise _UsageError(f"-o {path}: no such folder {where.parent}")


def _write_book(path: str, records: list[dict], force: bool) -> None:
    from ..checking.batch import write_book

    try:
        write_book(path, records, force=force)
    except FileExistsError:
        raise _UsageError(f"-o {path} appeared meanwhile: pass --force to replace it") from None
    except OSError as exc:
        raise _UsageError(f"cannot write {path}: {exc}") from None


def _check_single(target: str, options: dict, args, out: Console, err: Console) -> int:
    from ..checking.batch import failed_record
    from ..checking.check import check_gradients
    from ..checking.pool import strict_json

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
                print(strict_json(record))
            raise
    if args.write_convention and report.toml:
        _write_convention(args, report.toml, err)
    if args.json:
        record = report.to_dict()
        record["target"] = target
        print(strict_json(record))
    else:
        report.render(out)
    return exit_status(report.to_dict())


def _write_convention(args, text: str, err: Console) -> None:
    """Save a convention file (never over an existing file without --force)."""
    from ..checking.conventionfile import save

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

    from ..checking.batch import verdict
    from ..checking.report import safe_text

    table = Table(title=f"symbptt check: {len(records)} targets")
    for col in ("target", "verdict", "wrong", "smallest failing shape", "error"):
        table.add_column(col, overflow="fold")
    colours = {
        "right": "green",
        "wrong": "red",
        "overflow": "magenta",
        "error": "yellow",
        "interrupted": "yellow",
    }
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
