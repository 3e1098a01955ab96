"""lstm_assignment.ipynb: course-assignment notebook (deeplearning.ai style): LSTM with
Gamma_f, Gamma_i, Gamma_o, tilde c, time as <t>, T_x steps, minibatch as columns, * elementwise,
the code's names da_next, dc_next, da_prev, dc_prev, dgamma (pre-activation gradients).
Planted: dc_prev = dc_next * Gamma_f misses the path through a^<t> (the code cell has it right)."""
import numpy as np
from common import R, Model, main, sigmoid, softmax, onehot, randn, steps

FILE = "lstm_assignment.ipynb"
MODEL = ("LSTM, column convention with a minibatch of m examples as columns: "
         "Gamma_f/i/o = sigmoid(W_{f/i/o} [a^<t-1>; x^<t>] + b), tilde c = tanh(W_c [a^<t-1>; x^<t>] + b_c), "
         "c^<t> = Gamma_f * c^<t-1> + Gamma_i * tilde c^<t>, a^<t> = Gamma_o * tanh(c^<t>), "
         "yhat^<t> = softmax(W_y a^<t> + b_y) per column, J = cross-entropy summed over steps and examples; "
         "a^<0> is given, c^<0> = 0.")
MAP = {
    "^{\\langle t \\rangle}": "time step t",
    "[a, x]": "vertical stacking of a (n_a rows) over x (n_x rows)",
    "*": "elementwise product",
    "a_{next}, c_{next}, a_{prev}, c_{prev}": "at step t: a^<t>, c^<t>, a^<t-1>, c^<t-1>",
    "da_{next}": "at step t: the full (total) gradient dJ/da^<t>",
    "dc_{next}": "at step t: the part of dJ/dc^<t> that flows back through c^<t+1> (zero at t = T_x)",
    "da_{prev}": "at step t: the part of dJ/da^<t-1> that flows through the gates of step t",
    "dc_{prev}": "at step t: the part of dJ/dc^<t-1> that flows through c^<t> (so dc_prev of step t+1 is dc_next of step t)",
    "d\\gamma_f, d\\gamma_i, d\\gamma_o": "gradients w.r.t. the gates' pre-activations (arguments of the sigmoids) at step t",
    "dp\\tilde{c}": "gradient w.r.t. the argument of the tanh in tilde c^<t>",
    "da_{prev}^{\\langle t+1 \\rangle}": "da_prev computed at step t+1",
    "dW_f, db_f, dx": "gradients of J w.r.t. W_f, b_f and x^<t>",
    "T_x": "the number of steps",
    "(\\cdot)_{[:n_a, :]}": "the first n_a rows (NumPy slicing)",
}
GATES = ("f", "i", "c", "o")


def forward(P, D, tap):
    a = tap("a", 0, D["a0"])
    c = tap("c", 0, D["c0"])
    out = {"L": 0.0}
    for t in range(1, D["T"] + 1):
        ap = tap("a_use", t, a)
        cp = tap("c_use", t, c)
        x = tap("x", t, D["x"][t - 1])
        cat = np.concatenate([ap, x], axis=0)
        z = {g: tap("z" + g, t, P["W" + g] @ cat + P["b" + g][:, None]) for g in GATES}
        Gf, Gi, Go = (tap("G" + g, t, sigmoid(z[g])) for g in ("f", "i", "o"))
        ct = tap("ctilde", t, np.tanh(z["c"]))
        c = tap("c", t, Gf * cp + Gi * ct)
        a = tap("a", t, Go * np.tanh(c))
        yh = tap("yhat", t, softmax(P["Wy"] @ a + P["by"][:, None], axis=0))
        out["L"] = out["L"] - np.sum(D["y"][t - 1] * np.log(yh))
    return out


def build(cfg):
    rng = np.random.default_rng(cfg["seed"])
    m_, D_, H, C, T = cfg["N"], cfg["D"], cfg["H"], cfg["C"], cfg["T"]
    P = {}
    for g in GATES:
        P["W" + g] = randn(rng, H, H + D_, scale=0.8)
        P["b" + g] = randn(rng, H)
    P["Wy"], P["by"] = randn(rng, C, H, scale=1.0), randn(rng, C)
    y = np.stack([onehot(rng.integers(0, C, m_), C).T for _ in range(T)])
    D = dict(T=T, x=randn(rng, T, D_, m_, scale=1.0), y=y, a0=randn(rng, H, m_), c0=np.zeros((H, m_)))
    return Model(forward, P, D, cfg)


# the author's symbols, at their intended values
da_next = lambda m, t: m.g("a", t)
dc_next = lambda m, t: m.g0("c_use", t + 1, m("c", t))
dtc = lambda m, t: 1 - np.tanh(m("c", t)) ** 2
G = lambda m, g, t: m("G" + g, t)
cat = lambda m, t: np.concatenate([m("a", t - 1), m("x", t)], axis=0)
S = lambda m, f: sum(f(t) for t in range(1, m.T + 1))


def dconcat(m, t):
    return (m.P["Wf"].T @ m.g("zf", t) + m.P["Wi"].T @ m.g("zi", t) + m.P["Wc"].T @ m.g("zc", t) + m.P["Wo"].T @ m.g("zo", t))


RULES = [
    R(r"\Gamma_f^{\langle t \rangle} = \sigma(W_f [a^{\langle t-1 \rangle}, x^{\langle t \rangle}] + b_f)", "forward",
      check=lambda m: steps(m, lambda t: (G(m, "f", t), sigmoid(m.P["Wf"] @ cat(m, t) + m.P["bf"][:, None])))),
    R(r"\Gamma_i^{\langle t \rangle} = \sigma(W_i [a^{\langle t-1 \rangle}, x^{\langle t \rangle}] + b_i)", "forward",
      check=lambda m: steps(m, lambda t: (G(m, "i", t), sigmoid(m.P["Wi"] @ cat(m, t) + m.P["bi"][:, None])))),
    R(r"\tilde{c}^{\langle t \rangle} = \tanh(W_c [a^{\langle t-1 \rangle}, x^{\langle t \rangle}] + b_c)", "forward",
      check=lambda m: steps(m, lambda t: (m("ctilde", t), np.tanh(m.P["Wc"] @ cat(m, t) + m.P["bc"][:, None])))),
    R(r"c^{\langle t \rangle} = \Gamma_f^{\langle t \rangle} * c^{\langle t-1 \rangle} + \Gamma_i^{\langle t \rangle} * \tilde{c}^{\langle t \rangle}", "forward",
      check=lambda m: steps(m, lambda t: (m("c", t), G(m, "f", t) * m("c", t - 1) + G(m, "i", t) * m("ctilde", t)))),
    R(r"\Gamma_o^{\langle t \rangle} = \sigma(W_o [a^{\langle t-1 \rangle}, x^{\langle t \rangle}] + b_o)", "forward",
      check=lambda m: steps(m, lambda t: (G(m, "o", t), sigmoid(m.P["Wo"] @ cat(m, t) + m.P["bo"][:, None])))),
    R(r"a^{\langle t \rangle} = \Gamma_o^{\langle t \rangle} * \tanh(c^{\langle t \rangle})", "forward",
      check=lambda m: steps(m, lambda t: (m("a", t), G(m, "o", t) * np.tanh(m("c", t))))),
    R(r"\hat{y}^{\langle t \rangle} = \mathrm{softmax}(W_y a^{\langle t \rangle} + b_y)", "forward",
      check=lambda m: steps(m, lambda t: (m("yhat", t), softmax(m.P["Wy"] @ m("a", t) + m.P["by"][:, None], axis=0)))),
    R(r"c^{\langle 0 \rangle} = 0", "forward", check=lambda m: [(m("c", 0), np.zeros_like(m("c", 0)))]),
    R(r"\mathcal{J} = -\sum_{t=1}^{T_x} \sum_{j=1}^{m} \sum_{k} y^{\langle t \rangle}_{k,j} \log \hat{y}^{\langle t \rangle}_{k,j}", "forward",
      check=lambda m: [(m.losses["L"], -S(m, lambda t: np.sum(m.data["y"][t - 1] * np.log(m("yhat", t)))))]),
    R(r"d\gamma_o^{\langle t \rangle} = da_{next} * \tanh(c_{next}) * \Gamma_o^{\langle t \rangle} * (1 - \Gamma_o^{\langle t \rangle})", "backward",
      check=lambda m: steps(m, lambda t: (da_next(m, t) * np.tanh(m("c", t)) * G(m, "o", t) * (1 - G(m, "o", t)), m.g("zo", t)))),
    R(r"dp\tilde{c}^{\langle t \rangle} = \left(dc_{next} * \Gamma_i^{\langle t \rangle} + \Gamma_o^{\langle t \rangle} * (1 - \tanh(c_{next})^2) * \Gamma_i^{\langle t \rangle} * da_{next}\right) * (1 - (\tilde{c}^{\langle t \rangle})^2)", "backward",
      check=lambda m: steps(m, lambda t: ((dc_next(m, t) * G(m, "i", t) + G(m, "o", t) * dtc(m, t) * G(m, "i", t) * da_next(m, t))
                                          * (1 - m("ctilde", t) ** 2), m.g("zc", t)))),
    R(r"d\gamma_i^{\langle t \rangle} = \left(dc_{next} * \tilde{c}^{\langle t \rangle} + \Gamma_o^{\langle t \rangle} * (1 - \tanh(c_{next})^2) * \tilde{c}^{\langle t \rangle} * da_{next}\right) * \Gamma_i^{\langle t \rangle} * (1 - \Gamma_i^{\langle t \rangle})", "backward",
      check=lambda m: steps(m, lambda t: ((dc_next(m, t) * m("ctilde", t) + G(m, "o", t) * dtc(m, t) * m("ctilde", t) * da_next(m, t))
                                          * G(m, "i", t) * (1 - G(m, "i", t)), m.g("zi", t)))),
    R(r"d\gamma_f^{\langle t \rangle} = \left(dc_{next} * c_{prev} + \Gamma_o^{\langle t \rangle} * (1 - \tanh(c_{next})^2) * c_{prev} * da_{next}\right) * \Gamma_f^{\langle t \rangle} * (1 - \Gamma_f^{\langle t \rangle})", "backward",
      check=lambda m: steps(m, lambda t: ((dc_next(m, t) * m("c", t - 1) + G(m, "o", t) * dtc(m, t) * m("c", t - 1) * da_next(m, t))
                                          * G(m, "f", t) * (1 - G(m, "f", t)), m.g("zf", t)))),
    R(r"dW_f = \sum_{t=1}^{T_x} d\gamma_f^{\langle t \rangle} \, [a^{\langle t-1 \rangle}, x^{\langle t \rangle}]^T", "backward",
      check=lambda m: [(S(m, lambda t: m.g("zf", t) @ cat(m, t).T), m.gp("Wf"))]),
    R(r"db_f = \sum_{t=1}^{T_x} \sum_{j=1}^{m} d\gamma_f^{\langle t \rangle}[:, j]", "backward",
      check=lambda m: [(S(m, lambda t: m.g("zf", t).sum(axis=1)), m.gp("bf"))]),
    R(r"da_{prev} = \left(W_f^T d\gamma_f^{\langle t \rangle} + W_i^T d\gamma_i^{\langle t \rangle} + W_c^T dp\tilde{c}^{\langle t \rangle} + W_o^T d\gamma_o^{\langle t \rangle}\right)_{[:n_a, :]}", "backward",
      check=lambda m: steps(m, lambda t: (dconcat(m, t)[:m.H], m.g("a_use", t)))),
    R(r"dc_{prev} = dc_{next} * \Gamma_f^{\langle t \rangle}", "backward", "wrong",
      why="c^<t-1> reaches the cost through c^<t>, whose full gradient is dc_next + da_next * Gamma_o * (1 - tanh(c_next)^2); the path through a^<t> is missing: dc_prev = (dc_next + Gamma_o * (1 - tanh(c_next)^2) * da_next) * Gamma_f",
      check=lambda m: steps(m, lambda t: (dc_next(m, t) * G(m, "f", t), m.g("c_use", t)))),
    R(r"dx^{\langle t \rangle} = \left(W_f^T d\gamma_f^{\langle t \rangle} + W_i^T d\gamma_i^{\langle t \rangle} + W_c^T dp\tilde{c}^{\langle t \rangle} + W_o^T d\gamma_o^{\langle t \rangle}\right)_{[n_a:, :]}", "backward",
      check=lambda m: steps(m, lambda t: (dconcat(m, t)[m.H:], m.g("x", t)))),
    R(r"t = T_x", "no claim", why="where the loop starts, not an equation"),
    R(r"da_{next} = W_y^T (\hat{y}^{\langle t \rangle} - y^{\langle t \rangle}) + da_{prev}^{\langle t+1 \rangle}", "backward",
      check=lambda m: steps(m, lambda t: (m.P["Wy"].T @ (m("yhat", t) - m.data["y"][t - 1]) + m.g0("a_use", t + 1, m("a", t)), da_next(m, t)))),
    R(r"da_{prev}^{\langle T_x+1 \rangle} = 0", "backward", why="boundary convention: there is no step T_x + 1",
      check=lambda m: [(m.P["Wy"].T @ (m("yhat", m.T) - m.data["y"][m.T - 1]), da_next(m, m.T))]),
    R(r"dc_{next}^{\langle t \rangle} = dc_{prev}^{\langle t+1 \rangle}", "backward", why="bookkeeping: both name the gradient of c^<t> through c^<t+1>",
      check=lambda m: steps(m, lambda t: (m.g0("c_use", t + 1, m("c", t)), dc_next(m, t)))),
]

CONFIGS = [dict(N=2, D=2, H=3, C=3, T=3, seed=0), dict(N=1, D=3, H=3, C=3, T=4, seed=1)]

if __name__ == "__main__":
    main(FILE, MODEL, MAP, RULES, build, CONFIGS)
