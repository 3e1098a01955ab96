"""The LSTM and the GRU (issue 11) through every command: the engine's symbolic gradients equal
the independent NumPy references (themselves checked against finite differences in
test_reference_gated.py), the matrix-form derivation evaluates to them, `check` judges the
corpus of tests/gated_corpus.py as its cases say, and bad options are one sentence each.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import gated_corpus
import numpy as np
import pytest
from formula_eval import evaluate_text
from hypothesis import example, given, settings
from hypothesis import strategies as st

from symbptt import reference_gated
from symbptt.checking.check import check_gradients, compare_gradients
from symbptt.cli import main
from symbptt.derivation import derivation
from symbptt.engine.compile import gradient_function
from symbptt.engine.matrix_form import matrix_form
from symbptt.models import GRU, LSTM, model_named
from symbptt.models.dims import Dims
from symbptt.strategies import rnn_problems, rnn_shapes

CONFIGS = {
    "lstm ifog": (LSTM, lambda p: reference_gated.lstm_forward_backward(p)),
    "lstm ifgo, c0 input": (
        LSTM.variant(gate_order="ifgo", c0="input"),
        lambda p: reference_gated.lstm_forward_backward(p, gate_order="ifgo"),
    ),
    "gru after": (GRU, lambda p: reference_gated.gru_forward_backward(p)),
    "gru before": (
        GRU.variant(reset="before"),
        lambda p: reference_gated.gru_forward_backward(p, reset="before"),
    ),
}
#: Small shapes, H = 1, N = 1, T = 1 and D == H among them (rnn_shapes forces D == H often).
SHAPES = rnn_shapes(max_N=2, max_D=3, max_H=3, max_C=3, max_T=3)


def _plain(spec, arrays):
    """The reference's arrays: the LSTM's output bias b_y is the reference's c."""
    return {("c" if k == "b_y" else k): v for k, v in arrays.items()}


def _named(spec, grads):
    return {("b_y" if k == "c" and spec.name == "lstm" else k): v for k, v in grads.items()}


def _close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


# -- the engine and the derivation equal the references ------------------------------------------
@pytest.mark.parametrize("label", list(CONFIGS))
@settings(max_examples=8, deadline=None, derandomize=True)
@given(dims=SHAPES, seed=st.integers(0, 2**16))
@example(dims=Dims(N=1, D=1, H=1, C=2, T=1), seed=0)
@example(dims=Dims(N=2, D=2, H=2, C=3, T=3), seed=1)
def test_symbolic_gradients_equal_the_reference(label, dims, seed):
    spec, reference = CONFIGS[label]
    point = spec.random_point(dims, seed=seed)
    loss, grads = reference(_plain(spec, point))
    got = gradient_function(dims, spec)(point)
    _close(got["loss"], loss)
    for name, value in _named(spec, grads).items():
        _close(got[name], value)
    assert set(_named(spec, grads)) == set(spec.gradient_names)


@pytest.mark.parametrize("label", list(CONFIGS))
@pytest.mark.parametrize("convention", ["row", "column"])
@settings(max_examples=4, deadline=None, derandomize=True)
@given(dims=SHAPES, seed=st.integers(0, 2**16))
def test_the_matrix_form_evaluates_to_the_reference(label, convention, dims, seed):
    spec, reference = CONFIGS[label]
    point = spec.random_point(dims, seed=seed)
    loss, grads = reference(_plain(spec, point))
    ev = matrix_form(spec, convention).evaluate(point, dims)
    _close(ev.loss, loss)
    for name, value in _named(spec, grads).items():
        _close(ev.gradients[name], value)


@pytest.mark.parametrize("label", list(CONFIGS))
@pytest.mark.parametrize("convention", ["row", "column"])
def test_the_text_format_read_independently_equals_the_reference(label, convention):
    """`symbptt latex --format text` of every gradient, evaluated by tests/formula_eval.py
    (which imports nothing of symbptt), equals the NumPy reference."""
    spec, reference = CONFIGS[label]
    text = derivation(3, "all", model=spec, convention=convention).text()
    for dims in (Dims(N=1, D=1, H=1, C=2, T=1), Dims(N=2, D=3, H=2, C=3, T=3)):
        point = spec.random_point(dims, seed=5)
        loss, grads = reference(_plain(spec, point))
        out = evaluate_text(text, point, dims.as_dict(), convention, model=spec.name)
        for name, value in _named(spec, grads).items():
            _close(out["d" + name], value)


def test_variants_of_the_gated_cells_follow_the_reference():
    """No bias, a mean and token ids reach the references as zero biases, a factor and one-hot
    rows: the engine's gradients of those variants agree."""
    dims = Dims(N=2, D=3, H=2, C=3, T=3)
    for spec in (
        LSTM.variant(no_bias=("b",)),
        LSTM.variant(reduction="mean", no_bias=("b_y",)),
        GRU.variant(no_bias=("b_x", "c")),
        GRU.variant(inputs="tokens"),
    ):
        point = spec.random_point(dims, seed=3)
        loss, grads = spec.truth(point)
        got = gradient_function(dims, spec)(point)
        _close(got["loss"], loss)
        assert set(grads) == set(spec.gradient_names)
        for name, value in grads.items():
            _close(got[name], value)


def test_the_derivation_names_what_the_papers_name():
    lstm = {str(line.target): str(line.expr) for line in matrix_form(LSTM).adjoints}
    # the cell state's gradient from the next step, through the forget gate
    assert lstm["dc[t]"] == "dk[t] ⊙ (1 - k[t] ⊙ k[t]) + dc[t+1] ⊙ f[t+1]"
    assert lstm["da[t]"] == "hstack(da_i[t], da_f[t], da_o[t], da_g[t])"
    assert lstm["df[t]"] == "dc[t] ⊙ c[t-1]"
    pytorch = {
        str(line.target): str(line.expr)
        for line in matrix_form(LSTM.variant(gate_order="ifgo")).adjoints
    }
    assert pytorch["da[t]"] == "hstack(da_i[t], da_f[t], da_g[t], da_o[t])"
    gru = {str(line.target): str(line.expr) for line in matrix_form(GRU).adjoints}
    assert gru["dz[t]"] == "dh[t] ⊙ (h[t-1] - n[t])"
    assert gru["dh[t]"] == "do[t] @ V^T + dv[t+1] @ W_h^T + dh[t+1] ⊙ z[t+1]"


# -- derive ---------------------------------------------------------------------------------------
def test_derive_counts_the_gated_paths(capsys):
    """At T = 1 with c_0 = 0, W_h reaches L through i, g and o only (f multiplies c_0 = 0 and
    is no path); with c0 an input, through f as well: 3 and 4 paths, counted by hand."""
    assert main(["derive", "--model", "lstm", "--T", "3", "--max-paths", "200", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["agrees"] and record["model"]["name"] == "lstm"
    growth = record["path_growth"]
    assert growth["1"] == 3 and growth["1"] < growth["2"] < growth["3"]
    assert len(record["paths"]) == record["path_count"] == growth["3"]
    assert main(["derive", "--model", "lstm", "--c0", "input", "--T", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["path_count"] == 4


def test_derive_caps_the_listing_but_not_the_count(capsys):
    assert main(["derive", "--model", "gru", "--T", "4", "--max-paths", "10", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["paths"] is None and record["path_count"] > 10 and record["agrees"]


def test_derive_takes_the_gated_cells_own_names_and_guards_their_cost(capsys):
    assert main(["derive", "--model", "gru", "--wrt", "b_x", "--T", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["agrees"]
    assert main(["derive", "--model", "lstm", "--wrt", "b_y", "--T", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["agrees"]
    assert main(["derive", "--model", "lstm", "--T", "5000", "--H", "30"]) == 2
    err = capsys.readouterr().err
    assert "contributes most" in err and "Traceback" not in err


# -- check ----------------------------------------------------------------------------------------
def _check(tmp_path, capsys, case):
    path = gated_corpus.write(tmp_path, case.name)
    status = main(["check", f"{path}:{case.target}", "--json", *case.options])
    out = capsys.readouterr()
    record = json.loads(out.out.strip().splitlines()[-1]) if out.out.strip() else {}
    return status, record, out.err


@pytest.mark.parametrize("case", gated_corpus.CASES, ids=lambda c: c.name)
def test_the_corpus_is_judged_as_its_cases_say(tmp_path, capsys, case):
    """With default settings: right code is right; each wrong program has exactly its wrong
    gradients, the first named with the closed form's cause (or none)."""
    status, record, err = _check(tmp_path, capsys, case)
    results = {r["name"]: r for r in record["results"]}
    wrong = tuple(name for name, r in results.items() if r["status"] != "OK")
    if case.verdict == "right":
        assert status == 0 and not wrong, (err, record)
        return
    assert status == 1 and wrong == case.wrong, (err, record)
    assert results[case.wrong[0]]["likely_cause"] == case.cause


def test_the_issue_command_is_right_and_says_the_model(tmp_path, capsys):
    shutil.copy(gated_corpus.EXAMPLES / "rnn_layers.py", tmp_path / "rnn_layers.py")
    target = f"{tmp_path / 'rnn_layers.py'}:lstm_forward,lstm_backward"
    assert main(["check", target, "--form", "layer", "--batch-first", "--model", "lstm"]) == 0
    out = capsys.readouterr().out
    assert "model: LSTM" in out and "all checked gradients are right" in out
    for name in ("x", "h0", "W_x", "W_h", "b"):
        assert f"│ {name} " in out


@pytest.mark.parametrize(
    "name, options, fix",
    [
        ("lstm_full", ["--model", "lstm", "--gate-order", "ifgo"], "--gate-order ifog"),
        ("lstm_ifgo", ["--model", "lstm"], "--gate-order ifgo"),
        ("gru_before", ["--model", "gru"], "--reset before"),
        ("gru_full", ["--model", "gru", "--reset", "before"], "--reset after"),
    ],
)
def test_the_other_gate_order_or_reset_is_a_usage_error_with_the_fix(
    tmp_path, capsys, name, options, fix
):
    path = gated_corpus.write(tmp_path, name)
    status = main(["check", f"{path}:loss_and_grads", *options])
    err = capsys.readouterr().err
    assert status == 2 and fix in err, err


def test_python_callers_and_strategies_take_the_gated_models():
    @settings(max_examples=5, deadline=None, derandomize=True)
    @given(problem=rnn_problems(shapes=SHAPES, model=LSTM))
    def drawn(problem):
        dims, arrays = problem
        assert arrays["W_h"].shape == (dims.H, 4 * dims.H) and "c0" not in arrays
        loss, grads = LSTM.truth(arrays)
        report = compare_gradients(arrays, loss, grads, model=LSTM)
        assert report.ok
        grads["W_h"] = grads["W_h"] + 1e-3
        assert not compare_gradients(arrays, loss, grads, model=LSTM).ok

    drawn()

    def full(x, y, h0, W_x, W_h, b_x, b_h, V, c):
        arrays = dict(x=x, y=y, h0=h0, W_x=W_x, W_h=W_h, b_x=b_x, b_h=b_h, V=V, c=c)
        return reference_gated.gru_forward_backward(arrays)

    assert check_gradients(full, model=GRU, max_examples=20, isolate=False).ok


# -- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv, words",
    [
        (["--gate-order", "ifgo"], "gate_order is an option of the lstm model"),
        (["--model", "gru", "--c0", "input"], "c0 is an option of the lstm model"),
        (["--model", "lstm", "--activation", "relu"], "activation='relu' is not available"),
        (["--model", "gru", "--h0", "zero"], "h0='zero' is not available for the gru"),
        (["--model", "lstm", "--truncate", "1"], "truncate=1 is not available"),
        (["--model", "lstm", "--no-bias", "c"], "not a bias of the lstm model (b, b_y)"),
    ],
)
def test_impossible_variants_are_one_sentence(capsys, argv, words):
    assert main(["derive", *argv]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_the_char_rnn_style_is_for_the_vanilla_rnn(capsys):
    target = f"{gated_corpus.EXAMPLES / 'char_rnn.py'}:lossFun"
    argv = ["check", target, "--style", "char-rnn", "--defs-only", "--model", "lstm"]
    assert main(argv) == 2
    assert "check it in the full or layer form" in capsys.readouterr().err


def test_model_names_are_checked():
    assert model_named("rnn").name == "vanilla" and model_named("lstm") is LSTM
    with pytest.raises(Exception, match="choose rnn, lstm or gru"):
        model_named("transformer")


def test_shapes_that_are_not_multiples_of_the_gates_are_refused():
    arrays = LSTM.random_point(Dims(N=1, D=2, H=2, C=2, T=1))
    arrays["W_x"] = arrays["W_x"][:, :7]
    with pytest.raises(Exception, match="not a multiple of 4"):
        del arrays["h0"]  # H is then read from W_x first
        LSTM.dims_of(arrays)


# -- latex ----------------------------------------------------------------------------------------
def test_the_issue_latex_command_compiles(tmp_path, capsys):
    out = tmp_path / "lstm.tex"
    assert main(["latex", "--model", "lstm", "--T", "2", "--wrt", "W_h", "-o", str(out)]) == 0
    capsys.readouterr()
    done = subprocess.run(
        ["pdflatex", "-halt-on-error", "-interaction=nonstopmode", out.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    text = out.read_text()
    assert r"\begin{bmatrix}" in text  # da = [da_i da_f da_o da_g]


def test_the_pytest_plugin_checks_a_gru(pytester):
    """A user's suite checks a right and a wrong GRU with the fixture and model=GRU."""
    source = (gated_corpus.EXAMPLES / "rnn_layers.py").read_text()
    pytester.makepyfile(rnn_layers=source)
    pytester.makepyfile(
        test_user="""
        from rnn_layers import gru_backward, gru_forward

        from symbptt.models import GRU


        def wrong_backward(dh, cache):
            grads = list(gru_backward(dh, cache))
            grads[3] = grads[3] * 1.01  # dWh a little off
            return tuple(grads)


        def test_right(bptt_check):
            bptt_check((gru_forward, gru_backward), form="layer", batch_first=True, model=GRU)


        def test_wrong(bptt_check):
            bptt_check((gru_forward, wrong_backward), form="layer", batch_first=True, model=GRU)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--symbptt-examples", "10")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*BPTT gradients are wrong*"])


def test_a_document_counts_the_paths_it_cannot_list():
    """At T = 4 the LSTM has hundreds of paths from W_h: the document gives their number (the
    derive count, checked against listing them at T = 2 by hand above) instead of the list."""
    doc = derivation(4, "W_h", model=LSTM).latex()
    assert "through 546 paths" in doc and r"\text{path " not in doc
    listed = derivation(2, "W_h", model=LSTM).latex()
    assert listed.count(r"\text{path ") == 21


def test_layer_pairs_without_a_state_bias_are_checked(tmp_path, capsys):
    """--no-bias of the layer's own bias is a variant of the layer form (of every model); only
    the output layer's biases do not apply to it."""
    path = tmp_path / "nob.py"
    path.write_text(
        "import numpy as np\n\n"
        "def rnn_forward(x, h0, Wx, Wh):\n"
        "    hs, h = [], h0\n"
        "    for t in range(x.shape[1]):\n"
        "        h = np.tanh(h @ Wh + x[:, t] @ Wx)\n"
        "        hs.append(h)\n"
        "    return np.stack(hs, axis=1), (x, h0, Wx, Wh, hs)\n\n"
        "def rnn_backward(dh, cache):\n"
        "    x, h0, Wx, Wh, hs = cache\n"
        "    dx, dWx, dWh = np.zeros_like(x), np.zeros_like(Wx), np.zeros_like(Wh)\n"
        "    carry = np.zeros_like(h0)\n"
        "    for t in reversed(range(x.shape[1])):\n"
        "        da = (dh[:, t] + carry) * (1 - hs[t] ** 2)\n"
        "        prev = hs[t - 1] if t else h0\n"
        "        dx[:, t], dWx, dWh = da @ Wx.T, dWx + x[:, t].T @ da, dWh + prev.T @ da\n"
        "        carry = da @ Wh.T\n"
        "    return dx, carry, dWx, dWh\n"
    )
    target = f"{path}:rnn_forward,rnn_backward"
    assert main(["check", target, "--form", "layer", "--batch-first", "--no-bias", "b"]) == 0
    capsys.readouterr()
    assert main(["check", target, "--form", "layer", "--no-bias", "c"]) == 2
    assert "--no-bias c do not apply" in capsys.readouterr().err
    lstm = ["check", f"{path}:lstm_forward,lstm_backward", "--form", "layer", "--model", "lstm"]
    assert main([*lstm, "--no-bias", "b_y"]) == 2
    assert "--no-bias b_y do not apply" in capsys.readouterr().err


def test_a_pair_that_takes_too_many_arguments_is_told_the_models_names(tmp_path, capsys):
    source = (gated_corpus.EXAMPLES / "rnn_layers.py").read_text()
    (tmp_path / "g.py").write_text(source.replace("def gru_forward(x, h0,", "def gru_forward(x,"))
    target = f"{tmp_path / 'g.py'}:gru_forward,gru_backward"
    assert main(["check", target, "--model", "gru", "--form", "layer", "--batch-first"]) == 2
    assert "forward(x, h0, W_x, W_h, b_x, b_h)" in capsys.readouterr().err


def test_an_lstm_step_pair_with_h0_fixed_at_zero_gets_zeros_as_its_first_prev_h(capsys):
    target = f"{gated_corpus.EXAMPLES / 'rnn_layers.py'}:lstm_step_forward,lstm_step_backward"
    argv = ["check", target, "--model", "lstm", "--form", "layer", "--h0", "zero", "--json"]
    assert main([*argv, "--examples", "20"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in record["results"]} == {"x", "W_x", "W_h", "b"}


def test_the_audit_names_no_circular_fix_and_prints_distinct_numbers(tmp_path, capsys):
    text = derivation(2, "all", model=LSTM).text()
    wrong = text.replace("do[t] = dh[t] * k[t]", "do[t] = dh[t] * c[t]").replace(
        "dk[t] = dh[t] * o[t]", "dk[t] = dh[t]"
    )
    assert wrong.count("\n") == text.count("\n") and wrong != text
    path = tmp_path / "lstm.txt"
    path.write_text(wrong)
    assert main(["audit", str(path), "--model", "lstm", "--json"]) == 1
    findings = {f["rule"]: f for f in json.loads(capsys.readouterr().out)["findings"]}
    dk = next(f for r, f in findings.items() if r.startswith("dk[t] ="))
    assert "dk where" not in (dk.get("classification") or "")  # not "uses dh where dk belongs"
    do = next(f for r, f in findings.items() if r.startswith("do[t] ="))
    example = do["counterexample"]
    assert example["yours"] != example["true"]


def test_a_sum_checked_as_a_mean_is_named_and_tokens_keep_the_generic_causes(tmp_path, capsys):
    path = gated_corpus.write(tmp_path, "lstm_full")
    target = f"{path}:loss_and_grads"
    assert main(["check", target, "--model", "lstm", "--reduction", "mean", "--json"]) == 1
    record = json.loads(capsys.readouterr().out)
    causes = {r["likely_cause"] for r in record["results"] if r["status"] != "OK"}
    assert causes == {"times_NT"}  # a sum where the declared mean belongs
    zeros = tmp_path / "zeros.py"
    zeros.write_text(
        "import numpy as np\n"
        "from symbptt.models import LSTM\n\n"
        "def loss_and_grads(x, y, h0, W_x, W_h, b, V, b_y):\n"
        "    arrays = dict(x=x, y=y, h0=h0, W_x=W_x, W_h=W_h, b=b, V=V, b_y=b_y)\n"
        "    loss, grads = LSTM.variant(inputs='tokens').truth(arrays)\n"
        "    grads['W_h'] = np.zeros_like(W_h)\n"
        "    return loss, grads\n"
    )
    argv = ["check", f"{zeros}:loss_and_grads", "--model", "lstm", "--inputs", "tokens"]
    assert main([*argv, "--json"]) == 1
    results = {r["name"]: r for r in json.loads(capsys.readouterr().out)["results"]}
    assert results["W_h"]["likely_cause"] == "zero"
    assert [n for n, r in results.items() if r["status"] != "OK"] == ["W_h"]


def test_a_signature_error_does_not_mention_what_the_model_never_takes(tmp_path, capsys):
    path = tmp_path / "sig.py"
    path.write_text("def loss_and_grads(input, y, h0, W_x, W_h, b, V, b_y):\n    pass\n")
    assert main(["check", f"{path}:loss_and_grads", "--model", "lstm", "--names", "x=inp"]) == 2
    err = capsys.readouterr().err
    assert "cannot be called" in err and "has no c0" not in err
