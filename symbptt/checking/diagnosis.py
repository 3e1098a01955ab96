"""What a wrong answer equals: the known mistakes, judged on the user's own arrays or simulated in
the model's and laid out as the user's."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..models.spec import ModelSpec
from .judging import Tolerance, _matches, _measure
from .mistakes import alternatives
from .problems import _row, _truth
from .usercode import Calling

if TYPE_CHECKING:
    from .run import Evaluation

#: Mistakes whose value follows from the truth of the value itself (transposed, zero, a
#: scale): judged on the user's own array. The rest are simulated in the model's arrays.
_GENERIC = frozenset(
    ["transposed", "zero", "sign_flipped", "scaled_by_N", "scaled_by_T", "scaled_by_NT"]
    + ["times_N", "times_T", "times_NT"]
)


def _model_options(model: ModelSpec, form: str) -> tuple[str, dict]:
    """The simulation's kind and keyword options for a model variant."""
    options = model.options.reference_options(form)
    if model.from_file:  # the generic causes, and truncation of the file's own recurrences
        options = {"reduction": model.options.reduction} if form == "full" else {}
        options["spec"] = model
    elif model.name != "vanilla":  # the gated cells' simulation takes their own options
        options = {k: getattr(model.options, k) for k in model.choices if k != "c0"}
        options["inputs"] = model.options.inputs  # simulated for dense inputs only
        if form == "full":
            options["reduction"] = model.options.reduction
    return ("file" if model.from_file else model.name), options


def _likely_cause(
    part: str,
    got: np.ndarray,
    ev: Evaluation,
    conv: Calling,
    tol: Tolerance,
    global_scale: float,
    per_row: bool = False,
):
    """The first known mistake whose result the wrong answer equals, with its detail.

    Generic mistakes are judged on the user's array itself; the model's (a missing recurrent
    term, a truncation, the gated cells' own) are simulated in the model's arrays and laid
    out as the user's. A mistake that changes several gradients at once is named only when the
    other returned arrays agree with it too (a b_h wrong alone is not a reset gate missing
    everywhere)."""
    problem, form = ev.problem, conv.form
    truth = np.asarray(ev.loss if part == "loss" else ev.truth[part])
    others, truths = ev.answer.grads, ev.truth
    arrangement = conv.arrangement(problem.dims)
    if part != "loss":
        clipped = _clipping_cause(part, got, truth, ev, conv, tol, global_scale, per_row)
        if clipped and _clipped_alike(
            part, clipped, arrangement, tol, global_scale, others, truths
        ):
            return "clipped", clipped[0]
    model = problem.model
    kind, options = _model_options(model, form)
    renames = dict(model.reference_names)
    dims = problem.dims
    # The generic alternatives, on the user's array (the simulation's name is a stand-in).
    square = part != "loss" and truth.ndim == 2 and truth.shape[0] == truth.shape[1]
    if square and _matches(got, truth.T, truth, tol, global_scale):
        return "transposed", None
    for alt in alternatives("loss", truth, dims, problem.arrays, form, kind, renames, **options):
        if alt.cause in _GENERIC and _matches(got, alt.value, truth, tol, global_scale):
            return alt.cause, alt.detail
    if part != "loss" and ev.model_truth is not None:
        found = _model_cause(
            part, got, truth, ev, arrangement, form, kind, renames, options, tol, global_scale
        )
        if found:
            return found
    denom = float(np.sum(truth * truth))
    # Any small vector is "a multiple" of another, and so is an outer product with one row or
    # column (x^T da at N = D = 1): only a matrix of rank > 1 can be "scaled".
    wide = truth.ndim < 2 or min(truth.shape) > 1
    if denom > 0 and np.size(truth) >= 3 and wide:
        alpha = float(np.sum(got * truth)) / denom
        if abs(alpha - 1) > 1e-3 and _matches(got, alpha * truth, truth, tol, global_scale):
            return "scaled", f"factor {alpha:.6g}"
    return None, None


def _model_cause(
    part, got, truth, ev, arrangement, form, kind, renames, options, tol, global_scale
):
    """A mistake of the model's computation (simulated in its arrays) that the user's array
    equals, when every other returned array agrees with it."""
    problem, model_truth = ev.problem, ev.model_truth
    others = ev.answer.grads
    for name in arrangement.arrays[part].holds:
        if name not in model_truth:
            continue
        for alt in alternatives(
            name,
            model_truth[name],
            problem.dims,
            problem.arrays,
            form,
            kind,
            renames,
            **dict(options),
        ):
            if alt.cause in _GENERIC:
                continue
            changed = {**model_truth, name: alt.value}
            if alt.full is not None:
                changed.update({k: v for k, v in alt.full.items() if k in model_truth})
            candidate = arrangement.to_user(changed, [part], gradients=True)[part]
            if not _matches(got, candidate, truth, tol, global_scale):
                continue
            if alt.full is not None and others:
                laid = arrangement.to_user(changed, list(others), gradients=True)
                agree = all(
                    np.shape(value) == np.shape(laid[q])
                    and _measure(np.asarray(value), laid[q], tol, global_scale).ok
                    for q, value in others.items()
                    if q != part and q in laid
                )
                if not agree:
                    continue
            return alt.cause, alt.detail
    return None


def _clipping_cause(
    part, got, truth, ev, conv, tol, global_scale, per_row
) -> tuple[str, float] | None:
    """('at ±v', v) when got is the truth clipped elementwise at some v (per example, summed,
    when the code is called once per sequence): v is read off the largest value it returned.
    Code clips its parameters' gradients, so only those are looked at."""
    problem = ev.problem
    arrangement = conv.arrangement(problem.dims)
    if arrangement.arrays[part].role != "parameter":
        return None
    top = float(np.abs(got).max(initial=0.0))
    if top <= 0:
        return None
    if not per_row or problem.dims.N == 1:
        if _clips(truth, top) and _matches(
            got, np.clip(truth, -top, top), truth, tol, global_scale
        ):
            return f"at ±{top:g}", top
        return None
    rows = []
    for n in range(problem.dims.N):
        row = _row(problem, n)
        grads = _truth(conv.form, row)[1]
        rows.append(conv.arrangement(row.dims).to_user(grads, [part], gradients=True)[part])
    for k in range(1, problem.dims.N + 1):  # v times the number of rows clipped at the max
        v = top / k
        if not any(_clips(r, v) for r in rows):
            continue
        candidate = sum(np.clip(r, -v, v) for r in rows)
        if _matches(got, candidate, truth, tol, global_scale):
            return f"at ±{v:g}, in each sequence", -v  # per row: not compared across
    return None


def _clipped_alike(part, clipped, arrangement, tol, global_scale, others, truths) -> bool:
    """Code that clips, clips every parameter's gradient at the same v: each other returned
    parameter gradient must equal its truth clipped at v (a single wrong entry of one
    gradient that happens to look clipped is no clipping)."""
    v = clipped[1]
    if v < 0 or not others or not truths:  # per sequence: each row has its own truth
        return True
    for other in arrangement.parameters:
        if other == part or other not in others or other not in truths:
            continue
        got, truth = np.asarray(others[other]), np.asarray(truths[other])
        if got.shape != truth.shape:
            return False
        if not _measure(got, np.clip(truth, -v, v), tol, global_scale).ok:
            return False
    return True


def _clips(truth: np.ndarray, v: float) -> bool:
    """Clipping at ±v would change some entries and leave others inside alone: only then is
    "clipped" a diagnosis (a shrunk [a, -a] is not)."""
    magnitude = np.abs(truth)
    return bool(
        np.any(magnitude > v * (1 + 1e-6))
        and np.any((magnitude > 0) & (magnitude < v * (1 - 1e-6)))
    )
