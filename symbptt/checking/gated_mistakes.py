"""Known BPTT mistakes of the gated cells (LSTM, GRU) as data, simulated in closed form.

Each mistake is one switch of a hand-written backward pass of the cell (`simulate`): with no
switch it is the true BPTT, and with one it is the gradients that a hand-written backward pass
with that one mistake returns. The forward pass is always right; only the backward pass goes
wrong. `alternatives` gives every mistake that changes some gradient at the given arrays, for
the checker to compare a wrong answer against, as `mistakes.alternatives` does for the
vanilla RNN. Like there, adding a recognised mistake means adding one switch and one entry to
`CAUSES`.

This module imports nothing of symbptt's engine and not `symbptt.reference_gated`: it is a
second, independent backward pass (tests/test_gated_mistakes.py checks it against both), so a
closed form can never just echo the code it is meant to check.

Conventions are `symbptt.reference_gated`'s: row vectors, time-major arrays x (T, N, D), the LSTM's
W_x (D, 4H), W_h (H, 4H), b (4H,) with the gates in the order `gate_order` ("ifog", CS231n's, or
"ifgo", PyTorch's), the GRU's W_x (D, 3H), W_h (H, 3H), b_x, b_h (3H,) with the gates r, z, n
and the reset applied "after" (PyTorch) or "before" the product with W_hn.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["CAUSES", "MISTAKES", "alternatives", "simulate"]

#: What each cause means, as the report prints it after "likely cause:".
CAUSES = {
    # LSTM
    "no_cell_carry": "equals BPTT without the cell-state gradient from the next step "
    "(dc_{t-1} = dc_t * f_t is missing)",
    "no_hidden_carry": "equals BPTT without the hidden-state gradient from the next step "
    "(dh_{t-1} = da_t W_h^T is missing; only the cell state carries a gradient back)",
    "forget_gate_not_applied": "equals BPTT with dc_{t-1} = dc_t, where dc_t * f_t belongs "
    "(the forget gate is not applied to the cell-state gradient carried back)",
    "tanh_c_slope": "equals BPTT with tanh'(c_t) written as 1 - c_t^2, where 1 - tanh(c_t)^2 "
    "belongs",
    "c_t_for_c_prev": "equals BPTT with df_t = dc_t * c_t: uses c_t where c_{t-1} belongs",
    "o_gate_without_tanh": "equals BPTT with do_t = dh_t * c_t, where dh_t * tanh(c_t) belongs",
    "i_g_swapped": "equals BPTT with the input and candidate gates' factors swapped "
    "(di_t = dc_t * i_t and dg_t = dc_t * g_t, where g_t and i_t belong)",
    "gates_order_mixed": "equals BPTT with the gates' gradients stacked in another order than "
    "the forward pass sliced them (o and g swapped: i, f, o, g against i, f, g, o)",
    # GRU
    "z_sign": "equals BPTT with dz_t = dh_t * (n_t - h_{t-1}), where h_{t-1} - n_t belongs "
    "(the update gate's gradient has the wrong sign)",
    "z_swapped": "equals BPTT with dn_t = dh_t * z_t, where dh_t * (1 - z_t) belongs",
    "n_slope_missing": "equals BPTT without tanh's slope 1 - n_t^2 in the candidate's gradient",
    "no_direct_carry": "equals BPTT without the direct term dh_t * z_t in dh_{t-1}",
    "gates_not_carried": "equals BPTT with dh_{t-1} = dh_t * z_t only (nothing flows back "
    "through the gates' products with h_{t-1})",
    "reset_without_bias": "equals BPTT with the reset gate's gradient taken from h_{t-1} W_hn "
    "alone, where h_{t-1} W_hn + b_hn belongs",
    "reset_not_applied": "equals BPTT without r_t in the gradient into h_{t-1} W_hn + b_hn "
    "(dW_hn, db_hn and dh_{t-1} miss the reset gate)",
    # both
    "no_recurrent_term": "equals the gradient without the recurrent term (nothing flows back "
    "from step t to step t-1, through h_{t-1} or, in an LSTM, c_{t-1})",
}

#: The mistakes each cell can make, in the order `alternatives` offers them.
MISTAKES = {
    "lstm": (
        "no_cell_carry",
        "no_hidden_carry",
        "no_recurrent_term",
        "forget_gate_not_applied",
        "tanh_c_slope",
        "c_t_for_c_prev",
        "o_gate_without_tanh",
        "i_g_swapped",
        "gates_order_mixed",
    ),
    "gru": (
        "no_direct_carry",
        "gates_not_carried",
        "no_recurrent_term",
        "z_sign",
        "z_swapped",
        "n_slope_missing",
        "reset_without_bias",
        "reset_not_applied",
    ),
}
#: Mistakes that exist only with the reset applied after the product (PyTorch's GRU).
_AFTER_ONLY = ("reset_without_bias", "reset_not_applied")

_GATE_ORDERS = ("ifog", "ifgo")
_RESETS = ("after", "before")
_FORMS = ("full", "layer")
_ANY = object()
#: Every model's options, at the only value the gated cells are simulated for (_ANY: any value;
#: which biases and initial states there are is read from the arrays).
_FIXED = {"activation": "tanh", "inputs": "dense", "truncate": None, "no_bias": _ANY, "c0": _ANY}


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * a))


class _Run:
    """One forward pass of a cell and the upstream gradient on every h_t, shared by every
    simulated backward pass."""

    def __init__(self, model: str, arrays: Mapping[str, np.ndarray], form: str, options) -> None:
        if model not in MISTAKES:
            raise ValueError(f"model={model!r} must be one of lstm, gru")
        if form not in _FORMS:
            raise ValueError(f"form={form!r} must be one of {', '.join(_FORMS)}")
        self.model, self.form = model, form
        self.gate_order = options.pop("gate_order", "ifog")
        self.reset = options.pop("reset", "after")
        self.reduction = options.pop("reduction", "sum")
        for name, value in options.items():
            if name not in _FIXED:
                raise ValueError(f"unknown option {name!r} for the gated cells")
            if _FIXED[name] is not _ANY and value != _FIXED[name]:
                raise ValueError(
                    f"{name}={value!r}: the gated cells' mistakes are simulated for "
                    f"{name}={_FIXED[name]!r} only"
                )
        if self.gate_order not in _GATE_ORDERS:
            raise ValueError(f"gate_order={self.gate_order!r} must be one of ifog, ifgo")
        if self.reset not in _RESETS:
            raise ValueError(f"reset={self.reset!r} must be one of after, before")
        if self.reduction not in ("sum", "mean"):
            raise ValueError(f"reduction={self.reduction!r} must be one of sum, mean")
        if form == "layer" and self.reduction != "sum":
            raise ValueError("the layer form has no loss to average (reduction='sum' only)")

        gates = 4 if model == "lstm" else 3
        biases = ("b",) if model == "lstm" else ("b_x", "b_h")
        needed = ("x", "W_x", "W_h") + (("y", "V") if form == "full" else ("dh",))
        for name in needed:
            if arrays.get(name) is None:
                raise ValueError(f"missing input array {name!r}")
        self.present = {k for k, v in arrays.items() if v is not None}
        a = {k: np.asarray(v) for k, v in arrays.items() if v is not None}
        self.x = np.asarray(a["x"], dtype=np.float64)
        self.W_x = np.asarray(a["W_x"], dtype=np.float64)
        self.W_h = np.asarray(a["W_h"], dtype=np.float64)
        if self.x.ndim != 3:
            raise ValueError(f"x must be (T, N, D); it is {self.x.shape}")
        T, N, D = self.x.shape
        H = self.W_h.shape[0]
        self.T, self.N, self.H = T, N, H
        if self.W_x.shape != (D, gates * H) or self.W_h.shape != (H, gates * H):
            raise ValueError(
                f"W_x {self.W_x.shape} and W_h {self.W_h.shape} must be (D, {gates}H) and "
                f"(H, {gates}H) for x of shape {self.x.shape}"
            )

        def state(name: str) -> np.ndarray:
            if name not in a:
                return np.zeros((N, H))
            value = np.asarray(a[name], dtype=np.float64)
            if value.shape != (N, H):
                raise ValueError(f"{name} must be (N, H) = {(N, H)}; it is {value.shape}")
            return value

        def bias(name: str) -> np.ndarray:
            if name not in a:
                return np.zeros(gates * H)
            value = np.asarray(a[name], dtype=np.float64)
            if value.shape != (gates * H,):
                raise ValueError(
                    f"{name} must be ({gates}H,) = {(gates * H,)}; it is {value.shape}"
                )
            return value

        self.h0 = state("h0")
        self.c0 = state("c0") if model == "lstm" else None
        self.biases = {name: bias(name) for name in biases}
        self.bias_names = tuple(name for name in biases if name in a)
        if model == "lstm":
            self._lstm_forward()
        else:
            self._gru_forward()
        if form == "layer":
            self.dh = np.asarray(a["dh"], dtype=np.float64)
            if self.dh.shape != (T, N, H):
                raise ValueError(f"dh must be (T, N, H) = {(T, N, H)}; it is {self.dh.shape}")
            self.output = {}
        else:
            self._output(a)

    # -- the forward passes (always right) ----------------------------------------------------
    def _lstm_forward(self) -> None:
        H = self.H
        where = {name: slice(k * H, (k + 1) * H) for k, name in enumerate(self.gate_order)}
        self.hs, self.cs, self.gates = [self.h0], [self.c0], []
        for t in range(self.T):
            a = self.x[t] @ self.W_x + self.hs[-1] @ self.W_h + self.biases["b"]
            i, f, o = (_sigmoid(a[:, where[k]]) for k in "ifo")
            g = np.tanh(a[:, where["g"]])
            self.cs.append(f * self.cs[-1] + i * g)
            self.hs.append(o * np.tanh(self.cs[-1]))
            self.gates.append((i, f, o, g))

    def _gru_forward(self) -> None:
        H, W_h = self.H, self.W_h
        b_x, b_h = self.biases["b_x"], self.biases["b_h"]
        self.hs, self.gates = [self.h0], []
        for t in range(self.T):
            h_prev = self.hs[-1]
            gx = self.x[t] @ self.W_x + b_x
            gh = h_prev @ W_h + b_h
            r = _sigmoid(gx[:, :H] + gh[:, :H])
            z = _sigmoid(gx[:, H : 2 * H] + gh[:, H : 2 * H])
            if self.reset == "after":
                n = np.tanh(gx[:, 2 * H :] + r * gh[:, 2 * H :])
            else:
                n = np.tanh(gx[:, 2 * H :] + (r * h_prev) @ W_h[:, 2 * H :] + b_h[2 * H :])
            self.hs.append((1.0 - z) * n + z * h_prev)
            self.gates.append((r, z, n, gh[:, 2 * H :]))

    def _output(self, a: Mapping[str, np.ndarray]) -> None:
        """The softmax cross-entropy of o_t = c + h_t V: dh_t through o_t, dV and dc."""
        V = np.asarray(a["V"], dtype=np.float64)
        y = np.asarray(a["y"])
        if V.shape[0] != self.H or y.shape != (self.T, self.N):
            raise ValueError(f"V must be (H, C) and y (T, N); they are {V.shape} and {y.shape}")
        hs = np.stack(self.hs[1:])
        logits = hs @ V
        if "c" in a:
            logits = logits + np.asarray(a["c"], dtype=np.float64)
        probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probs /= probs.sum(axis=-1, keepdims=True)
        dlogits = probs - np.eye(V.shape[1])[y]
        if self.reduction == "mean":
            dlogits /= self.T * self.N
        self.dh = dlogits @ V.T
        C = V.shape[1]
        self.output = {"V": hs.reshape(-1, self.H).T @ dlogits.reshape(-1, C)}
        if "c" in a:
            self.output["c"] = dlogits.sum(axis=(0, 1))

    # -- the backward passes, one switch per mistake -------------------------------------------
    def _lstm_backward(self, mistake: str | None) -> dict[str, np.ndarray]:
        H, N = self.H, self.N
        where = {name: slice(k * H, (k + 1) * H) for k, name in enumerate(self.gate_order)}
        if mistake == "gates_order_mixed":  # written into the columns of the other order
            other = "ifgo" if self.gate_order == "ifog" else "ifog"
            where = {name: slice(k * H, (k + 1) * H) for k, name in enumerate(other)}
        carry_h = mistake not in ("no_hidden_carry", "no_recurrent_term")
        carry_c = mistake not in ("no_cell_carry", "no_recurrent_term")
        grads = {"W_x": np.zeros_like(self.W_x), "W_h": np.zeros_like(self.W_h)}
        db = np.zeros(4 * H)
        dx = np.zeros_like(self.x)
        dh_next, dc_next = np.zeros((N, H)), np.zeros((N, H))
        for t in reversed(range(self.T)):
            i, f, o, g = self.gates[t]
            c, c_prev = self.cs[t + 1], self.cs[t]
            dh = self.dh[t] + dh_next if carry_h else self.dh[t]
            tanh_c = np.tanh(c)
            slope = 1.0 - c**2 if mistake == "tanh_c_slope" else 1.0 - tanh_c**2
            dc = dh * o * slope
            if carry_c:
                dc = dc + dc_next
            di, dg = (dc * i, dc * g) if mistake == "i_g_swapped" else (dc * g, dc * i)
            df = dc * (c if mistake == "c_t_for_c_prev" else c_prev)
            do = dh * (c if mistake == "o_gate_without_tanh" else tanh_c)
            da = np.empty((N, 4 * H))
            da[:, where["i"]] = di * i * (1.0 - i)
            da[:, where["f"]] = df * f * (1.0 - f)
            da[:, where["o"]] = do * o * (1.0 - o)
            da[:, where["g"]] = dg * (1.0 - g**2)
            grads["W_x"] += self.x[t].T @ da
            grads["W_h"] += self.hs[t].T @ da
            db += da.sum(axis=0)
            dx[t] = da @ self.W_x.T
            dh_next = da @ self.W_h.T
            dc_next = dc if mistake == "forget_gate_not_applied" else dc * f
        return self._collect(grads, {"b": db}, dx, {"h0": dh_next, "c0": dc_next})

    def _gru_backward(self, mistake: str | None) -> dict[str, np.ndarray]:
        H, N, W_h = self.H, self.N, self.W_h
        after = self.reset == "after"
        grads = {"W_x": np.zeros_like(self.W_x), "W_h": np.zeros_like(W_h)}
        db_x, db_h = np.zeros(3 * H), np.zeros(3 * H)
        dx = np.zeros_like(self.x)
        dh_next = np.zeros((N, H))
        for t in reversed(range(self.T)):
            r, z, n, hn = self.gates[t]
            h_prev = self.hs[t]
            dh = self.dh[t] if mistake == "no_recurrent_term" else self.dh[t] + dh_next
            dn = dh * (z if mistake == "z_swapped" else 1.0 - z)
            dz = dh * (n - h_prev if mistake == "z_sign" else h_prev - n)
            dan = dn if mistake == "n_slope_missing" else dn * (1.0 - n**2)
            direct = np.zeros((N, H)) if mistake == "no_direct_carry" else dh * z
            if after:
                if mistake == "reset_without_bias":
                    hn = h_prev @ W_h[:, 2 * H :]
                dr = dan * hn
                dah_n = dan if mistake == "reset_not_applied" else dan * r
            else:
                drh = dan @ W_h[:, 2 * H :].T  # into (r * h_{t-1}), then W_hn
                dr = drh * h_prev
            dar = dr * r * (1.0 - r)
            daz = dz * z * (1.0 - z)
            dax = np.hstack([dar, daz, dan])
            grads["W_x"] += self.x[t].T @ dax
            db_x += dax.sum(axis=0)
            dx[t] = dax @ self.W_x.T
            if after:
                dah = np.hstack([dar, daz, dah_n])
                grads["W_h"] += h_prev.T @ dah
                db_h += dah.sum(axis=0)
                through_gates = dah @ W_h.T
            else:
                dah = np.hstack([dar, daz])
                grads["W_h"] += np.hstack([h_prev.T @ dah, (r * h_prev).T @ dan])
                db_h += np.concatenate([dah.sum(axis=0), dan.sum(axis=0)])
                through_gates = dah @ W_h[:, : 2 * H].T + drh * r
            dh_next = direct if mistake == "gates_not_carried" else direct + through_gates
        return self._collect(grads, {"b_x": db_x, "b_h": db_h}, dx, {"h0": dh_next})

    def _collect(self, weights, biases, dx, states) -> dict[str, np.ndarray]:
        """The gradients in the form's order, present inputs only."""
        params = {**weights, **{k: biases[k] for k in self.bias_names}}
        initial = {k: v for k, v in states.items() if k in self.present}
        if self.form == "layer":
            return {"x": dx, **initial, **params}
        return {**params, **self.output, **initial, "x": dx}

    def backward(self, mistake: str | None) -> dict[str, np.ndarray]:
        if mistake is not None and mistake not in MISTAKES[self.model]:
            raise ValueError(f"{mistake!r} is not a simulated {self.model} mistake")
        if self.model == "lstm":
            return self._lstm_backward(mistake)
        return self._gru_backward(mistake)

    def applies(self, mistake: str) -> bool:
        return not (self.model == "gru" and self.reset != "after" and mistake in _AFTER_ONLY)


def simulate(
    model: str,
    arrays: Mapping[str, np.ndarray],
    form: str,
    mistake: str | None = None,
    **options,
) -> dict[str, np.ndarray]:
    """The gradients a hand-written BPTT of `model` ("lstm" or "gru") returns with the one
    mistake `mistake` (a key of `CAUSES` in `MISTAKES[model]`; None: the true gradients).

    `arrays` are canonical, time-major and in the row layout. Form "full": x (T, N, D),
    y (T, N), h0, W_x, W_h, b (LSTM) or b_x, b_h (GRU), V (H, C), c (C,) and, for an LSTM, an
    optional c0 (N, H); the loss is the softmax cross-entropy of o_t = c + h_t V summed over
    the batch and the steps (`reduction="mean"`: averaged over the N*T terms). Form "layer": x,
    h0, c0, the weights and biases and dh (T, N, H), the upstream gradient on every h_t. An
    absent h0 or c0 is fixed at zero and has no gradient; an absent bias (b, b_x, b_h, c) is
    left out of the model. `options`: gate_order ("ifog" or "ifgo", LSTM), reset ("after" or
    "before", GRU); the other options of a model variant are accepted at the values the gated
    cells have (tanh, dense inputs, no truncation).

    The gradients come back keyed like the truth: form "full" W_x, W_h, b | b_x, b_h, V, c,
    h0, c0, x; form "layer" x, h0, c0, W_x, W_h, b | b_x, b_h (the present inputs only).
    """
    run = _Run(model, arrays, form, dict(options))
    if mistake is not None and not run.applies(mistake):
        raise ValueError(f"{mistake!r} needs the reset applied after the product (reset='after')")
    return run.backward(mistake)


def alternatives(
    model: str, arrays: Mapping[str, np.ndarray], form: str, **options
) -> dict[str, dict[str, np.ndarray]]:
    """cause -> the gradients BPTT returns under that mistake, for every simulated mistake of
    `model` that applies to the variant and changes some gradient at these arrays (bit for bit:
    a mistake that makes no difference, as a missing carry at T = 1, is left out). Arguments
    as for `simulate`; the dicts have the truth's keys, in its order."""
    run = _Run(model, arrays, form, dict(options))
    truth = run.backward(None)
    out = {}
    for mistake in MISTAKES[model]:
        if not run.applies(mistake):
            continue
        grads = run.backward(mistake)
        if any(not np.array_equal(grads[k], truth[k]) for k in truth):
            out[mistake] = grads
    return out
