import numpy as np


def rnn_forward(x, h0, params):
    """
    Vanilla RNN over a minibatch, one example per column.

        h_t = tanh(Wxh x_t + Whh h_{t-1} + bh)

    x: (D, N, T), h0: (H, N)
    params: dict with Wxh (H, D), Whh (H, H), bh (H, 1)
    Returns h: (H, N, T) and a cache for rnn_backward.
    """
    Wxh, Whh, bh = params["Wxh"], params["Whh"], params["bh"]
    D, N, T = x.shape
    H = Whh.shape[0]
    h = np.zeros((H, N, T))
    h_prev = h0
    for t in range(T):
        h[:, :, t] = np.tanh(Wxh @ x[:, :, t] + Whh @ h_prev + bh)
        h_prev = h[:, :, t]
    cache = (x, h0, h, params)
    return h, cache


def rnn_backward(dh, cache):
    """
    dh: (H, N, T), gradient of the loss w.r.t. every hidden state.
    Returns a dict with dx, dh0, dWxh, dWhh, dbh.
    """
    x, h0, h, params = cache
    Wxh, Whh = params["Wxh"], params["Whh"]
    D, N, T = x.shape

    grads = {
        "dx": np.zeros_like(x),
        "dWxh": np.zeros_like(Wxh),
        "dWhh": np.zeros_like(Whh),
        "dbh": np.zeros_like(params["bh"]),
    }
    dhnext = np.zeros_like(h0)
    for t in reversed(range(T)):
        h_prev = h[:, :, t - 1] if t > 0 else h0
        dhraw = (1 - h[:, :, t] ** 2) * (dh[:, :, t] + dhnext)  # backprop through tanh
        grads["dbh"] += np.sum(dhraw, axis=1, keepdims=True)
        grads["dWxh"] += dhraw @ x[:, :, t].T
        grads["dWhh"] += dhraw @ h_prev.T
        grads["dx"][:, :, t] = Wxh.T @ dhraw
        dhnext = Whh.T @ dhraw
    grads["dh0"] = dhnext
    return grads
