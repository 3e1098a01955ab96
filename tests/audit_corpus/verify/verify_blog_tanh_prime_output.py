"""blog_tanh_prime_output.md: blog post with \\( \\) and \\[ \\], loss C, the author's own
convention tanh'(h_t) := 1 - h_t^2 (derivative written at the OUTPUT, not at the argument).
No planted mistake: every rule is right under the author's stated reading. (Read as "the
derivative at the argument h_t", i.e. 1 - tanh(h_t)^2, the same rules would be wrong; this
script checks that too, to make sure the reading matters.)"""
import numpy as np
from common import R, Model, main, softmax, onehot, randn, steps

FILE = "blog_tanh_prime_output.md"
MODEL = ("Vanilla tanh RNN, column convention, one sequence: h_t = tanh(W_h h_{t-1} + W_x x_t + b_h), z_t = W_y h_t + b_y, "
         "yhat_t = softmax(z_t), C = -sum_t log yhat_{t, y_t}; h_0 = 0.")
MAP = {
    "\\tanh'(h_t)": "the author's convention, stated in the text: the derivative of tanh written at the OUTPUT, tanh'(h_t) := 1 - h_t^2 (= 1 - tanh(a_t)^2 with a_t the pre-activation); NOT the derivative evaluated at h_t, 1 - tanh(h_t)^2",
    "z_t": "the logits",
    "\\hat y_{t, y_t}": "the predicted probability of the target class at step t",
    "\\mathbf{1}_{y_t}": "one-hot column of the target class",
}


def forward(P, D, tap):
    h = tap("h", 0, D["h0"])
    out = {"L": 0.0}
    for t in range(1, D["T"] + 1):
        a = tap("a", t, P["W_h"] @ h + P["W_x"] @ D["x"][t - 1] + P["b_h"])
        h = tap("h", t, np.tanh(a))
        z = tap("z", t, P["W_y"] @ h + P["b_y"])
        yh = tap("yhat", t, softmax(z))
        out["L"] = out["L"] - np.log(yh[D["y"][t - 1]])
    return out


def build(cfg):
    rng = np.random.default_rng(cfg["seed"])
    D_, H, C, T = cfg["D"], cfg["H"], cfg["C"], cfg["T"]
    P = dict(W_h=randn(rng, H, H, scale=1.0), W_x=randn(rng, H, D_, scale=1.0), b_h=randn(rng, H, scale=1.0),
             W_y=randn(rng, C, H), b_y=randn(rng, C))
    D = dict(T=T, x=randn(rng, T, D_, scale=1.0), y=rng.integers(0, C, T), h0=np.zeros(H))
    m = Model(forward, P, D, cfg)
    m.reading = cfg.get("reading", "output")
    return m


def tp(m, t):
    """tanh'(h_t) under the reading being checked"""
    if m.reading == "output":
        return 1 - m("h", t) ** 2
    return 1 - np.tanh(m("h", t)) ** 2


S = lambda m, f: sum(f(t) for t in range(1, m.T + 1))
gh_next = lambda m, t: m.g("h", t + 1) if t < m.T else np.zeros(m.H)
tp_next = lambda m, t: tp(m, t + 1) if t < m.T else np.zeros(m.H)

RULES = [
    R(r"\tanh'(h_t) = 1 - h_t^2", "no claim",
      why="defines the author's notation: tanh' written at the output (derivative at the step whose output is h_t)"),
    R(r"h_0 = 0", "forward", check=lambda m: [(m("h", 0), np.zeros(m.H))]),
    R(r"h_t = \tanh(W_h h_{t-1} + W_x x_t + b_h)", "forward",
      check=lambda m: steps(m, lambda t: (m("h", t), np.tanh(m.P["W_h"] @ m("h", t - 1) + m.P["W_x"] @ m.data["x"][t - 1] + m.P["b_h"])))),
    R(r"z_t = W_y h_t + b_y", "forward", check=lambda m: steps(m, lambda t: (m("z", t), m.P["W_y"] @ m("h", t) + m.P["b_y"]))),
    R(r"\hat y_t = \mathrm{softmax}(z_t)", "forward", check=lambda m: steps(m, lambda t: (m("yhat", t), softmax(m("z", t))))),
    R(r"C = -\sum_{t=1}^{T} \log \hat y_{t, y_t}", "forward",
      check=lambda m: [(m.losses["L"], -S(m, lambda t: np.log(m("yhat", t)[m.data["y"][t - 1]])))]),
    R(r"\frac{\partial C}{\partial z_t} = \hat y_t - \mathbf{1}_{y_t}", "backward",
      check=lambda m: steps(m, lambda t: (m("yhat", t) - onehot(m.data["y"][t - 1], m.C), m.g("z", t)))),
    R(r"\frac{\partial C}{\partial h_t} = W_y^\top \frac{\partial C}{\partial z_t} + W_h^\top \left( \frac{\partial C}{\partial h_{t+1}} \odot \tanh'(h_{t+1}) \right)", "backward",
      why="right with the author's reading tanh'(h_{t+1}) = 1 - h_{t+1}^2",
      check=lambda m: steps(m, lambda t: (m.P["W_y"].T @ m.g("z", t) + m.P["W_h"].T @ (gh_next(m, t) * tp_next(m, t)), m.g("h", t)))),
    R(r"\frac{\partial C}{\partial h_{T+1}} = 0", "backward", why="boundary convention; checked as the recursion at t = T",
      check=lambda m: [(m.P["W_y"].T @ m.g("z", m.T), m.g("h", m.T))]),
    R(r"\frac{\partial C}{\partial W_h} = \sum_{t=1}^{T} \left( \frac{\partial C}{\partial h_t} \odot \tanh'(h_t) \right) h_{t-1}^\top", "backward",
      why="right with the author's reading tanh'(h_t) = 1 - h_t^2 (stated in the text)",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("h", t) * tp(m, t), m("h", t - 1))), m.gp("W_h"))]),
    R(r"\frac{\partial C}{\partial W_x} = \sum_{t=1}^{T} \left( \frac{\partial C}{\partial h_t} \odot \tanh'(h_t) \right) x_t^\top", "backward",
      why="right with the author's reading tanh'(h_t) = 1 - h_t^2 (stated in the text)",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("h", t) * tp(m, t), m.data["x"][t - 1])), m.gp("W_x"))]),
    R(r"\frac{\partial C}{\partial b_h} = \sum_{t=1}^{T} \frac{\partial C}{\partial h_t} \odot \tanh'(h_t)", "backward",
      why="right with the author's reading tanh'(h_t) = 1 - h_t^2 (stated in the text)",
      check=lambda m: [(S(m, lambda t: m.g("h", t) * tp(m, t)), m.gp("b_h"))]),
    R(r"\frac{\partial C}{\partial W_y} = \sum_{t=1}^{T} \frac{\partial C}{\partial z_t} \, h_t^\top", "backward",
      check=lambda m: [(S(m, lambda t: np.outer(m.g("z", t), m("h", t))), m.gp("W_y"))]),
    R(r"\frac{\partial C}{\partial h_0} = W_h^\top \left( \frac{\partial C}{\partial h_1} \odot \tanh'(h_1) \right)", "backward",
      why="right with the author's reading tanh'(h_t) = 1 - h_t^2 (stated in the text)",
      check=lambda m: [(m.P["W_h"].T @ (m.g("h", 1) * tp(m, 1)), m.g("h", 0))]),
]

CONFIGS = [dict(N=1, D=2, H=3, C=3, T=3, seed=0), dict(N=1, D=3, H=3, C=3, T=4, seed=1)]


def other_reading():
    """the rules that use tanh' must be wrong under the other reading (derivative at the argument h_t)"""
    from common import compare
    bad = 0
    for cfg in CONFIGS:
        m = build(dict(cfg, reading="argument"))
        for r in RULES:
            if r.kind == "backward" and "tanh'" in r.text:
                status, diff = compare(r.check(m))
                ok = status in ("differs", "shape")
                bad += not ok
                print("%s  other reading (1 - tanh(h)^2) makes it wrong: %s  [%s, %.2g]" % ("OK  " if ok else "FAIL", r.text[:60], status, diff))
    return bad


if __name__ == "__main__":
    import sys
    if other_reading():
        sys.exit(1)
    main(FILE, MODEL, MAP, RULES, build, CONFIGS)
