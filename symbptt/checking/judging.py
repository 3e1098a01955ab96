"""How far a returned value is from the truth, and when that is close enough."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..errors import (
    InvalidArgumentError,
)
from .usercode import PRECISIONS


def _real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class Tolerance:
    """A gradient is right when max|got - truth| <= rtol * scale.

    scale = max(max|truth of this gradient|, floor * max|truth of all gradients|): the floor
    keeps a nearly-zero gradient from being judged on rounding noise alone.
    """

    rtol: float
    floor: float

    def __post_init__(self) -> None:
        if not _real(self.rtol) or not (0 < self.rtol < 1):
            raise InvalidArgumentError(
                f"Tolerance(rtol={self.rtol!r}) must be a number strictly between 0 and 1"
            )
        if not _real(self.floor) or not (0 <= self.floor < math.inf):
            raise InvalidArgumentError(
                f"Tolerance(floor={self.floor!r}) must be a finite number at least 0"
            )


#: Keyed by dtype: the precision a gradient is judged at (one row per entry of `PRECISIONS`).
TOLERANCES: dict[str, Tolerance] = dict(
    zip(
        PRECISIONS,
        (
            Tolerance(rtol=1e-6, floor=1e-6),  # float64
            # float32: 13x the largest error of correct float32 code at the problems a check
            # draws (7.6e-6 over 2000 problems, bench/float32_tolerance.py), so that a gradient
            # 0.1% off is WRONG in float32 too
            Tolerance(rtol=1e-4, floor=5e-2),
            Tolerance(rtol=3e-2, floor=2e-1),  # float16
            Tolerance(rtol=8e-2, floor=3e-1),  # bfloat16
        ),
        strict=True,
    )
)


#: Answers judged at their own precision without a declaration.
_UNDECLARED_OK = ("float64", "float32")


class Measurement(NamedTuple):
    """How far one returned value is from the truth, and whether that is within tolerance."""

    max_abs: float
    rel: float
    worst: tuple[int, ...]
    ok: bool


def _measure(got, truth, tol: Tolerance, global_scale: float) -> Measurement:
    """The errors of one gradient or of the loss."""
    got, truth = np.asarray(got, dtype=float), np.asarray(truth, dtype=float)
    diff = np.abs(got - truth)
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.size else ()
    max_abs = float(diff.max(initial=0.0))
    scale = max(float(np.abs(truth).max(initial=0.0)), tol.floor * global_scale, 1e-300)
    rel = max_abs / scale
    return Measurement(max_abs, rel, tuple(int(i) for i in worst), rel <= tol.rtol)


def _matches(got, candidate, truth, tol: Tolerance, global_scale: float) -> bool:
    """got equals candidate, and candidate is distinguishable from the truth."""
    return (
        _measure(got, candidate, tol, global_scale).ok
        and not _measure(candidate, truth, tol, global_scale).ok
    )
