"""Fully gated GRU unit for a single sequence (vectors, no batch dimension).

    z_t = sigmoid(Wz x_t + Uz h_{t-1} + bz)
    r_t = sigmoid(Wr x_t + Ur h_{t-1} + br)
    hh_t = tanh(Wh x_t + Uh (r_t * h_{t-1}) + bh)
    h_t = (1 - z_t) * h_{t-1} + z_t * hh_t

W* : (H, D), U* : (H, H), b* : (H,)
"""

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def gru_step(x, h, Wz, Uz, bz, Wr, Ur, br, Wh, Uh, bh):
    z = sigmoid(Wz @ x + Uz @ h + bz)
    r = sigmoid(Wr @ x + Ur @ h + br)
    hh = np.tanh(Wh @ x + Uh @ (r * h) + bh)
    h_new = (1 - z) * h + z * hh
    return h_new, (x, h, z, r, hh)


def gru_step_backward(dh, cache, Wz, Uz, Wr, Ur, Wh, Uh):
    x, h, z, r, hh = cache
    dhh = dh * z * (1 - hh**2)  # at the tanh's input
    dz = dh * (hh - h) * z * (1 - z)  # at the sigmoid's input
    drh = Uh.T @ dhh  # w.r.t. r * h
    dr = drh * h * r * (1 - r)

    grads = {
        "dWz": np.outer(dz, x),
        "dUz": np.outer(dz, h),
        "dbz": dz,
        "dWr": np.outer(dr, x),
        "dUr": np.outer(dr, h),
        "dbr": dr,
        "dWh": np.outer(dhh, x),
        "dUh": np.outer(dhh, r * h),
        "dbh": dhh,
    }
    dx = Wz.T @ dz + Wr.T @ dr + Wh.T @ dhh
    dh_prev = drh * r + Uz.T @ dz + Ur.T @ dr
    return dx, dh_prev, grads


def forward(xs, h0, Wz, Uz, bz, Wr, Ur, br, Wh, Uh, bh):
    """xs: (T, D). Returns hs (T, H) and the caches."""
    h = h0
    hs, caches = [], []
    for x in xs:
        h, cache = gru_step(x, h, Wz, Uz, bz, Wr, Ur, br, Wh, Uh, bh)
        hs.append(h)
        caches.append(cache)
    weights = (Wz, Uz, Wr, Ur, Wh, Uh)
    return np.array(hs), (caches, weights)


def backward(dhs, cache):
    """dhs: (T, H). Returns a dict: dxs, dh0 and dWz, dUz, dbz, dWr, dUr, dbr, dWh, dUh, dbh."""
    caches, weights = cache
    total = {}
    dxs = np.zeros((len(caches), caches[0][0].shape[0]))
    dh_next = np.zeros_like(dhs[0])
    for t in reversed(range(len(caches))):
        dx, dh_next, grads = gru_step_backward(dhs[t] + dh_next, caches[t], *weights)
        dxs[t] = dx
        for k, v in grads.items():
            total[k] = total.get(k, 0) + v
    total["dxs"] = dxs
    total["dh0"] = dh_next
    return total
