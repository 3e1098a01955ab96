"""The gated cells' mistakes in closed form (`symbptt.checking.gated_mistakes`, issue 11).

(a) With no mistake the simulation is the truth: `symbptt.reference_gated`'s gradients in the
full form, central finite differences of sum_t <dh_t, h_t> in the layer form, on shapes with
H = 1, N = 1 and T = 1 among them. (b) Every program of tests/gated_corpus.py, run here in
this process (no checker), returns what its case says: the truth when it is right; when it is
wrong, a value unequal to the truth in exactly the gradients listed, and, where a cause is
named, the simulated mistake's value in every one of them (and no simulated mistake's value
where none is named). That proves the closed forms and the corpus's labels independently of
the checker.
"""

from __future__ import annotations

import gated_corpus
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symbptt.checking.gated_mistakes import CAUSES, MISTAKES, alternatives, simulate
from symbptt.reference import finite_differences
from symbptt.reference_gated import gru_forward_backward, lstm_forward_backward

GATES = {"lstm": 4, "gru": 3}
BIASES = {"lstm": ("b",), "gru": ("b_x", "b_h")}


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _point(model, form, N, D, H, C, T, seed, *, c0=False):
    """Canonical arrays, time-major, row layout; gates kept out of saturation."""
    rng = np.random.default_rng(seed)
    G = GATES[model]
    point = {
        "x": rng.standard_normal((T, N, D)),
        "h0": rng.uniform(-0.9, 0.9, (N, H)),
        "W_x": rng.standard_normal((D, G * H)) / np.sqrt(D),
        "W_h": rng.standard_normal((H, G * H)) / np.sqrt(H),
    }
    if c0:
        point["c0"] = rng.standard_normal((N, H))
    for name in BIASES[model]:
        point[name] = 0.3 * rng.standard_normal(G * H)
    if form == "full":
        point["y"] = rng.integers(0, C, (T, N))
        point["V"] = rng.standard_normal((H, C)) / np.sqrt(H)
        point["c"] = 0.1 * rng.standard_normal(C)
    else:
        point["dh"] = rng.standard_normal((T, N, H))
    return point


# -- (a) no mistake: the truth ----------------------------------------------------------------
def _hidden(model, p, gate_order="ifog", reset="after"):
    """h_1..h_T (T, N, H): a plain forward pass, for the finite differences."""
    N, H = p["x"].shape[1], p["W_h"].shape[0]
    h = p.get("h0", np.zeros((N, H)))
    c = p.get("c0", np.zeros((N, H)))
    zero = np.zeros(GATES[model] * H)
    out = []
    for x_t in p["x"]:
        if model == "lstm":
            a = x_t @ p["W_x"] + h @ p["W_h"] + p.get("b", zero)
            gate = {k: a[:, j * H : (j + 1) * H] for j, k in enumerate(gate_order)}
            c = _sigmoid(gate["f"]) * c + _sigmoid(gate["i"]) * np.tanh(gate["g"])
            h = _sigmoid(gate["o"]) * np.tanh(c)
        else:
            gx = x_t @ p["W_x"] + p.get("b_x", zero)
            gh = h @ p["W_h"] + p.get("b_h", zero)
            r = _sigmoid(gx[:, :H] + gh[:, :H])
            z = _sigmoid(gx[:, H : 2 * H] + gh[:, H : 2 * H])
            if reset == "after":
                inner = r * gh[:, 2 * H :]
            else:
                inner = (r * h) @ p["W_h"][:, 2 * H :] + p.get("b_h", zero)[2 * H :]
            h = (1 - z) * np.tanh(gx[:, 2 * H :] + inner) + z * h
        out.append(h)
    return np.stack(out)


VARIANTS = [
    ("lstm", {"gate_order": "ifog"}, False),
    ("lstm", {"gate_order": "ifgo"}, True),
    ("gru", {"reset": "after"}, False),
    ("gru", {"reset": "before"}, False),
]
IDS = ["lstm ifog", "lstm ifgo c0", "gru after", "gru before"]
SHAPES = st.tuples(*(st.integers(1, 3) for _ in range(3)), st.integers(2, 3), st.integers(1, 3))
#: (N, D, H, C, T): the edges, then hypothesis's.
EDGES = [(1, 1, 1, 2, 1), (1, 2, 1, 2, 3), (2, 1, 3, 2, 1), (3, 2, 2, 3, 4)]


def _reference(model, point, options):
    if model == "lstm":
        return lstm_forward_backward(point, **options)[1]
    return gru_forward_backward(point, **options)[1]


def _assert_truth_full(model, options, c0, shape, seed):
    point = _point(model, "full", *shape, seed, c0=c0)
    simulated = simulate(model, point, "full", **options)
    expected = _reference(model, point, options)
    order = ["W_x", "W_h", *BIASES[model], "V", "c", "h0", *(["c0"] * c0), "x"]
    assert list(simulated) == order
    assert set(simulated) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(simulated[name], value, rtol=1e-10, atol=1e-12, err_msg=name)


def _assert_truth_layer(model, options, c0, shape, seed):
    point = _point(model, "layer", *shape, seed, c0=c0)
    simulated = simulate(model, point, "layer", **options)
    names = ["x", "h0", *(["c0"] * c0), "W_x", "W_h", *BIASES[model]]
    assert list(simulated) == names

    def f(p):
        return float((_hidden(model, p, **options) * p["dh"]).sum())

    numeric = finite_differences(f, point, names)
    for name in names:
        np.testing.assert_allclose(
            simulated[name], numeric[name], rtol=1e-6, atol=1e-8, err_msg=name
        )


@pytest.mark.parametrize("model, options, c0", VARIANTS, ids=IDS)
@pytest.mark.parametrize("shape", EDGES, ids=str)
def test_no_mistake_is_the_truth_at_the_edges(model, options, c0, shape):
    _assert_truth_full(model, options, c0, shape, seed=sum(shape))
    _assert_truth_layer(model, options, c0, shape, seed=sum(shape))


@pytest.mark.parametrize("model, options, c0", VARIANTS, ids=IDS)
@settings(max_examples=6, deadline=None, derandomize=True)
@given(shape=SHAPES, seed=st.integers(0, 2**16))
def test_no_mistake_is_the_truth(model, options, c0, shape, seed):
    _assert_truth_full(model, options, c0, shape, seed)
    _assert_truth_layer(model, options, c0, shape, seed)


def test_absent_inputs_are_zeros_without_a_gradient():
    """No h0, no biases, no c: the reference with zeros there, those keys dropped."""
    for model, options in (("lstm", {}), ("gru", {"reset": "before"})):
        point = _point(model, "full", 2, 2, 2, 3, 3, 7)
        absent = ["h0", "c", *BIASES[model]]
        zeros = {k: np.zeros_like(point[k]) for k in absent}
        expected = _reference(model, {**point, **zeros}, options)
        lean = {k: v for k, v in point.items() if k not in absent}
        simulated = simulate(model, lean, "full", **options)
        assert set(simulated) == set(expected) - set(absent)
        for name, value in simulated.items():
            np.testing.assert_allclose(value, expected[name], rtol=1e-10, err_msg=name)
        for name, grads in alternatives(model, lean, "full", **options).items():
            assert list(grads) == list(simulated), name


def test_every_cause_is_explained_and_mistakes_that_change_nothing_are_left_out():
    assert set(MISTAKES["lstm"]) | set(MISTAKES["gru"]) <= set(CAUSES)
    # T = 1, h0 and c0 fixed at zero: nothing is carried, so no carry mistake is offered.
    point = _point("lstm", "layer", 2, 2, 2, 2, 1, 3)
    del point["h0"]
    offered = alternatives("lstm", point, "layer")
    assert not {"no_cell_carry", "no_hidden_carry", "no_recurrent_term"} & set(offered)
    assert "forget_gate_not_applied" not in offered  # dc_0 has nowhere to go
    assert "tanh_c_slope" in offered
    with_c0 = alternatives("lstm", {**point, "c0": np.ones((2, 2))}, "layer")
    assert "forget_gate_not_applied" in with_c0
    gru = _point("gru", "full", 2, 2, 2, 2, 3, 3)
    assert {"reset_without_bias", "reset_not_applied"} <= set(alternatives("gru", gru, "full"))
    before = alternatives("gru", gru, "full", reset="before")
    assert not {"reset_without_bias", "reset_not_applied"} & set(before)
    no_b_h = {k: v for k, v in gru.items() if k != "b_h"}
    assert "reset_without_bias" not in alternatives("gru", no_b_h, "full")


def test_bad_arguments_are_one_sentence():
    point = _point("lstm", "full", 1, 1, 1, 2, 1, 0)
    with pytest.raises(ValueError, match="model='rnn' must be one of lstm, gru"):
        alternatives("rnn", point, "full")
    with pytest.raises(ValueError, match="gate_order='iofg' must be one of ifog, ifgo"):
        alternatives("lstm", point, "full", gate_order="iofg")
    with pytest.raises(ValueError, match="truncate=2"):
        alternatives("lstm", point, "full", truncate=2)
    with pytest.raises(ValueError, match="missing input array 'dh'"):
        alternatives("lstm", point, "layer")
    gru = _point("gru", "full", 1, 1, 1, 2, 1, 0)
    with pytest.raises(ValueError, match="reset='after'"):
        simulate("gru", gru, "full", "reset_not_applied", reset="before")
    # The options of a model variant, at the gated cells' values, are accepted.
    defaults = dict(activation="tanh", inputs="dense", truncate=None, no_bias=[], c0="zero")
    assert alternatives("lstm", point, "full", reduction="sum", **defaults)


def test_a_mean_loss_divides_every_gradient_by_N_T():
    point = _point("gru", "full", 2, 2, 2, 3, 3, 5)
    total, mean = simulate("gru", point, "full"), simulate("gru", point, "full", reduction="mean")
    for name, value in total.items():
        np.testing.assert_allclose(mean[name], value / 6, rtol=1e-12, err_msg=name)


# -- (b) the corpus, run in this process ------------------------------------------------------
def _setup(case):
    """model, form, batch_first, step, the simulation's options, c0 an input."""
    tokens, flags = list(case.options), {}
    while tokens:
        token = tokens.pop(0)
        flags[token] = True if token == "--batch-first" else tokens.pop(0)
    model = flags["--model"]
    options = {}
    if "--gate-order" in flags:
        options["gate_order"] = flags["--gate-order"]
    if "--reset" in flags:
        options["reset"] = flags["--reset"]
    form = flags.get("--form", "full")
    step = form == "layer" and "step" in case.target.split(",")[0]
    return model, form, "--batch-first" in flags, step, options, flags.get("--c0") == "input"


def _run(case, point):
    """The corpus program's canonical gradients at `point` (time-major, canonical names)."""
    model, form, batch_first, step, _, c0 = _setup(case)
    namespace = {"__name__": case.name}
    exec(compile(gated_corpus.PROGRAMS[case.name], f"{case.name}.py", "exec"), namespace)
    states = ["h0", "c0"] if c0 else ["h0"]
    params = ["W_x", "W_h", *BIASES[model]]
    if form == "full":
        names = ["x", "y", *states, *params, "V", "c"]
        _, grads = namespace[case.target](*(point[k] for k in names))
        # The LSTM's output bias is b_y in the model (c is its cell state); the simulation
        # calls it c.
        return {("c" if k == "b_y" else k): v for k, v in grads.items()}
    forward, backward = (namespace[name] for name in case.target.split(","))
    x, dh = point["x"], point["dh"]
    if step and model == "lstm":  # chained over the sequence, as lstm_backward chains it
        h = point["h0"]
        c = point["c0"] if c0 else np.zeros_like(h)
        weights, caches = [point[k] for k in params], []
        for t in range(x.shape[0]):
            h, c, cache = forward(x[t], h, c, *weights)
            caches.append(cache)
        dh_carry, dc_carry, total, dxs = np.zeros_like(h), np.zeros_like(h), None, []
        for t in reversed(range(x.shape[0])):
            dx_t, dh_carry, dc_carry, *parts = backward(dh[t] + dh_carry, dc_carry, caches[t])
            dxs.insert(0, dx_t)
            total = parts if total is None else [a + b for a, b in zip(total, parts)]
        grads = [np.stack(dxs), dh_carry, *([dc_carry] if c0 else []), *total]
    elif step:
        inputs = [x[0], *(point[k] for k in states + params)]
        grads = list(backward(dh[0], forward(*inputs)[1]))
        grads[0] = grads[0][None]
    else:
        if batch_first:
            x, dh = x.transpose(1, 0, 2), dh.transpose(1, 0, 2)
        grads = list(backward(dh, forward(x, *(point[k] for k in states + params))[1]))
        if batch_first:
            grads[0] = grads[0].transpose(1, 0, 2)
    return dict(zip(["x", *states, *params], grads))


def _same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and np.allclose(a, b, rtol=1e-9, atol=1e-12)


def _case_point(case, shape, seed):
    model, form, _, step, _, c0 = _setup(case)
    N, D, H, C, T = shape
    return _point(model, form, N, D, H, C, 1 if step and model != "lstm" else T, seed, c0=c0)


CORPUS_SHAPES = st.tuples(
    st.integers(2, 3), st.integers(1, 3), st.integers(2, 3), st.integers(2, 3), st.integers(3, 4)
)


@pytest.mark.parametrize("case", gated_corpus.CASES, ids=lambda c: c.name)
@settings(max_examples=5, deadline=None, derandomize=True)
@given(shape=CORPUS_SHAPES, seed=st.integers(0, 2**16))
def test_each_corpus_program_is_what_its_case_says(case, shape, seed):
    model, form, _, _, options, _ = _setup(case)
    point = _case_point(case, shape, seed)
    truth = simulate(model, point, form, **options)
    got = _run(case, point)
    assert set(got) == set(truth)
    assert case.verdict == ("wrong" if case.wrong else "right")
    for name, value in truth.items():
        assert _same(got[name], value) == (name not in case.wrong), name
    offered = alternatives(model, point, form, **options)
    if case.cause is None:  # no closed form names it
        first = case.wrong[0] if case.wrong else None
        assert not first or not [c for c, g in offered.items() if _same(g[first], got[first])]
        return
    for name in case.wrong:  # every gradient the one mistake changes, not only the first
        mistaken = offered[case.cause][name]
        np.testing.assert_allclose(got[name], mistaken, rtol=1e-9, atol=1e-12, err_msg=name)
        assert not _same(mistaken, truth[name]), name


def test_the_corpus_has_what_it_promises():
    cases = gated_corpus.CASES
    wrong = [c for c in cases if c.verdict == "wrong"]
    assert sum(c.name.startswith("lstm") for c in wrong) >= 12
    assert sum(c.name.startswith("gru") for c in wrong) >= 8
    assert sum(c.verdict == "right" for c in cases) >= 6
    assert all("--model" in c.options for c in cases)
    for case in wrong:
        assert case.cause is None or case.cause in MISTAKES[_setup(case)[0]], case.name
