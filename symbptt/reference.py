"""Independent NumPy reference for the vanilla RNN loss and its gradients.

This is the independent computation every symbolic result of symbptt is checked against:
it is written straight from the model equations in `symbptt.model` as vectorised float64
NumPy, shares no code with the graph or derivative machinery, and so agreement between the
two is evidence rather than a tautology. Central finite differences give a third,
derivative-free witness.

Truncated BPTT (`truncate=k`): the gradient of each loss term L_t reaches the
pre-activations a_t, a_{t-1}, ..., a_{t-k} (clipped at the first step) and no further.
Every reached a_s passes gradient to its direct inputs W_x, W_h, b and x_s; it passes
gradient to h0 only when s is the first step, because h0 is an input of the loss and not a
hidden state computed by a further recurrent step. So `truncate >= T - 1` equals full BPTT.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Mapping

import numpy as np

from .errors import InputArrayError, UserFunctionError
from .model import GRADIENT_NAMES, INPUT_NAMES, Dims, resolve_name, validate_arrays

__all__ = [
    "finite_differences",
    "forward_backward",
    "forward_backward_dict",
    "layer_forward",
    "layer_vjp",
    "loss",
    "loss_per_step",
]


def _validated(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Infer the dims from the shapes of x, h0 and V, then check and copy every input."""
    missing = [name for name in INPUT_NAMES if name not in arrays]
    if missing:
        raise InputArrayError(f"missing input array(s): {', '.join(missing)}")
    return validate_arrays(Dims.from_arrays(dict(arrays)), dict(arrays))


def _float_array(name: str, value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Return a float64 copy of a layer input after checking its dtype, shape and values."""
    array = np.asarray(value)
    if array.dtype.kind not in "iuf":
        raise InputArrayError(f"{name} must be a real array, got dtype {array.dtype}")
    if array.shape != shape:
        raise InputArrayError(f"{name} has shape {array.shape}, expected {shape}")
    if not np.all(np.isfinite(array)):
        raise InputArrayError(f"{name} holds a non-finite value")
    return array.astype(np.float64)


def _layer_arrays(x, h0, W_x, W_h, b, dh=None) -> list[np.ndarray]:
    """Check the RNN layer's inputs (and an upstream gradient dh) against each other."""
    if np.ndim(x) != 3 or np.ndim(b) != 1:
        raise InputArrayError(
            f"x must have 3 axes (T,N,D) and b one (H,), got shapes {np.shape(x)} and {np.shape(b)}"
        )
    (T, N, D), (H,) = np.shape(x), np.shape(b)
    shapes = {"x": (T, N, D), "h0": (N, H), "W_x": (D, H), "W_h": (H, H), "b": (H,)}
    values = {"x": x, "h0": h0, "W_x": W_x, "W_h": W_h, "b": b}
    if dh is not None:
        shapes["dh"], values["dh"] = (T, N, H), dh
    return [_float_array(name, values[name], shapes[name]) for name in shapes]


def _check_truncate(truncate: int | None) -> int | None:
    if truncate is None:
        return None
    is_whole = isinstance(truncate, numbers.Integral) and not isinstance(truncate, bool)
    if not is_whole or truncate < 0:
        raise ValueError(
            f"truncate={truncate!r} must be None (full BPTT) or a non-negative whole "
            f"number of steps"
        )
    return int(truncate)


def _forward(x, h0, W_x, W_h, b) -> np.ndarray:
    """Hidden states h_1..h_T stacked as (T,N,H)."""
    # The input part of a_t does not depend on the recurrence: one matmul for every t.
    input_part = x @ W_x + b
    hs = np.empty(input_part.shape)
    h = h0
    for t in range(x.shape[0]):
        h = np.tanh(input_part[t] + h @ W_h)
        hs[t] = h
    return hs


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    # Shifting by the row maximum keeps exp() in [0, 1]: no overflow for logits ~1e3.
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _log_probs_and_step_losses(hs, y, V, c) -> tuple[np.ndarray, np.ndarray]:
    log_probs = _log_softmax(hs @ V + c)
    picked = np.take_along_axis(log_probs, y[..., None], axis=-1)[..., 0]
    return log_probs, -picked.sum(axis=1)


def _full_adjoints(hs: np.ndarray, W_h: np.ndarray, dh: np.ndarray) -> np.ndarray:
    """Total gradients on a_1..a_T given direct gradients dh on h_1..h_T (full BPTT)."""
    da = np.empty_like(hs)
    carry = np.zeros_like(hs[0])  # gradient arriving at h_t from a_{t+1}
    for t in reversed(range(hs.shape[0])):
        da[t] = (dh[t] + carry) * (1.0 - hs[t] ** 2)
        carry = da[t] @ W_h.T
    return da


def _truncated_adjoints(hs: np.ndarray, W_h: np.ndarray, dh: np.ndarray, k: int):
    """Gradients on a_1..a_T when each dh_t flows back through at most k recurrent steps."""
    da = np.zeros_like(hs)
    for t in range(hs.shape[0]):
        stop = max(t - k, 0)
        g = dh[t] * (1.0 - hs[t] ** 2)
        for s in range(t, stop - 1, -1):
            da[s] += g
            if s > stop:
                g = (g @ W_h.T) * (1.0 - hs[s - 1] ** 2)
    return da


def _sum_outer(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sum_t a_t^T b_t as one matmul over the flattened (T*N) rows (einsum would loop)."""
    return a.reshape(-1, a.shape[-1]).T @ b.reshape(-1, b.shape[-1])


def _layer_gradients(x, h0, hs, W_x, W_h, da) -> dict[str, np.ndarray]:
    """Every a_t = b + h_{t-1} W_h + x_t W_x is linear in its inputs; da_t is its adjoint."""
    h_prev = np.concatenate([h0[None], hs[:-1]], axis=0)
    return {
        "W_x": _sum_outer(x, da),
        "W_h": _sum_outer(h_prev, da),
        "b": da.sum(axis=(0, 1)),
        "h0": da[0] @ W_h.T,
        "x": da @ W_x.T,
    }


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
    untransposed_recurrence: bool = False,
) -> tuple[float, dict[str, np.ndarray]]:
    """Return the summed loss L and its gradients keyed by `GRADIENT_NAMES`, same shapes as
    the inputs; `truncate=k` gives truncated BPTT (see the module docstring), None full BPTT.

    `untransposed_recurrence=True` reproduces the classic mistake dh_{t-1} = da_t W_h (W_h
    where W_h^T belongs); the checker uses it to name that cause. It is never the truth.
    """
    a = _validated(dict(zip(INPUT_NAMES, (x, y, h0, W_x, W_h, b, V, c), strict=True)))
    return _forward_backward(a, _check_truncate(truncate), untransposed_recurrence)


def _forward_backward(a: dict[str, np.ndarray], k: int | None, untransposed: bool):
    """`forward_backward` on arrays that `_validated` has already checked."""
    hs = _forward(a["x"], a["h0"], a["W_x"], a["W_h"], a["b"])
    log_probs, step_losses = _log_probs_and_step_losses(hs, a["y"], a["V"], a["c"])
    dlogits = np.exp(log_probs) - np.eye(a["V"].shape[1])[a["y"]]  # softmax - one-hot
    dh = dlogits @ a["V"].T
    grads = _backward(a["x"], a["h0"], hs, a["W_x"], a["W_h"], dh, k, untransposed)
    grads["V"] = _sum_outer(hs, dlogits)
    grads["c"] = dlogits.sum(axis=(0, 1))
    return float(step_losses.sum()), {name: grads[name] for name in GRADIENT_NAMES}


def forward_backward_dict(
    arrays: Mapping[str, np.ndarray],
    *,
    truncate: int | None = None,
    untransposed_recurrence: bool = False,
) -> tuple[float, dict[str, np.ndarray]]:
    """`forward_backward` on a dict keyed by `INPUT_NAMES`, such as `random_point` returns."""
    a = _validated(arrays)  # also rejects missing and unexpected names
    return _forward_backward(a, _check_truncate(truncate), untransposed_recurrence)


def loss_per_step(x, y, h0, W_x, W_h, b, V, c) -> np.ndarray:
    """Return the loss terms L_1..L_T, each summed over the batch, as a (T,) array."""
    a = _validated(dict(zip(INPUT_NAMES, (x, y, h0, W_x, W_h, b, V, c), strict=True)))
    hs = _forward(a["x"], a["h0"], a["W_x"], a["W_h"], a["b"])
    return _log_probs_and_step_losses(hs, a["y"], a["V"], a["c"])[1]


def loss(x, y, h0, W_x, W_h, b, V, c) -> float:
    """Return the total loss L = sum_t L_t (summed over the batch, not averaged)."""
    return float(loss_per_step(x, y, h0, W_x, W_h, b, V, c).sum())


def layer_forward(x, h0, W_x, W_h, b) -> np.ndarray:
    """Return the hidden states h_1..h_T of the RNN layer as a (T,N,H) array."""
    return _forward(*_layer_arrays(x, h0, W_x, W_h, b))


def layer_vjp(
    x,
    h0,
    W_x,
    W_h,
    b,
    dh,
    *,
    truncate: int | None = None,
    untransposed_recurrence: bool = False,
) -> dict[str, np.ndarray]:
    """Return the gradients of sum_t <dh_t, h_t> w.r.t. "x", "h0", "W_x", "W_h" and "b":
    the exact vector-Jacobian product of the RNN layer with upstream gradient dh (T,N,H).
    `truncate` and `untransposed_recurrence` work as in `forward_backward`.
    """
    k = _check_truncate(truncate)
    x, h0, W_x, W_h, b, dh = _layer_arrays(x, h0, W_x, W_h, b, dh)
    hs = _forward(x, h0, W_x, W_h, b)
    return _backward(x, h0, hs, W_x, W_h, dh, k, untransposed_recurrence)


def _backward(x, h0, hs, W_x, W_h, dh, k, untransposed) -> dict[str, np.ndarray]:
    """Layer gradients from the direct gradients dh on h_1..h_T (full or truncated BPTT)."""
    # The backward pass multiplies by W_back^T; the mistake model uses W_h itself there.
    W_back = W_h.T if untransposed else W_h
    if k is None:
        da = _full_adjoints(hs, W_back, dh)
    else:
        da = _truncated_adjoints(hs, W_back, dh, k)
    return _layer_gradients(x, h0, hs, W_x, W_back, da)


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
    entry of each named float array; f gets float64 copies, the caller's arrays are untouched.

    Raises:
        UnknownNameError: a name is not a key of `arrays`.
        InputArrayError: a named array does not hold floats.
        UserFunctionError: f raised, or returned something other than a finite scalar.
    """
    if not (isinstance(eps, numbers.Real) and np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps={eps!r} must be a positive finite step size")
    names = [names] if isinstance(names, str) else list(names)
    work = {key: np.array(value, copy=True) for key, value in arrays.items()}
    resolved = [resolve_name(str(name), tuple(work)) for name in names]
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
