"""Partial vs total derivatives and the path decomposition, checked numerically."""

import numpy as np
import pytest
import sympy as sp
from hypothesis import example, given

from symbptt import reference
from symbptt.engine.compile import compile_gradients, compile_paths
from symbptt.engine.derivatives import MAX_EXPAND_T, derive, sum_paths
from symbptt.engine.graph import unroll
from symbptt.errors import ExpansionTooLargeError, UnknownNameError
from symbptt.models.dims import GRADIENT_NAMES, SHARED_PARAMETERS, Dims, random_point
from symbptt.strategies import rnn_problems, rnn_shapes


def _derivation(dims):
    return derive(unroll(dims))


@pytest.mark.parametrize("T", [1, 2, 3, 5])
def test_path_counts(T):
    d = _derivation(Dims(N=1, D=1, H=1, C=2, T=T))
    triangle = T * (T + 1) // 2
    expected = {
        "W_h": triangle,
        "W_x": triangle,
        "b": triangle,
        "x": triangle,
        "V": T,
        "c": T,
        "h0": T,
    }
    assert {n: len(d.paths(n)) for n in GRADIENT_NAMES} == expected


def test_w_h_paths_run_through_the_recurrence():
    d = _derivation(Dims(N=1, D=1, H=1, C=2, T=3))
    shown = [p.shown for p in d.paths("W_h")]
    assert ("W_h", "a_1", "h_1", "a_2", "h_2", "a_3", "h_3", "o_3", "L_3", "L") in shown
    for p in d.paths("W_h"):
        assert 1 <= p.entry_step <= p.loss_step <= 3
        assert p.nodes[1] == f"W_h^({p.entry_step})"


def _evaluate_paths(dims, arrays, name):
    d = _derivation(dims)
    paths = d.paths(name)
    values = compile_paths(d, paths)(arrays)
    grads = compile_gradients(d, [name], partials=True)(arrays)
    return paths, [values[f"path{i}"] for i in range(len(paths))], grads


@given(problem=rnn_problems(shapes=rnn_shapes(max_T=3)))
@example(problem=(Dims(1, 1, 1, 2, 1), random_point(Dims(1, 1, 1, 2, 1), 3)))
@example(problem=(Dims(2, 2, 2, 3, 3), random_point(Dims(2, 2, 2, 3, 3), 4, 1000.0)))
def test_paths_sum_to_total(problem):
    dims, arrays = problem
    for name in GRADIENT_NAMES:
        paths, values, grads = _evaluate_paths(dims, arrays, name)
        total = grads[name]
        summed = sum_paths(paths, values, total.shape)
        np.testing.assert_allclose(summed, total, rtol=1e-9, atol=1e-12 * (1 + abs(total).max()))


@given(problem=rnn_problems(shapes=rnn_shapes(min_T=2, max_T=3)))
def test_partials_sum_to_total_and_each_is_its_paths(problem):
    dims, arrays = problem
    for name in SHARED_PARAMETERS:
        paths, values, grads = _evaluate_paths(dims, arrays, name)
        partials = [grads[f"{name}^({k})"] for k in range(1, dims.T + 1)]
        scale = 1e-12 * (1 + np.abs(grads[name]).max())
        np.testing.assert_allclose(sum(partials), grads[name], rtol=1e-9, atol=scale)
        for k, partial in enumerate(partials, 1):
            mine = sum(v for p, v in zip(paths, values) if p.entry_step == k)
            np.testing.assert_allclose(mine, partial, rtol=1e-9, atol=scale)


def test_partial_is_not_the_total_when_T_is_2():
    dims = Dims(N=2, D=2, H=2, C=2, T=2)
    grads = compile_gradients(_derivation(dims), ["W_h"], partials=True)(random_point(dims, 1))
    assert np.abs(grads["W_h^(2)"] - grads["W_h"]).max() > 1e-3
    _, truncated = reference.forward_backward_dict(random_point(dims, 1), truncate=0)
    assert np.abs(grads["W_h^(1)"] + grads["W_h^(2)"] - truncated["W_h"]).max() > 1e-6


@pytest.mark.parametrize("name", ["W_h", "W_x", "b", "h0"])
def test_no_recurrent_term_is_the_sum_of_the_one_step_paths(name):
    # Forgetting the recurrent term keeps exactly the paths that enter and leave at one step,
    # which with a loss at every step is not the last partial derivative.
    dims = Dims(N=2, D=2, H=2, C=3, T=3)
    arrays = random_point(dims, 4)
    paths, values, grads = _evaluate_paths(dims, arrays, name)
    one_step = sum(v for p, v in zip(paths, values) if p.entry_step == p.loss_step)
    _, truncated = reference.forward_backward_dict(arrays, truncate=0)
    np.testing.assert_allclose(one_step, truncated[name], rtol=1e-9, atol=1e-12)
    if name != "h0":
        assert np.abs(grads[f"{name}^({dims.T})"] - truncated[name]).max() > 1e-3


def _sympy_loss(dims, symbols):
    """The loss written again, independently, as one SymPy expression in the raw inputs."""
    T, N, C = dims.T, dims.N, dims.C
    W_x, W_h, V = (sp.Matrix(symbols[k]) for k in ("W_x", "W_h", "V"))
    b, c = sp.Matrix([symbols["b"]]), sp.Matrix([symbols["c"]])
    h = sp.Matrix(symbols["h0"])
    loss = 0
    for t in range(T):
        x = sp.Matrix(symbols["x"][t])
        h = (h * W_h + x * W_x + sp.ones(N, 1) * b).applyfunc(sp.tanh)
        o = h * V + sp.ones(N, 1) * c
        for i in range(N):
            lse = sp.log(sum(sp.exp(o[i, k]) for k in range(C)))
            loss += lse - sum(symbols["Y"][t][i][k] * o[i, k] for k in range(C))
    return loss


@pytest.mark.parametrize("dims", [Dims(1, 1, 1, 2, 2), Dims(2, 1, 2, 2, 2), Dims(1, 2, 1, 3, 3)])
def test_total_matches_sympy_diff_of_the_expanded_loss(dims):
    arrays = random_point(dims, 11)
    shapes = {k: arrays[k].shape for k in ("x", "h0", "W_x", "W_h", "b", "V", "c")}
    symbols = {
        k: np.array(sp.symbols(f"{k}_0:{max(1, int(np.prod(s)))}"), dtype=object).reshape(s)
        for k, s in shapes.items()
    }
    symbols["Y"] = (arrays["y"][..., None] == np.arange(dims.C)).astype(int).tolist()
    loss = _sympy_loss(dims, symbols)
    point = {s: float(v) for k in shapes for s, v in zip(symbols[k].flat, arrays[k].flat)}
    ours = compile_gradients(_derivation(dims))(arrays)
    assert float(loss.subs(point)) == pytest.approx(float(ours["loss"]), rel=1e-12)
    for name in ("W_h", "W_x", "b", "h0"):
        for s, mine in zip(symbols[name].flat, ours[name].flat):
            assert float(sp.diff(loss, s).subs(point)) == pytest.approx(mine, rel=1e-10), s


def test_expand_writes_the_total_in_raw_inputs():
    dims = Dims(1, 1, 1, 2, 2)
    d = _derivation(dims)
    expanded = d.expand(d.total_derivative("W_h"))[0, 0]
    names = {s.name for s in expanded.free_symbols}
    assert names and all(not n.startswith(("a_", "h_", "o_", "d_", "m_")) for n in names)
    arrays = random_point(dims, 2)
    values = {
        "W_h_0_0": arrays["W_h"][0, 0],
        "W_x_0_0": arrays["W_x"][0, 0],
        "b_0": arrays["b"][0],
        "h0_0_0": arrays["h0"][0, 0],
    }
    values.update({f"V_0_{k}": arrays["V"][0, k] for k in range(2)})
    values.update({f"c_{k}": arrays["c"][k] for k in range(2)})
    values.update({f"x_{t}_0_0": arrays["x"][t - 1, 0, 0] for t in (1, 2)})
    values.update(
        {f"Y_{t}_0_{k}": float(arrays["y"][t - 1, 0] == k) for t in (1, 2) for k in (0, 1)}
    )
    subs = {s: values[s.name] for s in expanded.free_symbols}
    _, grads = reference.forward_backward_dict(arrays)
    assert float(expanded.subs(subs)) == pytest.approx(grads["W_h"][0, 0], rel=1e-12)


def test_expand_refuses_large_T():
    d = _derivation(Dims(1, 1, 1, 2, MAX_EXPAND_T + 1))
    with pytest.raises(ExpansionTooLargeError, match="too large to write the derivative out"):
        d.expand(d.total_derivative("W_h"))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda d: d.partial_derivative("W_q", 1), "unknown parameter name 'W_q'"),
        (lambda d: d.partial_derivative("h0", 1), "unknown parameter name 'h0'"),
        (lambda d: d.partial_derivative("W_h", 3), "step=3 is outside 1..T=2"),
        (lambda d: d.paths("Vee"), "did you mean 'V'"),
    ],
    ids=["unknown", "not shared", "step out of range", "close match"],
)
def test_bad_names(call, message):
    with pytest.raises(UnknownNameError, match=message):
        call(_derivation(Dims(1, 1, 1, 2, 2)))


@pytest.mark.parametrize("T", [1, 3, 6])
def test_path_count_matches_the_listing(T):
    d = _derivation(Dims(N=1, D=1, H=1, C=2, T=T))
    for name in GRADIENT_NAMES:
        assert d.path_count(name) == len(d.paths(name))


def test_a_long_path_is_pulled_back_without_recursion():
    import sys

    dims = Dims(N=1, D=1, H=1, C=2, T=300)
    d = derive(unroll(dims))
    longest = max(d.paths("h0"), key=lambda p: len(p.nodes))
    assert longest.loss_step == 300 and len(longest.nodes) > 600
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)  # far below the path's length
    try:
        symbols = d.path_contribution(longest)
    finally:
        sys.setrecursionlimit(limit)
    assert symbols.shape == (1, 1)
