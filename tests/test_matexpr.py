"""The matrix-expression backend: every rule's matrix-form VJP evaluates to the float VJP (which
test_rules checks against element-level `diff`), and the formulas print readably."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rule_cases import CASES, DIMS, float_problem, matrix_problem

from symbptt.engine.matexpr import MatExpr, Symbol, one_hot, repeat_rows
from symbptt.engine.rules import RULES, vjp
from symbptt.errors import InputArrayError, InvalidArgumentError, UnknownNameError
from symbptt.models import sizes as size_text

SIZES = st.fixed_dictionaries({d: st.integers(1, 3) for d in DIMS})
SEEDS = st.integers(0, 2**32 - 1)
DIFFERENTIABLE = [label for label, case in CASES.items() if RULES[case.rule].differentiable]


def _sized(shape, sizes):
    return tuple(size_text.value(d, sizes) for d in shape)


@pytest.mark.parametrize("label", list(CASES))
@settings(deadline=None)
@given(sizes=SIZES, seed=SEEDS)
def test_matrix_form_forward_evaluates_to_the_float_forward(label, sizes, seed):
    case = CASES[label]
    rule = RULES[case.rule]
    floats = float_problem(case, sizes, seed)
    matrices, bindings = matrix_problem(case, floats, sizes)
    formula = rule.forward(*matrices.inputs, **matrices.consts)
    numeric = np.asarray(rule.forward(*floats.inputs, **floats.consts))
    assert isinstance(formula, MatExpr)
    assert _sized(formula.shape, sizes) == numeric.shape
    np.testing.assert_allclose(formula.evaluate(bindings), numeric, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("label", DIFFERENTIABLE)
@settings(deadline=None)
@given(sizes=SIZES, seed=SEEDS)
def test_matrix_form_vjp_evaluates_to_the_float_vjp(label, sizes, seed):
    """With the output as a symbol of its own (as the derivation prints it: g ⊙ (1 - h ⊙ h))
    and written out (g ⊙ (1 - tanh(a) ⊙ tanh(a))): both equal the float VJP."""
    case = CASES[label]
    rule = RULES[case.rule]
    floats = float_problem(case, sizes, seed)
    matrices, bindings = matrix_problem(case, floats, sizes)
    out_float = np.asarray(rule.forward(*floats.inputs, **floats.consts))
    out_formula = rule.forward(*matrices.inputs, **matrices.consts)
    G = np.random.default_rng([seed, 1]).uniform(-1.0, 1.0, out_float.shape)
    g = Symbol("g", out_formula.shape)
    bindings.update(g=G, out=out_float)
    for out in (Symbol("out", out_formula.shape), out_formula):
        for i, x in enumerate(floats.inputs):
            if x is None:
                continue
            formula = vjp(rule, i, g, out, matrices.inputs, matrices.consts)
            expected = vjp(rule, i, G, out_float, floats.inputs, floats.consts)
            assert _sized(formula.shape, sizes) == x.shape, f"{label}: VJP {i} is {formula}"
            np.testing.assert_allclose(
                formula.evaluate(bindings), expected, rtol=1e-12, atol=1e-13, err_msg=str(formula)
            )


# -- printing -------------------------------------------------------------------------------------
N, K, H, D = "N", "K", "H", "D"
g = Symbol("g", (N, H))


def _vjps(name, out, *inputs, **consts):
    return [str(vjp(RULES[name], i, g, out, inputs, consts)) for i in range(len(inputs))]


def test_affine_prints_as_the_model_writes_it():
    b, A_1, B_1 = Symbol("b", (H,)), Symbol("A_1", (N, K)), Symbol("B_1", (K, H))
    A_2, B_2 = Symbol("A_2", (N, D)), Symbol("B_2", (D, H))
    out = RULES["affine"].forward(b, A_1, B_1, A_2, B_2)
    assert str(out) == "b + A_1 @ B_1 + A_2 @ B_2"
    bias, wrt_A_1, wrt_B_1, wrt_A_2, wrt_B_2 = _vjps("affine", out, b, A_1, B_1, A_2, B_2)
    assert wrt_A_1 == "g @ B_1^T" and wrt_B_1 == "A_1^T @ g"
    assert wrt_A_2 == "g @ B_2^T" and wrt_B_2 == "A_2^T @ g"
    assert "1^T" in bias and "g" in bias  # a sum over the rows of g


def test_elementwise_vjps_print_their_declared_derivative():
    a, h = Symbol("a", (N, H)), Symbol("h", (N, H))
    [tanh] = _vjps("tanh", h, a)
    assert "⊙" in tanh and "h ⊙ h" in tanh and "1 -" in tanh and "tanh" not in tanh
    [relu] = _vjps("relu", h, a)
    assert "step(a)" in relu
    [identity] = _vjps("identity", h, a)
    assert identity == "g"


def test_softmax_ce_prints_softmax_minus_labels():
    o, Y, m = Symbol("o", (N, "C")), Symbol("Y", (N, "C")), Symbol("m", (N,))
    wrt_o = vjp(RULES["softmax_ce"], 0, Symbol("g"), None, [o], dict(Y=Y, m=m))
    assert "softmax(o)" in str(wrt_o) and "- Y" in str(wrt_o)
    assert {s.name for s in wrt_o.symbols()} == {"g", "o", "Y"}  # the shift leaves no trace


def test_lookup_vjp_prints_as_a_one_hot_product():
    W, ids = Symbol("W_x", (D, H)), Symbol("x_t", (N,))
    assert str(RULES["lookup"].forward(W, ids=ids)) == "W_x[x_t]"
    [wrt_W] = _vjps("lookup", None, W, ids=ids)
    assert "onehot(x_t)" in wrt_W and "^T" in wrt_W and "@ g" in wrt_W


a, b, c = Symbol("a", (N, N)), Symbol("b", (N, N)), Symbol("c", (N, N))


@pytest.mark.parametrize(
    "formula, text",
    [
        ((a + b) @ c, "(a + b) @ c"),
        (a @ b + c, "a @ b + c"),
        (a - (b - c), "a - (b - c)"),
        (a - b + c, "a - b + c"),
        (a + (b - c), "a + b - c"),
        ((a * b) @ c, "(a ⊙ b) @ c"),
        (a * (b @ c), "a ⊙ (b @ c)"),
        (a @ (b @ c), "a @ b @ c"),
        ((a @ b).T, "(a @ b)^T"),
        (a.T @ b, "a^T @ b"),
        (a / (b * c), "a ⊘ (b ⊙ c)"),
        (2 * a, "2 · a"),
        (Fraction(1, 6) * a, "(1/6) · a"),
        (-1 * a, "(-1) · a"),
        (1 - a * a, "1 - a ⊙ a"),
        ((a + b).sum(axis=0), "1^T @ (a + b)"),
        ((a @ b).sum(axis=1), "a @ b @ 1"),
        (repeat_rows(Symbol("v", (N,)), N), "1 @ v"),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_brackets_only_where_needed(formula, text):
    assert str(formula) == text


def test_transposing_twice_gives_the_matrix_back():
    assert a.T.T is a


def test_numpy_scalars_on_the_left_build_expressions():
    assert isinstance(np.float64(2.0) * a, MatExpr)
    assert str(np.float64(0.5) * a) == "0.5 · a"


# -- shapes and evaluation ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: Symbol("x", (N, H)) @ Symbol("y", (N, H)), "inner dimensions"),
        (lambda: Symbol("x", (N, H)) + Symbol("y", (H, N)), "do not broadcast"),
        (lambda: Symbol("x", (N, H)).sum(axis=2), "axis=2"),
        (lambda: Symbol("x", (N, H))[Symbol("i", (N, H))], "row lookup takes row ids"),
        (lambda: one_hot(Symbol("i", (N, H)), D), "one_hot takes row ids"),
    ],
    ids=["matmul", "add", "sum axis", "lookup by a matrix", "one-hot of a matrix"],
)
def test_shape_mismatches_are_rejected_when_built(build, message):
    with pytest.raises(InvalidArgumentError, match=message):
        build()


x, y = Symbol("x", (N, H)), Symbol("y", (H, N))


@pytest.mark.parametrize(
    "formula, bindings, error, message",
    [
        (x @ y, {"x": np.ones((2, 3))}, UnknownNameError, "'y'"),
        (x @ y, {"x": np.ones((2, 3)), "y": np.ones(3)}, InputArrayError, r"y should have shape"),
        (x @ y, {"x": np.ones((2, 3)), "y": np.ones((3, 4))}, InputArrayError, "dimension 'N'"),
        (one_hot(Symbol("i", (N,)), D), {"i": np.array([0, 1])}, UnknownNameError, "'D'"),
        (one_hot(Symbol("i", (N,)), D), {"i": np.ones(2), "D": 3}, InputArrayError, "integers"),
    ],
    ids=["unbound symbol", "wrong rank", "N disagrees", "size of D unknown", "float row ids"],
)
def test_evaluation_errors_name_the_culprit(formula, bindings, error, message):
    with pytest.raises(error, match=message):
        formula.evaluate(bindings)


def test_row_lookup_and_its_adjoint_evaluate():
    W, ids, gN = Symbol("W", (D, H)), Symbol("ids", (N,)), Symbol("g", (N, H))
    values = {"W": np.arange(6.0).reshape(3, 2), "ids": np.array([2, 0, 2]), "g": np.ones((3, 2))}
    np.testing.assert_array_equal(W[ids].evaluate(values), values["W"][[2, 0, 2]])
    scattered = (one_hot(ids, D).T @ gN).evaluate({**values, "D": 3})
    np.testing.assert_array_equal(scattered, [[1, 1], [0, 0], [2, 2]])


def test_deep_formulas_print_and_evaluate_without_recursion():
    v = Symbol("v", (N,))
    formula = v
    for _ in range(20_000):
        formula = formula + v
    assert str(formula).count("v") == 20_001
    np.testing.assert_array_equal(formula.evaluate({"v": np.ones(2)}), [20_001, 20_001])


def test_symbols_are_listed_once_in_order():
    assert [s.name for s in (x @ y + x @ y).symbols()] == ["x", "y"]


# -- the column convention: every formula transposed, pushed down to the leaves -----------------
def _column_cases():
    from symbptt.engine import rules

    X, W, b = Symbol("X", ("N", "H")), Symbol("W", ("H", "C")), Symbol("b", ("C",))
    ids = Symbol("ids", ("N",))
    return {
        "affine": b + X @ W,
        "transpose": (X @ W).T @ X,
        "elementwise": rules.tanh(X) * (1 - X * X),
        "softmax": rules.softmax(X @ W, None) - one_hot(ids, "C"),
        "rows summed": (X @ W).sum(axis=0) + b,
        "row reduction": rules.logsumexp(X @ W, None),
        "repeat": repeat_rows(b, "N") * (X @ W),
        "scalar": (1 / (Symbol("N") * Symbol("T"))) * (X @ W),
    }


@pytest.mark.parametrize("label", list(_column_cases()))
def test_to_columns_is_the_transpose_of_the_row_form(label):
    from symbptt.engine.matexpr import to_columns

    expr = _column_cases()[label]
    rng = np.random.default_rng(0)
    sizes = {"N": 3, "H": 2, "C": 4, "T": 5}
    row = {
        "X": rng.standard_normal((3, 2)),
        "W": rng.standard_normal((2, 4)),
        "b": rng.standard_normal(4),
        "ids": np.array([0, 3, 1]),
    }
    column = {
        k: v.T if v.ndim == 2 else v.reshape(-1, 1) if v.dtype.kind == "f" else v
        for k, v in row.items()
    }
    want = np.asarray(expr.evaluate({**row, **sizes}))
    got = np.asarray(to_columns(expr).evaluate({**column, **sizes}))
    # A per-feature vector (k,) is a column (k, 1); a per-example one (N,) a row (1, N).
    expected = want.T if want.ndim == 2 else want.reshape(got.shape) if want.ndim == 1 else want
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_rebuild_keeps_the_shape_of_a_column_reduction():
    from symbptt.engine import rules
    from symbptt.engine.matexpr import rebuild, to_columns

    O = Symbol("O", ("N", "C"))
    column = to_columns(rules.logsumexp(O, None))
    assert column.shape == (1, "N")
    swapped = rebuild(column, lambda n: Symbol("P", n.shape) if n is column.arg else None)
    assert swapped.shape == (1, "N")
