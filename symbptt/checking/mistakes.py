"""Known BPTT mistakes as data: what a gradient (or the loss) would be under each one.

When a returned value is wrong, the checker compares it with each alternative below, in order;
an alternative is only offered when it differs from the truth at that shape, so a 1x1
"transpose" is never a diagnosis. Adding a recognised mistake means adding one entry here.

The truth and its truncations come from `symbptt.reference`, which computes only the correct
model; a mistake that needs its own computation (the missing transpose in the recurrence,
`untransposed_recurrence`) is simulated here, so the reference stays a plain independent truth.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from .. import reference
from ..models.dims import Dims
from .gated_mistakes import CAUSES as GATED_CAUSES

__all__ = ["CAUSES", "Alternative", "alternatives", "state_mistakes", "untransposed_recurrence"]

#: What each cause means, as the report prints it after "likely cause:".
CAUSES = {
    "transposed": "equals the true gradient transposed",
    "zero": "is all zeros: nothing was ever accumulated into it",
    "sign_flipped": "equals minus the true gradient",
    "scaled_by_N": "equals the true value divided by N (a mean over the batch instead of a sum)",
    "scaled_by_T": "equals the true value divided by T (a mean over time instead of a sum)",
    "scaled_by_NT": "equals the true value divided by N*T (a mean over batch and time)",
    "times_N": "equals the true value times N: a sum over the batch where the declared mean "
    "divides by it",
    "times_T": "equals the true value times T: a sum over time where the declared mean divides "
    "by it",
    "times_NT": "equals the true value times N*T: a sum where the declared mean belongs",
    "no_recurrent_term": "equals the gradient without the recurrent term (nothing flows "
    "back through h_{t-1})",
    "truncated": "equals a truncated-BPTT gradient",
    "untransposed_recurrence": "equals BPTT with dh_{t-1} = da_t W_h, where W_h^T belongs (a "
    "missing transpose in the recurrence)",
    "scaled": "equals the true value times a constant factor",
    "clipped": "equals the true gradient clipped elementwise (declare it with clip=..., --clip)",
    "h_t_for_h_prev": "equals sum_t h_t^T da_t: uses h_t where h_{t-1} belongs",
    "zero_initial_state": "equals the gradient with h_0 taken as zero in dW_h (the backward "
    "pass starts from zeros instead of the initial state it was given)",
    "singleton_axes": "has axes of size 1 added or dropped",
    "batch_time_swapped": "has its batch and time axes swapped",
    "clip_not_applied": "equals the unclipped truth: the declared clipping is not applied",
}
# The gated cells' mistakes (their no_recurrent_term sentence speaks of c_{t-1} too).
CAUSES.update(GATED_CAUSES)


@dataclass(frozen=True)
class Alternative:
    """What the value would be under one mistake."""

    cause: str
    value: np.ndarray
    detail: str | None = None
    #: Every gradient under the mistake, when it changes several at once (the gated cells'):
    #: the cause is named only if the whole answer agrees with it.
    full: dict[str, np.ndarray] | None = None


_LAYER_OPTIONS = ("truncate", "activation", "inputs")  # the layer has no loss to reduce


def _layer_inputs(arrays: Mapping[str, np.ndarray]) -> list:
    return [arrays.get(name) for name in ("x", "h0", "W_x", "W_h", "b")]


def _variant(form: str, arrays: Mapping[str, np.ndarray], **options) -> dict[str, np.ndarray]:
    """The reference's gradients of `form` for the variant `options` (the truth, or a
    truncation of it); absent "b", "c" or "h0" keys mean the variant without them."""
    if form == "layer":
        layer_options = {k: v for k, v in options.items() if k in _LAYER_OPTIONS}
        return reference.layer_vjp(*_layer_inputs(arrays), arrays["dh"], **layer_options)
    inputs = {n: v for n, v in arrays.items() if n != "dh"}
    return reference.forward_backward_dict(inputs, **options)[1]


def _slope(activation: str, hs: np.ndarray) -> np.ndarray:
    """act'(a_t) written from h_t = act(a_t) (relu'(0) = 0)."""
    if activation == "tanh":
        return 1.0 - hs * hs
    if activation == "relu":
        return (hs > 0.0).astype(np.float64)
    return np.ones_like(hs)


def _adjoints(dh, slope, W, k: int | None) -> np.ndarray:
    """da_1..da_T when dh_{t-1} = da_t W (W_h^T: the truth; W_h: the missing-transpose
    mistake), full or with each L_t reaching back k steps."""
    T = dh.shape[0]
    da = np.zeros_like(dh)
    if k is None or k >= T - 1:
        carry = np.zeros_like(dh[0])
        for t in reversed(range(T)):
            da[t] = (dh[t] + carry) * slope[t]
            carry = da[t] @ W
        return da
    for t in range(T):
        stop = max(t - k, 0)
        g = dh[t] * slope[t]
        for s in range(t, stop - 1, -1):
            da[s] += g
            if s > stop:
                g = (g @ W) * slope[s - 1]
    return da


def untransposed_recurrence(
    arrays: Mapping[str, np.ndarray], form: str = "full", **options
) -> dict[str, np.ndarray]:
    """The gradients BPTT computes with the classic mistake dh_{t-1} = da_t W_h, where W_h^T
    belongs (in the recurrence and in dh0 alike); it is never the truth.

    `form` is "full" (arrays keyed as `reference.forward_backward_dict` takes them) or
    "layer" (the layer's inputs and "dh"); `options` are the reference's keyword options of
    the variant (truncate, activation, reduction, inputs). The validation, the forward pass
    and the gradients the mistake leaves alone (V, c) come from the reference; the mistaken
    backward pass through the recurrence is written here.
    """
    truth = _variant(form, arrays, **options)  # checks every array and option
    activation, inputs = options.get("activation", "tanh"), options.get("inputs", "dense")
    x, h0, W_x, W_h, b = _layer_inputs(arrays)
    hs = reference.layer_forward(x, h0, W_x, W_h, b, activation=activation, inputs=inputs)
    if form == "layer":
        dh = np.asarray(arrays["dh"], dtype=np.float64)
    else:
        dh = reference.output_gradient(arrays, hs, options.get("reduction", "sum"))
    W_x, W_h = np.asarray(W_x, dtype=np.float64), np.asarray(W_h, dtype=np.float64)
    # The mistake: W_h where W_h.T belongs.
    da = _adjoints(dh, _slope(activation, hs), W_h, options.get("truncate"))
    T, N, H = hs.shape
    first = np.zeros((N, H)) if h0 is None else np.asarray(h0, dtype=np.float64)
    h_prev = np.concatenate([first[None], hs[:-1]])
    rows = da.reshape(-1, H)
    mistaken = {"W_h": h_prev.reshape(-1, H).T @ rows, "b": da.sum(axis=(0, 1)), "h0": da[0] @ W_h}
    if inputs == "tokens":
        mistaken["W_x"] = np.zeros_like(W_x)
        np.add.at(mistaken["W_x"], np.asarray(x).reshape(-1), rows)
    else:
        x = np.asarray(x, dtype=np.float64)
        mistaken["W_x"] = x.reshape(-1, x.shape[-1]).T @ rows
        mistaken["x"] = da @ W_x.T
    return {name: mistaken.get(name, value) for name, value in truth.items()}


def state_mistakes(
    arrays: Mapping[str, np.ndarray], form: str = "full", **options
) -> dict[str, np.ndarray]:
    """dW_h under two mistakes in which state multiplies da_t: "h_t_for_h_prev" (sum_t h_t^T
    da_t) and "zero_initial_state" (h_0 taken as zero, as when the backward pass starts from
    zeros instead of the hprev it was given); the adjoints da_t are the true ones."""
    activation, inputs = options.get("activation", "tanh"), options.get("inputs", "dense")
    x, h0, W_x, W_h, b = _layer_inputs(arrays)
    hs = reference.layer_forward(x, h0, W_x, W_h, b, activation=activation, inputs=inputs)
    if form == "layer":
        dh = np.asarray(arrays["dh"], dtype=np.float64)
    else:
        dh = reference.output_gradient(arrays, hs, options.get("reduction", "sum"))
    W_h = np.asarray(W_h, dtype=np.float64)
    da = _adjoints(dh, _slope(activation, hs), W_h.T, options.get("truncate"))
    T, N, H = hs.shape
    rows = da.reshape(-1, H)
    first = np.zeros((N, H))
    h_prev = np.concatenate([first[None], hs[:-1]])
    out = {"h_t_for_h_prev": hs.reshape(-1, H).T @ rows}
    if h0 is not None and np.any(np.asarray(h0) != 0):
        out["zero_initial_state"] = h_prev.reshape(-1, H).T @ rows
    return out


def _file_truncated(spec, dims: Dims, arrays, K: int) -> dict[str, np.ndarray]:
    """A model file's gradients with only the paths that reach back at most K steps: its
    matrix-form recurrences evaluated with K-step truncation (a forgotten recurrent term at
    K = 0). The file's gradients are trusted before any check (engine.trust)."""
    from ..models.truth import recurrences

    truncated = recurrences(spec.variant(truncate=K))
    point = {i.name: arrays[i.name] for i in spec.inputs}
    return truncated.evaluate(point, dims).gradients


def alternatives(
    name: str,
    truth: np.ndarray,
    dims: Dims,
    arrays: Mapping[str, np.ndarray],
    form: str,
    model: str = "vanilla",
    renames: Mapping[str, str] | None = None,
    **options,
) -> Iterator[Alternative]:
    """Candidate wrong answers for `name` ("loss" or a gradient), cheapest first; `model` names
        the cell (the LSTM's and the GRU's own mistakes come from `gated_mistakes`, whose names
    `renames` maps from the model's: the spec's `reference_names`).

        `options` are the reference's keyword options of the variant under check (none: the
        plain model); absent "b", "c" or "h0" keys of `arrays` mean the variant without them.
    """
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
    if options.get("reduction") == "mean":  # a sum where the declared mean belongs
        for cause, factor in (("times_N", N), ("times_T", T), ("times_NT", N * T)):
            if factor > 1 and (cause != "times_NT" or min(N, T) > 1):
                yield Alternative(cause, truth * factor)
    if name == "loss":
        return
    if model == "file":  # a model file: its own recurrences, truncated (no closed forms)
        spec = options["spec"]
        for k in range(0, T - 1):
            truncated = _file_truncated(spec, dims, arrays, k)
            if name in truncated:
                if k == 0:
                    yield Alternative("no_recurrent_term", truncated[name])
                else:
                    detail = f"each loss term reaches back {k} step{'s' * (k > 1)}"
                    yield Alternative("truncated", truncated[name], detail)
        return
    if model != "vanilla":  # the gated cells' own mistakes, simulated in closed form
        from . import gated_mistakes

        if options.pop("inputs", "dense") != "dense":  # simulated for dense inputs only
            return

        rename = dict(renames or {})  # the model's names -> the simulation's
        given = {rename.get(k, k): v for k, v in arrays.items()}
        wanted = rename.get(name, name)
        back = {v: k for k, v in rename.items()}
        for cause, grads in gated_mistakes.alternatives(model, given, form, **options).items():
            if wanted in grads:
                full = {back.get(k, k): v for k, v in grads.items()}
                yield Alternative(cause, grads[wanted], full=full)
        return
    if T > 1:
        no_recurrence = _variant(form, arrays, **{**options, "truncate": 0})
        yield Alternative("no_recurrent_term", no_recurrence[name])
        for k in range(1, T - 1):
            detail = f"each loss term reaches back {k} step{'s' * (k > 1)}"
            truncated = _variant(form, arrays, **{**options, "truncate": k})
            yield Alternative("truncated", truncated[name], detail)
    if dims.H > 1:
        mistaken = untransposed_recurrence(arrays, form, **options)
        yield Alternative("untransposed_recurrence", mistaken[name])
    if name == "W_h":
        for cause, value in state_mistakes(arrays, form, **options).items():
            yield Alternative(cause, value)
