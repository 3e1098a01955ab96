"""The worker process and its wire: symbptt/checking/worker.py (child) and isolation.py (parent).

The wire carries plain data both ways and never executes what it reads; a worker answers every
call with Returned, Raised or Died whatever the user's code does (hang, crash, exit, print,
fork, allocate), captures what it writes, and leaves no process or folder behind. Submissions
are small files written into a temporary folder; each test starts its own worker. Time limits
are short (1-2 s) and the only wall-clock assertions are generous upper bounds.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import random
import re
import signal
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from symbptt.checking import worker as wire
from symbptt.checking.isolation import Died, InProcess, Limits, Raised, Returned, Worker
from symbptt.checking.worker import WIRE_DTYPES, Foreign, Opaque, WireError
from symbptt.errors import TargetError

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="workers need POSIX")

#: Short per-call limit for the calls meant to hang or to be cut off.
SHORT = Limits(timeout=1.0, load_timeout=20.0)
#: Outside the sandbox: for tests that read the worker's pids and paths from this side (a
#: sandboxed worker's are its namespace's; tests/test_sandbox.py measures the sandbox).
UNSANDBOXED = Limits(sandbox="off")
#: Generous bounds for anything that should be quick (process start included).
QUICK = 15.0


def roundtrip(value):
    """value through one frame: encode, then decode the payload after the length prefix."""
    frame = wire.encode({"value": value})
    (size,) = struct.unpack("<Q", frame[:8])
    assert size == len(frame) - 8
    return wire.decode(frame[8:])["value"]


def payload(header, data: bytes = b"") -> bytes:
    """A frame payload (no length prefix) with this JSON header and these array bytes."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<I", len(text)) + text + data


def assert_same(got, want) -> None:
    """Equal values of exactly the same types; arrays bit for bit, floats nan-aware."""
    assert type(got) is type(want), (type(got), type(want))
    if isinstance(want, np.ndarray | np.generic):
        assert got.dtype == want.dtype and np.shape(got) == np.shape(want)
        assert np.asarray(got).tobytes() == np.ascontiguousarray(want).tobytes()
    elif isinstance(want, float):
        assert (math.isnan(got) and math.isnan(want)) or (
            got == want and math.copysign(1, got) == math.copysign(1, want)
        )
    elif isinstance(want, list | tuple):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_same(g, w)
    elif isinstance(want, dict):
        assert list(got) == list(want)
        for key in want:
            assert_same(got[key], want[key])
    else:
        assert got == want


# ======================================================================================
# The wire: encode / decode
# ======================================================================================

DTYPES = sorted(WIRE_DTYPES)
wire_arrays = hnp.arrays(
    dtype=st.sampled_from(DTYPES).map(np.dtype),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
)
numpy_scalars = hnp.arrays(dtype=st.sampled_from(DTYPES).map(np.dtype), shape=()).map(
    lambda a: a[()]
)
leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63) + 1, 2**63 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | wire_arrays
    | numpy_scalars
)
plain_data = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=3)
        | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=4) | st.integers(-3, 3), children, max_size=3)
    ),
    max_leaves=10,
)


@given(plain_data)
def test_plain_data_survives_the_wire_with_its_types(value):
    assert_same(roundtrip(value), value)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (3, 0), (2, 3)], ids=["0-d", "empty", "3x0", "2x3"])
def test_arrays_of_every_wire_dtype_and_shape_survive(dtype, shape):
    array = (np.arange(int(np.prod(shape))) % 2).astype(dtype).reshape(shape)
    assert_same(roundtrip(array), array)


@pytest.mark.parametrize("dtype", DTYPES)
def test_numpy_scalars_keep_their_dtype(dtype):
    scalar = np.ones((), dtype=dtype)[()]
    got = roundtrip(scalar)
    assert isinstance(got, np.generic) and got.dtype == np.dtype(dtype)
    assert_same(got, scalar)


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        -float("inf"),
        -0.0,
        5e-324,
        np.array([np.nan, np.inf, -np.inf, -0.0]),
        np.float16("nan"),
        np.complex128(complex(np.inf, np.nan)),
    ],
    ids=["nan", "inf", "-inf", "-0.0", "subnormal", "array of specials", "float16 nan", "complex"],
)
def test_special_floats_survive(value):
    assert_same(roundtrip(value), value)


@pytest.mark.parametrize(
    "array",
    [
        np.arange(3, dtype=">f8"),
        np.arange(6, dtype=">i4").reshape(2, 3),
        np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        np.arange(10.0)[::3],
        np.arange(6.0).reshape(2, 3).T,
    ],
    ids=["big-endian float", "big-endian int", "fortran order", "strided", "transposed view"],
)
def test_any_layout_or_byte_order_arrives_with_the_same_values(array):
    got = roundtrip(array)
    assert isinstance(got, np.ndarray) and got.shape == array.shape
    assert got.dtype == array.dtype.newbyteorder("=")
    np.testing.assert_array_equal(got, array)


def test_decoded_arrays_are_writable_copies():
    got = roundtrip(np.zeros(3))
    got[0] = 1.0  # a user's function may update its arguments in place
    assert got[0] == 1.0


class Thing:
    pass


class HostileRepr:
    def __repr__(self):
        raise RuntimeError("no repr for you")


@pytest.mark.parametrize(
    "value, type_name",
    [
        (Thing(), "Thing"),
        (lambda x: x, "function"),
        (HostileRepr(), "HostileRepr"),
        (np.array([1, "a", None], dtype=object), "array of object"),
        (np.array(["ab", "c"]), "array of <U2"),
        ({1, 2}, "set"),
        (2**70, "int"),
        (b"bytes", "bytes"),
    ],
    ids=[
        "custom class",
        "function",
        "raising __repr__",
        "object array",
        "string array",
        "set",
        "huge int",
        "bytes",
    ],
)
def test_what_the_wire_cannot_carry_arrives_as_opaque_naming_its_type(value, type_name):
    got = roundtrip(value)
    assert isinstance(got, Opaque)
    assert got.type_name == type_name
    assert repr(got) == got.text and len(got.text) <= 2100


def test_opaque_text_of_a_raising_repr_names_the_type():
    assert roundtrip(HostileRepr()).text == "<HostileRepr object>"


def test_structures_too_deep_arrive_opaque_not_as_an_error():
    deep: list = []
    for _ in range(100):
        deep = [deep]
    got = roundtrip(deep)
    while isinstance(got, list):
        got = got[0]
    assert isinstance(got, Opaque) and got.type_name == "structure"


class FakeBFloat16Tensor:
    """Enough of a torch bfloat16 tensor: NumPy cannot view it, even detached and on the CPU;
    .float() can."""

    dtype = "torch.bfloat16"

    def __init__(self, values):
        self._values = np.asarray(values, dtype=np.float32)

    def __array__(self, *args, **kwargs):
        raise TypeError("Got unsupported ScalarType BFloat16")

    def detach(self):
        return self

    def cpu(self):
        return self

    def float(self):
        return FakeFloat32Tensor(self._values)


class FakeFloat32Tensor:
    dtype = "torch.float32"

    def __init__(self, values):
        self._values = values

    def __array__(self, dtype=None, copy=None):
        return self._values if dtype is None else self._values.astype(dtype)

    def cpu(self):
        return self


class FakeGradTensor:
    """A float64 torch tensor that requires grad: NumPy refuses it until it is detached."""

    dtype = "torch.float64"

    def __init__(self, values):
        self._values = np.asarray(values, dtype=np.float64)

    def __array__(self, *args, **kwargs):
        raise RuntimeError("Can't call numpy() on Tensor that requires grad")

    def detach(self):
        return FakeFloat32Tensor(self._values)  # a plain view, keeping float64


def test_a_tensor_that_requires_grad_keeps_its_float64_precision():
    got = roundtrip({"dW": FakeGradTensor([[1.5, -2.0]])})["dW"]
    assert isinstance(got, np.ndarray) and got.dtype == np.float64


class Unviewable:
    """Claims to be array-like but can be turned into nothing."""

    def __array__(self, *args, **kwargs):
        raise TypeError("no")


def test_a_bfloat16_tensor_arrives_as_foreign_float32_naming_its_dtype():
    got = roundtrip({"dW": FakeBFloat16Tensor([[1.5, -2.0]])})["dW"]
    assert isinstance(got, Foreign) and got.dtype_name == "bfloat16"
    assert got.array.dtype == np.float32
    np.testing.assert_array_equal(got.array, [[1.5, -2.0]])


def test_a_tensor_numpy_can_view_arrives_as_a_plain_array():
    got = roundtrip(FakeFloat32Tensor(np.array([1.0, 2.0], dtype=np.float32)))
    assert_same(got, np.array([1.0, 2.0], dtype=np.float32))


def test_an_array_like_that_cannot_be_converted_arrives_opaque():
    got = roundtrip(Unviewable())
    assert isinstance(got, Opaque) and got.type_name == "Unviewable"


VALID = wire.encode({"a": np.arange(3.0), "b": [1, "x"], "c": np.int8(4)})[8:]


class _Pwn:
    """Unpickling this would create a folder: proof that something was executed."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


MALFORMED = {
    "empty": b"",
    "length only": struct.pack("<I", 10),
    "header not JSON": payload(b"{not json"),
    "header not a dict": payload([1, 2, 3]),
    "unknown dtype": payload({"body": {"array": 0}, "buffers": [["|O", [1], 8]]}, b"\0" * 8),
    "datetime dtype": payload({"body": {"array": 0}, "buffers": [["<M8[s]", [1], 8]]}, b"\0" * 8),
    "bytes not a multiple of the item size": payload(
        {"body": {"array": 0}, "buffers": [["<f8", [2], 12]]}, b"\0" * 12
    ),
    "shape disagrees with the bytes": payload(
        {"body": {"array": 0}, "buffers": [["<f8", [5], 16]]}, b"\0" * 16
    ),
    "array index out of range": payload({"body": {"array": 3}, "buffers": []}),
    "array index not a number": payload({"body": {"array": "0"}, "buffers": []}),
    "float that is not a number": payload({"body": {"float": "one"}, "buffers": []}),
    "buffer entry of the wrong arity": payload({"body": 1, "buffers": [["<f8", [1]]]}),
    "nested too deep for the parser": payload(b"[" * 100_000),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=list(MALFORMED))
def test_malformed_payloads_raise_wire_error(data):
    with pytest.raises(WireError):
        wire.decode(data)


def test_every_truncation_of_a_valid_payload_raises_wire_error():
    assert wire.decode(VALID)["b"] == [1, "x"]
    for cut in range(len(VALID)):
        with pytest.raises(WireError):
            wire.decode(VALID[:cut])


@pytest.mark.parametrize("framed", [False, True], ids=["bare pickle", "pickle as header"])
def test_a_pickle_payload_is_refused_and_never_executed(tmp_path, framed):
    target = tmp_path / "pwned"
    data = pickle.dumps(_Pwn(str(target)))
    with pytest.raises(WireError):
        wire.decode(payload(data) if framed else data)
    assert not target.exists()


# ======================================================================================
# The wire over file descriptors: send / receive
# ======================================================================================


@pytest.fixture
def pipe():
    r, w = os.pipe()
    fds = {"r": r, "w": w}
    yield fds
    for fd in fds.values():
        try:
            os.close(fd)
        except OSError:
            pass


def _close(fds, end):
    os.close(fds[end])
    fds[end] = -1


def test_send_then_receive_round_trips_a_frame_larger_than_the_pipe(pipe):
    big = np.arange(2**18, dtype=np.float64)  # 2 MiB, far beyond a pipe's buffer
    writer = threading.Thread(target=wire.send, args=(pipe["w"], {"big": big, "n": 1}))
    writer.start()
    got = wire.receive(pipe["r"], deadline=time.monotonic() + QUICK)
    writer.join()
    assert got["n"] == 1 and np.array_equal(got["big"], big)


@pytest.mark.parametrize(
    "written",
    [b"", b"\x10\0\0", wire.encode({"a": 1})[:-3]],
    ids=["nothing", "part of the length", "part of the payload"],
)
def test_receive_returns_none_at_end_of_file(pipe, written):
    os.write(pipe["w"], written)
    _close(pipe, "w")
    assert wire.receive(pipe["r"], deadline=time.monotonic() + QUICK) is None


@pytest.mark.parametrize(
    "written", [b"", wire.encode({"a": 1})[:-3]], ids=["nothing", "part of a frame"]
)
def test_receive_raises_timeout_past_its_deadline(pipe, written):
    os.write(pipe["w"], written)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        wire.receive(pipe["r"], deadline=started + 0.2)
    assert 0.15 <= time.monotonic() - started < QUICK


def test_receive_refuses_a_frame_larger_than_the_limit_without_reading_it(pipe):
    os.write(pipe["w"], struct.pack("<Q", wire.MAX_FRAME + 1))
    with pytest.raises(WireError, match="larger than the limit"):
        wire.receive(pipe["r"], deadline=time.monotonic() + QUICK)


def test_send_gives_up_at_its_deadline_when_nobody_reads(pipe):
    os.set_blocking(pipe["w"], False)  # as the parent's end of the request pipe is
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        wire.send(pipe["w"], {"big": np.zeros(2**18)}, deadline=started + 0.3)
    assert time.monotonic() - started < QUICK


# ======================================================================================
# Spawned workers: "file.py:function" in a fresh interpreter
# ======================================================================================

SUBMISSION = """
import os
import subprocess
import sys
import time

import numpy as np

CONSTANT = 3
_children = []


def _private_helper():
    pass


def add(a, b=0):
    return a + b


def fail(message):
    raise ValueError(message)  # RAISE-HERE


def singular():
    return np.linalg.inv(np.zeros((2, 2)))  # NUMPY-RAISES-HERE


def hang():
    time.sleep(600)


def exit_zero():
    os._exit(0)


def segfault():
    import ctypes

    ctypes.string_at(0)


def kill_self():
    os.kill(os.getpid(), 9)


_PROCESS_ID = os.urandom(8).hex()  # one per process (pids repeat in a sandbox's namespace)


def crash_if(crash):
    if crash:
        os._exit(3)
    return _PROCESS_ID


def talk():
    print("printed-on-stdout")
    sys.stderr.write("written-on-stderr\\n")
    os.write(1, b"raw-fd-1\\n")
    os.write(2, b"raw-fd-2\\n")
    subprocess.run(["echo", "from-a-subprocess"], check=True)
    return "talked"


def shout(n):
    sys.stdout.write("HEAD" + "x" * n + "TAIL\\n")


def where():
    return {"cwd": os.getcwd(), "path": list(sys.path)}


def write_file(name):
    with open(name, "w") as f:
        f.write("x")
    return os.path.abspath(name)


def import_module(name):
    import importlib

    importlib.import_module(name)
    return name


def allocate(nbytes):
    return int(np.zeros(nbytes, dtype=np.uint8).nbytes)  # calloc: no page is touched


def spawn_sleeper(how):
    if how == "new session":
        child = subprocess.Popen(["sleep", "600"], start_new_session=True)
    elif how == "empty environment":
        child = subprocess.Popen(["env", "-i", "sleep", "600"], start_new_session=True)
    else:  # orphaned: the shell exits, its background sleep is left behind
        out = subprocess.run(
            ["sh", "-c", "sleep 600 >/dev/null 2>&1 & echo $!"],
            capture_output=True, text=True, check=True,
        )
        return int(out.stdout)
    _children.append(child)
    return child.pid


def leave_sleeper_and_exit(pid_file):
    child = subprocess.Popen(["env", "-i", "sleep", "600"], start_new_session=True)
    with open(pid_file, "w") as f:
        f.write(str(child.pid))
    os._exit(0)


def background_then_exit():
    os.system("sleep 30 &")  # inherits every inheritable descriptor of the worker
    os._exit(3)


def _write_end():
    import fcntl

    for name in sorted(os.listdir("/proc/self/fd"), key=int):
        fd = int(name)
        try:
            if fd > 2 and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY:
                return fd
        except OSError:
            pass
    raise RuntimeError("no write end")


def forge(kind):
    import __main__

    # The response pipe: argv[2] without the sandbox; inside it, whose argv is neutral, the
    # write end of a pipe among its descriptors (its stdout and stderr are the output pipe).
    fd = int(sys.argv[2]) if len(sys.argv) > 2 else _write_end()
    if kind == "stale id":
        __main__.send(fd, {"id": -1, "returned": "forged"})
        return "real"
    if kind == "malformed raised":
        __main__.send(fd, {"id": 1, "raised": 5})
    else:
        os.write(fd, b"\\xff" * 16)
    time.sleep(600)
"""


def _line_of(source: str, marker: str) -> int:
    return next(i for i, line in enumerate(source.splitlines(), 1) if marker in line)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """The submissions, one folder; `submission.py` holds most of the functions."""
    root = tmp_path_factory.mktemp("submissions").resolve()
    (root / "submission.py").write_text(SUBMISSION)
    return root


@pytest.fixture(scope="module")
def submission(folder) -> Path:
    return folder / "submission.py"


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


@pytest.fixture
def spawn(submission):
    """Worker.for_target on submission.py (or another file), closed after the test."""
    workers = []

    def make(function, *, path=None, **options):
        worker = Worker.for_target(f"{path or submission}:{function}", **options)
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.close()


def _alive(pid: int) -> bool:
    """Running (a zombie counts as gone: it is only waiting to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat.rpartition(b")")[2].split()[0] != b"Z"


def _wait_until(predicate, timeout: float = QUICK) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


linux_only = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


def test_a_spawned_call_returns_the_functions_value(spawn):
    worker = spawn("add")
    assert worker.load() is None
    outcome = worker.call([np.arange(3.0)], {"b": 1.0})
    assert isinstance(outcome, Returned)
    np.testing.assert_array_equal(outcome.value, [1.0, 2.0, 3.0])
    assert worker.call([2], {}) == Returned(2)  # the same worker answers again
    assert worker.restarts == 0


def test_a_raise_names_the_users_file_and_line(spawn, submission):
    outcome = spawn("fail").call(["my message"], {})
    line = _line_of(SUBMISSION, "RAISE-HERE")
    assert isinstance(outcome, Raised)
    assert (outcome.type, outcome.message, outcome.at_call) == ("ValueError", "my message", False)
    assert outcome.frame.startswith(f"{submission}:{line}: raise ValueError(message)")


@pytest.mark.parametrize(
    "args, kwargs",
    [([], {}), ([1, 2, 3], {}), ([1], {"nope": 2})],
    ids=["too few", "too many", "unknown keyword"],
)
def test_a_signature_mismatch_is_raised_at_the_call(spawn, args, kwargs):
    outcome = spawn("add").call(args, kwargs)
    assert isinstance(outcome, Raised)
    assert outcome.type == "TypeError" and outcome.at_call and outcome.frame is None


def test_a_raise_inside_numpy_names_the_users_line_not_numpys(spawn, submission):
    outcome = spawn("singular").call([], {})
    assert isinstance(outcome, Raised) and outcome.type == "LinAlgError"
    assert outcome.frame.startswith(f"{submission}:{_line_of(SUBMISSION, 'NUMPY-RAISES')}:")


DEATHS = {
    "hangs": ("hang", r"did not return within 1 s"),
    "os._exit(0)": ("exit_zero", r"exit status 0 during the call"),
    "segfault": ("segfault", r"during the call: a segmentation fault"),
    "SIGKILL": ("kill_self", r"killed \(SIGKILL\)"),
}


@pytest.mark.parametrize("function, reason", DEATHS.values(), ids=list(DEATHS))
def test_a_call_that_never_answers_is_died_with_its_reason(spawn, function, reason):
    worker = spawn(function, limits=SHORT)
    assert worker.load() is None
    started = time.monotonic()
    outcome = worker.call([], {})
    assert isinstance(outcome, Died) and re.search(reason, outcome.reason), outcome
    assert time.monotonic() - started < QUICK


def test_the_worker_restarts_after_a_crash_and_counts_it(spawn):
    worker = spawn("crash_if", limits=SHORT)
    first = worker.call([False], {})
    assert isinstance(worker.call([True], {}), Died)
    again = worker.call([False], {})
    assert isinstance(again, Returned) and again.value != first.value  # a new process
    assert worker.restarts == 1
    assert worker.call([False], {}) == again and worker.restarts == 1


@pytest.mark.parametrize(
    "source, outcome_type, pattern",
    [
        ("import os\nos._exit(7)\ndef f():\n    pass\n", Died, r"exit status 7 while being"),
        ("import time\ntime.sleep(600)\ndef f():\n    pass\n", Died, r"did not finish within 1 s"),
        ("def f():\n    pass\nraise RuntimeError('broken')\n", Raised, r"broken"),
    ],
    ids=["exits", "hangs", "raises"],
)
def test_a_file_that_fails_at_import_makes_load_say_why(
    spawn, folder, source, outcome_type, pattern
):
    path = write(folder, f"import_{uuid.uuid4().hex[:8]}.py", source)
    worker = spawn("f", path=path, limits=Limits(timeout=1.0, load_timeout=1.0))
    failure = worker.load()
    assert isinstance(failure, outcome_type)
    assert re.search(pattern, failure.reason if isinstance(failure, Died) else failure.message)
    if isinstance(failure, Raised):
        assert failure.frame.startswith(f"{path}:3:")
    assert isinstance(worker.call([], {}), Died)  # and no call is attempted
    assert worker.missing is None


def test_a_missing_function_lists_the_callables_there_are(spawn):
    worker = spawn("ad")
    failure = worker.load()
    assert isinstance(failure, Raised) and failure.type == "AttributeError"
    assert {"add", "fail", "hang"} <= set(worker.missing)
    assert "_private_helper" not in worker.missing and "CONSTANT" not in worker.missing
    assert worker.not_callable is None


def test_a_name_that_is_not_callable_is_reported(spawn):
    worker = spawn("CONSTANT")
    assert isinstance(worker.load(), Raised)
    assert worker.not_callable == "int"


def test_an_attribute_error_at_import_is_not_a_missing_function(spawn, folder):
    source = "import numpy as np\nX = np.nope\ndef f():\n    pass\n"
    path = write(folder, "attribute_error.py", source)
    worker = spawn("f", path=path)
    failure = worker.load()
    assert isinstance(failure, Raised) and failure.type == "AttributeError"
    assert worker.missing is None


def test_a_syntax_error_frame_names_the_users_file(spawn, folder):
    path = write(folder, "syntax_error.py", "def f(:\n    pass\n")
    failure = spawn("f", path=path).load()
    assert isinstance(failure, Raised) and failure.type == "SyntaxError"
    assert failure.frame is None or failure.frame.startswith(str(path))


def test_a_bad_target_is_a_target_error(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # see the next test
    with pytest.raises(TargetError, match="no such file"):
        Worker.for_target("/no/such/file.py:f")
    with pytest.raises(TargetError, match="path/to/file.py:function"):
        Worker.for_target("no-function-here.py")


def test_a_bad_target_leaves_no_temporary_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(TargetError):
        Worker.for_target("/no/such/file.py:f")
    assert list(tmp_path.iterdir()) == []


def test_output_on_both_descriptors_and_from_subprocesses_is_captured(spawn):
    worker = spawn("talk")
    assert worker.call([], {}) == Returned("talked")
    worker.close()
    output = worker.output()
    for text in (
        "printed-on-stdout",
        "written-on-stderr",
        "raw-fd-1",
        "raw-fd-2",
        "from-a-subprocess",
    ):
        assert text in output


def test_long_output_keeps_its_head_and_tail_and_counts_the_gap(spawn):
    worker = spawn("shout")
    worker.call([20_000], {})
    worker.close()
    match = re.fullmatch(
        r"(HEADx*)\n\[\.\.\. (\d+) bytes not shown \.\.\.\]\n(x*TAIL\n)", worker.output()
    )
    assert match, worker.output()[:200]
    head, skipped, tail = match.group(1), int(match.group(2)), match.group(3)
    assert len(head) + skipped + len(tail) == len("HEAD") + 20_000 + len("TAIL\n")
    assert len(head) + len(tail) < 10_000


def test_the_users_folder_is_last_on_the_path(spawn, tmp_path):
    helper = f"helper_{uuid.uuid4().hex[:12]}"
    write(tmp_path, f"{helper}.py", "VALUE = 42\n")
    for shadow in ("json", "colorsys"):  # used by the worker / not yet imported by it
        write(tmp_path, f"{shadow}.py", "raise RuntimeError('the user file shadowed me')\n")
    path = write(
        tmp_path,
        "target.py",
        f"""
        import sys

        def probe():
            import colorsys, json, {helper}
            return [json.__file__, colorsys.__file__, {helper}.VALUE, sys.path[-1]]
        """,
    )
    outcome = spawn("probe", path=path).call([], {})
    assert isinstance(outcome, Returned), outcome
    json_file, colorsys_file, value, last = outcome.value
    assert Path(json_file).parent != tmp_path and Path(colorsys_file).parent != tmp_path
    assert value == 42 and Path(last) == tmp_path.resolve()


def test_cwd_is_a_temporary_folder_removed_on_close(spawn, submission):
    worker = spawn("write_file", limits=UNSANDBOXED)
    written = Path(worker.call(["scratch.txt"], {}).value)
    cwd = written.parent
    assert written.is_file()
    assert cwd != submission.parent and cwd != Path.cwd()
    worker.close()
    assert not cwd.exists()


@pytest.mark.parametrize(
    "module, forbidden",
    [("email.mime.text", ("email",)), ("colorsys", ("colorsys", "fractions"))],
    ids=["a package's submodule", "a module"],
)
def test_forbidden_imports_raise_import_error_naming_the_grader(spawn, module, forbidden):
    worker = spawn("import_module", forbid=forbidden)
    outcome = worker.call([module], {})
    assert isinstance(outcome, Raised) and outcome.type == "ImportError"
    assert "forbidden by the grader" in outcome.message
    assert worker.call(["csv"], {}) == Returned("csv")  # other imports still work


def test_a_forbidden_import_at_the_top_of_the_file_fails_the_load(spawn, tmp_path):
    path = write(tmp_path, "uses_email.py", "import email\ndef f():\n    pass\n")
    failure = spawn("f", path=path, forbid=("email",)).load()
    assert isinstance(failure, Raised) and failure.type == "ImportError"
    assert "forbidden by the grader" in failure.message


@linux_only
@pytest.mark.parametrize("how", ["new session", "empty environment", "orphaned"])
def test_processes_the_users_code_starts_are_gone_after_close(spawn, how):
    worker = spawn("spawn_sleeper", limits=UNSANDBOXED)
    outcome = worker.call([how], {})
    assert isinstance(outcome, Returned), outcome
    pid = outcome.value
    try:
        assert _alive(pid)
        worker.close()
        assert _wait_until(lambda: not _alive(pid)), f"sleep {pid} survived close()"
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


_ADOPTING_CHECKER = """
import sys
from symbptt.checking.isolation import Died, Limits, Worker, adopt_orphans

adopt_orphans()  # as the command line does: its only children are workers
worker = Worker.for_target(sys.argv[1], limits=Limits(sandbox="off"))
assert isinstance(worker.call([sys.argv[2]], {}), Died)
worker.close()
"""


@linux_only
def test_processes_left_by_code_that_then_exits_are_gone_after_close(submission, tmp_path):
    # A checker that adopts orphans (the command line, a batch process) finds them even when
    # the worker died on its own and they carry no marker (env -i) in a session of their own.
    pid_file = tmp_path / "pid"
    target = f"{submission}:leave_sleeper_and_exit"
    subprocess.run(
        [sys.executable, "-c", _ADOPTING_CHECKER, target, str(pid_file)], check=True, timeout=60
    )
    pid = int(pid_file.read_text())
    try:
        assert _wait_until(lambda: not _alive(pid), timeout=2.0), f"sleep {pid} survived"
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS is enforced on Linux only")
@pytest.mark.parametrize(
    "nbytes, expected",
    [(8 * 2**30, Raised), (64 * 2**20, Returned)],
    ids=["8 GiB is refused", "64 MiB fits"],
)
def test_the_memory_limit_turns_a_huge_allocation_into_memory_error(spawn, nbytes, expected):
    outcome = spawn("allocate", limits=Limits(memory_mb=256)).call([nbytes], {})
    assert isinstance(outcome, expected), outcome
    if expected is Raised:
        assert outcome.type.endswith("MemoryError") and not outcome.at_call


FORGERIES = {
    "stale id": lambda o: o == Returned("real"),
    "malformed raised": lambda o: isinstance(o, Raised) and o.type == "Exception",
    "garbage bytes": lambda o: isinstance(o, Died) and "could not be read" in o.reason,
}


@pytest.mark.parametrize("kind, check", FORGERIES.items(), ids=list(FORGERIES))
def test_frames_forged_by_the_users_code_never_break_the_parent(spawn, kind, check):
    outcome = spawn("forge", limits=SHORT).call([kind], {})
    assert check(outcome), outcome


def test_a_closed_worker_answers_died_and_starts_nothing(spawn):
    worker = spawn("add")
    assert worker.call([1], {}) == Returned(1)
    worker.close()
    assert isinstance(worker.call([1], {}), Died)
    assert worker.pid is None


def test_a_crash_is_named_even_when_a_background_process_holds_the_pipes(spawn):
    outcome = spawn("background_then_exit", limits=Limits(timeout=2.0)).call([], {})
    assert isinstance(outcome, Died) and "exit status 3" in outcome.reason, outcome


def test_an_answer_that_arrived_in_time_counts_however_late_it_is_collected(spawn):
    worker = spawn("add", limits=Limits(timeout=0.5))
    assert worker.load() is None
    pending = worker.submit([1], {})
    time.sleep(1.0)  # the parent busy with something else; the child answered long ago
    assert pending.outcome() == Returned(1)


@linux_only
def test_a_parent_with_many_open_descriptors_can_still_call(submission):
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        if hard != resource.RLIM_INFINITY and hard < 1200:
            pytest.skip("cannot open 1200 descriptors here")
        resource.setrlimit(resource.RLIMIT_NOFILE, (1200, hard))
    filler = []
    worker = Worker(target=f"{submission}:add")
    try:
        while not filler or filler[-1] < 1030:
            filler.append(os.open(os.devnull, os.O_RDONLY))
        worker.start()
        assert worker.call([1], {}) == Returned(1)
    finally:
        worker.close()
        for fd in filler:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# ======================================================================================
# Forked workers: a Python callable in a copy of this process
# ======================================================================================


def test_a_forked_worker_runs_closures():
    scale = 3.0

    def helper(x):
        return x * scale

    with Worker.for_callable(lambda x, shift=0: helper(x) + shift) as worker:
        outcome = worker.call([np.arange(3.0)], {"shift": 1.0})
    assert isinstance(outcome, Returned)
    np.testing.assert_array_equal(outcome.value, [1.0, 4.0, 7.0])


def _patch_the_world():
    np.allclose = lambda *a, **k: True
    random.seed(12345)
    os.environ["SYMBPTT_TEST_LEAK"] = "leaked"
    sys.modules["symbptt"].LEAKED = True
    return random.random()


def test_a_forked_childs_module_level_changes_stay_in_the_child():
    allclose, state, cwd = np.allclose, random.getstate(), os.getcwd()
    try:
        with Worker.for_callable(_patch_the_world) as worker:
            outcome = worker.call([], {})
        assert isinstance(outcome, Returned) and outcome.value == random.Random(12345).random()
        assert np.allclose is allclose and not np.allclose(1.0, 2.0)
        assert random.getstate() == state
        assert "SYMBPTT_TEST_LEAK" not in os.environ
        assert not hasattr(sys.modules["symbptt"], "LEAKED")
        assert os.getcwd() == cwd
    finally:  # should isolation ever break, do not let it break the rest of the run
        np.allclose = allclose
        os.environ.pop("SYMBPTT_TEST_LEAK", None)


def _raise_here(x):
    raise KeyError("fork-raised")  # FORK-RAISE


def test_a_forked_raise_names_this_file_and_a_signature_mismatch_is_at_call():
    with Worker.for_callable(_raise_here) as worker:
        inside = worker.call([1], {})
        at_call = worker.call([1, 2], {})
    assert isinstance(inside, Raised) and inside.type == "KeyError" and not inside.at_call
    assert inside.frame.startswith(f"{__file__}:") and "FORK-RAISE" in inside.frame
    assert isinstance(at_call, Raised) and at_call.type == "TypeError" and at_call.at_call


def test_a_forked_worker_that_hangs_is_died_and_restarts():
    def maybe_hang(hang):
        if hang:
            time.sleep(600)
        return "done"

    with Worker.for_callable(maybe_hang, limits=SHORT) as worker:
        outcome = worker.call([True], {})
        assert isinstance(outcome, Died) and "did not return within" in outcome.reason
        assert worker.call([False], {}) == Returned("done") and worker.restarts == 1


def _write_to_descriptors():
    os.write(1, b"fork-fd-1\n")
    os.write(2, b"fork-fd-2\n")
    subprocess.run(["echo", "fork-subprocess"], check=True)
    return 0


def test_a_forked_workers_descriptor_output_is_captured():
    with Worker.for_callable(_write_to_descriptors) as worker:
        assert worker.call([], {}) == Returned(0)
    for text in ("fork-fd-1", "fork-fd-2", "fork-subprocess"):
        assert text in worker.output()


def _print_things():
    print("fork-printed")
    sys.stderr.write("fork-stderr\n")
    return 0


def test_a_forked_workers_print_is_captured_whatever_sys_stdout_is(monkeypatch):
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    with Worker.for_callable(_print_things) as worker:
        assert worker.call([], {}) == Returned(0)
    assert "fork-printed" in worker.output() and "fork-stderr" in worker.output()


# ======================================================================================
# In process (isolate=False)
# ======================================================================================


def _in_process_raise():
    raise ZeroDivisionError("in-process")  # IN-PROCESS-RAISE


def _in_process_exit():
    sys.exit(4)


IN_PROCESS = {
    "raises inside": (_in_process_raise, [], "ZeroDivisionError", False),
    "signature mismatch": (_in_process_raise, [1], "TypeError", True),
    "sys.exit": (_in_process_exit, [], "SystemExit", False),
}


@pytest.mark.parametrize("fn, args, type_name, at_call", IN_PROCESS.values(), ids=list(IN_PROCESS))
def test_in_process_exceptions_are_raised_outcomes(fn, args, type_name, at_call):
    outcome = InProcess(fn).call(args, {})
    assert isinstance(outcome, Raised)
    assert (outcome.type, outcome.at_call) == (type_name, at_call)
    if not at_call:
        assert outcome.frame.startswith(f"{__file__}:")


def test_in_process_returns_the_value():
    runner = InProcess(lambda: {"grads": np.zeros(2)})
    assert runner.load() is None
    outcome = runner.call([], {})
    assert isinstance(outcome, Returned)
    assert_same(outcome.value, {"grads": np.zeros(2)})
    assert runner.output() == "" and runner.restarts == 0


def test_in_process_returns_what_a_worker_would():
    def fn():
        return {"dW": FakeBFloat16Tensor([1.0]), "other": Thing()}

    here = InProcess(fn).call([], {})
    with Worker.for_callable(fn) as worker:
        there = worker.call([], {})
    assert isinstance(here.value["dW"], Foreign) and isinstance(here.value["other"], Opaque)
    assert here.value["dW"].dtype_name == there.value["dW"].dtype_name == "bfloat16"
    assert here.value["other"].type_name == there.value["other"].type_name == "Thing"


def test_in_process_lets_keyboard_interrupt_through():
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        InProcess(interrupted).call([], {})


ORPHAN_SCRIPT = """
import sys
from symbptt.checking.isolation import Limits, Worker
worker = Worker.for_target(sys.argv[1] + ":hang", limits=Limits(timeout=600))
pending = worker.submit([], {})  # the request is in the pipe before anyone is killed
print(worker.pid, flush=True)
pending.outcome()
"""


@linux_only
def test_a_worker_does_not_outlive_a_killed_checker(submission, tmp_path):
    checker = subprocess.Popen(
        [sys.executable, "-c", ORPHAN_SCRIPT, str(submission)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # its folder is never removed
    )
    pid = None
    try:
        pid = int(checker.stdout.readline())
        checker.kill()
        checker.wait()
        assert _wait_until(lambda: not _alive(pid), timeout=2.0), f"worker {pid} outlived it"
    finally:
        checker.stdout.close()
        if checker.poll() is None:
            checker.kill()
            checker.wait()
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGKILL)
