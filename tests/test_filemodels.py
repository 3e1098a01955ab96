"""Model files through every command: the built-ins as files give the built-ins' derivations,
the gallery and random files agree with an independent oracle (finite differences and
autograd of the file's own NumPy evaluation, and the formula language's own evaluator), and
derive, latex, graph, html, contributions, audit and check work from a file alone."""

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from formula_eval import evaluate_text
from hypothesis import given, settings
from hypothesis import strategies as st

from symbptt.cli import main
from symbptt.derivation import derivation
from symbptt.derivation.printers import FormulaPrinter
from symbptt.engine.compile import gradient_function
from symbptt.engine.derivatives import derive
from symbptt.engine.graph import unroll
from symbptt.engine.matrix_form import matrix_form
from symbptt.engine.trust import ModelCheckError, check_model, ensure_trusted
from symbptt.models import GRU, LSTM, VANILLA, from_file, from_text
from symbptt.models.dims import Dims
from symbptt.models.evaluate import Evaluator, finite_differences
from symbptt.models.filespec import GALLERY, gallery_path

CORPUS = Path(__file__).parent / "model_corpus"
BUILT_INS = {"rnn": VANILLA, "lstm": LSTM, "gru": GRU}


def _file(name: str):
    return from_file(gallery_path(name))


def _lines(spec, convention: str) -> list[str]:
    form = matrix_form(spec, convention)
    p = FormulaPrinter()
    every = (*form.model, form.loss, *form.boundaries, *form.adjoints, *form.gradients.values())
    return [p.rule(line.target, line.expr, summed=line.summed) for line in every]


def description(spec) -> dict:
    """The model's names and shapes, for the formula language's independent evaluator."""
    form = matrix_form(spec)
    return {
        "steps": {line.target.base: line.target.shape for line in form.model},
        "globals": {i.name: i.shape for i in spec.inputs if i.role in ("parameter", "initial")},
        "inputs": {i.name: (("ids", i.bound) if i.integer else i.shape[1:]) for i in spec.per_step},
        "sizes": (*spec.size_names, "T"),
        "no_gradient": tuple(i.name for i in spec.inputs if i.role == "upstream"),
    }


# -- the built-ins as files ------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(BUILT_INS))
@pytest.mark.parametrize("convention", ["row", "column"])
def test_a_built_in_as_a_file_gives_its_derivation_lines(name, convention):
    assert _lines(_file(name), convention) == _lines(BUILT_INS[name], convention)


@pytest.mark.parametrize("name", list(BUILT_INS))
def test_a_built_in_as_a_file_gives_its_paths_and_totals(name):
    spec, built = _file(name), BUILT_INS[name]
    dims = Dims(N=2, D=3, H=2, C=3, T=3)
    ours, theirs = derive(unroll(dims, spec=spec)), derive(unroll(dims, spec=built))
    for wrt in built.gradient_names:
        assert [p.shown for p in ours.paths(wrt)] == [p.shown for p in theirs.paths(wrt)]
    point = built.random_point(dims, seed=4)
    a, b = gradient_function(dims, spec)(point), gradient_function(dims, built)(point)
    for key in b:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-12, atol=1e-14)
    # and the file's truth (its recurrences) equals the built-in's hand-written reference
    loss, grads = spec.truth(point)
    ref_loss, ref = built.truth(point)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for key, value in ref.items():
        np.testing.assert_allclose(grads[key], value, rtol=1e-10, atol=1e-13)


# -- the gallery ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", GALLERY)
def test_each_gallery_model_agrees_with_differences_of_its_own_equations(name):
    record = check_model(_file(name))
    assert record.max_error < 1e-8 and len(record.shapes) == 3
    assert record.shapes[0]["N"] == 1


@pytest.mark.parametrize("name", GALLERY)
def test_each_gallery_derivation_read_back_by_the_independent_evaluator(name):
    spec = _file(name)
    dims = spec.complete(Dims(N=2, D=3, H=2, C=3, T=3))
    point = spec.random_point(dims, seed=11)
    truth = gradient_function(dims, spec)(point)
    for convention in ("row", "column"):
        text = derivation(3, "all", model=spec, convention=convention).text()
        out = evaluate_text(text, point, dims.sizes, convention, model=description(spec))
        for g in spec.gradient_names:
            np.testing.assert_allclose(out["d" + g], truth[g], rtol=1e-9, atol=1e-12)


def test_a_wrong_engine_is_caught_before_first_use():
    """A cell that computes something else than the file says: the engine's gradients
    disagree with differences of the file's own equations (exit 3, nothing printed)."""
    spec = _file("sigmoid_rnn")
    real = spec.cell

    def other(ops, params, state, inputs):  # tanh where the file says sigmoid
        (h_prev,) = state
        a = ops.affine("a", params["b"], (h_prev, params["W"]), (inputs["x"], params["U"]))
        h = ops.apply("h", "tanh", a)
        o = ops.affine("o", params["c"], (h, params["V"]))
        return (h,), ops.cross_entropy("L", o, inputs["y"])

    assert real is not other
    wrong = dataclasses.replace(spec, cell=other)
    with pytest.raises(ModelCheckError, match="the loss disagrees with an evaluation"):
        check_model(wrong)


def test_the_check_runs_once_per_content(tmp_path, monkeypatch):
    import symbptt.engine.trust as trust

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(trust, "_TRUSTED", {})
    spec = _file("indrnn")
    first = ensure_trusted(spec)
    assert not first.cached and list((tmp_path / "symbptt" / "trusted").glob("*.json"))
    monkeypatch.setattr(trust, "_TRUSTED", {})  # a new process: read from disk
    assert ensure_trusted(spec).cached


# -- random model files ---------------------------------------------------------------------------
@st.composite
def model_files(draw):
    """A random cell from the vocabulary: one or two states (zero or an input at step 0),
    each from affine and elementwise terms under a function, maybe a gate, maybe a named
    pre-activation; a cross-entropy, abstract, squared-error or no loss (a layer)."""
    states = draw(st.sampled_from([("h",), ("h", "s")]))
    width = {"h": "H", "s": "K"}
    decl: dict[str, str] = {"x[t]": "(N, D)"}
    lines: list[str] = []
    for state in states:
        if draw(st.booleans()):
            decl[f"{state}0"] = f"(N, {width[state]})"
            lines.append(f"{state}[0] = {state}0")
        else:
            lines.append(f"{state}[0] = 0")
    below = "x[t]"
    below_width = "D"
    for state in states:
        w = width[state]
        terms = []
        recurrence = draw(st.sampled_from(["matmul", "elementwise", "both"]))
        if recurrence in ("matmul", "both"):
            decl[f"W_{state}"] = f"({w}, {w})"
            terms.append(f"{state}[t-1] @ W_{state}")
        if recurrence in ("elementwise", "both"):
            decl[f"u_{state}"] = f"({w},)"
            terms.append(f"{state}[t-1] * u_{state}")
        decl[f"U_{state}"] = f"({below_width}, {w})"
        terms.append(f"{below} @ U_{state}")
        if draw(st.booleans()):
            decl[f"b_{state}"] = f"({w},)"
            terms.append(f"b_{state}")
        draw(st.randoms()).shuffle(terms)
        function = draw(st.sampled_from(["tanh", "sigmoid", "identity"]))
        inside = " + ".join(terms)
        if draw(st.booleans()):  # a named pre-activation
            lines.append(f"a_{state}[t] = {inside}")
            inside = f"a_{state}[t]"
        value = f"{function}({inside})"
        if draw(st.booleans()):  # a gate mixing the old state and the new value
            decl[f"Z_{state}"] = f"({below_width}, {w})"
            lines.append(f"z_{state}[t] = sigmoid({below} @ Z_{state})")
            value = f"(1 - z_{state}[t]) * {state}[t-1] + z_{state}[t] * {value}"
        lines.append(f"{state}[t] = {value}")
        below, below_width = f"{state}[t]", w
    loss = draw(st.sampled_from(["cross_entropy", "mean", "abstract", "squared", "layer"]))
    if loss in ("cross_entropy", "mean"):
        decl.update({"y[t]": "(N,) in C", "V": f"({below_width}, C)", "c": "(C,)"})
        lines.append(f"o[t] = {below} @ V + c")
        tail = " / (N * T)" if loss == "mean" else ""
        lines.append(f"L = sum(t, cross_entropy(o[t], y[t])){tail}")
    elif loss == "abstract":
        decl.update({"g[t]": "(N, C)", "V": f"({below_width}, C)"})
        lines.append(f"o[t] = {below} @ V")
        lines.append("L = sum(t, sum(g[t] * o[t]))")
    elif loss == "squared":
        decl.update({"target[t]": "(N, C)", "V": f"({below_width}, C)"})
        lines.append(f"L = sum(t, 0.5 * sum(({below} @ V - target[t]) ** 2))")
    text = "\n".join([*(f"{k}: {v}" for k, v in decl.items()), *lines]) + "\n"
    return text


@settings(max_examples=12, deadline=None)
@given(
    text=model_files(),
    N=st.integers(1, 3),
    D=st.integers(1, 3),
    H=st.integers(1, 3),
    K=st.integers(1, 3),
    C=st.integers(2, 3),
    T=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_random_model_files_agree_with_their_own_equations(text, N, D, H, K, C, T, seed):
    spec = from_text(text)
    dims = Dims(N=N, D=D, H=H, C=C, T=T, more={"K": K} if "K" in spec.size_names else {})
    point = spec.random_point(dims, seed=seed)
    engine = gradient_function(dims, spec)(point)  # checked against differences first
    evaluator = Evaluator(spec.definition)
    differences = finite_differences(evaluator, point, dims.sizes, T, list(spec.gradient_names))
    scale = max(1.0, *(float(np.abs(v).max()) for v in differences.values()))
    for name, value in differences.items():
        np.testing.assert_allclose(engine[name], value, rtol=0, atol=1e-7 * scale)
    text_out = derivation(T, "all", model=spec).text()
    read = evaluate_text(text_out, point, dims.sizes, "row", model=description(spec))
    for name in spec.gradient_names:
        np.testing.assert_allclose(read["d" + name], engine[name], rtol=1e-9, atol=1e-12)


# -- every command from a file ------------------------------------------------------------------
def test_derive_from_a_file(capsys):
    path = gallery_path("stacked_rnn")
    assert main(["derive", "--model", str(path), "--size", "K=2", "--T", "3", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["agrees"] and record["dims"]["K"] == 2
    assert (
        record["model"]["file"] == str(path) and record["model_check"]["max_relative_error"] < 1e-8
    )
    assert record["path_count"] == len(record["paths"])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--size", "K=3"], "has no size K"),
        (["--no-bias", "b"], "leave the bias out"),
        (["--h0", "zero"], "h[0] = 0"),
        (["--activation", "relu"], "relu(a[t])"),
        (["--reduction", "mean"], "(N * T)"),
        (["--truncate", "1"], "full BPTT only"),
        (["--gate-order", "ifgo"], "colblock"),
    ],
)
def test_options_of_the_built_ins_are_refused_for_a_file(argv, message, capsys):
    assert main(["derive", "--model", str(gallery_path("rnn")), *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_missing_size_or_file_is_one_sentence(capsys, tmp_path):
    assert main(["derive", "--model", str(gallery_path("stacked_rnn"))]) == 2
    assert "--size K=3" in capsys.readouterr().err
    assert main(["derive", "--model", str(tmp_path / "nothing.txt")]) == 2
    assert "choose rnn, lstm or gru" in capsys.readouterr().err
    assert main(["derive", "--size", "K=2"]) == 2
    assert "--size gives a model file's own" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is installed by .ci/run")
def test_the_verified_derivation_of_a_file_compiles(tmp_path, capsys):
    out = tmp_path / "peephole.tex"
    path = str(gallery_path("peephole_lstm"))
    assert (
        main(["latex", "--model", path, "--T", "2", "--wrt", "all", "-o", str(out), "--pdf"]) == 0
    )
    assert (tmp_path / "peephole.pdf").stat().st_size > 10_000
    text = out.read_text()
    assert r"peephole\_lstm.txt" in text and "p_{f}" in text


def test_the_graph_of_a_file_lights_exactly_its_paths():
    from symbptt.pictures.graph import graph_figure

    spec = _file("mgu")
    figure = graph_figure(spec, 3, "U_f")
    paths = derive(unroll(spec.complete(Dims(N=1, D=1, H=1, C=2, T=3), 1), spec=spec)).paths("U_f")
    assert figure.paths == len(paths)
    edges = {(a, b) for p in paths for a, b in zip(p.nodes, p.nodes[1:])}
    assert set(figure.lit_edges) == edges


def test_contributions_of_the_rnn_file_equal_the_built_in_ones():
    """Two independent computations: the built-in's from its hand-written reference, the
    file's from its recurrences, each loss term pulled back on its own."""
    from symbptt.pictures.contributions import contributions

    dims = Dims(N=2, D=3, H=4, C=3, T=12)
    point = VANILLA.random_point(dims, seed=2)
    ours = contributions(_file("rnn"), dims, "W_h", (0.5, 2.0), arrays=point)
    theirs = contributions(VANILLA, dims, "W_h", (0.5, 2.0), arrays=point)
    np.testing.assert_allclose(ours.norms, theirs.norms, rtol=1e-9)
    assert max(ours.sum_errors) < 1e-12 * max(ours.totals)


def test_audit_with_a_file_model_names_the_missing_recurrent_term(tmp_path):
    from symbptt.audit import audit

    spec = _file("stacked_rnn")
    text = derivation(3, "all", model=spec).text()
    assert audit(text, model=spec).ok
    line = next(x for x in text.splitlines() if x.startswith("dh1[t] ="))
    short = line.split(" + (dh1[t+1]")[0]
    report = audit(text.replace(line, short), model=spec)
    (bad,) = [f for f in report.findings if f.status == "wrong"]
    assert bad.rule.target == "dh1" and "recurrent term" in bad.classification
    assert bad.correction == line


# -- check on code written for the gallery --------------------------------------------------------
CHECKS = [
    ("d2l_linear", "d2l_linear", 0, None),
    ("d2l_linear", "d2l_linear_no_recurrence", 1, "no_recurrent_term"),
    ("gru_update", "gru_update", 0, None),
    ("gru_update", "gru_pytorch_update", 1, None),
    ("peephole_lstm", "peephole_lstm", 0, None),
    ("peephole_lstm", "peephole_lstm_no_peephole_carry", 1, None),
    ("stacked_rnn", "stacked_rnn", 0, None),
    ("stacked_rnn", "stacked_rnn_no_upward", 1, "zero"),
]


@pytest.mark.parametrize("model, function, status, cause", CHECKS)
def test_check_judges_code_for_a_model_file(model, function, status, cause):
    from symbptt import check_gradients

    report = check_gradients(
        f"{CORPUS / 'gallery_code.py'}:{function}",
        model=_file(model),
        max_examples=30,
        probe=False,
    )
    assert report.ok == (status == 0), report.to_dict()
    if cause is not None:
        causes = {r.likely_cause for r in report.results if r.status == "WRONG"}
        assert cause in causes, causes


@pytest.mark.parametrize("function, ok", [("rnn_layer", True), ("rnn_layer_untransposed", False)])
def test_check_takes_a_layer_file_in_the_layer_form(function, ok):
    from symbptt import check_gradients

    report = check_gradients(
        f"{CORPUS / 'gallery_code.py'}:{function}",
        model=from_file(CORPUS / "rnn_layer.txt"),
        form="layer",
        max_examples=30,
        probe=False,
    )
    assert report.ok is ok


def test_the_layer_file_needs_the_layer_form():
    from symbptt import check_gradients
    from symbptt.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="is a layer"):
        check_gradients(lambda *a: None, model=from_file(CORPUS / "rnn_layer.txt"), form="full")
    with pytest.raises(InvalidArgumentError, match="has a loss"):
        check_gradients(lambda *a: None, model=_file("rnn"), form="layer")


def test_the_command_line_checks_code_against_a_file(tmp_path):
    run = subprocess.run(
        [
            "symbptt",
            "check",
            f"{CORPUS / 'gallery_code.py'}:d2l_linear_no_recurrence",
            "--model",
            str(gallery_path("d2l_linear")),
            "--examples",
            "20",
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1, run.stderr
    record = json.loads(run.stdout)
    assert record["model"]["name"] == "d2l_linear" and not record["ok"]


def test_strategies_and_the_plugin_take_a_file_model(pytester):
    pytester.makepyfile(
        f"""
        import sys
        sys.path.insert(0, {str(CORPUS)!r})
        from gallery_code import d2l_linear
        from symbptt.models import from_file

        MODEL = from_file({str(gallery_path("d2l_linear"))!r})

        def test_mine(bptt_check):
            bptt_check(d2l_linear, model=MODEL, max_examples=10)
        """
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_the_gallery_page_shows_what_the_tool_prints():
    """docs/models.md quotes the backward lines of gru_update.txt: they are today's."""
    page = (Path(__file__).parent.parent / "docs" / "models.md").read_text()
    quoted = page.split("and its derivation")[1].split("```text\n")[1].split("```")[0]
    printed = derivation(3, "W_h", model=_file("gru_update")).text()
    body = printed[printed.index("# backward") :]
    assert quoted.strip() == body.strip()
