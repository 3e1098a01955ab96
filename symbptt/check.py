"""Check hand-written BPTT code: random shapes, exact gradients, a diagnosis of what is wrong.

Hypothesis draws shapes and values (including the shapes where bugs hide: H=1, N=1, T<=2,
D==H) and, on a failure, shrinks to the smallest failing shape. The truth is the compiled
symbolic gradient for those dimensions, itself cross-checked against the NumPy BPTT on every
example (the layer form uses the NumPy layer VJP). The report then says, per gradient, how far
off it is, where, from which sequence length on, and what the wrong answer equals when that is
recognisable (the truth transposed, scaled, negated, without the recurrent term, truncated).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from . import reference
from .compile import gradient_function
from .errors import SymbpttError, UserFunctionError
from .mistakes import alternatives
from .model import Dims, random_point
from .report import ParameterResult, Report
from .strategies import rnn_problems, rnn_shapes
from .usercode import GRADIENTS, Convention, UserAnswer

__all__ = ["check_gradients", "compare_gradients", "Tolerance", "TOLERANCES"]


@dataclass(frozen=True)
class Tolerance:
    """A gradient is right when max|got - truth| <= rtol * scale.

    scale = max(max|truth of this gradient|, floor * max|truth of all gradients|): the floor
    keeps a nearly-zero gradient from being judged on rounding noise alone.
    """

    rtol: float
    floor: float


#: Keyed by dtype: each returned array (and the loss) is judged at the row of its own dtype.
TOLERANCES: dict[str, Tolerance] = {
    "float64": Tolerance(rtol=1e-6, floor=1e-6),
    "float32": Tolerance(rtol=2e-3, floor=5e-2),
    "float16": Tolerance(rtol=3e-2, floor=2e-1),
}
#: A fixed generic shape (D != H, N > 1, H > 1, T > 2) where every known bug shows.
GENERIC = Dims(N=3, D=2, H=3, C=4, T=4)


@dataclass(frozen=True)
class Problem:
    """One set of inputs: dims and canonical arrays (plus dh for the layer form)."""

    dims: Dims
    arrays: dict[str, np.ndarray]

    def prefix(self, t: int) -> Problem:
        """The same problem cut to its first t time steps."""
        arrays = {k: (v[:t] if k in ("x", "y", "dh") else v) for k, v in self.arrays.items()}
        return Problem(replace(self.dims, T=t), arrays)


def _problem(dims: Dims, arrays: dict[str, np.ndarray], form: str, dh_seed: int) -> Problem:
    if form == "layer":
        rng = np.random.default_rng(dh_seed)
        arrays = {**arrays, "dh": rng.standard_normal((dims.T, dims.N, dims.H))}
    return Problem(dims, arrays)


def _truth(form: str, problem: Problem) -> tuple[float | None, dict[str, np.ndarray]]:
    a = problem.arrays
    if form == "layer":
        return None, reference.layer_vjp(a["x"], a["h0"], a["W_x"], a["W_h"], a["b"], a["dh"])
    symbolic = gradient_function(problem.dims).call_unchecked(a)
    loss, grads = reference.forward_backward_dict({k: a[k] for k in a if k != "dh"})
    for name, value in grads.items():  # two independent derivations must agree
        scale = max(1.0, float(np.abs(value).max(initial=0.0)))
        if np.abs(symbolic[name] - value).max(initial=0.0) > 1e-8 * scale:
            raise SymbpttError(
                f"internal error: symbolic and NumPy BPTT disagree on dL/d{name} for "
                f"{problem.dims}; please report this"
            )
    return float(symbolic["loss"]), {k: symbolic[k] for k in grads}


def _dtype(answer: UserAnswer, name: str) -> str:
    """The tolerance row for one returned array: its own dtype (float64 for anything wider)."""
    dtype = answer.dtypes.get(name, "float64")
    return dtype if dtype in ("float16", "float32") else "float64"


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


def _likely_cause(name, got, truth, problem: Problem, form: str, tol, global_scale):
    """The first known mistake whose result the wrong answer equals, with its detail."""
    for alt in alternatives(name, truth, problem.dims, problem.arrays, form):
        if _matches(got, alt.value, truth, tol, global_scale):
            return alt.cause, alt.detail
    denom = float(np.sum(truth * truth))
    if denom > 0 and np.size(truth) >= 3:  # any small vector is "a multiple" of another
        alpha = float(np.sum(got * truth)) / denom
        if abs(alpha - 1) > 1e-3 and _matches(got, alpha * truth, truth, tol, global_scale):
            return "scaled", f"factor {alpha:.6g}"
    return None, None


class _Checker:
    """One user function under one convention and tolerance table."""

    def __init__(
        self,
        fn: Callable,
        convention: Convention,
        tolerances: Mapping[str, Tolerance],
        probe_prefixes: bool = True,
    ):
        self.fn, self.conv, self.tolerances = fn, convention, tolerances
        self.probe_prefixes = probe_prefixes
        self.low_precision: set[str] = set()  # dtypes below float64 the user computed in

    def evaluate(self, problem: Problem) -> tuple:
        """Call the user once; measure every returned gradient (and the loss) against the truth.

        Returns (answer, measurements, global scale, true loss, true gradients).
        """
        answer = self.conv.call(self.fn, problem.arrays)
        loss, truth = _truth(self.conv.form, problem)
        self.low_precision.update(_dtype(answer, n) for n in answer.dtypes)
        self.low_precision.discard("float64")
        global_scale = max(float(np.abs(v).max(initial=0.0)) for v in truth.values())
        measured = {
            n: _measure(g, truth[n], self.tolerance(answer, n), global_scale)
            for n, g in answer.grads.items()
        }
        if answer.loss is not None:
            measured["loss"] = _measure(
                answer.loss, loss, self.tolerance(answer, "loss"), abs(loss)
            )
        return answer, measured, global_scale, loss, truth

    def tolerance(self, answer: UserAnswer, name: str) -> Tolerance:
        return self.tolerances[_dtype(answer, name)]

    def passes(self, problem: Problem) -> bool:
        answer, measured, *_ = self.evaluate(problem)
        return not answer.problems and all(m.ok for m in measured.values())

    def diagnose(self, problem: Problem) -> dict[str, ParameterResult]:
        answer, measured, global_scale, loss, truth = self.evaluate(problem)
        d = problem.dims
        shape = f"N={d.N} D={d.D} H={d.H} C={d.C} T={d.T}"
        names = [*GRADIENTS[self.conv.form], *(["loss"] if self.conv.form == "full" else [])]
        results = {}
        for name in names:
            if name in answer.problems:
                results[name] = ParameterResult(
                    name, "WRONG", message=answer.problems[name], shape=shape
                )
                results[name].likely_cause = answer.causes.get(name)
                continue
            if name not in measured:
                results[name] = ParameterResult(name, "NOT CHECKED", message="not returned")
                continue
            max_abs, rel, worst, ok = measured[name]
            if name != "loss":
                worst = self.conv.user_index(name, worst)
            r = ParameterResult(name, "OK" if ok else "WRONG", max_abs, rel, worst or None)
            r.shape = shape
            tol = self.tolerance(answer, name)
            if not ok:
                got = answer.loss if name == "loss" else answer.grads[name]
                want = loss if name == "loss" else truth[name]
                r.likely_cause, r.cause_detail = _likely_cause(
                    name,
                    np.asarray(got),
                    np.asarray(want),
                    problem,
                    self.conv.form,
                    tol,
                    abs(loss) if name == "loss" else global_scale,
                )
                if self.probe_prefixes:
                    r.first_wrong_step = self._first_wrong_step(name, problem)
                if r.likely_cause is None and rel < 1e-3:
                    r.message = (
                        f"a small error ({rel:.1e}): if your code computes in lower precision "
                        "than it returns, raise the tolerance (tolerances=..., --tolerance)"
                    )
            results[name] = r
        return results

    def _first_wrong_step(self, name: str, problem: Problem) -> int | None:
        for t in range(1, problem.dims.T):
            try:
                answer, measured, *_ = self.evaluate(problem.prefix(t))
            except UserFunctionError:
                return None
            if name in answer.problems or (name in measured and not measured[name].ok):
                return t
        return problem.dims.T


class _Mismatch(Exception):
    pass


def check_gradients(
    fn: Callable,
    *,
    form: str = "full",
    layout: str = "row",
    batch_first: bool = False,
    names: Mapping[str, str] | None = None,
    order: Sequence[str] | None = None,
    shapes: st.SearchStrategy[Dims] | None = None,
    max_examples: int = 100,
    seed: int = 0,
    tolerances: Mapping[str, Tolerance] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Report:
    """Check the gradients fn returns on random shapes and values; say what is wrong and where.

    Args:
        fn: `fn(x, y, h0, W_x, W_h, b, V, c) -> (loss, grads)` for `form="full"`, or
            `fn(x, h0, W_x, W_h, b, dh) -> grads` for `form="layer"` (dh: upstream gradient on
            every h_t). grads is a dict keyed by name (a subset is fine) or a tuple in `order`.
        layout: "row" (x W, the model's) or "column" (W x: weights transposed, biases (H, 1)).
        batch_first: x (and y, dh) are (N, T, ...) instead of (T, N, ...).
        names: canonical name -> the user's name, e.g. {"W_h": "Whh"}; the function is then
            called with keyword arguments under those names.
        shapes: a strategy of `Dims` (default `rnn_shapes()`: N, D, H 1..3, C 2..4, T 1..4).
        max_examples, seed: how many random problems hypothesis tries, reproducibly.
        tolerances: overrides of `TOLERANCES`, keyed by dtype.

    Returns:
        A `Report`; `report.ok` is False when any gradient or the loss is wrong, or when fn
        raised (`report.error` then holds its own traceback line and the input shapes).

    Raises:
        ValueError: for bad arguments of this function itself.
    """
    convention = Convention(form, layout, batch_first, dict(names or {}), order)
    if not isinstance(max_examples, int) or max_examples < 1:
        raise ValueError(f"max_examples={max_examples!r} must be a positive integer")
    table = {**TOLERANCES, **(tolerances or {})}
    checker = _Checker(fn, convention, table)
    strategy = st.tuples(
        rnn_problems(shapes=shapes if shapes is not None else rnn_shapes()),
        st.integers(0, 2**32 - 1),
    )
    state: dict = {"count": 0, "failing": None, "error": None, "shapes": set()}

    def attempt(drawn) -> None:
        (dims, arrays), dh_seed = drawn
        problem = _problem(dims, arrays, form, dh_seed)
        state["count"] += 1
        state["shapes"].add(dims)
        if progress:
            progress(min(state["count"], max_examples), max_examples)
        try:
            ok = checker.passes(problem)
        except UserFunctionError as exc:
            state["failing"], state["error"] = problem, str(exc)
            raise _Mismatch from None
        if not ok:
            state["failing"], state["error"] = problem, None
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
    except _Mismatch:
        pass
    except Exception:  # hypothesis' own errors (e.g. flakiness): keep the last failure
        if state["failing"] is None:
            raise

    report = Report(ok=True, form=form, layout=layout, examples=state["count"])
    report.distinct_shapes = len(state["shapes"])
    report.tolerance = {k: v.rtol for k, v in table.items()}
    failing: Problem | None = state["failing"]
    if state["error"] is not None:
        report.ok, report.error, report.dims = False, state["error"], failing.dims.as_dict()
        return report
    generic = _problem(GENERIC, random_point(GENERIC, seed), form, seed)
    at_failing = checker.diagnose(failing) if failing is not None else None
    try:
        at_generic = checker.diagnose(generic)
    except UserFunctionError as exc:
        report.error, at_generic = str(exc), None
    report.results_from(at_failing, at_generic)
    if failing is not None:
        report.dims = failing.dims.as_dict()
    elif report.error or report.wrong:
        report.dims = GENERIC.as_dict()
    report.ok = not report.wrong and report.error is None
    for dtype in sorted(checker.low_precision):
        report.notes.append(
            f"your function returns {dtype} arrays; they were compared at {dtype} precision "
            f"(relative tolerance {table[dtype].rtol:g}), not float64"
        )
    unchecked = [r.name for r in report.results if r.status == "NOT CHECKED"]
    if unchecked:
        report.notes.append(f"not checked (not returned): {', '.join(unchecked)}")
    return report


def compare_gradients(
    arrays: Mapping[str, np.ndarray],
    loss: float | None,
    grads: Mapping[str, np.ndarray],
    *,
    tolerances: Mapping[str, Tolerance] | None = None,
) -> Report:
    """Compare one already-computed loss and gradient dict (canonical names, row layout)."""
    arrays = dict(arrays)
    dims = Dims.from_arrays(arrays)
    checker = _Checker(
        lambda *a: (loss, dict(grads)),
        Convention(),
        {**TOLERANCES, **(tolerances or {})},
        probe_prefixes=False,
    )
    problem = Problem(dims, arrays)
    results = checker.diagnose(problem)
    report = Report(ok=True, form="full", layout="row", examples=1, results=list(results.values()))
    report.ok = not report.wrong
    if not report.ok:
        report.dims = dims.as_dict()
    return report
