"""Dimensions (`Dims`) and the vanilla model's names, shapes and random points.

The names and shapes are not typed here: they are read from the vanilla model's spec
(`symbptt/models/vanilla.py`); this module keeps the shortcuts older code and users import.
"""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import DimensionError, UnknownNameError

__all__ = [  # and, read from the vanilla spec: GRADIENT_NAMES, INPUT_NAMES, SHARED_PARAMETERS
    "Dims",
    "resolve_name",
    "random_point",
]


def __getattr__(name: str):
    """The vanilla model's names (`GRADIENT_NAMES`, `INPUT_NAMES`, `SHARED_PARAMETERS`), read
    from its spec in `symbptt/models/vanilla.py`: they are never typed out here."""
    attribute = {
        "GRADIENT_NAMES": "gradient_names",
        "INPUT_NAMES": "names",
        "SHARED_PARAMETERS": "parameters",
    }.get(name)
    if attribute is None:  # decided before importing anything: imports ask for __path__ here
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import VANILLA

    return getattr(VANILLA, attribute)


def resolve_name(name: str, allowed: tuple[str, ...] | None = None) -> str:
    """Return the canonical parameter name, or raise UnknownNameError suggesting close ones
    (`allowed`: default the vanilla model's gradients)."""
    if allowed is None:
        from . import VANILLA

        allowed = VANILLA.gradient_names
    if name in allowed:  # exactly: another spelling (W_hh, Whh) is never taken silently
        return name
    close = difflib.get_close_matches(name, allowed, n=2, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownNameError(
        f"unknown parameter name {name!r}: the model has {', '.join(allowed)}{hint}"
    )


@dataclass(frozen=True, repr=False)
class Dims:
    """Sizes of one problem: batch N, input D, hidden H, classes C, time steps T, and the
    sizes a model file names besides them (`more`: ("K", 3), ...)."""

    N: int
    D: int
    H: int
    C: int
    T: int
    more: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        for field in ("N", "D", "H", "C", "T"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise DimensionError(
                    f"{field}={value!r} is not a whole number; dimensions are positive integers"
                )
            if value < 1:
                raise DimensionError(f"{field}={value} must be at least 1")
            object.__setattr__(self, field, int(value))
        if self.C < 2:
            raise DimensionError(
                f"C={self.C} must be at least 2: softmax over one class has zero gradient"
            )
        more = dict(self.more.items() if isinstance(self.more, Mapping) else self.more)
        for name, value in more.items():
            if not isinstance(name, str) or not name.isidentifier() or name in _FIVE:
                raise DimensionError(f"{name!r} cannot name a size of its own")
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise DimensionError(f"{name}={value!r} must be a whole number, at least 1")
        object.__setattr__(self, "more", tuple(sorted((k, int(v)) for k, v in more.items())))

    @property
    def sizes(self) -> dict[str, int]:
        """Every size by name: N, D, H, C, T and the model file's own."""
        return {**{k: getattr(self, k) for k in _FIVE}, **dict(self.more)}

    def size(self, name: str) -> int:
        """The size a name stands for (N, H, or a model file's K), or UnknownNameError."""
        sizes = self.sizes
        if name not in sizes:
            raise UnknownNameError(
                f"no size {name!r} is given (sizes: {', '.join(sizes)}): give it with "
                f"--size {name}=3"
            )
        return sizes[name]

    def as_dict(self) -> dict[str, int]:
        return self.sizes

    def __str__(self) -> str:
        return "Dims(" + ", ".join(f"{k}={v}" for k, v in self.sizes.items()) + ")"

    __repr__ = __str__


_FIVE = ("N", "D", "H", "C", "T")


def random_point(dims: Dims, seed: int = 0, scale: float = 1.0) -> dict[str, np.ndarray]:
    """Seeded random inputs for every array of the vanilla model (float64, labels int64);
    `scale` multiplies the output layer's weights, so that 1000 gives logits of about 1000."""
    from . import VANILLA

    return VANILLA.random_point(dims, seed=seed, scale=scale)
