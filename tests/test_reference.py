"""Tests of symbptt.reference, the NumPy oracle every symbolic result is checked against.

The oracle is checked against witnesses that share none of its code: central finite
differences, a per-sequence loop written from the model equations, a stop-gradient
objective whose gradient is truncated BPTT by construction, and hand-computed values.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symbptt.errors import InputArrayError, UnknownNameError, UserFunctionError
from symbptt.model import GRADIENT_NAMES, INPUT_NAMES, Dims, random_point
from symbptt.reference import (
    finite_differences,
    forward_backward,
    forward_backward_dict,
    layer_forward,
    layer_vjp,
    loss,
    loss_per_step,
)

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True)
RTOL, ATOL = 1e-5, 1e-7  # finite differences: eps=1e-6 leaves errors near 1e-9
LAYER_NAMES = ("x", "h0", "W_x", "W_h", "b")

dims_strategy = st.builds(
    Dims,
    N=st.integers(1, 3),
    D=st.integers(1, 3),
    H=st.integers(1, 3),
    C=st.integers(2, 4),
    T=st.integers(1, 4),
)
seeds = st.integers(0, 2**16)

EDGE_DIMS = [
    pytest.param(Dims(N=2, D=3, H=1, C=3, T=3), id="H=1"),
    pytest.param(Dims(N=1, D=2, H=3, C=2, T=3), id="N=1"),
    pytest.param(Dims(N=2, D=2, H=3, C=4, T=1), id="T=1"),
    pytest.param(Dims(N=2, D=3, H=3, C=3, T=4), id="D==H"),
    pytest.param(Dims(N=1, D=1, H=1, C=2, T=1), id="all-minimal"),
]


def assert_close(actual, expected, what: str, rtol=RTOL, atol=ATOL) -> None:
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


def total_loss(arrays: dict[str, np.ndarray]) -> float:
    return loss(**arrays)


def layer_inputs(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: arrays[name] for name in LAYER_NAMES}


def naive_hidden_and_loss(a: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """One sequence and one step at a time, straight from the equations, in math.*."""
    T, N, _ = a["x"].shape
    H, C = a["V"].shape
    hidden = np.zeros((T, N, H))
    per_step = np.zeros(T)
    for i in range(N):
        h = a["h0"][i]
        for t in range(T):
            pre = [
                a["b"][j]
                + sum(h[m] * a["W_h"][m, j] for m in range(H))
                + sum(a["x"][t, i, d] * a["W_x"][d, j] for d in range(a["x"].shape[2]))
                for j in range(H)
            ]
            h = np.array([math.tanh(v) for v in pre])
            hidden[t, i] = h
            logits = [a["c"][k] + sum(h[j] * a["V"][j, k] for j in range(H)) for k in range(C)]
            label = int(a["y"][t, i])
            per_step[t] += math.log(sum(math.exp(o) for o in logits)) - logits[label]
    return hidden, per_step


def stop_gradient_objective(at: dict[str, np.ndarray], k: int):
    """F(theta) = sum_t L_t(theta) with h_{t-k-1} frozen at its value at `at` (h0 stays live).

    Its gradient at `at` is the truncated-BPTT gradient by definition, so finite differences
    of F check `truncate=k` without sharing any code with the backward pass.
    """
    frozen = layer_forward(**layer_inputs(at))

    def objective(a: dict[str, np.ndarray]) -> float:
        total = 0.0
        for t in range(a["x"].shape[0]):
            start = max(t - k, 0)
            h = a["h0"] if start == 0 else frozen[start - 1]
            for s in range(start, t + 1):
                h = np.tanh(a["b"] + h @ a["W_h"] + a["x"][s] @ a["W_x"])
            logits = a["c"] + h @ a["V"]
            lse = np.log(np.exp(logits).sum(axis=1))
            total += float((lse - logits[np.arange(len(h)), a["y"][t]]).sum())
        return total

    return objective


# --- full BPTT ---------------------------------------------------------------------------


def check_gradients_match_finite_differences(dims: Dims, seed: int) -> None:
    arrays = random_point(dims, seed)
    value, grads = forward_backward_dict(arrays)
    assert tuple(grads) == GRADIENT_NAMES
    assert value == pytest.approx(total_loss(arrays), rel=1e-12)
    numeric = finite_differences(total_loss, arrays, GRADIENT_NAMES)
    for name in GRADIENT_NAMES:
        assert grads[name].shape == arrays[name].shape, name
        assert_close(grads[name], numeric[name], f"dL/d{name} for {dims}, seed {seed}")


@SETTINGS
@given(dims=dims_strategy, seed=seeds)
def test_gradients_match_finite_differences(dims, seed):
    check_gradients_match_finite_differences(dims, seed)


@pytest.mark.parametrize("dims", EDGE_DIMS)
def test_gradients_match_finite_differences_on_edge_shapes(dims):
    check_gradients_match_finite_differences(dims, seed=7)


@SETTINGS
@given(dims=dims_strategy, seed=seeds)
def test_forward_matches_per_sequence_loop(dims, seed):
    arrays = random_point(dims, seed)
    hidden, per_step = naive_hidden_and_loss(arrays)
    assert_close(layer_forward(**layer_inputs(arrays)), hidden, "h_t", rtol=1e-12)
    assert_close(loss_per_step(**arrays), per_step, "L_t", rtol=1e-12)


@SETTINGS
@given(dims=dims_strategy, seed=seeds)
def test_loss_per_step_sums_to_loss(dims, seed):
    arrays = random_point(dims, seed)
    steps = loss_per_step(**arrays)
    assert steps.shape == (dims.T,)
    assert np.all(steps > 0)  # every term is a sum of cross-entropies
    assert steps.sum() == pytest.approx(loss(**arrays), rel=1e-12)
    assert steps.sum() == pytest.approx(forward_backward_dict(arrays)[0], rel=1e-12)


def test_positional_and_dict_calls_agree():
    arrays = random_point(Dims(N=2, D=3, H=2, C=3, T=3), seed=3)
    by_dict = forward_backward_dict(arrays)
    by_position = forward_backward(*(arrays[name] for name in INPUT_NAMES))
    assert by_dict[0] == by_position[0]
    for name in GRADIENT_NAMES:
        np.testing.assert_array_equal(by_dict[1][name], by_position[1][name])


# --- numerical stability -----------------------------------------------------------------


@SETTINGS
@given(dims=dims_strategy, seed=seeds)
def test_loss_and_gradients_stay_finite_for_logits_near_1000(dims, seed):
    arrays = random_point(dims, seed, scale=1000.0)
    value, grads = forward_backward_dict(arrays)
    assert math.isfinite(value) and value >= 0
    assert np.all(np.isfinite(loss_per_step(**arrays)))
    for name in GRADIENT_NAMES:
        assert np.all(np.isfinite(grads[name])), name


def test_logits_of_1000_give_the_exact_loss_and_gradient():
    # b=20 saturates tanh to exactly 1.0, so the logits are exactly c = [1000, 0, -1000].
    arrays = {
        "x": np.zeros((1, 2, 1)),
        "y": np.array([[1, 0]]),
        "h0": np.zeros((2, 1)),
        "W_x": np.zeros((1, 1)),
        "W_h": np.zeros((1, 1)),
        "b": np.array([20.0]),
        "V": np.zeros((1, 3)),
        "c": np.array([1000.0, 0.0, -1000.0]),
    }
    value, grads = forward_backward_dict(arrays)
    assert value == 1000.0  # label 1 costs 1000, label 0 costs e^-1000 ~ 0
    np.testing.assert_array_equal(grads["c"], [1.0, -1.0, 0.0])
    np.testing.assert_array_equal(grads["V"], [[1.0, -1.0, 0.0]])


# --- truncated BPTT ----------------------------------------------------------------------


@SETTINGS
@given(dims=dims_strategy, seed=seeds, k=st.integers(0, 4))
def test_truncated_gradients_match_stop_gradient_finite_differences(dims, seed, k):
    arrays = random_point(dims, seed)
    _, grads = forward_backward_dict(arrays, truncate=k)
    numeric = finite_differences(stop_gradient_objective(arrays, k), arrays, GRADIENT_NAMES)
    for name in GRADIENT_NAMES:
        assert_close(grads[name], numeric[name], f"truncate={k}: dL/d{name} for {dims}")


@pytest.mark.parametrize("dims", EDGE_DIMS)
@pytest.mark.parametrize("k", [0, 1, 2])
def test_truncated_gradients_match_stop_gradient_on_edge_shapes(dims, k):
    arrays = random_point(dims, seed=11)
    _, grads = forward_backward_dict(arrays, truncate=k)
    numeric = finite_differences(stop_gradient_objective(arrays, k), arrays, GRADIENT_NAMES)
    for name in GRADIENT_NAMES:
        assert_close(grads[name], numeric[name], f"truncate={k}: dL/d{name} for {dims}")


@SETTINGS
@given(dims=dims_strategy, seed=seeds, extra=st.integers(-1, 3))
def test_truncating_at_T_minus_1_or_more_equals_full_bptt(dims, seed, extra):
    arrays = random_point(dims, seed)
    full_value, full = forward_backward_dict(arrays)
    value, truncated = forward_backward_dict(arrays, truncate=dims.T + extra)
    assert value == full_value
    for name in GRADIENT_NAMES:
        assert_close(truncated[name], full[name], name, rtol=1e-12, atol=1e-14)


@SETTINGS
@given(dims=dims_strategy.filter(lambda d: d.T == 1), seed=seeds)
def test_truncate_zero_equals_full_bptt_when_T_is_1(dims, seed):
    arrays = random_point(dims, seed)
    full = forward_backward_dict(arrays)[1]
    truncated = forward_backward_dict(arrays, truncate=0)[1]
    for name in GRADIENT_NAMES:
        assert_close(truncated[name], full[name], name, rtol=1e-12, atol=1e-14)


def test_truncation_changes_the_recurrent_gradient_when_T_is_at_least_2():
    arrays = random_point(Dims(N=2, D=3, H=3, C=3, T=3), seed=0)
    full = forward_backward_dict(arrays)[1]["W_h"]
    k0 = forward_backward_dict(arrays, truncate=0)[1]["W_h"]
    k1 = forward_backward_dict(arrays, truncate=1)[1]["W_h"]
    assert np.abs(full - k0).max() > 1e-3
    assert np.abs(full - k1).max() > 1e-6
    assert np.abs(k1 - k0).max() > 1e-3


def test_truncate_zero_gives_each_step_only_its_direct_gradient():
    # With k=0, dL/dW_h = sum_t h_{t-1}^T da_t where da_t = (dL_t/dh_t) * (1 - h_t^2).
    arrays = random_point(Dims(N=2, D=2, H=2, C=3, T=3), seed=5)
    hs = layer_forward(**layer_inputs(arrays))
    logits = hs @ arrays["V"] + arrays["c"]
    probs = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    dlogits = probs - np.eye(3)[arrays["y"]]
    da = (dlogits @ arrays["V"].T) * (1 - hs**2)
    h_prev = np.concatenate([arrays["h0"][None], hs[:-1]])
    expected = sum(h_prev[t].T @ da[t] for t in range(3))
    actual = forward_backward_dict(arrays, truncate=0)[1]
    assert_close(actual["W_h"], expected, "dL/dW_h at truncate=0", rtol=1e-12)
    assert_close(actual["h0"], da[0] @ arrays["W_h"].T, "dL/dh0 at truncate=0", rtol=1e-12)


@pytest.mark.parametrize(
    "truncate",
    [
        pytest.param(-1, id="negative"),
        pytest.param(1.5, id="fractional"),
        pytest.param(2.0, id="float"),
        pytest.param(True, id="bool"),
        pytest.param("2", id="string"),
    ],
)
def test_bad_truncate_is_refused_with_a_sentence(truncate):
    arrays = random_point(Dims(N=1, D=1, H=1, C=2, T=2))
    with pytest.raises(ValueError, match=r"truncate=.* must be None .* non-negative"):
        forward_backward_dict(arrays, truncate=truncate)


def test_numpy_integer_truncate_is_accepted():
    arrays = random_point(Dims(N=1, D=1, H=2, C=2, T=3))
    expected = forward_backward_dict(arrays, truncate=1)[1]["W_h"]
    actual = forward_backward_dict(arrays, truncate=np.int64(1))[1]["W_h"]
    np.testing.assert_array_equal(actual, expected)


# --- the RNN layer alone -----------------------------------------------------------------


def check_layer_vjp_matches_finite_differences(dims: Dims, seed: int) -> None:
    inputs = layer_inputs(random_point(dims, seed))
    dh = np.random.default_rng(seed + 1).standard_normal((dims.T, dims.N, dims.H))
    vjp = layer_vjp(**inputs, dh=dh)
    assert set(vjp) == set(LAYER_NAMES)

    def pairing(a: dict[str, np.ndarray]) -> float:
        return float(np.sum(dh * layer_forward(**a)))

    numeric = finite_differences(pairing, inputs, LAYER_NAMES)
    for name in LAYER_NAMES:
        assert vjp[name].shape == inputs[name].shape, name
        assert_close(vjp[name], numeric[name], f"VJP w.r.t. {name} for {dims}")


@SETTINGS
@given(dims=dims_strategy, seed=seeds)
def test_layer_vjp_matches_finite_differences(dims, seed):
    check_layer_vjp_matches_finite_differences(dims, seed)


@pytest.mark.parametrize("dims", EDGE_DIMS)
def test_layer_vjp_matches_finite_differences_on_edge_shapes(dims):
    check_layer_vjp_matches_finite_differences(dims, seed=13)


def test_layer_vjp_rejects_an_upstream_gradient_of_the_wrong_shape():
    inputs = layer_inputs(random_point(Dims(N=2, D=2, H=3, C=2, T=2)))
    with pytest.raises(InputArrayError, match="dh has shape"):
        layer_vjp(**inputs, dh=np.zeros((2, 2, 2)))


# --- inputs are never mutated ------------------------------------------------------------


def test_no_function_mutates_its_inputs():
    arrays = random_point(Dims(N=2, D=3, H=2, C=3, T=3), seed=4)
    before = {name: value.copy() for name, value in arrays.items()}
    dh = np.ones((3, 2, 2))

    def mutating_loss(a: dict[str, np.ndarray]) -> float:
        value = loss(**a)
        a["V"] *= 2.0  # a careless user function must not reach the caller's arrays
        return value

    forward_backward_dict(arrays)
    forward_backward_dict(arrays, truncate=1)
    forward_backward(*(arrays[name] for name in INPUT_NAMES), truncate=0)
    loss(**arrays)
    loss_per_step(**arrays)
    layer_forward(**layer_inputs(arrays))
    layer_vjp(**layer_inputs(arrays), dh=dh)
    finite_differences(total_loss, arrays, GRADIENT_NAMES)
    finite_differences(mutating_loss, arrays, ["W_h"])
    for name, value in before.items():
        np.testing.assert_array_equal(arrays[name], value, err_msg=name)
    np.testing.assert_array_equal(dh, np.ones((3, 2, 2)))


# --- finite differences and input validation ---------------------------------------------


def test_finite_differences_recover_a_known_derivative():
    arrays = {"u": np.array([[0.3, -1.2], [2.0, 0.0]]), "w": np.array([1.5])}
    grads = finite_differences(lambda a: float(np.sum(np.sin(a["u"]) * a["w"])), arrays, "u")
    assert set(grads) == {"u"}
    assert_close(grads["u"], 1.5 * np.cos(arrays["u"]), "d/du sum(w sin u)", rtol=1e-8)


def test_finite_differences_resolve_aliases():
    arrays = random_point(Dims(N=1, D=1, H=2, C=2, T=2))
    grads = finite_differences(total_loss, arrays, ["Wh"])
    assert set(grads) == {"W_h"}


@pytest.mark.parametrize(
    ("f", "names", "eps", "error", "message"),
    [
        pytest.param(total_loss, ["W_hx"], 1e-6, UnknownNameError, "did you mean", id="typo"),
        pytest.param(total_loss, ["y"], 1e-6, InputArrayError, "need floats", id="int-array"),
        pytest.param(lambda a: 1 / 0, ["b"], 1e-6, UserFunctionError, "raised", id="raises"),
        pytest.param(lambda a: a["b"], ["b"], 1e-6, UserFunctionError, "finite scalar", id="array"),
        pytest.param(lambda a: math.nan, ["b"], 1e-6, UserFunctionError, "finite scalar", id="nan"),
        pytest.param(total_loss, ["b"], 0.0, ValueError, "positive", id="eps=0"),
    ],
)
def test_finite_differences_refuse_bad_calls(f, names, eps, error, message):
    arrays = random_point(Dims(N=1, D=1, H=2, C=2, T=2))
    with pytest.raises(error, match=message):
        finite_differences(f, arrays, names, eps=eps)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        pytest.param("W_h", np.zeros((2, 3)), "W_h has shape", id="W_h-shape"),
        pytest.param("y", np.full((2, 1), 5), "labels outside", id="label-range"),
        pytest.param("c", np.array([0.0, np.inf]), "non-finite", id="inf"),
        pytest.param("x", np.zeros((2, 1)), "must have 3, 2 and 2 axes", id="x-axes"),
    ],
)
def test_bad_model_inputs_raise_input_array_error(name, value, message):
    arrays = random_point(Dims(N=1, D=1, H=2, C=2, T=2))
    arrays[name] = value
    with pytest.raises(InputArrayError, match=message):
        forward_backward_dict(arrays)


def test_missing_or_unexpected_arrays_are_named():
    arrays = random_point(Dims(N=1, D=1, H=1, C=2, T=1))
    with pytest.raises(InputArrayError, match="missing input array.*V"):
        forward_backward_dict({k: v for k, v in arrays.items() if k != "V"})
    with pytest.raises(InputArrayError, match="unexpected input array.*W_y"):
        forward_backward_dict({**arrays, "W_y": np.zeros(1)})


# --- truncated layer VJP ---------------------------------------------------------------------


@pytest.mark.parametrize("dims", EDGE_DIMS + [Dims(N=2, D=3, H=2, C=2, T=4)])
def test_layer_vjp_truncation(dims):
    a = random_point(dims, 5)
    dh = np.random.default_rng(6).standard_normal((dims.T, dims.N, dims.H))
    args = (a["x"], a["h0"], a["W_x"], a["W_h"], a["b"], dh)
    full = layer_vjp(*args)
    for name, value in layer_vjp(*args, truncate=max(dims.T - 1, 0)).items():
        np.testing.assert_allclose(value, full[name], rtol=1e-13, atol=1e-15)
    # With no recurrent flow each step's dh only reaches its own pre-activation.
    hs = layer_forward(*args[:5])
    h_prev = np.concatenate([a["h0"][None], hs[:-1]])
    da = dh * (1 - hs**2)
    expected = sum(h_prev[t].T @ da[t] for t in range(dims.T))
    np.testing.assert_allclose(layer_vjp(*args, truncate=0)["W_h"], expected, rtol=1e-12)


# --- the missing-transpose mistake model ------------------------------------------------------


def test_untransposed_recurrence_models_the_missing_transpose_bug():
    from bptt_corpus import case_by_name

    dims = Dims(N=2, D=3, H=3, C=2, T=4)
    arrays = random_point(dims, 12)
    _, modelled = forward_backward_dict(arrays, untransposed_recurrence=True)
    _, student = case_by_name("missing_transpose_recurrent").fn(**arrays)
    _, truth = forward_backward_dict(arrays)
    for name in GRADIENT_NAMES:
        np.testing.assert_allclose(modelled[name], student[name], rtol=1e-12, atol=1e-14)
    assert not np.allclose(modelled["W_h"], truth["W_h"])
    # With a symmetric W_h the mistake is invisible.
    symmetric = {**arrays, "W_h": arrays["W_h"] + arrays["W_h"].T}
    _, a = forward_backward_dict(symmetric, untransposed_recurrence=True)
    _, b = forward_backward_dict(symmetric)
    np.testing.assert_allclose(a["W_h"], b["W_h"], rtol=1e-12)
