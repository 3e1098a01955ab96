"""coursera_gru_gamma.ipynb: a deeplearning.ai-style notebook: the full GRU with \\Gamma_u,
\\Gamma_r written without their step (as the course does), time as ^{\\langle t \\rangle}, T_x,
* elementwise, [\\cdot, \\cdot] stacking, NumPy slices (\\cdot)_{[:n_a]}, dz_u, dz_r, dz_c for the
gradients of the gates' arguments, a^{\\langle t \\rangle T}. Reset gate before W_c,
c = Gamma_u c~ + (1 - Gamma_u) c_prev, a = c, softmax cross-entropy, c^<0> = 0. No planted mistake."""
import numpy as np
from common import R, Model, main, sigmoid, softmax, onehot, randn, steps

FILE = "coursera_gru_gamma.ipynb"
MODEL = ("full GRU, column convention, one sequence: Gamma_u = sigmoid(W_u [c^<t-1>; x^<t>] + b_u), "
         "Gamma_r = sigmoid(W_r [c^<t-1>; x^<t>] + b_r), c~ = tanh(W_c [Gamma_r * c^<t-1>; x^<t>] + b_c), "
         "c^<t> = Gamma_u * c~ + (1 - Gamma_u) * c^<t-1>, a^<t> = c^<t>, yhat = softmax(W_y a^<t> + b_y), "
         "L = -sum_t sum_i y_i log yhat_i; c^<0> = 0.")
MAP = {
    "\\Gamma_u, \\Gamma_r": "the gates at step t (written without the step)",
    "dv": "dL/dv through all paths",
    "dz_u, dz_r, dz_c": "dL by the arguments of the two sigmoids and of the tanh",
    "(\\cdot)_{[:n_a]}": "the first n_a rows",
    "a^{\\langle t \\rangle T}": "the transpose of a^<t>",
}


def forward(P, D, tap):
    c = tap("c", 0, D["c0"])
    out = {"L": 0.0}
    for t in range(1, D["T"] + 1):
        x = D["x"][t - 1]
        cat = np.concatenate([c, x])
        gu = tap("gu", t, sigmoid(tap("zu", t, P["Wu"] @ cat + P["bu"])))
        gr = tap("gr", t, sigmoid(tap("zr", t, P["Wr"] @ cat + P["br"])))
        ct = tap("ct", t, np.tanh(tap("zc", t, P["Wc"] @ np.concatenate([gr * c, x]) + P["bc"])))
        c = tap("c", t, gu * ct + (1 - gu) * c)
        a = tap("a", t, c)
        yh = tap("yhat", t, softmax(P["Wy"] @ a + P["by"]))
        out["L"] = out["L"] - np.log(yh[D["y"][t - 1]])
    return out


def build(cfg):
    rng = np.random.default_rng(cfg["seed"])
    D_, H, C, T = cfg["D"], cfg["H"], cfg["C"], cfg["T"]
    P = {k: randn(rng, H, H + D_, scale=0.8) for k in ("Wu", "Wr", "Wc")}
    P.update(bu=randn(rng, H), br=randn(rng, H), bc=randn(rng, H), Wy=randn(rng, C, H), by=randn(rng, C))
    D = dict(T=T, x=randn(rng, T, D_, scale=1.0), y=rng.integers(0, C, T), c0=np.zeros(H))
    return Model(forward, P, D, cfg)


S = lambda m, f: sum(f(t) for t in range(1, m.T + 1))
e = lambda m, t: m("yhat", t) - onehot(m.data["y"][t - 1], m.C)
cat = lambda m, t: np.concatenate([m("c", t - 1), m.data["x"][t - 1]])


def dc_prev(m, t):
    W = m.P
    return (m.g("c", t) * (1 - m("gu", t)) + (W["Wc"].T @ m.g("zc", t))[: m.H] * m("gr", t)
            + (W["Wu"].T @ m.g("zu", t))[: m.H] + (W["Wr"].T @ m.g("zr", t))[: m.H] + W["Wy"].T @ e(m, t - 1))


RULES = [
    R(r"t = 1, \dots, T_x", "no claim", why="a range"),
    R(r"c^{\langle 0 \rangle} = \vec{0}", "forward", check=lambda m: [(m("c", 0), np.zeros(m.H))]),
    R(r"\Gamma_u = \sigma(W_u[c^{\langle t-1 \rangle}, x^{\langle t \rangle}] + b_u)", "forward",
      check=lambda m: steps(m, lambda t: (m("gu", t), sigmoid(m.P["Wu"] @ cat(m, t) + m.P["bu"])))),
    R(r"\Gamma_r = \sigma(W_r[c^{\langle t-1 \rangle}, x^{\langle t \rangle}] + b_r)", "forward",
      check=lambda m: steps(m, lambda t: (m("gr", t), sigmoid(m.P["Wr"] @ cat(m, t) + m.P["br"])))),
    R(r"\tilde{c}^{\langle t \rangle} = \tanh(W_c[\Gamma_r * c^{\langle t-1 \rangle}, x^{\langle t \rangle}] + b_c)", "forward",
      check=lambda m: steps(m, lambda t: (m("ct", t), np.tanh(m.P["Wc"] @ np.concatenate([m("gr", t) * m("c", t - 1), m.data["x"][t - 1]]) + m.P["bc"])))),
    R(r"c^{\langle t \rangle} = \Gamma_u * \tilde{c}^{\langle t \rangle} + (1 - \Gamma_u) * c^{\langle t-1 \rangle}", "forward",
      check=lambda m: steps(m, lambda t: (m("c", t), m("gu", t) * m("ct", t) + (1 - m("gu", t)) * m("c", t - 1)))),
    R(r"a^{\langle t \rangle} = c^{\langle t \rangle}", "forward", check=lambda m: steps(m, lambda t: (m("a", t), m("c", t)))),
    R(r"\hat{y}^{\langle t \rangle} = \text{softmax}(W_y a^{\langle t \rangle} + b_y)", "forward",
      check=lambda m: steps(m, lambda t: (m("yhat", t), softmax(m.P["Wy"] @ m("a", t) + m.P["by"])))),
    R(r"\mathcal{L} = -\sum_{t=1}^{T_x} \sum_{i} y_i^{\langle t \rangle} \log \hat{y}_i^{\langle t \rangle}", "forward",
      check=lambda m: [(m.losses["L"], -S(m, lambda t: onehot(m.data["y"][t - 1], m.C) @ np.log(m("yhat", t))))]),
    R(r"d\tilde{c}^{\langle t \rangle} = dc^{\langle t \rangle} * \Gamma_u", "backward",
      check=lambda m: steps(m, lambda t: (m.g("c", t) * m("gu", t), m.g("ct", t)))),
    R(r"d\Gamma_u = dc^{\langle t \rangle} * (\tilde{c}^{\langle t \rangle} - c^{\langle t-1 \rangle})", "backward",
      check=lambda m: steps(m, lambda t: (m.g("c", t) * (m("ct", t) - m("c", t - 1)), m.g("gu", t)))),
    R(r"dz_c = d\tilde{c}^{\langle t \rangle} * (1 - (\tilde{c}^{\langle t \rangle})^2)", "backward",
      check=lambda m: steps(m, lambda t: (m.g("ct", t) * (1 - m("ct", t) ** 2), m.g("zc", t)))),
    R(r"dz_u = d\Gamma_u * \Gamma_u * (1 - \Gamma_u)", "backward",
      check=lambda m: steps(m, lambda t: (m.g("gu", t) * m("gu", t) * (1 - m("gu", t)), m.g("zu", t)))),
    R(r"d\Gamma_r = (W_c^T dz_c)_{[:n_a]} * c^{\langle t-1 \rangle}", "backward",
      check=lambda m: steps(m, lambda t: ((m.P["Wc"].T @ m.g("zc", t))[: m.H] * m("c", t - 1), m.g("gr", t)))),
    R(r"dz_r = d\Gamma_r * \Gamma_r * (1 - \Gamma_r)", "backward",
      check=lambda m: steps(m, lambda t: (m.g("gr", t) * m("gr", t) * (1 - m("gr", t)), m.g("zr", t)))),
    R(r"dc^{\langle t-1 \rangle} = dc^{\langle t \rangle} * (1 - \Gamma_u) + (W_c^T dz_c)_{[:n_a]} * \Gamma_r + (W_u^T dz_u)_{[:n_a]} + (W_r^T dz_r)_{[:n_a]} + W_y^T (\hat{y}^{\langle t-1 \rangle} - y^{\langle t-1 \rangle})", "backward",
      check=lambda m: steps(m, lambda t: (dc_prev(m, t), m.g("c", t - 1)), range(2, m.T + 1))),
    R(r"dc^{\langle T_x \rangle} = W_y^T (\hat{y}^{\langle T_x \rangle} - y^{\langle T_x \rangle})", "backward",
      check=lambda m: [(m.P["Wy"].T @ e(m, m.T), m.g("c", m.T))]),
    R(r"dW_c = \sum_{t=1}^{T_x} dz_c \, [\Gamma_r * c^{\langle t-1 \rangle}, x^{\langle t \rangle}]^T", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("zc", t), np.concatenate([m("gr", t) * m("c", t - 1), m.data["x"][t - 1]]))), m.gp("Wc"))]),
    R(r"db_c = \sum_{t=1}^{T_x} dz_c", "backward", check=lambda m: [(S(m, lambda t: m.g("zc", t)), m.gp("bc"))]),
    R(r"dW_u = \sum_{t=1}^{T_x} dz_u \, [c^{\langle t-1 \rangle}, x^{\langle t \rangle}]^T", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("zu", t), cat(m, t))), m.gp("Wu"))]),
    R(r"dW_r = \sum_{t=1}^{T_x} dz_r \, [c^{\langle t-1 \rangle}, x^{\langle t \rangle}]^T", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("zr", t), cat(m, t))), m.gp("Wr"))]),
    R(r"dW_y = \sum_{t=1}^{T_x} (\hat{y}^{\langle t \rangle} - y^{\langle t \rangle}) \, a^{\langle t \rangle T}", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(e(m, t), m("a", t))), m.gp("Wy"))]),
]

CONFIGS = [dict(N=1, D=2, H=3, C=3, T=3, seed=0), dict(N=1, D=3, H=3, C=3, T=4, seed=1)]

if __name__ == "__main__":
    main(FILE, MODEL, MAP, RULES, build, CONFIGS)
