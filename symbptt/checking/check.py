"""Check hand-written BPTT code: random shapes, exact gradients, a diagnosis of what is wrong.

Hypothesis draws shapes and values (including the shapes where bugs hide: H=1, N=1, T<=2,
D==H) and, on a failure, shrinks to the smallest failing shape. The truth is the compiled
symbolic gradient for those dimensions, itself cross-checked against the NumPy BPTT on every
example (the layer form uses the NumPy layer VJP). The report then says, per gradient, how far
off it is, where, from which sequence length on, and what the wrong answer equals when that is
recognisable (the truth transposed, scaled, negated, without the recurrent term, truncated).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InternalError, InvalidArgumentError, UserFunctionError
from ..models import VANILLA
from ..models.dims import Dims
from ..models.spec import ModelSpec
from .convention import Convention
from .isolation import InProcess, Limits
from .report import Report
from .usercode import PRECISIONS, Calling

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

from .fitting import _as_judged, _declared, _fitted_check, _paths, _same_model
from .judging import TOLERANCES, Tolerance
from .problems import Clipping, Problem
from .run import _Checker, _runner
from .settings import Deviations, check_sandbox
from .settings import Limits as CheckLimits
from .validation import _required, validate_options

__all__ = [
    "check_gradients",
    "compare_gradients",
    "validate_options",
    "Tolerance",
    "TOLERANCES",
    "PRECISIONS",
    "InternalError",
]


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
    seed: int | None = None,
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
    deviations: Deviations | None = None,
    limits: CheckLimits | None = None,
    sandbox: str = "auto",
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
        shapes: a strategy of `Dims` (default `rnn_shapes()`: N, D, H 1..3, C 2..4, T 1..4);
            the larger problems are drawn whatever it is.
        max_examples: how many random problems hypothesis tries (and a few larger ones
            after them: N, D, H, C up to 9, T up to 8).
        seed: the seed of every problem the check draws; by default one drawn per check
            (from the operating system's randomness, or the environment variable
            SYMBPTT_SEED when it is set), so answers cannot be tabulated in advance.
            `report.seed` is the one used, and passing it again replays the check exactly.
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
        deviations: what the code declares it does differently, as one value
            (`Deviations(only=..., precision=..., clip=..., clip_norm=..., tolerances=...,
            allow_broadcast_shapes=..., probe=...)`), instead of those keywords.
        limits: what the code may use, as one value (`Limits(timeout=..., total_timeout=...,
            memory_mb=..., forbid_imports=..., sandbox=...)`), instead of those keywords.
        sandbox: "auto" (a target's worker runs under bubblewrap, in a cgroup when one is
            writable, when that works here; otherwise with resource limits only, and the
            report says so), "required" (IsolationUnavailableError when it does not work; the
            grader's mode, in which the code may not import symbptt either: its reference
            would hand it the answer) or "off". `report.isolation` says which isolation the
            check had.

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
    if deviations is not None:
        declared_fields = _unpacked(deviations, Deviations, "deviations", locals())
        only, precision, clip, clip_norm, tolerances, allow_broadcast_shapes, probe = (
            declared_fields
        )
    if limits is not None:
        timeout, total_timeout, memory_mb, forbid_imports, sandbox = _unpacked(
            limits, CheckLimits, "limits", locals()
        )
    if seed is None:
        seed = draw_seed()
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
    check_sandbox(sandbox)
    if sandbox == "required" and "symbptt" not in forbid_imports:  # a grader's check
        forbid_imports = (*forbid_imports, "symbptt")
    limits = Limits.for_check(timeout, total_timeout, memory_mb, sandbox)
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
            strict=declared.mode == "file",
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
    report.seed = seed
    if isinstance(fn, str):
        report.target = fn
    if isinstance(runner, InProcess):
        report.notes.append("ran in this process without isolation or limits (isolate=False)")
        report.isolation = "in-process"
    else:
        report.isolation = runner.isolation
        if runner.fallback:
            report.notes.append(runner.fallback)
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


#: Read instead of the operating system's randomness when set: a test suite's fixed seed.
SEED_VARIABLE = "SYMBPTT_SEED"


def draw_seed() -> int:
    """A seed for one check: random per call (os.urandom through `secrets`), unless the
    environment variable SYMBPTT_SEED holds one (reproducible test suites)."""
    import os
    import secrets

    fixed = os.environ.get(SEED_VARIABLE, "").strip()
    if fixed:
        try:
            value = int(fixed)
        except ValueError:
            value = -1
        if value < 0:
            raise InvalidArgumentError(
                f"{SEED_VARIABLE}={fixed!r} must be a whole number at least 0 (or unset)"
            )
        return value
    return secrets.randbelow(2**32)


def _unpacked(value, kind: type, label: str, given: Mapping) -> tuple:
    """The fields of a declared value, refusing a keyword that says the same beside it."""
    if not isinstance(value, kind):
        raise InvalidArgumentError(
            f"{label}= must be a {kind.__name__}(...) value, got {type(value).__name__}"
        )
    names = [f.name for f in fields(kind)]
    defaults = {f.name: f.default for f in fields(kind)}
    doubled = [n for n in names if n in given and given[n] != defaults[n]]
    if doubled:
        raise InvalidArgumentError(
            f"{', '.join(doubled)} given both as keyword(s) and in {label}=: declare "
            f"{'it' if len(doubled) == 1 else 'them'} once, in the {kind.__name__}"
        )
    out = [getattr(value, n) for n in names]
    return tuple(list(v) if isinstance(v, tuple) and n == "only" else v for n, v in zip(names, out))


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
    table = Deviations(precision=precision, tolerances=tolerances).table
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
