"""Tests of symbptt.checking.mistakes: the known mistakes, above all the simulated missing
transpose.

The simulator `untransposed_recurrence` is checked against a student's hand-written BPTT
with that bug (from the corpus), against a per-loss-term loop written here for every
variant, and against the identity that makes the bug invisible: with a symmetric W_h it
equals the truth.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import pytest
from bptt_corpus import case_by_name
from hypothesis import given, settings
from hypothesis import strategies as st

from symbptt import reference
from symbptt.checking.mistakes import CAUSES, alternatives, untransposed_recurrence
from symbptt.errors import InputArrayError, InvalidArgumentError
from symbptt.models.dims import GRADIENT_NAMES, Dims, random_point

SETTINGS = settings(deadline=None)  # examples and derandomisation: the conftest profile

dims_strategy = st.builds(
    Dims,
    N=st.integers(1, 3),
    D=st.integers(1, 3),
    H=st.integers(1, 3),
    C=st.integers(2, 4),
    T=st.integers(1, 4),
)
seeds = st.integers(0, 2**16)


@dataclass(frozen=True)
class Variant:
    activation: str = "tanh"
    reduction: str = "sum"
    inputs: str = "dense"
    truncate: int | None = None
    b: bool = True
    c: bool = True
    h0: bool = True

    def options(self) -> dict:
        return {
            "activation": self.activation,
            "reduction": self.reduction,
            "inputs": self.inputs,
            "truncate": self.truncate,
        }


variants = st.builds(
    Variant,
    activation=st.sampled_from(reference.ACTIVATIONS),
    reduction=st.sampled_from(reference.REDUCTIONS),
    inputs=st.sampled_from(reference.INPUT_KINDS),
    truncate=st.none() | st.integers(0, 4),
    b=st.booleans(),
    c=st.booleans(),
    h0=st.booleans(),
)


def variant_point(dims: Dims, seed: int, v: Variant) -> dict[str, np.ndarray]:
    arrays = random_point(dims, seed)
    if v.inputs == "tokens":
        arrays["x"] = np.random.default_rng(seed + 1).integers(0, dims.D, size=(dims.T, dims.N))
    for name in ("b", "c", "h0"):
        if not getattr(v, name):
            del arrays[name]
    return arrays


ACT = {"tanh": np.tanh, "relu": lambda a: np.maximum(a, 0.0), "identity": lambda a: a}
SLOPE = {
    "tanh": lambda h: 1.0 - h * h,
    "relu": lambda h: (h > 0).astype(float),
    "identity": np.ones_like,
}


def student_with_missing_transpose(a: dict, v: Variant, dh=None) -> dict[str, np.ndarray]:
    """Each loss term's gradient walked back alone, path by path, with g W_h where g W_h^T
    belongs; dh given: the layer's upstream gradient, else the loss's."""
    T, N = a["x"].shape[:2]
    H = a["W_h"].shape[0]
    onehot = np.eye(a["W_x"].shape[0])
    x = onehot[a["x"]] if v.inputs == "tokens" else a["x"]
    h0 = a.get("h0", np.zeros((N, H)))
    hs, h = [], h0
    for t in range(T):
        h = ACT[v.activation](h @ a["W_h"] + x[t] @ a["W_x"] + a.get("b", 0.0))
        hs.append(h)
    if dh is None:
        dh = []
        for t in range(T):
            logits = hs[t] @ a["V"] + a.get("c", 0.0)
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(N), a["y"][t]] -= 1.0
            dh.append(p @ a["V"].T / (N * T if v.reduction == "mean" else 1.0))
    g_W_x, g_W_h = np.zeros_like(a["W_x"]), np.zeros_like(a["W_h"])
    g_b, g_h0, g_x = np.zeros(H), np.zeros((N, H)), np.zeros(x.shape)
    reach = T if v.truncate is None else v.truncate
    for t in range(T):
        g = dh[t] * SLOPE[v.activation](hs[t])
        for s in range(t, max(t - reach, 0) - 1, -1):
            h_prev = hs[s - 1] if s > 0 else h0
            g_W_x += x[s].T @ g
            g_W_h += h_prev.T @ g
            g_b += g.sum(axis=0)
            g_x[s] += g @ a["W_x"].T
            if s == 0:
                g_h0 += g @ a["W_h"]  # the mistake, in dh0 too
            else:
                g = (g @ a["W_h"]) * SLOPE[v.activation](hs[s - 1])
    grads = {"W_x": g_W_x, "W_h": g_W_h, "b": g_b, "h0": g_h0, "x": g_x}
    if v.inputs == "tokens":
        del grads["x"]
    return grads


def assert_same(actual: dict, expected: dict, what: str) -> None:
    for name, value in expected.items():
        atol = 1e-13 * max(1.0, float(np.abs(value).max(initial=0.0)))
        np.testing.assert_allclose(actual[name], value, rtol=1e-11, atol=atol, err_msg=name)


# --- the simulated missing transpose -------------------------------------------------------


def test_untransposed_recurrence_models_the_missing_transpose_bug():
    dims = Dims(N=2, D=3, H=3, C=2, T=4)
    arrays = random_point(dims, 12)
    modelled = untransposed_recurrence(arrays)
    _, student = case_by_name("missing_transpose_recurrent").fn(**arrays)
    _, truth = reference.forward_backward_dict(arrays)
    assert tuple(modelled) == GRADIENT_NAMES
    for name in GRADIENT_NAMES:
        np.testing.assert_allclose(modelled[name], student[name], rtol=1e-12, atol=1e-14)
    assert not np.allclose(modelled["W_h"], truth["W_h"])
    # With a symmetric W_h the mistake is invisible.
    symmetric = {**arrays, "W_h": arrays["W_h"] + arrays["W_h"].T}
    a = untransposed_recurrence(symmetric)
    b = reference.forward_backward_dict(symmetric)[1]
    np.testing.assert_allclose(a["W_h"], b["W_h"], rtol=1e-12)


@SETTINGS
@given(dims=dims_strategy, seed=seeds, v=variants)
def test_untransposed_recurrence_matches_a_student_loop_in_every_variant(dims, seed, v):
    arrays = variant_point(dims, seed, v)
    modelled = untransposed_recurrence(arrays, **v.options())
    _, truth = reference.forward_backward_dict(arrays, **v.options())
    assert list(modelled) == list(truth)
    for name in ("V", "c"):  # the mistake is in the recurrence, after these
        if name in truth:
            np.testing.assert_array_equal(modelled[name], truth[name])
    expected = student_with_missing_transpose(arrays, v)
    assert_same(modelled, {k: g for k, g in expected.items() if k in truth}, str(v))


FIXED_VARIANTS = [
    pytest.param(Variant(truncate=1), id="truncate-1"),
    pytest.param(Variant(truncate=2), id="truncate-2"),
    pytest.param(Variant("relu", "mean", "tokens", 1, b=False, h0=False), id="relu-tokens-k1"),
    pytest.param(Variant("identity", "mean", "dense", None, c=False), id="identity-mean"),
]


@pytest.mark.parametrize("v", FIXED_VARIANTS)
@pytest.mark.parametrize("form", ["full", "layer"])
def test_untransposed_recurrence_on_a_shape_where_everything_shows(v, form):
    dims = Dims(N=2, D=3, H=3, C=3, T=4)
    arrays = variant_point(dims, 9, v)
    dh = (
        np.random.default_rng(9).standard_normal((dims.T, dims.N, dims.H))
        if form == "layer"
        else None
    )
    given = arrays if dh is None else {**arrays, "dh": dh}
    modelled = untransposed_recurrence(given, form, **v.options())
    expected = student_with_missing_transpose(arrays, v, dh=dh)
    assert_same(modelled, {k: g for k, g in expected.items() if k in modelled}, str(v))
    if v.truncate is not None:  # and the truncation really cut something
        full = untransposed_recurrence(given, form, **{**v.options(), "truncate": None})
        assert np.abs(full["W_h"] - modelled["W_h"]).max() > 1e-3


@SETTINGS
@given(dims=dims_strategy, seed=seeds, v=variants)
def test_untransposed_recurrence_of_the_layer_matches_a_student_loop(dims, seed, v):
    arrays = variant_point(dims, seed, v)
    dh = np.random.default_rng(seed).standard_normal((dims.T, dims.N, dims.H))
    options = {k: o for k, o in v.options().items() if k != "reduction"}
    modelled = untransposed_recurrence({**arrays, "dh": dh}, "layer", **v.options())
    layer = [arrays.get(name) for name in ("x", "h0", "W_x", "W_h", "b")]
    truth = reference.layer_vjp(*layer, dh, **options)
    assert list(modelled) == list(truth)
    expected = student_with_missing_transpose(arrays, v, dh=dh)
    assert_same(modelled, {k: g for k, g in expected.items() if k in truth}, str(v))


@SETTINGS
@given(dims=dims_strategy, seed=seeds, v=variants)
def test_with_a_symmetric_W_h_the_mistake_is_the_truth(dims, seed, v):
    arrays = variant_point(dims, seed, v)
    arrays["W_h"] = arrays["W_h"] + arrays["W_h"].T
    _, truth = reference.forward_backward_dict(arrays, **v.options())
    assert_same(untransposed_recurrence(arrays, **v.options()), truth, str(v))


def test_the_simulator_refuses_what_the_reference_refuses():
    arrays = random_point(Dims(N=1, D=1, H=2, C=2, T=2))
    with pytest.raises(InvalidArgumentError, match="activation='gelu'"):
        untransposed_recurrence(arrays, activation="gelu")
    with pytest.raises(InputArrayError, match="W_h has shape"):
        untransposed_recurrence({**arrays, "W_h": np.zeros((2, 3))})


# --- alternatives -------------------------------------------------------------------------


def test_alternatives_keep_their_signature_and_order():
    parameters = list(inspect.signature(alternatives).parameters)
    assert parameters[:5] == ["name", "truth", "dims", "arrays", "form"]
    dims = Dims(N=2, D=2, H=2, C=3, T=3)
    arrays = random_point(dims, 3)
    _, truth = reference.forward_backward_dict(arrays)
    found = list(alternatives("W_h", truth["W_h"], dims, arrays, "full"))
    assert [alt.cause for alt in found] == [
        "transposed",
        "zero",
        "sign_flipped",
        "scaled_by_N",
        "scaled_by_T",
        "scaled_by_NT",
        "no_recurrent_term",
        "truncated",
        "untransposed_recurrence",
        "h_t_for_h_prev",
        "zero_initial_state",
    ]
    assert all(alt.cause in CAUSES for alt in found)
    by_cause = {alt.cause: alt for alt in found}
    np.testing.assert_array_equal(
        by_cause["no_recurrent_term"].value,
        reference.forward_backward_dict(arrays, truncate=0)[1]["W_h"],
    )
    assert by_cause["truncated"].detail == "each loss term reaches back 1 step"
    np.testing.assert_array_equal(
        by_cause["untransposed_recurrence"].value, untransposed_recurrence(arrays)["W_h"]
    )
    loss_causes = [a.cause for a in alternatives("loss", np.float64(1.0), dims, arrays, "full")]
    assert loss_causes == ["zero", "sign_flipped", "scaled_by_N", "scaled_by_T", "scaled_by_NT"]


def test_alternatives_of_a_variant_use_its_options():
    dims = Dims(N=2, D=3, H=2, C=3, T=3)
    v = Variant(activation="relu", reduction="mean", inputs="tokens", b=False, h0=False)
    arrays = variant_point(dims, 5, v)
    _, truth = reference.forward_backward_dict(arrays, **v.options())
    found = {
        a.cause: a for a in alternatives("W_x", truth["W_x"], dims, arrays, "full", **v.options())
    }
    expected = reference.forward_backward_dict(arrays, **{**v.options(), "truncate": 0})[1]
    np.testing.assert_array_equal(found["no_recurrent_term"].value, expected["W_x"])
    mistaken = untransposed_recurrence(arrays, **v.options())["W_x"]
    np.testing.assert_array_equal(found["untransposed_recurrence"].value, mistaken)
    # The layer form takes the same options; reduction has no meaning there and is dropped.
    layer_arrays = {**arrays, "dh": np.ones((dims.T, dims.N, dims.H))}
    layer = [layer_arrays.get(n) for n in ("x", "h0", "W_x", "W_h", "b")]
    dh = layer_arrays["dh"]
    truth_vjp = reference.layer_vjp(*layer, dh, activation="relu", inputs="tokens")
    found = list(alternatives("W_h", truth_vjp["W_h"], dims, layer_arrays, "layer", **v.options()))
    causes = [a.cause for a in found]
    assert causes[-2:] == ["untransposed_recurrence", "h_t_for_h_prev"]  # h0 fixed at zero
