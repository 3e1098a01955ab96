import numpy as np


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def gru_loss(X, y, h0, Wx, Wh, b, Wy, by):
    """
    GRU language-model style loss with its gradients, by backprop through time.

    X: (T, N, D) inputs, y: (T, N) integer targets, h0: (N, H)
    Wx: (D, 3H), Wh: (H, 3H), b: (3H,) -- gate blocks in the order z, r, h~
    Wy: (H, C), by: (C,) -- output layer

        z  = sigmoid(x Wx_z + h Wh_z + b_z)
        r  = sigmoid(x Wx_r + h Wh_r + b_r)
        h~ = tanh(x Wx_h + (r * h) Wh_h + b_h)
        h  = z * h + (1 - z) * h~
        p  = softmax(h Wy + by),  loss = -sum log p[y]

    Returns loss, grads (dict with keys h0, Wx, Wh, b, Wy, by).
    """
    T, N, D = X.shape
    H = h0.shape[1]
    Wh_zr, Wh_h = Wh[:, : 2 * H], Wh[:, 2 * H :]

    hs = {-1: h0}
    zs, rs, hts, ps = {}, {}, {}, {}
    loss = 0.0
    for t in range(T):
        zr = sigmoid(X[t] @ Wx[:, : 2 * H] + hs[t - 1] @ Wh_zr + b[: 2 * H])
        zs[t], rs[t] = zr[:, :H], zr[:, H:]
        hts[t] = np.tanh(X[t] @ Wx[:, 2 * H :] + (rs[t] * hs[t - 1]) @ Wh_h + b[2 * H :])
        hs[t] = zs[t] * hs[t - 1] + (1 - zs[t]) * hts[t]
        o = hs[t] @ Wy + by
        e = np.exp(o - o.max(axis=1, keepdims=True))
        ps[t] = e / e.sum(axis=1, keepdims=True)
        loss += -np.sum(np.log(ps[t][np.arange(N), y[t]]))

    grads = {
        "Wx": np.zeros_like(Wx),
        "Wh": np.zeros_like(Wh),
        "b": np.zeros_like(b),
        "Wy": np.zeros_like(Wy),
        "by": np.zeros_like(by),
    }
    dh_next = np.zeros_like(h0)
    for t in reversed(range(T)):
        do = ps[t].copy()
        do[np.arange(N), y[t]] -= 1
        grads["Wy"] += hs[t].T @ do
        grads["by"] += do.sum(axis=0)

        dh = do @ Wy.T + dh_next
        h_prev, z, r, ht = hs[t - 1], zs[t], rs[t], hts[t]

        dht = dh * (1 - z) * (1 - ht**2)  # pre-activation of h~
        dz = dh * (h_prev - ht) * z * (1 - z)
        drh = dht @ Wh_h.T  # w.r.t. r * h_prev
        dr = drh * h_prev * r * (1 - r)

        da = np.concatenate([dz, dr, dht], axis=1)
        grads["Wx"] += X[t].T @ da
        grads["b"] += da.sum(axis=0)
        grads["Wh"][:, : 2 * H] += h_prev.T @ da[:, : 2 * H]
        grads["Wh"][:, 2 * H :] += (r * h_prev).T @ dht

        dh_next = dh * z + drh * r + da[:, : 2 * H] @ Wh_zr.T

    grads["h0"] = dh_next
    return loss, grads
