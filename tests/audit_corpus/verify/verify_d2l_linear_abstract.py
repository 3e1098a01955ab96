"""d2l_linear_abstract.md: d2l.ai-style section, linear hidden layer, abstract loss ell(o_t, y_t)
averaged over T, prod(.,.) notation, :eqlabel: lines. No planted mistake.
The abstract loss is checked with two instances: squared error and softmax cross-entropy."""
import numpy as np
from numpy.linalg import matrix_power
from common import R, Model, main, softmax, onehot, randn, steps

FILE = "d2l_linear_abstract.md"
MODEL = ("Linear RNN without biases, column convention, one sequence: h_t = W_hx x_t + W_hh h_{t-1}, o_t = W_qh h_t, "
         "L = (1/T) sum_t ell(o_t, y_t) with an abstract per-step loss ell (kept symbolic as d ell/d o_t); "
         "h_0 is a given initial state.")
MAP = {
    "\\text{prod}(\\cdot, \\cdot)": "product of two derivatives after whatever transposition/swapping makes the shapes match",
    "\\frac{\\partial \\ell(\\mathbf{o}_t, y_t)}{\\partial \\mathbf{o}_t}": "the gradient of the per-step loss w.r.t. its first argument (symbolic)",
    "h, d, q (in R^{h x d} etc.)": "hidden, input and output sizes",
}


def ell(o, y, kind):
    if kind == "mse":
        return 0.5 * np.sum((o - y) ** 2)
    return -np.log(softmax(o)[int(y)])


def dell(o, y, kind):
    if kind == "mse":
        return o - y
    return softmax(o) - onehot(int(y), o.size)


def forward(P, D, tap):
    h = tap("h", 0, D["h0"])
    T = D["T"]
    out = {"L": 0.0}
    for t in range(1, T + 1):
        h = tap("h", t, P["W_hx"] @ D["x"][t - 1] + P["W_hh"] @ h)
        o = tap("o", t, P["W_qh"] @ h)
        out["L"] = out["L"] + ell(o, D["y"][t - 1], D["loss"]) / T
    return out


def build(cfg):
    rng = np.random.default_rng(cfg["seed"])
    D_, H, C, T = cfg["D"], cfg["H"], cfg["C"], cfg["T"]
    P = dict(W_hx=randn(rng, H, D_), W_hh=randn(rng, H, H, scale=0.8), W_qh=randn(rng, C, H))
    y = randn(rng, T, C) if cfg["loss"] == "mse" else rng.integers(0, C, T)
    D = dict(T=T, x=randn(rng, T, D_, scale=1.0), y=y, h0=randn(rng, H), loss=cfg["loss"])
    return Model(forward, P, D, cfg)


S = lambda m, f: sum(f(t) for t in range(1, m.T + 1))
dl = lambda m, t: dell(m("o", t), m.data["y"][t - 1], m.data["loss"])

RULES = [
    R(r"\mathbf{h}_t &= \mathbf{W}_{hx} \mathbf{x}_t + \mathbf{W}_{hh} \mathbf{h}_{t-1}", "forward",
      check=lambda m: steps(m, lambda t: (m("h", t), m.P["W_hx"] @ m.data["x"][t - 1] + m.P["W_hh"] @ m("h", t - 1)))),
    R(r"\mathbf{o}_t &= \mathbf{W}_{qh} \mathbf{h}_{t}", "forward",
      check=lambda m: steps(m, lambda t: (m("o", t), m.P["W_qh"] @ m("h", t)))),
    R(r":eqlabel:`eq_bptt_linear_forward`", "no claim", why="an equation label"),
    R(r"L = \frac{1}{T} \sum_{t=1}^T \ell(\mathbf{o}_t, y_t)", "forward",
      check=lambda m: [(m.losses["L"], S(m, lambda t: ell(m("o", t), m.data["y"][t - 1], m.data["loss"])) / m.T)]),
    R(r"\frac{\partial L}{\partial \mathbf{o}_t} = \frac{1}{T} \frac{\partial \ell(\mathbf{o}_t, y_t)}{\partial \mathbf{o}_t} \in \mathbb{R}^q", "backward",
      check=lambda m: steps(m, lambda t: (dl(m, t) / m.T, m.g("o", t)))),
    R(r"\frac{\partial L}{\partial \mathbf{W}_{qh}} = \sum_{t=1}^T \text{prod}\left(\frac{\partial L}{\partial \mathbf{o}_t}, \frac{\partial \mathbf{o}_t}{\partial \mathbf{W}_{qh}}\right) = \sum_{t=1}^T \frac{\partial L}{\partial \mathbf{o}_t} \mathbf{h}_t^\top",
      "backward", check=lambda m: [(S(m, lambda t: np.outer(m.g("o", t), m("h", t))), m.gp("W_qh"))] * 2),
    R(r"\frac{\partial L}{\partial \mathbf{h}_T} = \text{prod}\left(\frac{\partial L}{\partial \mathbf{o}_T}, \frac{\partial \mathbf{o}_T}{\partial \mathbf{h}_T}\right) = \mathbf{W}_{qh}^\top \frac{\partial L}{\partial \mathbf{o}_T}",
      "backward", check=lambda m: [(m.g("o", m.T) @ m.P["W_qh"], m.g("h", m.T)), (m.P["W_qh"].T @ m.g("o", m.T), m.g("h", m.T))]),
    R(r"\frac{\partial L}{\partial \mathbf{h}_t} = \text{prod}\left(\frac{\partial L}{\partial \mathbf{h}_{t+1}}, \frac{\partial \mathbf{h}_{t+1}}{\partial \mathbf{h}_t}\right) + \text{prod}\left(\frac{\partial L}{\partial \mathbf{o}_t}, \frac{\partial \mathbf{o}_t}{\partial \mathbf{h}_t}\right) = \mathbf{W}_{hh}^\top \frac{\partial L}{\partial \mathbf{h}_{t+1}} + \mathbf{W}_{qh}^\top \frac{\partial L}{\partial \mathbf{o}_t}",
      "backward", check=lambda m: steps(m, lambda t: (m.P["W_hh"].T @ m.g("h", t + 1) + m.P["W_qh"].T @ m.g("o", t), m.g("h", t)),
                                        range(1, m.T))),
    R(r":eqlabel:`eq_bptt_linear_recur`", "no claim", why="an equation label"),
    R(r"1 \leq t \leq T", "no claim", why="the range of t"),
    R(r"\frac{\partial L}{\partial \mathbf{h}_t} = \sum_{i=t}^{T} \left(\mathbf{W}_{hh}^\top\right)^{i-t} \mathbf{W}_{qh}^\top \frac{\partial L}{\partial \mathbf{o}_i}",
      "backward", check=lambda m: steps(m, lambda t: (sum(matrix_power(m.P["W_hh"].T, i - t) @ m.P["W_qh"].T @ m.g("o", i)
                                                          for i in range(t, m.T + 1)), m.g("h", t)))),
    R(r":eqlabel:`eq_bptt_linear_closed`", "no claim", why="an equation label"),
    R(r"\frac{\partial L}{\partial \mathbf{W}_{hx}} &= \sum_{t=1}^T \text{prod}\left(\frac{\partial L}{\partial \mathbf{h}_t}, \frac{\partial \mathbf{h}_t}{\partial \mathbf{W}_{hx}}\right) = \sum_{t=1}^T \frac{\partial L}{\partial \mathbf{h}_t} \mathbf{x}_t^\top",
      "backward", check=lambda m: [(S(m, lambda t: np.outer(m.g("h", t), m.data["x"][t - 1])), m.gp("W_hx"))]),
    R(r"\frac{\partial L}{\partial \mathbf{W}_{hh}} &= \sum_{t=1}^T \text{prod}\left(\frac{\partial L}{\partial \mathbf{h}_t}, \frac{\partial \mathbf{h}_t}{\partial \mathbf{W}_{hh}}\right) = \sum_{t=1}^T \frac{\partial L}{\partial \mathbf{h}_t} \mathbf{h}_{t-1}^\top",
      "backward", check=lambda m: [(S(m, lambda t: np.outer(m.g("h", t), m("h", t - 1))), m.gp("W_hh"))]),
    R(r"\mathbf{h}_t = \tanh(\mathbf{W}_{hx} \mathbf{x}_t + \mathbf{W}_{hh} \mathbf{h}_{t-1})", "no claim",
      why="an exercise about another model, not part of this one"),
]

CONFIGS = [dict(N=1, D=2, H=3, C=3, T=3, seed=0, loss="mse"), dict(N=1, D=3, H=3, C=3, T=4, seed=1, loss="ce")]

if __name__ == "__main__":
    main(FILE, MODEL, MAP, RULES, build, CONFIGS)
