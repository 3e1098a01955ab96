"""The command line: real derivations, JSON that can be re-checked, one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

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
        (["derive", "--N", "2000"], "N contributes most: use N="),
        (["derive", "--C", "20000"], "C contributes most: use C="),
        (["derive", "--H", "500"], "H contributes most: use H="),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
    ids=[
        "T zero",
        "negative H",
        "fractional N",
        "one class",
        "unknown wrt",
        "huge T",
        "large N",
        "large C",
        "large H",
        "command",
    ],
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


CORPUS = str(Path(__file__).parent / "bptt_corpus.py")


def test_check_passes_a_correct_function(capsys):
    code, out, _ = _run(capsys, "check", f"{CORPUS}:correct_row_vectorised")
    assert code == 0
    assert "all checked gradients are right" in out


def test_check_column_layout(capsys):
    code, _, _ = _run(capsys, "check", f"{CORPUS}:correct_column_karpathy", "--layout", "column")
    assert code == 0
    # The same function checked in the wrong layout cannot pass: it is a usage error that names
    # the layout it is right in.
    code, out, err = _run(capsys, "check", f"{CORPUS}:correct_column_karpathy", "--examples", "20")
    assert code == 2 and "--layout column" in err


def test_check_finds_the_bug_and_says_where(capsys):
    code, out, _ = _run(capsys, "check", f"{CORPUS}:missing_recurrent_term", "--json")
    assert code == 1
    record = json.loads(out)
    assert record["ok"] is False and record["dims"]["T"] == 2
    wrong = {r["name"]: r for r in record["results"] if r["status"] == "WRONG"}
    assert set(wrong) == {"W_x", "W_h", "b", "h0", "x"}
    assert wrong["W_h"]["likely_cause"] == "no_recurrent_term"
    assert wrong["W_h"]["first_wrong_step"] == 2


def test_check_names_option(tmp_path, capsys):
    source = Path(CORPUS).read_text()
    user = tmp_path / "mine.py"
    user.write_text(
        source
        + "\n\ndef mine(x, y, h0, Wxh, Whh, bh, Why, by):\n"
        + "    loss, g = correct_row_vectorised(x, y, h0, Wxh, Whh, bh, Why, by)\n"
        + "    return loss, {'Wxh': g['W_x'], 'Whh': g['W_h'], 'bh': g['b'], 'Why': g['V'],"
        + " 'by': g['c'], 'h0': g['h0'], 'x': g['x']}\n"
    )
    before = user.read_text()
    code, out, err = _run(
        capsys,
        "check",
        f"{user}:mine",
        "--names",
        "W_x=Wxh,W_h=Whh,b=bh,V=Why,c=by",
        "--examples",
        "20",
    )
    assert code == 0, out + err
    assert user.read_text() == before  # the user's file is never touched


def test_check_reports_a_raising_function_with_exit_1(tmp_path, capsys):
    user = tmp_path / "broken.py"
    user.write_text("def grads(x, y, h0, W_x, W_h, b, V, c):\n    return x @ W_h, {}\n")
    code, out, _ = _run(capsys, "check", f"{user}:grads", "--json")
    assert code == 1
    error = json.loads(out)["error"]
    assert "broken.py:2: return x @ W_h, {}" in error and "when called with shapes" in error


@pytest.mark.parametrize(
    "target, extra, message",
    [
        ("nope.py:f", [], "no such file: nope.py"),
        ("{corpus}", [], "is not of the form path/to/file.py:function"),
        ("{corpus}:correct_row_vectorized", [], "did you mean 'correct_row_vectorised'"),
        ("{corpus}:correct_row_vectorised", ["--names", "W_h"], "is not of the form W_h=Whh"),
        ("{corpus}:correct_row_vectorised", ["--names", "W_q=Whh"], "names maps 'W_q'"),
        ("{corpus}:correct_row_vectorised", ["--form", "loss"], "invalid choice: 'loss'"),
        ("{corpus}:correct_row_vectorised", ["--tolerance", "float8=1"], "DTYPE one of float64"),
        ("{corpus}:correct_row_vectorised", ["--tolerance", "float32=x"], "between 0 and 1"),
    ],
    ids=[
        "missing file",
        "no function",
        "typo",
        "names syntax",
        "names unknown",
        "form",
        "tolerance dtype",
        "tolerance value",
    ],
)
def test_check_usage_errors_exit_2(tmp_path, capsys, target, extra, message):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(:\n")
    target = target.format(corpus=CORPUS, bad=bad)
    code, out, err = _run(capsys, "check", target, *extra)
    assert code == 2 and message in err and "Traceback" not in err


def test_check_tolerance_option(capsys):
    # float32 code passes at the default float32 tolerance and fails at a float64-like one.
    target = f"{CORPUS}:correct_row_float32"
    assert _run(capsys, "check", target, "--examples", "20")[0] == 0
    code, out, _ = _run(capsys, "check", target, "--examples", "20", "--tolerance", "float32=1e-12")
    assert code == 1


def test_check_keeps_user_prints_out_of_json(tmp_path, capsys):
    user = tmp_path / "noisy.py"
    user.write_text(
        f"import sys\nsys.path.insert(0, {str(Path(CORPUS).parent)!r})\n"
        "from bptt_corpus import correct_row_vectorised\n"
        "print('importing noisy')\n"
        "def f(*args):\n    print('called')\n    return correct_row_vectorised(*args)\n"
    )
    # --path: the sandbox hides the grader's folder (here the repository) but for the
    # folders a submission's imports are declared to need.
    tests = str(Path(CORPUS).parent)
    code, out, err = _run(
        capsys, "check", f"{user}:f", "--examples", "5", "--json", "--path", tests
    )
    record = json.loads(out)
    assert code == 0 and record["ok"]
    assert record["output"].startswith("importing noisy\ncalled\n")


def test_check_user_function_may_import_its_siblings(tmp_path, capsys):
    (tmp_path / "helper_mod.py").write_text("SCALE = 1.0\n")
    user = tmp_path / "mine.py"
    user.write_text(
        f"import sys\nsys.path.insert(0, {str(Path(CORPUS).parent)!r})\n"
        "from bptt_corpus import correct_row_vectorised\n"
        "def f(*args):\n    import helper_mod\n    return correct_row_vectorised(*args)\n"
    )
    tests = str(Path(CORPUS).parent)  # hidden by the sandbox unless declared
    code, out, err = _run(capsys, "check", f"{user}:f", "--examples", "5", "--path", tests)
    assert code == 0, out + err


@pytest.mark.parametrize(
    "source, message",
    [
        ("import sys\nsys.exit(3)\ndef f(*a):\n    pass\n", "SystemExit: 3"),
        ("def f(:\n", "SyntaxError"),
    ],
    ids=["sys.exit", "syntax error"],
)
def test_a_submission_that_cannot_be_imported_fails_the_check(tmp_path, capsys, source, message):
    user = tmp_path / "script.py"
    user.write_text(source)
    code, out, err = _run(capsys, "check", f"{user}:f", "--json")
    error = json.loads(out)["error"]
    assert code == 1 and "could not import" in error and message in error, error


@pytest.mark.parametrize(
    "argv, message",
    [
        (["derive", "--seed", "-1"], "argument --seed: -1 must be at least 0"),
        (["derive", "--scale", "0"], "argument --scale: '0' must be a number in (0, 1e6]"),
        (["derive", "--scale", "nan"], "argument --scale: 'nan' must be a number"),
        (["check", "x.py:f", "--examples", "0"], "argument --examples: 0 must be at least 1"),
        (["check", "x.py:f", "--names", "b=W_h"], "names gives two arrays the same name"),
    ],
    ids=["negative seed", "zero scale", "nan scale", "zero examples", "name clash"],
)
def test_more_usage_errors(capsys, argv, message):
    code, _, err = _run(capsys, *argv)
    assert code == 2 and message in err and err.count("\n") == 1


def test_derive_beyond_the_listed_paths_counts_them(capsys):
    code, out, _ = _run(
        capsys,
        "derive",
        "--T",
        "500",
        "--N",
        "1",
        "--D",
        "1",
        "--H",
        "1",
        "--C",
        "2",
        "--wrt",
        "W_h",
        "--json",
    )
    record = json.loads(out)
    assert code == 0 and record["paths"] is None
    assert record["path_count"] == 500 * 501 // 2


def test_check_layer_form(capsys):
    good = _run(capsys, "check", f"{CORPUS}:correct_layer_cs231n", "--form", "layer")
    assert good[0] == 0
    code, out, _ = _run(
        capsys, "check", f"{CORPUS}:layer_no_recurrent_term", "--form", "layer", "--json"
    )
    record = json.loads(out)
    assert code == 1 and record["form"] == "layer"
    assert {r["name"] for r in record["results"]} == {"x", "h0", "W_x", "W_h", "b"}
    assert record["results"][3]["likely_cause"] == "no_recurrent_term"


def test_a_disagreement_with_the_reference_is_an_internal_error(capsys, monkeypatch):
    real = reference.forward_backward_dict

    def off(arrays, **options):
        loss, grads = real(arrays, **options)
        return loss, {**grads, "W_h": grads["W_h"] * 1.01}

    monkeypatch.setattr(reference, "forward_backward_dict", off)
    code, out, err = _run(capsys, "derive", "--T", "2", "--json")
    assert code == 3 and json.loads(out)["agrees"] is False
    assert "internal error" in err and "please report" in err and err.count("\n") == 1
