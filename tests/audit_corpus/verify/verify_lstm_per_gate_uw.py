"""lstm_per_gate_uw.tex: lecture scribe notes, align* two equations per row, per-gate input and
recurrent matrices W_k, U_k, named pre-activations a^k_t, a generic gate \\ast \\in \\{i, f, o, c\\}.
LSTM in columns, softmax cross-entropy, h_0 = c_0 = 0.
Planted: dL/dh_t without the recurrent terms (line 34); the sigmoid gate o differentiated as a
tanh, (1 - o_t^2) (line 45)."""
import numpy as np
from common import R, Model, main, sigmoid, softmax, onehot, randn, steps

FILE = "lstm_per_gate_uw.tex"
MODEL = ("LSTM without peepholes, column convention, one sequence: a^k_t = W_k x_t + U_k h_{t-1} + b_k, "
         "i, f, o = sigmoid(a^k_t), c~_t = tanh(a^c_t), c_t = f_t . c_{t-1} + i_t . c~_t, h_t = o_t . tanh(c_t), "
         "s_t = V h_t + b_v, p_t = softmax(s_t), L = -sum_t log p_t[y_t]; h_0 = c_0 = 0.")
MAP = {
    "\\ast": "each gate i, f, o, c",
    "\\mathbf{e}_{y_t}": "the one-hot vector of the target",
    "\\frac{\\partial L}{\\partial c_{T+1}}": "zero",
}
GATES = "ifoc"


def forward(P, D, tap):
    h = tap("h", 0, D["h0"])
    c = tap("c", 0, D["c0"])
    out = {"L": 0.0}
    for t in range(1, D["T"] + 1):
        x = D["x"][t - 1]
        a = {k: tap("a" + k, t, P["W" + k] @ x + P["U" + k] @ h + P["b" + k]) for k in GATES}
        i, f, o = (tap(k, t, sigmoid(a[k])) for k in "ifo")
        ct = tap("ct", t, np.tanh(a["c"]))
        c = tap("c", t, f * c + i * ct)
        h = tap("h", t, o * np.tanh(c))
        s = tap("s", t, P["V"] @ h + P["bv"])
        p = tap("p", t, softmax(s))
        out["L"] = out["L"] - np.log(p[D["y"][t - 1]])
    return out


def build(cfg):
    rng = np.random.default_rng(cfg["seed"])
    D_, H, K, T = cfg["D"], cfg["H"], cfg["C"], cfg["T"]
    P = {}
    for k in GATES:
        P["W" + k], P["U" + k], P["b" + k] = randn(rng, H, D_), randn(rng, H, H, scale=0.8), randn(rng, H)
    P["V"], P["bv"] = randn(rng, K, H), randn(rng, K)
    D = dict(T=T, x=randn(rng, T, D_, scale=1.0), y=rng.integers(0, K, T), h0=np.zeros(H), c0=np.zeros(H))
    return Model(forward, P, D, cfg)


S = lambda m, f: sum(f(t) for t in range(1, m.T + 1))
e = lambda m, t: m("p", t) - onehot(m.data["y"][t - 1], m.C)
G = lambda m, n, t: m.g0(n, t, m(n, m.T))
nxt = lambda m, n, t: m(n, t) if m.has(n, t) else np.zeros(m.H)
act = {"i": "i", "f": "f", "o": "o", "c": "ct"}


def forward_line(text, k, fn):
    return R(text, "forward", check=lambda m: steps(m, lambda t: (m(act[k] if fn else "a" + k, t),
             (np.tanh(m("ac", t)) if k == "c" else sigmoid(m("a" + k, t))) if fn else
             m.P["W" + k] @ m.data["x"][t - 1] + m.P["U" + k] @ m("h", t - 1) + m.P["b" + k])))


RULES = [
    R(r"h_0 = c_0 = 0", "forward", check=lambda m: [(m("h", 0), np.zeros(m.H)), (m("c", 0), np.zeros(m.H))]),
    forward_line(r"a^i_t &= W_i x_t + U_i h_{t-1} + b_i", "i", False),
    forward_line(r"i_t &= \sigma(a^i_t)", "i", True),
    forward_line(r"a^f_t &= W_f x_t + U_f h_{t-1} + b_f", "f", False),
    forward_line(r"f_t &= \sigma(a^f_t)", "f", True),
    forward_line(r"a^o_t &= W_o x_t + U_o h_{t-1} + b_o", "o", False),
    forward_line(r"o_t &= \sigma(a^o_t)", "o", True),
    forward_line(r"a^c_t &= W_c x_t + U_c h_{t-1} + b_c", "c", False),
    forward_line(r"\tilde c_t &= \tanh(a^c_t)", "c", True),
    R(r"c_t &= f_t \odot c_{t-1} + i_t \odot \tilde c_t", "forward",
      check=lambda m: steps(m, lambda t: (m("c", t), m("f", t) * m("c", t - 1) + m("i", t) * m("ct", t)))),
    R(r"h_t &= o_t \odot \tanh(c_t)", "forward", check=lambda m: steps(m, lambda t: (m("h", t), m("o", t) * np.tanh(m("c", t))))),
    R(r"s_t = V h_t + b_v", "forward", check=lambda m: steps(m, lambda t: (m("s", t), m.P["V"] @ m("h", t) + m.P["bv"]))),
    R(r"p_t = \operatorname{softmax}(s_t)", "forward", check=lambda m: steps(m, lambda t: (m("p", t), softmax(m("s", t))))),
    R(r"L = -\sum_{t=1}^{T} \log p_t[y_t]", "forward",
      check=lambda m: [(m.losses["L"], -S(m, lambda t: np.log(m("p", t)[m.data["y"][t - 1]])))]),
    R(r"\frac{\partial L}{\partial s_t} = p_t - \mathbf{e}_{y_t}", "backward", check=lambda m: steps(m, lambda t: (e(m, t), m.g("s", t)))),
    R(r"\frac{\partial L}{\partial h_t} = V^\top (p_t - \mathbf{e}_{y_t})", "backward", "wrong",
      why="h_t also feeds all four gates at t+1: + U_i^T dL/da^i_{t+1} + U_f^T dL/da^f_{t+1} + U_o^T dL/da^o_{t+1} + U_c^T dL/da^c_{t+1}",
      check=lambda m: steps(m, lambda t: (m.P["V"].T @ e(m, t), m.g("h", t)))),
    R(r"\frac{\partial L}{\partial c_t} = \frac{\partial L}{\partial h_t} \odot o_t \odot \big(1 - \tanh^2(c_t)\big) + \frac{\partial L}{\partial c_{t+1}} \odot f_{t+1}", "backward",
      why="right with the true dL/dh_t",
      check=lambda m: steps(m, lambda t: (m.g("h", t) * m("o", t) * (1 - np.tanh(m("c", t)) ** 2) + G(m, "c", t + 1) * nxt(m, "f", t + 1),
                                          m.g("c", t)))),
    R(r"\frac{\partial L}{\partial c_{T+1}} = 0", "backward", why="boundary convention; checked as the recursion at t = T",
      check=lambda m: [(m.g("h", m.T) * m("o", m.T) * (1 - np.tanh(m("c", m.T)) ** 2), m.g("c", m.T))]),
    R(r"\frac{\partial L}{\partial a^o_t} &= \frac{\partial L}{\partial h_t} \odot \tanh(c_t) \odot (1 - o_t^2)", "backward", "wrong",
      why="tanh's derivative used for the sigmoid output gate; o_t . (1 - o_t) belongs",
      check=lambda m: steps(m, lambda t: (m.g("h", t) * np.tanh(m("c", t)) * (1 - m("o", t) ** 2), m.g("ao", t)))),
    R(r"\frac{\partial L}{\partial a^i_t} &= \frac{\partial L}{\partial c_t} \odot \tilde c_t \odot i_t \odot (1 - i_t)", "backward",
      check=lambda m: steps(m, lambda t: (m.g("c", t) * m("ct", t) * m("i", t) * (1 - m("i", t)), m.g("ai", t)))),
    R(r"\frac{\partial L}{\partial a^f_t} &= \frac{\partial L}{\partial c_t} \odot c_{t-1} \odot f_t \odot (1 - f_t)", "backward",
      check=lambda m: steps(m, lambda t: (m.g("c", t) * m("c", t - 1) * m("f", t) * (1 - m("f", t)), m.g("af", t)))),
    R(r"\frac{\partial L}{\partial a^c_t} &= \frac{\partial L}{\partial c_t} \odot i_t \odot (1 - \tilde c_t^2)", "backward",
      check=lambda m: steps(m, lambda t: (m.g("c", t) * m("i", t) * (1 - m("ct", t) ** 2), m.g("ac", t)))),
    R(r"\frac{\partial L}{\partial W_\ast} &= \sum_{t=1}^{T} \frac{\partial L}{\partial a^\ast_t}\, x_t^\top", "backward",
      why="for each gate", check=lambda m: [(S(m, lambda t: np.outer(m.g("a" + k, t), m.data["x"][t - 1])), m.gp("W" + k)) for k in GATES]),
    R(r"\frac{\partial L}{\partial U_\ast} &= \sum_{t=1}^{T} \frac{\partial L}{\partial a^\ast_t}\, h_{t-1}^\top", "backward",
      why="for each gate", check=lambda m: [(S(m, lambda t: np.outer(m.g("a" + k, t), m("h", t - 1))), m.gp("U" + k)) for k in GATES]),
    R(r"\frac{\partial L}{\partial b_\ast} &= \sum_{t=1}^{T} \frac{\partial L}{\partial a^\ast_t}", "backward",
      why="for each gate", check=lambda m: [(S(m, lambda t: m.g("a" + k, t)), m.gp("b" + k)) for k in GATES]),
    R(r"\frac{\partial L}{\partial V} = \sum_{t=1}^{T} (p_t - \mathbf{e}_{y_t})\, h_t^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(e(m, t), m("h", t))), m.gp("V"))]),
]

CONFIGS = [dict(N=1, D=2, H=3, C=3, T=3, seed=0), dict(N=1, D=3, H=3, C=3, T=4, seed=1)]

if __name__ == "__main__":
    main(FILE, MODEL, MAP, RULES, build, CONFIGS)
