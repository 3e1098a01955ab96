"""Hand-written NumPy BPTT for models of the gallery (symbptt/models/text/), written for this
project's tests: each right implementation, and one with a planted bug, called as a user of
`symbptt check --model FILE` writes them: fn(*the file's inputs in declaration order)
returning (loss, grads keyed by the file's names)."""

import numpy as np


def _softmax_ce(o, y):
    """The summed cross-entropy of logits o (N, C) with ids y, and its gradient."""
    shifted = o - o.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = np.arange(o.shape[0])
    do = np.exp(logp)
    do[n, y] -= 1.0
    return -logp[n, y].sum(), do


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


# -- d2l_linear.txt: h[t] = h[t-1] @ W_hh + x[t] @ W_hx, o[t] = h[t] @ W_qh, L = sum g * o
def d2l_linear(x, g, W_hx, W_hh, W_qh, recurrent=True):
    T, N, _ = x.shape
    H = W_hh.shape[0]
    hs = [np.zeros((N, H))]
    loss = 0.0
    for t in range(T):
        hs.append(hs[-1] @ W_hh + x[t] @ W_hx)
        loss += (g[t] * (hs[-1] @ W_qh)).sum()
    grads = {k: np.zeros_like(v) for k, v in dict(W_hx=W_hx, W_hh=W_hh, W_qh=W_qh).items()}
    dx, dg = np.zeros_like(x), np.zeros_like(g)
    carry = np.zeros((N, H))
    for t in reversed(range(T)):
        dg[t] = hs[t + 1] @ W_qh
        grads["W_qh"] += hs[t + 1].T @ g[t]
        dh = g[t] @ W_qh.T + (carry if recurrent else 0.0)
        grads["W_hh"] += hs[t].T @ dh
        grads["W_hx"] += x[t].T @ dh
        dx[t] = dh @ W_hx.T
        carry = dh @ W_hh.T
    return loss, {**grads, "x": dx, "g": dg}


def d2l_linear_no_recurrence(*args):
    return d2l_linear(*args, recurrent=False)


# -- gru_update.txt: h[t] = (1 - z) * h[t-1] + z * n
def gru_update(x, y, h0, W_x, W_h, b_x, b_h, V, c, pytorch_update=False):
    T, N, _ = x.shape
    H = h0.shape[1]
    cache, loss, h = [], 0.0, h0
    for t in range(T):
        u = b_x + x[t] @ W_x
        v = b_h + h @ W_h
        a = u + v
        r, z = _sigmoid(a[:, :H]), _sigmoid(a[:, H : 2 * H])
        n = np.tanh(u[:, 2 * H :] + r * v[:, 2 * H :])
        new = (1 - z) * n + z * h if pytorch_update else (1 - z) * h + z * n
        step_loss, do = _softmax_ce(new @ V + c, y[t])
        loss += step_loss
        cache.append((h, v, r, z, n, new, do))
        h = new
    grads = {
        k: np.zeros_like(w) for k, w in dict(W_x=W_x, W_h=W_h, b_x=b_x, b_h=b_h, V=V, c=c).items()
    }
    dx = np.zeros_like(x)
    dnext = np.zeros_like(h0)
    for t in reversed(range(T)):
        h_prev, v, r, z, n, h_t, do = cache[t]
        grads["V"] += h_t.T @ do
        grads["c"] += do.sum(0)
        dh = do @ V.T + dnext
        if pytorch_update:
            dn, dz, dh_prev = dh * (1 - z), dh * (h_prev - n), dh * z
        else:
            dn, dz, dh_prev = dh * z, dh * (n - h_prev), dh * (1 - z)
        dan = dn * (1 - n**2)
        dr = dan * v[:, 2 * H :]
        da = np.concatenate([dr * r * (1 - r), dz * z * (1 - z)], axis=1)
        du = np.concatenate([da, dan], axis=1)
        dv = np.concatenate([da, dan * r], axis=1)
        grads["W_x"] += x[t].T @ du
        grads["b_x"] += du.sum(0)
        grads["W_h"] += h_prev.T @ dv
        grads["b_h"] += dv.sum(0)
        dx[t] = du @ W_x.T
        dnext = dh_prev + dv @ W_h.T
    return loss, {**grads, "h0": dnext, "x": dx}


def gru_pytorch_update(*args):
    """The bug: PyTorch's update, h = (1 - z) n + z h_prev, for a file that says the other."""
    return gru_update(*args, pytorch_update=True)


# -- peephole_lstm.txt
def peephole_lstm(x, y, h0, c0, W_x, W_h, b, p_i, p_f, p_o, V, b_y, peephole_grad=True):
    T, N, _ = x.shape
    H = h0.shape[1]
    cache, loss, h, c = [], 0.0, h0, c0
    for t in range(T):
        a = b + h @ W_h + x[t] @ W_x
        i = _sigmoid(a[:, :H] + c * p_i)
        f = _sigmoid(a[:, H : 2 * H] + c * p_f)
        g = np.tanh(a[:, 3 * H :])
        c_new = f * c + i * g
        o = _sigmoid(a[:, 2 * H : 3 * H] + c_new * p_o)
        k = np.tanh(c_new)
        h_new = o * k
        step_loss, ds = _softmax_ce(h_new @ V + b_y, y[t])
        loss += step_loss
        cache.append((h, c, i, f, g, o, k, c_new, h_new, ds))
        h, c = h_new, c_new
    names = dict(W_x=W_x, W_h=W_h, b=b, p_i=p_i, p_f=p_f, p_o=p_o, V=V, b_y=b_y)
    grads = {k: np.zeros_like(w) for k, w in names.items()}
    dx = np.zeros_like(x)
    dh_next, dc_next = np.zeros_like(h0), np.zeros_like(c0)
    for t in reversed(range(T)):
        h_prev, c_prev, i, f, g, o, k, c_t, h_t, ds = cache[t]
        grads["V"] += h_t.T @ ds
        grads["b_y"] += ds.sum(0)
        dh = ds @ V.T + dh_next
        dao = dh * k * o * (1 - o)
        dc = dh * o * (1 - k**2) + dc_next + dao * p_o
        grads["p_o"] += (dao * c_t).sum(0)
        dai = dc * g * i * (1 - i)
        daf = dc * c_prev * f * (1 - f)
        dag = dc * i * (1 - g**2)
        grads["p_i"] += (dai * c_prev).sum(0)
        grads["p_f"] += (daf * c_prev).sum(0)
        da = np.concatenate([dai, daf, dao, dag], axis=1)
        grads["W_x"] += x[t].T @ da
        grads["W_h"] += h_prev.T @ da
        grads["b"] += da.sum(0)
        dx[t] = da @ W_x.T
        dh_next = da @ W_h.T
        dc_next = dc * f + ((dai * p_i + daf * p_f) if peephole_grad else 0.0)
    return loss, {**grads, "h0": dh_next, "c0": dc_next, "x": dx}


def peephole_lstm_no_peephole_carry(*args):
    """The bug: the gates' peepholes on c[t-1] are left out of dc[t-1]."""
    return peephole_lstm(*args, peephole_grad=False)


# -- stacked_rnn.txt
def stacked_rnn(x, y, W_x1, W_h1, b1, W_x2, W_h2, b2, V, c, upward=True):
    T, N, _ = x.shape
    H, K = W_h1.shape[0], W_h2.shape[0]
    h1s, h2s, dos, loss = [np.zeros((N, H))], [np.zeros((N, K))], [], 0.0
    for t in range(T):
        h1s.append(np.tanh(h1s[-1] @ W_h1 + x[t] @ W_x1 + b1))
        h2s.append(np.tanh(h2s[-1] @ W_h2 + h1s[-1] @ W_x2 + b2))
        step_loss, do = _softmax_ce(h2s[-1] @ V + c, y[t])
        loss += step_loss
        dos.append(do)
    names = dict(W_x1=W_x1, W_h1=W_h1, b1=b1, W_x2=W_x2, W_h2=W_h2, b2=b2, V=V, c=c)
    grads = {k: np.zeros_like(w) for k, w in names.items()}
    dx = np.zeros_like(x)
    d1, d2 = np.zeros((N, H)), np.zeros((N, K))
    for t in reversed(range(T)):
        grads["V"] += h2s[t + 1].T @ dos[t]
        grads["c"] += dos[t].sum(0)
        da2 = (dos[t] @ V.T + d2) * (1 - h2s[t + 1] ** 2)
        grads["W_h2"] += h2s[t].T @ da2
        grads["W_x2"] += h1s[t + 1].T @ da2
        grads["b2"] += da2.sum(0)
        da1 = ((da2 @ W_x2.T if upward else 0.0) + d1) * (1 - h1s[t + 1] ** 2)
        grads["W_h1"] += h1s[t].T @ da1
        grads["W_x1"] += x[t].T @ da1
        grads["b1"] += da1.sum(0)
        dx[t] = da1 @ W_x1.T
        d1, d2 = da1 @ W_h1.T, da2 @ W_h2.T
    return loss, {**grads, "x": dx}


def stacked_rnn_no_upward(*args):
    """The bug: nothing flows from the second layer down into the first at the same step."""
    return stacked_rnn(*args, upward=False)


# -- a layer file (tests/model_corpus/rnn_layer.txt): the vanilla RNN's recurrent layer
def rnn_layer(x, h0, W_x, W_h, b, dh, transpose_bug=False):
    T = x.shape[0]
    hs = [h0]
    for t in range(T):
        hs.append(np.tanh(hs[-1] @ W_h + x[t] @ W_x + b))
    grads = {k: np.zeros_like(w) for k, w in dict(W_x=W_x, W_h=W_h, b=b).items()}
    dx = np.zeros_like(x)
    carry = np.zeros_like(h0)
    for t in reversed(range(T)):
        da = (dh[t] + carry) * (1 - hs[t + 1] ** 2)
        grads["W_h"] += hs[t].T @ da
        grads["W_x"] += x[t].T @ da
        grads["b"] += da.sum(0)
        dx[t] = da @ W_x.T
        carry = da @ (W_h if transpose_bug else W_h.T)
    return {**grads, "h0": carry, "x": dx}


def rnn_layer_untransposed(*args):
    """The bug: the recurrence multiplies by W_h where W_h^T belongs."""
    return rnn_layer(*args, transpose_bug=True)
