"""The child side of isolation: the process that runs a user's code, and the wire between us.

This file runs as a script in a fresh interpreter (`python worker.py REQ_FD RES_FD`), so it
imports nothing of symbptt and nothing heavy: the standard library and NumPy, which the arrays
need. The parent (`symbptt.checking.isolation`) imports it too, for the wire format.

The wire carries frames of plain data: JSON for structure, raw bytes for arrays, never pickle.
What the user's code returns is untrusted, so the parent decodes it with no code execution: an
object the wire cannot carry arrives as an `Opaque` naming its type.
"""

from __future__ import annotations

import json
import os
import select
import struct
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

if __name__ == "__main__" and sys.flags.no_site:
    # Started with -S (the sandbox): site-packages after the standard library, without running
    # their .pth files (nothing planted there, or installed in development mode, runs here).
    import site

    sys.path += [f for f in site.getsitepackages() if f not in sys.path and os.path.isdir(f)]

import numpy as np  # noqa: E402 (after the site folders)

#: Dtypes an array may have on the wire; anything else is converted or refused.
WIRE_DTYPES = frozenset(
    ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
    + ["float16", "float32", "float64", "complex64", "complex128"]
)
#: The same dtypes by their exact byte-order strings ('<f8'), quick to test and to send.
_WIRE_CODES = frozenset(np.dtype(name).str for name in WIRE_DTYPES)
#: The largest frame either side accepts (arrays at check sizes are a few kilobytes).
MAX_FRAME = 256 * 2**20
_MAX_DEPTH = 20
_MAX_ITEMS = 10_000
#: The JSON part of a frame is small: structure only, the arrays travel as raw bytes.
_MAX_HEADER = 4 * 2**20
_MAX_TEXT = 2_000
_HEADER = struct.Struct("<Q")
_THIS_FILE = os.path.abspath(__file__)


def _sibling(name: str) -> Any:
    """A module of this folder, loaded by path (the worker script is no package member)."""
    import importlib.util

    where = os.path.join(os.path.dirname(_THIS_FILE), f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"_w_{name}", where)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


try:  # imported as part of the package (the checker, or a fork of it)
    from . import drivers, loader
except ImportError:  # run as a script in a fresh interpreter
    loader, drivers = _sibling("loader"), _sibling("drivers")
load, definitions_only, UNPARSED = loader.load, loader.definitions_only, loader.UNPARSED
#: Our files a traceback passes through on its way to the user's code (never "their line").
_OURS = tuple(os.path.abspath(m.__file__) for m in (drivers, loader))


class WireError(Exception):
    """A frame that cannot be read: truncated, too large or malformed."""


@dataclass(frozen=True)
class Opaque:
    """Something the user's code returned that is not plain data: its type and a short text."""

    type_name: str
    text: str

    def __repr__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Foreign:
    """An array whose dtype NumPy lacks (bfloat16), carried as float32 with its real dtype."""

    array: np.ndarray
    dtype_name: str


# -- encoding ------------------------------------------------------------------------------


def _short(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "..."


def _safe_text(value: Any) -> str:
    try:
        return _short(repr(value))
    except BaseException:  # a hostile __repr__
        return f"<{type(value).__name__} object>"


def _as_array(value: Any) -> tuple[np.ndarray, str] | None:
    """An array view of value (and its real dtype name) when it is array-like, else None.

    A tensor that NumPy cannot read directly (it requires grad, lives on a GPU) is detached
    and moved first; only a dtype NumPy lacks (bfloat16) is widened to float32, and then the
    real dtype travels with it so the checker never judges it at the wrong precision.
    """
    if isinstance(value, np.ndarray | np.generic):
        return np.asarray(value), ""
    if not (hasattr(value, "__array__") or hasattr(value, "__array_interface__")):
        return None
    dtype_name = str(getattr(value, "dtype", "")).replace("torch.", "")
    try:
        return np.asarray(value), dtype_name
    except BaseException:
        pass
    try:
        plain = value.detach().cpu()
    except BaseException:
        return None
    try:
        return np.asarray(plain), dtype_name
    except BaseException:
        pass
    try:  # torch bfloat16 has no NumPy dtype
        return np.asarray(plain.float()), dtype_name or "bfloat16"
    except BaseException:
        return None


class _Encoder:
    def __init__(self) -> None:
        self.buffers: list[bytes] = []
        self.meta: list[list] = []
        self.items = 0

    def encode(self, value: Any, depth: int = 0) -> Any:
        self.items += 1
        if depth > _MAX_DEPTH or self.items > _MAX_ITEMS:
            return {"opaque": "structure", "text": "a structure too deep or too large to read"}
        if isinstance(value, np.ndarray | np.generic):  # before float: np.float64 is a float
            return self._array(value, *_as_array(value))
        if value is None or isinstance(value, bool | str):
            return _short(value) if isinstance(value, str) else value
        if isinstance(value, int):
            return value if abs(value) < 2**63 else {"opaque": "int", "text": _safe_text(value)}
        if isinstance(value, float):
            return {"float": float.__repr__(value)}
        if isinstance(value, list | tuple):
            kind = "list" if isinstance(value, list) else "tuple"
            return {kind: [self.encode(v, depth + 1) for v in value]}
        if isinstance(value, Mapping):
            pairs = [
                [self.encode(k, depth + 1), self.encode(v, depth + 1)] for k, v in value.items()
            ]
            return {"dict": pairs}
        array = _as_array(value)
        if array is None or array[0].dtype.str not in _WIRE_CODES:
            return {"opaque": type(value).__name__, "text": _safe_text(value)}
        return self._array(value, *array)

    def _array(self, value: Any, data: np.ndarray, dtype_name: str) -> dict:
        code = data.dtype.str
        if code not in _WIRE_CODES and data.dtype.kind in "biufc":  # another byte order
            data = data.astype(data.dtype.newbyteorder("="))
            code = data.dtype.str
        if data.dtype.kind == "V" and str(data.dtype) == "bfloat16":  # ml_dtypes (JAX)
            dtype_name, data = "bfloat16", data.astype(np.float32)
            code = data.dtype.str
        if code not in _WIRE_CODES:
            return {"opaque": f"array of {data.dtype}", "text": _safe_text(value)}
        self.buffers.append(data.tobytes(order="C"))
        self.meta.append([code, list(data.shape), len(self.buffers[-1])])
        entry: dict[str, Any] = {"array": len(self.buffers) - 1}
        if isinstance(value, np.generic):
            entry["scalar"] = True
        if dtype_name and dtype_name not in WIRE_DTYPES and dtype_name != str(data.dtype):
            entry["dtype_name"] = dtype_name
        return entry


def encode(message: dict) -> bytes:
    """One frame: length, JSON header (structure and array table), then the array bytes."""
    encoder = _Encoder()
    body = encoder.encode(message)
    header = json.dumps({"body": body, "buffers": encoder.meta}).encode()
    payload = struct.pack("<I", len(header)) + header + b"".join(encoder.buffers)
    return _HEADER.pack(len(payload)) + payload


def roundtrip(message: dict) -> Any:
    """The message as the other side reads it: encoded (as a reply) and decoded again."""
    return decode(encode_reply(message, None)[_HEADER.size :])


def decode(payload: bytes) -> Any:
    """The message of one frame's payload; never executes anything it reads."""
    try:
        (size,) = struct.unpack_from("<I", payload)
        if size > _MAX_HEADER:
            raise WireError(f"a header of {size} bytes is larger than the limit of {_MAX_HEADER}")
        header = json.loads(payload[4 : 4 + size])
        offset, arrays = 4 + size, []
        for dtype, shape, nbytes in header["buffers"]:
            if dtype not in _WIRE_CODES:
                raise WireError(f"unknown dtype {dtype!r}")
            chunk = payload[offset : offset + nbytes]
            arrays.append(np.frombuffer(chunk, dtype=dtype).reshape(shape).copy())
            offset += nbytes
        return _decode(header["body"], arrays)
    except WireError:
        raise
    except Exception as exc:
        raise WireError(f"malformed frame ({type(exc).__name__}: {exc})") from None


def _decode(value: Any, arrays: list[np.ndarray]) -> Any:
    if not isinstance(value, dict):
        return value
    if "float" in value:
        return float(value["float"])
    if "list" in value:
        return [_decode(v, arrays) for v in value["list"]]
    if "tuple" in value:
        return tuple(_decode(v, arrays) for v in value["tuple"])
    if "dict" in value:
        out = {}
        for k, v in value["dict"]:
            key, item = _decode(k, arrays), _decode(v, arrays)
            try:
                out[key] = item
            except TypeError:  # an unhashable key
                out[_safe_text(key)] = item
        return out
    if "array" in value:
        array = arrays[value["array"]]
        if "dtype_name" in value:
            return Foreign(array, str(value["dtype_name"]))
        return array[()] if value.get("scalar") else array
    return Opaque(str(value.get("opaque", "object")), str(value.get("text", "")))


# -- frames over file descriptors ----------------------------------------------------------


def _wait(fd: int, event: int, deadline: float | None) -> bool:
    """Whether fd is ready (POLLIN or POLLOUT) before the deadline; always checks once, even
    past it, so an answer that is already there is never called late."""
    if deadline is None:
        return True
    poller = select.poll()  # not select.select: it fails on descriptors >= 1024
    poller.register(fd, event | select.POLLERR | select.POLLHUP)
    wait_ms = max(0, int((deadline - time.monotonic()) * 1000) + 1)
    return bool(poller.poll(wait_ms))


def send(fd: int, message: dict, deadline: float | None = None) -> None:
    """Write one frame to fd; TimeoutError if the reader does not take it by the deadline."""
    write_frame(fd, encode(message), deadline)


def write_frame(fd: int, frame: bytes, deadline: float | None = None) -> None:
    """Write an encoded frame to fd (which may be non-blocking)."""
    data = memoryview(frame)
    while data:
        if not _wait(fd, select.POLLOUT, deadline):
            raise TimeoutError
        try:
            written = os.write(fd, data)
        except BlockingIOError:  # a non-blocking pipe that is full: wait again
            continue
        data = data[written:]


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes | None:
    """size bytes from fd; None at end of file; TimeoutError past the deadline."""
    chunks, remaining = [], size
    while remaining:
        if not _wait(fd, select.POLLIN, deadline):
            raise TimeoutError
        chunk = os.read(fd, min(remaining, 2**20))
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def receive(fd: int, deadline: float | None = None, max_frame: int = MAX_FRAME) -> Any:
    """The next message from fd; None at end of file (the other side is gone)."""
    head = _read_exact(fd, _HEADER.size, deadline)
    if head is None:
        return None
    (size,) = _HEADER.unpack(head)
    if size > max_frame:
        raise WireError(f"a frame of {size} bytes is larger than the limit of {max_frame}")
    payload = _read_exact(fd, size, deadline)
    if payload is None:
        return None
    return decode(payload)


# -- the child: run the user's function on request ------------------------------------------


def describe_exception(
    exc: BaseException, skip: str = _THIS_FILE, user_file: str | None = None
) -> dict:
    """What the parent needs to report an exception: type, message and the user's own line.

    The line is the deepest frame in `user_file` (the user's code, not NumPy's that it called),
    else the deepest frame outside `skip` (the file that made the call); for a SyntaxError, the
    offending line itself.
    """
    try:
        message = _short(str(exc))
    except BaseException:
        message = "<the exception's message could not be printed>"
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if os.path.abspath(f.filename) not in (_THIS_FILE, skip, *_OURS)
        and not f.filename.startswith("<frozen importlib")
    ]
    frame = None
    if isinstance(exc, SyntaxError) and exc.filename:
        text = (exc.text or "").strip()
        frame = f"{exc.filename}:{exc.lineno}: {text}"
    elif frames:
        mine = [f for f in frames if user_file and _same_file(f.filename, user_file)]
        f = (mine or frames)[-1]
        frame = f"{f.filename}:{f.lineno}: {(f.line or '').strip()}"
    return {"type": type(exc).__name__, "message": message, "frame": frame, "at_call": not frames}


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.abspath(a) == os.path.abspath(b)
    except (TypeError, ValueError):
        return False


def _user_file(fn: Callable) -> str | None:
    """The file a function was written in, when it has one."""
    import inspect

    try:
        return inspect.getsourcefile(inspect.unwrap(fn))
    except Exception:  # a builtin, a callable object, or one whose attributes raise
        return None


def serve(fn: Callable, requests: int, responses: int, user_file: str | None = None) -> None:
    """Answer call requests until the parent closes the pipe or asks us to stop."""
    user_file = user_file or _user_file(fn)
    while True:
        try:
            message = receive(requests)
        except (WireError, OSError):
            return
        if not isinstance(message, dict) or message.get("kind") != "call":
            return
        reply: dict[str, Any] = {"id": message.get("id")}
        try:
            result = fn(*message.get("args", ()), **message.get("kwargs", {}))
        except BaseException as exc:  # the user's failure, SystemExit included, is data
            reply["raised"] = describe_exception(exc, user_file=user_file)
        else:
            reply["returned"] = result
        try:
            write_frame(responses, encode_reply(reply, user_file))
        except OSError:
            return


def encode_reply(reply: dict, user_file: str | None) -> bytes:
    """The encoded reply (encoded once: the user's __array__ and __repr__ run once), or a
    description of why what the user returned could not be put on the wire."""
    try:
        return encode(reply)
    except BaseException as exc:
        info = describe_exception(exc, user_file=user_file)
        return encode({"id": reply.get("id"), "unreadable": info})


def set_limits(memory_bytes: int | None, file_bytes: int | None, cpu_seconds: int | None) -> None:
    """Resource limits for this process and its children (best effort where unsupported)."""
    try:
        import resource
    except ImportError:  # not POSIX: the parent's time limit still holds
        return

    def cap(which: int, value: int) -> None:
        try:
            soft, hard = resource.getrlimit(which)
            if hard != resource.RLIM_INFINITY:
                value = min(value, hard)
            resource.setrlimit(which, (value, hard))
        except (ValueError, OSError):
            pass

    cap(resource.RLIMIT_CORE, 0)  # a crash must not leave a core file behind
    if memory_bytes is not None:
        cap(resource.RLIMIT_AS, _address_space() + memory_bytes)
    if file_bytes is not None:
        cap(resource.RLIMIT_FSIZE, file_bytes)
    if cpu_seconds is not None:
        cap(resource.RLIMIT_CPU, cpu_seconds)


def _prctl(option: int, value: int) -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux
        pass


def become_subreaper() -> None:
    """Adopt our orphaned descendants (Linux), so a double fork stays in our process tree."""
    _prctl(36, 1)  # PR_SET_CHILD_SUBREAPER


def die_with_parent(parent: int) -> None:
    """Be killed when the checker dies (Linux), and exit now if it already has."""
    import signal

    _prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    if parent and os.getppid() != parent:  # 0: in a sandbox, whose parent is its own
        os._exit(0)


def close_all_but(keep: tuple[int, ...]) -> None:
    """Close every descriptor this process has but `keep` (what it inherited: the grader's
    open files, a table of options)."""
    try:
        import resource

        top = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        top = 65536 if top == resource.RLIM_INFINITY or top > 2**20 else top
    except (ImportError, OSError, ValueError):
        top = 65536
    low = 0
    for fd in sorted({k for k in keep if k >= 0}):
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, max(low, top))


def _address_space() -> int:
    """Bytes of address space this process already uses: the memory limit comes on top."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class _Forbidden:
    """A meta-path finder that refuses to import the named top-level packages."""

    def __init__(self, names: list[str]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname.partition(".")[0] in self.names:
            raise ImportError(
                f"import of {fullname!r} is forbidden by the grader (--forbid-import)"
            )
        return None


def forbid(names: list[str]) -> None:
    """Make importing any of names (and their submodules) raise ImportError from now on."""
    if not names:
        return
    for loaded in list(sys.modules):
        if loaded.partition(".")[0] in names:
            del sys.modules[loaded]
    sys.meta_path.insert(0, _Forbidden(list(names)))


# -- code as people write it, adapted to one call per problem -------------------------------------
CallConventionError = drivers.CallConventionError


class CharRNN:
    """A min-char-rnn `lossFun(inputs, targets, hprev) -> (loss, dWxh, dWhh, dWhy, dbh, dby,
    hlast)` as one call on a batch: its weights and size globals are set in its module before
    each sequence (from fresh copies), each row of the batch is one call with token-id lists
    and an (H, 1) hprev, and the losses and gradients are added up over the rows."""

    def __init__(self, fn: Callable, namespace: dict, weights: list, sizes: dict) -> None:
        self.fn, self.namespace, self.weights, self.sizes = fn, namespace, weights, sizes

    def __call__(self, **arrays: Any) -> tuple:
        x, y, h0 = (np.asarray(arrays.pop(k)) for k in ("x", "y", "h0"))
        D = np.asarray(arrays[self.weights[0]]).shape[1]  # Wxh is (H, D)
        T, N = x.shape
        letters = {"D": D, "C": D, "H": h0.shape[1], "T": T}
        _fits(self.fn, 3, "the char-rnn style calls lossFun(inputs, targets, hprev)")
        loss, grads = 0.0, None
        for n in range(N):
            for name in self.weights:  # fresh copies: an in-place update stays in its call
                self.namespace[name] = np.array(arrays[name], dtype=np.float64)
            for name, letter in self.sizes.items():
                self.namespace[name] = int(letters[letter])
            inputs = [int(i) for i in x[:, n]]
            targets = [int(i) for i in y[:, n]]
            hprev = np.array(h0[n], dtype=np.float64).reshape(-1, 1)
            result = self.fn(inputs, targets, hprev)
            if not isinstance(result, (tuple, list)) or len(result) < 1 + len(self.weights):
                what = type(result).__name__
                size = f" of length {len(result)}" if isinstance(result, (tuple, list)) else ""
                raise CallConventionError(
                    f"the char-rnn style expects lossFun to return (loss, "
                    f"{', '.join('d' + w for w in self.weights)}, hlast); it returned a "
                    f"{what}{size}"
                )
            loss = loss + result[0]
            # Copies: code that returns the same buffers on every call must not add up
            # the next call's values into this one's.
            parts = [np.array(p, copy=True) for p in result[1 : 1 + len(self.weights)]]
            grads = parts if grads is None else [g + p for g, p in zip(grads, parts)]
        return loss, tuple(grads or ())


def _fits(fn: Callable, count: int, how: str) -> None:
    """CallConventionError (a usage error) when fn cannot take `count` positional arguments."""
    import inspect

    try:
        inspect.signature(fn).bind(*range(count))
    except TypeError as exc:
        raise CallConventionError(f"{how}, but {exc}") from None
    except ValueError:  # a builtin without a signature: let the call itself tell
        pass


def adapt(functions: list, namespace: dict, adapter: dict | None) -> Callable:
    """The one callable the parent calls: a plan runner over the user's functions or class
    (`adapter["kind"]` "plan"), or over min-char-rnn's lossFun wrapped to take one problem
    per call ("char-rnn"); without an adapter, the user's function itself."""
    if not adapter:  # the function itself, called as it is
        return functions[0]
    kind = adapter.get("kind")
    if kind == "plan":
        return drivers.PlanRunner(functions)
    if kind == "char-rnn":
        wrapped = CharRNN(functions[0], namespace, list(adapter["weights"]), dict(adapter["sizes"]))
        return drivers.PlanRunner([wrapped])
    raise CallConventionError(f"unknown adapter {kind!r}")


def _public_callables(module: Any) -> list[str]:
    try:
        return [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
    except BaseException:
        return []


def describe(objects: list, names: list[str]) -> list[dict]:
    """What each loaded object is, as plain data: a function's signature, a class's methods
    and their signatures (the checker's search reads this)."""
    import inspect

    out = []
    for name, obj in zip(names, objects):
        entry: dict[str, Any] = {"name": name}
        try:
            if inspect.isclass(obj):
                entry["kind"] = "class"
                entry["signature"] = drivers.signature_of(obj)
                methods = {}
                for attr in dir(obj):
                    if attr.startswith("__") and attr not in ("__call__", "__init__"):
                        continue
                    value = inspect.getattr_static(obj, attr, None)
                    if isinstance(value, (staticmethod, classmethod)):
                        value = value.__func__
                    if inspect.isfunction(value):
                        methods[attr] = drivers.signature_of(value)
                entry["methods"] = methods
            elif callable(obj):
                entry["kind"] = "function"
                entry["signature"] = drivers.signature_of(obj)
            else:
                entry["kind"] = type(obj).__name__
        except BaseException:  # a hostile class: described by name only
            entry.setdefault("kind", "unknown")
        out.append(entry)
    return out


def _resolve(module: Any, dotted: str) -> Any:
    """module.A.B for the name "A.B" (AttributeError naming the part that is missing)."""
    value = module
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


#: Variables the sandbox sets for the interpreter and NumPy to start (read by then): the
#: user's code sees an ordinary environment (PATH, LANG, HOME, TMPDIR).
_STARTUP_VARIABLES = ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "OPENBLAS_NUM_THREADS")
_STARTUP_VARIABLES += ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _neutral() -> None:
    """Leave the user's code less to tell a check by: the variables the start needed, our
    helper modules' entries in sys.modules (we keep our references) and our arguments."""
    for name in _STARTUP_VARIABLES:
        os.environ.pop(name, None)
    for name in [m for m in sys.modules if m.startswith("_w_")]:
        del sys.modules[name]
    sys.argv[1:] = []


def main(argv: list[str]) -> None:
    """Entry point of the worker script: load the user's function as told, then serve."""
    requests, responses, parent = int(argv[1]), int(argv[2]), int(argv[3])
    close_all_but((0, 1, 2, requests, responses))
    for fd in (requests, responses):  # programs the user's code runs must not hold them
        os.set_inheritable(fd, False)
    die_with_parent(parent)
    if sys.flags.no_site:  # the sandbox: what started us is no part of the user's environment
        _neutral()
    setup = receive(requests)
    if not isinstance(setup, dict):
        os._exit(0)
    become_subreaper()
    set_limits(setup.get("memory"), setup.get("file_size"), setup.get("cpu"))
    sources = [(str(p), str(n)) for p, n in setup["sources"]]
    forbid(list(setup.get("forbid", [])))
    reply: dict[str, Any] = {"kind": "loaded"}
    fn = None
    path = sources[0][0]
    modules: dict[str, Any] = {}
    functions: list = []
    for path, name in sources:
        try:
            if path not in modules:
                modules[path] = load(path, bool(setup.get("defs_only")), setup.get("paths", []))
            module = modules[path]
        except BaseException as exc:
            reply["raised"] = describe_exception(exc, user_file=path)
            break
        try:
            found = _resolve(module, name)
        except AttributeError as missing:
            error: BaseException = missing
            head = name.partition(".")[0]
            for first, line, why in UNPARSED:
                if first.startswith((f"def {head}(", f"def {head} (", f"class {head}")):
                    error = SyntaxError(f"{head} does not parse (line {line}: {why})")
                    break
            else:
                reply["missing"] = _public_callables(module)
                reply["missing_name"] = name
            reply["raised"] = describe_exception(error, user_file=path)
            break
        except BaseException as exc:  # a module __getattr__ that raises something else
            reply["raised"] = describe_exception(exc, user_file=path)
            break
        if not callable(found):
            reply["not_callable"] = type(found).__name__
            reply["missing_name"] = name
            break
        functions.append(found)
    else:
        # A method's class too (after the named objects): a plan may build an instance.
        labels = [n for _, n in sources]
        for path, name in sources:
            head = name.rpartition(".")[0]
            if head and head not in labels:
                try:
                    functions.append(_resolve(modules[path], head))
                    labels.append(head)
                except BaseException:
                    pass
        reply["objects"] = describe(functions, labels)
        named = (
            functions
            if (setup.get("adapter") or {}).get("kind") == "plan"
            else functions[: len(sources)]
        )
        fn = adapt(named, modules[sources[0][0]].__dict__, setup.get("adapter"))
    write_frame(responses, encode_reply(reply, path))
    if fn is not None:
        serve(fn, requests, responses, user_file=path)
    os._exit(0)  # never run the user's atexit handlers or wait for their threads


if __name__ == "__main__":
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(_THIS_FILE):
        sys.path.pop(0)  # the package folder is not a place to import modules from
    main(sys.argv)
