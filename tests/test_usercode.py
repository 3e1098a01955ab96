"""Calling users' functions: their conventions, and one clear sentence for each bad answer."""

import re

import numpy as np
import pytest
from bptt_corpus import case_by_name

from symbptt.checking.check import check_gradients
from symbptt.checking.isolation import InProcess
from symbptt.checking.usercode import Calling
from symbptt.errors import TargetError, UserFunctionError
from symbptt.models.dims import Dims, random_point
from symbptt.strategies import rnn_shapes

correct = case_by_name("correct_row_vectorised").fn
ARRAYS = random_point(Dims(N=2, D=3, H=2, C=3, T=2), 0)
PLAN = {"kind": "plan"}  # called as the checker calls it: through a plan of calls


def returning(**changes):
    """A correct function whose answer is then altered, the way a bug would alter it."""

    def fn(x, y, h0, W_x, W_h, b, V, c):
        loss, grads = correct(x, y, h0, W_x, W_h, b, V, c)
        grads = dict(grads)
        for key, value in changes.items():
            if key == "loss":
                loss = value
            elif value is None:
                grads.pop(key)
            else:
                grads[key] = value(grads[key]) if callable(value) else value
        return loss, grads

    return fn


def raises(*a, **k):
    raise ZeroDivisionError("division by zero in my code")


BAD_ANSWERS = {
    "not a pair": (
        lambda *a: 3.0,
        r"returned a value of type float; the full form must return a pair",
    ),
    "tuple without order": (lambda *a: (1.0, (np.zeros(1),)), "declare their order"),
    "unexpected key": (returning(W_hh=np.zeros((2, 2))), r"unexpected key 'W_hh' \(did you mean"),
    "loss is a vector": (returning(loss=np.zeros(3)), r"loss must be one real number"),
    "loss is nan": (returning(loss=float("nan")), r"returned a non-finite loss \(nan\)"),
    "function raises": (
        raises,
        (
            r"raises raised ZeroDivisionError: division by zero in my code "
            r"\(.*test_usercode.py:\d+: raise ZeroDivisionError.*"
            r"when called with shapes x=\(2, 2, 3\)"
        ),
    ),
}


@pytest.mark.parametrize("label", list(BAD_ANSWERS))
def test_unusable_answers_are_one_sentence(label):
    fn, message = BAD_ANSWERS[label]
    with pytest.raises(UserFunctionError, match=message):
        Calling().call(InProcess(fn, PLAN), ARRAYS)


BAD_GRADIENTS = {
    "wrong shape": (
        returning(W_x=np.zeros((3, 3))),
        "W_x",
        r"dW_x has shape \(3, 3\), expected \(3, 2\)",
    ),
    "transposed shape": (returning(W_x=lambda g: g.T), "W_x", r"\(it looks transposed\)"),
    "nan": (
        returning(V=lambda g: np.where(g == g.max(), np.nan, g)),
        "V",
        r"dV holds a non-finite value \(nan\)",
    ),
    "integer dtype": (
        returning(b=np.zeros(2, dtype=int)),
        "b",
        r"db has dtype int64; gradients must be floating-point",
    ),
}


@pytest.mark.parametrize("label", list(BAD_GRADIENTS))
def test_bad_gradients_are_wrong_with_a_sentence(label):
    fn, name, message = BAD_GRADIENTS[label]
    answer = Calling().call(InProcess(fn, PLAN), ARRAYS)
    assert name in answer.problems and name not in answer.grads
    assert re.search(message, answer.problems[name]), answer.problems[name]
    report = check_gradients(fn, max_examples=5)
    assert not report.ok and report.result(name).status == "WRONG"


def test_missing_gradients_are_wrong_unless_declared():
    fn = returning(x=None, h0=None)
    report = check_gradients(fn, max_examples=10)
    assert not report.ok and set(report.wrong) == {"x", "h0"}
    assert "not returned" in report.result("x").message
    subset = ("W_x", "W_h", "b", "V", "c", "loss")
    report = check_gradients(fn, max_examples=10, only=subset)
    assert report.ok
    assert {r.name for r in report.results if r.status == "NOT CHECKED"} == {"x", "h0"}
    assert "not checked (not returned, not required): h0, x" in report.notes


def test_a_raising_function_is_a_failed_check_not_a_crash():
    report = check_gradients(raises, max_examples=5)
    assert not report.ok and "ZeroDivisionError" in report.error


def test_user_names_batch_first_and_tuple_order():
    def mine(inputs, labels, hidden, Wxh, Whh, bh, Why, by):
        loss, g = correct(
            inputs.swapaxes(0, 1), labels.swapaxes(0, 1), hidden, Wxh, Whh, bh, Why, by
        )
        return loss, (g["W_h"], g["W_x"], g["x"].swapaxes(0, 1))

    names = {
        "x": "inputs",
        "y": "labels",
        "h0": "hidden",
        "W_x": "Wxh",
        "W_h": "Whh",
        "b": "bh",
        "V": "Why",
        "c": "by",
    }
    only = ("W_h", "W_x", "x", "loss")
    report = check_gradients(
        mine, names=names, batch_first=True, order=("W_h", "W_x", "x"), only=only, max_examples=30
    )
    assert report.ok, report.to_dict()
    # The right gradients in another order than declared: a usage error naming the order.
    with pytest.raises(TargetError, match="in the order W_h,W_x,x"):
        check_gradients(
            mine,
            names=names,
            batch_first=True,
            order=("W_x", "W_h", "x"),
            only=only,
            max_examples=30,
        )


def test_inputs_are_copies():
    def vandal(x, y, h0, W_x, W_h, b, V, c):
        W_h[...] = 0.0
        return correct(x, y, h0, W_x, W_h, b, V, c)

    before = ARRAYS["W_h"].copy()
    Calling().call(InProcess(vandal, PLAN), ARRAYS)
    np.testing.assert_array_equal(ARRAYS["W_h"], before)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(form="loss"), "form='loss' must be one of full, layer"),
        (dict(layout="col"), "layout='col' must be one of row, column"),
        (dict(names={"Wh": "Whh"}), r"names maps 'Wh'.*did you mean 'W_h'"),
        (dict(names={"y": "t"}, form="layer"), "not an array of the layer form"),
        (
            dict(order=("W_h", "V"), form="layer"),
            r"order names 'V', not gradients of the layer form",
        ),
    ],
    ids=["form", "layout", "names typo", "names of other form", "order"],
)
def test_bad_conventions(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Calling.of(**kwargs)


def test_bad_max_examples():
    with pytest.raises(ValueError, match="max_examples=0 must be a positive integer"):
        check_gradients(correct, max_examples=0)


def exits(*a, **k):
    raise SystemExit(0)


def test_sys_exit_in_user_code_is_a_failure_not_a_pass():
    report = check_gradients(exits, max_examples=3)
    assert not report.ok and "raised SystemExit" in report.error


def test_a_signature_mismatch_explains_how_symbptt_calls():
    def by_keywords(**kw):
        return correct(**kw)

    # Not a verdict: a usage error (exit 2 on the command line) that says how symbptt calls.
    with pytest.raises(TargetError, match="symbptt passes x, y, h0, W_x, W_h, b, V, c positio"):
        check_gradients(by_keywords, max_examples=3)
    with pytest.raises(TargetError, match="--names"):
        check_gradients(by_keywords, max_examples=3)


def test_unreadable_gradient_is_wrong_with_a_sentence():
    report = check_gradients(returning(b=[1.0, [2.0, 3.0]]), max_examples=3)
    assert report.result("b").status == "WRONG"
    assert "db could not be read as an array" in report.result("b").message


def test_worst_index_is_in_the_users_layout():
    def off_by_one_entry(x, y, h0, W_x, W_h, b, V, c):
        loss, g = case_by_name("correct_column_karpathy").fn(
            x.swapaxes(0, 1), y.swapaxes(0, 1), h0, W_x, W_h, b, V, c
        )
        g["W_x"][0, 1] += 1.0  # user layout: (H, D)
        g["x"] = g["x"].swapaxes(0, 1).copy()
        g["x"][2, 0, 0] += 1.0  # user layout: (N, T, D)
        return loss, g

    big_enough = rnn_shapes(min_N=3, min_D=2, min_H=2, min_T=2)
    report = check_gradients(
        off_by_one_entry, layout="column", batch_first=True, shapes=big_enough, max_examples=20
    )
    assert report.result("W_x").worst_index == (0, 1)
    assert report.result("x").worst_index == (2, 0, 0)


def test_each_array_is_judged_at_its_own_precision():
    def float32_loss_slightly_wrong_float64_grads(x, y, h0, W_x, W_h, b, V, c):
        loss, g = correct(x, y, h0, W_x, W_h, b, V, c)
        return np.float32(loss), {**g, "W_h": g["W_h"] * (1 + 1e-4)}

    report = check_gradients(float32_loss_slightly_wrong_float64_grads, max_examples=20)
    assert report.result("loss").status == "OK"  # float32 loss, float32 tolerance
    assert report.result("W_h").status == "WRONG"  # float64 gradient, float64 tolerance
    assert "a small error" in report.result("W_h").message
    assert any("returns float32 arrays" in note for note in report.notes)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(names={"b": "W_h"}), r"names gives two arrays the same name \('W_h'\)"),
        (dict(order=("W_x", "W_x")), r"order names 'W_x' more than once"),
    ],
    ids=["name clash", "repeated order"],
)
def test_ambiguous_conventions(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Calling.of(**kwargs)
