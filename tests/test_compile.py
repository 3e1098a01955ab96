"""Compiled symbolic gradients == the independent NumPy BPTT, over random shapes and values."""

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from symbptt import reference
from symbptt.engine.compile import compile_gradients, gradient_function
from symbptt.engine.derivatives import derive
from symbptt.engine.graph import unroll
from symbptt.errors import InputArrayError
from symbptt.models.dims import GRADIENT_NAMES, Dims, random_point
from symbptt.strategies import rnn_problems

EDGE_SHAPES = [
    Dims(N=1, D=1, H=1, C=2, T=1),  # everything minimal
    Dims(N=2, D=3, H=1, C=3, T=3),  # H=1 hides transposes
    Dims(N=1, D=2, H=3, C=2, T=4),  # N=1 hides batch reductions
    Dims(N=3, D=2, H=2, C=4, T=1),  # T=1: no recurrence at all
    Dims(N=2, D=3, H=3, C=2, T=2),  # D == H hides W_x / W_h mix-ups
]


def _assert_close(mine, theirs, rtol, what):
    scale = max(1.0, float(np.max(np.abs(theirs), initial=0.0)))
    np.testing.assert_allclose(mine, theirs, rtol=rtol, atol=rtol * 1e-3 * scale, err_msg=what)


def _edge(seed, scale=1.0):
    return st.sampled_from(EDGE_SHAPES).map(lambda d: (d, random_point(d, seed, scale)))


@given(problem=rnn_problems() | rnn_problems(logit_scale=1000.0) | _edge(5) | _edge(6, 1000.0))
@example(problem=(EDGE_SHAPES[0], random_point(EDGE_SHAPES[0], 1)))
@example(problem=(EDGE_SHAPES[4], random_point(EDGE_SHAPES[4], 2, 1000.0)))
def test_symbolic_gradients_equal_numpy_bptt(problem):
    dims, arrays = problem
    ours = gradient_function(dims)(arrays)
    loss, grads = reference.forward_backward_dict(arrays)
    assert np.isfinite(ours["loss"]) and all(np.all(np.isfinite(ours[k])) for k in GRADIENT_NAMES)
    _assert_close(ours["loss"], loss, 1e-9, "loss")
    for name in GRADIENT_NAMES:
        _assert_close(ours[name], grads[name], 1e-9, f"dL/d{name} for {dims}")


@given(problem=rnn_problems() | _edge(7))
def test_numpy_bptt_equals_finite_differences(problem):
    dims, arrays = problem
    _, grads = reference.forward_backward_dict(arrays)
    numeric = reference.finite_differences(
        lambda a: reference.loss(**a), arrays, ["W_x", "W_h", "b", "V", "c", "h0", "x"]
    )
    for name, fd in numeric.items():
        _assert_close(grads[name], fd, 1e-5, f"dL/d{name} for {dims}")


def test_cse_changes_no_value():
    dims = Dims(N=2, D=2, H=3, C=3, T=3)
    d = derive(unroll(dims))
    arrays = random_point(dims, 9)
    with_cse, without = compile_gradients(d)(arrays), compile_gradients(d, cse=False)(arrays)
    for k in with_cse:
        np.testing.assert_allclose(with_cse[k], without[k], rtol=1e-13, atol=1e-15)


def test_generated_code_grows_linearly_in_T():
    lines = {}
    for T in (10, 20, 40):
        dims = Dims(N=2, D=2, H=3, C=2, T=T)
        lines[T] = compile_gradients(derive(unroll(dims))).source.count("\n")
    # Linear: doubling T adds the same number of lines each time (up to the constant part).
    assert abs((lines[40] - lines[20]) - 2 * (lines[20] - lines[10])) <= 0.02 * lines[40]


def test_compiled_function_validates_its_inputs():
    dims = Dims(N=2, D=2, H=2, C=3, T=2)
    f = gradient_function(dims)
    arrays = random_point(dims, 0)
    with pytest.raises(InputArrayError, match=r"W_h has shape \(3, 2\), expected \(2, 2\)"):
        f({**arrays, "W_h": np.zeros((3, 2))})
    bad = arrays["x"].copy()
    bad[1, 0, 1] = np.nan
    with pytest.raises(
        InputArrayError, match=r"x holds a non-finite value \(nan\) at index \(1, 0, 1\)"
    ):
        f({**arrays, "x": bad})
    with pytest.raises(InputArrayError, match=r"y holds labels outside \[0, 3\)"):
        f({**arrays, "y": np.full((2, 2), 3)})
    with pytest.raises(InputArrayError, match="missing input array"):
        f({k: v for k, v in arrays.items() if k != "c"})


def test_long_sums_compile_and_agree():
    # T > 64 turns L = L_1 + ... + L_T (and the sums over copies) into sum((...)).
    dims = Dims(N=1, D=1, H=1, C=2, T=70)
    f = compile_gradients(derive(unroll(dims)))
    assert "sum((" in f.source
    arrays = random_point(dims, 8)
    loss, grads = reference.forward_backward_dict(arrays)
    ours = f(arrays)
    _assert_close(ours["loss"], loss, 1e-9, "loss")
    for name in GRADIENT_NAMES:
        _assert_close(ours[name], grads[name], 1e-9, name)
