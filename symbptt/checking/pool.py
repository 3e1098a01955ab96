"""A pool of checker processes that speaks JSON lines over its own pipes, never pickle.

The command (the parent) starts each checker child itself (`python -P -m
symbptt.checking.pool REQUESTS RESPONSES PARENT`), in a session of its own, and talks to it
over two pipes: one request line `{"id", "target", "options"}` in, one response line
`{"id", "record"}` out, both plain JSON. A checker child checks one target at a time exactly
as `check_gradients("file.py:fn")` does (the submission's code runs in a worker process that
the child starts), and keeps its compiled truths warm across the targets it is given.

The parent trusts nothing a child sends: a reply is parsed strictly (no NaN or Infinity, at
most `MAX_RECORD` bytes, the request's id, a record of the expected shape) and anything else
costs that target its row (an error, never a verdict). A watchdog in the parent gives each
target `total_timeout` seconds (plus a small grace for the checker to report) of wall-clock
time, whatever the child does (stopped, silent, dead): then the child and everything it
started are killed, the row is an error, and a fresh child takes the remaining targets.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import InvalidArgumentError

__all__ = [
    "MAX_RECORD",
    "Interrupted",
    "encode_options",
    "decode_options",
    "strict_json",
    "finite",
    "run_pool",
]

#: The largest reply line accepted from a checker child (a report is a few kilobytes).
MAX_RECORD = 8 * 2**20
#: Seconds a checker child may take to start (import NumPy, SymPy, the checker).
START_TIMEOUT = 60.0
#: Seconds past a target's total_timeout the checker has to send its own verdict.
GRACE = 3.0
#: The message of a row whose checker was killed by the watchdog.
TIMEOUT_MESSAGE = "the check did not finish within {seconds:g} s (total_timeout, --total-timeout)"
DIED_MESSAGE = "internal error: the checker process died"
MALFORMED_MESSAGE = "internal error: the checker process sent a malformed record ({why})"


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived while the pool ran (the children are dead when it is raised)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# -- plain data ------------------------------------------------------------------------------
def finite(value: Any) -> Any:
    """The same data with every non-finite float as a string ("inf", "-inf", "nan"), so that
    it is strict JSON; tuples become lists."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    try:  # a NumPy scalar
        import numpy as np

        if isinstance(value, np.generic):
            return finite(value.item())
    except ImportError:  # pragma: no cover
        pass
    return str(value)


def strict_json(record: Any) -> str:
    """One line of strict JSON (no NaN, no Infinity: non-finite numbers as strings)."""
    return json.dumps(finite(record), allow_nan=False)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_strict(line: bytes) -> Any:
    """A JSON value from untrusted bytes: UTF-8, no NaN/Infinity, no duplicate keys."""

    def pairs(items: list[tuple[str, Any]]) -> dict:
        out = dict(items)
        if len(out) != len(items):
            raise ValueError("a duplicate key")
        return out

    return json.loads(line.decode("utf-8"), parse_constant=_no_constant, object_pairs_hook=pairs)


def encode_options(options: Mapping[str, Any]) -> dict:
    """check_gradients' keyword options as plain JSON data (InvalidArgumentError for a value
    that has no plain form, e.g. a callable or a Hypothesis strategy)."""
    return {str(k): _encode(v, k) for k, v in options.items()}


def _encode(value: Any, where: str) -> Any:
    from ..models.spec import ModelSpec
    from .convention import Convention
    from .judging import Tolerance

    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgumentError(f"{where}={value!r} is not a finite number")
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Tolerance):
        return {"$tolerance": [value.rtol, value.floor]}
    if isinstance(value, Convention):
        return {"$convention": value.as_dict()}
    if isinstance(value, ModelSpec):
        if value.from_file:
            d = value.definition
            return {"$model_text": d.text, "name": value.name, "convention": d.convention}
        return {"$model": value.name, "options": value.options.as_dict()}
    if isinstance(value, Mapping):
        return {"$dict": [[_encode(k, where), _encode(v, where)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return [_encode(v, where) for v in value]
    raise InvalidArgumentError(
        f"the option {where}={type(value).__name__} cannot be sent to a checker process "
        "(plain data only)"
    )


def decode_options(data: Mapping[str, Any]) -> dict:
    """The inverse of encode_options."""
    return {k: _decode(v) for k, v in data.items()}


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_decode(v) for v in value)
    if not isinstance(value, dict):
        return value
    if "$tolerance" in value:
        from .judging import Tolerance

        rtol, floor = value["$tolerance"]
        return Tolerance(rtol=rtol, floor=floor)
    if "$convention" in value:
        from .convention import Convention

        return Convention.from_dict(value["$convention"])
    if "$model" in value:
        from ..models import model_named

        return model_named(value["$model"]).variant(**value["options"])
    if "$model_text" in value:
        from ..engine.trust import ensure_trusted
        from ..models.filespec import from_text

        spec = from_text(value["$model_text"], name=value["name"], convention=value["convention"])
        ensure_trusted(spec)
        return spec
    if "$dict" in value:
        return {_decode(k): _decode(v) for k, v in value["$dict"]}
    raise ValueError(f"unknown encoded value {sorted(value)}")


# -- the checker child -----------------------------------------------------------------------
def child_main(argv: Sequence[str]) -> int:
    """A checker child: answer request lines until the parent closes the pipe."""
    requests, responses, parent = int(argv[0]), int(argv[1]), int(argv[2])
    from . import worker
    from .batch import check_one, failed_record
    from .isolation import adopt_orphans

    worker.die_with_parent(parent)  # the command killed outright: so are we
    adopt_orphans()  # what a worker leaves is ours to kill
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    import symbptt.checking.check  # noqa: F401 (warm: imported before we say ready)

    out = os.fdopen(responses, "w", encoding="utf-8", buffering=1)
    out.write(json.dumps({"ready": True}) + "\n")
    decoded: dict[str, dict] = {}  # options by their JSON text: truths stay warm across targets
    with os.fdopen(requests, "rb") as lines:
        for line in lines:
            message = parse_strict(line)
            target = message["target"]
            key = json.dumps(message["options"], sort_keys=True)
            try:
                if key not in decoded:
                    decoded[key] = decode_options(message["options"])
                record = check_one(target, decoded[key])
            except Exception as exc:  # our bug: one row, not a dead checker
                record = failed_record(target, f"internal error: {type(exc).__name__}: {exc}")
            out.write(strict_json({"id": message["id"], "record": record}) + "\n")
    return 0


# -- the parent ------------------------------------------------------------------------------
def _processes() -> dict[int, int]:
    """pid -> parent pid of every process we can see (empty off Linux)."""
    table = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return table
    for entry in entries:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as stat:
                    table[int(entry)] = int(stat.read().rpartition(b")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    return table


def _descendants(root: int) -> set[int]:
    table = _processes()
    children: dict[int, list[int]] = {}
    for pid, ppid in table.items():
        children.setdefault(ppid, []).append(pid)
    found, stack = set(), [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def _signal_all(pids: set[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


class _Checker:
    """One checker child, its pipes and the target it is checking."""

    def __init__(self, options_wire: dict) -> None:
        req_r, req_w = os.pipe()
        res_r, res_w = os.pipe()
        flags = ["-P"] if sys.version_info >= (3, 11) else []
        debug = bool(os.environ.get("SYMBPTT_DEBUG"))
        try:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    *flags,
                    "-m",
                    "symbptt.checking.pool",
                    str(req_r),
                    str(res_w),
                    str(os.getpid()),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=None if debug else subprocess.DEVNULL,
                pass_fds=(req_r, res_w),
                start_new_session=True,
                env={**os.environ, "PYTHONPATH": _pythonpath()},
            )
        finally:
            os.close(req_r)
            os.close(res_w)
        self.pid = self.process.pid
        self.requests, self.responses = req_w, res_r
        os.set_blocking(req_w, False)  # a child that stops reading cannot block us
        os.set_blocking(res_r, False)
        self.buffer = bytearray()
        self.ready = False
        self.deadline = time.monotonic() + START_TIMEOUT
        self.item: tuple[int, str, str] | None = None  # (index, target, request id)
        self.options_wire = options_wire

    def send(self, index: int, target: str, seconds: float) -> None:
        request_id = secrets.token_hex(16)
        line = json.dumps(
            {"id": request_id, "target": target, "options": self.options_wire}, allow_nan=False
        )
        self.item = (index, target, request_id)
        self.deadline = time.monotonic() + seconds + GRACE
        os.write(self.requests, line.encode() + b"\n")  # small: fits the pipe's buffer

    def kill(self) -> None:
        """Kill the child and everything it started: freeze the whole tree (so that nothing
        forks while we look), a few rounds, then SIGKILL it all and reap the child."""
        try:
            os.killpg(self.pid, signal.SIGSTOP)
        except (ProcessLookupError, PermissionError):
            pass
        seen: set[int] = {self.pid}
        for _ in range(50):
            tree = _descendants(self.pid) - seen
            if not tree:
                break
            _signal_all(tree, signal.SIGSTOP)
            seen |= tree
        for pid in seen:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        _signal_all(seen, signal.SIGKILL)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover (SIGKILL is not refused)
            pass
        for fd in (self.requests, self.responses):
            try:
                os.close(fd)
            except OSError:
                pass
        self.requests = self.responses = -1


def _pythonpath() -> str:
    """The child imports the same symbptt as this process (and whatever PYTHONPATH had)."""
    here = str(Path(__file__).resolve().parents[2])
    rest = os.environ.get("PYTHONPATH", "")
    return here + (os.pathsep + rest if rest else "")


def _check_reply(line: bytes, item: tuple[int, str, str]) -> dict:
    """The record of a reply line, or ValueError saying what is wrong with it."""
    try:
        message = parse_strict(line)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"not strict JSON: {exc}") from None
    if not isinstance(message, dict) or set(message) != {"id", "record"}:
        raise ValueError("not a reply")
    if message["id"] != item[2]:
        raise ValueError("the wrong request id")
    record = message["record"]
    if not isinstance(record, dict) or record.get("target") != item[1]:
        raise ValueError("not this target's record")
    if not isinstance(record.get("ok"), bool) or not isinstance(record.get("results"), list):
        raise ValueError("a record without ok or results")
    if not all(isinstance(r, dict) for r in record["results"]):
        raise ValueError("a result that is not an object")
    if record.get("error") is not None and not isinstance(record["error"], str):
        raise ValueError("an error that is not text")
    return record


def run_pool(
    targets: Sequence[str],
    options: Mapping[str, Any],
    jobs: int,
    failed: Callable[[str, str], dict],
) -> Iterator[tuple[int, dict]]:
    """(index, record) for every target, as checker children finish them.

    SIGINT and SIGTERM (in the main thread) kill every child and raise Interrupted; the
    children are dead whenever this generator returns or raises.
    """
    wire = encode_options(options)
    seconds = float(options.get("total_timeout", 300.0))
    pending = list(enumerate(targets))[::-1]  # popped from the end: in order
    checkers: list[_Checker] = []
    selector = selectors.DefaultSelector()
    previous = _trap_signals()
    try:
        for _ in range(min(jobs, len(pending))):
            checkers.append(_Checker(wire))
        for c in checkers:
            selector.register(c.responses, selectors.EVENT_READ, c)
        outstanding = len(pending)
        while outstanding:
            for c in checkers:  # idle and ready: give it the next target
                if c.ready and c.item is None and pending:
                    index, target = pending.pop()
                    try:
                        c.send(index, target, seconds)
                    except OSError:
                        pass  # dead: found below, at its EOF
            now = time.monotonic()
            wait = max(0.0, min(c.deadline for c in checkers) - now) if checkers else 0.1
            events = selector.select(timeout=min(wait, 1.0))
            finished: list[tuple[_Checker, str | None, dict | None]] = []
            for key, _ in events:
                c = key.data
                try:
                    chunk = os.read(c.responses, 65536)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if not chunk:
                    finished.append((c, DIED_MESSAGE, None))
                    continue
                c.buffer += chunk
                if b"\n" not in c.buffer:
                    if len(c.buffer) > MAX_RECORD:
                        why = f"more than {MAX_RECORD} bytes"
                        finished.append((c, MALFORMED_MESSAGE.format(why=why), None))
                    continue
                line, _, rest = bytes(c.buffer).partition(b"\n")
                if len(line) > MAX_RECORD:
                    why = f"more than {MAX_RECORD} bytes"
                    finished.append((c, MALFORMED_MESSAGE.format(why=why), None))
                    continue
                c.buffer = bytearray(rest)
                if not c.ready:
                    if line == b'{"ready": true}' and not rest:
                        c.ready, c.deadline = True, math.inf
                    else:
                        finished.append((c, MALFORMED_MESSAGE.format(why="not ready"), None))
                    continue
                if c.item is None or rest:  # unasked for, or more than one line: a forgery
                    why = "a line nobody asked for"
                    finished.append((c, MALFORMED_MESSAGE.format(why=why), None))
                    continue
                try:
                    record = _check_reply(line, c.item)
                except ValueError as exc:
                    finished.append((c, MALFORMED_MESSAGE.format(why=exc), None))
                    continue
                finished.append((c, None, record))
            now = time.monotonic()
            for c in checkers:
                if now >= c.deadline and all(c is not f[0] for f in finished):
                    if c.item is None:
                        message = "internal error: the checker process did not start"
                    else:
                        message = TIMEOUT_MESSAGE.format(seconds=seconds)
                    finished.append((c, message, None))
            for c, message, record in finished:
                if record is not None:
                    index = c.item[0]
                    c.item, c.deadline = None, math.inf
                    outstanding -= 1
                    yield index, record
                    continue
                selector.unregister(c.responses)  # a broken checker: killed, replaced
                c.kill()
                checkers.remove(c)
                _reap_adopted({x.pid for x in checkers})
                if c.item is not None:
                    outstanding -= 1
                    yield c.item[0], failed(c.item[1], message)
                elif not c.ready and not any(x.ready for x in checkers) and pending:
                    # no checker starts at all: every remaining target says why
                    while pending:
                        index, target = pending.pop()
                        outstanding -= 1
                        yield index, failed(target, message)
                if pending:
                    fresh = _Checker(wire)
                    checkers.append(fresh)
                    selector.register(fresh.responses, selectors.EVENT_READ, fresh)
    finally:
        for signum in previous or {}:  # a second signal must not stop the cleanup
            signal.signal(signum, signal.SIG_IGN)
        for c in checkers:
            c.kill()
        selector.close()
        _reap_adopted(set())
        _restore_signals(previous)


def _reap_adopted(live: set[int]) -> None:
    """In the command's own process (a subreaper, see `isolation.adopt_orphans`), kill and reap
    whatever a killed checker's tree left to us: every child that is not a live checker."""
    from . import isolation

    if not isolation._ADOPTING:
        return
    me = os.getpid()
    for _ in range(5):
        orphans = {pid for pid, ppid in _processes().items() if ppid == me} - live
        if not orphans:
            return
        for pid in orphans:
            _signal_all(_descendants(pid) | {pid}, signal.SIGKILL)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


def _trap_signals() -> dict | None:
    """SIGINT and SIGTERM raise Interrupted while the pool runs (main thread only)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, _raise_interrupted)
    return previous


def _restore_signals(previous: dict | None) -> None:
    for signum, handler in (previous or {}).items():
        signal.signal(signum, handler)


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
