"""The rule table: a small matrix vocabulary, each operation's forward map next to its VJP.

Rules are data, one row per operation, in the style of HIPS autograd's `defvjp`. Every row is
written once and runs on three backends:

- NumPy arrays of floats (evaluation, finite differences),
- NumPy object arrays of SymEngine expressions (the engine: the unrolled graph and the paths),
- `matexpr.MatExpr` trees (the matrix-form derivation that the printers show).

So a rule may only use what all three understand: `@`, `.T`, `+`, `-`, `*`, `/`,
`.sum(axis=...)`, `table[ids]`, and the functions of this module (`tanh`, `softmax`, ...), which
dispatch on the backend. Each row is tested on its own against element-level symbolic
differentiation and finite differences (`tests/test_rules.py`), and its matrix form against the
float backend (`tests/test_matexpr.py`).

Conventions: row vectors (`affine` is `bias + sum_k A_k @ B_k`). `forward(*inputs, **consts)`
returns the node's value; `vjp(index, g, out, *inputs, **consts)` returns dL/d(inputs[index]),
in that input's shape, given g = dL/d(out). Constants (labels, the softmax shift, row ids, a
factor) are held fixed: nothing flows back into them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from functools import reduce
from operator import add

import numpy as np
import symengine as se

from ..errors import InternalError, InvalidArgumentError
from ..models.program import Op, is_ref


def _matexpr():
    """The printable backend, imported when a matrix expression first meets a rule."""
    from . import matexpr

    return matexpr


def _is_matexpr(x: object) -> bool:
    # Nothing can be a MatExpr before the module is loaded: a command that never prints
    # matrix formulas never imports it.
    module = sys.modules.get(f"{__package__}.matexpr")
    return module is not None and isinstance(x, module.MatExpr)


__all__ = [
    "Op",
    "Rule",
    "RULES",
    "vjp",
    "tanh",
    "sigmoid",
    "relu",
    "step",
    "exp",
    "log",
    "softmax",
    "logsumexp",
    "rowmax",
]


# -- functions on every backend --------------------------------------------------------------------
@dataclass(frozen=True)
class _Elementwise:
    """A function applied entry by entry, under one name on every backend."""

    name: str
    on_floats: Callable[[np.ndarray], np.ndarray]
    on_entry: Callable[[se.Basic], se.Basic]

    def __call__(self, a):
        if _is_matexpr(a):
            return _matexpr().function(self.name, a, self.on_floats)
        a = np.asarray(a)
        if a.dtype == object:
            return np.vectorize(self.on_entry, otypes=[object])(a)
        return self.on_floats(a)


identity = _Elementwise("identity", lambda a: a, lambda x: x)
tanh = _Elementwise("tanh", np.tanh, se.tanh)
exp = _Elementwise("exp", np.exp, se.exp)
log = _Elementwise("log", np.log, se.log)
# sigmoid through tanh: no overflow for large |x|, and the emitted code needs only tanh.
sigmoid = _Elementwise(
    "sigmoid", lambda a: (1 + np.tanh(a / 2)) / 2, lambda x: (1 + se.tanh(x / 2)) / 2
)
# relu and its derivative as Piecewise on symbols: SymEngine prints them as Python-evaluable
# `Piecewise((x, 0 < x), (0, True))` and differentiates that (Max(0, x) it cannot).
relu = _Elementwise(
    "relu", lambda a: np.maximum(a, 0), lambda x: se.Piecewise((x, x > 0), (0, True))
)
#: The derivative of relu: 1 where x > 0, else 0 (0 at the kink, as PyTorch and the NumPy
#: reference take it).
step = _Elementwise(
    "step", lambda a: (a > 0).astype(a.dtype), lambda x: se.Piecewise((1, x > 0), (0, True))
)


def _float_softmax(o: np.ndarray) -> np.ndarray:
    return softmax(o, o.max(axis=1))


def _float_logsumexp(o: np.ndarray) -> np.ndarray:
    return logsumexp(o, o.max(axis=1))


def _shift(o, m):
    """The row shift to use: m, or each row's max on floats when none is given (symbols get
    none: a node of its own carries it where the graph has one)."""
    if m is not None:
        return m
    o = np.asarray(o)
    return None if o.dtype == object else o.max(axis=1)


def softmax(o, m):
    """Row-wise softmax. The shift m (each row's max, at run time) changes nothing
    mathematically and keeps exp() finite for logits of size 1000; the matrix form omits it."""
    if _is_matexpr(o):
        return _matexpr().function("softmax", o, _float_softmax)
    m = _shift(o, m)
    e = exp(o if m is None else o - m[:, None])
    return e / e.sum(axis=1, keepdims=True)


def logsumexp(o, m):
    """Row-wise log(sum(exp(o))), computed with the row shift m (see `softmax`)."""
    if _is_matexpr(o):
        return _matexpr().function("logsumexp", o, _float_logsumexp, o.shape[:1])
    m = _shift(o, m)
    if m is None:
        return log(exp(o).sum(axis=1))
    return m + log(exp(o - m[:, None]).sum(axis=1))


def rowmax(o):
    """Each row's largest entry."""
    if _is_matexpr(o):
        return _matexpr().function("rowmax", o, lambda a: a.max(axis=1), o.shape[:1])
    o = np.asarray(o)
    if o.dtype == object:
        return np.array([se.Max(*row) for row in o], dtype=object)
    return o.max(axis=1)


def _add(*terms):
    """Elementwise sum of terms that broadcast (a bias row joins a matrix)."""
    if any(_is_matexpr(t) for t in terms):
        return reduce(add, terms)
    arrays = [np.asarray(t) for t in terms]
    if any(a.dtype == object for a in arrays):
        # One flat Add per entry. Folding with + would let a 0-d object array decay to a
        # SymEngine scalar, and scalar + array makes SymEngine import all of SymPy (~1 s).
        arrays = np.broadcast_arrays(*arrays)
        out = np.empty(arrays[0].shape, dtype=object)
        for index in np.ndindex(*out.shape):
            out[index] = se.Add(*(a[index] for a in arrays))
        return out
    return reduce(add, arrays)


def _total(x):
    """The sum of every entry, as a 0-d array (a MatExpr stays one)."""
    if _is_matexpr(x):
        return x.sum()
    x = np.asarray(x)
    return np.asarray(x.sum(), dtype=x.dtype)


def _number(value, like):
    """A constant factor in the backend of `like`: exact on symbols when it is a Fraction (an
    array or a matrix expression is already in its backend)."""
    if _is_matexpr(like) or _is_matexpr(value) or isinstance(value, np.ndarray):
        return value
    if np.asarray(like).dtype == object:
        if isinstance(value, Fraction):
            value = se.Rational(value.numerator, value.denominator)
        # An array, not a SymEngine scalar: scalar * array makes SymEngine import SymPy.
        return np.asarray(se.sympify(value), dtype=object)
    return float(value)


def _one_hot(ids, size, like):
    """The (len(ids), size) one-hot matrix of the row ids, in the backend of `like`."""
    if _is_matexpr(like):
        return _matexpr().one_hot(ids, size)
    ids = np.asarray(ids)
    hot = ids[:, None] == np.arange(size)
    if np.asarray(like).dtype == object:
        return np.where(hot, se.Integer(1), se.Integer(0))
    return hot.astype(float)


def _repeat_rows(row, rows):
    """The row vector repeated down `rows` rows: the adjoint of the sum over rows."""
    if _is_matexpr(row):
        return _matexpr().repeat_rows(row, rows)
    row = np.asarray(row)
    return np.array(np.broadcast_to(row, (rows, *row.shape)))


def _block(a, part: int, parts: int, axis: int = -1):
    """Block `part` of `parts` equal blocks of the last axis (a gate's columns of W or a), or
    of the first (`axis=0`: a block of rows)."""
    if _is_matexpr(a):
        return _matexpr().block(a, part, parts, axis)
    width = a.shape[axis] // parts
    where = slice(part * width, (part + 1) * width)
    return a[..., where] if axis == -1 else a[where]


def _place(g, like, part: int, parts: int, axis: int = -1):
    """g in block `part` of a zero array shaped like `like`: the adjoint of `_block`."""
    if _is_matexpr(g):
        return _matexpr().blocks([g if k == part else None for k in range(parts)], axis)
    out = _zeros_like(like, g)
    width = out.shape[axis] // parts
    where = slice(part * width, (part + 1) * width)
    if axis == -1:
        out[..., where] = g
    else:
        out[where] = g
    return out


def _zeros_like(like, other=None):
    """Zeros of `like`'s shape in its backend (symbols when either array holds them)."""
    if _is_matexpr(like):
        return _matexpr().Constant(0, like.shape)
    like = np.asarray(like)
    if like.dtype == object or (other is not None and np.asarray(other).dtype == object):
        return np.full(like.shape, se.Integer(0), dtype=object)
    return np.zeros(like.shape)


def _ndim(x) -> int:
    return x.ndim if _is_matexpr(x) else np.ndim(x)


def _unbroadcast(g, like):
    """g summed down to the shape of `like`, the adjoint of NumPy's broadcasting: a (k,) row
    added to every row of a matrix gets the sum over rows, a scalar the sum of every entry."""
    if like is None or _ndim(g) == _ndim(like):
        return g
    if _ndim(like) == 0:
        return _total(g)
    if _ndim(like) == 1 and _ndim(g) == 2:
        return g.sum(axis=0)
    raise InternalError(f"cannot sum an adjoint of {_ndim(g)} axes down to {_ndim(like)}")


def _neg(g):
    return _number(-1, g) * g


def _power(a, n: int):
    """a ** n entry by entry, n a whole number (on matrix expressions, a product: h ⊙ h)."""
    if _is_matexpr(a):
        m = _matexpr()
        if n == 0:
            return m.Constant(1)
        out = a
        for _ in range(abs(n) - 1):
            out = out * a
        return m.Constant(1) / out if n < 0 else out
    a = np.asarray(a)
    if a.dtype == object:
        return np.vectorize(lambda x: x**n, otypes=[object])(a)
    return np.power(a.astype(float), n)


def _fill(g, like):
    """The scalar g in every entry of an array shaped like `like`: the adjoint of a sum of
    every entry."""
    if _is_matexpr(like) or _is_matexpr(g):
        m = _matexpr()
        return m.Constant(1, like.shape) * g
    g = np.asarray(g)
    if g.dtype == object or np.asarray(like).dtype == object:
        return np.full(np.shape(like), g.item(), dtype=object)
    return np.full(np.shape(like), float(g))


def _concat(blocks, axis: int):
    """The blocks side by side (axis -1, hstack) or stacked (axis 0, vstack), of any widths."""
    if any(_is_matexpr(b) for b in blocks):
        return _matexpr().blocks(list(blocks), axis)
    arrays = [np.asarray(b) for b in blocks]
    if any(a.dtype == object for a in arrays):
        arrays = [a.astype(object) for a in arrays]
    return np.concatenate(arrays, axis=axis)


def _part(g, blocks, index: int, axis: int):
    """Block `index`'s share of g: the adjoint of `_concat`."""
    if _is_matexpr(g):
        widths = [b.shape[axis] for b in blocks]
        return _matexpr().block(g, index, len(blocks), axis, widths)
    widths = [np.shape(b)[axis] for b in blocks]
    start = sum(widths[:index])
    where = slice(start, start + widths[index])
    return g[..., where] if axis == -1 else g[where]


def _rowsum_kept(x):
    """Each row's sum, kept a column (N, 1): what a row of a softmax's VJP subtracts."""
    if _is_matexpr(x):
        m = _matexpr()
        return m.Sum(x, (x.shape[0], 1), axis=1, keepdims=True)
    return np.asarray(x).sum(axis=1, keepdims=True)


def _softmax_vjp(g, s):
    """The VJP of a row-wise softmax with output s: s ⊙ (g - rowsum(g ⊙ s))."""
    return s * (g - _rowsum_kept(g * s))


def _hadamard(bias, *pairs):
    if not pairs or len(pairs) % 2:
        raise InvalidArgumentError(
            f"hadamard takes a start (or None) and pairs A_1, B_1, ...: got {len(pairs)} "
            "matrices after the start"
        )
    products = [pairs[k] * pairs[k + 1] for k in range(0, len(pairs), 2)]
    return _add(*products) if bias is None else _add(bias, *products)


def _hadamard_vjp(index, g, out, bias, *pairs):
    if index == 0:
        return g
    k = index - 1
    return g * pairs[k + 1] if k % 2 == 0 else g * pairs[k - 1]


def _lerp(z, a, b):
    return (1 - z) * a if b is None else _add((1 - z) * a, z * b)


def _lerp_vjp(index, g, out, z, a, b):
    if index == 0:
        return _number(-1, g) * (g * a) if b is None else g * (b - a)
    return g * (1 - z) if index == 1 else g * z


# -- the rules -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """One operation: its forward map and its VJP, for every input.

    `arity` is the number of inputs (None: variadic). `consts` names the keyword constants the
    rule takes. Elementwise rules also declare `derivative(x, out)`, their local derivative
    f'(x) written with the input and/or the output (an array of x's shape, or a scalar that
    broadcasts), which an element-level engine can use instead of `diff`.
    """

    name: str
    forward: Callable[..., np.ndarray]
    #: vjp(index, g, out, *inputs, **consts) -> dL/d(inputs[index]); None if not differentiable.
    vjp: Callable[..., np.ndarray] | None
    #: False for nodes whose derivative is zero by construction (the softmax shift).
    differentiable: bool = True
    arity: int | None = None
    consts: tuple[str, ...] = ()
    derivative: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None


def _elementwise(function: _Elementwise, derivative: Callable) -> Rule:
    return Rule(
        function.name,
        forward=function,
        vjp=lambda i, g, out, x: g * derivative(x, out),
        arity=1,
        derivative=derivative,
    )


def _affine(bias, *pairs):
    if not pairs or len(pairs) % 2:
        raise InvalidArgumentError(
            f"affine takes a bias (or None) and pairs A_1, B_1, A_2, B_2, ...: got {len(pairs)} "
            "matrices after the bias"
        )
    products = [pairs[k] @ pairs[k + 1] for k in range(0, len(pairs), 2)]
    return _add(*products) if bias is None else _add(bias, *products)


def _affine_vjp(index, g, out, bias, *pairs):
    if index == 0:  # the bias row was added to every row
        return g.sum(axis=0)
    k = index - 1  # pairs[k] is A_j when k is even, B_j when k is odd
    return g @ pairs[k + 1].T if k % 2 == 0 else pairs[k - 1].T @ g


def _softmax_ce(o, *, Y, m=None):
    return _total(logsumexp(o, m) - (Y * o).sum(axis=1))


# -- composites: one node for a whole expression ---------------------------------------------------
_is_ref = is_ref


def _resolve(ref, inputs, values, consts):
    if ref is None:
        return None
    kind, what = ref
    if kind == "in":
        return inputs[what]
    if kind == "op":
        return values[what]
    if kind == "const":
        return consts[what]
    like = next((x for x in inputs if x is not None), None)
    return _number(what, like) if like is not None else what


def _arguments(op: Op, inputs, values, consts) -> tuple[list, dict]:
    args = [_resolve(a, inputs, values, consts) for a in op.args]
    kwargs = {k: _resolve(v, inputs, values, consts) if _is_ref(v) else v for k, v in op.params}
    return args, kwargs


def _run(program: tuple[Op, ...], inputs, consts) -> list:
    values: list = []
    for op in program:
        args, kwargs = _arguments(op, inputs, values, consts)
        values.append(RULES[op.rule].forward(*args, **kwargs))
    return values


def _composite(*inputs, program: tuple[Op, ...], **consts):
    """The value of the program's last operation."""
    return _run(program, inputs, consts)[-1]


def _composite_vjp(index, g, out, *inputs, program: tuple[Op, ...], **consts):
    """Reverse mode through the program, from its last operation back to input `index`:
    each operation's VJP is its own row of the table."""
    values = _run(program, inputs, consts)
    if out is not None:  # the node's own name for its value (h_t rather than its formula)
        values[-1] = out
    reaches = []  # which operations depend on the input asked for
    for op in program:
        refs = [*op.args, *(v for _, v in op.params if _is_ref(v))]
        reaches.append(
            any(
                r is not None
                and ((r[0] == "in" and r[1] == index) or (r[0] == "op" and reaches[r[1]]))
                for r in refs
                if _is_ref(r)
            )
        )
    adjoints: dict[int, object] = {len(program) - 1: g}
    result = None
    for j in reversed(range(len(program))):
        gj = adjoints.pop(j, None)
        if gj is None or not reaches[j]:
            continue
        op = program[j]
        args, kwargs = _arguments(op, inputs, values, consts)
        for position, ref in enumerate(op.args):
            if ref is None or ref[0] in ("num", "const"):
                continue
            if ref[0] == "op" and not reaches[ref[1]]:
                continue
            if ref[0] == "in" and ref[1] != index:
                continue
            pulled = RULES[op.rule].vjp(position, gj, values[j], *args, **kwargs)
            if ref[0] == "in":
                result = pulled if result is None else result + pulled
            else:
                k = ref[1]
                adjoints[k] = pulled if k not in adjoints else adjoints[k] + pulled
    return _zeros_like(inputs[index]) if result is None else result


RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in (
        # A shared weight as used at one step (W_h^(t)): all of g is that step's share.
        Rule("copy", forward=lambda a: a, vjp=lambda i, g, out, a: g, arity=1),
        # bias + A_1 @ B_1 + A_2 @ B_2 + ...; inputs (bias or None, A_1, B_1, A_2, B_2, ...):
        # a_t = b + h_{t-1} W_h + x_t W_x and o_t = c + h_t V.
        Rule("affine", forward=_affine, vjp=_affine_vjp),
        # table[ids]: row ids[i] of the table for each i (x_t W_x for token inputs).
        Rule(
            "lookup",
            forward=lambda table, *, ids: table[ids],
            vjp=lambda i, g, out, table, *, ids: _one_hot(ids, table.shape[0], g).T @ g,
            arity=1,
            consts=("ids",),
        ),
        # Terms that broadcast (a bias row joins a matrix): each gets g summed to its shape.
        Rule("add", forward=_add, vjp=lambda i, g, out, *terms: _unbroadcast(g, terms[i])),
        Rule(
            "sub",
            forward=lambda a, b: a - b,
            vjp=lambda i, g, out, a, b: _unbroadcast(g, a) if i == 0 else _unbroadcast(_neg(g), b),
            arity=2,
        ),
        Rule(
            "div",
            forward=lambda a, b: a / b,
            vjp=lambda i, g, out, a, b: (
                _unbroadcast(g / b, a) if i == 0 else _unbroadcast(_neg(g * out / b), b)
            ),
            arity=2,
        ),
        # a ** n entry by entry, n a whole number.
        Rule(
            "power",
            forward=lambda a, *, n: _power(a, n),
            vjp=lambda i, g, out, a, *, n: _number(n, g) * (g * _power(a, n - 1)),
            arity=1,
            consts=("n",),
        ),
        # The sum of every entry: a scalar (sum(g[t] * o[t]) in an abstract loss).
        Rule("total", forward=_total, vjp=lambda i, g, out, a: _fill(g, a), arity=1),
        # Blocks of any widths side by side (axis -1: hstack(h[t-1], x[t])) or stacked (0).
        Rule(
            "concat",
            forward=lambda *blocks, axis=-1: _concat(blocks, axis),
            vjp=lambda i, g, out, *blocks, axis=-1: _part(g, blocks, i, axis),
            consts=("axis",),
        ),
        # Row-wise softmax (m: the row shift, a constant; None on symbols without one).
        Rule(
            "softmax",
            forward=lambda a, *, m=None: softmax(a, m),
            vjp=lambda i, g, out, a, *, m=None: _softmax_vjp(g, out),
            arity=1,
            consts=("m",),
        ),
        # A whole expression as one node: a program of this table's rules (see `Op`).
        Rule("composite", forward=_composite, vjp=_composite_vjp, consts=("program",)),
        # Sum of scalars: the loss L = L_1 + ... + L_T (one flat Add on symbols).
        Rule("sum", forward=_add, vjp=lambda i, g, out, *terms: g),
        # A constant factor (1/(N T) for the mean); a Fraction stays exact on symbols.
        Rule(
            "scale",
            forward=lambda a, *, factor: _number(factor, a) * a,
            vjp=lambda i, g, out, a, *, factor: _number(factor, g) * g,
            arity=1,
            consts=("factor",),
        ),
        Rule(
            "matmul",
            forward=lambda a, b: a @ b,
            vjp=lambda i, g, out, a, b: g @ b.T if i == 0 else a.T @ g,
            arity=2,
        ),
        Rule("transpose", forward=lambda a: a.T, vjp=lambda i, g, out, a: g.T, arity=1),
        # Block `part` of `parts` equal blocks of columns: one gate's share of the gates'
        # pre-activations (a[:, H:2H] is the forget gate's in CS231n's order i, f, o, g).
        Rule(
            "columns",
            forward=lambda a, *, part, parts, axis=-1: _block(a, part, parts, axis),
            vjp=lambda i, g, out, a, *, part, parts, axis=-1: _place(g, a, part, parts, axis),
            arity=1,
            consts=("part", "parts", "axis"),
        ),
        # start + A_1 * B_1 + A_2 * B_2 + ... entry by entry (start: a matrix or None), the
        # elementwise twin of affine: c_t = f_t * c_{t-1} + i_t * g_t, h_t = o_t * tanh(c_t).
        Rule("hadamard", forward=_hadamard, vjp=_hadamard_vjp),
        # (1 - z) * a + z * b (b None: zero): the GRU's mix of the candidate and h_{t-1}.
        Rule("lerp", forward=_lerp, vjp=_lerp_vjp, arity=3),
        # Hadamard product.
        Rule(
            "mul",
            forward=lambda a, b: a * b,
            vjp=lambda i, g, out, a, b: (
                _unbroadcast(g * b, a) if i == 0 else _unbroadcast(g * a, b)
            ),
            arity=2,
        ),
        # Sum over the rows, (rows, cols) -> (cols,).
        Rule(
            "rowsum",
            forward=lambda a: a.sum(axis=0),
            vjp=lambda i, g, out, a: _repeat_rows(g, a.shape[0]),
            arity=1,
        ),
        _elementwise(tanh, lambda x, h: 1 - h * h),
        _elementwise(sigmoid, lambda x, s: s * (1 - s)),
        _elementwise(relu, lambda x, out: step(x)),
        _elementwise(identity, lambda x, out: 1),
        _elementwise(exp, lambda x, e: e),
        _elementwise(log, lambda x, out: 1 / x),
        # L_t = sum_i logsumexp(o_t[i]) - o_t[i, y_t[i]], with Y one-hot and m the row shift.
        Rule(
            "softmax_ce",
            forward=_softmax_ce,
            vjp=lambda i, g, out, o, *, Y, m=None: g * (softmax(o, m) - Y),
            arity=1,
            consts=("Y", "m"),
        ),
        # The softmax shift m_t; its value never changes the loss.
        Rule("rowmax", forward=rowmax, vjp=None, differentiable=False, arity=1),
    )
}


def vjp(rule: Rule, index: int, g, out, inputs, consts):
    """Pull the adjoint g of a node back to its input number `index`."""
    if rule.vjp is None:
        raise InternalError(f"the rule {rule.name!r} is not differentiable: nothing flows back")
    return rule.vjp(index, g, out, *inputs, **consts)
