"""GRU layer, backward pass (see split_gru_fwd.py for the forward pass and the cache)."""

import numpy as np


def gru_backward(dh, cache):
    """dh: (N, T, H), upstream gradient of every hidden state.
    Returns dx, dh0, dWx, dWh, dbx, dbh."""
    x, h, r, z, n, hn = (cache[k] for k in ("x", "h", "r", "z", "n", "hn"))
    Wx, Wh = cache["Wx"], cache["Wh"]
    N, T, H = dh.shape

    dx = np.zeros_like(x)
    dWx = np.zeros_like(Wx)
    dWh = np.zeros_like(Wh)
    dbx = np.zeros(3 * H)
    dbh = np.zeros(3 * H)
    dh_prev = np.zeros((N, H))

    for t in range(T - 1, -1, -1):
        dht = dh[:, t] + dh_prev
        rt, zt, nt, hnt, h_prev = r[:, t], z[:, t], n[:, t], hn[:, t], h[:, t]

        dn = dht * (1 - zt) * (1 - nt**2)
        dz = dht * (h_prev - nt) * zt * (1 - zt)
        dr = dn * hnt * rt * (1 - rt)

        dgx = np.concatenate([dr, dz, dn], axis=1)  # w.r.t. x_t Wx + bx
        dgh = np.concatenate([dr, dz, dn * rt], axis=1)  # w.r.t. h_{t-1} Wh + bh

        dWx += x[:, t].T @ dgx
        dbx += dgx.sum(axis=0)
        dWh += h_prev.T @ dgh
        dbh += dgx.sum(axis=0)

        dx[:, t] = dgx @ Wx.T
        dh_prev = dht * zt + dgh @ Wh.T

    return dx, dh_prev, dWx, dWh, dbx, dbh
