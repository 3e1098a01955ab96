"""Regressions from the review of model files (issue 17): the first-use check at relu's kink
and on steep cells, the printer's powers, zero states in blocks, names that collide with
generated ones, rules that reach no loss, bad files as one-sentence errors, loss forms, the
column convention."""

from __future__ import annotations

import html
import importlib.util

import numpy as np
import pytest

import symbptt.models.evaluate as evaluate
from symbptt.engine import matexpr as mx
from symbptt.engine.trust import ModelCheckError, check_model
from symbptt.models import from_text
from symbptt.models.evaluate import Evaluator, differences

RNN = """x[t]: (N, D)
y[t]: (N,) in C
h0: (N, H)
W_x: (D, H)
W_h: (H, H)
b: (H,)
V: (H, C)
c: (C,)
h[0] = h0
a[t] = b + h[t-1] @ W_h + x[t] @ W_x
h[t] = tanh(a[t])
o[t] = c + h[t] @ V
L = sum(t, cross_entropy(o[t], y[t]))
"""

STACKED_RELU = """x[t]: (N, D)
y[t]: (N,) in C
W_x1: (D, H)
W_h1: (H, H)
b1: (H,)
W_x2: (H, K)
W_h2: (K, K)
b2: (K,)
V: (K, C)
c: (C,)
h1[0] = 0
h2[0] = 0
h1[t] = relu(h1[t-1] @ W_h1 + x[t] @ W_x1 + b1)
h2[t] = relu(h2[t-1] @ W_h2 + h1[t] @ W_x2 + b2)
o[t] = h2[t] @ V + c
L = sum(t, cross_entropy(o[t], y[t]))
"""

#: Cells the first-use check refused (exit 3) although the engine was right: relu, whose kink
#: a difference stencil can straddle, and steep cells, where a fixed step is too coarse.
RIGHT_CELLS = {
    "relu": RNN.replace("tanh(a[t])", "relu(a[t])"),
    "relu, zero state": RNN.replace("tanh(a[t])", "relu(a[t])")
    .replace("h[0] = h0", "h[0] = 0")
    .replace("h0: (N, H)\n", ""),
    "two relu layers": STACKED_RELU,
    "tanh(10 a)": RNN.replace("tanh(a[t])", "tanh(10 * a[t])"),
    "tanh(20 a)": RNN.replace("tanh(a[t])", "tanh(20 * a[t])"),
    "b fifty times": RNN.replace("a[t] = b +", "a[t] = " + "b + " * 50),
}


#: The check without PyTorch (differences alone), and with it where it is installed.
BACKENDS = ["numpy", *(["torch"] if importlib.util.find_spec("torch") else [])]


@pytest.fixture(params=BACKENDS)
def autograd(request, monkeypatch):
    """Run a check without PyTorch's autograd (differences alone), and with it."""
    if request.param == "numpy":
        monkeypatch.setattr(evaluate, "torch_gradients", lambda *a, **k: None)
    return request.param


@pytest.mark.parametrize("label", list(RIGHT_CELLS))
def test_a_right_engine_passes_the_first_use_check(label, autograd):
    record = check_model(from_text(RIGHT_CELLS[label]))
    assert record.max_error < 1e-8 and len(record.shapes) == 3
    assert record.unresolved == 0 and record.entries > 0  # every entry was compared
    assert (record.torch_error is None) == (autograd == "numpy")


@pytest.mark.parametrize("label", ["relu", "two relu layers", "tanh(20 a)", "b fifty times"])
def test_a_slightly_wrong_gradient_is_still_caught(label, autograd, monkeypatch):
    """The engine's gradient off by 1e-5 of its scale in one entry: the differences' error
    estimates leave the check tight enough to see it (and autograd sees it too)."""
    import symbptt.engine.compile as compile_module

    spec = from_text(RIGHT_CELLS[label])
    real = compile_module.gradient_function
    wrong = spec.gradient_names[1]

    def off(dims, model):
        f = real(dims, model)

        def gradients(point):
            out = dict(f(point))
            g = np.array(out[wrong], dtype=float)
            g.flat[0] += 1e-5 * max(1.0, float(np.abs(g).max()))
            out[wrong] = g
            return out

        return gradients

    monkeypatch.setattr(compile_module, "gradient_function", off)
    with pytest.raises(ModelCheckError, match=f"dL/d{wrong} disagrees with"):
        check_model(spec)


def test_differences_step_off_a_kink_of_relu():
    """relu(x w) with x w = 5e-4: the first stencil (steps up to 2e-3) straddles the kink,
    a smaller one does not; the derivative is the one of the side the point is on."""
    text = "x[t]: (N, D)\nW: (D, H)\nh[t] = relu(x[t] @ W)\nL = sum(t, sum(h[t] * h[t]))\n"
    model = from_text(text).definition
    x, w = np.array([[[1.0]]]), np.array([[5e-4]])
    arrays = {"x": x, "W": w}
    out = differences(Evaluator(model), arrays, {"N": 1, "D": 1, "H": 1}, 1, ["W", "x"])
    # L = (x w)^2 for x w > 0: dL/dw = 2 x^2 w, dL/dx = 2 x w^2
    assert not out.kinks["W"].any() and not out.kinks["x"].any()
    np.testing.assert_allclose(out.values["W"], [[2 * 1.0 * 5e-4]], rtol=1e-8)
    np.testing.assert_allclose(out.values["x"], [[[2 * 5e-4**2]]], rtol=1e-6)
    assert out.errors["W"].max() < 1e-9


def test_differences_of_a_steep_function_settle_with_an_honest_error_estimate():
    """tanh(40 x w): the first step's estimate is off by far more than 1e-6; the halved steps
    settle, and the estimate's error bound covers the true error."""
    text = "x[t]: (N, D)\nW: (D, H)\nh[t] = tanh(40 * (x[t] @ W))\nL = sum(t, sum(h[t]))\n"
    model = from_text(text).definition
    x, w = np.array([[[1.0]]]), np.array([[0.01]])
    out = differences(Evaluator(model), {"x": x, "W": w}, {"N": 1, "D": 1, "H": 1}, 1, ["W"])
    exact = 40 * (1 - np.tanh(0.4) ** 2)
    assert abs(out.values["W"][0, 0] - exact) <= out.errors["W"][0, 0] < 1e-8


# -- the formula printer's powers and precedence (finding 3) ----------------------------------
def _expressions():
    """Random matrix expressions over A, B (2, 3) and W (3, 3): sums, differences, products,
    self products X * X (printed X**2), quotients by positive denominators (2 + X * X), negative
    powers 1 / (X * X), numbers (negative ones and fractions too), tanh, products with W."""
    from fractions import Fraction

    from hypothesis import strategies as st

    A, B = mx.Symbol("A", ("N", "H")), mx.Symbol("B", ("N", "H"))
    W = mx.Symbol("W", ("H", "H"))
    numbers = st.sampled_from([2, 3, Fraction(1, 2), Fraction(-3, 2), -1, 0.25])

    def grow(children):
        pair = st.tuples(children, children)
        return st.one_of(
            pair.map(lambda p: p[0] + p[1]),
            pair.map(lambda p: p[0] - p[1]),
            pair.map(lambda p: p[0] * p[1]),
            children.map(_square),
            pair.map(lambda p: p[0] / (2 + p[1] * p[1])),
            children.map(lambda x: _inverse_square(1 + x * x)),
            st.tuples(numbers, children).map(lambda p: mx.Constant(p[0]) * p[1]),
            st.tuples(children, numbers).map(lambda p: p[0] / mx.Constant(p[1])),
            children.map(lambda x: mx.function("tanh", x, np.tanh)),
            children.map(lambda x: x @ W),
        )

    return st.recursive(st.sampled_from([A, B]), grow, max_leaves=8)


def _square(x):
    """x * x, the one node twice (a self product)."""
    return x * x


def _inverse_square(x):
    """1 / (x * x), the one node x twice: how the matrix form writes x ** -2."""
    return 1 / (x * x)


def _read_back(text: str, arrays: dict) -> np.ndarray:
    from formula_eval import evaluate_text

    model = {
        "steps": {"z": ("N", "H")},
        "globals": {"A": ("N", "H"), "B": ("N", "H"), "W": ("H", "H")},
        "inputs": {},
        "sizes": ("N", "H", "T"),
    }
    out = evaluate_text(f"z[t] = {text}\n", arrays, {"N": 2, "H": 3, "T": 1}, "row", model=model)
    return out["z"][0]


def test_a_printed_formula_reads_back_to_its_value():
    from hypothesis import given, settings

    from symbptt.derivation.printers import FormulaPrinter

    rng = np.random.default_rng(5)
    arrays = {"A": rng.standard_normal((2, 3)), "B": rng.standard_normal((2, 3))}
    arrays["W"] = rng.standard_normal((3, 3)) / 2

    @settings(max_examples=150, deadline=None, derandomize=True)
    @given(_expressions())
    def check(expr):
        text = FormulaPrinter().doprint(expr)
        want = np.broadcast_to(expr.evaluate(arrays), (2, 3))
        np.testing.assert_allclose(_read_back(text, arrays), want, rtol=1e-10, atol=1e-12)

    check()


@pytest.mark.parametrize(
    "build, text",
    [
        (lambda X, Y: _inverse_square(2 + X * X), "1 / (2 + X**2)**2"),
        (lambda X, Y: _square(X + Y), "(X + Y)**2"),
        (lambda X, Y: _square(X * X), "(X**2)**2"),
        (lambda X, Y: Y / (X * X), "Y / X**2"),
        (lambda X, Y: _square(X.T), "X.T**2"),
        (lambda X, Y: _square(mx.Constant(-1) * X), "((-1) * X)**2"),
    ],
)
def test_self_products_print_as_powers(build, text):
    from symbptt.derivation.printers import FormulaPrinter

    X, Y = mx.Symbol("X", ("H", "H")), mx.Symbol("Y", ("H", "H"))
    assert FormulaPrinter().doprint(build(X, Y)) == text


# -- every gallery file through graph, html and latex (finding 4) -------------------------------
def _sizes(spec) -> list[str]:
    """--size NAME=2 for a file's own sizes (K of stacked_rnn, Q of d2l_linear)."""
    out = []
    for name in spec.size_names:
        if name not in ("N", "D", "H", "C"):
            out += ["--size", f"{name}=2"]
    return out


def _gallery():
    from symbptt.models.filespec import GALLERY

    return GALLERY


def _description(spec) -> dict:
    """The model's names and shapes for the independent evaluator (as test_filemodels)."""
    from symbptt.engine.matrix_form import matrix_form

    form = matrix_form(spec)
    return {
        "steps": {line.target.base: line.target.shape for line in form.model},
        "globals": {i.name: i.shape for i in spec.inputs if i.role in ("parameter", "initial")},
        "inputs": {i.name: (("ids", i.bound) if i.integer else i.shape[1:]) for i in spec.per_step},
        "sizes": (*spec.size_names, "T"),
        "no_gradient": tuple(i.name for i in spec.inputs if i.role == "upstream"),
    }


def _commands_work(path, tmp_path, capsys) -> None:
    """graph, html and latex on a model file: exit 0, the graph has every rule's node at
    step 2, the page names the model, and the derivation latex prints, read by the
    independent evaluator, gives the engine's gradients (row and column)."""
    from formula_eval import evaluate_text

    from symbptt.cli import main
    from symbptt.engine.compile import gradient_function
    from symbptt.models import from_file
    from symbptt.models.dims import Dims
    from symbptt.pictures.graph import NODE_SIZE
    from symbptt.pictures.notation import name_label

    spec = from_file(path)
    sizes, model = _sizes(spec), ["--model", str(path)]
    dot = tmp_path / "g.dot"
    assert main(["graph", *model, *sizes, "--T", "2", "-o", str(dot), "--force"]) == 0
    text = dot.read_text()
    for rule in spec.definition.rules:  # (at step 1 a function of a zero state is a number)
        label = name_label(rule.name, NODE_SIZE, step="2")  # name_2, in the notation
        assert f'"{rule.name}_2" [label=<{label}>' in text
    page = tmp_path / "g.html"
    assert main(["html", *model, *sizes, "--T", "2", "-o", str(page), "--force"]) == 0
    assert html.escape(spec.title) in page.read_text()
    dims = spec.complete(Dims(N=2, D=3, H=2, C=3, T=2), 2)
    point = spec.random_point(dims, seed=3)
    truth = gradient_function(dims, spec)(point)
    for convention in ("row", "column"):
        out = tmp_path / f"d_{convention}.txt"
        argv = ["latex", *model, *sizes, "--T", "2", "--wrt", "all", "--format", "text"]
        assert main([*argv, "--convention", convention, "-o", str(out), "--force"]) == 0
        read = evaluate_text(
            out.read_text(), point, dims.sizes, convention, model=_description(spec)
        )
        for g in spec.gradient_names:
            np.testing.assert_allclose(read["d" + g], truth[g], rtol=1e-9, atol=1e-12)
    capsys.readouterr()


@pytest.mark.parametrize("name", _gallery())
def test_graph_html_and_latex_work_on_every_gallery_file(name, tmp_path, capsys):
    from symbptt.models.filespec import gallery_path

    _commands_work(gallery_path(name), tmp_path, capsys)


#: A zero state inside hstack or vstack: the block of zeros beside x[t] at step 1.
ZERO_IN_BLOCKS = {
    "hstack(x, h)": """x[t]: (N, D)
y[t]: (N,) in C
W: (D + H, H)
V: (H, C)
h[0] = 0
h[t] = tanh(hstack(x[t], h[t-1]) @ W)
o[t] = h[t] @ V
L = sum(t, cross_entropy(o[t], y[t]))
""",
    "hstack(h, x), named": """x[t]: (N, D)
y[t]: (N,) in C
W: (H + D, H)
V: (H, C)
h[0] = 0
z[t] = hstack(h[t-1], x[t])
h[t] = tanh(z[t] @ W)
o[t] = h[t] @ V
L = sum(t, cross_entropy(o[t], y[t]))
""",
    "hstack(h @ U, sigmoid(h))": """x[t]: (N, D)
y[t]: (N,) in C
W: (D, H)
U: (H, H)
V: (H, C)
h[0] = 0
h[t] = tanh(x[t] @ W + colblock(hstack(h[t-1] @ U, sigmoid(h[t-1])), 1, 2))
o[t] = h[t] @ V
L = sum(t, cross_entropy(o[t], y[t]))
""",
    "vstack(x @ W, h)": """x[t]: (N, D)
y[t]: (N,) in C
W: (D, H)
V: (H, C)
h[0] = 0
h[t] = tanh(x[t] @ W + 0.5 * rowblock(vstack(x[t] @ W, h[t-1]), 2, 2))
o[t] = h[t] @ V
L = sum(t, cross_entropy(o[t], y[t]))
""",
}


@pytest.mark.parametrize("label", list(ZERO_IN_BLOCKS))
def test_a_zero_state_inside_a_block_works_in_every_command(label, tmp_path, capsys):
    path = tmp_path / "cell.txt"
    path.write_text(ZERO_IN_BLOCKS[label])
    _commands_work(path, tmp_path, capsys)


# -- latex on weights inside expressions with a zero state, a loss reading h[t-1] (finding 6) ---
_SMALL = """x[t]: (N, D)
y[t]: (N,) in C
W: (D, H)
M: (H, H)
V: (H, C)
h[0] = 0
h[t] = tanh(x[t] @ W + h[t-1] @ (M * 0.5))
o[t] = h[t] @ V
L = sum(t, cross_entropy(o[t], y[t]))
"""
LATEX_CASES = {
    "h[t-1] @ (M * 0.5)": _SMALL,
    "h[t-1] @ (M + M.T)": _SMALL.replace("(M * 0.5)", "(M + M.T)"),
    "h[t-1] @ M / 2": _SMALL.replace("(M * 0.5)", "M / 2"),
    "(h[t-1] * 2) @ (M - M.T), h0 input": _SMALL.replace(
        "h[t-1] @ (M * 0.5)", "(h[t-1] * 2) @ (M - M.T)"
    )
    .replace("h[0] = 0", "h[0] = h0")
    .replace("W: (D, H)", "W: (D, H)\nh0: (N, H)"),
    "z[t] = h[t-1] * 2, a number at step 1": _SMALL.replace(
        "h[t] = tanh(x[t] @ W + h[t-1] @ (M * 0.5))",
        "z[t] = h[t-1] * 2\nh[t] = tanh(x[t] @ W + z[t] @ M)",
    ),
    "a loss reading h[t-1]": RNN.replace(
        "L = sum(t, cross_entropy(o[t], y[t]))",
        "L = sum(t, cross_entropy(o[t], y[t]) + sum(h[t-1]))",
    ),
    "a loss reading h[t-1], zero state": RNN.replace(
        "L = sum(t, cross_entropy(o[t], y[t]))",
        "L = sum(t, cross_entropy(o[t], y[t]) + sum(h[t-1] * h[t]))",
    )
    .replace("h[0] = h0", "h[0] = 0")
    .replace("h0: (N, H)\n", ""),
}


@pytest.mark.parametrize("label", list(LATEX_CASES))
def test_latex_graph_and_html_on_weights_in_expressions_and_a_loss_at_t_minus_1(
    label, tmp_path, capsys
):
    path = tmp_path / "cell.txt"
    path.write_text(LATEX_CASES[label])
    check_model(from_text(LATEX_CASES[label]))  # the engine agrees with the file's equations
    _commands_work(path, tmp_path, capsys)


def test_a_loss_reading_a_state_at_t_minus_1_reads_it_through_a_quantity_of_its_step():
    model = from_text(LATEX_CASES["a loss reading h[t-1]"]).definition
    rule = next(r for r in model.rules if r.name == "h_prev")
    assert str(rule.expr.index.text()) == "t-1" and rule.expr.name == "h"
    taken = RNN.replace("c: (C,)", "c: (C,)\nh_prev: (H,)").replace(
        "a[t] = b +", "a[t] = b + h_prev +"
    )
    taken = taken.replace(
        "L = sum(t, cross_entropy(o[t], y[t]))",
        "L = sum(t, cross_entropy(o[t], y[t]) + sum(h[t-1]))",
    )
    names = [r.name for r in from_text(taken).definition.rules]
    assert "h_prev2" in names  # a free name


# -- names that collide with the names symbptt generates (finding 7) ----------------------------
def _with_input(name: str) -> str:
    """The vanilla file with one more bias-like input of this name."""
    return RNN.replace("c: (C,)", f"c: (C,)\n{name}: (H,)").replace(
        "a[t] = b +", f"a[t] = b + {name} +"
    )


NAMES_THAT_WORK = {
    "logits named yhat[t]": RNN.replace("o[t]", "yhat[t]"),
    "an input named yhat": _with_input("yhat"),
    "an input named yhat_1": _with_input("yhat_1"),
    "an input named yhat, logits named phat[t]": _with_input("yhat").replace("o[t]", "phat[t]"),
}


@pytest.mark.parametrize("label", list(NAMES_THAT_WORK))
def test_a_name_symbptt_also_generates_works(label, tmp_path, capsys):
    """The derivation names softmax(o) yhat only where the file leaves that name free."""
    from symbptt.derivation import derivation

    path = tmp_path / "cell.txt"
    path.write_text(NAMES_THAT_WORK[label])
    _commands_work(path, tmp_path, capsys)
    spec = from_text(NAMES_THAT_WORK[label])
    lines = derivation(2, "all", model=spec).text().splitlines()
    softmax = [line for line in lines if "= softmax(" in line]
    assert len(softmax) == 1
    generated = softmax[0].split("[")[0]
    file_names = {d.name for d in spec.definition.declarations} | {
        r.name for r in spec.definition.rules
    }
    assert generated not in file_names and not any(
        n.startswith(generated + "_") for n in file_names
    )


NAMES_REFUSED = {
    "L_1": (_with_input("L_1"), "'L_1' reads as the loss term of step 1", "L_1: (H,)"),
    "L_3": (_with_input("L_3"), "'L_3' reads as the loss term of step 3", "L_3: (H,)"),
    "dW_h beside W_h": (_with_input("dW_h"), "'dW_h' reads as the gradient of W_h", "dW_h:"),
    "dh beside h[t]": (_with_input("dh"), "'dh' reads as the gradient of h", "dh: (H,)"),
    "dx beside x[t]": (_with_input("dx"), "'dx' reads as the gradient of x", "dx: (H,)"),
    "a rule dz[t] before z[t]": (
        RNN.replace("h[t] = tanh(a[t])", "dz[t] = tanh(a[t])\nz[t] = dz[t]\nh[t] = z[t]"),
        "'dz' reads as the gradient of z",
        "dz[t] = tanh(a[t])",
    ),
}


@pytest.mark.parametrize("label", list(NAMES_REFUSED))
def test_a_name_that_reads_as_a_generated_one_is_refused_with_its_line(label, tmp_path, capsys):
    from symbptt.cli import main

    text, message, line = NAMES_REFUSED[label]
    path = tmp_path / "cell.txt"
    path.write_text(text)
    assert main(["derive", "--model", str(path)]) == 2
    err = capsys.readouterr().err
    rows = text.splitlines()
    number = next(k for k, row in enumerate(rows, start=1) if row.startswith(line))
    assert message in err and f"cell.txt, line {number}, column " in err
    assert "^" in err and "Traceback" not in err


# -- a rule that reaches no loss (finding 8) -----------------------------------------------------
UNREACHED = {
    "z[t] = h[t] * 2": (RNN.replace("o[t] = c", "z[t] = h[t] * 2\no[t] = c"), "z"),
    "a state nothing reads": (
        RNN.replace("o[t] = c", "s[t] = s[t-1] + h[t]\no[t] = c").replace(
            "h[0] = h0", "h[0] = h0\ns[0] = 0"
        ),
        "s",
    ),
    "a prediction the loss does not read": (
        RNN.replace("o[t] = c + h[t] @ V", "o[t] = c + h[t] @ V\np[t] = softmax(o[t])"),
        "p",
    ),
}


@pytest.mark.parametrize("label", list(UNREACHED))
def test_a_rule_that_does_not_reach_the_loss_is_refused(label, tmp_path, capsys):
    from symbptt.cli import main

    text, name = UNREACHED[label]
    path = tmp_path / "cell.txt"
    path.write_text(text)
    assert main(["latex", "--model", str(path), "--wrt", "all", "--format", "text"]) == 2
    err = capsys.readouterr().err
    number = next(k for k, row in enumerate(text.splitlines(), 1) if row.startswith(f"{name}[t]"))
    assert f"cell.txt, line {number}, column 1: {name}[t] does not reach the loss L" in err
    assert err.count("\n") == 3 and "^" in err  # the sentence, the line, the caret


def test_a_layer_has_no_loss_to_reach():
    """A layer's outputs are what no rule reads: every rule of a layer is used or an output."""
    layer = (
        "x[t]: (N, D)\nW: (D, H)\nU: (H, H)\nh[0] = 0\n"
        "z[t] = h[t-1] @ U\nh[t] = tanh(x[t] @ W + z[t])\n"
    )
    model = from_text(layer).definition
    assert model.loss is None and model.outputs == ("h",)


# -- bad files: one sentence with the file, the line, the column and a caret (findings 10, 11) --
def _rnn_with(old: str, new: str) -> str:
    assert old in RNN
    return RNN.replace(old, new)


BAD_FILES = {
    "a number too large": (
        _rnn_with("h[t] = tanh(a[t])", "h[t] = tanh(a[t]) * 1e400"),
        "h[t] = tanh(a[t]) * 1e400",
        "too large for a float",
    ),
    "300 nested calls": (
        _rnn_with("h[t] = tanh(a[t])", "h[t] = " + "tanh(" * 300 + "a[t]" + ")" * 300),
        "h[t] = tanh(tanh(",
        "nests 300 operations",
    ),
    "a sum of 3000 terms": (
        _rnn_with("a[t] = b +", "a[t] = b + " + "0 * b + " * 3000),
        "a[t] = b + 0 * b",
        "more than the 100 a line may",
    ),
    "a power 0": (
        _rnn_with("h[t] = tanh(a[t])", "h[t] = tanh(a[t]) ** 0"),
        "h[t] = tanh(a[t]) ** 0",
        "X ** 0 is 1 in every entry",
    ),
    "a division by the number 0": (
        _rnn_with("h[t] = tanh(a[t])", "h[t] = tanh(a[t]) / 0"),
        "h[t] = tanh(a[t]) / 0",
        "a division by 0",
    ),
    "a rule that is a number": (
        _rnn_with("h[t] = tanh(a[t])", "k[t] = 2\nh[t] = tanh(a[t]) * k[t]"),
        "k[t] = 2",
        "k[t] is the same number at every step",
    ),
    "a log of a negative number": (
        _rnn_with("h[t] = tanh(a[t])", "h[t] = log(tanh(a[t]) - 5)"),
        "h[t] = log(tanh(a[t]) - 5)",
        "log of a number <= 0",
    ),
}


@pytest.mark.parametrize("label", list(BAD_FILES))
def test_a_bad_file_is_one_sentence_naming_the_file_the_line_and_the_column(
    label, tmp_path, capsys
):
    from symbptt.cli import main

    text, line, message = BAD_FILES[label]
    path = tmp_path / "cell.txt"
    path.write_text(text)
    with __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("error")  # a NumPy warning would fail here
        assert main(["derive", "--model", str(path), "--T", "2"]) == 2
    err = capsys.readouterr().err
    number = next(k for k, row in enumerate(text.splitlines(), 1) if row.startswith(line))
    first, shown, mark = err.rstrip("\n").split("\n")
    assert first.startswith(f"symbptt: error: {path}, line {number}, column ")
    assert message in first and shown.strip().startswith(line[:20])
    column = int(first.split(", column ")[1].split(":")[0])
    assert mark == "    " + " " * (column - 1) + "^"


def test_a_log_that_fails_only_at_derives_point_is_located_like_the_check():
    """log(h[t-1] + 1) has a value at the check's points but not at derive's (h reaches
    below -1 there): the same located sentence, not an internal error."""
    from symbptt.engine.compile import gradient_function
    from symbptt.models.dims import Dims
    from symbptt.models.modelfile import ModelFileError

    text = (
        "x[t]: (N, D)\nW: (D, H)\nh[0] = 0\n"
        "h[t] = tanh(x[t] @ W) + log(h[t-1] + 1)\nL = sum(t, sum(h[t]))\n"
    )
    spec = from_text(text)
    dims = Dims(N=2, D=2, H=2, C=3, T=3)
    point = spec.random_point(dims, seed=0)
    point["W"] = np.full((2, 2), 3.0)
    point["x"] = -np.abs(point["x"]) - 1  # tanh(x W) near -1: log of a negative number at t = 3
    with pytest.raises(ModelFileError, match=r"line 4, column 25: log of a number <= 0"):
        gradient_function(dims, spec)(point)


def test_the_depth_of_a_line_is_bounded_at_100():
    from symbptt.models.modelfile import ModelFileError, read_model

    for n, ok in ((100, True), (101, False)):
        text = _rnn_with("a[t] = b +", "a[t] = " + "b + " * n)
        if ok:
            read_model(text)
        else:
            with pytest.raises(ModelFileError, match="nests 101 operations"):
                read_model(text)


STRANGE_BUT_RIGHT = {
    "a function of a zero state times a row": """x[t]: (N, D)
W: (D, H)
v: (H,)
s[0] = 0
s[t] = tanh(sigmoid(s[t-1]) * v) * sum(x[t] @ W)
L = sum(t, sum(s[t] * s[t]))
""",
    "a state (H,) summed with sum_rows": """x[t]: (N, D)
W: (D, H)
s[0] = 0
s[t] = s[t-1] + sum_rows(x[t] @ W)
L = sum(t, sum(s[t] * s[t]))
""",
    "a scalar state from an input s0: ()": """x[t]: (N, D)
W: (D, H)
s0: ()
s[0] = s0
s[t] = s[t-1] * 0.5 + sum(x[t] @ W)
L = sum(t, s[t] * s[t])
""",
}


@pytest.mark.parametrize("label", list(STRANGE_BUT_RIGHT))
def test_unusual_states_are_derived_right(label, tmp_path, capsys):
    """The engine agrees with differences of the file's own equations, derive agrees with
    the matrix form, and the LaTeX derivation is checked and written."""
    from symbptt.cli import main

    text = STRANGE_BUT_RIGHT[label]
    check_model(from_text(text))
    path = tmp_path / "cell.txt"
    path.write_text(text)
    assert main(["derive", "--model", str(path), "--T", "3"]) == 0
    out = tmp_path / "d.tex"
    assert main(["latex", "--model", str(path), "--wrt", "all", "-o", str(out)]) == 0
    assert out.read_text().count("\\begin{document}") == 1
    capsys.readouterr()


def test_a_derivation_the_formula_language_cannot_write_says_which_format_can(capsys, tmp_path):
    from symbptt.cli import main

    path = tmp_path / "cell.txt"
    path.write_text(STRANGE_BUT_RIGHT["a state (H,) summed with sum_rows"])
    assert main(["latex", "--model", str(path), "--wrt", "all", "--format", "text"]) == 2
    err = capsys.readouterr().err
    assert "repeat a row for each example" in err and "use the tex or md format" in err


# -- a constant factor around the loss's sum (finding 13) ---------------------------------------
LOSS_FORMS = [
    # (the loss line, the factor as a function of N and T, whether it is a mean)
    ("L = -sum(t, -cross_entropy(o[t], y[t]))", lambda N, T: 1.0, False),
    ("L = sum(t, cross_entropy(o[t], y[t])) / N / T", lambda N, T: 1 / (N * T), True),
    ("L = 2 * sum(t, cross_entropy(o[t], y[t])) / (N * T)", lambda N, T: 2 / (N * T), True),
    ("L = (1 / (N * T)) * sum(t, cross_entropy(o[t], y[t]))", lambda N, T: 1 / (N * T), True),
    ("L = -(sum(t, cross_entropy(o[t], y[t])) / (T * N)) * -3", lambda N, T: 3 / (N * T), True),
    ("L = sum(t, cross_entropy(o[t], y[t])) / T", lambda N, T: 1 / T, False),
    ("L = 0.5 * -sum(t, cross_entropy(o[t], y[t]))", lambda N, T: -0.5, False),
]


@pytest.mark.parametrize("line, factor, mean", LOSS_FORMS, ids=[f[0] for f in LOSS_FORMS])
def test_a_constant_times_the_sum_is_a_loss(line, factor, mean):
    """The loss and every gradient are the factor times those of the plain sum."""
    from symbptt.engine.compile import gradient_function
    from symbptt.models.dims import Dims

    spec = from_text(_rnn_with("L = sum(t, cross_entropy(o[t], y[t]))", line))
    plain = from_text(RNN)
    assert spec.definition.loss.mean == mean
    dims = Dims(N=2, D=3, H=2, C=3, T=3)
    point = plain.random_point(dims, seed=8)
    ours, theirs = gradient_function(dims, spec)(point), gradient_function(dims, plain)(point)
    c = factor(dims.N, dims.T)
    for key, value in theirs.items():
        np.testing.assert_allclose(ours[key], c * value, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "line",
    [
        "L = 2 / sum(t, cross_entropy(o[t], y[t]))",
        "L = sum(t, cross_entropy(o[t], y[t])) + 1",
        "L = sum(t, cross_entropy(o[t], y[t])) * sum(t, cross_entropy(o[t], y[t]))",
        "L = sum(t, cross_entropy(o[t], y[t])) * W_h",
    ],
)
def test_a_loss_that_is_not_a_constant_times_the_sum_is_refused(line):
    from symbptt.models.modelfile import ModelFileError

    with pytest.raises(ModelFileError, match="the loss is a constant times a sum over the steps"):
        from_text(_rnn_with("L = sum(t, cross_entropy(o[t], y[t]))", line))


# -- the column convention (finding 9) -----------------------------------------------------------
_MSE = """x[t]: (N, D)
target[t]: (N, C)
W_x: (D, H)
W_h: (H, H)
b: (H,)
V: (H, C)
h[0] = 0
h[t] = tanh(h[t-1] @ W_h + x[t] @ W_x + b)
o[t] = h[t] @ V
L = sum(t, sum((o[t] - target[t]) ** 2)) / (N * T)
"""
_TOKENS_ROW = """x[t]: (N,) in D
y[t]: (N,) in C
E_emb: (D, H)
W_h: (H, H)
V: (H, C)
c: (C,)
h[0] = 0
h[t] = tanh(onehot(x[t]) @ E_emb + h[t-1] @ W_h)
o[t] = h[t] @ V + c
L = sum(t, cross_entropy(o[t], y[t]))
"""
_TOKENS_COLUMN = """x[t]: (N,) in D
y[t]: (N,) in C
E_emb: (H, D)
W_h: (H, H)
V: (C, H)
c: (C, 1)
h[0] = 0
h[t] = tanh(E_emb @ onehot(x[t]) + W_h @ h[t-1])
o[t] = V @ h[t] + c
L = sum(t, cross_entropy(o[t], y[t]))
"""
COLUMN_CASES = {
    "a mean squared error": _MSE,
    "a squared error over N": _MSE.replace("/ (N * T)", "/ N"),
    "token ids and h0 (N, H)": _TOKENS_ROW.replace("h[0] = 0", "h[0] = h0").replace(
        "c: (C,)", "c: (C,)\nh0: (N, H)"
    ),
    "token ids and a zero state, in rows": _TOKENS_ROW,
    "token ids and a zero state, in columns": _TOKENS_COLUMN,
    "a column weight w: (H, 1) read out with w.T": """x[t]: (D, N)
target[t]: (1, N)
W_x: (H, D)
W_h: (H, H)
w: (H, 1)
b: (H, 1)
h[0] = 0
h[t] = tanh(W_h @ h[t-1] + W_x @ x[t] + b)
o[t] = w.T @ h[t]
L = sum(t, 0.5 * sum((o[t] - target[t]) ** 2))
""",
}


@pytest.mark.parametrize("label", list(COLUMN_CASES))
def test_files_in_either_convention_print_in_both(label, tmp_path, capsys):
    path = tmp_path / "cell.txt"
    path.write_text(COLUMN_CASES[label])
    _commands_work(path, tmp_path, capsys)  # latex --convention row and column, read back


@pytest.mark.parametrize(
    "label, convention",
    [
        ("token ids and h0 (N, H)", "row"),
        ("token ids and a zero state, in rows", "row"),
        ("token ids and a zero state, in columns", "column"),
        ("a column weight w: (H, 1) read out with w.T", "column"),
    ],
)
def test_the_convention_a_file_is_written_in_is_read_off_it(label, convention):
    """--convention column (how the derivation is printed) does not make a file written in
    rows a column file: h0 (N, H) tells, or, where nothing declared tells, the rules do."""
    from symbptt.models.modelfile import read_model

    for default in ("row", "column"):
        assert read_model(COLUMN_CASES[label], convention=default).convention == convention


def test_a_column_vector_is_a_bias_or_a_weight_by_its_use():
    model = from_text(COLUMN_CASES["a column weight w: (H, 1) read out with w.T"]).definition
    assert model.declaration("w").shape == (1, "H")  # the matrix w.T of the row form
    assert model.declaration("b").shape == ("H",)  # a bias added to every row


# -- what docs/models.md says of contributions and sizes (finding 14) ---------------------------
@pytest.mark.parametrize(
    "name, argv, message",
    [
        ("lstm", [], "lstm has 2 (h, c)"),
        ("stacked_rnn", ["--size", "K=3"], "stacked_rnn has 2 (h1, h2)"),
        ("indrnn", [], "the one weight W in h[t-1] @ W; indrnn has none"),
        ("d2l_linear", [], "--size Q=3"),
    ],
)
def test_contributions_refuses_what_the_docs_say_it_refuses(name, argv, message, capsys):
    from symbptt.cli import main
    from symbptt.models.filespec import gallery_path

    argv = ["contributions", "--model", str(gallery_path(name)), "--T", "4", *argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_contributions_of_a_file_with_one_state_and_one_recurrent_weight(capsys):
    from symbptt.cli import main
    from symbptt.models.filespec import gallery_path

    argv = ["contributions", "--model", str(gallery_path("two_biases")), "--T", "4"]
    assert main(argv) == 0
    assert "the components add up to the total" in capsys.readouterr().out.replace("\n", " ")


# -- minor: a byte-order mark, tabs under a caret, --model of no file ---------------------------
def test_a_byte_order_mark_is_ignored():
    from symbptt.models.modelfile import read_model

    assert read_model("\ufeff" + RNN).declarations == read_model(RNN).declarations


def test_the_caret_stands_under_its_character_when_the_line_has_tabs(tmp_path, capsys):
    from symbptt.cli import main

    text = "x[t]:\t(N, D)\nW:\t(D, H)\nh[0] = 0\nh[t]\t=\ttanh(h[t-1] @ W\t+ x[t] @ Wq)\n"
    text += "L = sum(t, sum(h[t]))\n"
    path = tmp_path / "cell.txt"
    path.write_text(text)
    assert main(["derive", "--model", str(path)]) == 2
    _, shown, mark = capsys.readouterr().err.rstrip("\n").split("\n")
    assert "\t" not in shown and shown[len(mark) - 1 : len(mark) + 1] == "Wq"


@pytest.mark.parametrize(
    "model, message",
    [
        ("/dev/null", "/dev/null is not a regular file"),
        ("", "--model is empty: choose rnn, lstm or gru"),
    ],
)
def test_a_model_that_is_no_file_is_one_sentence(model, message, capsys):
    from symbptt.cli import main

    assert main(["derive", "--model", model]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_latex_and_check_locate_equations_with_no_value_at_their_points(tmp_path, capsys):
    """log(h[t-1] + 1) has a value at the first-use check's points, not at the points latex
    (as html) and check use: the located sentence (exit 2), no NumPy warning, no exit 3."""
    import warnings

    from symbptt.cli import main

    path = tmp_path / "cell.txt"
    path.write_text(
        "x[t]: (N, D)\nW: (D, H)\nh[0] = 0\n"
        "h[t] = tanh(x[t] @ W) + log(h[t-1] + 1)\nL = sum(t, sum(h[t]))\n"
    )
    code = tmp_path / "mine.py"
    code.write_text(
        "import numpy as np\n\ndef f(x, W):\n"
        "    return 0.0, {'W': np.zeros_like(W), 'x': np.zeros_like(x)}\n"
    )
    commands = [
        ["latex", "--model", str(path), "--wrt", "all", "--format", "text"],
        ["check", f"{code}:f", "--model", str(path)],
    ]
    for argv in commands:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert f"{path}, line 4, column 25: log of a number <= 0" in err, argv
