"""The problems a check draws: dims and arrays, the truth of each (with declared clipping), one
example of a batch."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..errors import (
    InternalError,
)
from ..models.dims import Dims
from ..models.spec import ModelSpec

#: A fixed generic shape (D != H, N > 1, H > 1, T > 2) where every known bug shows.
GENERIC = Dims(N=3, D=2, H=3, C=4, T=4)


#: The largest truncation a check can tell from full BPTT (it needs sequences of K + 2 steps).
MAX_CHECKED_TRUNCATE = 10


def _longest(model: ModelSpec) -> int:
    """The longest sequences a check draws: 4, or K + 2 so that K-step truncation shows."""
    K = model.options.truncate
    return GENERIC.T if K is None else max(GENERIC.T, K + 2)


@dataclass(frozen=True)
class Problem:
    """One set of inputs of a model variant: dims and canonical arrays (plus dh for the layer
    form)."""

    dims: Dims
    arrays: dict[str, np.ndarray]
    model: ModelSpec
    #: The truth from the model's NumPy reference alone (the larger problems: the symbolic
    #: gradient, compiled per shape, would cost seconds there; the reference is the
    #: independent derivation it is cross-checked against on every other problem of the run).
    reference: bool = False

    def prefix(self, t: int) -> Problem:
        """The same problem cut to its first t time steps."""
        cut = (*self.model.time_major, "dh")
        arrays = {k: (v[:t] if k in cut else v) for k, v in self.arrays.items()}
        return replace(self, dims=replace(self.dims, T=t), arrays=arrays)


def _problem(
    dims: Dims,
    arrays: dict[str, np.ndarray],
    form: str,
    dh_seed: int,
    model: ModelSpec,
    reference: bool = False,
) -> Problem:
    if form == "layer" and not model.from_file:  # a layer file's upstream gradients are inputs
        rng = np.random.default_rng(dh_seed)
        arrays = {**arrays, "dh": rng.standard_normal((dims.T, dims.N, dims.H))}
    return Problem(dims, arrays, model, reference)


@dataclass(frozen=True)
class Clipping:
    """Declared clipping of the returned gradients: elementwise to +-value, or scaled to a
    global L2 norm of at most `norm` (over the parameters' gradients, as PyTorch's
    clip_grad_norm_). With `per_row`, each example is clipped on its own (a char-rnn lossFun
    is called once per sequence and clips its own gradients)."""

    value: float | None = None
    norm: float | None = None
    per_row: bool = False

    @property
    def active(self) -> bool:
        return self.value is not None or self.norm is not None

    def apply(self, grads: dict[str, np.ndarray], parameters) -> tuple[dict, int, int]:
        """The clipped gradients, how many entries clipping changed, and how many there are."""
        out = dict(grads)
        names = [n for n in grads if n in parameters]
        if self.value is not None:
            for n in names:
                out[n] = np.clip(grads[n], -self.value, self.value)
        elif self.norm is not None:
            total = math.sqrt(sum(float(np.sum(grads[n] ** 2)) for n in names))
            if total > self.norm:
                for n in names:
                    out[n] = grads[n] * (self.norm / total)
        changed = sum(int(np.sum(out[n] != grads[n])) for n in names)
        return out, changed, sum(int(np.size(grads[n])) for n in names)


def _clipped_truth(
    form: str, problem: Problem, clipping: Clipping
) -> tuple[float | None, dict[str, np.ndarray], dict[str, np.ndarray], int, int]:
    """The truth as the declared clipping leaves it (per example when each call is one), the
    unclipped truth, and how many gradient entries the clipping changed out of how many."""
    if not clipping.active:
        loss, grads = _truth(form, problem)
        return loss, grads, grads, 0, 0
    params = problem.model.parameters
    if not clipping.per_row:
        loss, grads = _truth(form, problem)
        clipped, changed, total = clipping.apply(grads, params)
        return loss, clipped, grads, changed, total
    loss, full = _truth(form, problem)
    summed: dict[str, np.ndarray] = {}
    changed = total = 0
    for n in range(problem.dims.N):
        clipped, c, t = clipping.apply(_truth(form, _row(problem, n))[1], params)
        for name in params:
            if name in clipped:
                summed[name] = summed[name] + clipped[name] if name in summed else clipped[name]
        changed, total = changed + c, total + t
    # Only the parameters' gradients are clipped; h0's and x's are the truth's.
    return loss, {k: summed.get(k, v) for k, v in full.items()}, full, changed, total


def _row(problem: Problem, n: int) -> Problem:
    """Example n of a problem, as a problem of its own (N = 1)."""
    arrays = {}
    for item in problem.model.inputs:
        value = problem.arrays[item.name]
        if item.shape and item.shape[0] == "T":
            arrays[item.name] = value[:, n : n + 1]
        elif item.shape and item.shape[0] == "N":
            arrays[item.name] = value[n : n + 1]
        else:
            arrays[item.name] = value
    return replace(problem, dims=replace(problem.dims, N=1), arrays=arrays)


def _truth(form: str, problem: Problem) -> tuple[float | None, dict[str, np.ndarray]]:
    a, model = problem.arrays, problem.model
    if form == "layer":
        return model.truth(a, "layer")
    if problem.reference:
        loss, grads = model.truth({k: a[k] for k in a if k != "dh"})
        return (None if loss is None else float(loss)), grads
    from ..engine.compile import gradient_function

    symbolic = gradient_function(problem.dims, model).call_unchecked(a)
    loss, grads = model.truth({k: a[k] for k in a if k != "dh"})
    for name, value in grads.items():  # two independent derivations must agree
        scale = max(1.0, float(np.abs(value).max(initial=0.0)))
        if np.abs(symbolic[name] - value).max(initial=0.0) > 1e-8 * scale:
            raise InternalError(
                f"internal error: symbolic and NumPy BPTT disagree on dL/d{name} for "
                f"{problem.dims}; please report this"
            )
    return float(symbolic["loss"]), {k: symbolic[k] for k in grads}
