"""Independent NumPy reference for the vanilla RNN loss and its gradients, in every variant.

This is the independent computation every symbolic result of symbptt is checked against:
it is written straight from the model equations as vectorised float64 NumPy, shares no code
with the graph or derivative machinery (it imports only names and errors), and so agreement
between the two is evidence rather than a tautology. Central finite differences give a
third, derivative-free witness. The model (row vectors, a minibatch of N sequences):

    a_t = b + h_{t-1} W_h + x_t W_x,   h_t = act(a_t),   o_t = c + h_t V,
    L = sum_t sum_i -log softmax(o_t[i])[y_t[i]]

Shapes: x (T,N,D), y (T,N) integer labels in [0, C), h0 (N,H), W_x (D,H), W_h (H,H), b (H,),
V (H,C), c (C,). The variants are keyword options of every function (defaults: the model
above with tanh, summed loss, full BPTT):

* no bias: pass `b=None` and/or `c=None` (a dict leaves the key out); the gradients then have
  no "b"/"c" key.
* `h0=None` (a dict leaves the key out): h0 is fixed at zero and is no input, so there is no
  "h0" gradient.
* `inputs="tokens"`: x is an integer array (T,N) of ids in [0, D), D = W_x.shape[0], and
  x_t W_x is the row lookup W_x[x_t] (equal to onehot(x_t) W_x); there is no "x" gradient.
  Ids must have an integer dtype (a float array of whole numbers is refused, not rounded).
* `activation="tanh" | "relu" | "identity"`; relu'(0) is taken as 0 (the gradient is 0
  wherever a_t <= 0).
* `reduction="sum" | "mean"`: the loss summed over all N*T terms or averaged over them; with
  "mean" every loss term, and so every gradient, is divided by N*T (`loss_per_step` returns
  the terms L_t / (N*T), which still sum to the loss).
* `truncate=K` (K >= 0, None for full BPTT): K-step truncated BPTT. The gradient of each L_t
  reaches the pre-activations a_t, a_{t-1}, ..., a_{t-K} (clipped at the first step) and no
  further, i.e. only the paths of the unrolled graph with t - k <= K survive, where k is the
  step at which the parameter copy, x_k or h0 (which enters at step 1) is used. Every reached
  a_s passes gradient to its direct inputs W_x, W_h, b and x_s, and to h0 only when s is the
  first step. So K >= T - 1 equals full BPTT and K = 0 has no recurrent term. Truncation
  changes gradients only: the loss functions accept `truncate` (so one mapping of options fits
  every function) and ignore it. It combines with every other option; with "mean" the
  truncated gradient is divided by N*T like any other.

Every bad array raises `InputArrayError` and every bad option `InvalidArgumentError` (both
`SymbpttError` and `ValueError`), each with one sentence naming the problem.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from .errors import InputArrayError, InvalidArgumentError, UserFunctionError
from .models.dims import resolve_name

__all__ = [
    "ACTIVATIONS",
    "INPUT_KINDS",
    "REDUCTIONS",
    "finite_differences",
    "forward_backward",
    "forward_backward_dict",
    "layer_forward",
    "layer_vjp",
    "loss",
    "loss_per_step",
    "output_gradient",
]

ACTIVATIONS: tuple[str, ...] = ("tanh", "relu", "identity")
REDUCTIONS: tuple[str, ...] = ("sum", "mean")
INPUT_KINDS: tuple[str, ...] = ("dense", "tokens")

# Written out here rather than imported, so that the reference states the model on its own.
_MODEL_INPUTS = ("x", "y", "h0", "W_x", "W_h", "b", "V", "c")
_GRADIENT_ORDER = ("W_x", "W_h", "b", "V", "c", "h0", "x")
_OPTIONAL_MODEL = ("h0", "b", "c")
_OPTIONAL_LAYER = ("h0", "b")
_LAYOUT = {  # each array's shape in words
    "x": "(T, N, D)",
    "y": "(T, N)",
    "h0": "(N, H)",
    "W_x": "(D, H)",
    "W_h": "(H, H)",
    "b": "(H,)",
    "V": "(H, C)",
    "c": "(C,)",
    "dh": "(T, N, H)",
}
_TOKEN_LAYOUT = "(T, N) of token ids"
_AXES = {"x": 3, "y": 2, "h0": 2, "W_x": 2, "W_h": 2, "b": 1, "V": 2, "c": 1, "dh": 3}


# --- options --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Options:
    activation: str
    reduction: str
    inputs: str
    truncate: int | None

    @property
    def tokens(self) -> bool:
        return self.inputs == "tokens"


def _choice(option: str, value: object, allowed: tuple[str, ...]) -> str:
    if isinstance(value, str) and value in allowed:
        return value
    choices = ", ".join(repr(a) for a in allowed)
    raise InvalidArgumentError(f"{option}={value!r} is not valid; choose one of {choices}")


def _check_truncate(truncate: object) -> int | None:
    if truncate is None:
        return None
    is_whole = isinstance(truncate, numbers.Integral) and not isinstance(truncate, bool)
    if not is_whole or truncate < 0:
        raise InvalidArgumentError(
            f"truncate={truncate!r} must be None (full BPTT) or a non-negative whole "
            f"number of steps"
        )
    return int(truncate)


def _options(
    *,
    activation: object = "tanh",
    reduction: object = "sum",
    inputs: object = "dense",
    truncate: object = None,
) -> _Options:
    return _Options(
        activation=_choice("activation", activation, ACTIVATIONS),
        reduction=_choice("reduction", reduction, REDUCTIONS),
        inputs=_choice("inputs", inputs, INPUT_KINDS),
        truncate=_check_truncate(truncate),
    )


# --- arrays ---------------------------------------------------------------------------------


def _as_array(name: str, value: object) -> np.ndarray:
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged nesting, for one
        raise InputArrayError(
            f"{name} cannot be read as an array: {type(exc).__name__} from numpy.asarray"
        ) from exc
    if array.dtype.kind == "O":
        raise InputArrayError(f"{name} must be a numeric array, got {type(value).__name__}")
    return array


def _first_bad(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def _checked(values: dict[str, object], opts: _Options, optional: tuple[str, ...]):
    """Check every array against the options and each other; return float64 copies (int64
    for labels and token ids), None for an absent optional array."""
    missing = [name for name, value in values.items() if value is None and name not in optional]
    if missing:
        raise InputArrayError(
            f"missing input array(s): {', '.join(missing)}; only {', '.join(optional)} "
            f"may be None or left out"
        )
    raw = {name: None if v is None else _as_array(name, v) for name, v in values.items()}
    present = {name: array for name, array in raw.items() if array is not None}
    layouts = {**_LAYOUT, "x": _TOKEN_LAYOUT} if opts.tokens else _LAYOUT
    for name, array in present.items():
        _check_kind_and_axes(name, array, opts.tokens, layouts[name])
    sizes = _sizes(present, opts.tokens)
    _check_shapes(present, sizes, opts.tokens, layouts)
    return {
        name: None if a is None else _converted(name, a, sizes, opts.tokens)
        for name, a in raw.items()
    }


def _is_index_array(name: str, tokens: bool) -> bool:
    """Labels, and token ids under inputs="tokens", are integer indices, not reals."""
    return name == "y" or (name == "x" and tokens)


def _check_kind_and_axes(name: str, array: np.ndarray, tokens: bool, layout: str) -> None:
    if _is_index_array(name, tokens):
        if array.dtype.kind not in "iu":
            what = "class labels" if name == "y" else "token ids (inputs='tokens')"
            raise InputArrayError(f"{name} must hold integer {what}, got dtype {array.dtype}")
    elif array.dtype.kind not in "iuf":
        raise InputArrayError(f"{name} must be a real array, got dtype {array.dtype}")
    axes = 2 if name == "x" and tokens else _AXES[name]
    if array.ndim != axes:
        hint = ""
        if name == "x" and tokens and array.ndim == 3:
            hint = "; dense inputs need inputs='dense'"
        elif name == "x" and array.ndim == 2 and array.dtype.kind in "iu":
            hint = "; integer token ids need inputs='tokens'"
        raise InputArrayError(
            f"{name} must have {axes} {'axis' if axes == 1 else 'axes'} {layout}, "
            f"got shape {array.shape}{hint}"
        )


def _sizes(present: dict[str, np.ndarray], tokens: bool) -> dict[str, int]:
    """T, N (from x), D (x, or the rows of W_x for tokens), H (h0, else b, else W_h) and C
    (V, when there is one); each at least 1, C at least 2."""
    h_source = next(name for name in ("h0", "b", "W_h") if name in present)
    sources = {
        "T": ("x", 0),
        "N": ("x", 1),
        "D": ("W_x", 0) if tokens else ("x", 2),
        "H": (h_source, -1),
        "C": ("V", 1),
    }
    sizes = {}
    for dim, (source, axis) in sources.items():
        if source not in present:
            continue
        shape = present[source].shape
        sizes[dim] = shape[axis]
        if sizes[dim] < 1:
            raise InputArrayError(
                f"{source} has shape {shape}, so {dim}=0; every dimension must be at least 1"
            )
    if sizes.get("C", 2) < 2:
        raise InputArrayError(
            f"V has shape {present['V'].shape}, so C=1; the softmax cross-entropy needs at "
            f"least 2 classes"
        )
    return sizes


def _check_shapes(present, sizes: dict[str, int], tokens: bool, layouts) -> None:
    T, N, D, H, C = (sizes.get(dim) for dim in "TNDHC")
    want = {
        "x": (T, N) if tokens else (T, N, D),
        "y": (T, N),
        "h0": (N, H),
        "W_x": (D, H),
        "W_h": (H, H),
        "b": (H,),
        "V": (H, C),
        "c": (C,),
        "dh": (T, N, H),
    }
    known = ", ".join(f"{dim}={size}" for dim, size in sizes.items())
    for name, array in present.items():
        if array.shape != want[name]:
            raise InputArrayError(
                f"{name} has shape {array.shape}, expected {want[name]} as {layouts[name]} "
                f"with {known}"
            )


def _converted(name: str, array: np.ndarray, sizes: dict[str, int], tokens: bool) -> np.ndarray:
    """An int64 copy of indices in range, or a float64 copy of finite reals."""
    if _is_index_array(name, tokens):
        bound, what = (sizes["C"], "labels") if name == "y" else (sizes["D"], "token ids")
        bad = (array < 0) | (array >= bound)
        if np.any(bad):
            index = _first_bad(bad)
            raise InputArrayError(
                f"{name} holds {what} outside [0, {bound}): {array[index]} at index {index}"
            )
        return array.astype(np.int64)
    value = array.astype(np.float64)
    if not np.all(np.isfinite(value)):
        index = _first_bad(~np.isfinite(value))
        raise InputArrayError(f"{name} holds a non-finite value ({value[index]}) at index {index}")
    return value


def _model_arrays(values: dict[str, object], opts: _Options) -> dict[str, np.ndarray | None]:
    return _checked(values, opts, _OPTIONAL_MODEL)


def _layer_arrays(values: dict[str, object], opts: _Options) -> dict[str, np.ndarray | None]:
    return _checked(values, opts, _OPTIONAL_LAYER)


# --- the computation ------------------------------------------------------------------------


def _overflow_is_checked() -> np.errstate:
    """Non-finite results are detected and reported as InputArrayError, not warned about."""
    return np.errstate(over="ignore", invalid="ignore")


def _activate(kind: str, a: np.ndarray) -> np.ndarray:
    if kind == "tanh":
        return np.tanh(a)
    if kind == "relu":
        return np.maximum(a, 0.0)
    return a


def _slope(kind: str, hs: np.ndarray) -> np.ndarray:
    """act'(a_t) from h_t = act(a_t); relu'(0) = 0 because h_t > 0 exactly when a_t > 0."""
    if kind == "tanh":
        return 1.0 - hs**2
    if kind == "relu":
        return (hs > 0.0).astype(np.float64)
    return np.ones_like(hs)


def _input_part(a: Mapping[str, np.ndarray | None], tokens: bool) -> np.ndarray:
    """x_t W_x (+ b) for every t at once: it does not depend on the recurrence."""
    part = a["W_x"][a["x"]] if tokens else a["x"] @ a["W_x"]
    return part if a["b"] is None else part + a["b"]


def _forward(a: Mapping[str, np.ndarray | None], opts: _Options) -> np.ndarray:
    """Hidden states h_1..h_T stacked as (T,N,H)."""
    with _overflow_is_checked():
        part = _input_part(a, opts.tokens)
        hs = np.empty(part.shape)
        h = np.zeros(part.shape[1:]) if a["h0"] is None else a["h0"]
        for t in range(part.shape[0]):
            h = _activate(opts.activation, part[t] + h @ a["W_h"])
            hs[t] = h
    if not np.all(np.isfinite(hs)):
        step = int(np.argwhere(~np.isfinite(hs))[0][0]) + 1
        raise InputArrayError(
            f"the hidden state overflows float64 at step {step} with "
            f"activation={opts.activation!r}; the weights are too large"
        )
    return hs


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    # Shifting by the row maximum keeps exp() in [0, 1]: no overflow for logits ~1e3.
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _outputs(a, hs: np.ndarray, opts: _Options) -> tuple[np.ndarray, np.ndarray, float]:
    """Log-probabilities, the loss terms L_1..L_T (reduced) and the factor of the reduction."""
    with _overflow_is_checked():
        logits = hs @ a["V"] if a["c"] is None else hs @ a["V"] + a["c"]
    if not np.all(np.isfinite(logits)):
        raise InputArrayError("the logits o_t overflow float64; the weights are too large")
    log_probs = _log_softmax(logits)
    picked = np.take_along_axis(log_probs, a["y"][..., None], axis=-1)[..., 0]
    T, N = a["y"].shape
    factor = 1.0 if opts.reduction == "sum" else 1.0 / (N * T)
    return log_probs, -picked.sum(axis=1) * factor, factor


def _adjoints(hs, W_h, dh, slope, k: int | None) -> np.ndarray:
    """Gradients on a_1..a_T given the direct gradients dh on h_1..h_T, full or k-truncated."""
    T = hs.shape[0]
    if k is None or k >= T - 1:
        da = np.empty_like(hs)
        carry = np.zeros_like(hs[0])  # gradient arriving at h_t from a_{t+1}
        for t in reversed(range(T)):
            da[t] = (dh[t] + carry) * slope[t]
            carry = da[t] @ W_h.T
        return da
    da = np.zeros_like(hs)
    for t in range(T):  # the gradient of L_t alone, walked back k steps
        stop = max(t - k, 0)
        g = dh[t] * slope[t]
        for s in range(t, stop - 1, -1):
            da[s] += g
            if s > stop:
                g = (g @ W_h.T) * slope[s - 1]
    return da


def _sum_outer(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sum_t a_t^T b_t as one matmul over the flattened (T*N) rows (einsum would loop)."""
    return a.reshape(-1, a.shape[-1]).T @ b.reshape(-1, b.shape[-1])


def _layer_gradients(a, hs: np.ndarray, dh: np.ndarray, opts: _Options) -> dict[str, np.ndarray]:
    """Every a_t = b + h_{t-1} W_h + x_t W_x is linear in its inputs; da_t is its adjoint."""
    W_x, W_h, h0 = a["W_x"], a["W_h"], a["h0"]
    first = np.zeros_like(hs[0]) if h0 is None else h0
    h_prev = np.concatenate([first[None], hs[:-1]], axis=0)
    with _overflow_is_checked():  # by `_in_order`
        da = _adjoints(hs, W_h, dh, _slope(opts.activation, hs), opts.truncate)
        if opts.tokens:  # the row lookup W_x[x_t] sends da_t back to the rows it read
            dW_x = np.zeros_like(W_x)
            np.add.at(dW_x, a["x"].reshape(-1), da.reshape(-1, da.shape[-1]))
        else:
            dW_x = _sum_outer(a["x"], da)
        grads = {"W_x": dW_x, "W_h": _sum_outer(h_prev, da)}
        if a["b"] is not None:
            grads["b"] = da.sum(axis=(0, 1))
        if h0 is not None:
            grads["h0"] = da[0] @ W_h.T
        if not opts.tokens:
            grads["x"] = da @ W_x.T
    return grads


def _in_order(grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The gradients in the order W_x, W_h, b, V, c, h0, x, once each is known to be finite."""
    for name, value in grads.items():
        if not np.all(np.isfinite(value)):
            raise InputArrayError(
                f"the gradient with respect to {name} overflows float64; the weights are too large"
            )
    return {name: grads[name] for name in _GRADIENT_ORDER if name in grads}


def _forward_backward(a, opts: _Options) -> tuple[float, dict[str, np.ndarray]]:
    """`forward_backward` on arrays that `_model_arrays` has already checked."""
    hs = _forward(a, opts)
    log_probs, step_losses, factor = _outputs(a, hs, opts)
    dlogits = (np.exp(log_probs) - np.eye(a["V"].shape[1])[a["y"]]) * factor  # softmax - 1hot
    grads = _layer_gradients(a, hs, dlogits @ a["V"].T, opts)
    with _overflow_is_checked():  # by `_in_order`
        grads["V"] = _sum_outer(hs, dlogits)
    if a["c"] is not None:
        grads["c"] = dlogits.sum(axis=(0, 1))
    return float(step_losses.sum()), _in_order(grads)


# --- the public functions -------------------------------------------------------------------


def forward_backward(
    x,
    y,
    h0,
    W_x,
    W_h,
    b,
    V,
    c,
    *,
    truncate: int | None = None,
    activation: str = "tanh",
    reduction: str = "sum",
    inputs: str = "dense",
) -> tuple[float, dict[str, np.ndarray]]:
    """Return the loss L and its gradients, same shapes as the inputs, keyed in the order
    W_x, W_h, b, V, c, h0, x (`symbptt.models.dims.GRADIENT_NAMES`) without the names the variant
    lacks: "b"/"c" when b/c is None, "h0" when h0 is None (fixed at zero), "x" for
    `inputs="tokens"`. The options are described in the module docstring.
    """
    opts = _options(activation=activation, reduction=reduction, inputs=inputs, truncate=truncate)
    values = dict(zip(_MODEL_INPUTS, (x, y, h0, W_x, W_h, b, V, c)))
    return _forward_backward(_model_arrays(values, opts), opts)


def forward_backward_dict(
    arrays: Mapping[str, np.ndarray],
    *,
    truncate: int | None = None,
    activation: str = "tanh",
    reduction: str = "sum",
    inputs: str = "dense",
) -> tuple[float, dict[str, np.ndarray]]:
    """`forward_backward` on a dict keyed by input name, such as `random_point` returns; a
    missing (or None) "b", "c" or "h0" means the variant without that array.
    """
    opts = _options(activation=activation, reduction=reduction, inputs=inputs, truncate=truncate)
    return _forward_backward(_model_arrays(_from_mapping(arrays, _MODEL_INPUTS), opts), opts)


def _from_mapping(arrays: object, names: tuple[str, ...]) -> dict[str, object]:
    if not isinstance(arrays, Mapping):
        raise InvalidArgumentError(
            f"arrays must be a mapping from input names to arrays, got {type(arrays).__name__}"
        )
    unexpected = sorted((str(k) for k in arrays if k not in names), key=str)
    if unexpected:
        raise InputArrayError(
            f"unexpected input array(s): {', '.join(unexpected)}; expected {', '.join(names)}"
        )
    return {name: arrays.get(name) for name in names}


def loss_per_step(
    x,
    y,
    h0,
    W_x,
    W_h,
    b,
    V,
    c,
    *,
    truncate: int | None = None,
    activation: str = "tanh",
    reduction: str = "sum",
    inputs: str = "dense",
) -> np.ndarray:
    """Return the loss terms L_1..L_T as a (T,) array, each summed over the batch (divided by
    N*T with `reduction="mean"`, so that they always sum to the loss). `truncate` is checked
    and otherwise ignored: truncation changes gradients, not the loss.
    """
    opts = _options(activation=activation, reduction=reduction, inputs=inputs, truncate=truncate)
    return _step_losses(dict(zip(_MODEL_INPUTS, (x, y, h0, W_x, W_h, b, V, c))), opts)


def _step_losses(values: dict[str, object], opts: _Options) -> np.ndarray:
    a = _model_arrays(values, opts)
    return _outputs(a, _forward(a, opts), opts)[1]


def loss(
    x,
    y,
    h0,
    W_x,
    W_h,
    b,
    V,
    c,
    *,
    truncate: int | None = None,
    activation: str = "tanh",
    reduction: str = "sum",
    inputs: str = "dense",
) -> float:
    """Return the loss L = sum_t L_t: summed over the batch and time by default, averaged
    over the N*T terms with `reduction="mean"`; options as in `loss_per_step`.
    """
    opts = _options(activation=activation, reduction=reduction, inputs=inputs, truncate=truncate)
    values = dict(zip(_MODEL_INPUTS, (x, y, h0, W_x, W_h, b, V, c)))
    return float(_step_losses(values, opts).sum())


def layer_forward(
    x,
    h0,
    W_x,
    W_h,
    b,
    *,
    truncate: int | None = None,
    activation: str = "tanh",
    inputs: str = "dense",
) -> np.ndarray:
    """Return the hidden states h_1..h_T of the RNN layer as a (T,N,H) array; b and h0 may be
    None (no bias; h0 fixed at zero). `truncate` is checked and otherwise ignored.
    """
    opts = _options(activation=activation, inputs=inputs, truncate=truncate)
    a = _layer_arrays({"x": x, "h0": h0, "W_x": W_x, "W_h": W_h, "b": b}, opts)
    return _forward(a, opts)


def layer_vjp(
    x,
    h0,
    W_x,
    W_h,
    b,
    dh,
    *,
    truncate: int | None = None,
    activation: str = "tanh",
    inputs: str = "dense",
) -> dict[str, np.ndarray]:
    """Return the gradients of sum_t <dh_t, h_t> w.r.t. "W_x", "W_h", "b", "h0" and "x": the
    exact vector-Jacobian product of the RNN layer with upstream gradient dh (T,N,H), without
    "b" when b is None, "h0" when h0 is None and "x" for `inputs="tokens"`. `truncate=k`:
    each dh_t flows back through at most k recurrent steps, as in `forward_backward`.
    """
    opts = _options(activation=activation, inputs=inputs, truncate=truncate)
    values = {"x": x, "h0": h0, "W_x": W_x, "W_h": W_h, "b": b, "dh": dh}
    a = _layer_arrays(values, opts)
    return _in_order(_layer_gradients(a, _forward(a, opts), a["dh"], opts))


# --- finite differences ---------------------------------------------------------------------


def _evaluate(f: Callable[[dict[str, np.ndarray]], float], arrays) -> float:
    try:
        value = f(arrays)
    except Exception as exc:
        raise UserFunctionError(
            f"the function under finite differences raised {type(exc).__name__}: {exc}"
        ) from exc
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    is_real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not is_real or not np.isfinite(value):
        raise UserFunctionError(
            f"the function under finite differences must return a finite scalar, got {value!r}"
        )
    return float(value)


def finite_differences(
    f: Callable[[dict[str, np.ndarray]], float],
    arrays: Mapping[str, np.ndarray],
    names: Iterable[str],
    *,
    eps: float = 1e-6,
) -> dict[str, np.ndarray]:
    """Return central differences (f(v+eps) - f(v-eps)) / 2eps of the scalar f w.r.t. every
    entry of each named float array; f gets a dict of copies (the named arrays as float64,
    the others as given, None values passed through), the caller's arrays are untouched.

    Any variant works through the dict form, e.g. for a model without b and with token ids:
    `finite_differences(lambda a: forward_backward_dict(a, inputs="tokens")[0], arrays,
    ["W_x", "W_h", "V", "c", "h0"])` with `arrays` lacking "b" and holding integer x.

    Raises:
        UnknownNameError: a name is not a key of `arrays`.
        InputArrayError: a named array does not hold floats.
        UserFunctionError: f raised, or returned something other than a finite scalar.
        InvalidArgumentError: f is not callable, arrays is no mapping, or eps is no positive
            finite step.
    """
    if not callable(f):
        raise InvalidArgumentError(f"f must be a callable taking a dict of arrays, got {f!r}")
    if not isinstance(arrays, Mapping):
        raise InvalidArgumentError(
            f"arrays must be a mapping from names to arrays, got {type(arrays).__name__}"
        )
    is_step = isinstance(eps, numbers.Real) and not isinstance(eps, bool)
    if not (is_step and np.isfinite(eps) and eps > 0):
        raise InvalidArgumentError(f"eps={eps!r} must be a positive finite step size")
    names = [names] if isinstance(names, str) else list(names)
    work = {k: None if v is None else np.array(v, copy=True) for k, v in arrays.items()}
    present = tuple(k for k, v in work.items() if v is not None)
    resolved = [resolve_name(str(name), present) for name in names]
    for name in resolved:
        if not np.issubdtype(work[name].dtype, np.floating):
            raise InputArrayError(
                f"{name} has dtype {work[name].dtype}; finite differences need floats"
            )
        work[name] = work[name].astype(np.float64)
    grads: dict[str, np.ndarray] = {}
    for name in resolved:
        array, grad = work[name], np.empty(work[name].shape)
        for index in np.ndindex(array.shape):
            original = array[index]
            array[index] = original + eps
            plus = _evaluate(f, work)
            array[index] = original - eps
            minus = _evaluate(f, work)
            array[index] = original
            grad[index] = (plus - minus) / (2.0 * eps)
        grads[name] = grad
    return grads


def output_gradient(arrays: Mapping[str, np.ndarray], hs: np.ndarray, reduction: str = "sum"):
    """dL_t/dh_t through o_t alone, (T, N, H): (softmax(o_t) - onehot(y_t)) V^T for hidden
    states hs (T, N, H), divided by N*T for a mean; an absent "c" is no output bias."""
    V, c = np.asarray(arrays["V"], dtype=np.float64), arrays.get("c")
    logits = hs @ V if c is None else hs @ V + np.asarray(c, dtype=np.float64)
    probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    dlogits = probs - np.eye(V.shape[1])[np.asarray(arrays["y"])]
    if reduction == "mean":
        dlogits /= hs.shape[0] * hs.shape[1]
    return dlogits @ V.T
