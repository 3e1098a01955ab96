"""Model variants and models as data: the engine against the independent NumPy reference.

Every variant of the vanilla RNN (no bias, h0 fixed, token inputs, activation, mean, truncated
BPTT) and random combinations of them: the symbolic total derivative == the reference written
independently for the variant; truncated BPTT == the sum of the kept paths; token inputs == the
dense model fed one-hot ids. And a model that exists only in this file, derived by the same
engine: adding a model is one spec.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symbptt import reference
from symbptt.engine.compile import compile_paths, gradient_function
from symbptt.engine.derivatives import derive, sum_paths
from symbptt.engine.graph import unroll
from symbptt.errors import InvalidArgumentError
from symbptt.models import VANILLA
from symbptt.models.dims import Dims
from symbptt.models.spec import Input, ModelSpec
from symbptt.strategies import rnn_shapes

OPTIONS = st.fixed_dictionaries(
    {
        "no_bias": st.sampled_from([(), ("b",), ("c",), ("b", "c")]),
        "h0": st.sampled_from(["input", "zero"]),
        "inputs": st.sampled_from(["dense", "tokens"]),
        "activation": st.sampled_from(["tanh", "relu", "identity"]),
        "reduction": st.sampled_from(["sum", "mean"]),
        "truncate": st.one_of(st.none(), st.integers(0, 3)),
    }
)


def _reference(spec, arrays):
    o = spec.options
    options = dict(truncate=o.truncate, activation=o.activation, reduction=o.reduction)
    return reference.forward_backward_dict(arrays, inputs=o.inputs, **options)


@settings(max_examples=15)  # each example derives and compiles a new variant
@given(dims=rnn_shapes(max_T=3), options=OPTIONS, seed=st.integers(0, 2**16))
def test_every_variant_agrees_with_the_reference(dims, options, seed):
    spec = VANILLA.variant(**options)
    arrays = spec.random_point(dims, seed)
    symbolic = gradient_function(dims, spec).call_unchecked(spec.validate(dims, arrays))
    loss, grads = _reference(spec, arrays)
    assert set(grads) == set(spec.gradient_names)
    np.testing.assert_allclose(symbolic["loss"], loss, rtol=1e-9)
    for name, value in grads.items():
        scale = 1e-12 * (1 + np.abs(value).max())
        np.testing.assert_allclose(symbolic[name], value, rtol=1e-9, atol=scale, err_msg=name)


@pytest.mark.parametrize("K", [0, 1, 2])
@pytest.mark.parametrize("name", ["W_h", "W_x", "b", "h0", "x"])
def test_truncated_bptt_is_the_sum_of_the_kept_paths(K, name):
    dims = Dims(N=2, D=2, H=2, C=3, T=4)
    spec = VANILLA.variant(truncate=K)
    arrays = spec.random_point(dims, 5)
    derivation = derive(unroll(dims, spec=spec))
    paths = derivation.paths(name)
    assert all(p.loss_step - p.entry_step <= K for p in paths)
    values = compile_paths(derivation, paths)(arrays)
    total = gradient_function(dims, spec)(arrays)[name]
    kept = sum_paths(paths, [values[f"path{i}"] for i in range(len(paths))], total.shape)
    np.testing.assert_allclose(kept, total, rtol=1e-9, atol=1e-12)
    _, truth = _reference(spec, arrays)
    np.testing.assert_allclose(total, truth[name], rtol=1e-9, atol=1e-12)
    every = derivation.path_count(name, truncated=False)
    assert derivation.path_count(name) == len(paths) < every


def test_token_inputs_equal_the_dense_model_fed_one_hot_ids():
    dims = Dims(N=2, D=4, H=3, C=3, T=3)
    tokens = VANILLA.variant(inputs="tokens")
    arrays = tokens.random_point(dims, 7)
    dense_arrays = {**arrays, "x": np.eye(dims.D)[arrays["x"]]}
    by_ids = gradient_function(dims, tokens)(arrays)
    one_hot = gradient_function(dims, VANILLA)(dense_arrays)
    for name in ["loss", *tokens.gradient_names]:
        np.testing.assert_allclose(by_ids[name], one_hot[name], rtol=1e-12, err_msg=name)
    assert "x" not in by_ids


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(no_bias=("d",)), "no_bias names 'd', not a bias of the vanilla model"),
        (dict(h0="learned"), "h0='learned' must be one of input, zero"),
        (dict(activation="gelu"), "activation='gelu' must be one of tanh, relu, identity"),
        (dict(truncate=-1), "truncate=-1 must be a whole number of steps >= 0"),
        (dict(reduction="max"), "reduction='max' must be one of sum, mean"),
    ],
    ids=["unknown bias", "h0", "activation", "negative truncate", "reduction"],
)
def test_impossible_variants_are_one_sentence(options, message):
    with pytest.raises(InvalidArgumentError, match=message):
        VANILLA.variant(**options)


# -- a model that is only this file -------------------------------------------------------


def _deep_output_cell(ops, p, state, x_t):
    """A vanilla step whose output goes through one more tanh layer: o = c + tanh(d + h U) V."""
    (h_prev,) = state
    a = ops.affine("a", p["b"], (h_prev, p["W_h"]), (x_t, p["W_x"]))
    h = ops.apply("h", "tanh", a)
    z = ops.apply("z", "tanh", ops.affine("u", p["d"], (h, p["U"])))
    return (h,), ops.affine("o", p["c"], (z, p["V"]))


DEEP_OUTPUT = ModelSpec(
    name="deep-output",
    base_inputs=(
        Input("x", ("T", "N", "D"), "sequence"),
        Input("y", ("T", "N"), "label", integer=True, bound="C"),
        Input("h0", ("N", "H"), "initial"),
        Input("W_x", ("D", "H"), "parameter"),
        Input("W_h", ("H", "H"), "parameter"),
        Input("b", ("H",), "parameter"),
        Input("U", ("H", "H"), "parameter"),
        Input("d", ("H",), "parameter"),
        Input("V", ("H", "C"), "parameter"),
        Input("c", ("C",), "parameter"),
    ),
    cell=_deep_output_cell,
    biases=("b", "c", "d"),
)


def _deep_output_loss(a):
    """The test model's loss written out in NumPy, independently of the engine."""
    h, loss = a["h0"], 0.0
    for t in range(a["x"].shape[0]):
        h = np.tanh(a["b"] + h @ a["W_h"] + a["x"][t] @ a["W_x"])
        o = a["c"] + np.tanh(a["d"] + h @ a["U"]) @ a["V"]
        o = o - o.max(axis=1, keepdims=True)
        log_p = o - np.log(np.exp(o).sum(axis=1, keepdims=True))
        loss -= log_p[np.arange(len(o)), a["y"][t]].sum()
    return loss


def test_a_new_model_is_one_spec():
    dims = Dims(N=2, D=2, H=3, C=3, T=3)
    rng = np.random.default_rng(0)
    arrays = {
        item.name: (
            rng.integers(0, dims.C, item.shape_in(dims))
            if item.integer
            else 0.5 * rng.standard_normal(item.shape_in(dims))
        )
        for item in DEEP_OUTPUT.inputs
    }
    got = gradient_function(dims, DEEP_OUTPUT)(arrays)
    assert got["loss"] == pytest.approx(_deep_output_loss(arrays), rel=1e-12)
    for name in DEEP_OUTPUT.gradient_names:  # central differences of the independent loss
        numeric = reference.finite_differences(_deep_output_loss, arrays, [name])[name]
        np.testing.assert_allclose(got[name], numeric, rtol=1e-6, atol=1e-8, err_msg=name)


# -- the variants through check and the command line ---------------------------------------


def _reference_function(**options):
    """A correct hand-written function for a variant: it takes only the variant's arrays."""

    def fn(*args):
        names = VANILLA.variant(**options).names
        arrays = dict(zip(names, args))
        spec = VANILLA.variant(**options)
        return _reference(spec, arrays)

    return fn


@pytest.mark.parametrize(
    "options",
    [
        dict(no_bias=("b",), h0="zero"),
        dict(inputs="tokens", activation="relu"),
        dict(reduction="mean", no_bias=("c",)),
        dict(truncate=1, activation="identity"),
    ],
    ids=["no b, h0 zero", "tokens relu", "mean no c", "truncated identity"],
)
def test_check_knows_the_variant(options):
    from symbptt.checking.check import check_gradients

    model = VANILLA.variant(**options)
    report = check_gradients(_reference_function(**options), model=model, max_examples=15)
    assert report.ok, report.to_dict()
    assert {r.name for r in report.results} == {*model.gradient_names, "loss"}
    assert report.model["name"] == "vanilla"


def test_full_bptt_is_wrong_for_a_truncated_model():
    from symbptt.checking.check import check_gradients

    model = VANILLA.variant(truncate=1)
    report = check_gradients(_reference_function(), model=model, max_examples=30)
    assert not report.ok and "W_h" in report.wrong
    assert report.dims["T"] >= 3  # with T <= 2 every path reaches back at most one step


def test_derive_json_has_the_variants_arrays_and_options(capsys):
    import json

    from symbptt.cli import main

    argv = ["derive", "--T", "3", "--inputs", "tokens", "--no-bias", "b", "--h0", "zero"]
    code = main([*argv, "--truncate", "1", "--wrt", "W_x", "--json"])
    record = json.loads(capsys.readouterr().out)
    assert code == 0 and record["agrees"]
    assert record["model"]["inputs"] == "tokens" and record["model"]["truncate"] == 1
    assert set(record["arrays"]) == {"x", "y", "W_x", "W_h", "V", "c"}
    assert all(isinstance(v, int) for row in record["arrays"]["x"] for v in row)
    assert len(record["paths"]) == record["path_count"] == 5  # 6 paths, (k=1, t=3) reaches back 2
    assert record["paths_dropped"] == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--wrt", "b", "--no-bias", "b"], "has no gradient with respect to b"),
        (["--wrt", "x", "--inputs", "tokens"], "has no gradient with respect to x"),
        (["--wrt", "h0", "--h0", "zero"], "has no gradient with respect to h0"),
        (["--no-bias", "W_h"], "no_bias names 'W_h', not a bias of the vanilla model"),
    ],
    ids=["no b", "tokens x", "h0 zero", "not a bias"],
)
def test_impossible_derive_requests_exit_2(capsys, argv, message):
    from symbptt.cli import main

    code = main(["derive", *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1


# -- found in review -------------------------------------------------------------------------


@pytest.mark.parametrize("wrt", ["W_h", "h0", "W_x"])
def test_mean_and_truncation_together_list_the_kept_paths(capsys, wrt):
    import json

    from symbptt.cli import main

    code = main(
        ["derive", "--T", "5", "--reduction", "mean", "--truncate", "2", "--wrt", wrt, "--json"]
    )
    record = json.loads(capsys.readouterr().out)
    assert code == 0 and record["agrees"]
    assert len(record["paths"]) == record["path_count"]
    assert all(0 <= p["loss_step"] - p["entry_step"] <= 2 for p in record["paths"])
    assert all(p["loss_step"] >= 1 for p in record["paths"])


def test_a_truncation_longer_than_the_default_sequences_is_still_tested():
    from symbptt.checking.check import check_gradients

    model = VANILLA.variant(truncate=3)
    report = check_gradients(_reference_function(), model=model, max_examples=40)
    assert not report.ok and "W_h" in report.wrong  # full BPTT differs only at T >= 5
    assert check_gradients(_reference_function(truncate=3), model=model, max_examples=20).ok


def test_a_truncation_the_checker_cannot_tell_apart_is_refused():
    from symbptt.checking.check import check_gradients

    with pytest.raises(InvalidArgumentError, match="truncate=11 cannot be checked"):
        check_gradients(_reference_function(), model=VANILLA.variant(truncate=11))


def test_specs_with_different_cells_are_different_models():
    from dataclasses import replace

    def relu_cell(ops, p, state, x_t):
        (h_prev,) = state
        h = ops.apply("h", "relu", ops.affine("a", p["b"], (h_prev, p["W_h"]), (x_t, p["W_x"])))
        return (h,), ops.affine("o", p["c"], (h, p["V"]))

    other = replace(VANILLA, cell=relu_cell)
    assert other != VANILLA
    dims = Dims(N=2, D=2, H=2, C=3, T=2)
    arrays = VANILLA.random_point(dims, 0)
    assert (
        gradient_function(dims, other)(arrays)["loss"]
        != gradient_function(dims, VANILLA)(arrays)["loss"]
    )


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: VANILLA.variant(nobias=("b",)), "'nobias' is not an option of a model variant"),
        (
            lambda: _check(DEEP_OUTPUT),
            "know the vanilla RNN, the LSTM and the GRU and their variants",
        ),
        (
            lambda: _check(VANILLA.variant(reduction="mean"), form="layer"),
            "the layer form has no output layer and no loss",
        ),
    ],
    ids=["option typo", "another model", "layer form with a loss option"],
)
def test_requests_the_checker_cannot_honour_are_one_sentence(call, message):
    with pytest.raises(InvalidArgumentError, match=message):
        call()


def _check(model, **options):
    from symbptt.checking.check import check_gradients

    return check_gradients(lambda *a: None, model=model, max_examples=1, **options)
