"""For users' own test suites: hypothesis strategies and assertions for BPTT code.

Property-test your own BPTT in about three lines::

    from symbptt.testing import assert_bptt_correct

    def test_my_bptt():
        assert_bptt_correct(my_rnn.loss_and_grads, names={"W_h": "Whh"})

or, drawing the problems yourself::

    from hypothesis import given
    from symbptt.testing import rnn_problems, assert_gradients_match

    @given(rnn_problems())
    def test_my_bptt(problem):
        dims, arrays = problem
        loss, grads = my_rnn.loss_and_grads(**arrays)
        assert_gradients_match(arrays, loss, grads)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .checking.check import Tolerance, check_gradients, compare_gradients
from .checking.report import Report
from .models.spec import ModelSpec
from .strategies import rnn_problems, rnn_shapes

__all__ = [
    "rnn_shapes",
    "rnn_problems",
    "assert_bptt_correct",
    "assert_gradients_match",
]


def _failure(report: Report) -> str:
    """Why a check failed, in as many lines as it takes; never a pointer to nothing."""
    if report.wrong:
        lines = [f"BPTT gradients are wrong: {', '.join(report.wrong)}"]
    elif report.error:
        lines = [f"BPTT check failed: {report.error}"]
    elif report.overflow:
        lines = [
            f"BPTT gradients are {report.overflow} (saturated inputs: probe=False skips "
            "them, for code that is never used there)"
        ]
    else:
        lines = ["BPTT check failed"]
    if report.error and report.wrong:
        lines.append(f"error: {report.error}")
    if report.inconsistent:
        lines.append("the function gave different answers for the same inputs")
    if report.dims:
        lines.append(
            "smallest failing shape: " + " ".join(f"{k}={v}" for k, v in report.dims.items())
        )
    lines += [f"note: {note}" for note in report.notes]
    if report.seed is not None:
        lines.append(f"seed: {report.seed} (seed={report.seed} replays this check)")
    for r in report.results:
        if r.status == "WRONG":
            err = "" if r.max_rel_error is None else f" (max relative error {r.max_rel_error:.2e})"
            lines.append(f"  {r.name}: WRONG{err}; {r.explanation}".rstrip("; "))
    return "\n".join(lines)


def assert_bptt_correct(fn: Callable | str, **options) -> Report:
    """Run `check_gradients(fn, **options)` and raise AssertionError with the report if wrong.

    fn runs in a worker process with the same limits and rules as `symbptt check`: every
    gradient and the loss are required unless `only=` declares the ones it returns.
    """
    report = check_gradients(fn, **options)
    if not report.ok:
        raise AssertionError(_failure(report))
    return report


def assert_gradients_match(
    arrays: Mapping[str, np.ndarray],
    loss: float | None,
    grads: Mapping[str, np.ndarray],
    *,
    only: Sequence[str] | None = None,
    precision: str | None = None,
    tolerances: Mapping[str, Tolerance] | None = None,
    model: ModelSpec | None = None,
) -> Report:
    """Assert one computed loss and gradient dict (model names, row layout) are exact, for the
    vanilla RNN or a variant of it (`model=VANILLA.variant(...)`).

    Every gradient and the loss are required unless `only` names the ones given.
    """
    report = compare_gradients(
        arrays, loss, grads, only=only, precision=precision, tolerances=tolerances, model=model
    )
    if not report.ok:
        raise AssertionError(_failure(report))
    return report
