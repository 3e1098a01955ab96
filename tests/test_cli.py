"""The command line: real derivations, JSON that can be re-checked, one-line errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from symbptt import reference
from symbptt.cli import main


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_derive_lists_every_path_and_agrees(capsys):
    code, out, err = _run(capsys, "derive", "--T", "3", "--wrt", "W_h")
    assert code == 0, err
    assert "6 paths" in out
    assert out.count("W_h -> a_") == 6
    assert "dL/dW_h^(3)" in out
    assert "agrees with NumPy BPTT" in out


def test_derive_json_can_be_rechecked_independently(capsys):
    code, out, _ = _run(
        capsys,
        "derive",
        "--T",
        "3",
        "--N",
        "2",
        "--D",
        "3",
        "--H",
        "2",
        "--C",
        "3",
        "--wrt",
        "W_x",
        "--seed",
        "4",
        "--json",
    )
    assert code == 0
    record = json.loads(out)
    assert record["dims"] == {"N": 2, "D": 3, "H": 2, "C": 3, "T": 3}
    arrays = {k: np.array(v) for k, v in record["arrays"].items()}
    assert arrays["x"].shape == (3, 2, 3) and arrays["y"].shape == (3, 2)
    assert len(record["paths"]) == 6
    assert all(p["nodes"][0] == "W_x" and p["nodes"][-1] == "L" for p in record["paths"])
    total = np.array(record["total"])
    np.testing.assert_allclose(sum(np.array(p["value"]) for p in record["paths"]), total, rtol=1e-9)
    _, grads = reference.forward_backward(**{**arrays, "y": arrays["y"].astype(int)})
    np.testing.assert_allclose(total, grads["W_x"], rtol=1e-9)


def test_derive_with_large_logits_is_finite(capsys):
    code, out, _ = _run(capsys, "derive", "--T", "2", "--wrt", "c", "--scale", "1000", "--json")
    record = json.loads(out)
    assert code == 0 and record["agrees"]
    assert np.all(np.isfinite(record["total"]))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["derive", "--T", "0"], "T=0 must be at least 1"),
        (["derive", "--H", "-2"], "H=-2 must be at least 1"),
        (["derive", "--N", "1.5"], "argument --N: '1.5' is not a whole number"),
        (["derive", "--C", "1"], "C=1 must be at least 2"),
        (["derive", "--wrt", "W_k"], "unknown parameter name 'W_k'"),
        (["derive", "--T", "100000"], "T=100000 with N=2, D=2, H=2, C=3 needs about"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
    ids=["T zero", "negative H", "fractional N", "one class", "unknown wrt", "huge T", "command"],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_console_script_runs_as_a_module():
    done = subprocess.run(
        [sys.executable, "-m", "symbptt", "derive", "--T", "2", "--wrt", "b"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "3 paths" in done.stdout
