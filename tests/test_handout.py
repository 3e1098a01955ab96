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
    assert headings(handout)[-2:] == ["Appendix: every path for T = 3", "Appendix: verification"]
    tex = handout.latex()
    first_path = tex.index(r"\text{path }")
    assert first_path > tex.index("Appendix: every path")
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
