"""gru_pytorch_abstract.md: a blog post re-implementing torch.nn.GRUCell: two biases per gate,
the reset gate after the recurrent product, h_t = (1 - z_t) n_t + z_t h_{t-1}, named
pre-activations a^r_t, a^z_t, a^n_t, \\nabla_v L, a loss \\ell(o_t, y_t) left abstract (its
gradient \\nabla_{o_t} \\ell(o_t, y_t) is given). Column vectors, h_0 given. No planted mistake."""
import numpy as np
from common import R, Model, main, sigmoid, randn, steps

FILE = "gru_pytorch_abstract.md"
MODEL = ("PyTorch GRU, column convention, one sequence: a^r_t = W_ir x_t + b_ir + W_hr h_{t-1} + b_hr, r_t = sigmoid(a^r_t), "
         "a^z_t likewise, a^n_t = W_in x_t + b_in + r_t . (W_hn h_{t-1} + b_hn), n_t = tanh(a^n_t), "
         "h_t = (1 - z_t) . n_t + z_t . h_{t-1}, o_t = W_ho h_t + b_o, L = sum_t ell(o_t, y_t) for any smooth ell "
         "(checked with ell(o, y) = 1/2 ||o - y||^2 + sum(o^3)/3); h_0 given.")
MAP = {"\\nabla_v L": "the total gradient dL/dv", "\\nabla_{o_t} \\ell(o_t, y_t)": "dell/do_t, given",
       "terms of step T+1": "zero"}
GATES = "rzn"


def ell(o, y):
    return 0.5 * np.sum((o - y) ** 2) + np.sum(o ** 3) / 3


def forward(P, D, tap):
    h = tap("h", 0, D["h0"])
    out = {"L": 0.0}
    for t in range(1, D["T"] + 1):
        x = D["x"][t - 1]
        r = tap("r", t, sigmoid(tap("ar", t, P["Wir"] @ x + P["bir"] + P["Whr"] @ h + P["bhr"])))
        z = tap("z", t, sigmoid(tap("az", t, P["Wiz"] @ x + P["biz"] + P["Whz"] @ h + P["bhz"])))
        n = tap("n", t, np.tanh(tap("an", t, P["Win"] @ x + P["bin"] + r * (P["Whn"] @ h + P["bhn"]))))
        h = tap("h", t, (1 - z) * n + z * h)
        o = tap("o", t, P["Who"] @ h + P["bo"])
        out["L"] = out["L"] + ell(o, D["y"][t - 1])
    return out


def build(cfg):
    rng = np.random.default_rng(cfg["seed"])
    D_, H, K, T = cfg["D"], cfg["H"], cfg["C"], cfg["T"]
    P = {}
    for g in GATES:
        P["Wi" + g], P["Wh" + g] = randn(rng, H, D_), randn(rng, H, H, scale=0.8)
        P["bi" + g], P["bh" + g] = randn(rng, H), randn(rng, H)
    P["Who"], P["bo"] = randn(rng, K, H), randn(rng, K)
    D = dict(T=T, x=randn(rng, T, D_, scale=1.0), y=randn(rng, T, K, scale=1.0), h0=randn(rng, H))
    return Model(forward, P, D, cfg)


S = lambda m, f: sum(f(t) for t in range(1, m.T + 1))
go = lambda m, t: (m("o", t) - m.data["y"][t - 1]) + m("o", t) ** 2
nv = lambda m, n, t: m(n, t) if m.has(n, t) else np.zeros(m.H)
ng = lambda m, n, t: m.g0(n, t, m(n, m.T))


def grad_h(m, t, prev=False):
    P = m.P
    s = t + 1
    out = (0 if prev else P["Who"].T @ go(m, t)) + nv(m, "z", s) * ng(m, "h", s)
    return out + P["Whr"].T @ ng(m, "ar", s) + P["Whz"].T @ ng(m, "az", s) + P["Whn"].T @ (nv(m, "r", s) * ng(m, "an", s))


RULES = [
    R(r"a^r_t = W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}", "forward",
      check=lambda m: steps(m, lambda t: (m("ar", t), m.P["Wir"] @ m.data["x"][t - 1] + m.P["bir"] + m.P["Whr"] @ m("h", t - 1) + m.P["bhr"]))),
    R(r"r_t = \sigma(a^r_t)", "forward", check=lambda m: steps(m, lambda t: (m("r", t), sigmoid(m("ar", t))))),
    R(r"a^z_t = W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}", "forward",
      check=lambda m: steps(m, lambda t: (m("az", t), m.P["Wiz"] @ m.data["x"][t - 1] + m.P["biz"] + m.P["Whz"] @ m("h", t - 1) + m.P["bhz"]))),
    R(r"z_t = \sigma(a^z_t)", "forward", check=lambda m: steps(m, lambda t: (m("z", t), sigmoid(m("az", t))))),
    R(r"a^n_t = W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})", "forward",
      check=lambda m: steps(m, lambda t: (m("an", t), m.P["Win"] @ m.data["x"][t - 1] + m.P["bin"] + m("r", t) * (m.P["Whn"] @ m("h", t - 1) + m.P["bhn"])))),
    R(r"n_t = \tanh(a^n_t)", "forward", check=lambda m: steps(m, lambda t: (m("n", t), np.tanh(m("an", t))))),
    R(r"h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}", "forward",
      check=lambda m: steps(m, lambda t: (m("h", t), (1 - m("z", t)) * m("n", t) + m("z", t) * m("h", t - 1)))),
    R(r"o_t = W_{ho} h_t + b_o", "forward", check=lambda m: steps(m, lambda t: (m("o", t), m.P["Who"] @ m("h", t) + m.P["bo"]))),
    R(r"L = \sum_{t=1}^{T} \ell(o_t, y_t)", "forward", check=lambda m: [(m.losses["L"], S(m, lambda t: ell(m("o", t), m.data["y"][t - 1])))]),
    R(r"\nabla_{h_t} L = W_{ho}^\top \nabla_{o_t} \ell(o_t, y_t) + z_{t+1} \odot \nabla_{h_{t+1}} L + W_{hr}^\top \nabla_{a^r_{t+1}} L + W_{hz}^\top \nabla_{a^z_{t+1}} L + W_{hn}^\top \big(r_{t+1} \odot \nabla_{a^n_{t+1}} L\big)", "backward",
      check=lambda m: steps(m, lambda t: (grad_h(m, t), m.g("h", t)))),
    R(r"\nabla_{n_t} L = (1 - z_t) \odot \nabla_{h_t} L", "backward",
      check=lambda m: steps(m, lambda t: ((1 - m("z", t)) * m.g("h", t), m.g("n", t)))),
    R(r"\nabla_{z_t} L = (h_{t-1} - n_t) \odot \nabla_{h_t} L", "backward",
      check=lambda m: steps(m, lambda t: ((m("h", t - 1) - m("n", t)) * m.g("h", t), m.g("z", t)))),
    R(r"\nabla_{a^n_t} L = (1 - n_t \odot n_t) \odot \nabla_{n_t} L", "backward",
      check=lambda m: steps(m, lambda t: ((1 - m("n", t) ** 2) * m.g("n", t), m.g("an", t)))),
    R(r"\nabla_{a^z_t} L = z_t \odot (1 - z_t) \odot \nabla_{z_t} L", "backward",
      check=lambda m: steps(m, lambda t: (m("z", t) * (1 - m("z", t)) * m.g("z", t), m.g("az", t)))),
    R(r"\nabla_{r_t} L = \nabla_{a^n_t} L \odot (W_{hn} h_{t-1} + b_{hn})", "backward",
      check=lambda m: steps(m, lambda t: (m.g("an", t) * (m.P["Whn"] @ m("h", t - 1) + m.P["bhn"]), m.g("r", t)))),
    R(r"\nabla_{a^r_t} L = r_t \odot (1 - r_t) \odot \nabla_{r_t} L", "backward",
      check=lambda m: steps(m, lambda t: (m("r", t) * (1 - m("r", t)) * m.g("r", t), m.g("ar", t)))),
    R(r"\nabla_{W_{in}} L = \sum_{t=1}^{T} \nabla_{a^n_t} L \, x_t^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("an", t), m.data["x"][t - 1])), m.gp("Win"))]),
    R(r"\nabla_{b_{in}} L = \sum_{t=1}^{T} \nabla_{a^n_t} L", "backward", check=lambda m: [(S(m, lambda t: m.g("an", t)), m.gp("bin"))]),
    R(r"\nabla_{W_{hn}} L = \sum_{t=1}^{T} \big(r_t \odot \nabla_{a^n_t} L\big) h_{t-1}^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m("r", t) * m.g("an", t), m("h", t - 1))), m.gp("Whn"))]),
    R(r"\nabla_{b_{hn}} L = \sum_{t=1}^{T} r_t \odot \nabla_{a^n_t} L", "backward",
      check=lambda m: [(S(m, lambda t: m("r", t) * m.g("an", t)), m.gp("bhn"))]),
    R(r"\nabla_{W_{hz}} L = \sum_{t=1}^{T} \nabla_{a^z_t} L \, h_{t-1}^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("az", t), m("h", t - 1))), m.gp("Whz"))]),
    R(r"\nabla_{b_{iz}} L = \nabla_{b_{hz}} L = \sum_{t=1}^{T} \nabla_{a^z_t} L", "backward",
      check=lambda m: [(m.gp("bhz"), m.gp("biz")), (S(m, lambda t: m.g("az", t)), m.gp("biz"))]),
    R(r"\nabla_{W_{ir}} L = \sum_{t=1}^{T} \nabla_{a^r_t} L \, x_t^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("ar", t), m.data["x"][t - 1])), m.gp("Wir"))]),
    R(r"\nabla_{W_{ho}} L = \sum_{t=1}^{T} \nabla_{o_t} \ell(o_t, y_t) \, h_t^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(go(m, t), m("h", t))), m.gp("Who"))]),
    R(r"\nabla_{h_0} L = z_1 \odot \nabla_{h_1} L + W_{hr}^\top \nabla_{a^r_1} L + W_{hz}^\top \nabla_{a^z_1} L + W_{hn}^\top \big(r_1 \odot \nabla_{a^n_1} L\big)", "backward", check=lambda m: [(grad_h(m, 0, prev=True), m.gd("h0"))]),
]

CONFIGS = [dict(N=1, D=2, H=3, C=2, T=3, seed=0), dict(N=1, D=3, H=3, C=3, T=4, seed=1)]

if __name__ == "__main__":
    main(FILE, MODEL, MAP, RULES, build, CONFIGS)
