"""Auditing hand-written derivations (issue 10): right derivations pass in both conventions and
every variant (a round trip of `symbptt latex --format text`), Goodfellow et al.'s equations
pass with 10.21 reordered and fail as printed, each rule of a corpus of wrong rules is flagged
on its line with its cause and the correct rule, and the readers, fed random and mutated text,
only ever raise their own syntax error.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symbptt.audit import audit
from symbptt.audit.latex_reader import read_latex
from symbptt.audit.text_reader import FormulaSyntaxError, read_text
from symbptt.cli import main
from symbptt.derivation import derivation
from symbptt.models import VANILLA

VARIANTS = [
    {},
    {"activation": "relu"},
    {"activation": "identity"},
    {"inputs": "tokens", "h0": "zero"},
    {"no_bias": ("b", "c"), "reduction": "mean"},
]


@pytest.mark.parametrize("convention", ["row", "column"])
@pytest.mark.parametrize("options", VARIANTS, ids=lambda o: ",".join(o) or "plain")
def test_what_symbptt_latex_writes_passes_its_audit(convention, options):
    spec = VANILLA.variant(**options)
    for wrt in ("all", *spec.gradient_names):
        text = derivation(3, wrt, model=spec, convention=convention).text()
        report = audit(text, model=spec, convention=convention)
        assert report.ok, report.text()


GOODFELLOW = r"""
\begin{align}
\nabla_{o^{(t)}} L &= \hat{y}^{(t)} - \mathbf{1}_{y^{(t)}} \\
\nabla_{h^{(t)}} L &= W^\top \operatorname{diag}(1 - (h^{(t+1)})^2) \nabla_{h^{(t+1)}} L
    + V^\top \nabla_{o^{(t)}} L \\
\nabla_{c} L &= \sum_t \nabla_{o^{(t)}} L \\
\nabla_{b} L &= \sum_t \operatorname{diag}(1 - (h^{(t)})^2) \nabla_{h^{(t)}} L \\
\nabla_{V} L &= \sum_t (\nabla_{o^{(t)}} L) h^{(t)\top} \\
\nabla_{W} L &= \sum_t \operatorname{diag}(1 - (h^{(t)})^2) (\nabla_{h^{(t)}} L) h^{(t-1)\top} \\
\nabla_{U} L &= \sum_t \operatorname{diag}(1 - (h^{(t)})^2) (\nabla_{h^{(t)}} L) x^{(t)\top}
\end{align}
"""
BOOK = dict(format="latex", convention="column", mapping="W=W_h,U=W_x", one_example=True)


def test_goodfellow_10_18_to_10_28_with_10_21_reordered_pass():
    report = audit(GOODFELLOW, **BOOK)
    assert report.ok, report.text()
    assert set(report.determined) == {"U", "W", "b", "V", "c"}


def test_goodfellow_10_21_as_printed_is_flagged():
    printed = GOODFELLOW.replace(
        r"W^\top \operatorname{diag}(1 - (h^{(t+1)})^2) \nabla_{h^{(t+1)}} L",
        r"W^\top (\nabla_{h^{(t+1)}} L) \operatorname{diag}(1 - (h^{(t+1)})^2)",
    )
    report = audit(printed, **BOOK)
    (bad,) = report.wrong
    assert bad.rule.line == 4 and bad.status == "shape"
    assert "(H, 1) cannot multiply diag(v), which is (H, H)" in bad.message
    # in the book's own notation: its nabla, its steps, its W (--map W=W_h), and only the
    # gradients it writes (dL/da, which it never names, written out)
    assert bad.correction == (
        r"\nabla_{h^{(t)}} L = V^{\top}\,\nabla_{o^{(t)}} L + W^{\top}\,\left(\nabla_{h^{(t+1)}} "
        r"L \odot \left(1 - h^{(t+1)} \odot h^{(t+1)}\right)\right)"
    )


#: (rule, what the finding says, the correction): every one a distinct mistake.
WRONG_RULES = [
    ("dV = sum(t, h[t].T @ do[t]) * 2", "off by a factor 2", "dV = sum(t, h[t].T @ do[t])"),
    (
        "dh[t] = do[t] @ V + da[t+1] @ W_h.T",
        "V needs a transpose",
        "dh[t] = do[t] @ V.T + da[t+1] @ W_h.T",
    ),
    (
        "dW_h = sum(t, h[t].T @ da[t])",
        "uses h[t] where h[t-1] belongs",
        "dW_h = sum(t, h[t-1].T @ da[t])",
    ),
    ("h[0] = 0", None, "h[0] = h0"),
    (
        "dh[t] = do[t] @ V.T",
        "the recurrent term da[t+1] @ W_h.T is missing",
        "dh[t] = do[t] @ V.T + da[t+1] @ W_h.T",
    ),
    (
        "da[t] = dh[t] * (1 - a[t]**2)",
        "uses a where h belongs",
        "da[t] = dh[t] * (1 - h[t]**2)",
    ),
    ("da[t] = 1 - dh[t]**2", None, "da[t] = dh[t] * (1 - h[t]**2)"),
    (
        "dh[t] = da[t+1] @ W_h.T",
        "the term do[t] @ V.T is missing",
        "dh[t] = do[t] @ V.T + da[t+1] @ W_h.T",
    ),
    (
        "a[t] = b + h[t-1] @ W_h + x[t] @ W_h",
        "uses W_h where W_x belongs",
        "a[t] = b + h[t-1] @ W_h + x[t] @ W_x",
    ),
    (
        "dh[t] = do[t] @ V.T + da[t+1] @ W_h",
        "W_h needs a transpose",
        "dh[t] = do[t] @ V.T + da[t+1] @ W_h.T",
    ),
    ("do[t] = onehot(y[t]) - yhat[t]", "the sign is flipped", "do[t] = yhat[t] - onehot(y[t])"),
    ("db = sum(t, sum_cols(da[t]))", None, "db = sum(t, sum_rows(da[t]))"),
    ("dh0 = da[0] @ W_h.T", "uses da[0] where da[1] belongs", "dh0 = da[1] @ W_h.T"),
    ("dh[t-1] = da[t] @ h[t-1].T", None, "dh[t-1] = do[t-1] @ V.T + da[t] @ W_h.T"),
    ("dx[t] = da[t] @ W_h.T", "uses W_h where W_x belongs", "dx[t] = da[t] @ W_x.T"),
    (
        "dh[t] = do[t] @ V.T - da[t+1] @ W_h.T",
        "has the wrong sign",
        "dh[t] = do[t] @ V.T + da[t+1] @ W_h.T",
    ),
    ("dW_x = sum(t, x[t].T @ da[t-1])", "uses da[t-1] where da[t] belongs", None),
]


@pytest.mark.parametrize("rule, cause, correction", WRONG_RULES, ids=[r[0] for r in WRONG_RULES])
def test_each_wrong_rule_is_flagged_on_its_line_with_its_correction(rule, cause, correction):
    right = "h[t] = tanh(a[t])\no[t] = c + h[t] @ V\n"
    report = audit(f"# a derivation\n{right}{rule}\n")
    (bad,) = report.wrong
    assert bad.rule.line == 4 and bad.rule.text == rule
    if cause is not None:
        assert bad.classification and cause in bad.classification, bad
    if correction is not None:
        assert bad.correction == correction
    assert not report.ok


def test_a_counterexample_is_the_smallest_shape_that_shows_the_mistake():
    (bad,) = audit("dh[t] = do[t] @ V.T + da[t+1] @ W_h").wrong
    assert bad.counterexample["dims"]["H"] == 2  # H = 1 hides a missing transpose
    (bad,) = audit("dW_h = sum(t, h[t].T @ da[t])").wrong
    assert bad.counterexample["dims"]["T"] == 1


def test_rules_that_compensate_each_other_are_reported_as_such():
    report = audit(
        "dh[t] = 2 * (do[t] @ V.T + da[t+1] @ W_h.T)\n"
        "da[t] = 0.5 * dh[t] * (1 - h[t]**2)\n"
        "dW_h = sum(t, h[t-1].T @ da[t])\n"
    )
    assert [f.status for f in report.findings] == ["compensated", "compensated", "right"]
    assert not report.ok


def test_the_authors_own_quantities_and_names():
    report = audit(
        "dtanh[t] = 1 - h[t]**2\nda[t] = dh[t] * dtanh[t]\ndW = sum(t, h[t-1].T @ da[t])\n",
        mapping="W=W_h",
    )
    assert report.ok, report.text()
    assert [f.status for f in report.findings] == ["defines", "right", "right"]
    assert report.determined == ["W"]


SEED = Path(__file__).resolve().parent.parent / "docs" / "audit" / "seed.tex"


def test_the_seed_blogs_derivation(tmp_path, capsys):
    status = main(["audit", str(SEED), "--json"])
    record = json.loads(capsys.readouterr().out)
    assert status == 1
    flagged = {f["line"]: f for f in record["findings"] if f["status"] != "right"}
    causes = " ".join(str(f["classification"]) for f in flagged.values())
    assert "uses W_h where W_x belongs" in causes
    assert "the recurrent term" in causes
    assert any("(N, N)" in f["message"] for f in flagged.values())  # dh^{(t-1)} = da h^T


def test_parse_errors_say_where_and_what(capsys):
    with pytest.raises(FormulaSyntaxError) as info:
        read_text("a[t] = b\n\ndh[t] = do[t] @@ V.T\n")
    message = str(info.value)
    assert message.startswith("line 3, column 16: unexpected '@'")
    assert "dh[t] = do[t] @@ V.T\n" in message and "^" in message
    with pytest.raises(FormulaSyntaxError, match=r"line 1, column \d+"):
        read_latex(r"\mathbf{h}^{(t)} = \tanh(\mathbf{a}^{(t)}")


def test_the_command_line(tmp_path, capsys):
    good = tmp_path / "good.txt"
    good.write_text(derivation(2, "W_h").text())
    assert main(["audit", str(good)]) == 0
    bad = tmp_path / "bad.txt"
    bad.write_text("dh[t] = do[t] @ V.T\n")
    assert main(["audit", str(bad)]) == 1
    assert "should be: dh[t] = do[t] @ V.T + da[t+1] @ W_h.T" in capsys.readouterr().out
    broken = tmp_path / "broken.txt"
    broken.write_text("dh[t] = (\n")
    assert main(["audit", str(broken)]) == 1  # a line not read is a finding, never a verdict
    assert "not read: unexpected" in capsys.readouterr().out
    assert main(["audit", str(tmp_path / "missing.txt")]) == 2
    assert "no such file" in capsys.readouterr().err


# -- nothing the readers are given is ever executed --------------------------------------------
_PIECES = st.sampled_from(
    [
        "dh[t]", "=", " @ ", "V.T", "+", "da[t+1]", "(", ")", "**2", "sum(t, ", "__import__",
        "os.system('x')", "eval", "lambda", "\\frac{", "}", "{", "\\mathbf{h}^{(t)}", "^T",
        "\\odot", "\\sum_{t=1}^{T}", "&", "\\\\", "$$", "d", "\\nabla_{", "L", "1", "[", "]",
        "'", '"', ";", "#", "\n", "\\operatorname{diag}(", "\\tanh", "_{t-1}", "^{(", "%",
        "^", "_", "\\hat", "\\frac", "\\mathbf", "\\sum_", "\\nabla_", "1_", "h_0", "=",
        "\\cdot", "\\mathbf{1}^\\top", "\\frac{\\partial L^{(t)}}{\\partial a_t}",
    ]
)  # fmt: skip


@settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.lists(_PIECES, max_size=25).map("".join) | st.text(max_size=60))
def test_random_and_mutated_text_only_ever_raises_the_syntax_error(text):
    for reader in (read_text, read_latex):
        try:
            reader(text)
        except FormulaSyntaxError:
            pass


def test_jupyter_shows_the_report_and_json_round_trips():
    report = audit("dh[t] = do[t] @ V.T\n")
    assert "should be: dh[t] = do[t] @ V.T + da[t+1] @ W_h.T" in report._repr_markdown_()
    record = json.loads(json.dumps(report.to_dict()))
    (finding,) = record["findings"]
    assert finding["line"] == 1 and finding["status"] == "wrong"
    assert finding["counterexample"]["dims"]["T"] == 2


@pytest.mark.parametrize("convention", ["row", "column"])
def test_what_symbptt_latex_typesets_passes_its_audit_as_latex(convention):
    from symbptt.derivation.document import recurrence_rows

    d = derivation(3, "all", convention=convention)
    rows = [r for r in recurrence_rows(d.form, d.wrt, {}, 3) if not r.startswith("&\\text")]
    report = audit(" \\\\\n".join(rows), format="latex", convention=convention)
    assert report.ok, report.text()
    assert len(report.findings) == len(rows)


@pytest.mark.parametrize(
    "source, status, words",
    [
        ("dU = 7\n", "unchecked", "no rule uses it"),
        ("delta[t] = dh[t] * (1 - h[t]**2)\n", "unchecked", "--map delta=da?"),
        ("W_h = sum(t, h[t-1].T @ da[t])\n", "wrong", "cannot redefine it"),
        ("dh[0] = 0\n", "wrong", "is not a quantity"),
        (
            "delta[t] = do[t] @ V.T\ndelta[t] = 2 * dh[t]\ndW_h = sum(t, h[t-1].T @ delta[t])\n",
            "wrong",
            "twice",
        ),
        ("h[t+99] = 0\n", "unchecked", "names no step"),
    ],
    ids=["unused", "unmapped", "redefined", "dh[0]", "twice", "no step"],
)
def test_nothing_passes_unchecked(source, status, words):
    report = audit(source)
    assert not report.ok
    assert any(f.status == status and words in f.message for f in report.findings), report.text()


@pytest.mark.parametrize(
    "latex, message",
    [
        (r"x = \sum_{i=1}^{H} h_t", "over the entries or the examples"),
        (r"x = \sum_{k \in \{1, 2\}} W_k", "over a set"),
        (r"x = \sum_{k} h_k", "without its range"),
        (r"x = \sum h_t", "without its index"),
        (r"x = \frac{\partial}{\partial o_t} \log o_t", "applied to an expression"),
        (r"h_t = a_t^", "ends too early"),
    ],
    ids=["over the batch", "over a set", "no range", "no index", "operator", "early end"],
)
def test_what_the_latex_reader_refuses(latex, message):
    with pytest.raises(FormulaSyntaxError, match=message):
        read_latex(latex)


def test_every_member_of_a_chain_is_judged():
    report = audit(
        r"\frac{\partial L}{\partial h_t} = \frac{\partial L}{\partial o_t} V + W_h "
        r"= \frac{\partial L}{\partial o_t} V^\top + \frac{\partial L}{\partial a_{t+1}} W_h^\top",
        format="latex",
    )
    assert [f.status for f in report.findings] == ["shape", "right"]


def test_factors_are_named_by_the_sizes():
    (bad,) = audit("dV = sum(t, h[t].T @ do[t]) / N\n").wrong
    assert bad.classification.startswith("divided by N")
