"""The GRU in PyTorch's convention, with the vanilla RNN's output layer and loss:

    u_t = b_x + x_t W_x,   v_t = b_h + h_{t-1} W_h           (N, 3H): gates r, z, n side by side
    a_t = u_t + v_t,   r_t = sigmoid(a_r),   z_t = sigmoid(a_z)
    reset after (PyTorch):   a_n = u_n + r_t * v_n
    reset before (the original GRU):   q_t = r_t * h_{t-1},  w_t = b_h + q_t W_h,  a_n = u_n + w_n
    n_t = tanh(a_n),   h_t = (1 - z_t) * n_t + z_t * h_{t-1}
    o_t = c + h_t V,   L = sum_t sum_i -log softmax(o_t[i])[y_t[i]]

(row vectors, a minibatch of N; `*` entry by entry; X_r, X_z, X_n are the three blocks of
columns of X). With the reset before the product only the n block of w is used, and only the
r and z blocks of v: the unused blocks get zero gradients, as they should.
"""

from __future__ import annotations

import numpy as np

from .spec import Input, ModelSpec

__all__ = ["GRU"]


def cell(ops, p, state, x_t):
    """One step: ((h_t,), o_t) from (h_{t-1},) (None: zero) and x_t."""
    (h_prev,) = state
    u = ops.affine("u", p.get("b_x"), (x_t, p["W_x"]))
    v = ops.affine("v", p.get("b_h"), (h_prev, p["W_h"]))
    a = ops.add("a", u, v)
    r = ops.apply("r", "sigmoid", ops.columns("a_r", a, 0, 3))
    z = ops.apply("z", "sigmoid", ops.columns("a_z", a, 1, 3))
    u_n = ops.columns("u_n", u, 2, 3)
    if ops.options.reset == "after":
        a_n = ops.hadamard("a_n", u_n, (r, ops.columns("v_n", v, 2, 3)))
    else:
        q = ops.hadamard("q", None, (r, h_prev))
        w = ops.affine("w", p.get("b_h"), (q, p["W_h"]))
        a_n = ops.add("a_n", u_n, ops.columns("w_n", w, 2, 3))
    n = ops.apply("n", "tanh", a_n)
    h = ops.lerp("h", z, n, h_prev)
    o = ops.affine("o", p.get("c"), (h, p["V"]))
    return (h,), o


def sample(dims, rng: np.random.Generator, scale: float) -> dict[str, np.ndarray]:
    """Random inputs: weights ~ N(0, 1/fan-in), small biases, h0 inside (-0.9, 0.9); `scale`
    multiplies the output layer (V, c), for large logits."""
    N, D, H, C, T = dims.N, dims.D, dims.H, dims.C, dims.T
    return {
        "x": rng.standard_normal((T, N, D)),
        "y": rng.integers(0, C, size=(T, N)),
        "h0": rng.uniform(-0.9, 0.9, size=(N, H)),
        "W_x": rng.standard_normal((D, 3 * H)) / np.sqrt(D),
        "W_h": rng.standard_normal((H, 3 * H)) / np.sqrt(H),
        "b_x": 0.1 * rng.standard_normal(3 * H),
        "b_h": 0.1 * rng.standard_normal(3 * H),
        "V": scale * rng.standard_normal((H, C)) / np.sqrt(H),
        "c": scale * 0.1 * rng.standard_normal(C),
    }


GRU = ModelSpec(
    name="gru",
    base_inputs=(
        Input("x", ("T", "N", "D"), "sequence"),
        Input("y", ("T", "N"), "label", integer=True, bound="C"),
        Input("h0", ("N", "H"), "initial"),
        Input("W_x", ("D", "3H"), "parameter"),
        Input("W_h", ("H", "3H"), "parameter"),
        Input("b_x", ("3H",), "parameter"),
        Input("b_h", ("3H",), "parameter"),
        Input("V", ("H", "C"), "parameter"),
        Input("c", ("C",), "parameter"),
    ),
    cell=cell,
    biases=("b_x", "b_h", "c"),
    loss="softmax_ce",
    sample=sample,
    title="GRU",
    fixed=("activation", "truncate", "h0"),
    choices=("reset",),
    summary="the GRU (PyTorch's convention): h_t = (1 - z)*n + z*h_{t-1}",
    gates="rzn",
    gate_names=(("r", ("r",)), ("z", ("z", "u")), ("n", ("n", "h", "c", "g"))),
    stacking=(("x", "W_x"), ("h", "W_h"), ("1", "b_x"), ("2", "b_h")),
    complement_gate="z",
)
