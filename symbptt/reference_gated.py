"""The independent NumPy BPTT of the gated cells: LSTM and GRU, forward and backward by hand.

Like `symbptt.reference` for the vanilla RNN, this module imports nothing of symbptt's engine:
it is the truth the symbolic derivations of issue 11 will be checked against, and it is itself
checked against central finite differences (`tests/test_reference_gated.py`).

Conventions (row vectors, a minibatch of N; the loss is the softmax cross-entropy of
o_t = c + h_t V summed over the batch and the steps):

- LSTM, CS231n's: a = x_t W_x + h_{t-1} W_h + b with W_x (D, 4H), W_h (H, 4H), b (4H,); the
  gates in the order i, f, o, g (`gate_order="ifog"`) or PyTorch's i, f, g, o ("ifgo");
  i, f, o = sigmoid, g = tanh; c_t = f * c_{t-1} + i * g; h_t = o * tanh(c_t); c_0 = 0 unless
  given.
- GRU, PyTorch's: W_x (D, 3H), W_h (H, 3H), b_x, b_h (3H,), gates r, z, n;
  r, z = sigmoid(x W_x + b_x + h W_h + b_h) (their thirds); with `reset="after"` (PyTorch)
  n = tanh(x W_xn + b_xn + r * (h_{t-1} W_hn + b_hn)), with `reset="before"` (the original
  GRU) n = tanh(x W_xn + b_xn + (r * h_{t-1}) W_hn + b_hn); h_t = (1 - z) * n + z * h_{t-1}.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = [
    "lstm_forward_backward",
    "gru_forward_backward",
    "lstm_layer_vjp",
    "gru_layer_vjp",
    "GATE_ORDERS",
    "RESETS",
]

GATE_ORDERS = ("ifog", "ifgo")
RESETS = ("after", "before")


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * a))  # no overflow for large |a|


def _softmax_ce(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """The summed cross-entropy of one step and its gradient w.r.t. the logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(len(labels))
    dlogits = np.exp(log_p)
    dlogits[rows, labels] -= 1.0
    return float(-log_p[rows, labels].sum()), dlogits


def _arrays(arrays: Mapping[str, np.ndarray], names) -> dict[str, np.ndarray]:
    out = {}
    for name in names:
        if name not in arrays:
            raise KeyError(f"missing input array {name!r}")
        value = np.asarray(arrays[name])
        out[name] = value if name == "y" else np.asarray(value, dtype=np.float64)
    return out


def lstm_layer_vjp(
    arrays: Mapping[str, np.ndarray], dh: np.ndarray, *, gate_order: str = "ifog"
) -> dict[str, np.ndarray]:
    """The LSTM layer's gradients (x, h0, c0 if given, W_x, W_h, b) for an upstream gradient
    dh (T, N, H) on every h_t: CS231n's lstm_backward."""
    return lstm_forward_backward(arrays, gate_order=gate_order, upstream=dh)[1]


def gru_layer_vjp(
    arrays: Mapping[str, np.ndarray], dh: np.ndarray, *, reset: str = "after"
) -> dict[str, np.ndarray]:
    """The GRU layer's gradients (x, h0, W_x, W_h, b_x, b_h) for an upstream gradient dh
    (T, N, H) on every h_t."""
    return gru_forward_backward(arrays, reset=reset, upstream=dh)[1]


def lstm_forward_backward(
    arrays: Mapping[str, np.ndarray],
    *,
    gate_order: str = "ifog",
    upstream: np.ndarray | None = None,
) -> tuple[float | None, dict[str, np.ndarray]]:
    """Loss and gradients of the LSTM: arrays x (T, N, D), y (T, N), h0 (N, H), optional
    c0 (N, H), W_x (D, 4H), W_h (H, 4H), b (4H,), V (H, C), c (C,). With `upstream` (T, N, H),
    the layer alone: dL/dh_t is upstream[t] from outside, no output layer, loss None."""
    if gate_order not in GATE_ORDERS:
        raise ValueError(f"gate_order={gate_order!r} must be one of {', '.join(GATE_ORDERS)}")
    layer = ("x", "h0", "W_x", "W_h", "b")
    a = _arrays(arrays, layer if upstream is not None else (*layer, "y", "V", "c"))
    x, W_x, W_h, b = (a[k] for k in ("x", "W_x", "W_h", "b"))
    y, V, c_out = (a.get(k) for k in ("y", "V", "c"))
    T, N, _ = x.shape
    H = W_h.shape[0]
    has_c0 = "c0" in arrays and arrays["c0"] is not None
    c0 = np.asarray(arrays["c0"], dtype=np.float64) if has_c0 else np.zeros((N, H))
    where = {name: slice(k * H, (k + 1) * H) for k, name in enumerate(gate_order)}

    hs, cs, gates, loss, dlogits = [a["h0"]], [c0], [], 0.0, []
    for t in range(T):
        pre = x[t] @ W_x + hs[-1] @ W_h + b
        i = _sigmoid(pre[:, where["i"]])
        f = _sigmoid(pre[:, where["f"]])
        o = _sigmoid(pre[:, where["o"]])
        g = np.tanh(pre[:, where["g"]])
        c = f * cs[-1] + i * g
        h = o * np.tanh(c)
        hs.append(h)
        cs.append(c)
        gates.append((i, f, o, g))
        if upstream is None:
            step_loss, d = _softmax_ce(c_out + h @ V, y[t])
            loss += step_loss
            dlogits.append(d)

    outputs = ("W_x", "W_h", "b") if upstream is not None else ("W_x", "W_h", "b", "V", "c")
    grads = {k: np.zeros_like(a[k]) for k in outputs}
    grads["x"] = np.zeros_like(x)
    dh_next, dc_next = np.zeros((N, H)), np.zeros((N, H))
    for t in reversed(range(T)):
        i, f, o, g = gates[t]
        h, c, c_prev = hs[t + 1], cs[t + 1], cs[t]
        if upstream is None:
            grads["V"] += h.T @ dlogits[t]
            grads["c"] += dlogits[t].sum(axis=0)
            dh = dh_next + dlogits[t] @ V.T
        else:
            dh = dh_next + np.asarray(upstream[t], dtype=np.float64)
        tanh_c = np.tanh(c)
        dc = dc_next + dh * o * (1.0 - tanh_c**2)
        dpre = np.empty((N, 4 * H))
        dpre[:, where["i"]] = dc * g * i * (1.0 - i)
        dpre[:, where["f"]] = dc * c_prev * f * (1.0 - f)
        dpre[:, where["o"]] = dh * tanh_c * o * (1.0 - o)
        dpre[:, where["g"]] = dc * i * (1.0 - g**2)
        grads["W_x"] += x[t].T @ dpre
        grads["W_h"] += hs[t].T @ dpre
        grads["b"] += dpre.sum(axis=0)
        grads["x"][t] = dpre @ W_x.T
        dh_next = dpre @ W_h.T
        dc_next = dc * f
    grads["h0"] = dh_next
    if has_c0:
        grads["c0"] = dc_next
    return (loss if upstream is None else None), grads


def gru_forward_backward(
    arrays: Mapping[str, np.ndarray],
    *,
    reset: str = "after",
    upstream: np.ndarray | None = None,
) -> tuple[float | None, dict[str, np.ndarray]]:
    """Loss and gradients of the GRU: arrays x (T, N, D), y (T, N), h0 (N, H), W_x (D, 3H),
    W_h (H, 3H), b_x (3H,), b_h (3H,), V (H, C), c (C,); gates r, z, n in that order. With
    `upstream` (T, N, H), the layer alone (see `lstm_forward_backward`)."""
    if reset not in RESETS:
        raise ValueError(f"reset={reset!r} must be one of {', '.join(RESETS)}")
    layer = ("x", "h0", "W_x", "W_h", "b_x", "b_h")
    a = _arrays(arrays, layer if upstream is not None else (*layer, "y", "V", "c"))
    x, W_x, W_h, b_x, b_h = (a[k] for k in ("x", "W_x", "W_h", "b_x", "b_h"))
    y, V, c_out = (a.get(k) for k in ("y", "V", "c"))
    T, N, _ = x.shape
    H = W_h.shape[0]
    r_, z_, n_ = slice(0, H), slice(H, 2 * H), slice(2 * H, 3 * H)

    hs, saved, loss, dlogits = [a["h0"]], [], 0.0, []
    for t in range(T):
        h_prev = hs[-1]
        gx = x[t] @ W_x + b_x
        gh = h_prev @ W_h + b_h
        r = _sigmoid(gx[:, r_] + gh[:, r_])
        z = _sigmoid(gx[:, z_] + gh[:, z_])
        if reset == "after":
            inner = gh[:, n_]  # h_{t-1} W_hn + b_hn, reset after the product
            n = np.tanh(gx[:, n_] + r * inner)
        else:
            inner = (r * h_prev) @ W_h[:, n_] + b_h[n_]
            n = np.tanh(gx[:, n_] + inner)
        h = (1.0 - z) * n + z * h_prev
        hs.append(h)
        saved.append((r, z, n, gh))
        if upstream is None:
            step_loss, d = _softmax_ce(c_out + h @ V, y[t])
            loss += step_loss
            dlogits.append(d)

    outputs = ("W_x", "W_h", "b_x", "b_h") + (("V", "c") if upstream is None else ())
    grads = {k: np.zeros_like(a[k]) for k in outputs}
    grads["x"] = np.zeros_like(x)
    dh_next = np.zeros((N, H))
    for t in reversed(range(T)):
        r, z, n, gh = saved[t]
        h, h_prev = hs[t + 1], hs[t]
        if upstream is None:
            grads["V"] += h.T @ dlogits[t]
            grads["c"] += dlogits[t].sum(axis=0)
            dh = dh_next + dlogits[t] @ V.T
        else:
            dh = dh_next + np.asarray(upstream[t], dtype=np.float64)
        dn = dh * (1.0 - z)
        dz = dh * (h_prev - n)
        dh_prev = dh * z
        dpre_n = dn * (1.0 - n**2)
        dgx = np.empty((N, 3 * H))
        dgh = np.zeros((N, 3 * H))
        dgx[:, n_] = dpre_n
        if reset == "after":
            dr = dpre_n * gh[:, n_]
            dgh[:, n_] = dpre_n * r
        else:
            d_rh = dpre_n @ W_h[:, n_].T  # through (r * h_{t-1}) W_hn
            dr = d_rh * h_prev
            dh_prev = dh_prev + d_rh * r
            grads["W_h"][:, n_] += (r * h_prev).T @ dpre_n
            grads["b_h"][n_] += dpre_n.sum(axis=0)
        dpre_r = dr * r * (1.0 - r)
        dpre_z = dz * z * (1.0 - z)
        dgx[:, r_], dgx[:, z_] = dpre_r, dpre_z
        dgh[:, r_], dgh[:, z_] = dpre_r, dpre_z
        grads["W_x"] += x[t].T @ dgx
        grads["b_x"] += dgx.sum(axis=0)
        grads["x"][t] = dgx @ W_x.T
        if reset == "after":
            grads["W_h"] += h_prev.T @ dgh
            grads["b_h"] += dgh.sum(axis=0)
            dh_prev = dh_prev + dgh @ W_h.T
        else:  # the n third went through (r * h_{t-1}) above
            grads["W_h"][:, : 2 * H] += h_prev.T @ dgh[:, : 2 * H]
            grads["b_h"][: 2 * H] += dgh[:, : 2 * H].sum(axis=0)
            dh_prev = dh_prev + dgh[:, : 2 * H] @ W_h[:, : 2 * H].T
        dh_next = dh_prev
    grads["h0"] = dh_next
    return (loss if upstream is None else None), grads
