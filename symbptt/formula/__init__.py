"""The formula language (docs/formula-language.md): its grammar, its reader and the small trees
it reads into. Model files (`symbptt.models.modelfile`) and the audit's readers both build on
it; nothing here evaluates text or knows a model.
"""

from .ast import Binary, Call, Index, Name, Neg, Num, Power, Rule, Step, SumOverT, Transposed
from .reader import GRAMMAR, FormulaSyntaxError, caret, read_text

__all__ = [
    "GRAMMAR",
    "FormulaSyntaxError",
    "caret",
    "read_text",
    "Binary",
    "Call",
    "Index",
    "Name",
    "Neg",
    "Num",
    "Power",
    "Rule",
    "Step",
    "SumOverT",
    "Transposed",
]
