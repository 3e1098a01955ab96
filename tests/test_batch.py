"""Batch mode (symbptt/batch.py): many targets, a broken checker process, the grade book."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from symbptt.checking import batch
from symbptt.cli import main

CORPUS = Path(__file__).parent / "bptt_corpus.py"
GOOD = f"{CORPUS}:correct_row_vectorised"
FAST = {"max_examples": 5, "timeout": 5.0}


@pytest.mark.parametrize("sandbox", ["auto", "off"])
def test_a_submission_that_kills_its_checker_costs_only_its_own_verdict(tmp_path, sandbox):
    evil = tmp_path / "evil.py"
    evil.write_text(
        "import os, signal\n"
        "def f(*args):\n"
        "    os.kill(os.getppid(), signal.SIGKILL)  # the worker's parent: a checker process\n"
    )
    targets = [GOOD, f"{evil}:f", f"{CORPUS}:dWh_transposed"]
    records = batch.check_targets(targets, {**FAST, "sandbox": sandbox}, jobs=2)
    assert [r["target"] for r in records] == targets
    assert batch.verdict(records[0]) == "right"
    assert batch.verdict(records[1]) == "error"
    if sandbox == "off":  # the kill lands: that checker dies, and only its row says so
        assert "checker process died" in records[1]["error"]
    else:  # in its own pid namespace the worker cannot reach its checker at all
        assert "returned a value of type NoneType" in records[1]["error"]
    assert batch.verdict(records[2]) == "wrong"


def test_a_failure_of_the_checker_itself_is_one_row_not_a_lost_grade_book(monkeypatch):
    import symbptt.checking.check

    real = symbptt.checking.check.check_gradients

    def flaky_checker(target, **options):
        if target.endswith("dWh_transposed"):
            raise symbptt.checking.check.InternalError("symbolic and NumPy BPTT disagree")
        return real(target, **options)

    monkeypatch.setattr(symbptt.checking.check, "check_gradients", flaky_checker)
    records = batch.check_targets([GOOD, f"{CORPUS}:dWh_transposed"], FAST, jobs=1)
    assert batch.verdict(records[0]) == "right"
    assert records[1]["error"].startswith("internal error: symbolic and NumPy BPTT disagree")


def test_csv_has_a_row_per_target_in_order():
    records = batch.check_targets([f"{CORPUS}:dWh_transposed", GOOD], FAST)
    lines = batch.csv_table(records).splitlines()
    assert lines[0] == ",".join(batch.CSV_COLUMNS)
    assert lines[1].startswith(f"{CORPUS}:dWh_transposed,wrong,false,W_h,")
    assert lines[2].startswith(f"{GOOD},right,true,,")
    import csv

    rows = list(csv.reader(lines))
    assert {len(r) for r in rows} == {len(batch.CSV_COLUMNS)}, "a header cell per column"
    assert dict(zip(rows[0], rows[1]))["model"] == "vanilla RNN"


@pytest.mark.parametrize(
    "patterns, message",
    [(["no_colon.py"], "is not of the form"), (["nowhere/*/x.py:f"], "no file matches")],
    ids=["no function", "no match"],
)
def test_bad_patterns_are_target_errors(patterns, message):
    with pytest.raises(batch.TargetError, match=message):
        batch.expand_targets(patterns)


def test_a_missing_target_still_gives_a_json_record(capsys, tmp_path):
    code = main(["check", str(tmp_path / "missing.py") + ":f", "--json"])
    out, err = capsys.readouterr()
    record = json.loads(out)
    assert code == 2 and record["ok"] is False and "no such file" in record["error"]
    assert "no such file" in err


def test_calling_main_does_not_touch_the_callers_other_children(capsys):
    # Only the `symbptt` command adopts orphans; main() inside someone's process must not
    # kill that process's own children when a worker is cleaned up.
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert main(["check", GOOD, "--examples", "3"]) == 0
        time.sleep(0.2)
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()
