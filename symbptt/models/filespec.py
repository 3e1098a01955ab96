"""A model file as a `ModelSpec`: the same object the built-in models are.

    >>> from symbptt.models import from_file, from_text
    >>> spec = from_file("cell.txt")            # read, checked, a ModelSpec
    >>> spec.names, spec.gradient_names

Every declared name is an input (every float one with a gradient); the cell is the file's
rules (`filecell.FileCell`); random points are drawn from the declared shapes. The file's
derivatives are checked against its own forward equations before their first use
(`engine.trust`), not here: reading a file costs only its parse.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from ..errors import InvalidArgumentError
from ..formula.ast import Call, Name, Step
from .filecell import FileCell
from .modelfile import ModelFile, ModelFileError, _walk, read_model
from .spec import Input, ModelSpec, Options

__all__ = ["from_text", "from_file", "spec_of", "GALLERY", "gallery_path", "MAX_FILE_BYTES"]

#: A model file is a few lines; anything much bigger is not one.
MAX_FILE_BYTES = 256 * 1024
#: The models shipped as files (symbptt/models/text/NAME.txt): the built-ins and a gallery.
GALLERY = (
    "rnn",
    "lstm",
    "gru",
    "two_biases",
    "sigmoid_rnn",
    "d2l_linear",
    "stacked_rnn",
    "gru_update",
    "lstm_no_tanh",
    "peephole_lstm",
    "indrnn",
    "mgu",
)

_CACHE: dict[str, ModelSpec] = {}
_LOCK = threading.Lock()


def gallery_path(name: str) -> Path:
    """The path of a shipped model file (`rnn`, `lstm`, `peephole_lstm`, ...)."""
    if name not in GALLERY:
        import difflib

        close = difflib.get_close_matches(name, GALLERY, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InvalidArgumentError(
            f"no model file {name!r} ships with symbptt ({', '.join(GALLERY)}){hint}"
        )
    return Path(__file__).parent / "text" / f"{name}.txt"


def _file_model(name: str) -> ModelFile:
    """A shipped model file, read (the cost guard compares a file with the vanilla RNN's)."""
    if name not in _READ:
        _READ[name] = read_model(gallery_path(name).read_text(), path=str(gallery_path(name)))
    return _READ[name]


_READ: dict[str, ModelFile] = {}


def from_text(text: str, *, name: str = "model", convention: str | None = None) -> ModelSpec:
    """The spec of a model written as its forward equations (docs/models.md); the same text
    gives the same spec object. The file's convention is read off its declarations
    (`convention` decides where they do not tell). ModelFileError (line, column, caret) for
    anything wrong."""
    model = read_model(text, convention=convention)
    return spec_of(model, name)


def from_file(path: str | Path, *, convention: str | None = None) -> ModelSpec:
    """The spec of the model file at `path` (UTF-8 text); InvalidArgumentError when it cannot
    be read, ModelFileError when it is not a model."""
    path = Path(path)
    if not path.exists():
        raise InvalidArgumentError(f"no such model file: {path}")
    if not path.is_file():
        raise InvalidArgumentError(
            f"{path} is not a regular file (a folder, a device, a pipe?): a model file is a "
            "text file of a few lines"
        )
    if path.stat().st_size > MAX_FILE_BYTES:
        raise InvalidArgumentError(
            f"{path} has {path.stat().st_size:,} bytes: a model file is a few lines"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgumentError(f"cannot read {path}: {exc}") from None
    try:
        model = read_model(text, path=str(path), convention=convention)
    except ModelFileError as exc:  # a line's error names the file already
        message = str(exc)
        raise ModelFileError(
            message if message.startswith(f"{path}, ") else f"{path}, {message}"
        ) from None
    return spec_of(model, _stem(path))


def _stem(path: Path) -> str:
    stem = "".join(c if c.isalnum() or c in "_-" else "_" for c in path.stem)
    return stem or "model"


def spec_of(model: ModelFile, name: str = "model") -> ModelSpec:
    """The ModelSpec of a read model file (one object per file content and name)."""
    key = f"{model.sha256}:{name}"
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = _build(model, name)
        return _CACHE[key]


def _build(model: ModelFile, name: str) -> ModelSpec:
    in_rules: set[str] = set()
    labels: set[str] = set()
    bodies = [r.expr for r in model.rules] + ([model.loss.body] if model.loss else [])
    for body in bodies:
        for node in _walk(body):
            if isinstance(node, (Name, Step)):
                in_rules.add(node.name)
            if isinstance(node, Call) and node.function == "cross_entropy":
                label = node.args[1]
                labels.add(label.args[0].name if isinstance(label, Call) else label.name)
    boundary_inputs = {b.value for b in model.boundaries if b.value}
    inputs = []
    for d in model.declarations:
        if d.per_step:
            role = "label" if d.integer and d.name in labels else "sequence"
            inputs.append(Input(d.name, ("T", *d.shape), role, integer=d.integer, bound=d.bound))
        else:
            role = (
                "initial" if d.name in boundary_inputs and d.name not in in_rules else "parameter"
            )
            inputs.append(Input(d.name, d.shape, role))
    upstream = {out: upstream_name(out) for out in model.outputs}
    for out, d_out in upstream.items():
        inputs.append(Input(d_out, ("T", *model.shape(out)), "upstream"))
    output_weights = _output_weights(model)
    title = model.title or f"model of {name}"
    return ModelSpec(
        name=name,
        base_inputs=tuple(inputs),
        cell=FileCell(model, upstream),
        loss="cell",
        sample=_sampler(tuple(inputs), output_weights),
        options=Options(reduction="mean" if model.loss is not None and model.loss.mean else "sum"),
        states=model.states,
        boundaries=tuple((b.state, b.value) for b in model.boundaries),
        state_shapes=tuple(model.shape(s) for s in model.states),
        step_inputs="mapping",
        definition=model,
        title=title,
        summary=f"{title} (a model file: {len(model.rules)} rules)",
    )


def upstream_name(output: str) -> str:
    """The input holding a layer's upstream gradient on `output`: g_h for h (dh is the total
    derivative, which adds the recurrent term to it)."""
    return f"g_{output}"


def _output_weights(model: ModelFile) -> frozenset[str]:
    """The weights of the logits' rule, which --scale multiplies (o[t] = h[t] @ V + c)."""
    if model.loss is None:
        return frozenset()
    rules = {r.name: r for r in model.rules}
    found: set[str] = set()
    for node in _walk(model.loss.body):
        if isinstance(node, Call) and node.function == "cross_entropy":
            logits = node.args[0]
            if isinstance(logits, Step) and logits.name in rules:
                found |= {n.name for n in _walk(rules[logits.name].expr) if isinstance(n, Name)}
    return frozenset(found)


def _sampler(inputs: tuple[Input, ...], scaled: frozenset[str]):
    """Random inputs of a model file: weights ~ N(0, 1/fan-in), biases and scalars small,
    initial states inside (-0.9, 0.9), per-step floats ~ N(0, 1), ids uniform; `scale`
    multiplies the weights of the logits' rule."""

    def sample(dims, rng: np.random.Generator, scale: float) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for item in inputs:
            shape = item.shape_in(dims)
            if item.integer:
                out[item.name] = rng.integers(0, dims.size(item.bound), size=shape)
            elif item.role == "initial":
                out[item.name] = rng.uniform(-0.9, 0.9, size=shape)
            elif item.role == "parameter":
                if len(shape) == 2:
                    value = rng.standard_normal(shape) / np.sqrt(shape[0])
                else:
                    value = 0.1 * rng.standard_normal(shape)
                out[item.name] = value * (scale if item.name in scaled else 1.0)
            else:
                out[item.name] = rng.standard_normal(shape)
        return out

    return sample
