"""Running a user's code in a worker process, with a time and a memory limit.

The checker does not run a user's function in its own process (unless asked to, with
`isolate=False` and `InProcess`, to debug it): a submission could hang it, end it
with exit status 0, patch NumPy or the checker, shadow a module, keep it alive with a thread or
write into its JSON. A `Worker` is one child process, started once per check and reused for
every call, restarted after a crash. A `target` ("file.py:function") is imported in a fresh
interpreter that has imported nothing but NumPy; a Python callable is run in a forked copy of
this process. Either way the child's stdout and stderr (and its children's) are captured here,
its current directory is a temporary folder, and every call has a deadline after which the
child's whole process group is killed. What comes back is plain data (see
`symbptt.checking.worker`).

On Linux a target's interpreter runs in a sandbox by default (`Limits.sandbox`, see
`symbptt.checking.sandbox`): bubblewrap's namespaces, a read-only root with the grader's
folders hidden, a clean environment, and a cgroup for its totals when one is writable;
`Worker.isolation` says which. A forked callable closes every descriptor it inherited but
its pipes before the user's code runs.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import IsolationUnavailableError, TargetError
from . import sandbox
from . import worker as wire

__all__ = [
    "Limits",
    "Returned",
    "Raised",
    "Died",
    "Outcome",
    "PendingCall",
    "Worker",
    "InProcess",
    "split_target",
]

_WORKER_SCRIPT = str(Path(wire.__file__).resolve())
_THIS_FILE = str(Path(__file__).resolve())
#: How much of the user's output the report keeps: the first and the last this many bytes.
_OUTPUT_KEEP = 4000
#: The largest answer accepted from a worker (gradients at checked sizes are kilobytes).
_MAX_REPLY = 64 * 2**20
#: Pids of the workers alive in this process; any other child we have was adopted (below).
_LIVE: set[int] = set()
_ADOPTING = False


def adopt_orphans() -> None:
    """Make this process the subreaper of everything its workers start (Linux), so that what
    a worker leaves behind when it dies on its own can still be found and killed. For a process
    whose only children are workers: the command line, a batch checker process."""
    global _ADOPTING
    wire.become_subreaper()
    _ADOPTING = True


def _adopted() -> set[int]:
    """Children of this process that are not live workers: orphans of the user's code."""
    if not _ADOPTING:
        return set()
    me = os.getpid()
    return {pid for pid, (ppid, _) in _processes().items() if ppid == me and pid not in _LIVE}


@dataclass(frozen=True)
class Limits:
    """What the user's code may use: seconds per call, MiB of memory, bytes per written file."""

    timeout: float = 5.0
    memory_mb: int = 2048
    file_bytes: int = 64 * 2**20
    load_timeout: float = 60.0
    #: CPU seconds the worker may use in all: a backstop should every other limit fail.
    cpu_seconds: int | None = None
    #: Whether a target's worker runs in the sandbox (`symbptt.checking.sandbox`): "auto" (when
    #: bubblewrap works here), "required" (IsolationUnavailableError if it does not) or "off".
    sandbox: str = "auto"

    @classmethod
    def for_check(
        cls, timeout: float, total_timeout: float, memory_mb: int, sandbox: str = "auto"
    ) -> Limits:
        """The limits of one check: per call, for the import, and in all."""
        return cls(
            timeout=float(timeout),
            memory_mb=int(memory_mb),
            load_timeout=min(60.0, float(total_timeout)),
            cpu_seconds=int(math.ceil(total_timeout)) + 30,
            sandbox=sandbox,
        )


@dataclass(frozen=True)
class Returned:
    """The call returned this value (plain data, decoded from the wire)."""

    value: Any


@dataclass(frozen=True)
class Raised:
    """The call raised: exception type, message, the user's own source line, and whether the
    call itself failed (a signature mismatch, with no frame inside the user's code)."""

    type: str
    message: str
    frame: str | None
    at_call: bool


@dataclass(frozen=True)
class Died:
    """The call never answered: the process hung, crashed, exited or was killed."""

    reason: str


Outcome = Returned | Raised | Died


def function_name(fn: Callable) -> str:
    """How a report names the user's function."""
    return getattr(fn, "__qualname__", None) or repr(fn)


def parse_target(target: str) -> list[tuple[Path, str]]:
    """The (file, name) pairs a target names, checking that each file exists.

    `file.py:f` (a function), `file.py:Class` or `file.py:Class.method`, `file.py:f,g` (a
    forward/backward pair), `a.py:forward,b.py:backward` (a pair across two files);
    `nb.ipynb:...` names definitions in a notebook's code cells.
    """
    form = (
        f"{target!r} is not of the form path/to/file.py:function (file.py:Class, "
        "file.py:forward,backward or a.py:forward,b.py:backward for a pair)"
    )
    path_text, sep, rest = target.rpartition(":")
    if not sep or not path_text or not rest:
        raise TargetError(form)
    pieces: list[tuple[str, str]] = []
    head, comma, first = path_text.partition(",")
    if comma and ":" in path_text:  # a.py:forward,b.py:backward
        left, _, left_name = head.rpartition(":")
        pieces = [(left, left_name), (first, rest)]
    else:
        pieces = [(path_text, name) for name in rest.split(",")]
    if len(pieces) > 2:
        raise TargetError(f"{target!r} names {len(pieces)} functions; a pair is forward,backward")
    out = []
    for path_text, name in pieces:
        if not path_text or not name or not all(p.isidentifier() for p in name.split(".")):
            raise TargetError(form)
        path = Path(path_text)
        if not path.is_file():
            raise TargetError(f"no such file: {path_text}")
        out.append((path, name))
    return out


def split_target(target: str) -> tuple[Path, str]:
    """`path/to/file.py:function` -> (path, function), checking the path is a file."""
    sources = parse_target(target)
    return sources[0][0], ",".join(name for _, name in sources)


class _Output:
    """Drains a pipe in a thread, keeping the head and the tail of what was written."""

    def __init__(self, fd: int) -> None:
        self.fd, self.head, self.tail, self.total = fd, bytearray(), bytearray(), 0
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.total += len(chunk)
            room = _OUTPUT_KEEP - len(self.head)
            self.head += chunk[:room]
            self.tail = (
                (self.tail + chunk[room:])[-_OUTPUT_KEEP:] if room < len(chunk) else self.tail
            )

    def close(self) -> None:
        self.thread.join(timeout=1.0)
        if self.fd >= 0:
            fd, self.fd = self.fd, -1  # never close a number twice: it may be reused
            try:
                os.close(fd)
            except OSError:
                pass

    def text(self) -> str:
        head = self.head.decode(errors="replace")
        if not self.tail:
            return head
        skipped = self.total - len(self.head) - len(self.tail)
        gap = f"\n[... {skipped} bytes not shown ...]\n" if skipped > 0 else ""
        return head + gap + self.tail.decode(errors="replace")


def _processes() -> dict[int, tuple[int, bytes]]:
    """Every process we can see: pid -> (parent pid, environment block); empty off Linux."""
    found: dict[int, tuple[int, bytes]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                ppid = int(stat.read().rpartition(b")")[2].split()[1])
            with open(f"/proc/{entry}/environ", "rb") as environ:
                env = environ.read()
        except (OSError, ValueError, IndexError):
            continue
        found[int(entry)] = (ppid, env)
    return found


def _strays(marker: bytes, root: int | None) -> set[int]:
    """Processes the user's code left: those carrying the worker's marker in their
    environment, and every descendant of the worker (root) still alive."""
    table = _processes()
    pids = {pid for pid, (_, env) in table.items() if marker in env}
    if root is not None:
        children: dict[int, list[int]] = {}
        for pid, (ppid, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        stack = [root]
        while stack:
            for child in children.get(stack.pop(), []):
                if child not in pids:
                    pids.add(child)
                    stack.append(child)
    pids.discard(os.getpid())
    return pids


def _kill_all(pids: set[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class Worker:
    """One child process running the user's function; `call` is safe against anything it does.

    Build one with `Worker.for_target("file.py:fn", ...)` (a fresh interpreter imports the
    file) or `Worker.for_callable(fn, ...)` (a fork of this process). `close()` kills the child
    and everything it started; use it as a context manager.
    """

    def __init__(
        self,
        *,
        target: str | None = None,
        fn: Callable | None = None,
        limits: Limits = Limits(),
        forbid: tuple[str, ...] = (),
        adapter: dict | None = None,
        defs_only: bool = False,
        paths: tuple[str, ...] = (),
    ) -> None:
        self.target, self.fn, self.limits, self.forbid = target, fn, limits, tuple(forbid)
        #: More folders the user's code imports from (`--path`).
        self.paths = tuple(str(Path(p).resolve()) for p in paths)
        #: What each loaded object is (`worker.describe`), once it is loaded.
        self.objects: list[dict] = []
        #: The target's name that is missing from its file, when one is.
        self.missing_name: str | None = None
        #: How the user's code is called (`worker.adapt`): None, or a char-rnn or pair adapter.
        self.adapter, self.defs_only = adapter, defs_only
        self.pid: int | None = None
        self.process: subprocess.Popen | None = None
        self.requests = self.responses = -1
        self.calls = self.restarts = 0
        self.loaded = False
        self.load_failure: Raised | Died | None = None
        self.missing: list[str] | None = None
        self.not_callable: str | None = None
        self._outputs: list[_Output] = []
        if not hasattr(os, "fork"):
            raise IsolationUnavailableError(
                "running user code in a worker process needs a POSIX system (Linux or macOS); "
                "here, pass a function with isolate=False to check it in this process"
            )
        if target is not None:
            self.sources = parse_target(target)
            self.path = self.sources[0][0]
            self.function = ",".join(name for _, name in self.sources)
        #: The sandbox a target's worker runs in (None: none), decided before any user code
        #: runs; why there is none when "auto" found none.
        self._sandbox: sandbox.Probe | None = None
        self.fallback: str | None = None
        if target is not None:
            self._sandbox = sandbox.decide(limits.sandbox)
            if self._sandbox is None and limits.sandbox == "auto":
                self.fallback = (
                    f"no sandbox: {sandbox.probe().why}; the worker ran with resource "
                    "limits only (--sandbox required refuses to)"
                )
        elif limits.sandbox == "required":
            raise IsolationUnavailableError(
                "sandbox='required' runs 'file.py:function' targets; a function object is "
                "already in this process: pass its file and name instead"
            )
        self._cgroup: sandbox.Cgroup | None = None
        #: How the last start was isolated (see `isolation`).
        self._cgrouped = False
        self._folder = tempfile.mkdtemp(prefix="w-")
        #: Inherited by everything the user's code starts outside a sandbox, so that all of
        #: it can be found: a random variable, naming nothing.
        self._marker = f"_{os.urandom(6).hex().upper()}={os.urandom(8).hex()}"

    @classmethod
    def for_target(
        cls,
        target: str,
        *,
        limits: Limits = Limits(),
        forbid: tuple[str, ...] = (),
        adapter: dict | None = None,
        defs_only: bool = False,
        paths: tuple[str, ...] = (),
    ) -> Worker:
        worker = cls(target=target, limits=limits, forbid=forbid, adapter=adapter, paths=paths)
        worker.defs_only = defs_only
        worker.start()
        return worker

    @classmethod
    def for_callable(
        cls,
        fn: Callable | tuple,
        *,
        limits: Limits = Limits(),
        forbid: tuple[str, ...] = (),
        adapter: dict | None = None,
    ) -> Worker:
        """A fork running fn (a pair of functions for the pair adapter)."""
        worker = cls(fn=fn, limits=limits, forbid=forbid, adapter=adapter)
        worker.start()
        return worker

    @property
    def isolation(self) -> str:
        """How the user's code is kept apart: "bubblewrap+cgroup", "bubblewrap+rlimits" or
        "rlimits" (a fork, or no sandbox)."""
        if self._sandbox is None:
            return "rlimits"
        return "bubblewrap+cgroup" if self._cgrouped else "bubblewrap+rlimits"

    @property
    def name(self) -> str:
        if self.target is not None:
            return self.function
        if isinstance(self.fn, tuple):
            return ",".join(function_name(f) for f in self.fn)
        return function_name(self.fn)

    # -- life cycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Start the child (it loads the user's code while we do other work)."""
        req_r, req_w = os.pipe()
        res_r, res_w = os.pipe()
        out_r, out_w = os.pipe()
        if self.target is not None:
            self._spawn(req_r, res_w, out_w)
        else:
            self._fork(req_r, req_w, res_r, res_w, out_r, out_w)
        for fd in (req_r, res_w, out_w):
            os.close(fd)
        self.requests, self.responses = req_w, res_r
        os.set_blocking(req_w, False)  # a child that stops reading cannot block us
        self._outputs.append(_Output(out_r))
        self.loaded = False
        if self.target is not None:
            try:
                self._send(self._setup())
            except OSError:  # the child is already gone; the load step says why
                pass

    def _spawn(self, req_r: int, res_w: int, out_w: int) -> None:
        if self._sandbox is not None:
            self._spawn_sandboxed(req_r, res_w, out_w)
            return
        env = dict(os.environ)
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, "1")
        name, _, value = self._marker.partition("=")
        env[name] = value
        flags = ["-P"] if sys.version_info >= (3, 11) else []
        self.process = subprocess.Popen(
            [
                sys.executable,
                *flags,
                "-u",
                _WORKER_SCRIPT,
                str(req_r),
                str(res_w),
                str(os.getpid()),
            ],
            stdin=subprocess.DEVNULL,
            stdout=out_w,
            stderr=out_w,
            pass_fds=(req_r, res_w),
            cwd=self._folder,
            env=env,
            start_new_session=True,
        )
        self.pid = self.process.pid
        _LIVE.add(self.pid)

    def _spawn_sandboxed(self, req_r: int, res_w: int, out_w: int) -> None:
        """Start the worker under bubblewrap (and in a cgroup of its own when one is
        writable); see `symbptt.checking.sandbox`."""
        found = self._sandbox
        assert found is not None and found.program is not None
        memory = (int(self.limits.memory_mb) + sandbox.OWN_MB + sandbox.WORK_MB) * 2**20
        self._cgroup = sandbox.Cgroup.create(memory)
        self._cgrouped = self._cgroup is not None
        flags = ["-P"] if sys.version_info >= (3, 11) else []
        python = [sys.executable, "-S", *flags, "-u", f"{sandbox.INSIDE}/{sandbox.SCRIPT}"]
        python += [str(req_r), str(res_w), "0"]
        reveal, hide = self._visible()
        options = sandbox.command(
            found,
            python,
            reveal=reveal,
            hide=hide,
            env=sandbox.environment(),
            conceal=sandbox.forbidden_files(self.forbid),
            library="symbptt" not in self.forbid,
        )
        # The options travel through a descriptor (the worker closes it first thing), so
        # that bwrap's command line, which the sandbox can read, names no path of ours.
        with tempfile.TemporaryFile() as table:
            table.write(b"".join(os.fsencode(a) + b"\0" for a in options))
            table.flush()
            table.seek(0)
            argv = [found.program, "--args", str(table.fileno()), *python]
            self.process = subprocess.Popen(
                sandbox.enter_command(self._cgroup, argv),
                stdin=subprocess.DEVNULL,
                stdout=out_w,
                stderr=out_w,
                pass_fds=(req_r, res_w, table.fileno()),
                cwd=self._folder,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
                start_new_session=True,
            )
        self.pid = self.process.pid
        _LIVE.add(self.pid)

    def _visible(self) -> tuple[list[str], list[str]]:
        """(folders the sandbox shows read-only, folders it hides): each source's own folder,
        its package or the project modules it imports, `--path` folders; the grader's
        current folder and the folder above each source hidden."""
        from . import loader

        reveal: list[str] = list(self.paths)
        hide = [os.getcwd()]
        for path, _ in self.sources:
            file = str(path.resolve())
            folder = os.path.dirname(file)
            reveal.append(folder)
            hide.append(os.path.dirname(folder))
            name, top = loader.module_name(file)
            if "." in name:  # a package's module: the package is imported from above it
                reveal.append(os.path.join(top, name.partition(".")[0]))
            if file.endswith(".py"):
                try:
                    source = path.read_text(encoding="utf-8-sig", errors="replace")
                except OSError:
                    continue
                imported = loader._imported(source)
                for root in loader.project_roots(file, source):
                    for module in imported:
                        for candidate in (module, module + ".py"):
                            if os.path.exists(os.path.join(root, candidate)):
                                reveal.append(os.path.join(root, candidate))
        return list(dict.fromkeys(reveal)), list(dict.fromkeys(hide))

    def _setup(self) -> dict:
        """What the fresh interpreter needs to know to load the user's function."""
        return {
            "kind": "setup",
            "sources": [[str(path.resolve()), name] for path, name in self.sources],
            "paths": list(self.paths),
            "forbid": list(self.forbid),
            "adapter": self.adapter,
            "defs_only": self.defs_only,
            **self._limit_values(),
        }

    def _limit_values(self) -> dict:
        return {
            "memory": int(self.limits.memory_mb) * 2**20,
            "file_size": int(self.limits.file_bytes),
            "cpu": self.limits.cpu_seconds,
        }

    def _fork(self, req_r, req_w, res_r, res_w, out_r, out_w) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        parent = os.getpid()
        pid = os.fork()
        if pid:
            self.pid = pid
            _LIVE.add(pid)
            return
        status = 0
        try:  # the child: never return into the caller's stack (a test runner, say)
            os.setsid()
            wire.die_with_parent(parent)
            os.dup2(out_w, 1)
            os.dup2(out_w, 2)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            for fd in (req_w, res_r, out_r, out_w, null):
                os.close(fd)
            wire.close_all_but((0, 1, 2, req_r, res_w))  # the grader's open files too
            # print() must reach the captured descriptors, not the caller's stream objects
            # (pytest's capture, a notebook): fresh write-through streams on fd 1 and 2.
            sys.stdout = open(1, "w", buffering=1, closefd=False, errors="replace")
            sys.stderr = open(2, "w", buffering=1, closefd=False, errors="replace")
            sys.stdin = open(0, closefd=False)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            name, _, value = self._marker.partition("=")
            os.environ[name] = value  # seen by the programs it runs
            wire.become_subreaper()
            os.chdir(self._folder)
            values = self._limit_values()
            wire.set_limits(values["memory"], values["file_size"], values["cpu"])
            wire.forbid(list(self.forbid))
            functions = list(self.fn) if isinstance(self.fn, tuple) else [self.fn]
            names = [function_name(f) for f in functions]
            wire.send(res_w, {"kind": "loaded", "objects": wire.describe(functions, names)})
            namespace = getattr(functions[0], "__globals__", {})
            fn = wire.adapt(functions, namespace, self.adapter)
            wire.serve(fn, req_r, res_w, user_file=wire._user_file(functions[0]))
        except BaseException:
            status = 1
        finally:
            os._exit(status)

    def _ensure_started(self, max_wait: float | None = None) -> Raised | Died | None:
        """Start (or restart) the child and wait for it to be ready, at most the import limit
        (or max_wait, when less is left); the load failure if any."""
        if self.load_failure is not None:
            return self.load_failure
        if self.pid is None:
            self.restarts += 1
            self.start()
        if self.loaded:
            return None
        wait = (
            self.limits.load_timeout
            if max_wait is None
            else min(max_wait, self.limits.load_timeout)
        )
        try:
            reply = wire.receive(self.responses, time.monotonic() + wait, _MAX_REPLY)
        except TimeoutError:
            self._kill()
            self.load_failure = Died(f"importing it did not finish within {wait:g} s")
            return self.load_failure
        except wire.WireError as exc:
            self._kill()
            self.load_failure = Died(f"the worker process sent an unreadable answer ({exc})")
            return self.load_failure
        if not isinstance(reply, dict) or reply.get("kind") != "loaded":
            self.load_failure = Died(self._death("while being imported"))
            return self.load_failure
        if isinstance(reply.get("missing_name"), str):
            self.missing_name = reply["missing_name"]
        if "raised" in reply:
            missing = reply.get("missing")
            if isinstance(missing, list):
                self.missing = [str(m) for m in missing]
            self.load_failure = _raised(reply["raised"])
            self._kill()
            return self.load_failure
        if reply.get("not_callable"):
            self.not_callable = str(reply["not_callable"])
            self._kill()
            self.load_failure = Raised("TypeError", "not callable", None, True)
            return self.load_failure
        objects = reply.get("objects")
        if isinstance(objects, list):
            self.objects = [o for o in objects if isinstance(o, dict)]
        self.loaded = True
        return None

    def load(self) -> Raised | Died | None:
        """Wait until the user's code is imported; None if it is ready, else why not."""
        return self._ensure_started()

    # -- calling -----------------------------------------------------------------------------
    def call(self, args: list, kwargs: dict, timeout: float | None = None) -> Outcome:
        """Call the user's function in the child; the outcome, whatever the child does."""
        return self.submit(args, kwargs, timeout).outcome()

    def submit(self, args: list, kwargs: dict, timeout: float | None = None) -> PendingCall:
        """Start a call; its `outcome()` waits for it (the caller may work in the meantime)."""
        started = time.monotonic()
        failure = self._ensure_started(max_wait=timeout)
        if failure is not None:
            died = failure if isinstance(failure, Died) else Died("its file could not be imported")
            return PendingCall(lambda: died)
        self.calls += 1
        call_id = self.calls
        limit = self.limits.timeout
        if timeout is not None:  # what is left of the caller's time after a (re)start
            limit = min(limit, timeout - (time.monotonic() - started))
        deadline = time.monotonic() + max(limit, 0.0)
        message = {"kind": "call", "id": call_id, "args": list(args), "kwargs": dict(kwargs)}
        try:
            wire.send(self.requests, message, deadline)
        except TimeoutError:
            self._kill()
            return PendingCall(lambda: Died(f"did not take its arguments within {limit:g} s"))
        except OSError:
            died = Died(self._death("before the call"))
            return PendingCall(lambda: died)
        return PendingCall(lambda: self._collect(call_id, limit, deadline))

    def _collect(self, call_id: int, limit: float, deadline: float) -> Outcome:
        while True:
            try:
                reply = wire.receive(self.responses, deadline, _MAX_REPLY)
            except TimeoutError:
                self._kill()
                return Died(f"did not return within {limit:g} s (the time limit per call)")
            except wire.WireError as exc:
                self._kill()
                return Died(f"sent an answer that could not be read ({exc})")
            except OSError:
                return Died(self._death("during the call"))
            if reply is None:
                return Died(self._death("during the call"))
            if isinstance(reply, dict) and reply.get("id") == call_id:
                break  # anything else is a stale or forged frame: keep waiting for ours
        if "raised" in reply:
            return _raised(reply["raised"])
        if "unreadable" in reply:
            r = _raised(reply["unreadable"])
            return Raised(r.type, f"its answer could not be sent: {r.message}", None, False)
        return Returned(reply.get("returned"))

    def _send(self, message: dict) -> None:
        wire.send(self.requests, message, time.monotonic() + self.limits.load_timeout)

    def _death(self, when: str) -> str:
        """Why the child is gone: its exit status or the signal that killed it."""
        status = self._peek(wait=1.0)  # not reaped yet: its pid cannot be reused under us
        self._kill()
        if status is None:
            return f"closed its connection to the checker {when}"
        if self._sandbox is not None and 128 < status < 128 + 65:
            status = 128 - status  # bwrap's exit status for its child's signal
        if status >= 0:
            return f"ended the process with exit status {status} {when} (os._exit, or a crash)"
        name = _signal_name(-status)
        what = {"SIGSEGV": "a segmentation fault", "SIGKILL": "killed (SIGKILL)"}.get(name, name)
        return f"ended the process {when}: {what}"

    def _peek(self, wait: float) -> int | None:
        """The child's exit status (negative: the signal) without reaping it; None if it is
        still running after `wait` seconds."""
        if self.pid is None:
            return None
        deadline = time.monotonic() + wait
        while True:
            try:
                info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return None
            if info is not None and info.si_pid:
                if info.si_code == os.CLD_EXITED:
                    return info.si_status
                return -info.si_status
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)

    def _reap(self, wait: float) -> int | None:
        """The child's exit status (negative: the signal), or None if it is still running."""
        if self.pid is None:
            return None
        deadline = time.monotonic() + wait
        while True:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return None
            if pid:
                if self.process is not None:
                    self.process.returncode = 0  # reaped here; keep Popen from waiting again
                return os.waitstatus_to_exitcode(status)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)

    def _kill(self) -> None:
        """Kill the child, its process group and everything it started, then forget it (a later
        call restarts it)."""
        marker = self._marker.encode()
        tree = _strays(marker, self.pid)  # while the worker lives, its orphans are its own
        if self.pid is not None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        _kill_all(tree)
        if self._cgroup is not None:  # everything it started, however it hid
            self._cgroup.remove()
            self._cgroup = None
        self._kill_strays()
        if self.pid is not None:
            self._reap(wait=2.0)
            _LIVE.discard(self.pid)
        for orphan in _adopted():  # what a worker that died on its own left to us
            _kill_all({orphan})
            try:
                os.waitpid(orphan, 0)
            except ChildProcessError:
                pass
        for fd in (self.requests, self.responses):
            try:
                os.close(fd)
            except OSError:
                pass
        self.requests = self.responses = -1
        self.pid, self.process, self.loaded = None, None, False

    def _kill_strays(self) -> None:
        """Kill what carries our marker, a few rounds over, so that a process forking while
        we look is caught in the next round."""
        marker = self._marker.encode()
        for _ in range(20):
            strays = _strays(marker, None)
            if not strays:
                return
            _kill_all(strays)
            time.sleep(0.01)

    def close(self) -> None:
        """Stop the child and everything it started; remove its temporary folder (again:
        harmless)."""
        self._kill()
        for output in self._outputs:
            output.close()
        shutil.rmtree(self._folder, ignore_errors=True)
        self.load_failure = self.load_failure or Died("the worker was closed")

    def output(self) -> str:
        """What the user's code wrote to stdout and stderr, trimmed."""
        return "".join(o.text() for o in self._outputs)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class PendingCall:
    """A call under way in the worker; `outcome()` waits for it (once)."""

    def __init__(self, wait: Callable[[], Outcome]) -> None:
        self._wait, self._outcome = wait, None

    def outcome(self) -> Outcome:
        if self._outcome is None:
            self._outcome = self._wait()
        return self._outcome


def _raised(info: Any) -> Raised:
    """A Raised from the child's description of an exception, whatever shape it arrives in."""
    if not isinstance(info, dict):
        return Raised("Exception", str(info)[:2000], None, False)
    frame = info.get("frame")
    return Raised(
        str(info.get("type", "Exception")),
        str(info.get("message", "")),
        None if frame is None else str(frame),
        bool(info.get("at_call", False)),
    )


class InProcess:
    """Calls the function here, without isolation (`isolate=False`): for debugging with pdb."""

    def __init__(self, fn: Callable | tuple, adapter: dict | None = None) -> None:
        functions = list(fn) if isinstance(fn, tuple) else [fn]
        self.label = ",".join(function_name(f) for f in functions)
        self.objects = wire.describe(functions, [function_name(f) for f in functions])
        self.fn = wire.adapt(functions, getattr(functions[0], "__globals__", {}), adapter)
        self.adapter = adapter
        self.restarts = 0

    @property
    def name(self) -> str:
        return self.label

    def load(self) -> None:
        return None

    def submit(self, args: list, kwargs: dict, timeout: float | None = None) -> PendingCall:
        return PendingCall(lambda: self.call(args, kwargs, timeout))

    def call(self, args: list, kwargs: dict, timeout: float | None = None) -> Outcome:
        try:
            value = self.fn(*args, **kwargs)
        except (Exception, SystemExit) as exc:
            info = wire.describe_exception(exc, skip=_THIS_FILE)
            return Raised(info["type"], info["message"], info["frame"], info["at_call"])
        # Through the wire and back, so that an answer reads the same as from a worker.
        reply = wire.roundtrip({"returned": value})
        if "unreadable" in reply:
            r = _raised(reply["unreadable"])
            return Raised(r.type, f"its answer could not be read: {r.message}", None, False)
        return Returned(reply["returned"])

    def output(self) -> str:
        return ""

    def close(self) -> None:
        pass
