"""hw_solution_h_of_t.tex: homework solution, eqnarray, time in parentheses h(t), tau the last step,
f'(a(t)) prime at the argument, delta(t) with delta(tau+1) = 0.
Planted: a missing parenthesis in the delta recursion -- f'(a(t)) multiplies only the output
term, not the recurrent one."""
import numpy as np
from common import R, Model, main, softmax, onehot, randn, steps

FILE = "hw_solution_h_of_t.tex"
MODEL = ("Vanilla tanh RNN, column convention, one sequence: a(t) = W h(t-1) + U x(t) + b, h(t) = tanh(a(t)), "
         "o(t) = V h(t) + c, yhat(t) = softmax(o(t)), L = sum_t -log yhat_{y(t)}(t); h(0) is a given initial state; "
         "tau is the last step.")
MAP = {
    "h(t), a(t), x(t), ...": "the value at time step t (not a function application)",
    "\\tau": "the last time step T",
    "e(t)": "dL/do(t), the output error",
    "\\delta(t)": "dL/da(t), total derivative at the pre-activation",
    "f'(a(t))": "the derivative of f = tanh at its argument a(t)",
    "\\mathbf{1}_{y(t)}": "one-hot column of the target class y(t)",
}


def forward(P, D, tap):
    h = tap("h", 0, D["h0"])
    out = {"L": 0.0}
    for t in range(1, D["T"] + 1):
        a = tap("a", t, P["W"] @ h + P["U"] @ D["x"][t - 1] + P["b"])
        h = tap("h", t, np.tanh(a))
        o = tap("o", t, P["V"] @ h + P["c"])
        yh = tap("yhat", t, softmax(o))
        Lt = -np.log(yh[D["y"][t - 1]])
        out["L"] = out["L"] + tap("Lt", t, Lt)
    return out


def build(cfg):
    rng = np.random.default_rng(cfg["seed"])
    D_, H, C, T = cfg["D"], cfg["H"], cfg["C"], cfg["T"]
    P = dict(W=randn(rng, H, H), U=randn(rng, H, D_), b=randn(rng, H), V=randn(rng, C, H), c=randn(rng, C))
    D = dict(T=T, x=randn(rng, T, D_, scale=1.0), y=rng.integers(0, C, T), h0=randn(rng, H))
    return Model(forward, P, D, cfg)


S = lambda m, f: sum(f(t) for t in range(1, m.T + 1))
fp = lambda m, t: 1 - np.tanh(m("a", t)) ** 2

RULES = [
    R(r"a(t) &=& W h(t-1) + U x(t) + b", "forward",
      check=lambda m: steps(m, lambda t: (m("a", t), m.P["W"] @ m("h", t - 1) + m.P["U"] @ m.data["x"][t - 1] + m.P["b"]))),
    R(r"h(t) &=& f(a(t))", "forward", check=lambda m: steps(m, lambda t: (m("h", t), np.tanh(m("a", t))))),
    R(r"o(t) &=& V h(t) + c", "forward", check=lambda m: steps(m, lambda t: (m("o", t), m.P["V"] @ m("h", t) + m.P["c"]))),
    R(r"\hat y(t) &=& \mathrm{softmax}(o(t))", "forward", check=lambda m: steps(m, lambda t: (m("yhat", t), softmax(m("o", t))))),
    R(r"t = 1, \ldots, \tau", "no claim", why="the range of t"),
    R(r"f = \tanh", "forward", nth=1, check=lambda m: steps(m, lambda t: (m("h", t), np.tanh(m("a", t))))),
    R(r"f = \tanh", "forward", nth=2, why="restated", check=lambda m: steps(m, lambda t: (m("h", t), np.tanh(m("a", t))))),
    R(r"L = \sum_{t=1}^{\tau} L(t)", "forward", check=lambda m: [(m.losses["L"], S(m, lambda t: m("Lt", t)))]),
    R(r"L(t) = -\log \hat y_{y(t)}(t)", "forward",
      check=lambda m: steps(m, lambda t: (m("Lt", t), -np.log(m("yhat", t)[m.data["y"][t - 1]])))),
    R(r"e(t) = \partial L / \partial o(t)", "no claim", why="a definition of notation"),
    R(r"e(t) = \hat y(t) - \mathbf{1}_{y(t)}", "backward",
      check=lambda m: steps(m, lambda t: (m("yhat", t) - onehot(m.data["y"][t - 1], m.C), m.g("o", t)))),
    R(r"\delta(t) = \partial L / \partial a(t)", "no claim", why="a definition of notation"),
    R(r"\delta(t) = f'(a(t)) \odot V^\top e(t) + W^\top \delta(t+1)", "backward", "wrong",
      why="missing parenthesis: f'(a(t)) must multiply both terms, delta(t) = f'(a(t)) . (V^T e(t) + W^T delta(t+1)); as written the recurrent term skips the tanh derivative",
      check=lambda m: steps(m, lambda t: (fp(m, t) * (m.P["V"].T @ m.g("o", t)) + m.P["W"].T @ m.g0("a", t + 1, m("a", t)), m.g("a", t)))),
    R(r"t = \tau, \tau - 1, \ldots, 1", "no claim", why="the order of the recursion"),
    R(r"\delta(\tau + 1) = 0", "backward", why="boundary convention; checked as the correct recursion at t = tau",
      check=lambda m: [(fp(m, m.T) * (m.P["V"].T @ m.g("o", m.T) + m.P["W"].T @ np.zeros(m.H)), m.g("a", m.T))]),
    R(r"f'(a) = 1 - f(a)^2", "backward", why="the tanh derivative written with its value",
      check=lambda m: steps(m, lambda t: (1 - np.tanh(m("a", t)) ** 2, fp(m, t)))),
    R(r"f'(a(t)) = 1 - h(t)^2", "backward", check=lambda m: steps(m, lambda t: (1 - m("h", t) ** 2, fp(m, t)))),
    R(r"\frac{\partial L}{\partial W} &=& \sum_{t=1}^{\tau} \delta(t)\, h(t-1)^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("a", t), m("h", t - 1))), m.gp("W"))]),
    R(r"\frac{\partial L}{\partial U} &=& \sum_{t=1}^{\tau} \delta(t)\, x(t)^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("a", t), m.data["x"][t - 1])), m.gp("U"))]),
    R(r"\frac{\partial L}{\partial b} &=& \sum_{t=1}^{\tau} \delta(t)", "backward",
      check=lambda m: [(S(m, lambda t: m.g("a", t)), m.gp("b"))]),
    R(r"\frac{\partial L}{\partial V} &=& \sum_{t=1}^{\tau} e(t)\, h(t)^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("o", t), m("h", t))), m.gp("V"))]),
    R(r"\frac{\partial L}{\partial c} &=& \sum_{t=1}^{\tau} e(t)", "backward",
      check=lambda m: [(S(m, lambda t: m.g("o", t)), m.gp("c"))]),
    R(r"\frac{\partial L}{\partial h(0)} = W^\top \delta(1)", "backward",
      check=lambda m: [(m.P["W"].T @ m.g("a", 1), m.g("h", 0))]),
]

CONFIGS = [dict(N=1, D=2, H=3, C=3, T=3, seed=0), dict(N=1, D=3, H=3, C=3, T=4, seed=1)]

if __name__ == "__main__":
    main(FILE, MODEL, MAP, RULES, build, CONFIGS)
