"""Sequence tagger: one LSTM layer and a softmax classifier on every time step.

The four gate blocks of Wx, Wh and b are stored in the order g, i, f, o
(candidate first), which is how the original author laid out the weights.
"""

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class LSTMTagger:
    def __init__(self, input_dim, hidden_dim, num_classes, seed=0):
        rng = np.random.default_rng(seed)
        D, H, C = input_dim, hidden_dim, num_classes
        self.H = H
        self.params = {
            "Wx": rng.normal(0, 1 / np.sqrt(D), (D, 4 * H)),
            "Wh": rng.normal(0, 1 / np.sqrt(H), (H, 4 * H)),
            "b": np.zeros(4 * H),
            "Wy": rng.normal(0, 1 / np.sqrt(H), (H, C)),
            "by": np.zeros(C),
        }

    def loss(self, X, y):
        """X: (T, N, D) inputs, y: (T, N) integer labels.
        Returns the summed cross-entropy over all steps and examples, and a dict of
        gradients with the same keys as self.params."""
        p, H = self.params, self.H
        T, N, _ = X.shape

        # ---- forward ----
        h = np.zeros((T + 1, N, H))  # h[0] and c[0] are the zero initial states
        c = np.zeros((T + 1, N, H))
        gates = np.zeros((T, N, 4 * H))
        probs = []
        loss = 0.0
        for t in range(T):
            a = X[t] @ p["Wx"] + h[t] @ p["Wh"] + p["b"]
            gates[t, :, :H] = np.tanh(a[:, :H])
            gates[t, :, H:] = sigmoid(a[:, H:])
            g, i, f, o = np.split(gates[t], 4, axis=1)
            c[t + 1] = f * c[t] + i * g
            h[t + 1] = o * np.tanh(c[t + 1])

            scores = h[t + 1] @ p["Wy"] + p["by"]
            scores -= scores.max(axis=1, keepdims=True)
            pr = np.exp(scores)
            pr /= pr.sum(axis=1, keepdims=True)
            loss -= np.log(pr[np.arange(N), y[t]]).sum()
            probs.append(pr)

        # ---- backward ----
        grads = {k: np.zeros_like(v) for k, v in p.items()}
        dh_next = np.zeros((N, H))
        dc_next = np.zeros((N, H))
        for t in reversed(range(T)):
            dscores = probs[t].copy()
            dscores[np.arange(N), y[t]] -= 1
            grads["Wy"] += h[t + 1].T @ dscores
            grads["by"] += dscores.sum(axis=0)

            g, i, f, o = np.split(gates[t], 4, axis=1)
            tc = np.tanh(c[t + 1])
            dh = dscores @ p["Wy"].T
            dc = dc_next + dh * o * (1 - tc**2)

            da = np.hstack(
                [
                    dc * i * (1 - g**2),  # g
                    dc * g * i * (1 - i),  # i
                    dc * c[t] * f * (1 - f),  # f
                    dh * tc * o * (1 - o),  # o
                ]
            )
            grads["Wx"] += X[t].T @ da
            grads["Wh"] += h[t].T @ da
            grads["b"] += da.sum(axis=0)
            dh_next = da @ p["Wh"].T
            dc_next = dc * f

        return loss, grads
