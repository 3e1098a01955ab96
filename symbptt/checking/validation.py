"""Every option of a check validated before any user code runs, one sentence each."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from ..errors import (
    InvalidArgumentError,
)
from ..models import VANILLA
from ..models.dims import Dims
from ..models.spec import ModelSpec
from . import styles
from .convention import Convention
from .styles import Style
from .usercode import Calling

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

from .judging import Tolerance
from .problems import MAX_CHECKED_TRUNCATE
from .settings import Deviations, Limits, Target, search_options


def validate_options(
    *,
    fn: Callable | str | None = None,
    form: str | None = None,
    layout: str = "row",
    batch_first: bool = False,
    names: Mapping[str, str] | None = None,
    order: Sequence[str] | None = None,
    only: Sequence[str] | None = None,
    precision: str | None = None,
    shapes: SearchStrategy[Dims] | None = None,
    max_examples: int = 100,
    seed: int | None = None,
    tolerances: Mapping[str, Tolerance] | None = None,
    timeout: float = 5.0,
    total_timeout: float = 300.0,
    memory_mb: int = 2048,
    forbid_imports: Sequence[str] = (),
    isolate: bool = True,
    progress: Callable[[int, int], None] | None = None,
    model: ModelSpec | None = None,
    style: str = "plain",
    globals: Mapping[str, str] | None = None,  # noqa: A002 (the option's name)
    defs_only: bool = False,
    clip: float | None = None,
    clip_norm: float | None = None,
    allow_broadcast_shapes: bool = False,
    probe: bool = True,
    step: bool | None = None,
    arrays: Convention | None = None,
) -> tuple[Calling, tuple[str, ...], dict[str, Tolerance], Style]:
    """Every argument of check_gradients checked before any work, one sentence each
    (InvalidArgumentError); the convention, the required values, the tolerance table and the
    style's settings."""
    # The values check their own fields, one sentence each (settings.py).
    Target(fn if fn is not None else callable, style, step, defs_only, globals, (), isolate)
    Limits(
        timeout,
        total_timeout,
        memory_mb,
        tuple(forbid_imports) if not isinstance(forbid_imports, str) else forbid_imports,
    )
    search_options(max_examples, seed, progress, shapes)
    deviations = Deviations(
        None if only is None else only,
        precision,
        clip,
        clip_norm,
        tolerances,
        allow_broadcast_shapes,
        probe,
    )
    model = model or VANILLA
    if not isinstance(model, ModelSpec) or not (
        model.from_file or model.name in ("vanilla", "lstm", "gru")
    ):
        raise InvalidArgumentError(
            f"model={getattr(model, 'name', model)!r}: the checker's independent NumPy "
            "references know the vanilla RNN, the LSTM and the GRU and their variants "
            "(VANILLA.variant(...), LSTM, GRU); any other model is a model file "
            "(symbptt.models.from_file(path))"
        )
    if form is None:  # a pair, a layer file: the layer form; anything else the full form
        if model.from_file:
            form = "layer" if model.definition.loss is None else "full"
        else:
            form = "layer" if styles.pair_of(fn) is not None and style == "plain" else "full"
    if model.from_file:
        layer = model.definition.loss is None
        if layer and form != "layer":
            raise InvalidArgumentError(
                f"the model file {model.name} is a layer (it has no L line): check its code "
                "with form='layer' (--form layer), which passes the upstream gradients "
                + ", ".join(i.name for i in model.inputs if i.role == "upstream")
            )
        if not layer and form == "layer":
            raise InvalidArgumentError(
                f"the model file {model.name} has a loss: the layer form checks a layer file "
                "(a model file without an L line); drop --form layer"
            )
    K = model.options.truncate
    if K is not None and K > MAX_CHECKED_TRUNCATE:
        raise InvalidArgumentError(
            f"truncate={K} cannot be checked: K-step truncated BPTT differs from full BPTT only "
            f"on sequences of K + 2 steps or more, and checks go up to truncate="
            f"{MAX_CHECKED_TRUNCATE} (T={MAX_CHECKED_TRUNCATE + 2})"
        )
    layer_biases = model.variant(no_bias=()).state_parameters  # the full layer's
    output_biases = [b for b in model.biases if b not in layer_biases]
    removed = [b for b in model.options.no_bias if b in output_biases]
    if form == "layer" and (model.options.reduction != "sum" or removed):
        raise InvalidArgumentError(
            "the layer form has no output layer and no loss: --reduction and --no-bias "
            f"{'/'.join(output_biases)} do not apply to it"
        )
    if (clip is not None or clip_norm is not None) and form == "layer":
        raise InvalidArgumentError("clip and clip_norm apply to the full form's gradients")
    settled = styles.resolve(
        fn,
        style=style,
        form=form,
        layout=layout,
        batch_first=batch_first,
        names=names,
        order=order,
        only=only,
        model=model,
        globals_=globals,
        defs_only=defs_only,
        step=step,
    )
    if arrays is not None and (layout != "row" or batch_first or names):
        raise InvalidArgumentError(
            "declare the convention once: layout, batch_first and names are fields of the "
            "Convention given (convention=...)"
        )
    convention = Calling.of(
        settled.form,
        settled.layout,
        batch_first,
        settled.names,
        settled.order,
        settled.model,
        allow_broadcast_shapes=allow_broadcast_shapes,
        shape=settled.shape,
        arrays=arrays,
    )
    if settled.shape == "pair" and settled.order is None:
        convention = replace(convention, order=convention.gradients)
    required = _required(convention, settled.only)
    return convention, required, deviations.table, settled


def _required(convention: Calling, only: Sequence[str] | None) -> tuple[str, ...]:
    """The values a check requires: every gradient of the form and the loss, or those in
    `only` (each one of them)."""
    form = convention.form
    every = (*convention.gradients, *(["loss"] if form == "full" else []))
    if only is None:
        return every
    if isinstance(only, str) or not all(isinstance(n, str) for n in only) or not only:
        raise InvalidArgumentError(
            f"only={only!r} must be a non-empty sequence of names, e.g. ('W_h', 'W_x')"
        )
    unknown = [n for n in only if n not in every]
    if unknown:
        raise InvalidArgumentError(
            f"only names {', '.join(map(repr, unknown))}, not among the {form} form's "
            f"{', '.join(every)}"
        )
    return tuple(dict.fromkeys(only))
