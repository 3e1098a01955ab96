"""
LSTM layer with one weight matrix per gate (W* for the input, U* for the recurrence).

    f_t = sigmoid(x_t Wf + h_{t-1} Uf + bf)
    i_t = sigmoid(x_t Wi + h_{t-1} Ui + bi)
    c~_t = tanh(x_t Wc + h_{t-1} Uc + bc)
    o_t = sigmoid(x_t Wo + h_{t-1} Uo + bo)
    c_t = f_t * c_{t-1} + i_t * c~_t
    h_t = o_t * tanh(c_t)

Shapes: X (N, T, D), W* (D, H), U* (H, H), b* (H,)
"""

import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def lstm_forward(X, h0, c0, Wf, Wi, Wc, Wo, Uf, Ui, Uc, Uo, bf, bi, bc, bo):
    N, T, D = X.shape
    H = h0.shape[1]
    Hs = np.zeros((N, T, H))
    steps = []
    h, c = h0, c0
    for t in range(T):
        x = X[:, t, :]
        f = sigmoid(x @ Wf + h @ Uf + bf)
        i = sigmoid(x @ Wi + h @ Ui + bi)
        c_tilde = np.tanh(x @ Wc + h @ Uc + bc)
        o = sigmoid(x @ Wo + h @ Uo + bo)
        c_new = f * c + i * c_tilde
        h_new = o * np.tanh(c_new)
        steps.append((x, h, c, f, i, c_tilde, o, c_new, h_new))
        h, c = h_new, c_new
        Hs[:, t, :] = h
    cache = (steps, (Wf, Wi, Wc, Wo, Uf, Ui, Uc, Uo))
    return Hs, cache


def lstm_backward(dHs, cache):
    """Returns dX, dh0, dc0, dWf, dWi, dWc, dWo, dUf, dUi, dUc, dUo, dbf, dbi, dbc, dbo."""
    steps, (Wf, Wi, Wc, Wo, Uf, Ui, Uc, Uo) = cache
    N, T, H = dHs.shape
    D = Wf.shape[0]

    dX = np.zeros((N, T, D))
    dW = {k: np.zeros((D, H)) for k in "fico"}
    dU = {k: np.zeros((H, H)) for k in "fico"}
    db = {k: np.zeros(H) for k in "fico"}
    dh_next = np.zeros((N, H))
    dc_next = np.zeros((N, H))

    for t in reversed(range(T)):
        x, h_prev, c_prev, f, i, c_tilde, o, c, h = steps[t]
        dh = dHs[:, t, :] + dh_next
        tanh_c = np.tanh(c)
        dc = dc_next + dh * o * (1 - tanh_c**2)

        dz = {
            "f": dc * c_prev * f * (1 - f),
            "i": dc * c_tilde * i * (1 - i),
            "c": dc * i * (1 - c_tilde**2),
            "o": dh * tanh_c * o * (1 - o),
        }
        W = {"f": Wf, "i": Wi, "c": Wc, "o": Wo}
        U = {"f": Uf, "i": Ui, "c": Uc, "o": Uo}

        dx = np.zeros((N, D))
        dh_next = np.zeros((N, H))
        for k in "fico":
            dW[k] += x.T @ dz[k]
            dU[k] += h.T @ dz[k]
            db[k] += dz[k].sum(axis=0)
            dx += dz[k] @ W[k].T
            dh_next += dz[k] @ U[k].T
        dX[:, t, :] = dx
        dc_next = dc * f

    return (
        dX,
        dh_next,
        dc_next,
        dW["f"],
        dW["i"],
        dW["c"],
        dW["o"],
        dU["f"],
        dU["i"],
        dU["c"],
        dU["o"],
        db["f"],
        db["i"],
        db["c"],
        db["o"],
    )
