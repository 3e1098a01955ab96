"""se_answer_unicode.md: a StackExchange question and answer with Unicode math inside $...$
(∂, ∑, ⊙, ᵀ, ŷ, −): vanilla tanh RNN in columns, one sequence, softmax cross-entropy, h_0 = 0.
Planted (the asker's): dL/dh_t multiplies dL/da_{t+1} by W where W^T belongs."""
import numpy as np
from common import R, Model, main, softmax, onehot, randn, steps

FILE = "se_answer_unicode.md"
MODEL = ("vanilla RNN, column convention, one sequence: a_t = W h_{t-1} + U x_t + b, h_t = tanh(a_t), "
         "o_t = V h_t + c, yhat_t = softmax(o_t), L = -sum_t y_t^T log yhat_t (y_t one-hot); h_0 = 0.")
MAP = {
    "∂L/∂v": "the total derivative of L by v",
    "y_t": "the one-hot target column",
    "∂L/∂a_{T+1}": "zero (no step T+1)",
}


def forward(P, D, tap):
    h = tap("h", 0, D["h0"])
    out = {"L": 0.0}
    for t in range(1, D["T"] + 1):
        a = tap("a", t, P["W"] @ h + P["U"] @ D["x"][t - 1] + P["b"])
        h = tap("h", t, np.tanh(a))
        o = tap("o", t, P["V"] @ h + P["c"])
        yh = tap("yhat", t, softmax(o))
        out["L"] = out["L"] - np.log(yh[D["y"][t - 1]])
    return out


def build(cfg):
    rng = np.random.default_rng(cfg["seed"])
    D_, H, C, T = cfg["D"], cfg["H"], cfg["C"], cfg["T"]
    P = dict(W=randn(rng, H, H, scale=0.9), U=randn(rng, H, D_), b=randn(rng, H), V=randn(rng, C, H), c=randn(rng, C))
    D = dict(T=T, x=randn(rng, T, D_, scale=1.0), y=rng.integers(0, C, T), h0=np.zeros(H))
    return Model(forward, P, D, cfg)


S = lambda m, f: sum(f(t) for t in range(1, m.T + 1))
e = lambda m, t: m("yhat", t) - onehot(m.data["y"][t - 1], m.C)
da = lambda m, t: m.g0("a", t, m("a", m.T))
W = lambda m: m.P["W"]

RULES = [
    R(r"h_t = \tanh(W h_{t−1} + U x_t + b)", "forward",
      check=lambda m: steps(m, lambda t: (m("h", t), np.tanh(m.P["W"] @ m("h", t - 1) + m.P["U"] @ m.data["x"][t - 1] + m.P["b"])))),
    R(r"o_t = V h_t + c", "forward", check=lambda m: steps(m, lambda t: (m("o", t), m.P["V"] @ m("h", t) + m.P["c"]))),
    R(r"ŷ_t = \mathrm{softmax}(o_t)", "forward", check=lambda m: steps(m, lambda t: (m("yhat", t), softmax(m("o", t))))),
    R(r"h_0 = 0", "forward", check=lambda m: [(m("h", 0), np.zeros(m.H))]),
    R(r"L = −∑_{t=1}^{T} y_tᵀ \log ŷ_t", "forward",
      check=lambda m: [(m.losses["L"], -S(m, lambda t: onehot(m.data["y"][t - 1], m.C) @ np.log(m("yhat", t))))]),
    R(r"a_t = W h_{t−1} + U x_t + b", "forward",
      check=lambda m: steps(m, lambda t: (m("a", t), m.P["W"] @ m("h", t - 1) + m.P["U"] @ m.data["x"][t - 1] + m.P["b"]))),
    R(r"∂L/∂o_t = ŷ_t − y_t", "backward", check=lambda m: steps(m, lambda t: (e(m, t), m.g("o", t)))),
    R(r"∂L/∂h_t = Vᵀ (ŷ_t − y_t) + W\, ∂L/∂a_{t+1}", "backward", "wrong",
      why="the recurrent Jacobian da_{t+1}/dh_t = W must be transposed: Wᵀ ∂L/∂a_{t+1} (the asker's mistake)",
      check=lambda m: steps(m, lambda t: (m.P["V"].T @ e(m, t) + W(m) @ da(m, t + 1), m.g("h", t)))),
    R(r"∂L/∂a_t = (1 − h_t ⊙ h_t) ⊙ ∂L/∂h_t", "backward",
      check=lambda m: steps(m, lambda t: ((1 - m("h", t) ** 2) * m.g("h", t), m.g("a", t)))),
    R(r"∂L/∂W = ∑_{t=1}^{T} ∂L/∂a_t \, h_{t−1}ᵀ", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("a", t), m("h", t - 1))), m.gp("W"))]),
    R(r"∂L/∂U = ∑_t ∂L/∂a_t \, x_tᵀ", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("a", t), m.data["x"][t - 1])), m.gp("U"))]),
    R(r"∂L/∂b = ∑_t ∂L/∂a_t", "backward", check=lambda m: [(S(m, lambda t: m.g("a", t)), m.gp("b"))]),
    R(r"a_{t+1} = W h_t + \dots", "no claim", why="a partial restatement of the forward pass"),
    R(r"∂L/∂h_t = (∂o_t/∂h_t)ᵀ ∂L/∂o_t + (∂a_{t+1}/∂h_t)ᵀ ∂L/∂a_{t+1} = Vᵀ (ŷ_t − y_t) + Wᵀ ∂L/∂a_{t+1}", "backward",
      why="both members right: the Jacobians transposed",
      check=lambda m: steps(m, lambda t: (m.P["V"].T @ e(m, t) + W(m).T @ da(m, t + 1), m.g("h", t)))),
    R(r"∂L/∂a_{T+1} = 0", "backward", why="boundary convention (there is no step T+1); checked as the recursion at t = T",
      check=lambda m: [(m.P["V"].T @ e(m, m.T) + W(m).T @ np.zeros(m.H), m.g("h", m.T))]),
    R(r"W = Wᵀ", "no claim", why="a condition in prose (a symmetric W), no rule"),
    R(r"∂L/∂V = ∑_{t=1}^{T} (ŷ_t − y_t)\, h_tᵀ", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(e(m, t), m("h", t))), m.gp("V"))]),
    R(r"∂L/∂c = ∑_{t=1}^{T} (ŷ_t − y_t)", "backward", check=lambda m: [(S(m, lambda t: e(m, t)), m.gp("c"))]),
    R(r"∂L/∂h_0 = Wᵀ ∂L/∂a_1", "backward", check=lambda m: [(W(m).T @ m.g("a", 1), m.g("h", 0))]),
]

CONFIGS = [dict(N=1, D=2, H=3, C=3, T=3, seed=0), dict(N=1, D=3, H=3, C=3, T=4, seed=1)]

if __name__ == "__main__":
    main(FILE, MODEL, MAP, RULES, build, CONFIGS)
