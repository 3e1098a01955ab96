"""LSTM and GRU code as people write it, right and wrong, written for this project's tests
(issue 11).

Each entry is a small program: the CS231n-style layer pairs and step pairs of
examples/rnn_layers.py, and full-form functions (time-major, one call for the loss and every
gradient) in CS231n's gate order, PyTorch's, with c0 an input, and a GRU with the reset before
the product. A wrong program is a right one with ONE deliberate, realistic bug, made by string
replacement. `CASES` says how each is checked (the target, the command line's options) and
what the verdict must be: the canonical gradients that are wrong and, for the first of them,
the likely cause a closed form names (`symbptt.checking.gated_mistakes`), or None where no
closed form is expected. `write(tmp_path, name)` puts one program in a file and returns its
path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

LAYERS = (EXAMPLES / "rnn_layers.py").read_text()


def _replace(source: str, *pairs: tuple[str, str]) -> str:
    """source with each (old, new) replaced; every old occurs exactly once."""
    for old, new in pairs:
        assert source.count(old) == 1, old
        source = source.replace(old, new)
    return source


#: A full-form LSTM, time-major, gates i, f, o, g (CS231n's), c0 = 0; the output bias is
#: b_y (the model's name: c is the cell state).
LSTM_FULL = """
import numpy as np


def sigmoid(a):
    return 0.5 * (1 + np.tanh(0.5 * a))


def dsigmoid(s):
    return s * (1 - s)


def loss_and_grads(x, y, h0, W_x, W_h, b, V, b_y):
    T, N, _ = x.shape
    H = h0.shape[1]
    hs, cs, gates, ps, loss = [h0], [np.zeros_like(h0)], [], [], 0.0
    for t in range(T):
        a = x[t] @ W_x + hs[-1] @ W_h + b
        i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H : 2 * H]), sigmoid(a[:, 2 * H : 3 * H])
        g = np.tanh(a[:, 3 * H :])
        cs.append(f * cs[-1] + i * g)
        hs.append(o * np.tanh(cs[-1]))
        gates.append((i, f, o, g))
        z = b_y + hs[-1] @ V
        z = z - z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        ps.append(np.exp(log_p))
        loss -= log_p[np.arange(N), y[t]].sum()
    grads = {k: np.zeros_like(v) for k, v in dict(W_x=W_x, W_h=W_h, b=b, V=V, b_y=b_y).items()}
    dxs = []
    dh_next, dc_next = np.zeros_like(h0), np.zeros_like(h0)
    for t in reversed(range(T)):
        i, f, o, g = gates[t]
        c_prev, c_t = cs[t], cs[t + 1]
        dlogits = ps[t].copy()
        dlogits[np.arange(N), y[t]] -= 1
        grads["V"] += hs[t + 1].T @ dlogits
        grads["b_y"] += dlogits.sum(axis=0)
        dh = dlogits @ V.T + dh_next
        tanh_c = np.tanh(c_t)
        dc = dh * o * (1 - tanh_c**2) + dc_next
        di = dc * g * dsigmoid(i)
        df = dc * c_prev * dsigmoid(f)
        do = dh * tanh_c * dsigmoid(o)
        dg = dc * i * (1 - g**2)
        da = np.hstack([di, df, do, dg])
        grads["W_x"] += x[t].T @ da
        grads["W_h"] += hs[t].T @ da
        grads["b"] += da.sum(axis=0)
        dxs.append(da @ W_x.T)
        dh_next = da @ W_h.T
        dc_next = dc * f
    grads["h0"] = dh_next
    grads["x"] = np.stack(dxs[::-1])
    return loss, grads
"""

#: The same in PyTorch's gate order i, f, g, o, the gates split as torch.chunk splits them.
LSTM_IFGO = _replace(
    LSTM_FULL,
    (
        "        i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H : 2 * H]), "
        "sigmoid(a[:, 2 * H : 3 * H])\n        g = np.tanh(a[:, 3 * H :])\n",
        "        a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)\n"
        "        i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)\n",
    ),
    ("da = np.hstack([di, df, do, dg])", "da = np.hstack([di, df, dg, do])"),
)

#: The same with c0 an input, and its gradient returned.
LSTM_C0 = _replace(
    LSTM_FULL,
    ("def loss_and_grads(x, y, h0, W_x", "def loss_and_grads(x, y, h0, c0, W_x"),
    ("cs, gates, ps, loss = [h0], [np.zeros_like(h0)]", "cs, gates, ps, loss = [h0], [c0]"),
    ('    grads["h0"] = dh_next\n', '    grads["h0"] = dh_next\n    grads["c0"] = dc_next\n'),
)

#: A full-form GRU, time-major, PyTorch's: gates r, z, n, the reset after the product.
GRU_FULL = """
import numpy as np


def sigmoid(a):
    return 0.5 * (1 + np.tanh(0.5 * a))


def loss_and_grads(x, y, h0, W_x, W_h, b_x, b_h, V, c):
    T, N, _ = x.shape
    H = h0.shape[1]
    hs, cache, ps, loss = [h0], [], [], 0.0
    for t in range(T):
        gx = x[t] @ W_x + b_x
        gh = hs[-1] @ W_h + b_h
        r = sigmoid(gx[:, :H] + gh[:, :H])
        z = sigmoid(gx[:, H : 2 * H] + gh[:, H : 2 * H])
        n = np.tanh(gx[:, 2 * H :] + r * gh[:, 2 * H :])
        hs.append((1 - z) * n + z * hs[-1])
        cache.append((r, z, n, gh[:, 2 * H :]))
        o = c + hs[-1] @ V
        o = o - o.max(axis=1, keepdims=True)
        log_p = o - np.log(np.exp(o).sum(axis=1, keepdims=True))
        ps.append(np.exp(log_p))
        loss -= log_p[np.arange(N), y[t]].sum()
    names = dict(W_x=W_x, W_h=W_h, b_x=b_x, b_h=b_h, V=V, c=c)
    grads = {k: np.zeros_like(v) for k, v in names.items()}
    grads["x"] = np.zeros_like(x)
    dh_next = np.zeros_like(h0)
    for t in reversed(range(T)):
        r, z, n, hn = cache[t]
        h_prev = hs[t]
        dlogits = ps[t].copy()
        dlogits[np.arange(N), y[t]] -= 1
        grads["V"] += hs[t + 1].T @ dlogits
        grads["c"] += dlogits.sum(axis=0)
        dh = dlogits @ V.T + dh_next
        dan = dh * (1 - z) * (1 - n**2)
        dar = dan * hn * r * (1 - r)
        daz = dh * (h_prev - n) * z * (1 - z)
        dgx = np.hstack([dar, daz, dan])
        dgh = np.hstack([dar, daz, dan * r])
        grads["W_x"] += x[t].T @ dgx
        grads["W_h"] += h_prev.T @ dgh
        grads["b_x"] += dgx.sum(axis=0)
        grads["b_h"] += dgh.sum(axis=0)
        grads["x"][t] = dgx @ W_x.T
        dh_next = dh * z + dgh @ W_h.T
    grads["h0"] = dh_next
    return loss, grads
"""

#: The original GRU (Cho et al.): the reset applied before the product, (r * h) W_hn + b_hn.
GRU_BEFORE = """
import numpy as np


def sigmoid(a):
    return 0.5 * (1 + np.tanh(0.5 * a))


def loss_and_grads(x, y, h0, W_x, W_h, b_x, b_h, V, c):
    T, N, _ = x.shape
    H = h0.shape[1]
    W_hr, W_hz, W_hn = W_h[:, :H], W_h[:, H : 2 * H], W_h[:, 2 * H :]
    hs, steps, loss, dh_out = [h0], [], 0.0, []
    for t in range(T):
        h = hs[-1]
        a = x[t] @ W_x + b_x + b_h
        r = sigmoid(a[:, :H] + h @ W_hr)
        z = sigmoid(a[:, H : 2 * H] + h @ W_hz)
        n = np.tanh(a[:, 2 * H :] + (r * h) @ W_hn)
        hs.append((1 - z) * n + z * h)
        steps.append((r, z, n))
        o = c + hs[-1] @ V
        o = o - o.max(axis=1, keepdims=True)
        log_p = o - np.log(np.exp(o).sum(axis=1, keepdims=True))
        loss -= log_p[np.arange(N), y[t]].sum()
        p = np.exp(log_p)
        p[np.arange(N), y[t]] -= 1
        dh_out.append(p)
    dW_x, dW_h, db, dV = np.zeros_like(W_x), np.zeros_like(W_h), np.zeros_like(b_x), 0 * V
    dx = np.zeros_like(x)
    dh_next = np.zeros_like(h0)
    for t in reversed(range(T)):
        r, z, n = steps[t]
        h = hs[t]
        dV += hs[t + 1].T @ dh_out[t]
        dh = dh_out[t] @ V.T + dh_next
        dan = dh * (1 - z) * (1 - n**2)
        drh = dan @ W_hn.T
        dar = drh * h * r * (1 - r)
        daz = dh * (h - n) * z * (1 - z)
        da = np.hstack([dar, daz, dan])
        dW_x += x[t].T @ da
        dW_h += np.hstack([h.T @ dar, h.T @ daz, (r * h).T @ dan])
        db += da.sum(axis=0)
        dx[t] = da @ W_x.T
        dh_next = dh * z + drh * r + dar @ W_hr.T + daz @ W_hz.T
    dc = sum(d.sum(axis=0) for d in dh_out)
    return loss, {"W_x": dW_x, "W_h": dW_h, "b_x": db, "b_h": db.copy(), "V": dV, "c": dc,
                  "h0": dh_next, "x": dx}
"""

# -- one bug each -----------------------------------------------------------------------------
LSTM_BUGS = {
    # the layer pair (examples/rnn_layers.py's lstm_forward, lstm_backward)
    "lstm_layers_no_cell_carry": _replace(
        LAYERS,
        (
            "lstm_step_backward(dh[:, t] + dprev_h, dprev_c, caches[t])",
            "lstm_step_backward(dh[:, t] + dprev_h, np.zeros((N, H)), caches[t])",
        ),
    ),
    "lstm_layers_no_hidden_carry": _replace(
        LAYERS,
        (
            "lstm_step_backward(dh[:, t] + dprev_h, dprev_c, caches[t])",
            "lstm_step_backward(dh[:, t], dprev_c, caches[t])",
        ),
    ),
    "lstm_layers_no_carry": _replace(
        LAYERS,
        (
            "lstm_step_backward(dh[:, t] + dprev_h, dprev_c, caches[t])",
            "lstm_step_backward(dh[:, t], np.zeros((N, H)), caches[t])",
        ),
    ),
    "lstm_layers_o_gate_c": _replace(LAYERS, ("do = dnext_h * tanh_c", "do = dnext_h * next_c")),
    "lstm_layers_gates_mixed": _replace(
        LAYERS,
        (
            "do * o * (1 - o), dg * (1 - g**2)]",
            "dg * (1 - g**2), do * o * (1 - o)]",
        ),
    ),
    #: dWh = da.T @ prev_h is (4H, H); a reshape makes it fit (and scrambles it).
    "lstm_layers_reshaped_dWh": _replace(
        LAYERS, ("dWh = prev_h.T @ da\n", "dWh = (da.T @ prev_h).reshape(Wh.shape)\n")
    ),
    #: db summed over the gates (keepdims), then over the batch: a (1,) that += broadcasts.
    "lstm_layers_db_axis": _replace(
        LAYERS, ("db = da.sum(axis=0)", "db = da.sum(axis=1, keepdims=True).sum(axis=0)")
    ),
    # the step pair (c0 an input, or zero)
    "lstm_step_tanh_c_slope": _replace(
        LAYERS,
        ("dnext_h * o * (1 - tanh_c**2)", "dnext_h * o * (1 - next_c**2)"),
    ),
    "lstm_step_sigmoid_slope": _replace(LAYERS, ("di * i * (1 - i)", "di * (1 - i)")),
    #: The classic step bug: dnext_c dropped (the cell state's gradient from the next step).
    "lstm_step_no_dnext_c": _replace(
        LAYERS,
        ("dc = dnext_c + dnext_h * o * (1 - tanh_c**2)", "dc = dnext_h * o * (1 - tanh_c**2)"),
    ),
    #: The forget gate's slope without f: only a real prev_c shows it.
    "lstm_step_f_slope": _replace(LAYERS, ("df * f * (1 - f)", "df * (1 - f)")),
    # the full form
    "lstm_full_c_t_for_c_prev": _replace(
        LSTM_FULL, ("df = dc * c_prev * dsigmoid(f)", "df = dc * c_t * dsigmoid(f)")
    ),
    "lstm_full_sigmoid_slope": _replace(LSTM_FULL, ("return s * (1 - s)", "return s * (1 + s)")),
    "lstm_full_i_g_swapped": _replace(
        LSTM_FULL,
        ("di = dc * g * dsigmoid(i)", "di = dc * i * dsigmoid(i)"),
        ("dg = dc * i * (1 - g**2)", "dg = dc * g * (1 - g**2)"),
    ),
    #: dx through W_h where W_x belongs: (T, N, H) where (T, N, D) belongs, wrong even if D == H.
    "lstm_full_dx_W_h": _replace(LSTM_FULL, ("dxs.append(da @ W_x.T)", "dxs.append(da @ W_h.T)")),
    #: PyTorch's order forward, CS231n's backward.
    "lstm_ifgo_gates_mixed": _replace(
        LSTM_IFGO, ("da = np.hstack([di, df, dg, do])", "da = np.hstack([di, df, do, dg])")
    ),
    "lstm_c0_no_forget": _replace(LSTM_C0, ("dc_next = dc * f", "dc_next = dc")),
    #: h_t where h_{t-1} belongs in dW_h.
    "lstm_full_h_t_in_dWh": _replace(
        LSTM_FULL, ('grads["W_h"] += hs[t].T @ da', 'grads["W_h"] += hs[t + 1].T @ da')
    ),
    #: The cell-state gradient carried back without what came from step t+1 (wrong from T = 3).
    "lstm_full_partial_carry": _replace(
        LSTM_FULL, ("dc_next = dc * f", "dc_next = dh * o * (1 - tanh_c**2) * f")
    ),
}

GRU_BUGS = {
    # the layer pair (examples/rnn_layers.py's gru_forward, gru_backward)
    "gru_layers_z_sign": _replace(
        LAYERS, ("dz = dnext_h * (prev_h - n)", "dz = dnext_h * (n - prev_h)")
    ),
    "gru_layers_no_direct_carry": _replace(
        LAYERS, ("dprev_h = dnext_h * z + dah @ Wh.T", "dprev_h = dah @ Wh.T")
    ),
    "gru_layers_no_tanh_slope": _replace(LAYERS, ("dan = dn * (1 - n**2)", "dan = dn")),
    "gru_layers_z_swapped": _replace(LAYERS, ("dn = dnext_h * (1 - z)", "dn = dnext_h * z")),
    #: db_h taken as db_x: its n third misses r.
    "gru_layers_db_h": _replace(
        LAYERS,
        ("dax.sum(axis=0), dah.sum(axis=0)", "dax.sum(axis=0), dax.sum(axis=0)"),
    ),
    "gru_layers_no_carry": _replace(
        LAYERS,
        (
            "gru_step_backward(dh[:, t] + dprev, caches[t])",
            "gru_step_backward(dh[:, t], caches[t])",
        ),
    ),
    # the full form
    "gru_full_reset_without_bias": _replace(
        GRU_FULL,
        ("dar = dan * hn * r", "dar = dan * (h_prev @ W_h[:, 2 * H :]) * r"),
    ),
    "gru_full_reset_not_applied": _replace(
        GRU_FULL, ("dgh = np.hstack([dar, daz, dan * r])", "dgh = np.hstack([dar, daz, dan])")
    ),
    "gru_full_no_gate_carry": _replace(
        GRU_FULL, ("dh_next = dh * z + dgh @ W_h.T", "dh_next = dh * z")
    ),
    #: reset before: the gradient into h through r * h misses r.
    "gru_before_no_r": _replace(GRU_BEFORE, ("dh * z + drh * r +", "dh * z + drh +")),
}

PROGRAMS = {
    "lstm_layers": LAYERS,
    "lstm_step": LAYERS,
    "lstm_full": LSTM_FULL,
    "lstm_ifgo": LSTM_IFGO,
    "lstm_c0": LSTM_C0,
    "gru_layers": LAYERS,
    "gru_step": LAYERS,
    "gru_full": GRU_FULL,
    "gru_before": GRU_BEFORE,
    **LSTM_BUGS,
    **GRU_BUGS,
}


@dataclass(frozen=True)
class Case:
    """How a corpus program is checked and what the verdict must be."""

    name: str
    #: "forward,backward" (a layer or step pair) or one full-form function.
    target: str
    #: The command line's options (argv tokens), --model always among them.
    options: list[str]
    #: "right" or "wrong".
    verdict: str
    #: The canonical gradients expected wrong, in the report's order.
    wrong: tuple[str, ...] = ()
    #: The likely cause expected for wrong[0] (None: no closed form is expected).
    cause: str | None = None


LSTM_PAIR = "lstm_forward,lstm_backward"
LSTM_STEP = "lstm_step_forward,lstm_step_backward"
GRU_PAIR = "gru_forward,gru_backward"
GRU_STEP = "gru_step_forward,gru_step_backward"
FULL = "loss_and_grads"

LSTM_LAYER = ["--model", "lstm", "--form", "layer", "--batch-first"]
LSTM_STEP_OPTIONS = ["--model", "lstm", "--form", "layer", "--c0", "input"]
#: The step pair with c0 = 0: chained over the sequence, prev_c and dnext_c are real after
#: the first step.
LSTM_STEP_ZERO_C0 = ["--model", "lstm", "--form", "layer"]
GRU_LAYER = ["--model", "gru", "--form", "layer", "--batch-first"]
LSTM = ["--model", "lstm"]
GRU = ["--model", "gru"]

#: What each layer-form program's backward returns (LSTM pair, its step pair, GRU).
_LSTM_ALL = ("x", "h0", "W_x", "W_h", "b")
_LSTM_STEP_ALL = ("x", "h0", "c0", "W_x", "W_h", "b")
_LSTM_FULL_ALL = ("W_x", "W_h", "b", "h0", "x")  # V and c come before the recurrence
_GRU_ALL = ("x", "h0", "W_x", "W_h", "b_x", "b_h")
_GRU_FULL_ALL = ("W_x", "W_h", "b_x", "b_h", "h0", "x")

CASES = [
    # right, in every style
    Case("lstm_layers", LSTM_PAIR, LSTM_LAYER, "right"),
    Case("lstm_step", LSTM_STEP, LSTM_STEP_OPTIONS, "right"),
    Case("lstm_full", FULL, LSTM, "right"),
    Case("lstm_ifgo", FULL, [*LSTM, "--gate-order", "ifgo"], "right"),
    Case("lstm_c0", FULL, [*LSTM, "--c0", "input"], "right"),
    Case("gru_layers", GRU_PAIR, GRU_LAYER, "right"),
    Case("gru_step", GRU_STEP, ["--model", "gru", "--form", "layer"], "right"),
    Case("gru_full", FULL, GRU, "right"),
    Case("gru_before", FULL, [*GRU, "--reset", "before"], "right"),
    # LSTM, one bug each
    Case("lstm_layers_no_cell_carry", LSTM_PAIR, LSTM_LAYER, "wrong", _LSTM_ALL, "no_cell_carry"),
    Case(
        "lstm_layers_no_hidden_carry", LSTM_PAIR, LSTM_LAYER, "wrong", _LSTM_ALL, "no_hidden_carry"
    ),
    Case("lstm_layers_no_carry", LSTM_PAIR, LSTM_LAYER, "wrong", _LSTM_ALL, "no_recurrent_term"),
    Case("lstm_layers_o_gate_c", LSTM_PAIR, LSTM_LAYER, "wrong", _LSTM_ALL, "o_gate_without_tanh"),
    Case("lstm_layers_gates_mixed", LSTM_PAIR, LSTM_LAYER, "wrong", _LSTM_ALL, "gates_order_mixed"),
    Case("lstm_layers_reshaped_dWh", LSTM_PAIR, LSTM_LAYER, "wrong", ("W_h",)),
    Case("lstm_layers_db_axis", LSTM_PAIR, LSTM_LAYER, "wrong", ("b",)),
    Case(
        "lstm_step_tanh_c_slope",
        LSTM_STEP,
        LSTM_STEP_OPTIONS,
        "wrong",
        _LSTM_STEP_ALL,
        "tanh_c_slope",
    ),
    Case("lstm_step_sigmoid_slope", LSTM_STEP, LSTM_STEP_OPTIONS, "wrong", _LSTM_STEP_ALL),
    Case("lstm_step_no_dnext_c", LSTM_STEP, LSTM_STEP_ZERO_C0, "wrong", _LSTM_ALL, "no_cell_carry"),
    Case("lstm_step_f_slope", LSTM_STEP, LSTM_STEP_ZERO_C0, "wrong", _LSTM_ALL),
    Case("lstm_full_c_t_for_c_prev", FULL, LSTM, "wrong", _LSTM_FULL_ALL, "c_t_for_c_prev"),
    Case("lstm_full_h_t_in_dWh", FULL, LSTM, "wrong", ("W_h",)),
    Case("lstm_full_partial_carry", FULL, LSTM, "wrong", _LSTM_FULL_ALL),
    Case("lstm_full_sigmoid_slope", FULL, LSTM, "wrong", _LSTM_FULL_ALL),
    Case("lstm_full_i_g_swapped", FULL, LSTM, "wrong", _LSTM_FULL_ALL, "i_g_swapped"),
    Case("lstm_full_dx_W_h", FULL, LSTM, "wrong", ("x",)),
    Case(
        "lstm_ifgo_gates_mixed",
        FULL,
        [*LSTM, "--gate-order", "ifgo"],
        "wrong",
        _LSTM_FULL_ALL,
        "gates_order_mixed",
    ),
    Case(
        "lstm_c0_no_forget",
        FULL,
        [*LSTM, "--c0", "input"],
        "wrong",
        ("W_x", "W_h", "b", "h0", "c0", "x"),
        "forget_gate_not_applied",
    ),
    # GRU, one bug each
    Case("gru_layers_z_sign", GRU_PAIR, GRU_LAYER, "wrong", _GRU_ALL, "z_sign"),
    Case("gru_layers_no_direct_carry", GRU_PAIR, GRU_LAYER, "wrong", _GRU_ALL, "no_direct_carry"),
    Case("gru_layers_no_tanh_slope", GRU_PAIR, GRU_LAYER, "wrong", _GRU_ALL, "n_slope_missing"),
    Case("gru_layers_z_swapped", GRU_PAIR, GRU_LAYER, "wrong", _GRU_ALL, "z_swapped"),
    #: Not reset_not_applied: that one also changes what flows back through h_{t-1}.
    Case("gru_layers_db_h", GRU_PAIR, GRU_LAYER, "wrong", ("b_h",)),
    Case("gru_layers_no_carry", GRU_PAIR, GRU_LAYER, "wrong", _GRU_ALL, "no_recurrent_term"),
    Case("gru_full_reset_without_bias", FULL, GRU, "wrong", _GRU_FULL_ALL, "reset_without_bias"),
    Case("gru_full_reset_not_applied", FULL, GRU, "wrong", _GRU_FULL_ALL, "reset_not_applied"),
    Case("gru_full_no_gate_carry", FULL, GRU, "wrong", _GRU_FULL_ALL, "gates_not_carried"),
    Case("gru_before_no_r", FULL, [*GRU, "--reset", "before"], "wrong", _GRU_FULL_ALL),
]

assert {case.name for case in CASES} == set(PROGRAMS), set(PROGRAMS) ^ {c.name for c in CASES}


def write(folder: Path, name: str) -> Path:
    """The program `name` as folder/name.py."""
    path = folder / f"{name}.py"
    path.write_text(PROGRAMS[name])
    return path
