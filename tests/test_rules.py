"""Each row of the rule table on its own: its VJP is the element-level derivative of its forward
map, on random small shapes, for every input."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import symengine as se
from hypothesis import given, settings
from hypothesis import strategies as st
from rule_cases import CASES, DIMS, float_problem, object_problem, symbol_matrix

from symbptt.engine.rules import RULES, vjp
from symbptt.errors import InternalError, InvalidArgumentError

SIZES = st.fixed_dictionaries({d: st.integers(1, 3) for d in DIMS})
SEEDS = st.integers(0, 2**32 - 1)
DIFFERENTIABLE = [label for label, case in CASES.items() if RULES[case.rule].differentiable]


def _evaluate(array, values: dict) -> np.ndarray:
    """Entries of an object array (or one expression) as floats at the given symbol values."""
    array = np.asarray(array, dtype=object)
    out = np.empty(array.shape)
    for index in np.ndindex(*array.shape):
        expr = se.sympify(array[index])
        out[index] = float(expr.xreplace({s: se.Float(values[s]) for s in expr.free_symbols}))
    return out


def _output_adjoint(shape, seed) -> np.ndarray:
    return np.random.default_rng([seed, 1]).uniform(-1.0, 1.0, shape)


@pytest.mark.parametrize("label", list(CASES))
@settings(deadline=None)
@given(sizes=SIZES, seed=SEEDS)
def test_float_and_symbolic_forward_agree(label, sizes, seed):
    case = CASES[label]
    rule = RULES[case.rule]
    floats = float_problem(case, sizes, seed)
    symbols, values = object_problem(case, floats)
    numeric = np.asarray(rule.forward(*floats.inputs, **floats.consts))
    symbolic = np.asarray(rule.forward(*symbols.inputs, **symbols.consts), dtype=object)
    assert symbolic.shape == numeric.shape
    np.testing.assert_allclose(_evaluate(symbolic, values), numeric, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("label", DIFFERENTIABLE)
@settings(deadline=None)
@given(sizes=SIZES, seed=SEEDS)
def test_vjp_matches_element_level_diff(label, sizes, seed):
    """VJP of input i == d<G, F(inputs)>/d(input i), entry by entry, where the derivative is
    SymEngine's `diff` of the symbolic forward map; for the float and the symbolic VJP."""
    case = CASES[label]
    rule = RULES[case.rule]
    floats = float_problem(case, sizes, seed)
    symbols, values = object_problem(case, floats)
    out_float = np.asarray(rule.forward(*floats.inputs, **floats.consts))
    out_symbolic = np.asarray(rule.forward(*symbols.inputs, **symbols.consts), dtype=object)
    G = _output_adjoint(out_float.shape, seed)
    g = symbol_matrix("g", G.shape)
    values.update(zip(g.flat, G.flat))
    scalar = se.Add(*[gi * fi for gi, fi in zip(g.flat, out_symbolic.flat)])
    for i, a in enumerate(symbols.inputs):
        if a is None:  # no bias: nothing to pull back to
            continue
        exact = _evaluate([scalar.diff(s) for s in a.flat], values).reshape(a.shape)
        pulled = np.asarray(vjp(rule, i, G, out_float, floats.inputs, floats.consts))
        assert pulled.shape == a.shape, f"{label}: VJP {i} has shape {pulled.shape}"
        np.testing.assert_allclose(pulled, exact, rtol=1e-12, atol=1e-12, err_msg=f"{label}, {i}")
        pulled = vjp(rule, i, g, out_symbolic, symbols.inputs, symbols.consts)
        np.testing.assert_allclose(
            _evaluate(pulled, values).reshape(a.shape), exact, rtol=1e-12, atol=1e-12
        )


@pytest.mark.parametrize("label", DIFFERENTIABLE)
@settings(deadline=None)
@given(sizes=SIZES, seed=SEEDS)
def test_float_vjp_matches_finite_differences(label, sizes, seed):
    """Independent of SymEngine, and the check for derivatives declared rather than derived
    (relu's step): central differences of <G, F(inputs)>, away from relu's kink."""
    case = CASES[label]
    rule = RULES[case.rule]
    floats = float_problem(case, sizes, seed)
    out = np.asarray(rule.forward(*floats.inputs, **floats.consts))
    G = _output_adjoint(out.shape, seed)
    h = 1e-6

    def objective(inputs) -> float:
        return float(np.sum(G * rule.forward(*inputs, **floats.consts)))

    for i, x in enumerate(floats.inputs):
        if x is None:
            continue
        numeric = np.zeros_like(x)
        for index in np.ndindex(*x.shape):
            moved = []
            for sign in (1, -1):
                x_moved = x.copy()
                x_moved[index] += sign * h
                moved.append(objective([*floats.inputs[:i], x_moved, *floats.inputs[i + 1 :]]))
            numeric[index] = (moved[0] - moved[1]) / (2 * h)
        pulled = vjp(rule, i, G, out, floats.inputs, floats.consts)
        np.testing.assert_allclose(pulled, numeric, rtol=1e-6, atol=1e-7, err_msg=f"{label}, {i}")


def test_every_rule_has_a_case():
    assert {case.rule for case in CASES.values()} == set(RULES)


def test_the_vocabulary():
    assert set(RULES) == {
        *("copy", "affine", "lookup", "add", "sum", "scale", "matmul", "transpose", "mul"),
        *("rowsum", "tanh", "sigmoid", "relu", "identity", "exp", "log", "softmax_ce", "rowmax"),
        *("columns", "hadamard", "lerp", "sub", "div", "power", "total", "concat", "softmax"),
        "composite",
    }


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "relu", "identity", "exp", "log"])
def test_elementwise_rules_declare_their_derivative(name):
    assert RULES[name].derivative is not None and RULES[name].arity == 1


def test_relu_derivative_is_zero_at_the_kink():
    rule = RULES["relu"]
    x = np.array([[-1.0, 0.0, 2.0]])
    np.testing.assert_array_equal(
        vjp(rule, 0, np.ones((1, 3)), rule.forward(x), [x], {}), [[0, 0, 1]]
    )
    a = symbol_matrix("a", (1, 3))
    pulled = vjp(rule, 0, np.ones((1, 3)), rule.forward(a), [a], {})
    np.testing.assert_array_equal(_evaluate(pulled, dict(zip(a.flat, x.flat))), [[0, 0, 1]])


def test_softmax_ce_forward_is_stable_at_large_logits():
    o = np.array([[1000.0, -1000.0, 999.0]])
    Y = np.array([[0.0, 0.0, 1.0]])
    loss = RULES["softmax_ce"].forward(o, Y=Y, m=o.max(axis=1))
    assert float(loss) == pytest.approx(np.log1p(np.exp(-1.0)) + 1.0, rel=1e-12)


def test_sigmoid_is_finite_at_large_inputs():
    s = RULES["sigmoid"].forward(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_array_equal(s, [0.0, 0.5, 1.0])


def test_rowmax_has_no_vjp():
    with pytest.raises(InternalError, match="rowmax"):
        vjp(RULES["rowmax"], 0, np.ones(2), np.ones(2), [np.ones((2, 3))], {})


@pytest.mark.parametrize("pairs", [0, 1, 3], ids=["no pair", "A without B", "A, B, A"])
def test_affine_rejects_unpaired_matrices(pairs):
    with pytest.raises(InvalidArgumentError, match="pairs"):
        RULES["affine"].forward(np.ones(2), *[np.ones((2, 2))] * pairs)


@pytest.mark.parametrize("name", ["sum", "add"])
def test_a_sum_of_many_terms_is_one_flat_add(name):
    """The loss of T=200 steps: one Add of 200 terms (a fold would nest, a ufunc stops at 64)."""
    terms = [symbol_matrix(f"L_{t}", ()) for t in range(200)]
    total = np.asarray(RULES[name].forward(*terms), dtype=object).item()
    assert isinstance(total, se.Add) and len(total.args) == 200


def test_symbolic_rules_never_import_sympy():
    """SymEngine imports all of SymPy (about 1 s) when a SymEngine scalar meets a NumPy array;
    no rule may do that, forward or backward, even on 0-d arrays (the loss)."""
    script = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
import numpy as np, symengine as se
from rule_cases import CASES, float_problem, object_problem, symbol_matrix
from symbptt.engine.rules import RULES, vjp
for label, case in CASES.items():
    rule = RULES[case.rule]
    symbols, _ = object_problem(case, float_problem(case, dict(N=2, K=2, D=3, H=2, C=3), 0))
    out = np.asarray(rule.forward(*symbols.inputs, **symbols.consts), dtype=object)
    for g in (symbol_matrix("g", out.shape), np.full(out.shape, se.Integer(1), dtype=object)):
        for i, a in enumerate(symbols.inputs):
            if rule.differentiable and a is not None:
                vjp(rule, i, g, out, symbols.inputs, symbols.consts)
print(sorted(m for m in sys.modules if m.split(".")[0] == "sympy"))
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
