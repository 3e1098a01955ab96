import numpy as np


class Sigmoid:
    def forward(self, Z):
        self.A = 1 / (1 + np.exp(-Z))
        return self.A

    def backward(self, dLdA):
        return dLdA * self.A * (1 - self.A)


class Tanh:
    def forward(self, Z):
        self.A = np.tanh(Z)
        return self.A

    def backward(self, dLdA, state=None):
        A = self.A if state is None else state
        return dLdA * (1 - A * A)


class GRUCell:
    """Gated recurrent unit, one example at a time (x: (in_dim,), h: (hidden_dim,))."""

    def __init__(self, in_dim, hidden_dim):
        self.d = in_dim
        self.h = hidden_dim
        h, d = hidden_dim, in_dim

        # input-to-hidden weights of the reset, update and candidate parts
        self.Wrx = np.random.randn(h, d)
        self.Wzx = np.random.randn(h, d)
        self.Wnx = np.random.randn(h, d)
        # hidden-to-hidden weights
        self.Wrh = np.random.randn(h, h)
        self.Wzh = np.random.randn(h, h)
        self.Wnh = np.random.randn(h, h)
        # one bias on each side
        self.brx = np.random.randn(h)
        self.bzx = np.random.randn(h)
        self.bnx = np.random.randn(h)
        self.brh = np.random.randn(h)
        self.bzh = np.random.randn(h)
        self.bnh = np.random.randn(h)

        self.r_act = Sigmoid()
        self.z_act = Sigmoid()
        self.h_act = Tanh()

    def init_weights(self, Wrx, Wzx, Wnx, Wrh, Wzh, Wnh, brx, bzx, bnx, brh, bzh, bnh):
        self.Wrx = Wrx
        self.Wzx = Wzx
        self.Wnx = Wnx
        self.Wrh = Wrh
        self.Wzh = Wzh
        self.Wnh = Wnh
        self.brx = brx
        self.bzx = bzx
        self.bnx = bnx
        self.brh = brh
        self.bzh = bzh
        self.bnh = bnh

    def __call__(self, x, h_prev_t):
        return self.forward(x, h_prev_t)

    def forward(self, x, h_prev_t):
        """One step of the GRU. x: (input_dim,), h_prev_t: (hidden_dim,). Returns h_t."""
        self.x = x
        self.hidden = h_prev_t

        self.r = self.r_act.forward(self.Wrx @ x + self.brx + self.Wrh @ h_prev_t + self.brh)
        self.z = self.z_act.forward(self.Wzx @ x + self.bzx + self.Wzh @ h_prev_t + self.bzh)
        self.n_lin = self.Wnh @ h_prev_t + self.bnh
        self.n = self.h_act.forward(self.Wnx @ x + self.bnx + self.r * self.n_lin)
        h_t = (1 - self.z) * self.n + self.z * h_prev_t

        assert self.x.shape == (self.d,)
        assert self.hidden.shape == (self.h,)
        assert h_t.shape == (self.h,)
        return h_t

    def backward(self, delta):
        """delta: (hidden_dim,), the gradient w.r.t. this step's output h_t.
        Returns dx (input_dim,) and dh_prev_t (hidden_dim,); the weight gradients
        of this step are stored in self.dW.. and self.db.."""
        dn = delta * (1 - self.z)
        dz = delta * (self.n + self.hidden)

        dn_pre = self.h_act.backward(dn)
        dz_pre = self.z_act.backward(dz)
        dr = dn_pre * self.n_lin
        dr_pre = self.r_act.backward(dr)

        self.dWnx = np.outer(dn_pre, self.x)
        self.dbnx = dn_pre
        self.dWnh = np.outer(dn_pre * self.r, self.hidden)
        self.dbnh = dn_pre * self.r

        self.dWzx = np.outer(dz_pre, self.x)
        self.dbzx = dz_pre
        self.dWzh = np.outer(dz_pre, self.hidden)
        self.dbzh = dz_pre

        self.dWrx = np.outer(dr_pre, self.x)
        self.dbrx = dr_pre
        self.dWrh = np.outer(dr_pre, self.hidden)
        self.dbrh = dr_pre

        dx = self.Wnx.T @ dn_pre + self.Wzx.T @ dz_pre + self.Wrx.T @ dr_pre
        dh_prev_t = (
            delta * self.z
            + self.Wnh.T @ (dn_pre * self.r)
            + self.Wzh.T @ dz_pre
            + self.Wrh.T @ dr_pre
        )

        assert dx.shape == (self.d,)
        assert dh_prev_t.shape == (self.h,)
        return dx, dh_prev_t
