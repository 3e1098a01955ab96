import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class GRUCell:
    """GRU cell on a single example (1-D vectors).

        r = sigmoid(Wrx x + brx + Wrh h + brh)
        z = sigmoid(Wzx x + bzx + Wzh h + bzh)
        n = tanh(Wnx x + bnx + r * (Wnh h + bnh))
        h' = (1 - z) * h + z * n

    The weight gradients are *accumulated* over calls to backward (like .grad in
    torch), so a whole sequence can be back-propagated with the same cell: call
    forward(x_t, h_{t-1}) again right before backward for step t. Use zero_grad()
    to clear them.
    """

    def __init__(self, in_dim, hidden_dim):
        self.d, self.h = in_dim, hidden_dim
        bound = 1.0 / np.sqrt(hidden_dim)
        u = lambda *shape: np.random.uniform(-bound, bound, shape)  # noqa: E731
        self.Wrx, self.Wzx, self.Wnx = (
            u(hidden_dim, in_dim),
            u(hidden_dim, in_dim),
            u(hidden_dim, in_dim),
        )
        self.Wrh, self.Wzh, self.Wnh = (
            u(hidden_dim, hidden_dim),
            u(hidden_dim, hidden_dim),
            u(hidden_dim, hidden_dim),
        )
        self.brx, self.bzx, self.bnx = u(hidden_dim), u(hidden_dim), u(hidden_dim)
        self.brh, self.bzh, self.bnh = u(hidden_dim), u(hidden_dim), u(hidden_dim)
        self.zero_grad()

    def init_weights(self, Wrx, Wzx, Wnx, Wrh, Wzh, Wnh, brx, bzx, bnx, brh, bzh, bnh):
        self.Wrx, self.Wzx, self.Wnx = Wrx, Wzx, Wnx
        self.Wrh, self.Wzh, self.Wnh = Wrh, Wzh, Wnh
        self.brx, self.bzx, self.bnx = brx, bzx, bnx
        self.brh, self.bzh, self.bnh = brh, bzh, bnh
        self.zero_grad()

    def zero_grad(self):
        for name in [
            "Wrx",
            "Wzx",
            "Wnx",
            "Wrh",
            "Wzh",
            "Wnh",
            "brx",
            "bzx",
            "bnx",
            "brh",
            "bzh",
            "bnh",
        ]:
            setattr(self, "d" + name, np.zeros_like(getattr(self, name)))

    def forward(self, x, h_prev_t):
        self.x, self.hidden = x, h_prev_t
        self.r = sigmoid(self.Wrx @ x + self.brx + self.Wrh @ h_prev_t + self.brh)
        self.z = sigmoid(self.Wzx @ x + self.bzx + self.Wzh @ h_prev_t + self.bzh)
        self.hn = self.Wnh @ h_prev_t + self.bnh
        self.n = np.tanh(self.Wnx @ x + self.bnx + self.r * self.hn)
        return (1 - self.z) * h_prev_t + self.z * self.n

    def backward(self, delta):
        """delta: dL/dh_t (hidden_dim,). Returns dx (in_dim,), dh_prev_t (hidden_dim,)."""
        x, h, r, z, n = self.x, self.hidden, self.r, self.z, self.n

        d_n = delta * z * (1 - n**2)
        d_z = delta * (n - h) * z * (1 - z)
        d_hn = d_n * r
        d_r = d_n * self.hn * r * (1 - r)

        self.dWnx += np.outer(d_n, x)
        self.dbnx += d_n
        self.dWnh += np.outer(d_hn, h)
        self.dbnh += d_n
        self.dWzx += np.outer(d_z, x)
        self.dbzx += d_z
        self.dWzh += np.outer(d_z, h)
        self.dbzh += d_z
        self.dWrx += np.outer(d_r, x)
        self.dbrx += d_r
        self.dWrh += np.outer(d_r, h)
        self.dbrh += d_r

        dx = self.Wnx.T @ d_n + self.Wzx.T @ d_z + self.Wrx.T @ d_r
        dh_prev_t = delta * (1 - z) + self.Wnh.T @ d_hn + self.Wzh.T @ d_z + self.Wrh.T @ d_r
        return dx, dh_prev_t
