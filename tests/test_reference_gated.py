"""The independent NumPy BPTT of the gated cells (the first piece of issue 11), checked against
central finite differences of its own loss on hypothesis-drawn shapes, H = 1, N = 1, T = 1 and
D == H included."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symbptt.reference import finite_differences
from symbptt.reference_gated import gru_forward_backward, lstm_forward_backward

SHAPES = st.tuples(
    st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(2, 4), st.integers(1, 3)
)


def _point(N, D, H, C, T, seed, gates, extra):
    rng = np.random.default_rng(seed)
    point = {
        "x": rng.standard_normal((T, N, D)),
        "y": rng.integers(0, C, (T, N)),
        "h0": rng.uniform(-0.9, 0.9, (N, H)),
        "W_x": rng.standard_normal((D, gates * H)) / np.sqrt(D),
        "W_h": rng.standard_normal((H, gates * H)) / np.sqrt(H),
        "V": rng.standard_normal((H, C)) / np.sqrt(H),
        "c": 0.1 * rng.standard_normal(C),
    }
    for name in extra:
        shape = (N, H) if name == "c0" else (gates * H,)
        point[name] = 0.3 * rng.standard_normal(shape)
    return point


CELLS = [
    ("lstm ifog", lambda p: lstm_forward_backward(p, gate_order="ifog"), 4, ("b",)),
    ("lstm ifgo with c0", lambda p: lstm_forward_backward(p, gate_order="ifgo"), 4, ("b", "c0")),
    ("gru reset after", lambda p: gru_forward_backward(p, reset="after"), 3, ("b_x", "b_h")),
    ("gru reset before", lambda p: gru_forward_backward(p, reset="before"), 3, ("b_x", "b_h")),
]


@pytest.mark.parametrize("label, cell, gates, extra", CELLS, ids=[c[0] for c in CELLS])
@settings(max_examples=12, deadline=None, derandomize=True)
@given(shape=SHAPES, seed=st.integers(0, 2**16))
def test_every_gradient_equals_central_differences(label, cell, gates, extra, shape, seed):
    point = _point(*shape, seed, gates, extra)
    loss, grads = cell(point)
    names = [n for n in point if n != "y"]
    assert set(grads) == set(names)
    numeric = finite_differences(lambda a: cell(a)[0], point, names)
    for name in names:
        np.testing.assert_allclose(grads[name], numeric[name], rtol=1e-5, atol=1e-7, err_msg=name)


def test_the_gate_orders_are_the_same_cell_with_permuted_columns():
    """ifgo holds ifog's columns g and o swapped: permuting W_x, W_h, b gives the same loss and
    permuted gradients (an independent check of the gate bookkeeping)."""
    p = _point(2, 3, 2, 3, 3, 1, 4, ("b",))
    H = 2
    perm = np.r_[0:H, H : 2 * H, 3 * H : 4 * H, 2 * H : 3 * H]
    q = {**p, "W_x": p["W_x"][:, perm], "W_h": p["W_h"][:, perm], "b": p["b"][perm]}
    loss_a, ga = lstm_forward_backward(p, gate_order="ifog")
    loss_b, gb = lstm_forward_backward(q, gate_order="ifgo")
    assert loss_a == pytest.approx(loss_b, rel=1e-12)
    np.testing.assert_allclose(ga["W_h"][:, perm], gb["W_h"], rtol=1e-12)
    np.testing.assert_allclose(ga["x"], gb["x"], rtol=1e-12)


def test_bad_options_are_one_sentence():
    p = _point(1, 1, 1, 2, 1, 0, 4, ("b",))
    with pytest.raises(ValueError, match="gate_order='iofg' must be one of ifog, ifgo"):
        lstm_forward_backward(p, gate_order="iofg")
    with pytest.raises(ValueError, match="reset='middle' must be one of after, before"):
        gru_forward_backward(_point(1, 1, 1, 2, 1, 0, 3, ("b_x", "b_h")), reset="middle")
