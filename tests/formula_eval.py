"""An independent evaluator of symbptt's formula language (docs/formula-language.md).

Test helper that deliberately shares no code with symbptt (pure NumPy): a tokenizer, a
recursive-descent parser building a small AST, a static check of names, functions and indices,
and an evaluator that runs the rules the way the language defines them:

* boundary lines (a fixed index: ``h[0] = h0``, ``da[T+1] = 0``): the model's before the
  forward sweep, the adjoints' before the backward sweep; a scalar fills the whole step;
* per-step model lines (``a[t] = ...``) in file order for t = 1..T;
* per-step adjoint lines (``da[t] = ...``) in file order for t = T..1;
* un-indexed gradient lines (``dW_h = sum(t, ...)``, ``dh0 = da[1] @ W_h.T``) in file order,
  after the backward sweep.

Reading a step nothing defined (an adjoint at T+1 without its boundary, ``h[0]`` without
``h[0] = ...``, a step the sweep has not reached) is an error, never an implicit zero.

    out = evaluate_text(text, arrays, dims, "column", names={"W_h": "W"})

``arrays`` are the model inputs in the ROW layout (x (T,N,D) float or (T,N) integer ids,
y (T,N), h0 (N,H) unless h0 is fixed, W_x (D,H), W_h (H,H), b (H,), V (H,C), c (C,)), keyed by
model name or by their name in the file. ``out`` holds every un-indexed target and every
per-step target stacked over t = 1..T, keyed as the file names them, always in the row layout
(column-convention results are transposed back), so they compare directly with a row-layout
reference. Every problem with the text raises ``FormulaError`` (a ``ValueError``) naming the
line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

__all__ = ["FormulaError", "evaluate_text", "parse_text"]


class FormulaError(ValueError):
    """A formula file that cannot be read or evaluated."""


# --------------------------------------------------------------------------- the AST


@dataclass(frozen=True)
class Index:
    base: str | None  # "t", "T", or None for a plain integer
    offset: int

    def __str__(self) -> str:
        if self.base is None:
            return str(self.offset)
        if self.offset == 0:
            return self.base
        return f"{self.base}{'+' if self.offset > 0 else '-'}{abs(self.offset)}"


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Ref:
    name: str
    index: Index | None


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple


@dataclass(frozen=True)
class SumT:
    body: object


@dataclass(frozen=True)
class BinOp:
    op: str
    left: object
    right: object


@dataclass(frozen=True)
class Neg:
    operand: object


@dataclass(frozen=True)
class Transpose:
    operand: object


@dataclass(frozen=True)
class Rule:
    line: int
    source: str
    name: str
    index: Index | None
    expr: object


# --------------------------------------------------------------------------- tokenizer

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r]+)
  | (?P<num>[0-9]+(?:\.[0-9]+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<tr>\.T(?![A-Za-z0-9_]))
  | (?P<op>\*\*|[-+*/@()\[\],=])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str  # "num", "name", "tr", "op"
    text: str
    col: int


def _tokenize(code: str, line: int) -> list[Token]:
    tokens, pos = [], 0
    while pos < len(code):
        m = _TOKEN.match(code, pos)
        if m is None:
            raise FormulaError(f"line {line}, column {pos + 1}: unexpected character {code[pos]!r}")
        if m.lastgroup != "ws":
            tokens.append(Token(m.lastgroup, m.group(), pos + 1))
        pos = m.end()
    return tokens


# --------------------------------------------------------------------------- parser


class _Parser:
    """rule = target "=" expr; precedence + - < * / @ < unary - < ** < .T, call, index."""

    def __init__(self, tokens: list[Token], line: int, source: str):
        self.tokens, self.pos, self.line, self.source = tokens, 0, line, source

    def _error(self, message: str) -> FormulaError:
        tok = self._peek()
        where = f"column {tok.col}" if tok else "end of line"
        return FormulaError(f"line {self.line}, {where}: {message}: {self.source.strip()}")

    def _peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _accept(self, text: str) -> bool:
        tok = self._peek()
        if tok is not None and tok.kind in ("op", "tr") and tok.text == text:
            self.pos += 1
            return True
        return False

    def _expect(self, text: str) -> None:
        if not self._accept(text):
            tok = self._peek()
            raise self._error(f"expected {text!r}, found {tok.text if tok else 'nothing'!r}")

    def _take(self, kind: str, what: str) -> Token:
        tok = self._peek()
        if tok is None or tok.kind != kind:
            raise self._error(f"expected {what}")
        self.pos += 1
        return tok

    def rule(self) -> Rule:
        name = self._take("name", "a target name").text
        index = self._index() if self._accept("[") else None
        self._expect("=")
        expr = self._expr()
        if self._peek() is not None:
            raise self._error(f"unexpected {self._peek().text!r}")
        return Rule(self.line, self.source.strip(), name, index, expr)

    def _index(self) -> Index:
        """index = ("t" | "T") [("+" | "-") INTEGER] | INTEGER, then "]"."""
        tok = self._peek()
        if tok is not None and tok.kind == "num" and "." not in tok.text:
            self.pos += 1
            result = Index(None, int(tok.text))
        elif tok is not None and tok.kind == "name" and tok.text in ("t", "T"):
            self.pos += 1
            offset = 0
            for sign in ("+", "-"):
                if self._accept(sign):
                    num = self._take("num", "an integer offset")
                    if "." in num.text:
                        raise self._error("an index offset must be an integer")
                    offset = int(num.text) if sign == "+" else -int(num.text)
                    break
            result = Index(tok.text, offset)
        else:
            raise self._error("an index is t, T, t+k, t-k, T+k, T-k or an integer")
        self._expect("]")
        return result

    def _expr(self):
        node = self._term()
        while True:
            for op in ("+", "-"):
                if self._accept(op):
                    node = BinOp(op, node, self._term())
                    break
            else:
                return node

    def _term(self):
        node = self._unary()
        while True:
            for op in ("*", "/", "@"):
                if self._accept(op):
                    node = BinOp(op, node, self._unary())
                    break
            else:
                return node

    def _unary(self):
        if self._accept("-"):
            return Neg(self._unary())
        return self._power()

    def _power(self):
        base = self._postfix()
        if self._accept("**"):
            return BinOp("**", base, self._unary())  # right-associative, as Python
        return base

    def _postfix(self):
        node = self._primary()
        while self._accept(".T"):
            node = Transpose(node)
        return node

    def _primary(self):
        tok = self._peek()
        if tok is None:
            raise self._error("expected an expression")
        if tok.kind == "num":
            self.pos += 1
            return Num(float(tok.text))
        if self._accept("("):
            node = self._expr()
            self._expect(")")
            return node
        if tok.kind == "name":
            self.pos += 1
            if self._accept("("):
                if tok.text == "sum":
                    var = self._take("name", "the summation variable t")
                    if var.text != "t":
                        raise FormulaError(
                            f"line {self.line}: sum sums over t only: sum(t, expr), not "
                            f"sum({var.text}, ...): {self.source.strip()}"
                        )
                    self._expect(",")
                    body = self._expr()
                    self._expect(")")
                    return SumT(body)
                args = [self._expr()]
                while self._accept(","):
                    args.append(self._expr())
                self._expect(")")
                return Call(tok.text, tuple(args))
            if self._accept("["):
                return Ref(tok.text, self._index())
            return Ref(tok.text, None)
        raise self._error(f"expected an expression, found {tok.text!r}")


def parse_text(text: str) -> list[Rule]:
    """Every rule of a formula file, in file order (comments and blank lines dropped)."""
    rules = []
    for number, raw in enumerate(text.splitlines(), start=1):
        code = raw.split("#", 1)[0]
        tokens = _tokenize(code, number)
        if tokens:
            rules.append(_Parser(tokens, number, code).rule())
    return rules


# --------------------------------------------------------------------------- names

_STEP_INPUTS = ("x", "y")  # per-step inputs, never targets
_DIMS = ("N", "T", "D", "H", "C")
_UNARY = ("tanh", "sigmoid", "relu", "step", "identity", "exp", "log", "softmax", "onehot")
_BLOCKS = ("colblock", "rowblock", "hstack", "vstack", "colpart", "rowpart")
_FUNCTIONS = (*_UNARY, *_BLOCKS, "sum_rows", "sum_cols", "sum", "sum_all")

#: Each model's per-step quantities and un-indexed inputs with their row-convention shapes, in
#: multiples of the dims ("4H": four times H), written from the models' definitions (the issue
#: texts), not read from symbptt.
_H = ("N", "H")
MODELS = {
    "vanilla": {
        "steps": {"a": _H, "h": _H, "o": ("N", "C"), "yhat": ("N", "C")},
        "globals": {
            "h0": _H,
            "W_x": ("D", "H"),
            "W_h": ("H", "H"),
            "b": ("H",),
            "V": ("H", "C"),
            "c": ("C",),
        },
    },
    "lstm": {
        "steps": {
            "a": ("N", "4H"),
            **{n: _H for n in ("a_i", "a_f", "a_o", "a_g", "i", "f", "o", "g", "c", "k", "h")},
            "s": ("N", "C"),
            "yhat": ("N", "C"),
        },
        "globals": {
            "h0": _H,
            "c0": _H,
            "W_x": ("D", "4H"),
            "W_h": ("H", "4H"),
            "b": ("4H",),
            "V": ("H", "C"),
            "b_y": ("C",),
        },
    },
    "gru": {
        "steps": {
            **{n: ("N", "3H") for n in ("u", "v", "a", "w")},
            **{n: _H for n in ("a_r", "a_z", "u_n", "v_n", "w_n", "a_n", "r", "z", "n", "q", "h")},
            "o": ("N", "C"),
            "yhat": ("N", "C"),
        },
        "globals": {
            "h0": _H,
            "W_x": ("D", "3H"),
            "W_h": ("H", "3H"),
            "b_x": ("3H",),
            "b_h": ("3H",),
            "V": ("H", "C"),
            "c": ("C",),
        },
    },
}
_ONEHOT_WIDTH = {"x": "D", "y": "C"}


@dataclass(frozen=True)
class _Role:
    kind: str  # "step_input", "step", "global", "dim", "adj_step", "adj_global"
    model: str  # the model name (for adjoints, of the variable differentiated)


def _size(dim, dims: dict) -> int:
    """A size written with names: 3, H, 4H, D+H, 2H+D+1."""
    if isinstance(dim, int):
        return dim
    total = 0
    for part in str(dim).replace(" ", "").split("+"):
        m = re.fullmatch(r"(\d*)\*?([A-Za-z_][A-Za-z0-9_]*)?", part)
        if m is None or not (m.group(1) or m.group(2)):
            raise FormulaError(f"cannot read the size {dim!r}")
        k = int(m.group(1)) if m.group(1) else 1
        total += k * (int(dims[m.group(2)]) if m.group(2) else 1)
    return total


class _Names:
    """File names <-> model roles, under a renaming model name -> file name.

    `model` names one of MODELS, or is a dict of the same form for any other model, with
    its per-step inputs: {"steps": ..., "globals": ..., "inputs": {name: shape, or
    ("ids", size) for integer ids}, "sizes": (...), "no_gradient": (...)}."""

    def __init__(self, names: dict[str, str] | None, model="vanilla"):
        names = dict(names or {})
        self.model = MODELS[model] if isinstance(model, str) else model
        self.step_inputs = tuple(self.model.get("inputs", {"x": ("N", "D"), "y": ("ids", "C")}))
        self.ids = {
            k: v[1]
            for k, v in self.model.get("inputs", {"y": ("ids", "C")}).items()
            if v and v[0] == "ids"
        }
        if "inputs" not in self.model:
            self.ids["x"] = "D"
        self.sizes = tuple(self.model.get("sizes", _DIMS))
        step_values, globals_ = tuple(self.model["steps"]), tuple(self.model["globals"])
        self.globals = globals_
        models = (*self.step_inputs, *step_values, *globals_)
        for model, file_name in names.items():
            if model not in models:
                raise FormulaError(f"names: {model!r} is not a model name (one of {models})")
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", file_name):
                raise FormulaError(f"names: {file_name!r} is not a name")
        self.file = {m: names.get(m, m) for m in models}
        self.roles: dict[str, _Role] = {}
        for kind, group in (("step_input", self.step_inputs), ("step", step_values)):
            for m in group:
                self._add(self.file[m], _Role(kind, m))
        for m in globals_:
            self._add(self.file[m], _Role("global", m))
        for d in dict.fromkeys((*_DIMS, *self.sizes)):
            self._add(d, _Role("dim", d))
        skip = (
            {"y", *self.model.get("no_gradient", ())}
            if "inputs" not in self.model
            else set(self.model.get("no_gradient", ()))
        )
        for m in models:
            if m not in skip and m not in (self.ids if "inputs" in self.model else ()):
                kind = "adj_global" if m in globals_ else "adj_step"
                self._add("d" + self.file[m], _Role(kind, m))

    def _add(self, name: str, role: _Role) -> None:
        if name in ("t", *_FUNCTIONS):
            raise FormulaError(f"names: {name!r} is reserved")
        if name in self.roles:
            raise FormulaError(f"names: {name!r} would name two things")
        self.roles[name] = role

    def role(self, name: str, rule: Rule) -> _Role:
        if name == "t":
            raise _rule_error(rule, "t is the step index; it appears only inside [...]")
        if name not in self.roles:
            raise _rule_error(rule, f"unknown name {name!r}")
        return self.roles[name]


def _rule_error(rule: Rule, message: str) -> FormulaError:
    return FormulaError(f"line {rule.line}: {message}: {rule.source}")


# --------------------------------------------------------------------------- static check


def _classify(rule: Rule, names: _Names) -> str:
    """'boundary', 'forward', 'backward' or 'final'; checks the target."""
    role = names.role(rule.name, rule)
    if rule.index is None:
        if role.kind != "adj_global":
            raise _rule_error(
                rule,
                f"an un-indexed target must be a gradient of h0 or a parameter, not {rule.name!r}",
            )
        return "final"
    if role.kind not in ("step", "adj_step"):
        raise _rule_error(rule, f"{rule.name!r} cannot be assigned per step")
    if rule.index.base == "t":
        if rule.index.offset != 0:
            raise _rule_error(rule, "a per-step rule defines NAME[t]; fixed indices are boundaries")
        return "forward" if role.kind == "step" else "backward"
    return "boundary"


def _check_expr(node, rule: Rule, names: _Names, t_bound: bool, in_sum: bool) -> None:
    if isinstance(node, Num):
        return
    if isinstance(node, Ref):
        role = names.role(node.name, rule)
        stepped = role.kind in ("step_input", "step", "adj_step")
        if stepped and node.index is None:
            raise _rule_error(rule, f"{node.name!r} is per step: write {node.name}[...]")
        if not stepped and node.index is not None:
            raise _rule_error(rule, f"{node.name!r} is not per step: it takes no index")
        if node.index is not None and node.index.base == "t" and not t_bound:
            raise _rule_error(
                rule, f"{node.name}[{node.index}] uses t outside a per-step rule or sum"
            )
        return
    if isinstance(node, SumT):
        if in_sum or t_bound:
            raise _rule_error(rule, "sum(t, ...) cannot appear where t is already bound")
        _check_expr(node.body, rule, names, True, True)
        return
    if isinstance(node, Call):
        if node.func not in _FUNCTIONS:
            raise _rule_error(rule, f"unknown function {node.func!r}")
        if node.func in ("colblock", "rowblock"):
            if len(node.args) != 3 or not all(isinstance(a, Num) for a in node.args[1:]):
                raise _rule_error(rule, f"{node.func} takes (X, k, n) with numbers k and n")
        elif node.func in ("colpart", "rowpart"):
            if len(node.args) < 4 or not isinstance(node.args[1], Num):
                raise _rule_error(rule, f"{node.func} takes (X, k, w_1, ..., w_n)")
            _check_expr(node.args[0], rule, names, t_bound, in_sum)
            return
        elif node.func in ("hstack", "vstack"):
            if not node.args:
                raise _rule_error(rule, f"{node.func} takes at least one block")
        elif len(node.args) != 1:
            raise _rule_error(rule, f"{node.func} takes one argument, not {len(node.args)}")
        if node.func == "onehot":
            arg = node.args[0]
            if not (isinstance(arg, Ref) and names.role(arg.name, rule).kind == "step_input"):
                raise _rule_error(rule, "onehot takes x[...] or y[...] (integer ids)")
        for arg in node.args:
            _check_expr(arg, rule, names, t_bound, in_sum)
        return
    if isinstance(node, BinOp):
        _check_expr(node.left, rule, names, t_bound, in_sum)
        _check_expr(node.right, rule, names, t_bound, in_sum)
        return
    if isinstance(node, (Neg, Transpose)):
        _check_expr(node.operand, rule, names, t_bound, in_sum)
        return
    raise AssertionError(node)  # pragma: no cover


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class _Beyond:
    """A model quantity of step T+1, which does not exist: read only where a zero adjoint of
    step T+1 multiplies it (`dc[t+1] * f[t+1]` at t = T)."""

    name: str
    shape: tuple[int, ...]


class _Evaluator:
    def __init__(self, names: _Names, arrays: dict, dims: dict, convention: str):
        self.names, self.column = names, convention == "column"
        self.dims = dims
        self.T = int(dims["T"])
        self.inputs: dict[str, np.ndarray] = {}  # by model name, in the convention's layout
        self.tokens = False
        custom = "inputs" in names.model
        for model in (*names.step_inputs, *names.globals):
            value = arrays.get(model, arrays.get(names.file[model]))
            if value is None:
                continue
            value = np.asarray(value)
            dense_step = model in names.step_inputs and model not in names.ids
            if not custom and model == "x" and np.issubdtype(value.dtype, np.integer):
                self.tokens = True
            elif (dense_step if custom else model == "x") and self.column:
                value = value.transpose(0, 2, 1)
            elif model in names.globals and self.column:
                value = value.reshape(-1, 1) if value.ndim == 1 else value.T
            if model in names.globals or (dense_step and not self.tokens):
                value = value.astype(float)
            self.inputs[model] = value
        self.steps: dict[str, dict[int, np.ndarray]] = {}  # by file name
        self.finals: dict[str, np.ndarray] = {}  # by file name

    # shapes, in the convention's layout
    def shape(self, model: str) -> tuple[int, ...]:
        d = self.dims
        inputs = {k: v for k, v in self.names.model.get("inputs", {"x": ("N", "D")}).items()}
        table = {**inputs, **self.names.model["steps"], **self.names.model["globals"]}
        row = tuple(_size(letter, d) for letter in table[model])
        if not self.column:
            return row
        return row + (1,) if len(row) == 1 else row[::-1]

    def _fit(self, value, name: str, rule: Rule, what: str) -> np.ndarray:
        role = self.names.roles[name]
        if role.model == "x" and self.tokens:
            raise _rule_error(rule, "x holds integer ids here: it has no gradient")
        shape = self.shape(role.model)
        value = np.asarray(value, dtype=float)
        if value.ndim == 0:
            return np.full(shape, float(value))
        if value.shape != shape:
            raise _rule_error(rule, f"{what} has shape {value.shape}, expected {shape}")
        return value

    def index(self, index: Index, t: int | None) -> int:
        if index.base is None:
            return index.offset
        return (t if index.base == "t" else self.T) + index.offset

    def _show(self, name: str, k: int) -> str:
        if k > self.T:
            return f"{name}[T+{k - self.T}]"
        return f"{name}[{k}]"

    def ref(self, node: Ref, rule: Rule, t: int | None):
        role = self.names.roles[node.name]
        if role.kind == "dim":
            return float(self.dims[node.name])
        if role.kind == "global":
            if role.model not in self.inputs:
                raise _rule_error(rule, f"no array was given for {node.name!r}")
            return self.inputs[role.model]
        if role.kind == "adj_global":
            if node.name not in self.finals:
                raise _rule_error(rule, f"{node.name} is used before its line")
            return self.finals[node.name]
        k = self.index(node.index, t)
        if role.kind == "step_input":
            if role.model not in self.inputs:
                raise _rule_error(rule, f"no array was given for {node.name!r}")
            if k == self.T + 1 and t == self.T and role.model not in self.names.ids:
                # like a model quantity of step T+1: only a zero adjoint may multiply it
                return _Beyond(self._show(node.name, k), self.inputs[role.model].shape[1:])
            if not 1 <= k <= self.T:
                raise _rule_error(rule, f"{self._show(node.name, k)} is outside steps 1..T")
            return self.inputs[role.model][k - 1]
        steps = self.steps.get(node.name, {})
        if k not in steps and role.kind == "step" and k == self.T + 1 and t == self.T:
            # Step T+1 does not exist: only a product with an adjoint that is 0 there may
            # read it (docs/formula-language.md), and that product is 0.
            return _Beyond(self._show(node.name, k), self.shape(role.model))
        if k not in steps:
            if role.kind == "adj_step" and k > self.T:
                raise _rule_error(
                    rule,
                    f"{self._show(node.name, k)} is used but no boundary line defines it "
                    f"(such as `{self._show(node.name, k)} = 0`)",
                )
            if not 1 <= k <= self.T:
                raise _rule_error(
                    rule, f"{self._show(node.name, k)} is used but no boundary line defines it"
                )
            raise _rule_error(rule, f"{self._show(node.name, k)} is used before it is computed")
        return steps[k]

    def eval(self, node, rule: Rule, t: int | None):
        if isinstance(node, Num):
            return node.value
        if isinstance(node, Ref):
            return self.ref(node, rule, t)
        if isinstance(node, SumT):
            total = 0.0
            for s in range(1, self.T + 1):
                total = total + self.eval(node.body, rule, s)
            return total
        if isinstance(node, Neg):
            value = self.eval(node.operand, rule, t)
            return value if isinstance(value, _Beyond) else -value
        if isinstance(node, Transpose):
            value = self.eval(node.operand, rule, t)
            if isinstance(value, _Beyond):
                return _Beyond(value.name, value.shape[::-1])
            return np.asarray(value).T
        if isinstance(node, BinOp):
            left, right = self.eval(node.left, rule, t), self.eval(node.right, rule, t)
            return self.binop(node.op, left, right, rule)
        if isinstance(node, Call):
            return self.call(node, rule, t)
        raise AssertionError(node)  # pragma: no cover

    def binop(self, op: str, left, right, rule: Rule):
        beyond = [x for x in (left, right) if isinstance(x, _Beyond)]
        if beyond:
            other = right if isinstance(left, _Beyond) else left
            if op in ("*", "@") and not isinstance(other, _Beyond) and not np.any(other):
                zero = np.zeros(beyond[0].shape)
                left = zero if isinstance(left, _Beyond) else left
                right = zero if isinstance(right, _Beyond) else right
            elif op in ("+", "-", "**", "*", "/"):
                return beyond[0]  # still a quantity of step T+1
            elif op == "@" and len(beyond) == 1:  # x[T+1] @ W: still of step T+1
                a = beyond[0].shape if isinstance(left, _Beyond) else np.shape(left)
                b = beyond[0].shape if isinstance(right, _Beyond) else np.shape(right)
                return _Beyond(beyond[0].name, tuple(a[:-1]) + tuple(b[1:]))
            else:
                raise _rule_error(rule, f"{beyond[0].name} does not exist")
        try:
            if op == "+":
                return left + right
            if op == "-":
                return left - right
            if op == "*":
                return left * right
            if op == "/":
                return left / right
            if op == "@":
                if np.ndim(left) == 0 or np.ndim(right) == 0:
                    raise _rule_error(rule, "@ multiplies matrices; a scalar factor takes *")
                return np.asarray(left) @ np.asarray(right)
            if op == "**":
                if np.ndim(right) != 0 or float(right) != int(right):
                    raise _rule_error(rule, "** takes an integer exponent")
                return np.asarray(left, dtype=float) ** int(right)
        except FormulaError:
            raise
        except ValueError as exc:
            raise _rule_error(rule, f"{op}: {exc}") from exc
        raise AssertionError(op)  # pragma: no cover

    def call(self, node: Call, rule: Rule, t: int | None):
        if node.func == "onehot":
            arg = node.args[0]
            ids = np.asarray(self.ref(arg, rule, t))
            width = _size(self.names.ids[self.names.roles[arg.name].model], self.dims)
            if not np.issubdtype(ids.dtype, np.integer) or ids.ndim != 1:
                raise _rule_error(rule, f"onehot needs a vector of integer ids, not {arg.name}")
            if ids.size and (ids.min() < 0 or ids.max() >= width):
                raise _rule_error(rule, f"onehot: an id of {arg.name} is outside 0..{width - 1}")
            hot = np.eye(width)[ids]
            return hot.T if self.column else hot
        if node.func in ("colblock", "rowblock"):
            z = np.asarray(self.eval(node.args[0], rule, t), dtype=float)
            k, n = int(node.args[1].value), int(node.args[2].value)
            axis = 1 if node.func == "colblock" else 0
            if z.ndim != 2 or z.shape[axis] % n or not 1 <= k <= n:
                raise _rule_error(rule, f"{node.func}: cannot take block {k} of {n} of {z.shape}")
            width = z.shape[axis] // n
            return np.take(z, range((k - 1) * width, k * width), axis=axis)
        if node.func in ("colpart", "rowpart"):  # part k of blocks of the given widths
            z = np.asarray(self.eval(node.args[0], rule, t), dtype=float)
            k = int(node.args[1].value)
            widths = [_size(_width_text(a), self.dims) for a in node.args[2:]]
            axis = 1 if node.func == "colpart" else 0
            if z.ndim != 2 or sum(widths) != z.shape[axis] or not 1 <= k <= len(widths):
                raise _rule_error(rule, f"{node.func}: no part {k} of {widths} in {z.shape}")
            start = sum(widths[: k - 1])
            return np.take(z, range(start, start + widths[k - 1]), axis=axis)
        if node.func in ("hstack", "vstack"):
            parts = [self.eval(a, rule, t) for a in node.args]
            like = next((np.asarray(p) for p in parts if np.ndim(p) == 2), None)
            if like is None:
                raise _rule_error(rule, f"{node.func} needs one block that is a matrix")
            full = [np.zeros(like.shape) if np.ndim(p) == 0 else np.asarray(p) for p in parts]
            if any(np.ndim(p) == 0 for p in parts) and len({np.shape(f) for f in full}) > 1:
                raise _rule_error(rule, f"{node.func}: a zero block beside blocks of other shapes")
            return np.concatenate(full, axis=1 if node.func == "hstack" else 0)
        z = self.eval(node.args[0], rule, t)
        if isinstance(z, _Beyond):
            if node.func in _UNARY and node.func not in ("softmax", "onehot"):
                return z  # an entry-by-entry function of a quantity of step T+1
            raise _rule_error(rule, f"{z.name} does not exist")
        z = np.asarray(z, dtype=float)
        f = node.func
        if f == "tanh":
            return np.tanh(z)
        if f == "sigmoid":
            return 0.5 * (1.0 + np.tanh(0.5 * z))
        if f == "relu":
            return np.maximum(z, 0.0)
        if f == "step":
            return (z > 0).astype(float)
        if f == "identity":
            return z
        if f == "exp":
            return np.exp(z)
        if f == "log":
            return np.log(z)
        if f == "softmax":
            axis = 0 if self.column else -1
            e = np.exp(z - z.max(axis=axis, keepdims=True))
            return e / e.sum(axis=axis, keepdims=True)
        if f == "sum_all":
            return z.sum()
        if z.ndim != 2:
            raise _rule_error(rule, f"{f} takes a matrix, not shape {z.shape}")
        if f == "sum_rows":
            return z.sum(axis=0)
        if f == "sum_cols":
            return z.sum(axis=1, keepdims=True)
        raise AssertionError(f)  # pragma: no cover

    def assign_step(self, rule: Rule, t: int | None) -> None:
        k = self.index(rule.index, t)
        value = self.eval(rule.expr, rule, t)
        if isinstance(value, _Beyond):
            raise _rule_error(rule, f"{value.name} does not exist")
        steps = self.steps.setdefault(rule.name, {})
        if k in steps:
            raise _rule_error(rule, f"{self._show(rule.name, k)} is defined twice")
        what = self._show(rule.name, k)
        steps[k] = self._fit(value, rule.name, rule, what)

    def to_row(self, name: str, value: np.ndarray, stacked: bool) -> np.ndarray:
        if not self.column:
            return value
        if stacked:
            return value.transpose(0, 2, 1)
        if len(self.names.model["globals"].get(self.names.roles[name].model, ())) == 1:
            return value.reshape(-1)
        return value.T


def _width_text(node) -> str:
    """A width argument of colpart as size text: H, 4 * H, D + H."""
    if isinstance(node, Num):
        return str(int(node.value))
    if isinstance(node, Ref) and node.index is None:
        return node.name
    if isinstance(node, BinOp) and node.op in ("+", "*"):
        joint = "+" if node.op == "+" else "*"
        return f"{_width_text(node.left)}{joint}{_width_text(node.right)}"
    raise FormulaError(f"a width of colpart is a size, not {node!r}")


def evaluate_text(
    text: str,
    arrays: dict[str, np.ndarray],
    dims: dict[str, int],
    convention: str,
    names: dict[str, str] | None = None,
    model="vanilla",
) -> dict[str, np.ndarray]:
    """Evaluate a formula file; every un-indexed target and every per-step target (stacked
    over t = 1..T), keyed as the file names them, in the row layout. `model` is the name of a
    built-in model, or a dict describing another (see `_Names`)."""
    if convention not in ("row", "column"):
        raise FormulaError(f"convention must be 'row' or 'column', not {convention!r}")
    table = _Names(names, model)
    rules = parse_text(text)
    inferred = _infer_dims(arrays, table) if isinstance(model, str) else {}
    dims = {**inferred, **{k: int(v) for k, v in dims.items()}}
    missing = [d for d in (_DIMS if isinstance(model, str) else table.sizes) if d not in dims]
    if missing:
        raise FormulaError(f"dims: missing {', '.join(missing)}")
    groups: dict[str, list[Rule]] = {"boundary": [], "forward": [], "backward": [], "final": []}
    seen: set[tuple[str, str]] = set()
    for rule in rules:
        kind = _classify(rule, table)
        key = (rule.name, str(rule.index))
        if key in seen:
            raise _rule_error(rule, f"{rule.name} is defined twice")
        seen.add(key)
        _check_expr(rule.expr, rule, table, t_bound=kind in ("forward", "backward"), in_sum=False)
        groups[kind].append(rule)

    ev = _Evaluator(table, arrays, dims, convention)
    adjoint = {"adj_step"}
    for rule in groups["boundary"]:
        if table.roles[rule.name].kind not in adjoint:
            ev.assign_step(rule, None)
    for t in range(1, ev.T + 1):
        for rule in groups["forward"]:
            ev.assign_step(rule, t)
    for rule in groups["boundary"]:
        if table.roles[rule.name].kind in adjoint:
            ev.assign_step(rule, None)
    for t in range(ev.T, 0, -1):
        for rule in groups["backward"]:
            ev.assign_step(rule, t)
    for rule in groups["final"]:
        ev.finals[rule.name] = ev._fit(ev.eval(rule.expr, rule, None), rule.name, rule, rule.name)

    out: dict[str, np.ndarray] = {}
    for rule in (*groups["forward"], *groups["backward"]):
        stacked = np.stack([ev.steps[rule.name][t] for t in range(1, ev.T + 1)])
        out[rule.name] = ev.to_row(rule.name, stacked, stacked=True)
    for name, value in ev.finals.items():
        out[name] = ev.to_row(name, value, stacked=False)
    return out


def _infer_dims(arrays: dict, table: _Names) -> dict[str, int]:
    def get(model):
        value = arrays.get(model, arrays.get(table.file[model]))
        return None if value is None else np.asarray(value)

    dims: dict[str, int] = {}
    y, x, w_x, w_h, v = get("y"), get("x"), get("W_x"), get("W_h"), get("V")
    if y is not None and y.ndim == 2:
        dims["T"], dims["N"] = y.shape
    if x is not None and x.ndim == 3:
        dims["D"] = x.shape[2]
    elif w_x is not None and w_x.ndim == 2:
        dims["D"] = w_x.shape[0]
    if w_h is not None and w_h.ndim == 2:
        dims["H"] = w_h.shape[0]
    if v is not None and v.ndim == 2:
        dims["C"] = v.shape[1]
    return {k: int(n) for k, n in dims.items()}
