"""textbook_ch10_rnn.tex: textbook chapter, column convention, nabla notation, tau the last step.
Planted: the recurrent Jacobian without its transpose (W where W^T belongs) and h^{(t)} where
h^{(t-1)} belongs in grad_W."""
import numpy as np
from common import R, Model, main, softmax, onehot, randn, steps, jac, fd

FILE = "textbook_ch10_rnn.tex"
MODEL = ("Vanilla tanh RNN, column convention, one sequence: h^{(t)} = tanh(b + W h^{(t-1)} + U x^{(t)}), "
         "o^{(t)} = c + V h^{(t)}, yhat^{(t)} = softmax(o^{(t)}), L = sum_t L^{(t)} with "
         "L^{(t)} = -log yhat^{(t)}_{y^{(t)}}; h^{(0)} is a given initial state; tau is the last step.")
MAP = {
    "\\tau": "the last time step T",
    "\\nabla_{N} L": "the (total) gradient of L w.r.t. node N, a column of N's shape",
    "\\frac{\\partial h^{(t+1)}}{\\partial h^{(t)}}": "the Jacobian in numerator layout, [i, j] = d h^{(t+1)}_i / d h^{(t)}_j",
    "W^{(t)}": "the copy of W used at step t only; nabla_{W^{(t)}} is the contribution of step t",
    "\\mathbf{1}_{i = y^{(t)}}": "1 if i is the target class at step t, else 0",
    "&= at the start of a line": "the left-hand side is the one of the line above",
}


def step(P, h_prev, x, W=None):
    return np.tanh(P["b"] + (P["W"] if W is None else W) @ h_prev + P["U"] @ x)


def forward(P, D, tap):
    h = tap("h", 0, D["h0"])
    out = {"L": 0.0}
    for t in range(1, D["T"] + 1):
        x = tap("x", t, D["x"][t - 1])
        h = tap("h", t, step(P, h, x))
        o = tap("o", t, P["c"] + P["V"] @ h)
        yh = tap("yhat", t, softmax(o))
        Lt = -np.log(yh[D["y"][t - 1]])
        out[("Lt", t)] = Lt
        out["L"] = out["L"] + tap("Lt", t, Lt)
    return out


def build(cfg):
    rng = np.random.default_rng(cfg["seed"])
    D_, H, C, T = cfg["D"], cfg["H"], cfg["C"], cfg["T"]
    P = dict(W=randn(rng, H, H), U=randn(rng, H, D_), b=randn(rng, H), V=randn(rng, C, H), c=randn(rng, C))
    D = dict(T=T, x=randn(rng, T, D_, scale=1.0), y=rng.integers(0, C, T), h0=randn(rng, H))
    return Model(forward, P, D, cfg)


def dtanh(m, t):
    return np.diag(1 - m("h", t) ** 2)


def grad_o_chain(m, t):
    i_true = m.g("o", t)
    dLt_do = m.g("o", t, loss=("Lt", t))
    return [(i_true, m.g("o", t)),                                 # (nabla_o L)_i = dL/do_i
            (m.g("Lt", t) * dLt_do, m.g("o", t)),                  # = dL/dL^(t) dL^(t)/do_i
            (m("yhat", t) - onehot(m.data["y"][t - 1], m.C), m.g("o", t))]  # = yhat_i - 1_{i=y}


def W_t_term(m, t):
    """sum_i (dL/dh_i^(t)) nabla_{W^(t)} h_i^(t), the local gradient of h^(t) w.r.t. the copy W^(t) by differences"""
    gh = m.g("h", t)
    W = m.P["W"].copy()
    total = np.zeros_like(W)
    for i in range(m.H):
        total += gh[i] * fd(lambda: step(m.P, m("h", t - 1), m("x", t), W)[i], W)
    return total


def jac_h(m, t):
    """d h^(t+1) / d h^(t), numerator layout, by differences of one step"""
    return jac(lambda h: step(m.P, h, m("x", t + 1)), m("h", t))


RULES = [
    R(r"t = 1, \dots, \tau", "no claim", why="the range of t, not an equation"),
    R(r"h^{(t)} = \tanh\left(b + W h^{(t-1)} + U x^{(t)}\right)", "forward",
      check=lambda m: steps(m, lambda t: (m("h", t), np.tanh(m.P["b"] + m.P["W"] @ m("h", t - 1) + m.P["U"] @ m("x", t))))),
    R(r"o^{(t)} = c + V h^{(t)}", "forward", check=lambda m: steps(m, lambda t: (m("o", t), m.P["c"] + m.P["V"] @ m("h", t)))),
    R(r"\hat{y}^{(t)} = \operatorname{softmax}(o^{(t)})", "forward",
      check=lambda m: steps(m, lambda t: (m("yhat", t), softmax(m("o", t))))),
    R(r"L = \sum_{t} L^{(t)}", "forward", check=lambda m: [(m.losses["L"], sum(m("Lt", t) for t in range(1, m.T + 1)))]),
    R(r"L^{(t)} = -\log \hat{y}^{(t)}_{y^{(t)}}", "forward",
      check=lambda m: steps(m, lambda t: (m("Lt", t), -np.log(m("yhat", t)[m.data["y"][t - 1]])))),
    R(r"\frac{\partial L}{\partial L^{(t)}} = 1", "backward", check=lambda m: steps(m, lambda t: (1.0, m.g("Lt", t)))),
    R(r"(\nabla_{o^{(t)}} L)_i = \frac{\partial L}{\partial o^{(t)}_i} = \frac{\partial L}{\partial L^{(t)}} \frac{\partial L^{(t)}}{\partial o^{(t)}_i} = \hat{y}^{(t)}_i - \mathbf{1}_{i = y^{(t)}}",
      "backward", check=lambda m: sum((grad_o_chain(m, t) for t in range(1, m.T + 1)), [])),
    R(r"\nabla_{h^{(\tau)}} L = V^\top \nabla_{o^{(\tau)}} L", "backward",
      check=lambda m: [(m.P["V"].T @ m.g("o", m.T), m.g("h", m.T))]),
    R(r"\nabla_{h^{(t)}} L &= \left(\frac{\partial h^{(t+1)}}{\partial h^{(t)}}\right)^{\!\top} (\nabla_{h^{(t+1)}} L) + \left(\frac{\partial o^{(t)}}{\partial h^{(t)}}\right)^{\!\top} (\nabla_{o^{(t)}} L)",
      "backward", check=lambda m: steps(m, lambda t: (jac_h(m, t).T @ m.g("h", t + 1) + m.P["V"].T @ m.g("o", t), m.g("h", t)),
                                        range(1, m.T))),
    R(r"&= W \, \mathrm{diag}\left(1 - (h^{(t+1)})^2\right) (\nabla_{h^{(t+1)}} L) + V^\top (\nabla_{o^{(t)}} L)", "backward", "wrong",
      why="continues nabla_{h^{(t)}} L: the recurrent Jacobian needs its transpose, W^T diag(1 - (h^{(t+1)})^2), not W diag(...)",
      check=lambda m: steps(m, lambda t: (m.P["W"] @ dtanh(m, t + 1) @ m.g("h", t + 1) + m.P["V"].T @ m.g("o", t), m.g("h", t)),
                            range(1, m.T))),
    R(r"\nabla_c L &= \sum_t \left(\frac{\partial o^{(t)}}{\partial c}\right)^{\!\top} \nabla_{o^{(t)}} L = \sum_t \nabla_{o^{(t)}} L", "backward",
      check=lambda m: [(sum(np.eye(m.C).T @ m.g("o", t) for t in range(1, m.T + 1)), m.gp("c")),
                       (sum(m.g("o", t) for t in range(1, m.T + 1)), m.gp("c"))]),
    R(r"\nabla_b L &= \sum_t \mathrm{diag}\left(1 - (h^{(t)})^2\right) \nabla_{h^{(t)}} L", "backward",
      check=lambda m: [(sum(dtanh(m, t) @ m.g("h", t) for t in range(1, m.T + 1)), m.gp("b"))]),
    R(r"\nabla_V L &= \sum_t (\nabla_{o^{(t)}} L)\, h^{(t)\top}", "backward",
      check=lambda m: [(sum(np.outer(m.g("o", t), m("h", t)) for t in range(1, m.T + 1)), m.gp("V"))]),
    R(r"\nabla_W L &= \sum_t \sum_i \left(\frac{\partial L}{\partial h^{(t)}_i}\right) \nabla_{W^{(t)}} h^{(t)}_i", "backward",
      check=lambda m: [(sum(W_t_term(m, t) for t in range(1, m.T + 1)), m.gp("W"))]),
    R(r"&= \sum_t \mathrm{diag}\left(1 - (h^{(t)})^2\right) (\nabla_{h^{(t)}} L)\, h^{(t)\top}", "backward", "wrong",
      why="continues nabla_W L: W multiplies h^{(t-1)} at step t, so the outer product is with h^{(t-1)T}, not h^{(t)T} (t where t-1 belongs)",
      check=lambda m: [(sum(dtanh(m, t) @ np.outer(m.g("h", t), m("h", t)) for t in range(1, m.T + 1)), m.gp("W"))]),
    R(r"\nabla_U L &= \sum_t \mathrm{diag}\left(1 - (h^{(t)})^2\right) (\nabla_{h^{(t)}} L)\, x^{(t)\top}", "backward",
      check=lambda m: [(sum(dtanh(m, t) @ np.outer(m.g("h", t), m("x", t)) for t in range(1, m.T + 1)), m.gp("U"))]),
]

CONFIGS = [dict(N=1, D=2, H=3, C=3, T=3, seed=0), dict(N=1, D=3, H=3, C=3, T=4, seed=1)]

if __name__ == "__main__":
    main(FILE, MODEL, MAP, RULES, build, CONFIGS)
