"""`check_gradients` on a corpus of hand-written BPTT: every bug caught, every correct passes."""

import numpy as np
import pytest
from bptt_corpus import BUGGY, CORRECT, INVISIBLE_WHEN, case_by_name

from symbptt.check import check_gradients, compare_gradients
from symbptt.model import Dims, random_point
from symbptt.strategies import rnn_shapes


@pytest.mark.parametrize("case", CORRECT, ids=lambda c: c.name)
def test_correct_implementations_pass(case):
    report = check_gradients(case.fn, form=case.form, layout=case.layout)
    assert report.ok, report.to_dict()
    assert report.examples == 100
    assert all(r.status in ("OK", "NOT CHECKED") for r in report.results)
    if case.dtype == "float32":
        assert any("float32" in note for note in report.notes)
    else:
        assert not any("float32" in note for note in report.notes)


@pytest.mark.parametrize("case", BUGGY, ids=lambda c: c.name)
def test_every_bug_is_caught_with_default_settings(case):
    report = check_gradients(case.fn, form=case.form, layout=case.layout)
    assert not report.ok and report.error is None
    assert set(report.wrong) == set(case.wrong)
    if case.cause is not None:
        causes = {report.result(n).likely_cause for n in case.wrong}
        assert causes == {case.cause}, causes
    # The smallest failing shape is one where the bug shows, and it is small.
    smallest = Dims(**report.dims)
    invisible = INVISIBLE_WHEN.get(case.name)
    assert invisible is None or not invisible(smallest)
    assert smallest.N + smallest.D + smallest.H + smallest.T <= 8, smallest


@pytest.mark.parametrize(
    "name, dims",
    [
        ("dWh_transposed", Dims(N=1, D=1, H=2, C=2, T=1)),  # H=1 would hide it
        ("batch_mean_gradients", Dims(N=2, D=1, H=1, C=2, T=1)),  # N=1 would hide it
        ("truncated_bptt_2", Dims(N=1, D=1, H=1, C=2, T=3)),  # T<=2 would hide it
    ],
)
def test_hypothesis_shrinks_to_the_smallest_failing_shape(name, dims):
    report = check_gradients(case_by_name(name).fn)
    assert report.dims == dims.as_dict()


@pytest.mark.parametrize(
    "name, gradient, step",
    [("missing_recurrent_term", "W_h", 2), ("truncated_bptt_2", "W_h", 3), ("lost_dh0", "h0", 1)],
)
def test_first_wrong_time_step(name, gradient, step):
    report = check_gradients(case_by_name(name).fn)
    assert report.result(gradient).first_wrong_step == step


def test_truncation_depth_is_named():
    report = check_gradients(case_by_name("truncated_bptt_2").fn)
    assert report.result("W_h").cause_detail == "each loss term reaches back 1 step"


def test_report_renders_and_serialises():
    from io import StringIO

    from rich.console import Console

    report = check_gradients(case_by_name("dWh_transposed").fn)
    buffer = StringIO()
    report.render(Console(file=buffer, width=120))
    text = buffer.getvalue()
    assert "WRONG" in text and "smallest failing shape: N=1 D=1 H=2 C=2 T=1" in text
    assert "equals the true gradient transposed" in text
    assert report.to_dict()["results"][1]["likely_cause"] == "transposed"


def test_custom_shapes_strategy_and_examples():
    report = check_gradients(
        case_by_name("correct_row_vectorised").fn,
        shapes=rnn_shapes(min_T=5, max_T=5, max_H=2),
        max_examples=7,
    )
    assert report.ok and report.examples == 7


def test_compare_gradients_on_one_point():
    dims = Dims(N=2, D=3, H=2, C=3, T=3)
    arrays = random_point(dims, 1)
    loss, grads = case_by_name("correct_row_vectorised").fn(**arrays)
    assert compare_gradients(arrays, loss, grads).ok
    bad = {**grads, "W_h": grads["W_h"].T}
    report = compare_gradients(arrays, loss, bad)
    assert report.wrong == ["W_h"] and report.result("W_h").likely_cause == "transposed"
    assert np.isclose(
        report.result("W_h").max_abs_error, np.abs(grads["W_h"] - grads["W_h"].T).max()
    )


def test_compare_gradients_without_a_loss():
    dims = Dims(N=1, D=2, H=2, C=2, T=2)
    arrays = random_point(dims, 3)
    _, grads = case_by_name("correct_row_vectorised").fn(**arrays)
    report = compare_gradients(arrays, None, grads)
    assert report.ok and report.result("loss").status == "NOT CHECKED"
