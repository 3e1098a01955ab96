"""Code as people write it, right and wrong, written for this project's tests (issue 9).

Each entry is a small program in the shape real course and blog code has: a min-char-rnn-style
script (globals, token-id lists, column vectors, a 7-tuple), a CS231n-style forward/backward
pair, a tutorial RNN without biases and with truncated BPTT, and full-form functions with one
deliberate flaw each. `write(tmp_path, name)` puts one in a file and returns its path.
"""

from __future__ import annotations

from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

CHAR_RNN = (EXAMPLES / "char_rnn.py").read_text()


def _char_rnn(old: str, new: str) -> str:
    assert old in CHAR_RNN, old
    return CHAR_RNN.replace(old, new)


#: The backward pass starts from zeros instead of hprev at t = 0 (the loss is still right).
CHAR_RNN_ZERO_START = _char_rnn(
    "dWhh += draw @ hs[t - 1].T",
    "dWhh += draw @ (hs[t - 1] if t > 0 else np.zeros_like(hprev)).T",
)
#: dWhh accumulates h_t where h_{t-1} belongs.
CHAR_RNN_H_T = _char_rnn("dWhh += draw @ hs[t - 1].T", "dWhh += draw @ hs[t].T")
#: lossFun returns five values instead of seven.
CHAR_RNN_SHORT = _char_rnn(
    "return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs) - 1]",
    "return loss, dWxh, dWhh, dWhy, dbh",
)
#: Different global names for the weights and the sizes.
CHAR_RNN_RENAMED = (
    CHAR_RNN.replace("Wxh", "U")
    .replace("Whh", "W")
    .replace("Why", "V")
    .replace("vocab_size", "n_chars")
)

#: Reuses module-level buffers for its gradients (returns the same arrays on every call), and
#: reads constants the top level defines from other names: right.
CHAR_RNN_BUFFERS = (
    _char_rnn(
        "def lossFun(inputs, targets, hprev):",
        "_BUF = {}\nDTYPE = np.float64\nH = hidden_size\n\n\n"
        "def _zeros(name, like):\n"
        "    key = (name, like.shape)\n"
        "    if key not in _BUF:\n"
        "        _BUF[key] = np.zeros(like.shape, dtype=DTYPE)\n"
        "    _BUF[key][...] = 0\n"
        "    return _BUF[key]\n\n\n"
        "def lossFun(inputs, targets, hprev):",
    )
    .replace(
        "dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)",
        "dWxh, dWhh, dWhy = _zeros('Wxh', Wxh), _zeros('Whh', Whh), _zeros('Why', Why)",
    )
    .replace(
        "dbh, dby = np.zeros_like(bh), np.zeros_like(by)",
        "dbh, dby = _zeros('bh', bh), _zeros('by', by)",
    )
)
#: Reads seq_length, which must be the length of the sequence it is given.
CHAR_RNN_SEQ_LENGTH = _char_rnn(
    "    for t in range(len(inputs)):\n        xs[t] = np.zeros",
    "    for t in range(seq_length):\n        xs[t] = np.zeros",
)
#: A Python 2 print statement inside lossFun: the function does not parse.
CHAR_RNN_PY2_INSIDE = _char_rnn("    loss = 0.0\n", "    loss = 0.0\n    print 'loss'\n")

LAYERS = (EXAMPLES / "rnn_layers.py").read_text()
#: The same pairs under Coursera's names (cell) and with a sequence pair named "..._steps".
LAYERS_RENAMED = (
    LAYERS.replace("rnn_step_forward", "rnn_cell_forward")
    .replace("rnn_step_backward", "rnn_cell_backward")
    .replace("def rnn_forward", "def forward_all_steps")
    .replace("def rnn_backward", "def backward_all_steps")
)
#: The recurrence multiplies by Wh where Wh.T belongs.
LAYERS_UNTRANSPOSED = LAYERS.replace("da @ Wx.T, da @ Wh.T", "da @ Wx.T, da @ Wh")

#: A tutorial RNN: no biases, row vectors, 2-step truncated BPTT, one sequence batch.
TUTORIAL = """
import numpy as np

K = 2  # each loss term reaches back K steps


def bptt(x, y, h0, W_x, W_h, V):
    T, N, _ = x.shape
    hs, ps, loss = [h0], [], 0.0
    for t in range(T):
        hs.append(np.tanh(hs[-1] @ W_h + x[t] @ W_x))
        o = hs[-1] @ V
        z = o - o.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        ps.append(np.exp(log_p))
        loss -= log_p[np.arange(N), y[t]].sum()
    g = {"W_x": np.zeros_like(W_x), "W_h": np.zeros_like(W_h), "V": np.zeros_like(V),
         "h0": np.zeros_like(h0), "x": np.zeros_like(x)}
    for t in range(T):
        do = ps[t].copy()
        do[np.arange(N), y[t]] -= 1
        g["V"] += hs[t + 1].T @ do
        dh = do @ V.T
        for s in range(t, max(t - K, 0) - 1, -1):
            da = dh * (1 - hs[s + 1] ** 2)
            g["W_x"] += x[s].T @ da
            g["W_h"] += hs[s].T @ da
            g["x"][s] += da @ W_x.T
            dh = da @ W_h.T
            if s == 0:
                g["h0"] += dh
    return loss, g
"""

#: Truncation at depth 4 (WildML's default), which sequences of 4 steps cannot show.
TUTORIAL_K4 = TUTORIAL.replace("K = 2  #", "K = 4  #")

#: A full-form function in the row layout; FLAW is replaced to make it wrong in one way.
FULL = """
import numpy as np

CLIP_NORM = None


def tanh(a):
    return np.tanh(a)


def log_softmax(o):
    z = o - o.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def loss_and_grads(x, y, h0, W_x, W_h, b, V, c):
    T, N, _ = x.shape
    hs, ps, loss = [h0], [], 0.0
    for t in range(T):
        hs.append(tanh(b + hs[-1] @ W_h + x[t] @ W_x))
        log_p = log_softmax(c + hs[-1] @ V)
        ps.append(np.exp(log_p))
        loss -= log_p[np.arange(N), y[t]].sum()
    g = {k: np.zeros_like(v) for k, v in dict(W_x=W_x, W_h=W_h, b=b, V=V, c=c, h0=h0).items()}
    g["x"] = np.zeros_like(x)
    dh_next = np.zeros_like(h0)
    for t in reversed(range(T)):
        do = ps[t].copy()
        do[np.arange(N), y[t]] -= 1
        g["V"] += hs[t + 1].T @ do
        g["c"] += do.sum(axis=0)
        da = (do @ V.T + dh_next) * (1 - hs[t + 1] ** 2)
        g["W_x"] += x[t].T @ da
        g["W_h"] += hs[t].T @ da
        g["b"] += da.sum(axis=0)
        g["x"][t] = da @ W_x.T
        dh_next = da @ W_h.T
    g["h0"] = dh_next
    # FLAW
    if CLIP_NORM is not None:
        params = ["W_x", "W_h", "b", "V", "c"]
        norm = np.sqrt(sum(float((g[k] ** 2).sum()) for k in params))
        if norm > CLIP_NORM:
            for k in params:
                g[k] = g[k] * (CLIP_NORM / norm)
    return loss, g
"""

FLAWS = {
    "right": FULL,
    #: db returned as a (1, H) row: right values, a shape that would change b's.
    "row_bias": FULL.replace("# FLAW", 'g["b"] = g["b"][None, :]'),
    #: tanh written with exp: NaN once |a| reaches about 710.
    "exp_tanh": FULL.replace(
        "    return np.tanh(a)",
        "    return (np.exp(a) - np.exp(-a)) / (np.exp(a) + np.exp(-a))",
    ),
    #: softmax without its max shift: inf once logits reach about 710.
    "unshifted_softmax": FULL.replace("z = o - o.max(axis=1, keepdims=True)", "z = o"),
    #: clips the parameters' gradients to a global norm of 1.
    "clip_norm": FULL.replace("CLIP_NORM = None", "CLIP_NORM = 1.0"),
    #: dx returned batch-first by time-major code: wrong (not a set-up mistake).
    "dx_swapped": FULL.replace(
        "# FLAW", 'g["x"] = np.ascontiguousarray(np.swapaxes(g["x"], 0, 1))'
    ),
    #: -log(p + eps): right wherever it is used, off only at saturation (not judged there).
    "eps_log": FULL.replace(
        "        loss -= log_p[np.arange(N), y[t]].sum()",
        "        loss -= np.log(np.exp(log_p[np.arange(N), y[t]]) + 1e-300).sum()",
    ),
    #: returns its gradients as a tuple, which needs a declared order.
    "tuple": FULL.replace(
        "    return loss, g\n",
        '    return loss, tuple(g[k] for k in ("W_x", "W_h", "b", "V", "c", "h0", "x"))\n',
    ),
}

PROGRAMS = {
    "char_rnn": CHAR_RNN,
    "char_rnn_zero_start": CHAR_RNN_ZERO_START,
    "char_rnn_h_t": CHAR_RNN_H_T,
    "char_rnn_short": CHAR_RNN_SHORT,
    "char_rnn_renamed": CHAR_RNN_RENAMED,
    "char_rnn_buffers": CHAR_RNN_BUFFERS,
    "char_rnn_seq_length": CHAR_RNN_SEQ_LENGTH,
    "char_rnn_py2_inside": CHAR_RNN_PY2_INSIDE,
    "layers": LAYERS,
    "layers_renamed": LAYERS_RENAMED,
    "tutorial_k4": TUTORIAL_K4,
    "layers_untransposed": LAYERS_UNTRANSPOSED,
    "tutorial": TUTORIAL,
    **{f"full_{k}": v for k, v in FLAWS.items()},
}


def write(folder: Path, name: str) -> Path:
    """The program `name` as folder/name.py."""
    path = folder / f"{name}.py"
    path.write_text(PROGRAMS[name])
    return path
