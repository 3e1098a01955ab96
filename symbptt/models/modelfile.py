"""Reading a model file: a cell written as its forward equations (docs/models.md).

    x[t]: (N, D)             # a per-step float input
    y[t]: (N,) in C          # per-step class ids
    h0: (N, H)               # an input without a step
    W_h: (H, H)
    ...
    h[0] = h0                # a state's boundary (or h[0] = 0)
    a[t] = h[t-1] @ W_h + x[t] @ W_x + b
    h[t] = tanh(a[t])
    o[t] = h[t] @ V + c
    L = sum(t, cross_entropy(o[t], y[t]))

`read_model` parses the file with the formula language's grammar extended by declarations,
checks every name and every shape (sizes as names: `H`, `4 * H`, `H + D`), orders the rules of
one step, and returns a `ModelFile`: the same equations, in the row convention, with every
quantity's shape. Anything wrong is one `ModelFileError` naming the line and the column, with
the line and a caret. The text is never evaluated.
"""

from __future__ import annotations

import difflib
import hashlib
import keyword
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from ..errors import InvalidArgumentError, SymbpttError
from ..formula.ast import (
    Binary,
    Call,
    Index,
    Name,
    Neg,
    Num,
    Power,
    Step,
    SumOverT,
    Transposed,
)
from . import sizes

__all__ = [
    "ModelFileError",
    "ModelFile",
    "Declaration",
    "Definition",
    "Boundary",
    "Loss",
    "read_model",
    "FUNCTIONS",
    "ELEMENTWISE",
]


class ModelFileError(SymbpttError):
    """A model file that cannot be read: one sentence with the line, the column and a caret."""


#: Functions applied entry by entry, and their value at 0 (None: not a number there).
ELEMENTWISE = {
    "tanh": 0.0,
    "sigmoid": 0.5,
    "relu": 0.0,
    "identity": 0.0,
    "exp": 1.0,
    "log": None,
}
#: Every function a model file may call, with what it takes.
FUNCTIONS = {
    **{f: "(X)" for f in ELEMENTWISE},
    "softmax": "(X), each row",
    "onehot": "(x[t]) of integer ids",
    "sum": "(X), every entry",
    "sum_all": "(X), every entry (as sum)",
    "sum_rows": "(X), over the rows",
    "sum_cols": "(X), over the columns (column convention)",
    "colblock": "(X, k, n)",
    "rowblock": "(X, k, n)",
    "hstack": "(A, B, ...)",
    "vstack": "(A, B, ...)",
    "cross_entropy": "(o, y[t]), summed over the batch",
}
#: Names a file may not give its own quantities.
RESERVED = {"t", "T", "N", "L", "sum", "ones", "E", "max", "Max", "Piecewise", *FUNCTIONS}
#: The largest power written out (an elementwise square is common, h**1000 is not).
MAX_POWER = 8
#: The deepest nesting of operations on one line (a sum of 100 terms, 100 calls inside calls).
MAX_DEPTH = 100

_MODEL_GRAMMAR = r"""
start: rule | decl
decl: target COLON shape (IN dim)?
shape: "(" ")" | "(" dim ("," dim)* ","? ")"
dim: dim_term (PLUS dim_term)*
dim_term: INT -> dim_number
        | INT TIMES? NAME -> dim_multiple
        | NAME -> dim_name
COLON: ":"
IN: "in"
"""


@lru_cache(maxsize=1)
def _parser():
    from lark import Lark

    from ..formula.reader import EXPRESSIONS

    grammar = _MODEL_GRAMMAR + 'rule: target "=" expr\n' + EXPRESSIONS
    return Lark(grammar, parser="lalr", maybe_placeholders=False, propagate_positions=True)


# -- what a file says ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Place:
    """Where a line is: its number and its text (for errors with a caret), and the file's
    path (None for a text read without one)."""

    line: int
    text: str
    path: str | None = field(default=None, compare=False)

    def error(self, message: str, column: int = 0) -> ModelFileError:
        from ..formula.reader import caret

        where = f"line {self.line}" + (f", column {column}" if column else "")
        if self.path:
            where = f"{self.path}, {where}"
        return ModelFileError(f"{where}: {message}\n{caret(self.text, column or 1)}")


@dataclass(frozen=True)
class Declaration:
    """An input: its name, whether it has one slice per step, its shape (row convention,
    without the time axis) and, for integer ids, the size they range over."""

    name: str
    per_step: bool
    shape: tuple[sizes.Dim, ...]
    bound: sizes.Dim | None
    place: Place

    @property
    def integer(self) -> bool:
        return self.bound is not None


@dataclass(frozen=True)
class Definition:
    """A rule `name[t] = expr` (row convention)."""

    name: str
    expr: object
    place: Place


@dataclass(frozen=True)
class Boundary:
    """`state[0] = value`: a declared input, or None for a zero state."""

    state: str
    value: str | None
    place: Place


@dataclass(frozen=True)
class Loss:
    """`L = sum(t, body)`, divided by N*T when `mean`; any other constant factor of the loss is
    already folded into the body."""

    body: object
    mean: bool
    place: Place


@dataclass(frozen=True)
class ModelFile:
    """A model file, read and checked: its declarations in file order, its rules in the order
    a step computes them, its boundaries, its loss (None: a layer), every quantity's shape."""

    text: str
    path: str | None
    convention: str
    declarations: tuple[Declaration, ...]
    rules: tuple[Definition, ...]
    boundaries: tuple[Boundary, ...]
    loss: Loss | None
    shapes: tuple[tuple[str, tuple[sizes.Dim, ...]], ...]
    #: A layer's outputs: the per-step quantities no other rule reads at the same step.
    outputs: tuple[str, ...] = ()
    title: str = ""
    sha256: str = field(default="", compare=False)
    #: The shape of every node of every expression, by id (what the cell compiler needs to
    #: write a block of zeros beside a zero state).
    node_shapes: Mapping[int, tuple] = field(default_factory=dict, compare=False, repr=False)
    #: Read with `infer`: each unknown size `_S1` as the rules determine it.
    solution: Mapping[str, object] = field(default_factory=dict, compare=False, repr=False)

    def __hash__(self) -> int:
        return hash(self.sha256)

    def declaration(self, name: str) -> Declaration | None:
        return next((d for d in self.declarations if d.name == name), None)

    def shape(self, name: str) -> tuple[sizes.Dim, ...]:
        return dict(self.shapes)[name]

    @property
    def states(self) -> tuple[str, ...]:
        return tuple(b.state for b in self.boundaries)

    @property
    def size_names(self) -> tuple[str, ...]:
        """Every size the file uses besides N and T, in order of first use."""
        found: list[str] = []
        for d in self.declarations:
            for dim in (*d.shape, *([d.bound] if d.bound is not None else [])):
                found += [n for n in sizes.names_in(dim) if n not in ("N", "T")]
        return tuple(dict.fromkeys(found))


# -- reading -------------------------------------------------------------------------------------
#: Size names that stand for sizes not known yet (declarations whose shapes are inferred).
UNKNOWN_SIZE = re.compile(r"_S\d+")


def read_model(
    text: str,
    *,
    path: str | None = None,
    convention: str | None = None,
    infer: bool = False,
) -> ModelFile:
    """Read and check a model file; ModelFileError (line, column, caret) for anything wrong.

    The file's convention is read off its declarations (x[t]: (N, D) is a row, (D, N) a
    column); `convention` decides only where they do not tell (no per-step float input).
    With `infer`, size names of the form `_S1` are unknowns that the rules determine: the
    read model's `solution` says what each one is (`models.guess`)."""
    from ..formula.reader import FormulaSyntaxError, parse_line

    if not isinstance(text, str):
        raise InvalidArgumentError("a model file is text")
    text = text.removeprefix("\ufeff")  # a byte-order mark some editors write first
    if convention not in (None, "row", "column"):
        raise InvalidArgumentError(f"convention={convention!r} must be row or column")
    parsed = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].rstrip()
        if line.strip():
            try:
                tree = parse_line(_parser(), line, number)
            except FormulaSyntaxError as exc:
                raise ModelFileError(str(exc)) from None
            place = Place(number, line, path)
            _check_depth(tree, place)
            parsed.append((tree.children[0], place))
    told = _convention_of(parsed)
    if told is not None:
        return _read(parsed, told, text, path, infer)
    first = convention or "row"  # the declarations do not tell: this one, else the other
    try:
        return _read(parsed, first, text, path, infer)
    except ModelFileError as exc:
        try:
            return _read(parsed, "column" if first == "row" else "row", text, path, infer)
        except ModelFileError:
            raise exc from None


def _read(parsed, convention: str, text: str, path: str | None, infer: bool) -> ModelFile:
    """The parsed lines read in one convention."""
    reader = _Reader(convention, infer=infer)
    try:
        for item, place in sorted(parsed, key=lambda p: p[0].data != "decl"):
            reader.line(item, place)
        return reader.finish(text, path)
    except RecursionError:
        raise ModelFileError(
            "an expression of the file is nested too deeply to read: name its parts with "
            "rules of their own"
        ) from None


def _check_depth(tree, place: Place) -> None:
    """An expression nested deeper than MAX_DEPTH (a sum of hundreds of terms, calls inside
    calls) is refused at its line: the derivation of such a line nests as deep, past what
    Python's parser and recursion take."""
    from lark import Tree

    deepest, where = 0, None
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > deepest:
            deepest, where = depth, node
        stack += [(kid, depth + 1) for kid in node.children if isinstance(kid, Tree)]
    if deepest > MAX_DEPTH + 3:  # the rule, its target and the expression's own top
        column = getattr(getattr(where, "meta", None), "column", 1) if where is not None else 1
        raise place.error(
            f"this line nests {deepest - 3} operations inside one another (a sum of that many "
            f"terms, or calls inside calls), more than the {MAX_DEPTH} a line may: name its "
            "parts with rules of their own",
            column,
        )


def _convention_of(parsed) -> str | None:
    """Row when the declarations put N first, column when they put it last: the per-step
    float inputs decide (x[t]: (N, D)), else the other inputs with N (h0: (N, H)); None when
    none tells (integer ids and zero states only)."""
    groups: tuple[dict[str, Place], dict[str, Place]] = ({}, {})
    for item, place in parsed:
        if item.data != "decl" or len(item.children) > 3:
            continue  # a rule, or integer ids (N,) in C
        per_step = len(item.children[0].children) >= 2
        dims = [t for t in item.children[2].children]
        if len(dims) != 2:
            continue
        texts = [" ".join(str(tok) for tok in d.scan_values(lambda v: True)) for d in dims]
        votes = groups[0 if per_step else 1]
        if texts[0] == "N" and texts[1] != "N":
            votes.setdefault("row", place)
        elif texts[1] == "N" and texts[0] != "N":
            votes.setdefault("column", place)
    for votes in groups:
        if len(votes) == 2:
            row, column = votes["row"], votes["column"]
            raise column.error(
                f"this input is written in the column convention (N last), but the one on "
                f"line {row.line} in the row convention (N first): write every one of them "
                "one way"
            )
        if votes:
            return next(iter(votes))
    return None


@dataclass
class _Reader:
    convention: str
    infer: bool = False
    declarations: dict[str, Declaration] = field(default_factory=dict)
    rules: dict[str, Definition] = field(default_factory=dict)
    boundaries: dict[str, Boundary] = field(default_factory=dict)
    loss: tuple[object, Place] | None = None
    #: Column-convention inputs declared (k, 1): a bias (k,) in rows, unless a product uses
    #: them as a matrix (`w.T @ h[t]`: then the (1, k) matrix).
    columns: set[str] = field(default_factory=set)

    def line(self, item, place: Place) -> None:
        from ..formula.reader import FormulaSyntaxError

        try:
            if item.data == "decl":
                self.declare(item, place)
            else:
                self.rule(item, place)
        except FormulaSyntaxError as exc:
            raise place.error(str(exc)) from None

    # -- declarations
    def declare(self, tree, place: Place) -> None:
        from ..formula.reader import index

        target, _colon, shape_tree, *rest = tree.children
        name, column = str(target.children[0]), target.children[0].column
        per_step = len(target.children) > 1
        if per_step:
            step = index(target.children[1])
            if step != Index("t", 0):
                raise place.error(
                    f"a declaration takes no step but [t]: write {name}[t]: (N, ...) for an "
                    f"input with one slice per step, or {name}: (...) for one without",
                    column,
                )
        _check_name(name, place, column)
        if name in self.declarations:
            first = self.declarations[name].place.line
            raise place.error(f"{name} is declared twice (first on line {first})", column)
        shape = tuple(self._dim(d, place) for d in shape_tree.children)
        bound = self._dim(rest[1], place) if rest else None
        if self.convention == "column":
            if not per_step and len(shape) == 2 and shape[1] == 1:
                self.columns.add(name)  # a bias (k, 1), or a weight w.T @ h: told by its uses
            shape = _row_shape(shape)
        for dim in shape:
            if "T" in sizes.names_in(dim):
                raise place.error(
                    f"{name}'s shape uses T, the number of steps: a slice per step is "
                    f"declared {name}[t]: (...)",
                    column,
                )
        if bound is not None:
            if not per_step or shape != ("N",):
                raise place.error(
                    f"`in {bound}` declares integer ids, one per example and step: write "
                    f"{name}[t]: (N,) in {bound}",
                    column,
                )
        elif per_step and (not shape or shape[0] != "N"):
            row = "(N, ...)" if self.convention == "row" else "(..., N)"
            raise place.error(
                f"{name}[t] holds one row per example: its shape is {row} in the "
                f"{self.convention} convention",
                column,
            )
        self.declarations[name] = Declaration(name, per_step, shape, bound, place)

    def _dim(self, tree, place: Place) -> sizes.Dim:
        from lark import Tree

        terms = [t for t in tree.children if isinstance(t, Tree)]
        parts: list[str] = []
        for term in terms:
            kids = [str(k) for k in term.children]
            if term.data == "dim_number":
                parts.append(kids[0])
            elif term.data == "dim_multiple":
                parts.append(f"{kids[0]}*{kids[-1]}")
            else:
                parts.append(kids[0])
        for term in terms:
            for token in term.children:
                if token.type == "NAME" and (
                    keyword.iskeyword(str(token)) or str(token) in FUNCTIONS
                ):
                    raise place.error(f"{token} cannot name a size", token.column)
        return sizes.canonical("+".join(parts))

    # -- rules
    def rule(self, tree, place: Place) -> None:
        from ..formula.reader import index, node

        target, expr_tree = tree.children
        name, column = str(target.children[0]), target.children[0].column
        expr = _spelled(node(expr_tree))
        if self.convention == "column":
            expr = _to_rows(expr, place, self)
        if len(target.children) == 1:
            if name != "L":
                hint = (
                    "; a model file holds the forward equations (a backward rule belongs in a "
                    "derivation for symbptt audit)"
                    if name.startswith("d") and len(name) > 1
                    else ""
                )
                raise place.error(
                    f"only the loss L has no step: a per-step quantity is written "
                    f"{name}[t] = ...{hint}",
                    column,
                )
            if self.loss is not None:
                raise place.error(f"L is defined twice (first on line {self.loss[1].line})", column)
            self.loss = (expr, place)
            return
        step = index(target.children[1])
        if name.startswith("d") and name[1:] in {*self.rules, *self.declarations}:
            raise place.error(
                f"{name}[...] reads as a gradient: a model file holds the forward equations "
                "only (a backward rule belongs in a derivation for symbptt audit)",
                column,
            )
        if step == Index(None, 0):
            if name in self.boundaries:
                first = self.boundaries[name].place.line
                raise place.error(f"{name}[0] is given twice (first on line {first})", column)
            if isinstance(expr, Num) and expr.value == 0:
                value = None
            elif isinstance(expr, Name):
                value = expr.name
            else:
                raise place.error(
                    f"a boundary is a declared input or 0: {name}[0] = {name}0 (an input with "
                    f"a gradient) or {name}[0] = 0",
                    expr.at or column,
                )
            self.boundaries[name] = Boundary(name, value, place)
            return
        if step != Index("t", 0):
            what = "a boundary only at [0]" if step.anchor is None else "no step a rule defines"
            raise place.error(
                f"a rule defines its quantity at step t: write {name}[t] = ... "
                f"({name}[{step.text()}] is {what})",
                column,
            )
        _check_name(name, place, column)
        if name in self.declarations:
            raise place.error(
                f"{name} is declared as an input on line {self.declarations[name].place.line}: "
                "an input has no rule",
                column,
            )
        if name in self.rules:
            first = self.rules[name].place.line
            raise place.error(f"{name}[t] is defined twice (first on line {first})", column)
        self.rules[name] = Definition(name, expr, place)

    # -- checking the whole
    def finish(self, text: str, path: str | None) -> ModelFile:
        if not self.rules:
            raise ModelFileError(
                "the file defines no per-step quantity: write the cell's rules, e.g. "
                "h[t] = tanh(h[t-1] @ W_h + x[t] @ W_x + b)"
            )
        self._column_matrices()
        self._previous_in_loss()
        for boundary in self.boundaries.values():
            at = boundary.place
            if boundary.state not in self.rules:
                raise at.error(
                    f"{boundary.state}[0] is a boundary, but no rule defines {boundary.state}[t]"
                )
            if boundary.value is not None:
                d = self.declarations.get(boundary.value)
                if d is None:
                    raise at.error(self.unknown(boundary.value), at.text.index(boundary.value) + 1)
                if d.per_step or d.integer:
                    raise at.error(
                        f"{boundary.value} is a per-step input: a boundary is an input without a "
                        "step (declared NAME: (N, ...))",
                        at.text.index(boundary.value) + 1,
                    )
        scope = _Inferring(self) if self.infer else _Scope(self)
        order = scope.order()
        shapes = scope.infer(order)
        loss = None
        if self.loss is not None:
            loss = scope.loss(*self.loss)
            self._reach_the_loss(loss.body)
        used = scope.used | {b.value for b in self.boundaries.values() if b.value}
        for d in self.declarations.values():
            if d.name not in used:
                raise d.place.error(
                    f"{d.name} is declared but no rule uses it: remove it, or use it",
                    d.place.text.index(d.name) + 1,
                )
        if not any(not d.integer for d in self.declarations.values()):
            raise ModelFileError(
                "the file declares no float input, so nothing has a gradient: declare the "
                "weights, e.g. W_h: (H, H)"
            )
        for boundary in self.boundaries.values():
            if boundary.state not in scope.recurrent:
                raise boundary.place.error(
                    f"{boundary.state}[0] is given but no rule reads {boundary.state}[t-1]: "
                    "only a state needs a boundary"
                )
            if boundary.value is not None:
                want, got = shapes[boundary.state], self.declarations[boundary.value].shape
                if not scope.unify(want, got):
                    raise boundary.place.error(
                        f"{boundary.value} has shape {_text(got)}, but {boundary.state}[t] has "
                        f"shape {_text(want)}",
                        boundary.place.text.index(boundary.value) + 1,
                    )
        outputs: tuple[str, ...] = ()
        if loss is None:
            read_now = scope.read_now
            outputs = tuple(r for r in order if r not in read_now)
            for name in outputs:
                clash = f"g_{name}"
                if clash in self.declarations or clash in self.rules:
                    raise self.rules[name].place.error(
                        f"{name}[t] is the layer's output, whose upstream gradient is the "
                        f"input {clash}: rename the quantity named {clash}"
                    )
        _check_codes(self, order)
        _check_gradient_names(self)
        lines = []  # the title: the comment lines the file starts with
        for raw in text.splitlines():
            stripped = raw.strip()
            if not stripped.startswith("#"):
                break
            lines.append(stripped.lstrip("#").strip())
        title = " ".join(lines).strip()
        return ModelFile(
            text=text,
            path=path,
            convention=self.convention,
            declarations=tuple(self.declarations.values()),
            rules=tuple(self.rules[n] for n in order),
            boundaries=tuple(self.boundaries.values()),
            loss=loss,
            shapes=tuple((n, shapes[n]) for n in order),
            outputs=outputs,
            title=title,
            sha256=hashlib.sha256(f"{self.convention}\n{text}".encode()).hexdigest(),
            node_shapes={k: scope.resolve(v) for k, v in scope.node_shapes.items()},
            solution={k: scope.resolve_dim(k) for k in scope.unknowns()} if self.infer else {},
        )

    def _column_matrices(self) -> None:
        """A column file's (k, 1) input that a matrix product uses (`w.T @ h[t]`) is the
        matrix (1, k) in rows, not a bias (k,)."""
        bodies = [r.expr for r in self.rules.values()] + ([self.loss[0]] if self.loss else [])
        used = set()
        for body in bodies:
            for node in _walk(body):
                if isinstance(node, Binary) and node.op == "@":
                    for side in (node.left, node.right):
                        while isinstance(side, Transposed):
                            side = side.arg
                        if isinstance(side, Name):
                            used.add(side.name)
        for name in self.columns & used:
            d = self.declarations[name]
            self.declarations[name] = Declaration(name, False, (1, d.shape[0]), None, d.place)

    def _previous_in_loss(self) -> None:
        """A loss that reads a state at [t-1] reads it through a quantity of its own step,
        `h_prev[t] = h[t-1]` (a rule added here): a loss term's derivative then reaches h[t]
        through the adjoint dh_prev[t+1], which is 0 after the last step, as it must be."""
        if self.loss is None:
            return
        expr, place = self.loss
        read = [
            n.name
            for n in _walk(expr)
            if isinstance(n, Step) and n.index == Index("t", -1) and n.name in self.boundaries
        ]
        renamed = {}
        for state in dict.fromkeys(read):
            name, k = f"{state}_prev", 1
            while {name, f"d{name}"} & {*self.rules, *self.declarations, *renamed.values()}:
                k += 1
                name = f"{state}_prev{k}"
            renamed[state] = name
            self.rules[name] = Definition(name, Step(state, Index("t", -1)), place)
        if renamed:
            self.loss = (_previous_read(expr, renamed), place)

    def _reach_the_loss(self, body) -> None:
        """Every rule must reach the loss: a quantity nothing the loss reads uses has no
        derivative (its adjoint would be read but never defined)."""
        reached: set[str] = set()
        stack = [n.name for n in _refs(body) if n.name in self.rules]
        while stack:
            name = stack.pop()
            if name not in reached:
                reached.add(name)
                stack += [n.name for n in _refs(self.rules[name].expr) if n.name in self.rules]
        for name, rule in self.rules.items():
            if name not in reached:
                raise rule.place.error(
                    f"{name}[t] does not reach the loss L: no quantity the loss reads uses it "
                    "(remove the rule, or use it)",
                    rule.place.text.index(name) + 1 if name in rule.place.text else 0,
                )

    def names(self) -> list[str]:
        return [*self.declarations, *self.rules]

    def unknown(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.names(), n=2, cutoff=0.5)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        return f"{name!r} is neither declared nor defined by a rule{hint}"


def _previous_read(expr, renamed: Mapping[str, str]):
    """The expression with each state s[t-1] of `renamed` read as renamed[s][t]."""
    if isinstance(expr, Step):
        if expr.index == Index("t", -1) and expr.name in renamed:
            return Step(renamed[expr.name], Index("t", 0), expr.at)
        return expr
    if isinstance(expr, Binary):
        left, right = _previous_read(expr.left, renamed), _previous_read(expr.right, renamed)
        return Binary(expr.op, left, right, expr.at)
    if isinstance(expr, (Neg, Transposed)):
        return type(expr)(_previous_read(expr.arg, renamed), expr.at)
    if isinstance(expr, Power):
        return Power(_previous_read(expr.arg, renamed), expr.exponent, expr.at)
    if isinstance(expr, SumOverT):
        return SumOverT(_previous_read(expr.body, renamed), expr.at)
    if isinstance(expr, Call):
        return Call(expr.function, tuple(_previous_read(a, renamed) for a in expr.args), expr.at)
    return expr


def _spelled(expr):
    """One spelling per function: sum_all(X) is sum(X)."""
    if isinstance(expr, Binary):
        return Binary(expr.op, _spelled(expr.left), _spelled(expr.right), expr.at)
    if isinstance(expr, (Neg, Transposed)):
        return type(expr)(_spelled(expr.arg), expr.at)
    if isinstance(expr, Power):
        return Power(_spelled(expr.arg), expr.exponent, expr.at)
    if isinstance(expr, SumOverT):
        return SumOverT(_spelled(expr.body), expr.at)
    if isinstance(expr, Call):
        name = "sum" if expr.function == "sum_all" else expr.function
        return Call(name, tuple(_spelled(a) for a in expr.args), expr.at)
    return expr


def _check_name(name: str, place: Place, column: int) -> None:
    if name in RESERVED or keyword.iskeyword(name):
        raise place.error(
            f"{name!r} is a name the language keeps for itself: choose another", column
        )
    if re.fullmatch(r"L_\d+", name):
        raise place.error(
            f"{name!r} reads as the loss term of step {name[2:]} (symbptt names the loss terms "
            "L_1, L_2, ...): choose another name",
            column,
        )
    if name.startswith("_") or name.startswith("d_") or re.fullmatch(r"p\d+_.*", name):
        raise place.error(
            f"{name!r} cannot be a name here (names starting with _, d_ or p<digits>_ are "
            "kept for what symbptt generates): choose another",
            column,
        )


def _check_codes(reader: _Reader, order: list[str]) -> None:
    """A name such as h_1 beside a per-step h would read as h at step 1 (and a copy of W as
    W_t1): refuse what the unrolled graph could not tell apart."""
    per_step = [*order, *(d.name for d in reader.declarations.values() if d.per_step)]
    unstepped = [d for d in reader.declarations.values() if not d.per_step]
    for d in [*reader.declarations.values()]:
        for other in per_step:
            if d.name != other and re.fullmatch(rf"{re.escape(other)}_\d+(_\d+)*", d.name):
                raise d.place.error(
                    f"{d.name!r} reads as {other} at a step: rename one of them",
                    d.place.text.index(d.name) + 1,
                )
        for weight in unstepped:
            if d.name != weight.name and re.fullmatch(rf"{re.escape(weight.name)}_t\d+", d.name):
                raise d.place.error(
                    f"{d.name!r} reads as {weight.name}'s copy at a step: rename one of them",
                    d.place.text.index(d.name) + 1,
                )
    for name in order:
        for other in per_step:
            if name != other and re.fullmatch(rf"{re.escape(other)}_\d+", name):
                place = reader.rules[name].place
                raise place.error(f"{name!r} reads as {other} at a step: rename one of them")


def _check_gradient_names(reader: _Reader) -> None:
    """dW_h beside W_h (or dh beside h[t]) would read as the gradient dL/dW_h that the
    derivation names so: refuse the name, in whichever order the two appear."""
    items = [*reader.declarations.values(), *reader.rules.values()]
    names = {item.name for item in items}
    for item in items:
        name = item.name
        if name.startswith("d") and name[1:] in names:
            place = item.place
            raise place.error(
                f"{name!r} reads as the gradient of {name[1:]} (dL/d{name[1:]} is written "
                f"{name} in a derivation): choose another name",
                place.text.index(name) + 1 if name in place.text else 0,
            )


def _text(shape) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _row_shape(shape: tuple) -> tuple:
    """A column-convention shape in rows: a matrix transposed, a column (k, 1) a vector (k,)."""
    if len(shape) == 2:
        return shape[::-1] if shape[1] != 1 else (shape[0],)
    return shape


_COLUMN_SWAP = {"colblock": "rowblock", "rowblock": "colblock", "hstack": "vstack"}
_COLUMN_SWAP["vstack"] = "hstack"


def _to_rows(expr, place: Place, reader: _Reader):
    """A column-convention expression as the row convention reads it: every quantity is the
    transpose of its row namesake, so the expression is transposed with the transpose pushed
    down to the leaves ((A B)^T = B^T A^T; blocks of rows become blocks of columns)."""
    if isinstance(expr, (Num, Name, Step)):
        return expr
    if isinstance(expr, Binary):
        left, right = _to_rows(expr.left, place, reader), _to_rows(expr.right, place, reader)
        if expr.op == "@":
            return Binary("@", right, left, expr.at)
        return Binary(expr.op, left, right, expr.at)
    if isinstance(expr, Neg):
        return Neg(_to_rows(expr.arg, place, reader), expr.at)
    if isinstance(expr, Power):
        return Power(_to_rows(expr.arg, place, reader), expr.exponent, expr.at)
    if isinstance(expr, Transposed):
        return Transposed(_to_rows(expr.arg, place, reader), expr.at)
    if isinstance(expr, SumOverT):
        return SumOverT(_to_rows(expr.body, place, reader), expr.at)
    if isinstance(expr, Call):
        name = expr.function
        if name == "sum_rows":
            raise place.error(
                "sum_rows sums over the rows, which are features in the column convention: "
                "sum the examples with sum_cols(X)",
                expr.at,
            )
        name = {"sum_cols": "sum_rows", **_COLUMN_SWAP}.get(name, name)
        args = tuple(a if isinstance(a, Num) else _to_rows(a, place, reader) for a in expr.args)
        return Call(name, args, expr.at)
    return expr


# -- names and shapes ----------------------------------------------------------------------------
class _Unknown:
    """The size of a zero state's columns before its rule tells it."""

    def __init__(self, state: str) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"?{self.state}"


class _Scope:
    """Every name's meaning and shape while a file is checked: shapes are inferred rule by rule
    in the order one step computes them."""

    def __init__(self, reader: _Reader) -> None:
        self.r = reader
        self.sizes = {"N", "T"}
        for d in reader.declarations.values():
            for dim in (*d.shape, *([d.bound] if d.bound is not None else [])):
                self.sizes.update(sizes.names_in(dim))
        self.shapes: dict[str, tuple] = {}
        self.tolerant = False
        self.node_shapes: dict[int, tuple] = {}
        self.bound: dict[_Unknown, object] = {}
        self.used: set[str] = set()
        self.recurrent: set[str] = set()
        self.read_now: set[str] = set()
        for name in (*reader.declarations, *reader.rules):
            if name in self.sizes:
                raise self._place(name).error(
                    f"{name} names a size in a shape and a quantity: choose another name"
                )

    def _place(self, name: str) -> Place:
        item = self.r.declarations.get(name) or self.r.rules.get(name)
        return item.place

    # -- the order of one step
    def order(self) -> list[str]:
        """The rules in an order that computes each after what it reads at step t (file order
        where free); a cycle inside one step is an error naming it."""
        needs: dict[str, list[str]] = {}
        for name, rule in self.r.rules.items():
            needs[name] = []
            for ref in _refs(rule.expr):
                if (
                    isinstance(ref, Step)
                    and ref.index == Index("t", 0)
                    and ref.name in self.r.rules
                ):
                    needs[name].append(ref.name)
        done: list[str] = []
        state: dict[str, int] = {}

        def visit(name: str, chain: list[str]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                cycle = chain[chain.index(name) :] + [name]
                place = self.r.rules[name].place
                raise place.error(
                    "a cycle inside one step: "
                    + " needs ".join(f"{n}[t]" for n in cycle)
                    + " (one of them must read the previous step, [t-1])"
                )
            state[name] = 1
            for other in needs[name]:
                visit(other, [*chain, name])
            state[name] = 2
            done.append(name)

        for name in self.r.rules:
            visit(name, [])
        return done

    # -- shapes
    def infer(self, order: list[str]) -> dict[str, tuple]:
        """Every rule's shape. A zero state's shape is what its own rule gives, so a first
        pass learns it (with unknown widths where it is used before), then a strict pass
        checks every rule with every state's shape known."""
        unknown = {}
        for b in self.r.boundaries.values():
            if b.value is None:
                unknown[b.state] = ("N", _Unknown(b.state))
        self.state_shapes = {
            b.state: self.r.declarations[b.value].shape if b.value else unknown[b.state]
            for b in self.r.boundaries.values()
        }
        if unknown:
            self.tolerant = True
            self._pass(order)
            for state, shape in unknown.items():
                if any(isinstance(d, _Unknown) for d in self.resolve(shape)):
                    raise self.r.rules[state].place.error(
                        f"cannot tell the shape of {state}[t]: give its boundary an input of a "
                        f"declared shape ({state}[0] = {state}0)"
                    )
            self.state_shapes = {s: self.resolve(v) for s, v in self.state_shapes.items()}
            self.shapes, self.node_shapes, self.bound = {}, {}, {}
        self.tolerant = False
        return self._pass(order)

    def _pass(self, order: list[str]) -> dict[str, tuple]:
        for name in order:
            rule = self.r.rules[name]
            self.current = rule.place
            shape = self.shape(rule.expr)
            if shape == ():
                pass
            if name in self.state_shapes:
                want = self.state_shapes[name]
                if not self.unify(want, shape):
                    raise rule.place.error(
                        f"{name}[t] has shape {self.show(shape)}, but {name}[t-1] is used as "
                        f"{self.show(want)} (its boundary's shape): a state keeps its shape",
                    )
            self.shapes[name] = shape
        out = {}
        for name in order:
            shape = self.resolve(self.shapes[name])
            if any(isinstance(d, _Unknown) for d in shape):
                raise self.r.rules[name].place.error(
                    f"cannot tell the shape of {name}[t]: give its state a boundary input of a "
                    "declared shape"
                )
            out[name] = shape
        self.shapes = out
        return out

    def loss(self, expr, place: Place) -> Loss:
        """`L = c * sum(t, E)` for any constant factor c written around the sum (`-sum(...)`,
        `2 * sum(...) / (N * T)`, `sum(...) / N / T`): a mean where c divides by N and T, any
        other factor joined to E."""
        self.current = place
        numerators: list = []
        denominators: list = []
        sign = [1]
        body = self._split_loss(expr, numerators, denominators, sign)
        if body is None:
            raise place.error(
                "the loss is a constant times a sum over the steps: L = sum(t, ...) (divided "
                "by (N * T) for a mean)",
                expr.at,
            )
        names = [getattr(d, "name", None) for d in denominators]
        mean = "N" in names and "T" in names
        if mean:
            denominators.pop(names.index("N"))
            denominators.pop([getattr(d, "name", None) for d in denominators].index("T"))
        inner = body.body
        for factor in numerators:
            inner = Binary("*", inner, factor, inner.at)
        for factor in denominators:
            inner = Binary("/", inner, factor, inner.at)
        if sign[0] < 0:
            inner = inner.arg if isinstance(inner, Neg) else Neg(inner, inner.at)
        if any(isinstance(n, SumOverT) for n in _walk(inner)):
            raise place.error("sum(t, ...) cannot be nested", inner.at)
        shape = self.shape(inner)
        if self.resolve(shape) != ():
            raise place.error(
                f"the loss at step t must be a number, but this is {self.show(shape)}: sum its "
                "entries with sum(...) or use cross_entropy(o[t], y[t])",
                inner.at,
            )
        return Loss(inner, mean, place)

    def _split_loss(self, expr, numerators: list, denominators: list, sign: list):
        """The sum(t, ...) of a loss written as constants times it; its constant factors
        (numbers, sizes) go to `numerators` and `denominators`, a minus to `sign`. None where
        the loss is no constant times one sum."""
        if isinstance(expr, SumOverT):
            return expr
        if isinstance(expr, Neg):
            sign[0] = -sign[0]
            return self._split_loss(expr.arg, numerators, denominators, sign)
        if isinstance(expr, Binary) and expr.op in ("*", "/"):
            has_sum = [
                any(isinstance(n, SumOverT) for n in _walk(x)) for x in (expr.left, expr.right)
            ]
            if has_sum == [True, False] and self._constant(expr.right):
                into = (numerators, denominators) if expr.op == "*" else (denominators, numerators)
                _factors_of(expr.right, *into, sign)
                return self._split_loss(expr.left, numerators, denominators, sign)
            if has_sum == [False, True] and expr.op == "*" and self._constant(expr.left):
                _factors_of(expr.left, numerators, denominators, sign)
                return self._split_loss(expr.right, numerators, denominators, sign)
        return None

    def _constant(self, expr) -> bool:
        """Numbers and sizes only (a constant factor of the loss)."""
        return all(
            isinstance(n, (Num, Binary, Neg, Power))
            or (isinstance(n, Name) and n.name in self.sizes)
            for n in _walk(expr)
        ) and all(not isinstance(n, Binary) or n.op != "@" for n in _walk(expr))

    def unify(self, a: tuple, b: tuple) -> bool:
        a, b = self.resolve(a), self.resolve(b)
        if len(a) != len(b):
            return False
        for x, y in zip(a, b):
            x, y = self.resolve_dim(x), self.resolve_dim(y)
            if isinstance(x, _Unknown):
                if x is not y:
                    self.bound[x] = y
            elif isinstance(y, _Unknown):
                self.bound[y] = x
            elif x != y:
                return False
        return True

    def resolve_dim(self, d):
        while isinstance(d, _Unknown) and d in self.bound:
            d = self.bound[d]
        return d

    def resolve(self, shape: tuple) -> tuple:
        return tuple(self.resolve_dim(d) for d in shape)

    def show(self, shape: tuple) -> str:
        shape = self.resolve(shape)
        return (
            "("
            + ", ".join("?" if isinstance(d, _Unknown) else str(d) for d in shape)
            + (",)" if len(shape) == 1 else ")")
        )

    def fail(self, message: str, node) -> ModelFileError:
        return self.current.error(message, getattr(node, "at", 0))

    def shape(self, node) -> tuple:
        """The shape of an expression (row convention), or ModelFileError at the node."""
        shape = self._shape(node)
        self.node_shapes[id(node)] = shape
        return shape

    def _shape(self, node) -> tuple:
        if isinstance(node, Num):
            if not math.isfinite(float(node.value)):
                raise self.fail(
                    "this number is too large for a float (at most about 1.8e308)", node
                )
            return ()
        if isinstance(node, Name):
            return self.name(node)
        if isinstance(node, Step):
            return self.step(node)
        if isinstance(node, SumOverT):
            raise self.fail("sum(t, ...) belongs to the loss line only: L = sum(t, ...)", node)
        if isinstance(node, Neg):
            return self.shape(node.arg)
        if isinstance(node, Transposed):
            shape = self.resolve(self.shape(node.arg))
            return shape[::-1]
        if isinstance(node, Power):
            if abs(node.exponent) > MAX_POWER:
                raise self.fail(f"an exponent is at most {MAX_POWER}", node)
            if node.exponent == 0:
                raise self.fail(
                    "X ** 0 is 1 in every entry, whatever X is: write the number 1", node
                )
            return self.shape(node.arg)
        if isinstance(node, Binary):
            return self.binary(node)
        if isinstance(node, Call):
            return self.call(node)
        raise self.fail(f"cannot read {node!r}", node)

    def name(self, node: Name) -> tuple:
        name = node.name
        if name in self.sizes:
            return ()
        d = self.r.declarations.get(name)
        if d is not None:
            if d.per_step:
                raise self.fail(f"{name} has a slice per step: write {name}[t]", node)
            self.used.add(name)
            return d.shape
        if name in self.r.rules:
            raise self.fail(
                f"{name} is a per-step quantity: write {name}[t] (or {name}[t-1])", node
            )
        raise self.fail(self.r.unknown(name), node)

    def step(self, node: Step, *, ids: bool = False) -> tuple:
        name, index = node.name, node.index
        d = self.r.declarations.get(name)
        if d is not None:
            if not d.per_step:
                raise self.fail(f"{name} has no step: write {name}", node)
            if index != Index("t", 0):
                raise self.fail(
                    f"{name} is an input: it is read at the step being computed, {name}[t] "
                    f"(a state of the model is what can be read at [t-1])",
                    node,
                )
            if d.integer and not ids:
                raise self.fail(
                    f"{name}[t] holds integer ids: write onehot({name}[t]) for their one-hot "
                    f"rows, or cross_entropy(o[t], {name}[t]) for a loss",
                    node,
                )
            self.used.add(name)
            return d.shape
        if name not in self.r.rules:
            raise self.fail(self.r.unknown(name), node)
        if index == Index("t", 0):
            if name not in self.shapes:  # read before its rule: only an order problem
                raise self.fail(f"{name}[t] is used before it is computed", node)
            self.read_now.add(name)
            return self.shapes[name]
        if index == Index("t", -1):
            if name not in self.r.boundaries:
                raise self.fail(
                    f"{name}[t-1] reads {name} before step 1, but {name} has no boundary: add "
                    f"{name}[0] = {name}0 (a declared input) or {name}[0] = 0",
                    node,
                )
            self.recurrent.add(name)
            return self.state_shapes[name]
        if index.anchor == "t" and index.offset < -1:
            why = f"{name}[t{index.offset:+d}] reaches back more than one step"
            raise self.fail(
                f"{why}: a state is read at [t-1]; keep the older value as a state of its own "
                f"(e.g. {name}_prev[t] = {name}[t-1] with {name}_prev[0] = ...)",
                node,
            )
        raise self.fail(
            f"{name}[{index.text()}]: a rule reads quantities at [t] or states at [t-1] only",
            node,
        )

    def binary(self, node: Binary) -> tuple:
        left, right = self.shape(node.left), self.shape(node.right)
        a, b = self.resolve(left), self.resolve(right)
        if node.op == "@":
            if len(a) != 2 or len(b) != 2:
                raise self.fail(
                    f"@ multiplies two matrices, not {self.show(a)} by {self.show(b)} (a "
                    "number multiplies with *)",
                    node,
                )
            if not self.unify((a[1],), (b[0],)):
                raise self.fail(
                    f"this product does not multiply: {self.show(a)} @ {self.show(b)} (the "
                    f"inner sizes {a[1]} and {b[0]} differ)",
                    node,
                )
            return (a[0], b[1])
        return self.broadcast(a, b, node)

    def broadcast(self, a: tuple, b: tuple, node) -> tuple:
        if a == () or b == ():
            return a or b
        if len(a) == len(b):
            if self.unify(a, b):
                return self.resolve(a)
        elif len(a) == 1 and len(b) == 2:
            if self.unify(a, b[1:]):
                return self.resolve(b)
        elif len(a) == 2 and len(b) == 1:
            if self.unify(a[1:], b):
                return self.resolve(a)
        op = {"+": "added to", "-": "subtracted from", "*": "multiplied by", "/": "divided by"}
        what = op.get(getattr(node, "op", ""), "combined with")
        raise self.fail(
            f"{self.show(a)} cannot be {what} {self.show(b)} entry by entry: the shapes do not "
            "broadcast (a bias is (k,), added to every row of an (N, k) matrix)",
            getattr(node, "right", node),
        )

    def call(self, node: Call) -> tuple:
        name, args = node.function, node.args
        if name not in FUNCTIONS:
            close = difflib.get_close_matches(name, list(FUNCTIONS), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise self.fail(
                f"unknown function {name!r}{hint} (a model file has {', '.join(FUNCTIONS)})", node
            )
        if name in ("colblock", "rowblock"):
            return self.block(node)
        if name in ("hstack", "vstack"):
            return self.stack(node)
        if name == "cross_entropy":
            return self.cross_entropy(node)
        if len(args) != 1:
            raise self.fail(f"{name} takes one argument: {name}{FUNCTIONS[name]}", node)
        (arg,) = args
        if name == "onehot":
            if not isinstance(arg, Step) or not self._ids(arg):
                raise self.fail("onehot takes integer ids: onehot(x[t]) for x[t]: (N,) in D", node)
            self.step(arg, ids=True)
            return ("N", self.r.declarations[arg.name].bound)
        shape = self.resolve(self.shape(arg))
        if name in ELEMENTWISE:
            return shape
        if name == "softmax":
            if len(shape) != 2:
                raise self.fail(
                    f"softmax acts on each row of a matrix, not {self.show(shape)}", node
                )
            return shape
        if name == "sum":
            return ()
        if name == "sum_rows":
            if len(shape) != 2:
                raise self.fail(f"sum_rows sums the rows of a matrix, not {self.show(shape)}", node)
            return shape[1:]
        raise self.fail(f"{name} cannot be used here", node)

    def _ids(self, node: Step) -> bool:
        d = self.r.declarations.get(node.name)
        return d is not None and d.integer

    def block(self, node: Call) -> tuple:
        name, args = node.function, node.args
        numbers = args[1:]
        if len(args) != 3 or not all(
            isinstance(a, Num) and float(a.value).is_integer() for a in numbers
        ):
            raise self.fail(f"{name} takes (X, k, n): block k of n equal blocks", node)
        k, n = (int(a.value) for a in numbers)
        if not 1 <= k <= n:
            raise self.fail(f"{name}(X, {k}, {n}): k is one of 1..{n}", node)
        shape = list(self.resolve(self.shape(args[0])))
        axis = -1 if name == "colblock" else 0
        if not shape or (axis == 0 and len(shape) != 2):
            raise self.fail(f"{name} takes a matrix, not {self.show(tuple(shape))}", node)
        dim = shape[axis]
        if isinstance(dim, _Unknown):
            if not self.tolerant:
                raise self.fail(f"{name} of a quantity whose shape is not known yet", node)
            shape[axis] = _Unknown("block")
            return tuple(shape)
        try:
            shape[axis] = sizes.share(dim, n)
        except InvalidArgumentError:
            raise self.fail(
                f"{name}(X, {k}, {n}): the size {dim} does not split into {n} equal blocks",
                node,
            ) from None
        return tuple(shape)

    def stack(self, node: Call) -> tuple:
        name, args = node.function, node.args
        if len(args) < 2:
            raise self.fail(f"{name} puts two or more blocks together", node)
        shapes = [self.resolve(self.shape(a)) for a in args]
        axis = 1 if name == "hstack" else 0
        if any(len(s) != 2 for s in shapes):
            raise self.fail(
                f"{name} puts matrices together, not {', '.join(map(self.show, shapes))}", node
            )
        other = 1 - axis
        for s, arg in zip(shapes[1:], args[1:]):
            if not self.unify((shapes[0][other],), (s[other],)):
                what = "rows" if name == "hstack" else "columns"
                raise self.fail(
                    f"{name} needs blocks with the same number of {what}: "
                    f"{self.show(shapes[0])} and {self.show(s)}",
                    arg,
                )
        widths = [self.resolve_dim(s[axis]) for s in shapes]
        if any(isinstance(w, _Unknown) for w in widths):
            if not self.tolerant:
                raise self.fail(f"{name} of a quantity whose shape is not known yet", node)
            total = _Unknown("width")
        else:
            total = sizes.plus(*widths)
        out = [self.resolve_dim(shapes[0][other])] * 2
        out[axis] = total
        return tuple(out)

    def cross_entropy(self, node: Call) -> tuple:
        if len(node.args) != 2:
            raise self.fail("cross_entropy takes (o, y): logits and integer class ids", node)
        logits, labels = node.args
        if isinstance(labels, Call) and labels.function == "onehot" and len(labels.args) == 1:
            labels = labels.args[0]
        if not isinstance(labels, Step) or not self._ids(labels):
            raise self.fail(
                "cross_entropy's second argument is integer class ids, y[t] declared "
                "y[t]: (N,) in C",
                labels,
            )
        self.step(labels, ids=True)
        shape = self.resolve(self.shape(logits))
        bound = self.r.declarations[labels.name].bound
        if len(shape) != 2 or not self.unify(shape, ("N", bound)):
            raise self.fail(
                f"cross_entropy takes logits of shape (N, {bound}) for ids in 0..{bound}-1, "
                f"not {self.show(shape)}",
                logits,
            )
        return ()


class _Inferring(_Scope):
    """A scope whose size names `_S1`, `_S2`, ... are unknowns: comparing two sizes solves for
    an unknown (sizes are sums of multiples of names, so each comparison is a linear
    equation), and a block of an unknown size makes it a multiple of a new one."""

    def __init__(self, reader: _Reader) -> None:
        super().__init__(reader)
        self.solved: dict[str, str] = {}
        self.fresh = 0

    def unknowns(self) -> list[str]:
        found = set()
        for d in self.r.declarations.values():
            for dim in (*d.shape, *([d.bound] if d.bound is not None else [])):
                found.update(n for n in sizes.names_in(dim) if UNKNOWN_SIZE.fullmatch(n))
        return sorted(found, key=lambda n: int(n[2:]))

    def resolve_dim(self, d):
        d = super().resolve_dim(d)
        if isinstance(d, _Unknown) or not isinstance(d, (str, int)):
            return d
        for _ in range(64):
            counts, constant = sizes.terms(d)
            if not any(n in self.solved for n in counts):
                return sizes.canonical(d) if isinstance(d, str) else d
            total: dict[str, int] = {}
            for name, k in counts.items():
                inner, c = sizes.terms(self.solved[name]) if name in self.solved else ({name: 1}, 0)
                constant += k * c
                for n, v in inner.items():
                    total[n] = total.get(n, 0) + k * v
            d = sizes._text({n: v for n, v in total.items() if v}, constant)
        return d

    def unify(self, a: tuple, b: tuple) -> bool:
        a, b = self.resolve(a), self.resolve(b)
        if len(a) != len(b):
            return False
        for x, y in zip(a, b):
            x, y = self.resolve_dim(x), self.resolve_dim(y)
            if isinstance(x, _Unknown) or isinstance(y, _Unknown):
                if not super().unify((x,), (y,)):
                    return False
                continue
            if x != y and not self._solve(x, y):
                return False
        return True

    def _solve(self, x, y) -> bool:
        """x = y as a linear equation in the unknowns, solved for one of them."""
        cx, kx = sizes.terms(x)
        cy, ky = sizes.terms(y)
        diff = dict(cx)
        for name, k in cy.items():
            diff[name] = diff.get(name, 0) - k
        diff = {n: k for n, k in diff.items() if k}
        constant = kx - ky
        for name, k in sorted(diff.items(), key=lambda item: (abs(item[1]), item[0])):
            if not UNKNOWN_SIZE.fullmatch(name):
                continue
            # k * name + sum(rest) + constant = 0
            rest = {n: -v for n, v in diff.items() if n != name}
            if any(v % k for v in rest.values()) or constant % k:
                continue
            value = {n: v // k for n, v in rest.items() if v // k}
            const = -constant // k
            if const < 0 or any(v < 0 for v in value.values()) or not (value or const):
                continue
            if "N" in value or "T" in value:  # a feature size is never the batch's
                continue
            self.solved[name] = sizes._text(value, const)
            return True
        return False

    def block(self, node: Call) -> tuple:
        if node.function in ("colblock", "rowblock") and len(node.args) == 3:
            shape = list(self.resolve(self.shape(node.args[0])))
            axis = -1 if node.function == "colblock" else 0
            n = int(node.args[2].value) if isinstance(node.args[2], Num) else 1
            dim = shape[axis] if shape else None
            if isinstance(dim, str) and UNKNOWN_SIZE.fullmatch(dim):
                self.fresh += 1
                self.solved[dim] = sizes.times(n, f"_S{9000 + self.fresh}")
        return super().block(node)

    def name(self, node: Name) -> tuple:
        if UNKNOWN_SIZE.fullmatch(node.name):
            return ()
        return super().name(node)


def _walk(node):
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        if isinstance(n, Binary):
            stack += [n.left, n.right]
        elif isinstance(n, (Neg, Transposed, Power)):
            stack.append(n.arg)
        elif isinstance(n, SumOverT):
            stack.append(n.body)
        elif isinstance(n, Call):
            stack += list(n.args)


def _refs(node):
    return [n for n in _walk(node) if isinstance(n, (Name, Step))]


def _factors_of(node, numerators: list, denominators: list, sign: list) -> None:
    """A constant's factors (1 left out, a minus to `sign`): what multiplies into
    `numerators`, what divides into `denominators`."""
    if isinstance(node, Binary) and node.op in ("*", "/"):
        _factors_of(node.left, numerators, denominators, sign)
        into = (numerators, denominators) if node.op == "*" else (denominators, numerators)
        _factors_of(node.right, *into, sign)
    elif isinstance(node, Neg):
        sign[0] = -sign[0]
        _factors_of(node.arg, numerators, denominators, sign)
    elif not (isinstance(node, Num) and node.value == 1):
        numerators.append(node)


def shapes_of(model: ModelFile) -> Mapping[str, tuple]:
    """Every per-step quantity's shape and every input's (row convention)."""
    out = {d.name: d.shape for d in model.declarations}
    out.update(dict(model.shapes))
    return out
