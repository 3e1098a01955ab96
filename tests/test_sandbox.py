"""The sandboxed worker (symbptt/checking/sandbox.py): what a submission cannot do under it.

One spy submission is checked once, sandboxed (`--sandbox auto`, the default), with the test
as the grader: a fake token in the environment, a secret file in $HOME and in /tmp, the
repository as the current folder, a TCP server on localhost, a sibling's submission beside it.
At import time the spy tries each of those, drops a `.pth` file into site-packages, leaves a
daemon behind (setsid, double fork), forks beyond the process limit, and prints what it found
as one JSON line; its function is correct, so the verdict must still be right. Each test below
asserts one finding (docs/threat-model.md points at them). Then: the sandbox made unavailable
(`required` is a usage error, `auto` falls back and says so), `off`, and a forked callable
that cannot write into a file the grader has open.

bubblewrap is required (`.ci/run` installs it): nothing here is skipped.
"""

from __future__ import annotations

import json
import os
import site
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from bptt_corpus import correct_row_vectorised
from hostile_corpus import CORE_SOURCE

from symbptt import check_gradients
from symbptt.checking.sandbox import PIDS_MAX, Cgroup, probe

REPO = Path(__file__).resolve().parent.parent


def _cgroup_writable() -> bool:
    made = Cgroup.create(64 * 2**20)
    if made is not None:
        made.remove()
    return made is not None


#: Whether this machine lets the checker make a cgroup (root here; an unprivileged grader
#: usually cannot): the isolation level the reports must name follows from it.
CGROUP = _cgroup_writable()
EXPECTED = "bubblewrap+cgroup" if CGROUP else "bubblewrap+rlimits"
EXAMPLES = 8


def test_bubblewrap_is_installed_and_works():
    found = probe()
    assert found.works, f"{found.why} -- the sandbox tests need it (apt-get install bubblewrap)"


SPY = """
import json, os, site, socket, sys, time

FOUND = {}


def _try(label, action):
    try:
        FOUND[label] = action()
    except BaseException as exc:
        FOUND[label] = "refused: " + type(exc).__name__


def _read(path):
    with open(path) as f:
        return f.read()


_try("home", lambda: _read(HOME_SECRET))
_try("tmp", lambda: _read(TMP_SECRET))
_try("grader_cwd", lambda: _read(GRADER_FILE))
_try("sibling", lambda: _read(SIBLING))
_try("own_folder", lambda: sorted(os.listdir(os.path.dirname(os.path.abspath(__file__)))))
FOUND["env_token"] = [k for k, v in os.environ.items() if k == "TOKEN" or TOKEN in v]
FOUND["environ_names_us"] = [k for k, v in os.environ.items() if "symbptt" in (k + v).lower()]


def _connect():
    s = socket.create_connection(("127.0.0.1", PORT), timeout=2)
    s.sendall(b"hello")
    s.close()
    return "connected"


_try("localhost", _connect)
_try("grader_proc", lambda: os.listdir(f"/proc/{GRADER_PID}/fd"))
_try("grader_mem", lambda: open(f"/proc/{GRADER_PID}/mem", "rb").close() or "opened")
_try("parent_fd", lambda: os.listdir(f"/proc/{os.getppid()}/fd"))


def _cmdlines():
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                out.append(open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace"))
            except OSError:
                pass
    return out


FOUND["processes"] = len([p for p in os.listdir("/proc") if p.isdigit()])
FOUND["cmdlines_name_us"] = [c for c in _cmdlines() if "symbptt" in c.lower() or "pytest" in c]
FOUND["modules_name_us"] = [m for m in sys.modules if "symbptt" in m.lower()]
FOUND["module_name"] = __name__
FOUND["fds"] = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))


def _drop_pth():
    with open(os.path.join(site.getsitepackages()[0], PTH_NAME), "w") as f:
        f.write("import os\\n")
    return "written"


_try("pth", _drop_pth)


def _daemon():
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv("/bin/sleep", [DAEMON_TAG, "600"])
        os._exit(0)
    os.waitpid(pid, 0)
    return "started"


_try("daemon", _daemon)


def _fork_many():
    children = []
    try:
        for _ in range(3 * LIMIT):
            pid = os.fork()
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            children.append(pid)
    except OSError:
        pass
    finally:
        for pid in children:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
    return len(children)


_try("forks", _fork_many)
print("FINDINGS " + json.dumps(FOUND), flush=True)
"""


def _findings(output: str) -> dict:
    for line in output.splitlines():
        if line.startswith("FINDINGS "):
            return json.loads(line[len("FINDINGS ") :])
    raise AssertionError(f"the spy printed no findings; its output:\n{output}")


def _alive_with_argv0(tag: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if f.read().split(b"\0")[0] == tag.encode():
                        found.append(int(pid))
            except OSError:
                pass
    return found


class _Server:
    """A TCP server on localhost that records whether anyone connected."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen()
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.connections = 0
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.running:
            try:
                conn, _ = self.socket.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.running = False
        self.thread.join(timeout=2)
        self.socket.close()


@pytest.fixture(scope="module")
def spied(tmp_path_factory):
    """The spy checked once, sandboxed, with the grader's secrets around it."""
    root = tmp_path_factory.mktemp("sandbox")
    token = "tok-" + uuid.uuid4().hex
    home_secret = Path(os.path.expanduser("~")) / f".symbptt-test-secret-{uuid.uuid4().hex}"
    tmp_secret = Path("/tmp") / f"grader-secret-{uuid.uuid4().hex}"
    for secret in (home_secret, tmp_secret):
        secret.write_text("secret")
    sibling = root / "subs" / "bob" / "rnn.py"
    sibling.parent.mkdir(parents=True)
    sibling.write_text("# bob's answer\n")
    spy = root / "subs" / "alice" / "rnn.py"
    spy.parent.mkdir(parents=True)
    (spy.parent / "helper.txt").write_text("mine")
    pth = f"zz_spy_{uuid.uuid4().hex}.pth"
    tag = f"/spy-daemon-{uuid.uuid4().hex}"
    server = _Server()
    settings = {
        "HOME_SECRET": str(home_secret),
        "TMP_SECRET": str(tmp_secret),
        "GRADER_FILE": str(REPO / "pyproject.toml"),
        "SIBLING": str(sibling),
        "TOKEN": token,
        "PORT": server.port,
        "GRADER_PID": os.getpid(),
        "PTH_NAME": pth,
        "DAEMON_TAG": tag,
        "LIMIT": PIDS_MAX,
    }
    head = "".join(f"{k} = {v!r}\n" for k, v in settings.items())
    spy.write_text("import numpy as np\n" + head + SPY + "\n" + CORE_SOURCE)
    old_env, old_cwd = os.environ.get("TOKEN"), os.getcwd()
    os.environ["TOKEN"] = token
    os.chdir(REPO)  # the grader's current folder: the repository
    try:
        started = time.monotonic()
        report = check_gradients(
            f"{spy}:correct_row_vectorised", max_examples=EXAMPLES, total_timeout=120
        )
        seconds = time.monotonic() - started
        alive = _alive_with_argv0(tag)
    finally:
        os.chdir(old_cwd)
        if old_env is None:
            os.environ.pop("TOKEN", None)
        else:
            os.environ["TOKEN"] = old_env
        server.close()
        for secret in (home_secret, tmp_secret):
            secret.unlink()
    leftovers = [Path(p) / pth for p in site.getsitepackages() if (Path(p) / pth).exists()]
    for stray in leftovers:  # should never happen: removed so a failure stays local
        stray.unlink()
    return {
        "report": report,
        "found": _findings(report.output),
        "connections": server.connections,
        "alive": alive,
        "pth_left": leftovers,
        "seconds": seconds,
        "token": token,
    }


def test_correct_submission_is_still_right_sandboxed(spied):
    report = spied["report"]
    assert report.ok, (report.error, report.output)
    assert report.isolation == EXPECTED
    assert spied["found"]["own_folder"] == ["helper.txt", "rnn.py"]


def test_cannot_read_home(spied):
    assert spied["found"]["home"] == "refused: FileNotFoundError"


def test_cannot_read_graders_tmp(spied):
    assert spied["found"]["tmp"] == "refused: FileNotFoundError"


def test_cannot_read_graders_current_folder(spied):
    assert spied["found"]["grader_cwd"] == "refused: FileNotFoundError"


def test_cannot_read_a_sibling_submission(spied):
    assert spied["found"]["sibling"] == "refused: FileNotFoundError"


def test_environment_has_no_token_and_names_nothing(spied):
    found = spied["found"]
    assert found["env_token"] == [] and found["environ_names_us"] == []
    assert found["module_name"] == "rnn"  # as `import rnn` names it: nothing of ours
    assert found["modules_name_us"] == [] and found["cmdlines_name_us"] == []


def test_cannot_connect_to_localhost(spied):
    assert spied["found"]["localhost"].startswith("refused: ")
    assert spied["connections"] == 0


def test_cannot_see_the_grader_in_proc(spied):
    found = spied["found"]
    assert found["grader_proc"] == "refused: FileNotFoundError"
    assert found["grader_mem"] == "refused: FileNotFoundError"
    assert found["processes"] <= 4  # bwrap's init, the worker, listing: nothing of ours
    # Its own descriptors: stdin, stdout, stderr and its two pipes, nothing inherited.
    assert len(found["fds"]) <= 6, found["fds"]


def test_cannot_write_into_site_packages(spied):
    assert spied["found"]["pth"] == "refused: OSError"
    assert spied["pth_left"] == []


def test_no_process_survives_the_check(spied):
    assert spied["found"]["daemon"] == "started"
    assert spied["alive"] == []


def test_forks_beyond_the_process_limit_fail(spied):
    forks = spied["found"]["forks"]
    if CGROUP:  # the cgroup's pids.max holds whatever the user ids are
        assert 0 < forks < PIDS_MAX, forks
    else:  # without one, only per-process limits: the report must not claim more
        assert spied["report"].isolation == "bubblewrap+rlimits"


# -- the sandbox absent, refused, or off ---------------------------------------------------------


def _cli(*args: str, env: dict | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "symbptt", "check", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=120,
    )


@pytest.fixture(scope="module")
def correct_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("correct") / "rnn.py"
    path.write_text("import numpy as np\n\n" + CORE_SOURCE)
    return f"{path}:correct_row_vectorised"


def test_required_without_bubblewrap_is_a_usage_error(correct_file):
    done = _cli(correct_file, "--sandbox", "required", env={"SYMBPTT_BWRAP": "/nonexistent"})
    assert done.returncode == 2, done.stderr
    assert "bubblewrap is not installed (apt-get install bubblewrap)" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_required_with_a_broken_bubblewrap_names_why(correct_file, tmp_path):
    broken = tmp_path / "bwrap"
    broken.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\n")
    broken.write_text(broken.read_text() + "exit 1\n")
    broken.chmod(0o755)
    done = _cli(correct_file, "--sandbox", "required", env={"SYMBPTT_BWRAP": str(broken)})
    assert done.returncode == 2
    assert "No permissions to create new namespace" in done.stderr


def test_auto_falls_back_and_says_so(correct_file):
    done = _cli(
        correct_file, "--examples", str(EXAMPLES), "--json", env={"SYMBPTT_BWRAP": "/nonexistent"}
    )
    record = json.loads(done.stdout)
    assert done.returncode == 0 and record["ok"]
    assert record["isolation"] == "rlimits"
    assert any("no sandbox: bubblewrap is not installed" in n for n in record["notes"])
    text = _cli(correct_file, "--examples", "3", env={"SYMBPTT_BWRAP": "/nonexistent"})
    assert "isolation: rlimits" in text.stdout and "no sandbox" in text.stdout


def test_off_is_rlimits_without_a_note(correct_file):
    done = _cli(correct_file, "--examples", str(EXAMPLES), "--json", "--sandbox", "off")
    record = json.loads(done.stdout)
    assert done.returncode == 0 and record["ok"]
    assert record["isolation"] == "rlimits"
    assert not any("sandbox" in n for n in record["notes"])


def test_auto_is_sandboxed_in_text_and_json(correct_file):
    text = _cli(correct_file, "--examples", "3")
    assert text.returncode == 0, text.stderr
    assert f"isolation: {EXPECTED}" in text.stdout


def test_required_refuses_a_callable_and_in_process_is_reported():
    from symbptt.checking.settings import Limits
    from symbptt.errors import IsolationUnavailableError

    with pytest.raises(IsolationUnavailableError, match="file.py:function"):
        check_gradients(correct_row_vectorised, max_examples=2, limits=Limits(sandbox="required"))
    report = check_gradients(correct_row_vectorised, max_examples=2, isolate=False)
    assert report.ok and report.isolation == "in-process"


# -- a forked callable and the grader's open files ----------------------------------------------

GRADES_FD = -1


def _writes_into_the_grade_book(x, y, h0, W_x, W_h, b, V, c):
    os.write(GRADES_FD, b"mallory,100\n")  # must fail: the descriptor is closed in the fork
    return correct_row_vectorised(x, y, h0, W_x, W_h, b, V, c)


def test_a_forked_callable_cannot_write_into_the_graders_open_file(tmp_path):
    global GRADES_FD
    book = tmp_path / "grades.csv"
    book.write_text("name,grade\n")
    with open(book, "a") as handle:
        GRADES_FD = handle.fileno()
        report = check_gradients(_writes_into_the_grade_book, max_examples=2)
    assert book.read_text() == "name,grade\n"
    assert not report.ok
    assert "OSError" in (report.error or "") or "Bad file descriptor" in (report.error or "")
    assert report.isolation == "rlimits"


def test_required_forbids_symbptt_so_its_reference_cannot_give_the_answer(tmp_path):
    cheat = tmp_path / "cheat.py"
    cheat.write_text(
        "def f(x, y, h0, W_x, W_h, b, V, c):\n"
        "    import symbptt.reference\n"
        "    return symbptt.reference.forward_backward(x, y, h0, W_x, W_h, b, V, c)\n"
    )
    allowed = _cli(f"{cheat}:f", "--examples", "3", "--json")
    assert allowed.returncode == 0, allowed.stderr  # auto: the grader did not ask
    graded = _cli(f"{cheat}:f", "--examples", "3", "--json", "--sandbox", "required")
    record = json.loads(graded.stdout.splitlines()[-1])
    assert graded.returncode == 1 and not record["ok"]
    assert "symbptt" in record["error"], record["error"]


def test_cgroups_left_by_a_killed_checker_are_swept():
    if not CGROUP:  # nothing is made, nothing can be left
        assert Cgroup.create(64 * 2**20) is None
        return
    made = Cgroup.create(64 * 2**20)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    stale = [f.replace(f"w-{os.getpid()}-", f"w-{dead}-") for f in made.folders]
    for folder in stale:  # as a checker SIGKILLed with a worker cgroup leaves it
        os.mkdir(folder)
    made.remove()
    again = Cgroup.create(64 * 2**20)
    again.remove()
    assert not [f for f in stale if os.path.exists(f)]
