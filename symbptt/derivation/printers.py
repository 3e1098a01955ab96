"""Printers of matrix-form formulas: the plain formula language and LaTeX.

One printer class per format over the same `MatExpr` trees, SymPy style (`_print_<Node>`);
settings (the reader's names for the model's symbols, the index letter, truncation) are given
once. Both subclass `matexpr.TextPrinter` and keep its bracketing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..engine.matexpr import (
    Add,
    Divide,
    Indexed,
    MatExpr,
    MatMul,
    Multiply,
    Subtract,
    Sum,
    Symbol,
    TextPrinter,
)
from ..errors import InvalidArgumentError

__all__ = ["FormulaPrinter", "LatexPrinter", "latex_name", "index_text"]


def index_text(node: Indexed, letter: str = "t") -> str:
    """`t-1`, `T+1`, `1`: the step of a per-step symbol (`letter` for the general step)."""
    if node.anchor is None:
        return str(node.offset)
    anchor = letter if node.anchor == "t" else node.anchor
    return anchor if node.offset == 0 else f"{anchor}{node.offset:+d}"


class _Named(TextPrinter):
    def __init__(self, names: Mapping[str, str] | None = None, letter: str = "t") -> None:
        self.names = dict(names or {})
        self.letter = letter

    def name(self, base: str) -> str:
        """The reader's name of a model symbol."""
        return self.names.get(base, base)

    def rule(self, target: MatExpr, expr: MatExpr, *, summed: bool = False, eq: str = " = ") -> str:
        """`target = expr` in this format; `summed`: the right-hand side summed over t."""
        body = self.doprint(expr)
        return f"{self.doprint(target)}{eq}{self.summation(body) if summed else body}"

    def summation(self, body: str) -> str:
        return f"sum(t, {body})"

    def name_of(self, node: Symbol) -> str:
        """A symbol's printed name: an adjoint `dX` (dL/dX) follows X's name."""
        base = node.base if isinstance(node, Indexed) else node.name
        return "d" + self.name(base[1:]) if node.adjoint else self.name(base)


class FormulaPrinter(_Named):
    """The plain formula language (docs/formula-language.md): `@`, `*`, `.T`, `**2`,
    `sum_rows(...)`, `onehot(y[t])`, `name[t-1]`; ASCII only."""

    operators = {
        Add: "+",
        Subtract: "-",
        Multiply: "*",
        Divide: "/",
        MatMul: "@",
        "scalar product": "*",
        "scalar quotient": "/",
    }

    def _print_Symbol(self, node):
        return self.name_of(node)

    def _print_Indexed(self, node):
        return f"{self.name_of(node)}[{index_text(node, self.letter)}]"

    def _print_Transpose(self, node, arg):
        return f"{self._atom(node.arg, arg)}.T"

    def _print_Multiply(self, node, left, right):
        if node.left is node.right:  # X * X as X**2, X bracketed unless it is an atom
            return f"{self._power_base(node.left, left)}**2"
        return self._binary(node, left, right)

    def _power_base(self, child: MatExpr, text: str) -> str:
        """The base of `**`: an atom as it is; anything else, a square among them (the
        language has no X**2**2), in brackets."""
        atom = self._binding(child) == 3 and not _square(child)
        return text if atom else f"({text})"

    def _print_Sum(self, node, arg):
        if node.axis is None:
            return f"sum_all({arg})"
        return f"sum_rows({arg})" if node.axis == 0 else f"sum_cols({arg})"

    def _print_OneHot(self, node, ids):
        return f"onehot({ids})"

    def _print_RepeatRows(self, node, row):
        raise InvalidArgumentError(
            "the formula language has no way to repeat a row for each example (the "
            "derivative of sum_rows(X) needs one)"
        )

    _print_RepeatCols = _print_RepeatRows

    def _binding(self, node: MatExpr) -> int:
        if _square(node):
            return 3  # X**2 (or (X)**2) binds tighter than any operator of two operands
        if isinstance(node, Sum):
            return 3  # sum_rows(...) is a function call
        return super()._binding(node)


def _square(node: MatExpr) -> bool:
    """A self-product X * X, which the formula language writes X**2."""
    return isinstance(node, Multiply) and node.left is node.right


class LatexPrinter(_Named):
    """LaTeX math: juxtaposition for the matrix product, `\\odot` for the elementwise one,
    `^\\top`, and total derivatives written `dL/dX` with an upright d (partial ones, with a
    curly d, belong to the text around them)."""

    operators = {
        Add: "+",
        Subtract: "-",
        Multiply: r"\odot",
        Divide: r"\oslash",
        MatMul: "",
        "scalar product": r"\,",
        "scalar quotient": "/",
    }

    def __init__(
        self,
        names: Mapping[str, str] | None = None,
        letter: str = "t",
        *,
        truncated: bool = False,
        delta: bool = False,
        initial: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(names, letter)
        self.truncated = truncated
        #: The initial states' inputs and their states ({"h0": "h"}): with `delta`, dL/dh0
        #: is delta^h_0, the state's adjoint at step 0.
        self.initial = dict(initial or {})
        #: `--notation delta`: a per-step quantity's adjoint dL/dX_t written delta^X_t, as many
        #: lecture notes do (a parameter's gradient keeps dL/dW).
        self.delta = delta

    def summation(self, body: str) -> str:
        return rf"\sum_{{t=1}}^{{T}} {body}"

    def at(self, letter: str, *, truncated: bool | None = None) -> LatexPrinter:
        """This printer (names, notation) with another index letter."""
        return LatexPrinter(
            self.names,
            letter,
            truncated=self.truncated if truncated is None else truncated,
            delta=self.delta,
            initial=self.initial,
        )

    def symbol(self, base: str) -> str:
        """A model name in LaTeX: `W_h` -> `W_{h}`, `h0` -> `h_{0}`, `yhat` -> `\\hat{y}`."""
        return latex_name(self.name(base))

    def indexed(self, base: str, index: str) -> str:
        inner = self.symbol(base)
        grouped = re.fullmatch(r"([A-Za-z]|\\[A-Za-z]+)_\{([^{}]*)\}", inner)
        if grouped:  # the gate's a_n at step t: a_{n,t}
            return f"{grouped.group(1)}_{{{grouped.group(2)},{index}}}"
        if "_" in inner:  # any other subscripted name at step t: (X_{..})_{t}
            inner = "{" + inner + "}"
        return f"{inner}_{{{index}}}"

    def _print_Symbol(self, node):
        if node.adjoint:  # a gradient: dW_h
            name = node.name[1:]
            if self.delta and name in self.initial:  # dL/dh_0, the state's at step 0
                return self.adjoint(self.initial[name], "0")
            return self.total(self.symbol(name))
        return self.symbol(node.name)

    def total(self, of: str) -> str:
        return rf"\frac{{\mathrm{{d}}L}}{{\mathrm{{d}}{of}}}"

    def adjoint(self, base: str, index: str) -> str:
        """dL/dX_t of a per-step quantity X at step `index`: the total derivative, or with
        `delta` the lecture notes' delta^X_t (a gate's a_n: delta^{a_n}_t)."""
        if self.delta:
            return rf"\delta^{{{self.symbol(base)}}}_{{{index}}}"
        return self.total(self.indexed(base, index))

    def _print_Indexed(self, node):
        index = index_text(node, self.letter)
        if node.adjoint:
            if self.truncated:  # the share of loss term s: a K-step truncated adjoint
                return rf"\bar{{{self.symbol(node.base[1:])}}}^{{(s)}}_{{{index}}}"
            return self.adjoint(node.base[1:], index)
        return self.indexed(node.base, index)

    def _print_Constant(self, node):
        value = node.value
        if hasattr(value, "denominator") and value.denominator != 1:
            return rf"\tfrac{{{value.numerator}}}{{{value.denominator}}}"
        return super()._print_Constant(node)

    def _print_Function(self, node, arg):
        known = {"tanh": r"\tanh", "exp": r"\exp", "log": r"\log", "sigmoid": r"\sigma"}
        head = known.get(node.name, rf"\operatorname{{{node.name}}}")
        return rf"{head}\left({arg}\right)"

    def _print_OneHot(self, node, ids):
        return rf"\operatorname{{onehot}}\left({ids}\right)"

    def _print_Block(self, node, arg):
        """Block k of n of the columns (rows): [X]_{k/n}, explained in the document; a part of
        a concatenation by its range: [X]_{cols H+1..D+H}."""
        side = "cols" if node.axis == -1 else "rows"
        if node.widths is not None:
            from ..models import sizes

            before = sizes.plus(0, *node.widths[: node.part])
            first = sizes.plus(before, 1)
            last = sizes.plus(before, node.widths[node.part])
            where = f"{_size_tex(first)}..{_size_tex(last)}"
            return rf"\left[{arg}\right]_{{\mathrm{{{side}}}\,{where}}}"
        return rf"\left[{arg}\right]_{{\mathrm{{{side}}}\,{node.part + 1}/{node.parts}}}"

    def _print_Blocks(self, node, *items):
        texts = iter(items)
        shown = (r"\mathbf{0}" if i is None else next(texts) for i in node.items)
        parts = [rf"\displaystyle {p}" for p in shown]  # full-size fractions in the blocks
        joint = " & " if node.axis == -1 else r" \\ "
        return rf"\begin{{bmatrix}} {joint.join(parts)} \end{{bmatrix}}"

    def _print_Transpose(self, node, arg):
        return f"{self._atom(node.arg, arg)}^{{\\top}}"

    def _print_Divide(self, node, left, right):
        if node.left.shape == () and node.right.shape == ():
            return rf"\frac{{{left}}}{{{right}}}"
        return self._binary(node, left, right)

    def _binary(self, node, left, right):
        if self._brackets(node.left, node, right_operand=False):
            left = rf"\left({left}\right)"
        if self._brackets(node.right, node, right_operand=True):
            right = rf"\left({right}\right)"
        op = self._operator(node)
        return f"{left} {op} {right}" if op else f"{left}\\,{right}"

    _print_Add = _print_Subtract = _print_Multiply = _print_MatMul = _binary

    def _binding(self, node: MatExpr) -> int:
        if isinstance(node, Divide) and node.left.shape == () and node.right.shape == ():
            return 3  # \frac{1}{N T} reads as one symbol
        return super()._binding(node)

    def _print_Sum(self, node, arg):
        arg = self._matmul_operand(node.arg, arg)
        if node.axis is None:
            return rf"\mathbf{{1}}^{{\top}} {arg}\, \mathbf{{1}}"
        if node.axis == 0:
            return rf"\mathbf{{1}}^{{\top}} {arg}"
        return rf"{arg}\, \mathbf{{1}}"

    def _print_RepeatRows(self, node, row):
        return rf"\mathbf{{1}}\, {self._matmul_operand(node.arg, row)}"

    def _print_RepeatCols(self, node, col):
        return rf"{self._matmul_operand(node.arg, col)}\, \mathbf{{1}}^{{\top}}"

    def _atom(self, child, text):
        return text if self._binding(child) == 3 else rf"\left({text}\right)"

    def _matmul_operand(self, child, text):
        atom = self._binding(child) == 3
        return text if atom or isinstance(child, MatMul) else rf"\left({text}\right)"


def _size_tex(dim) -> str:
    return str(dim).replace("+", " + ")


def latex_name(name: str) -> str:
    """A model name as LaTeX: a trailing number or `_suffix` becomes a subscript, `yhat`
    (any `<letter>hat`) a hat; other names are printed as they are (validated identifiers)."""
    if name == "yhat" or (len(name) == 4 and name.endswith("hat")):
        return rf"\hat{{{name[0]}}}"
    m = re.fullmatch(r"([A-Za-z]+)(\d+)", name)
    if m:
        return f"{_letters(m.group(1))}_{{{m.group(2)}}}"
    if "_" in name:
        head, tail = name.split("_", 1)
        return f"{_letters(head)}_{{{_letters(tail.replace('_', ','))}}}"
    return _letters(name)


_GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "theta", "lambda", "mu", "sigma", "phi",
    "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Sigma", "Phi", "Psi", "Omega",
}  # fmt: skip


def _letters(text: str) -> str:
    if text in _GREEK:
        return "\\" + text
    return text if len(text) == 1 or text.isdigit() else rf"\mathrm{{{text}}}"
