"""blog_numbered_deltas.md: blog post, $$ and inline $, loss E, numbered deltas (delta_3 = output
layer error, delta_2 = hidden layer error; the number is a layer, not a step).
Planted: delta_2, stated to be dE/dz_t, misses the recurrent term W^T delta_2 of step t+1."""
import numpy as np
from common import R, Model, main, softmax, onehot, randn, steps

FILE = "blog_numbered_deltas.md"
MODEL = ("Vanilla tanh RNN without biases, column convention, one sequence of one-hot inputs: "
         "z_t = U x_t + W s_{t-1}, s_t = tanh(z_t), yhat_t = softmax(V s_t), E_t = -y_t^T log yhat_t "
         "(y_t one-hot), E = sum_t E_t; s_0 = 0.")
MAP = {
    "\\delta_3": "the output-layer error at the current step t: dE/d(V s_t); the 3 is the layer, not a time step",
    "\\delta_2": "the hidden-layer error at the current step t, stated by the author to be dE/dz_t (total)",
    "E_3": "the loss of time step 3 (here the index is a time step)",
    "\\circ": "elementwise product",
    "\\otimes": "outer product",
    "s_t": "the hidden state",
}


def forward(P, D, tap):
    s = tap("s", 0, D["s0"])
    out = {"L": 0.0}
    for t in range(1, D["T"] + 1):
        x = D["x"][t - 1]
        z = tap("z", t, P["U"] @ x + P["W"] @ s)
        s = tap("s", t, np.tanh(z))
        o = tap("o", t, P["V"] @ s)
        yh = tap("yhat", t, softmax(o))
        Et = -D["y"][t - 1] @ np.log(yh)
        out[("E", t)] = Et
        out["L"] = out["L"] + tap("E", t, Et)
    return out


def build(cfg):
    rng = np.random.default_rng(cfg["seed"])
    D_, H, C, T = cfg["D"], cfg["H"], cfg["C"], cfg["T"]
    P = dict(U=randn(rng, H, D_, scale=1.0), W=randn(rng, H, H), V=randn(rng, C, H, scale=1.0))
    D = dict(T=T, x=np.stack([onehot(i, D_) for i in rng.integers(0, D_, T)]),
             y=np.stack([onehot(i, C) for i in rng.integers(0, C, T)]), s0=np.zeros(H))
    return Model(forward, P, D, cfg)


S = lambda m, f: sum(f(t) for t in range(1, m.T + 1))

RULES = [
    R(r"z_t &= U x_t + W s_{t-1}", "forward",
      check=lambda m: steps(m, lambda t: (m("z", t), m.P["U"] @ m.data["x"][t - 1] + m.P["W"] @ m("s", t - 1)))),
    R(r"s_t &= \tanh(z_t)", "forward", check=lambda m: steps(m, lambda t: (m("s", t), np.tanh(m("z", t))))),
    R(r"\hat{y}_t &= \mathrm{softmax}(V s_t)", "forward",
      check=lambda m: steps(m, lambda t: (m("yhat", t), softmax(m.P["V"] @ m("s", t))))),
    R(r"E_t(y_t, \hat{y}_t) = -y_t^T \log \hat{y}_t", "forward",
      check=lambda m: steps(m, lambda t: (m("E", t), -m.data["y"][t - 1] @ np.log(m("yhat", t))))),
    R(r"E = \sum_t E_t", "forward", check=lambda m: [(m.losses["L"], S(m, lambda t: m("E", t)))]),
    R(r"s_0 = 0", "forward", check=lambda m: [(m("s", 0), np.zeros(m.H))]),
    R(r"\delta_3 = \hat{y}_t - y_t", "backward",
      check=lambda m: steps(m, lambda t: (m("yhat", t) - m.data["y"][t - 1], m.g("o", t)))),
    R(r"\delta_2 = (V^T \delta_3) \circ (1 - s_t^2)", "backward", "wrong",
      why="delta_2 is meant as dE/dz_t, but only the path through the output of step t is kept: the recurrent term W^T delta_2 of step t+1 is missing inside the parenthesis (right only at the last step)",
      check=lambda m: steps(m, lambda t: ((m.P["V"].T @ m.g("o", t)) * (1 - m("s", t) ** 2), m.g("z", t)))),
    R(r"\frac{\partial E}{\partial V} = \sum_t \delta_3 \, s_t^T", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("o", t), m("s", t))), m.gp("V"))]),
    R(r"\frac{\partial E_3}{\partial V} = (\hat{y}_3 - y_3) \otimes s_3", "backward",
      check=lambda m: [(np.outer(m("yhat", 3) - m.data["y"][2], m("s", 3)), m.gp("V", loss=("E", 3)))]),
    R(r"\frac{\partial E}{\partial W} = \sum_t \delta_2 \, s_{t-1}^T", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("z", t), m("s", t - 1))), m.gp("W"))]),
    R(r"\frac{\partial E}{\partial U} = \sum_t \delta_2 \, x_t^T", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("z", t), m.data["x"][t - 1])), m.gp("U"))]),
]

CONFIGS = [dict(N=1, D=2, H=3, C=3, T=3, seed=0), dict(N=1, D=3, H=3, C=3, T=4, seed=1)]

if __name__ == "__main__":
    main(FILE, MODEL, MAP, RULES, build, CONFIGS)
