"""cheatsheet_rnn.md: a cheat sheet whose backward rules are rows of a Markdown table
(left cell = gradient, middle cell = formula, right cell = shape; no '=' on the line), row
convention, loss averaged over the batch (1/N), dv notation. No planted mistake."""
import numpy as np
from common import R, Model, main, softmax, onehot, randn, steps

FILE = "cheatsheet_rnn.md"
MODEL = ("Vanilla tanh RNN in the row convention (minibatch of N rows): a_t = x_t W_x + h_{t-1} W_h + b, h_t = tanh(a_t), "
         "s_t = h_t W_o + b_o, P_t = softmax(s_t) per row, L = -(1/N) sum_t sum_n log P_t[n, y_t[n]]; h_0 is a given input.")
MAP = {
    "table row | X | F | S |": "the claim X = F (S is the shape of both)",
    "dv": "dL/dv, total derivative, same shape as v",
    "Y_t": "one-hot rows of the labels",
    "(\\cdot)_{n,:}": "row n",
}


def forward(P, D, tap):
    N = D["h0"].shape[0]
    h = tap("h", 0, D["h0"])
    out = {"L": 0.0}
    for t in range(1, D["T"] + 1):
        a = tap("a", t, D["x"][t - 1] @ P["W_x"] + h @ P["W_h"] + P["b"])
        h = tap("h", t, np.tanh(a))
        s = tap("s", t, h @ P["W_o"] + P["b_o"])
        Pt = tap("P", t, softmax(s))
        out["L"] = out["L"] - np.log(Pt[np.arange(N), D["y"][t - 1]]).sum() / N
    return out


def build(cfg):
    rng = np.random.default_rng(cfg["seed"])
    N, D_, H, C, T = cfg["N"], cfg["D"], cfg["H"], cfg["C"], cfg["T"]
    P = dict(W_x=randn(rng, D_, H), W_h=randn(rng, H, H), b=randn(rng, H), W_o=randn(rng, H, C), b_o=randn(rng, C))
    D = dict(T=T, x=randn(rng, T, N, D_, scale=1.0), y=rng.integers(0, C, (T, N)), h0=randn(rng, N, H))
    return Model(forward, P, D, cfg)


S = lambda m, f: sum(f(t) for t in range(1, m.T + 1))

RULES = [
    R(r"a_t = x_t W_x + h_{t-1} W_h + b", "forward",
      check=lambda m: steps(m, lambda t: (m("a", t), m.data["x"][t - 1] @ m.P["W_x"] + m("h", t - 1) @ m.P["W_h"] + m.P["b"]))),
    R(r"h_t = \tanh(a_t)", "forward", check=lambda m: steps(m, lambda t: (m("h", t), np.tanh(m("a", t))))),
    R(r"s_t = h_t W_o + b_o", "forward", check=lambda m: steps(m, lambda t: (m("s", t), m("h", t) @ m.P["W_o"] + m.P["b_o"]))),
    R(r"P_t = \mathrm{softmax}(s_t)", "forward", check=lambda m: steps(m, lambda t: (m("P", t), softmax(m("s", t))))),
    R(r"L = -\frac{1}{N} \sum_{t=1}^{T} \sum_{n=1}^{N} \log P_t[n, y_t[n]]", "forward",
      check=lambda m: [(m.losses["L"], -S(m, lambda t: np.log(m("P", t)[np.arange(m.N), m.data["y"][t - 1]]).sum()) / m.N)]),
    R(r"d a_{T+1} = 0", "backward", nth=1, why="boundary convention; checked as the dh_t row at t = T",
      check=lambda m: [(m.g("s", m.T) @ m.P["W_o"].T + np.zeros_like(m("a", m.T)) @ m.P["W_h"].T, m.g("h", m.T))]),
    R(r"| $\partial L / \partial s_t$ | $\frac{1}{N}(P_t - Y_t)$ | $(N, C)$ |", "backward",
      check=lambda m: steps(m, lambda t: ((m("P", t) - onehot(m.data["y"][t - 1], m.C)) / m.N, m.g("s", t)))),
    R(r"| $d h_t$ | $\frac{\partial L}{\partial s_t} W_o^\top + d a_{t+1} W_h^\top$ | $(N, H)$ |", "backward",
      check=lambda m: steps(m, lambda t: (m.g("s", t) @ m.P["W_o"].T + m.g0("a", t + 1, m("a", t)) @ m.P["W_h"].T, m.g("h", t)))),
    R(r"| $d a_t$ | $(1 - h_t^2) \odot d h_t$ | $(N, H)$ |", "backward",
      check=lambda m: steps(m, lambda t: ((1 - m("h", t) ** 2) * m.g("h", t), m.g("a", t)))),
    R(r"| $\partial L / \partial W_x$ | $\sum_t x_t^\top \, d a_t$ | $(D, H)$ |", "backward",
      check=lambda m: [(S(m, lambda t: m.data["x"][t - 1].T @ m.g("a", t)), m.gp("W_x"))]),
    R(r"| $\partial L / \partial W_h$ | $\sum_t h_{t-1}^\top \, d a_t$ | $(H, H)$ |", "backward",
      check=lambda m: [(S(m, lambda t: m("h", t - 1).T @ m.g("a", t)), m.gp("W_h"))]),
    R(r"| $\partial L / \partial b$ | $\sum_t \sum_n (d a_t)_{n,:}$ | $(H,)$ |", "backward",
      check=lambda m: [(S(m, lambda t: m.g("a", t).sum(axis=0)), m.gp("b"))]),
    R(r"| $\partial L / \partial W_o$ | $\sum_t h_t^\top \frac{\partial L}{\partial s_t}$ | $(H, C)$ |", "backward",
      check=lambda m: [(S(m, lambda t: m("h", t).T @ m.g("s", t)), m.gp("W_o"))]),
    R(r"| $\partial L / \partial b_o$ | $\sum_t \sum_n \left(\frac{\partial L}{\partial s_t}\right)_{n,:}$ | $(C,)$ |", "backward",
      check=lambda m: [(S(m, lambda t: m.g("s", t).sum(axis=0)), m.gp("b_o"))]),
    R(r"| $\partial L / \partial h_0$ | $d a_1 W_h^\top$ | $(N, H)$ |", "backward",
      check=lambda m: [(m.g("a", 1) @ m.P["W_h"].T, m.g("h", 0))]),
    R(r"T = 1", "no claim", why="a remark about when a buggy gradient check would pass"),
]

CONFIGS = [dict(N=2, D=2, H=3, C=3, T=3, seed=0), dict(N=3, D=3, H=3, C=3, T=4, seed=1)]

if __name__ == "__main__":
    main(FILE, MODEL, MAP, RULES, build, CONFIGS)
