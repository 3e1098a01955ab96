"""Each row of the VJP rule table, checked on its own against SymEngine's element-level diff."""

import numpy as np
import pytest
import symengine as se

from symbptt.graph import symbol_matrix
from symbptt.rules import RULES, vjp


def _point(arrays, rng):
    return {s: float(rng.uniform(-1.5, 1.5)) for a in arrays for s in np.asarray(a).flat}


def _value(expr, values):
    return float(se.sympify(expr).xreplace({k: se.Float(v) for k, v in values.items()}))


def check_rule(name, shapes, const_shapes=()):
    """VJP of input i == d<G, F(inputs)>/d(input i), entry by entry, at a random point."""
    rule = RULES[name]
    inputs = [symbol_matrix(f"in{i}", s) for i, s in enumerate(shapes)]
    consts = {k: symbol_matrix(f"k{k}", s) for k, s in const_shapes}
    out = np.asarray(rule.forward(*inputs, **consts), dtype=object)
    g = symbol_matrix("g", out.shape)
    scalar = se.Add(*[gi * fi for gi, fi in zip(g.flat, out.flat)])
    values = _point([*inputs, *consts.values(), g], np.random.default_rng(7))
    for i, a in enumerate(inputs):
        pulled = np.asarray(vjp(rule, i, g, out, inputs, consts))
        assert pulled.shape == a.shape, f"{name}: VJP {i} has shape {pulled.shape}"
        for s, p in zip(a.flat, pulled.flat):
            exact = _value(scalar.diff(s), values)
            assert _value(p, values) == pytest.approx(exact, rel=1e-12, abs=1e-12), (name, i, s)


RULE_CASES = {
    "copy": dict(shapes=[(2, 3)]),
    "affine_in": dict(shapes=[(3,), (2, 3), (3, 3), (2, 1), (1, 3)]),
    "affine_in, D != H, N=1": dict(name="affine_in", shapes=[(2,), (1, 2), (2, 2), (1, 3), (3, 2)]),
    "affine_out": dict(shapes=[(4,), (2, 3), (3, 4)]),
    "tanh": dict(shapes=[(2, 3)]),
    "softmax_ce": dict(shapes=[(2, 3)], const_shapes=[("Y", (2, 3)), ("m", (2,))]),
    "sum": dict(shapes=[(), (), ()]),
}


@pytest.mark.parametrize("label", list(RULE_CASES))
def test_rule_vjp_matches_symbolic_diff(label):
    case = dict(RULE_CASES[label])
    check_rule(case.pop("name", label), **case)


def test_every_differentiable_rule_is_tested():
    tested = {c.get("name", k) for k, c in RULE_CASES.items()}
    assert {n for n, r in RULES.items() if r.differentiable} <= tested


@pytest.mark.parametrize("name", ["tanh", "affine_out"])
def test_float_and_symbolic_forward_agree(name):
    rng = np.random.default_rng(0)
    shapes = {"tanh": [(2, 3)], "affine_out": [(4,), (2, 3), (3, 4)]}[name]
    floats = [rng.standard_normal(s) for s in shapes]
    symbols = [symbol_matrix(f"in{i}", s) for i, s in enumerate(shapes)]
    values = {s: v for a, f in zip(symbols, floats) for s, v in zip(a.flat, f.flat)}
    symbolic = RULES[name].forward(*symbols)
    numeric = RULES[name].forward(*floats)
    for e, v in zip(np.asarray(symbolic).flat, np.asarray(numeric).flat):
        assert _value(e, values) == pytest.approx(v, rel=1e-13)


def test_softmax_ce_forward_is_stable_at_large_logits():
    o = np.array([[1000.0, -1000.0, 999.0]])
    Y = np.array([[0.0, 0.0, 1.0]])
    loss = RULES["softmax_ce"].forward(o, Y=Y, m=o.max(axis=1))
    assert float(loss) == pytest.approx(np.log1p(np.exp(-1.0)) + 1.0, rel=1e-12)
