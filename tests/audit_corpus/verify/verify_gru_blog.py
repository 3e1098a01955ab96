"""gru_blog.md: blog post, GRU with h_t = (1 - z_t) h_{t-1} + z_t tilde h_t, loss C, deltas at the
pre-activations. Planted: dC/d tilde h_t uses (1 - z_t) where z_t belongs (the gate convention
mixed up)."""
import numpy as np
from common import R, Model, main, sigmoid, softmax, onehot, randn, steps

FILE = "gru_blog.md"
MODEL = ("GRU (Chung et al. update), column convention, one sequence: z_t = sigmoid(W_z x_t + U_z h_{t-1} + b_z), "
         "r_t = sigmoid(W_r x_t + U_r h_{t-1} + b_r), tilde h_t = tanh(W_h x_t + U_h (r_t . h_{t-1}) + b_h), "
         "h_t = (1 - z_t) . h_{t-1} + z_t . tilde h_t, yhat_t = softmax(V h_t + c), C = -sum_t log yhat_t[y_t]; h_0 = 0.")
MAP = {
    "\\delta^z_t, \\delta^r_t, \\delta^h_t": "dC/du^z_t, dC/du^r_t, dC/du^h_t: derivatives at the arguments of the gates' sigmoids and of the candidate's tanh",
    "\\frac{\\partial C}{\\partial h_t}": "the full (total) derivative",
    "\\frac{\\partial C}{\\partial \\tilde h_t}, \\frac{\\partial C}{\\partial z_t}, \\frac{\\partial C}{\\partial r_t}": "total derivatives w.r.t. the candidate and the gates of step t",
    "\\mathbf{1}_{y_t}": "the one-hot column of the target class",
    "\\delta^{\\cdot}_{T+1}, \\frac{\\partial C}{\\partial h_{T+1}}": "zero (the text drops the terms of step T+1)",
}


def forward(P, D, tap):
    h = tap("h", 0, D["h0"])
    out = {"L": 0.0}
    for t in range(1, D["T"] + 1):
        x = D["x"][t - 1]
        hp = tap("h_use", t, h)
        z = tap("z", t, sigmoid(tap("uz", t, P["Wz"] @ x + P["Uz"] @ hp + P["bz"])))
        r = tap("r", t, sigmoid(tap("ur", t, P["Wr"] @ x + P["Ur"] @ hp + P["br"])))
        ht = tap("htilde", t, np.tanh(tap("uh", t, P["Wh"] @ x + P["Uh"] @ (r * hp) + P["bh"])))
        h = tap("h", t, (1 - z) * hp + z * ht)
        yh = tap("yhat", t, softmax(P["V"] @ h + P["c"]))
        out["L"] = out["L"] - np.log(yh[D["y"][t - 1]])
    return out


def build(cfg):
    rng = np.random.default_rng(cfg["seed"])
    D_, H, C, T = cfg["D"], cfg["H"], cfg["C"], cfg["T"]
    P = {}
    for k in ("z", "r", "h"):
        P["W" + k], P["U" + k], P["b" + k] = randn(rng, H, D_, scale=0.9), randn(rng, H, H, scale=0.9), randn(rng, H)
    P["V"], P["c"] = randn(rng, C, H, scale=1.0), randn(rng, C)
    D = dict(T=T, x=randn(rng, T, D_, scale=1.0), y=rng.integers(0, C, T), h0=np.zeros(H))
    return Model(forward, P, D, cfg)


S = lambda m, f: sum(f(t) for t in range(1, m.T + 1))
e = lambda m, t: m("yhat", t) - onehot(m.data["y"][t - 1], m.C)
nxt = lambda m, name, t: m(name, t + 1) if m.has(name, t + 1) else np.zeros(m.H)     # step-T+1 terms dropped
gnx = lambda m, name, t: m.g(name, t + 1) if m.has(name, t + 1) else np.zeros(m.H)

RULES = [
    R(r"z_t = \sigma(W_z x_t + U_z h_{t-1} + b_z)", "forward",
      check=lambda m: steps(m, lambda t: (m("z", t), sigmoid(m.P["Wz"] @ m.data["x"][t - 1] + m.P["Uz"] @ m("h", t - 1) + m.P["bz"])))),
    R(r"r_t = \sigma(W_r x_t + U_r h_{t-1} + b_r)", "forward",
      check=lambda m: steps(m, lambda t: (m("r", t), sigmoid(m.P["Wr"] @ m.data["x"][t - 1] + m.P["Ur"] @ m("h", t - 1) + m.P["br"])))),
    R(r"\tilde h_t = \tanh(W_h x_t + U_h (r_t \odot h_{t-1}) + b_h)", "forward",
      check=lambda m: steps(m, lambda t: (m("htilde", t), np.tanh(m.P["Wh"] @ m.data["x"][t - 1] + m.P["Uh"] @ (m("r", t) * m("h", t - 1)) + m.P["bh"])))),
    R(r"h_t = (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t", "forward",
      check=lambda m: steps(m, lambda t: (m("h", t), (1 - m("z", t)) * m("h", t - 1) + m("z", t) * m("htilde", t)))),
    R(r"h_0 = 0", "forward", check=lambda m: [(m("h", 0), np.zeros(m.H))]),
    R(r"\hat y_t = \mathrm{softmax}(V h_t + c)", "forward",
      check=lambda m: steps(m, lambda t: (m("yhat", t), softmax(m.P["V"] @ m("h", t) + m.P["c"])))),
    R(r"C = -\sum_{t=1}^{T} \log \hat y_t[y_t]", "forward",
      check=lambda m: [(m.losses["L"], -S(m, lambda t: np.log(m("yhat", t)[m.data["y"][t - 1]])))]),
    R(r"\frac{\partial C}{\partial \tilde h_t} = \frac{\partial C}{\partial h_t} \odot (1 - z_t)", "backward", "wrong",
      why="in h_t = (1 - z_t) h_{t-1} + z_t tilde h_t the candidate is weighted by z_t, so dC/d tilde h_t = dC/dh_t . z_t; (1 - z_t) is the weight of h_{t-1} (the other gate convention)",
      check=lambda m: steps(m, lambda t: (m.g("h", t) * (1 - m("z", t)), m.g("htilde", t)))),
    R(r"\frac{\partial C}{\partial z_t} = \frac{\partial C}{\partial h_t} \odot (\tilde h_t - h_{t-1})", "backward",
      check=lambda m: steps(m, lambda t: (m.g("h", t) * (m("htilde", t) - m("h", t - 1)), m.g("z", t)))),
    R(r"\delta^h_t = \frac{\partial C}{\partial \tilde h_t} \odot (1 - \tilde h_t^2)", "backward",
      check=lambda m: steps(m, lambda t: (m.g("htilde", t) * (1 - m("htilde", t) ** 2), m.g("uh", t)))),
    R(r"\delta^z_t = \frac{\partial C}{\partial z_t} \odot z_t \odot (1 - z_t)", "backward",
      check=lambda m: steps(m, lambda t: (m.g("z", t) * m("z", t) * (1 - m("z", t)), m.g("uz", t)))),
    R(r"\frac{\partial C}{\partial r_t} = \left(U_h^\top \delta^h_t\right) \odot h_{t-1}", "backward",
      check=lambda m: steps(m, lambda t: ((m.P["Uh"].T @ m.g("uh", t)) * m("h", t - 1), m.g("r", t)))),
    R(r"\delta^r_t = \frac{\partial C}{\partial r_t} \odot r_t \odot (1 - r_t)", "backward",
      check=lambda m: steps(m, lambda t: (m.g("r", t) * m("r", t) * (1 - m("r", t)), m.g("ur", t)))),
    R(r"t = T", "no claim", why="the boundary case of the recursion, not an equation"),
    R(r"\frac{\partial C}{\partial h_t} = V^\top (\hat y_t - \mathbf{1}_{y_t}) + \frac{\partial C}{\partial h_{t+1}} \odot (1 - z_{t+1}) + U_z^\top \delta^z_{t+1} + U_r^\top \delta^r_{t+1} + \left(U_h^\top \delta^h_{t+1}\right) \odot r_{t+1}", "backward",
      check=lambda m: steps(m, lambda t: (m.P["V"].T @ e(m, t) + gnx(m, "h", t) * (1 - nxt(m, "z", t)) + m.P["Uz"].T @ gnx(m, "uz", t)
                                          + m.P["Ur"].T @ gnx(m, "ur", t) + (m.P["Uh"].T @ gnx(m, "uh", t)) * nxt(m, "r", t), m.g("h", t)))),
    R(r"\frac{\partial C}{\partial U_h} = \sum_{t=1}^{T} \delta^h_t \, (r_t \odot h_{t-1})^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("uh", t), m("r", t) * m("h", t - 1))), m.gp("Uh"))]),
    R(r"\frac{\partial C}{\partial U_z} = \sum_{t=1}^{T} \delta^z_t \, h_{t-1}^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("uz", t), m("h", t - 1))), m.gp("Uz"))]),
    R(r"\frac{\partial C}{\partial W_r} = \sum_{t=1}^{T} \delta^r_t \, x_t^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("ur", t), m.data["x"][t - 1])), m.gp("Wr"))]),
    R(r"\frac{\partial C}{\partial V} = \sum_{t=1}^{T} (\hat y_t - \mathbf{1}_{y_t}) \, h_t^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(e(m, t), m("h", t))), m.gp("V"))]),
]

CONFIGS = [dict(N=1, D=2, H=3, C=3, T=3, seed=0), dict(N=1, D=3, H=3, C=3, T=4, seed=1)]

if __name__ == "__main__":
    main(FILE, MODEL, MAP, RULES, build, CONFIGS)
