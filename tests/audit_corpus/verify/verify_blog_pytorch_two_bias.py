"""blog_pytorch_two_bias.md: blog post on nn.RNN, row convention (batch rows), weights used
transposed (x W_ih^T), two biases b_ih + b_hh, f'(a_t), squared-error head, loss \\mathcal{L}.
No planted mistake (the untransposed W_hh in dL/dh_t is right for this layout)."""
import numpy as np
from common import R, Model, main, randn, steps

FILE = "blog_pytorch_two_bias.md"
MODEL = ("PyTorch-style tanh RNN with two biases, row convention (minibatch of N rows): "
         "a_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh, h_t = tanh(a_t), yhat_t = h_t W_ho^T + b_ho, "
         "L = 1/2 sum_t ||yhat_t - y_t||_F^2; W_ih is H x D, W_hh is H x H, W_ho is K x H; h_0 (hx) is a given input.")
MAP = {
    "f": "the nonlinearity, tanh",
    "f'(a_t)": "the derivative of f at its argument a_t (= 1 - h_t^2)",
    "(\\cdot)_{n,:}": "row n",
    "y_t": "the regression targets (N x K)",
}


def forward(P, D, tap):
    h = tap("h", 0, D["h0"])
    out = {"L": 0.0}
    for t in range(1, D["T"] + 1):
        a = tap("a", t, D["x"][t - 1] @ P["W_ih"].T + P["b_ih"] + h @ P["W_hh"].T + P["b_hh"])
        h = tap("h", t, np.tanh(a))
        yh = tap("yhat", t, h @ P["W_ho"].T + P["b_ho"])
        out["L"] = out["L"] + 0.5 * np.sum((yh - D["y"][t - 1]) ** 2)
    return out


def build(cfg):
    rng = np.random.default_rng(cfg["seed"])
    N, D_, H, C, T = cfg["N"], cfg["D"], cfg["H"], cfg["C"], cfg["T"]
    P = dict(W_ih=randn(rng, H, D_), W_hh=randn(rng, H, H), b_ih=randn(rng, H), b_hh=randn(rng, H),
             W_ho=randn(rng, C, H), b_ho=randn(rng, C))
    D = dict(T=T, x=randn(rng, T, N, D_, scale=1.0), y=randn(rng, T, N, C, scale=1.0), h0=randn(rng, N, H))
    return Model(forward, P, D, cfg)


S = lambda m, f: sum(f(t) for t in range(1, m.T + 1))

RULES = [
    R(r"a_t = x_t W_{ih}^\top + b_{ih} + h_{t-1} W_{hh}^\top + b_{hh}", "forward",
      check=lambda m: steps(m, lambda t: (m("a", t), m.data["x"][t - 1] @ m.P["W_ih"].T + m.P["b_ih"] + m("h", t - 1) @ m.P["W_hh"].T + m.P["b_hh"]))),
    R(r"h_t = f(a_t)", "forward", check=lambda m: steps(m, lambda t: (m("h", t), np.tanh(m("a", t))))),
    R(r"\hat y_t = h_t W_{ho}^\top + b_{ho}", "forward",
      check=lambda m: steps(m, lambda t: (m("yhat", t), m("h", t) @ m.P["W_ho"].T + m.P["b_ho"]))),
    R(r"\mathcal{L} = \frac{1}{2} \sum_{t=1}^{T} \left\| \hat y_t - y_t \right\|_F^2", "forward",
      check=lambda m: [(m.losses["L"], 0.5 * S(m, lambda t: np.sum((m("yhat", t) - m.data["y"][t - 1]) ** 2)))]),
    R(r"\frac{\partial \mathcal{L}}{\partial \hat y_t} = \hat y_t - y_t", "backward",
      check=lambda m: steps(m, lambda t: (m("yhat", t) - m.data["y"][t - 1], m.g("yhat", t)))),
    R(r"\frac{\partial \mathcal{L}}{\partial W_{ho}} = \sum_{t=1}^{T} \left(\frac{\partial \mathcal{L}}{\partial \hat y_t}\right)^\top h_t", "backward",
      check=lambda m: [(S(m, lambda t: m.g("yhat", t).T @ m("h", t)), m.gp("W_ho"))]),
    R(r"\frac{\partial \mathcal{L}}{\partial h_t} = \frac{\partial \mathcal{L}}{\partial \hat y_t} W_{ho} + \frac{\partial \mathcal{L}}{\partial a_{t+1}} W_{hh}", "backward",
      why="right: the forward pass uses W_hh^T, so the backward pass uses W_hh; the step-T+1 term is zero as the text says",
      check=lambda m: steps(m, lambda t: (m.g("yhat", t) @ m.P["W_ho"] + m.g0("a", t + 1, m("a", t)) @ m.P["W_hh"], m.g("h", t)))),
    R(r"f'(a_t) = 1 - h_t^2", "backward", why="the tanh derivative written with the output",
      check=lambda m: steps(m, lambda t: (1 - m("h", t) ** 2, 1 - np.tanh(m("a", t)) ** 2))),
    R(r"\frac{\partial \mathcal{L}}{\partial a_t} = \frac{\partial \mathcal{L}}{\partial h_t} \odot f'(a_t)", "backward",
      check=lambda m: steps(m, lambda t: (m.g("h", t) * (1 - np.tanh(m("a", t)) ** 2), m.g("a", t)))),
    R(r"\frac{\partial \mathcal{L}}{\partial W_{ih}} = \sum_{t=1}^{T} \left(\frac{\partial \mathcal{L}}{\partial a_t}\right)^\top x_t", "backward",
      check=lambda m: [(S(m, lambda t: m.g("a", t).T @ m.data["x"][t - 1]), m.gp("W_ih"))]),
    R(r"\frac{\partial \mathcal{L}}{\partial W_{hh}} = \sum_{t=1}^{T} \left(\frac{\partial \mathcal{L}}{\partial a_t}\right)^\top h_{t-1}", "backward",
      check=lambda m: [(S(m, lambda t: m.g("a", t).T @ m("h", t - 1)), m.gp("W_hh"))]),
    R(r"\frac{\partial \mathcal{L}}{\partial b_{ih}} = \frac{\partial \mathcal{L}}{\partial b_{hh}} = \sum_{t=1}^{T} \sum_{n=1}^{N} \left(\frac{\partial \mathcal{L}}{\partial a_t}\right)_{n,:}", "backward",
      check=lambda m: [(m.gp("b_ih"), m.gp("b_hh")), (S(m, lambda t: m.g("a", t).sum(axis=0)), m.gp("b_hh"))]),
    R(r"\frac{\partial \mathcal{L}}{\partial h_0} = \frac{\partial \mathcal{L}}{\partial a_1} W_{hh}", "backward",
      check=lambda m: [(m.g("a", 1) @ m.P["W_hh"], m.g("h", 0))]),
]

CONFIGS = [dict(N=2, D=2, H=3, C=3, T=3, seed=0), dict(N=1, D=3, H=3, C=3, T=4, seed=1)]

if __name__ == "__main__":
    main(FILE, MODEL, MAP, RULES, build, CONFIGS)
