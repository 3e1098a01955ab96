"""lecture_fprime_gather.tex: a lecture handout with gather, multline, \\tag, \\label, \\equiv,
\\bm and a letter f for the activation (f = tanh). Vanilla RNN in columns, softmax
cross-entropy J with one-hot targets, h_0 given. No planted mistake."""
import numpy as np
from common import R, Model, main, softmax, onehot, randn, steps

FILE = "lecture_fprime_gather.tex"
MODEL = ("vanilla RNN, column convention, one sequence: a_t = W h_{t-1} + U x_t + b, h_t = f(a_t) with f = tanh, "
         "o_t = V h_t + c, yhat_t = softmax(o_t), J = -sum_t y_t^T log yhat_t (y_t one-hot); h_0 given.")
MAP = {
    "f": "tanh",
    "\\bm{e}_t": "dJ/do_t",
    "\\bm{\\delta}_t": "dJ/da_t",
    "\\prod_{j=t}^{s-1}": "read from the smallest j on the left (j = t first)",
}


def forward(P, D, tap):
    h = tap("h", 0, D["h0"])
    out = {"L": 0.0}
    for t in range(1, D["T"] + 1):
        a = tap("a", t, P["W"] @ h + P["U"] @ D["x"][t - 1] + P["b"])
        h = tap("h", t, np.tanh(a))
        o = tap("o", t, P["V"] @ h + P["c"])
        yh = tap("yhat", t, softmax(o))
        out["L"] = out["L"] - np.log(yh[D["y"][t - 1]])
    return out


def build(cfg):
    rng = np.random.default_rng(cfg["seed"])
    D_, H, C, T = cfg["D"], cfg["H"], cfg["C"], cfg["T"]
    P = dict(W=randn(rng, H, H, scale=0.9), U=randn(rng, H, D_), b=randn(rng, H), V=randn(rng, C, H), c=randn(rng, C))
    D = dict(T=T, x=randn(rng, T, D_, scale=1.0), y=rng.integers(0, C, T), h0=randn(rng, H))
    return Model(forward, P, D, cfg)


S = lambda m, f: sum(f(t) for t in range(1, m.T + 1))
e = lambda m, t: m("yhat", t) - onehot(m.data["y"][t - 1], m.C)
fp = lambda m, t: 1 - np.tanh(m("a", t)) ** 2
da = lambda m, t: m.g0("a", t, m("a", m.T))
dh = lambda m, t: m.g0("h", t, m("h", m.T))


def unrolled(m, t):
    total = 0
    for s in range(t, m.T + 1):
        prod = np.eye(m.H)
        for j in range(t, s):
            prod = prod @ np.diag(fp(m, j)) @ m.P["W"].T
        total = total + prod @ (fp(m, s) * (m.P["V"].T @ e(m, s)))
    return total


RULES = [
    R(r"f = \tanh", "no claim", why="names the activation", nth=1),
    R(r"t = 1, \dots, T", "no claim", why="a range"),
    R(r"\bm{a}_t = \bm{W} \bm{h}_{t-1} + \bm{U} \bm{x}_t + \bm{b}", "forward",
      check=lambda m: steps(m, lambda t: (m("a", t), m.P["W"] @ m("h", t - 1) + m.P["U"] @ m.data["x"][t - 1] + m.P["b"]))),
    R(r"\bm{h}_t = f(\bm{a}_t)", "forward", check=lambda m: steps(m, lambda t: (m("h", t), np.tanh(m("a", t))))),
    R(r"\bm{o}_t = \bm{V} \bm{h}_t + \bm{c}", "forward", check=lambda m: steps(m, lambda t: (m("o", t), m.P["V"] @ m("h", t) + m.P["c"]))),
    R(r"\hat{\bm{y}}_t = \operatorname{softmax}(\bm{o}_t)", "forward",
      check=lambda m: steps(m, lambda t: (m("yhat", t), softmax(m("o", t))))),
    R(r"\mathcal{J}(\bm{\theta}) = -\sum_{t=1}^{T} \bm{y}_t^\top \log \hat{\bm{y}}_t", "forward",
      check=lambda m: [(m.losses["L"], -S(m, lambda t: onehot(m.data["y"][t - 1], m.C) @ np.log(m("yhat", t))))]),
    R(r"\bm{e}_t \equiv \frac{\partial \mathcal{J}}{\partial \bm{o}_t} = \hat{\bm{y}}_t - \bm{y}_t", "backward",
      why="a definition by \\equiv and a claim", check=lambda m: steps(m, lambda t: (e(m, t), m.g("o", t)))),
    R(r"\bm{\delta}_t \equiv \frac{\partial \mathcal{J}}{\partial \bm{a}_t}", "no claim", why="a definition"),
    R(r"\frac{\partial \mathcal{J}}{\partial \bm{h}_t}", "backward",
      why="a multline equation over lines 33-35: V^T e_t + W^T (f'(a_{t+1}) . dJ/dh_{t+1})",
      check=lambda m: steps(m, lambda t: (m.P["V"].T @ e(m, t) + (m.P["W"].T @ (fp(m, t + 1) * dh(m, t + 1)) if t < m.T else 0),
                                          m.g("h", t)))),
    R(r"= \bm{V}^\top \bm{e}_t \\", "no claim", why="the multline equation of line 33 goes on"),
    R(r"+ \bm{W}^\top \Big( f'(\bm{a}_{t+1})", "no claim", why="the multline equation of line 33 goes on"),
    R(r"\bm{\delta}_t = f'(\bm{a}_t) \odot \big( \bm{V}^\top \bm{e}_t + \bm{W}^\top \bm{\delta}_{t+1} \big)", "backward",
      check=lambda m: steps(m, lambda t: (fp(m, t) * (m.P["V"].T @ e(m, t) + m.P["W"].T @ da(m, t + 1)), m.g("a", t)))),
    R(r"\bm{\delta}_{T+1} = \bm{0}", "backward", why="boundary convention; checked as the recursion at t = T",
      check=lambda m: [(fp(m, m.T) * (m.P["V"].T @ e(m, m.T) + m.P["W"].T @ np.zeros(m.H)), m.g("a", m.T))]),
    R(r"f = \tanh", "no claim", why="names the activation again", nth=2),
    R(r"f'(\bm{a}_t) = \bm{1} - \bm{h}_t \odot \bm{h}_t", "backward",
      check=lambda m: steps(m, lambda t: (fp(m, t), 1 - m("h", t) * m("h", t)))),
    R(r"\nabla_{\bm{W}} \mathcal{J} &= \sum_{t=1}^{T} \bm{\delta}_t \bm{h}_{t-1}^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("a", t), m("h", t - 1))), m.gp("W"))]),
    R(r"\nabla_{\bm{U}} \mathcal{J} &= \sum_{t=1}^{T} \bm{\delta}_t \bm{x}_t^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("a", t), m.data["x"][t - 1])), m.gp("U"))]),
    R(r"\nabla_{\bm{b}} \mathcal{J} &= \sum_{t=1}^{T} \bm{\delta}_t", "backward",
      check=lambda m: [(S(m, lambda t: m.g("a", t)), m.gp("b"))]),
    R(r"\nabla_{\bm{V}} \mathcal{J} &= \sum_{t=1}^{T} \bm{e}_t \bm{h}_t^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(e(m, t), m("h", t))), m.gp("V"))]),
    R(r"\nabla_{\bm{c}} \mathcal{J} &= \sum_{t=1}^{T} \bm{e}_t", "backward", check=lambda m: [(S(m, lambda t: e(m, t)), m.gp("c"))]),
    R(r"\nabla_{\bm{h}_0} \mathcal{J} &= \bm{W}^\top \bm{\delta}_1", "backward",
      check=lambda m: [(m.P["W"].T @ m.g("a", 1), m.gd("h0"))]),
    R(r"\bm{\delta}_t = \sum_{s=t}^{T} \Big( \prod_{j=t}^{s-1} \operatorname{diag}\big(f'(\bm{a}_{j})\big) \bm{W}^\top \Big) \big( f'(\bm{a}_s) \odot \bm{V}^\top \bm{e}_s \big)", "backward",
      why="right with the product read from the smallest j on the left: D_t W^T D_{t+1} W^T ... D_{s-1} W^T",
      check=lambda m: steps(m, lambda t: (unrolled(m, t), m.g("a", t)))),
]

CONFIGS = [dict(N=1, D=2, H=3, C=3, T=3, seed=0), dict(N=1, D=3, H=3, C=3, T=4, seed=1)]

if __name__ == "__main__":
    main(FILE, MODEL, MAP, RULES, build, CONFIGS)
