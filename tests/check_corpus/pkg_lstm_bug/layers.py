import numpy as np

from .functions import sigmoid, sigmoid_grad, tanh, tanh_grad


def lstm_forward(x, h0, c0, W, b):
    """
    x:  (T, N, D) inputs, time first
    h0, c0: (N, H) initial states
    W:  (D + H, 4H) weights acting on the concatenation [x_t, h_{t-1}]
    b:  (4H,)
    The gate blocks of W and b are ordered forget, input, output, candidate.
    """
    T, N, D = x.shape
    H = h0.shape[1]
    h = np.zeros((T, N, H))
    c = np.zeros((T, N, H))
    gates = np.zeros((T, N, 4 * H))
    xh = np.zeros((T, N, D + H))

    h_prev, c_prev = h0, c0
    for t in range(T):
        xh[t] = np.concatenate([x[t], h_prev], axis=1)
        a = xh[t] @ W + b
        gates[t, :, : 3 * H] = sigmoid(a[:, : 3 * H])
        gates[t, :, 3 * H :] = tanh(a[:, 3 * H :])
        f, i, o, g = np.split(gates[t], 4, axis=1)
        c[t] = f * c_prev + i * g
        h[t] = o * tanh(c[t])
        h_prev, c_prev = h[t], c[t]

    cache = (xh, gates, c, c0, W)
    return h, cache


def lstm_backward(dh, cache):
    """dh: (T, N, H) gradient of the loss w.r.t. every h_t.
    Returns dx, dh0, dc0, dW, db."""
    xh, gates, c, c0, W = cache
    T, N, H = dh.shape
    D = xh.shape[2] - H

    dx = np.zeros((T, N, D))
    dW = np.zeros_like(W)
    db = np.zeros(4 * H)
    dh_next = np.zeros((N, H))
    dc_next = np.zeros((N, H))

    for t in reversed(range(T)):
        f, i, o, g = np.split(gates[t], 4, axis=1)
        c_prev = c[t - 1] if t > 0 else c0
        tc = tanh(c[t])

        dht = dh[t] + dh_next
        dct = dht * o * tanh_grad(tc)

        da = np.concatenate(
            [
                dct * c_prev * sigmoid_grad(f),
                dct * g * sigmoid_grad(i),
                dht * tc * sigmoid_grad(o),
                dct * i * tanh_grad(g),
            ],
            axis=1,
        )

        dW += xh[t].T @ da
        db += da.sum(axis=0)
        dxh = da @ W.T
        dx[t] = dxh[:, :D]
        dh_next = dxh[:, D:]
        dc_next = dct * f

    return dx, dh_next, dc_next, dW, db
