"""The model: dimensions, names and shapes of every array of the vanilla RNN.

    a_t = b + h_{t-1} W_h + x_t W_x,   h_t = tanh(a_t),   o_t = c + h_t V,
    yhat_t = softmax(o_t),   L = sum_t sum_i -log yhat_t[i, y_t[i]]

Row vectors, a minibatch of N sequences; everything downstream (graph, derivatives, checks)
takes its names and shapes from here.
"""

from __future__ import annotations

import difflib
import numbers
from dataclasses import dataclass

import numpy as np

from .errors import DimensionError, InputArrayError, UnknownNameError

__all__ = [
    "Dims",
    "SHARED_PARAMETERS",
    "GRADIENT_NAMES",
    "INPUT_NAMES",
    "resolve_name",
    "random_point",
    "validate_arrays",
]

#: Weights and biases, shared by every time step.
SHARED_PARAMETERS: tuple[str, ...] = ("W_x", "W_h", "b", "V", "c")
#: Everything a gradient is derived for, in a fixed order.
GRADIENT_NAMES: tuple[str, ...] = (*SHARED_PARAMETERS, "h0", "x")
#: Every input array of the loss, in the order the compiled functions take them.
INPUT_NAMES: tuple[str, ...] = ("x", "y", "h0", "W_x", "W_h", "b", "V", "c")

_ALIASES = {"Wh": "W_h", "Wx": "W_x", "h_0": "h0", "W_hh": "W_h", "W_xh": "W_x"}


def resolve_name(name: str, allowed: tuple[str, ...] = GRADIENT_NAMES) -> str:
    """Return the canonical parameter name, or raise UnknownNameError suggesting close ones."""
    if name in allowed:
        return name
    if _ALIASES.get(name) in allowed:
        return _ALIASES[name]
    close = difflib.get_close_matches(name, allowed, n=2, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownNameError(
        f"unknown parameter name {name!r}: the model has {', '.join(allowed)}{hint}"
    )


@dataclass(frozen=True)
class Dims:
    """Sizes of one problem: batch N, input D, hidden H, classes C, time steps T."""

    N: int
    D: int
    H: int
    C: int
    T: int

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

    def shape(self, name: str) -> tuple[int, ...]:
        """Shape of the named input array (row layout, time-major)."""
        N, D, H, C, T = self.N, self.D, self.H, self.C, self.T
        shapes = {
            "x": (T, N, D),
            "y": (T, N),
            "h0": (N, H),
            "W_x": (D, H),
            "W_h": (H, H),
            "b": (H,),
            "V": (H, C),
            "c": (C,),
        }
        return shapes[resolve_name(name, INPUT_NAMES)]

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Dims:
        """The dims implied by the shapes of x (T,N,D), h0 (N,H) and V (H,C)."""
        missing = [n for n in ("x", "h0", "V") if n not in arrays]
        if missing:
            raise InputArrayError(f"missing input array(s): {', '.join(missing)}")
        x, h0, V = (np.shape(arrays[name]) for name in ("x", "h0", "V"))
        if len(x) != 3 or len(h0) != 2 or len(V) != 2:
            raise InputArrayError(
                f"x, h0 and V must have 3, 2 and 2 axes (T,N,D), (N,H), (H,C), "
                f"got shapes {x}, {h0} and {V}"
            )
        return cls(N=x[1], D=x[2], H=h0[1], C=V[1], T=x[0])

    def as_dict(self) -> dict[str, int]:
        return {"N": self.N, "D": self.D, "H": self.H, "C": self.C, "T": self.T}


def random_point(dims: Dims, seed: int = 0, scale: float = 1.0) -> dict[str, np.ndarray]:
    """Seeded random inputs for every array of the model (float64, labels int64).

    `scale` multiplies V and c, so that `scale=1000` gives logits of size about 1000.
    """
    rng = np.random.default_rng(seed)
    arrays = {
        "x": rng.standard_normal(dims.shape("x")),
        "y": rng.integers(0, dims.C, size=dims.shape("y")),
        "h0": rng.uniform(-0.9, 0.9, size=dims.shape("h0")),
        "W_x": rng.standard_normal(dims.shape("W_x")) / np.sqrt(dims.D),
        "W_h": rng.standard_normal(dims.shape("W_h")) / np.sqrt(dims.H),
        "b": 0.1 * rng.standard_normal(dims.shape("b")),
        "V": scale * rng.standard_normal(dims.shape("V")) / np.sqrt(dims.H),
        "c": scale * 0.1 * rng.standard_normal(dims.shape("c")),
    }
    return arrays


def validate_arrays(dims: Dims, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Check every input's presence, shape and finiteness; return float64/int64 copies.

    Raises InputArrayError naming the first problem found.
    """
    missing = [n for n in INPUT_NAMES if n not in arrays]
    if missing:
        raise InputArrayError(f"missing input array(s): {', '.join(missing)}")
    extra = sorted(set(arrays) - set(INPUT_NAMES))
    if extra:
        raise InputArrayError(
            f"unexpected input array(s): {', '.join(extra)}; expected {', '.join(INPUT_NAMES)}"
        )
    out: dict[str, np.ndarray] = {}
    for name in INPUT_NAMES:
        value = np.asarray(arrays[name])
        want = dims.shape(name)
        if value.shape != want:
            raise InputArrayError(f"{name} has shape {value.shape}, expected {want} for {dims}")
        if name == "y":
            if not np.issubdtype(value.dtype, np.integer):
                raise InputArrayError(f"y must hold integer class labels, got dtype {value.dtype}")
            if value.size and (value.min() < 0 or value.max() >= dims.C):
                raise InputArrayError(
                    f"y holds labels outside [0, {dims.C}): min {value.min()}, max {value.max()}"
                )
            out[name] = value.astype(np.int64)
            continue
        if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
            raise InputArrayError(f"{name} must be a real array, got dtype {value.dtype}")
        value = value.astype(np.float64)
        if not np.all(np.isfinite(value)):
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(value))[0])
            raise InputArrayError(f"{name} holds a non-finite value ({value[bad]}) at index {bad}")
        out[name] = value
    return out
