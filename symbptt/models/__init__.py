"""The models symbptt knows, one file each; `MODELS` maps a name to its spec."""

from __future__ import annotations

from .vanilla import VANILLA

__all__ = ["MODELS", "VANILLA"]

MODELS = {VANILLA.name: VANILLA}
