"""A corpus of hand-written vanilla-RNN BPTT implementations, correct and buggy.

Test data for symbptt: each `Case` wraps one user function the way a student would write
it, together with what is known about it. The model (row layout, minibatch of N sequences):

    a_t = b + h_{t-1} W_h + x_t W_x,   h_t = tanh(a_t),   o_t = c + h_t V,
    L = sum_t sum_i -log softmax(o_t[i])[y_t[i]]          (summed, not averaged)

Forms:

* "full", row layout:    fn(x, y, h0, W_x, W_h, b, V, c) -> (loss, grads)
* "full", column layout: same call, but weights transposed (W_x (H,D), W_h (H,H), V (C,H),
  b (H,1), c (C,1)); x (T,N,D), y (T,N), h0 (N,H) as in row layout; grads come back in the
  shapes the function received.
* "layer" (CS231n style, row layout): fn(x, h0, W_x, W_h, b, dh) -> grads, the VJP of
  sum_t <dh_t, h_t> for an upstream gradient dh (T,N,H) on every hidden state.

`wrong` lists the gradients (or "loss") that differ from the truth for generic inputs; it
was checked numerically against central finite differences on T=4, N=3, D=2, H=3, C=4 and
other generic shapes. Some bugs are invisible on degenerate shapes (for instance a missing
transpose of a 1x1 W_h); `INVISIBLE_WHEN` says when. `cause`, where given, says exactly
what the wrong gradients equal:

* "transposed":        the returned gradient is the transpose of the true one
* "scaled_by_N":       the returned value (gradients, or the loss) is the truth divided by N
* "scaled_by_T":       the returned gradients are the truth divided by T
* "sign_flipped":      the returned gradient is minus the true one
* "no_recurrent_term": the gradients are those of BPTT with no flow through h_{t-1}
* "truncated":         the gradients are those of BPTT truncated to 2 steps (the loss at
                       step t reaches a_t and a_{t-1} only)
* "untransposed_recurrence": the gradients are those of BPTT whose recurrence uses
                       dh_{t-1} = da_t W_h (W_h where W_h^T belongs)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["Case", "CORRECT", "BUGGY", "ALL_CASES", "INVISIBLE_WHEN", "case_by_name"]

ROW_GRAD_NAMES = ("W_x", "W_h", "b", "V", "c", "h0", "x")
LAYER_GRAD_NAMES = ("x", "h0", "W_x", "W_h", "b")


@dataclass(frozen=True)
class Case:
    name: str  # short id, e.g. "missing_recurrent_term"
    fn: Callable
    form: str  # "full" or "layer"
    layout: str  # "row" or "column"
    wrong: frozenset[str]  # gradients (or "loss") that are wrong for generic inputs
    cause: str | None  # see the module docstring; None when no simple cause applies
    description: str  # one sentence: the bug as a student would make it
    dtype: str = "float64"
    #: The values the function returns, when it does not return them all (check's `only`).
    only: tuple[str, ...] | None = None

    @property
    def options(self) -> dict:
        """Keyword arguments of check_gradients that this case needs."""
        return {"form": self.form, "layout": self.layout, "only": self.only}


# ======================================================================================
# Correct implementations
# ======================================================================================


def correct_row_vectorised(x, y, h0, W_x, W_h, b, V, c):
    """Forward loop over time, output layer and softmax vectorised over (T, N)."""
    T, N, _ = x.shape
    H = h0.shape[1]

    hs = np.zeros((T, N, H))
    h = h0
    for t in range(T):
        h = np.tanh(b + h @ W_h + x[t] @ W_x)
        hs[t] = h
    o = c + hs @ V  # (T, N, C)

    o_max = o.max(axis=-1, keepdims=True)
    log_p = o - o_max - np.log(np.exp(o - o_max).sum(axis=-1, keepdims=True))
    t_idx, n_idx = np.meshgrid(np.arange(T), np.arange(N), indexing="ij")
    loss = -log_p[t_idx, n_idx, y].sum()

    do = np.exp(log_p)
    do[t_idx, n_idx, y] -= 1.0
    dV = np.einsum("tnh,tnc->hc", hs, do)
    dc = do.sum(axis=(0, 1))
    dhs = do @ V.T  # gradient reaching each h_t straight from its output

    h_prev = np.concatenate([h0[None], hs[:-1]], axis=0)
    dW_x = np.zeros_like(W_x)
    dW_h = np.zeros_like(W_h)
    db = np.zeros_like(b)
    dx = np.zeros_like(x)
    dh_next = np.zeros_like(h0)
    for t in reversed(range(T)):
        dh = dhs[t] + dh_next
        da = dh * (1.0 - hs[t] ** 2)
        dW_x += x[t].T @ da
        dW_h += h_prev[t].T @ da
        db += da.sum(axis=0)
        dx[t] = da @ W_x.T
        dh_next = da @ W_h.T

    grads = {"W_x": dW_x, "W_h": dW_h, "b": db, "V": dV, "c": dc, "h0": dh_next, "x": dx}
    return float(loss), grads


def correct_column_karpathy(x, y, h0, W_x, W_h, b, V, c):
    """min-char-rnn style: column vectors, one sequence at a time, dicts keyed by t."""
    Wxh, Whh, Why, bh, by = W_x, W_h, V, b, c  # (H,D), (H,H), (C,H), (H,1), (C,1)
    T, N, _ = x.shape

    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dx, dh0 = np.zeros_like(x), np.zeros_like(h0)
    loss = 0.0
    for n in range(N):
        xs, hs, ps = {}, {}, {}
        hs[-1] = h0[n][:, None]
        for t in range(T):
            xs[t] = x[t, n][:, None]
            hs[t] = np.tanh(np.dot(Wxh, xs[t]) + np.dot(Whh, hs[t - 1]) + bh)
            ys = np.dot(Why, hs[t]) + by
            ys = ys - np.max(ys)
            ps[t] = np.exp(ys) / np.sum(np.exp(ys))
            loss += -(ys[y[t, n], 0] - np.log(np.sum(np.exp(ys))))

        dhnext = np.zeros_like(hs[0])
        for t in reversed(range(T)):
            dy = np.copy(ps[t])
            dy[y[t, n]] -= 1  # backprop into y
            dWhy += np.dot(dy, hs[t].T)
            dby += dy
            dh = np.dot(Why.T, dy) + dhnext  # backprop into h
            dhraw = (1 - hs[t] * hs[t]) * dh  # backprop through tanh
            dbh += dhraw
            dWxh += np.dot(dhraw, xs[t].T)
            dWhh += np.dot(dhraw, hs[t - 1].T)
            dx[t, n] = np.dot(Wxh.T, dhraw)[:, 0]
            dhnext = np.dot(Whh.T, dhraw)
        dh0[n] = dhnext[:, 0]

    grads = {"W_x": dWxh, "W_h": dWhh, "b": dbh, "V": dWhy, "c": dby, "h0": dh0, "x": dx}
    return loss, grads


def correct_row_batch_loop(x, y, h0, W_x, W_h, b, V, c):
    """Row vectors, but each sequence of the batch handled on its own."""
    T, N, _ = x.shape
    grads = {
        "W_x": np.zeros_like(W_x),
        "W_h": np.zeros_like(W_h),
        "b": np.zeros_like(b),
        "V": np.zeros_like(V),
        "c": np.zeros_like(c),
        "h0": np.zeros_like(h0),
        "x": np.zeros_like(x),
    }
    loss = 0.0
    for n in range(N):
        h_list = [h0[n]]
        p_list = []
        for t in range(T):
            h = np.tanh(b + h_list[-1] @ W_h + x[t, n] @ W_x)
            o = c + h @ V
            o = o - o.max()
            log_z = np.log(np.exp(o).sum())
            loss -= o[y[t, n]] - log_z
            h_list.append(h)
            p_list.append(np.exp(o - log_z))

        dh_next = np.zeros_like(h0[n])
        for t in range(T - 1, -1, -1):
            h, h_prev = h_list[t + 1], h_list[t]
            do = p_list[t].copy()
            do[y[t, n]] -= 1.0
            grads["V"] += np.outer(h, do)
            grads["c"] += do
            dh = V @ do + dh_next
            da = (1.0 - h * h) * dh
            grads["W_x"] += np.outer(x[t, n], da)
            grads["W_h"] += np.outer(h_prev, da)
            grads["b"] += da
            grads["x"][t, n] = W_x @ da
            dh_next = W_h @ da
        grads["h0"][n] = dh_next
    return loss, grads


def correct_row_float32(x, y, h0, W_x, W_h, b, V, c):
    """Everything cast to float32 first and computed in float32 (to save memory)."""
    f32 = np.float32
    x, h0, W_x, W_h, b, V, c = (np.asarray(a, dtype=f32) for a in (x, h0, W_x, W_h, b, V, c))
    T, N, _ = x.shape
    H = h0.shape[1]

    hs = np.zeros((T + 1, N, H), dtype=f32)  # hs[0] is h0, hs[t + 1] is h_t
    hs[0] = h0
    for t in range(T):
        hs[t + 1] = np.tanh(hs[t] @ W_h + x[t] @ W_x + b)
    o = hs[1:] @ V + c
    o = o - o.max(axis=2, keepdims=True)
    log_p = o - np.log(np.exp(o).sum(axis=2, keepdims=True))
    rows = np.arange(N)
    loss = f32(0.0)
    do = np.exp(log_p)
    for t in range(T):
        loss -= log_p[t, rows, y[t]].sum()
        do[t, rows, y[t]] -= f32(1.0)

    dV = np.zeros_like(V)
    dc = np.zeros_like(c)
    dW_x = np.zeros_like(W_x)
    dW_h = np.zeros_like(W_h)
    db = np.zeros_like(b)
    dx = np.zeros_like(x)
    dh_next = np.zeros((N, H), dtype=f32)
    for t in reversed(range(T)):
        dV += hs[t + 1].T @ do[t]
        dc += do[t].sum(axis=0)
        dh = do[t] @ V.T + dh_next
        da = dh * (f32(1.0) - hs[t + 1] * hs[t + 1])
        dW_x += x[t].T @ da
        dW_h += hs[t].T @ da
        db += da.sum(axis=0)
        dx[t] = da @ W_x.T
        dh_next = da @ W_h.T

    grads = {"W_x": dW_x, "W_h": dW_h, "b": db, "V": dV, "c": dc, "h0": dh_next, "x": dx}
    return loss, grads


def correct_row_shared_only(x, y, h0, W_x, W_h, b, V, c):
    """Returns gradients for the five shared parameters only (no "h0", no "x")."""
    T, N, _ = x.shape
    hs, ps = [], []
    loss = 0.0
    h = h0
    for t in range(T):
        h = np.tanh(x[t] @ W_x + h @ W_h + b)
        logits = h @ V + c
        logits -= logits.max(axis=1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        loss -= log_probs[np.arange(N), y[t]].sum()
        hs.append(h)
        ps.append(np.exp(log_probs))

    dW_x, dW_h, db = np.zeros_like(W_x), np.zeros_like(W_h), np.zeros_like(b)
    dV, dc = np.zeros_like(V), np.zeros_like(c)
    dh_next = np.zeros_like(h0)
    for t in reversed(range(T)):
        h_prev = hs[t - 1] if t > 0 else h0
        dlogits = ps[t].copy()
        dlogits[np.arange(N), y[t]] -= 1
        dV += hs[t].T @ dlogits
        dc += dlogits.sum(axis=0)
        dh = dlogits @ V.T + dh_next
        da = (1 - hs[t] ** 2) * dh
        dW_x += x[t].T @ da
        dW_h += h_prev.T @ da
        db += da.sum(axis=0)
        dh_next = da @ W_h.T
    return float(loss), {"W_x": dW_x, "W_h": dW_h, "b": db, "V": dV, "c": dc}


def correct_layer_cs231n(x, h0, W_x, W_h, b, dh):
    """CS231n rnn_forward / rnn_backward with step functions and caches (time-major)."""

    def rnn_step_forward(x_t, prev_h, Wx, Wh, b):
        next_h = np.tanh(x_t @ Wx + prev_h @ Wh + b)
        cache = (x_t, prev_h, Wx, Wh, next_h)
        return next_h, cache

    def rnn_step_backward(dnext_h, cache):
        x_t, prev_h, Wx, Wh, next_h = cache
        dtanh = dnext_h * (1 - next_h**2)
        dx_t = dtanh @ Wx.T
        dprev_h = dtanh @ Wh.T
        dWx = x_t.T @ dtanh
        dWh = prev_h.T @ dtanh
        db = dtanh.sum(axis=0)
        return dx_t, dprev_h, dWx, dWh, db

    T = x.shape[0]
    caches = []
    prev_h = h0
    for t in range(T):
        prev_h, cache = rnn_step_forward(x[t], prev_h, W_x, W_h, b)
        caches.append(cache)

    dx = np.zeros_like(x)
    dWx, dWh, db = np.zeros_like(W_x), np.zeros_like(W_h), np.zeros_like(b)
    dprev_h = np.zeros_like(h0)
    for t in reversed(range(T)):
        dx[t], dprev_h, dWx_t, dWh_t, db_t = rnn_step_backward(dh[t] + dprev_h, caches[t])
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return {"x": dx, "h0": dprev_h, "W_x": dWx, "W_h": dWh, "b": db}


# ======================================================================================
# Buggy implementations (full form, row layout)
# ======================================================================================


def missing_recurrent_term(x, y, h0, W_x, W_h, b, V, c):
    T, N, _ = x.shape
    H = h0.shape[1]
    hs = np.zeros((T, N, H))
    h = h0
    for t in range(T):
        h = np.tanh(b + h @ W_h + x[t] @ W_x)
        hs[t] = h
    o = c + hs @ V
    o_max = o.max(axis=-1, keepdims=True)
    log_p = o - o_max - np.log(np.exp(o - o_max).sum(axis=-1, keepdims=True))
    t_idx, n_idx = np.meshgrid(np.arange(T), np.arange(N), indexing="ij")
    loss = -log_p[t_idx, n_idx, y].sum()

    do = np.exp(log_p)
    do[t_idx, n_idx, y] -= 1.0
    dV = np.einsum("tnh,tnc->hc", hs, do)
    dc = do.sum(axis=(0, 1))
    dhs = do @ V.T

    h_prev = np.concatenate([h0[None], hs[:-1]], axis=0)
    dW_x, dW_h, db = np.zeros_like(W_x), np.zeros_like(W_h), np.zeros_like(b)
    dx = np.zeros_like(x)
    dh0 = np.zeros_like(h0)
    for t in reversed(range(T)):
        dh = dhs[t]  # BUG: the gradient coming back from h_{t+1} is never added
        da = dh * (1.0 - hs[t] ** 2)
        dW_x += x[t].T @ da
        dW_h += h_prev[t].T @ da
        db += da.sum(axis=0)
        dx[t] = da @ W_x.T
        if t == 0:
            dh0 = da @ W_h.T
    return float(loss), {"W_x": dW_x, "W_h": dW_h, "b": db, "V": dV, "c": dc, "h0": dh0, "x": dx}


def tanh_prime_of_preactivation(x, y, h0, W_x, W_h, b, V, c):
    T, N, _ = x.shape
    H = h0.shape[1]
    a_s = np.zeros((T, N, H))
    hs = np.zeros((T, N, H))
    h = h0
    for t in range(T):
        a_s[t] = b + h @ W_h + x[t] @ W_x
        h = np.tanh(a_s[t])
        hs[t] = h
    o = c + hs @ V
    o_max = o.max(axis=-1, keepdims=True)
    log_p = o - o_max - np.log(np.exp(o - o_max).sum(axis=-1, keepdims=True))
    t_idx, n_idx = np.meshgrid(np.arange(T), np.arange(N), indexing="ij")
    loss = -log_p[t_idx, n_idx, y].sum()

    do = np.exp(log_p)
    do[t_idx, n_idx, y] -= 1.0
    dV = np.einsum("tnh,tnc->hc", hs, do)
    dc = do.sum(axis=(0, 1))
    dhs = do @ V.T

    h_prev = np.concatenate([h0[None], hs[:-1]], axis=0)
    dW_x, dW_h, db = np.zeros_like(W_x), np.zeros_like(W_h), np.zeros_like(b)
    dx = np.zeros_like(x)
    dh_next = np.zeros_like(h0)
    for t in reversed(range(T)):
        dh = dhs[t] + dh_next
        da = dh * (1.0 - a_s[t] ** 2)  # BUG: tanh'(a) is 1 - tanh(a)^2, not 1 - a^2
        dW_x += x[t].T @ da
        dW_h += h_prev[t].T @ da
        db += da.sum(axis=0)
        dx[t] = da @ W_x.T
        dh_next = da @ W_h.T
    grads = {"W_x": dW_x, "W_h": dW_h, "b": db, "V": dV, "c": dc, "h0": dh_next, "x": dx}
    return float(loss), grads


def tanh_prime_of_upstream(x, y, h0, W_x, W_h, b, V, c):
    T, N, _ = x.shape
    hs = []
    probs = []
    loss = 0.0
    h = h0
    for t in range(T):
        h = np.tanh(x[t] @ W_x + h @ W_h + b)
        scores = h @ V + c
        scores = scores - scores.max(axis=1, keepdims=True)
        log_p = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
        loss -= log_p[np.arange(N), y[t]].sum()
        hs.append(h)
        probs.append(np.exp(log_p))

    dW_x, dW_h, db = np.zeros_like(W_x), np.zeros_like(W_h), np.zeros_like(b)
    dV, dc = np.zeros_like(V), np.zeros_like(c)
    dx = np.zeros_like(x)
    dh_next = np.zeros_like(h0)
    for t in reversed(range(T)):
        h_prev = hs[t - 1] if t > 0 else h0
        dscores = probs[t].copy()
        dscores[np.arange(N), y[t]] -= 1
        dV += hs[t].T @ dscores
        dc += dscores.sum(axis=0)
        dh = dscores @ V.T + dh_next
        da = 1 - dh**2  # BUG: derivative of tanh taken of the upstream gradient
        dW_x += x[t].T @ da
        dW_h += h_prev.T @ da
        db += da.sum(axis=0)
        dx[t] = da @ W_x.T
        dh_next = da @ W_h.T
    grads = {"W_x": dW_x, "W_h": dW_h, "b": db, "V": dV, "c": dc, "h0": dh_next, "x": dx}
    return loss, grads


def dWh_uses_current_state(x, y, h0, W_x, W_h, b, V, c):
    T, N, _ = x.shape
    H = h0.shape[1]
    hs = np.zeros((T, N, H))
    h = h0
    for t in range(T):
        h = np.tanh(b + h @ W_h + x[t] @ W_x)
        hs[t] = h
    o = c + hs @ V
    o_max = o.max(axis=-1, keepdims=True)
    log_p = o - o_max - np.log(np.exp(o - o_max).sum(axis=-1, keepdims=True))
    t_idx, n_idx = np.meshgrid(np.arange(T), np.arange(N), indexing="ij")
    loss = -log_p[t_idx, n_idx, y].sum()

    do = np.exp(log_p)
    do[t_idx, n_idx, y] -= 1.0
    dV = np.einsum("tnh,tnc->hc", hs, do)
    dc = do.sum(axis=(0, 1))
    dhs = do @ V.T

    dW_x, dW_h, db = np.zeros_like(W_x), np.zeros_like(W_h), np.zeros_like(b)
    dx = np.zeros_like(x)
    dh_next = np.zeros_like(h0)
    for t in reversed(range(T)):
        dh = dhs[t] + dh_next
        da = dh * (1.0 - hs[t] ** 2)
        dW_x += x[t].T @ da
        dW_h += hs[t].T @ da  # BUG: should be h_{t-1}, the state W_h multiplied
        db += da.sum(axis=0)
        dx[t] = da @ W_x.T
        dh_next = da @ W_h.T
    grads = {"W_x": dW_x, "W_h": dW_h, "b": db, "V": dV, "c": dc, "h0": dh_next, "x": dx}
    return float(loss), grads


def missing_transpose_recurrent(x, y, h0, W_x, W_h, b, V, c):
    T, N, _ = x.shape
    H = h0.shape[1]
    hs = np.zeros((T, N, H))
    h = h0
    for t in range(T):
        h = np.tanh(b + h @ W_h + x[t] @ W_x)
        hs[t] = h
    o = c + hs @ V
    o_max = o.max(axis=-1, keepdims=True)
    log_p = o - o_max - np.log(np.exp(o - o_max).sum(axis=-1, keepdims=True))
    t_idx, n_idx = np.meshgrid(np.arange(T), np.arange(N), indexing="ij")
    loss = -log_p[t_idx, n_idx, y].sum()

    do = np.exp(log_p)
    do[t_idx, n_idx, y] -= 1.0
    dV = np.einsum("tnh,tnc->hc", hs, do)
    dc = do.sum(axis=(0, 1))
    dhs = do @ V.T

    h_prev = np.concatenate([h0[None], hs[:-1]], axis=0)
    dW_x, dW_h, db = np.zeros_like(W_x), np.zeros_like(W_h), np.zeros_like(b)
    dx = np.zeros_like(x)
    dh_next = np.zeros_like(h0)
    for t in reversed(range(T)):
        dh = dhs[t] + dh_next
        da = dh * (1.0 - hs[t] ** 2)
        dW_x += x[t].T @ da
        dW_h += h_prev[t].T @ da
        db += da.sum(axis=0)
        dx[t] = da @ W_x.T
        dh_next = da @ W_h  # BUG: missing .T (shapes match because W_h is square)
    grads = {"W_x": dW_x, "W_h": dW_h, "b": db, "V": dV, "c": dc, "h0": dh_next, "x": dx}
    return float(loss), grads


def batch_mean_gradients(x, y, h0, W_x, W_h, b, V, c):
    T, N, _ = x.shape
    H = h0.shape[1]
    hs = np.zeros((T, N, H))
    h = h0
    for t in range(T):
        h = np.tanh(b + h @ W_h + x[t] @ W_x)
        hs[t] = h
    o = c + hs @ V
    o_max = o.max(axis=-1, keepdims=True)
    log_p = o - o_max - np.log(np.exp(o - o_max).sum(axis=-1, keepdims=True))
    t_idx, n_idx = np.meshgrid(np.arange(T), np.arange(N), indexing="ij")
    loss = -log_p[t_idx, n_idx, y].sum()

    do = np.exp(log_p)
    do[t_idx, n_idx, y] -= 1.0
    do /= N  # BUG: average over the batch, as in the CS231n softmax loss; the loss is a sum
    dV = np.einsum("tnh,tnc->hc", hs, do)
    dc = do.sum(axis=(0, 1))
    dhs = do @ V.T

    h_prev = np.concatenate([h0[None], hs[:-1]], axis=0)
    dW_x, dW_h, db = np.zeros_like(W_x), np.zeros_like(W_h), np.zeros_like(b)
    dx = np.zeros_like(x)
    dh_next = np.zeros_like(h0)
    for t in reversed(range(T)):
        dh = dhs[t] + dh_next
        da = dh * (1.0 - hs[t] ** 2)
        dW_x += x[t].T @ da
        dW_h += h_prev[t].T @ da
        db += da.sum(axis=0)
        dx[t] = da @ W_x.T
        dh_next = da @ W_h.T
    grads = {"W_x": dW_x, "W_h": dW_h, "b": db, "V": dV, "c": dc, "h0": dh_next, "x": dx}
    return float(loss), grads


def dWh_transposed(x, y, h0, W_x, W_h, b, V, c):
    T, N, _ = x.shape
    hs = []
    probs = []
    loss = 0.0
    h = h0
    for t in range(T):
        h = np.tanh(x[t] @ W_x + h @ W_h + b)
        scores = h @ V + c
        scores = scores - scores.max(axis=1, keepdims=True)
        log_p = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
        loss -= log_p[np.arange(N), y[t]].sum()
        hs.append(h)
        probs.append(np.exp(log_p))

    dW_x, dW_h, db = np.zeros_like(W_x), np.zeros_like(W_h), np.zeros_like(b)
    dV, dc = np.zeros_like(V), np.zeros_like(c)
    dx = np.zeros_like(x)
    dh_next = np.zeros_like(h0)
    for t in reversed(range(T)):
        h_prev = hs[t - 1] if t > 0 else h0
        dscores = probs[t].copy()
        dscores[np.arange(N), y[t]] -= 1
        dV += hs[t].T @ dscores
        dc += dscores.sum(axis=0)
        dh = dscores @ V.T + dh_next
        da = dh * (1 - hs[t] ** 2)
        dW_x += x[t].T @ da
        dW_h += da.T @ h_prev  # BUG: operands swapped, gives dW_h transposed (H,H) anyway
        db += da.sum(axis=0)
        dx[t] = da @ W_x.T
        dh_next = da @ W_h.T
    grads = {"W_x": dW_x, "W_h": dW_h, "b": db, "V": dV, "c": dc, "h0": dh_next, "x": dx}
    return float(loss), grads


def skipped_first_step(x, y, h0, W_x, W_h, b, V, c):
    T, N, _ = x.shape
    hs = []
    probs = []
    loss = 0.0
    h = h0
    for t in range(T):
        h = np.tanh(x[t] @ W_x + h @ W_h + b)
        scores = h @ V + c
        scores = scores - scores.max(axis=1, keepdims=True)
        log_p = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
        loss -= log_p[np.arange(N), y[t]].sum()
        hs.append(h)
        probs.append(np.exp(log_p))

    dW_x, dW_h, db = np.zeros_like(W_x), np.zeros_like(W_h), np.zeros_like(b)
    dV, dc = np.zeros_like(V), np.zeros_like(c)
    dx = np.zeros_like(x)
    dh_next = np.zeros_like(h0)
    for t in range(T - 1, 0, -1):  # BUG: stops at t=1, the first time step is never visited
        h_prev = hs[t - 1]
        dscores = probs[t].copy()
        dscores[np.arange(N), y[t]] -= 1
        dV += hs[t].T @ dscores
        dc += dscores.sum(axis=0)
        dh = dscores @ V.T + dh_next
        da = dh * (1 - hs[t] ** 2)
        dW_x += x[t].T @ da
        dW_h += h_prev.T @ da
        db += da.sum(axis=0)
        dx[t] = da @ W_x.T
        dh_next = da @ W_h.T
    grads = {"W_x": dW_x, "W_h": dW_h, "b": db, "V": dV, "c": dc, "h0": dh_next, "x": dx}
    return float(loss), grads


def softmax_grad_no_onehot(x, y, h0, W_x, W_h, b, V, c):
    T, N, _ = x.shape
    H = h0.shape[1]
    hs = np.zeros((T, N, H))
    h = h0
    for t in range(T):
        h = np.tanh(b + h @ W_h + x[t] @ W_x)
        hs[t] = h
    o = c + hs @ V
    o_max = o.max(axis=-1, keepdims=True)
    log_p = o - o_max - np.log(np.exp(o - o_max).sum(axis=-1, keepdims=True))
    t_idx, n_idx = np.meshgrid(np.arange(T), np.arange(N), indexing="ij")
    loss = -log_p[t_idx, n_idx, y].sum()

    do = np.exp(log_p)  # BUG: dL/do is softmax(o) - onehot(y); the one-hot is never subtracted
    dV = np.einsum("tnh,tnc->hc", hs, do)
    dc = do.sum(axis=(0, 1))
    dhs = do @ V.T

    h_prev = np.concatenate([h0[None], hs[:-1]], axis=0)
    dW_x, dW_h, db = np.zeros_like(W_x), np.zeros_like(W_h), np.zeros_like(b)
    dx = np.zeros_like(x)
    dh_next = np.zeros_like(h0)
    for t in reversed(range(T)):
        dh = dhs[t] + dh_next
        da = dh * (1.0 - hs[t] ** 2)
        dW_x += x[t].T @ da
        dW_h += h_prev[t].T @ da
        db += da.sum(axis=0)
        dx[t] = da @ W_x.T
        dh_next = da @ W_h.T
    grads = {"W_x": dW_x, "W_h": dW_h, "b": db, "V": dV, "c": dc, "h0": dh_next, "x": dx}
    return float(loss), grads


def lost_dh0(x, y, h0, W_x, W_h, b, V, c):
    T, N, _ = x.shape
    H = h0.shape[1]
    hs = np.zeros((T, N, H))
    h = h0
    for t in range(T):
        h = np.tanh(b + h @ W_h + x[t] @ W_x)
        hs[t] = h
    o = c + hs @ V
    o_max = o.max(axis=-1, keepdims=True)
    log_p = o - o_max - np.log(np.exp(o - o_max).sum(axis=-1, keepdims=True))
    t_idx, n_idx = np.meshgrid(np.arange(T), np.arange(N), indexing="ij")
    loss = -log_p[t_idx, n_idx, y].sum()

    do = np.exp(log_p)
    do[t_idx, n_idx, y] -= 1.0
    dV = np.einsum("tnh,tnc->hc", hs, do)
    dc = do.sum(axis=(0, 1))
    dhs = do @ V.T

    h_prev = np.concatenate([h0[None], hs[:-1]], axis=0)
    dW_x, dW_h, db = np.zeros_like(W_x), np.zeros_like(W_h), np.zeros_like(b)
    dx = np.zeros_like(x)
    dh_next = np.zeros_like(h0)
    for t in reversed(range(T)):
        dh = dhs[t] + dh_next
        da = dh * (1.0 - hs[t] ** 2)
        dW_x += x[t].T @ da
        dW_h += h_prev[t].T @ da
        db += da.sum(axis=0)
        dx[t] = da @ W_x.T
        dh_next = da @ W_h.T
    dh0 = np.zeros_like(h0)  # BUG: "h0 is a constant", but it was asked for; dh_next is dL/dh0
    grads = {"W_x": dW_x, "W_h": dW_h, "b": db, "V": dV, "c": dc, "h0": dh0, "x": dx}
    return float(loss), grads


def output_grad_one_step_late(x, y, h0, W_x, W_h, b, V, c):
    T, N, _ = x.shape
    H = h0.shape[1]
    hs = np.zeros((T, N, H))
    h = h0
    for t in range(T):
        h = np.tanh(b + h @ W_h + x[t] @ W_x)
        hs[t] = h
    o = c + hs @ V
    o_max = o.max(axis=-1, keepdims=True)
    log_p = o - o_max - np.log(np.exp(o - o_max).sum(axis=-1, keepdims=True))
    t_idx, n_idx = np.meshgrid(np.arange(T), np.arange(N), indexing="ij")
    loss = -log_p[t_idx, n_idx, y].sum()

    do = np.exp(log_p)
    do[t_idx, n_idx, y] -= 1.0
    dV = np.einsum("tnh,tnc->hc", hs, do)
    dc = do.sum(axis=(0, 1))
    dhs = do @ V.T

    h_prev = np.concatenate([h0[None], hs[:-1]], axis=0)
    dW_x, dW_h, db = np.zeros_like(W_x), np.zeros_like(W_h), np.zeros_like(b)
    dx = np.zeros_like(x)
    dh = np.zeros_like(h0)
    for t in reversed(range(T)):
        da = dh * (1.0 - hs[t] ** 2)
        dW_x += x[t].T @ da
        dW_h += h_prev[t].T @ da
        db += da.sum(axis=0)
        dx[t] = da @ W_x.T
        # BUG: the output gradient of step t is added after the step, so it lands on h_{t-1}
        dh = da @ W_h.T + dhs[t]
    grads = {"W_x": dW_x, "W_h": dW_h, "b": db, "V": dV, "c": dc, "h0": dh, "x": dx}
    return float(loss), grads


def truncated_bptt_2(x, y, h0, W_x, W_h, b, V, c):
    bptt_truncate = 2  # WildML style: each loss only sees the last few steps
    T, N, _ = x.shape
    hs = []
    probs = []
    loss = 0.0
    h = h0
    for t in range(T):
        h = np.tanh(x[t] @ W_x + h @ W_h + b)
        scores = h @ V + c
        scores = scores - scores.max(axis=1, keepdims=True)
        log_p = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
        loss -= log_p[np.arange(N), y[t]].sum()
        hs.append(h)
        probs.append(np.exp(log_p))

    dW_x, dW_h, db = np.zeros_like(W_x), np.zeros_like(W_h), np.zeros_like(b)
    dV, dc = np.zeros_like(V), np.zeros_like(c)
    dx = np.zeros_like(x)
    dh0 = np.zeros_like(h0)
    for t in reversed(range(T)):
        dscores = probs[t].copy()
        dscores[np.arange(N), y[t]] -= 1
        dV += hs[t].T @ dscores
        dc += dscores.sum(axis=0)
        dh = dscores @ V.T
        # BUG (silent): backpropagate this loss through at most bptt_truncate steps
        for s in range(t, max(t - bptt_truncate, -1), -1):
            h_prev = hs[s - 1] if s > 0 else h0
            da = dh * (1 - hs[s] ** 2)
            dW_x += x[s].T @ da
            dW_h += h_prev.T @ da
            db += da.sum(axis=0)
            dx[s] += da @ W_x.T
            dh = da @ W_h.T
            if s == 0:
                dh0 += dh
    grads = {"W_x": dW_x, "W_h": dW_h, "b": db, "V": dV, "c": dc, "h0": dh0, "x": dx}
    return float(loss), grads


def sign_flipped_db(x, y, h0, W_x, W_h, b, V, c):
    T, N, _ = x.shape
    H = h0.shape[1]
    hs = np.zeros((T, N, H))
    h = h0
    for t in range(T):
        h = np.tanh(b + h @ W_h + x[t] @ W_x)
        hs[t] = h
    o = c + hs @ V
    o_max = o.max(axis=-1, keepdims=True)
    log_p = o - o_max - np.log(np.exp(o - o_max).sum(axis=-1, keepdims=True))
    t_idx, n_idx = np.meshgrid(np.arange(T), np.arange(N), indexing="ij")
    loss = -log_p[t_idx, n_idx, y].sum()

    do = np.exp(log_p)
    do[t_idx, n_idx, y] -= 1.0
    dV = np.einsum("tnh,tnc->hc", hs, do)
    dc = do.sum(axis=(0, 1))
    dhs = do @ V.T

    h_prev = np.concatenate([h0[None], hs[:-1]], axis=0)
    dW_x, dW_h, db = np.zeros_like(W_x), np.zeros_like(W_h), np.zeros_like(b)
    dx = np.zeros_like(x)
    dh_next = np.zeros_like(h0)
    for t in reversed(range(T)):
        dh = dhs[t] + dh_next
        da = dh * (1.0 - hs[t] ** 2)
        dW_x += x[t].T @ da
        dW_h += h_prev[t].T @ da
        db -= da.sum(axis=0)  # BUG: "descent" sign folded into the gradient of b
        dx[t] = da @ W_x.T
        dh_next = da @ W_h.T
    grads = {"W_x": dW_x, "W_h": dW_h, "b": db, "V": dV, "c": dc, "h0": dh_next, "x": dx}
    return float(loss), grads


def grads_divided_by_T(x, y, h0, W_x, W_h, b, V, c):
    T, N, _ = x.shape
    hs = []
    probs = []
    loss = 0.0
    h = h0
    for t in range(T):
        h = np.tanh(x[t] @ W_x + h @ W_h + b)
        scores = h @ V + c
        scores = scores - scores.max(axis=1, keepdims=True)
        log_p = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
        loss -= log_p[np.arange(N), y[t]].sum()
        hs.append(h)
        probs.append(np.exp(log_p))

    grads = {
        "W_x": np.zeros_like(W_x),
        "W_h": np.zeros_like(W_h),
        "b": np.zeros_like(b),
        "V": np.zeros_like(V),
        "c": np.zeros_like(c),
        "h0": np.zeros_like(h0),
        "x": np.zeros_like(x),
    }
    dh_next = np.zeros_like(h0)
    for t in reversed(range(T)):
        h_prev = hs[t - 1] if t > 0 else h0
        dscores = probs[t].copy()
        dscores[np.arange(N), y[t]] -= 1
        grads["V"] += hs[t].T @ dscores
        grads["c"] += dscores.sum(axis=0)
        dh = dscores @ V.T + dh_next
        da = dh * (1 - hs[t] ** 2)
        grads["W_x"] += x[t].T @ da
        grads["W_h"] += h_prev.T @ da
        grads["b"] += da.sum(axis=0)
        grads["x"][t] = da @ W_x.T
        dh_next = da @ W_h.T
    grads["h0"] = dh_next
    for name in grads:
        grads[name] /= T  # BUG: average over time steps, but the loss is summed over time
    return float(loss), grads


def dV_assigned_not_accumulated(x, y, h0, W_x, W_h, b, V, c):
    T, N, _ = x.shape
    hs = []
    probs = []
    loss = 0.0
    h = h0
    for t in range(T):
        h = np.tanh(x[t] @ W_x + h @ W_h + b)
        scores = h @ V + c
        scores = scores - scores.max(axis=1, keepdims=True)
        log_p = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
        loss -= log_p[np.arange(N), y[t]].sum()
        hs.append(h)
        probs.append(np.exp(log_p))

    dW_x, dW_h, db = np.zeros_like(W_x), np.zeros_like(W_h), np.zeros_like(b)
    dV, dc = np.zeros_like(V), np.zeros_like(c)
    dx = np.zeros_like(x)
    dh_next = np.zeros_like(h0)
    for t in reversed(range(T)):
        h_prev = hs[t - 1] if t > 0 else h0
        dscores = probs[t].copy()
        dscores[np.arange(N), y[t]] -= 1
        dV = hs[t].T @ dscores  # BUG: '=' instead of '+=', only the last step visited survives
        dc += dscores.sum(axis=0)
        dh = dscores @ V.T + dh_next
        da = dh * (1 - hs[t] ** 2)
        dW_x += x[t].T @ da
        dW_h += h_prev.T @ da
        db += da.sum(axis=0)
        dx[t] = da @ W_x.T
        dh_next = da @ W_h.T
    grads = {"W_x": dW_x, "W_h": dW_h, "b": db, "V": dV, "c": dc, "h0": dh_next, "x": dx}
    return float(loss), grads


def output_grad_last_step_only(x, y, h0, W_x, W_h, b, V, c):
    T, N, _ = x.shape
    H = h0.shape[1]
    hs = np.zeros((T, N, H))
    h = h0
    for t in range(T):
        h = np.tanh(b + h @ W_h + x[t] @ W_x)
        hs[t] = h
    o = c + hs @ V
    o_max = o.max(axis=-1, keepdims=True)
    log_p = o - o_max - np.log(np.exp(o - o_max).sum(axis=-1, keepdims=True))
    t_idx, n_idx = np.meshgrid(np.arange(T), np.arange(N), indexing="ij")
    loss = -log_p[t_idx, n_idx, y].sum()

    do = np.exp(log_p)
    do[t_idx, n_idx, y] -= 1.0
    dV = np.einsum("tnh,tnc->hc", hs, do)
    dc = do.sum(axis=(0, 1))

    h_prev = np.concatenate([h0[None], hs[:-1]], axis=0)
    dW_x, dW_h, db = np.zeros_like(W_x), np.zeros_like(W_h), np.zeros_like(b)
    dx = np.zeros_like(x)
    dh = do[-1] @ V.T  # BUG: many-to-one habit, only the last output's gradient enters
    for t in reversed(range(T)):
        da = dh * (1.0 - hs[t] ** 2)
        dW_x += x[t].T @ da
        dW_h += h_prev[t].T @ da
        db += da.sum(axis=0)
        dx[t] = da @ W_x.T
        dh = da @ W_h.T
    grads = {"W_x": dW_x, "W_h": dW_h, "b": db, "V": dV, "c": dc, "h0": dh, "x": dx}
    return float(loss), grads


def loss_mean_over_batch(x, y, h0, W_x, W_h, b, V, c):
    T, N, _ = x.shape
    H = h0.shape[1]
    hs = np.zeros((T, N, H))
    h = h0
    for t in range(T):
        h = np.tanh(b + h @ W_h + x[t] @ W_x)
        hs[t] = h
    o = c + hs @ V
    o_max = o.max(axis=-1, keepdims=True)
    log_p = o - o_max - np.log(np.exp(o - o_max).sum(axis=-1, keepdims=True))
    t_idx, n_idx = np.meshgrid(np.arange(T), np.arange(N), indexing="ij")
    loss = -log_p[t_idx, n_idx, y].sum() / N  # BUG: reported loss averaged over the batch

    do = np.exp(log_p)
    do[t_idx, n_idx, y] -= 1.0
    dV = np.einsum("tnh,tnc->hc", hs, do)
    dc = do.sum(axis=(0, 1))
    dhs = do @ V.T

    h_prev = np.concatenate([h0[None], hs[:-1]], axis=0)
    dW_x, dW_h, db = np.zeros_like(W_x), np.zeros_like(W_h), np.zeros_like(b)
    dx = np.zeros_like(x)
    dh_next = np.zeros_like(h0)
    for t in reversed(range(T)):
        dh = dhs[t] + dh_next
        da = dh * (1.0 - hs[t] ** 2)
        dW_x += x[t].T @ da
        dW_h += h_prev[t].T @ da
        db += da.sum(axis=0)
        dx[t] = da @ W_x.T
        dh_next = da @ W_h.T
    grads = {"W_x": dW_x, "W_h": dW_h, "b": db, "V": dV, "c": dc, "h0": dh_next, "x": dx}
    return float(loss), grads


def dWh_skips_h0_term(x, y, h0, W_x, W_h, b, V, c):
    T, N, _ = x.shape
    hs = []
    probs = []
    loss = 0.0
    h = h0
    for t in range(T):
        h = np.tanh(x[t] @ W_x + h @ W_h + b)
        scores = h @ V + c
        scores = scores - scores.max(axis=1, keepdims=True)
        log_p = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
        loss -= log_p[np.arange(N), y[t]].sum()
        hs.append(h)
        probs.append(np.exp(log_p))

    dW_x, dW_h, db = np.zeros_like(W_x), np.zeros_like(W_h), np.zeros_like(b)
    dV, dc = np.zeros_like(V), np.zeros_like(c)
    dx = np.zeros_like(x)
    dh_next = np.zeros_like(h0)
    for t in reversed(range(T)):
        dscores = probs[t].copy()
        dscores[np.arange(N), y[t]] -= 1
        dV += hs[t].T @ dscores
        dc += dscores.sum(axis=0)
        dh = dscores @ V.T + dh_next
        da = dh * (1 - hs[t] ** 2)
        dW_x += x[t].T @ da
        if t > 0:  # BUG: no previous state at t=0 in hs, so the h0 term of dW_h is dropped
            dW_h += hs[t - 1].T @ da
        db += da.sum(axis=0)
        dx[t] = da @ W_x.T
        dh_next = da @ W_h.T
    grads = {"W_x": dW_x, "W_h": dW_h, "b": db, "V": dV, "c": dc, "h0": dh_next, "x": dx}
    return float(loss), grads


# ======================================================================================
# Buggy implementations (full form, column layout)
# ======================================================================================


def column_missing_transpose(x, y, h0, W_x, W_h, b, V, c):
    Wxh, Whh, Why, bh, by = W_x, W_h, V, b, c
    T, N, _ = x.shape

    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dx, dh0 = np.zeros_like(x), np.zeros_like(h0)
    loss = 0.0
    for n in range(N):
        xs, hs, ps = {}, {}, {}
        hs[-1] = h0[n][:, None]
        for t in range(T):
            xs[t] = x[t, n][:, None]
            hs[t] = np.tanh(np.dot(Wxh, xs[t]) + np.dot(Whh, hs[t - 1]) + bh)
            ys = np.dot(Why, hs[t]) + by
            ys = ys - np.max(ys)
            ps[t] = np.exp(ys) / np.sum(np.exp(ys))
            loss += -(ys[y[t, n], 0] - np.log(np.sum(np.exp(ys))))

        dhnext = np.zeros_like(hs[0])
        for t in reversed(range(T)):
            dy = np.copy(ps[t])
            dy[y[t, n]] -= 1
            dWhy += np.dot(dy, hs[t].T)
            dby += dy
            dh = np.dot(Why.T, dy) + dhnext
            dhraw = (1 - hs[t] * hs[t]) * dh
            dbh += dhraw
            dWxh += np.dot(dhraw, xs[t].T)
            dWhh += np.dot(dhraw, hs[t - 1].T)
            dx[t, n] = np.dot(Wxh.T, dhraw)[:, 0]
            dhnext = np.dot(Whh, dhraw)  # BUG: should be Whh.T, the forward pass used Whh @ h
        dh0[n] = dhnext[:, 0]

    grads = {"W_x": dWxh, "W_h": dWhh, "b": dbh, "V": dWhy, "c": dby, "h0": dh0, "x": dx}
    return loss, grads


def column_dby_assigned(x, y, h0, W_x, W_h, b, V, c):
    Wxh, Whh, Why, bh, by = W_x, W_h, V, b, c
    T, N, _ = x.shape

    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dx, dh0 = np.zeros_like(x), np.zeros_like(h0)
    loss = 0.0
    for n in range(N):
        xs, hs, ps = {}, {}, {}
        hs[-1] = h0[n][:, None]
        for t in range(T):
            xs[t] = x[t, n][:, None]
            hs[t] = np.tanh(np.dot(Wxh, xs[t]) + np.dot(Whh, hs[t - 1]) + bh)
            ys = np.dot(Why, hs[t]) + by
            ys = ys - np.max(ys)
            ps[t] = np.exp(ys) / np.sum(np.exp(ys))
            loss += -(ys[y[t, n], 0] - np.log(np.sum(np.exp(ys))))

        dhnext = np.zeros_like(hs[0])
        for t in reversed(range(T)):
            dy = np.copy(ps[t])
            dy[y[t, n]] -= 1
            dWhy += np.dot(dy, hs[t].T)
            dby = dy  # BUG: '=' instead of '+=', keeps only the last (n, t) visited
            dh = np.dot(Why.T, dy) + dhnext
            dhraw = (1 - hs[t] * hs[t]) * dh
            dbh += dhraw
            dWxh += np.dot(dhraw, xs[t].T)
            dWhh += np.dot(dhraw, hs[t - 1].T)
            dx[t, n] = np.dot(Wxh.T, dhraw)[:, 0]
            dhnext = np.dot(Whh.T, dhraw)
        dh0[n] = dhnext[:, 0]

    grads = {"W_x": dWxh, "W_h": dWhh, "b": dbh, "V": dWhy, "c": dby, "h0": dh0, "x": dx}
    return loss, grads


# ======================================================================================
# Buggy implementations (layer form)
# ======================================================================================


def layer_upstream_last_step_only(x, h0, W_x, W_h, b, dh):
    T, N, _ = x.shape
    H = h0.shape[1]
    h = np.zeros((T, N, H))
    prev_h = h0
    for t in range(T):
        prev_h = np.tanh(x[t] @ W_x + prev_h @ W_h + b)
        h[t] = prev_h

    dx = np.zeros_like(x)
    dWx, dWh, db = np.zeros_like(W_x), np.zeros_like(W_h), np.zeros_like(b)
    # BUG: upstream gradient taken from the last step only, as for a many-to-one model;
    # dh[t] is never added inside the loop
    dprev_h = dh[-1]
    for t in reversed(range(T)):
        prev = h[t - 1] if t > 0 else h0
        dtanh = dprev_h * (1 - h[t] ** 2)
        dx[t] = dtanh @ W_x.T
        dWx += x[t].T @ dtanh
        dWh += prev.T @ dtanh
        db += dtanh.sum(axis=0)
        dprev_h = dtanh @ W_h.T
    return {"x": dx, "h0": dprev_h, "W_x": dWx, "W_h": dWh, "b": db}


def layer_no_recurrent_term(x, h0, W_x, W_h, b, dh):
    def rnn_step_forward(x_t, prev_h, Wx, Wh, b):
        next_h = np.tanh(x_t @ Wx + prev_h @ Wh + b)
        return next_h, (x_t, prev_h, Wx, Wh, next_h)

    def rnn_step_backward(dnext_h, cache):
        x_t, prev_h, Wx, Wh, next_h = cache
        dtanh = dnext_h * (1 - next_h**2)
        return dtanh @ Wx.T, dtanh @ Wh.T, x_t.T @ dtanh, prev_h.T @ dtanh, dtanh.sum(axis=0)

    T = x.shape[0]
    caches = []
    prev_h = h0
    for t in range(T):
        prev_h, cache = rnn_step_forward(x[t], prev_h, W_x, W_h, b)
        caches.append(cache)

    dx = np.zeros_like(x)
    dWx, dWh, db = np.zeros_like(W_x), np.zeros_like(W_h), np.zeros_like(b)
    dprev_h = np.zeros_like(h0)
    for t in reversed(range(T)):
        # BUG: dh[t] alone is passed in; dprev_h from step t+1 is computed but dropped
        dx[t], dprev_h, dWx_t, dWh_t, db_t = rnn_step_backward(dh[t], caches[t])
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return {"x": dx, "h0": dprev_h, "W_x": dWx, "W_h": dWh, "b": db}


# ======================================================================================
# The cases
# ======================================================================================

_RECURRENT = frozenset({"W_x", "W_h", "b", "h0", "x"})
_ALL_FULL = frozenset(ROW_GRAD_NAMES)
_ALL_LAYER = frozenset(LAYER_GRAD_NAMES)

CORRECT: list[Case] = [
    Case(
        "correct_row_vectorised",
        correct_row_vectorised,
        "full",
        "row",
        frozenset(),
        None,
        "Row-layout BPTT with the softmax and output layer vectorised over time and batch.",
    ),
    Case(
        "correct_column_karpathy",
        correct_column_karpathy,
        "full",
        "column",
        frozenset(),
        None,
        "min-char-rnn style column vectors, looping over sequences n and time steps t.",
    ),
    Case(
        "correct_row_batch_loop",
        correct_row_batch_loop,
        "full",
        "row",
        frozenset(),
        None,
        "Row layout with an outer loop over the batch and 1-D vectors inside.",
    ),
    Case(
        "correct_row_float32",
        correct_row_float32,
        "full",
        "row",
        frozenset(),
        None,
        "Casts every input to float32 and computes loss and gradients in float32.",
        dtype="float32",
    ),
    Case(
        "correct_row_shared_only",
        correct_row_shared_only,
        "full",
        "row",
        frozenset(),
        None,
        "Correct BPTT that returns gradients for W_x, W_h, b, V, c only (no h0, no x).",
        only=("W_x", "W_h", "b", "V", "c", "loss"),
    ),
    Case(
        "correct_layer_cs231n",
        correct_layer_cs231n,
        "layer",
        "row",
        frozenset(),
        None,
        "CS231n rnn_forward/rnn_backward with step functions, adding dh[t] to dprev_h.",
    ),
]

BUGGY: list[Case] = [
    Case(
        "missing_recurrent_term",
        missing_recurrent_term,
        "full",
        "row",
        _RECURRENT,
        "no_recurrent_term",
        "The gradient flowing back from h_{t+1} (dh_next) is never added to dh at step t.",
    ),
    Case(
        "tanh_prime_of_preactivation",
        tanh_prime_of_preactivation,
        "full",
        "row",
        _RECURRENT,
        None,
        "tanh' is computed as 1 - a_t**2 from the pre-activation instead of 1 - h_t**2.",
    ),
    Case(
        "tanh_prime_of_upstream",
        tanh_prime_of_upstream,
        "full",
        "row",
        _RECURRENT,
        None,
        "tanh' is evaluated on the upstream gradient, da = 1 - dh**2, instead of dh*(1-h**2).",
    ),
    Case(
        "dWh_uses_current_state",
        dWh_uses_current_state,
        "full",
        "row",
        frozenset({"W_h"}),
        None,
        "dW_h accumulates h_t.T @ da_t instead of h_{t-1}.T @ da_t.",
    ),
    Case(
        "missing_transpose_recurrent",
        missing_transpose_recurrent,
        "full",
        "row",
        _RECURRENT,
        "untransposed_recurrence",
        "dh_prev = da @ W_h without the transpose, which runs because W_h is square.",
    ),
    Case(
        "batch_mean_gradients",
        batch_mean_gradients,
        "full",
        "row",
        _ALL_FULL,
        "scaled_by_N",
        "The softmax gradient is divided by N (batch mean) while the loss is still summed.",
    ),
    Case(
        "dWh_transposed",
        dWh_transposed,
        "full",
        "row",
        frozenset({"W_h"}),
        "transposed",
        "dW_h += da.T @ h_prev with the operands swapped, giving the transpose of dW_h.",
    ),
    Case(
        "skipped_first_step",
        skipped_first_step,
        "full",
        "row",
        _ALL_FULL,
        None,
        "The backward loop is range(T-1, 0, -1), so the first time step is never visited.",
    ),
    Case(
        "softmax_grad_no_onehot",
        softmax_grad_no_onehot,
        "full",
        "row",
        _ALL_FULL,
        None,
        "dL/do is taken as softmax(o) without subtracting the one-hot of the label.",
    ),
    Case(
        "lost_dh0",
        lost_dh0,
        "full",
        "row",
        frozenset({"h0"}),
        None,
        "The gradient of h0 is returned as zeros although dh_next at the end is dL/dh0.",
    ),
    Case(
        "output_grad_one_step_late",
        output_grad_one_step_late,
        "full",
        "row",
        _RECURRENT,
        None,
        "The output gradient of step t is added after backpropagating the step, landing on "
        "h_{t-1}.",
    ),
    Case(
        "truncated_bptt_2",
        truncated_bptt_2,
        "full",
        "row",
        _RECURRENT,
        "truncated",
        "Each step's loss is silently backpropagated through at most 2 time steps.",
    ),
    Case(
        "sign_flipped_db",
        sign_flipped_db,
        "full",
        "row",
        frozenset({"b"}),
        "sign_flipped",
        "db -= da.sum(0): the descent sign is folded into the gradient of b.",
    ),
    Case(
        "grads_divided_by_T",
        grads_divided_by_T,
        "full",
        "row",
        _ALL_FULL,
        "scaled_by_T",
        "Every gradient is divided by T (time average) while the loss is summed over time.",
    ),
    Case(
        "dV_assigned_not_accumulated",
        dV_assigned_not_accumulated,
        "full",
        "row",
        frozenset({"V"}),
        None,
        "dV = h_t.T @ do_t with '=' instead of '+=', so only the first time step survives.",
    ),
    Case(
        "output_grad_last_step_only",
        output_grad_last_step_only,
        "full",
        "row",
        _RECURRENT,
        None,
        "Only the last output's gradient is backpropagated into the hidden states.",
    ),
    Case(
        "loss_mean_over_batch",
        loss_mean_over_batch,
        "full",
        "row",
        frozenset({"loss"}),
        "scaled_by_N",
        "The returned loss is divided by N while the gradients are those of the summed loss.",
    ),
    Case(
        "dWh_skips_h0_term",
        dWh_skips_h0_term,
        "full",
        "row",
        frozenset({"W_h"}),
        None,
        "dW_h skips t=0 (if t > 0) because h0 is not in the list of states, losing h0.T @ da_0.",
    ),
    Case(
        "column_missing_transpose",
        column_missing_transpose,
        "full",
        "column",
        _RECURRENT,
        "untransposed_recurrence",
        "Karpathy-style dhnext = np.dot(Whh, dhraw) without the transpose of Whh.",
    ),
    Case(
        "column_dby_assigned",
        column_dby_assigned,
        "full",
        "column",
        frozenset({"c"}),
        None,
        "Karpathy-style dby = dy with '=' instead of '+=', keeping one (n, t) term only.",
    ),
    Case(
        "layer_upstream_last_step_only",
        layer_upstream_last_step_only,
        "layer",
        "row",
        _ALL_LAYER,
        None,
        "The upstream dh is taken from the last time step only, as for a many-to-one model.",
    ),
    Case(
        "layer_no_recurrent_term",
        layer_no_recurrent_term,
        "layer",
        "row",
        _ALL_LAYER,
        "no_recurrent_term",
        "rnn_step_backward gets dh[t] alone; the dprev_h from step t+1 is dropped.",
    ),
]

ALL_CASES: list[Case] = CORRECT + BUGGY

#: When a buggy case gives the right answer for every gradient and the loss (the bug is
#: invisible, and a checker cannot be expected to flag it), as a Python expression in the
#: sizes T, N, D, H, C. Cases not listed are visible on every shape. On other small shapes
#: the wrong gradients are a subset of `wrong`: with T == 1 the two missing-transpose cases
#: get only "h0" wrong.
INVISIBLE_WHEN: dict[str, Callable[[object], bool]] = {
    "missing_recurrent_term": lambda d: d.T == 1,
    "missing_transpose_recurrent": lambda d: d.H == 1,
    "batch_mean_gradients": lambda d: d.N == 1,
    "dWh_transposed": lambda d: d.H == 1,
    "truncated_bptt_2": lambda d: d.T <= 2,
    "grads_divided_by_T": lambda d: d.T == 1,
    "dV_assigned_not_accumulated": lambda d: d.T == 1,
    "output_grad_last_step_only": lambda d: d.T == 1,
    "loss_mean_over_batch": lambda d: d.N == 1,
    "column_missing_transpose": lambda d: d.H == 1,
    "column_dby_assigned": lambda d: d.N == 1 and d.T == 1,
    "layer_upstream_last_step_only": lambda d: d.T == 1,
    "layer_no_recurrent_term": lambda d: d.T == 1,
}


def case_by_name(name: str) -> Case:
    for case in ALL_CASES:
        if case.name == name:
            return case
    raise KeyError(name)


# Table of cases (generated from the metadata above; keep in sync). f32 marks dtype
# float32; INVISIBLE_WHEN lists the shapes on which a bug does not show.
#
#   name                           form/layout   wrong               cause
#   -----------------------------  ------------  ------------------  -----------------
#   correct_row_vectorised         full/row      (correct)           -
#   correct_column_karpathy        full/column   (correct)           -
#   correct_row_batch_loop         full/row      (correct)           -
#   correct_row_float32            full/row f32  (correct)           -
#   correct_row_shared_only        full/row      (correct)           -
#   correct_layer_cs231n           layer/row     (correct)           -
#   missing_recurrent_term         full/row      W_x,W_h,b,h0,x      no_recurrent_term
#   tanh_prime_of_preactivation    full/row      W_x,W_h,b,h0,x      -
#   tanh_prime_of_upstream         full/row      W_x,W_h,b,h0,x      -
#   dWh_uses_current_state         full/row      W_h                 -
#   missing_transpose_recurrent    full/row      W_x,W_h,b,h0,x      untransposed_recurrence
#   batch_mean_gradients           full/row      W_x,W_h,b,V,c,h0,x  scaled_by_N
#   dWh_transposed                 full/row      W_h                 transposed
#   skipped_first_step             full/row      W_x,W_h,b,V,c,h0,x  -
#   softmax_grad_no_onehot         full/row      W_x,W_h,b,V,c,h0,x  -
#   lost_dh0                       full/row      h0                  -
#   output_grad_one_step_late      full/row      W_x,W_h,b,h0,x      -
#   truncated_bptt_2               full/row      W_x,W_h,b,h0,x      truncated
#   sign_flipped_db                full/row      b                   sign_flipped
#   grads_divided_by_T             full/row      W_x,W_h,b,V,c,h0,x  scaled_by_T
#   dV_assigned_not_accumulated    full/row      V                   -
#   output_grad_last_step_only     full/row      W_x,W_h,b,h0,x      -
#   loss_mean_over_batch           full/row      loss                scaled_by_N
#   dWh_skips_h0_term              full/row      W_h                 -
#   column_missing_transpose       full/column   W_x,W_h,b,h0,x      untransposed_recurrence
#   column_dby_assigned            full/column   c                   -
#   layer_upstream_last_step_only  layer/row     W_x,W_h,b,h0,x      -
#   layer_no_recurrent_term        layer/row     W_x,W_h,b,h0,x      no_recurrent_term
