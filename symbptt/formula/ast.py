"""The rules a reader makes of a derivation: a small tree per right-hand side, shared by the
text and the LaTeX readers, and turned into matrix expressions (`build`) once the model and the
convention say what every name is.

Nothing here evaluates text: the readers build these nodes from a grammar's parse tree, and
`build` maps each node to a `MatExpr` operation from a fixed table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "Index",
    "Num",
    "Name",
    "Step",
    "Call",
    "Binary",
    "Neg",
    "Power",
    "Transposed",
    "SumOverT",
    "Over",
    "Rule",
    "Node",
]


@dataclass(frozen=True)
class Index:
    """A step: `anchor` "t" (the general step), "T" (the last), None (a fixed step), or the
    letter of a sum's or a product's own index (`k` in sumover(k=1..t, ...))."""

    anchor: str | None
    offset: int

    def text(self) -> str:
        if self.anchor is None:
            return str(self.offset)
        return self.anchor if self.offset == 0 else f"{self.anchor}{self.offset:+d}"


@dataclass(frozen=True)
class Num:
    value: float
    #: The column (1-based) where the node starts in its line, for error carets.
    at: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Name:
    name: str
    #: The column (1-based) where the node starts in its line, for error carets.
    at: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Step:
    """name[index]: a per-step quantity."""

    name: str
    index: Index
    #: The column (1-based) where the node starts in its line, for error carets.
    at: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Call:
    function: str
    args: tuple
    #: The column (1-based) where the node starts in its line, for error carets.
    at: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Binary:
    """`op` is "+", "-", "*" (elementwise or by a scalar), "/", "@" (matrix product)."""

    op: str
    left: object
    right: object
    #: The column (1-based) where the node starts in its line, for error carets.
    at: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Neg:
    arg: object
    #: The column (1-based) where the node starts in its line, for error carets.
    at: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Power:
    arg: object
    exponent: int
    #: The column (1-based) where the node starts in its line, for error carets.
    at: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Transposed:
    arg: object
    #: The column (1-based) where the node starts in its line, for error carets.
    at: int = field(default=0, compare=False)


@dataclass(frozen=True)
class SumOverT:
    """sum(t, body): the body summed over t = 1..T."""

    body: object
    #: The column (1-based) where the node starts in its line, for error carets.
    at: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Over:
    """sumover(k=lo..hi, body) or prodover(k=lo..hi, body): a sum or a product over another
    step index than t, its bounds steps themselves (1, t, t+1, T); empty when lo > hi."""

    op: str  # "sum" or "prod"
    var: str
    lo: Index
    hi: Index
    body: object
    #: The column (1-based) where the node starts in its line, for error carets.
    at: int = field(default=0, compare=False)


Node = Num | Name | Step | Call | Binary | Neg | Power | Transposed | SumOverT | Over


@dataclass(frozen=True)
class Rule:
    """One line `target = expr` of the user's derivation, where it was written."""

    target: str
    index: Index | None
    expr: object
    line: int
    text: str
    #: A claim between two expressions (`tanh'(a[t]) = 1 - h[t]**2`, a Jacobian written
    #: out): its left-hand side; `target` is then "" and names no quantity.
    lhs: object | None = None
    #: Written as a definition (`:=`, `\equiv`, "let X = ..."): it names, it claims nothing.
    naming: bool = False
    #: Of a chain `A = B = C` on one line: which member this rule is (1 for `A = B`, 2 for
    #: `A = C`); 0 for a line with one equation.
    member: int = field(default=0, compare=False)

    @property
    def label(self) -> str:
        if self.lhs is not None:
            return text_of(self.lhs)
        return self.target if self.index is None else f"{self.target}[{self.index.text()}]"

    @property
    def claim(self) -> bool:
        """Two expressions said to be equal (no quantity defined)."""
        return self.lhs is not None


_LEVEL = {"+": 1, "-": 1, "*": 2, "/": 2, "@": 2}


def text_of(node) -> str:
    """A tree written back in the formula language, with the brackets its precedence needs
    (so the text reads back as the same tree)."""
    if isinstance(node, Num):
        value = node.value
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    if isinstance(node, Name):
        return node.name
    if isinstance(node, Step):
        return f"{node.name}[{node.index.text()}]"
    if isinstance(node, Call):
        return f"{node.function}({', '.join(text_of(a) for a in node.args)})"
    if isinstance(node, SumOverT):
        return f"sum(t, {text_of(node.body)})"
    if isinstance(node, Over):
        return f"{node.op}over({node.var}={node.lo.text()}..{node.hi.text()}, {text_of(node.body)})"
    if isinstance(node, Binary):
        level = _LEVEL[node.op]
        left = _bracket(node.left, level, right=False)
        right = _bracket(node.right, level, right=True, op=node.op)
        return f"{left} {node.op} {right}"
    if isinstance(node, Neg):
        return f"-{_bracket(node.arg, 3, right=True)}"
    if isinstance(node, Power):
        exponent = f"-{-node.exponent}" if node.exponent < 0 else str(node.exponent)
        return f"{_bracket(node.arg, 5, right=False)}**{exponent}"
    if isinstance(node, Transposed):
        return f"{_bracket(node.arg, 5, right=False)}.T"
    raise TypeError(f"cannot write {node!r}")


def _level(node) -> int:
    if isinstance(node, Binary):
        return _LEVEL[node.op]
    if isinstance(node, Neg) or (isinstance(node, Num) and node.value < 0):
        return 3
    if isinstance(node, Power):
        return 4
    return 6


def _bracket(node, level: int, *, right: bool, op: str = "") -> str:
    """A child's text, bracketed when it binds more loosely than its parent's operator (or
    as loosely, on the right of an operator that does not associate: a - (b + c))."""
    text = text_of(node)
    inner = _level(node)
    if inner < level or (right and inner == level and op in ("-", "/", "@", "*")):
        return f"({text})"
    return text
