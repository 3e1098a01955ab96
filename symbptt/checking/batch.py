"""Checking many submissions in one run, for a course: targets, parallel jobs, a grade book.

Each target is checked exactly as `check_gradients("file.py:function", ...)` checks one: its
code runs in its own worker process, so one submission's hang or crash costs that submission
its verdict and nothing else. With `jobs > 1` the checks run in a pool of checker processes
(`symbptt.checking.pool`: JSON lines over pipes, never pickle, under a wall-clock watchdog),
each of which keeps its compiled truths warm across the submissions it is given. The grade
book is strict JSON lines or CSV (cells a spreadsheet would read as a formula quoted), written
atomically.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import io
import os
import signal
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import InternalError, TargetError
from .pool import Interrupted, run_pool
from .report import describe_model

__all__ = [
    "expand_targets",
    "check_targets",
    "check_one",
    "failed_record",
    "interrupted_record",
    "csv_table",
    "json_lines",
    "write_book",
    "verdict",
    "BatchInterrupted",
]

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
    could not be imported, or the check ran out of time); "interrupted" (the command was
    stopped before this target's check finished)."""
    if record.get("interrupted"):
        return "interrupted"
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


class BatchInterrupted(Exception):
    """SIGINT or SIGTERM stopped a batch: `records` has every target's row, those not finished
    marked interrupted; `signum` is the signal. Every checker process is dead when it is
    raised."""

    def __init__(self, records: list[dict], signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.records, self.signum = records, signum


def check_targets(
    targets: Sequence[str],
    options: dict,
    *,
    jobs: int = 1,
    on_result: Callable[[int, dict], None] | None = None,
    processes: bool | None = None,
) -> list[dict]:
    """Check every target; records in the order of targets.

    With `processes` (default: when jobs > 1 and there is more than one target) the checks run
    in `jobs` checker processes started here that speak JSON lines (`symbptt.checking.pool`),
    under a watchdog that gives each target `total_timeout` seconds of wall-clock time;
    otherwise one after the other in this process. SIGINT or SIGTERM during a pool's run
    raise BatchInterrupted with the rows so far.
    """
    if processes is None:
        processes = jobs > 1 and len(targets) > 1
    records: dict[int, dict] = {}
    if processes:
        results = run_pool(targets, options, jobs, failed_record)
    else:
        results = ((i, check_one(t, options)) for i, t in enumerate(targets))
    try:
        with contextlib.closing(results):
            for index, record in results:
                records[index] = record
                if on_result:
                    on_result(len(records), record)
    except (Interrupted, KeyboardInterrupt) as exc:
        if not processes:
            raise
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        rows = [records.get(i) or interrupted_record(t) for i, t in enumerate(targets)]
        raise BatchInterrupted(rows, int(signum)) from None
    return [records[i] for i in range(len(targets))]


def interrupted_record(target: str) -> dict:
    """The row of a target whose check the command's interruption stopped."""
    record = failed_record(target, "interrupted")
    record["interrupted"] = True
    return record


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


#: A spreadsheet reads a cell starting with one of these as a formula.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(text: str) -> str:
    """A CSV cell a spreadsheet shows as text: one starting like a formula gets a quote; a
    carriage return becomes a line feed, which the writer quotes (it would not quote a lone
    CR, which readers take for the end of a row); other control characters are written as
    `\\xNN`."""
    text = "'" + text if text.startswith(_FORMULA_STARTS) else text
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # Terminal escapes (a submission's error message) shown, not obeyed by `cat grades.csv`.
    return "".join(c if c.isprintable() or c in "\t\n" else f"\\x{ord(c):02x}" for c in text)


def csv_table(records: Sequence[dict]) -> str:
    """A CSV grade book: a header row, then one row per target."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in records:
        wrong = [str(x.get("name")) for x in r.get("results", []) if x.get("status") == "WRONG"]
        dims = r.get("dims") or {}
        row = [
            str(r["target"]),
            verdict(r),
            "true" if r.get("ok") else "false",
            " ".join(wrong),
            " ".join(f"{k}={v}" for k, v in dims.items()),
            "true" if r.get("inconsistent") else "false",
            describe_model(r.get("model")) or "vanilla RNN",
            str(r.get("error") or "").replace("\n", " "),
        ]
        writer.writerow([_cell(cell) for cell in row])
    return buffer.getvalue()


def json_lines(records: Sequence[dict]) -> str:
    """One line of strict JSON per record (non-finite numbers as "inf", "-inf", "nan")."""
    from .pool import strict_json

    return "".join(strict_json(r) + "\n" for r in records)


#: The grade book's formats, by the file's suffix.
BOOK_FORMATS = {".csv": "csv", ".jsonl": "json", ".json": "json"}


def book_format(path: str | Path) -> str | None:
    """ "csv" or "json" for a grade book's path, None for a suffix we do not write."""
    return BOOK_FORMATS.get(Path(path).suffix.lower())


def write_book(path: str | Path, records: Sequence[dict], *, force: bool = False) -> None:
    """Write the grade book atomically: a temporary file in the same folder, flushed to disk,
    then renamed into place (os.replace with force; otherwise linked, which fails with
    FileExistsError if the path appeared meanwhile). Readers see the whole book or none."""
    path = Path(path)
    kind = book_format(path)
    if kind is None:
        raise ValueError(f"{path}: a grade book ends in .csv, .jsonl or .json")
    text = csv_table(records) if kind == "csv" else json_lines(records)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if force:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)
            os.unlink(temporary)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    with contextlib.suppress(OSError):  # the rename itself, on disk
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
