"""The isolated checker against hostile and careless submissions (tests/hostile_corpus.py).

The whole corpus is written into a temporary folder and checked by one batch command line
invocation per set of options (`symbptt check <targets> --json --jobs 2 --timeout 3
--examples 30 ...`); cases that could take a whole batch down run alone. Every case must get
its verdict, every stdout line must be one JSON record, no process a submission forks may
survive the check, and nothing may be written outside the worker's temporary directory.
Then: single-target exit codes, usage errors, glob targets with JSON lines and CSV, and a
property test of the Python API (wrong on any one call, never ok).
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hostile_corpus import CASES, GRADIENTS, Hostile, bptt_core, case_by_name, write_case
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

#: Options of every batch run; a case's own options come after them and win.
BATCH = ("--json", "--jobs", "2", "--timeout", "3", "--examples", "30")
#: Generous outer limits (seconds): the checker's own limits end every case long before.
OUTER_TIMEOUT, OUTER_TIMEOUT_PER_TARGET = 600.0, 15.0
#: Environment variable marking every process of the corpus run (inherited unless scrubbed).
MARKER_VAR = "SYMBPTT_HOSTILE_RUN"
HUGE = 512 * 2**20  # no file this large may remain anywhere under the test's folders


def _group_id(case: Hostile) -> str:
    if case.alone:
        return f"alone:{case.name}"
    return "options:" + (" ".join(case.options) or "none")


GROUPS: dict[str, list[Hostile]] = {}
for _case in CASES:
    GROUPS.setdefault(_group_id(_case), []).append(_case)
SPAWNING = [c for c in CASES if c.spawns]


# ======================================================================================
# Running the command line, finding stray processes
# ======================================================================================


@dataclass
class CliRun:
    argv: list[str]
    cwd: Path
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool = False  # killed after the outer timeout
    pipes_held: bool = False  # exited, but something else kept its stdout/stderr open
    records: list[dict] = field(default_factory=list)
    bad_lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        try:
            whole = json.loads(self.stdout)  # one target: one object, possibly indented
        except ValueError:
            whole = None
        if isinstance(whole, dict):
            self.records.append(whole)
            return
        for line in self.stdout.splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                self.bad_lines.append(line)
                continue
            if isinstance(record, dict):
                self.records.append(record)
            else:
                self.bad_lines.append(line)

    def record(self, target: str) -> dict | None:
        want = _key(target, self.cwd)
        for record in self.records:
            if isinstance(record.get("target"), str) and _key(record["target"], self.cwd) == want:
                return record
        return None

    def summary(self) -> str:
        return (
            f"exit {self.returncode}, timed out {self.timed_out}, pipes held {self.pipes_held}\n"
            f"stderr (end): {self.stderr[-2000:]}\nunparsable stdout lines: {self.bad_lines[:5]}"
        )


def _key(target: str, cwd: Path) -> tuple[str, str]:
    path, _, function = target.rpartition(":")
    return os.path.realpath(os.path.join(cwd, path)), function


def run_cli(
    targets: list[str], options: tuple[str, ...], cwd: Path, env: dict | None = None
) -> CliRun:
    """`python -m symbptt check` in a new session; killed after a generous outer timeout."""
    argv = [sys.executable, "-m", "symbptt", "check", *targets, *options]
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: killable as a whole, by us alone
    )
    outer = min(OUTER_TIMEOUT, 120 + OUTER_TIMEOUT_PER_TARGET * len(targets))
    deadline = time.monotonic() + outer
    exited_at = None
    timed_out = pipes_held = False
    while True:
        try:
            out, err = proc.communicate(timeout=1.0)
            break
        except subprocess.TimeoutExpired as exc:
            out, err = exc.output or b"", exc.stderr or b""
        now = time.monotonic()
        if proc.poll() is not None:
            exited_at = exited_at or now
            if now - exited_at > 10:  # exited, but a leftover process holds its pipes
                pipes_held = True
                proc.stdout.close()
                proc.stderr.close()
                break
        elif now > deadline and not timed_out:
            timed_out = True
            _kill_group(proc.pid)
    proc.wait()
    return CliRun(
        argv,
        cwd,
        proc.returncode,
        out.decode(errors="replace"),
        err.decode(errors="replace"),
        timed_out,
        pipes_held,
    )


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def find_processes(path_text: str, marker: str | None = None) -> dict[int, str]:
    """Live processes whose command line contains path_text or whose environment holds the
    marker (zombies, whose command line is empty, are dead already and not counted)."""
    found = {}
    needle = os.fsencode(path_text)
    marker_entry = f"{MARKER_VAR}={marker}".encode() if marker else None
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if not cmdline:
            continue
        hit = needle in cmdline
        if not hit and marker_entry is not None:
            try:
                hit = marker_entry in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            except OSError:
                pass
        if hit:
            found[int(entry)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found


def survivors(path_text: str, marker: str | None = None, grace: float = 15.0) -> dict[int, str]:
    """The processes still found after a grace period for the checker's kills to land."""
    found = find_processes(path_text, marker)
    waited = 0.0
    while found and waited < grace:
        time.sleep(0.2)
        waited += 0.2
        found = find_processes(path_text, marker)
    return found


def kill_all(processes: dict[int, str]) -> None:
    """SIGKILL processes found by our own unique path or marker, by pid."""
    for pid in processes:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


# ======================================================================================
# The corpus, checked once
# ======================================================================================


@dataclass
class CorpusRun:
    root: Path
    cwd: Path  # the command line's working directory: must stay empty
    targets: dict[str, str]  # case name -> target
    runs: dict[str, CliRun]  # group id -> its invocation
    strays: dict[int, str]  # processes left after every invocation ended

    def record(self, case: Hostile) -> dict:
        run = self.runs[_group_id(case)]
        assert not run.timed_out, f"the command line hung\n{run.summary()}"
        record = run.record(self.targets[case.name])
        assert record is not None, f"no JSON record for {case.name}\n{run.summary()}"
        return record


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    cwd, tmpdir = root / "cwd", root / "tmp"
    cwd.mkdir()
    tmpdir.mkdir()
    targets = {case.name: write_case(case, root / "cases" / case.name) for case in CASES}
    marker = uuid.uuid4().hex
    env = {**os.environ, "TMPDIR": str(tmpdir), MARKER_VAR: marker}
    runs: dict[str, CliRun] = {}
    try:
        for group, cases in GROUPS.items():
            runs[group] = run_cli(
                [targets[c.name] for c in cases], BATCH + cases[0].options, cwd, env
            )
        strays = survivors(str(root), marker)
        kill_all(strays)
        yield CorpusRun(root, cwd, targets, runs, strays)
    finally:
        kill_all(find_processes(str(root), marker))


def _brief(record: dict) -> str:
    statuses = {r.get("name"): r.get("status") for r in record.get("results") or []}
    output = record.get("output") or ""
    return (
        f"ok={record.get('ok')} inconsistent={record.get('inconsistent')} "
        f"error={record.get('error')!r}\nresults={statuses}\noutput (start)={output[:300]!r}"
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_each_case_gets_its_verdict(corpus, case):
    record = corpus.record(case)
    statuses = {r["name"]: r["status"] for r in record["results"] or []}
    if case.expect == "right":
        assert record["ok"] is True, _brief(record)
        assert record["error"] is None, _brief(record)
        assert record["inconsistent"] is False, _brief(record)
        assert "WRONG" not in statuses.values(), _brief(record)
        assert statuses.get("loss", "OK") == "OK", _brief(record)
        only = case.only or GRADIENTS
        assert all(statuses.get(n) == "OK" for n in only), _brief(record)
        unchecked = set(GRADIENTS) - set(only)
        assert all(statuses.get(n) == "NOT CHECKED" for n in unchecked), _brief(record)
    else:
        assert record["ok"] is False, _brief(record)
    if case.expect_error:
        assert isinstance(record["error"], str) and record["error"].strip(), _brief(record)
    for text in case.expect_in_error:
        assert text.lower() in (record["error"] or "").lower(), _brief(record)
    for text in case.expect_in_output:
        assert text in (record["output"] or ""), _brief(record)
    for name in case.expect_wrong:
        assert statuses.get(name) == "WRONG", _brief(record)


@pytest.mark.parametrize("group", list(GROUPS), ids=list(GROUPS))
def test_stdout_is_one_json_record_per_target(corpus, group):
    run = corpus.runs[group]
    assert not run.timed_out and not run.pipes_held, run.summary()
    assert run.bad_lines == [], run.summary()
    cases = GROUPS[group]
    if len(cases) == 1:
        assert isinstance(json.loads(run.stdout), dict), run.summary()  # exactly one object
    assert len(run.records) == len(cases), run.summary()
    for case in cases:
        record = run.record(corpus.targets[case.name])
        assert record is not None, f"{case.name} has no record\n{run.summary()}"
        assert {"target", "ok", "error", "results", "inconsistent", "output"} <= set(record)


@pytest.mark.parametrize("group", list(GROUPS), ids=list(GROUPS))
def test_exit_code_and_no_traceback(corpus, group):
    run = corpus.runs[group]
    all_right = all(c.expect == "right" for c in GROUPS[group])
    assert run.returncode == (0 if all_right else 1), run.summary()
    assert "Traceback (most recent call last)" not in run.stderr, run.summary()


@pytest.mark.parametrize("case", SPAWNING, ids=lambda c: c.name)
def test_no_forked_process_survives(corpus, case):
    folder = str(Path(corpus.targets[case.name].rpartition(":")[0]).parent)
    left = {pid: cmd for pid, cmd in corpus.strays.items() if folder in cmd}
    assert left == {}, f"{len(left)} processes of {case.name} survived the check"


def test_no_process_of_the_run_survives(corpus):
    assert corpus.strays == {}, corpus.strays


def test_nothing_written_outside_the_workers_temp_dir(corpus):
    assert sorted(p.name for p in corpus.cwd.iterdir()) == []
    for case in CASES:
        folder = Path(corpus.targets[case.name].rpartition(":")[0]).parent
        written = {"submission.py", *(name for name, _ in case.extra_files)}
        found = {p.name for p in folder.iterdir() if p.name != "__pycache__"}
        assert found == written, case.name
    huge = [p for p in corpus.root.rglob("*") if p.is_file() and p.stat().st_size >= HUGE]
    assert huge == []


# ======================================================================================
# Single targets, usage errors, globs, CSV
# ======================================================================================


@pytest.mark.parametrize(
    "name, code",
    [
        ("modifies_inputs_in_place", 0),
        ("exits_at_import", 1),
        ("spins_forever", 1),
        ("sigkills_itself", 1),
    ],
)
def test_single_target_exit_code_and_one_json_object(tmp_path, name, code):
    target = write_case(case_by_name(name), tmp_path / "submission")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    try:
        run = run_cli([target], ("--json", "--timeout", "2", "--examples", "10"), cwd)
        assert not run.timed_out and run.returncode == code, run.summary()
        record = json.loads(run.stdout)  # one object, nothing else on stdout
        assert isinstance(record, dict) and record["ok"] is (code == 0), run.summary()
        assert "Traceback (most recent call last)" not in run.stderr
        assert survivors(str(tmp_path)) == {}
    finally:
        kill_all(find_processes(str(tmp_path)))


@pytest.mark.parametrize(
    "args",
    [
        ["{folder}/submission.py"],
        ["{target}", "--precision", "float8"],
        ["{target}", "--timeout", "soon"],
    ],
    ids=["no function part", "unknown precision", "timeout not a number"],
)
def test_usage_errors_exit_2(tmp_path, args):
    target = write_case(case_by_name("modifies_inputs_in_place"), tmp_path / "s")
    argv = [a.format(folder=tmp_path / "s", target=target) for a in args]
    run = run_cli(argv[:1], tuple(argv[1:]) + ("--json",), tmp_path)
    assert run.returncode == 2, run.summary()
    assert run.stderr.strip() and "Traceback" not in run.stderr


STUDENTS = {
    "alice": "modifies_inputs_in_place",
    "bob": "wrong_every_7th_call",
    "carol": "os_exit_in_call",
}


@pytest.fixture
def class_folder(tmp_path):
    for student, name in STUDENTS.items():
        write_case(
            case_by_name(name),
            tmp_path / "subs" / student,
            filename="rnn.py",
            function="loss_and_grads",
        )
    yield tmp_path
    kill_all(find_processes(str(tmp_path)))


def _student(target: str) -> str:
    return Path(target.rpartition(":")[0]).parent.name


def _truthy(text: str) -> bool:
    value = text.strip().lower()
    assert value in {"true", "1", "yes", "ok", "false", "0", "no", ""}, text
    return value in {"true", "1", "yes", "ok"}


def test_glob_target_gives_json_lines(class_folder):
    options = ("--json", "--jobs", "2", "--timeout", "2", "--examples", "15")
    run = run_cli(["subs/*/rnn.py:loss_and_grads"], options, class_folder)
    assert run.returncode == 1 and run.bad_lines == [], run.summary()
    assert len(run.records) == 3, run.summary()
    assert all(
        "*" not in r["target"] and r["target"].endswith("rnn.py:loss_and_grads")
        for r in run.records
    )
    verdicts = {_student(r["target"]): r["ok"] for r in run.records}
    assert verdicts == {"alice": True, "bob": False, "carol": False}


def test_csv_grade_book(class_folder):
    options = ("--csv", "--jobs", "2", "--timeout", "2", "--examples", "15")
    run = run_cli(["subs/*/rnn.py:loss_and_grads"], options, class_folder)
    assert run.returncode == 1, run.summary()
    reader = csv.DictReader(io.StringIO(run.stdout))
    rows = list(reader)
    assert {"target", "ok"} <= set(reader.fieldnames or ()), reader.fieldnames
    assert len(rows) == 3, run.stdout
    verdicts = {_student(row["target"]): _truthy(row["ok"]) for row in rows}
    assert verdicts == {"alice": True, "bob": False, "carol": False}


# ======================================================================================
# The Python API: wrong on any one call is never ok
# ======================================================================================


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.nested_given])
@given(bad_calls=st.sets(st.integers(1, 20), min_size=1))
def test_wrong_on_any_one_call_is_never_ok(bad_calls):
    from symbptt import check_gradients

    calls = [0]

    def submission(x, y, h0, W_x, W_h, b, V, c):
        calls[0] += 1
        loss, grads = bptt_core(x, y, h0, W_x, W_h, b, V, c)
        if calls[0] in bad_calls:
            grads["W_h"] = grads["W_h"] + 0.5
        return loss, grads

    report = check_gradients(submission, max_examples=20, timeout=5.0)
    assert not report.ok, (sorted(bad_calls), report.error)
