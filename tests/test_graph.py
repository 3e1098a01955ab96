"""The unrolled graph: topology, per-step copies, cost guard."""

import pytest

from symbptt.engine import cost
from symbptt.engine.graph import unroll
from symbptt.errors import ExpansionTooLargeError, UnknownNameError
from symbptt.models.dims import SHARED_PARAMETERS, Dims


def test_step_nodes_and_their_parents():
    g = unroll(Dims(N=2, D=3, H=2, C=3, T=3))
    assert g.node("a_1").parents == ("b^(1)", "h0", "W_h^(1)", "x_1", "W_x^(1)")
    assert g.node("a_3").parents == ("b^(3)", "h_2", "W_h^(3)", "x_3", "W_x^(3)")
    assert g.node("h_2").parents == ("a_2",)
    assert g.node("o_2").parents == ("c^(2)", "h_2", "V^(2)")
    assert g.node("L").parents == ("L_1", "L_2", "L_3")
    assert g.node("a_2").shape == (2, 2) and g.node("o_1").shape == (2, 3)


def test_each_step_uses_its_own_copy_of_every_shared_weight():
    T = 4
    g = unroll(Dims(N=1, D=1, H=2, C=2, T=T))
    for p in SHARED_PARAMETERS:
        copies = g.copies(p)
        assert [c.name for c in copies] == [f"{p}^({t})" for t in range(1, T + 1)]
        for t, c in enumerate(copies, 1):
            assert all(g.node(child).step == t for child in g.children(c.name))


def test_nodes_are_in_topological_order():
    g = unroll(Dims(N=2, D=1, H=1, C=2, T=3))
    seen = set()
    for node in g:
        assert set(node.parents) <= seen, node.name
        seen.add(node.name)


def test_definitions_only_use_parent_symbols():
    g = unroll(Dims(N=2, D=2, H=2, C=2, T=2))
    for node in g:
        if node.definition is None:
            continue
        allowed = {s for p in node.parents for s in g.node(p).symbols.flat}
        allowed |= {s for _, c in node.consts for s in g.node(c).symbols.flat}
        for d in node.definition.flat:
            assert d.free_symbols <= allowed, node.name


@pytest.mark.parametrize("dims", [Dims(1, 1, 1, 2, 1), Dims(2, 3, 2, 4, 3), Dims(3, 1, 2, 2, 5)])
def test_the_cost_model_counts_the_forward_graph(dims):
    g = unroll(dims)
    per_step = sum(n.symbols.size for n in g if n.step)  # steps 1..T: not W_h, h0 or L
    counts = cost.work(dims, None)
    assert counts["entries"] == 2 * per_step  # every symbol of a step and its adjoint
    assert counts["steps"] == dims.T


def test_too_large_sizes_are_refused_before_any_work():
    with pytest.raises(ExpansionTooLargeError, match=r"^T=10000000 with .* \(limit 2 min\)"):
        unroll(Dims(N=2, D=2, H=2, C=2, T=10_000_000))
    with pytest.raises(ExpansionTooLargeError, match=r"^N=5000 with .* \(limit 2 min\)"):
        unroll(Dims(N=5000, D=2, H=2, C=3, T=3))
    with pytest.raises(ExpansionTooLargeError, match=r"\(limit 0\.1 s\)"):
        unroll(Dims(N=2, D=2, H=4, C=2, T=200), max_seconds=0.1)
    assert cost.estimate(Dims(N=2, D=2, H=4, C=2, T=200), None).seconds < 10


def test_unknown_node_name():
    with pytest.raises(UnknownNameError, match="no node 'a_9'"):
        unroll(Dims(1, 1, 1, 2, 2)).node("a_9")
