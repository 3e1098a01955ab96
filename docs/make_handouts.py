"""Render the first page of each derivation document of the gallery to PNG
(docs/images/handouts/*.png), so that the documentation shows what a teacher would print:

    python docs/make_handouts.py

It also renders the other pages docs/derivations.md shows (`PAGES`).

Each document is made by `symbptt latex ... -o NAME.tex --pdf` in a temporary folder, and its
first page rendered by pdftoppm (Debian's poppler-utils) at 60 dots per inch.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGES = Path(__file__).resolve().parent / "images" / "handouts"
DPI = 60

#: file name -> (what it shows, the command's arguments)
GALLERY = {
    "rnn-row": ("the vanilla RNN, row convention", "--T 3 --wrt all --handout"),
    "rnn-column": ("the vanilla RNN, column convention", "--T 3 --wrt all --convention column"),
    "lstm": ("the LSTM", "--model lstm --T 3 --wrt all"),
    "gru": ("the GRU", "--model gru --T 3 --wrt all"),
    "rnn-truncated": ("1-step truncated BPTT", "--T 4 --wrt W_h --truncate 1"),
}


#: More pages the documentation shows: file in docs/images -> (the command's arguments, the
#: page: a number, or words that the page shows)
PAGES = {
    "latex-row-T3-page1": ("--T 3", 1),
    "latex-row-T3-page2": ("--T 3", 2),
    "latex-column-goodfellow": ("--T 3 --convention column", "Comparison with Goodfellow"),
}


def _page_with(pdf: Path, words: str) -> int:
    """The first page of pdf whose text has the words."""
    page = 1
    while True:
        done = subprocess.run(
            ["pdftotext", "-f", str(page), "-l", str(page), str(pdf), "-"],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise SystemExit(f"no page of {pdf.name} shows {words!r}")
        if words in done.stdout:
            return page
        page += 1


def render(name: str, arguments: str, folder: Path, page: int | str = 1, target=None) -> Path:
    tex = folder / f"{name}.tex"
    subprocess.run(
        [sys.executable, "-m", "symbptt", "latex", *shlex.split(arguments), "-o", str(tex)]
        + ["--pdf"],
        cwd=ROOT,
        check=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    target = target or IMAGES / name
    pdf = tex.with_suffix(".pdf")
    number = str(page if isinstance(page, int) else _page_with(pdf, page))
    subprocess.run(
        [shutil.which("pdftoppm") or "pdftoppm", "-png", "-r", str(DPI), "-f", number, "-l"]
        + [number, "-singlefile", str(pdf), str(target)],
        check=True,
    )
    return target.with_suffix(".png")


def main() -> int:
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="symbptt-handouts-") as work:
        for name, (_, arguments) in GALLERY.items():
            print(render(name, arguments, Path(work)).relative_to(ROOT))
        for name, (arguments, page) in PAGES.items():
            out = render(name, arguments, Path(work), page, IMAGES.parent / name)
            print(out.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
