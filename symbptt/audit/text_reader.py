"""The reader of the plain formula language, now `symbptt.formula.reader`; kept importable
under its old name."""

from ..formula.reader import GRAMMAR, TERMINALS, FormulaSyntaxError, caret, read_text

__all__ = ["FormulaSyntaxError", "read_text", "GRAMMAR", "TERMINALS", "caret"]
