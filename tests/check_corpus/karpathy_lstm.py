"""
Minibatched LSTM, forward and backward, with all four gates computed by a
single matrix multiply per time step.

WLSTM has shape (1 + input_size + hidden_size, 4 * hidden_size): its first row is
the bias, the next input_size rows act on x_t and the last hidden_size rows on
h_{t-1}. The 4 column blocks are the gates in the order i, f, o, g.
"""

import numpy as np


class LSTM:
    @staticmethod
    def init(input_size, hidden_size, forget_bias=3.0):
        """WLSTM with small random weights and a positive forget-gate bias"""
        WLSTM = np.random.randn(1 + input_size + hidden_size, 4 * hidden_size)
        WLSTM /= np.sqrt(input_size + hidden_size)
        WLSTM[0, :] = 0.0
        WLSTM[0, hidden_size : 2 * hidden_size] = forget_bias
        return WLSTM

    @staticmethod
    def forward(X, WLSTM, c0=None, h0=None):
        """
        X: (n, b, input_size), n time steps of a batch of b sequences.
        Returns Hout (n, b, d), the last cell and hidden states, and a cache.
        """
        n, b, input_size = X.shape
        d = WLSTM.shape[1] // 4  # hidden size
        cprev = np.zeros((b, d)) if c0 is None else c0
        hprev = np.zeros((b, d)) if h0 is None else h0

        Hout = np.zeros((n, b, d))
        C = np.zeros((n, b, d))
        steps = []
        for t in range(n):
            Hin = np.hstack([np.ones((b, 1)), X[t], hprev])  # [1, x_t, h_{t-1}]
            IFOG = Hin.dot(WLSTM)  # all pre-activations at once
            s = 1.0 / (1.0 + np.exp(-IFOG[:, : 3 * d]))  # the three sigmoid gates
            i, f, o = s[:, :d], s[:, d : 2 * d], s[:, 2 * d :]
            g = np.tanh(IFOG[:, 3 * d :])
            C[t] = i * g + f * cprev
            Hout[t] = o * np.tanh(C[t])
            steps.append((Hin, i, f, o, g, cprev))
            hprev, cprev = Hout[t], C[t]

        cache = {"WLSTM": WLSTM, "steps": steps, "C": C}
        # the last cell and hidden state are returned too, to continue a sequence later
        return Hout, C[n - 1], Hout[n - 1], cache

    @staticmethod
    def backward(dHout, cache, dcn=None, dhn=None):
        """dHout: (n, b, d). dcn, dhn: gradients on the returned last states, if any."""
        WLSTM, steps, C = cache["WLSTM"], cache["steps"], cache["C"]
        n, b, d = dHout.shape
        input_size = WLSTM.shape[0] - d - 1

        dX = np.zeros((n, b, input_size))
        dWLSTM = np.zeros(WLSTM.shape)
        dh = np.zeros((b, d)) if dhn is None else dhn.copy()
        dc = np.zeros((b, d)) if dcn is None else dcn.copy()

        for t in reversed(range(n)):
            Hin, i, f, o, g, cprev = steps[t]
            tanhC = np.tanh(C[t])
            dh = dh + dHout[t]
            dc = dc + dh * o * (1 - tanhC**2)  # through h_t = o * tanh(c_t)

            # gradients at the pre-activations, same i, f, o, g layout as IFOG
            dIFOG = np.hstack(
                [
                    dc * g * i * (1 - i),
                    dc * cprev * f * (1 - f),
                    dh * tanhC * o * (1 - o),
                    dc * i * (1 - g**2),
                ]
            )
            dWLSTM += Hin.T.dot(dIFOG)
            dHin = dIFOG.dot(WLSTM.T)
            dX[t] = dHin[:, 1 : 1 + input_size]
            dh = dHin[:, 1 + input_size :]  # flows into h_{t-1}
            if t > 0:
                dc = f * dc  # flows into c_{t-1}
            else:
                dc0 = f * dc

        dh0 = dh
        return dX, dWLSTM, dc0, dh0
