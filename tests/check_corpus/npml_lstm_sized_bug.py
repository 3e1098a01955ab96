"""LSTM cell that is stepped by hand: one forward call per time step, then one
backward call per time step in reverse order. Gradients are accumulated in
``cell.gradients`` until ``cell.reset()`` is called."""

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def dsigmoid(s):
    # derivative written in terms of the sigmoid's output
    return s * (1.0 - s)


def dtanh(th):
    return 1.0 - th**2


class LSTMCell:
    def __init__(self, n_in, n_out, seed=None):
        rng = np.random.RandomState(seed)
        self.n_in, self.n_out = n_in, n_out
        std = 1.0 / np.sqrt(n_in + n_out)

        self.parameters = {}
        for gate in ["f", "u", "c", "o"]:
            # rows: first the n_out rows that multiply A[t-1], then n_in rows for X[t]
            self.parameters["W" + gate] = rng.randn(n_out + n_in, n_out) * std
            self.parameters["b" + gate] = np.zeros((1, n_out))
        self.parameters["bf"] += 1.0  # forget-gate bias starts open
        self.reset()

    def reset(self):
        self.cache = []
        self.A_prev = None
        self.C_prev = None
        self.dA_next = None
        self.dC_next = None
        self.gradients = {k: np.zeros_like(v) for k, v in self.parameters.items()}

    def forward(self, X_t):
        P = self.parameters
        if self.A_prev is None:
            self.A_prev = np.zeros((X_t.shape[0], self.n_out))
            self.C_prev = np.zeros((X_t.shape[0], self.n_out))

        Z = np.concatenate([self.A_prev, X_t], axis=1)
        Gf = sigmoid(Z @ P["Wf"] + P["bf"])
        Gu = sigmoid(Z @ P["Wu"] + P["bu"])
        Cc = np.tanh(Z @ P["Wc"] + P["bc"])
        Go = sigmoid(Z @ P["Wo"] + P["bo"])

        C = Gf * self.C_prev + Gu * Cc
        tanhC = np.tanh(C)
        A = Go * tanhC

        self.cache.append((Z, self.C_prev, Gf, Gu, Cc, Go, tanhC))
        self.A_prev, self.C_prev = A, C
        return A

    def backward(self, dLdA_t):
        P, G = self.parameters, self.gradients
        Z, C_prev, Gf, Gu, Cc, Go, tanhC = self.cache.pop()

        if self.dA_next is None:
            self.dA_next = np.zeros_like(dLdA_t)
            self.dC_next = np.zeros_like(dLdA_t)

        dA = dLdA_t
        dC = self.dC_next + dA * Go * dtanh(tanhC)

        d_o = dA * tanhC * dsigmoid(Go)
        d_f = dC * C_prev * dsigmoid(Gf)
        d_u = dC * Cc * dsigmoid(Gu)
        d_c = dC * Gu * dtanh(Cc)

        dZ = np.zeros_like(Z)
        for gate, d in zip(["f", "u", "c", "o"], [d_f, d_u, d_c, d_o]):
            G["W" + gate] += Z.T @ d
            G["b" + gate] += np.sum(d, axis=0, keepdims=True)
            dZ += d @ P["W" + gate].T

        self.dA_next = dZ[:, : self.n_out]
        self.dC_next = dC * Gf
        return dZ[:, self.n_out :]
