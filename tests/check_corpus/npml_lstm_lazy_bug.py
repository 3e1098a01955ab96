import numpy as np


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


class LSTMCell:
    def __init__(self, n_out, init="glorot_uniform"):
        """
        A single step of a long short-term memory (LSTM) RNN.

        Notes
        -----
        Equations, for time step t (Z[t] = stack([A[t-1], X[t]])):

            Gf[t] = sigmoid(Z[t] @ Wf + bf)      forget gate
            Gu[t] = sigmoid(Z[t] @ Wu + bu)      update gate
            Go[t] = sigmoid(Z[t] @ Wo + bo)      output gate
            Cc[t] = tanh(Z[t] @ Wc + bc)         candidate cell value
            C[t]  = Gf[t] * C[t-1] + Gu[t] * Cc[t]
            A[t]  = Go[t] * tanh(C[t])

        The cell is called once per time step; it keeps its own history so
        that `backward` can be called once per step in reverse order.
        The parameters are created on the first call to `forward`.
        """
        self.init = init
        self.n_in = None
        self.n_out = n_out
        self.is_initialized = False

    def _init_params(self):
        n_in, n_out = self.n_in, self.n_out
        limit = np.sqrt(6 / (n_in + 2 * n_out))
        shape = (n_in + n_out, n_out)

        self.parameters = {
            "Wf": np.random.uniform(-limit, limit, shape),
            "Wu": np.random.uniform(-limit, limit, shape),
            "Wc": np.random.uniform(-limit, limit, shape),
            "Wo": np.random.uniform(-limit, limit, shape),
            "bf": np.zeros((1, n_out)),
            "bu": np.zeros((1, n_out)),
            "bc": np.zeros((1, n_out)),
            "bo": np.zeros((1, n_out)),
        }
        self.flush_gradients()
        self.is_initialized = True

    def flush_gradients(self):
        """Erase the stored history and set all gradients to zero."""
        self.derived_variables = {
            "C": [],
            "A": [],
            "Z": [],
            "Gf": [],
            "Gu": [],
            "Go": [],
            "Cc": [],
            "current_step": 0,
            "dLdA_accumulator": None,
            "dLdC_accumulator": None,
        }
        self.gradients = {k: np.zeros_like(v) for k, v in self.parameters.items()}

    def forward(self, Xt):
        if not self.is_initialized:
            self.n_in = Xt.shape[1]
            self._init_params()

        p, dv = self.parameters, self.derived_variables
        n_ex = Xt.shape[0]

        if len(dv["A"]) == 0:
            dv["A"].append(np.zeros((n_ex, self.n_out)))
            dv["C"].append(np.zeros((n_ex, self.n_out)))
        A_prev, C_prev = dv["A"][-1], dv["C"][-1]

        Zt = np.hstack([A_prev, Xt])
        Gft = sigmoid(Zt @ p["Wf"] + p["bf"])
        Gut = sigmoid(Zt @ p["Wu"] + p["bu"])
        Got = sigmoid(Zt @ p["Wo"] + p["bo"])
        Cct = np.tanh(Zt @ p["Wc"] + p["bc"])
        Ct = Gft * C_prev + Gut * Cct
        At = Got * np.tanh(Ct)

        for k, v in zip(["Z", "Gf", "Gu", "Go", "Cc", "C", "A"], [Zt, Gft, Gut, Got, Cct, Ct, At]):
            dv[k].append(v)
        dv["current_step"] += 1
        return At, Ct

    def backward(self, dLdAt):
        p, dv = self.parameters, self.derived_variables
        dv["current_step"] -= 1
        t = dv["current_step"]

        Zt, Gft, Gut, Got, Cct = (dv[k][t] for k in ["Z", "Gf", "Gu", "Go", "Cc"])
        C_prev, Ct = dv["C"][t], dv["C"][t + 1]

        dA_acc, dC_acc = dv["dLdA_accumulator"], dv["dLdC_accumulator"]
        if dA_acc is None:
            dA_acc, dC_acc = np.zeros_like(dLdAt), np.zeros_like(dLdAt)

        tanhC = np.tanh(Ct)
        dA = dLdAt + dA_acc
        dC = dC_acc + dA * Got * (1 - tanhC**2)

        dGo = dA * tanhC * Got * (1 - Got)
        dGf = dC * C_prev * Gft * (1 - Gft)
        dGu = dC * Cct * Gut * (1 - Gut)
        dCc = dC * Gut * (1 - Cct**2)

        self.gradients["Wf"] += Zt.T @ dGf
        self.gradients["Wu"] += Zt.T @ dGu
        self.gradients["Wc"] = Zt.T @ dCc
        self.gradients["Wo"] += Zt.T @ dGo
        self.gradients["bf"] += dGf.sum(axis=0, keepdims=True)
        self.gradients["bu"] += dGu.sum(axis=0, keepdims=True)
        self.gradients["bc"] += dCc.sum(axis=0, keepdims=True)
        self.gradients["bo"] += dGo.sum(axis=0, keepdims=True)

        dZ = dGf @ p["Wf"].T + dGu @ p["Wu"].T + dCc @ p["Wc"].T + dGo @ p["Wo"].T
        dv["dLdA_accumulator"] = dZ[:, : self.n_out]
        dv["dLdC_accumulator"] = dC * Gft
        dXt = dZ[:, self.n_out :]
        return dXt
