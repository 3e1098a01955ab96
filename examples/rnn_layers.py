r"""A vanilla RNN, an LSTM and a GRU layer as forward/backward pairs, in the shape of CS231n's
rnn_layers.py.

Written for symbptt's documentation. x is batch-first (N, T, D), h0 (N, H), Wx (D, H),
Wh (H, H), b (H,); the caches stay inside this process. Check the pairs unmodified with

    symbptt check examples/rnn_layers.py:rnn_forward,rnn_backward --form layer --batch-first
    symbptt check examples/rnn_layers.py:rnn_step_forward,rnn_step_backward --form layer

The gated layers keep their gates side by side in one matrix. The LSTM's Wx is (D, 4H), Wh
(H, 4H) and b (4H,), with the gates in CS231n's order i, f, o, g and c0 = 0; the GRU's Wx is
(D, 3H), Wh (H, 3H) and its two biases b_x, b_h (3H,), with PyTorch's gates r, z, n (the reset
applied after the product: n = tanh(x Wxn + b_xn + r * (h Whn + b_hn))). Check them with

    symbptt check examples/rnn_layers.py:lstm_forward,lstm_backward --form layer --batch-first \
        --model lstm
    symbptt check examples/rnn_layers.py:gru_forward,gru_backward --form layer --batch-first \
        --model gru
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


def sigmoid(a):
    """The logistic function, without overflow for large |a|."""
    return 0.5 * (1 + np.tanh(0.5 * a))


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One LSTM step: a = x Wx + prev_h Wh + b holds the gates i, f, o, g (H columns each)."""
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    i = sigmoid(a[:, :H])
    f = sigmoid(a[:, H : 2 * H])
    o = sigmoid(a[:, 2 * H : 3 * H])
    g = np.tanh(a[:, 3 * H :])
    next_c = f * prev_c + i * g
    next_h = o * np.tanh(next_c)
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    """Gradients of one LSTM step, given the upstream gradients on next_h and next_c."""
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = cache
    tanh_c = np.tanh(next_c)
    dc = dnext_c + dnext_h * o * (1 - tanh_c**2)
    di = dc * g
    df = dc * prev_c
    do = dnext_h * tanh_c
    dg = dc * i
    da = np.hstack([di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g**2)])
    dx = da @ Wx.T
    dprev_h = da @ Wh.T
    dprev_c = dc * f
    dWx = x.T @ da
    dWh = prev_h.T @ da
    db = da.sum(axis=0)
    return dx, dprev_h, dprev_c, dWx, dWh, db


def lstm_forward(x, h0, Wx, Wh, b):
    """Every step of a sequence from c0 = 0: h is (N, T, H)."""
    N, T, _ = x.shape
    H = h0.shape[1]
    h = np.zeros((N, T, H))
    prev_h, prev_c = h0, np.zeros((N, H))
    caches = []
    for t in range(T):
        prev_h, prev_c, cache = lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b)
        h[:, t] = prev_h
        caches.append(cache)
    return h, caches


def lstm_backward(dh, caches):
    """Gradients of the whole sequence, given the upstream gradient on every h_t (N, T, H)."""
    N, T, H = dh.shape
    D = caches[0][0].shape[1]
    dx = np.zeros((N, T, D))
    dWx, dWh, db = np.zeros((D, 4 * H)), np.zeros((H, 4 * H)), np.zeros(4 * H)
    dprev_h, dprev_c = np.zeros((N, H)), np.zeros((N, H))
    for t in reversed(range(T)):
        step = lstm_step_backward(dh[:, t] + dprev_h, dprev_c, caches[t])
        dx[:, t], dprev_h, dprev_c, dWx_t, dWh_t, db_t = step
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dprev_h, dWx, dWh, db


def gru_step_forward(x, prev_h, Wx, Wh, b_x, b_h):
    """One GRU step (PyTorch's): the gates r, z, n hold H columns each of Wx, Wh, b_x, b_h."""
    H = prev_h.shape[1]
    ax = x @ Wx + b_x
    ah = prev_h @ Wh + b_h
    r = sigmoid(ax[:, :H] + ah[:, :H])
    z = sigmoid(ax[:, H : 2 * H] + ah[:, H : 2 * H])
    hn = ah[:, 2 * H :]
    n = np.tanh(ax[:, 2 * H :] + r * hn)
    next_h = (1 - z) * n + z * prev_h
    return next_h, (x, prev_h, Wx, Wh, r, z, n, hn)


def gru_step_backward(dnext_h, cache):
    """Gradients of one GRU step, given the upstream gradient on next_h."""
    x, prev_h, Wx, Wh, r, z, n, hn = cache
    dn = dnext_h * (1 - z)
    dz = dnext_h * (prev_h - n)
    dan = dn * (1 - n**2)
    dar = dan * hn * r * (1 - r)
    daz = dz * z * (1 - z)
    dax = np.hstack([dar, daz, dan])
    dah = np.hstack([dar, daz, dan * r])
    dx = dax @ Wx.T
    dprev_h = dnext_h * z + dah @ Wh.T
    dWx = x.T @ dax
    dWh = prev_h.T @ dah
    return dx, dprev_h, dWx, dWh, dax.sum(axis=0), dah.sum(axis=0)


def gru_forward(x, h0, Wx, Wh, b_x, b_h):
    """Every step of a sequence: h is (N, T, H)."""
    N, T, _ = x.shape
    h = np.zeros((N, T, h0.shape[1]))
    caches, prev = [], h0
    for t in range(T):
        prev, cache = gru_step_forward(x[:, t], prev, Wx, Wh, b_x, b_h)
        h[:, t] = prev
        caches.append(cache)
    return h, caches


def gru_backward(dh, caches):
    """Gradients of the whole sequence, given the upstream gradient on every h_t (N, T, H)."""
    N, T, H = dh.shape
    D = caches[0][0].shape[1]
    dx = np.zeros((N, T, D))
    dWx, dWh = np.zeros((D, 3 * H)), np.zeros((H, 3 * H))
    db_x, db_h = np.zeros(3 * H), np.zeros(3 * H)
    dprev = np.zeros((N, H))
    for t in reversed(range(T)):
        step = gru_step_backward(dh[:, t] + dprev, caches[t])
        dx[:, t], dprev, dWx_t, dWh_t, db_x_t, db_h_t = step
        dWx += dWx_t
        dWh += dWh_t
        db_x += db_x_t
        db_h += db_h_t
    return dx, dprev, dWx, dWh, db_x, db_h
