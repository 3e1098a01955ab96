"""The table of local rules: each node kind's forward map and its vector-Jacobian products.

Rules are data, one row per kind of node, in the style of HIPS autograd's `defvjp`. Every rule
works on NumPy arrays of floats and on NumPy object arrays of SymEngine expressions alike, so the
same row builds the symbolic unrolled graph, pulls adjoints back along a path, and (later) feeds
the matrix-form LaTeX printer. Each rule is tested on its own against element-level symbolic
differentiation (`tests/test_rules.py`).

Conventions: a VJP `vjp(g, out, *inputs, **consts)` returns dL/d(input) given g = dL/d(out),
with the input's own shape. Row vectors: `affine` is `bias + sum_k A_k @ B_k`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import symengine as se

__all__ = ["Rule", "RULES", "tanh", "exp", "log"]


def _elementwise(float_fn: Callable, symbolic_fn: Callable) -> Callable[[np.ndarray], np.ndarray]:
    vectorised = np.vectorize(symbolic_fn, otypes=[object])

    def apply(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a)
        return vectorised(a) if a.dtype == object else float_fn(a)

    return apply


tanh = _elementwise(np.tanh, se.tanh)
exp = _elementwise(np.exp, se.exp)
log = _elementwise(np.log, se.log)


def _softmax(o: np.ndarray, m: np.ndarray) -> np.ndarray:
    # Shifting each row by m (its max, at run time) changes nothing mathematically and keeps
    # exp() finite for logits of size 1000.
    e = exp(o - m[:, None])
    return e / e.sum(axis=1, keepdims=True)


def _softmax_ce(o: np.ndarray, *, Y: np.ndarray, m: np.ndarray) -> np.ndarray:
    lse = m + log(exp(o - m[:, None]).sum(axis=1))
    return np.asarray((lse - (Y * o).sum(axis=1)).sum())


def _rowmax(o: np.ndarray) -> np.ndarray:
    if o.dtype == object:
        return np.array([se.Max(*row) for row in o], dtype=object)
    return o.max(axis=1)


def _affine_vjps(n_pairs: int) -> tuple[Callable, ...]:
    vjps: list[Callable] = [lambda g, out, bias, *ab: g.sum(axis=0)]
    for k in range(n_pairs):
        vjps.append(lambda g, out, bias, *ab, k=k: g @ ab[2 * k + 1].T)
        vjps.append(lambda g, out, bias, *ab, k=k: ab[2 * k].T @ g)
    return tuple(vjps)


@dataclass(frozen=True)
class Rule:
    """A node kind: its forward map and one VJP per input."""

    name: str
    forward: Callable[..., np.ndarray]
    vjps: tuple[Callable[..., np.ndarray], ...]
    #: False for nodes whose derivative is zero by construction (the softmax shift).
    differentiable: bool = True


def _sum(*terms: np.ndarray) -> np.ndarray:
    if np.asarray(terms[0]).dtype == object:
        # One flat Add: folding with + on object arrays makes SymEngine import all of SymPy.
        return np.asarray(se.Add(*(np.asarray(t).item() for t in terms)), dtype=object)
    return np.asarray(sum(terms[1:], start=terms[0]))


def _affine(bias: np.ndarray, *ab: np.ndarray) -> np.ndarray:
    out = ab[0] @ ab[1]
    for k in range(2, len(ab), 2):
        out = out + ab[k] @ ab[k + 1]
    return bias + out


RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in (
        Rule(
            "copy",
            forward=lambda a: a,
            vjps=(lambda g, out, a: g,),
        ),
        Rule(
            "affine_in",  # a_t = b + h_{t-1} W_h + x_t W_x
            forward=_affine,
            vjps=_affine_vjps(2),
        ),
        Rule(
            "affine_out",  # o_t = c + h_t V
            forward=_affine,
            vjps=_affine_vjps(1),
        ),
        Rule(
            "tanh",
            forward=tanh,
            vjps=(lambda g, out, a: g * (1 - out * out),),
        ),
        Rule(
            "softmax_ce",  # L_t = sum_i logsumexp(o_t[i]) - o_t[i, y_t[i]]
            forward=_softmax_ce,
            vjps=(lambda g, out, o, *, Y, m: g * (_softmax(o, m) - Y),),
        ),
        Rule(
            "sum",
            forward=_sum,
            vjps=(),  # variadic: every input receives g unchanged (see vjp())
        ),
        Rule(
            "rowmax",  # the softmax shift m_t; its value never changes the loss
            forward=_rowmax,
            vjps=(),
            differentiable=False,
        ),
    )
}


def vjp(rule: Rule, index: int, g: np.ndarray, out: np.ndarray, inputs, consts) -> np.ndarray:
    """Pull the adjoint g of a node back to its input number `index`."""
    if rule.name == "sum":
        return g
    return rule.vjps[index](g, out, *inputs, **consts)
