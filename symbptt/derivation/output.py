"""Writing documents without losing a reader's files, and turning LaTeX into PDF.

A file is written to a temporary name beside its target and renamed into place, so a crash
never leaves half a document; an existing file is replaced only when the caller says `force`.
pdflatex runs in a temporary folder, with a time limit and without shell escape.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import InvalidArgumentError, SymbpttError

__all__ = ["write_new", "compile_pdf", "PdfError", "PDFLATEX_SECONDS", "PDFLATEX_MISSING"]

PDFLATEX_SECONDS = 120
PDFLATEX_MISSING = (
    "--pdf needs pdflatex, which is not installed (on Debian or Ubuntu: apt-get install "
    "texlive-latex-base texlive-latex-recommended texlive-fonts-recommended lmodern); the .tex "
    "file "
    "can be compiled elsewhere"
)


class PdfError(SymbpttError):
    """pdflatex is missing, or failed on the document."""


def write_new(path: Path, content: str | bytes, *, force: bool = False) -> Path:
    """Write `content` (text as UTF-8) to `path` atomically; refuse to replace an existing
    file unless `force`."""
    path = Path(path)
    if path.is_dir():
        raise InvalidArgumentError(
            f"{path} is a folder; give a file name such as {path / 'bptt.tex'}"
        )
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise InvalidArgumentError(
            f"{path} is not a regular file (a link, a pipe or a device): symbptt writes new "
            "files and replaces only regular ones"
        )
    if path.exists() and not force:
        raise InvalidArgumentError(f"{path} exists; pass --force to replace it")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InvalidArgumentError(f"the folder {folder} does not exist")
    data = content.encode("utf-8") if isinstance(content, str) else content
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        _usual_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        with _quiet():
            os.unlink(tmp)
        raise
    return path


def compile_pdf(tex: str, pdf_path: Path, *, force: bool = False) -> Path:
    """Compile a standalone LaTeX document to `pdf_path` with pdflatex in a temporary folder
    (one pass: the documents have no cross-references); PdfError with the first LaTeX error
    when it fails, or when pdflatex is missing."""
    pdf_path = Path(pdf_path)
    if pdf_path.exists() and not force:
        raise InvalidArgumentError(f"{pdf_path} exists; pass --force to replace it")
    engine = shutil.which("pdflatex")
    if engine is None:
        raise PdfError(PDFLATEX_MISSING)
    with tempfile.TemporaryDirectory(prefix="symbptt-tex-") as work:
        source = Path(work) / "derivation.tex"
        source.write_text(tex, encoding="utf-8")
        try:
            run = subprocess.run(
                [
                    engine,
                    "-interaction=nonstopmode",
                    "-halt-on-error",
                    "-no-shell-escape",
                    source.name,
                ],
                cwd=work,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=PDFLATEX_SECONDS,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise PdfError(f"pdflatex took more than {PDFLATEX_SECONDS} s; gave up") from None
        if run.returncode != 0:
            raise PdfError(f"pdflatex failed: {_first_error(run.stdout)}")
        data = (Path(work) / "derivation.pdf").read_bytes()
    write_new(pdf_path, data, force=force)
    return pdf_path


def _usual_mode(path: str) -> None:
    """The permissions a plainly created file would get (mkstemp's are owner-only)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _first_error(log: str) -> str:
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("!"):
            return " ".join(s.strip() for s in lines[i : i + 3])
    return (lines[-1] if lines else "no output").strip()


class _quiet:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return exc[0] is not None and issubclass(exc[0], OSError)
