"""blog_vanishing_gradients.md: blog post with \\[ \\] and \\( \\), Pascanu et al.'s path sum
with immediate partials, numerator-layout Jacobians, loss E. No planted mistake."""
import numpy as np
from functools import reduce
from common import R, Model, main, sigmoid, randn, steps, jac

FILE = "blog_vanishing_gradients.md"
MODEL = ("RNN in Pascanu et al.'s form, column convention, one sequence: h_t = W sigma(h_{t-1}) + U x_t + b "
         "with sigma the logistic sigmoid; E_t = 1/2 ||V h_t - y_t||^2, E = sum_t E_t; h_0 is a given initial state.")
MAP = {
    "\\frac{\\partial^+ h_k}{\\partial W}": "the immediate partial derivative of h_k w.r.t. W (step k alone, h_{k-1} held fixed), a 3-tensor contracted with the row vector on its left",
    "\\frac{\\partial a}{\\partial b}": "Jacobians in numerator layout: [i, j] = d a_i / d b_j; dE_t/dh_t is a row vector",
    "\\prod_{j=k+1}^{t}": "ordered with the later steps to the left: dh_t/dh_{t-1} ... dh_{k+1}/dh_k (the identity when k = t)",
    "\\sigma'(h_{j-1})": "the derivative of the sigmoid at its argument h_{j-1}",
    "\\frac{\\partial E}{\\partial b}": "given as a row vector (numerator layout); compared entrywise",
}


def step(P, h_prev, x, W=None, U=None, b=None):
    return (P["W"] if W is None else W) @ sigmoid(h_prev) + (P["U"] if U is None else U) @ x + (P["b"] if b is None else b)


def forward(P, D, tap):
    h = tap("h", 0, D["h0"])
    out = {"L": 0.0}
    for t in range(1, D["T"] + 1):
        h = tap("h", t, step(P, h, D["x"][t - 1]))
        Et = 0.5 * np.sum((P["V"] @ h - D["y"][t - 1]) ** 2)
        out[("E", t)] = Et
        out["L"] = out["L"] + tap("E", t, Et)
    return out


def build(cfg):
    rng = np.random.default_rng(cfg["seed"])
    D_, H, C, T = cfg["D"], cfg["H"], cfg["C"], cfg["T"]
    P = dict(W=randn(rng, H, H, scale=1.2), U=randn(rng, H, D_), b=randn(rng, H), V=randn(rng, C, H))
    D = dict(T=T, x=randn(rng, T, D_, scale=1.0), y=randn(rng, T, C, scale=1.0), h0=randn(rng, H))
    return Model(forward, P, D, cfg)


def dEt_dht(m, t):
    return (m.P["V"] @ m("h", t) - m.data["y"][t - 1]) @ m.P["V"]          # row vector


def J(m, j):
    """dh_j/dh_{j-1} by differences of one step"""
    return jac(lambda h: step(m.P, h, m.data["x"][j - 1]), m("h", j - 1))


def prod_J(m, t, k):
    """prod_{j=k+1}^{t} dh_j/dh_{j-1}, later steps on the left"""
    return reduce(lambda A, j: A @ J(m, j), range(t, k, -1), np.eye(m.H))


def immediate(m, k, p):
    """d+ h_k / d p: the Jacobian of step k alone w.r.t. parameter p, shape (H, p.size)"""
    return jac(lambda v: step(m.P, m("h", k - 1), m.data["x"][k - 1], **{p: v.reshape(m.P[p].shape)}), m.P[p].ravel())


def path_sum(m, t, p):
    return sum((dEt_dht(m, t) @ prod_J(m, t, k) @ immediate(m, k, p)).reshape(m.P[p].shape) for k in range(1, t + 1))


def sig_prime(h):
    return sigmoid(h) * (1 - sigmoid(h))


def analytic_prod(m, t, k):
    return reduce(lambda A, j: A @ (m.P["W"] @ np.diag(sig_prime(m("h", j - 1)))), range(t, k, -1), np.eye(m.H))


def true_dht_dhk(m, t, k):
    """d h_t / d h_k by differences through the whole forward pass (perturb h_k, rerun)"""
    def run(hk):
        h = hk
        for j in range(k + 1, t + 1):
            h = step(m.P, h, m.data["x"][j - 1])
        return h
    return jac(run, m("h", k))


ALL_TK = lambda m: [(t, k) for t in range(1, m.T + 1) for k in range(1, t + 1)]

RULES = [
    R(r"h_t = W \sigma(h_{t-1}) + U x_t + b", "forward",
      check=lambda m: steps(m, lambda t: (m("h", t), m.P["W"] @ sigmoid(m("h", t - 1)) + m.P["U"] @ m.data["x"][t - 1] + m.P["b"]))),
    R(r"E_t = \tfrac{1}{2} \| V h_t - y_t \|^2", "forward",
      check=lambda m: steps(m, lambda t: (m("E", t), 0.5 * np.sum((m.P["V"] @ m("h", t) - m.data["y"][t - 1]) ** 2)))),
    R(r"E = \sum_{t=1}^{T} E_t", "forward", check=lambda m: [(m.losses["L"], sum(m("E", t) for t in range(1, m.T + 1)))]),
    R(r"\frac{\partial E}{\partial W} = \sum_{t=1}^{T} \frac{\partial E_t}{\partial W}", "backward",
      check=lambda m: [(sum(m.gp("W", loss=("E", t)) for t in range(1, m.T + 1)), m.gp("W"))]),
    R(r"\frac{\partial E_t}{\partial W} = \sum_{k=1}^{t} \frac{\partial E_t}{\partial h_t} \left(\prod_{j=k+1}^{t} \frac{\partial h_j}{\partial h_{j-1}}\right) \frac{\partial^+ h_k}{\partial W}",
      "backward", why="Pascanu et al.'s sum over the step k at which W is used",
      check=lambda m: steps(m, lambda t: (path_sum(m, t, "W"), m.gp("W", loss=("E", t))))),
    R(r"\frac{\partial E_t}{\partial h_t} = (V h_t - y_t)^\top V", "backward",
      check=lambda m: steps(m, lambda t: (dEt_dht(m, t), m.g("h", t, loss=("E", t))))),
    R(r"\frac{\partial h_j}{\partial h_{j-1}} = W \, \mathrm{diag}(\sigma'(h_{j-1}))", "backward",
      check=lambda m: steps(m, lambda j: (m.P["W"] @ np.diag(sig_prime(m("h", j - 1))), J(m, j)))),
    R(r"\frac{\partial h_t}{\partial h_k} = \prod_{j=k+1}^{t} \frac{\partial h_j}{\partial h_{j-1}} = \prod_{j=k+1}^{t} W \, \mathrm{diag}(\sigma'(h_{j-1}))",
      "backward", check=lambda m: sum(([(prod_J(m, t, k), true_dht_dhk(m, t, k)), (analytic_prod(m, t, k), true_dht_dhk(m, t, k))]
                                       for t, k in ALL_TK(m)), [])),
    R(r"\left\| \frac{\partial h_j}{\partial h_{j-1}} \right\| \le \|W\| \, \|\mathrm{diag}(\sigma'(h_{j-1}))\| \le \tfrac{1}{4} \|W\|",
      "no claim", why="a norm bound (true), not a gradient rule"),
    R(r"\frac{\partial^+ h_k}{\partial b} = I", "backward",
      check=lambda m: steps(m, lambda k: (np.eye(m.H), immediate(m, k, "b")))),
    R(r"\frac{\partial E}{\partial U} = \sum_{t=1}^{T} \sum_{k=1}^{t} \frac{\partial E_t}{\partial h_t} \frac{\partial h_t}{\partial h_k} \frac{\partial^+ h_k}{\partial U}",
      "backward", check=lambda m: [(sum(path_sum(m, t, "U") for t in range(1, m.T + 1)), m.gp("U"))]),
    R(r"\frac{\partial E}{\partial b} = \sum_{t=1}^{T} \sum_{k=1}^{t} \frac{\partial E_t}{\partial h_t} \frac{\partial h_t}{\partial h_k}", "backward",
      check=lambda m: [(sum(dEt_dht(m, t) @ true_dht_dhk(m, t, k) for t, k in ALL_TK(m)), m.gp("b"))]),
    R(r"\frac{\partial E}{\partial V} = \sum_{t=1}^{T} (V h_t - y_t) \, h_t^\top", "backward",
      check=lambda m: [(sum(np.outer(m.P["V"] @ m("h", t) - m.data["y"][t - 1], m("h", t)) for t in range(1, m.T + 1)), m.gp("V"))]),
]

CONFIGS = [dict(N=1, D=2, H=3, C=3, T=3, seed=0), dict(N=1, D=3, H=3, C=3, T=4, seed=1)]

if __name__ == "__main__":
    main(FILE, MODEL, MAP, RULES, build, CONFIGS)
