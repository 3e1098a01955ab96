"""`check_gradients` on a corpus of hand-written BPTT: every bug caught, every correct passes."""

import re

import numpy as np
import pytest
from bptt_corpus import BUGGY, CORRECT, INVISIBLE_WHEN, case_by_name

from symbptt.checking.check import Tolerance, check_gradients, compare_gradients
from symbptt.errors import InvalidArgumentError, TargetError
from symbptt.models.dims import Dims, random_point
from symbptt.strategies import rnn_shapes


@pytest.mark.parametrize("case", CORRECT, ids=lambda c: c.name)
def test_correct_implementations_pass(case):
    report = check_gradients(case.fn, **case.options)
    assert report.ok, report.to_dict()
    assert report.examples == 100
    assert all(r.status in ("OK", "NOT CHECKED") for r in report.results)
    if case.dtype == "float32":
        assert any("float32" in note for note in report.notes)
    else:
        assert not any("float32" in note for note in report.notes)


@pytest.mark.parametrize("case", BUGGY, ids=lambda c: c.name)
def test_every_bug_is_caught_with_default_settings(case):
    report = check_gradients(case.fn, **case.options)
    assert not report.ok and report.error is None
    assert set(report.wrong) == set(case.wrong)
    if case.cause is not None:
        causes = {report.result(n).likely_cause for n in case.wrong}
        assert causes == {case.cause}, causes
    # The smallest failing shape is one where the bug shows, and it is small.
    smallest = Dims(**{"C": 2, **report.dims})  # the layer form's dims have no C
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
    assert not report.ok and report.result("loss").status == "WRONG"
    assert "not returned" in report.result("loss").message
    report = compare_gradients(arrays, None, grads, only=("W_x", "W_h", "b", "V", "c", "h0", "x"))
    assert report.ok and report.result("loss").status == "NOT CHECKED"


# -- verdicts you can trust -------------------------------------------------------------

correct = case_by_name("correct_row_vectorised").fn


def _bad_call(**kwargs):
    kwargs.setdefault("max_examples", 2)
    return lambda: check_gradients(kwargs.pop("fn", correct), **kwargs)


BAD_CALLS = {
    "names as a list": (dict(names=["W_h"]), r"names=\['W_h'\] must map model names"),
    "order as a string": (dict(order="W_x,W_h"), r"order='W_x,W_h' must be a sequence"),
    "tolerance as a float": (dict(tolerances={"float64": 1e-3}), r"must be a Tolerance"),
    "tolerance for a made-up dtype": (
        dict(tolerances={"float8": Tolerance(0.1, 0.1)}),
        r"the key 'float8'; keys are dtypes",
    ),
    "seed as text": (dict(seed="abc"), r"seed='abc' must be a whole number"),
    "negative seed": (dict(seed=-1), r"seed=-1 must be a whole number at least 0"),
    "zero examples": (dict(max_examples=0), r"max_examples=0 must be a positive integer"),
    "bool examples": (dict(max_examples=True), r"max_examples=True must be a positive"),
    "zero timeout": (dict(timeout=0), r"timeout=0 must be a positive number of seconds"),
    "infinite total": (dict(total_timeout=float("inf")), r"total_timeout=inf must be"),
    "tiny memory": (dict(memory_mb=1), r"memory_mb=1 must be a whole number of MiB"),
    "forbid as a string": (dict(forbid_imports="torch"), r"forbid_imports='torch' must be"),
    "forbid numpy": (dict(forbid_imports=("numpy",)), r"numpy cannot be forbidden"),
    "only unknown": (dict(only=("W_hh",)), r"only names 'W_hh', not among"),
    "only empty": (dict(only=()), r"only=\(\) must be a non-empty sequence"),
    "precision unknown": (dict(precision="float8"), r"precision='float8' must be one of"),
    "not a function": (
        dict(fn=42),
        r"fn must be a function, a \(forward, backward\) pair or a 'file.py:function' string",
    ),
    "isolate not bool": (dict(isolate="yes"), r"isolate='yes' must be True or False"),
}


@pytest.mark.parametrize("label", list(BAD_CALLS))
def test_bad_arguments_are_one_sentence_before_any_work(label):
    kwargs, message = BAD_CALLS[label]
    with pytest.raises(InvalidArgumentError, match=message):
        _bad_call(**kwargs)()


@pytest.mark.parametrize(
    "rtol, floor, message",
    [
        (float("inf"), 0.1, "rtol=inf"),
        (0.0, 0.1, "rtol=0.0"),
        (float("nan"), 0.1, "rtol=nan"),
        (1.0, 0.1, "rtol=1.0"),
        (1e-6, -1.0, "floor=-1.0"),
        (1e-6, float("nan"), "floor=nan"),
        ("1e-6", 0.1, "rtol='1e-6'"),
    ],
)
def test_tolerances_are_validated(rtol, floor, message):
    with pytest.raises(InvalidArgumentError, match=re.escape(message)):
        Tolerance(rtol=rtol, floor=floor)


def _returning(transform):
    def fn(x, y, h0, W_x, W_h, b, V, c):
        loss, grads = correct(x, y, h0, W_x, W_h, b, V, c)
        return transform(loss, grads)

    return fn


def test_nothing_returned_is_not_right():
    for fn in (_returning(lambda loss, g: (loss, {})), _returning(lambda loss, g: (None, {}))):
        report = check_gradients(fn, max_examples=5)
        assert not report.ok and "W_h" in report.wrong


def test_low_precision_must_be_declared():
    off = _returning(lambda loss, g: (loss, {**g, "W_h": (g["W_h"] * 1.02).astype(np.float16)}))
    report = check_gradients(off, max_examples=5)
    assert not report.ok and "W_h" in report.wrong
    assert "--precision float16" in report.result("W_h").message
    half = _returning(lambda loss, g: (loss, {k: v.astype(np.float16) for k, v in g.items()}))
    assert not check_gradients(half, max_examples=5).ok
    assert check_gradients(half, max_examples=20, precision="float16").ok
    # declared float16 still catches a gradient 20% off
    worse = _returning(lambda loss, g: (loss, {**g, "W_h": (g["W_h"] * 1.2).astype(np.float16)}))
    assert not check_gradients(worse, max_examples=20, precision="float16").ok


def test_a_declared_precision_applies_to_every_answer():
    # 0.05% off in float64 is wrong at float64 and at float32 precision (its calibrated
    # tolerance, 1e-4), right at float16's
    off = _returning(lambda loss, g: (loss, {**g, "W_h": g["W_h"] * 1.0005}))
    assert not check_gradients(off, max_examples=5).ok
    assert not check_gradients(off, max_examples=5, precision="float64").ok
    assert not check_gradients(off, max_examples=20, precision="float32").ok
    assert check_gradients(off, max_examples=20, precision="float16").ok


def _wrong_on_calls(bad: set[int]):
    calls = [0]

    def fn(x, y, h0, W_x, W_h, b, V, c):
        calls[0] += 1
        loss, grads = correct(x, y, h0, W_x, W_h, b, V, c)
        if calls[0] in bad:
            grads = {**grads, "W_h": grads["W_h"] + 1.0}
        return loss, grads

    return fn


def test_a_failure_seen_once_is_a_failure_and_inconsistency_is_reported():
    report = check_gradients(_wrong_on_calls({7}), max_examples=20)
    assert not report.ok and report.wrong == ["W_h"]
    assert report.inconsistent
    assert any("inconsistent" in note for note in report.notes)
    consistent = check_gradients(case_by_name("dWh_transposed").fn, max_examples=20)
    assert not consistent.ok and not consistent.inconsistent


def test_the_users_random_state_is_not_reset():
    import random

    def sometimes_wrong(x, y, h0, W_x, W_h, b, V, c):
        loss, grads = correct(x, y, h0, W_x, W_h, b, V, c)
        if random.random() < 0.3:
            grads = {**grads, "W_h": -grads["W_h"]}
        return loss, grads

    assert not check_gradients(sometimes_wrong, max_examples=50).ok


def test_a_hang_is_a_failing_verdict_with_the_shapes():
    def hangs(x, y, h0, W_x, W_h, b, V, c):
        while True:
            pass

    report = check_gradients(hangs, max_examples=5, timeout=0.5)
    assert not report.ok and "did not return within 0.5 s" in report.error
    assert "when called with shapes x=(" in report.error


def test_the_whole_check_has_a_time_limit():
    import time as _time

    def slow(x, y, h0, W_x, W_h, b, V, c):
        _time.sleep(0.2)
        return correct(x, y, h0, W_x, W_h, b, V, c)

    report = check_gradients(slow, max_examples=100, total_timeout=1.0)
    assert not report.ok and report.out_of_time
    assert "did not finish within 1 s" in report.error


def test_in_process_mode_is_still_available_and_says_so():
    report = check_gradients(correct, max_examples=5, isolate=False)
    assert report.ok
    assert any("without isolation" in note for note in report.notes)


def test_a_target_string_is_checked_in_a_fresh_interpreter():
    from pathlib import Path

    corpus = Path(__file__).parent / "bptt_corpus.py"
    report = check_gradients(f"{corpus}:correct_row_vectorised", max_examples=10)
    assert report.ok and report.target.endswith("bptt_corpus.py:correct_row_vectorised")
    with pytest.raises(TargetError, match="did you mean 'correct_row_vectorised'"):
        check_gradients(f"{corpus}:correct_row_vectorized", max_examples=10)
    with pytest.raises(TargetError, match="no such file"):
        check_gradients("no/such/file.py:f")


def test_text_from_the_users_code_cannot_break_the_report():
    from io import StringIO

    from rich.console import Console

    def markup(x, y, h0, W_x, W_h, b, V, c):
        print("\x1b[2J[bold]cleared[/bold] [/red]")
        raise ValueError("[/red] closing a tag that was never opened \x1b[31m")

    report = check_gradients(markup, max_examples=3)
    buffer = StringIO()
    report.render(Console(file=buffer, width=200))
    text = buffer.getvalue()
    assert "[/red] closing a tag" in text and "\\x1b[31m" in text
    assert "\x1b" not in text  # shown, not obeyed
    assert "\\x1b[2J[bold]cleared[/bold]" in text
