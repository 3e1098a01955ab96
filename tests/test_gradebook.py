"""The grade book of a batch check: a pool of checker processes that speaks JSON lines (never
pickle), a wall-clock watchdog, SIGINT and SIGTERM, and the book written atomically as strict
JSON or CSV (symbptt/checking/pool.py, symbptt/checking/batch.py)."""

import csv
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from symbptt.checking import batch, pool
from symbptt.errors import InvalidArgumentError

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).parent / "bptt_corpus.py"
GOOD = f"{CORPUS}:correct_row_vectorised"
WRONG = f"{CORPUS}:dWh_transposed"
GOOD_TOO = f"{CORPUS}:correct_row_batch_loop"
FAST = ["--examples", "4", "--no-probe"]


def _strict(text: str):
    """json.loads that refuses NaN and Infinity."""

    def refuse(name):
        raise ValueError(f"{name} in the output")

    return json.loads(text, parse_constant=refuse)


def _env(tmp_path: Path) -> dict:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
        "GRADEBOOK_TEST": str(tmp_path),  # inherited by the checkers: found by the scan below
    }


def _command(args, tmp_path, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "symbptt", "check", *args],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


def _left_over(tmp_path: Path) -> list[str]:
    """Processes still alive that belong to this test: the temp folder in their command line
    or in their environment (a checker, a worker, anything a submission started)."""
    mark = str(tmp_path).encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_bytes().rpartition(b")")[2].split()[0]
        except OSError:
            continue
        if state != b"Z" and (mark in cmdline or mark in environ):
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def _no_leftovers(tmp_path: Path) -> None:
    deadline = time.monotonic() + 3
    while _left_over(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _left_over(tmp_path) == []


STOPS_ITS_CHECKER = """
import os, signal, subprocess, sys, time
def f(*args):
    # a grandchild that would outlive everyone, then the checker (the worker's parent) stopped
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", {mark!r}],
                     start_new_session=True)
    os.kill(os.getppid(), signal.SIGSTOP)
    time.sleep(300)
"""

SLEEPS = """
import subprocess, sys, time
def f(*args):
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", {mark!r}])
    time.sleep(300)
"""

FORGES_ITS_REPLY = """
import json, os
def f(*args):
    # the checker's command line names its reply pipe: write a forged record into it
    argv = open(f"/proc/{{os.getppid()}}/cmdline", "rb").read().split(b"\\0")
    fd = int(argv[-3])
    target = {target!r}
    forged = {{"id": "0" * 32, "record": {{"target": target, "ok": True, "results": []}}}}
    with open(f"/proc/{{os.getppid()}}/fd/{{fd}}", "w") as pipe:
        pipe.write(json.dumps(forged) + "\\n")
    return None
"""


def test_a_stopped_checker_is_killed_at_the_total_timeout_and_the_others_are_graded(tmp_path):
    evil = tmp_path / "evil.py"
    evil.write_text(STOPS_ITS_CHECKER.format(mark=str(tmp_path)))
    book = tmp_path / "grades.jsonl"
    targets = [GOOD, f"{evil}:f", WRONG, GOOD_TOO]
    started = time.monotonic()
    command = _command(
        [*targets, "--jobs", "2", "--total-timeout", "4", "--json", "-o", str(book), *FAST],
        tmp_path,
    )
    out, err = command.communicate(timeout=120)
    took = time.monotonic() - started
    assert command.returncode == 1, err
    rows = [_strict(line) for line in out.decode().splitlines()]
    assert [r["target"] for r in rows] == targets
    assert [batch.verdict(r) for r in rows] == ["right", "error", "wrong", "right"]
    assert "did not finish within 4 s" in rows[1]["error"]
    assert took < 4 + pool.GRACE + 20, f"{took:.1f} s"
    assert [_strict(line) for line in book.read_text().splitlines()] == rows
    _no_leftovers(tmp_path)


@pytest.mark.parametrize("sandbox", ["auto", "off"])
def test_a_forged_reply_is_an_error_row_never_a_verdict(tmp_path, sandbox):
    evil = tmp_path / "forger.py"
    target = f"{evil}:f"
    evil.write_text(FORGES_ITS_REPLY.format(target=target))
    options = {"max_examples": 3, "timeout": 5.0, "probe": False, "sandbox": sandbox}
    records = batch.check_targets([target, WRONG], options, jobs=2)
    assert batch.verdict(records[0]) == "error"
    if sandbox == "off":  # it reaches the reply pipe; the forgery has the wrong request id
        assert "malformed record" in records[0]["error"]
        assert "wrong request id" in records[0]["error"]
    else:  # sandboxed, its checker's /proc entries do not exist for it
        assert "malformed record" not in records[0]["error"], records[0]["error"]
    assert batch.verdict(records[1]) == "wrong"


@pytest.mark.parametrize(
    "line, why",
    [
        (b'{"id": "a", "record": {"target": "t", "ok": true, "results": []}}', None),
        (b'{"id": "b", "record": {"target": "t", "ok": true, "results": []}}', "request id"),
        (b'{"id": "a", "record": {"target": "u", "ok": true, "results": []}}', "target"),
        (b'{"id": "a", "record": {"target": "t", "ok": NaN, "results": []}}', "strict JSON"),
        (b'{"id": "a", "id": "a", "record": {}}', "strict JSON"),
        (b'{"id": "a", "record": {"target": "t", "ok": 1, "results": []}}', "ok or results"),
        (b'{"id": "a", "record": {"target": "t", "ok": true, "results": [1]}}', "result"),
        (b"\xff\xfe", "strict JSON"),
        (b"[1, 2]", "not a reply"),
    ],
)
def test_replies_are_parsed_strictly(line, why):
    item = (0, "t", "a")
    if why is None:
        assert pool._check_reply(line, item)["ok"] is True
    else:
        with pytest.raises(ValueError, match=why):
            pool._check_reply(line, item)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_writes_the_book_so_far_with_interrupted_rows(tmp_path, signum):
    targets = [GOOD]
    for name in ("a", "b", "c"):
        (tmp_path / f"sleeper_{name}.py").write_text(SLEEPS.format(mark=str(tmp_path)))
        targets.append(f"{tmp_path / f'sleeper_{name}.py'}:f")
    book = tmp_path / "grades.csv"
    command = _command(
        [*targets, "--jobs", "2", "--timeout", "100", "--csv", "-o", str(book), *FAST],
        tmp_path,
    )
    seen = b""
    deadline = time.monotonic() + 60
    while b"[1/4]" not in seen and time.monotonic() < deadline:
        seen += command.stderr.read1(1024)
    assert b"[1/4]" in seen
    time.sleep(0.5)  # the next sleeper is being checked now
    command.send_signal(signum)
    out, err = command.communicate(timeout=60)
    assert command.returncode == 128 + signum, err
    rows = list(csv.DictReader(io.StringIO(book.read_text())))
    assert list(csv.DictReader(io.StringIO(out.decode()))) == rows
    assert [r["target"] for r in rows] == targets
    assert [r["verdict"] for r in rows] == ["right", "interrupted", "interrupted", "interrupted"]
    assert {r["error"] for r in rows[1:]} == {"interrupted"}
    assert b"interrupted" in err
    _no_leftovers(tmp_path)


def test_the_book_appears_whole_at_the_end_and_is_never_overwritten_without_force(tmp_path):
    book = tmp_path / "grades.csv"
    command = _command([GOOD, WRONG, "--jobs", "2", "-o", str(book), *FAST], tmp_path)
    seen = set()
    while command.poll() is None:  # at the path while the command runs: nothing, or all
        try:
            seen.add(book.read_text())
        except FileNotFoundError:
            pass
        time.sleep(0.005)
    assert command.returncode == 1
    text = book.read_text()
    assert seen <= {text}
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == list(batch.CSV_COLUMNS) and {len(r) for r in rows} == {8}
    assert [r[1] for r in rows[1:]] == ["right", "wrong"]
    assert dict(zip(rows[0], rows[1]))["model"] == "vanilla RNN"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".grades")] == []

    again = _command([GOOD, "-o", str(book), *FAST], tmp_path)
    _, err = again.communicate(timeout=60)
    assert again.returncode == 2 and b"--force" in err
    assert book.read_text() == text
    forced = _command([GOOD, "-o", str(book), "--force", *FAST], tmp_path)
    forced.communicate(timeout=60)
    assert forced.returncode == 0
    assert [r[1] for r in csv.reader(io.StringIO(book.read_text()))] == ["verdict", "right"]


def test_an_unknown_book_format_is_a_usage_error_before_any_check(tmp_path):
    command = _command([GOOD, "-o", str(tmp_path / "grades.txt")], tmp_path)
    _, err = command.communicate(timeout=60)
    assert command.returncode == 2 and b".csv, .jsonl or .json" in err


INFINITE = """
from bptt_corpus import correct_row_vectorised  # a copy beside it: its own folder is seen
def f(*args):
    loss, grads = correct_row_vectorised(*args)
    return loss, {**grads, "W_h": grads["W_h"] * 1e308 * 10}
"""


def test_an_infinite_error_is_strict_json_in_the_records_and_the_book(tmp_path):
    (tmp_path / "inf.py").write_text(INFINITE)
    shutil.copy(CORPUS, tmp_path / "bptt_corpus.py")
    book = tmp_path / "grades.json"
    command = _command(["inf.py:f", GOOD, "--json", "-o", str(book), *FAST], tmp_path)
    out, err = command.communicate(timeout=120)
    assert command.returncode == 1, err
    rows = [_strict(line) for line in out.decode().splitlines()]
    assert [_strict(line) for line in book.read_text().splitlines()] == rows
    w_h = next(r for r in rows[0]["results"] if r["name"] == "W_h")
    assert w_h["status"] == "WRONG" and w_h["max_rel_error"] == "inf"
    single = _command(["inf.py:f", "--json", *FAST], tmp_path)  # one target: the same rule
    out, _ = single.communicate(timeout=120)
    assert _strict(out.decode())["results"][1]["max_rel_error"] == "inf"


def test_non_finite_numbers_become_strings():
    record = {"a": math.inf, "b": [-math.inf, math.nan, 1.5], "c": (2,)}
    assert _strict(pool.strict_json(record)) == {"a": "inf", "b": ["-inf", "nan", 1.5], "c": [2]}


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_cells_that_start_like_a_formula_are_quoted(start):
    record = batch.failed_record(f"{start}HYPERLINK(1).py:f", f"{start}cmd|' /C calc'!A0")
    rows = list(csv.reader(io.StringIO(batch.csv_table([record]))))
    quoted = "'" + ("\n" if start == "\r" else start)  # a lone CR would end the row
    assert rows[1][0] == f"{quoted}HYPERLINK(1).py:f"
    assert rows[1][-1].startswith(f"{quoted}cmd") and len(rows) == 2
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in rows[1])


def test_a_submission_named_like_a_formula_is_quoted_in_the_book(tmp_path):
    (tmp_path / "=1+1.py").write_text("def f(*args):\n    raise ValueError('no')\n")
    command = _command(["=1+1.py:f", "--csv", *FAST], tmp_path)
    out, _ = command.communicate(timeout=60)
    rows = list(csv.reader(io.StringIO(out.decode())))
    assert rows[1][0] == "'=1+1.py:f" and rows[1][1] == "error"


def test_options_cross_the_pipe_as_plain_data():
    from symbptt.checking.convention import Convention
    from symbptt.checking.judging import Tolerance
    from symbptt.models import model_named

    options = {
        "model": model_named("lstm").variant(gate_order="ifgo", no_bias=("b_y",)),
        "tolerances": {"float32": Tolerance(rtol=1e-3, floor=1e-2)},
        "convention": Convention(sequence="NTF", names={"W_h": "Whh"}),
        "names": {"W_h": "Whh"},
        "only": ("W_h", "W_x"),
        "path": (Path("/tmp"),),
        "total_timeout": 3.0,
    }
    wire = json.loads(json.dumps(pool.encode_options(options), allow_nan=False))
    back = pool.decode_options(wire)
    assert back["model"] == options["model"] and back["tolerances"] == options["tolerances"]
    assert back["convention"] == options["convention"] and back["names"] == options["names"]
    assert back["only"] == ("W_h", "W_x") and back["path"] == ("/tmp",)
    with pytest.raises(InvalidArgumentError, match="plain data only"):
        pool.encode_options({"progress": print})
