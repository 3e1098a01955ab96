"""The gradient by path length (Pascanu, Mikolov & Bengio 2013): the total gradient of a
recurrent weight is a sum of temporal components, one per lag l = t - k,

    dL/dθ = sum_l  C_l,   C_l = sum_{t - k = l} dL_t/dh_t · dh_t/dh_k · ∂⁺h_k/∂θ,

and their norms show gradients vanish or explode as l grows. C_l is summed directly, from the
forward pass of the independent NumPy reference (each loss term pulled back one step at a time),
at the model's random weights with W_h rescaled so that its largest singular value is each
requested scale. The tests check the components against the engine's own path terms and their
sum against the reference's gradient. The bound is the one the
paper's argument gives, per example n and pair (t, k): |f'| <= 1 and ||W_h^T|| = σ_max, so

    ||C_l|| <= σ_max^l · sum_t sum_n ||e_{t-l}[n]|| · ||∂L_t/∂h_t[n]||

with e_k the row the weight multiplies at step k (h_{k-1} for W_h, x_k for W_x, 1 for b).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidArgumentError
from ..models.dims import Dims
from ..models.spec import ModelSpec

__all__ = ["Contributions", "contributions", "plot", "WRT", "MAX_T"]

#: The weights whose gradients have a component per lag.
WRT = ("W_h", "W_x", "b")
MAX_T = 200


@dataclass
class Contributions:
    """The norms of the temporal components for each weight scale, with their bounds."""

    dims: Dims
    wrt: str
    seed: int
    scales: list[float]
    #: per scale: ||C_l|| for l = 0..T-1, the bound, ||dL/dθ||, ||sum_l C_l - dL/dθ||
    norms: list[list[float]] = field(default_factory=list)
    bounds: list[list[float]] = field(default_factory=list)
    totals: list[float] = field(default_factory=list)
    sum_errors: list[float] = field(default_factory=list)
    #: The weight rescaled to each σ_max (W_h; a model file's own recurrent weight).
    weight: str = "W_h"

    def as_dict(self) -> dict:
        return {
            "dims": self.dims.as_dict(),
            "wrt": self.wrt,
            "seed": self.seed,
            "lags": list(range(self.dims.T)),
            "scales": [
                {
                    "scale": s,
                    "sigma_max": s,
                    "component_norms": n,
                    "bound": b,
                    "total_norm": t,
                    "sum_minus_total": e,
                }
                for s, n, b, t, e in zip(
                    self.scales,
                    self.norms,
                    self.bounds or [None] * len(self.scales),
                    self.totals,
                    self.sum_errors,
                )
            ],
            "weight": self.weight,
        }


def components(spec: ModelSpec, arrays: dict, wrt: str = "W_h") -> list[np.ndarray]:
    """C_0, ..., C_{T-1} of dL/d(wrt) at `arrays`, each summed directly: every loss term L_t is
    pulled back step by step, and its share at step k goes to lag t - k (no difference of
    large numbers, so a component of 1e-30 is 1e-30, not rounding noise)."""
    from .. import reference

    o = spec.options
    x, W_h = np.asarray(arrays["x"]), np.asarray(arrays["W_h"], dtype=np.float64)
    h0 = arrays.get("h0")
    hs = reference.layer_forward(
        x, h0, arrays["W_x"], W_h, arrays.get("b"), activation=o.activation, inputs=o.inputs
    )
    T, N, H = hs.shape
    slope = {"tanh": 1.0 - hs * hs, "relu": (hs > 0).astype(np.float64)}.get(
        o.activation, np.ones_like(hs)
    )
    rows = _rows(spec, arrays, hs, wrt)
    direct = reference.output_gradient(arrays, hs, o.reduction)
    out = [np.zeros(np.shape(arrays[wrt])) for _ in range(T)]
    for t in range(T):
        delta = direct[t] * slope[t]  # dL_t/da_t
        for k in range(t, -1, -1):
            share = rows[k].T @ delta if wrt != "b" else delta.sum(axis=0)
            out[t - k] += share
            if k:
                delta = (delta @ W_h.T) * slope[k - 1]
    return out


def _rows(spec: ModelSpec, arrays: dict, hs: np.ndarray, wrt: str) -> np.ndarray:
    """e_k, the rows the weight multiplies at each step (T, N, ·): h_{k-1} for W_h, x_k for
    W_x (one-hot rows for token ids), ones for b."""
    T, N, H = hs.shape
    if wrt == "W_h":
        h0 = arrays.get("h0")
        start = np.zeros((1, N, H)) if h0 is None else np.asarray(h0, dtype=np.float64)[None]
        return np.concatenate([start, hs[:-1]])
    if wrt == "W_x":
        x = np.asarray(arrays["x"])
        if spec.options.inputs == "tokens":
            return np.eye(np.shape(arrays["W_x"])[0])[x]
        return x.astype(np.float64)
    return np.ones((T, N, 1))


def bound(spec: ModelSpec, arrays: dict, wrt: str, sigma: float) -> list[float]:
    """The upper bound of ||C_l|| for each lag (see the module docstring)."""
    from .. import reference

    o = spec.options
    hs = reference.layer_forward(
        np.asarray(arrays["x"]),
        arrays.get("h0"),
        arrays["W_x"],
        arrays["W_h"],
        arrays.get("b"),
        activation=o.activation,
        inputs=o.inputs,
    )
    T = hs.shape[0]
    direct = reference.output_gradient(arrays, hs, o.reduction)  # dL_t/dh_t through o_t
    row_norms = np.linalg.norm(_rows(spec, arrays, hs, wrt), axis=-1)  # (T, N)
    g_norms = np.linalg.norm(direct, axis=-1)
    out = []
    for lag in range(T):
        pairs = sum(float(row_norms[t - lag] @ g_norms[t]) for t in range(lag, T))
        out.append(sigma**lag * pairs)
    return out


def contributions(
    spec: ModelSpec,
    dims: Dims,
    wrt: str = "W_h",
    scales: tuple[float, ...] = (0.5, 1.0, 2.0),
    seed: int = 0,
    arrays: dict | None = None,
) -> Contributions:
    """The temporal components of dL/d(wrt) at W_h rescaled to each σ_max in `scales`."""
    from ..models.dims import resolve_name

    if spec.from_file:
        return _file_contributions(spec, dims, wrt, scales, seed, arrays)
    if spec.name != "vanilla":
        raise InvalidArgumentError(
            f"contributions by lag need truncated BPTT, which the {spec.title}'s independent "
            "reference does not have: use --model rnn"
        )
    if spec.options.truncate is not None:
        raise InvalidArgumentError("contributions split full BPTT by lag: drop --truncate")
    wrt = resolve_name(wrt, spec.gradient_names)
    if wrt not in WRT:
        raise InvalidArgumentError(
            f"--wrt {wrt}: only {', '.join(WRT)} have a component per lag t - k (V and c enter "
            "at the loss term's own step, h0 and x at one step each)"
        )
    if wrt not in spec.parameters:
        raise InvalidArgumentError(f"--wrt {wrt}: this variant has no {wrt}")
    point = _point(spec, dims, scales, seed, arrays)
    from .. import reference

    W_h = point["W_h"]
    sigma0 = float(np.linalg.norm(W_h, 2))
    if sigma0 == 0:
        raise InvalidArgumentError("W_h is zero: it cannot be rescaled to a singular value")
    result = Contributions(dims, wrt, seed, [float(s) for s in scales])
    options = spec.options.reference_options()
    for scale in scales:
        scaled = {**point, "W_h": W_h * (scale / sigma0)}
        parts = components(spec, scaled, wrt)
        total = reference.forward_backward_dict(scaled, **options)[1][wrt]
        result.norms.append([float(np.linalg.norm(c)) for c in parts])
        result.bounds.append(bound(spec, scaled, wrt, scale))
        result.totals.append(float(np.linalg.norm(total)))
        result.sum_errors.append(float(np.linalg.norm(sum(parts) - total)))
    return result


def _point(spec: ModelSpec, dims: Dims, scales, seed: int, arrays) -> dict:
    """The checked sizes and scales, and the point: the arrays given, or a seeded draw."""
    if not 1 <= dims.T <= MAX_T:
        raise InvalidArgumentError(f"T={dims.T} must be from 1 to {MAX_T}")
    if not scales or any(not (0 < s < 1e3) or not np.isfinite(s) for s in scales):
        raise InvalidArgumentError(f"scales {list(scales)} must be positive numbers below 1000")
    point = dict(arrays) if arrays is not None else spec.random_point(dims, seed=seed)
    return spec.validate(dims, point)


def recurrent_weight(spec: ModelSpec) -> str:
    """A model file's recurrent weight: the one weight that multiplies its state at t-1
    (h[t-1] @ W), which --scale rescales; InvalidArgumentError when there is not one."""
    from ..formula.ast import Binary, Index, Name, Step
    from ..models.modelfile import _walk

    model = spec.definition
    if len(model.states) != 1:
        raise InvalidArgumentError(
            f"contributions by lag follow one state back in time; {spec.name} has "
            f"{len(model.states)} ({', '.join(model.states)})"
        )
    found = []
    for rule in model.rules:
        for node in _walk(rule.expr):
            if (
                isinstance(node, Binary)
                and node.op == "@"
                and isinstance(node.left, Step)
                and node.left.index == Index("t", -1)
                and isinstance(node.right, Name)
            ):
                if model.declaration(node.right.name) is not None:
                    found.append(node.right.name)
    found = list(dict.fromkeys(found))
    if len(found) != 1:
        what = "none" if not found else f"several ({', '.join(found)})"
        raise InvalidArgumentError(
            f"contributions rescale the recurrent weight, the one weight W in "
            f"{model.states[0]}[t-1] @ W; {spec.name} has {what}"
        )
    return found[0]


def _file_contributions(spec, dims, wrt, scales, seed, arrays) -> Contributions:
    """A model file's components by lag, from its matrix-form recurrences (trusted once
    checked against its own forward equations), with its recurrent weight rescaled. No bound
    is drawn: the paper's argument is about a tanh RNN."""
    from ..engine.matrix_form import matrix_form
    from ..engine.trust import ensure_trusted
    from ..models.dims import resolve_name

    ensure_trusted(spec)
    W = recurrent_weight(spec)
    wrt = resolve_name(wrt, spec.gradient_names)
    if wrt not in spec.parameters:
        raise InvalidArgumentError(
            f"--wrt {wrt}: only a weight used at every step has a component per lag"
        )
    point = _point(spec, dims, scales, seed, arrays)
    sigma0 = float(np.linalg.norm(point[W], 2))
    if sigma0 == 0:
        raise InvalidArgumentError(f"{W} is zero: it cannot be rescaled to a singular value")
    form = matrix_form(spec)
    result = Contributions(dims, wrt, seed, [float(s) for s in scales], weight=W)
    for scale in scales:
        scaled = {**point, W: point[W] * (scale / sigma0)}
        ev = form.evaluate(scaled, dims, lags=True)
        parts = [ev.lags.get((wrt, lag), np.zeros(np.shape(point[wrt]))) for lag in range(dims.T)]
        total = ev.gradients[wrt]
        result.norms.append([float(np.linalg.norm(c)) for c in parts])
        result.totals.append(float(np.linalg.norm(total)))
        result.sum_errors.append(float(np.linalg.norm(sum(parts) - total)))
    return result


def plot(result: Contributions) -> bytes:
    """The norms against the lag, log scale, one line per scale and its bound dashed (PNG)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), dpi=110)
    ax = fig.subplots()
    lags = np.arange(result.dims.T)
    colours = ["#2471a3", "#229954", "#c0392b", "#7d3c98", "#b9770e", "#566573"]
    bounds = result.bounds or [None] * len(result.scales)
    for k, (scale, norms, bound_) in enumerate(zip(result.scales, result.norms, bounds)):
        colour = colours[k % len(colours)]
        shown = np.where(np.asarray(norms) > 0, norms, np.nan)  # an exact 0 has no log
        label = f"σ_max({result.weight}) = {scale:g}"
        ax.semilogy(lags, shown, "o-", color=colour, ms=3, label=label)
        if bound_ is not None:
            ax.semilogy(
                lags, bound_, "--", color=colour, lw=1, label=f"bound, σ_max^l = {scale:g}^l"
            )
    d = result.dims
    ax.set_xlabel("lag l = t - k (steps between the weight's use and the loss term)")
    ax.set_ylabel(f"‖C_l‖ (Frobenius) of dL/d{result.wrt}")
    ax.set_title(
        f"Gradient of {result.wrt} by path length, T = {d.T}, N = {d.N}, H = {d.H} (seed "
        f"{result.seed})",
        fontsize=10,
    )
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
