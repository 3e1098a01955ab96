import numpy as np


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """
    One timestep of a vanilla RNN with tanh activation.
    x: (N, D), prev_h: (N, H), Wx: (D, H), Wh: (H, H), b: (H,)
    Returns next_h (N, H) and the values needed for the backward pass.
    """
    next_h = np.tanh(prev_h.dot(Wh) + x.dot(Wx) + b)
    cache = (x, prev_h, Wx, Wh, next_h)
    return next_h, cache


def rnn_step_backward(dnext_h, cache):
    """Returns dx, dprev_h, dWx, dWh, db for a single timestep."""
    x, prev_h, Wx, Wh, next_h = cache
    dz = dnext_h * (1 - next_h**2)
    dx = dz.dot(Wx.T)
    dprev_h = dz.dot(Wh.T)
    dWx = x.T.dot(dz)
    dWh = prev_h.T.dot(dz)
    db = dz.sum(axis=0)
    return dx, dprev_h, dWx, dWh, db


def rnn_forward(x, h0, Wx, Wh, b):
    """
    Run a vanilla RNN forward on an entire sequence of data.
    x: (N, T, D), h0: (N, H). Returns h: (N, T, H) and the cache.
    """
    N, T, D = x.shape
    H = h0.shape[1]
    h = np.zeros((N, T, H))
    cache = []
    prev_h = h0
    for t in range(T):
        prev_h, cache_t = rnn_step_forward(x[:, t, :], prev_h, Wx, Wh, b)
        h[:, t, :] = prev_h
        cache.append(cache_t)
    return h, cache


def rnn_backward(dh, cache):
    """
    Backward pass for a vanilla RNN over an entire sequence of data.
    dh: upstream gradients of all hidden states, (N, T, H).
    Returns dx, dh0, dWx, dWh, db.
    """
    N, T, H = dh.shape
    D = cache[0][0].shape[1]
    dx = np.zeros((N, T, D))
    dWx = np.zeros((D, H))
    dWh = np.zeros((H, H))
    db = np.zeros(H)
    dprev_h = np.zeros((N, H))
    for t in reversed(range(T)):
        dx[:, t, :], dprev_h, dWx_t, dWh_t, db_t = rnn_step_backward(
            dh[:, t, :] + dprev_h, cache[t]
        )
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    dh0 = dprev_h
    return dx, dh0, dWx, dWh, db
