"""Reading model files (symbptt.models.modelfile): the format, the shapes, the convention, and
every error class as one sentence with the line, the column and a caret (exit 2 on the command
line, never a traceback)."""

import subprocess
import sys
from pathlib import Path

import pytest

from symbptt.cli import main
from symbptt.models import from_text, sizes
from symbptt.models.filespec import GALLERY, gallery_path
from symbptt.models.modelfile import ModelFileError, read_model

RNN = gallery_path("rnn").read_text()


def _edit(old: str, new: str, text: str = RNN) -> str:
    assert old in text, old
    return text.replace(old, new)


# -- sizes ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "written, canonical, value",
    [
        ("H", "H", 3),
        ("4 * H", "4H", 12),
        ("4H", "4H", 12),
        ("H + D", "D+H", 5),
        ("D + H", "D+H", 5),
        ("2 * H + D + 1", "D+2H+1", 9),
        ("3", 3, 3),
        ("H1 + H1", "2H1", 8),
    ],
)
def test_sizes_have_one_canonical_text(written, canonical, value):
    assert sizes.canonical(written) == canonical
    assert sizes.value(written, {"H": 3, "D": 2, "H1": 4}) == value


def test_size_arithmetic():
    assert sizes.times(4, "H") == "4H"
    assert sizes.share("4H", 4) == "H"
    assert sizes.plus("H", "D") == "D+H"
    with pytest.raises(Exception, match="does not split into 3"):
        sizes.share("4H", 3)


# -- what a file says ----------------------------------------------------------------------------
def test_the_vanilla_file_reads_as_the_issue_writes_it():
    model = read_model(RNN)
    assert model.convention == "row"
    assert [d.name for d in model.declarations] == ["x", "y", "h0", "W_x", "W_h", "b", "V", "c"]
    assert dict(model.shapes) == {"a": ("N", "H"), "h": ("N", "H"), "o": ("N", "C")}
    assert model.states == ("h",)
    assert model.loss is not None and not model.loss.mean
    assert model.title == "the vanilla RNN, as a file"


def test_rules_are_ordered_by_what_they_read():
    text = _edit(
        "a[t] = b + h[t-1] @ W_h + x[t] @ W_x\nh[t] = tanh(a[t])\n",
        "h[t] = tanh(a[t])\na[t] = b + h[t-1] @ W_h + x[t] @ W_x\n",
    )
    assert [r.name for r in read_model(text).rules] == ["a", "h", "o"]


def test_a_mean_and_a_constant_factor():
    mean = read_model(
        _edit(
            "L = sum(t, cross_entropy(o[t], y[t]))",
            "L = sum(t, cross_entropy(o[t], y[t])) / (N * T)",
        )
    )
    assert mean.loss.mean
    half = read_model(
        _edit(
            "L = sum(t, cross_entropy(o[t], y[t]))", "L = 0.5 * sum(t, cross_entropy(o[t], y[t]))"
        )
    )
    assert not half.loss.mean


def test_sums_and_multiples_of_sizes_in_shapes():
    text = """
x[t]: (N, D)
y[t]: (N,) in C
W: (D + H, 4 * H)
b: (4 * H,)
V: (H, C)
h[0] = 0
c[0] = 0
z[t] = hstack(x[t], h[t-1]) @ W + b
f[t] = sigmoid(colblock(z[t], 2, 4))
c[t] = f[t] * c[t-1] + sigmoid(colblock(z[t], 1, 4)) * tanh(colblock(z[t], 4, 4))
h[t] = sigmoid(colblock(z[t], 3, 4)) * tanh(c[t])
L = sum(t, cross_entropy(h[t] @ V, y[t]))
"""
    model = read_model(text)
    assert dict(model.shapes) == {
        "z": ("N", "4H"),
        "f": ("N", "H"),
        "c": ("N", "H"),
        "h": ("N", "H"),
    }


def test_a_zero_state_learns_its_shape_from_its_rule():
    model = read_model(gallery_path("lstm_no_tanh").read_text())
    assert model.shape("xc") == ("N", "D+H")
    assert model.shape("h") == ("N", "H")


def test_a_layer_has_outputs():
    model = read_model((Path(__file__).parent / "model_corpus" / "rnn_layer.txt").read_text())
    assert model.loss is None and model.outputs == ("h",)


def test_the_column_convention_is_read_off_the_declarations():
    column = """
x[t]: (D, N)
g[t]: (Q, N)
W_hx: (H, D)
W_hh: (H, H)
W_qh: (Q, H)
b: (H, 1)
h[0] = 0
h[t] = tanh(W_hx @ x[t] + W_hh @ h[t-1] + b)
o[t] = W_qh @ h[t]
L = sum(t, sum(g[t] * o[t]))
"""
    model = read_model(column)
    assert model.convention == "column"
    # kept in rows: the weights transposed, the bias a vector
    assert model.declaration("W_hx").shape == ("D", "H")
    assert model.declaration("b").shape == ("H",)
    assert model.shape("o") == ("N", "Q")


def test_one_file_cannot_mix_conventions():
    text = _edit("y[t]: (N,) in C", "y[t]: (N,) in C\ng[t]: (C, N)")
    with pytest.raises(ModelFileError, match="one way"):
        read_model(text)


def test_the_same_text_is_the_same_model():
    assert from_text(RNN) is from_text(RNN)
    assert from_text(RNN) != from_text(_edit("h[t] = tanh(a[t])", "h[t] = relu(a[t])"))


@pytest.mark.parametrize("name", GALLERY)
def test_every_gallery_file_reads(name):
    model = read_model(gallery_path(name).read_text())
    assert model.rules and model.title


# -- errors: one sentence, the line, the column, a caret -------------------------------------------
ERRORS = {
    "a product that does not multiply": (
        _edit("h[t-1] @ W_h", "h[t-1] @ W_x"),
        11,
        "does not multiply: (N, H) @ (D, H)",
    ),
    "a bias that does not broadcast": (
        _edit("+ x[t] @ W_x", "+ x[t] @ W_x + c"),
        11,
        "do not broadcast",
    ),
    "an undeclared name": (_edit("@ W_h +", "@ W_hh +"), 11, "did you mean 'W_h'"),
    "a state without a boundary": (
        _edit("h[0] = h0", "h[0] = h0\nz[t] = z[t-1] * h[t]"),
        11,
        "z has no boundary",
    ),
    "a rule defined twice": (RNN + "h[t] = tanh(a[t])\n", 15, "defined twice (first on line 12)"),
    "a cycle inside one step": (
        _edit("h[t-1] @ W_h", "h[t] @ W_h"),
        None,
        "a cycle inside one step",
    ),
    "a parameter no rule uses": (_edit("c: (C,)", "c: (C,)\nW_y: (H, C)"), 10, "no rule uses it"),
    "no float input": (
        "x[t]: (N,) in C\ny[t]: (N,) in C\nh[t] = onehot(x[t])\n"
        "L = sum(t, cross_entropy(h[t], y[t]))\n",
        None,
        "no float input",
    ),
    "reading two steps back": (_edit("h[t-1] @ W_h", "h[t-2] @ W_h"), 11, "more than one step"),
    "reading the next step": (_edit("tanh(a[t])", "tanh(a[t+1])"), 12, "[t] or states at [t-1]"),
    "an input read at t-1": (_edit("x[t] @ W_x", "x[t-1] @ W_x"), 11, "x is an input"),
    "a syntax error": (_edit("tanh(a[t])", "tanh(a[t]"), 12, "unexpected"),
    "an unknown function": (_edit("tanh(a[t])", "tahn(a[t])"), 12, "did you mean tanh"),
    "a boundary nobody reads": (RNN + "o[0] = 0\n", 15, "no rule reads o[t-1]"),
    "a backward rule": (RNN + "dh[t] = do[t] @ V.T\n", 15, "forward equations only"),
    "ids used as numbers": (_edit("x[t] @ W_x", "y[t] @ W_x"), 11, "holds integer ids"),
    "a loss that is not a number": (
        _edit("cross_entropy(o[t], y[t])", "o[t]"),
        14,
        "must be a number",
    ),
    "a loss without the sum over steps": (
        _edit("L = sum(t, cross_entropy(o[t], y[t]))", "L = cross_entropy(o[t], y[t])"),
        14,
        "L = sum(t, ...)",
    ),
    "a name that reads as a step": (_edit("W_x", "h_1"), 5, "reads as h at a step"),
    "a reserved name": (_edit("W_h", "max"), 6, "keeps for itself"),
    "a declaration twice": (_edit("c: (C,)", "c: (C,)\nc: (C,)"), 10, "declared twice"),
    "a per-step input without N": (_edit("x[t]: (N, D)", "x[t]: (D, K)"), 2, "one row per example"),
    "T in a shape": (_edit("V: (H, C)", "V: (H, T)"), 8, "uses T"),
    "blocks that do not split": (
        _edit("tanh(a[t])", "tanh(colblock(a[t], 1, 3))"),
        12,
        "does not split into 3",
    ),
    "an empty file": ("# nothing\n", None, "no per-step quantity"),
}


@pytest.mark.parametrize("label", list(ERRORS))
def test_each_error_is_one_sentence_with_its_line(label):
    text, line, words = ERRORS[label]
    with pytest.raises(ModelFileError) as caught:
        read_model(text)
    message = str(caught.value)
    assert words in message
    if line is not None:
        assert message.startswith(f"line {line}")
        first, echoed, caret = message.splitlines()[:3]
        assert caret.strip() == "^" and echoed.strip() in text


@pytest.mark.parametrize("label", list(ERRORS))
def test_the_command_line_says_it_in_one_line_with_a_caret(label, tmp_path, capsys):
    text, line, words = ERRORS[label]
    path = tmp_path / "cell.txt"
    path.write_text(text)
    assert main(["derive", "--model", str(path)]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and err.startswith("symbptt: error: ")
    if line is not None:
        assert f"{path}, line {line}" in err and err.rstrip().endswith("^")


def test_the_text_is_never_evaluated(tmp_path):
    """Python in a model file is text: a syntax error, and nothing runs."""
    marker = tmp_path / "ran"
    path = tmp_path / "cell.txt"
    path.write_text(_edit("tanh(a[t])", f"__import__('os').mkdir('{marker}')"))
    with pytest.raises(ModelFileError):
        read_model(path.read_text())
    assert not marker.exists()


def test_the_reader_and_lark_load_only_when_a_file_is_given():
    script = (
        "import sys; from symbptt.cli import main; main(['derive', '--T', '2', '--json']); "
        "print(sorted(m for m in sys.modules "
        "if m == 'lark' or m.startswith('symbptt.models.model')))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
