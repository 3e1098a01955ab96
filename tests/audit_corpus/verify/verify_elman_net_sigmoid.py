"""elman_net_sigmoid.tex: a textbook section (Haykin-like) on the Elman network: multi-letter
bold names (\\mathbf{net}_h(t)), time in parentheses, local gradients, the same rule neuron by
neuron in index notation, an update rule. Sigmoid hidden layer, linear output, summed squared
error, column vectors, h(0) = 0. No planted mistake."""
import numpy as np
from common import R, Model, main, sigmoid, randn, steps

FILE = "elman_net_sigmoid.tex"
MODEL = ("Elman network, column convention, one sequence: net_h(t) = W_ih x(t) + W_hh h(t-1) + b_h, "
         "h(t) = sigmoid(net_h(t)), y(t) = W_ho h(t) + b_o, E = 1/2 sum_t ||d(t) - y(t)||^2; h(0) = 0.")
MAP = {
    "\\boldsymbol{\\delta}_o(t)": "dE/dy(t) (the output layer is linear)",
    "\\boldsymbol{\\delta}_h(t)": "dE/dnet_h(t)",
    "w^{ho}_{kj}, w^{hh}_{ij}": "(W_ho)_{kj}, (W_hh)_{ij}",
    "\\delta_{h,j}(t), h_j(t), \\delta_{o,k}(t)": "entry j of delta_h(t), of h(t); entry k of delta_o(t)",
}


def forward(P, D, tap):
    h = tap("h", 0, D["h0"])
    out = {"L": 0.0}
    for t in range(1, D["T"] + 1):
        net = tap("net", t, P["Wih"] @ D["x"][t - 1] + P["Whh"] @ h + P["bh"])
        h = tap("h", t, sigmoid(net))
        y = tap("y", t, P["Who"] @ h + P["bo"])
        out["L"] = out["L"] + 0.5 * np.sum((D["d"][t - 1] - y) ** 2)
    return out


def build(cfg):
    rng = np.random.default_rng(cfg["seed"])
    D_, H, O, T = cfg["D"], cfg["H"], cfg["C"], cfg["T"]
    P = dict(Wih=randn(rng, H, D_), Whh=randn(rng, H, H, scale=0.9), bh=randn(rng, H), Who=randn(rng, O, H), bo=randn(rng, O))
    D = dict(T=T, x=randn(rng, T, D_, scale=1.0), d=randn(rng, T, O, scale=1.0), h0=np.zeros(H))
    return Model(forward, P, D, cfg)


S = lambda m, f: sum(f(t) for t in range(1, m.T + 1))
do = lambda m, t: m("y", t) - m.data["d"][t - 1]
dh = lambda m, t: m.g0("net", t, m("net", m.T))


def by_neuron(m, t):
    h, Who, Whh = m("h", t), m.P["Who"], m.P["Whh"]
    return np.array([h[j] * (1 - h[j]) * (sum(Who[k, j] * do(m, t)[k] for k in range(Who.shape[0]))
                                           + sum(Whh[i, j] * dh(m, t + 1)[i] for i in range(m.H))) for j in range(m.H)])


RULES = [
    R(r"t = 1, 2, \dots, T", "no claim", why="a range"),
    R(r"\mathbf{net}_h(t) &= W_{ih}\, \mathbf{x}(t) + W_{hh}\, \mathbf{h}(t-1) + \mathbf{b}_h", "forward",
      check=lambda m: steps(m, lambda t: (m("net", t), m.P["Wih"] @ m.data["x"][t - 1] + m.P["Whh"] @ m("h", t - 1) + m.P["bh"]))),
    R(r"\mathbf{h}(t) &= \sigma\big(\mathbf{net}_h(t)\big)", "forward",
      check=lambda m: steps(m, lambda t: (m("h", t), sigmoid(m("net", t))))),
    R(r"\mathbf{y}(t) &= W_{ho}\, \mathbf{h}(t) + \mathbf{b}_o", "forward",
      check=lambda m: steps(m, lambda t: (m("y", t), m.P["Who"] @ m("h", t) + m.P["bo"]))),
    R(r"\sigma(v) = 1/(1 + e^{-v})", "no claim", why="defines the logistic function"),
    R(r"\mathbf{h}(0) = \mathbf{0}", "forward", check=lambda m: [(m("h", 0), np.zeros(m.H))]),
    R(r"E = \frac{1}{2} \sum_{t=1}^{T} \big\| \mathbf{d}(t) - \mathbf{y}(t) \big\|^2", "forward",
      check=lambda m: [(m.losses["L"], 0.5 * S(m, lambda t: np.sum((m.data["d"][t - 1] - m("y", t)) ** 2)))]),
    R(r"\boldsymbol{\delta}_o(t) = \frac{\partial E}{\partial \mathbf{y}(t)} = \mathbf{y}(t) - \mathbf{d}(t)", "backward",
      check=lambda m: steps(m, lambda t: (do(m, t), m.g("y", t)))),
    R(r"\boldsymbol{\delta}_h(t) &= \frac{\partial E}{\partial \mathbf{net}_h(t)}", "no claim",
      why="defines the hidden local gradient"),
    R(r"&= \sigma'\big(\mathbf{net}_h(t)\big) \odot \Big( W_{ho}^{\top} \boldsymbol{\delta}_o(t) + W_{hh}^{\top} \boldsymbol{\delta}_h(t+1) \Big)", "backward",
      check=lambda m: steps(m, lambda t: (m("h", t) * (1 - m("h", t)) * (m.P["Who"].T @ do(m, t) + m.P["Whh"].T @ dh(m, t + 1)), m.g("net", t)))),
    R(r"\sigma'\big(\mathbf{net}_h(t)\big) &= \mathbf{h}(t) \odot \big(\mathbf{1} - \mathbf{h}(t)\big)", "backward",
      check=lambda m: steps(m, lambda t: (sigmoid(m("net", t)) * (1 - sigmoid(m("net", t))), m("h", t) * (1 - m("h", t))))),
    R(r"\boldsymbol{\delta}_h(T+1) = \mathbf{0}", "backward", why="boundary convention; checked as (5.2) at t = T",
      check=lambda m: [(m("h", m.T) * (1 - m("h", m.T)) * (m.P["Who"].T @ do(m, m.T) + m.P["Whh"].T @ np.zeros(m.H)), m.g("net", m.T))]),
    R(r"\delta_{h,j}(t) = h_j(t)\big(1 - h_j(t)\big) \Big[ \sum_{k} w^{ho}_{kj}\, \delta_{o,k}(t) + \sum_{i} w^{hh}_{ij}\, \delta_{h,i}(t+1) \Big]", "backward",
      why="(5.2) neuron by neuron", check=lambda m: steps(m, lambda t: (by_neuron(m, t), m.g("net", t)))),
    R(r"\frac{\partial E}{\partial W_{ho}} &= \sum_{t=1}^{T} \boldsymbol{\delta}_o(t)\, \mathbf{h}(t)^{\top}", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(do(m, t), m("h", t))), m.gp("Who"))]),
    R(r"\frac{\partial E}{\partial \mathbf{b}_o} &= \sum_{t=1}^{T} \boldsymbol{\delta}_o(t)", "backward",
      check=lambda m: [(S(m, lambda t: do(m, t)), m.gp("bo"))]),
    R(r"\frac{\partial E}{\partial W_{hh}} &= \sum_{t=1}^{T} \boldsymbol{\delta}_h(t)\, \mathbf{h}(t-1)^{\top}", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("net", t), m("h", t - 1))), m.gp("Whh"))]),
    R(r"\frac{\partial E}{\partial W_{ih}} &= \sum_{t=1}^{T} \boldsymbol{\delta}_h(t)\, \mathbf{x}(t)^{\top}", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("net", t), m.data["x"][t - 1])), m.gp("Wih"))]),
    R(r"\frac{\partial E}{\partial \mathbf{b}_h} &= \sum_{t=1}^{T} \boldsymbol{\delta}_h(t)", "backward",
      check=lambda m: [(S(m, lambda t: m.g("net", t)), m.gp("bh"))]),
    R(r"W_{hh} \leftarrow W_{hh} - \eta\, \frac{\partial E}{\partial W_{hh}}", "no claim", why="an update rule"),
]

CONFIGS = [dict(N=1, D=2, H=3, C=2, T=3, seed=0), dict(N=1, D=3, H=3, C=3, T=4, seed=1)]

if __name__ == "__main__":
    main(FILE, MODEL, MAP, RULES, build, CONFIGS)
