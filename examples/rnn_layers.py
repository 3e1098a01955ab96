"""A vanilla RNN layer as forward/backward pairs, in the shape of CS231n's rnn_layers.py.

Written for symbptt's documentation. x is batch-first (N, T, D), h0 (N, H), Wx (D, H),
Wh (H, H), b (H,); the caches stay inside this process. Check the pairs unmodified with

    symbptt check examples/rnn_layers.py:rnn_forward,rnn_backward --form layer --batch-first
    symbptt check examples/rnn_layers.py:rnn_step_forward,rnn_step_backward --form layer
"""

import numpy as np


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """One step: next_h = tanh(prev_h Wh + x Wx + b)."""
    next_h = np.tanh(prev_h @ Wh + x @ Wx + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    """Gradients of one step, given the upstream gradient on next_h."""
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - next_h**2)
    return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def rnn_forward(x, h0, Wx, Wh, b):
    """Every step of a sequence: h is (N, T, H)."""
    N, T, _ = x.shape
    h = np.zeros((N, T, Wh.shape[0]))
    caches, prev = [], h0
    for t in range(T):
        prev, cache = rnn_step_forward(x[:, t], prev, Wx, Wh, b)
        h[:, t] = prev
        caches.append(cache)
    return h, caches


def rnn_backward(dh, caches):
    """Gradients of the whole sequence, given the upstream gradient on every h_t (N, T, H)."""
    N, T, H = dh.shape
    D = caches[0][0].shape[1]
    dx = np.zeros((N, T, D))
    dWx, dWh, db = np.zeros((D, H)), np.zeros((H, H)), np.zeros(H)
    dprev = np.zeros((N, H))
    for t in reversed(range(T)):
        dx[:, t], dprev, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t] + dprev, caches[t])
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dprev, dWx, dWh, db
