import numpy as np


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def softmax(x):
    e_x = np.exp(x - np.max(x, axis=0, keepdims=True))
    return e_x / e_x.sum(axis=0, keepdims=True)


def lstm_cell_forward(xt, a_prev, c_prev, parameters):
    """
    One step of the LSTM cell.

    xt -- input at timestep "t", shape (n_x, m)
    a_prev -- hidden state at timestep "t-1", shape (n_a, m)
    c_prev -- memory state at timestep "t-1", shape (n_a, m)
    parameters -- python dictionary with Wf, bf (forget gate), Wi, bi (update gate),
                  Wc, bc (candidate), Wo, bo (output gate), Wy, by (prediction);
                  every W? has shape (n_a, n_a + n_x), every b? shape (n_a, 1)
    """
    Wf, bf = parameters["Wf"], parameters["bf"]
    Wi, bi = parameters["Wi"], parameters["bi"]
    Wc, bc = parameters["Wc"], parameters["bc"]
    Wo, bo = parameters["Wo"], parameters["bo"]
    Wy, by = parameters["Wy"], parameters["by"]

    concat = np.concatenate((a_prev, xt), axis=0)

    ft = sigmoid(np.dot(Wf, concat) + bf)
    it = sigmoid(np.dot(Wi, concat) + bi)
    cct = np.tanh(np.dot(Wc, concat) + bc)
    c_next = ft * c_prev + it * cct
    ot = sigmoid(np.dot(Wo, concat) + bo)
    a_next = ot * np.tanh(c_next)

    yt_pred = softmax(np.dot(Wy, a_next) + by)

    cache = (a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, parameters)
    return a_next, c_next, yt_pred, cache


def lstm_forward(x, a0, parameters):
    """x -- (n_x, m, T_x); a0 -- (n_a, m). Returns a, y, c, caches."""
    caches = []
    n_x, m, T_x = x.shape
    n_y, n_a = parameters["Wy"].shape

    a = np.zeros((n_a, m, T_x))
    c = np.zeros((n_a, m, T_x))
    y = np.zeros((n_y, m, T_x))

    a_next = a0
    c_next = np.zeros((n_a, m))

    for t in range(T_x):
        a_next, c_next, yt, cache = lstm_cell_forward(x[:, :, t], a_next, c_next, parameters)
        a[:, :, t] = a_next
        c[:, :, t] = c_next
        y[:, :, t] = yt
        caches.append(cache)

    caches = (caches, x)
    return a, y, c, caches


def lstm_cell_backward(da_next, dc_next, cache):
    (a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, parameters) = cache
    n_x, m = xt.shape
    n_a, m = a_next.shape

    tanh_c = np.tanh(c_next)
    dc = dc_next + ot * (1 - tanh_c**2) * da_next

    dot = da_next * tanh_c * ot * (1 - ot)
    dcct = dc * it * cct * (1 - cct)
    dit = dc * cct * it * (1 - it)
    dft = dc * c_prev * ft * (1 - ft)

    concat = np.concatenate((a_prev, xt), axis=0)
    dWf = np.dot(dft, concat.T)
    dWi = np.dot(dit, concat.T)
    dWc = np.dot(dcct, concat.T)
    dWo = np.dot(dot, concat.T)
    dbf = np.sum(dft, axis=1, keepdims=True)
    dbi = np.sum(dit, axis=1, keepdims=True)
    dbc = np.sum(dcct, axis=1, keepdims=True)
    dbo = np.sum(dot, axis=1, keepdims=True)

    Wf, Wi, Wc, Wo = (parameters[k] for k in ("Wf", "Wi", "Wc", "Wo"))
    da_prev = (
        np.dot(Wf[:, :n_a].T, dft)
        + np.dot(Wi[:, :n_a].T, dit)
        + np.dot(Wc[:, :n_a].T, dcct)
        + np.dot(Wo[:, :n_a].T, dot)
    )
    dc_prev = dc * ft
    dxt = (
        np.dot(Wf[:, n_a:].T, dft)
        + np.dot(Wi[:, n_a:].T, dit)
        + np.dot(Wc[:, n_a:].T, dcct)
        + np.dot(Wo[:, n_a:].T, dot)
    )

    gradients = {
        "dxt": dxt,
        "da_prev": da_prev,
        "dc_prev": dc_prev,
        "dWf": dWf,
        "dbf": dbf,
        "dWi": dWi,
        "dbi": dbi,
        "dWc": dWc,
        "dbc": dbc,
        "dWo": dWo,
        "dbo": dbo,
    }
    return gradients


def lstm_backward(da, caches):
    """da -- gradients w.r.t. the hidden states, shape (n_a, m, T_x)."""
    (caches, x) = caches
    (a1, c1, a0, c0, f1, i1, cc1, o1, x1, parameters) = caches[0]

    n_a, m, T_x = da.shape
    n_x, m = x1.shape

    dx = np.zeros((n_x, m, T_x))
    da0 = np.zeros((n_a, m))
    da_prevt = np.zeros((n_a, m))
    dc_prevt = np.zeros((n_a, m))
    grads = {
        k: np.zeros_like(parameters[k[1:]])
        for k in ("dWf", "dWi", "dWc", "dWo", "dbf", "dbi", "dbc", "dbo")
    }

    for t in reversed(range(T_x)):
        gradients = lstm_cell_backward(da[:, :, t] + da_prevt, dc_prevt, caches[t])
        dx[:, :, t] = gradients["dxt"]
        for k in grads:
            grads[k] += gradients[k]
        da_prevt = gradients["da_prev"]
        dc_prevt = gradients["dc_prev"]

    da0 = da_prevt

    gradients = {"dx": dx, "da0": da0}
    gradients.update(grads)
    return gradients
