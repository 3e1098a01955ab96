"""Hostile and careless BPTT submissions, the way a course grader meets them, with verdicts.

Test data for the isolated checker (`symbptt check` running user code in a worker process
with time and memory limits). Each case is ONE function, decorated with `@hostile(...)`,
which carries everything known about it: the verdict the checker must give, why, the command
line options it is checked with, module-level code and files to put beside it. Stacking two
decorators on one function gives two cases with the same code (e.g. without and with
`--only`); every decorator but one names a `variant`.

The functions here are never called by the tests (they exit, hang, fork, patch NumPy...):
`write_case` writes the source of one function (decorators stripped), the source of the shared
correct core `bptt_core` and the case's `module_code` into `<folder>/submission.py`, plus its
`extra_files`, and returns the target `<folder>/submission.py:<function>`.

Verdicts: "right" means exit 0 / `ok` true, every gradient and the loss OK (or NOT CHECKED
where `--only` leaves them out) and `inconsistent` false; "wrong" means exit 1 / `ok` false,
and never a hang, a traceback or exit 0. The model, the calling convention (row layout) and
the summed loss are those of `bptt_corpus.py`.

Processes a case forks are bounded (at most `limit` per case, each `sleep 600`) so that they
cannot hurt the machine even if the checker's limits fail; they carry their case folder as
argv[0], which is how the tests find (and clean up) stray processes.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from bptt_corpus import correct_row_vectorised

__all__ = [
    "CASES",
    "GRADIENTS",
    "Hostile",
    "bptt_core",
    "case_by_name",
    "hostile",
    "write_case",
]

#: Every gradient of the full form; a right answer has all of them (unless --only says less).
GRADIENTS = ("W_x", "W_h", "b", "V", "c", "h0", "x")
PREFIX = "loss_and_grads_"


@dataclass(frozen=True)
class Hostile:
    """One submission and the verdict it must get."""

    name: str  # case id, from the function name (and variant)
    function: str  # the function's name in submission.py: the target's function part
    source: str  # the function's source, decorators stripped
    expect: str  # "right" or "wrong"
    why: str
    options: tuple[str, ...] = ()  # extra `symbptt check` options
    module_code: str = ""  # module-level code of submission.py, before the functions
    extra_files: tuple[tuple[str, str], ...] = ()  # (file name, text) beside submission.py
    expect_error: bool = False  # the verdict carries an error message (crash, hang, exit)
    expect_in_error: tuple[str, ...] = ()  # substrings of "error" (case-insensitive)
    expect_in_output: tuple[str, ...] = ()  # substrings of the captured "output"
    expect_wrong: tuple[str, ...] = ()  # gradients whose status must be WRONG
    omit_function: bool = False  # the target function is NOT written (it is missing)
    alone: bool = False  # checked in its own CLI invocation: it may take others down
    spawns: bool = False  # forks processes that must not survive the check

    @property
    def only(self) -> tuple[str, ...] | None:
        """The gradients named by --only, if the case declares a subset."""
        if "--only" not in self.options:
            return None
        return tuple(self.options[self.options.index("--only") + 1].split(","))


CASES: list[Hostile] = []


def _function_source(fn: Callable) -> str:
    lines = inspect.getsource(fn).splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("def "))
    return "".join(lines[start:])


def hostile(
    *,
    expect: str,
    why: str,
    options: tuple[str, ...] = (),
    module_code: str = "",
    extra_files: dict[str, str] | None = None,
    expect_error: bool | None = None,
    expect_in_error: str | tuple[str, ...] = (),
    expect_in_output: str | tuple[str, ...] = (),
    expect_wrong: tuple[str, ...] = (),
    omit_function: bool = False,
    alone: bool = False,
    spawns: bool = False,
    variant: str | None = None,
) -> Callable[[Callable], Callable]:
    """Register the decorated function as a case (the function itself is left unchanged)."""
    if expect not in ("right", "wrong"):
        raise ValueError(f"expect={expect!r} must be 'right' or 'wrong'")
    in_error = (expect_in_error,) if isinstance(expect_in_error, str) else tuple(expect_in_error)
    in_output = (expect_in_output,) if isinstance(expect_in_output, str) else expect_in_output

    def register(fn: Callable) -> Callable:
        if not fn.__name__.startswith(PREFIX):
            raise ValueError(f"{fn.__name__}: case functions are named {PREFIX}<case>")
        name = fn.__name__.removeprefix(PREFIX) + (f"_{variant}" if variant else "")
        if any(c.name == name for c in CASES):
            raise ValueError(f"two cases are named {name!r}; give one a variant")
        CASES.append(
            Hostile(
                name=name,
                function=fn.__name__,
                source=_function_source(fn),
                expect=expect,
                why=why,
                options=tuple(options),
                module_code=module_code,
                extra_files=tuple((extra_files or {}).items()),
                expect_error=bool(in_error) if expect_error is None else expect_error,
                expect_in_error=in_error,
                expect_in_output=tuple(in_output),
                expect_wrong=tuple(expect_wrong),
                omit_function=omit_function,
                alone=alone,
                spawns=spawns,
            )
        )
        return fn

    return register


def case_by_name(name: str) -> Hostile:
    for case in CASES:
        if case.name == name:
            return case
    raise KeyError(name)


def write_case(
    case: Hostile,
    folder: Path | str,
    *,
    filename: str = "submission.py",
    function: str | None = None,
) -> str:
    """Write the case's submission (and its extra files) into folder; return the target.

    `function` renames the case's function in the written file (several cases under one name,
    for a glob target such as `subs/*/rnn.py:loss_and_grads`).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = function or case.function
    parts = [
        f'"""Hostile submission {case.name!r} (tests/hostile_corpus.py): expected {case.expect}.'
        f'\n\n{case.why}\n"""\n\nimport numpy as np\n',
    ]
    if case.module_code:
        parts.append(case.module_code.strip("\n") + "\n")
    parts.append(CORE_SOURCE)
    if not case.omit_function:
        parts.append(case.source.replace(f"def {case.function}(", f"def {name}(", 1))
    (folder / filename).write_text("\n\n".join(parts))
    for file_name, text in case.extra_files:
        (folder / file_name).write_text(text)
    return f"{folder / filename}:{name}"


# ======================================================================================
# The shared correct core (row layout, summed loss), written into every submission
# ======================================================================================


#: The correct core every case builds on: the bug corpus's vectorised implementation.
bptt_core = correct_row_vectorised


CORE_SOURCE = _function_source(correct_row_vectorised) + "\n\nbptt_core = correct_row_vectorised\n"
#: The core as a module of its own, for a submission that imports a helper file beside it.
CORE_MODULE = f'"""Helpers of a submission."""\n\nimport numpy as np\n\n\n{CORE_SOURCE}'

#: Module code: fork children that `sleep 600` under the case folder's name (argv[0]), never
#: more than `limit` alive per case, so a broken process limit cannot hurt the machine.
SPAWN_SLEEPERS = '''
import os
import shutil

MARKER = os.path.dirname(os.path.abspath(__file__))
_SPAWNED = [0]


def _alive_with_marker():
    count = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv0 = f.read().split(b"\\0")[0]
            except OSError:
                continue
            count += argv0 == os.fsencode(MARKER)
    return count


def _spawn_sleepers(limit, escape=False):
    """Fork `sleep 600` children named MARKER; `escape`: setsid and double fork (daemons)."""
    sleep = shutil.which("sleep") or "/bin/sleep"
    for _ in range(max(0, min(limit - _SPAWNED[0], limit - _alive_with_marker()))):
        try:
            pid = os.fork()
        except OSError:
            return
        if pid == 0:
            try:
                if escape:
                    os.setsid()
                    if os.fork() > 0:
                        os._exit(0)
                os.execv(sleep, [MARKER, "600"])
            finally:
                os._exit(0)
        _SPAWNED[0] += 1
        if escape:
            os.waitpid(pid, 0)
'''


# ======================================================================================
# Wrong on some calls only: any failure seen once makes the verdict wrong
# ======================================================================================


@hostile(
    expect="wrong",
    why="A call counter makes every 7th answer wrong (dW_h + 0.5); the other six are right.",
)
def loss_and_grads_wrong_every_7th_call(x, y, h0, W_x, W_h, b, V, c):
    state = globals()
    state["_calls"] = state.get("_calls", 0) + 1
    loss, grads = bptt_core(x, y, h0, W_x, W_h, b, V, c)
    if state["_calls"] % 7 == 0:
        grads["W_h"] = grads["W_h"] + 0.5
    return loss, grads


@hostile(expect="wrong", why="Wrong on about 30% of calls, decided by os.urandom.")
def loss_and_grads_wrong_30pct_urandom(x, y, h0, W_x, W_h, b, V, c):
    import os

    loss, grads = bptt_core(x, y, h0, W_x, W_h, b, V, c)
    if os.urandom(1)[0] < 77:
        grads["W_h"] = grads["W_h"] + 0.5
    return loss, grads


@hostile(
    expect="wrong",
    why="Wrong when random.random() < 0.3: the checker must not seed or reset the user's "
    "random state (random.seed(0) gives 0.84 every time and would hide it).",
)
def loss_and_grads_wrong_30pct_random_module(x, y, h0, W_x, W_h, b, V, c):
    import random

    loss, grads = bptt_core(x, y, h0, W_x, W_h, b, V, c)
    if random.random() < 0.3:
        grads["W_h"] = grads["W_h"] + 0.5
    return loss, grads


@hostile(
    expect="wrong",
    why="Wrong when np.random.rand() < 0.3: NumPy's global random state must not be reset "
    "either (np.random.seed(0) gives 0.55 every time).",
)
def loss_and_grads_wrong_30pct_numpy_random(x, y, h0, W_x, W_h, b, V, c):
    loss, grads = bptt_core(x, y, h0, W_x, W_h, b, V, c)
    if np.random.rand() < 0.3:
        grads["W_h"] = grads["W_h"] + 0.5
    return loss, grads


# ======================================================================================
# Incomplete answers
# ======================================================================================


@hostile(expect="wrong", why="Returns the loss and an empty gradient dict.")
def loss_and_grads_returns_empty_grads(x, y, h0, W_x, W_h, b, V, c):
    loss, _ = bptt_core(x, y, h0, W_x, W_h, b, V, c)
    return loss, {}


@hostile(expect="wrong", why="Returns no loss and no gradients: `return None, {}`.")
def loss_and_grads_returns_none_and_empty(x, y, h0, W_x, W_h, b, V, c):
    return None, {}


@hostile(
    expect="wrong",
    why="Returns the loss and dW_x, dW_h, db, dV, dc only (no dh0, dx) without declaring it.",
)
@hostile(
    expect="right",
    variant="declared",
    options=("--only", "W_x,W_h,b,V,c"),
    why="The same subset, declared with --only W_x,W_h,b,V,c.",
)
def loss_and_grads_returns_shared_only(x, y, h0, W_x, W_h, b, V, c):
    loss, grads = bptt_core(x, y, h0, W_x, W_h, b, V, c)
    return loss, {k: grads[k] for k in ("W_x", "W_h", "b", "V", "c")}


# ======================================================================================
# Precision: low precision must be declared
# ======================================================================================


@hostile(
    expect="wrong",
    why="dW_h 2% too large, everything returned as float16: within float16 tolerance, but "
    "float16 was not declared (--precision float16), so it is not trusted.",
)
def loss_and_grads_w_h_2pct_off_float16(x, y, h0, W_x, W_h, b, V, c):
    loss, grads = bptt_core(x, y, h0, W_x, W_h, b, V, c)
    grads["W_h"] = grads["W_h"] * 1.02
    return np.float16(loss), {k: v.astype(np.float16) for k, v in grads.items()}


@hostile(
    expect="wrong",
    why="Correct code whose answers are cast to float16, without --precision float16.",
)
@hostile(
    expect="right",
    variant="declared",
    options=("--precision", "float16"),
    why="Correct code whose answers are cast to float16, checked with --precision float16.",
)
def loss_and_grads_correct_float16(x, y, h0, W_x, W_h, b, V, c):
    loss, grads = bptt_core(x, y, h0, W_x, W_h, b, V, c)
    return np.float16(loss), {k: v.astype(np.float16) for k, v in grads.items()}


@hostile(
    expect="right",
    why="Correct code on float32 inputs returning float32: the default precision accepts it.",
)
def loss_and_grads_correct_float32(x, y, h0, W_x, W_h, b, V, c):
    f32 = [np.asarray(a, dtype=np.float32) for a in (x, h0, W_x, W_h, b, V, c)]
    loss, grads = bptt_core(f32[0], y, *f32[1:])
    return np.float32(loss), {k: v.astype(np.float32) for k, v in grads.items()}


# ======================================================================================
# Hangs, exits, crashes
# ======================================================================================


@hostile(expect="wrong", expect_error=True, why="Spins forever: `while True: pass`.")
def loss_and_grads_spins_forever(x, y, h0, W_x, W_h, b, V, c):
    while True:
        pass


@hostile(expect="wrong", expect_error=True, why="Sleeps for 11 days: time.sleep(1e6).")
def loss_and_grads_sleeps_forever(x, y, h0, W_x, W_h, b, V, c):
    import time

    time.sleep(1e6)
    return bptt_core(x, y, h0, W_x, W_h, b, V, c)


@hostile(
    expect="wrong",
    expect_error=True,
    module_code="import os\n\nos._exit(0)\n",
    why="os._exit(0) at import: the worker vanishes with exit status 0 before any call.",
)
def loss_and_grads_exits_at_import(x, y, h0, W_x, W_h, b, V, c):
    return bptt_core(x, y, h0, W_x, W_h, b, V, c)


@hostile(expect="wrong", expect_error=True, why="os._exit(0) in the call.")
def loss_and_grads_os_exit_in_call(x, y, h0, W_x, W_h, b, V, c):
    import os

    os._exit(0)


@hostile(expect="wrong", expect_error=True, why="sys.exit(0) in the call.")
def loss_and_grads_sys_exit_in_call(x, y, h0, W_x, W_h, b, V, c):
    import sys

    sys.exit(0)


@hostile(expect="wrong", expect_error=True, why="Kills itself with SIGKILL in the call.")
def loss_and_grads_sigkills_itself(x, y, h0, W_x, W_h, b, V, c):
    import os
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


@hostile(expect="wrong", expect_error=True, why="Segfaults: ctypes.string_at(0).")
def loss_and_grads_segfaults(x, y, h0, W_x, W_h, b, V, c):
    import ctypes

    ctypes.string_at(0)


@hostile(
    expect="wrong",
    expect_error=True,
    why="Stops itself with SIGSTOP: alive but never answers.",
)
def loss_and_grads_stops_itself(x, y, h0, W_x, W_h, b, V, c):
    import os
    import signal

    os.kill(os.getpid(), signal.SIGSTOP)
    return bptt_core(x, y, h0, W_x, W_h, b, V, c)


@hostile(
    expect="wrong",
    expect_error=True,
    why="Raises a BaseException subclass, which `except Exception` does not catch.",
)
def loss_and_grads_raises_base_exception(x, y, h0, W_x, W_h, b, V, c):
    class Escape(BaseException):
        pass

    raise Escape("not an Exception")


@hostile(expect="wrong", expect_error=True, why="Raises KeyboardInterrupt in the call.")
def loss_and_grads_raises_keyboard_interrupt(x, y, h0, W_x, W_h, b, V, c):
    raise KeyboardInterrupt


@hostile(
    expect="wrong",
    expect_error=True,
    why="Ignores SIGTERM, SIGINT, SIGHUP, SIGALRM and SIGUSR1, then spins: only SIGKILL ends it.",
)
def loss_and_grads_ignores_signals_and_spins(x, y, h0, W_x, W_h, b, V, c):
    import signal

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM, signal.SIGUSR1):
        try:
            signal.signal(sig, signal.SIG_IGN)
        except (ValueError, OSError):
            pass
    while True:
        pass


@hostile(
    expect="wrong",
    expect_error=True,
    why="Cancels any alarm or interval timer and ignores SIGALRM, then sleeps: a timeout "
    "implemented with signal.alarm inside the worker never fires.",
)
def loss_and_grads_disables_alarm_and_sleeps(x, y, h0, W_x, W_h, b, V, c):
    import signal
    import time

    signal.alarm(0)
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.setitimer(signal.ITIMER_VIRTUAL, 0)
    signal.setitimer(signal.ITIMER_PROF, 0)
    try:
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
    except ValueError:
        pass
    time.sleep(1e6)
    return bptt_core(x, y, h0, W_x, W_h, b, V, c)


@hostile(
    expect="wrong",
    expect_error=True,
    alone=True,
    why="os.killpg(0, SIGKILL): kills its own process group, which must be the worker's own "
    "and not the checker's (run alone, in a new session, so it can take down no one else).",
)
def loss_and_grads_kills_own_process_group(x, y, h0, W_x, W_h, b, V, c):
    import os
    import signal

    os.killpg(0, signal.SIGKILL)
    return bptt_core(x, y, h0, W_x, W_h, b, V, c)


@hostile(
    expect="wrong",
    expect_error=True,
    options=("--total-timeout", "10"),
    module_code="import time\n\ntime.sleep(1e6)\n",
    why="Sleeps forever at import, before any call: only an import or total timeout ends it.",
)
def loss_and_grads_hangs_at_import(x, y, h0, W_x, W_h, b, V, c):
    return bptt_core(x, y, h0, W_x, W_h, b, V, c)


@hostile(
    expect="wrong",
    expect_in_error="SyntaxError",
    module_code="def broken(:\n    pass\n",
    why="The file does not compile (a syntax error in a helper).",
)
def loss_and_grads_syntax_error(x, y, h0, W_x, W_h, b, V, c):
    return bptt_core(x, y, h0, W_x, W_h, b, V, c)


@hostile(
    expect="wrong",
    expect_error=True,
    why="A leftover input() asks for a key press: stdin is not the checker's terminal.",
)
def loss_and_grads_waits_for_input(x, y, h0, W_x, W_h, b, V, c):
    input("press enter to continue")
    return bptt_core(x, y, h0, W_x, W_h, b, V, c)


# ======================================================================================
# Sabotage: patching NumPy or the checker, lying return values
# ======================================================================================


@hostile(
    expect="wrong",
    expect_wrong=GRADIENTS,
    why="Patches np.allclose, np.isclose, np.abs, np.max, np.linalg.norm... to say 'equal', "
    "then returns zero gradients.",
)
def loss_and_grads_patches_numpy_zero_grads(x, y, h0, W_x, W_h, b, V, c):
    loss, grads = bptt_core(x, y, h0, W_x, W_h, b, V, c)
    np.allclose = np.array_equal = lambda *a, **k: True
    np.isclose = lambda a, b, *r, **k: np.ones(np.broadcast(a, b).shape, dtype=bool)
    np.abs = np.absolute = np.fabs = lambda a, *r, **k: 0 * np.asarray(a)
    np.max = np.amax = np.nanmax = lambda *a, **k: 0.0
    np.linalg.norm = lambda *a, **k: 0.0
    np.testing.assert_allclose = lambda *a, **k: None
    return loss, {k: np.zeros_like(v) for k, v in grads.items()}


@hostile(
    expect="wrong",
    why="Patches np.isfinite, np.isnan and np.isinf to see nothing, then returns NaN everywhere.",
)
def loss_and_grads_patches_isfinite_returns_nan(x, y, h0, W_x, W_h, b, V, c):
    loss, grads = bptt_core(x, y, h0, W_x, W_h, b, V, c)
    np.isfinite = lambda a, *r, **k: np.ones(np.shape(a), dtype=bool)
    np.isnan = np.isinf = lambda a, *r, **k: np.zeros(np.shape(a), dtype=bool)
    return float("nan"), {k: np.full(v.shape, np.nan) for k, v in grads.items()}


@hostile(
    expect="wrong",
    why="Imports symbptt.checking.check and replaces _measure, _Checker.passes, the tolerance "
    "table and Report.wrong, then returns zero gradients.",
)
def loss_and_grads_patches_checker_zero_grads(x, y, h0, W_x, W_h, b, V, c):
    import contextlib

    loss, grads = bptt_core(x, y, h0, W_x, W_h, b, V, c)
    with contextlib.suppress(Exception):
        import symbptt.checking.check as check

        with contextlib.suppress(Exception):
            ok = check.Measurement(0.0, 0.0, (), True)
            check._measure = lambda *a, **k: ok
        with contextlib.suppress(Exception):
            check._Checker.passes = lambda self, problem: True
        with contextlib.suppress(Exception):
            for dtype in list(check.TOLERANCES):
                check.TOLERANCES[dtype] = check.Tolerance(rtol=1e300, floor=1.0)
    with contextlib.suppress(Exception):
        import symbptt.checking.report as report

        report.Report.wrong = property(lambda self: [])
    return loss, {k: np.zeros_like(v) for k, v in grads.items()}


@hostile(
    expect="wrong",
    why="Without importing symbptt: walks sys.modules, the calling frames' globals and locals "
    "and the objects they hold, loosens every tolerance table it finds to rtol 1e300 in place "
    "and makes every `passes` method say True, then returns zero gradients.",
)
def loss_and_grads_patches_checker_via_frames(x, y, h0, W_x, W_h, b, V, c):
    import sys

    loss, grads = bptt_core(x, y, h0, W_x, W_h, b, V, c)
    spaces = [vars(m) for n, m in list(sys.modules.items()) if n.startswith("symbptt") and m]
    frame = sys._getframe(1)
    while frame is not None:
        spaces += [frame.f_globals, frame.f_locals]
        spaces += [vars(v) for v in frame.f_locals.values() if hasattr(v, "__dict__")]
        frame = frame.f_back
    for space in spaces:
        for value in list(space.values()):
            try:
                if isinstance(value, dict) and "float64" in value:
                    for dtype in list(value):
                        value[dtype] = type(value[dtype])(1e300, 1.0)
                if callable(getattr(type(value), "passes", None)):
                    type(value).passes = lambda self, *a, **k: True
            except Exception:
                pass
    return loss, {k: np.zeros_like(v) for k, v in grads.items()}


@hostile(
    expect="wrong",
    why="Zero gradients as an ndarray subclass whose every ufunc (subtraction, abs, "
    "comparison...) answers zeros: 'no difference from the truth'.",
)
def loss_and_grads_lying_ndarray_subclass(x, y, h0, W_x, W_h, b, V, c):
    class Liar(np.ndarray):
        def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
            plain = [np.asarray(i) for i in inputs]
            return np.zeros(np.broadcast(*plain).shape)

    loss, grads = bptt_core(x, y, h0, W_x, W_h, b, V, c)
    return loss, {k: np.zeros_like(v).view(Liar) for k, v in grads.items()}


@hostile(
    expect="wrong",
    alone=True,
    why="dW_h is an object whose pickle runs os._exit(0) when loaded: if the checker unpickles "
    "raw answers in the parent, the parent exits 0 (run alone: it may take the batch down).",
)
def loss_and_grads_pickle_payload_exits_parent(x, y, h0, W_x, W_h, b, V, c):
    import os

    class Payload:
        def __reduce__(self):
            return (os._exit, (0,))

    loss, grads = bptt_core(x, y, h0, W_x, W_h, b, V, c)
    grads["W_h"] = Payload()
    return loss, grads


@hostile(
    expect="wrong",
    expect_error=True,
    why="Returns a Mapping whose iteration and lookups sleep forever: reading the answer "
    "must be under the timeout too.",
)
def loss_and_grads_grads_mapping_hangs(x, y, h0, W_x, W_h, b, V, c):
    import time
    from collections.abc import Mapping

    class Stuck(Mapping):
        def __getitem__(self, key):
            time.sleep(1e6)

        def __iter__(self):
            time.sleep(1e6)
            return iter(())

        def __len__(self):
            time.sleep(1e6)
            return 7

    loss, _ = bptt_core(x, y, h0, W_x, W_h, b, V, c)
    return loss, Stuck()


@hostile(
    expect="wrong",
    expect_error=True,
    why="Returns a loss whose __float__ and __array__ sleep forever.",
)
def loss_and_grads_loss_float_hangs(x, y, h0, W_x, W_h, b, V, c):
    import time

    class SlowLoss:
        def __float__(self):
            time.sleep(1e6)
            return 0.0

        def __array__(self, dtype=None, copy=None):
            time.sleep(1e6)

    _, grads = bptt_core(x, y, h0, W_x, W_h, b, V, c)
    return SlowLoss(), grads


@hostile(
    expect="wrong",
    why="dW_h is a 10000 x 10000 array (800 MB, wrong shape): the answer must be judged "
    "without choking on its size.",
)
def loss_and_grads_returns_huge_array(x, y, h0, W_x, W_h, b, V, c):
    loss, grads = bptt_core(x, y, h0, W_x, W_h, b, V, c)
    grads["W_h"] = np.zeros((10_000, 10_000))
    return loss, grads


@hostile(
    expect="wrong",
    why="Closes every file descriptor (stdin, stdout, stderr, the worker's pipes), then "
    "returns zero gradients.",
)
def loss_and_grads_closes_all_fds_zero_grads(x, y, h0, W_x, W_h, b, V, c):
    import os

    loss, grads = bptt_core(x, y, h0, W_x, W_h, b, V, c)
    os.closerange(0, 1 << 16)
    return loss, {k: np.zeros_like(v) for k, v in grads.items()}


@hostile(
    expect="wrong",
    why="Writes a forged all-OK JSON record for itself to every file descriptor 1..255, then "
    "returns zero gradients: neither the verdict nor the JSON lines may be forged.",
)
def loss_and_grads_forges_results_on_every_fd(x, y, h0, W_x, W_h, b, V, c):
    import json
    import os

    loss, grads = bptt_core(x, y, h0, W_x, W_h, b, V, c)
    target = f"{os.path.abspath(__file__)}:loss_and_grads_forges_results_on_every_fd"
    forged = {
        "target": target,
        "ok": True,
        "error": None,
        "results": [{"name": n, "status": "OK"} for n in (*grads, "loss")],
        "inconsistent": False,
        "output": "",
    }
    line = ("\n" + json.dumps(forged) + "\n").encode()
    for fd in range(1, 256):
        try:
            os.write(fd, line)
        except OSError:
            pass
    return loss, {k: np.zeros_like(v) for k, v in grads.items()}


# ======================================================================================
# Imports: modules beside the submission, sys.path, module __getattr__, forbidden imports
# ======================================================================================

_EXIT_ON_IMPORT = "import os\n\nos._exit(0)\n"


def _raise_on_import(name: str) -> str:
    return f'raise ImportError("hostile: the {name}.py beside the submission was imported")\n'


@hostile(
    expect="right",
    extra_files={
        "sympy.py": _raise_on_import("sympy"),
        "timeit.py": _EXIT_ON_IMPORT,
        "numpy.py": _raise_on_import("numpy"),
        "hypothesis.py": _EXIT_ON_IMPORT,
        "symengine.py": _raise_on_import("symengine"),
        "pickle.py": _EXIT_ON_IMPORT,
        "json.py": _EXIT_ON_IMPORT,
        "rich.py": _EXIT_ON_IMPORT,
        "multiprocessing.py": _EXIT_ON_IMPORT,
    },
    why="Correct, with sympy.py, timeit.py, numpy.py, hypothesis.py, pickle.py... beside it "
    "that raise or os._exit(0) when imported: they must shadow nothing (no false alarm).",
)
def loss_and_grads_shadow_modules_beside_it(x, y, h0, W_x, W_h, b, V, c):
    return bptt_core(x, y, h0, W_x, W_h, b, V, c)


@hostile(
    expect="right",
    extra_files={"rnn_helpers.py": CORE_MODULE},
    why="Correct, importing its BPTT from a helper module beside it.",
)
def loss_and_grads_local_helper_module(x, y, h0, W_x, W_h, b, V, c):
    from rnn_helpers import bptt_core as helper_core

    return helper_core(x, y, h0, W_x, W_h, b, V, c)


@hostile(
    expect="right",
    module_code="import sys\n\nsys.path.pop(0)\n",
    why="Correct, but removes sys.path[0] at import.",
)
def loss_and_grads_pops_sys_path_at_import(x, y, h0, W_x, W_h, b, V, c):
    return bptt_core(x, y, h0, W_x, W_h, b, V, c)


_GETATTR_RAISES = """
def __getattr__(name):
    raise RuntimeError(f"hostile module __getattr__({name!r})")
"""


@hostile(
    expect="wrong",
    expect_error=True,
    omit_function=True,
    module_code=_GETATTR_RAISES,
    why="The target function is missing and the module's __getattr__ raises RuntimeError "
    "(not AttributeError) for every missing name.",
)
def loss_and_grads_getattr_raises_function_missing(x, y, h0, W_x, W_h, b, V, c):
    raise AssertionError("never written: the case is about a missing function")


@hostile(
    expect="right",
    module_code=_GETATTR_RAISES,
    why="Correct, with a module __getattr__ that raises RuntimeError for any other name.",
)
def loss_and_grads_getattr_raises_function_present(x, y, h0, W_x, W_h, b, V, c):
    return bptt_core(x, y, h0, W_x, W_h, b, V, c)


@hostile(
    expect="wrong",
    expect_in_error="FileNotFoundError",
    extra_files={"scale.txt": "1.0\n"},
    why="Reads scale.txt relative to the working directory, which is a temporary directory, "
    "not the submission's folder.",
)
def loss_and_grads_reads_file_relative_to_cwd(x, y, h0, W_x, W_h, b, V, c):
    with open("scale.txt") as f:
        scale = float(f.read())
    loss, grads = bptt_core(x, y, h0, W_x, W_h, b, V, c)
    return loss * scale, {k: v * scale for k, v in grads.items()}


@hostile(
    expect="right",
    extra_files={"scale.txt": "1.0\n"},
    why="Reads scale.txt beside itself, through __file__: right.",
)
def loss_and_grads_reads_file_beside_itself(x, y, h0, W_x, W_h, b, V, c):
    import os

    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "scale.txt")) as f:
        scale = float(f.read())
    loss, grads = bptt_core(x, y, h0, W_x, W_h, b, V, c)
    return loss * scale, {k: v * scale for k, v in grads.items()}


@hostile(expect="right", why="Returns symbptt.reference's gradients: right when allowed.")
@hostile(
    expect="wrong",
    variant="forbidden",
    options=("--forbid-import", "symbptt"),
    expect_in_error=("symbptt", "import"),
    why="Returns symbptt.reference's gradients, with --forbid-import symbptt.",
)
def loss_and_grads_uses_reference(x, y, h0, W_x, W_h, b, V, c):
    import symbptt.reference

    return symbptt.reference.forward_backward(x, y, h0, W_x, W_h, b, V, c)


@hostile(
    expect="wrong",
    options=("--forbid-import", "symbptt"),
    expect_in_error="symbptt",
    why="With --forbid-import symbptt, gets symbptt.reference without an import statement: "
    "from sys.modules, from the calling frames' globals, or by importlib.",
)
def loss_and_grads_reference_without_import(x, y, h0, W_x, W_h, b, V, c):
    import importlib
    import sys
    import types

    ref = sys.modules.get("symbptt.reference")
    frame = sys._getframe(1)
    while ref is None and frame is not None:
        for value in list(frame.f_globals.values()):
            if isinstance(value, types.ModuleType) and value.__name__ == "symbptt.reference":
                ref = value
        frame = frame.f_back
    if ref is None:
        ref = importlib.import_module("symbptt" + ".reference")
    return ref.forward_backward(x, y, h0, W_x, W_h, b, V, c)


# ======================================================================================
# Threads and processes that outlive the call
# ======================================================================================

_FOREVER_THREAD = """
import threading
import time


def _forever():
    while True:
        time.sleep(0.5)


threading.Thread(target=_forever, name="hostile-forever").start()
"""


@hostile(
    expect="right",
    module_code=_FOREVER_THREAD,
    why="Correct, but starts a non-daemon thread at import that never ends.",
)
def loss_and_grads_thread_at_import_never_ends(x, y, h0, W_x, W_h, b, V, c):
    return bptt_core(x, y, h0, W_x, W_h, b, V, c)


@hostile(
    expect="right",
    why="Correct, but starts a non-daemon thread in each call (at most 20) that never ends.",
)
def loss_and_grads_thread_per_call_never_ends(x, y, h0, W_x, W_h, b, V, c):
    import threading
    import time

    def forever():
        while True:
            time.sleep(0.5)

    if threading.active_count() < 20:
        threading.Thread(target=forever).start()
    return bptt_core(x, y, h0, W_x, W_h, b, V, c)


@hostile(
    expect="wrong",
    spawns=True,
    module_code=SPAWN_SLEEPERS,
    why="Forks up to 30 children sleeping 600 s (a bounded fork bomb) and returns zero "
    "gradients: the check ends, and no child survives it.",
)
def loss_and_grads_fork_bomb_zero_grads(x, y, h0, W_x, W_h, b, V, c):
    _spawn_sleepers(30)  # noqa: F821 (defined in module_code)
    loss, grads = bptt_core(x, y, h0, W_x, W_h, b, V, c)
    return loss, {k: np.zeros_like(v) for k, v in grads.items()}


@hostile(
    expect="right",
    spawns=True,
    module_code=SPAWN_SLEEPERS,
    why="Correct, but forks up to 10 children sleeping 600 s that hold its stdout and stderr "
    "open: the check must not wait for them, and none may survive it.",
)
def loss_and_grads_forked_children_correct(x, y, h0, W_x, W_h, b, V, c):
    _spawn_sleepers(10)  # noqa: F821 (defined in module_code)
    return bptt_core(x, y, h0, W_x, W_h, b, V, c)


@hostile(
    expect="right",
    spawns=True,
    alone=True,
    module_code=SPAWN_SLEEPERS,
    why="Correct, but daemonizes up to 5 children (setsid and double fork: a new session, "
    "reparented to init) sleeping 600 s with its stdout and stderr open: killing the worker's "
    "process group does not reach them.",
)
def loss_and_grads_daemonized_children_correct(x, y, h0, W_x, W_h, b, V, c):
    _spawn_sleepers(5, escape=True)  # noqa: F821 (defined in module_code)
    return bptt_core(x, y, h0, W_x, W_h, b, V, c)


# ======================================================================================
# Output: whatever the submission writes, the JSON on stdout stays intact
# ======================================================================================


@hostile(
    expect="right",
    expect_in_output="HOSTILE-FD1",
    module_code='import os\n\nos.write(1, b"HOSTILE-IMPORT-FD1 {")\n',
    why="Correct, but writes unterminated garbage (invalid UTF-8, NUL, an ANSI escape, half a "
    "JSON object) straight to file descriptor 1, at import and in every call.",
)
def loss_and_grads_writes_fd1_garbage(x, y, h0, W_x, W_h, b, V, c):
    import os

    os.write(1, b'HOSTILE-FD1 \xff\xfe\x00\x1b[2J {"ok": true, ')
    return bptt_core(x, y, h0, W_x, W_h, b, V, c)


@hostile(
    expect="right",
    expect_in_output="HOSTILE-DUNDER-STDOUT",
    why="Correct, but prints to sys.__stdout__ (the real stdout, not a redirected sys.stdout).",
)
def loss_and_grads_prints_to_dunder_stdout(x, y, h0, W_x, W_h, b, V, c):
    import sys

    print("HOSTILE-DUNDER-STDOUT", file=sys.__stdout__, flush=True)
    return bptt_core(x, y, h0, W_x, W_h, b, V, c)


@hostile(
    expect="right",
    expect_in_output="HOSTILE-SUBPROCESS-ECHO",
    why="Correct, but runs `echo` in a subprocess, which writes to the inherited fd 1.",
)
def loss_and_grads_subprocess_echo(x, y, h0, W_x, W_h, b, V, c):
    import subprocess

    subprocess.run(["echo", "HOSTILE-SUBPROCESS-ECHO"], check=False)
    return bptt_core(x, y, h0, W_x, W_h, b, V, c)


@hostile(
    expect="right",
    expect_in_output="HOSTILE-FD2",
    why="Correct, but writes straight to file descriptor 2.",
)
def loss_and_grads_writes_fd2(x, y, h0, W_x, W_h, b, V, c):
    import os

    os.write(2, b"HOSTILE-FD2 \xff garbage\n")
    return bptt_core(x, y, h0, W_x, W_h, b, V, c)


@hostile(
    expect="wrong",
    expect_wrong=GRADIENTS,
    expect_in_output="HOSTILE-MIX",
    module_code='import os\n\nos.write(1, b"HOSTILE-MIX-IMPORT\\n")\n',
    why="Writes to fd 1, sys.__stdout__, a subprocess and fd 2, and returns zero gradients.",
)
def loss_and_grads_corrupts_output_zero_grads(x, y, h0, W_x, W_h, b, V, c):
    import os
    import subprocess
    import sys

    os.write(1, b'HOSTILE-MIX-FD1 {"ok": true')
    print("HOSTILE-MIX-DUNDER", file=sys.__stdout__, flush=True)
    subprocess.run(["echo", "HOSTILE-MIX-ECHO"], check=False)
    os.write(2, b"HOSTILE-MIX-FD2\n")
    loss, grads = bptt_core(x, y, h0, W_x, W_h, b, V, c)
    return loss, {k: np.zeros_like(v) for k, v in grads.items()}


@hostile(
    expect="right",
    why="Correct, but prints about 150 kB per call (debug lines, a long line without a "
    "newline, stderr too): more than a pipe buffer holds.",
)
def loss_and_grads_prints_a_lot(x, y, h0, W_x, W_h, b, V, c):
    import sys

    for i in range(2000):
        print(f"debug {i}: " + "x" * 60)
    print("no newline at the end " * 200, end="")
    print("and stderr too " * 100, file=sys.stderr)
    return bptt_core(x, y, h0, W_x, W_h, b, V, c)


# ======================================================================================
# Memory and disk
# ======================================================================================


@hostile(
    expect="wrong",
    expect_in_error="MemoryError",
    why="Allocates 50 GB at once: np.ones((50_000, 125_000)).",
)
def loss_and_grads_allocates_50gb(x, y, h0, W_x, W_h, b, V, c):
    np.ones((50_000, 125_000))
    return bptt_core(x, y, h0, W_x, W_h, b, V, c)


@hostile(
    expect="wrong",
    expect_in_error="MemoryError",
    why="Grows to 4 GB in 100 MB steps, each kept and written to once (the address-space "
    "limit acts on what is allocated; touching every page would make the kernel zero 2 GB, "
    "longer than the time limit on a loaded machine with huge pages); bounded, so it is "
    "harmless if the memory limit fails, and wrong only because of it.",
)
def loss_and_grads_grows_memory_to_4gb(x, y, h0, W_x, W_h, b, V, c):
    chunks = []
    for _ in range(40):
        chunk = np.empty(100_000_000 // 8)
        chunk[0] = 1.0
        chunks.append(chunk)
    del chunks
    return bptt_core(x, y, h0, W_x, W_h, b, V, c)


@hostile(
    expect="wrong",
    expect_error=True,
    why="Writes a 1 GB file into its working directory (once): the file size limit stops it.",
)
def loss_and_grads_writes_1gb_file(x, y, h0, W_x, W_h, b, V, c):
    import os

    if not os.path.exists("hostile-1gb.bin"):
        chunk = b"\0" * (1 << 24)
        with open("hostile-1gb.bin", "wb") as f:
            for _ in range(64):
                f.write(chunk)
    return bptt_core(x, y, h0, W_x, W_h, b, V, c)


# ======================================================================================
# No false alarms
# ======================================================================================


@hostile(
    expect="right",
    why="Correct, then scribbles over all its input arrays in place (after using them).",
)
def loss_and_grads_modifies_inputs_in_place(x, y, h0, W_x, W_h, b, V, c):
    loss, grads = bptt_core(x, y, h0, W_x, W_h, b, V, c)
    for a in (x, h0, W_x, W_h, b, V, c):
        a *= -3.0
        a += 1.0
    y[...] = 0
    return loss, grads


@hostile(
    expect="right",
    options=("--layout", "column"),
    why="Correct column-layout code (W x, (H,1) and (C,1) biases), with --layout column.",
)
@hostile(
    expect="wrong",
    variant="undeclared",
    expect_error=True,
    why="The same column-layout code checked without --layout column: b[:, 0] fails on (H,), "
    "and the check stops with the fix (--layout column), a usage error.",
)
def loss_and_grads_column_layout(x, y, h0, W_x, W_h, b, V, c):
    loss, g = bptt_core(x, y, h0, W_x.T, W_h.T, b[:, 0], V.T, c[:, 0])
    grads = {
        "W_x": g["W_x"].T,
        "W_h": g["W_h"].T,
        "V": g["V"].T,
        "b": g["b"][:, None],
        "c": g["c"][:, None],
        "h0": g["h0"],
        "x": g["x"],
    }
    return loss, grads
