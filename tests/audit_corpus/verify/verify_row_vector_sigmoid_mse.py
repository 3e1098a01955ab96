"""row_vector_sigmoid_mse.md: a blog post in the row-vector convention (a vector is a 1 x n row,
weights multiply on the right), one sequence, sigmoid hidden layer, linear head, squared error
averaged over the steps, a learned h_0, \\nabla_v L as a row, a bullet list. No planted
mistake (one sequence: the bias gradients need no sum over examples)."""
import numpy as np
from common import R, Model, main, sigmoid, randn, steps

FILE = "row_vector_sigmoid_mse.md"
MODEL = ("sigmoid RNN, row convention, one sequence (1 x n rows): z_t = x_t W_xh + h_{t-1} W_hh + b_h, "
         "h_t = sigmoid(z_t), yhat_t = h_t W_hy + b_y, L = 1/(2T) sum_t ||yhat_t - y_t||^2; h_0 a parameter.")
MAP = {"\\nabla_v L": "dL/dv, a row of v's shape", "\\nabla_{z_{T+1}} L": "zero (no step T+1)"}


def forward(P, D, tap):
    h = tap("h", 0, D["h0"])
    out = {"L": 0.0}
    T = D["T"]
    for t in range(1, T + 1):
        z = tap("z", t, D["x"][t - 1] @ P["Wxh"] + h @ P["Whh"] + P["bh"])
        h = tap("h", t, sigmoid(z))
        yh = tap("yhat", t, h @ P["Why"] + P["by"])
        out["L"] = out["L"] + np.sum((yh - D["y"][t - 1]) ** 2) / (2 * T)
    return out


def build(cfg):
    rng = np.random.default_rng(cfg["seed"])
    D_, H, K, T = cfg["D"], cfg["H"], cfg["C"], cfg["T"]
    P = dict(Wxh=randn(rng, D_, H), Whh=randn(rng, H, H, scale=0.9), bh=randn(rng, 1, H), Why=randn(rng, H, K), by=randn(rng, 1, K))
    D = dict(T=T, x=randn(rng, T, 1, D_, scale=1.0), y=randn(rng, T, 1, K, scale=1.0), h0=randn(rng, 1, H))
    return Model(forward, P, D, cfg)


S = lambda m, f: sum(f(t) for t in range(1, m.T + 1))
gz = lambda m, t: m.g0("z", t, m("z", m.T))

RULES = [
    R(r"z_t = x_t W_{xh} + h_{t-1} W_{hh} + b_h", "forward",
      check=lambda m: steps(m, lambda t: (m("z", t), m.data["x"][t - 1] @ m.P["Wxh"] + m("h", t - 1) @ m.P["Whh"] + m.P["bh"]))),
    R(r"h_t = \sigma(z_t)", "forward", check=lambda m: steps(m, lambda t: (m("h", t), sigmoid(m("z", t))))),
    R(r"\hat{y}_t = h_t W_{hy} + b_y", "forward", check=lambda m: steps(m, lambda t: (m("yhat", t), m("h", t) @ m.P["Why"] + m.P["by"]))),
    R(r"L = \frac{1}{2T} \sum_{t=1}^{T} \lVert \hat{y}_t - y_t \rVert^2", "forward",
      check=lambda m: [(m.losses["L"], S(m, lambda t: np.sum((m("yhat", t) - m.data["y"][t - 1]) ** 2)) / (2 * m.T))]),
    R(r"\nabla_{\hat{y}_t} L = \frac{1}{T}(\hat{y}_t - y_t)", "backward",
      check=lambda m: steps(m, lambda t: ((m("yhat", t) - m.data["y"][t - 1]) / m.T, m.g("yhat", t)))),
    R(r"\nabla_{z_{T+1}} L = 0", "backward", why="boundary convention; checked as the recursion at t = T",
      check=lambda m: [(m.g("yhat", m.T) @ m.P["Why"].T + np.zeros((1, m.H)) @ m.P["Whh"].T, m.g("h", m.T))]),
    R(r"\nabla_{h_t} L = \nabla_{\hat{y}_t} L \, W_{hy}^\top + \nabla_{z_{t+1}} L \, W_{hh}^\top", "backward",
      check=lambda m: steps(m, lambda t: (m.g("yhat", t) @ m.P["Why"].T + gz(m, t + 1) @ m.P["Whh"].T, m.g("h", t)))),
    R(r"\nabla_{z_t} L = \nabla_{h_t} L \odot h_t \odot (1 - h_t)", "backward",
      check=lambda m: steps(m, lambda t: (m.g("h", t) * m("h", t) * (1 - m("h", t)), m.g("z", t)))),
    R(r"\nabla_{W_{hh}} L = \sum_{t=1}^{T} h_{t-1}^\top \nabla_{z_t} L", "backward",
      check=lambda m: [(S(m, lambda t: m("h", t - 1).T @ m.g("z", t)), m.gp("Whh"))]),
    R(r"\nabla_{W_{xh}} L = \sum_{t=1}^{T} x_t^\top \nabla_{z_t} L", "backward",
      check=lambda m: [(S(m, lambda t: m.data["x"][t - 1].T @ m.g("z", t)), m.gp("Wxh"))]),
    R(r"\nabla_{b_h} L = \sum_{t=1}^{T} \nabla_{z_t} L", "backward", check=lambda m: [(S(m, lambda t: m.g("z", t)), m.gp("bh"))]),
    R(r"\nabla_{W_{hy}} L = \sum_{t=1}^{T} h_t^\top \nabla_{\hat{y}_t} L", "backward",
      check=lambda m: [(S(m, lambda t: m("h", t).T @ m.g("yhat", t)), m.gp("Why"))]),
    R(r"\nabla_{b_y} L = \frac{1}{T} \sum_{t=1}^{T} (\hat{y}_t - y_t)", "backward",
      check=lambda m: [(S(m, lambda t: m("yhat", t) - m.data["y"][t - 1]) / m.T, m.gp("by"))]),
    R(r"\nabla_{h_0} L = \nabla_{z_1} L \, W_{hh}^\top", "backward", check=lambda m: [(m.g("z", 1) @ m.P["Whh"].T, m.gd("h0"))]),
]

CONFIGS = [dict(N=1, D=2, H=3, C=2, T=3, seed=0), dict(N=1, D=3, H=3, C=3, T=4, seed=1)]

if __name__ == "__main__":
    main(FILE, MODEL, MAP, RULES, build, CONFIGS)
