"""A model file's cell: its rules as named operations of the spec vocabulary, one node each.

Each rule `name[t] = expr` becomes one quantity of the step. Where the expression is one of
the vocabulary's operations on named quantities it becomes that operation, as a built-in cell
writes it (`h[t-1] @ W_h + x[t] @ W_x + b` an affine map, `f[t] * c[t-1] + i[t] * g[t]` a
Hadamard sum, `(1 - z[t]) * n[t] + z[t] * h[t-1]` a lerp, `tanh(a[t])`, `colblock(a[t], 2, 4)`),
so that the files of the built-in models give their derivations line for line. Any other
expression is a `composite`: a short program of the rule table's operations, one node.

A state fixed at zero is absent at the first step (as h0 = 0 is for a built-in cell): what it
multiplies drops out, a function of it is a number, and a block of it beside another is a
block of zeros.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ..formula.ast import Binary, Call, Index, Name, Neg, Num, Power, Step, Transposed
from .modelfile import ELEMENTWISE, ModelFile, ModelFileError
from .program import Op

__all__ = ["FileCell"]


@dataclass(frozen=True)
class _Atom:
    """A named quantity not yet made an input of the program (it becomes one when an
    operation uses it: a product with a zero state uses neither factor)."""

    value: Any


@dataclass(frozen=True)
class _Const:
    """A number in every entry (a zero state at step 1, a function of it, a literal)."""

    value: Fraction | float

    @property
    def zero(self) -> bool:
        return self.value == 0


_FUNCTIONS = {
    "tanh": math.tanh,
    "sigmoid": lambda v: 1 / (1 + math.exp(-v)),
    "relu": lambda v: max(v, 0),
    "identity": lambda v: v,
    "exp": math.exp,
    "log": math.log,
}


def _number(value: float) -> Fraction | float:
    """A literal as an exact fraction where it is one (0.5, 2), else a float."""
    if float(value).is_integer():
        return Fraction(int(value))
    fraction = Fraction(value).limit_denominator(1000)
    return fraction if float(fraction) == value else float(value)


class FileCell:
    """cell(ops, params, state, inputs) -> (new state, the step's loss term) for a model file.

    `inputs` maps every per-step input to its value (labels one-hot); a layer file's loss
    term is sum(d_out[t] * out[t]) over its outputs, the upstream gradients being inputs.
    """

    def __init__(self, model: ModelFile, upstream: Mapping[str, str] | None = None) -> None:
        self.model = model
        self.upstream = dict(upstream or {})  # output -> the input holding its upstream gradient

    def __call__(self, ops, params: Mapping[str, Any], state, inputs: Mapping[str, Any]):
        step = _Step(self.model, ops, params, dict(zip(self.model.states, state)), inputs)
        for rule in self.model.rules:
            step.define(rule.name, rule.expr, rule.place)
        new_state = tuple(step.state(name) for name in self.model.states)
        return new_state, step.loss(self.upstream)


class _Step:
    """One step of a file's cell on one backend."""

    def __init__(self, model: ModelFile, ops, params, previous, inputs) -> None:
        self.model, self.ops, self.params = model, ops, params
        self.previous, self.inputs = previous, inputs
        self.now: dict[str, Any] = {}
        self.place = None

    def fail(self, message: str, node=None) -> ModelFileError:
        return self.place.error(message, getattr(node, "at", 0))

    # -- the rules
    def define(self, name: str, expr, place) -> None:
        self.place = place
        value = self.pattern(name, expr)
        if value is None:
            value = self.composite(name, expr)
        if isinstance(value, _Const) and not self.ops.concrete:
            raise place.error(
                f"{name}[t] is the same number at every step: it is no quantity (write the "
                "number where it is used)",
                place.text.index(name) + 1 if name in place.text else 0,
            )
        self.now[name] = value

    def state(self, name: str):
        """A state's value for the next step: None where it is zero."""
        value = self.now[name]
        if isinstance(value, _Const):
            if value.zero:
                return None
            return self.ops.constant(name, value.value, self.model.shape(name))
        return value

    def loss(self, upstream: Mapping[str, str]):
        """The step's loss term (None where it is 0 at this step)."""
        if self.model.loss is None:  # a layer: sum(d_out[t] * out[t]) over its outputs
            program = _Program(self)
            refs = []
            for out, d_out in upstream.items():
                value = self.now[out]
                if isinstance(value, _Const):
                    if not value.zero:
                        value = self.ops.constant(out, value.value, self.model.shape(out))
                    else:
                        continue
                product = program.op(
                    "mul", (program.input(self.inputs[d_out]), program.input(value))
                )
                refs.append(program.op("total", (product,)))
            if not refs:
                return None
            total = refs[0] if len(refs) == 1 else program.op("add", tuple(refs))
            return program.finish("L", total, kind="step_loss")
        self.place = self.model.loss.place
        body = self.model.loss.body
        if isinstance(body, Call) and body.function == "cross_entropy":
            logits, labels = self.atom(body.args[0]), self._labels(body.args[1])
            if logits is not None and not isinstance(logits, _Const):
                return self.ops.cross_entropy("L", logits, labels)
        value = self.composite("L", body, kind="step_loss")
        if isinstance(value, _Const):
            if value.zero:
                return None
            return self.ops.constant("L", value.value, (), kind="step_loss")
        return value

    def _labels(self, node):
        if isinstance(node, Call):  # onehot(y[t])
            node = node.args[0]
        return self.inputs[node.name]

    # -- named quantities
    def atom(self, node):
        """The value of a named quantity (a weight, x[t], h[t-1], onehot(y[t])), a _Const for
        a zero state, or None when the node is not a name."""
        if isinstance(node, Name):
            if node.name in self.params:
                return self.params[node.name]
            return None
        if isinstance(node, Step):
            if node.index == Index("t", -1):
                value = self.previous.get(node.name)
                return _Const(Fraction(0)) if value is None else value
            if node.name in self.now:
                return self.now[node.name]
            return self.inputs.get(node.name)
        if isinstance(node, Call) and node.function == "onehot":
            return self.inputs[node.args[0].name]
        return None

    def pattern(self, name: str, expr):
        """The vocabulary's own operation for the expression, or None."""
        ops = self.ops
        if isinstance(expr, Call) and expr.function in ELEMENTWISE and len(expr.args) == 1:
            a = self.atom(expr.args[0])
            if a is not None and not isinstance(a, _Const):
                return ops.apply(name, expr.function, a)
            return None
        if isinstance(expr, Call) and expr.function == "softmax":
            a = self.atom(expr.args[0])
            if a is not None and not isinstance(a, _Const):
                return ops.softmax(name, a)
            return None
        if isinstance(expr, Call) and expr.function in ("colblock", "rowblock"):
            a = self.atom(expr.args[0])
            if a is not None and not isinstance(a, _Const):
                k, n = (int(v.value) for v in expr.args[1:])
                return ops.columns(name, a, k - 1, n, -1 if expr.function == "colblock" else 0)
            return None
        lerp = self.lerp(name, expr)
        if lerp is not None:
            return lerp
        terms = _sum_terms(expr)
        if terms is None:
            return None
        return self.affine(name, terms) or self.hadamard(name, terms) or self.add(name, terms)

    def lerp(self, name: str, expr):
        """(1 - z) * a + z * b, the factors and terms in any order."""
        terms = _sum_terms(expr)
        if terms is None or len(terms) != 2:
            return None
        pairs = [_factors(t, "*") for t in terms]
        if any(p is None for p in pairs):
            return None
        for first, second in (pairs, pairs[::-1]):
            for one_minus, a_node in (first, first[::-1]):
                z_node = _one_minus(one_minus)
                if z_node is None or z_node not in second:
                    continue
                b_node = second[1] if second[0] == z_node else second[0]
                z, a, b = (self.atom(n) for n in (z_node, a_node, b_node))
                if z is None or isinstance(z, _Const) or a is None or b is None:
                    return None
                if isinstance(a, _Const) and isinstance(b, _Const):
                    return None
                if isinstance(b, _Const):
                    return self.ops.lerp(name, z, a, None) if b.zero else None
                if isinstance(a, _Const):
                    return self.ops.hadamard(name, None, (z, b)) if a.zero else None
                return self.ops.lerp(name, z, a, b)
        return None

    def affine(self, name: str, terms):
        """bias + sum_k A_k @ W_k: products of named quantities and at most one bias (k,)."""
        bias, pairs = None, []
        for term in terms:
            factors = _factors(term, "@")
            if factors is not None:
                a, w = (self.atom(f) for f in factors)
                if a is None or w is None:
                    return None
                if isinstance(a, _Const) or isinstance(w, _Const):
                    if (isinstance(a, _Const) and a.zero) or (isinstance(w, _Const) and w.zero):
                        continue  # a product with a zero state adds nothing
                    return None
                pairs.append((a, w))
                continue
            if bias is not None or not self._bias(term):
                return None
            bias = self.atom(term)
        if not pairs:
            return None
        return self.ops.affine(name, bias, *pairs)

    def _bias(self, node) -> bool:
        return (
            isinstance(node, Name)
            and node.name in self.params
            and len(self.model.declaration(node.name).shape) == 1
        )

    def hadamard(self, name: str, terms):
        """start + sum_k A_k * B_k entry by entry, every factor a named quantity of the
        term's own shape."""
        start, pairs = None, []
        target = self.model.node_shapes.get(id(terms[0]))
        for term in terms:
            factors = _factors(term, "*")
            if factors is not None:
                values = [self.atom(f) for f in factors]
                shapes = [self.model.node_shapes.get(id(f)) for f in factors]
                if any(v is None for v in values) or len(set(shapes)) != 1:
                    return None
                if any(isinstance(v, _Const) for v in values):
                    if any(isinstance(v, _Const) and v.zero for v in values):
                        continue
                    return None
                pairs.append(tuple(values))
                continue
            value = self.atom(term)
            if start is not None or value is None:
                return None
            if self.model.node_shapes.get(id(term)) != target:
                return None
            if isinstance(value, _Const):
                if not value.zero:
                    return None
                continue
            start = value
        if not pairs:
            return None
        return self.ops.hadamard(name, start, *pairs)

    def add(self, name: str, terms):
        """A sum of named quantities of one shape."""
        if len(terms) < 2:
            return None
        values = [self.atom(t) for t in terms]
        shapes = {self.model.node_shapes.get(id(t)) for t in terms}
        if any(v is None or isinstance(v, _Const) for v in values) or len(shapes) != 1:
            return None
        return self.ops.add(name, *values)

    # -- anything else: one composite node
    def composite(self, name: str, expr, kind: str | None = None):
        program = _Program(self)
        result = program.emit(expr)
        if isinstance(result, _Const):
            return result
        return program.finish(name, result, kind=kind)


def _sum_terms(expr) -> list | None:
    """The terms of a sum written with + only (None if a - appears at the top)."""
    if isinstance(expr, Binary) and expr.op == "+":
        left = _sum_terms(expr.left)
        right = _sum_terms(expr.right)
        if left is None or right is None:
            return None
        return left + right
    if isinstance(expr, Binary) and expr.op == "-":
        return None
    return [expr]


def _factors(node, op: str) -> tuple | None:
    if isinstance(node, Binary) and node.op == op:
        return (node.left, node.right)
    return None


def _one_minus(node):
    """z when node is (1 - z)."""
    if (
        isinstance(node, Binary)
        and node.op == "-"
        and isinstance(node.left, Num)
        and node.left.value == 1
    ):
        return node.right
    return None


class _Program:
    """A composite's program, built from an expression with numbers folded."""

    #: Rules a one-operation program is written as directly (a node of that rule).
    PLAIN = {"add", "sub", "mul", "div", "matmul", "transpose", "rowsum", "total", *ELEMENTWISE}

    def __init__(self, step: _Step) -> None:
        self.step = step
        self.ops: list[Op] = []
        self.inputs: list = []
        self.consts: dict[str, Any] = {}
        self.sizes: list[str] = []

    def op(self, rule: str, args: tuple, **params) -> tuple:
        args = tuple(self.ref(a) for a in args)
        self.ops.append(Op(rule, args, tuple(params.items())))
        return ("op", len(self.ops) - 1)

    def ref(self, value):
        """An operand as a reference (a named quantity becomes an input when first used)."""
        return self.input(value.value) if isinstance(value, _Atom) else value

    def input(self, value) -> tuple:
        for k, known in enumerate(self.inputs):
            if known is value or (isinstance(value, str) and known == value):
                return ("in", k)
        self.inputs.append(value)
        return ("in", len(self.inputs) - 1)

    def const(self, key: str, value) -> tuple:
        self.consts[key] = value
        return ("const", key)

    def shift(self, ref) -> dict:
        """The softmax shift of an input: a node of its own where the backend has one."""
        ref = self.ref(ref)
        if ref[0] != "in":
            return {}
        shift = self.step.ops.shift(self.inputs[ref[1]])
        if shift is None:
            return {}
        return {"m": self.const(f"m{ref[1]}", shift)}

    def finish(self, name: str, result, kind: str | None = None):
        ops = self.step.ops
        result = self.ref(result)
        if result[0] == "in":  # a quantity that is another one: the identity
            result = self.op("identity", (result,))
        if result[0] == "num":
            raise self.step.fail(f"{name}[t] is a constant")
        if result[0] == "const":  # a size alone: times 1
            result = self.op("mul", (result, ("num", Fraction(1))))
        result = self._prune(result)
        if (
            len(self.ops) == 1
            and self.ops[0].rule in self.PLAIN
            and not self.consts
            and not self.sizes
            and all(a is not None and a[0] == "in" for a in self.ops[0].args)
        ):
            (op,) = self.ops
            inputs = [self.inputs[a[1]] for a in op.args]
            return ops.node(name, op.rule, tuple(inputs), dict(op.params), kind=kind)
        return ops.composite(
            name, tuple(self.inputs), tuple(self.ops), self.consts, tuple(self.sizes), kind
        )

    def _prune(self, result: tuple) -> tuple:
        """Keep only what the result reads: an operation a zero state made dead (`M * 0.5` in
        `h[t-1] @ (M * 0.5)` at step 1) goes, with the inputs, constants and sizes only it
        read, so that no edge of the graph joins a quantity to one that does not depend on
        it."""
        needed: set[int] = set()
        stack = [result[1]]
        while stack:
            k = stack.pop()
            if k not in needed:
                needed.add(k)
                op = self.ops[k]
                stack += [r[1] for r in (*op.args, *(v for _, v in op.params)) if _is(r, "op")]
        order = sorted(needed)
        kept = [self.ops[k] for k in order]
        read = sorted(
            {r[1] for op in kept for r in (*op.args, *(v for _, v in op.params)) if _is(r, "in")}
        )
        consts = {
            r[1] for op in kept for r in (*op.args, *(v for _, v in op.params)) if _is(r, "const")
        }
        where = {old: new for new, old in enumerate(order)}
        slot = {old: new for new, old in enumerate(read)}

        def remap(ref):
            if _is(ref, "op"):
                return ("op", where[ref[1]])
            if _is(ref, "in"):
                return ("in", slot[ref[1]])
            return ref

        self.ops = [
            Op(
                op.rule,
                tuple(remap(a) for a in op.args),
                tuple((k, remap(v)) for k, v in op.params),
            )
            for op in kept
        ]
        self.inputs = [self.inputs[k] for k in read]
        self.consts = {k: v for k, v in self.consts.items() if k in consts}
        self.sizes = [n for n in self.sizes if f"size_{n}" in consts]
        return ("op", where[result[1]])

    def _value(self, c: _Const, node) -> tuple:
        """A number where an array must stand (a block of zeros beside x[t])."""
        shape = self.step.model.node_shapes.get(id(node))
        filled = self.step.ops.filled(c.value, shape)
        return ("num", filled)

    def emit(self, node):
        """A reference to the node's value, or a _Const."""
        step = self.step
        if isinstance(node, Num):
            return _Const(_number(node.value))
        if isinstance(node, Name) and node.name not in step.params:  # a size
            if node.name not in self.sizes:
                self.sizes.append(node.name)
            return ("const", f"size_{node.name}")
        atom = step.atom(node)
        if atom is not None:
            return atom if isinstance(atom, _Const) else _Atom(atom)
        if isinstance(node, Neg):
            a = self.emit(node.arg)
            if isinstance(a, _Const):
                return _Const(-a.value)
            return self.op("scale", (a,), factor=Fraction(-1))
        if isinstance(node, Transposed):
            a = self.emit(node.arg)
            return a if isinstance(a, _Const) else self.op("transpose", (a,))
        if isinstance(node, Power):
            a = self.emit(node.arg)
            if isinstance(a, _Const):
                if a.zero and node.exponent <= 0:
                    raise step.fail("a power of a quantity that is 0 at step 1 divides by 0", node)
                return _Const(a.value**node.exponent)
            return self.op("power", (a,), n=node.exponent)
        if isinstance(node, Binary):
            return self.binary(node)
        if isinstance(node, Call):
            return self.call(node)
        raise step.fail(f"cannot build {node!r}", node)

    def binary(self, node: Binary):
        a, b = self.emit(node.left), self.emit(node.right)
        op = node.op
        ca, cb = isinstance(a, _Const), isinstance(b, _Const)
        if op != "@" and ca != cb and (op in "+-" or not (a if ca else b).zero):
            # A number that widens the other operand (a zero state (N, H) plus a row (H,)):
            # kept as an array of the result's shape, or the sum would lose a dimension (a
            # product with 0 is 0, of whatever shape).
            shapes = self.step.model.node_shapes
            other = node.right if ca else node.left
            want = shapes.get(id(node))
            if want is not None and shapes.get(id(other)) != want:
                if ca:
                    a, ca = self._value(a, node), False
                else:
                    b, cb = self._value(b, node), False
        if ca and cb:
            if op == "@":
                if a.zero or b.zero:
                    return _Const(Fraction(0))
                raise self.step.fail("a product of two constants", node)
            if op == "/" and b.zero:
                raise self.step.fail("a division by 0 (a zero state at step 1?)", node)
            value = {"+": a.value + b.value, "-": a.value - b.value, "*": a.value * b.value}.get(op)
            return _Const(value if value is not None else Fraction(a.value) / Fraction(b.value))
        if op == "@":
            if (ca and a.zero) or (cb and b.zero):
                return _Const(Fraction(0))
            if ca or cb:
                raise self.step.fail("@ multiplies two matrices, not a number", node)
            return self.op("matmul", (a, b))
        if op == "*":
            if ca or cb:
                c, x = (a, b) if ca else (b, a)
                if c.zero:
                    return _Const(Fraction(0))
                if c.value == 1:
                    return x
                return self.op("scale", (x,), factor=c.value)
            return self.op("mul", (a, b))
        if op == "/":
            if cb:
                if b.zero:
                    why = "" if isinstance(node.right, Num) else " (a zero state at step 1?)"
                    raise self.step.fail(f"a division by 0{why}", node)
                inverse = 1 / Fraction(b.value) if isinstance(b.value, Fraction) else 1 / b.value
                return a if b.value == 1 else self.op("scale", (a,), factor=inverse)
            if ca and a.zero:
                return _Const(Fraction(0))
            return self.op("div", (("num", a.value) if ca else a, b))
        # + and -
        if cb and b.zero:
            return a
        if ca and a.zero:
            return b if op == "+" else self.op("scale", (b,), factor=Fraction(-1))
        rule = "add" if op == "+" else "sub"
        return self.op(rule, (("num", a.value) if ca else a, ("num", b.value) if cb else b))

    def call(self, node: Call):
        step, name, args = self.step, node.function, node.args
        if name in ELEMENTWISE:
            a = self.emit(args[0])
            if isinstance(a, _Const):
                try:
                    return _Const(_FUNCTIONS[name](float(a.value)))
                except (ValueError, OverflowError):
                    raise step.fail(
                        f"{name}({float(a.value):g}) has no value (a zero state at step 1?)", node
                    ) from None
            return self.op(name, (a,))
        if name == "softmax":
            a = self.emit(args[0])
            if isinstance(a, _Const):
                raise step.fail("softmax of a quantity that is a constant at step 1", node)
            return self.op("softmax", (a,), **self.shift(a))
        if name == "cross_entropy":
            a = self.emit(args[0])
            if isinstance(a, _Const):
                raise step.fail("cross_entropy of logits that are a constant at step 1", node)
            labels = self.const(f"Y_{_label_name(args[1])}", step._labels(args[1]))
            return self.op("softmax_ce", (a,), Y=labels, **self.shift(a))
        if name in ("sum", "sum_rows"):
            a = self.emit(args[0])
            if isinstance(a, _Const):
                if a.zero:
                    return _Const(Fraction(0))
                raise step.fail(f"{name} of a constant: write the number it is", node)
            return self.op("total" if name == "sum" else "rowsum", (a,))
        if name in ("colblock", "rowblock"):
            a = self.emit(args[0])
            if isinstance(a, _Const):
                return a
            k, n = (int(v.value) for v in args[1:])
            axis = -1 if name == "colblock" else 0
            params = {"part": k - 1, "parts": n, **({"axis": axis} if axis != -1 else {})}
            return self.op("columns", (a,), **params)
        if name in ("hstack", "vstack"):
            blocks = [self.emit(a) for a in args]
            if all(isinstance(b, _Const) for b in blocks) and all(b.zero for b in blocks):
                return _Const(Fraction(0))
            refs = [self._value(b, a) if isinstance(b, _Const) else b for b, a in zip(blocks, args)]
            axis = -1 if name == "hstack" else 0
            return self.op("concat", tuple(refs), **({"axis": axis} if axis != -1 else {}))
        if name == "onehot":
            return _Atom(step.atom(node))
        raise step.fail(f"{name} cannot be used here", node)


def _is(ref, kind: str) -> bool:
    """Whether `ref` is a program reference of this kind ("op", "in", "const", "num")."""
    return isinstance(ref, tuple) and len(ref) == 2 and ref[0] == kind


def _label_name(node) -> str:
    return node.args[0].name if isinstance(node, Call) else node.name
