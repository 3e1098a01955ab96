"""Hypothesis strategies that draw RNN shapes and problems, for property tests of BPTT code.

Modelled on `hypothesis.extra.numpy`: keyword-only arguments with symmetric `min_*`/`max_*`
knobs, each validated with a message that repeats the caller's own arguments. The shapes drawn
deliberately include the ones where BPTT bugs hide: H=1 (a missing transpose is invisible),
N=1 (batch reductions), T<=2 (recurrence and truncation), and D==H (W_x and W_h mixed up).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from .models.dims import Dims, random_point
from .models.spec import ModelSpec

__all__ = ["rnn_shapes", "rnn_problems"]

_DEFAULTS = {"N": (1, 3), "D": (1, 3), "H": (1, 3), "C": (2, 4), "T": (1, 4)}


def _bounds(name: str, low, high) -> tuple[int, int]:
    floor = 2 if name == "C" else 1
    for label, value in ((f"min_{name}", low), (f"max_{name}", high)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidArgument(f"{label}={value!r} must be an integer")
    if low < floor:
        raise InvalidArgument(f"min_{name}={low} must be at least {floor}")
    if high < low:
        raise InvalidArgument(f"min_{name}={low} is larger than max_{name}={high}")
    return low, high


@st.composite
def _shapes(draw, bounds: dict[str, tuple[int, int]]) -> Dims:
    sizes = {k: draw(st.integers(lo, hi)) for k, (lo, hi) in bounds.items()}
    # One time in three, force D == H when the bounds allow it: W_x/W_h mix-ups hide there.
    lo, hi = max(bounds["D"][0], bounds["H"][0]), min(bounds["D"][1], bounds["H"][1])
    if lo <= hi and draw(st.integers(0, 2)) == 0:
        sizes["D"] = sizes["H"] = draw(st.integers(lo, hi))
    return Dims(**sizes)


def rnn_shapes(
    *,
    min_N: int = 1,
    max_N: int = 3,
    min_D: int = 1,
    max_D: int = 3,
    min_H: int = 1,
    max_H: int = 3,
    min_C: int = 2,
    max_C: int = 4,
    min_T: int = 1,
    max_T: int = 4,
) -> st.SearchStrategy[Dims]:
    """Draw `Dims` within the given bounds; shrinks towards the smallest sizes (N=D=H=T=1, C=2)."""
    given = locals()
    bounds = {k: _bounds(k, given[f"min_{k}"], given[f"max_{k}"]) for k in _DEFAULTS}
    return _shapes(bounds)


@st.composite
def _problems(draw, shapes, scale, model):
    dims = draw(shapes)
    if model is not None:  # a model file's own sizes (K, ...), drawn like the others
        more = {n: draw(st.integers(1, 3)) for n in model.size_names if n not in dims.sizes}
        if more:
            from dataclasses import replace

            dims = replace(dims, more={**dict(dims.more), **more})
    seed = draw(st.integers(0, 2**32 - 1))
    logit_scale = draw(scale) if isinstance(scale, st.SearchStrategy) else scale
    if model is None:
        return dims, random_point(dims, seed=seed, scale=logit_scale)
    return dims, model.random_point(dims, seed=seed, scale=logit_scale)


def rnn_problems(
    *,
    shapes: st.SearchStrategy[Dims] | None = None,
    logit_scale: float | st.SearchStrategy = 1.0,
    model: ModelSpec | None = None,
) -> st.SearchStrategy[tuple[Dims, dict[str, np.ndarray]]]:
    """Draw `(dims, arrays)`: shapes from `shapes` (default `rnn_shapes()`) and float64 values
    (integer labels and token ids) for every input of `model` (default the vanilla RNN; a
    variant from `VANILLA.variant(...)` has only the arrays it takes).

    `logit_scale` multiplies V and c; 1000 gives logits of size about 1000, where a naive
    softmax overflows.
    """
    if model is not None and not isinstance(model, ModelSpec):
        raise InvalidArgument(f"model={model!r} must be a ModelSpec such as VANILLA.variant(...)")
    if shapes is None:
        shapes = rnn_shapes()
    if not isinstance(shapes, st.SearchStrategy):
        raise InvalidArgument(f"shapes={shapes!r} must be a strategy such as rnn_shapes()")
    if not isinstance(logit_scale, st.SearchStrategy) and not (
        isinstance(logit_scale, (int, float)) and np.isfinite(logit_scale) and logit_scale > 0
    ):
        raise InvalidArgument(f"logit_scale={logit_scale!r} must be a positive finite number")
    return _problems(shapes, logit_scale, model)
