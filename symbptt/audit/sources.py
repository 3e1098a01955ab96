"""Where the math of a derivation is: the displays of a LaTeX file, the math of a Markdown page
(`$$ $$`, `$ $`, `\\[ \\]`, `\\( \\)`, ```` ```math ````), the markdown cells of a Jupyter
notebook, the lines of a formula-language file. Each piece keeps the line and column it came
from, so that every finding points into the author's own file.

Nothing is evaluated: a notebook is read as JSON, its code cells ignored.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ..errors import InvalidArgumentError

__all__ = ["Piece", "Document", "pieces", "FORMATS", "format_of"]

#: The formats a derivation is read in.
FORMATS = ("text", "latex", "markdown", "notebook")


@dataclass(frozen=True)
class Piece:
    """Math of the document: its text, the line it starts on and the column of its first
    character (1-based, in the author's file); `display` for a display (not inline math)."""

    text: str
    line: int
    column: int = 1
    display: bool = True


@dataclass(frozen=True)
class Document:
    """A derivation's math pieces, and where a line of it is in the author's file (a notebook's
    lines are numbered across its markdown cells: `where` says which cell)."""

    pieces: tuple[Piece, ...]
    format: str
    #: For a notebook: (first line, cell index) of each markdown cell, in order.
    cells: tuple[tuple[int, int], ...] = ()

    def where(self, line: int) -> str:
        if not self.cells:
            return f"line {line}"
        first, cell = max((c for c in self.cells if c[0] <= line), default=self.cells[0])
        return f"cell {cell}, line {line - first + 1}"


def format_of(suffix: str) -> str:
    """The format a file's suffix asks for: .tex LaTeX, .md Markdown, .ipynb a notebook,
    anything else the formula language."""
    return {
        ".tex": "latex",
        ".latex": "latex",
        ".md": "markdown",
        ".markdown": "markdown",
        ".ipynb": "notebook",
    }.get(suffix.lower(), "text")


def pieces(source: str, format: str) -> Document:  # noqa: A002 (the option's name)
    """The math of a derivation in `format` (one of FORMATS)."""
    if format == "notebook":
        return _notebook(source)
    if format == "markdown":
        return Document(tuple(_markdown(source, 1)), "markdown")
    if format == "latex":
        return Document(tuple(_latex(source)), "latex")
    if format == "text":
        return Document((Piece(source, 1, 1),), "text")
    raise InvalidArgumentError(f"format={format!r} must be one of {', '.join(FORMATS)}")


# -- Markdown ----------------------------------------------------------------------------------
_FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*(\S*)")
_DISPLAYS = [
    (re.compile(r"\$\$(.+?)\$\$", re.S), True),
    (re.compile(r"\\\\\[(.+?)\\\\\]", re.S), True),  # \\[ \\] (escaped for Markdown)
    (re.compile(r"\\\[(.+?)\\\]", re.S), True),
    (
        re.compile(
            r"\\begin\{(equation|align|aligned|gather|multline|eqnarray)\*?\}.+?"
            r"\\end\{\1\*?\}",
            re.S,
        ),
        True,
    ),  # fmt: skip
    (re.compile(r"\\\\\((.+?)\\\\\)", re.S), False),  # \\( \\)
    (re.compile(r"\\\((.+?)\\\)", re.S), False),
    (re.compile(r"(?<![\\$])\$(?!\$)([^$\n]+?)(?<!\\)\$(?!\$)"), False),
]


#: A LaTeX file's math: displays, environments and inline math (anything else is prose).
_LATEX_MATH = re.compile(r"\$|\\\[|\\\(|\\begin\{(equation|align|gather|multline|eqnarray|math)")
#: Environments whose content is not math (code listings).
_VERBATIM = re.compile(r"\\begin\{(verbatim|lstlisting|minted|comment)\*?\}.*?\\end\{\1\*?\}", re.S)


def _latex(source: str) -> list[Piece]:
    """Math of a LaTeX file: its displays and inline math, the prose around them left out
    (comments and code listings are not math). A text with no math delimiters at all is one
    display (rules written as they would be inside one)."""
    blank = "".join(
        line if "%" not in line else re.sub(r"(?<!\\)%.*", lambda m: " " * len(m.group()), line)
        for line in source.splitlines(keepends=True)
    )
    blank = _VERBATIM.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), blank)
    if not _LATEX_MATH.search(blank):
        return [Piece(source, 1, 1)]
    return _math_of(blank, 1, [d for d in _DISPLAYS if not d[0].pattern.startswith(r"\\\\")])


def _markdown(source: str, first_line: int) -> list[Piece]:
    """Math of a Markdown text: ```math fences, then displays and inline math in the prose
    (code fences and inline code are not math)."""
    lines = source.split("\n")
    out: list[Piece] = []
    prose: list[str] = []
    fence = None
    math_start, math_lines = 0, []
    for k, line in enumerate(lines):
        m = _FENCE.match(line)
        if fence is None and m:
            fence = (m.group(2), m.group(3).lower())
            math_start, math_lines = k + 1, []
            prose.append("")
            continue
        if fence is not None:
            if line.strip().startswith(fence[0]):
                if fence[1] == "math":
                    out.append(Piece("\n".join(math_lines), first_line + math_start, 1))
                fence = None
            else:
                math_lines.append(line)
            prose.append("")
            continue
        row = _table_rule(line)
        if row is not None:  # | $dL/ds_t$ | $(P_t - Y_t)/N$ | ...: the first cell = the second
            out.append(Piece(row[0], first_line + k, row[1]))
            prose.append("")
            continue
        prose.append(re.sub(r"`[^`]*`", lambda c: " " * len(c.group()), line))
    return sorted(out + _math_of("\n".join(prose), first_line), key=lambda p: (p.line, p.column))


_CELL_MATH = re.compile(r"\s*\$([^$]+)\$\s*")


def _table_rule(line: str) -> tuple[str, int] | None:
    """A Markdown table row whose first two cells are math and state no equation of their
    own (a cheat sheet's `| gradient | formula | shape |`): the rule `first = second`."""
    if not line.lstrip().startswith("|"):
        return None
    cells = line.strip().strip("|").split("|")
    if len(cells) < 2:
        return None
    first, second = (_CELL_MATH.fullmatch(c) for c in cells[:2])
    if first is None or second is None or "=" in first.group(1) + second.group(1):
        return None
    return f"{first.group(1).strip()} = {second.group(1).strip()}", line.index("$") + 2


def _math_of(text: str, first_line: int, displays=None) -> list[Piece]:
    """The displays and inline math of prose, each where it starts."""
    out: list[Piece] = []
    taken = [False] * len(text)
    found: list[tuple[int, int, str, bool]] = []
    for pattern, display in displays or _DISPLAYS:
        for m in pattern.finditer(text):
            if any(taken[m.start() : m.end()]):
                continue
            for i in range(m.start(), m.end()):
                taken[i] = True
            inner = m.group(0) if pattern.pattern.startswith(r"\\begin") else m.group(1)
            offset = m.start() if inner is m.group(0) else m.start(1)
            found.append((offset, m.end(), inner, display))
    for offset, _, inner, display in sorted(found):
        line = text.count("\n", 0, offset)
        column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        out.append(Piece(inner, first_line + line, column, display))
    return sorted(out, key=lambda p: (p.line, p.column))


# -- Jupyter ------------------------------------------------------------------------------------
def _notebook(source: str) -> Document:
    try:
        data = json.loads(source)
        cells = data["cells"]
        if not isinstance(cells, list):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise InvalidArgumentError(
            "this is not a Jupyter notebook (a JSON object with a list of cells)"
        ) from None
    out: list[Piece] = []
    marks: list[tuple[int, int]] = []
    line = 1
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict) or cell.get("cell_type") != "markdown":
            continue
        text = cell.get("source", "")
        text = "".join(text) if isinstance(text, list) else str(text)
        marks.append((line, index))
        out.extend(_markdown(text, line))
        line += text.count("\n") + 1
    return Document(tuple(out), "notebook", tuple(marks))
