"""The check as declared, and, when the code does not fit it, the convention search and what the
declaration says to do with what it finds."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import (
    InternalError,
    InvalidArgumentError,
    TargetError,
)
from ..models.spec import ModelSpec
from .convention import Convention
from .isolation import InProcess, Worker
from .judging import _UNDECLARED_OK
from .report import Report
from .run import (
    _load_failure,
    _run,
    _shell,
)
from .styles import Style
from .usercode import Calling
from .validation import _required


@dataclass(frozen=True)
class _Declaration:
    """What the caller declared of the code's convention, and how a different one found by
    the search is treated: "default" (nothing declared: a usage error with the command that
    fits), "flags" (declared in the call: the same), "file" (a grader's file: the verdict
    stands, the note says under which convention it would be right), "auto" (the found
    one is the verdict's)."""

    mode: str = "default"
    arrays: Convention | None = None
    model: ModelSpec | None = None
    form: str | None = None
    order: tuple | None = None
    source: str | None = None


def _declared(convention) -> _Declaration:
    if convention is None:
        return _Declaration()
    if isinstance(convention, Convention):
        return _Declaration("flags", convention)
    if isinstance(convention, str) and convention == "auto":
        return _Declaration("auto")
    if isinstance(convention, (str, Path)):
        from .conventionfile import load

        loaded = load(Path(convention))
        return _Declaration(
            "file", loaded.arrays, loaded.model, loaded.form, loaded.order, str(convention)
        )
    raise InvalidArgumentError(
        f"convention={convention!r} must be a Convention, a convention file's path or 'auto'"
    )


def _same_model(given: ModelSpec, declared: ModelSpec) -> ModelSpec:
    """The model of a convention file and the one given beside it must agree."""
    if given.describe() != declared.describe():
        from .report import describe_model

        mine = describe_model(declared.describe()) or "the vanilla RNN"
        theirs = describe_model(given.describe()) or "the vanilla RNN"
        raise InvalidArgumentError(
            f"the convention file declares {mine}, but the check was given {theirs}: drop one "
            "of them"
        )
    return declared


def _paths(path) -> tuple[str, ...]:
    if isinstance(path, (str, Path)):
        path = [path]
    out = []
    for folder in path:
        if not isinstance(folder, (str, Path)) or not Path(folder).is_dir():
            raise InvalidArgumentError(f"path={folder!r} is not a folder (--path DIR)")
        out.append(str(Path(folder).resolve()))
    return tuple(out)


def _legacy(calling: Calling) -> bool:
    """Whether the declared convention is one a plain function or a pair takes positionally
    (today's shapes); anything else is called through a plan found from the code."""
    conv = calling.arrays
    return (
        conv.weights == "fused"
        and conv.stack is None
        and not conv.split
        and conv.state is None
        and conv.sequence in ("TNF", "NTF")
    )


def _as_judged(dtype: str) -> str:
    return dtype if dtype in _UNDECLARED_OK else "float64"


def _same(a: Calling, b: Calling) -> bool:
    """Two callings that declare the same thing (model, form, arrays, order)."""
    return (
        a.model.describe() == b.model.describe()
        and a.form == b.form
        and a.arrays.settled(a.model) == b.arrays.settled(b.model)
        and tuple(a.order or ()) == tuple(b.order or ())
    )


def _fitted_check(
    judged_at,
    declared_order,
    runner,
    label,
    calling,
    checker_for,
    declared,
    settled,
    only,
    step,
    shapes,
    max_examples,
    seed,
    progress,
    deadline,
) -> Report:
    """The check as declared; when the code does not fit it, the search, and what the
    declaration says to do with what it finds."""
    from . import search as finder
    from .suggest import command, describe, toml_text

    load_error = _load_failure(runner, label)
    if load_error is not None:
        report = Report(ok=False, form=calling.form, layout=calling.layout, examples=0)
        report.model = calling.model.describe()
        report.error = load_error
        return report

    def check_under(c: Calling) -> Report:  # the whole check, under one way of calling
        return _run(
            checker_for(c, _needed(c, settled.only)), label, shapes, max_examples, seed, progress
        )

    searchable = settled.adapter is None and isinstance(runner, Worker | InProcess)
    objects = getattr(runner, "objects", []) or []
    targets = 2 if settled.shape != "function" else 1
    labels = [o.get("name", "") for o in objects]
    files = _source_files(runner)
    kind = objects[0].get("kind") if objects else "function"
    named_method = any("." in name for _, name in getattr(runner, "sources", []) or [])
    plan_needed = searchable and (kind == "class" or named_method or not _legacy(calling))
    usage: TargetError | None = None
    report: Report | None = None
    if plan_needed and declared.mode != "auto":
        try:
            calling = finder.resolve(
                runner,
                labels,
                files,
                calling.model,
                calling.form,
                calling.arrays,
                order=tuple(declared_order) if declared_order else None,
                step=step,
                deadline=time.monotonic() + 30.0,
                seed=seed,
                targets=targets,
            )
        except finder.Unresolved as exc:
            usage = TargetError(f"{label}: {exc}")
            calling = None
    if calling is not None and declared.mode != "auto":
        try:
            report = check_under(calling)
        except TargetError as exc:
            if exc.suggestion:  # set up differently: the fix is known already
                raise
            usage = exc
        if report is not None and report.ok:
            return report
        if report is not None and (
            report.out_of_time
            or report.inconsistent
            or report.overflow
            or getattr(report, "_probe_wrong", False)  # right on ordinary inputs: no search
        ):
            return report
    if not searchable or time.monotonic() > deadline:
        if usage is not None:
            raise usage
        return report
    try:
        found = finder.search(
            runner,
            labels,
            files,
            _search_model(calling, settled),
            None if calling is None else calling.form if declared.mode == "file" else None,
            deadline=min(deadline, time.monotonic() + 60.0),
            seed=seed,
            targets=targets,
            tolerances=judged_at,
        )
    except (InternalError, KeyboardInterrupt):
        raise
    except Exception as exc:  # the search is help; a failure of it never hides the verdict
        if os.environ.get("SYMBPTT_DEBUG"):
            raise
        found = finder.Found(None, False, 0, [f"{type(exc).__name__}: {exc}"])
    best = found.best.calling if found.best is not None else None
    if found.fits and best is not None and calling is not None and _same(best, calling):
        found = replace(found, fits=False)  # as declared: the failure is not a convention's
    if found.fits and best is not None:
        argv = command(label, best)
        suggestion = {"argv": argv, "toml": toml_text(best), "convention": describe(best)}
        if declared.mode == "auto":
            report = check_under(best)
            report.notes.append(
                f"checked under the convention the search found ({describe(best)}); declare "
                f"it with: symbptt {_shell(argv)}"
            )
            report.suggestion = suggestion
            return report
        if declared.mode == "file" and report is not None:
            report.notes.append(
                f"it would be right under another convention than {declared.source} declares: "
                f"{describe(best)} (symbptt {_shell(argv)})"
            )
            report.suggestion = suggestion
            return report
        raise TargetError(
            f"{label} is right as {describe(best)}, and fails as declared: check it with: "
            f"symbptt {_shell(argv)}",
            suggestion,
        )
    closest = found.best
    if declared.mode == "file":  # a grader's convention: the verdict is its own
        if usage is not None:
            raise usage
        return report
    failed_to_run = usage is not None or report is None or bool(report.error)
    better = (
        closest is not None
        and closest.judged
        and not (calling is not None and _same(closest.calling, calling))
        and (failed_to_run or closest.right > _right(report))
    )
    if better:
        report = check_under(closest.calling)
        report.convention = describe(closest.calling)
        if report.ok:  # the search saw it wrong under this convention: a failure seen once
            report.ok = False
            report.inconsistent = True
            report.error = report.error or (
                "it failed as declared and under every convention tried, then was right: the "
                "function is inconsistent"
            )
        report.notes.append(
            f"no convention makes it right; judged under the closest one found "
            f"({closest.right} of {closest.judged} arrays right on the first problem): "
            f"{describe(closest.calling)}; declare it with: symbptt "
            f"{_shell(command(label, closest.calling))}"
        )
        return report
    if usage is not None:
        raise usage
    return report


def _source_files(runner) -> list[Path]:
    """The files the code was written in (read for facts, never run here)."""
    sources = getattr(runner, "sources", None)
    if sources:
        return [Path(p) for p, _ in sources]
    import inspect

    fn = getattr(runner, "fn", None)
    out = []
    for f in fn if isinstance(fn, tuple) else [fn]:
        try:
            where = inspect.getsourcefile(inspect.unwrap(f))
        except Exception:
            where = None
        if where and Path(where).is_file():
            out.append(Path(where))
    return out


def _right(report: Report) -> int:
    return sum(1 for r in report.results if r.status == "OK")


def _needed(calling: Calling, only) -> tuple[str, ...]:
    """The values a calling's check requires: every gradient its plan returns (and the loss),
    or those declared."""
    if only is not None:
        return _required(calling, only)
    if calling.plan is None:
        return _required(calling, None)
    every = [p for p in calling.gradients if p in calling.plan.grads]
    return (*every, *(["loss"] if calling.form == "full" and calling.plan.loss else []))


def _search_model(calling: Calling | None, settled: Style) -> ModelSpec:
    return calling.model if calling is not None else settled.model
