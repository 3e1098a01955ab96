"""blog_math_fences.md: GitHub Markdown with ```math fences, loss J, sigmoid hidden layer,
word subscripts W_{hh}, W_{xh}, W_{hy}, sigma'(z_t) at its argument.
Planted: sign error in dJ/do_t (target minus prediction)."""
import numpy as np
from common import R, Model, main, sigmoid, softmax, onehot, randn, steps, fd

FILE = "blog_math_fences.md"
MODEL = ("RNN with a logistic-sigmoid hidden layer, column convention, one sequence: "
         "z_t = W_hh h_{t-1} + W_xh x_t + b_h, h_t = sigma(z_t), o_t = W_hy h_t + b_y, yhat_t = softmax(o_t), "
         "J = -sum_t y_t^T log yhat_t (y_t one-hot); h_0 = 0.")
MAP = {
    "\\sigma'(z_t)": "the derivative of the sigmoid at its argument z_t",
    "W_{hh}, W_{xh}, W_{hy}": "recurrent, input and output weights (to-from word subscripts)",
}


def forward(P, D, tap):
    h = tap("h", 0, D["h0"])
    out = {"L": 0.0}
    for t in range(1, D["T"] + 1):
        z = tap("z", t, P["W_hh"] @ h + P["W_xh"] @ D["x"][t - 1] + P["b_h"])
        h = tap("h", t, sigmoid(z))
        o = tap("o", t, P["W_hy"] @ h + P["b_y"])
        yh = tap("yhat", t, softmax(o))
        out["L"] = out["L"] - D["y"][t - 1] @ np.log(yh)
    return out


def build(cfg):
    rng = np.random.default_rng(cfg["seed"])
    D_, H, C, T = cfg["D"], cfg["H"], cfg["C"], cfg["T"]
    P = dict(W_hh=randn(rng, H, H, scale=1.5), W_xh=randn(rng, H, D_, scale=1.5), b_h=randn(rng, H),
             W_hy=randn(rng, C, H, scale=1.5), b_y=randn(rng, C))
    D = dict(T=T, x=randn(rng, T, D_, scale=1.0), y=np.stack([onehot(i, C) for i in rng.integers(0, C, T)]), h0=np.zeros(H))
    return Model(forward, P, D, cfg)


S = lambda m, f: sum(f(t) for t in range(1, m.T + 1))


def fd_term(m, t):
    """d/do_t (y_t^T log softmax(o_t)) by differences"""
    o = m("o", t).copy()
    return fd(lambda: m.data["y"][t - 1] @ np.log(softmax(o)), o)
sp = lambda m, t: sigmoid(m("z", t)) * (1 - sigmoid(m("z", t)))

RULES = [
    R(r"h_0 = \mathbf{0}", "forward", check=lambda m: [(m("h", 0), np.zeros(m.H))]),
    R(r"z_t = W_{hh} h_{t-1} + W_{xh} x_t + b_h", "forward",
      check=lambda m: steps(m, lambda t: (m("z", t), m.P["W_hh"] @ m("h", t - 1) + m.P["W_xh"] @ m.data["x"][t - 1] + m.P["b_h"]))),
    R(r"h_t = \sigma(z_t)", "forward", check=lambda m: steps(m, lambda t: (m("h", t), sigmoid(m("z", t))))),
    R(r"o_t = W_{hy} h_t + b_y", "forward", check=lambda m: steps(m, lambda t: (m("o", t), m.P["W_hy"] @ m("h", t) + m.P["b_y"]))),
    R(r"\hat{y}_t = \mathrm{softmax}(o_t)", "forward", check=lambda m: steps(m, lambda t: (m("yhat", t), softmax(m("o", t))))),
    R(r"J = -\sum_{t=1}^{T} y_t^\top \log \hat{y}_t", "forward",
      check=lambda m: [(m.losses["L"], -S(m, lambda t: m.data["y"][t - 1] @ np.log(m("yhat", t))))]),
    R(r"\frac{\partial J}{\partial o_t} = -\frac{\partial}{\partial o_t} \left( y_t^\top \log \hat{y}_t \right) = y_t - \hat{y}_t", "backward", "wrong",
      why="chain: the middle member is right (only step t's term depends on o_t), the last member has a sign error: for softmax with cross-entropy dJ/do_t = yhat_t - y_t (prediction minus target, as the prose itself says)",
      check=lambda m: steps(m, lambda t: (-fd_term(m, t), m.g("o", t))) + steps(m, lambda t: (m.data["y"][t - 1] - m("yhat", t), m.g("o", t)))),
    R(r"\frac{\partial J}{\partial z_{T+1}} = 0", "backward", why="boundary convention: there is no step T+1",
      check=lambda m: [(m.P["W_hy"].T @ m.g("o", m.T) + m.P["W_hh"].T @ np.zeros(m.H), m.g("h", m.T))]),
    R(r"\frac{\partial J}{\partial h_t} = W_{hy}^\top \frac{\partial J}{\partial o_t} + W_{hh}^\top \frac{\partial J}{\partial z_{t+1}}", "backward",
      check=lambda m: steps(m, lambda t: (m.P["W_hy"].T @ m.g("o", t) + m.P["W_hh"].T @ m.g0("z", t + 1, m("z", t)), m.g("h", t)))),
    R(r"\frac{\partial J}{\partial z_t} = \sigma'(z_t) \odot \frac{\partial J}{\partial h_t}", "backward",
      check=lambda m: steps(m, lambda t: (sp(m, t) * m.g("h", t), m.g("z", t)))),
    R(r"\sigma'(z_t) = h_t \odot (1 - h_t)", "backward", why="the sigmoid's derivative written with its output",
      check=lambda m: steps(m, lambda t: (m("h", t) * (1 - m("h", t)), sp(m, t)))),
    R(r"\frac{\partial J}{\partial W_{hh}} = \sum_{t=1}^{T} \frac{\partial J}{\partial z_t} h_{t-1}^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("z", t), m("h", t - 1))), m.gp("W_hh"))]),
    R(r"\frac{\partial J}{\partial W_{xh}} = \sum_{t=1}^{T} \frac{\partial J}{\partial z_t} x_t^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("z", t), m.data["x"][t - 1])), m.gp("W_xh"))]),
    R(r"\frac{\partial J}{\partial b_h} = \sum_{t=1}^{T} \frac{\partial J}{\partial z_t}", "backward",
      check=lambda m: [(S(m, lambda t: m.g("z", t)), m.gp("b_h"))]),
    R(r"\frac{\partial J}{\partial W_{hy}} = \sum_{t=1}^{T} \frac{\partial J}{\partial o_t} h_t^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("o", t), m("h", t))), m.gp("W_hy"))]),
    R(r"\frac{\partial J}{\partial b_y} = \sum_{t=1}^{T} \frac{\partial J}{\partial o_t}", "backward",
      check=lambda m: [(S(m, lambda t: m.g("o", t)), m.gp("b_y"))]),
]

CONFIGS = [dict(N=1, D=2, H=3, C=3, T=3, seed=0), dict(N=1, D=3, H=3, C=3, T=4, seed=1)]

if __name__ == "__main__":
    main(FILE, MODEL, MAP, RULES, build, CONFIGS)
