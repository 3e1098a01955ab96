"""The audit's rule trees: the formula language's (`symbptt.formula.ast`), kept importable
under their old name."""

from ..formula.ast import *  # noqa: F403
from ..formula.ast import __all__  # noqa: F401
