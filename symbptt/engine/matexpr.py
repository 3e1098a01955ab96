"""Matrix expressions: the printable backend of the rule table.

A `MatExpr` is a small immutable tree over named matrices. It supports exactly what the rows of
`rules.RULES` use: `@`, `.T`, `+`, `-`, `*` (Hadamard, or by a scalar), `/`, `.sum(axis=...)`,
the row lookup `table[ids]`, and, spelled as functions, named functions applied entry by entry
or row by row, one-hot matrices and a row repeated down a matrix. Calling a rule's forward map
or VJP on `MatExpr`s therefore returns that rule's matrix-form formula instead of numbers:

    >>> g, B = Symbol("g", ("N", "H")), Symbol("B_1", ("K", "H"))
    >>> print(g @ B.T)
    g @ B_1^T

`evaluate(bindings)` computes a formula with NumPy (how the tests show that each rule's matrix
form equals its element-level derivative); `TextPrinter` writes it as plain text, and other
formats (LaTeX) subclass it. Formulas are DAGs: evaluation and printing walk them iteratively,
visiting a shared node once, so a formula may be as deep as a long path of the unrolled graph.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from ..errors import InputArrayError, InvalidArgumentError, UnknownNameError
from ..models import sizes as sizes_

__all__ = [
    "MatExpr",
    "Symbol",
    "Indexed",
    "function",
    "one_hot",
    "repeat_rows",
    "rebuild",
    "to_columns",
    "columnwise",
    "block",
    "blocks",
    "size_in",
    "TextPrinter",
]

#: A dimension is a size (3) or the name of one ("N").
Dim = int | str
Shape = tuple[Dim, ...]


class MatExpr:
    """A matrix-valued expression. Build one from `Symbol`s with the operators below."""

    __slots__ = ()
    # Without this NumPy would take a MatExpr for an object scalar and `np.float64(2) * x` would
    # be an object array of MatExprs; with it, NumPy's operators defer to ours.
    __array_ufunc__ = None

    shape: Shape

    @property
    def children(self) -> tuple[MatExpr, ...]:
        return ()

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __add__(self, other):
        return _elementwise(Add, self, other)

    def __radd__(self, other):
        return _elementwise(Add, other, self)

    def __sub__(self, other):
        return _elementwise(Subtract, self, other)

    def __rsub__(self, other):
        return _elementwise(Subtract, other, self)

    def __mul__(self, other):
        return _elementwise(Multiply, self, other)

    def __rmul__(self, other):
        return _elementwise(Multiply, other, self)

    def __truediv__(self, other):
        return _elementwise(Divide, self, other)

    def __rtruediv__(self, other):
        return _elementwise(Divide, other, self)

    def __matmul__(self, other):
        return _matmul(self, other)

    def __rmatmul__(self, other):
        return _matmul(other, self)

    @property
    def T(self) -> MatExpr:  # noqa: N802 (NumPy's name)
        if isinstance(self, Transpose):
            return self.arg
        # As in NumPy, transposing a vector or a scalar changes nothing.
        return Transpose(self, self.shape[::-1]) if self.ndim == 2 else self

    def sum(self, axis: int | None = None) -> MatExpr:
        """The sum over rows (`axis=0`), over columns (`axis=1`) or of every entry (None)."""
        if axis is None:
            return self if self.ndim == 0 else Sum(self, (), axis=None)
        if axis not in (0, 1) or axis >= self.ndim:
            raise InvalidArgumentError(
                f"axis={axis} is not an axis of {_short(self)}, of shape {_shape_text(self.shape)}"
            )
        return Sum(self, self.shape[:axis] + self.shape[axis + 1 :], axis=axis)

    def __getitem__(self, ids) -> MatExpr:
        """Row lookup `table[ids]`: for each i, row ids[i] of the table."""
        _check_row_ids(ids, "the row lookup")
        if self.ndim == 0:
            raise InvalidArgumentError(f"{_short(self)} is a scalar and has no rows to look up")
        return Rows(self, ids, (ids.shape[0], *self.shape[1:]))

    def evaluate(self, bindings: Mapping[str, np.ndarray | int]) -> np.ndarray:
        """The value of the expression, computed with NumPy.

        `bindings` maps each symbol's name to an array of the symbol's shape, and may map a
        dimension's name to its size (needed only for a size no bound array shows, such as the
        row count of `one_hot`). Raises UnknownNameError for an unbound symbol or size, and
        InputArrayError for an array whose shape disagrees with its symbol, or with another
        array on a named dimension.
        """
        order = _postorder(self)
        sizes = {k: int(v) for k, v in bindings.items() if isinstance(v, numbers.Integral)}
        for node in order:
            if isinstance(node, Symbol):
                _bind_shape(node, bindings, sizes)
        values: dict[int, np.ndarray] = {}
        for node in order:
            args = [values[id(c)] for c in node.children]
            values[id(node)] = np.asarray(node._compute(args, bindings, sizes))
        return values[id(self)]

    def symbols(self) -> list[Symbol]:
        """The symbols the expression depends on, each once, in order of first appearance."""
        return [n for n in _postorder(self) if isinstance(n, Symbol)]

    def nodes(self) -> list[MatExpr]:
        """Every node of the expression once, children before parents."""
        return _postorder(self)

    def __str__(self) -> str:
        return TextPrinter().doprint(self)

    def __repr__(self) -> str:
        return f"MatExpr({str(self)!r}, shape={_shape_text(self.shape)})"

    def _compute(self, args: list, bindings: Mapping, sizes: dict[str, int]):
        raise NotImplementedError


# -- the nodes ------------------------------------------------------------------------------------
_node = dataclass(frozen=True, eq=False, repr=False)


@_node
class Symbol(MatExpr):
    """A named matrix (or vector, or scalar) of the given shape; `adjoint` marks dL/dX, the
    total derivative of the loss w.r.t. X (named `dX`), which printers write as such."""

    name: str
    shape: Shape = ()
    adjoint: bool = False

    def _compute(self, args, bindings, sizes):
        return bindings[self.name]


@_node
class Indexed(Symbol):
    """A per-step quantity `base[anchor+offset]`: relative to the general step t (`h[t-1]`),
    to the last step T (`da[T+1]`), or at a fixed step (anchor None: `da[1]`). `name`, the
    printed form, is the key an evaluation binds."""

    base: str = ""
    offset: int = 0
    anchor: str | None = "t"

    @staticmethod
    def make(
        base: str,
        shape: Shape,
        offset: int = 0,
        anchor: str | None = "t",
        *,
        adjoint: bool = False,
    ) -> Indexed:
        if anchor is None:
            index = str(offset)
        else:
            index = anchor if offset == 0 else f"{anchor}{offset:+d}"
        name = f"{base}[{index}]"
        return Indexed(name, tuple(shape), adjoint, base=base, offset=offset, anchor=anchor)

    @property
    def relative(self) -> bool:
        return self.anchor == "t"

    def at(self, step: int) -> Indexed:
        """The same quantity at a fixed step (t := step)."""
        if not self.relative:
            return self
        return Indexed.make(
            self.base, self.shape, self.offset + step, anchor=None, adjoint=self.adjoint
        )


@_node
class Constant(MatExpr):
    """A number (int, float or Fraction), broadcast like a scalar."""

    value: numbers.Real
    shape: Shape = ()

    def _compute(self, args, bindings, sizes):
        if not self.shape:
            return float(self.value)
        try:  # a number in every entry of a matrix: that matrix (d sum(h) / dh is all ones)
            return np.full(size_in(self.shape, sizes), float(self.value))
        except UnknownNameError:  # sizes no bound array shows: the number, broadcast
            return float(self.value)


@_node
class _Binary(MatExpr):
    left: MatExpr
    right: MatExpr
    shape: Shape

    @property
    def children(self):
        return (self.left, self.right)


class Add(_Binary):
    def _compute(self, args, bindings, sizes):
        return args[0] + args[1]


class Subtract(_Binary):
    def _compute(self, args, bindings, sizes):
        return args[0] - args[1]


class Multiply(_Binary):
    """The Hadamard product of two matrices, or a matrix times a scalar."""

    def _compute(self, args, bindings, sizes):
        return args[0] * args[1]


class Divide(_Binary):
    """The elementwise quotient (a scalar on either side broadcasts)."""

    def _compute(self, args, bindings, sizes):
        return args[0] / args[1]


class MatMul(_Binary):
    def _compute(self, args, bindings, sizes):
        return args[0] @ args[1]


@_node
class _Unary(MatExpr):
    arg: MatExpr
    shape: Shape

    @property
    def children(self):
        return (self.arg,)


class Transpose(_Unary):
    def _compute(self, args, bindings, sizes):
        return args[0].T


@_node
class Sum(_Unary):
    """A sum over rows (axis 0), over columns (axis 1) or of every entry (None)."""

    axis: int | None = None
    #: The column convention's sum over columns keeps its axis: (H, N) -> (H, 1).
    keepdims: bool = False

    def _compute(self, args, bindings, sizes):
        return args[0].sum(axis=self.axis, keepdims=self.keepdims)


@_node
class Function(_Unary):
    """A named function applied entry by entry (tanh) or row by row (softmax, rowmax)."""

    name: str = ""
    on_floats: Callable[[np.ndarray], np.ndarray] | None = field(default=None, compare=False)
    #: A row-by-row function applied column by column (the column convention's softmax).
    columns: bool = False

    def _compute(self, args, bindings, sizes):
        return self.on_floats(args[0])


@_node
class Rows(MatExpr):
    """Row lookup `table[ids]`."""

    table: MatExpr
    ids: MatExpr
    shape: Shape

    @property
    def children(self):
        return (self.table, self.ids)

    def _compute(self, args, bindings, sizes):
        return args[0][_row_ids(self.ids, args[1])]


@_node
class OneHot(_Unary):
    """The (len(ids), size) matrix with a 1 at (i, ids[i]): onehot(ids) @ W == W[ids]; with
    `columns`, its transpose (size, len(ids)), one column per id (the column convention)."""

    columns: bool = False

    def _compute(self, args, bindings, sizes):
        size = _size(self.shape[0 if self.columns else 1], sizes)
        hot = (_row_ids(self.arg, args[0])[:, None] == np.arange(size)).astype(float)
        return hot.T if self.columns else hot


class RepeatRows(_Unary):
    """A row vector repeated down a matrix: the adjoint of the sum over rows."""

    def _compute(self, args, bindings, sizes):
        rows = _size(self.shape[0], sizes)
        return np.broadcast_to(args[0], (rows, *args[0].shape)).copy()


class RepeatCols(_Unary):
    """A column (k, 1) repeated across a matrix (k, cols): the column convention's RepeatRows."""

    def _compute(self, args, bindings, sizes):
        cols = _size(self.shape[1], sizes)
        return np.broadcast_to(args[0], (args[0].shape[0], cols)).copy()


@_node
class Block(_Unary):
    """Block `part` (0-based) of `parts` equal blocks of columns (axis -1, the row convention's
    gates side by side) or of rows (axis 0, the column convention's gates stacked); with
    `widths`, of blocks of those sizes (the parts of a concatenation `hstack(h, x)`)."""

    part: int = 0
    parts: int = 1
    axis: int = -1
    widths: tuple[Dim, ...] | None = None

    def _compute(self, args, bindings, sizes):
        a = args[0]
        if self.widths is None:
            width = a.shape[self.axis] // self.parts
            where = slice(self.part * width, (self.part + 1) * width)
        else:
            numbers = [_size(w, sizes) for w in self.widths]
            start = sum(numbers[: self.part])
            where = slice(start, start + numbers[self.part])
        return a[..., where] if self.axis == -1 else a[where]


@_node
class Blocks(MatExpr):
    """Equal blocks side by side (axis -1, NumPy's hstack) or stacked (axis 0, vstack); a
    block given as None is zero (the adjoint of one `Block` is its block among zeros)."""

    items: tuple[MatExpr | None, ...] = ()
    shape: Shape = ()
    axis: int = -1

    @property
    def children(self):
        return tuple(i for i in self.items if i is not None)

    def _compute(self, args, bindings, sizes):
        present = iter(args)
        values = [None if i is None else next(present) for i in self.items]
        if all(v is not None for v in values):  # blocks of any widths, side by side
            arrays = [np.asarray(v, dtype=float) for v in values]
            arrays = [  # a number in every entry of its block (a zero state beside x[t])
                np.broadcast_to(a, size_in(i.shape, sizes)) if a.ndim == 0 else a
                for i, a in zip(self.items, arrays)
            ]
            return np.concatenate(arrays, axis=self.axis)
        like = next(np.asarray(v, dtype=float) for v in values if v is not None)
        shape = list(np.shape(like))
        full = [np.zeros(shape) if v is None else np.broadcast_to(v, shape) for v in values]
        return np.concatenate(full, axis=self.axis)


# -- what NumPy spells as functions ---------------------------------------------------------------
def function(
    name: str,
    arg: MatExpr,
    on_floats: Callable[[np.ndarray], np.ndarray],
    shape: Shape | None = None,
) -> MatExpr:
    """`name(arg)`, computed by `on_floats` when evaluated. `shape` defaults to arg's (entry by
    entry); a row-by-row reduction states its own (rowmax: `arg.shape[:1]`)."""
    shape = arg.shape if shape is None else tuple(shape)
    return Function(arg, shape, name=name, on_floats=on_floats)


def one_hot(ids: MatExpr, size: Dim) -> MatExpr:
    """The one-hot matrix of row ids: `one_hot(ids, D).T @ g` adds row i of g into row ids[i]
    of a (D, ...) matrix of zeros, the adjoint of the row lookup `W[ids]`."""
    _check_row_ids(ids, "one_hot")
    return OneHot(ids, (ids.shape[0], size))


def repeat_rows(row: MatExpr, rows: Dim) -> MatExpr:
    """`row` repeated down `rows` rows (NumPy: np.broadcast_to(row, (rows, *row.shape)))."""
    return RepeatRows(row, (rows, *row.shape))


def _times(k: int, dim: Dim) -> Dim:
    """k blocks of size `dim`: 4 * H is "4H", 4 * 3 is 12."""
    return sizes_.times(k, dim)


def _share(dim: Dim, k: int) -> Dim:
    """One of k equal blocks of `dim`: "4H" / 4 is "H"."""
    return sizes_.share(dim, k)


def block(a: MatExpr, part: int, parts: int, axis: int = -1, widths=None) -> MatExpr:
    """Block `part` of `parts` equal blocks of a's columns (axis -1) or rows (axis 0); with
    `widths` (one size per block), of blocks of those sizes."""
    if not 0 <= part < parts:
        raise InvalidArgumentError(f"block {part} of {parts} does not exist")
    shape = list(a.shape)
    if widths is not None:
        widths = tuple(sizes_.canonical(w) for w in widths)
        if len(widths) != parts:
            raise InvalidArgumentError(f"{parts} blocks need {parts} widths, not {len(widths)}")
        if len(set(widths)) == 1:  # equal after all: the ordinary block
            widths = None
        elif sizes_.plus(*widths) != sizes_.canonical(shape[axis]):
            raise InvalidArgumentError(
                f"blocks of widths {', '.join(map(str, widths))} do not make up a dimension "
                f"{shape[axis]!r}"
            )
    shape[axis] = _share(shape[axis], parts) if widths is None else widths[part]
    return Block(a, tuple(shape), part=part, parts=parts, axis=axis, widths=widths)


def blocks(items: Sequence[MatExpr | None], axis: int = -1) -> MatExpr:
    """The blocks side by side (axis -1) or stacked (axis 0); None is a zero block (of the
    others' shape, which must then all be one). Blocks of different widths along `axis` are
    a concatenation (`hstack(h[t-1], x[t])`)."""
    present = [i for i in items if i is not None]
    if not present:
        raise InvalidArgumentError("blocks needs at least one block that is not zero")
    shape = list(present[0].shape)
    unequal = False
    for item in present[1:]:
        if tuple(item.shape) == tuple(shape):
            continue
        other = list(item.shape)
        if len(other) == len(shape) and all(
            x == y for i, (x, y) in enumerate(zip(other, shape)) if i != axis % len(shape)
        ):
            unequal = True
            continue
        raise InvalidArgumentError(
            f"blocks of shapes {_shape_text(tuple(shape))} and {_shape_text(item.shape)} "
            "cannot be put together: they must agree on every other axis"
        )
    if unequal:
        if len(present) != len(items):
            raise InvalidArgumentError("a zero block needs blocks of one shape beside it")
        shape[axis] = sizes_.plus(*(i.shape[axis] for i in present))
    else:
        shape[axis] = _times(len(items), shape[axis])
    return Blocks(tuple(items), tuple(shape), axis=axis)


def _merge_blocks(a: MatExpr, b: MatExpr) -> MatExpr | None:
    """a + b as one `Blocks` when both are blocks of one layout (slot by slot), else None."""
    if not (
        isinstance(a, Blocks)
        and isinstance(b, Blocks)
        and len(a.items) == len(b.items)
        and a.axis == b.axis
        and a.shape == b.shape
        and all(x is None or y is None or x.shape == y.shape for x, y in zip(a.items, b.items))
    ):
        return None
    items = [x if y is None else y if x is None else x + y for x, y in zip(a.items, b.items)]
    return Blocks(tuple(items), a.shape, axis=a.axis)


# -- printing -------------------------------------------------------------------------------------
# How tightly a printed form binds: an operand binding more loosely than its operator is
# bracketed. A negative constant is bracketed wherever it is an operand.
_NEGATIVE, _SUM, _PRODUCT, _ATOM = 0, 1, 2, 3


class TextPrinter:
    """Plain text: `⊙` Hadamard product, `·` times a scalar, `⊘` elementwise quotient, `@`
    matrix product, `^T` transpose, and `1` a vector of ones (`1^T @ x` sums the rows of x).

    One `_print_<Node>(node, *operand_texts)` method per kind of node, SymPy style; another
    format subclasses this and overrides the operator table and the methods it writes
    differently, keeping the bracketing.
    """

    operators = {
        Add: "+",
        Subtract: "-",
        Multiply: "⊙",
        Divide: "⊘",
        MatMul: "@",
        "scalar product": "·",
        "scalar quotient": "/",
    }
    #: Operators whose right operand needs no brackets either: a @ (b @ c) == a @ b @ c.
    associative = {Add, Multiply, MatMul}

    def doprint(self, expr: MatExpr) -> str:
        texts: dict[int, str] = {}
        for node in _postorder(expr):
            method = getattr(self, f"_print_{type(node).__name__}")
            texts[id(node)] = method(node, *(texts[id(c)] for c in node.children))
        return texts[id(expr)]

    # -- leaves and functions
    def _print_Symbol(self, node):
        return node.name

    def _print_Indexed(self, node):
        return node.name

    def _print_Constant(self, node):
        return repr(node.value) if isinstance(node.value, float) else str(node.value)

    def _print_Function(self, node, arg):
        return f"{node.name}({arg})"

    def _print_Rows(self, node, table, ids):
        return f"{self._atom(node.table, table)}[{ids}]"

    def _print_OneHot(self, node, ids):
        return f"onehot({ids})"

    def _print_Block(self, node, arg):
        if node.widths is not None:  # a part of a concatenation: its widths say where
            name = "colpart" if node.axis == -1 else "rowpart"
            widths = ", ".join(size_expression(w) for w in node.widths)
            return f"{name}({arg}, {node.part + 1}, {widths})"
        name = "colblock" if node.axis == -1 else "rowblock"
        return f"{name}({arg}, {node.part + 1}, {node.parts})"

    def _print_Blocks(self, node, *items):
        texts = iter(items)
        parts = ["0" if i is None else next(texts) for i in node.items]
        return f"{'hstack' if node.axis == -1 else 'vstack'}({', '.join(parts)})"

    # -- operators
    def _print_Transpose(self, node, arg):
        return f"{self._atom(node.arg, arg)}^T"

    def _binary(self, node, left, right):
        if self._brackets(node.left, node, right_operand=False):
            left = f"({left})"
        if self._brackets(node.right, node, right_operand=True):
            right = f"({right})"
        return f"{left} {self._operator(node)} {right}"

    _print_Add = _print_Subtract = _print_Multiply = _print_Divide = _print_MatMul = _binary

    def _print_Sum(self, node, arg):
        arg = self._matmul_operand(node.arg, arg)
        if node.axis == 0 or (node.axis is None and node.arg.ndim == 1):
            return f"1^T @ {arg}"
        if node.axis == 1:
            return f"{arg} @ 1"
        return f"1^T @ {arg} @ 1"

    def _print_RepeatRows(self, node, row):
        return f"1 @ {self._matmul_operand(node.arg, row)}"

    def _print_RepeatCols(self, node, col):
        return f"{self._matmul_operand(node.arg, col)} @ 1^T"

    # -- bracketing
    def _operator(self, node: MatExpr) -> str:
        """The operator at the top of a node's printed form ("" for atoms)."""
        scalar = isinstance(node, _Binary) and () in (node.left.shape, node.right.shape)
        if scalar and isinstance(node, Multiply):
            return self.operators["scalar product"]
        if scalar and isinstance(node, Divide):
            return self.operators["scalar quotient"]
        if isinstance(node, (Sum, RepeatRows, RepeatCols)):
            return self.operators[MatMul]
        if isinstance(node, Constant) and _is_fraction(node.value):
            return self.operators["scalar quotient"]
        return self.operators.get(type(node), "")

    def _binding(self, node: MatExpr) -> int:
        if isinstance(node, (Add, Subtract)):
            return _SUM
        if isinstance(node, (Multiply, Divide, MatMul, Sum, RepeatRows, RepeatCols)):
            return _PRODUCT
        if isinstance(node, Constant):
            if node.value < 0:
                return _NEGATIVE
            return _PRODUCT if _is_fraction(node.value) else _ATOM
        return _ATOM

    def _brackets(self, child: MatExpr, parent: _Binary, *, right_operand: bool) -> bool:
        inner, outer = self._binding(child), self._binding(parent)
        if inner != outer:
            return inner < outer
        # Sums read left to right (a - b + c, a + b - c): only a - (b - c) keeps its brackets.
        # Products that mix operators (⊙ and @, · and /) keep theirs: the reader would guess.
        right_ok = not right_operand or type(parent) in self.associative
        if outer == _SUM:
            return not right_ok
        return self._operator(child) != self._operator(parent) or not right_ok

    def _atom(self, child: MatExpr, text: str) -> str:
        return text if self._binding(child) == _ATOM else f"({text})"

    def _matmul_operand(self, child: MatExpr, text: str) -> str:
        """An operand of a product with the vector of ones: @ chains need no brackets."""
        atom = self._binding(child) == _ATOM
        return text if atom or self._operator(child) == self.operators[MatMul] else f"({text})"


def size_expression(dim: Dim) -> str:
    """A size as the formula language writes it: 4 * H, D + H, 3."""
    counts, constant = sizes_.terms(dim)
    parts = [f"{k} * {n}" if k != 1 else n for n, k in sorted(counts.items())]
    if constant or not parts:
        parts.append(str(constant))
    return " + ".join(parts)


# -- rewriting ------------------------------------------------------------------------------------
#: Functions applied row by row (the rest apply entry by entry).
ROW_FUNCTIONS = ("softmax", "logsumexp", "rowmax")


def rebuild(expr: MatExpr, replace: Callable[[MatExpr], MatExpr | None]) -> MatExpr:
    """`expr` with every node for which `replace(node)` is not None replaced by that value,
    outermost first, and every node above a replacement rebuilt (shapes recomputed)."""
    out: dict[int, MatExpr] = {}
    for node in _postorder(expr):
        new = replace(node)
        if new is not None:
            out[id(node)] = new
            continue
        kids = [out[id(c)] for c in node.children]
        if all(k is c for k, c in zip(kids, node.children)):
            out[id(node)] = node
        else:
            out[id(node)] = _with_children(node, kids)
    return out[id(expr)]


def _with_children(node: MatExpr, kids: list[MatExpr]) -> MatExpr:
    if isinstance(node, MatMul):
        return _matmul(*kids)
    if isinstance(node, _Binary):
        return _elementwise(type(node), *kids)
    (kid,) = kids[:1]
    if isinstance(node, Transpose):
        return kid.T
    if isinstance(node, Sum):
        if node.keepdims:
            shape = tuple(1 if i == node.axis else d for i, d in enumerate(kid.shape))
            return Sum(kid, shape, axis=node.axis, keepdims=True)
        return kid.sum(axis=node.axis)
    if isinstance(node, Function):
        if node.shape == node.arg.shape:  # entry by entry, or softmax: the argument's shape
            shape = kid.shape
        elif node.columns:  # a reduction of each column: (k, N) -> (1, N)
            shape = (1, kid.shape[1])
        else:  # a reduction of each row: (N, k) -> (N,)
            shape = kid.shape[:1]
        return Function(kid, shape, name=node.name, on_floats=node.on_floats, columns=node.columns)
    if isinstance(node, Rows):
        return kids[0][kids[1]]
    if isinstance(node, OneHot):
        return OneHot(kid, node.shape, columns=node.columns)
    if isinstance(node, RepeatRows):
        return repeat_rows(kid, node.shape[0])
    if isinstance(node, RepeatCols):
        return RepeatCols(kid, (kid.shape[0], node.shape[1]))
    if isinstance(node, Block):
        return block(kid, node.part, node.parts, node.axis, node.widths)
    if isinstance(node, Blocks):
        present = iter(kids)
        return blocks([None if i is None else next(present) for i in node.items], node.axis)
    raise InvalidArgumentError(f"cannot rebuild a {type(node).__name__} node")


def column_shape(shape: Shape) -> Shape:
    """A row-convention shape in the column convention: matrices transposed, a vector (n,)
    becomes the column (n, 1), scalars stay."""
    if len(shape) == 2:
        return shape[::-1]
    return (shape[0], 1) if len(shape) == 1 else shape


def to_columns(expr: MatExpr) -> MatExpr:
    """The column-convention form of a row-convention formula.

    Every row-convention quantity X is the transpose of its column-convention namesake, so the
    result is `expr^T` with the transpose pushed down to the leaves: (A B)^T = B^T A^T, sums
    and entry-by-entry functions commute with it, sums over rows become sums over columns, a
    row-wise softmax becomes a column-wise one, and row ids stay ids.
    """
    out: dict[int, MatExpr] = {}
    for node in _postorder(expr):
        kids = [out[id(c)] for c in node.children]
        out[id(node)] = _column(node, kids)
    return out[id(expr)]


def _column(node: MatExpr, kids: list[MatExpr]) -> MatExpr:
    if isinstance(node, Symbol):
        return _replace_shape(node, column_shape(node.shape))
    if isinstance(node, Constant):  # a number in every entry of a matrix: of its transpose
        return Constant(node.value, column_shape(node.shape)) if node.shape else node
    if isinstance(node, MatMul):
        return _matmul(kids[1], kids[0])
    if isinstance(node, _Binary):
        return _elementwise(type(node), *kids)
    if isinstance(node, Transpose):
        return kids[0].T
    if isinstance(node, Sum):
        arg = kids[0]
        if node.axis is None or node.arg.ndim == 1:
            return arg.sum()
        axis = 1 - node.axis  # rows of the row form are columns of the column form
        shape = (arg.shape[0], 1) if axis == 1 else (1, arg.shape[1])
        return Sum(arg, shape, axis=axis, keepdims=True)
    if isinstance(node, Function):
        if node.name not in ROW_FUNCTIONS:
            return Function(kids[0], kids[0].shape, name=node.name, on_floats=node.on_floats)
        return columnwise(node, kids[0])
    if isinstance(node, OneHot):  # row ids are the same list in both conventions
        return OneHot(node.arg, node.shape[::-1], columns=True)
    if isinstance(node, RepeatRows):
        return RepeatCols(kids[0], (kids[0].shape[0], node.shape[0]))
    if isinstance(node, Block):  # the row form's column blocks are the column form's rows
        axis = 0 if node.arg.ndim in (1, 2) and node.axis == -1 else node.axis
        return block(kids[0], node.part, node.parts, axis, node.widths)
    if isinstance(node, Blocks):
        present = iter(kids)
        items = [None if i is None else next(present) for i in node.items]
        axis = 0 if len(node.shape) in (1, 2) and node.axis == -1 else node.axis
        return blocks(items, axis)
    raise InvalidArgumentError(f"{type(node).__name__} has no column-convention form")


def columnwise(node: Function, arg: MatExpr) -> Function:
    """A row-by-row function (softmax, rowmax) applied column by column to `arg`, an argument
    in the column convention: softmax of each column, or a (1, N) row of reductions."""
    shape = arg.shape if node.shape == node.arg.shape else (1, arg.shape[1])
    return Function(arg, shape, name=node.name, on_floats=_on_columns(node.on_floats), columns=True)


def _on_columns(f: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    def columnwise(a: np.ndarray) -> np.ndarray:
        r = f(np.asarray(a).T)
        return r.T if np.ndim(r) == 2 else r[None, :]

    return columnwise


def _replace_shape(node: Symbol, shape: Shape) -> Symbol:
    from dataclasses import replace

    return replace(node, shape=shape)


# -- shapes ---------------------------------------------------------------------------------------
def _lift(value) -> MatExpr | None:
    if isinstance(value, MatExpr):
        return value
    if isinstance(value, numbers.Integral):
        return Constant(int(value))
    if isinstance(value, Fraction):
        return Constant(value)
    if isinstance(value, numbers.Real):
        return Constant(float(value))
    return None


def _elementwise(kind: type[_Binary], left, right):
    a, b = _lift(left), _lift(right)
    if a is None or b is None:
        return NotImplemented
    if kind is Add:  # the adjoints of a matrix's blocks, put back together
        merged = _merge_blocks(a, b)
        if merged is not None:
            return merged
    shape = _broadcast(a, b)
    if kind is Multiply:
        folded = _fold_constants(a, b, shape)
        if folded is not None:
            return folded
        # A number filling a matrix, times a matrix of that shape: just the number.
        if isinstance(a, Constant) and a.shape and shape == b.shape:
            a = Constant(a.value)
        if isinstance(b, Constant) and b.shape and shape == a.shape:
            b = Constant(b.value)
        if _is_one(a) and shape == b.shape:  # 1 · x is x: the identity's derivative
            return b
        if _is_one(b) and shape == a.shape:
            return a
    return kind(a, b, shape)


def _number_of(value):
    """An exact number in its plainest form (a whole Fraction as an int)."""
    if isinstance(value, Fraction) and value.denominator == 1:
        return int(value)
    return value


def _fold_constants(a: MatExpr, b: MatExpr, shape: Shape) -> MatExpr | None:
    """Numbers multiplied together: 2 · (1/2) is 1, c · (d · x) is (c d) · x."""
    if isinstance(a, Constant) and isinstance(b, Constant):
        return Constant(_number_of(a.value * b.value), shape)
    for c, other in ((a, b), (b, a)):
        if (
            isinstance(c, Constant)
            and c.shape == ()
            and isinstance(other, Multiply)
            and isinstance(other.left, Constant)
            and other.left.shape == ()
        ):
            return _elementwise(
                Multiply, Constant(_number_of(c.value * other.left.value)), other.right
            )
    return None


def _broadcast(a: MatExpr, b: MatExpr) -> Shape:
    """NumPy's broadcasting, with named dimensions: equal names match, 1 stretches."""
    out = []
    for i in range(1, max(a.ndim, b.ndim) + 1):
        x = a.shape[-i] if i <= a.ndim else 1
        y = b.shape[-i] if i <= b.ndim else 1
        if x != y and 1 not in (x, y):
            raise InvalidArgumentError(
                f"cannot combine {_short(a)}, of shape {_shape_text(a.shape)}, entry by entry "
                f"with {_short(b)}, of shape {_shape_text(b.shape)}: the shapes do not broadcast"
            )
        out.append(y if x == 1 else x)
    return tuple(reversed(out))


def _matmul(left, right):
    a, b = _lift(left), _lift(right)
    if a is None or b is None:
        return NotImplemented
    if not (1 <= a.ndim <= 2 and 1 <= b.ndim <= 2) or a.shape[-1] != b.shape[0]:
        raise InvalidArgumentError(
            f"cannot multiply {_short(a)}, of shape {_shape_text(a.shape)}, by {_short(b)}, of "
            f"shape {_shape_text(b.shape)}: the inner dimensions differ"
        )
    return MatMul(a, b, a.shape[:-1] + b.shape[1:])


def _check_row_ids(ids, user: str) -> None:
    if not isinstance(ids, MatExpr) or ids.ndim != 1:
        raise InvalidArgumentError(f"{user} takes row ids as a vector MatExpr, got {ids!r}")


def _is_one(x: MatExpr) -> bool:
    return isinstance(x, Constant) and x.value == 1


def _is_fraction(value) -> bool:
    return isinstance(value, Fraction) and value.denominator != 1


def _short(expr: MatExpr, limit: int = 60) -> str:
    text = str(expr)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _shape_text(shape: Shape) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def size_in(shape: Shape, sizes: Mapping[str, int]) -> tuple[int, ...]:
    """A shape with named dimensions ("N", "4H") in numbers, from the sizes of the letters."""
    return tuple(_size(d, sizes) for d in shape)


def _size(dim: Dim, sizes: Mapping[str, int]) -> int:
    if not isinstance(dim, str):
        return dim
    if dim in sizes:
        return sizes[dim]
    try:  # "4H", "D+H": from the sizes of the names in it
        return sizes_.value(dim, sizes)
    except (UnknownNameError, InvalidArgumentError):
        raise UnknownNameError(
            f"the size of dimension {dim!r} is unknown: bind {dim!r} to it or bind an array "
            "that has it"
        ) from None


def _bind_shape(node: Symbol, bindings: Mapping, sizes: dict[str, int]) -> None:
    """Check a bound array against its symbol's shape; learn the sizes of named dimensions."""
    if node.name not in bindings:
        raise UnknownNameError(f"no array is bound to the symbol {node.name!r}")
    shape = np.shape(bindings[node.name])
    if len(shape) != node.ndim:
        raise InputArrayError(
            f"{node.name} should have shape {_shape_text(node.shape)}, got {_shape_text(shape)}"
        )
    for dim, size in zip(node.shape, shape):
        expected = sizes.setdefault(dim, size) if isinstance(dim, str) else dim
        if expected != size:
            raise InputArrayError(
                f"{node.name} has shape {_shape_text(shape)}, but its dimension {dim!r} is "
                f"{expected} elsewhere"
            )


def _row_ids(node: MatExpr, value: np.ndarray) -> np.ndarray:
    if not np.issubdtype(value.dtype, np.integer):
        raise InputArrayError(
            f"{_short(node)} holds row ids and must be integers, not {value.dtype}"
        )
    return value


# -- walking a DAG without recursion --------------------------------------------------------------
def _postorder(root: MatExpr) -> list[MatExpr]:
    """Every node once, children before parents (iterative: formulas can be thousands deep)."""
    order: list[MatExpr] = []
    seen: set[int] = set()
    stack: list[tuple[MatExpr, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
        elif id(node) not in seen:
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((c, False) for c in reversed(node.children))
    return order
