"""Derivations a teacher hands out (issue 21): vector fonts whose text extracts, a loss written
as textbooks write it (and checked against the engine's), and nothing said twice.

The judges are poppler's pdffonts and pdftotext (reading the PDF pdflatex made), not symbptt.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from test_derivation import _overfull, _pdflatex

from symbptt.derivation import derivation
from symbptt.derivation.output import compile_pdf
from symbptt.errors import DerivationCheckError
from symbptt.models import GRU, LSTM, VANILLA

MODELS = {"rnn": VANILLA, "lstm": LSTM, "gru": GRU}


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is needed (CI installs poppler-utils from Debian)"
    return path


def _pdf_facts(pdf: Path) -> tuple[str, str]:
    """pdffonts' table and pdftotext's text of a PDF."""
    fonts = subprocess.run(
        [_tool("pdffonts"), str(pdf)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    text = subprocess.run(
        [_tool("pdftotext"), "-enc", "UTF-8", str(pdf), "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return fonts, text


def _prose(tex_text: str) -> list[str]:
    """A heading's runs of words outside its math ($...$)."""
    return [" ".join(p.split()) for p in tex_text.split("$")[::2] if p.strip()]


PDFS = [
    *[(m, c, "W_h", None) for m in MODELS for c in ("row", "column")],
    ("rnn", "row", "W_h", 1),  # truncated: its own lines and headings
    ("lstm", "row", "all", None),
]


@pytest.mark.parametrize("model,convention,wrt,truncate", PDFS)
def test_every_pdf_has_vector_fonts_and_text_that_extracts(
    model, convention, wrt, truncate, tmp_path
):
    spec = MODELS[model] if truncate is None else MODELS[model].variant(truncate=truncate)
    d = derivation(4 if truncate else 3, wrt, model=spec, convention=convention)
    start = time.perf_counter()
    pdf = compile_pdf(d.latex(), tmp_path / "d.pdf")
    assert time.perf_counter() - start < 30
    fonts, text = _pdf_facts(pdf)
    rows = fonts.splitlines()[2:]
    assert rows, fonts
    assert not [r for r in rows if "Type 3" in r], fonts  # bitmap fonts: blurry, no text
    for r in rows:  # embedded, with a glyph-to-Unicode map (copying gives the characters)
        emb, _sub, uni = r.split()[-5:-2]
        assert emb == uni == "yes", r
    flat = " ".join(text.split())
    headings = [b.content for b in d.document.blocks if b.kind in ("heading", "subheading")]
    assert len(headings) >= 5
    for heading in headings:
        for words in _prose(heading):
            assert words in flat, f"heading {heading!r} does not extract"
    for word in ("Verification", "cross-entropy", "softmax", "log", "Shapes"):
        assert word in flat, f"{word!r} does not extract"
    assert "Verication" not in flat  # the fi ligature maps to its letters
    info = subprocess.run(
        [_tool("pdfinfo"), str(pdf)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert re.search(r"Creator:\s+symbptt \d", info), info
    assert re.search(r"Title:\s+Backpropagation through time", info), info


def _repeated_sentences(text: str, longer_than: int = 12) -> list[str]:
    """Sentences of more than `longer_than` words that appear more than once."""
    seen: dict[str, int] = {}
    for sentence in re.split(r"(?<=[.!?])\s+|\n+", text):
        sentence = " ".join(sentence.split())
        if len(sentence.split()) > longer_than:
            seen[sentence] = seen.get(sentence, 0) + 1
    return [s for s, n in seen.items() if n > 1]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("convention", ["row", "column"])
def test_a_wrt_all_document_says_nothing_twice(model, convention):
    d = derivation(3, "all", model=MODELS[model], convention=convention)
    for text in (d.latex(), d.markdown()):
        assert _repeated_sentences(text) == []
        assert "seed blog's" not in text
    headings = [b.content for b in d.document.blocks if b.kind == "heading"]
    assert sum(h.startswith("The gradient of") for h in headings) == len(d.wrt)
    assert d.latex().count("used at every step") == 1  # the copies W^(k), explained once
    assert d.latex().count("one copy per step") == 1


def test_the_loss_is_written_as_textbooks_write_it_and_checked_first(monkeypatch):
    row = derivation(3, "W_h").latex()
    assert r"L_{t} &= -\sum_{i=1}^{N} \log \hat{y}_{t}[i,\, y_{t}[i]]" in row
    assert "logsumexp" not in row and r"\mathbf{1}^{\top} \left(" not in row
    column = derivation(3, "W_h", convention="column").latex()
    assert r"\log \hat{y}_{t}[y_{t}[i],\, i]" in column and "$C \\times N$" in column
    mean = derivation(3, "W_h", model=VANILLA.variant(reduction="mean"))
    assert r"L &= \frac{1}{N\,T} \sum_{t=1}^{T} L_{t}" in mean.latex()
    assert mean.verification.textbook_loss

    import symbptt.derivation.verify as verify

    real = verify.textbook_loss
    monkeypatch.setattr(verify, "textbook_loss", lambda *a: real(*a) * 1.001)
    with pytest.raises(DerivationCheckError, match="the loss as textbooks write it"):
        derivation(3, "W_h")


def test_only_the_notation_a_document_uses_is_defined():
    plain = derivation(3, "W_h").latex()
    assert r"\operatorname{step}" not in plain and r"L_{\mathrm{sum}}" not in plain
    assert plain.count(r"$\mathbf{1}$ is a column of $N$ ones") == 0  # no sum over examples
    biases = derivation(3, "b").latex()
    assert biases.count(r"$\mathbf{1}$ is a column of $N$ ones") == 1
    relu = derivation(3, "W_h", model=VANILLA.variant(activation="relu")).latex()
    assert r"$\operatorname{step}(z)$ is 1 where" in relu
    lstm = derivation(2, "all", model=LSTM).latex()
    assert lstm.count("is the output gate, so the logits are named") == 1
    assert "is the output gate" not in derivation(2, "all", model=GRU).latex()


def test_a_handout_puts_the_paths_and_the_verification_in_an_appendix():
    headings = lambda d: [b.content for b in d.document.blocks if b.kind == "heading"]  # noqa: E731
    full = derivation(3, "W_h,b")
    handout = derivation(3, "W_h,b", handout=True)
    assert headings(full)[-1] == "Verification"
    assert headings(handout)[-3:] == [  # one appendix per parameter, each with its heading
        "Appendix: the paths of $W_{h}$ for $T = 3$",
        "Appendix: the paths of $b$ for $T = 3$",
        "Appendix: verification",
    ]
    tex = handout.latex()
    first_path = tex.index(r"\text{path }")
    assert first_path > tex.index("Appendix: the paths of")
    assert tex.count(r"\text{path }") == full.latex().count(r"\text{path }") == 12
    assert "see the appendix" in tex
    subheadings = [b.content for b in handout.document.blocks if b.kind == "subheading"]
    assert subheadings[:3] == [f"Paths of $W_{{h}}$ to $L_{{{s}}}$" for s in (1, 2, 3)]


def test_typesetting_grouped_subscripts_display_fractions_and_classes_from_one():
    gru = derivation(2, "W_h", model=GRU).latex()
    assert "a_{n,t}" in gru and "{a_{n}}_{t}" not in gru
    column = derivation(3, "all", convention="column").latex()
    table = column[column.index("Comparison with Goodfellow") :]
    assert r"\arraystretch" in table and r"$\displaystyle \frac{\mathrm{d}L}" in table
    lstm = derivation(2, "W_h", model=LSTM).latex()
    assert r"\begin{bmatrix} \displaystyle \frac{\mathrm{d}L}{\mathrm{d}a_{i,t}}" in lstm
    expanded = derivation(2, "V", expand=True).latex()
    assert "Y_{1,1}" in expanded and "Y_{1,0}" not in expanded and "V_{0" not in expanded


def test_a_long_sum_breaks_at_plus_and_stays_on_the_page(tmp_path):
    from symbptt.derivation.document import ROW_WIDTH, Document, _break_sum, _visible

    term = r"\frac{\mathrm{d}L}{\mathrm{d}a_{t+1}}\,W_{h}^{\top} \odot \left(1 - h_{t} + z\right)"
    row = r"\frac{\mathrm{d}L}{\mathrm{d}h_{t}} &= " + " + ".join([term] * 6)
    rows = _break_sum(row)
    assert len(rows) > 1 and all(_visible(r) <= ROW_WIDTH for r in rows)
    assert rows[0].startswith(r"\frac{\mathrm{d}L}{\mathrm{d}h_{t}} &= ")
    assert all(r.startswith(r"&\quad + ") for r in rows[1:])
    joined = " ".join(r.split("&=", 1)[-1].replace(r"&\quad", "") for r in rows)
    assert " ".join(joined.split()) == " ".join(" + ".join([term] * 6).split())
    assert _break_sum(r"x &= \left(a + b\right)") == [r"x &= \left(a + b\right)"]
    doc = Document("A long sum")
    doc.equations([row])
    assert max(_overfull(_pdflatex(doc.latex(), tmp_path)), default=0) < 5


def test_the_gallery_shows_every_document_the_script_makes():
    import importlib.util

    docs = Path(__file__).resolve().parent.parent / "docs"
    spec = importlib.util.spec_from_file_location("make_handouts", docs / "make_handouts.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    page = (docs / "derivations.md").read_text()
    assert len(script.GALLERY) == 5
    for name in script.GALLERY:
        image = docs / "images" / "handouts" / f"{name}.png"
        assert image.read_bytes().startswith(b"\x89PNG"), image
        assert f"images/handouts/{name}.png" in page


def test_a_teacher_reads_one_name_per_thing_and_words_for_students():
    d = derivation(3, "all")
    tex, md = d.latex(), d.markdown()
    for text in (tex, md):
        assert "$L$ depends on $x_{t}$ through 6 paths" in text  # x_t in every section
        assert "$x$ through" not in text and "Paths of $x$" not in text
        assert "Paths of $x_{t}$ to $L_{1}$" in text
        assert "For $T = 3$ they are listed" in text and "For T = 3" not in text
        assert text.count("also called its adjoint") == 1  # the word defined, once
        assert "one by one" not in text and "element-level engine before" not in text
        assert "with respect to $W_{x}$, $W_{h}$, $b$, $V$, $c$, $h_{0}$ and $x_{t}$" in text
    shapes = tex[tex.index("Shapes") : tex.index("Partial and total")]
    for what in ("recurrent weights", "output bias", "hidden state", "logits", "pre-activation"):
        assert what in shapes
    assert "per step" not in shapes and "weight or bias" not in shapes
    assert r"\setlength{\parindent}{0pt}" in tex  # no indented line after a display
    assert r"et al.\ use" in tex  # an inter-word space after "al.", not a sentence's
    assert tex.count(r"\begin{align*}") == 1 + 1 + 1 + len(d.wrt)  # model, loss, one backward
    lstm = derivation(3, "all", model=LSTM).latex()
    assert "$h_{0}$ through 84 paths, $x_{t}$ through 111 paths" in lstm
    assert "forget gate" in lstm and "cell state" in lstm and r"\begin{table}[!htbp]" in lstm


def test_a_handout_table_never_leaves_a_page_blank(tmp_path):
    """The LSTM's shapes table is taller than what is left of page 2: it floats to page 3 and
    the text goes on below the model (it used to leave two thirds of page 2 empty)."""
    pdf = compile_pdf(derivation(3, "all", model=LSTM).latex(), tmp_path / "lstm.pdf")
    _fonts, text = _pdf_facts(pdf)
    pages = text.split("\f")
    page = next(p for p in pages if "Shapes" in p)
    assert "Partial and total derivatives" in page  # the text after the table came along


@pytest.mark.parametrize("model", MODELS)
def test_delta_notation_writes_every_adjoint_of_a_step_as_delta(model, tmp_path):
    d = derivation(3, "all", model=MODELS[model], notation="delta")
    tex, md = d.latex(), d.markdown()
    for text in (tex, md):
        assert r"\frac{\mathrm{d}L}{\mathrm{d}a" not in text and r"\frac{d L}{d a" not in text
        assert r"\frac{\mathrm{d}L}{\mathrm{d}h_{" not in text  # dL/dh_t and dL/dh_0 too
        assert r"\delta^{a}_{t}" in text and r"\delta^{h}_{0}" in text
        assert text.count("As in many lecture notes, $\\delta^{X}_{t}") == 1  # defined once
        assert r"\frac{\mathrm{d}L}{\mathrm{d}W_{h}} &= \sum_{t=1}^{T}" in text  # dL/dW kept
    if model == "rnn":  # the paths section names x_t's gradient in the same notation
        assert r"The total derivative $\delta^{x}_{t}$ is the sum of these 6 terms" in tex
    pdf = compile_pdf(tex, tmp_path / "delta.pdf")
    _fonts, text = _pdf_facts(pdf)
    flat = " ".join(text.split())
    assert "δ" in flat and "As in many lecture" in flat  # δ copies as δ
    plain = derivation(3, "all", model=MODELS[model]).latex()
    assert r"\delta^" not in plain  # the default is the fractions
    assert d.text() == derivation(3, "all", model=MODELS[model]).text()  # the text format


def test_delta_notation_reaches_the_goodfellow_table_and_truncation():
    column = derivation(3, "all", convention="column", notation="delta").latex()
    table = column[column.index("Comparison with Goodfellow") :]
    assert r"\delta^{h}_{t} = V^{\top}\,\delta^{o}_{t}" in table
    assert r"That product is our $\delta^{a}_{t+1}$" in table
    assert r"(our $\delta^{h}_{t}$ for $X = h_{t}$)" in table
    assert r"\frac{\mathrm{d}L}{\mathrm{d}a" not in column
    truncated = derivation(4, "W_h", model=VANILLA.variant(truncate=1), notation="delta")
    assert r"\bar{a}^{(s)}_k" in truncated.latex()  # the per-loss-term shares keep their bar
    with pytest.raises(Exception, match="notation='sigma' is not one of fraction, delta"):
        derivation(3, "W_h", notation="sigma")


def test_the_cli_refuses_delta_for_the_formula_language(tmp_path, capsys):
    from symbptt.cli import main

    assert main(["latex", "--notation", "delta", "--format", "text"]) != 0
    assert "--notation delta applies to the tex and md formats" in capsys.readouterr().err
    out = tmp_path / "d.md"
    assert main(["latex", "--notation", "delta", "--wrt", "all", "-o", str(out)]) == 0
    assert r"\delta^{a}_{t}" in out.read_text()
