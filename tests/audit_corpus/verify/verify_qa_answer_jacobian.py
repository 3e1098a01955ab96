"""qa_answer_jacobian.md: Q&A page (question, accepted answer, comment), Jacobian chains
A = B = C, derivative of one loss term dL^{(t)}/do_t with time as a subscript elsewhere.
Planted: the asker's quoted formula (recurrent term missing) and, in the answer, dL/dW written
as the share of one step t (no sum over t)."""
import numpy as np
from common import R, Model, main, softmax, onehot, randn, steps, jac

FILE = "qa_answer_jacobian.md"
MODEL = ("Vanilla tanh RNN without biases, column convention, one sequence: h_t = tanh(W h_{t-1} + U x_t), o_t = V h_t, "
         "yhat_t = softmax(o_t), L = sum_t L^{(t)} with L^{(t)} = -y_t^T log yhat_t (y_t one-hot); h_0 = 0.")
MAP = {
    "L^{(t)}": "the loss term of step t (the superscript is a time step)",
    "\\frac{\\partial L}{\\partial o_t}\\frac{\\partial o_t}{\\partial h_t} (middle members)": "products of Jacobians with the layouts left loose, as the answer says; read as the chain rule (the column-vector value on the right)",
    "\\frac{\\partial h_{t+1}}{\\partial h_t}": "the Jacobian in numerator layout, [i, j] = d h_{t+1, i} / d h_{t, j}",
    "y_t": "one-hot target column",
}


def forward(P, D, tap):
    h = tap("h", 0, D["h0"])
    out = {"L": 0.0}
    for t in range(1, D["T"] + 1):
        h = tap("h", t, np.tanh(P["W"] @ h + P["U"] @ D["x"][t - 1]))
        o = tap("o", t, P["V"] @ h)
        yh = tap("yhat", t, softmax(o))
        Lt = -D["y"][t - 1] @ np.log(yh)
        out[("Lt", t)] = Lt
        out["L"] = out["L"] + tap("Lt", t, Lt)
    return out


def build(cfg):
    rng = np.random.default_rng(cfg["seed"])
    D_, H, C, T = cfg["D"], cfg["H"], cfg["C"], cfg["T"]
    P = dict(W=randn(rng, H, H, scale=0.9), U=randn(rng, H, D_, scale=1.0), V=randn(rng, C, H, scale=1.0))
    D = dict(T=T, x=randn(rng, T, D_, scale=1.0), y=np.stack([onehot(i, C) for i in rng.integers(0, C, T)]), h0=np.zeros(H))
    return Model(forward, P, D, cfg)


S = lambda m, f: sum(f(t) for t in range(1, m.T + 1))
Jh = lambda m, t: jac(lambda h: np.tanh(m.P["W"] @ h + m.P["U"] @ m.data["x"][t]), m("h", t))   # d h_{t+1} / d h_t
dtanh = lambda m, t: 1 - m("h", t) ** 2

RULES = [
    R(r"h_t = \tanh(W h_{t-1} + U x_t)", "forward",
      check=lambda m: steps(m, lambda t: (m("h", t), np.tanh(m.P["W"] @ m("h", t - 1) + m.P["U"] @ m.data["x"][t - 1])))),
    R(r"o_t = V h_t", "forward", check=lambda m: steps(m, lambda t: (m("o", t), m.P["V"] @ m("h", t)))),
    R(r"\hat y_t = \mathrm{softmax}(o_t)", "forward", check=lambda m: steps(m, lambda t: (m("yhat", t), softmax(m("o", t))))),
    R(r"h_0 = 0", "forward", check=lambda m: [(m("h", 0), np.zeros(m.H))]),
    R(r"L = \sum_t L^{(t)}", "forward", check=lambda m: [(m.losses["L"], S(m, lambda t: m("Lt", t)))]),
    R(r"L^{(t)} = -y_t^\top \log \hat y_t", "forward",
      check=lambda m: steps(m, lambda t: (m("Lt", t), -m.data["y"][t - 1] @ np.log(m("yhat", t))))),
    R(r"\frac{\partial L}{\partial h_t} = V^\top \frac{\partial L}{\partial o_t}", "backward", "wrong",
      why="the asker's formula (quoted): h_t also feeds h_{t+1}, so the recurrent term W^T diag(1 - h_{t+1}^2) dL/dh_{t+1} is missing; right only at t = T, as the question itself observes",
      check=lambda m: steps(m, lambda t: (m.P["V"].T @ m.g("o", t), m.g("h", t)))),
    R(r"t = T", "no claim", nth=1, why="the case the formula holds for, not an equation"),
    R(r"\frac{\partial L}{\partial o_t} = \frac{\partial L^{(t)}}{\partial o_t}", "backward",
      check=lambda m: steps(m, lambda t: (m.g("o", t, loss=("Lt", t)), m.g("o", t)))),
    R(r"\frac{\partial L^{(t)}}{\partial o_t} = \mathrm{softmax}(o_t) - y_t", "backward",
      check=lambda m: steps(m, lambda t: (softmax(m("o", t)) - m.data["y"][t - 1], m.g("o", t, loss=("Lt", t))))),
    R(r"\frac{\partial L}{\partial h_T} = \frac{\partial L}{\partial o_T}\frac{\partial o_T}{\partial h_T} = V^\top \frac{\partial L}{\partial o_T}", "backward",
      check=lambda m: [(m.g("o", m.T) @ m.P["V"], m.g("h", m.T)), (m.P["V"].T @ m.g("o", m.T), m.g("h", m.T))]),
    R(r"\frac{\partial h_{t+1}}{\partial h_t} = \mathrm{diag}(1 - h_{t+1}^2)\, W", "backward",
      check=lambda m: steps(m, lambda t: (np.diag(dtanh(m, t + 1)) @ m.P["W"], Jh(m, t)), range(0, m.T))),
    R(r"\frac{\partial L}{\partial h_t} = \frac{\partial L}{\partial o_t}\frac{\partial o_t}{\partial h_t} + \frac{\partial L}{\partial h_{t+1}}\frac{\partial h_{t+1}}{\partial h_t} = V^\top \frac{\partial L}{\partial o_t} + W^\top \mathrm{diag}(1 - h_{t+1}^2) \frac{\partial L}{\partial h_{t+1}}", "backward",
      why="for t < T as the text says (and for every t with dL/dh_{T+1} = 0, as the comment says)",
      check=lambda m: sum(([(m.g("o", t) @ m.P["V"] + m.g("h", t + 1) @ Jh(m, t), m.g("h", t)),
                            (m.P["V"].T @ m.g("o", t) + m.P["W"].T @ np.diag(dtanh(m, t + 1)) @ m.g("h", t + 1), m.g("h", t))]
                           for t in range(1, m.T)), [])),
    R(r"\frac{\partial L}{\partial W} = \left(\frac{\partial L}{\partial h_t} \odot (1 - h_t^2)\right) h_{t-1}^\top", "backward", "wrong",
      why="the share of one step t written as the total gradient: W is used at every step, so dL/dW = sum_{t=1}^{T} (dL/dh_t . (1 - h_t^2)) h_{t-1}^T (the sum over t is missing)",
      check=lambda m: steps(m, lambda t: (np.outer(m.g("h", t) * dtanh(m, t), m("h", t - 1)), m.gp("W")))),
    R(r"\frac{\partial L}{\partial U} = \sum_{t=1}^{T} \left(\frac{\partial L}{\partial h_t} \odot (1 - h_t^2)\right) x_t^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("h", t) * dtanh(m, t), m.data["x"][t - 1])), m.gp("U"))]),
    R(r"\frac{\partial L}{\partial V} = \sum_{t=1}^{T} \frac{\partial L^{(t)}}{\partial o_t} h_t^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("o", t, loss=("Lt", t)), m("h", t))), m.gp("V"))]),
    R(r"\frac{\partial L}{\partial h_{T+1}} = 0", "backward", why="boundary convention (comment); checked as the recursion at t = T",
      check=lambda m: [(m.P["V"].T @ m.g("o", m.T) + m.P["W"].T @ np.zeros(m.H), m.g("h", m.T))]),
]

CONFIGS = [dict(N=1, D=2, H=3, C=3, T=3, seed=0), dict(N=1, D=3, H=3, C=3, T=4, seed=1)]

if __name__ == "__main__":
    main(FILE, MODEL, MAP, RULES, build, CONFIGS)
