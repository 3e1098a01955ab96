# LSTM for one sequence at a time: x_t is a vector of size D, h and c vectors of size H.
#   f = sigma(Wf x + Uf h + bf), i = sigma(Wi x + Ui h + bi), o = sigma(Wo x + Uo h + bo)
#   g = tanh(Wc x + Uc h + bc),  c' = f * c + i * g,  h' = o * tanh(c')
# W* are (H, D), U* are (H, H), b* are (H,).
import numpy as np


def sigma(v):
    return 1.0 / (1.0 + np.exp(-v))


def lstm_step(x, h_prev, c_prev, Wf, Wi, Wc, Wo, Uf, Ui, Uc, Uo, bf, bi, bc, bo):
    f = sigma(Wf @ x + Uf @ h_prev + bf)
    i = sigma(Wi @ x + Ui @ h_prev + bi)
    o = sigma(Wo @ x + Uo @ h_prev + bo)
    g = np.tanh(Wc @ x + Uc @ h_prev + bc)
    c = f * c_prev + i * g
    h = o * np.tanh(c)
    cache = (x, h_prev, c_prev, f, i, o, g, c, (Wf, Wi, Wc, Wo, Uf, Ui, Uc, Uo))
    return h, c, cache


def lstm_step_backward(dh, dc, cache):
    x, h_prev, c_prev, f, i, o, g, c, (Wf, Wi, Wc, Wo, Uf, Ui, Uc, Uo) = cache
    tc = np.tanh(c)
    dc = dc + dh * o * (1 - tc**2)

    # gradients at the pre-activations
    df = dc * c_prev * f * (1 - f)
    di = dc * g * i * (1 - i)
    do = dh * tc * o * (1 - o)
    dg = dc * i * (1 - g**2)

    dx = Wf.T @ df + Wi.T @ di + Wc.T @ dg + Wo.T @ do
    dh_prev = Uf @ df + Ui @ di + Uc @ dg + Uo @ do
    dc_prev = dc * f

    dWs = [np.outer(d, x) for d in (df, di, dg, do)]
    dUs = [np.outer(d, h_prev) for d in (df, di, dg, do)]
    dbs = [df, di, dg, do]
    return dx, dh_prev, dc_prev, dWs + dUs + dbs


def forward(xs, h0, c0, Wf, Wi, Wc, Wo, Uf, Ui, Uc, Uo, bf, bi, bc, bo):
    """xs: (T, D) one sequence. Returns hs (T, H) and the list of step caches."""
    h, c = h0, c0
    hs, caches = [], []
    for x in xs:
        h, c, cache = lstm_step(x, h, c, Wf, Wi, Wc, Wo, Uf, Ui, Uc, Uo, bf, bi, bc, bo)
        hs.append(h)
        caches.append(cache)
    return np.array(hs), caches


def backward(dhs, caches):
    """dhs: (T, H), dL/dh_t for every t.
    Returns dxs, dh0, dc0, dWf, dWi, dWc, dWo, dUf, dUi, dUc, dUo, dbf, dbi, dbc, dbo."""
    T = len(caches)
    dxs = [None] * T
    grads = None
    dh_next = np.zeros_like(dhs[0])
    dc_next = np.zeros_like(dhs[0])
    for t in range(T - 1, -1, -1):
        dx, dh_next, dc_next, g = lstm_step_backward(dhs[t] + dh_next, dc_next, caches[t])
        dxs[t] = dx
        grads = g if grads is None else [a + b for a, b in zip(grads, g)]
    return (np.array(dxs), dh_next, dc_next, *grads)
