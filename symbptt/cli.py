"""The `symbptt` command line: `derive` a gradient through every path, `check` user code.

Every error symbptt raises on purpose becomes one line on stderr and a non-zero exit code, never
a traceback: 2 for a usage error, 1 when a numerical check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib.util
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import reference
from .check import TOLERANCES, Tolerance, check_gradients
from .compile import compile_gradients, compile_paths
from .derivatives import derive, sum_paths
from .errors import SymbpttError
from .graph import unroll
from .model import GRADIENT_NAMES, SHARED_PARAMETERS, Dims, random_point, resolve_name
from .usercode import FORMS, LAYOUTS, Convention

__all__ = ["main"]

#: Largest T for which `derive` lists and evaluates every path (W_h has T(T+1)/2 of them).
MAX_PATH_T = 40
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


def _scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (0 < value <= 1e6):
        raise argparse.ArgumentTypeError(f"{text!r} must be a number in (0, 1e6]")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="symbptt", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    d = sub.add_parser(
        "derive",
        help="derive dL/dθ through every path of the unrolled graph and check it numerically",
    )
    for dim, default in (("T", 3), ("N", 2), ("D", 2), ("H", 2), ("C", 3)):
        d.add_argument(f"--{dim}", type=_whole, default=default, help=f"default {default}")
    d.add_argument("--wrt", default="W_h", help=f"one of {', '.join(GRADIENT_NAMES)}")
    d.add_argument("--seed", type=_at_least(0), default=0, help="seed of the random point")
    d.add_argument("--scale", type=_scale, default=1.0, help="scale of V and c (logit size)")
    d.add_argument("--json", action="store_true", help="print one JSON object instead")
    k = sub.add_parser(
        "check",
        help="check a hand-written BPTT function on random shapes and say what is wrong",
    )
    k.add_argument("target", help="path/to/file.py:function")
    k.add_argument("--form", choices=FORMS, default="full")
    k.add_argument("--layout", choices=LAYOUTS, default="row")
    k.add_argument("--batch-first", action="store_true", help="x is (N, T, D), y is (N, T)")
    k.add_argument("--names", default="", help="your names, e.g. W_h=Whh,W_x=Wxh,V=Why")
    k.add_argument("--order", default="", help="order of a returned gradient tuple, e.g. W_x,W_h")
    k.add_argument("--examples", type=_at_least(1), default=100, help="random problems to try")
    k.add_argument("--seed", type=_at_least(0), default=0)
    k.add_argument(
        "--tolerance",
        action="append",
        default=[],
        metavar="DTYPE=RTOL",
        help="relative tolerance for code computing in DTYPE, e.g. float32=1e-3 (repeatable)",
    )
    k.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def _progress(console: Console):
    """A transient progress bar on a terminal; nothing at all when stderr is a pipe or file."""
    if not console.is_terminal:
        return contextlib.nullcontext(), None
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    tasks: dict[str, int] = {}

    def report(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    return bar, report


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
    return 0 if record["agrees"] else 1


def derive_and_check(args: argparse.Namespace, err: Console) -> dict:
    """Every number `derive` shows, checked, as one JSON-ready record."""
    dims = Dims(N=args.N, D=args.D, H=args.H, C=args.C, T=args.T)
    wrt = resolve_name(args.wrt)
    started = time.perf_counter()
    bar, report = _progress(err)
    with bar:
        graph = unroll(dims, progress=report)
        derivation = derive(graph, progress=report)
        gradients = compile_gradients(derivation, [wrt], partials=True)
    arrays = random_point(dims, seed=args.seed, scale=args.scale)
    symbolic = gradients(arrays)
    loss_ref, grads_ref = reference.forward_backward_dict(arrays)
    total = symbolic[wrt]
    shared = wrt in SHARED_PARAMETERS
    partials = {k: symbolic[f"{wrt}^({k})"] for k in range(1, dims.T + 1)} if shared else {}
    errors = {
        "symbolic_vs_bptt": _max_rel_error(total, grads_ref[wrt]),
        "loss_vs_bptt": abs(float(symbolic["loss"]) - loss_ref) / max(abs(loss_ref), 1e-300),
    }
    if partials:
        errors["partials_sum_vs_total"] = _max_rel_error(sum(partials.values()), total)
    paths = None
    if dims.T <= MAX_PATH_T:
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
    return {
        "dims": dims.as_dict(),
        "wrt": wrt,
        "seed": args.seed,
        "arrays": {k: np.asarray(v).tolist() for k, v in arrays.items()},
        "loss": float(symbolic["loss"]),
        "path_count": derivation.path_count(wrt),
        "paths": paths,
        "partials": {str(k): v.tolist() for k, v in partials.items()},
        "total": total.tolist(),
        "bptt_total": grads_ref[wrt].tolist(),
        "max_relative_errors": errors,
        "agrees": all(e <= RTOL for e in errors.values()),
        "seconds": time.perf_counter() - started,
        "graph_nodes": len(graph),
    }


def _render_derivation(record: dict, out: Console) -> None:
    d, wrt = record["dims"], record["wrt"]
    out.print(
        f"[bold]dL/d{wrt}[/bold] for N={d['N']} D={d['D']} H={d['H']} C={d['C']} T={d['T']}: "
        f"{record['path_count']} paths through the unrolled graph ({record['graph_nodes']} nodes, "
        f"{record['seconds']:.2f} s)"
    )
    if record["paths"] is not None:
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
    else:
        out.print(f"(paths are listed for T <= {MAX_PATH_T}; use a smaller T to see each one)")
    if record["partials"] and record["paths"] is not None:
        out.print("partial derivatives (the use at step k only, every other use held fixed):")
        for k, partial in record["partials"].items():
            out.print(f"  dL/d{wrt}^({k}) = {_fmt(partial)}")
    out.print(f"total derivative dL/d{wrt} = {_fmt(record['total'])}")
    out.print(f"NumPy BPTT        dL/d{wrt} = {_fmt(record['bptt_total'])}")
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


def _tolerances(items: list[str]) -> dict[str, Tolerance]:
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


def run_check(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Load the user's function, check it, print the report; 0 right, 1 wrong."""
    options = dict(
        form=args.form,
        layout=args.layout,
        batch_first=args.batch_first,
        names=_mapping(args.names),
        order=[n.strip() for n in args.order.split(",") if n.strip()] or None,
    )
    try:
        Convention(**options)  # our own options are checked before any user code runs
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    tolerances = _tolerances(args.tolerance)
    bar, report_progress = _progress(err)
    with _user_code(args.target), bar:
        fn = load_function(args.target)
        tick = None
        if report_progress:
            tick = lambda done, total: report_progress("examples", done, total)  # noqa: E731
        report = check_gradients(
            fn,
            **options,
            max_examples=args.examples,
            seed=args.seed,
            tolerances=tolerances,
            progress=tick,
        )
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        report.render(out)
    return 0 if report.ok else 1


@contextlib.contextmanager
def _user_code(target: str):
    """While user code runs: its folder importable, its prints kept off our stdout."""
    folder = str(Path(target.rpartition(":")[0] or ".").resolve().parent)
    sys.path.insert(0, folder)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.path.remove(folder)


def load_function(target: str) -> Callable:
    """Import `path/to/file.py:function` without touching the user's files."""
    path_text, sep, name = target.rpartition(":")
    if not sep or not path_text or not name:
        raise _UsageError(f"{target!r} is not of the form path/to/file.py:function")
    path = Path(path_text)
    if not path.is_file():
        raise _UsageError(f"no such file: {path_text}")
    spec = importlib.util.spec_from_file_location(f"_symbptt_user_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise _UsageError(f"{path_text} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look their module up here
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        sys.modules.pop(spec.name, None)
        where = ""
        if isinstance(exc, SyntaxError):
            where = f" (line {exc.lineno})"
        raise _UsageError(
            f"could not import {path_text}: {type(exc).__name__}: {exc}{where}"
        ) from None
    fn = getattr(module, name, None)
    if fn is None:
        found = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        close = difflib.get_close_matches(name, found, n=2)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise _UsageError(f"{path_text} has no function {name!r}{hint}")
    if not callable(fn):
        raise _UsageError(f"{path_text}:{name} is not callable")
    return fn


def _fmt(a: np.ndarray) -> str:
    return np.array2string(np.asarray(a), precision=5, suppress_small=True, max_line_width=80)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `symbptt` console script; returns the exit code."""
    out, err = Console(), Console(stderr=True)
    try:
        args = _parser().parse_args(argv)
        return {"derive": run_derive, "check": run_check}[args.command](args, out, err)
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


if __name__ == "__main__":
    sys.exit(main())
