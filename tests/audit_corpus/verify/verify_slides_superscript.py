"""slides_superscript.tex: beamer lecture slides, weights named by superscripts W^{xh}, W^{hh},
W^{hy}, loss J, two equations per line in align*, \\pause overlays.
Planted: W^{xh} where W^{hh} belongs in the recurrent term of dJ/dh_t."""
import numpy as np
from common import R, Model, main, softmax, onehot, randn, steps

FILE = "slides_superscript.tex"
MODEL = ("Vanilla tanh RNN, column convention, one sequence: u_t = W^{hh} h_{t-1} + W^{xh} x_t + b^h, h_t = tanh(u_t), "
         "s_t = W^{hy} h_t + b^y, yhat_t = softmax(s_t), J = sum_t -log yhat_t[y_t]; h_0 = 0.")
MAP = {
    "W^{xh}, W^{hh}, W^{hy}": "input-to-hidden, hidden-to-hidden, hidden-to-output weights (superscripts are names, not powers)",
    "b^h, b^y": "hidden and output biases",
    "\\delta_t": "dJ/du_t, the total derivative at the pre-activation",
    "\\mathbf{e}_{y_t}": "one-hot column of the target class",
    "s_t": "the logits (scores)",
}


def forward(P, D, tap):
    h = tap("h", 0, D["h0"])
    out = {"L": 0.0}
    for t in range(1, D["T"] + 1):
        u = tap("u", t, P["Whh"] @ h + P["Wxh"] @ D["x"][t - 1] + P["bh"])
        h = tap("h", t, np.tanh(u))
        s = tap("s", t, P["Why"] @ h + P["by"])
        yh = tap("yhat", t, softmax(s))
        Jt = -np.log(yh[D["y"][t - 1]])
        out["L"] = out["L"] + tap("J", t, Jt)
    return out


def build(cfg):
    rng = np.random.default_rng(cfg["seed"])
    D_, H, C, T = cfg["D"], cfg["H"], cfg["C"], cfg["T"]
    P = dict(Whh=randn(rng, H, H), Wxh=randn(rng, H, D_), bh=randn(rng, H), Why=randn(rng, C, H), by=randn(rng, C))
    D = dict(T=T, x=randn(rng, T, D_, scale=1.0), y=rng.integers(0, C, T), h0=np.zeros(H))
    return Model(forward, P, D, cfg)


S = lambda m, f: sum(f(t) for t in range(1, m.T + 1))
safe_mm = lambda A, v: A @ v if A.shape[1] == v.shape[0] else None


def wrong_dh(m, t):
    rec = safe_mm(m.P["Wxh"].T, m.g0("u", t + 1, m("u", t)))
    if rec is None or rec.shape != (m.H,):
        return None          # (W^{xh})^T delta_{t+1} has D entries, not H: it does not even type-check when D != H
    return m.P["Why"].T @ m.g("s", t) + rec


RULES = [
    R(r"h_0 = \mathbf{0}", "forward", check=lambda m: [(m("h", 0), np.zeros(m.H))]),
    R(r"u_t = W^{hh} h_{t-1} + W^{xh} x_t + b^h", "forward",
      check=lambda m: steps(m, lambda t: (m("u", t), m.P["Whh"] @ m("h", t - 1) + m.P["Wxh"] @ m.data["x"][t - 1] + m.P["bh"]))),
    R(r"h_t = \tanh(u_t)", "forward", check=lambda m: steps(m, lambda t: (m("h", t), np.tanh(m("u", t))))),
    R(r"s_t = W^{hy} h_t + b^y", "forward", check=lambda m: steps(m, lambda t: (m("s", t), m.P["Why"] @ m("h", t) + m.P["by"]))),
    R(r"\hat y_t = \operatorname{softmax}(s_t)", "forward", check=lambda m: steps(m, lambda t: (m("yhat", t), softmax(m("s", t))))),
    R(r"J = \sum_{t=1}^{T} J_t", "forward", check=lambda m: [(m.losses["L"], S(m, lambda t: m("J", t)))]),
    R(r"J_t = -\log \hat y_t[y_t]", "forward", check=lambda m: steps(m, lambda t: (m("J", t), -np.log(m("yhat", t)[m.data["y"][t - 1]])))),
    R(r"\frac{\partial J}{\partial s_t} = \hat y_t - \mathbf{e}_{y_t}", "backward",
      check=lambda m: steps(m, lambda t: (m("yhat", t) - onehot(m.data["y"][t - 1], m.C), m.g("s", t)))),
    R(r"\delta_{T+1} = 0", "backward", why="boundary convention; checked as the correct recursion at t = T",
      check=lambda m: [(m.P["Why"].T @ m.g("s", m.T) + m.P["Whh"].T @ np.zeros(m.H), m.g("h", m.T))]),
    R(r"\frac{\partial J}{\partial h_t} = (W^{hy})^\top \frac{\partial J}{\partial s_t} + (W^{xh})^\top \delta_{t+1}", "backward", "wrong",
      why="h_t reaches u_{t+1} through W^{hh}, not W^{xh}: the recurrent term is (W^{hh})^T delta_{t+1} (W^{xh} where W^{hh} belongs; a shape error unless D = H)",
      check=lambda m: steps(m, lambda t: (wrong_dh(m, t), m.g("h", t)))),
    R(r"\delta_t := \partial J / \partial u_t", "no claim", why="a definition of notation"),
    R(r"\delta_t = (1 - h_t \odot h_t) \odot \frac{\partial J}{\partial h_t}", "backward",
      check=lambda m: steps(m, lambda t: ((1 - m("h", t) ** 2) * m.g("h", t), m.g("u", t)))),
    R(r"\frac{\partial J}{\partial W^{hh}} &= \sum_{t=1}^{T} \delta_t \, h_{t-1}^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("u", t), m("h", t - 1))), m.gp("Whh"))]),
    R(r"\frac{\partial J}{\partial W^{xh}} &= \sum_{t=1}^{T} \delta_t \, x_t^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("u", t), m.data["x"][t - 1])), m.gp("Wxh"))]),
    R(r"\frac{\partial J}{\partial b^h} &= \sum_{t=1}^{T} \delta_t", "backward",
      check=lambda m: [(S(m, lambda t: m.g("u", t)), m.gp("bh"))]),
    R(r"\frac{\partial J}{\partial W^{hy}} &= \sum_{t=1}^{T} \frac{\partial J}{\partial s_t} \, h_t^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("s", t), m("h", t))), m.gp("Why"))]),
    R(r"\frac{\partial J}{\partial b^y} &= \sum_{t=1}^{T} \frac{\partial J}{\partial s_t}", "backward",
      check=lambda m: [(S(m, lambda t: m.g("s", t)), m.gp("by"))]),
]

CONFIGS = [dict(N=1, D=2, H=3, C=3, T=3, seed=0), dict(N=1, D=3, H=3, C=3, T=4, seed=1)]

if __name__ == "__main__":
    main(FILE, MODEL, MAP, RULES, build, CONFIGS)
