# coding: utf-8
import numpy as np
from common.functions import sigmoid


class LSTM:
    """One LSTM step. The four gates share the weight matrices, packed as [f | g | i | o].

    Wx: (D, 4H), Wh: (H, 4H), b: (4H,)
    """

    def __init__(self, Wx, Wh, b):
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]
        self.cache = None

    def forward(self, x, h_prev, c_prev):
        Wx, Wh, b = self.params
        H = Wh.shape[0]

        A = np.dot(x, Wx) + np.dot(h_prev, Wh) + b
        f = sigmoid(A[:, :H])  # forget
        g = np.tanh(A[:, H : 2 * H])  # new memory
        i = sigmoid(A[:, 2 * H : 3 * H])  # input
        o = sigmoid(A[:, 3 * H :])  # output

        c_next = f * c_prev + g * i
        tanh_c = np.tanh(c_next)
        h_next = o * tanh_c

        self.cache = (x, h_prev, c_prev, f, g, i, o, tanh_c)
        return h_next, c_next

    def backward(self, dh_next, dc_next):
        Wx, Wh, b = self.params
        x, h_prev, c_prev, f, g, i, o, tanh_c = self.cache

        dc = dc_next + dh_next * o * (1 - tanh_c**2)

        df = dc * c_prev * f * (1 - f)
        dg = dc * i * (1 - g**2)
        di = dc * g * i * (1 - i)
        do = dh_next * tanh_c * o * (1 - o)
        dA = np.hstack((df, di, dg, do))

        self.grads[0][...] = np.dot(x.T, dA)
        self.grads[1][...] = np.dot(h_prev.T, dA)
        self.grads[2][...] = np.sum(dA, axis=0)

        dx = np.dot(dA, Wx.T)
        dh_prev = np.dot(dA, Wh.T)
        dc_prev = dc * f
        return dx, dh_prev, dc_prev


class TimeLSTM:
    """T LSTM steps over xs of shape (N, T, D). With stateful=True the last (h, c) of one
    forward call are the initial state of the next one; otherwise the state starts at zero."""

    def __init__(self, Wx, Wh, b, stateful=False):
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]
        self.layers = None
        self.h, self.c = None, None
        self.dh = None
        self.stateful = stateful

    def forward(self, xs):
        Wx, Wh, b = self.params
        N, T, D = xs.shape
        H = Wh.shape[0]

        if not self.stateful or self.h is None:
            self.h = np.zeros((N, H), dtype=xs.dtype)
        if not self.stateful or self.c is None:
            self.c = np.zeros((N, H), dtype=xs.dtype)

        hs = np.empty((N, T, H), dtype=xs.dtype)
        self.layers = []
        for t in range(T):
            cell = LSTM(Wx, Wh, b)
            self.h, self.c = cell.forward(xs[:, t, :], self.h, self.c)
            hs[:, t, :] = self.h
            self.layers.append(cell)
        return hs

    def backward(self, dhs):
        Wx, Wh, b = self.params
        N, T, H = dhs.shape
        D = Wx.shape[0]

        dxs = np.empty((N, T, D), dtype=dhs.dtype)
        total = [np.zeros_like(p) for p in self.params]
        dh = np.zeros((N, H), dtype=dhs.dtype)
        dc = np.zeros((N, H), dtype=dhs.dtype)
        for t in range(T - 1, -1, -1):
            cell = self.layers[t]
            dxs[:, t, :], dh, dc = cell.backward(dhs[:, t, :] + dh, dc)
            for k in range(3):
                total[k] += cell.grads[k]

        for k in range(3):
            self.grads[k][...] = total[k]
        self.dh = dh
        return dxs

    def set_state(self, h, c=None):
        self.h, self.c = h, c

    def reset_state(self):
        self.h, self.c = None, None
