"""colah_lstm_blog.md: a blog post in Colah's letters: the capital C_t for the cell state,
W_f \\cdot [h_{t-1}, x_t], * pointwise, d notation for the total gradient, the stacked input
z_t and its slices (dz)_{1:H}, (dz)_{H+1:H+D}, pre-activations a^f_t named once ("and so on").
LSTM in columns, softmax cross-entropy, h_0 = C_0 = 0. No planted mistake."""
import numpy as np
from common import R, Model, main, sigmoid, softmax, onehot, randn, steps

FILE = "colah_lstm_blog.md"
MODEL = ("LSTM, column convention, one sequence: z_t = [h_{t-1}; x_t], f/i/o_t = sigmoid(W_{f/i/o} z_t + b), "
         "C~_t = tanh(W_C z_t + b_C), C_t = f_t * C_{t-1} + i_t * C~_t, h_t = o_t * tanh(C_t), "
         "yhat_t = softmax(W_y h_t + b_y), L = -sum_t log yhat_t[y_t]; h_0 = C_0 = 0.")
MAP = {
    "dv": "dL/dv, total (through every path)",
    "C_t": "the cell state",
    "a^f_t, a^i_t, a^C_t, a^o_t": "the arguments of f_t, i_t's sigmoid, C~_t's tanh, o_t",
    "(dz)_{1:H}, (dz)_{H+1:H+D}": "rows 1..H and H+1..H+D (1-based, inclusive)",
    "dC_{T+1}, dz_{T+1}": "zero (no step T+1)",
}
GATES = "fiCo"


def forward(P, D, tap):
    h = tap("h", 0, D["h0"])
    C = tap("C", 0, D["C0"])
    out = {"L": 0.0}
    for t in range(1, D["T"] + 1):
        x = tap("x", t, D["x"][t - 1])
        z = tap("z", t, np.concatenate([h, x]))
        a = {k: tap("a" + k, t, P["W" + k] @ z + P["b" + k]) for k in GATES}
        f, i, o = (tap(k, t, sigmoid(a[k])) for k in "fio")
        Ct = tap("Ct", t, np.tanh(a["C"]))
        C = tap("C", t, f * C + i * Ct)
        h = tap("h", t, o * np.tanh(C))
        yh = tap("yhat", t, softmax(P["Wy"] @ h + P["by"]))
        out["L"] = out["L"] - np.log(yh[D["y"][t - 1]])
    return out


def build(cfg):
    rng = np.random.default_rng(cfg["seed"])
    D_, H, C, T = cfg["D"], cfg["H"], cfg["C"], cfg["T"]
    P = {}
    for k in GATES:
        P["W" + k], P["b" + k] = randn(rng, H, H + D_, scale=0.8), randn(rng, H)
    P["Wy"], P["by"] = randn(rng, C, H), randn(rng, C)
    D = dict(T=T, x=randn(rng, T, D_, scale=1.0), y=rng.integers(0, C, T), h0=np.zeros(H), C0=np.zeros(H))
    return Model(forward, P, D, cfg)


S = lambda m, f: sum(f(t) for t in range(1, m.T + 1))
e = lambda m, t: m("yhat", t) - onehot(m.data["y"][t - 1], m.C)
G = lambda m, n, t: m.g0(n, t, m(n, m.T))
nxt = lambda m, n, t: m(n, t) if m.has(n, t) else np.zeros(m.H)
rng_v = np.random.default_rng(7).standard_normal(5)
sig_ = lambda v: 1 / (1 + np.exp(-v))

RULES = [
    R(r"f_t = \sigma(W_f \cdot [h_{t-1}, x_t] + b_f)", "forward",
      check=lambda m: steps(m, lambda t: (m("f", t), sigmoid(m.P["Wf"] @ m("z", t) + m.P["bf"])))),
    R(r"i_t = \sigma(W_i \cdot [h_{t-1}, x_t] + b_i)", "forward",
      check=lambda m: steps(m, lambda t: (m("i", t), sigmoid(m.P["Wi"] @ m("z", t) + m.P["bi"])))),
    R(r"\tilde{C}_t = \tanh(W_C \cdot [h_{t-1}, x_t] + b_C)", "forward",
      check=lambda m: steps(m, lambda t: (m("Ct", t), np.tanh(m.P["WC"] @ m("z", t) + m.P["bC"])))),
    R(r"C_t = f_t * C_{t-1} + i_t * \tilde{C}_t", "forward",
      check=lambda m: steps(m, lambda t: (m("C", t), m("f", t) * m("C", t - 1) + m("i", t) * m("Ct", t)))),
    R(r"o_t = \sigma(W_o \cdot [h_{t-1}, x_t] + b_o)", "forward",
      check=lambda m: steps(m, lambda t: (m("o", t), sigmoid(m.P["Wo"] @ m("z", t) + m.P["bo"])))),
    R(r"h_t = o_t * \tanh(C_t)", "forward", check=lambda m: steps(m, lambda t: (m("h", t), m("o", t) * np.tanh(m("C", t))))),
    R(r"h_0 = C_0 = 0", "forward", check=lambda m: [(m("h", 0), np.zeros(m.H)), (m("C", 0), np.zeros(m.H))]),
    R(r"\hat{y}_t = \text{softmax}(W_y \cdot h_t + b_y)", "forward",
      check=lambda m: steps(m, lambda t: (m("yhat", t), softmax(m.P["Wy"] @ m("h", t) + m.P["by"])))),
    R(r"L = -\sum_{t=1}^{T} \log \hat{y}_{t, y_t}", "forward",
      check=lambda m: [(m.losses["L"], -S(m, lambda t: np.log(m("yhat", t)[m.data["y"][t - 1]])))]),
    R(r"z_t = [h_{t-1}, x_t]", "forward", why="names the stacked input",
      check=lambda m: steps(m, lambda t: (m("z", t), np.concatenate([m("h", t - 1), m("x", t)])))),
    R(r"f_t = \sigma(a^f_t)", "forward", why="names the pre-activations (restates the forward pass)",
      check=lambda m: steps(m, lambda t: (m("f", t), sigmoid(m("af", t))))),
    R(r"dh_t = W_y^T (\hat{y}_t - \mathbf{1}_{y_t}) + (dz_{t+1})_{1:H}", "backward",
      check=lambda m: steps(m, lambda t: (m.P["Wy"].T @ e(m, t) + G(m, "z", t + 1)[: m.H], m.g("h", t)))),
    R(r"dC_t = dh_t * o_t * (1 - \tanh^2(C_t)) + dC_{t+1} * f_{t+1}", "backward",
      check=lambda m: steps(m, lambda t: (m.g("h", t) * m("o", t) * (1 - np.tanh(m("C", t)) ** 2) + G(m, "C", t + 1) * nxt(m, "f", t + 1),
                                          m.g("C", t)))),
    R(r"dC_{T+1} = 0", "backward", why="boundary convention; checked as the recursion at t = T",
      check=lambda m: [(m.g("h", m.T) * m("o", m.T) * (1 - np.tanh(m("C", m.T)) ** 2), m.g("C", m.T))]),
    R(r"dz_{T+1} = 0", "backward", why="boundary convention; checked as the recursion at t = T",
      check=lambda m: [(m.P["Wy"].T @ e(m, m.T), m.g("h", m.T))]),
    R(r"do_t = dh_t * \tanh(C_t)", "backward", check=lambda m: steps(m, lambda t: (m.g("h", t) * np.tanh(m("C", t)), m.g("o", t)))),
    R(r"df_t = dC_t * C_{t-1}", "backward", check=lambda m: steps(m, lambda t: (m.g("C", t) * m("C", t - 1), m.g("f", t)))),
    R(r"di_t = dC_t * \tilde{C}_t", "backward", check=lambda m: steps(m, lambda t: (m.g("C", t) * m("Ct", t), m.g("i", t)))),
    R(r"d\tilde{C}_t = dC_t * i_t", "backward", check=lambda m: steps(m, lambda t: (m.g("C", t) * m("i", t), m.g("Ct", t)))),
    R(r"\sigma' = \sigma(1-\sigma)", "backward", why="an identity between functions (true)",
      check=lambda m: [(sig_(rng_v) * (1 - sig_(rng_v)), (sig_(rng_v + 1e-6) - sig_(rng_v - 1e-6)) / 2e-6)]),
    R(r"\tanh' = 1 - \tanh^2", "backward", why="an identity between functions (true)",
      check=lambda m: [(1 - np.tanh(rng_v) ** 2, (np.tanh(rng_v + 1e-6) - np.tanh(rng_v - 1e-6)) / 2e-6)]),
    R(r"da^f_t = df_t * f_t * (1 - f_t)", "backward",
      check=lambda m: steps(m, lambda t: (m.g("f", t) * m("f", t) * (1 - m("f", t)), m.g("af", t)))),
    R(r"da^i_t = di_t * i_t * (1 - i_t)", "backward",
      check=lambda m: steps(m, lambda t: (m.g("i", t) * m("i", t) * (1 - m("i", t)), m.g("ai", t)))),
    R(r"da^o_t = do_t * o_t * (1 - o_t)", "backward",
      check=lambda m: steps(m, lambda t: (m.g("o", t) * m("o", t) * (1 - m("o", t)), m.g("ao", t)))),
    R(r"da^C_t = d\tilde{C}_t * (1 - \tilde{C}_t^2)", "backward",
      check=lambda m: steps(m, lambda t: (m.g("Ct", t) * (1 - m("Ct", t) ** 2), m.g("aC", t)))),
    R(r"dz_t = W_f^T da^f_t + W_i^T da^i_t + W_C^T da^C_t + W_o^T da^o_t", "backward",
      check=lambda m: steps(m, lambda t: (sum(m.P["W" + k].T @ m.g("a" + k, t) for k in GATES), m.g("z", t)))),
    R(r"dx_t = (dz_t)_{H+1:H+D}", "backward", check=lambda m: steps(m, lambda t: (m.g("z", t)[m.H:], m.g("x", t)))),
    R(r"dW_f = \sum_{t=1}^{T} da^f_t \, z_t^T", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("af", t), m("z", t))), m.gp("Wf"))]),
    R(r"db_f = \sum_{t=1}^{T} da^f_t", "backward", check=lambda m: [(S(m, lambda t: m.g("af", t)), m.gp("bf"))]),
    R(r"dW_C = \sum_{t=1}^{T} da^C_t \, [h_{t-1}, x_t]^T", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("aC", t), np.concatenate([m("h", t - 1), m("x", t)]))), m.gp("WC"))]),
    R(r"dW_y = \sum_{t=1}^{T} (\hat{y}_t - \mathbf{1}_{y_t}) h_t^T", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(e(m, t), m("h", t))), m.gp("Wy"))]),
]

CONFIGS = [dict(N=1, D=2, H=3, C=3, T=3, seed=0), dict(N=1, D=3, H=3, C=3, T=4, seed=1)]

if __name__ == "__main__":
    main(FILE, MODEL, MAP, RULES, build, CONFIGS)
