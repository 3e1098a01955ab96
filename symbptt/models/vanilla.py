"""The vanilla RNN of the seed blog, with a softmax cross-entropy loss at every step:

    a_t = b + h_{t-1} W_h + x_t W_x,   h_t = act(a_t),   o_t = c + h_t V,
    L = sum_t sum_i -log softmax(o_t[i])[y_t[i]]

(row vectors, a minibatch of N). Its variants are options of the spec: no bias b or c, h0 fixed
at zero, token ids for x (x_t W_x becomes the row lookup W_x[x_t]), the activation, a mean
instead of a sum, truncated BPTT.
"""

from __future__ import annotations

import numpy as np

from .spec import Input, ModelSpec

__all__ = ["VANILLA"]


def cell(ops, p, state, x_t):
    """One step: ((h_t,), o_t) from (h_{t-1},) (None when h0 is fixed at zero) and x_t.

    Token ids arrive one-hot, as data: onehot(x_t) W_x is the row lookup W_x[x_t].
    """
    (h_prev,) = state
    a = ops.affine("a", p.get("b"), (h_prev, p["W_h"]), (x_t, p["W_x"]))
    h = ops.apply("h", ops.options.activation, a)
    o = ops.affine("o", p.get("c"), (h, p["V"]))
    return (h,), o


def sample(dims, rng: np.random.Generator, scale: float) -> dict[str, np.ndarray]:
    """Random inputs of the full model: weights ~ N(0, 1/fan-in), small biases, labels uniform,
    h0 inside tanh's range; `scale` multiplies the output layer (V, c), for large logits."""
    N, D, H, C, T = dims.N, dims.D, dims.H, dims.C, dims.T
    return {
        "x": rng.standard_normal((T, N, D)),
        "y": rng.integers(0, C, size=(T, N)),
        "h0": rng.uniform(-0.9, 0.9, size=(N, H)),
        "W_x": rng.standard_normal((D, H)) / np.sqrt(D),
        "W_h": rng.standard_normal((H, H)) / np.sqrt(H),
        "b": 0.1 * rng.standard_normal(H),
        "V": scale * rng.standard_normal((H, C)) / np.sqrt(H),
        "c": scale * 0.1 * rng.standard_normal(C),
    }


VANILLA = ModelSpec(
    name="vanilla",
    base_inputs=(
        Input("x", ("T", "N", "D"), "sequence"),
        Input("y", ("T", "N"), "label", integer=True, bound="C"),
        Input("h0", ("N", "H"), "initial"),
        Input("W_x", ("D", "H"), "parameter"),
        Input("W_h", ("H", "H"), "parameter"),
        Input("b", ("H",), "parameter"),
        Input("V", ("H", "C"), "parameter"),
        Input("c", ("C",), "parameter"),
    ),
    cell=cell,
    biases=("b", "c"),
    loss="softmax_ce",
    sample=sample,
    title="vanilla RNN",
    summary="the vanilla RNN: h_t = tanh(b + h_{t-1} W_h + x_t W_x)",
    stacking=(("x", "W_x"), ("h", "W_h"), ("1", "b")),
)
