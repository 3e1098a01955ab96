"""Convention files: a grader writes how an assignment's code holds the model's arrays once,
as TOML, and grades every submission with it (`symbptt check ... --convention conv.toml`).

    [model]
    name = "lstm"          # or file = "cell.txt"; options beside it: c0 = "input", ...
    form = "layer"
    [arrays]
    layout = "column"
    sequence = "FNT"
    weights = "per-gate"
    stack = "hx"
    [names]
    "W.f" = "Wf"
    [returns]
    order = ["x", "h0", "W.f"]

`suggest.toml_text` writes them; `load` reads one, every key checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidArgumentError
from ..models.spec import ModelSpec
from .convention import Convention

__all__ = ["Loaded", "load", "save"]

#: The model names a file may give (the command line's).
_MODEL_NAMES = {"rnn": "vanilla", "vanilla": "vanilla", "lstm": "lstm", "gru": "gru"}


@dataclass(frozen=True)
class Loaded:
    arrays: Convention
    model: ModelSpec | None
    form: str | None
    order: tuple | None


def load(path: Path) -> Loaded:
    """A convention file, read and checked (InvalidArgumentError naming what is wrong)."""
    import tomllib

    from .suggest import declared_from

    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InvalidArgumentError(f"no such convention file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgumentError(f"cannot read the convention file {path}: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgumentError(f"{path} is not valid TOML: {exc}") from None
    section, form, arrays, order = declared_from(data, str(path))
    if form is not None and form not in ("full", "layer"):
        raise InvalidArgumentError(f"{path} [model] form={form!r} must be full or layer")
    model = _model(section, path)
    if model is not None:
        arrays.validate_for(model)
    return Loaded(arrays, model, form, order)


def _model(section: dict, path: Path) -> ModelSpec | None:
    if not section:
        return None
    section = dict(section)
    name, file = section.pop("name", None), section.pop("file", None)
    if name is not None and file is not None:
        raise InvalidArgumentError(f"{path} [model] gives both name and file: keep one")
    if file is not None:
        from ..models import from_file

        where = Path(file)
        if not where.is_absolute():
            where = path.parent / where
        spec = from_file(where)
        if section:
            raise InvalidArgumentError(
                f"{path} [model] sets {', '.join(section)} beside a model file: a file says "
                "everything itself"
            )
        return spec
    if name is None:
        raise InvalidArgumentError(f"{path} [model] needs a name (rnn, lstm, gru) or a file")
    if name not in _MODEL_NAMES:
        raise InvalidArgumentError(
            f"{path} [model] name={name!r} must be one of rnn, lstm, gru (or file = ...)"
        )
    from ..models import MODELS

    spec = MODELS[_MODEL_NAMES[name]]
    if "no_bias" in section:
        section["no_bias"] = tuple(section["no_bias"])
    try:
        return spec.variant(**section)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"{path} [model]: {exc}") from None


def save(path: Path, text: str, force: bool = False) -> None:
    """Write a convention file; an existing file is replaced only with `force`."""
    if path.exists() and not force:
        raise InvalidArgumentError(f"{path} exists; use --force to replace it")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
