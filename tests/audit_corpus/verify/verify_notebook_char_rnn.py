"""notebook_char_rnn.ipynb: Jupyter notebook (markdown cells hold the math, code cells are
ignored), min-char-rnn style, loss \\mathcal{L}, y_t = logits, the author's dh_{next}.
Planted: the tanh derivative written on the pre-activation, 1 - a_t^2 (the code cell has it
right, the markdown does not)."""
import numpy as np
from common import R, Model, main, softmax, onehot, randn, steps

FILE = "notebook_char_rnn.ipynb"
MODEL = ("Vanilla tanh RNN, column convention, one sequence of one-hot characters: "
         "a_t = W_xh x_t + W_hh h_{t-1} + b_h, h_t = tanh(a_t), y_t = W_hy h_t + b_y (logits), p_t = softmax(y_t), "
         "L = -sum_t log p_t[target_t]; h_0 is a given state carried over from the previous chunk.")
MAP = {
    "y_t": "the logits (unnormalized log-probabilities), not the targets",
    "\\mathbb{1}[\\text{target}_t]": "the one-hot column of the target character at step t",
    "dh_{next}": "at step t: the part of dL/dh_t that comes back from step t+1 (through a_{t+1}); zero at t = T",
}


def forward(P, D, tap):
    h = tap("h", 0, D["h0"])
    out = {"L": 0.0}
    for t in range(1, D["T"] + 1):
        hp = tap("h_use", t, h)
        a = tap("a", t, P["W_xh"] @ D["x"][t - 1] + P["W_hh"] @ hp + P["b_h"])
        h = tap("h", t, np.tanh(a))
        y = tap("y", t, P["W_hy"] @ h + P["b_y"])
        p = tap("p", t, softmax(y))
        out["L"] = out["L"] - np.log(p[D["target"][t - 1]])
    return out


def build(cfg):
    rng = np.random.default_rng(cfg["seed"])
    D_, H, C, T = cfg["D"], cfg["H"], cfg["C"], cfg["T"]
    P = dict(W_xh=randn(rng, H, D_, scale=1.0), W_hh=randn(rng, H, H), b_h=randn(rng, H), W_hy=randn(rng, C, H), b_y=randn(rng, C))
    D = dict(T=T, x=np.stack([onehot(i, D_) for i in rng.integers(0, D_, T)]), target=rng.integers(0, C, T), h0=randn(rng, H))
    return Model(forward, P, D, cfg)


S = lambda m, f: sum(f(t) for t in range(1, m.T + 1))
dh_next = lambda m, t: m.g0("h_use", t + 1, m("h", t))

RULES = [
    R(r"t = 1, \dots, T", "no claim", why="the range of t"),
    R(r"a_t = W_{xh} x_t + W_{hh} h_{t-1} + b_h", "forward",
      check=lambda m: steps(m, lambda t: (m("a", t), m.P["W_xh"] @ m.data["x"][t - 1] + m.P["W_hh"] @ m("h", t - 1) + m.P["b_h"]))),
    R(r"h_t = \tanh(a_t)", "forward", check=lambda m: steps(m, lambda t: (m("h", t), np.tanh(m("a", t))))),
    R(r"y_t = W_{hy} h_t + b_y", "forward", check=lambda m: steps(m, lambda t: (m("y", t), m.P["W_hy"] @ m("h", t) + m.P["b_y"]))),
    R(r"p_t = \mathrm{softmax}(y_t)", "forward", check=lambda m: steps(m, lambda t: (m("p", t), softmax(m("y", t))))),
    R(r"\mathcal{L} = -\sum_{t=1}^{T} \log p_t[\text{target}_t]", "forward",
      check=lambda m: [(m.losses["L"], -S(m, lambda t: np.log(m("p", t)[m.data["target"][t - 1]])))]),
    R(r"\frac{\partial \mathcal{L}}{\partial y_t} = p_t - \mathbb{1}[\text{target}_t]", "backward",
      check=lambda m: steps(m, lambda t: (m("p", t) - onehot(m.data["target"][t - 1], m.C), m.g("y", t)))),
    R(r"\frac{\partial \mathcal{L}}{\partial h_t} = W_{hy}^\top \frac{\partial \mathcal{L}}{\partial y_t} + dh_{next}", "backward",
      check=lambda m: steps(m, lambda t: (m.P["W_hy"].T @ m.g("y", t) + dh_next(m, t), m.g("h", t)))),
    R(r"dh_{next} = W_{hh}^\top \frac{\partial \mathcal{L}}{\partial a_{t+1}}", "backward",
      why="inline in prose; zero at t = T as the text says",
      check=lambda m: steps(m, lambda t: (m.P["W_hh"].T @ m.g0("a", t + 1, m("a", t)), dh_next(m, t)))),
    R(r"\frac{\partial \mathcal{L}}{\partial a_t} = \frac{\partial \mathcal{L}}{\partial h_t} \odot (1 - a_t^2)", "backward", "wrong",
      why="the tanh derivative is 1 - h_t^2 = 1 - tanh(a_t)^2, written with the output; 1 - a_t^2 evaluates it on the pre-activation",
      check=lambda m: steps(m, lambda t: (m.g("h", t) * (1 - m("a", t) ** 2), m.g("a", t)))),
    R(r"\frac{\partial \mathcal{L}}{\partial W_{hh}} = \sum_t \frac{\partial \mathcal{L}}{\partial a_t} h_{t-1}^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("a", t), m("h", t - 1))), m.gp("W_hh"))]),
    R(r"\frac{\partial \mathcal{L}}{\partial W_{xh}} = \sum_t \frac{\partial \mathcal{L}}{\partial a_t} x_t^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("a", t), m.data["x"][t - 1])), m.gp("W_xh"))]),
    R(r"\frac{\partial \mathcal{L}}{\partial b_h} = \sum_t \frac{\partial \mathcal{L}}{\partial a_t}", "backward",
      check=lambda m: [(S(m, lambda t: m.g("a", t)), m.gp("b_h"))]),
    R(r"\frac{\partial \mathcal{L}}{\partial W_{hy}} = \sum_t \frac{\partial \mathcal{L}}{\partial y_t} h_t^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("y", t), m("h", t))), m.gp("W_hy"))]),
    R(r"\frac{\partial \mathcal{L}}{\partial b_y} = \sum_t \frac{\partial \mathcal{L}}{\partial y_t}", "backward",
      check=lambda m: [(S(m, lambda t: m.g("y", t)), m.gp("b_y"))]),
    R(r"\frac{\partial \mathcal{L}}{\partial h_0} = W_{hh}^\top \frac{\partial \mathcal{L}}{\partial a_1}", "backward",
      check=lambda m: [(m.P["W_hh"].T @ m.g("a", 1), m.g("h", 0))]),
]

CONFIGS = [dict(N=1, D=2, H=3, C=3, T=3, seed=0), dict(N=1, D=3, H=3, C=3, T=4, seed=1)]

if __name__ == "__main__":
    main(FILE, MODEL, MAP, RULES, build, CONFIGS)
