"""Checking many submissions in one run, for a course: targets, parallel jobs, a grade book.

Each target is checked exactly as `check_gradients("file.py:function", ...)` checks one: its
code runs in its own worker process, so one submission's hang or crash costs that submission
its verdict and nothing else. With `jobs > 1` the checks run in a pool of checker processes,
each of which keeps its compiled truths warm across the submissions it is given.
"""

from __future__ import annotations

import csv
import glob
import io
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from ..errors import InternalError, TargetError
from .report import describe_model

__all__ = ["expand_targets", "check_targets", "check_one", "failed_record", "csv_table", "verdict"]

_GLOB_CHARS = frozenset("*?[")


def expand_targets(patterns: Sequence[str]) -> list[str]:
    """`path:function` targets, with glob patterns in the path part expanded (sorted).

    Raises TargetError for a pattern without `:function` or one that matches no file.
    """
    targets: list[str] = []
    for pattern in patterns:
        path, sep, function = pattern.rpartition(":")
        if not sep or not path or not function:
            raise TargetError(f"{pattern!r} is not of the form path/to/file.py:function")
        if _GLOB_CHARS & set(path):
            matches = sorted(glob.glob(path, recursive=True))
            if not matches:
                raise TargetError(f"no file matches {path!r} (from {pattern!r})")
            targets += [f"{m}:{function}" for m in matches]
        else:
            targets.append(pattern)
    return list(dict.fromkeys(targets))


def verdict(record: dict) -> str:
    """ "right", "wrong" (a gradient or the loss is wrong or missing), "overflow" (right on
    ordinary inputs, NaN or inf on saturated ones) or "error" (the code raised, hung, crashed,
    could not be imported, or the check ran out of time)."""
    if record.get("ok"):
        return "right"
    if record.get("error"):
        return "error"
    wrong = any(r.get("status") == "WRONG" for r in record.get("results", []))
    return "overflow" if record.get("overflow") and not wrong else "wrong"


def check_one(target: str, options: dict) -> dict:
    """One target's report as a JSON-ready dict; a bad target, or a failure of the checker
    itself, becomes an error record (the other targets still get theirs)."""
    from .check import check_gradients

    try:
        report = check_gradients(target, **options)
    except TargetError as exc:
        record = failed_record(target, str(exc))
        if getattr(exc, "suggestion", None):
            record["suggestion"] = exc.suggestion
        return record
    except InternalError as exc:
        return failed_record(target, f"internal error: {exc}")
    except Exception as exc:  # a bug of ours must not cost the whole class its grades
        return failed_record(target, f"internal error: {type(exc).__name__}: {exc}")
    record = report.to_dict()
    record["target"] = target
    return record


def check_targets(
    targets: Sequence[str],
    options: dict,
    *,
    jobs: int = 1,
    on_result: Callable[[int, dict], None] | None = None,
) -> list[dict]:
    """Check every target (in parallel with jobs > 1); records in the order of targets."""
    records: dict[int, dict] = {}
    for index, record in _run(targets, options, jobs):
        records[index] = record
        if on_result:
            on_result(len(records), record)
    return [records[i] for i in range(len(targets))]


def _run(targets: Sequence[str], options: dict, jobs: int) -> Iterator[tuple[int, dict]]:
    if jobs <= 1 or len(targets) == 1:
        for i, target in enumerate(targets):
            yield i, check_one(target, options)
        return
    broken = yield from _pool(list(enumerate(targets)), options, jobs)
    for index, target in broken:  # a pool broke (it never should): each alone, so that only
        again = yield from _pool([(index, target)], options, 1)  # a culprit loses its verdict
        for index, target in again:
            yield index, failed_record(target, "internal error: the checker process died")


def _pool(items: list[tuple[int, str]], options: dict, jobs: int):
    """Check items in a pool of `jobs` checker processes; return those a broken pool lost."""
    broken: list[tuple[int, str]] = []
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=context, initializer=_checker_process
    ) as pool:
        futures = {pool.submit(check_one, target, options): (i, target) for i, target in items}
        remaining = set(futures)
        while remaining:
            done, remaining = wait(remaining, return_when=FIRST_COMPLETED)
            for future in done:
                index, target = futures[future]
                try:
                    yield index, future.result()
                except BrokenProcessPool:
                    broken.append((index, target))
    return broken


def _checker_process() -> None:
    """Set up a pool process: its only children are workers, so it adopts what they leave."""
    from .isolation import adopt_orphans

    adopt_orphans()


def failed_record(target: str, message: str) -> dict:
    """The record of a target that could not be checked at all: why, in `error`."""
    return {
        "target": target,
        "ok": False,
        "error": message,
        "results": [],
        "notes": [],
        "inconsistent": False,
        "output": "",
    }


#: Columns of the grade book, in order.
CSV_COLUMNS = (
    "target",
    "verdict",
    "ok",
    "wrong",
    "smallest_failing_shape",
    "inconsistent",
    "model",
    "error",
)


def csv_table(records: Sequence[dict]) -> str:
    """A CSV grade book: a header row, then one row per target."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in records:
        wrong = [x["name"] for x in r.get("results", []) if x.get("status") == "WRONG"]
        dims = r.get("dims") or {}
        writer.writerow(
            [
                r["target"],
                verdict(r),
                "true" if r.get("ok") else "false",
                " ".join(wrong),
                " ".join(f"{k}={v}" for k, v in dims.items()),
                "true" if r.get("inconsistent") else "false",
                describe_model(r.get("model")) or "vanilla RNN",
                (r.get("error") or "").replace("\n", " "),
            ]
        )
    return buffer.getvalue()
