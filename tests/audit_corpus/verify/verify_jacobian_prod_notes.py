"""jacobian_prod_notes.tex: reading-group notes on vanishing gradients: sums over paths,
products of one-step Jacobians, Pascanu et al.'s immediate derivative. Vanilla tanh RNN in
columns, softmax cross-entropy E = sum_t E_t, h_0 given.
Planted: the one-step Jacobian with the tanh derivative at step j-1 (line 29); a chain whose
second member reads dh_t/dU as the immediate partial (line 50)."""
import numpy as np
from common import EPS, R, Model, Tap, main, softmax, onehot, randn, steps

FILE = "jacobian_prod_notes.tex"
MODEL = ("vanilla RNN, column convention, one sequence: h_t = tanh(W h_{t-1} + U x_t + b), "
         "yhat_t = softmax(V h_t + c), E_t = -log yhat_t[y_t], E = sum_t E_t; h_0 given.")
MAP = {
    "\\frac{\\partial h_t}{\\partial h_k}": "the Jacobian of h_t by h_k (rows: entries of h_t), total",
    "\\frac{\\partial^+ h_k}{\\partial W}": "the immediate derivative (h_{k-1} held constant)",
    "\\frac{\\partial E_t}{\\partial h_t}": "the derivative of the one loss term E_t",
    "\\prod_{j=k+1}^{t}": "the chain rule's order, largest j on the left",
}


def forward(P, D, tap):
    h = tap("h", 0, D["h0"])
    out = {"L": 0.0}
    for t in range(1, D["T"] + 1):
        a = tap("a", t, P["W"] @ h + P["U"] @ D["x"][t - 1] + P["b"])
        h = tap("h", t, np.tanh(a))
        yh = tap("yhat", t, softmax(P["V"] @ h + P["c"]))
        out[t] = -np.log(yh[D["y"][t - 1]])
        out["L"] = out["L"] + out[t]
    return out


def build(cfg):
    rng = np.random.default_rng(cfg["seed"])
    D_, H, C, T = cfg["D"], cfg["H"], cfg["C"], cfg["T"]
    P = dict(W=randn(rng, H, H, scale=0.9), U=randn(rng, H, D_), b=randn(rng, H), V=randn(rng, C, H), c=randn(rng, C))
    D = dict(T=T, x=randn(rng, T, D_, scale=1.0), y=rng.integers(0, C, T), h0=randn(rng, H))
    return Model(forward, P, D, cfg)


S = lambda m, f: sum(f(t) for t in range(1, m.T + 1))
e = lambda m, t: m("yhat", t) - onehot(m.data["y"][t - 1], m.C)


def fdjac(m, t, k):
    """d h_t / d h_k by central differences of the forward pass (rows: entries of h_t)"""
    key = ("jac", t, k)
    if key not in m._cache:
        out = np.zeros((m.H, m.H))
        for i in range(m.H):
            cols = []
            for sign in (1, -1):
                pert = np.zeros(m.H)
                pert[i] = sign * EPS
                tap = Tap({("h", k): pert})
                m.forward(m.P, m.data, tap)
                cols.append(tap.rec[("h", t)])
            out[:, i] = (cols[0] - cols[1]) / (2 * EPS)
        m._cache[key] = out
    return m._cache[key]


def J(m, j):
    """the true one-step Jacobian dh_j / dh_{j-1}"""
    return fdjac(m, j, j - 1)


def prod(m, k, t, one=J):
    out = np.eye(m.H)
    for j in range(t, k, -1):
        out = out @ one(m, j)
    return out


def dEt_dW(m, t):
    return sum(np.outer((1 - m("h", k) ** 2) * (prod(m, k, t).T @ (m.P["V"].T @ e(m, t))), m("h", k - 1))
               for k in range(1, t + 1))


RULES = [
    R(r"h_t = \tanh(W h_{t-1} + U x_t + b)", "forward",
      check=lambda m: steps(m, lambda t: (m("h", t), np.tanh(m.P["W"] @ m("h", t - 1) + m.P["U"] @ m.data["x"][t - 1] + m.P["b"])))),
    R(r"\hat y_t = \operatorname{softmax}(V h_t + c)", "forward",
      check=lambda m: steps(m, lambda t: (m("yhat", t), softmax(m.P["V"] @ m("h", t) + m.P["c"])))),
    R(r"E_t = -\log \hat y_t[y_t]", "forward",
      check=lambda m: steps(m, lambda t: (m.losses[t], -np.log(m("yhat", t)[m.data["y"][t - 1]])))),
    R(r"E = \sum_{t=1}^{T} E_t", "forward", check=lambda m: [(m.losses["L"], S(m, lambda t: m.losses[t]))]),
    R(r"\frac{\partial E}{\partial W} = \sum_{t=1}^{T} \frac{\partial E_t}{\partial W}", "backward",
      check=lambda m: [(S(m, lambda t: m.gp("W", loss=t)), m.gp("W"))]),
    R(r"\frac{\partial E_t}{\partial W} = \sum_{k=1}^{t} \frac{\partial E_t}{\partial h_t} \frac{\partial h_t}{\partial h_k} \frac{\partial^+ h_k}{\partial W}", "backward",
      check=lambda m: steps(m, lambda t: (dEt_dW(m, t), m.gp("W", loss=t)))),
    R(r"\frac{\partial h_t}{\partial h_k} = \prod_{j=k+1}^{t} \frac{\partial h_j}{\partial h_{j-1}}", "backward",
      check=lambda m: [(prod(m, k, t), fdjac(m, t, k)) for t in range(1, m.T + 1) for k in range(0, t)]),
    R(r"\frac{\partial h_j}{\partial h_{j-1}} = \operatorname{diag}\big(1 - h_{j-1}^2\big)\, W", "backward", "wrong",
      why="the tanh derivative belongs at step j: dh_j/dh_{j-1} = diag(1 - h_j^2) W",
      check=lambda m: steps(m, lambda j: (np.diag(1 - m("h", j - 1) ** 2) @ m.P["W"], J(m, j)))),
    R(r"\frac{\partial E_t}{\partial h_t} = V^\top \big(\hat y_t - \mathbf{1}_{y_t}\big)", "backward",
      why="the derivative of the one loss term E_t",
      check=lambda m: steps(m, lambda t: (m.P["V"].T @ e(m, t), m.g("h", t, loss=t)))),
    R(r"\Big\| \frac{\partial h_t}{\partial h_k} \Big\| \le \|W\|^{\,t-k}", "no claim", why="an inequality"),
    R(r"\frac{\partial E}{\partial U} = \sum_{t=1}^{T} \frac{\partial E_t}{\partial h_t} \frac{\partial h_t}{\partial U}", "backward",
      why="dh_t/dU total (through every earlier state), contracted with dE_t/dh_t",
      check=lambda m: [(S(m, lambda t: sum(np.outer((1 - m("h", k) ** 2) * (prod(m, k, t).T @ (m.P["V"].T @ e(m, t))), m.data["x"][k - 1])
                                          for k in range(1, t + 1))), m.gp("U"))]),
    R(r"= \sum_{t=1}^{T} \Big( (1 - h_t^2) \odot V^\top (\hat y_t - \mathbf{1}_{y_t}) \Big)\, x_t^\top", "backward", "wrong",
      why="the chain's second member reads dh_t/dU as the immediate partial (only k = t), dropping the paths through h_{t-1}, ... (partial vs total)",
      check=lambda m: [(S(m, lambda t: np.outer((1 - m("h", t) ** 2) * (m.P["V"].T @ e(m, t)), m.data["x"][t - 1])), m.gp("U"))]),
    R(r"\frac{\partial E}{\partial V} = \sum_{t=1}^{T} \big(\hat y_t - \mathbf{1}_{y_t}\big)\, h_t^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(e(m, t), m("h", t))), m.gp("V"))]),
    R(r"\frac{\partial E}{\partial c} = \sum_{t=1}^{T} \big(\hat y_t - \mathbf{1}_{y_t}\big)", "backward",
      check=lambda m: [(S(m, lambda t: e(m, t)), m.gp("c"))]),
    R(r"\frac{\partial E}{\partial h_t} = \sum_{s=t}^{T} \Big( \prod_{j=t+1}^{s} \frac{\partial h_j}{\partial h_{j-1}} \Big)^{\!\top} V^\top \big(\hat y_s - \mathbf{1}_{y_s}\big)", "backward",
      why="right with the true one-step Jacobians (chain-rule order, largest j left)",
      check=lambda m: steps(m, lambda t: (sum(prod(m, t, s).T @ m.P["V"].T @ e(m, s) for s in range(t, m.T + 1)), m.g("h", t)))),
]

CONFIGS = [dict(N=1, D=2, H=3, C=3, T=3, seed=0), dict(N=1, D=3, H=3, C=3, T=4, seed=1)]

if __name__ == "__main__":
    main(FILE, MODEL, MAP, RULES, build, CONFIGS)
