"""lstm_concat_report.tex: technical-report chapter, LSTM with f_t, i_t, o_t, g_t and a concatenated
input W_f [h_{t-1}, x_t] + b_f, squared-error readout, delta-v notation, primes evaluated at
the argument (tanh'(c_t) = 1 - tanh(c_t)^2), rules generic over the gate k. No planted mistake."""
import numpy as np
from common import R, Model, main, sigmoid, randn, steps

FILE = "lstm_concat_report.tex"
MODEL = ("LSTM without peepholes, column convention, one sequence: f/i/o_t = sigmoid(W_{f/i/o} [h_{t-1}; x_t] + b), "
         "g_t = tanh(W_g [h_{t-1}; x_t] + b_g), c_t = f_t . c_{t-1} + i_t . g_t, h_t = o_t . tanh(c_t), "
         "yhat_t = W_y h_t + b_y, L = 1/2 sum_t ||yhat_t - y_t||^2; h_0 = c_0 = 0.")
MAP = {
    "\\delta v": "the total derivative dL/dv",
    "o_t": "the output gate (not the prediction, which is yhat_t)",
    "\\hat k_t (k = f, i, o, g)": "the argument of the gate's nonlinearity (pre-activation)",
    "\\hat y_t": "the prediction (not a pre-activation)",
    "\\tanh'(c_t), \\sigma'(\\hat k_t), \\tanh'(\\hat g_t)": "derivatives evaluated at the argument: tanh'(c_t) = 1 - tanh(c_t)^2, not 1 - c_t^2",
    "W_{kh}, W_{kx}": "the columns of W_k acting on h_{t-1} and on x_t",
    "[h_{t-1}, x_t]": "vertical concatenation",
}
GATES = ("f", "i", "o", "g")


def forward(P, D, tap):
    h = tap("h", 0, D["h0"])
    c = tap("c", 0, D["c0"])
    out = {"L": 0.0}
    for t in range(1, D["T"] + 1):
        cat = np.concatenate([h, D["x"][t - 1]])
        z = {k: tap("z" + k, t, P["W" + k] @ cat + P["b" + k]) for k in GATES}
        gate = {k: tap(k, t, sigmoid(z[k])) for k in ("f", "i", "o")}
        gate["g"] = tap("g", t, np.tanh(z["g"]))
        c = tap("c", t, gate["f"] * c + gate["i"] * gate["g"])
        h = tap("h", t, gate["o"] * np.tanh(c))
        yh = tap("yhat", t, P["Wy"] @ h + P["by"])
        out["L"] = out["L"] + 0.5 * np.sum((yh - D["y"][t - 1]) ** 2)
    return out


def build(cfg):
    rng = np.random.default_rng(cfg["seed"])
    D_, H, C, T = cfg["D"], cfg["H"], cfg["C"], cfg["T"]
    P = {}
    for k in GATES:
        P["W" + k] = randn(rng, H, H + D_, scale=0.9)
        P["b" + k] = randn(rng, H)
    P["Wy"], P["by"] = randn(rng, C, H, scale=1.0), randn(rng, C)
    D = dict(T=T, x=randn(rng, T, D_, scale=1.0), y=randn(rng, T, C), h0=np.zeros(H), c0=np.zeros(H))
    return Model(forward, P, D, cfg)


S = lambda m, f: sum(f(t) for t in range(1, m.T + 1))
cat = lambda m, t: np.concatenate([m("h", t - 1), m.data["x"][t - 1]])
dtanh = lambda u: 1 - np.tanh(u) ** 2


def fd_tanh(u):
    """the derivative of tanh at u, by central differences"""
    return (np.tanh(u + 1e-6) - np.tanh(u - 1e-6)) / 2e-6
dz = lambda m, k, t: m.g0("z" + k, t, m("zf", 1))          # delta hat-k_t, zero at t = T+1
f_next = lambda m, t: m("f", t + 1) if m.has("f", t + 1) else np.zeros(m.H)


RULES = [
    R(r"[h_{t-1}, x_t] \in \mathbb{R}^{H + D}", "no claim", why="a statement of shape"),
] + [
    R(r"%s_t &= %s\left(W_%s [h_{t-1}, x_t] + b_%s\right)" % (k, "\\tanh" if k == "g" else "\\sigma", k, k), "forward",
      check=(lambda k: lambda m: steps(m, lambda t: (m(k, t), (np.tanh if k == "g" else sigmoid)(m.P["W" + k] @ cat(m, t) + m.P["b" + k]))))(k))
    for k in GATES
] + [
    R(r"c_t &= f_t \odot c_{t-1} + i_t \odot g_t", "forward",
      check=lambda m: steps(m, lambda t: (m("c", t), m("f", t) * m("c", t - 1) + m("i", t) * m("g", t)))),
    R(r"h_t &= o_t \odot \tanh(c_t)", "forward", check=lambda m: steps(m, lambda t: (m("h", t), m("o", t) * np.tanh(m("c", t))))),
    R(r"\hat y_t = W_y h_t + b_y", "forward", check=lambda m: steps(m, lambda t: (m("yhat", t), m.P["Wy"] @ m("h", t) + m.P["by"]))),
    R(r"L = \frac{1}{2} \sum_{t=1}^{T} \lVert \hat y_t - y_t \rVert^2", "forward",
      check=lambda m: [(m.losses["L"], 0.5 * S(m, lambda t: np.sum((m("yhat", t) - m.data["y"][t - 1]) ** 2)))]),
    R(r"h_0 = c_0 = 0", "forward", check=lambda m: [(m("h", 0), np.zeros(m.H)), (m("c", 0), np.zeros(m.H))]),
    R(r"W_k = [W_{kh}, W_{kx}]", "no claim", why="a definition of notation (splitting W_k into column blocks)"),
    R(r"\tanh'(u) = 1 - \tanh^2(u)", "backward", why="the derivative of tanh at its argument (how the primes below are meant)",
      check=lambda m: steps(m, lambda t: (1 - np.tanh(m("c", t)) ** 2, fd_tanh(m("c", t))))),
    R(r"\delta h_t = W_y^\top (\hat y_t - y_t) + \sum_{k \in \{f, i, o, g\}} W_{kh}^\top \, \delta \hat k_{t+1}", "backward",
      check=lambda m: steps(m, lambda t: (m.P["Wy"].T @ (m("yhat", t) - m.data["y"][t - 1])
                                          + sum(m.P["W" + k][:, :m.H].T @ dz(m, k, t + 1) for k in GATES), m.g("h", t)))),
    R(r"\delta c_t = \delta h_t \odot o_t \odot \tanh'(c_t) + \delta c_{t+1} \odot f_{t+1}", "backward",
      why="right with tanh' evaluated at its argument c_t",
      check=lambda m: steps(m, lambda t: (m.g("h", t) * m("o", t) * dtanh(m("c", t)) + m.g0("c", t + 1, m("c", t)) * f_next(m, t), m.g("c", t)))),
    R(r"\delta c_{T+1} = \delta \hat k_{T+1} = 0", "backward", why="boundary convention; checked as the delta c and delta h recurrences at t = T",
      check=lambda m: [(m.g("h", m.T) * m("o", m.T) * dtanh(m("c", m.T)), m.g("c", m.T)),
                       (m.P["Wy"].T @ (m("yhat", m.T) - m.data["y"][m.T - 1]), m.g("h", m.T))]),
    R(r"\delta o_t &= \delta h_t \odot \tanh(c_t)", "backward", check=lambda m: steps(m, lambda t: (m.g("h", t) * np.tanh(m("c", t)), m.g("o", t)))),
    R(r"\delta f_t &= \delta c_t \odot c_{t-1}", "backward", check=lambda m: steps(m, lambda t: (m.g("c", t) * m("c", t - 1), m.g("f", t)))),
    R(r"\delta i_t &= \delta c_t \odot g_t", "backward", check=lambda m: steps(m, lambda t: (m.g("c", t) * m("g", t), m.g("i", t)))),
    R(r"\delta g_t &= \delta c_t \odot i_t", "backward", check=lambda m: steps(m, lambda t: (m.g("c", t) * m("i", t), m.g("g", t)))),
    R(r"\delta \hat k_t &= \delta k_t \odot \sigma'(\hat k_t) = \delta k_t \odot k_t \odot (1 - k_t)", "backward",
      why="for k in {f, i, o}",
      check=lambda m: sum((steps(m, lambda t: (m.g(k, t) * sigmoid(m("z" + k, t)) * (1 - sigmoid(m("z" + k, t))), m.g("z" + k, t)))
                           + steps(m, lambda t: (m.g(k, t) * m(k, t) * (1 - m(k, t)), m.g("z" + k, t))) for k in ("f", "i", "o")), [])),
    R(r"\delta \hat g_t &= \delta g_t \odot \tanh'(\hat g_t)", "backward",
      check=lambda m: steps(m, lambda t: (m.g("g", t) * dtanh(m("zg", t)), m.g("zg", t)))),
    R(r"\frac{\partial L}{\partial W_k} = \sum_{t=1}^{T} \delta \hat k_t \, [h_{t-1}, x_t]^\top", "backward", why="for every gate k",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("z" + k, t), cat(m, t))), m.gp("W" + k)) for k in GATES]),
    R(r"\frac{\partial L}{\partial b_k} = \sum_{t=1}^{T} \delta \hat k_t", "backward", why="for every gate k",
      check=lambda m: [(S(m, lambda t: m.g("z" + k, t)), m.gp("b" + k)) for k in GATES]),
]

CONFIGS = [dict(N=1, D=2, H=3, C=3, T=3, seed=0), dict(N=1, D=3, H=3, C=3, T=4, seed=1)]

if __name__ == "__main__":
    main(FILE, MODEL, MAP, RULES, build, CONFIGS)
