"""GRU forward/backward in numpy, written with the names and shapes of torch.nn.GRU
(weight_ih_l0 = [W_ir; W_iz; W_in], weight_hh_l0 = [W_hr; W_hz; W_hn]):

    r_t = sigmoid(x_t W_ir^T + b_ir + h_{t-1} W_hr^T + b_hr)
    z_t = sigmoid(x_t W_iz^T + b_iz + h_{t-1} W_hz^T + b_hz)
    n_t = tanh(x_t W_in^T + b_in + r_t * (h_{t-1} W_hn^T + b_hn))
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}
"""

import numpy as np


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def gru_forward(x, h0, W_ir, W_iz, W_in, W_hr, W_hz, W_hn, b_ir, b_iz, b_in, b_hr, b_hz, b_hn):
    """x: (L, N, H_in), h0: (N, H_out). Returns output (L, N, H_out) and a cache."""
    L = x.shape[0]
    h = h0
    out = []
    cache = []
    for t in range(L):
        r = sigmoid(x[t] @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
        z = sigmoid(x[t] @ W_iz.T + b_iz + h @ W_hz.T + b_hz)
        gh_n = h @ W_hn.T + b_hn
        n = np.tanh(x[t] @ W_in.T + b_in + r * gh_n)
        cache.append((x[t], h, r, z, n, gh_n))
        h = (1 - z) * n + z * h
        out.append(h)
    weights = (W_ir, W_iz, W_in, W_hr, W_hz, W_hn)
    return np.stack(out), (cache, weights)


def gru_backward(dout, cache):
    """dout: (L, N, H_out). Returns the gradients in the order of gru_forward's arguments:
    dx, dh0, dW_ir, dW_iz, dW_in, dW_hr, dW_hz, dW_hn, db_ir, db_iz, db_in, db_hr, db_hz, db_hn
    """
    steps, (W_ir, W_iz, W_in, W_hr, W_hz, W_hn) = cache
    dx = np.zeros((len(steps),) + steps[0][0].shape)
    dW = [np.zeros_like(W) for W in (W_ir, W_iz, W_in, W_hr, W_hz, W_hn)]
    db = [np.zeros(W_hr.shape[0]) for _ in range(6)]

    dh_next = np.zeros_like(dout[0])
    for t in reversed(range(len(steps))):
        x_t, h_prev, r, z, n, gh_n = steps[t]
        dh = dout[t] + dh_next

        dn = dh * (1 - z) * (1 - n**2)  # at the pre-activation of n
        dz = dh * (h_prev - n) * z * (1 - z)
        dgh_n = dn  # gradient of (r * h) W_hn^T + b_hn
        dr = (dn @ W_hn) * h_prev * r * (1 - r)

        for k, d in enumerate((dr, dz, dn)):
            dW[k] += d.T @ x_t
            db[k] += d.sum(axis=0)
        for k, d in enumerate((dr, dz, dgh_n)):
            dW[3 + k] += d.T @ h_prev
            db[3 + k] += d.sum(axis=0)

        dx[t] = dr @ W_ir + dz @ W_iz + dn @ W_in
        dh_next = dh * z + dr @ W_hr + dz @ W_hz + dgh_n @ W_hn

    return (dx, dh_next, *dW, *db)
