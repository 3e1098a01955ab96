"""The matrix-form derivation (issue 8): derived by rule application, checked line by line
before printing, and printed as LaTeX, Markdown and the formula language.

The independent judges here are the NumPy reference BPTT (`symbptt.reference`, which never
imports the engine), the formula-language evaluator in `tests/formula_eval.py` (which imports
nothing from symbptt), Goodfellow et al.'s equations written out below with `diag` matrices, and
pdflatex.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from formula_eval import evaluate_text
from hypothesis import given, settings
from hypothesis import strategies as st
from test_variants import OPTIONS
from test_variants import _reference as _variant_reference

from symbptt.cli import main
from symbptt.derivation import derivation, parse_names
from symbptt.derivation.output import compile_pdf
from symbptt.derivation.verify import verify
from symbptt.engine.matexpr import Indexed
from symbptt.engine.matrix_form import Line, Term, matrix_form
from symbptt.errors import DerivationCheckError, InvalidArgumentError, UnknownNameError
from symbptt.models import VANILLA
from symbptt.models.dims import Dims
from symbptt.strategies import rnn_shapes


def _close(ours, truth, what=""):
    truth = np.asarray(truth, dtype=float)
    atol = 1e-12 * (1 + np.abs(truth).max(initial=0))
    np.testing.assert_allclose(ours, truth, rtol=1e-9, atol=atol, err_msg=what)


# -- the matrix form itself, against the independent reference -----------------------------------
@settings(max_examples=30, deadline=None, derandomize=True)
@given(
    dims=rnn_shapes(max_T=5),
    options=OPTIONS,
    convention=st.sampled_from(["row", "column"]),
    seed=st.integers(0, 2**16),
)
def test_the_matrix_form_equals_numpy_bptt(dims, options, convention, seed):
    spec = VANILLA.variant(**options)
    form = matrix_form(spec, convention)
    arrays = spec.random_point(dims, seed)
    ours = form.evaluate(arrays, dims)
    loss, grads = _variant_reference(spec, arrays)
    _close(ours.loss, loss, "loss")
    assert set(ours.gradients) == set(grads) == set(spec.gradient_names)
    for name, value in grads.items():
        _close(ours.gradients[name], value, name)


def test_the_lines_come_from_the_rules_and_follow_the_variant():
    plain = {str(line.target): str(line.expr) for line in matrix_form(VANILLA).adjoints}
    assert plain["da[t]"] == "dh[t] ⊙ (1 - h[t] ⊙ h[t])"
    assert plain["dh[t]"] == "do[t] @ V^T + da[t+1] @ W_h^T"
    relu = {
        str(line.target): str(line.expr)
        for line in matrix_form(VANILLA.variant(activation="relu")).adjoints
    }
    assert relu["da[t]"] == "dh[t] ⊙ step(a[t])"
    identity = matrix_form(VANILLA.variant(activation="identity"))
    assert {str(line.target): str(line.expr) for line in identity.adjoints}["da[t]"] == "dh[t]"
    no_bias = matrix_form(VANILLA.variant(no_bias=("b",), h0="zero", inputs="tokens"))
    assert set(no_bias.gradients) == {"W_x", "W_h", "V", "c"}
    assert str(no_bias.model[0].expr) == "h[t-1] @ W_h + onehot(x[t]) @ W_x"


# -- verification refuses wrong lines -------------------------------------------------------------
def _swap_gradient(form, name, expr):
    line = form.gradients[name]
    return replace(form, gradients={**form.gradients, name: replace(line, terms=(Term(expr),))})


@pytest.mark.parametrize("convention", ["row", "column"])
def test_verification_refuses_the_seed_blogs_h_t_for_h_t_minus_1(convention):
    form = matrix_form(VANILLA, convention)
    good = form.gradients["W_h"].expr
    # h[t] in place of h[t-1]: the same shapes, a different (wrong) gradient.
    wrong = _swap_gradient(
        form,
        "W_h",
        _shift(good, "h", +1),
    )
    verify(form)
    with pytest.raises(DerivationCheckError, match="dW_h disagrees"):
        verify(wrong)


def _shift(expr, base, by):
    from symbptt.engine.matexpr import rebuild

    def move(node):
        if isinstance(node, Indexed) and node.base == base and node.relative:
            return Indexed.make(base, node.shape, node.offset + by)
        return None

    return rebuild(expr, move)


def test_verification_refuses_a_recurrence_without_its_recurrent_term():
    form = matrix_form(VANILLA)
    adjoints = tuple(
        replace(line, terms=tuple(t for t in line.terms if t.source != "future"))
        for line in form.adjoints
    )
    with pytest.raises(DerivationCheckError, match=r"dh\[\d\] disagrees"):
        verify(replace(form, adjoints=adjoints))


def test_verification_refuses_a_missing_transpose():
    form = matrix_form(VANILLA)
    line = next(line for line in form.adjoints if line.target.base == "dh")
    # W_h instead of W_h^T in the recurrent term: type-checks (H x H) but is wrong.
    from symbptt.engine.matexpr import Transpose, rebuild

    def untranspose(node):
        return node.arg if isinstance(node, Transpose) and node.arg.name == "W_h" else None

    broken = replace(
        line, terms=tuple(Term(rebuild(t.expr, untranspose), t.source) for t in line.terms)
    )
    adjoints = tuple(broken if a is line else a for a in form.adjoints)
    with pytest.raises(DerivationCheckError):
        verify(replace(form, adjoints=adjoints))


def test_a_wrong_path_term_is_refused():
    from symbptt.engine.derivatives import derive
    from symbptt.engine.graph import unroll
    from symbptt.engine.matrix_form import PathTerm, path_terms

    dims = Dims(N=2, D=3, H=2, C=3, T=3)
    graph = unroll(dims)
    terms = path_terms(graph, derive(graph).paths("W_h"))
    verify(matrix_form(VANILLA), path_terms=terms, path_dims=dims)
    bad = [PathTerm(terms[0].path, terms[0].jacobians, terms[1].expr), *terms[1:]]
    with pytest.raises(DerivationCheckError, match="the term of the path"):
        verify(matrix_form(VANILLA), path_terms=bad, path_dims=dims)


def test_the_paths_of_W_h_number_T_T_plus_1_over_2_and_name_every_step():
    d = derivation(4, "W_h")
    assert d.verification.paths == 10
    tex = d.latex()
    assert tex.count(r"\text{path }") == 10
    assert "T(T+1)/2 = 10" in tex


# -- the formula language, read back by an independent evaluator ------------------------------
@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    dims=rnn_shapes(max_T=4),
    options=OPTIONS.filter(lambda o: o["truncate"] is None),
    convention=st.sampled_from(["row", "column"]),
    seed=st.integers(0, 2**16),
)
def test_the_text_format_evaluates_to_numpy_bptt(dims, options, convention, seed):
    spec = VANILLA.variant(**options)
    text = derivation(dims.T, "all", model=spec, convention=convention).text()
    arrays = spec.random_point(dims, seed)
    ours = evaluate_text(text, arrays, dims.as_dict(), convention)
    _, grads = _variant_reference(spec, arrays)
    for name, value in grads.items():
        _close(ours["d" + name], value, name)


def test_the_text_format_uses_the_readers_names():
    names = {"W_h": "W", "W_x": "U"}
    text = derivation(3, "all", names=names, convention="column").text()
    assert "dW = sum(t, da[t] @ h[t-1].T)" in text
    assert "a[t] = b + W @ h[t-1] + U @ x[t]" in text
    dims = Dims(N=2, D=3, H=2, C=3, T=3)
    arrays = VANILLA.random_point(dims, 3)
    ours = evaluate_text(text, arrays, dims.as_dict(), "column", names=names)
    _, grads = _variant_reference(VANILLA, arrays)
    _close(ours["dW"], grads["W_h"])
    _close(ours["dU"], grads["W_x"])


def test_wrt_selects_the_lines_a_gradient_needs():
    text = derivation(3, "c").text()
    assert "dc = sum(t, sum_rows(do[t]))" in text
    assert "dh[t]" not in text and "da[t]" not in text
    assert "a[t] = b + h[t-1] @ W_h + x[t] @ W_x" in text  # the model lines stay


def test_truncation_is_stated_as_a_path_filter_and_not_as_the_total():
    d = derivation(4, "W_h", model=VANILLA.variant(truncate=1))
    tex = d.latex()
    assert r"[k=s]" in tex and r"\sum_{k=\max(1,s-1)}^{s}" in tex
    assert (
        "through 10 paths ($T(T+1)/2 = 10$); the 1-step truncation keeps the 7 from a use at "
        "step $k$ to a loss term $L_s$ with $s - k \\le 1$ (listed below) and drops 3" in tex
    )
    assert "at most 1 step:" in tex and "1 steps" not in tex
    assert r"$\bar{a}^{(s)}_k$ is the derivative of $L_s$ alone" in tex  # defined before use
    assert r"\tilde{g}_{W_{h}} &=" in tex  # the truncated gradient is not dL/dW_h
    assert r"\frac{\mathrm{d}L}{\mathrm{d}W_{h}} &=" not in tex
    assert r"\tilde{g}_{W_{h}}" in d._repr_latex_() and "1-step truncation" in d._repr_latex_()
    assert all(dims.T > 2 for dims in d.verification.shapes if dims.T > 1)
    with pytest.raises(InvalidArgumentError, match="one time index"):
        d.text()


def test_a_truncation_that_drops_nothing_prints_full_bptt_checked_where_it_holds():
    d = derivation(3, "W_h", model=VANILLA.variant(truncate=2))
    assert "no path is dropped" in d.latex()
    assert all(dims.T <= 3 for dims in d.verification.shapes)
    text = d.text()
    assert "truncate=2" in text and "hold only there" in text
    assert "dW_h = sum(t, h[t-1].T @ da[t])" in text


def test_a_truncation_too_long_to_check_is_refused():
    with pytest.raises(InvalidArgumentError, match="use K <= 37"):
        derivation(50, "W_h", model=VANILLA.variant(truncate=38))


# -- Goodfellow et al. 10.18-10.28, written out here ----------------------------------------------
def _book(p, T):
    """Eqs. 10.18-10.28 for one column example; W = W_h^T of the row form, U = W_x^T."""
    W, U, V = p["W_h"].T, p["W_x"].T, p["V"].T
    b, c = p["b"][:, None], p["c"][:, None]
    h, go, yhat = {0: p["h0"].T}, {}, {}
    for t in range(1, T + 1):
        h[t] = np.tanh(b + W @ h[t - 1] + U @ p["x"][t - 1].T)
        o = c + V @ h[t]
        yhat[t] = np.exp(o) / np.exp(o).sum()
        go[t] = yhat[t] - np.eye(len(o))[:, [p["y"][t - 1][0]]]  # 10.18
    gh = {T: V.T @ go[T]}  # 10.19
    for t in range(T - 1, 0, -1):  # 10.21, factors reordered
        gh[t] = W.T @ np.diag(1 - h[t + 1][:, 0] ** 2) @ gh[t + 1] + V.T @ go[t]
    D = {t: np.diag(1 - h[t][:, 0] ** 2) for t in h if t}
    steps = range(1, T + 1)
    grads = {
        "c": sum(go[t] for t in steps),  # 10.22
        "b": sum(D[t] @ gh[t] for t in steps),  # 10.23
        "V": sum(go[t] @ h[t].T for t in steps),  # 10.24
        "W_h": sum(D[t] @ gh[t] @ h[t - 1].T for t in steps),  # 10.26
        "W_x": sum(D[t] @ gh[t] @ p["x"][t - 1] for t in steps),  # 10.28
    }
    return gh, go, grads


@pytest.mark.parametrize("seed", range(3))
def test_the_column_convention_equals_goodfellow_10_18_to_10_28(seed):
    dims = Dims(N=1, D=2, H=3, C=3, T=4)
    p = VANILLA.random_point(dims, seed)
    form = matrix_form(VANILLA, "column")
    ours = form.evaluate(p, dims)
    gh, go, grads = _book(p, dims.T)
    for t in range(1, dims.T + 1):  # ours come back in the row layout: (1, H) for one example
        _close(ours.values[("dh", t)], gh[t].T, f"dh[{t}]")
        _close(ours.values[("do", t)], go[t].T, f"do[{t}]")
    for name in ("c", "b"):
        _close(ours.gradients[name], grads[name][:, 0], name)
    for name in ("V", "W_h", "W_x"):
        _close(ours.gradients[name], grads[name].T, name)


def test_goodfellow_10_21_as_printed_does_not_multiply():
    W, g, d = np.ones((3, 3)), np.ones((3, 1)), np.diag(np.ones(3))
    with pytest.raises(ValueError):
        W.T @ g @ d  # noqa: B018 (the book's order: (H x 1) times (H x H))
    tex = derivation(3, "all", convention="column").latex()
    assert "Comparison with Goodfellow" in tex and "10.21" in tex
    assert "Comparison with Goodfellow" not in derivation(3, "all").latex()


# -- documents ----------------------------------------------------------------------------------
def _pdflatex(tex: str, folder: Path) -> str:
    engine = shutil.which("pdflatex")
    assert engine, "pdflatex is needed (CI installs texlive-latex-base from Debian)"
    (folder / "d.tex").write_text(tex)
    run = subprocess.run(
        [engine, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", "d.tex"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-2000:]
    assert (folder / "d.pdf").stat().st_size > 1000
    return (folder / "d.log").read_text(errors="replace")


def _overfull(log: str) -> list[float]:
    """How far each overfull line sticks out of the page, in points."""
    import re

    return [float(m) for m in re.findall(r"Overfull \\hbox \((\d+\.?\d*)pt too wide\)", log)]


DOCUMENTS = [
    *[
        dict(T=T, wrt=name, convention=c)
        for T in (1, 2, 3, 4)
        for c in ("row", "column")
        for name in VANILLA.gradient_names
    ],
    dict(T=4, wrt="all", convention="column"),
    dict(T=3, wrt="all", convention="column", names="W_h=W,W_x=U", expand=True),
    dict(T=4, wrt="all", convention="column", model=VANILLA.variant(reduction="mean")),
    dict(T=2, wrt="all", names="x=x_in,y=lab,h=s,W_h=W_hh", expand=True),
    dict(T=3, wrt="W_h", expand=True, model=VANILLA.variant(h0="zero", inputs="tokens")),
    dict(T=2, wrt="all", model=VANILLA.variant(inputs="tokens", activation="relu", h0="zero")),
    dict(T=4, wrt="W_h,h0,x", model=VANILLA.variant(truncate=1, reduction="mean")),
    dict(T=3, wrt="all", convention="column", model=VANILLA.variant(no_bias=("b", "c"))),
    dict(T=10, wrt="all"),
]


@pytest.mark.parametrize(
    "options",
    DOCUMENTS,
    ids=lambda o: (
        ",".join(f"{k}={v}" for k, v in o.items() if k != "model")
        + (f",{o['model'].options}" if "model" in o else "")
    ),
)
def test_every_document_compiles_with_pdflatex(options, tmp_path):
    log = _pdflatex(derivation(**options).latex(), tmp_path)
    assert max(_overfull(log), default=0) < 5, "a line sticks out of the page"


def test_the_body_compiles_inside_a_readers_document(tmp_path):
    body = derivation(3, "W_h").latex(body=True)
    assert r"\documentclass" not in body
    wrapper = (
        "\\documentclass{article}\\usepackage{amsmath,amssymb,booktabs,graphicx}"
        f"\\begin{{document}}{body}\\end{{document}}"
    )
    _pdflatex(wrapper, tmp_path)


def test_markdown_math_is_balanced_and_jupyter_displays_it():
    d = derivation(3, "all")
    md = d.markdown()
    assert md.count("$$") % 2 == 0 and md.count("$$") >= 10
    assert "\\section" not in md
    assert d._repr_markdown_() == md
    latex = d._repr_latex_()
    assert latex.startswith("$$") and latex.endswith("$$") and r"\sum_{t=1}^{T}" in latex


@pytest.mark.parametrize(
    "names, message",
    [
        ("W_q=W", "not a name of the vanilla model"),
        ("W_h=W,W_x=W", "the same name 'W'"),
        ("W_h=\\alpha}", "a name is letters and digits"),
        ("W_h=tanh", "reserved"),
        ("W_h=dV", "reads as the gradient of 'V'"),
        ("W_h", "NAME=YOURS pairs"),
    ],
    ids=["unknown", "clash", "latex", "reserved", "gradient-like", "no ="],
)
def test_bad_names_are_one_sentence(names, message):
    with pytest.raises(InvalidArgumentError, match=message):
        parse_names(names, VANILLA)


def test_bad_arguments_are_one_sentence():
    with pytest.raises(InvalidArgumentError, match="T=0 must be a whole number"):
        derivation(0)
    with pytest.raises(UnknownNameError, match="did you mean"):
        derivation(3, "W_q")
    with pytest.raises(InvalidArgumentError, match="convention='diag'"):
        derivation(3, convention="diag")


# -- the command line -----------------------------------------------------------------------
def test_the_done_when_command_writes_a_tex_and_a_pdf(tmp_path, capsys):
    tex = tmp_path / "d.tex"
    assert main(["latex", "--T", "3", "--wrt", "W_h", "-o", str(tex), "--pdf"]) == 0
    assert (tmp_path / "d.pdf").read_bytes().startswith(b"%PDF")
    assert "arrays checked against the engine" in capsys.readouterr().err
    text = tex.read_text()
    assert r"\frac{\mathrm{d}L}{\mathrm{d}W_{h}} &= \sum_{t=1}^{T} h_{t-1}^{\top}" in text


def test_existing_files_are_never_overwritten_without_force(tmp_path, capsys):
    out = tmp_path / "notes.tex"
    out.write_text("my notes")
    assert main(["latex", "-o", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert out.read_text() == "my notes"
    pdf = tmp_path / "new.pdf"
    pdf.write_text("keep")
    assert main(["latex", "-o", str(tmp_path / "new.tex"), "--pdf"]) == 2
    assert pdf.read_text() == "keep" and not (tmp_path / "new.tex").exists()
    assert main(["latex", "-o", str(out), "--force"]) == 0
    assert out.read_text().startswith("\\documentclass")


def test_the_format_follows_the_suffix_and_usage_errors_exit_2(tmp_path, capsys):
    assert main(["latex", "-o", str(tmp_path / "d.md")]) == 0
    assert (tmp_path / "d.md").read_text().startswith("# Backpropagation")
    assert main(["latex", "-o", str(tmp_path / "d.txt"), "--wrt", "b"]) == 0
    assert "db = sum(t, sum_rows(da[t]))" in (tmp_path / "d.txt").read_text()
    assert main(["latex", "--pdf"]) == 2
    assert main(["latex", "--format", "md", "--body"]) == 2
    assert main(["latex", "--format", "text", "--truncate", "1", "--T", "4"]) == 2
    err = capsys.readouterr().err
    assert "--pdf needs -o FILE.tex" in err and "one time index" in err


def test_a_missing_pdflatex_is_one_sentence(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["latex", "-o", str(tmp_path / "d.tex"), "--pdf"]) == 2
    assert "--pdf needs pdflatex, which is not installed" in capsys.readouterr().err
    assert not (tmp_path / "d.tex").exists()


def test_compile_pdf_reports_the_latex_error(tmp_path):
    from symbptt.derivation.output import PdfError

    bad = "\\documentclass{article}\\begin{document}$\\frac{1}$\\end{document}"
    with pytest.raises(PdfError, match="pdflatex failed"):
        compile_pdf(bad, tmp_path / "bad.pdf")
    assert not (tmp_path / "bad.pdf").exists()


def test_a_line_the_engine_disputes_aborts_the_command(monkeypatch, capsys, tmp_path):
    import symbptt.engine.matrix_form as mf

    real = mf._derive

    def broken(spec):
        form = real(spec)
        line = form.gradients["W_h"]
        return replace(
            form,
            gradients={
                **form.gradients,
                "W_h": Line(
                    line.target, (Term(_shift(line.expr, "h", 1)),), line.kind, line.about, True
                ),
            },
        )

    monkeypatch.setattr(mf, "_derive", broken)
    out = tmp_path / "d.tex"
    assert main(["latex", "-o", str(out)]) == 3
    assert "disagrees with the element-level engine" in capsys.readouterr().err
    assert not out.exists()


def test_another_cell_gives_other_lines():
    """A model that exists only in tests/test_variants.py: an extra tanh layer before the
    output. Its lines come from its cell, and they equal finite differences of the test's own
    NumPy loss."""
    from test_variants import DEEP_OUTPUT, _deep_output_loss

    from symbptt.models.vanilla import sample

    def sample_deep(dims, rng, scale):
        p = sample(dims, rng, scale)
        p["U"] = rng.standard_normal((dims.H, dims.H)) / np.sqrt(dims.H)
        p["d"] = 0.1 * rng.standard_normal(dims.H)
        return p

    spec = replace(DEEP_OUTPUT, sample=sample_deep)
    d = derivation(3, "all", model=spec)
    text = d.text()
    assert "z[t] = tanh(u[t])" in text and "dh[t] = du[t] @ U.T + da[t+1] @ W_h.T" in text
    assert "dU = sum(t, h[t].T @ du[t])" in text
    dims = Dims(N=2, D=2, H=2, C=3, T=3)
    arrays = spec.random_point(dims, 1)
    for convention in ("row", "column"):
        ours = matrix_form(spec, convention).evaluate(arrays, dims)
        _close(ours.loss, _deep_output_loss(arrays), "loss")
        for name in spec.gradient_names:  # central differences of the test's own NumPy loss
            fd = np.zeros_like(arrays[name])
            for index in np.ndindex(*fd.shape):
                up, down = dict(arrays), dict(arrays)
                up[name], down[name] = arrays[name].copy(), arrays[name].copy()
                up[name][index] += 1e-6
                down[name][index] -= 1e-6
                fd[index] = (_deep_output_loss(up) - _deep_output_loss(down)) / 2e-6
            np.testing.assert_allclose(ours.gradients[name], fd, rtol=1e-5, atol=1e-7)


def test_paths_start_where_the_parameter_enters():
    tex = derivation(2, "h0,W_h").latex()
    assert (
        r"\text{path }  h_{0} \to a_{1}" in tex.replace("  ", "  ")
        or r"\text{path } h_{0} \to a_{1}" in tex
    )
    assert r"\text{path } {W_{h}}^{(1)} \to a_{1}" in tex


@pytest.mark.parametrize(
    "args, message",
    [
        (["--wrt", "x", "--inputs", "tokens"], "x holds token ids in this variant"),
        (["--wrt", "h0", "--h0", "zero"], "h0 is fixed at zero in this variant"),
        (["--wrt", "b", "--no-bias", "b"], "this variant has no bias b"),
        (["--names", "W_h=a_t"], "which reads as 'a' at a step"),
        (["--names", "W_h=W1,W_x=W_1"], "names that print alike"),
        (["--names", "o=do"], "reads as the gradient of 'o'"),
        (["--T", "50", "--truncate", "38"], "use K <= 37"),
    ],
    ids=["tokens x", "h0 zero", "no bias", "a at a step", "print alike", "do", "long K"],
)
def test_impossible_requests_are_one_sentence(args, message, capsys):
    assert main(["latex", "--format", "text", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_output_paths_that_cannot_be_written_are_refused_first(tmp_path, capsys):
    assert main(["latex", "-o", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["latex", "-o", str(tmp_path / "d.pdf")]) == 2
    assert "add --pdf" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_the_written_out_entry_is_not_zero_when_h0_is():
    d = derivation(3, "W_h", model=VANILLA.variant(h0="zero"), expand=True)
    entry = next(b for b in d.document.blocks if b.kind == "lines" and "_{1} = " in b.content[0])
    assert "T = 2" in d.latex() and len("".join(entry.content)) > 100
