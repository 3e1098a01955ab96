"""The sandbox a `"file.py:function"` worker runs in on Linux: bubblewrap, and a cgroup.

`Worker.for_target` starts its fresh interpreter under `bwrap` (when `Limits.sandbox` allows
and bubblewrap works here): new user, pid, network, IPC, UTS and cgroup namespaces; no
capabilities; a private, read-only /proc (the checker's process is not in it); the root file
system read-only; home folders, /tmp, /var/tmp, /run, the grader's current folder and the
folder above each submission hidden under empty tmpfs, with only the folders the import needs
(the submission's own, its package's or project's folder, `--path` folders, Python itself)
bound back read-only; a small tmpfs at /tmp as its working folder; a clean environment; and
only its two pipes and its output inherited. The worker's own three files are bound at a
neutral path (`/run/w`), so nothing the submission sees names the checker.

When a cgroup hierarchy is writable (v1 `pids` and `memory`, or v2 with both controllers),
each worker gets a cgroup of its own: at most `PIDS_MAX` processes and `--memory` (plus the
interpreter's own share) for all of them together, tmpfs files included; it is emptied and
removed when the worker is closed. Otherwise the per-process RLIMITs are the only totals.

`SYMBPTT_BWRAP` names the bwrap program to use (tests set it to a missing path to see the
fallback); it is read by the checker before any user code runs.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import IsolationUnavailableError

__all__ = [
    "MODES",
    "PIDS_MAX",
    "WORK_MB",
    "Cgroup",
    "Probe",
    "probe",
    "decide",
    "command",
]

#: `--sandbox` values: use it when it works, refuse to run without it, never use it.
MODES = ("auto", "required", "off")
#: Processes one submission may have alive at once, its interpreter included (cgroup).
PIDS_MAX = 64
#: CPUs one submission may use at once, all its processes together (cgroup `cpu`): with a
#: cgroup per worker, siblings of a `--jobs N` run also get equal shares, however many
#: processes one of them starts.
CPUS = 1
_PERIOD = 100_000
#: MiB of the tmpfs working folder (/tmp inside the sandbox).
WORK_MB = 64
#: MiB the worker's interpreter and NumPy need on top of what `--memory` gives the user.
OWN_MB = 256
#: Where the worker's own files appear inside the sandbox.
INSIDE = "/run/w"
#: Where the library's package appears inside the sandbox (on PYTHONPATH).
LIBRARY = "/run/lib"
_FILES = ("worker.py", "loader.py", "drivers.py")
#: The name the worker script has inside (what `sys.argv[0]` and `__main__` show).
SCRIPT = "main.py"
_HERE = Path(__file__).resolve().parent
#: System folders never hidden, whatever the grader's current folder is.
_SYSTEM = {"/", "/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/var", "/opt"}
_SYSTEM |= {"/proc", "/sys", "/dev", "/boot", "/srv", "/mnt", "/media"}


@dataclass(frozen=True)
class Probe:
    """Whether bubblewrap works here: the program, whether `--size` is known, or why not."""

    program: str | None
    works: bool
    sized: bool = False
    why: str = ""


def _program() -> str | None:
    named = os.environ.get("SYMBPTT_BWRAP")
    if named:
        return named if os.path.isfile(named) and os.access(named, os.X_OK) else None
    return shutil.which("bwrap")


#: The user inside: an ordinary first user, as on a laptop (not `nobody`, 65534, which names
#: a sandbox to anyone who looks).
UID = 1000
_BASE = ["--unshare-all", "--unshare-user", "--uid", str(UID), "--gid", str(UID)]
_BASE += ["--cap-drop", "ALL", "--die-with-parent", "--new-session"]


@functools.lru_cache(maxsize=4)
def _probe(program: str | None) -> Probe:
    if program is None:
        return Probe(None, False, why="bubblewrap is not installed (apt-get install bubblewrap)")
    trial = [program, *_BASE, "--ro-bind", "/", "/", "--proc", "/proc", "--remount-ro", "/proc"]
    try:
        done = subprocess.run(
            [*trial, "--", "true"], capture_output=True, timeout=10, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return Probe(program, False, why=f"bubblewrap ({program}) cannot start: {exc}")
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        reason = said[-1] if said else f"exit status {done.returncode}"
        return Probe(program, False, why=f"bubblewrap cannot make a sandbox here ({reason})")
    try:
        sized = (
            subprocess.run(
                [program, *_BASE, "--ro-bind", "/", "/", "--size", "1048576", "--tmpfs", "/tmp"]
                + ["--", "true"],
                capture_output=True,
                timeout=10,
                stdin=subprocess.DEVNULL,
            ).returncode
            == 0
        )
    except (OSError, subprocess.SubprocessError):
        sized = False
    return Probe(program, True, sized=sized)


def probe() -> Probe:
    """Whether bubblewrap works here (tried once per process and program)."""
    if not sys.platform.startswith("linux"):
        return Probe(None, False, why="the sandbox needs Linux (bubblewrap)")
    return _probe(_program())


def decide(mode: str) -> Probe | None:
    """The sandbox to use for `mode` ("auto", "required", "off"): a working Probe, or None
    (run without it). IsolationUnavailableError when `required` and it does not work."""
    if mode not in MODES:
        raise IsolationUnavailableError(f"sandbox={mode!r} must be one of {', '.join(MODES)}")
    if mode == "off":
        return None
    found = probe()
    if found.works:
        return found
    if mode == "required":
        raise IsolationUnavailableError(f"--sandbox required: {found.why}")
    return None


# -- cgroups -------------------------------------------------------------------------------------


def _own_cgroups() -> dict[str, str]:
    """controller (or "" for v2) -> this process's cgroup path."""
    out: dict[str, str] = {}
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                for c in controllers.split(",") if controllers else [""]:
                    out[c] = path
    except (OSError, ValueError):
        pass
    return out


def _writable(folder: str) -> bool:
    return os.path.isdir(folder) and os.access(folder, os.W_OK)


def _sweep(base: str) -> None:
    """Remove the empty worker cgroups left below base by checkers that were killed before
    they could (SIGKILL skips every clean-up): those whose checker's pid is gone."""
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        parts = name.split("-")
        if len(parts) != 3 or parts[0] != "w" or not parts[1].isdigit():
            continue
        if os.path.exists(f"/proc/{parts[1]}"):
            continue  # its checker is alive (or the pid was reused: left for later)
        try:
            os.rmdir(os.path.join(base, name))  # fails while a process is still in it
        except OSError:
            pass


class Cgroup:
    """One worker's cgroup(s): a total for processes and for memory; `remove()` empties and
    deletes them."""

    def __init__(self, folders: list[str], version: int) -> None:
        self.folders, self.version = folders, version

    @classmethod
    def create(cls, memory_bytes: int, pids: int = PIDS_MAX) -> Cgroup | None:
        """A fresh cgroup below this process's own, or None when none is writable here."""
        name = f"w-{os.getpid()}-{os.urandom(6).hex()}"
        own = _own_cgroups()
        v1 = []
        for controller in ("pids", "memory"):
            base = os.path.join("/sys/fs/cgroup", controller) + own.get(controller, "/")
            if not _writable(base):
                v1 = []
                break
            _sweep(base)
            v1.append(os.path.join(base.rstrip("/"), name))
        if v1:
            made = cls(v1, 1)
            try:
                for folder in v1:
                    os.mkdir(folder)
                _write(os.path.join(v1[0], "pids.max"), str(pids))
                _write(os.path.join(v1[1], "memory.limit_in_bytes"), str(memory_bytes))
                made._add_cpu_v1(name, own)
                return made
            except OSError:
                made.remove()
        for root in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
            base = root + own.get("", "/")
            try:
                with open(os.path.join(base, "cgroup.subtree_control")) as f:
                    enabled = f.read().split()
            except OSError:
                continue
            if not {"pids", "memory"} <= set(enabled) or not _writable(base):
                continue
            _sweep(base)
            folder = os.path.join(base.rstrip("/"), name)
            made = cls([folder], 2)
            try:
                os.mkdir(folder)
                _write(os.path.join(folder, "pids.max"), str(pids))
                _write(os.path.join(folder, "memory.max"), str(memory_bytes))
                _write(os.path.join(folder, "memory.swap.max"), "0", missing_ok=True)
                if "cpu" in enabled:
                    _write(os.path.join(folder, "cpu.max"), f"{CPUS * _PERIOD} {_PERIOD}")
                return made
            except OSError:
                made.remove()
        return None

    def _add_cpu_v1(self, name: str, own: dict[str, str]) -> None:
        """A v1 `cpu` cgroup too, when that hierarchy is writable (best effort: without it a
        submission's processes compete with its siblings' one by one)."""
        for mounted in ("cpu", "cpu,cpuacct"):
            base = os.path.join("/sys/fs/cgroup", mounted) + own.get("cpu", "/")
            if not _writable(base):
                continue
            _sweep(base)
            folder = os.path.join(base.rstrip("/"), name)
            try:
                os.mkdir(folder)
            except OSError:
                continue
            self.folders.append(folder)
            try:
                _write(os.path.join(folder, "cpu.cfs_period_us"), str(_PERIOD))
                _write(os.path.join(folder, "cpu.cfs_quota_us"), str(CPUS * _PERIOD))
            except OSError:
                pass
            return

    @property
    def procs_files(self) -> list[str]:
        return [os.path.join(f, "cgroup.procs") for f in self.folders]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for path in self.procs_files:
            try:
                with open(path) as f:
                    found |= {int(p) for p in f.read().split()}
            except (OSError, ValueError):
                pass
        return found

    def kill(self) -> None:
        """SIGKILL everything in it, until it is empty (a second at most)."""
        deadline = time.monotonic() + 1.0
        while True:
            pids = self.pids()
            if not pids or time.monotonic() > deadline:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.005)

    def remove(self) -> None:
        self.kill()
        for folder in self.folders:
            for _ in range(100):
                try:
                    os.rmdir(folder)
                    break
                except FileNotFoundError:
                    break
                except OSError:  # still busy: its last process is being torn down
                    time.sleep(0.01)


def _write(path: str, text: str, missing_ok: bool = False) -> None:
    try:
        with open(path, "w") as f:
            f.write(text)
    except FileNotFoundError:
        if not missing_ok:
            raise


def enter_command(cgroup: Cgroup | None, argv: list[str]) -> list[str]:
    """argv, started so that it is in the cgroup before it runs: a shell writes its own pid
    into each cgroup.procs, then becomes argv."""
    if cgroup is None:
        return argv
    files = cgroup.procs_files
    writes = " && ".join(f'echo $$ > "${i + 1}"' for i in range(len(files)))
    script = f'{writes} && shift {len(files)} && exec "$@"'
    return ["/bin/sh", "-c", script, "sh", *files, *argv]


# -- the bwrap command line ----------------------------------------------------------------------


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _hideable(folder: str) -> bool:
    return bool(folder) and folder not in _SYSTEM and not any(_inside(s, folder) for s in _SYSTEM)


def _python_folders() -> list[str]:
    """What the interpreter and NumPy need to start: prefixes, the program's folder, the
    standard library and NumPy's site folder."""
    import numpy

    found = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    found.append(os.path.dirname(os.path.realpath(sys.executable)))
    found.append(os.path.dirname(os.path.realpath(os.__file__)))
    found.append(os.path.dirname(os.path.dirname(os.path.realpath(numpy.__file__))))
    return list(dict.fromkeys(os.path.realpath(f) for f in found if f and os.path.isdir(f)))


def numpy_site() -> str:
    import numpy

    return os.path.dirname(os.path.dirname(os.path.realpath(numpy.__file__)))


def command(
    found: Probe,
    python_argv: list[str],
    *,
    reveal: list[str],
    hide: list[str],
    env: dict[str, str],
    conceal: list[str] = (),
    library: bool = True,
) -> list[str]:
    """The bwrap arguments (without the program) that run python_argv in the sandbox.

    `reveal`: folders bound back read-only (the submission's, its imports'); `hide`: more
    folders hidden (the grader's current folder, the folders above the submissions);
    `conceal`: files and folders of forbidden packages, hidden last (`forbidden_files`);
    `library`: whether symbptt itself is importable inside."""
    home = os.path.expanduser("~")
    hidden = ["/root", "/home", home, "/tmp", "/var/tmp", "/run", "/dev/shm", *hide]
    hidden = [os.path.realpath(h) for h in hidden if h and os.path.isdir(h)]
    hidden = sorted({h for h in hidden if _hideable(h)}, key=lambda p: p.count("/"))
    args = [*_BASE, "--ro-bind", "/", "/", "--proc", "/proc", "--remount-ro", "/proc"]
    args += ["--dev", "/dev"]
    if "/tmp" not in hidden:
        hidden = sorted([*hidden, "/tmp"], key=lambda p: p.count("/"))
    for folder in hidden:
        if folder == "/tmp" and found.sized:  # the working folder: small
            args += ["--size", str(WORK_MB * 2**20)]
        args += ["--tmpfs", folder]
    python = _python_folders()
    binds = [p for p in python if any(_inside(p, h) for h in hidden)]
    binds += [os.path.realpath(r) for r in reveal if os.path.exists(r)]
    for folder in sorted(dict.fromkeys(binds), key=lambda p: p.count("/")):
        args += ["--ro-bind", folder, folder]
    for name in _FILES:
        inside = SCRIPT if name == "worker.py" else name
        args += ["--ro-bind", str(_HERE / name), f"{INSIDE}/{inside}"]
    # The library itself, importable as it is for the grader (a submission may use its
    # reference unless --forbid-import says otherwise), whether installed or in development.
    if library:
        args += ["--ro-bind", str(_HERE.parent), f"{LIBRARY}/{_HERE.parent.name}"]
    for path in dict.fromkeys(conceal):  # after every bind: nothing binds them back
        if os.path.isdir(path):
            args += ["--tmpfs", path]
        elif os.path.exists(path):
            args += ["--ro-bind", "/dev/null", path]
    args += ["--chdir", "/tmp", "--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    return args


def forbidden_files(names: list[str] | tuple[str, ...]) -> list[str]:
    """Where the forbidden top-level packages live, as the worker would find them: the
    grader's own import of each, and each folder on the worker's path. The sandbox hides them,
    so that `--forbid-import` holds against code that removes the import guard or loads the
    files by path. The standard library and NumPy, which the worker needs, are never hidden;
    copies elsewhere on the disk are not found (the threat model says so)."""
    import glob
    import importlib.util
    import site

    stdlib = set(getattr(sys, "stdlib_module_names", ()))
    folders = [*site.getsitepackages(), numpy_site(), *_installed_elsewhere()]
    found: list[str] = []
    for name in names:
        if not name.isidentifier() or name in stdlib or name == "numpy":
            continue
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is not None:
            found += list(spec.submodule_search_locations or [])
            if spec.origin and os.path.isfile(spec.origin) and not spec.submodule_search_locations:
                found.append(spec.origin)
        for folder in folders:
            found += glob.glob(os.path.join(glob.escape(folder), name))
            found += glob.glob(os.path.join(glob.escape(folder), name + ".py"))
            found += glob.glob(os.path.join(glob.escape(folder), name + ".*.so"))
    real = [os.path.realpath(f) for f in found if os.path.exists(f)]
    return [f for f in dict.fromkeys(real) if _hideable(f)]


def _installed_elsewhere() -> list[str]:
    """Folders that site-packages points to (readable inside, though the worker does not run
    them): the folders of `.pth` files, and the projects of editable installs."""
    import glob
    import json
    import site

    found: list[str] = []
    for folder in site.getsitepackages():
        for pth in glob.glob(os.path.join(glob.escape(folder), "*.pth")):
            try:
                with open(pth, encoding="utf-8", errors="replace") as f:
                    found += [line.strip() for line in f if line.startswith("/")]
            except OSError:
                pass
        for record in glob.glob(os.path.join(glob.escape(folder), "*.dist-info/direct_url.json")):
            try:
                with open(record, encoding="utf-8") as f:
                    url = json.load(f).get("url", "")
            except (OSError, ValueError, AttributeError):
                continue
            if url.startswith("file://"):
                root = url[len("file://") :]
                found += [root, os.path.join(root, "src")]
    return [f for f in found if os.path.isdir(f)]


def environment() -> dict[str, str]:
    """The worker's whole environment inside the sandbox: nothing of the grader's."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": "/tmp",
        "USER": "user",
        "LOGNAME": "user",
        "TMPDIR": "/tmp",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    import site

    path = [LIBRARY]
    known = {os.path.realpath(p) for p in site.getsitepackages()}
    if numpy_site() not in known:  # NumPy from PYTHONPATH or a user site: keep it findable
        path.append(numpy_site())
    env["PYTHONPATH"] = os.pathsep.join(path)
    return env
