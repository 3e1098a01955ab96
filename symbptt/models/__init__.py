"""The models symbptt knows, one file each; `MODELS` maps a name to its spec."""

from __future__ import annotations

from .gru import GRU
from .lstm import LSTM
from .vanilla import VANILLA

__all__ = ["MODELS", "VANILLA", "LSTM", "GRU", "model_named", "from_text", "from_file"]


def __getattr__(name: str):
    """The model-file reader, loaded on first use (a command given no file never loads it)."""
    if name in ("from_text", "from_file"):
        from . import filespec

        return getattr(filespec, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


MODELS = {spec.name: spec for spec in (VANILLA, LSTM, GRU)}
#: The command line's names: rnn is the vanilla RNN.
ALIASES = {"rnn": "vanilla"}


def model_named(name: str):
    """The spec of a model by its name (rnn, vanilla, lstm, gru), or a one-sentence error."""
    from ..errors import UnknownNameError

    spec = MODELS.get(ALIASES.get(name, name))
    if spec is None:
        raise UnknownNameError(f"unknown model {name!r}: choose rnn, lstm or gru")
    return spec
