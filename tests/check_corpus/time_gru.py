# coding: utf-8
import numpy as np
from common.functions import sigmoid


class GRU:
    """One GRU step.

    Wx: (D, 3H) and Wh: (H, 3H), packed as [z | r | h~], b: (3H,) one bias per gate.
        z = sigmoid(x Wx_z + h_prev Wh_z + b_z)
        r = sigmoid(x Wx_r + h_prev Wh_r + b_r)
        h~ = tanh(x Wx_h + (r * h_prev) Wh_h + b_h)
        h_next = (1 - z) * h_prev + z * h~
    """

    def __init__(self, Wx, Wh, b):
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]
        self.cache = None

    def forward(self, x, h_prev):
        Wx, Wh, b = self.params
        H = Wh.shape[0]

        ax = np.dot(x, Wx) + b  # input part of the three gates
        ah = np.dot(h_prev, Wh[:, : 2 * H])  # recurrent part of z and r
        z = sigmoid(ax[:, :H] + ah[:, :H])
        r = sigmoid(ax[:, H : 2 * H] + ah[:, H:])
        h_hat = np.tanh(ax[:, 2 * H :] + np.dot(r * h_prev, Wh[:, 2 * H :]))
        h_next = (1 - z) * h_prev + z * h_hat

        self.cache = (x, h_prev, z, r, h_hat)
        return h_next

    def backward(self, dh_next):
        Wx, Wh, b = self.params
        H = Wh.shape[0]
        x, h_prev, z, r, h_hat = self.cache

        da_hat = dh_next * z * (1 - h_hat**2)  # pre-activation of h~
        da_z = dh_next * (h_hat - h_prev) * z * (1 - z)
        drh = np.dot(da_hat, Wh[:, 2 * H :].T)  # w.r.t. r * h_prev
        da_r = drh * h_prev * r * (1 - r)

        dA = np.hstack((da_z, da_r, da_hat))
        dWh_zr = np.dot(h_prev.T, dA[:, : 2 * H])
        dWh_h = np.dot((r * h_prev).T, da_hat)

        self.grads[0][...] = np.dot(x.T, dA)
        self.grads[1][...] = np.hstack((dWh_zr, dWh_h))
        self.grads[2][...] = dA.sum(axis=0)

        dx = np.dot(dA, Wx.T)
        dh_prev = dh_next * (1 - z) + drh * r + np.dot(dA[:, : 2 * H], Wh[:, : 2 * H].T)
        return dx, dh_prev


class TimeGRU:
    """T GRU steps over xs (N, T, D); the hidden state starts at zero unless stateful."""

    def __init__(self, Wx, Wh, b, stateful=False):
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]
        self.layers = None
        self.h, self.dh = None, None
        self.stateful = stateful

    def forward(self, xs):
        Wx, Wh, b = self.params
        N, T, D = xs.shape
        H = Wh.shape[0]

        if not self.stateful or self.h is None:
            self.h = np.zeros((N, H), dtype=xs.dtype)

        self.layers = [GRU(Wx, Wh, b) for _ in range(T)]
        hs = np.empty((N, T, H), dtype=xs.dtype)
        for t, layer in enumerate(self.layers):
            self.h = layer.forward(xs[:, t, :], self.h)
            hs[:, t, :] = self.h
        return hs

    def backward(self, dhs):
        Wx, Wh, b = self.params
        N, T, H = dhs.shape

        dxs = np.empty((N, T, Wx.shape[0]), dtype=dhs.dtype)
        for g in self.grads:
            g[...] = 0
        dh = np.zeros((N, H), dtype=dhs.dtype)
        for t in reversed(range(T)):
            layer = self.layers[t]
            dxs[:, t, :], dh = layer.backward(dhs[:, t, :] + dh)
            for g, lg in zip(self.grads, layer.grads):
                g += lg

        self.dh = dh
        return dxs

    def set_state(self, h):
        self.h = h

    def reset_state(self):
        self.h = None
