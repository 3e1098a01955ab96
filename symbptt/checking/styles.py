"""Code as people write it: the char-RNN script and the forward/backward layer pair.

A *style* says how a user's code is called, so that it can be checked unmodified:

- "plain": one function with symbptt's signature (the full or the layer form).
- "char-rnn": a min-char-rnn `lossFun(inputs, targets, hprev)` that reads its weights and sizes
  from module globals, takes token-id lists, column vectors and an (H, 1) hprev, one sequence
  per call, and returns `(loss, dWxh, dWhh, dWhy, dbh, dby, hlast)`.
- a pair `forward,backward` (the layer form): CS231n's `rnn_forward(x, h0, Wx, Wh, b) ->
  (h, cache)` and `rnn_backward(dh, cache) -> (dx, dh0, dWx, dWh, db)`, or the step pair.

`resolve` turns a style and the user's options into what the checker needs: the convention
(names, layout, order), the model variant, the required gradients, the adapter the worker wraps
the code in (`worker.adapt`), and any constraint on the drawn shapes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from ..errors import InvalidArgumentError
from ..models.dims import Dims
from ..models.spec import ModelSpec
from . import STYLES

__all__ = ["STYLES", "CHAR_RNN_NAMES", "CHAR_RNN_SIZES", "Style", "resolve", "pair_of"]

#: min-char-rnn's names of the weights, in the order lossFun returns their gradients.
CHAR_RNN_NAMES = {"W_x": "Wxh", "W_h": "Whh", "V": "Why", "b": "bh", "c": "by"}
#: The size globals min-char-rnn reads, set from the drawn dims before every call.
CHAR_RNN_SIZES = {"vocab_size": "D", "hidden_size": "H"}
#: What a size global may be: the vocabulary (D, = C), the hidden size, or the sequence's
#: length (T, set to len(inputs) at each call).
SIZE_LETTERS = ("D", "H", "C", "T")


@dataclass(frozen=True)
class Style:
    """What a style settles: the keyword arguments of the convention and the worker."""

    form: str
    layout: str
    model: ModelSpec
    names: dict
    order: tuple[str, ...] | None
    only: tuple[str, ...] | None
    adapter: dict | None
    #: The drawn dims made to fit the code (C == D for a next-token model, T = 1 for a step).
    fit: Callable[[Dims], Dims] | None = None
    #: One call of the user's code covers one example: the truth (and its clipping) per row.
    per_row: bool = False
    #: The shape of the code (`protocols.SHAPES`): a function, a pair or a step pair.
    shape: str = "function"


def pair_of(fn) -> tuple[str, str] | None:
    """The two names of a `file.py:forward,backward` target (or a (forward, backward) tuple)."""
    if isinstance(fn, tuple):
        if len(fn) != 2 or not all(callable(f) for f in fn):
            raise InvalidArgumentError(
                "a layer pair is a tuple (forward, backward) of two functions"
            )
        return tuple(getattr(f, "__name__", "f") for f in fn)
    if isinstance(fn, str) and ":" in fn:
        head, _, last = fn.rpartition(":")
        if "," in last:  # file.py:forward,backward
            first, _, second = last.partition(",")
            return first, second
        if "," in head and ":" in head:  # a.py:forward,b.py:backward
            first = head.partition(",")[0].rpartition(":")[2]
            return first, last
    return None


def resolve(
    fn,
    *,
    style: str,
    form: str,
    layout: str,
    batch_first: bool,
    names: Mapping[str, str] | None,
    order: Sequence[str] | None,
    only: Sequence[str] | None,
    model: ModelSpec,
    globals_: Mapping[str, str] | None,
    defs_only: bool,
    step: bool | None = None,
) -> Style:
    """The style's settings, or InvalidArgumentError naming the option that does not fit."""
    if form is None:  # a forward/backward pair is a layer; anything else a loss by default
        form = "layer" if pair_of(fn) is not None and style == "plain" else "full"
    if style not in STYLES:
        raise InvalidArgumentError(f"style={style!r} must be one of {', '.join(STYLES)}")
    if step is not None and pair_of(fn) is None:
        raise InvalidArgumentError(
            "step (--step) says whether a forward/backward pair is the one-step pair; "
            "name a pair: file.py:forward,backward"
        )
    if globals_ and style != "char-rnn":
        raise InvalidArgumentError(
            "globals (--globals) set a char-rnn script's size globals: use them with "
            "style='char-rnn' (--style char-rnn)"
        )
    if defs_only and not isinstance(fn, str):
        raise InvalidArgumentError(
            "defs_only (--defs-only) applies to a 'file.py:function' target, which it imports "
            "without running its top-level code; a function is already defined"
        )
    pair = pair_of(fn)
    if names is None:
        names = {}
    elif isinstance(names, Mapping):
        names = dict(names)
    elif style == "char-rnn":
        raise InvalidArgumentError(f"names={names!r} must map model names to your names")
    if model.from_file and (style == "char-rnn" or pair is not None):
        what = "the char-rnn style" if style == "char-rnn" else "a forward/backward pair"
        raise InvalidArgumentError(
            f"{what} is checked against a built-in model; a model file's code is one "
            "function taking the file's inputs in declaration order (docs/models.md)"
        )
    if style == "char-rnn":
        return _char_rnn(pair, form, layout, batch_first, names, order, only, model, globals_)
    if pair is not None:
        if form != "layer":
            raise InvalidArgumentError(
                f"{pair[0]},{pair[1]} is a forward/backward pair: check it with form='layer' "
                "(--form layer)"
            )
        if step is None:  # rnn_step_forward, rnn_cell_forward: one step; forward_steps: not
            words = set(re.split(r"[_\W]+", pair[0].lower()))
            step = bool(words & {"step", "cell"})
        shape = "step-pair" if step else "pair"
        return Style(form, layout, model, names, order, only, None, shape=shape)
    return Style(form, layout, model, names, order, only, None)


def _char_rnn(pair, form, layout, batch_first, names, order, only, model, globals_) -> Style:
    if pair is not None:
        raise InvalidArgumentError("the char-rnn style checks one function, lossFun, not a pair")
    if form != "full":
        raise InvalidArgumentError(
            "the char-rnn style checks a whole loss function (lossFun): leave form='full'"
        )
    if batch_first:
        raise InvalidArgumentError(
            "the char-rnn style takes one sequence per call (a list of token ids): "
            "batch_first (--batch-first) does not apply"
        )
    if order is not None:
        raise InvalidArgumentError(
            "the char-rnn style reads lossFun's 7-tuple (loss, dWxh, dWhh, dWhy, dbh, dby, "
            "hlast) by position: order (--order) does not apply"
        )
    for data in ("x", "y", "h0"):
        if data in names:
            raise InvalidArgumentError(
                f"names renames {data!r}; in the char-rnn style lossFun takes (inputs, "
                "targets, hprev) by position, and only the weight globals have names"
            )
    if layout != "row":
        raise InvalidArgumentError(
            "the char-rnn style sets its own layout (min-char-rnn's columns); leave layout "
            "at its default"
        )
    if model.name != "vanilla":
        raise InvalidArgumentError(
            "the char-rnn style checks min-char-rnn's vanilla RNN lossFun, not the "
            f"{model.title}'s weights and states: check it in the full or layer form"
        )
    if model.options.inputs != "tokens":
        model = model.variant(inputs="tokens")
    if model.options.h0 != "input":
        raise InvalidArgumentError(
            "the char-rnn style passes hprev to lossFun: h0 is an input (drop --h0 zero)"
        )
    params = [p for p in CHAR_RNN_NAMES if p in model.parameters]
    by_script_name = {v: k for k, v in CHAR_RNN_NAMES.items()}  # Wxh=U works like W_x=U
    mapped = {}
    for key, value in names.items():
        canonical = by_script_name.get(key, key)
        if canonical not in params:
            raise InvalidArgumentError(
                f"names renames {key!r}, which is not a weight of a char-rnn lossFun "
                f"({', '.join(f'{p} ({CHAR_RNN_NAMES[p]})' for p in params)})"
            )
        mapped[canonical] = value
    names = {p: mapped.get(p, CHAR_RNN_NAMES[p]) for p in params}
    sizes = dict(CHAR_RNN_SIZES)
    for name, letter in (globals_ or {}).items():
        if not isinstance(name, str) or not name.isidentifier():
            raise InvalidArgumentError(f"globals names {name!r}, which is not a Python name")
        if letter not in SIZE_LETTERS:
            raise InvalidArgumentError(
                f"globals gives {name} the size {letter!r}; sizes are {', '.join(SIZE_LETTERS)}"
            )
        sizes[name] = letter
    clash = sorted(set(sizes) & set(names.values()))
    if clash:
        raise InvalidArgumentError(
            f"{', '.join(clash)} is both a weight and a size global; give them different names"
        )
    # lossFun cannot return dL/dhprev (it returns the last hidden state): the weights and
    # the loss are what it computes.
    every = (*params, "loss")
    if only is not None:
        unknown = [n for n in only if n not in every]
        if unknown:
            raise InvalidArgumentError(
                f"only names {', '.join(map(repr, unknown))}; a char-rnn lossFun returns "
                f"{', '.join(every)}"
            )
    adapter = {"kind": "char-rnn", "weights": [names[p] for p in params], "sizes": sizes}
    return Style(
        "full",
        "column",
        model,
        names,
        tuple(params),
        tuple(only) if only is not None else every,
        adapter,
        fit=_next_token,
        per_row=True,
    )


def _next_token(d: Dims) -> Dims:
    """A next-token model predicts the next character: C == D."""
    size = max(d.C, d.D, 2)
    return replace(d, D=size, C=size)
