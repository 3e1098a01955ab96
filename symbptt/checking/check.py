"""Check hand-written BPTT code: random shapes, exact gradients, a diagnosis of what is wrong.

Hypothesis draws shapes and values (including the shapes where bugs hide: H=1, N=1, T<=2,
D==H) and, on a failure, shrinks to the smallest failing shape. The truth is the compiled
symbolic gradient for those dimensions, itself cross-checked against the NumPy BPTT on every
example (the layer form uses the NumPy layer VJP). The report then says, per gradient, how far
off it is, where, from which sequence length on, and what the wrong answer equals when that is
recognisable (the truth transposed, scaled, negated, without the recurrent term, truncated).
"""

from __future__ import annotations

import math
import numbers
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ..errors import (
    InternalError,
    InvalidArgumentError,
    TargetError,
    UserFunctionError,
    WorkerDiedError,
)
from ..models import VANILLA
from ..models.dims import Dims
from ..models.spec import MODEL_OPTIONS, ModelSpec
from . import styles
from .convention import Convention
from .isolation import Died, InProcess, Limits, Raised, Worker
from .mistakes import alternatives
from .report import ParameterResult, Report
from .styles import Style
from .usercode import PRECISIONS, CallConventionMismatch, Calling, Runner, UserAnswer

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = [
    "check_gradients",
    "compare_gradients",
    "validate_options",
    "Tolerance",
    "TOLERANCES",
    "PRECISIONS",
]


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
            Tolerance(rtol=2e-3, floor=5e-2),  # float32
            Tolerance(rtol=3e-2, floor=2e-1),  # float16
            Tolerance(rtol=8e-2, floor=3e-1),  # bfloat16
        ),
        strict=True,
    )
)
#: Answers judged at their own precision without a declaration.
_UNDECLARED_OK = ("float64", "float32")
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

    def prefix(self, t: int) -> Problem:
        """The same problem cut to its first t time steps."""
        cut = (*self.model.time_major, "dh")
        arrays = {k: (v[:t] if k in cut else v) for k, v in self.arrays.items()}
        return Problem(replace(self.dims, T=t), arrays, self.model)


def _problem(
    dims: Dims, arrays: dict[str, np.ndarray], form: str, dh_seed: int, model: ModelSpec
) -> Problem:
    if form == "layer" and not model.from_file:  # a layer file's upstream gradients are inputs
        rng = np.random.default_rng(dh_seed)
        arrays = {**arrays, "dh": rng.standard_normal((dims.T, dims.N, dims.H))}
    return Problem(dims, arrays, model)


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
    return Problem(replace(problem.dims, N=1), arrays, problem.model)


def _truth(form: str, problem: Problem) -> tuple[float | None, dict[str, np.ndarray]]:
    a, model = problem.arrays, problem.model
    if form == "layer":
        return model.truth(a, "layer")
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


@dataclass
class Evaluation:
    """One call of the user's function, measured against the truth."""

    problem: Problem
    answer: UserAnswer
    measured: dict[str, Measurement]
    global_scale: float
    loss: float | None
    truth: dict[str, np.ndarray]
    #: The truth before the declared clipping (the same dict when none is declared).
    raw_truth: dict[str, np.ndarray] | None = None
    #: The truth in the model's own arrays (the diagnosis simulates mistakes there).
    model_truth: dict[str, np.ndarray] | None = None


class _Checker:
    """One user function under one convention, precision and tolerance table."""

    def __init__(
        self,
        runner: Runner,
        convention: Calling,
        tolerances: Mapping[str, Tolerance],
        *,
        precision: str | None = None,
        required: Sequence[str] = (),
        probe_prefixes: bool = True,
        deadline: float = math.inf,
        clipping: Clipping = Clipping(),
        fit: Callable[[Dims], Dims] | None = None,
        probe: bool = False,
    ):
        self.runner, self.conv, self.tolerances = runner, convention, tolerances
        self.precision, self.required = precision, tuple(required)
        self.probe_prefixes, self.deadline = probe_prefixes, deadline
        self.clipping, self.fit, self.probe = clipping, fit, probe
        self.low_precision: set[str] = set()  # dtypes below float64 the user computed in
        #: Gradient entries the declared clipping changed, and all entries, over the examples.
        self.clipped = [0, 0]

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def evaluate(self, problem: Problem) -> Evaluation:
        """Call the user once; measure every returned gradient (and the loss) against the truth.

        Raises UserFunctionError (WorkerDiedError when the call never answered).
        """
        if self.remaining() <= 0:
            raise _OutOfTime
        pending = self.conv.submit(self.runner, problem.arrays, timeout=self.remaining())
        # The truth while the user's code runs (clipped as declared), in the user's arrays.
        loss, model_truth, raw, changed, total = _clipped_truth(
            self.conv.form, problem, self.clipping
        )
        self.clipped[0] += changed
        self.clipped[1] += total
        arrangement = self.conv.arrangement(problem.dims)
        truth = arrangement.to_user(model_truth, self.conv.gradients, gradients=True)
        raw_user = (
            truth
            if raw is model_truth
            else arrangement.to_user(raw, self.conv.gradients, gradients=True)
        )
        try:
            answer = pending()
        except WorkerDiedError:
            if self.remaining() <= 0:  # cut short by the whole check's limit, not its own
                raise _OutOfTime from None
            raise
        self._refuse_undeclared_precision(answer)
        global_scale = max(float(np.abs(v).max(initial=0.0)) for v in model_truth.values())
        measured = {
            n: _measure(g, truth[n], self.tolerance(answer, n), global_scale)
            for n, g in answer.grads.items()
            if n in truth
        }
        if answer.loss is not None and "loss" not in answer.problems:
            measured["loss"] = _measure(
                answer.loss, loss, self.tolerance(answer, "loss"), abs(loss)
            )
        return Evaluation(
            problem, answer, measured, global_scale, loss, truth, raw_user, model_truth
        )

    def _refuse_undeclared_precision(self, answer: UserAnswer) -> None:
        """A float16/bfloat16 answer is judged only at a declared precision, never trusted."""
        for name, dtype in answer.dtypes.items():
            if self.precision is None and dtype not in _UNDECLARED_OK and dtype in TOLERANCES:
                label = "the loss" if name == "loss" else f"d{self.conv.user_name(name)}"
                answer.problems[name] = (
                    f"{label} was returned as {dtype}; low-precision answers are judged only "
                    f"when declared (precision={dtype!r}, --precision {dtype})"
                )
                answer.grads.pop(name, None)
                if name == "loss":
                    answer.loss = None
            elif self.precision is None and dtype == "float32":
                self.low_precision.add(dtype)

    def tolerance(self, answer: UserAnswer, name: str) -> Tolerance:
        if self.precision is not None:
            return self.tolerances[self.precision]
        dtype = answer.dtypes.get(name, "float64")
        return self.tolerances[dtype if dtype in _UNDECLARED_OK else "float64"]

    def missing(self, answer: UserAnswer) -> list[str]:
        """Required values the function did not return at all."""
        present = {*answer.grads, *answer.problems, *(["loss"] if answer.loss is not None else [])}
        return [n for n in self.required if n not in present]

    def failing(self, ev: Evaluation) -> bool:
        return bool(
            ev.answer.problems
            or ev.answer.shape_notes
            or self.missing(ev.answer)
            or not all(m.ok for m in ev.measured.values())
        )

    def results(self, ev: Evaluation) -> dict[str, ParameterResult]:
        """The verdict on every gradient (and the loss) from one stored evaluation.

        Only the first-wrong-length probe calls the function again; the verdict itself is the
        one this evaluation saw, so a function cannot talk its way out of a failure.
        """
        answer, problem = ev.answer, ev.problem
        d = problem.dims
        shape = f"N={d.N} D={d.D} H={d.H}" + (f" C={d.C}" if self.conv.form == "full" else "")
        shape += f" T={d.T}"
        names = [*self.conv.gradients, *(["loss"] if self.conv.form == "full" else [])]
        results = {}
        for name in names:
            if name in answer.problems:
                r = ParameterResult(name, "WRONG", message=answer.problems[name], shape=shape)
                r.likely_cause = answer.causes.get(name)
                results[name] = r
                continue
            if name not in ev.measured:
                if name in self.required:
                    results[name] = ParameterResult(
                        name,
                        "WRONG",
                        message="not returned (declare the ones you return with only=... "
                        "or --only to check a subset)",
                        shape=shape,
                    )
                else:
                    results[name] = ParameterResult(name, "NOT CHECKED", message="not returned")
                continue
            max_abs, rel, worst, ok = ev.measured[name]
            r = ParameterResult(name, "OK" if ok else "WRONG", max_abs, rel, worst or None)
            r.shape = shape
            if not ok:
                self._explain(r, ev)
            note = answer.shape_notes.get(name)
            if note:  # the values may be right; the shape is not
                r.status = "WRONG"
                r.likely_cause = r.likely_cause or "singleton_axes"
                r.message = note + ("; its values are right" if ok else "")
            results[name] = r
        for name, r in results.items():  # the user's own names, where they differ
            if name != "loss" and self.conv.user_name(name) != name:
                r.user = self.conv.user_name(name)
        return results

    def _explain(self, r: ParameterResult, ev: Evaluation) -> None:
        """Likely cause, first wrong length and hints for one wrong value (best effort)."""
        name, answer = r.name, ev.answer
        got = answer.loss if name == "loss" else answer.grads[name]
        want = ev.loss if name == "loss" else ev.truth[name]
        try:
            r.likely_cause, r.cause_detail = _likely_cause(
                name,
                np.asarray(got),
                ev,
                self.conv,
                self.tolerance(answer, name),
                abs(ev.loss) if name == "loss" else ev.global_scale,
                per_row=self.clipping.per_row,
            )
        except Exception as exc:  # a diagnosis that fails never changes the verdict
            r.message = f"no likely cause could be worked out ({type(exc).__name__}: {exc})"
        raw = (ev.raw_truth or {}).get(name)
        if name != "loss" and self.clipping.active and raw is not None:
            tol = self.tolerance(answer, name)
            if _matches(np.asarray(got), raw, np.asarray(want), tol, ev.global_scale):
                r.likely_cause, r.cause_detail = "clip_not_applied", None
        if self.probe_prefixes:
            r.first_wrong_step = self._first_wrong_step(name, ev.problem)
        if r.likely_cause is None and r.max_rel_error is not None and r.max_rel_error < 1e-3:
            r.message = (
                f"a small error ({r.max_rel_error:.1e}): if your code computes in lower "
                "precision than it returns, declare it (precision=..., --precision)"
            )

    def _first_wrong_step(self, name: str, problem: Problem) -> int | None:
        for t in range(1, problem.dims.T):
            try:
                ev = self.evaluate(problem.prefix(t))
            except (UserFunctionError, _OutOfTime):
                return None
            if name in ev.answer.problems or (name in ev.measured and not ev.measured[name].ok):
                return t
        return problem.dims.T

    def same_answer(self, first: Evaluation, again: Evaluation) -> bool:
        """Whether two calls on the same inputs answered the same, within the tolerance."""
        a, b = first.answer, again.answer
        if set(a.grads) != set(b.grads) or set(a.problems) != set(b.problems):
            return False
        if (a.loss is None) != (b.loss is None):
            return False
        pairs = [(a.grads[n], b.grads[n], self.tolerance(a, n)) for n in a.grads]
        if a.loss is not None:
            pairs.append((a.loss, b.loss, self.tolerance(a, "loss")))
        return all(_measure(x, y, tol, first.global_scale).ok for x, y, tol in pairs)


class _Mismatch(Exception):
    """A failure seen: hypothesis may shrink it."""


class _Abort(BaseException):
    """Stop the search at once, without shrinking (the process died, or time ran out).

    A BaseException, so that hypothesis lets it through instead of replaying the example.
    """


class _OutOfTime(Exception):
    """The whole check's time limit has passed."""


class _Usage(BaseException):
    """The function is not called the way the check was told: stop, and say so as a usage
    error (a BaseException, so that hypothesis neither replays nor shrinks it)."""


@dataclass
class _Search:
    """What the hypothesis search saw: every failure is kept, not just the replayable one."""

    count: int = 0
    shapes: set = field(default_factory=set)
    failure: Evaluation | None = None  # the last (smallest) wrong answer seen
    error: str | None = None  # the function raised or returned something unreadable
    error_dims: Dims | None = None
    error_problem: Problem | None = None
    died: bool = False  # the worker hung, crashed or exited: no more calls worth making
    out_of_time: bool = False
    flaky: bool = False  # hypothesis replayed a failure and it did not fail again


def validate_options(
    *,
    fn: Callable | str | None = None,
    form: str | None = None,
    layout: str = "row",
    batch_first: bool = False,
    names: Mapping[str, str] | None = None,
    order: Sequence[str] | None = None,
    only: Sequence[str] | None = None,
    precision: str | None = None,
    shapes: SearchStrategy[Dims] | None = None,
    max_examples: int = 100,
    seed: int = 0,
    tolerances: Mapping[str, Tolerance] | None = None,
    timeout: float = 5.0,
    total_timeout: float = 300.0,
    memory_mb: int = 2048,
    forbid_imports: Sequence[str] = (),
    isolate: bool = True,
    progress: Callable[[int, int], None] | None = None,
    model: ModelSpec | None = None,
    style: str = "plain",
    globals: Mapping[str, str] | None = None,  # noqa: A002 (the option's name)
    defs_only: bool = False,
    clip: float | None = None,
    clip_norm: float | None = None,
    allow_broadcast_shapes: bool = False,
    probe: bool = True,
    step: bool | None = None,
    arrays: Convention | None = None,
) -> tuple[Calling, tuple[str, ...], dict[str, Tolerance], Style]:
    """Every argument of check_gradients checked before any work, one sentence each
    (InvalidArgumentError); the convention, the required values, the tolerance table and the
    style's settings."""
    _validate(
        callable if fn is None else fn,
        max_examples,
        seed,
        timeout,
        total_timeout,
        memory_mb,
        forbid_imports,
        isolate,
        progress,
    )
    model = model or VANILLA
    if not isinstance(model, ModelSpec) or not (
        model.from_file or model.name in ("vanilla", "lstm", "gru")
    ):
        raise InvalidArgumentError(
            f"model={getattr(model, 'name', model)!r}: the checker's independent NumPy "
            "references know the vanilla RNN, the LSTM and the GRU and their variants "
            "(VANILLA.variant(...), LSTM, GRU); any other model is a model file "
            "(symbptt.models.from_file(path))"
        )
    if form is None:  # a pair, a layer file: the layer form; anything else the full form
        if model.from_file:
            form = "layer" if model.definition.loss is None else "full"
        else:
            form = "layer" if styles.pair_of(fn) is not None and style == "plain" else "full"
    if model.from_file:
        layer = model.definition.loss is None
        if layer and form != "layer":
            raise InvalidArgumentError(
                f"the model file {model.name} is a layer (it has no L line): check its code "
                "with form='layer' (--form layer), which passes the upstream gradients "
                + ", ".join(i.name for i in model.inputs if i.role == "upstream")
            )
        if not layer and form == "layer":
            raise InvalidArgumentError(
                f"the model file {model.name} has a loss: the layer form checks a layer file "
                "(a model file without an L line); drop --form layer"
            )
    K = model.options.truncate
    if K is not None and K > MAX_CHECKED_TRUNCATE:
        raise InvalidArgumentError(
            f"truncate={K} cannot be checked: K-step truncated BPTT differs from full BPTT only "
            f"on sequences of K + 2 steps or more, and checks go up to truncate="
            f"{MAX_CHECKED_TRUNCATE} (T={MAX_CHECKED_TRUNCATE + 2})"
        )
    layer_biases = model.variant(no_bias=()).state_parameters  # the full layer's
    output_biases = [b for b in model.biases if b not in layer_biases]
    removed = [b for b in model.options.no_bias if b in output_biases]
    if form == "layer" and (model.options.reduction != "sum" or removed):
        raise InvalidArgumentError(
            "the layer form has no output layer and no loss: --reduction and --no-bias "
            f"{'/'.join(output_biases)} do not apply to it"
        )
    for label, value in (("clip", clip), ("clip_norm", clip_norm)):
        if value is not None and (not _real(value) or not (0 < value < math.inf)):
            raise InvalidArgumentError(f"{label}={value!r} must be a positive number")
    if clip is not None and clip_norm is not None:
        raise InvalidArgumentError("declare one of clip and clip_norm, not both")
    for label, value in (
        ("defs_only", defs_only),
        ("allow_broadcast_shapes", allow_broadcast_shapes),
        ("probe", probe),
    ):
        if not isinstance(value, bool):
            raise InvalidArgumentError(f"{label}={value!r} must be True or False")
    if globals is not None and not isinstance(globals, Mapping):
        raise InvalidArgumentError("globals must map a global's name to D, H or C")
    if (clip is not None or clip_norm is not None) and form == "layer":
        raise InvalidArgumentError("clip and clip_norm apply to the full form's gradients")
    settled = styles.resolve(
        fn,
        style=style,
        form=form,
        layout=layout,
        batch_first=batch_first,
        names=names,
        order=order,
        only=only,
        model=model,
        globals_=globals,
        defs_only=defs_only,
        step=step,
    )
    if arrays is not None and (layout != "row" or batch_first or names):
        raise InvalidArgumentError(
            "declare the convention once: layout, batch_first and names are fields of the "
            "Convention given (convention=...)"
        )
    convention = Calling.of(
        settled.form,
        settled.layout,
        batch_first,
        settled.names,
        settled.order,
        settled.model,
        allow_broadcast_shapes=allow_broadcast_shapes,
        shape=settled.shape,
        arrays=arrays,
    )
    if settled.shape == "pair" and settled.order is None:
        convention = replace(convention, order=convention.gradients)
    required = _required(convention, settled.only)
    table = _table(tolerances, precision)
    if shapes is not None:
        from hypothesis.strategies import SearchStrategy

        if not isinstance(shapes, SearchStrategy):
            raise InvalidArgumentError(f"shapes={shapes!r} must be a strategy such as rnn_shapes()")
    return convention, required, table, settled


def _validate(
    fn, max_examples, seed, timeout, total_timeout, memory_mb, forbid_imports, isolate, progress
) -> None:
    if not (callable(fn) or isinstance(fn, str) or styles.pair_of(fn)):
        raise InvalidArgumentError(
            f"fn must be a function, a (forward, backward) pair or a 'file.py:function' "
            f"string, got {type(fn).__name__}"
        )
    if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1:
        raise InvalidArgumentError(f"max_examples={max_examples!r} must be a positive integer")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidArgumentError(f"seed={seed!r} must be a whole number at least 0")
    for label, value in (("timeout", timeout), ("total_timeout", total_timeout)):
        if not _real(value) or not (0 < value < math.inf):
            raise InvalidArgumentError(f"{label}={value!r} must be a positive number of seconds")
    if isinstance(memory_mb, bool) or not isinstance(memory_mb, int) or memory_mb < 16:
        raise InvalidArgumentError(f"memory_mb={memory_mb!r} must be a whole number of MiB, >= 16")
    if isinstance(forbid_imports, str) or not all(
        isinstance(m, str) and m.isidentifier() for m in forbid_imports
    ):
        raise InvalidArgumentError(
            f"forbid_imports={forbid_imports!r} must be a sequence of top-level module names, "
            "e.g. ('symbptt', 'torch')"
        )
    if "numpy" in forbid_imports:
        raise InvalidArgumentError("numpy cannot be forbidden: the arrays are NumPy arrays")
    if not isinstance(isolate, bool):
        raise InvalidArgumentError(f"isolate={isolate!r} must be True or False")
    if progress is not None and not callable(progress):
        raise InvalidArgumentError("progress must be a function progress(done, total) or None")


def _required(convention: Calling, only: Sequence[str] | None) -> tuple[str, ...]:
    form = convention.form
    every = (*convention.gradients, *(["loss"] if form == "full" else []))
    if only is None:
        return every
    if isinstance(only, str) or not all(isinstance(n, str) for n in only) or not only:
        raise InvalidArgumentError(
            f"only={only!r} must be a non-empty sequence of names, e.g. ('W_h', 'W_x')"
        )
    unknown = [n for n in only if n not in every]
    if unknown:
        raise InvalidArgumentError(
            f"only names {', '.join(map(repr, unknown))}, not among the {form} form's "
            f"{', '.join(every)}"
        )
    return tuple(dict.fromkeys(only))


def _table(tolerances, precision) -> dict[str, Tolerance]:
    if precision is not None and precision not in PRECISIONS:
        raise InvalidArgumentError(
            f"precision={precision!r} must be one of {', '.join(PRECISIONS)} (or None)"
        )
    if tolerances is None:
        return dict(TOLERANCES)
    if not isinstance(tolerances, Mapping):
        raise InvalidArgumentError(
            "tolerances must map a dtype to a Tolerance, e.g. "
            "{'float64': Tolerance(rtol=1e-8, floor=1e-8)}"
        )
    for dtype, tol in tolerances.items():
        if dtype not in TOLERANCES:
            raise InvalidArgumentError(
                f"tolerances has the key {dtype!r}; keys are dtypes: {', '.join(TOLERANCES)}"
            )
        if not isinstance(tol, Tolerance):
            raise InvalidArgumentError(
                f"tolerances[{dtype!r}]={tol!r} must be a Tolerance(rtol=..., floor=...)"
            )
    return {**TOLERANCES, **tolerances}


def _runner(
    fn,
    isolate: bool,
    limits: Limits,
    forbid: tuple[str, ...],
    adapter,
    defs_only: bool,
    paths: tuple[str, ...] = (),
) -> Runner:
    adapter = adapter or {"kind": "plan"}  # the user's objects, called as a plan says
    if isinstance(fn, str):
        return Worker.for_target(
            fn, limits=limits, forbid=forbid, adapter=adapter, defs_only=defs_only, paths=paths
        )
    if isolate:
        return Worker.for_callable(fn, limits=limits, forbid=forbid, adapter=adapter)
    return InProcess(fn, adapter)


def _load_failure(runner: Runner, target: str) -> str | None:
    """Wait for the user's code to load; a sentence when it could not (TargetError for ours)."""
    failure = runner.load()
    if failure is None:
        return None
    if isinstance(runner, Worker) and runner.missing is not None:
        import difflib

        missing = runner.missing_name or runner.function
        close = difflib.get_close_matches(missing, runner.missing, n=2)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise TargetError(f"{runner.path} has no function {missing!r}{hint}")
    if (
        isinstance(failure, Raised)
        and failure.type == "ModuleNotFoundError"
        and ("forbidden" not in failure.message)
    ):  # the code's own imports: how it is set up, not what it computes
        where = f" ({failure.frame})" if failure.frame else ""
        module = failure.message.partition("'")[2].partition("'")[0] or "a module"
        raise TargetError(
            f"could not import {target}: {failure.message}{where}; no folder above it holds "
            f"{module!r}: add the folder that does with --path DIR (path=[...])"
        )
    if isinstance(failure, Raised) and "relative import" in failure.message:
        raise TargetError(
            f"could not import {target}: {failure.message}; a file with relative imports must "
            "sit in a package (a folder with an __init__.py)"
        )
    if isinstance(runner, Worker) and runner.not_callable is not None:
        raise TargetError(f"{target} is a {runner.not_callable}, not a function")
    if isinstance(failure, Died):
        hint = ""
        if isinstance(runner, Worker) and not runner.defs_only and "importing" in failure.reason:
            hint = (
                "; if it is a training script that runs at import, --defs-only "
                "(defs_only=True) imports only its imports, definitions and constants"
            )
        return f"{target} {failure.reason}{hint}"
    where = f" ({failure.frame})" if isinstance(failure, Raised) and failure.frame else ""
    hint = ""
    if isinstance(runner, Worker) and not runner.defs_only:
        hint = (
            "; if it is a training script, --defs-only (defs_only=True) imports only its "
            "imports, definitions and constants"
        )
    return f"could not import {target}: {failure.type}: {failure.message}{where}{hint}"


def check_gradients(
    fn: Callable | str,
    *,
    form: str | None = None,
    layout: str = "row",
    batch_first: bool = False,
    names: Mapping[str, str] | None = None,
    order: Sequence[str] | None = None,
    only: Sequence[str] | None = None,
    precision: str | None = None,
    shapes: SearchStrategy[Dims] | None = None,
    max_examples: int = 100,
    seed: int = 0,
    tolerances: Mapping[str, Tolerance] | None = None,
    timeout: float = 5.0,
    total_timeout: float = 300.0,
    memory_mb: int = 2048,
    forbid_imports: Sequence[str] = (),
    isolate: bool = True,
    progress: Callable[[int, int], None] | None = None,
    model: ModelSpec | None = None,
    style: str = "plain",
    globals: Mapping[str, str] | None = None,  # noqa: A002 (the option's name)
    defs_only: bool = False,
    clip: float | None = None,
    clip_norm: float | None = None,
    allow_broadcast_shapes: bool = False,
    probe: bool = True,
    step: bool | None = None,
    convention: Convention | str | Path | None = None,
    path: Sequence[str | Path] = (),
) -> Report:
    """Check the gradients fn returns on random shapes and values; say what is wrong and where.

    The function runs in a worker process (a `"file.py:function"` target in a fresh interpreter,
    a callable in a fork of this one) with a time limit per call, a time limit for the whole
    check and a memory limit; the truth is computed here. A failure seen once is a failure, even
    if a later call with the same inputs is right.

    Args:
        fn: `fn(x, y, h0, W_x, W_h, b, V, c) -> (loss, grads)` for `form="full"`, or
            `fn(x, h0, W_x, W_h, b, dh) -> grads` for `form="layer"` (dh: upstream gradient on
            every h_t); or a `"path/to/file.py:function"` string naming one. grads is a dict
            keyed by name or a tuple in `order`.
        layout: "row" (x W, the model's) or "column" (W x: weights transposed, biases (H, 1)).
        batch_first: x (and y, dh) are (N, T, ...) instead of (T, N, ...).
        names: canonical name -> the user's name, e.g. {"W_h": "Whh"}; the function is then
            called with keyword arguments under those names.
        only: the gradients (and "loss") the function returns; by default all are required.
        precision: "float32", "float16", ...: judge every answer at that precision. By default
            float64 and float32 answers are judged at their own; lower ones are refused.
        shapes: a strategy of `Dims` (default `rnn_shapes()`: N, D, H 1..3, C 2..4, T 1..4).
        max_examples, seed: how many random problems hypothesis tries, reproducibly.
        tolerances: overrides of `TOLERANCES`, keyed by dtype.
        timeout, total_timeout: seconds per call, and for the whole check.
        memory_mb: memory the function may use on top of the worker's own.
        forbid_imports: top-level modules the function may not import (e.g. "symbptt").
        isolate: False runs a callable in this process, without limits (to debug it).
        model: the model variant fn computes (`VANILLA.variant(no_bias=("b",), ...)`);
            default the vanilla RNN.
        style: "plain" (the signatures above) or "char-rnn": a min-char-rnn
            `lossFun(inputs, targets, hprev)` reading its weights (Wxh, Whh, Why, bh, by;
            rename with names) and sizes (vocab_size, hidden_size) from module globals, one
            sequence per call, returning (loss, dWxh, dWhh, dWhy, dbh, dby, hlast). For the
            layer form, fn may be a pair: "file.py:rnn_forward,rnn_backward" or a tuple
            (forward, backward) in CS231n's shape (a step pair when the names say "step").
        globals: for the char-rnn style, more size globals to set: {"seq_length": "D"}.
        defs_only: import a target file running only its imports, definitions and constant
            assignments (a training script's top level never runs).
        clip, clip_norm: the function clips its gradients elementwise to +-clip, or scales
            them to a global L2 norm of at most clip_norm; the truth is clipped the same way.
        allow_broadcast_shapes: accept a gradient whose shape differs from its parameter's by
            axes of size 1 (a (1, H) db for a (H,) b); by default that is a finding.
        probe: after a right verdict, also try saturated inputs (pre-activations and logits in
            the thousands) where the true gradient is finite; NaN or inf there is reported as
            `report.overflow`.
        step: for a pair, whether it is the one-step pair (x (N, D), T = 1); by default, when
            the forward function's name has the word "step" or "cell" in it.
        convention: how the code holds the model's arrays (`Convention`: layout, axes, gates,
            per-gate or stacked weights, biases, names), or a convention file's path (a
            grader's: code right only under another convention is WRONG, with a note), or
            "auto" (the convention the search finds is the verdict's, and the report says so).
            Without one, code that fits another convention is a usage error naming the
            command that fits (TargetError with `suggestion`).
        path: more folders the code imports from (its own folder and its project's root, the
            nearest folder above it that holds a package it imports, are found).

    Returns:
        A `Report`; `report.ok` is False when any required gradient or the loss is wrong or
        missing, when fn raised, hung, crashed or exited, or when the check ran out of time.

        progress: called as progress(done, total) after each example.

    Raises:
        symbptt.errors.InvalidArgumentError: for bad arguments of this function itself.
        symbptt.errors.TargetError: a target string that names no file or no function in it.
        symbptt.errors.IsolationUnavailableError: this system cannot start a worker (use
            isolate=False).
        symbptt.errors.InternalError: the symbolic engine and the NumPy reference disagree (a
            symbptt bug).
    """
    declared = _declared(convention)
    if declared.model is not None:
        model = declared.model if model is None else _same_model(model, declared.model)
    if declared.form is not None:
        form = declared.form
    if declared.order is not None and order is None:
        order = declared.order
    calling, required, table, settled = validate_options(
        fn=fn,
        form=form,
        layout=layout,
        batch_first=batch_first,
        names=names,
        order=order,
        only=only,
        precision=precision,
        shapes=shapes,
        max_examples=max_examples,
        seed=seed,
        tolerances=tolerances,
        timeout=timeout,
        total_timeout=total_timeout,
        memory_mb=memory_mb,
        forbid_imports=forbid_imports,
        isolate=isolate,
        progress=progress,
        model=model,
        style=style,
        globals=globals,
        defs_only=defs_only,
        clip=clip,
        clip_norm=clip_norm,
        allow_broadcast_shapes=allow_broadcast_shapes,
        probe=probe,
        step=step,
        arrays=declared.arrays,
    )
    paths = _paths(path)
    limits = Limits.for_check(timeout, total_timeout, memory_mb)
    started = time.monotonic()
    runner = _runner(fn, isolate, limits, tuple(forbid_imports), settled.adapter, defs_only, paths)

    def checker_for(c: Calling, needed: tuple[str, ...] = required) -> _Checker:
        return _Checker(
            runner,
            c,
            table,
            precision=precision,
            required=needed,
            deadline=started + float(total_timeout),
            clipping=Clipping(clip, clip_norm, settled.per_row),
            fit=settled.fit,
            probe=probe,
        )

    label = fn if isinstance(fn, str) else runner.name
    try:  # (the verdict's convention is noted in report.toml by _fitted_check)
        if precision is not None:
            judged_at = {d: (table[precision].rtol, table[precision].floor) for d in table}
        else:
            judged_at = {d: (table[_as_judged(d)].rtol, table[_as_judged(d)].floor) for d in table}
        report = _fitted_check(
            judged_at,
            order,
            runner,
            label,
            calling,
            checker_for,
            declared,
            settled,
            only,
            step,
            shapes,
            max_examples,
            seed,
            progress,
            started + float(total_timeout),
        )
    finally:
        runner.close()
    report.output = runner.output()
    if isinstance(fn, str):
        report.target = fn
    if isinstance(runner, InProcess):
        report.notes.append("ran in this process without isolation or limits (isolate=False)")
    if report.out_of_time:
        message = (
            f"the check did not finish within {total_timeout:g} s (total_timeout, --total-timeout)"
        )
        if report.wrong:  # already known to be wrong: the verdict stands, time is a note
            report.notes.append(message)
        else:
            report.error = report.error or f"{message}; the function is not known to be right"
        report.ok = False
    return report


@dataclass(frozen=True)
class _Declaration:
    """What the caller declared of the code's convention, and how a different one found by
    the search is treated: "default" (nothing declared: a usage error with the command that
    fits), "flags" (declared in the call: the same), "file" (a grader's file: the verdict
    stands, the note says under which convention it would be right), "auto" (the found
    one is the verdict's)."""

    mode: str = "default"
    arrays: Convention | None = None
    model: ModelSpec | None = None
    form: str | None = None
    order: tuple | None = None
    source: str | None = None


def _declared(convention) -> _Declaration:
    if convention is None:
        return _Declaration()
    if isinstance(convention, Convention):
        return _Declaration("flags", convention)
    if isinstance(convention, str) and convention == "auto":
        return _Declaration("auto")
    if isinstance(convention, (str, Path)):
        from .conventionfile import load

        loaded = load(Path(convention))
        return _Declaration(
            "file", loaded.arrays, loaded.model, loaded.form, loaded.order, str(convention)
        )
    raise InvalidArgumentError(
        f"convention={convention!r} must be a Convention, a convention file's path or 'auto'"
    )


def _same_model(given: ModelSpec, declared: ModelSpec) -> ModelSpec:
    """The model of a convention file and the one given beside it must agree."""
    if given.describe() != declared.describe():
        from .report import describe_model

        mine = describe_model(declared.describe()) or "the vanilla RNN"
        theirs = describe_model(given.describe()) or "the vanilla RNN"
        raise InvalidArgumentError(
            f"the convention file declares {mine}, but the check was given {theirs}: drop one "
            "of them"
        )
    return declared


def _paths(path) -> tuple[str, ...]:
    if isinstance(path, (str, Path)):
        path = [path]
    out = []
    for folder in path:
        if not isinstance(folder, (str, Path)) or not Path(folder).is_dir():
            raise InvalidArgumentError(f"path={folder!r} is not a folder (--path DIR)")
        out.append(str(Path(folder).resolve()))
    return tuple(out)


def _legacy(calling: Calling) -> bool:
    """Whether the declared convention is one a plain function or a pair takes positionally
    (today's shapes); anything else is called through a plan found from the code."""
    conv = calling.arrays
    return (
        conv.weights == "fused"
        and conv.stack is None
        and not conv.split
        and conv.state is None
        and conv.sequence in ("TNF", "NTF")
    )


def _as_judged(dtype: str) -> str:
    return dtype if dtype in _UNDECLARED_OK else "float64"


def _same(a: Calling, b: Calling) -> bool:
    """Two callings that declare the same thing (model, form, arrays, order)."""
    return (
        a.model.describe() == b.model.describe()
        and a.form == b.form
        and a.arrays.settled(a.model) == b.arrays.settled(b.model)
        and tuple(a.order or ()) == tuple(b.order or ())
    )


def _fitted_check(
    judged_at,
    declared_order,
    runner,
    label,
    calling,
    checker_for,
    declared,
    settled,
    only,
    step,
    shapes,
    max_examples,
    seed,
    progress,
    deadline,
) -> Report:
    """The check as declared; when the code does not fit it, the search, and what the
    declaration says to do with what it finds."""
    from . import search as finder
    from .suggest import command, describe, toml_text

    load_error = _load_failure(runner, label)
    if load_error is not None:
        report = Report(ok=False, form=calling.form, layout=calling.layout, examples=0)
        report.model = calling.model.describe()
        report.error = load_error
        return report
    searchable = settled.adapter is None and isinstance(runner, Worker | InProcess)
    objects = getattr(runner, "objects", []) or []
    targets = 2 if settled.shape != "function" else 1
    labels = [o.get("name", "") for o in objects]
    files = _source_files(runner)
    kind = objects[0].get("kind") if objects else "function"
    named_method = any("." in name for _, name in getattr(runner, "sources", []) or [])
    plan_needed = searchable and (kind == "class" or named_method or not _legacy(calling))
    usage: TargetError | None = None
    report: Report | None = None
    if plan_needed and declared.mode != "auto":
        try:
            calling = finder.resolve(
                runner,
                labels,
                files,
                calling.model,
                calling.form,
                calling.arrays,
                order=tuple(declared_order) if declared_order else None,
                step=step,
                deadline=time.monotonic() + 30.0,
                seed=seed,
                targets=targets,
            )
        except finder.Unresolved as exc:
            usage = TargetError(f"{label}: {exc}")
            calling = None
    if calling is not None and declared.mode != "auto":
        try:
            report = _run(
                checker_for(calling, _needed(calling, settled.only)),
                label,
                shapes,
                max_examples,
                seed,
                progress,
            )
        except TargetError as exc:
            if exc.suggestion:  # set up differently: the fix is known already
                raise
            usage = exc
        if report is not None and report.ok:
            return report
        if report is not None and (report.out_of_time or report.inconsistent or report.overflow):
            return report
    if not searchable or time.monotonic() > deadline:
        if usage is not None:
            raise usage
        return report
    try:
        found = finder.search(
            runner,
            labels,
            files,
            _search_model(calling, settled),
            None if calling is None else calling.form if declared.mode == "file" else None,
            deadline=min(deadline, time.monotonic() + 60.0),
            seed=seed,
            targets=targets,
            tolerances=judged_at,
        )
    except (InternalError, KeyboardInterrupt):
        raise
    except Exception as exc:  # the search is help; a failure of it never hides the verdict
        if os.environ.get("SYMBPTT_DEBUG"):
            raise
        found = finder.Found(None, False, 0, [f"{type(exc).__name__}: {exc}"])
    best = found.best.calling if found.best is not None else None
    if found.fits and best is not None and calling is not None and _same(best, calling):
        found = replace(found, fits=False)  # as declared: the failure is not a convention's
    if found.fits and best is not None:
        argv = command(label, best)
        suggestion = {"argv": argv, "toml": toml_text(best), "convention": describe(best)}
        if declared.mode == "auto":
            report = _run(
                checker_for(best, _needed(best, settled.only)),
                label,
                shapes,
                max_examples,
                seed,
                progress,
            )
            report.notes.append(
                f"checked under the convention the search found ({describe(best)}); declare "
                f"it with: symbptt {_shell(argv[1:])}"
            )
            report.suggestion = suggestion
            return report
        if declared.mode == "file" and report is not None:
            report.notes.append(
                f"it would be right under another convention than {declared.source} declares: "
                f"{describe(best)} (symbptt {_shell(argv[1:])})"
            )
            report.suggestion = suggestion
            return report
        raise TargetError(
            f"{label} is right as {describe(best)}, and fails as declared: check it with: "
            f"symbptt {_shell(argv)}",
            suggestion,
        )
    closest = found.best
    if declared.mode == "file":  # a grader's convention: the verdict is its own
        if usage is not None:
            raise usage
        return report
    failed_to_run = usage is not None or report is None or bool(report.error)
    better = (
        closest is not None
        and closest.judged
        and not (calling is not None and _same(closest.calling, calling))
        and (failed_to_run or closest.right > _right(report))
    )
    if better:
        report = _run(
            checker_for(closest.calling, _needed(closest.calling, settled.only)),
            label,
            shapes,
            max_examples,
            seed,
            progress,
        )
        report.convention = describe(closest.calling)
        if report.ok:  # the search saw it wrong under this convention: a failure seen once
            report.ok = False
            report.inconsistent = True
            report.error = report.error or (
                "it failed as declared and under every convention tried, then was right: the "
                "function is inconsistent"
            )
        report.notes.append(
            f"no convention makes it right; judged under the closest one found "
            f"({closest.right} of {closest.judged} arrays right on the first problem): "
            f"{describe(closest.calling)}; declare it with: symbptt "
            f"{_shell(command(label, closest.calling)[1:])}"
        )
        return report
    if usage is not None:
        raise usage
    return report


def _source_files(runner) -> list[Path]:
    """The files the code was written in (read for facts, never run here)."""
    sources = getattr(runner, "sources", None)
    if sources:
        return [Path(p) for p, _ in sources]
    import inspect

    fn = getattr(runner, "fn", None)
    out = []
    for f in fn if isinstance(fn, tuple) else [fn]:
        try:
            where = inspect.getsourcefile(inspect.unwrap(f))
        except Exception:
            where = None
        if where and Path(where).is_file():
            out.append(Path(where))
    return out


def _shell(argv: list[str]) -> str:
    import shlex

    return " ".join(shlex.quote(a) for a in argv)


def _right(report: Report) -> int:
    return sum(1 for r in report.results if r.status == "OK")


def _needed(calling: Calling, only) -> tuple[str, ...]:
    """The values a calling's check requires: every gradient its plan returns (and the loss),
    or those declared."""
    if only is not None:
        return _required(calling, only)
    if calling.plan is None:
        return _required(calling, None)
    every = [p for p in calling.gradients if p in calling.plan.grads]
    return (*every, *(["loss"] if calling.form == "full" and calling.plan.loss else []))


def _search_model(calling: Calling | None, settled: Style) -> ModelSpec:
    return calling.model if calling is not None else settled.model


def _run(checker: _Checker, label: str, shapes, max_examples: int, seed: int, progress) -> Report:
    """Load the user's code, search, diagnose: the report (the caller adds output and notes)."""
    runner, convention, table = checker.runner, checker.conv, checker.tolerances
    form, precision = convention.form, checker.precision
    report = Report(ok=False, form=form, layout=convention.layout, examples=0)
    report.tolerance = {k: v.rtol for k, v in table.items()}
    report.precision = precision
    report.model = convention.model.describe()
    report.batch_first = convention.batch_first
    adapter = getattr(runner, "adapter", None) or {}
    report.style = "char-rnn" if adapter.get("kind") == "char-rnn" else "plain"
    if convention.shape != "function":
        report.style = "pair"
    # The worker boots while we import the search and the symbolic engine.
    import hypothesis  # noqa: F401

    from ..engine import compile  # noqa: F401

    load_error = _load_failure(runner, label)
    if load_error is not None:
        report.error = load_error
        return report
    search = _search(checker, shapes, max_examples, seed, progress)
    if search.died:  # restarting a worker that hung or crashed, to probe, only costs time
        checker.probe_prefixes = False
    elif convention.plan is None and (search.failure is not None or search.error is not None):
        failed = search.failure.problem if search.failure is not None else search.error_problem
        order = _order_fix(checker, search.failure) if search.failure is not None else None
        if order:
            suggestion = _suggestion(label, order[1])
            raise TargetError(f"{order[0]}: symbptt {_shell(suggestion['argv'])}", suggestion)
        if failed is not None:
            fix = _setup_fix(checker, failed)
            if fix:
                suggestion = _suggestion(label, fix[1])
                raise TargetError(f"{fix[0]}: symbptt {_shell(suggestion['argv'])}", suggestion)
    # Examples drawn (the calls hypothesis makes while shrinking a failure are not new ones).
    report.examples = min(search.count, max_examples)
    report.distinct_shapes = len(search.shapes)
    report.out_of_time = search.out_of_time
    at_failing = at_generic = None
    if search.failure is not None:
        at_failing = checker.results(search.failure)
        if not search.died:
            report.inconsistent = search.flaky or _answers_differently(checker, search.failure)
    if not search.died and not search.out_of_time:
        model = convention.model
        shape = _fitted(checker, _longest(model))
        generic = _problem(shape, model.random_point(shape, seed), form, seed, model)
        try:
            at_generic = checker.results(checker.evaluate(generic))
        except CallConventionMismatch as exc:
            raise TargetError(str(exc)) from None
        except UserFunctionError as exc:
            search.error = search.error or str(exc)
            search.error_dims = search.error_dims or GENERIC
        except _OutOfTime:
            report.out_of_time = True
        quiet = at_generic is not None and not any(r.status == "WRONG" for r in at_generic.values())
        if search.failure is None and search.error is None and quiet:
            large = _large_problem(checker, seed)
            try:
                ev = checker.evaluate(large)
            except CallConventionMismatch as exc:
                raise TargetError(str(exc)) from None
            except UserFunctionError as exc:
                search.error, search.error_dims = str(exc), large.dims
            except _OutOfTime:
                report.out_of_time = True
            else:
                if checker.failing(ev):
                    search.failure = ev
                    at_failing = checker.results(ev)
                    report.notes.append(
                        f"wrong on a long sequence with large gradients (T={large.dims.T}, the "
                        "output weights scaled by 30), right on the random examples"
                    )
    report.results_from(at_failing, at_generic)
    report.error = search.error
    if search.failure is not None:
        report.dims = search.failure.problem.dims.as_dict()
    elif search.error_dims is not None:
        report.dims = search.error_dims.as_dict()
    elif report.wrong:
        report.dims = GENERIC.as_dict()
    if report.dims is not None and form == "layer":
        report.dims.pop("C", None)  # the layer has no classes
    if report.inconsistent:
        report.notes.append(
            "the function is inconsistent: it gave different answers for the same inputs; "
            "a wrong answer seen once makes the verdict WRONG"
        )
    report.ok = (
        search.failure is None
        and search.error is None
        and not report.wrong
        and not report.out_of_time
    )
    for dtype in sorted(checker.low_precision):
        report.notes.append(
            f"your function returns {dtype} arrays; they were compared at {dtype} precision "
            f"(relative tolerance {table[dtype].rtol:g}), not float64"
        )
    if precision is not None:
        report.notes.append(
            f"every answer was judged at the declared {precision} precision "
            f"(relative tolerance {table[precision].rtol:g})"
        )
    changed, total = checker.clipped  # the ordinary and the large problems, not the probe
    if report.ok and checker.probe and not report.out_of_time:
        _probe(checker, report, seed)
    if checker.clipping.active and total:
        bound = (
            f"±{checker.clipping.value:g}"
            if checker.clipping.value is not None
            else f"a norm of {checker.clipping.norm:g}"
        )
        report.notes.append(
            f"the declared clipping to {bound} changed {changed} of {total} true gradient "
            f"entries over the examples tried"
            + ("; it never acted, so it was not tested" if changed == 0 else "")
        )
    unchecked = [r.name for r in report.results if r.status == "NOT CHECKED"]
    if report.style == "char-rnn" and convention.model.initial is not None:
        # lossFun returns the last hidden state, never dL/dhprev: nothing to check, no noise.
        initial = convention.model.initial.name
        report.results = [r for r in report.results if r.name != initial]
        unchecked = [n for n in unchecked if n != initial]
    if unchecked:
        report.notes.append(f"not checked (not returned, not required): {', '.join(unchecked)}")
    if runner.restarts:
        report.notes.append(f"the worker process was restarted {runner.restarts} time(s)")
    if report.style != "char-rnn":
        from .suggest import toml_text

        report.toml = toml_text(convention)
    return report


def _fitted(checker: _Checker, T: int) -> Dims:
    """The generic shape (every size > 1, D != H) at T steps, fitted to the code (C == D for a
    next-token model, T = 1 for a step pair)."""
    shape = checker.conv.model.complete(replace(GENERIC, T=T))
    return checker.fit(shape) if checker.fit is not None else shape


#: The extra problem every check ends with: longer than the random ones (truncation at depth
#: up to T - 2 shows), with gradients large enough that clipping at a few units acts.
LARGE_T, LARGE_SCALE = 8, 30.0


def _large_problem(checker: _Checker, seed: int) -> Problem:
    model, form = checker.conv.model, checker.conv.form
    K = model.options.truncate
    shape = _fitted(checker, max(LARGE_T, 0 if K is None else K + 2))
    arrays = model.random_point(shape, seed + 1, scale=LARGE_SCALE)
    problem = _problem(shape, arrays, form, seed + 1, model)
    if form == "layer":  # no output layer: the upstream gradient is what is large
        for item in model.inputs if model.from_file else ():
            if item.role == "upstream":
                problem.arrays[item.name] = problem.arrays[item.name] * LARGE_SCALE
        if "dh" in problem.arrays and not model.from_file:
            problem.arrays["dh"] = problem.arrays["dh"] * LARGE_SCALE
    return problem


def _order_fix(checker: _Checker, ev: Evaluation) -> tuple[str, Calling] | None:
    """When the returned tuple holds every true gradient, but in another order than the one
    declared, the sentence that names the order it came in."""
    conv, raw = checker.conv, ev.answer.raw_tuple
    if raw is None or conv.order is None:
        return None
    truth = ev.raw_truth or ev.truth
    found: list[str] = []
    for value in raw:
        try:
            arr = np.asarray(value, dtype=np.float64)
        except Exception:
            return None
        matches = []
        for name in conv.order:
            if name not in truth or arr.shape != np.shape(truth[name]):
                continue
            if _measure(arr, truth[name], checker.tolerance(ev.answer, name), ev.global_scale).ok:
                matches.append(name)
        if len(matches) != 1:
            return None
        found.append(matches[0])
    if sorted(found) != sorted(conv.order) or found == list(conv.order):
        return None
    return (
        f"{checker.runner.name} returns every gradient right, in the order {','.join(found)}, "
        f"not the one declared ({','.join(conv.order)}): check it with --order "
        f"{','.join(found)} (order=...)",
        replace(conv, order=tuple(found)),
    )


def _setup_fix(checker: _Checker, problem: Problem) -> tuple[str, Calling] | None:
    """When the failing call is right under another declaration (batch-first x, the other
    layout), the failure is in how the check was set up: the sentence that says so."""
    conv = checker.conv
    if (getattr(checker.runner, "adapter", None) or {}).get("kind") == "char-rnn":
        return None  # lossFun's arrays are one sequence of ids at a time: nothing to flip
    flips = []
    if any(i.shape[:1] == ("T",) for i in conv.model.inputs) or conv.form == "layer":
        flips.append(("batch_first", not conv.batch_first))
    if conv.model.options.inputs == "dense" or conv.form == "layer":
        flips.append(("layout", "row" if conv.layout == "column" else "column"))
    model = conv.model
    for option in model.choices:  # the LSTM's gate order, the GRU's reset: same shapes
        values = MODEL_OPTIONS[option]
        if option != "c0" and len(values) == 2:
            other = next(v for v in values if v != getattr(model.options, option))
            flips.append(("model", (option, other)))
    shape = _fitted(checker, _longest(model))
    fresh = [_problem(shape, model.random_point(shape, k), conv.form, k, model) for k in (1, 2)]
    # A function that fails only sometimes is not a set-up mistake: as declared it must fail
    # again on the failing problem and on two fresh ones.
    for again in (problem, *fresh):
        try:
            if not checker.failing(checker.evaluate(again)):
                return None
        except UserFunctionError:
            pass
        except _OutOfTime:
            return None
    for option, value in flips:
        problems = (problem, *fresh)
        if option == "model":
            changed = model.variant(**{value[0]: value[1]})
            declared = replace(conv, model=changed)
            problems = tuple(replace(p, model=changed) for p in problems)
        elif option == "batch_first":
            sequence = "NTF" if value else "TNF"
            declared = replace(conv, arrays=replace(conv.arrays, sequence=sequence))
        else:
            declared = replace(conv, arrays=replace(conv.arrays, layout=value))
        other = _Checker(
            checker.runner,
            declared,
            checker.tolerances,
            precision=checker.precision,
            required=checker.required,
            probe_prefixes=False,
            deadline=checker.deadline,
            clipping=checker.clipping,
        )
        try:  # and right under the other declaration, on all three
            right = all(not other.failing(other.evaluate(p)) for p in problems)
        except (UserFunctionError, _OutOfTime):
            continue
        if right:
            if option == "model":
                name, chosen = value
                flag = f"--{name.replace('_', '-')} {chosen}"
                return (
                    f"{checker.runner.name} is right for the {model.name} with {name}="
                    f"{chosen!r}, and fails as declared: check it with {name}={chosen!r} "
                    f"({flag})",
                    declared,
                )
            if option == "batch_first":
                flag = "--batch-first" if value else "no --batch-first"
                how = f"batch_first={value} ({flag})"
                what = "batch-first, (N, T, ...)" if value else "time-major, (T, N, ...)"
            else:
                how = f"layout={value!r} (--layout {value})"
                what = f"in the {value} layout"
            return (
                f"{checker.runner.name} is right when its arrays are {what}, and fails as "
                f"declared: check it with {how}",
                declared,
            )
    return None


def _suggestion(label: str, calling: Calling) -> dict:
    """The command (and the convention file) that declares `calling`."""
    from .suggest import command, describe, toml_text

    return {
        "argv": command(label, calling),
        "toml": toml_text(calling),
        "convention": describe(calling),
    }


def _probe(checker: _Checker, report: Report, seed: int) -> None:
    """Saturated inputs where the truth is finite: pre-activations in the thousands (tanh
    saturates), and logits in the thousands (softmax without its max shift overflows). NaN,
    inf or an exception there, from a function right on ordinary inputs, is `report.overflow`;
    a finite wrong answer there is WRONG like any other."""
    conv = checker.conv
    model, form = conv.model, conv.form
    shape = model.complete(_fitted(checker, min(_longest(model), 3)))
    cases = []
    arrays = model.random_point(shape, seed)
    if not model.from_file:
        cases.append(("pre-activations in the thousands", {**arrays, "W_x": arrays["W_x"] * 1e4}))
        if form == "full":
            cases.append(("logits of about 1000", model.random_point(shape, seed, scale=1000.0)))
    else:  # a model file: its per-step inputs large, and its logits, where it has some
        big = {i.name: arrays[i.name] * 1e4 for i in model.sequences}
        if big:
            cases.append(("per-step inputs in the ten thousands", {**arrays, **big}))
        if form == "full" and "cross_entropy" in model.definition.text:
            cases.append(("logits of about 1000", model.random_point(shape, seed, scale=1000.0)))
        cases = [
            (label, values) for label, values in cases if _finite_truth(form, shape, values, model)
        ]
    where = " ".join(f"{k}={v}" for k, v in shape.as_dict().items() if k != "C" or form == "full")
    for label, values in cases:
        problem = _problem(shape, values, form, seed, model)
        try:
            ev = checker.evaluate(problem)
        except CallConventionMismatch as exc:
            raise TargetError(str(exc)) from None
        except (UserFunctionError, _OutOfTime) as exc:
            if isinstance(exc, UserFunctionError):
                report.overflow = f"right on ordinary inputs, but with {label} ({where}): {exc}"
                report.ok = False
            return
        # Only finiteness is judged there: saturated gradients are tiny, and rounding (or an
        # epsilon inside a log) moves them without making the code wrong where it is used.
        bad = {n: p for n, p in ev.answer.problems.items() if "non-finite" in p}
        if bad:
            first = next(iter(bad.values()))
            report.overflow = (
                f"right on ordinary inputs, but with {label} ({where}), where every true "
                f"gradient is finite, {first}"
            )
            report.ok = False
            return


def _finite_truth(form: str, dims: Dims, arrays, model: ModelSpec) -> bool:
    """Whether every true gradient is finite there (a model file's exp may overflow)."""
    try:
        with np.errstate(all="ignore"):
            loss, grads = _truth(form, Problem(dims, arrays, model))
    except Exception:
        return False
    values = [np.asarray(v) for v in grads.values()] + (
        [np.asarray(loss)] if loss is not None else []
    )
    return all(np.all(np.isfinite(v)) for v in values)


def _answers_differently(checker: _Checker, failure: Evaluation) -> bool:
    """Call again on the failing inputs: a different answer means the function is inconsistent."""
    try:
        again = checker.evaluate(failure.problem)
    except (UserFunctionError, _OutOfTime):
        return False
    return not checker.same_answer(failure, again)


def _search(checker: _Checker, shapes, max_examples: int, seed: int, progress) -> _Search:
    """Let hypothesis look for a failing problem; keep every failure it sees."""
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis import strategies as st
    from hypothesis.errors import Flaky

    from ..strategies import rnn_problems

    form = checker.conv.form
    model = checker.conv.model
    if shapes is None and (model.options.truncate is not None or checker.fit is not None):
        from ..strategies import rnn_shapes

        shapes = rnn_shapes(max_T=_longest(model))
    if checker.fit is not None:
        shapes = shapes.map(checker.fit)
    strategy = st.tuples(rnn_problems(shapes=shapes, model=model), st.integers(0, 2**32 - 1))
    search = _Search()

    def attempt(drawn) -> None:
        (dims, arrays), dh_seed = drawn
        problem = _problem(dims, arrays, form, dh_seed, model)
        search.count += 1
        search.shapes.add(dims)
        if progress:
            progress(min(search.count, max_examples), max_examples)
        try:
            ev = checker.evaluate(problem)
        except _OutOfTime:
            search.out_of_time = True
            raise _Abort from None
        except WorkerDiedError as exc:
            search.error, search.error_dims, search.died = str(exc), dims, True
            raise _Abort from None
        except CallConventionMismatch as exc:
            raise _Usage(str(exc)) from None
        except UserFunctionError as exc:
            search.error, search.error_dims = str(exc), dims
            search.error_problem = problem
            raise _Mismatch from None
        if checker.failing(ev):
            search.failure = ev
            raise _Mismatch

    run = settings(
        max_examples=max_examples,
        database=None,  # never write a .hypothesis folder into the user's project
        deadline=None,
        derandomize=False,
        phases=(Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
        verbosity=Verbosity.quiet,
    )(given(strategy)(attempt))
    try:
        hypothesis_seed(seed)(run)()
    except (_Mismatch, _Abort):
        pass
    except _Usage as usage:
        raise TargetError(str(usage)) from None
    except InternalError:
        raise
    except Exception as exc:  # hypothesis' own verdicts (e.g. flakiness) never hide a failure
        if isinstance(exc, Flaky) or "Flaky" in type(exc).__name__:
            search.flaky = True
        elif search.failure is None and search.error is None:
            raise
    return search


def compare_gradients(
    arrays: Mapping[str, np.ndarray],
    loss: float | None,
    grads: Mapping[str, np.ndarray],
    *,
    only: Sequence[str] | None = None,
    precision: str | None = None,
    tolerances: Mapping[str, Tolerance] | None = None,
    model: ModelSpec | None = None,
) -> Report:
    """Compare one already-computed loss and gradient dict (canonical names, row layout) of a
    model variant (default the vanilla RNN).

    Every gradient and the loss are required unless `only` names the ones given.
    """
    model = model or VANILLA
    table = _table(tolerances, precision)
    convention = Calling(model=model)
    required = _required(convention, only)
    if not isinstance(arrays, Mapping):
        raise InvalidArgumentError("arrays must be a dict of the model's input arrays")
    dims = model.dims_of(arrays)
    arrays = model.validate(dims, arrays)

    def given(*args):  # the answer under check, as if a function had returned it
        return loss, dict(grads) if isinstance(grads, Mapping) else grads

    given.__qualname__ = given.__name__ = "the given gradients"
    checker = _Checker(
        InProcess(given, {"kind": "plan"}),
        convention,
        table,
        precision=precision,
        required=required,
        probe_prefixes=False,
    )
    try:
        results = checker.results(checker.evaluate(Problem(dims, arrays, model)))
    except UserFunctionError as exc:
        report = Report(ok=False, form="full", layout="row", examples=1, error=str(exc))
        report.dims = dims.as_dict()
        return report
    report = Report(ok=True, form="full", layout="row", examples=1, results=list(results.values()))
    report.model = model.describe()
    report.ok = not report.wrong
    if not report.ok:
        report.dims = dims.as_dict()
    return report
