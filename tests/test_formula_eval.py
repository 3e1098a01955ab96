"""The independent formula-language evaluator (tests/formula_eval.py) against plain NumPy BPTT.

The example files are the textbook BPTT recurrences, written by hand here (docs/formula-language.md
gives the same two): nothing in this module comes from symbptt. The reference below is a plain
loop over t in the row layout, itself checked against central finite differences of its loss.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from formula_eval import FormulaError, evaluate_text, parse_text
from hypothesis import given, settings
from hypothesis import strategies as st

ROW_EXAMPLE = """\
# symbptt: vanilla RNN, row convention (hand-written test copy)
a[t] = b + h[t-1] @ W_h + x[t] @ W_x
h[t] = tanh(a[t])
o[t] = c + h[t] @ V
yhat[t] = softmax(o[t])
h[0] = h0
da[T+1] = 0
do[t] = yhat[t] - onehot(y[t])
dh[t] = do[t] @ V.T + da[t+1] @ W_h.T
da[t] = dh[t] * (1 - h[t]**2)
dW_x = sum(t, x[t].T @ da[t])
dW_h = sum(t, h[t-1].T @ da[t])
db = sum(t, sum_rows(da[t]))
dV = sum(t, h[t].T @ do[t])
dc = sum(t, sum_rows(do[t]))
dh0 = da[1] @ W_h.T
dx[t] = da[t] @ W_x.T
"""

COLUMN_EXAMPLE = """\
a[t] = b + W_h @ h[t-1] + W_x @ x[t]
h[t] = tanh(a[t])
o[t] = c + V @ h[t]
yhat[t] = softmax(o[t])
h[0] = h0
da[T+1] = 0
do[t] = yhat[t] - onehot(y[t])
dh[t] = V.T @ do[t] + W_h.T @ da[t+1]
da[t] = dh[t] * (1 - h[t]**2)
dW_h = sum(t, da[t] @ h[t-1].T)
db = sum(t, sum_cols(da[t]))
dh0 = W_h.T @ da[1]
dx[t] = W_x.T @ da[t]
"""

# The column example completed with the gradients it leaves out.
COLUMN_FULL = (
    COLUMN_EXAMPLE
    + """\
dW_x = sum(t, da[t] @ x[t].T)
dV = sum(t, do[t] @ h[t].T)
dc = sum(t, sum_cols(do[t]))
"""
)

ALL_GRADS = ("W_x", "W_h", "b", "V", "c", "h0", "x")


# --------------------------------------------------------------------------- the reference


def reference_bptt(arrays, activation="tanh", reduction="sum"):
    """Loss and gradients by a plain loop over t (row layout); keys are model names."""
    x, y, W_x, W_h, V = (arrays[k] for k in ("x", "y", "W_x", "W_h", "V"))
    T, N = y.shape
    D, H = W_x.shape
    C = V.shape[1]
    tokens = np.issubdtype(x.dtype, np.integer)
    b = arrays.get("b", np.zeros(H))
    c = arrays.get("c", np.zeros(C))
    h0 = arrays.get("h0", np.zeros((N, H)))
    scale = 1.0 / (N * T) if reduction == "mean" else 1.0

    def act(z):
        return {"tanh": np.tanh, "relu": lambda v: np.maximum(v, 0.0), "identity": lambda v: v}[
            activation
        ](z)

    def act_grad(z, h):
        return {"tanh": 1.0 - h**2, "relu": (z > 0).astype(float), "identity": np.ones_like(z)}[
            activation
        ]

    xs = [np.eye(D)[x[t]] if tokens else x[t] for t in range(T)]
    hs, zs, ps = [h0], [], []
    loss = 0.0
    for t in range(T):
        z = hs[-1] @ W_h + xs[t] @ W_x + b
        h = act(z)
        o = h @ V + c
        e = np.exp(o - o.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        loss -= scale * np.log(p[np.arange(N), y[t]]).sum()
        zs.append(z)
        hs.append(h)
        ps.append(p)
    g = {k: np.zeros_like(v, dtype=float) for k, v in (("W_x", W_x), ("W_h", W_h), ("V", V))}
    g["b"], g["c"], g["x"] = np.zeros(H), np.zeros(C), np.zeros((T, N, D))
    da_next = np.zeros((N, H))
    for t in reversed(range(T)):
        do = scale * (ps[t] - np.eye(C)[y[t]])
        g["V"] += hs[t + 1].T @ do
        g["c"] += do.sum(axis=0)
        dh = do @ V.T + da_next @ W_h.T
        da = dh * act_grad(zs[t], hs[t + 1])
        g["W_h"] += hs[t].T @ da
        g["W_x"] += xs[t].T @ da
        g["b"] += da.sum(axis=0)
        g["x"][t] = da @ W_x.T
        da_next = da
    g["h0"] = da_next @ W_h.T
    return loss, g


def make_arrays(T, N, D, H, C, seed, tokens=False):
    rng = np.random.default_rng(seed)
    return {
        "x": rng.integers(0, D, size=(T, N)) if tokens else rng.normal(size=(T, N, D)),
        "y": rng.integers(0, C, size=(T, N)),
        "h0": rng.normal(size=(N, H)),
        "W_x": rng.normal(scale=0.7, size=(D, H)),
        "W_h": rng.normal(scale=0.7, size=(H, H)),
        "b": rng.normal(size=H),
        "V": rng.normal(scale=0.7, size=(H, C)),
        "c": rng.normal(size=C),
    }


@st.composite
def problems(draw):
    dims = {k: draw(st.integers(1, 3)) for k in ("N", "D", "H", "C")}
    dims["T"] = draw(st.integers(1, 4))
    return dims, draw(st.integers(0, 2**32 - 1))


def assert_matches(out, grads, keys=ALL_GRADS, rename=lambda m: m):
    expected = {"d" + rename(k) for k in keys}
    got = {k for k in out if k in {"d" + rename(m) for m in ALL_GRADS}}
    assert got == expected
    for k in keys:
        np.testing.assert_allclose(out["d" + rename(k)], grads[k], rtol=1e-9, atol=1e-11)


# --------------------------------------------------------------------------- the reference itself


@pytest.mark.parametrize(
    "activation, reduction, tokens",
    [("tanh", "sum", False), ("relu", "mean", False), ("identity", "sum", True)],
)
def test_reference_bptt_matches_finite_differences(activation, reduction, tokens):
    arrays = make_arrays(T=3, N=2, D=3, H=2, C=3, seed=7, tokens=tokens)
    _, grads = reference_bptt(arrays, activation, reduction)
    names = [k for k in ALL_GRADS if not (tokens and k == "x")]
    for k in names:
        numeric = np.zeros_like(arrays[k], dtype=float)
        for i in np.ndindex(arrays[k].shape):
            plus = {**arrays, k: arrays[k].copy()}
            minus = {**arrays, k: arrays[k].copy()}
            plus[k][i] += 1e-6
            minus[k][i] -= 1e-6
            diff = reference_bptt(plus, activation, reduction)[0]
            diff -= reference_bptt(minus, activation, reduction)[0]
            numeric[i] = diff / 2e-6
        np.testing.assert_allclose(grads[k], numeric, rtol=1e-5, atol=1e-7, err_msg=k)


# --------------------------------------------------------------------------- the two examples


@settings(max_examples=25, deadline=None, derandomize=True)
@given(problems())
def test_row_example_matches_reference(problem):
    dims, seed = problem
    arrays = make_arrays(**dims, seed=seed)
    _, grads = reference_bptt(arrays)
    out = evaluate_text(ROW_EXAMPLE, arrays, dims, "row")
    assert_matches(out, grads)
    assert out["dx"].shape == (dims["T"], dims["N"], dims["D"])


@settings(max_examples=25, deadline=None, derandomize=True)
@given(problems())
def test_column_example_matches_reference(problem):
    dims, seed = problem
    arrays = make_arrays(**dims, seed=seed)
    _, grads = reference_bptt(arrays)
    out = evaluate_text(COLUMN_EXAMPLE, arrays, dims, "column")
    assert_matches(out, grads, keys=("W_h", "b", "h0", "x"))
    full = evaluate_text(COLUMN_FULL, arrays, dims, "column")
    assert_matches(full, grads)
    # the forward values come back in the row layout too
    row = evaluate_text(ROW_EXAMPLE, arrays, dims, "row")
    for k in ("a", "h", "o", "yhat", "do", "dh", "da"):
        np.testing.assert_allclose(full[k], row[k], rtol=1e-9, atol=1e-11)


# --------------------------------------------------------------------------- variants


def _sub(text, old, new):
    assert old in text, old
    return text.replace(old, new)


def _drop(text, line):
    assert line + "\n" in text, line
    return text.replace(line + "\n", "")


def variant(text, kind, column=False):
    """The example file for a model variant, edited the way the language describes it."""
    if kind == "relu":
        text = _sub(text, "h[t] = tanh(a[t])", "h[t] = relu(a[t])")
        return _sub(text, "da[t] = dh[t] * (1 - h[t]**2)", "da[t] = dh[t] * step(a[t])")
    if kind == "identity":
        text = _sub(text, "h[t] = tanh(a[t])", "h[t] = identity(a[t])")
        return _sub(text, "da[t] = dh[t] * (1 - h[t]**2)", "da[t] = dh[t]")
    if kind == "tokens":
        if column:
            text = _sub(text, "W_x @ x[t]", "W_x @ onehot(x[t])")
            text = _sub(
                text, "dW_x = sum(t, da[t] @ x[t].T)", "dW_x = sum(t, da[t] @ onehot(x[t]).T)"
            )
            return _drop(text, "dx[t] = W_x.T @ da[t]")
        text = _sub(text, "x[t] @ W_x", "onehot(x[t]) @ W_x")
        text = _sub(text, "dW_x = sum(t, x[t].T @ da[t])", "dW_x = sum(t, onehot(x[t]).T @ da[t])")
        return _drop(text, "dx[t] = da[t] @ W_x.T")
    if kind == "h0_zero":
        text = _sub(text, "h[0] = h0", "h[0] = 0")
        return _drop(text, "dh0 = W_h.T @ da[1]" if column else "dh0 = da[1] @ W_h.T")
    if kind == "no_bias_b":
        text = _sub(text, "a[t] = b + ", "a[t] = ")
        return _drop(
            text, "db = sum(t, sum_cols(da[t]))" if column else "db = sum(t, sum_rows(da[t]))"
        )
    if kind == "mean":
        return _sub(
            text,
            "do[t] = yhat[t] - onehot(y[t])",
            "do[t] = (1 / (N * T)) * (yhat[t] - onehot(y[t]))",
        )
    raise AssertionError(kind)


VARIANTS = ("relu", "identity", "tokens", "h0_zero", "no_bias_b", "mean")


@pytest.mark.parametrize("convention", ["row", "column"])
@pytest.mark.parametrize("kind", VARIANTS)
@settings(max_examples=25, deadline=None, derandomize=True)
@given(problem=problems())
def test_variant_files_match_reference(kind, convention, problem):
    dims, seed = problem
    arrays = make_arrays(**dims, seed=seed, tokens=kind == "tokens")
    keys = list(ALL_GRADS)
    if kind == "h0_zero":
        del arrays["h0"]
        keys.remove("h0")
    if kind == "no_bias_b":
        del arrays["b"]
        keys.remove("b")
    if kind == "tokens":
        keys.remove("x")
    _, grads = reference_bptt(
        arrays,
        activation=kind if kind in ("relu", "identity") else "tanh",
        reduction="mean" if kind == "mean" else "sum",
    )
    base = ROW_EXAMPLE if convention == "row" else COLUMN_FULL
    text = variant(base, kind, column=convention == "column")
    out = evaluate_text(text, arrays, dims, convention)
    assert_matches(out, grads, keys=keys)


def _rename(text):
    return re.sub(
        r"(?<![A-Za-z0-9_])(d?)W_(h|x)\b", lambda m: m[1] + {"h": "W", "x": "U"}[m[2]], text
    )


@pytest.mark.parametrize("convention", ["row", "column"])
@pytest.mark.parametrize("keyed_by", ["model", "file"])
def test_renamed_parameters(convention, keyed_by):
    names = {"W_h": "W", "W_x": "U"}
    text = _rename(ROW_EXAMPLE if convention == "row" else COLUMN_FULL)
    assert "dW = sum(t, h[t-1].T @ da[t])" in text or "dW = sum(t, da[t] @ h[t-1].T)" in text
    assert "W_" not in text
    arrays = make_arrays(T=3, N=2, D=2, H=3, C=4, seed=1)
    _, grads = reference_bptt(arrays)
    if keyed_by == "file":
        arrays = {names.get(k, k): v for k, v in arrays.items()}
    dims = {"T": 3, "N": 2, "D": 2, "H": 3, "C": 4}
    out = evaluate_text(text, arrays, dims, convention, names=names)
    assert_matches(out, grads, rename=lambda m: names.get(m, m))
    with pytest.raises(ValueError, match="unknown name 'W_h'"):
        evaluate_text(ROW_EXAMPLE, arrays, dims, convention, names=names)


# --------------------------------------------------------------------------- wrong files differ

DIMS = {"T": 3, "N": 2, "D": 2, "H": 3, "C": 4}


@pytest.mark.parametrize(
    "convention, old, new, wrong",
    [
        ("row", "dW_h = sum(t, h[t-1].T @ da[t])", "dW_h = sum(t, h[t].T @ da[t])", "W_h"),
        ("column", "dW_h = sum(t, da[t] @ h[t-1].T)", "dW_h = sum(t, da[t] @ h[t].T)", "W_h"),
        ("row", "da[t+1] @ W_h.T", "da[t+1] @ W_h", None),
        ("column", "W_h.T @ da[t+1]", "W_h @ da[t+1]", None),
        ("row", "da[t] = dh[t] * (1 - h[t]**2)", "da[t] = dh[t] * (1 - h[t])**2", None),
    ],
)
def test_wrong_file_differs_from_reference(convention, old, new, wrong):
    arrays = make_arrays(**DIMS, seed=3)
    _, grads = reference_bptt(arrays)
    base = ROW_EXAMPLE if convention == "row" else COLUMN_FULL
    out = evaluate_text(_sub(base, old, new), arrays, DIMS, convention)
    assert not np.allclose(out["dW_h"], grads["W_h"], rtol=1e-6, atol=1e-8)
    if wrong == "W_h":  # only that line is wrong: the others still agree
        for k in ("W_x", "b", "V", "c", "h0", "x"):
            np.testing.assert_allclose(out["d" + k], grads[k], rtol=1e-9, atol=1e-11)


# --------------------------------------------------------------------------- errors


def _arrays():
    return make_arrays(**DIMS, seed=0)


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("h[t] = tanh(a[t])", "h[t] = tanhh(a[t])", r"line 3: unknown function 'tanhh'"),
        ("o[t] = c + h[t] @ V", "o[t] = c + h[t] @ VV", r"line 4: unknown name 'VV'"),
        ("da[T+1] = 0\n", "", r"da\[T\+1\] is used but no boundary line defines it"),
        ("h[0] = h0\n", "", r"h\[0\] is used but no boundary line defines it"),
        (
            "a[t] = b + h[t-1]",
            "a[t] = b + + h[t-1]",
            r"line 2, column 12: expected an expression, found '\+'",
        ),
        ("dh0 = da[1] @ W_h.T", "dh0 = da[t] @ W_h.T", r"uses t outside a per-step rule or sum"),
        ("dc = sum(t, sum_rows(do[t]))", "dc = sum(s, sum_rows(do[t]))", r"sum\(t, expr\)"),
        ("dV = sum(t, h[t].T @ do[t])", "dV = sum(t, h[t] @ do[t])", r"line 14: @:"),
        (
            "dV = sum(t, h[t].T @ do[t])",
            "dV = sum(t, do[t].T @ h[t])",
            r"line 14: dV has shape \(4, 3\), expected \(3, 4\)",
        ),
        ("o[t] = c + h[t] @ V", "o[t] = c + h @ V", r"'h' is per step"),
        ("o[t] = c + h[t] @ V", "o[t] = c + h[t] @ V[t]", r"'V' is not per step"),
        ("h[t] = tanh(a[t])", "h[t] = tanh(a[t]", r"expected '\)'"),
        ("h[t] = tanh(a[t])", "h[t] = tanh(a[t]) $", r"unexpected character '\$'"),
        ("dV = sum(t,", "dV = sum(t, sum(t, h[t])) + sum(t,", r"t is already bound"),
        ("onehot(y[t])", "onehot(o[t])", r"onehot takes x\[...\] or y\[...\]"),
        ("dW_x = sum", "W_x = sum", r"un-indexed target must be a gradient"),
        ("dx[t] = da[t] @ W_x.T", "dx[t+1] = da[t] @ W_x.T", r"fixed indices are boundaries"),
        ("dc = sum(t, sum_rows(do[t]))", "dc = 1\ndc = 2", r"dc is defined twice"),
        ("h[t] = tanh(a[t])", "h[t] = tanh(a[t], a[t])", r"tanh takes one argument"),
        (
            "dh[t] = do[t] @ V.T + da[t+1] @ W_h.T\nda[t] = dh[t] * (1 - h[t]**2)",
            "da[t] = dh[t] * (1 - h[t]**2)\ndh[t] = do[t] @ V.T + da[t+1] @ W_h.T",
            r"dh\[3\] is used before it is computed",
        ),
    ],
)
def test_errors_name_the_problem(old, new, message):
    text = _sub(ROW_EXAMPLE, old, new)
    with pytest.raises(ValueError, match=message):
        evaluate_text(text, _arrays(), DIMS, "row")


def test_error_types_and_inputs():
    assert issubclass(FormulaError, ValueError)
    arrays = _arrays()
    del arrays["b"]
    with pytest.raises(FormulaError, match="no array was given for 'b'"):
        evaluate_text(ROW_EXAMPLE, arrays, DIMS, "row")
    with pytest.raises(FormulaError, match="convention"):
        evaluate_text(ROW_EXAMPLE, _arrays(), DIMS, "diagonal")
    tokens = make_arrays(**DIMS, seed=0, tokens=True)
    with pytest.raises(FormulaError, match="integer ids"):  # token inputs have no gradient dx
        evaluate_text(
            variant(ROW_EXAMPLE, "tokens") + "dx[t] = da[t] @ W_x.T\n", tokens, DIMS, "row"
        )
    with pytest.raises(FormulaError, match="onehot needs a vector of integer ids"):
        evaluate_text(variant(ROW_EXAMPLE, "tokens"), _arrays(), DIMS, "row")
    with pytest.raises(FormulaError, match="unknown name 'dy'"):
        evaluate_text(ROW_EXAMPLE + "dy[t] = 0\n", _arrays(), DIMS, "row")
    with pytest.raises(FormulaError, match="reserved"):
        evaluate_text(ROW_EXAMPLE, _arrays(), DIMS, "row", names={"W_h": "sum"})
    with pytest.raises(FormulaError, match="two things"):
        evaluate_text(ROW_EXAMPLE, _arrays(), DIMS, "row", names={"W_h": "V"})
    with pytest.raises(FormulaError, match="line 1: @: matmul"):  # a column file read as row
        evaluate_text(COLUMN_EXAMPLE, _arrays(), {**DIMS, "D": 2, "H": 3}, "row")


# --------------------------------------------------------------------------- the language


def _value(expr, convention="row"):
    """The value of an expression, through a throwaway gradient line (dW_h is (H,H))."""
    out = evaluate_text(f"dW_h = {expr}\n", _arrays(), DIMS, convention)
    return out["dW_h"]


def test_precedence_and_associativity():
    W = _arrays()["W_h"]
    assert np.allclose(_value("-W_h**2"), -(W**2))
    assert np.allclose(_value("W_h ** -1"), 1 / W)
    assert np.allclose(_value("W_h @ W_h * W_h"), (W @ W) * W)  # left to right, as Python
    assert np.allclose(_value("W_h * W_h @ W_h"), (W * W) @ W)
    assert np.allclose(_value("W_h - W_h - W_h"), -W)
    assert np.allclose(_value("W_h / 2 / 2"), W / 4)
    assert np.allclose(_value("1 + 2 * W_h"), 1 + 2 * W)
    assert np.allclose(_value("W_h.T @ W_h"), W.T @ W)
    assert np.allclose(_value("-W_h.T @ W_h"), -(W.T @ W))
    assert np.allclose(_value("W_h.T**2"), (W.T) ** 2)
    assert np.allclose(_value("(W_h @ W_h).T"), (W @ W).T)
    assert np.allclose(_value("W_h.T.T"), W)
    assert np.allclose(_value("sum(t, W_h) - T * W_h + H * N - T"), 3 * 2 - 3)


def test_column_results_come_back_in_row_layout():
    W = _arrays()["W_h"]
    # in the column convention W_h is stored transposed; a gradient line comes back transposed
    assert np.allclose(_value("W_h", "column"), W)
    assert np.allclose(_value("W_h @ W_h", "column"), W @ W)  # (W^T W^T)^T = W W


def test_comments_blank_lines_and_whitespace():
    text = "\n".join(
        "  " + line + "   # trailing comment" if line and not line.startswith("#") else line
        for line in ("# header", "", *ROW_EXAMPLE.splitlines(), "", "# end")
    )
    arrays = _arrays()
    _, grads = reference_bptt(arrays)
    assert_matches(evaluate_text(text.replace(" ", "\t", 3), arrays, DIMS, "row"), grads)
    rules = parse_text(ROW_EXAMPLE)
    assert len(rules) == 16
    assert [str(r.index) for r in rules[:6]] == ["t", "t", "t", "t", "0", "T+1"]
