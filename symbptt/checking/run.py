"""One check under one calling: hypothesis draws problems, every failure is kept, the report is
diagnosed; saturated inputs after a right verdict."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import (
    InternalError,
    TargetError,
    UserFunctionError,
    WorkerDiedError,
)
from ..models.dims import Dims
from ..models.spec import MODEL_OPTIONS, ModelSpec
from .diagnosis import _likely_cause
from .isolation import Died, InProcess, Limits, Raised, Worker
from .judging import _UNDECLARED_OK, TOLERANCES, Measurement, Tolerance, _matches, _measure
from .problems import GENERIC, Clipping, Problem, _clipped_truth, _longest, _problem, _truth
from .report import ParameterResult, Report
from .usercode import CallConventionMismatch, Calling, Runner, UserAnswer


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
        clipping: Clipping | None = None,
        fit: Callable[[Dims], Dims] | None = None,
        probe: bool = False,
        strict: bool = False,
    ):
        self.runner, self.conv, self.tolerances = runner, convention, tolerances
        #: A grader's declared convention: a known fix is a note, never a usage error.
        self.strict = strict
        self.precision, self.required = precision, tuple(required)
        self.probe_prefixes, self.deadline = probe_prefixes, deadline
        self.clipping, self.fit, self.probe = clipping or Clipping(), fit, probe
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


def _run(checker: _Checker, label: str, shapes, max_examples: int, seed: int, progress) -> Report:
    """Load the user's code, search, diagnose: the report (the caller adds output and notes)."""
    runner, convention, table = checker.runner, checker.conv, checker.tolerances
    form, precision = convention.form, checker.precision
    report = Report(ok=False, form=form, layout=convention.layout, examples=0)
    report.tolerance = {k: v.rtol for k, v in table.items()}
    report.precision = precision
    report.model = convention.model.describe()
    report.batch_first = convention.batch_first
    report.data_axes = convention.arrays.sequence
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
        fix = order or (_setup_fix(checker, failed) if failed is not None else None)
        if fix:
            suggestion = _suggestion(label, fix[1])
            message = f"{fix[0]}: symbptt {_shell(suggestion['argv'])}"
            if not checker.strict:
                raise TargetError(message, suggestion)
            # a grader's declared convention: the verdict is its own; the fix is a note
            report.notes.append(f"judged as declared; {message}")
            report.suggestion = suggestion
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
        ev = _evaluate_more(checker, search, report, generic, GENERIC)
        if ev is not None:
            at_generic = checker.results(ev)
        quiet = at_generic is not None and not any(r.status == "WRONG" for r in at_generic.values())
        if search.failure is None and search.error is None and quiet:
            large = _large_problem(checker, seed)
            ev = _evaluate_more(checker, search, report, large)
            if ev is not None and checker.failing(ev):
                search.failure = ev
                at_failing = checker.results(ev)
                report.notes.append(
                    f"wrong on a long sequence with large gradients (T={large.dims.T}, the "
                    "output weights scaled by 30), right on the random examples"
                )
        if search.failure is None and search.error is None and quiet:
            at_failing = _try_larger(checker, search, report, seed) or at_failing
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


#: The larger problems every check also draws after the small random ones: sizes (N, D, H, C
#: and a model file's own) from LARGER_SIZES, T up to LARGER_T, random per run (from the seed);
#: the first of them has every size at least LARGER_SIZES[1] - 1 and T = LARGER_T.
LARGER_COUNT, LARGER_SIZES, LARGER_T = 3, (4, 9), 8


def _larger_problems(checker: _Checker, seed: int) -> list[Problem]:
    """A few problems larger than any the search draws (code wrong only when N, D or H > 3),
    with the NumPy reference as their truth (see `Problem.reference`)."""
    model, form = checker.conv.model, checker.conv.form
    rng = np.random.default_rng([seed, 20])
    low, high = LARGER_SIZES
    K = model.options.truncate
    out = []
    for k in range(LARGER_COUNT):
        lo = high - 1 if k == 0 else low
        size = {n: int(rng.integers(lo, high + 1)) for n in ("N", "D", "H", "C")}
        T = LARGER_T if k == 0 else int(rng.integers(2, LARGER_T + 1))
        if K is not None:
            T = max(T, K + 2)
        dims = Dims(**size, T=T)
        more = {n: int(rng.integers(lo, high + 1)) for n in model.size_names if n not in dims.sizes}
        if more:
            dims = replace(dims, more={**dict(dims.more), **more})
        dims = model.complete(dims)
        if checker.fit is not None:
            dims = checker.fit(dims)
        point = int(rng.integers(0, 2**32 - 1))
        arrays = model.random_point(dims, point)
        out.append(_problem(dims, arrays, form, point, model, reference=True))
    return out


def _evaluate_more(
    checker: _Checker, search: _Search, report: Report, problem: Problem, dims: Dims | None = None
) -> Evaluation | None:
    """One more problem after the search (the generic shape, the long one, the larger ones):
    its evaluation, or None when the code raised (the first error is kept, at dims or the
    problem's) or the check ran out of time."""
    try:
        return checker.evaluate(problem)
    except CallConventionMismatch as exc:
        raise TargetError(str(exc)) from None
    except UserFunctionError as exc:
        search.error = search.error or str(exc)
        search.error_dims = search.error_dims or dims or problem.dims
    except _OutOfTime:
        report.out_of_time = True
    return None


def _try_larger(
    checker: _Checker, search: _Search, report: Report, seed: int
) -> dict[str, ParameterResult] | None:
    """Call the code on the larger problems; the verdict at the first it fails on, if any."""
    for problem in _larger_problems(checker, seed):
        ev = _evaluate_more(checker, search, report, problem)
        if ev is None:
            return None
        if checker.failing(ev):
            search.failure = ev
            d = problem.dims
            report.notes.append(
                f"wrong on a larger problem (N={d.N} D={d.D} H={d.H} T={d.T}), right on the "
                "small random ones"
            )
            return checker.results(ev)
    return None


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


#: How close an answer on saturated inputs must be to the truth: relative to the array's own
#: scale, with an absolute floor of PROBE_FLOOR times the largest true gradient (there the
#: tiny gradients of saturated units are rounding noise: 1 - tanh(a)^2 of a = 18 is 1e-15 or
#: 0 depending on how it is written), and never tighter than the precision's own tolerance.
#: An answer judged at float32 or below gets PROBE_RTOL_LOW: float32 cannot resolve
#: 1 - tanh(a)^2 of barely saturated units, and a correct float32 dx is up to 1.3e-3 off
#: there (the largest over 300 problems); garbage made finite is off by O(1).
PROBE_RTOL, PROBE_FLOOR, PROBE_RTOL_LOW = 1e-4, 1e-4, 3e-2


def _probe_tolerance(tol: Tolerance) -> Tolerance:
    low = tol.rtol >= TOLERANCES["float32"].rtol
    rtol = max(tol.rtol, PROBE_RTOL_LOW if low else PROBE_RTOL)
    return Tolerance(rtol=rtol, floor=max(tol.floor, PROBE_FLOOR))


def _probe(checker: _Checker, report: Report, seed: int) -> None:
    """Saturated inputs where the truth is finite: pre-activations in the thousands (tanh
    saturates), and logits in the thousands (softmax without its max shift overflows). NaN,
    inf or an exception there, from a function right on ordinary inputs, is `report.overflow`;
    a finite answer that differs from the truth there (garbage made finite, np.nan_to_num) is
    WRONG like any other, at `_probe_tolerance`."""
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
        bad = {n: p for n, p in ev.answer.problems.items() if "non-finite" in p}
        if bad:
            first = next(iter(bad.values()))
            report.overflow = (
                f"right on ordinary inputs, but with {label} ({where}), where every true "
                f"gradient is finite, {first}"
            )
            report.ok = False
            return
        # Finite: the values must be the truth's, at the probe's tolerance.
        judged = _probe_judged(checker, ev)
        if checker.failing(judged):
            results = checker.results(judged)
            report.results = list(results.values())
            report.dims = shape.as_dict()
            if form == "layer":
                report.dims.pop("C", None)
            wrong = [r.label for r in report.results if r.status == "WRONG"]
            report.notes.append(
                f"wrong with {label} ({where}), where every true gradient is finite, and "
                f"right on ordinary inputs: {', '.join(wrong)} differ from the truth there "
                f"(relative tolerance {PROBE_RTOL:g} there, {PROBE_RTOL_LOW:g} in float32); "
                "a stable implementation (softmax "
                "with its max subtracted, log-sum-exp) is exact there"
            )
            report.ok = False
            report._probe_wrong = True  # the verdict is the probe's (not serialized)
            return


#: Below this many times the upstream gradient's size (max |dh|, or 1: the loss's gradient on a
#: logit is at most 1), a gradient on saturated inputs is rounding noise: where every unit
#: saturates, every true gradient can be 1e-40 (1 - tanh(c)^2 of c = 46, exact in the truth)
#: while float64 code written the usual way rounds it to 0. Garbage made finite is off by O(1).
PROBE_NOISE = 1e-10


def _upstream_size(problem: Problem) -> float:
    """The size of the gradient that flows in from outside: max |dh| (a layer's upstream
    inputs), or 1 for a loss."""
    names = {"dh"} | {i.name for i in problem.model.inputs if i.role == "upstream"}
    sizes = [float(np.abs(v).max(initial=0.0)) for k, v in problem.arrays.items() if k in names]
    return max(sizes, default=1.0) or 1.0


def _probe_judged(checker: _Checker, ev: Evaluation) -> Evaluation:
    """The evaluation re-measured at the probe's tolerance."""
    measured = {}
    # the floor: PROBE_FLOOR times the largest true gradient, and never below rounding noise
    scale = max(ev.global_scale, PROBE_NOISE * _upstream_size(ev.problem) / PROBE_FLOOR)
    for name in ev.measured:
        tol = _probe_tolerance(checker.tolerance(ev.answer, name))
        if name == "loss":  # an epsilon inside a log moves the loss there, not the gradients
            measured[name] = ev.measured[name]._replace(ok=True)
        else:
            measured[name] = _measure(ev.answer.grads[name], ev.truth[name], tol, scale)
    return replace(ev, measured=measured)


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


def _shell(argv: list[str]) -> str:
    import shlex

    return " ".join(shlex.quote(a) for a in argv)
