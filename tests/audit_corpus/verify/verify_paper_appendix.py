"""paper_appendix.tex: arXiv paper appendix, time as h^{(t)}, loss \\mathcal{L}, f'(a^{(t)}) at the argument,
the author's delta^{(t)} with delta^{(T+1)} = 0, long-range product form, three equations per line.
Planted: a product where a sum belongs in the delta recursion ((V^T eps) . (W^T delta) instead of +)."""
import numpy as np
from functools import reduce
from common import R, Model, main, softmax, onehot, randn, steps

FILE = "paper_appendix.tex"
MODEL = ("Vanilla tanh RNN, column convention, one sequence: a^{(t)} = W h^{(t-1)} + U x^{(t)} + b, h^{(t)} = tanh(a^{(t)}), "
         "o^{(t)} = V h^{(t)} + c, yhat^{(t)} = softmax(o^{(t)}), L = -sum_t log yhat^{(t)}_{y^{(t)}}; h^{(0)} = 0.")
MAP = {
    "^{(t)}": "time step t",
    "\\varepsilon^{(t)}": "dL/do^{(t)}",
    "\\delta^{(t)}": "dL/da^{(t)}, total derivative at the pre-activation",
    "f'(a^{(t)})": "the derivative of f = tanh at its argument",
    "e_k": "the k-th standard basis vector",
    "\\prod_{j=k+1}^{t}": "ordered with j = t on the left (as the text says); the identity when k = t",
    "\\epsilon (last line)": "the finite-difference step, not a gradient",
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
    P = dict(W=randn(rng, H, H, scale=0.9), U=randn(rng, H, D_), b=randn(rng, H), V=randn(rng, C, H, scale=1.0), c=randn(rng, C))
    D = dict(T=T, x=randn(rng, T, D_, scale=1.0), y=rng.integers(0, C, T), h0=np.zeros(H))
    return Model(forward, P, D, cfg)


S = lambda m, f: sum(f(t) for t in range(1, m.T + 1))
fp = lambda m, t: 1 - np.tanh(m("a", t)) ** 2
prod = lambda m, t, k: reduce(lambda A, j: A @ (np.diag(fp(m, j)) @ m.P["W"]), range(t, k, -1), np.eye(m.H))


def true_dht_dhk(m, t, k):
    """d h^(t) / d h^(k) by differences through the forward pass"""
    from common import jac
    def run(hk):
        h = hk
        for j in range(k + 1, t + 1):
            h = np.tanh(m.P["W"] @ h + m.P["U"] @ m.data["x"][j - 1] + m.P["b"])
        return h
    return jac(run, m("h", k))


RULES = [
    R(r"x^{(1)}, \dots, x^{(T)}", "no claim", why="the input sequence, no equation"),
    R(r"h^{(0)} = 0", "forward", check=lambda m: [(m("h", 0), np.zeros(m.H))]),
    R(r"a^{(t)} &= W h^{(t-1)} + U x^{(t)} + b", "forward",
      check=lambda m: steps(m, lambda t: (m("a", t), m.P["W"] @ m("h", t - 1) + m.P["U"] @ m.data["x"][t - 1] + m.P["b"]))),
    R(r"h^{(t)} &= f\big(a^{(t)}\big)", "forward", check=lambda m: steps(m, lambda t: (m("h", t), np.tanh(m("a", t))))),
    R(r"\hat{y}^{(t)} &= \operatorname{softmax}\big(V h^{(t)} + c\big)", "forward",
      check=lambda m: steps(m, lambda t: (m("yhat", t), softmax(m.P["V"] @ m("h", t) + m.P["c"])))),
    R(r"f = \tanh", "forward", check=lambda m: steps(m, lambda t: (m("h", t), np.tanh(m("a", t))))),
    R(r"\mathcal{L} = -\sum_{t=1}^{T} \log \hat{y}^{(t)}_{y^{(t)}}", "forward",
      check=lambda m: [(m.losses["L"], -S(m, lambda t: np.log(m("yhat", t)[m.data["y"][t - 1]])))]),
    R(r"o^{(t)} = V h^{(t)} + c", "forward", check=lambda m: steps(m, lambda t: (m("o", t), m.P["V"] @ m("h", t) + m.P["c"]))),
    R(r"\varepsilon^{(t)} := \partial \mathcal{L} / \partial o^{(t)}", "no claim", why="a definition of notation"),
    R(r"\delta^{(t)} := \partial \mathcal{L} / \partial a^{(t)}", "no claim", why="a definition of notation"),
    R(r"\varepsilon^{(t)} = \hat{y}^{(t)} - e_{y^{(t)}}", "backward",
      check=lambda m: steps(m, lambda t: (m("yhat", t) - onehot(m.data["y"][t - 1], m.C), m.g("o", t)))),
    R(r"\delta^{(t)} = f'\big(a^{(t)}\big) \odot \big(V^\top \varepsilon^{(t)}\big) \odot \big(W^\top \delta^{(t+1)}\big)", "backward", "wrong",
      why="a product where a sum belongs: delta^{(t)} = f'(a^{(t)}) . (V^T eps^{(t)} + W^T delta^{(t+1)}); with delta^{(T+1)} = 0 the product even makes every delta zero",
      check=lambda m: steps(m, lambda t: (fp(m, t) * (m.P["V"].T @ m.g("o", t)) * (m.P["W"].T @ m.g0("a", t + 1, m("a", t))), m.g("a", t)))),
    R(r"\delta^{(T+1)} = 0", "backward", why="boundary convention; checked as the correct recursion at t = T",
      check=lambda m: [(fp(m, m.T) * (m.P["V"].T @ m.g("o", m.T) + m.P["W"].T @ np.zeros(m.H)), m.g("a", m.T))]),
    R(r"k \le t", "no claim", why="the range of k"),
    R(r"\frac{\partial h^{(t)}}{\partial h^{(k)}} = \prod_{j=k+1}^{t} \operatorname{diag}\big(f'(a^{(j)})\big)\, W", "backward",
      check=lambda m: [(prod(m, t, k), true_dht_dhk(m, t, k)) for t in range(1, m.T + 1) for k in range(0, t + 1)]),
    R(r"\frac{\partial \mathcal{L}}{\partial h^{(k)}} = \sum_{t=k}^{T} \left(\frac{\partial h^{(t)}}{\partial h^{(k)}}\right)^{\!\top} V^\top \varepsilon^{(t)}", "backward",
      check=lambda m: [(sum(true_dht_dhk(m, t, k).T @ m.P["V"].T @ m.g("o", t) for t in range(k, m.T + 1)), m.g("h", k))
                       for k in range(1, m.T + 1)]),
    R(r"j = t", "no claim", why="the order of the product, not an equation"),
    R(r"\frac{\partial \mathcal{L}}{\partial W} &= \sum_{t=1}^{T} \delta^{(t)} \big(h^{(t-1)}\big)^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("a", t), m("h", t - 1))), m.gp("W"))]),
    R(r"\frac{\partial \mathcal{L}}{\partial U} &= \sum_{t=1}^{T} \delta^{(t)} \big(x^{(t)}\big)^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("a", t), m.data["x"][t - 1])), m.gp("U"))]),
    R(r"\frac{\partial \mathcal{L}}{\partial b} &= \sum_{t=1}^{T} \delta^{(t)}", "backward",
      check=lambda m: [(S(m, lambda t: m.g("a", t)), m.gp("b"))]),
    R(r"\frac{\partial \mathcal{L}}{\partial V} &= \sum_{t=1}^{T} \varepsilon^{(t)} \big(h^{(t)}\big)^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("o", t), m("h", t))), m.gp("V"))]),
    R(r"\frac{\partial \mathcal{L}}{\partial c} &= \sum_{t=1}^{T} \varepsilon^{(t)}", "backward",
      check=lambda m: [(S(m, lambda t: m.g("o", t)), m.gp("c"))]),
    R(r"\epsilon = 10^{-5}", "no claim", why="the finite-difference step of the authors' check"),
]

CONFIGS = [dict(N=1, D=2, H=3, C=3, T=3, seed=0), dict(N=1, D=3, H=3, C=3, T=4, seed=1)]

if __name__ == "__main__":
    main(FILE, MODEL, MAP, RULES, build, CONFIGS)
