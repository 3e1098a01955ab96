"""The graph's labels in the documents' notation, as Graphviz HTML-like labels: h_1 with a real
subscript (`<I>h</I><SUB>1</SUB>`), W_h's copy at step 2 as W_h^(2), the elementwise product
⊙, the matrix product by juxtaposition, the transpose ⊤, a bold 1 for the vector of ones and
σ for the logistic sigmoid, as the LaTeX documents write them (`symbptt.derivation.printers`).
A gate's pre-activation `a_f` at step 1 is a_{f,1}. `html()` turns a label into HTML for the
interactive page (the same tags, lower case)."""

from __future__ import annotations

import re
from html import escape

from ..engine.matexpr import Indexed, MatExpr, MatMul, Subtract, Symbol, TextPrinter

__all__ = ["GraphPrinter", "name_label", "node_label", "html", "plain"]

#: Subscripts and superscripts in points, beside a base size: TeX's script size is 70 %.
_SCRIPT = 0.8

_GREEK = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "theta": "θ",
    "lambda": "λ", "mu": "μ", "sigma": "σ", "phi": "φ", "psi": "ψ", "omega": "ω",
    "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ", "Sigma": "Σ", "Phi": "Φ",
    "Psi": "Ψ", "Omega": "Ω",
}  # fmt: skip
_FUNCTIONS = {"sigmoid": "σ"}


def _letters(text: str) -> str:
    """A name's letters: one Latin letter in italic (a variable), Greek as Greek, a longer
    word upright (onehot, xc), as LaTeX sets \\mathrm."""
    if text in _GREEK:
        return _GREEK[text]
    if len(text) == 1 and text.isalpha():
        return f"<I>{escape(text)}</I>"
    return escape(text)


def _script(tag: str, text: str, size: float) -> str:
    return f'<{tag}><FONT POINT-SIZE="{size * _SCRIPT:g}">{text}</FONT></{tag}>'


def name_label(name: str, size: float, step: str | None = None, copy: str | None = None) -> str:
    """A model name (`W_h`, `h0`, `yhat`, `a_f`) in the notation, with the step of a per-step
    quantity joined to its subscript (a_{f,1}, h_1) and a copy's step as a superscript."""
    subscript = []
    if re.fullmatch(r"[A-Za-z]hat", name):
        head = escape(name[0]) + "\u0302"
        head = f"<I>{head}</I>"
    else:
        m = re.fullmatch(r"([A-Za-z]+)(\d+)", name)
        if m:
            name, number = m.group(1), m.group(2)
            subscript.append(number)
        if "_" in name:
            name, tail = name.split("_", 1)
            subscript.insert(0, ",".join(_letters(p) for p in tail.split("_")))
        head = _letters(name)
    if step is not None:
        subscript.append(escape(step))
    text = head
    if subscript:
        text += _script("SUB", ",".join(subscript), size)
    if copy is not None:
        text += _script("SUP", f"({escape(copy)})", size)
    return text


def node_label(name: str, expr: MatExpr | None, size: float) -> str:
    """A node of the unrolled graph: its matrix-form symbol (a_1, W_h), or for a weight's copy
    at step k (graph name `W_h^(k)`) the weight with the step as a superscript."""
    m = re.fullmatch(r"(.+)\^\((\d+)\)", name)
    if m:
        return name_label(m.group(1), size, copy=m.group(2))
    if isinstance(expr, Indexed):
        return name_label(expr.base, size, step=_step(expr))
    if isinstance(expr, Symbol):
        return name_label(expr.name, size)
    m = re.fullmatch(r"([A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*?)_(\d+)", name)
    if m:  # a per-step node the engine names base_step
        return name_label(m.group(1), size, step=m.group(2))
    if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
        return name_label(name, size)
    return escape(name)


def _step(node: Indexed) -> str:
    if node.anchor is None:
        return str(node.offset)
    return node.anchor if node.offset == 0 else f"{node.anchor}{node.offset:+d}"


class GraphPrinter(TextPrinter):
    """A local Jacobian (a VJP) as a Graphviz HTML-like label; the gradient the VJP receives
    is the symbol named δ."""

    operators = {
        **TextPrinter.operators,
        Subtract: "\u2212",
        MatMul: "",
    }

    def __init__(self, size: float) -> None:
        self.size = size

    def _print_Symbol(self, node):
        if node.name == "δ":
            return "<I>δ</I>"
        if node.adjoint:
            return f"dL/d{name_label(node.name[1:], self.size)}"
        return name_label(node.name, self.size)

    def _print_Indexed(self, node):
        label = name_label(node.base[1:] if node.adjoint else node.base, self.size, _step(node))
        return f"dL/d{label}" if node.adjoint else label

    def _print_Constant(self, node):
        return escape(super()._print_Constant(node).replace("-", "\u2212"))

    def _print_Function(self, node, arg):
        return f"{_FUNCTIONS.get(node.name, escape(node.name))}({arg})"

    def _print_Rows(self, node, table, ids):
        return f"{self._atom(node.table, table)}({ids})"

    def _print_Block(self, node, arg):
        side = "cols" if node.axis == -1 else "rows"
        if node.widths is not None:
            return f"[{arg}]{_script('SUB', f'{side} part {node.part + 1}', self.size)}"
        where = f"{side} {node.part + 1}/{node.parts}"
        return f"[{arg}]{_script('SUB', where, self.size)}"

    def _print_Blocks(self, node, *items):
        texts = iter(items)
        parts = ["<B>0</B>" if i is None else next(texts) for i in node.items]
        return f"[{('  ' if node.axis == -1 else '; ').join(parts)}]"

    def _print_Transpose(self, node, arg):
        return f"{self._atom(node.arg, arg)}{_script('SUP', '⊤', self.size)}"

    def _binary(self, node, left, right):
        if self._brackets(node.left, node, right_operand=False):
            left = f"({left})"
        if self._brackets(node.right, node, right_operand=True):
            right = f"({right})"
        op = self._operator(node)
        return f"{left} {op} {right}" if op else f"{left} {right}"

    _print_Add = _print_Subtract = _print_Multiply = _print_Divide = _print_MatMul = _binary

    def _ones(self, transposed: bool) -> str:
        return "<B>1</B>" + (_script("SUP", "⊤", self.size) if transposed else "")

    def _print_Sum(self, node, arg):
        arg = self._matmul_operand(node.arg, arg)
        if node.axis == 0 or (node.axis is None and node.arg.ndim == 1):
            return f"{self._ones(True)} {arg}"
        if node.axis == 1:
            return f"{arg} {self._ones(False)}"
        return f"{self._ones(True)} {arg} {self._ones(False)}"

    def _print_RepeatRows(self, node, row):
        return f"{self._ones(False)} {self._matmul_operand(node.arg, row)}"

    def _print_RepeatCols(self, node, col):
        return f"{self._matmul_operand(node.arg, col)} {self._ones(True)}"


def html(label: str) -> str:
    """A Graphviz HTML-like label as HTML (for the interactive page): the font sizes dropped,
    the tags in lower case."""
    label = re.sub(r"</?FONT[^>]*>", "", label)
    return re.sub(r"</?(?:SUB|SUP|I|B)>", lambda m: m.group(0).lower(), label)


def plain(label: str) -> str:
    """A label's text without its markup (the characters a reader sees, for tests and titles)."""
    from html import unescape

    return unescape(re.sub(r"<[^>]+>", "", label))
