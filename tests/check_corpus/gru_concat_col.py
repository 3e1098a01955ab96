import numpy as np


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def gru_cell_forward(xt, a_prev, parameters):
    """
    One GRU step, examples in columns.

    xt -- (n_x, m), a_prev -- (n_a, m)
    parameters -- dict with
        Wz, bz -- update gate, (n_a, n_a + n_x) and (n_a, 1)
        Wr, br -- reset gate
        Wh, bh -- candidate activation
    Gates:
        z  = sigmoid(Wz [a_prev; xt] + bz)
        r  = sigmoid(Wr [a_prev; xt] + br)
        h~ = tanh(Wh [r * a_prev; xt] + bh)
        a_next = (1 - z) * a_prev + z * h~
    """
    Wz, bz = parameters["Wz"], parameters["bz"]
    Wr, br = parameters["Wr"], parameters["br"]
    Wh, bh = parameters["Wh"], parameters["bh"]

    concat = np.concatenate((a_prev, xt), axis=0)
    zt = sigmoid(np.dot(Wz, concat) + bz)
    rt = sigmoid(np.dot(Wr, concat) + br)
    concat_r = np.concatenate((rt * a_prev, xt), axis=0)
    ht = np.tanh(np.dot(Wh, concat_r) + bh)
    a_next = (1 - zt) * a_prev + zt * ht

    cache = (a_next, a_prev, xt, zt, rt, ht, concat, concat_r, parameters)
    return a_next, cache


def gru_forward(x, a0, parameters):
    """x -- (n_x, m, T_x), a0 -- (n_a, m). Returns a (n_a, m, T_x) and caches."""
    n_x, m, T_x = x.shape
    n_a = parameters["Wz"].shape[0]
    a = np.zeros((n_a, m, T_x))
    caches = []
    a_next = a0
    for t in range(T_x):
        a_next, cache = gru_cell_forward(x[:, :, t], a_next, parameters)
        a[:, :, t] = a_next
        caches.append(cache)
    return a, (caches, x)


def gru_cell_backward(da_next, cache):
    (a_next, a_prev, xt, zt, rt, ht, concat, concat_r, parameters) = cache
    n_a = a_prev.shape[0]
    Wz, Wr, Wh = parameters["Wz"], parameters["Wr"], parameters["Wh"]

    dht = da_next * zt * (1 - ht**2)
    dzt = da_next * (ht - a_prev) * zt * (1 - zt)
    da_prev = da_next * (1 - zt)

    dWh = np.dot(dht, concat_r.T)
    dbh = np.sum(dht, axis=1, keepdims=True)
    dconcat_r = np.dot(Wh.T, dht)
    d_ra = dconcat_r[:n_a, :]  # w.r.t. r * a_prev
    dxt = dconcat_r[n_a:, :]
    da_prev += d_ra * rt
    drt = d_ra * a_prev * rt * (1 - rt)

    dWz = np.dot(dzt, concat.T)
    dbz = np.sum(dzt, axis=1, keepdims=True)
    dWr = np.dot(drt, concat.T)
    dbr = np.sum(drt, axis=1, keepdims=True)
    dconcat = np.dot(Wz.T, dzt) + np.dot(Wr.T, drt)
    da_prev += dconcat[:n_a, :]
    dxt += dconcat[n_a:, :]

    return {
        "dxt": dxt,
        "da_prev": da_prev,
        "dWz": dWz,
        "dbz": dbz,
        "dWr": dWr,
        "dbr": dbr,
        "dWh": dWh,
        "dbh": dbh,
    }


def gru_backward(da, caches):
    """da -- (n_a, m, T_x), gradient w.r.t. every hidden state. Returns a dict of gradients."""
    (caches, x) = caches
    n_x, m, T_x = x.shape
    n_a = da.shape[0]
    parameters = caches[0][-1]

    dx = np.zeros((n_x, m, T_x))
    da_prevt = np.zeros((n_a, m))
    grads = {"d" + k: np.zeros_like(parameters[k]) for k in ("Wz", "bz", "Wr", "br", "Wh", "bh")}

    for t in reversed(range(T_x)):
        g = gru_cell_backward(da[:, :, t] + da_prevt, caches[t])
        dx[:, :, t] = g["dxt"]
        da_prevt = g["da_prev"]
        for k in grads:
            grads[k] += g[k]

    grads["dx"] = dx
    grads["da0"] = da_prevt
    return grads
