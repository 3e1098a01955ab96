"""Random derivations in random notations (issue 18): a random cell's forward equations and
its BPTT rules, as symbptt derives them, written in LaTeX the way authors write them (steps
as h_t, h^{(t)}, h(t) or h^{<t>}; gradients as \\frac{\\partial L}{\\partial h_t}, \\nabla_{h_t}
L, dh_t or \\delta h_t; tanh' for the derivative; in $$ $$, \\[ \\], ```math or an align) are
read and judged right, and the same derivation with one rule changed by a common mistake has
that rule, and only that one, judged wrong.

What is under test is the reading: the rules' truth is the matrix form (itself checked
against the engine and differences in test_derivation and test_filemodels).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from symbptt.audit import audit
from symbptt.audit.spelling import AuthorPrinter
from symbptt.engine.matrix_form import matrix_form
from symbptt.models.filespec import from_text

STEPS = {"sub": "_{}", "paren": "^{({})}", "call": "({})", "angle": r"^{\langle {} \rangle}"}
ADJOINTS = ("frac", "nabla", "d", "delta")


@dataclass
class _Spelling:
    """What the reader would record for a document written this way."""

    step: str
    adjoint: str
    spellings: dict = field(default_factory=dict)

    @property
    def step_style(self):
        return {}

    @property
    def step_styles(self):
        return {self.step: 1}

    @property
    def adjoint_styles(self):
        return {self.adjoint: 1}

    loss_spelling = "L"


@st.composite
def cells(draw) -> str:
    """A one-state cell with a named pre-activation, an activation, maybe a bias, a matrix or
    an elementwise recurrence, and a softmax cross-entropy readout (column convention)."""
    activation = draw(st.sampled_from(["tanh", "sigmoid"]))
    recurrence = draw(st.sampled_from(["W @ h[t-1]", "u * h[t-1]"]))
    bias = draw(st.booleans())
    decl = ["x[t]: (D, N)", "y[t]: (N,) in C", "U: (H, D)", "V: (C, H)", "c: (C,)"]
    decl.append("W: (H, H)" if recurrence.startswith("W") else "u: (H,)")
    terms = [recurrence, "U @ x[t]"]
    if bias:
        decl.append("b: (H,)")
        terms.append("b")
    lines = [
        "h[0] = 0",
        f"a[t] = {' + '.join(terms)}",
        f"h[t] = {activation}(a[t])",
        "o[t] = V @ h[t] + c",
        "L = sum(t, cross_entropy(o[t], y[t]))",
    ]
    return "\n".join(decl + lines) + "\n"


def render(text: str, step: str, adjoint: str, delimiters: str, mutation: int | None):
    """The forward lines and BPTT rules of a cell as LaTeX of the given notation; `mutation`
    changes the rule with that number (dropping its recurrent term, or its first transpose).
    Returns (document, format, the changed rule's LaTeX or None)."""
    spec = from_text(text, convention="column")
    form = matrix_form(spec, "column")
    printer = AuthorPrinter(_Spelling(STEPS[step], adjoint))
    rules = [printer.rule(line.target, line.expr) for line in form.model]
    loss = printer.indexed("yhat", "t")
    rules.append(rf"L = -\sum_{{t=1}}^{{T}} \log {loss}[{printer.indexed('y', 't')}]")
    rules.append(printer.indexed("h", "0") + " = 0")
    backward = [*form.adjoints, *form.gradients.values()]
    changed = None
    for k, line in enumerate(backward):
        expr = _without_recurrent_term(line) if k == mutation else line.expr
        written = printer.rule(line.target, expr, summed=line.summed)
        if k == mutation and expr is line.expr:  # no recurrent term: another mistake
            written = _another_mistake(written)
        h, a = printer.indexed("h", "t"), printer.indexed("a", "t")
        if "tanh(a[t])" in text:  # tanh' and sigma' at the pre-activation
            written = written.replace(rf"\left(1 - {h} \odot {h}\right)", rf"\tanh'({a})")
        else:
            written = written.replace(rf"{h} \odot \left(1 - {h}\right)", rf"\sigma'({a})")
        if k == mutation:
            changed = written
        rules.append(written)
    if delimiters == "align":
        return "\\begin{align}\n" + " \\\\\n".join(rules) + "\n\\end{align}\n", "latex", changed
    wrap = {"dollars": ("$$", "$$"), "brackets": ("\\[", "\\]"), "fence": ("```math\n", "\n```")}
    left, right = wrap[delimiters]
    body = "\n\nSome prose between the rules.\n\n".join(f"{left}{r}{right}" for r in rules)
    return body + "\n", "markdown", changed


def _another_mistake(written: str) -> str:
    """A transpose missing, else a sum where a product belongs, else a sign flipped."""
    for old, new in ((r"^{\top}", ""), (r" \odot ", " + "), (" - ", " + "), (" + ", " - ")):
        if old in written:
            return written.replace(old, new, 1)
    return written


def _without_recurrent_term(line):
    """The rule's expression without its recurrent term, or the expression itself (it has
    none)."""
    rest = [t.expr for t in line.terms if t.source != "future"]
    if not rest or len(rest) == len(line.terms):
        return line.expr
    out = rest[0]
    for e in rest[1:]:
        out = out + e
    return out


@settings(max_examples=20, deadline=None)
@given(
    text=cells(),
    step=st.sampled_from(sorted(STEPS)),
    adjoint=st.sampled_from(ADJOINTS),
    delimiters=st.sampled_from(["align", "dollars", "brackets", "fence"]),
)
def test_a_derivation_in_any_notation_is_read_and_right(text, step, adjoint, delimiters):
    document, fmt, _ = render(text, step, adjoint, delimiters, None)
    report = audit(document, format=fmt)
    assert report.how.startswith("the model of the derivation's own"), report.text()
    assert report.ok, report.text()
    assert not [f for f in report.findings if f.status == "unread"], report.text()


@settings(max_examples=20, deadline=None)
@given(
    text=cells(),
    step=st.sampled_from(sorted(STEPS)),
    adjoint=st.sampled_from(ADJOINTS),
    delimiters=st.sampled_from(["align", "dollars", "fence"]),
    which=st.integers(0, 7),
)
def test_one_changed_rule_is_the_one_judged_wrong(text, step, adjoint, delimiters, which):
    spec = from_text(text, convention="column")
    form = matrix_form(spec, "column")
    count = len(form.adjoints) + len(form.gradients)
    which %= count
    document, fmt, changed = render(text, step, adjoint, delimiters, which)
    report = audit(document, format=fmt)
    bad = [f for f in report.findings if f.status in ("wrong", "shape", "unread")]
    if changed is None or not bad:  # the change did nothing (no transpose, no t+1 read)
        original, _, _ = render(text, step, adjoint, delimiters, None)
        assert original.replace(" ", "") == document.replace(" ", ""), report.text()
        return
    assert {f.rule.text.strip() for f in bad} == {changed.strip()}, report.text()
