"""The helpers users import into their own suites: strategies, assertions, the pytest plugin."""

import pytest
from bptt_corpus import case_by_name
from hypothesis import given
from hypothesis.errors import InvalidArgument

from symbptt.models.dims import Dims
from symbptt.testing import (
    assert_bptt_correct,
    assert_gradients_match,
    rnn_problems,
    rnn_shapes,
)


@given(rnn_problems())
def test_assert_gradients_match_in_a_users_property_test(problem):
    dims, arrays = problem
    loss, grads = case_by_name("correct_row_batch_loop").fn(**arrays)
    assert_gradients_match(arrays, loss, grads)


def test_assert_gradients_match_fails_with_a_readable_message():
    dims = Dims(N=2, D=2, H=3, C=2, T=3)
    from symbptt.models.dims import random_point

    arrays = random_point(dims, 0)
    loss, grads = case_by_name("dWh_transposed").fn(**arrays)
    with pytest.raises(
        AssertionError, match=r"W_h: WRONG .*likely cause: equals the true gradient transposed"
    ):
        assert_gradients_match(arrays, loss, grads)


def test_assert_bptt_correct():
    assert assert_bptt_correct(case_by_name("correct_row_vectorised").fn, max_examples=20).ok
    with pytest.raises(AssertionError, match=r"smallest failing shape: N=1 D=1 H=1 C=2 T=2"):
        assert_bptt_correct(case_by_name("missing_recurrent_term").fn)


@given(rnn_shapes(min_T=2, max_T=3, min_H=2, max_H=2, max_N=1))
def test_rnn_shapes_respects_bounds(dims):
    assert 2 <= dims.T <= 3 and dims.H == 2 and dims.N == 1 and 2 <= dims.C <= 4


def test_rnn_shapes_reaches_the_shapes_where_bugs_hide():
    from hypothesis import find

    for condition in (
        lambda d: d.H == 1,
        lambda d: d.N == 1,
        lambda d: d.T == 1,
        lambda d: d.D == d.H and d.H > 1,
    ):
        assert condition(find(rnn_shapes(), condition))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(min_T=5, max_T=2), "min_T=5 is larger than max_T=2"),
        (dict(min_H=0), "min_H=0 must be at least 1"),
        (dict(min_C=1), "min_C=1 must be at least 2"),
        (dict(max_N=2.5), r"max_N=2.5 must be an integer"),
        (dict(min_D=True), "min_D=True must be an integer"),
    ],
    ids=["T inverted", "H zero", "C one", "N float", "D bool"],
)
def test_rnn_shapes_rejects_bad_arguments(kwargs, message):
    with pytest.raises(InvalidArgument, match=message):
        rnn_shapes(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(shapes=Dims(1, 1, 1, 2, 1)), "must be a strategy such as rnn_shapes()"),
        (dict(logit_scale=-1.0), "logit_scale=-1.0 must be a positive finite number"),
    ],
    ids=["shapes not a strategy", "negative scale"],
)
def test_rnn_problems_rejects_bad_arguments(kwargs, message):
    with pytest.raises(InvalidArgument, match=message):
        rnn_problems(**kwargs)


def test_pytest_plugin_fixture(pytester):
    pytester.makepyfile(
        test_user="""
        import numpy as np

        def rnn(x, y, h0, W_x, W_h, b, V, c):
            T, N, _ = x.shape
            hs, h = [], h0
            for t in range(T):
                h = np.tanh(b + h @ W_h + x[t] @ W_x)
                hs.append(h)
            loss, grads = 0.0, {k: np.zeros_like(v) for k, v in
                                dict(W_x=W_x, W_h=W_h, b=b, V=V, c=c).items()}
            return loss, grads  # a student's unfinished BPTT

        def test_rnn(bptt_check):
            bptt_check(rnn)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--symbptt-examples", "5")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*BPTT gradients are wrong*"])


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_pytest_plugin_rejects_a_bad_example_count_in_one_line(pytester, value):
    pytester.makepyfile(test_user="def test_nothing():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--symbptt-examples", value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*argument --symbptt-examples*"])
    assert "Traceback" not in result.stderr.str()


def test_assert_gradients_match_requires_every_gradient_unless_declared():
    from symbptt.models.dims import random_point
    from symbptt.testing import assert_gradients_match

    arrays = random_point(Dims(N=2, D=2, H=2, C=3, T=2), 0)
    loss, grads = case_by_name("correct_row_vectorised").fn(**arrays)
    subset = {k: grads[k] for k in ("W_h", "W_x")}
    with pytest.raises(AssertionError, match="BPTT gradients are wrong"):
        assert_gradients_match(arrays, loss, subset)
    assert assert_gradients_match(arrays, loss, subset, only=("W_h", "W_x", "loss")).ok


def _overflows_on_large_logits(x, y, h0, W_x, W_h, b, V, c):
    """Right, except that (like a softmax without its max shift) it has NaN gradients when
    the logits are in the hundreds."""
    import numpy as np

    loss, grads = case_by_name("correct_row_vectorised").fn(x, y, h0, W_x, W_h, b, V, c)
    if np.abs(V).max() > 100:
        grads = {**grads, "V": grads["V"] * np.nan}
    return loss, grads


def test_a_failed_assertion_says_why_even_when_no_gradient_is_wrong():
    with pytest.raises(AssertionError) as failed:
        assert_bptt_correct(_overflows_on_large_logits, max_examples=5)
    message = str(failed.value)
    assert "see error" not in message
    assert "right on ordinary inputs, but with logits of about 1000" in message
    assert "probe=False" in message
    assert assert_bptt_correct(_overflows_on_large_logits, max_examples=5, probe=False).ok
