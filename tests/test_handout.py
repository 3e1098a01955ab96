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

from symbptt.derivation import derivation
from symbptt.derivation.output import compile_pdf
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


def _prose(tex_text: str) -> str:
    """A heading's words outside its math ($...$)."""
    return " ".join("".join(tex_text.split("$")[::2]).split())


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
        assert _prose(heading) in flat, f"heading {heading!r} does not extract"
    for word in ("Verification", "cross-entropy", "softmax", "log", "Shapes"):
        assert word in flat, f"{word!r} does not extract"
    assert "Verication" not in flat  # the fi ligature maps to its letters
    info = subprocess.run(
        [_tool("pdfinfo"), str(pdf)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert re.search(r"Creator:\s+symbptt \d", info), info
    assert re.search(r"Title:\s+Backpropagation through time", info), info
