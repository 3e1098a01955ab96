"""GRU layer, forward pass. The backward pass lives in split_gru_bwd.py and reads the
cache built here:

    cache = {"x": x, "h": h (N, T+1, H) with h[:, 0] = h0, "r", "z", "n": (N, T, H),
             "hn": (N, T, H) = h_{t-1} Wh_n + bh_n, "Wx": Wx, "Wh": Wh}

Gates are packed [r | z | n] along the last axis of Wx (D, 3H), Wh (H, 3H),
bx (3H,) and bh (3H,), as in cuDNN / PyTorch.
"""

import numpy as np


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def gru_forward(x, h0, Wx, Wh, bx, bh):
    """x: (N, T, D), h0: (N, H). Returns h: (N, T, H) and the cache."""
    N, T, D = x.shape
    H = h0.shape[1]
    h = np.zeros((N, T + 1, H))
    h[:, 0] = h0
    r = np.zeros((N, T, H))
    z = np.zeros((N, T, H))
    n = np.zeros((N, T, H))
    hn = np.zeros((N, T, H))

    for t in range(T):
        gx = x[:, t] @ Wx + bx
        gh = h[:, t] @ Wh + bh
        r[:, t] = sigmoid(gx[:, :H] + gh[:, :H])
        z[:, t] = sigmoid(gx[:, H : 2 * H] + gh[:, H : 2 * H])
        hn[:, t] = gh[:, 2 * H :]
        n[:, t] = np.tanh(gx[:, 2 * H :] + r[:, t] * hn[:, t])
        h[:, t + 1] = (1 - z[:, t]) * n[:, t] + z[:, t] * h[:, t]

    cache = {"x": x, "h": h, "r": r, "z": z, "n": n, "hn": hn, "Wx": Wx, "Wh": Wh}
    return h[:, 1:], cache
