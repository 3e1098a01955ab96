"""The reader of the plain formula language (docs/formula-language.md): a lark LALR grammar
with named terminals, so that a malformed line is reported with its line, its column, what was
expected there, and the line echoed with a caret. Text is never evaluated.
"""

from __future__ import annotations

from functools import lru_cache

from ..errors import SymbpttError
from .ast import (
    Binary,
    Call,
    Index,
    Name,
    Neg,
    Num,
    Over,
    Power,
    Rule,
    Step,
    SumOverT,
    Transposed,
)

__all__ = ["FormulaSyntaxError", "read_text", "parse_line", "GRAMMAR", "caret", "node", "index"]


class FormulaSyntaxError(SymbpttError):
    """A derivation that does not parse: where, what was expected, the line with a caret."""


#: The expressions of the language (shared with the model files' grammar, which has its own
#: rules); a derivation's rule has an expression on each side (`dh[t] = ...`, or a claim
#: between two expressions such as `jac(h[t+1], h[t]) = diag(1 - h[t+1]**2) @ W`).
EXPRESSIONS = r"""
target: NAME ("[" index "]")?
index: VAR (SIGN INT)? -> relative
     | INT             -> absolute
bound: VAR (SIGN INT)? -> relative
     | INT             -> absolute
?expr: expr PLUS term   -> add
     | expr MINUS term  -> sub
     | term
?term: term TIMES unary -> mul
     | term DIVIDE unary -> div
     | term MATMUL unary -> matmul
     | unary
?unary: MINUS unary -> neg
      | power
?power: postfix POW MINUS? INT -> pow
      | postfix
?postfix: postfix TRANSPOSE -> transpose
        | atom
?atom: NUMBER -> number
     | "sum" "(" INDEX_NAME "," expr ")" -> sum_t
     | "sum" "(" expr ")" -> sum_all
     | "sumover" "(" VAR "=" bound ".." bound "," expr ")" -> sum_over
     | "prodover" "(" VAR "=" bound ".." bound "," expr ")" -> prod_over
     | NAME "(" expr ("," expr)* ")" -> call
     | NAME "[" index "]" -> step
     | NAME -> name
     | "(" expr ")"
INDEX_NAME.2: /[tT](?![A-Za-z0-9_])/
VAR.2: /[A-Za-z](?![A-Za-z0-9_])/
NAME: /[A-Za-z_][A-Za-z0-9_]*/
NUMBER: /[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?/
INT: /[0-9]+/
SIGN: "+" | "-"
PLUS: "+"
MINUS: "-"
TIMES: "*"
DIVIDE: "/"
MATMUL: "@"
POW: "**"
TRANSPOSE: ".T"
%import common.WS_INLINE
%ignore WS_INLINE
"""
GRAMMAR = 'start: rule\nrule: expr "=" expr\n' + EXPRESSIONS


@lru_cache(maxsize=1)
def _parser():
    from lark import Lark

    return Lark(GRAMMAR, parser="lalr", maybe_placeholders=False, propagate_positions=True)


#: How the grammar's terminals read in an error message.
TERMINALS = {
    "NAME": "a name",
    "NUMBER": "a number",
    "INT": "a whole number",
    "INDEX_NAME": "t or T",
    "PLUS": "+",
    "MINUS": "-",
    "TIMES": "*",
    "DIVIDE": "/",
    "MATMUL": "@",
    "POW": "**",
    "TRANSPOSE": ".T",
    "LPAR": "(",
    "RPAR": ")",
    "LSQB": "[",
    "RSQB": "]",
    "EQUAL": "=",
    "COMMA": ",",
    "SIGN": "+ or -",
    "SUM": "sum",
    "$END": "the end of the line",
    "COLON": ":",
    "IN": "in",
}


def caret(line: str, column: int) -> str:
    """The line and a caret under `column` (1-based, in characters): tabs are expanded in
    both, so that the caret stands under its character whatever a terminal does with a tab."""
    before = line[: max(column - 1, 0)].expandtabs(8)
    return f"    {line.expandtabs(8)}\n    {' ' * len(before)}^"


def read_text(source: str) -> list[Rule]:
    """The rules of a text-format derivation (comments and blank lines skipped)."""
    rules = []
    for number, raw in enumerate(source.splitlines(), start=1):
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        tree = parse_line(_parser(), line, number)
        rules.append(_rule(tree, number, line.strip()))
    return rules


def parse_line(parser, line: str, number: int):
    """One line parsed by `parser` (a lark parser of this language or of an extension of it);
    FormulaSyntaxError with the line, the column, what was expected and a caret."""
    from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput

    try:
        return parser.parse(line)
    except UnexpectedInput as exc:
        column = getattr(exc, "column", 1) or 1
        expected = sorted(TERMINALS.get(t, t) for t in (getattr(exc, "expected", None) or []) if t)
        if isinstance(exc, UnexpectedCharacters):
            found = f"character {line[column - 1]!r}" if column <= len(line) else "?"
            expected = sorted(TERMINALS.get(t, t) for t in (exc.allowed or []))
        else:
            token = getattr(exc, "token", None)
            found = "the end of the line" if token is None or not str(token) else repr(str(token))
        want = f"; expected {', '.join(dict.fromkeys(expected))}" if expected else ""
        raise FormulaSyntaxError(
            f"line {number}, column {column}: unexpected {found}{want}\n{caret(line, column)}"
        ) from None
    except LarkError as exc:  # anything else the parser says is still a syntax error
        raise FormulaSyntaxError(f"line {number}: {exc}\n{caret(line, 1)}") from None


def _rule(tree, number: int, text: str) -> Rule:
    left, right = (_node(k) for k in tree.children[0].children)
    if isinstance(left, Name):
        return Rule(left.name, None, right, number, text)
    if isinstance(left, Step):
        if left.index.anchor not in (None, "t", "T"):  # dh[k] = ...: k is the rule's step
            left, right = (rename_step(n, left.index.anchor, "t") for n in (left, right))
        return Rule(left.name, left.index, right, number, text)
    return Rule("", None, right, number, text, lhs=left)


def rename_step(node, old: str, new: str):
    """The tree with the step letter `old` written `new` (a rule for dh[k] is the rule for
    dh[t]); a sum's or product's own letter equal to `new` is renamed first."""
    from dataclasses import fields, replace

    if isinstance(node, Index):
        return Index(new, node.offset) if node.anchor == old else node
    if isinstance(node, Over):
        if node.var == old:
            return node  # its own letter hides the rule's
        if node.var == new:
            fresh = next(c for c in "jiklmnpqsu" if c not in (old, new) and not _uses(node, c))
            node = replace(node, var=fresh, body=rename_step(node.body, new, fresh))
    if not hasattr(node, "__dataclass_fields__"):
        return node
    changes = {}
    for f in fields(node):
        value = getattr(node, f.name)
        if isinstance(value, tuple):
            changes[f.name] = tuple(rename_step(v, old, new) for v in value)
        elif hasattr(value, "__dataclass_fields__"):
            changes[f.name] = rename_step(value, old, new)
    return replace(node, **changes) if changes else node


def _uses(node, letter: str) -> bool:
    from dataclasses import fields

    if isinstance(node, Index):
        return node.anchor == letter
    if isinstance(node, Over) and node.var == letter:
        return True
    if not hasattr(node, "__dataclass_fields__"):
        return False
    for f in fields(node):
        value = getattr(node, f.name)
        items = value if isinstance(value, tuple) else (value,)
        if any(_uses(v, letter) for v in items):
            return True
    return False


def node(tree):
    """The expression tree of a parsed expression (for readers that extend the grammar)."""
    return _node(tree)


def index(tree):
    """The Index of a parsed `[...]`."""
    return _index(tree)


def _index(tree) -> Index:
    if tree.data == "absolute":
        return Index(None, int(tree.children[0]))
    anchor = str(tree.children[0])
    if len(tree.children) == 1:
        return Index(anchor, 0)
    sign, amount = str(tree.children[1]), int(tree.children[2])
    return Index(anchor, amount if sign == "+" else -amount)


def _column(tree) -> int:
    from lark import Token

    if isinstance(tree, Token):
        return tree.column or 0
    meta = getattr(tree, "meta", None)
    return getattr(meta, "column", 0) if meta is not None and not meta.empty else 0


def _node(tree):
    """The small tree of one parsed expression, each node with its column."""
    from lark import Token

    at = _column(tree)
    if isinstance(tree, Token):  # a bare number or name that the grammar inlined
        return Num(float(tree), at) if tree.type == "NUMBER" else Name(str(tree), at)
    kind, kids = tree.data, tree.children
    if kind == "number":
        return Num(float(kids[0]), at)
    if kind == "name":
        return Name(str(kids[0]), at)
    if kind == "step":
        return Step(str(kids[0]), _index(kids[1]), at)
    if kind == "call":
        return Call(str(kids[0]), tuple(_node(k) for k in kids[1:]), at)
    if kind == "sum_all":
        return Call("sum", (_node(kids[0]),), at)
    if kind in ("sum_over", "prod_over"):
        var, lo, hi, body = kids
        return Over(kind[:-5], str(var), _index(lo), _index(hi), _node(body), at)
    if kind == "sum_t":
        if str(kids[0]) != "t":
            raise FormulaSyntaxError("sum(...) sums over t: write sum(t, ...)")
        return SumOverT(_node(kids[1]), at)
    if kind in ("add", "sub", "mul", "div", "matmul"):
        op = {"add": "+", "sub": "-", "mul": "*", "div": "/", "matmul": "@"}[kind]
        return Binary(op, _node(kids[0]), _node(kids[2]), at)
    if kind == "neg":
        return Neg(_node(kids[1]), at)
    if kind == "pow":
        exponent = int(kids[-1]) * (-1 if len(kids) == 4 else 1)
        return Power(_node(kids[0]), exponent, at)
    if kind == "transpose":
        return Transposed(_node(kids[0]), at)
    raise FormulaSyntaxError(f"unexpected {kind} in a formula")
