"""Known BPTT mistakes as data: what a gradient (or the loss) would be under each one.

When a returned value is wrong, the checker compares it with each alternative below, in order;
an alternative is only offered when it differs from the truth at that shape, so a 1x1
"transpose" is never a diagnosis. Adding a recognised mistake means adding one entry here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from . import reference
from .model import Dims

__all__ = ["CAUSES", "Alternative", "alternatives"]

#: What each cause means, as the report prints it after "likely cause:".
CAUSES = {
    "transposed": "equals the true gradient transposed",
    "zero": "is all zeros: nothing was ever accumulated into it",
    "sign_flipped": "equals minus the true gradient",
    "scaled_by_N": "equals the true value divided by N (a mean over the batch instead of a sum)",
    "scaled_by_T": "equals the true value divided by T (a mean over time instead of a sum)",
    "scaled_by_NT": "equals the true value divided by N*T (a mean over batch and time)",
    "no_recurrent_term": "equals the gradient without the recurrent term (nothing flows "
    "back through h_{t-1})",
    "truncated": "equals a truncated-BPTT gradient",
    "untransposed_recurrence": "equals BPTT with dh_{t-1} = da_t W_h, where W_h^T belongs (a "
    "missing transpose in the recurrence)",
    "scaled": "equals the true value times a constant factor",
}


@dataclass(frozen=True)
class Alternative:
    """What the value would be under one mistake."""

    cause: str
    value: np.ndarray
    detail: str | None = None


def _variant(form: str, arrays: Mapping[str, np.ndarray], **mistake) -> dict[str, np.ndarray]:
    a = arrays
    if form == "layer":
        return reference.layer_vjp(a["x"], a["h0"], a["W_x"], a["W_h"], a["b"], a["dh"], **mistake)
    inputs = {n: v for n, v in a.items() if n != "dh"}
    return reference.forward_backward_dict(inputs, **mistake)[1]


def alternatives(
    name: str, truth: np.ndarray, dims: Dims, arrays: Mapping[str, np.ndarray], form: str
) -> Iterator[Alternative]:
    """Candidate wrong answers for `name` ("loss" or a gradient), cheapest first."""
    N, T = dims.N, dims.T
    if name != "loss" and truth.ndim == 2 and truth.shape[0] == truth.shape[1]:
        yield Alternative("transposed", truth.T)
    yield Alternative("zero", np.zeros_like(truth))
    yield Alternative("sign_flipped", -truth)
    if N > 1:
        yield Alternative("scaled_by_N", truth / N)
    if T > 1:
        yield Alternative("scaled_by_T", truth / T)
    if N > 1 and T > 1:
        yield Alternative("scaled_by_NT", truth / (N * T))
    if name == "loss":
        return
    if T > 1:
        yield Alternative("no_recurrent_term", _variant(form, arrays, truncate=0)[name])
        for k in range(1, T - 1):
            detail = f"each loss term reaches back {k} step{'s' * (k > 1)}"
            yield Alternative("truncated", _variant(form, arrays, truncate=k)[name], detail)
    if dims.H > 1:
        yield Alternative(
            "untransposed_recurrence", _variant(form, arrays, untransposed_recurrence=True)[name]
        )
