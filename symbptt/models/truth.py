"""Each model's independent NumPy BPTT, behind one call: `truth(spec, arrays, form)`.

The references (`symbptt.reference` for the vanilla RNN, `symbptt.reference_gated` for the LSTM
and the GRU) know the full model; the variants (absent biases, h0 fixed at zero, token ids, a
mean) are put to them here as what they are: zero biases and states, one-hot inputs, a factor.
Nothing here imports the engine the references check.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InvalidArgumentError

if TYPE_CHECKING:
    from .spec import ModelSpec

__all__ = ["truth"]


def truth(
    spec: ModelSpec, arrays: Mapping[str, np.ndarray], form: str = "full"
) -> tuple[float | None, dict[str, np.ndarray]]:
    """The loss (None for the layer form) and every gradient of the variant, from the model's
    NumPy reference. `arrays` are the variant's inputs (the layer form: its layer's inputs and
    `dh`, the upstream gradient on every h_t, (T, N, H))."""
    if spec.from_file:
        return _file(spec, arrays, form)
    if spec.name == "vanilla":
        return _vanilla(spec, arrays, form)
    if spec.name in ("lstm", "gru"):
        return _gated(spec, arrays, form)
    raise InvalidArgumentError(
        f"the {spec.name} model has no independent NumPy reference to check against"
    )


def _file(spec: ModelSpec, arrays, form: str):
    """A model file has no hand-written reference: its BPTT recurrences, derived by the rule
    table and evaluated with NumPy, are its truth, trusted once the engine's gradients and
    theirs agreed with finite differences of the file's own forward equations (engine.trust;
    this import is the one place models reaches into the engine, for that reason)."""
    from ..engine.trust import ensure_trusted

    ensure_trusted(spec)
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    dims = spec.dims_of(arrays)
    result = recurrences(spec).evaluate(arrays, dims)
    grads = {k: v for k, v in result.gradients.items() if k in spec.gradient_names}
    if not all(np.all(np.isfinite(v)) for v in (result.loss, *grads.values())):
        from .evaluate import diagnose  # the file's equations have no value here: where

        located = diagnose(spec.definition, arrays, dims.sizes, dims.T)
        if located is not None:
            raise located
    if spec.definition.loss is None:
        return (None if form == "layer" else float(result.loss)), grads
    return float(result.loss), grads


_FORMS: dict = {}


def recurrences(spec: ModelSpec):
    """A model file's matrix-form recurrences, derived once per variant (a check evaluates
    them for every problem)."""
    if spec not in _FORMS:
        from ..engine.matrix_form import matrix_form

        if len(_FORMS) > 64:
            _FORMS.clear()
        _FORMS[spec] = matrix_form(spec)
    return _FORMS[spec]


def _vanilla(spec: ModelSpec, arrays, form: str):
    from .. import reference

    options = spec.options.reference_options(form)
    if form == "layer":
        a = arrays
        grads = reference.layer_vjp(
            a["x"], a.get("h0"), a["W_x"], a["W_h"], a.get("b"), a["dh"], **options
        )
        return None, grads
    return reference.forward_backward_dict(
        {k: v for k, v in arrays.items() if k != "dh"}, **options
    )


def _gated(spec: ModelSpec, arrays, form: str):
    from .. import reference_gated

    o = spec.options
    if o.truncate is not None:
        raise InvalidArgumentError(f"the {spec.name} reference has no truncated BPTT")
    rename = dict(spec.reference_names)  # the model's names -> the reference's
    full = {rename.get(k, k): np.asarray(v) for k, v in arrays.items() if k != "dh"}
    H = full["W_h"].shape[0]
    if o.inputs == "tokens":  # ids -> one-hot rows: x_t W_x is the lookup W_x[x_t]
        full["x"] = np.eye(full["W_x"].shape[0])[full["x"]]
    T, N = full["x"].shape[:2]
    absent = [i for i in spec.base_inputs if i.name not in arrays and i.role != "label"]
    layer = spec.variant(no_bias=()).state_parameters  # the recurrent layer's, biases included
    for item in absent:
        if item.role == "initial":
            if item.name == "h0":
                full["h0"] = np.zeros((N, H))
        elif item.role == "parameter" and (form == "full" or item.name in layer):
            size = H * int(item.shape[0][:-1]) if item.shape[0][:-1].isdigit() else None
            full[rename.get(item.name, item.name)] = np.zeros(size if size else full["V"].shape[1])
    upstream = arrays["dh"] if form == "layer" else None
    if spec.name == "lstm":
        loss, grads = reference_gated.lstm_forward_backward(
            full, gate_order=o.gate_order, upstream=upstream
        )
    else:
        loss, grads = reference_gated.gru_forward_backward(full, reset=o.reset, upstream=upstream)
    back = {v: k for k, v in rename.items()}
    grads = {back.get(k, k): v for k, v in grads.items()}
    keep = set(spec.gradient_names)
    grads = {k: v for k, v in grads.items() if k in keep}
    if form == "full" and o.reduction == "mean":
        loss = loss / (N * T)
        grads = {k: v / (N * T) for k, v in grads.items()}
    return loss, grads
