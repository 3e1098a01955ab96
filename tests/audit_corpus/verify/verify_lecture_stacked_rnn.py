"""lecture_stacked_rnn.tex: lecture handout, two-layer (stacked) tanh RNN, layer superscripts [l],
f'(a) primes, deltas at the pre-activations with delta_{T+1} = 0. No planted mistake."""
import numpy as np
from common import R, Model, main, softmax, onehot, randn, steps

FILE = "lecture_stacked_rnn.tex"
MODEL = ("Two-layer (stacked) tanh RNN, column convention, one sequence: a1_t = W1_x x_t + W1_h h1_{t-1} + b1, "
         "h1_t = tanh(a1_t), a2_t = W2_x h1_t + W2_h h2_{t-1} + b2, h2_t = tanh(a2_t), o_t = W_y h2_t + b_y, "
         "L = sum_t -log softmax(o_t)_{y_t}; h1_0 = h2_0 = 0.")
MAP = {
    "^{[\\ell]}, ^{[1]}, ^{[2]}": "layer index (not time, not a power)",
    "\\delta^{[\\ell]}_t": "dL/da^{[l]}_t, total derivative at the pre-activation of layer l, step t",
    "g_t": "dL/do_t",
    "f'(a)": "derivative of f = tanh at its argument",
    "e_{y_t}": "one-hot column of the target class y_t",
    "\\ell (in W6)": "the layer index (1 or 2), not the loss ell_t",
}


def forward(P, D, tap):
    h1 = tap("h1", 0, D["h10"])
    h2 = tap("h2", 0, D["h20"])
    out = {"L": 0.0}
    for t in range(1, D["T"] + 1):
        a1 = tap("a1", t, P["W1x"] @ D["x"][t - 1] + P["W1h"] @ h1 + P["b1"])
        h1 = tap("h1", t, np.tanh(a1))
        a2 = tap("a2", t, P["W2x"] @ h1 + P["W2h"] @ h2 + P["b2"])
        h2 = tap("h2", t, np.tanh(a2))
        o = tap("o", t, P["Wy"] @ h2 + P["by"])
        lt = -np.log(softmax(o)[D["y"][t - 1]])
        out["L"] = out["L"] + tap("l", t, lt)
    return out


def build(cfg):
    rng = np.random.default_rng(cfg["seed"])
    D_, H, C, T = cfg["D"], cfg["H"], cfg["C"], cfg["T"]
    H2 = H + 1    # the two layers have different widths, so a swapped layer would not even type-check
    P = dict(W1x=randn(rng, H, D_), W1h=randn(rng, H, H), b1=randn(rng, H), W2x=randn(rng, H2, H), W2h=randn(rng, H2, H2),
             b2=randn(rng, H2), Wy=randn(rng, C, H2), by=randn(rng, C))
    D = dict(T=T, x=randn(rng, T, D_, scale=1.0), y=rng.integers(0, C, T), h10=np.zeros(H), h20=np.zeros(H2))
    return Model(forward, P, D, cfg)


S = lambda m, f: sum(f(t) for t in range(1, m.T + 1))
fp = lambda a: 1 - np.tanh(a) ** 2

RULES = [
    R(r"f = \tanh", "forward", check=lambda m: steps(m, lambda t: (m("h1", t), np.tanh(m("a1", t))))),
    R(r"a^{[1]}_t &= W^{[1]}_x x_t + W^{[1]}_h h^{[1]}_{t-1} + b^{[1]}", "forward",
      check=lambda m: steps(m, lambda t: (m("a1", t), m.P["W1x"] @ m.data["x"][t - 1] + m.P["W1h"] @ m("h1", t - 1) + m.P["b1"]))),
    R(r"h^{[1]}_t &= f(a^{[1]}_t)", "forward", check=lambda m: steps(m, lambda t: (m("h1", t), np.tanh(m("a1", t))))),
    R(r"a^{[2]}_t &= W^{[2]}_x h^{[1]}_t + W^{[2]}_h h^{[2]}_{t-1} + b^{[2]}", "forward",
      check=lambda m: steps(m, lambda t: (m("a2", t), m.P["W2x"] @ m("h1", t) + m.P["W2h"] @ m("h2", t - 1) + m.P["b2"]))),
    R(r"h^{[2]}_t &= f(a^{[2]}_t)", "forward", check=lambda m: steps(m, lambda t: (m("h2", t), np.tanh(m("a2", t))))),
    R(r"o_t &= W_y h^{[2]}_t + b_y", "forward", check=lambda m: steps(m, lambda t: (m("o", t), m.P["Wy"] @ m("h2", t) + m.P["by"]))),
    R(r"\ell_t &= -\log \big(\operatorname{softmax}(o_t)\big)_{y_t}", "forward",
      check=lambda m: steps(m, lambda t: (m("l", t), -np.log(softmax(m("o", t))[m.data["y"][t - 1]])))),
    R(r"L = \sum_{t=1}^{T} \ell_t", "forward", check=lambda m: [(m.losses["L"], S(m, lambda t: m("l", t)))]),
    R(r"h^{[1]}_0 = h^{[2]}_0 = 0", "forward", check=lambda m: [(m("h1", 0), np.zeros(m.H)), (m("h2", 0), np.zeros(m.H + 1))]),
    R(r"\delta^{[\ell]}_t := \partial L / \partial a^{[\ell]}_t", "no claim", why="a definition of notation"),
    R(r"g_t := \partial L/\partial o_t", "no claim", why="a definition of notation"),
    R(r"f'(a) = 1 - f(a)^2", "backward", why="the tanh derivative written with the output",
      check=lambda m: steps(m, lambda t: (1 - np.tanh(m("a1", t)) ** 2, fp(m("a1", t))))),
    R(r"g_t &= \operatorname{softmax}(o_t) - e_{y_t}", "backward",
      check=lambda m: steps(m, lambda t: (softmax(m("o", t)) - onehot(m.data["y"][t - 1], m.C), m.g("o", t)))),
    R(r"\delta^{[2]}_t &= f'(a^{[2]}_t) \odot \Big( W_y^\top g_t + (W^{[2]}_h)^\top \delta^{[2]}_{t+1} \Big)", "backward",
      check=lambda m: steps(m, lambda t: (fp(m("a2", t)) * (m.P["Wy"].T @ m.g("o", t) + m.P["W2h"].T @ m.g0("a2", t + 1, m("a2", t))),
                                          m.g("a2", t)))),
    R(r"\delta^{[1]}_t &= f'(a^{[1]}_t) \odot \Big( (W^{[2]}_x)^\top \delta^{[2]}_t + (W^{[1]}_h)^\top \delta^{[1]}_{t+1} \Big)", "backward",
      check=lambda m: steps(m, lambda t: (fp(m("a1", t)) * (m.P["W2x"].T @ m.g("a2", t) + m.P["W1h"].T @ m.g0("a1", t + 1, m("a1", t))),
                                          m.g("a1", t)))),
    R(r"\delta^{[1]}_{T+1} &= \delta^{[2]}_{T+1} = 0", "backward", why="boundary convention; checked as the two recurrences at t = T with it",
      check=lambda m: [(fp(m("a2", m.T)) * (m.P["Wy"].T @ m.g("o", m.T) + m.P["W2h"].T @ np.zeros(m.H + 1)), m.g("a2", m.T)),
                       (fp(m("a1", m.T)) * (m.P["W2x"].T @ m.g("a2", m.T) + m.P["W1h"].T @ np.zeros(m.H)), m.g("a1", m.T))]),
    R(r"t = T, \dots, 1", "no claim", why="the range of t"),
    R(r"\frac{\partial L}{\partial W_y} &= \sum_{t=1}^{T} g_t \, (h^{[2]}_t)^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("o", t), m("h2", t))), m.gp("Wy"))]),
    R(r"\frac{\partial L}{\partial W^{[2]}_x} &= \sum_{t=1}^{T} \delta^{[2]}_t \, (h^{[1]}_t)^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("a2", t), m("h1", t))), m.gp("W2x"))]),
    R(r"\frac{\partial L}{\partial W^{[2]}_h} &= \sum_{t=1}^{T} \delta^{[2]}_t \, (h^{[2]}_{t-1})^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("a2", t), m("h2", t - 1))), m.gp("W2h"))]),
    R(r"\frac{\partial L}{\partial W^{[1]}_x} &= \sum_{t=1}^{T} \delta^{[1]}_t \, x_t^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("a1", t), m.data["x"][t - 1])), m.gp("W1x"))]),
    R(r"\frac{\partial L}{\partial W^{[1]}_h} &= \sum_{t=1}^{T} \delta^{[1]}_t \, (h^{[1]}_{t-1})^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("a1", t), m("h1", t - 1))), m.gp("W1h"))]),
    R(r"\frac{\partial L}{\partial b^{[\ell]}} &= \sum_{t=1}^{T} \delta^{[\ell]}_t", "backward", why="for both layers l = 1, 2",
      check=lambda m: [(S(m, lambda t: m.g("a1", t)), m.gp("b1")), (S(m, lambda t: m.g("a2", t)), m.gp("b2"))]),
    R(r"\ell = 1, 2", "no claim", why="the range of the layer index"),
]

CONFIGS = [dict(N=1, D=2, H=3, C=3, T=3, seed=0), dict(N=1, D=3, H=3, C=3, T=4, seed=1)]

if __name__ == "__main__":
    main(FILE, MODEL, MAP, RULES, build, CONFIGS)
