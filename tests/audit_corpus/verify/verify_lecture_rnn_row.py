"""lecture_rnn_row.tex: vanilla tanh RNN, row convention, adjoint (overline) notation. No planted mistake."""
import numpy as np
from common import R, Model, main, softmax, onehot, randn, steps

FILE = "lecture_rnn_row.tex"
MODEL = ("Vanilla tanh RNN in the row convention (minibatch of N rows): a_t = b + h_{t-1} W_h + x_t W_x, "
         "h_t = tanh(a_t), o_t = c + h_t V, yhat_t = softmax(o_t) per row, L = cross-entropy summed over "
         "steps and rows; b and c are broadcast row biases; h_0 is a given input.")
MAP = {
    "\\overline{v}": "the total derivative dL/dv (adjoint), same shape as v",
    "Y_t": "the one-hot rows of the targets y_t (N x C)",
    "\\mathbf{1}_N": "the all-ones column of length N (1_N^T A sums the rows of A)",
}


def forward(P, D, tap):
    N = D["h0"].shape[0]
    h = tap("h", 0, D["h0"])
    L = 0.0
    for t in range(1, D["T"] + 1):
        x = tap("x", t, D["x"][t - 1])
        a = tap("a", t, P["b"] + h @ P["W_h"] + x @ P["W_x"])
        h = tap("h", t, np.tanh(a))
        o = tap("o", t, P["c"] + h @ P["V"])
        yh = tap("yhat", t, softmax(o))
        L = L - np.log(yh[np.arange(N), D["y"][t - 1]]).sum()
    return {"L": L}


def build(cfg):
    rng = np.random.default_rng(cfg["seed"])
    N, D_, H, C, T = cfg["N"], cfg["D"], cfg["H"], cfg["C"], cfg["T"]
    P = dict(W_h=randn(rng, H, H), W_x=randn(rng, D_, H), b=randn(rng, H), V=randn(rng, H, C), c=randn(rng, C))
    D = dict(T=T, x=randn(rng, T, N, D_, scale=1.0), y=rng.integers(0, C, (T, N)), h0=randn(rng, N, H))
    m = Model(forward, P, D, cfg)
    m.Y = lambda t: onehot(D["y"][t - 1], C)
    return m


P_ = lambda m: m.P
one = lambda m: np.ones(m.N)

RULES = [
    R(r"a_t &= b + h_{t-1} W_h + x_t W_x", "forward",
      check=lambda m: steps(m, lambda t: (m("a", t), m.P["b"] + m("h", t - 1) @ m.P["W_h"] + m("x", t) @ m.P["W_x"]))),
    R(r"h_t &= \tanh(a_t)", "forward", check=lambda m: steps(m, lambda t: (m("h", t), np.tanh(m("a", t))))),
    R(r"o_t &= c + h_t V", "forward", check=lambda m: steps(m, lambda t: (m("o", t), m.P["c"] + m("h", t) @ m.P["V"]))),
    R(r"\hat y_t &= \operatorname{softmax}(o_t)", "forward",
      check=lambda m: steps(m, lambda t: (m("yhat", t), softmax(m("o", t))))),
    R(r"L &= -\sum_{t=1}^{T}\sum_{i=1}^{N} \log \hat y_t[i, y_t[i]]", "forward",
      check=lambda m: [(m.losses["L"], -sum(np.log(m("yhat", t)[np.arange(m.N), m.data["y"][t - 1]]).sum()
                                            for t in range(1, m.T + 1)))]),
    R(r"\overline{o}_t &= \hat y_t - Y_t", "backward",
      check=lambda m: steps(m, lambda t: (m("yhat", t) - m.Y(t), m.g("o", t)))),
    R(r"\overline{h}_t &= \overline{o}_t V^\top + \overline{a}_{t+1} W_h^\top", "backward",
      check=lambda m: steps(m, lambda t: (m.g("o", t) @ m.P["V"].T + m.g0("a", t + 1, m("a", t)) @ m.P["W_h"].T,
                                          m.g("h", t)))),
    R(r"\overline{a}_{T+1} = 0", "backward",
      why="boundary convention (there is no step T+1); checked as (B2) at t = T with it",
      check=lambda m: [(m.g("o", m.T) @ m.P["V"].T + np.zeros_like(m("a", m.T)) @ m.P["W_h"].T, m.g("h", m.T))]),
    R(r"\overline{a}_t &= \overline{h}_t \odot (1 - h_t \odot h_t)", "backward",
      check=lambda m: steps(m, lambda t: (m.g("h", t) * (1 - m("h", t) * m("h", t)), m.g("a", t)))),
    R(r"\text{for } t = T, \dots, 1", "no claim"),
    R(r"h_t = \mathrm{ReLU}(a_t)", "no claim", why="an exercise about another model, not part of this one"),
    R(r"\intertext{The weights are shared by all steps, so their adjoints sum over $t$:}", "no claim"),
    R(r"\overline{W}_h &= \sum_{t=1}^{T} h_{t-1}^\top \, \overline{a}_t", "backward",
      check=lambda m: [(sum(m("h", t - 1).T @ m.g("a", t) for t in range(1, m.T + 1)), m.gp("W_h"))]),
    R(r"\overline{W}_x &= \sum_{t=1}^{T} x_t^\top \, \overline{a}_t", "backward",
      check=lambda m: [(sum(m("x", t).T @ m.g("a", t) for t in range(1, m.T + 1)), m.gp("W_x"))]),
    R(r"\overline{b} &= \sum_{t=1}^{T} \mathbf{1}_N^\top \overline{a}_t", "backward",
      check=lambda m: [(sum(one(m) @ m.g("a", t) for t in range(1, m.T + 1)), m.gp("b"))]),
    R(r"\overline{c} = \sum_{t=1}^{T} \mathbf{1}_N^\top \overline{o}_t", "backward",
      check=lambda m: [(sum(one(m) @ m.g("o", t) for t in range(1, m.T + 1)), m.gp("c"))]),
    R(r"\overline{V} &= \sum_{t=1}^{T} h_t^\top \, \overline{o}_t", "backward",
      check=lambda m: [(sum(m("h", t).T @ m.g("o", t) for t in range(1, m.T + 1)), m.gp("V"))]),
    R(r"\overline{h}_0 &= \overline{a}_1 W_h^\top", "backward",
      check=lambda m: [(m.g("a", 1) @ m.P["W_h"].T, m.g("h", 0))]),
    R(r"\overline{x}_t = \overline{a}_t W_x^\top", "backward",
      check=lambda m: steps(m, lambda t: (m.g("a", t) @ m.P["W_x"].T, m.g("x", t)))),
]

CONFIGS = [dict(N=2, D=2, H=3, C=3, T=3, seed=0), dict(N=1, D=3, H=3, C=3, T=4, seed=1)]

if __name__ == "__main__":
    main(FILE, MODEL, MAP, RULES, build, CONFIGS)
