"""lab_relu_minibatch.ipynb: a lab notebook, ReLU RNN on a minibatch of N rows (capital matrices
per step, N x D), softmax cross-entropy averaged over all N T predictions, the ReLU derivative
as an indicator \\mathbb{1}[A_t > 0], Y_t defined in prose as the one-hot matrix. No planted
mistake (the code cells are not part of the derivation)."""
import numpy as np
from common import R, Model, main, softmax, onehot, randn, steps

FILE = "lab_relu_minibatch.ipynb"
MODEL = ("ReLU RNN, row convention, a minibatch of N rows: A_t = X_t W_x + H_{t-1} W_h + b, H_t = ReLU(A_t), "
         "S_t = H_t W_y + c, P_t = softmax(S_t) per row, L = -1/(NT) sum_t sum_n log (P_t)_{n, y_{t,n}}; H_0 given.")
MAP = {"dV": "dL/dV, the shape of V", "Y_t": "the N x C one-hot matrix of the targets", "\\mathbb{1}[A_t > 0]": "ReLU's derivative"}


def forward(P, D, tap):
    H = tap("H", 0, D["H0"])
    out = {"L": 0.0}
    N, T = D["N"], D["T"]
    for t in range(1, T + 1):
        A = tap("A", t, D["X"][t - 1] @ P["Wx"] + H @ P["Wh"] + P["b"])
        H = tap("H", t, np.maximum(0, A))
        S_ = tap("S", t, H @ P["Wy"] + P["c"])
        Pt = tap("P", t, softmax(S_, axis=1))
        out["L"] = out["L"] - np.sum(np.log(Pt[np.arange(N), D["y"][t - 1]])) / (N * T)
    return out


def build(cfg):
    rng = np.random.default_rng(cfg["seed"])
    N, D_, H, C, T = cfg["N"], cfg["D"], cfg["H"], cfg["C"], cfg["T"]
    P = dict(Wx=randn(rng, D_, H), Wh=randn(rng, H, H, scale=0.7), b=randn(rng, H), Wy=randn(rng, H, C), c=randn(rng, C))
    D = dict(N=N, T=T, X=randn(rng, T, N, D_, scale=1.0), y=rng.integers(0, C, (T, N)), H0=randn(rng, N, H))
    return Model(forward, P, D, cfg)


S = lambda m, f: sum(f(t) for t in range(1, m.T + 1))
Y = lambda m, t: onehot(m.data["y"][t - 1], m.C)
dA = lambda m, t: m.g0("A", t, m("A", m.T))

RULES = [
    R(r"A_t = X_t W_x + H_{t-1} W_h + b", "forward",
      check=lambda m: steps(m, lambda t: (m("A", t), m.data["X"][t - 1] @ m.P["Wx"] + m("H", t - 1) @ m.P["Wh"] + m.P["b"]))),
    R(r"H_t = \mathrm{ReLU}(A_t)", "forward", check=lambda m: steps(m, lambda t: (m("H", t), np.maximum(0, m("A", t))))),
    R(r"S_t = H_t W_y + c", "forward", check=lambda m: steps(m, lambda t: (m("S", t), m("H", t) @ m.P["Wy"] + m.P["c"]))),
    R(r"P_t = \mathrm{softmax}(S_t)", "forward", check=lambda m: steps(m, lambda t: (m("P", t), softmax(m("S", t), axis=1)))),
    R(r"L = -\frac{1}{NT} \sum_{t=1}^{T} \sum_{n=1}^{N} \log (P_t)_{n, y_{t,n}}", "forward",
      check=lambda m: [(m.losses["L"], -S(m, lambda t: np.sum(np.log(m("P", t)[np.arange(m.N), m.data["y"][t - 1]]))) / (m.N * m.T))]),
    R(r"dS_t = \frac{1}{NT}(P_t - Y_t)", "backward",
      check=lambda m: steps(m, lambda t: ((m("P", t) - Y(m, t)) / (m.N * m.T), m.g("S", t)))),
    R(r"dA_{T+1} = 0", "backward", why="boundary convention; checked as Q2 at t = T",
      check=lambda m: [(m.g("S", m.T) @ m.P["Wy"].T + np.zeros((m.N, m.H)) @ m.P["Wh"].T, m.g("H", m.T))]),
    R(r"dH_t = dS_t W_y^\top + dA_{t+1} W_h^\top", "backward",
      check=lambda m: steps(m, lambda t: (m.g("S", t) @ m.P["Wy"].T + dA(m, t + 1) @ m.P["Wh"].T, m.g("H", t)))),
    R(r"dA_t = dH_t \odot \mathbb{1}[A_t > 0]", "backward", why="the indicator of the active units (not a one-hot)",
      check=lambda m: steps(m, lambda t: (m.g("H", t) * (m("A", t) > 0), m.g("A", t)))),
    R(r"dW_x = \sum_{t=1}^{T} X_t^\top dA_t", "backward",
      check=lambda m: [(S(m, lambda t: m.data["X"][t - 1].T @ m.g("A", t)), m.gp("Wx"))]),
    R(r"dW_h = \sum_{t=1}^{T} H_{t-1}^\top dA_t", "backward",
      check=lambda m: [(S(m, lambda t: m("H", t - 1).T @ m.g("A", t)), m.gp("Wh"))]),
    R(r"db = \sum_{t=1}^{T} \mathbf{1}_N^\top dA_t", "backward",
      check=lambda m: [(S(m, lambda t: np.ones(m.N) @ m.g("A", t)), m.gp("b"))]),
    R(r"dW_y = \sum_{t=1}^{T} H_t^\top dS_t", "backward", check=lambda m: [(S(m, lambda t: m("H", t).T @ m.g("S", t)), m.gp("Wy"))]),
    R(r"dc = \sum_{t=1}^{T} \sum_{n=1}^{N} (dS_t)_{n,:}", "backward",
      check=lambda m: [(S(m, lambda t: m.g("S", t).sum(0)), m.gp("c"))]),
    R(r"dH_0 = dA_1 W_h^\top", "backward", check=lambda m: [(m.g("A", 1) @ m.P["Wh"].T, m.gd("H0"))]),
]

CONFIGS = [dict(N=2, D=2, H=3, C=3, T=3, seed=0), dict(N=3, D=3, H=3, C=3, T=4, seed=1)]

if __name__ == "__main__":
    main(FILE, MODEL, MAP, RULES, build, CONFIGS)
