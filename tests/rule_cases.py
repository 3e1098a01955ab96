"""One case per row of the rule table (more for variadic rows), shared by the rule tests.

A case states a rule's inputs and constants with shapes in named dimensions; `float_problem`
draws numbers for given sizes, `object_problem` and `matrix_problem` give the same problem on
SymEngine symbols and on `MatExpr` symbols.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import symengine as se

from symbptt.engine.matexpr import Symbol
from symbptt.engine.rules import Op
from symbptt.models import sizes as size_text

#: Every dimension a case may use; each is drawn independently, so D != H and N = 1 both occur.
DIMS = ("N", "K", "D", "H", "C")

#: Where input values are drawn: log needs x > 0, relu's finite differences must not straddle 0.
DOMAINS = {"real": (-1.5, 1.5), "positive": (0.5, 2.0), "off_kink": (0.1, 1.5)}


@dataclass(frozen=True)
class Operand:
    name: str
    shape: tuple[str, ...]
    domain: str = "real"


@dataclass(frozen=True)
class Case:
    rule: str
    #: None stands for an absent input (affine without a bias).
    inputs: tuple[Operand | None, ...]
    #: Constant arrays (labels Y, the softmax shift m).
    arrays: tuple[Operand, ...] = ()
    #: Constant row ids: name -> (its shape, the dimension its values range over).
    ids: dict[str, tuple[tuple[str, ...], str]] = field(default_factory=dict)
    #: Constant numbers (a factor).
    numbers: dict[str, object] = field(default_factory=dict)


def _op(name: str, *shape: str, domain: str = "real") -> Operand:
    return Operand(name, shape, domain)


CASES: dict[str, Case] = {
    "copy": Case("copy", (_op("a", "N", "H"),)),
    "affine, bias and two pairs": Case(
        "affine",
        (
            _op("b", "H"),
            _op("A_1", "N", "H"),
            _op("B_1", "H", "H"),
            _op("A_2", "N", "D"),
            _op("B_2", "D", "H"),
        ),
    ),
    "affine, bias and one pair": Case(
        "affine", (_op("c", "C"), _op("A_1", "N", "H"), _op("B_1", "H", "C"))
    ),
    "affine, no bias": Case(
        "affine",
        (
            None,
            _op("A_1", "N", "K"),
            _op("B_1", "K", "H"),
            _op("A_2", "N", "D"),
            _op("B_2", "D", "H"),
        ),
    ),
    "lookup": Case("lookup", (_op("W", "D", "H"),), ids={"ids": (("N",), "D")}),
    "add": Case("add", (_op("a", "N", "H"), _op("b", "N", "H"), _op("c", "N", "H"))),
    "sum": Case("sum", (_op("L_1"), _op("L_2"), _op("L_3"))),
    "scale, by a fraction": Case(
        "scale", (_op("a", "N", "H"),), numbers={"factor": Fraction(1, 6)}
    ),
    "scale, a scalar by a float": Case("scale", (_op("L"),), numbers={"factor": 0.25}),
    "matmul": Case("matmul", (_op("a", "N", "K"), _op("b", "K", "H"))),
    "transpose": Case("transpose", (_op("a", "N", "H"),)),
    "mul": Case("mul", (_op("a", "N", "H"), _op("b", "N", "H"))),
    "rowsum": Case("rowsum", (_op("a", "N", "H"),)),
    "tanh": Case("tanh", (_op("a", "N", "H"),)),
    "sigmoid": Case("sigmoid", (_op("a", "N", "H"),)),
    "relu": Case("relu", (_op("a", "N", "H", domain="off_kink"),)),
    "identity": Case("identity", (_op("a", "N", "H"),)),
    "exp": Case("exp", (_op("a", "N", "H"),)),
    "log": Case("log", (_op("a", "N", "H", domain="positive"),)),
    "softmax_ce": Case(
        "softmax_ce", (_op("o", "N", "C"),), arrays=(_op("Y", "N", "C"), _op("m", "N"))
    ),
    "rowmax": Case("rowmax", (_op("o", "N", "C"),)),
    "columns, one gate of four": Case(
        "columns", (_op("a", "N", "4H"),), numbers={"part": 2, "parts": 4}
    ),
    "columns, the first third of a vector": Case(
        "columns", (_op("b", "3H"),), numbers={"part": 0, "parts": 3}
    ),
    "hadamard, a start and two pairs": Case(
        "hadamard",
        (
            _op("s", "N", "H"),
            _op("A_1", "N", "H"),
            _op("B_1", "N", "H"),
            _op("A_2", "N", "H"),
            _op("B_2", "N", "H"),
        ),
    ),
    "hadamard, no start": Case("hadamard", (None, _op("A_1", "N", "H"), _op("B_1", "N", "H"))),
    "lerp": Case("lerp", (_op("z", "N", "H"), _op("a", "N", "H"), _op("b", "N", "H"))),
    "lerp, b absent": Case("lerp", (_op("z", "N", "H"), _op("a", "N", "H"), None)),
    "add, a bias row to a matrix": Case("add", (_op("a", "N", "H"), _op("b", "H"))),
    "add, a scalar to a matrix": Case("add", (_op("a", "N", "H"), _op("s"))),
    "sub": Case("sub", (_op("a", "N", "H"), _op("b", "N", "H"))),
    "sub, a bias row from a matrix": Case("sub", (_op("a", "N", "H"), _op("b", "H"))),
    "mul, by a row": Case("mul", (_op("a", "N", "H"), _op("u", "H"))),
    "div": Case("div", (_op("a", "N", "H"), _op("b", "N", "H", domain="positive"))),
    "div, by a scalar": Case("div", (_op("a", "N", "H"), _op("s", domain="positive"))),
    "power, a cube": Case("power", (_op("a", "N", "H"),), numbers={"n": 3}),
    "power, an inverse": Case("power", (_op("a", "N", "H", domain="positive"),), numbers={"n": -1}),
    "total": Case("total", (_op("a", "N", "C"),)),
    "concat, side by side": Case("concat", (_op("h", "N", "H"), _op("x", "N", "D"))),
    "concat, stacked": Case(
        "concat", (_op("A", "K", "H"), _op("B", "D", "H")), numbers={"axis": 0}
    ),
    "softmax": Case("softmax", (_op("o", "N", "C"),), arrays=(_op("m", "N"),)),
    "columns, a block of rows": Case(
        "columns", (_op("W", "2K", "H"),), numbers={"part": 1, "parts": 2, "axis": 0}
    ),
    # (1 - z) ⊙ tanh(a) + 2 · (z ⊙ h) + b: numbers, a bias, an input used twice.
    "composite, an update": Case(
        "composite",
        (_op("z", "N", "H"), _op("a", "N", "H"), _op("h", "N", "H"), _op("b", "H")),
        numbers={
            "program": (
                Op("sub", (("num", 1), ("in", 0))),
                Op("tanh", (("in", 1),)),
                Op("mul", (("op", 0), ("op", 1))),
                Op("mul", (("in", 0), ("in", 2))),
                Op("scale", (("op", 3),), (("factor", Fraction(2)),)),
                Op("add", (("op", 2), ("op", 4), ("in", 3))),
            )
        },
    ),
    # cross_entropy(h @ V, y) + sum(h ** 2) / 2: labels and a shift as constants.
    "composite, a loss": Case(
        "composite",
        (_op("h", "N", "H"), _op("V", "H", "C")),
        arrays=(_op("Y", "N", "C"), _op("m", "N")),
        numbers={
            "program": (
                Op("matmul", (("in", 0), ("in", 1))),
                Op("softmax_ce", (("op", 0),), (("Y", ("const", "Y")), ("m", ("const", "m")))),
                Op("power", (("in", 0),), (("n", 2),)),
                Op("total", (("op", 2),)),
                Op("scale", (("op", 3),), (("factor", Fraction(1, 2)),)),
                Op("add", (("op", 1), ("op", 4))),
            )
        },
    ),
}


@dataclass
class Problem:
    """A rule's inputs (None where absent) and constants, on one backend."""

    inputs: list
    consts: dict


def _concrete(shape: tuple[str, ...], sizes: dict[str, int]) -> tuple[int, ...]:
    """Sizes of a shape; "4H" is four times H."""
    return tuple(size_text.value(d, sizes) for d in shape)


def float_problem(case: Case, sizes: dict[str, int], seed: int) -> Problem:
    """Random numbers for the case; relu's inputs get a random sign but stay off the kink."""
    rng = np.random.default_rng(seed)

    def draw(op: Operand) -> np.ndarray:
        low, high = DOMAINS[op.domain]
        x = rng.uniform(low, high, _concrete(op.shape, sizes))
        return x * rng.choice([-1.0, 1.0], x.shape) if op.domain == "off_kink" else x

    inputs = [None if op is None else draw(op) for op in case.inputs]
    consts: dict = {op.name: draw(op) for op in case.arrays}
    for name, (shape, over) in case.ids.items():
        consts[name] = rng.integers(0, sizes[over], _concrete(shape, sizes))
    consts.update(case.numbers)
    return Problem(inputs, consts)


def symbol_matrix(code: str, shape: tuple[int, ...]) -> np.ndarray:
    """An object array of fresh symbols named `code_i_j`."""
    out = np.empty(shape, dtype=object)
    for index in np.ndindex(*shape):
        out[index] = se.Symbol("_".join([code, *map(str, index)]))
    return out


def object_problem(case: Case, floats: Problem) -> tuple[Problem, dict]:
    """The same problem on SymEngine symbols (row ids and numbers stay as they are), and the
    values of those symbols."""
    values: dict = {}

    def symbols(op: Operand, value: np.ndarray) -> np.ndarray:
        s = symbol_matrix(op.name, value.shape)
        values.update(zip(s.flat, value.flat))
        return s

    inputs = [None if op is None else symbols(op, v) for op, v in zip(case.inputs, floats.inputs)]
    consts = dict(floats.consts)
    consts.update({op.name: symbols(op, floats.consts[op.name]) for op in case.arrays})
    return Problem(inputs, consts), values


def matrix_problem(case: Case, floats: Problem, sizes: dict[str, int]) -> tuple[Problem, dict]:
    """The same problem on MatExpr symbols with named shapes, and the bindings to evaluate it
    (the sizes too: the one-hot matrix of row ids needs a size no bound array shows)."""
    bindings: dict = dict(sizes)

    def symbol(op: Operand, value: np.ndarray) -> Symbol:
        bindings[op.name] = value
        return Symbol(op.name, op.shape)

    inputs = [None if op is None else symbol(op, v) for op, v in zip(case.inputs, floats.inputs)]
    consts = dict(floats.consts)
    consts.update({op.name: symbol(op, floats.consts[op.name]) for op in case.arrays})
    for name, (shape, _) in case.ids.items():
        consts[name] = symbol(Operand(name, shape), floats.consts[name])
    return Problem(inputs, consts), bindings
