# coding: utf-8
import numpy as np


class RNN:
    """One step of a tanh RNN: h_next = tanh(h_prev Wh + x Wx + b)."""

    def __init__(self, Wx, Wh, b):
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]
        self.cache = None

    def forward(self, x, h_prev):
        Wx, Wh, b = self.params
        h_next = np.tanh(np.dot(h_prev, Wh) + np.dot(x, Wx) + b)
        self.cache = (x, h_prev, h_next)
        return h_next

    def backward(self, dh_next):
        Wx, Wh, b = self.params
        x, h_prev, h_next = self.cache

        da = dh_next * (1 - h_next**2)
        self.grads[0][...] = np.dot(x.T, da)
        self.grads[1][...] = np.dot(h_prev.T, da)
        self.grads[2][...] = da.sum(axis=0)

        dx = np.dot(da, Wx.T)
        dh_prev = np.dot(da, Wh.T)
        return dx, dh_prev


class TimeRNN:
    """T RNN steps at once. xs: (N, T, D) -> hs: (N, T, H).
    stateful=True keeps the last hidden state for the next call (truncated BPTT);
    set_state(h) gives the initial state explicitly."""

    def __init__(self, Wx, Wh, b, stateful=False):
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]
        self.layers = None
        self.h, self.dh = None, None
        self.stateful = stateful

    def set_state(self, h):
        self.h = h

    def reset_state(self):
        self.h = None

    def forward(self, xs):
        Wx, Wh, b = self.params
        N, T, D = xs.shape
        H = Wh.shape[0]

        if not self.stateful or self.h is None:
            self.h = np.zeros((N, H), dtype=xs.dtype)

        self.layers = []
        hs = np.empty((N, T, H), dtype=xs.dtype)
        for t in range(T):
            layer = RNN(Wx, Wh, b)
            self.h = layer.forward(xs[:, t, :], self.h)
            hs[:, t, :] = self.h
            self.layers.append(layer)
        return hs

    def backward(self, dhs):
        Wx, Wh, b = self.params
        N, T, H = dhs.shape
        D = Wx.shape[0]

        dxs = np.empty((N, T, D), dtype=dhs.dtype)
        grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]
        dh = np.zeros((N, H), dtype=dhs.dtype)
        for t in reversed(range(T)):
            layer = self.layers[t]
            dx, dh = layer.backward(dhs[:, t, :] + dh)
            dxs[:, t, :] = dx
            for k, g in enumerate(layer.grads):
                grads[k] += g

        for k, g in enumerate(grads):
            self.grads[k][...] = g
        self.dh = dh
        return dxs
