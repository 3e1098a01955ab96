"""The LSTM in CS231n's convention, with the vanilla RNN's output layer and loss:

    a_t = b + h_{t-1} W_h + x_t W_x                      (N, 4H): the four gates side by side
    i_t = sigmoid(a_i),  f_t = sigmoid(a_f),  o_t = sigmoid(a_o),  g_t = tanh(a_g)
    c_t = f_t * c_{t-1} + i_t * g_t,   k_t = tanh(c_t),   h_t = o_t * k_t
    s_t = b_y + h_t V,   L = sum_t sum_i -log softmax(s_t[i])[y_t[i]]

(row vectors, a minibatch of N; `*` entry by entry). The gates' blocks of columns come in the
order i, f, o, g (`gate_order="ifog"`, CS231n's) or i, f, g, o ("ifgo", PyTorch's). c_0 is zero
unless `c0="input"`. The names differ from the vanilla RNN's where the LSTM needs its letters:
the logits are s (CS231n's "scores"), as o is the output gate, and the output bias is b_y, as c
is the cell state.
"""

from __future__ import annotations

import numpy as np

from .spec import Input, ModelSpec

__all__ = ["LSTM"]

#: Each gate's function.
GATES = {"i": "sigmoid", "f": "sigmoid", "o": "sigmoid", "g": "tanh"}


def cell(ops, p, state, x_t):
    """One step: ((h_t, c_t), s_t) from (h_{t-1}, c_{t-1}) (None: zero) and x_t."""
    h_prev, c_prev = state
    a = ops.affine("a", p.get("b"), (h_prev, p["W_h"]), (x_t, p["W_x"]))
    gate = {}
    for k, name in enumerate(ops.options.gate_order):
        gate[name] = ops.apply(name, GATES[name], ops.columns(f"a_{name}", a, k, 4))
    c = ops.hadamard("c", None, (gate["f"], c_prev), (gate["i"], gate["g"]))
    k = ops.apply("k", "tanh", c)
    h = ops.hadamard("h", None, (gate["o"], k))
    s = ops.affine("s", p.get("b_y"), (h, p["V"]))
    return (h, c), s


def sample(dims, rng: np.random.Generator, scale: float) -> dict[str, np.ndarray]:
    """Random inputs: weights ~ N(0, 1/fan-in), small biases, h0 and c0 of moderate size;
    `scale` multiplies the output layer (V, b_y), for large logits."""
    N, D, H, C, T = dims.N, dims.D, dims.H, dims.C, dims.T
    return {
        "x": rng.standard_normal((T, N, D)),
        "y": rng.integers(0, C, size=(T, N)),
        "h0": rng.uniform(-0.9, 0.9, size=(N, H)),
        "c0": rng.uniform(-1.0, 1.0, size=(N, H)),
        "W_x": rng.standard_normal((D, 4 * H)) / np.sqrt(D),
        "W_h": rng.standard_normal((H, 4 * H)) / np.sqrt(H),
        "b": 0.1 * rng.standard_normal(4 * H),
        "V": scale * rng.standard_normal((H, C)) / np.sqrt(H),
        "b_y": scale * 0.1 * rng.standard_normal(C),
    }


LSTM = ModelSpec(
    name="lstm",
    base_inputs=(
        Input("x", ("T", "N", "D"), "sequence"),
        Input("y", ("T", "N"), "label", integer=True, bound="C"),
        Input("h0", ("N", "H"), "initial"),
        Input("c0", ("N", "H"), "initial"),
        Input("W_x", ("D", "4H"), "parameter"),
        Input("W_h", ("H", "4H"), "parameter"),
        Input("b", ("4H",), "parameter"),
        Input("V", ("H", "C"), "parameter"),
        Input("b_y", ("C",), "parameter"),
    ),
    cell=cell,
    biases=("b", "b_y"),
    loss="softmax_ce",
    sample=sample,
    title="LSTM",
    fixed=("activation", "truncate"),
    states=("h", "c"),
    choices=("c0", "gate_order"),
    reference_names=(("b_y", "c"),),
    summary="the LSTM (CS231n's convention): c_t = f*c_{t-1} + i*g, h_t = o*tanh(c_t)",
    gates="ifog",
    gate_names=(("i", ("i", "u")), ("f", ("f",)), ("o", ("o",)), ("g", ("g", "c", "j"))),
    stacking=(("x", "W_x"), ("h", "W_h"), ("1", "b")),
)
