"""Calling a user's gradient function in the user's own conventions, safely.

A user's function sees its arrays under its own names, in its own layout (`row`: x W as in the
model; `column`: W x with transposed weights and column biases, as in min-char-rnn) and with x
time-major or batch-first, as declared. Its answers are mapped back to the model's canonical
row layout. Anything unusable becomes a `UserFunctionError` (the call as a whole) or a
per-gradient problem sentence (one gradient), never a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import InvalidArgumentError, UserFunctionError, WorkerDiedError
from ..models import VANILLA
from ..models.spec import ModelSpec
from . import FORMS, LAYOUTS, PRECISIONS
from .isolation import Died, InProcess, Raised, Worker
from .worker import Foreign, Opaque

Runner = Worker | InProcess

__all__ = ["CallConventionMismatch", "Convention", "FORMS", "LAYOUTS", "PRECISIONS", "UserAnswer"]


class CallConventionMismatch(UserFunctionError):
    """The function does not take or return arrays the way the check was told (its signature,
    a tuple without a declared order, an unknown key, batch-first arrays): a usage error of the
    check (exit 2), never a wrong gradient."""


@dataclass
class UserAnswer:
    """What one call returned, in canonical names and row layout."""

    loss: float | None
    grads: dict[str, np.ndarray]
    problems: dict[str, str] = field(default_factory=dict)
    #: The dtype each returned array (and the loss, under "loss") was computed in.
    dtypes: dict[str, str] = field(default_factory=dict)
    #: A cause already evident from the answer's form (a transposed shape).
    causes: dict[str, str] = field(default_factory=dict)
    #: Gradients whose values were read, but whose shape differs from their parameter's by
    #: axes of size 1 (a (1, H) db for a (H,) b): one sentence each.
    shape_notes: dict[str, str] = field(default_factory=dict)
    #: A returned tuple as it came, in the user's layout (to tell a wrong declared order).
    raw_tuple: list | None = None


@dataclass(frozen=True)
class Convention:
    """How the user's function takes and returns arrays.

    `names` maps canonical names (W_h) to the user's (Whh); `order` is the canonical order of
    a gradient tuple the function returns.
    """

    form: str = "full"
    layout: str = "row"
    batch_first: bool = False
    names: Mapping[str, str] = field(default_factory=dict)
    order: Sequence[str] | None = None
    #: The model (variant) the function computes; default the vanilla RNN.
    model: ModelSpec = VANILLA
    #: Accept a gradient whose shape differs from its parameter's only by axes of size 1.
    allow_broadcast_shapes: bool = False

    # -- what the form takes and gives, from the model --------------------------------------
    @property
    def inputs(self) -> tuple[str, ...]:
        """The arrays passed, in positional order: the model's inputs (full form), or the
        recurrent layer's and an upstream gradient dh on every h_t (layer form)."""
        m = self.model
        if self.form == "full" or m.from_file:  # a layer file declares its own inputs
            return m.names
        initial = tuple(i.name for i in m.initials)
        return (m.sequence.name, *initial, *m.state_parameters, "dh")

    @property
    def gradients(self) -> tuple[str, ...]:
        """The gradients the form can return, in the default order of a returned tuple."""
        m = self.model
        if self.form == "full" or m.from_file:
            return m.gradient_names
        return tuple(n for n in self.inputs if n != "dh" and n in m.gradient_names)

    def _kind(self, canonical: str) -> str:
        """How the column layout changes an input: "matrix" (transposed), "bias" (a column)."""
        if canonical in self.model.parameters:
            return "matrix" if len(self.model.input(canonical).shape) == 2 else "bias"
        return "data"

    def _time_major(self, canonical: str) -> bool:
        return (
            canonical == "dh" and not self.model.from_file
        ) or canonical in self.model.time_major

    def __post_init__(self) -> None:
        if not isinstance(self.batch_first, bool):
            raise InvalidArgumentError(f"batch_first={self.batch_first!r} must be True or False")
        if not isinstance(self.names, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and v.isidentifier()
            for k, v in self.names.items()
        ):
            raise InvalidArgumentError(
                f"names={self.names!r} must map model names to your argument names, "
                "e.g. {'W_h': 'Whh'}"
            )
        if self.order is not None and (
            isinstance(self.order, str)
            or not isinstance(self.order, Sequence)
            or not all(isinstance(n, str) for n in self.order)
        ):
            raise InvalidArgumentError(
                f"order={self.order!r} must be a sequence of gradient names, "
                "e.g. ('W_x', 'W_h', 'b')"
            )
        if self.form not in FORMS:
            raise InvalidArgumentError(f"form={self.form!r} must be one of {', '.join(FORMS)}")
        if self.layout not in LAYOUTS:
            raise InvalidArgumentError(
                f"layout={self.layout!r} must be one of {', '.join(LAYOUTS)}"
            )
        if not isinstance(self.model, ModelSpec):
            raise InvalidArgumentError(f"model={self.model!r} must be a ModelSpec")
        known = (*self.inputs, *self.gradients)
        for canonical in self.names:
            if canonical not in known:
                close = difflib.get_close_matches(canonical, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise InvalidArgumentError(
                    f"names maps {canonical!r}, which is not an array of the {self.form} form "
                    f"({', '.join(dict.fromkeys(known))}){hint}"
                )
        user_names = [self.user_name(n) for n in self.inputs]
        clashes = sorted({u for u in user_names if user_names.count(u) > 1})
        if clashes:
            raise InvalidArgumentError(
                f"names gives two arrays the same name ({', '.join(map(repr, clashes))}); "
                "every argument needs its own name"
            )
        if self.order is not None:
            repeated = sorted({n for n in self.order if list(self.order).count(n) > 1})
            if repeated:
                raise InvalidArgumentError(
                    f"order names {', '.join(map(repr, repeated))} more than once"
                )
            unknown = [n for n in self.order if n not in self.gradients]
            if unknown:
                raise InvalidArgumentError(
                    f"order names {', '.join(map(repr, unknown))}, not gradients of the "
                    f"{self.form} form ({', '.join(self.gradients)})"
                )

    def user_name(self, canonical: str) -> str:
        return self.names.get(canonical, canonical)

    # -- canonical -> user ---------------------------------------------------------------
    def to_user(self, canonical: str, value: np.ndarray) -> np.ndarray:
        """One input array as the user's function expects it."""
        if self.layout == "column":
            kind = self._kind(canonical)
            if kind == "matrix":
                value = value.T
            elif kind == "bias":
                value = value[:, None]
        if self.batch_first and self._time_major(canonical):
            value = np.swapaxes(value, 0, 1)
        return np.ascontiguousarray(value)

    def user_index(self, canonical: str, index: tuple[int, ...]) -> tuple[int, ...]:
        """Where an entry of a canonical array sits in the user's own array."""
        if self.layout == "column":
            kind = self._kind(canonical)
            if kind == "matrix":
                index = index[::-1]
            elif kind == "bias":
                index = (*index, 0)
        if self.batch_first and self._time_major(canonical):
            index = (index[1], index[0], *index[2:])
        return tuple(index)

    def user_shape(self, canonical: str, shape: tuple[int, ...]) -> tuple[int, ...]:
        return self.to_user(canonical, np.empty(shape)).shape

    def arguments(self, arrays: Mapping[str, np.ndarray]) -> tuple[list, dict]:
        """Positional arguments, or keyword arguments under the user's names if any are mapped."""
        values = {n: self.to_user(n, arrays[n]) for n in self.inputs}
        if self.names:
            return [], {self.user_name(n): v for n, v in values.items()}
        return list(values.values()), {}

    # -- calling -------------------------------------------------------------------------
    def shapes_text(self, arrays: Mapping[str, np.ndarray]) -> str:
        """The shapes of one call's arguments, in the user's names and layout."""
        return ", ".join(
            f"{self.user_name(n)}={self.to_user(n, arrays[n]).shape}" for n in self.inputs
        )

    def call(
        self, runner: Runner, arrays: Mapping[str, np.ndarray], timeout: float | None = None
    ) -> UserAnswer:
        """Call the user's function (through runner) on the arrays; map its answer back.

        Raises UserFunctionError when it raised or returned something unusable, and
        WorkerDiedError when it never answered (hung, crashed, exited, was killed).
        """
        return self.submit(runner, arrays, timeout)()

    def submit(
        self, runner: Runner, arrays: Mapping[str, np.ndarray], timeout: float | None = None
    ) -> Callable[[], UserAnswer]:
        """Start the call; the returned function waits for it and reads the answer (so the
        checker can compute the truth while the user's code runs)."""
        args, kwargs = self.arguments({k: np.array(v) for k, v in arrays.items()})
        pending = runner.submit(args, kwargs, timeout)
        return lambda: self._read(runner.name, pending.outcome(), arrays, bool(kwargs))

    def _removed_note(self) -> str:
        """'; this model variant has no b' when the declared variant left out inputs the
        model has by default (not the ones it never takes by default, as the LSTM's c0)."""
        from ..models.spec import Options

        default = {i.name for i in replace(self.model, options=Options()).inputs}
        removed = [n for n in default if n not in self.inputs]
        if not removed or self.form != "full":
            return ""
        return f"; this model variant has no {', '.join(sorted(removed))}"

    def _read(self, name: str, outcome, arrays, by_keyword: bool) -> UserAnswer:
        if isinstance(outcome, Died):
            raise WorkerDiedError(
                f"{name} {outcome.reason} when called with shapes {self.shapes_text(arrays)}"
            )
        if isinstance(outcome, Raised) and outcome.type == "CallConventionError":
            raise CallConventionMismatch(f"{name}: {outcome.message}")
        if isinstance(outcome, Raised) and outcome.at_call and outcome.type == "TypeError":
            how = "by keyword" if by_keyword else "positionally, in this order"
            variant = self._removed_note()
            raise CallConventionMismatch(
                f"{name} cannot be called as the check calls it ({outcome.message}): symbptt "
                f"passes {', '.join(self.user_name(n) for n in self.inputs)} {how}{variant}; "
                "declare your argument names with names=... (--names), or use the style or "
                "form your code is written in (--style char-rnn, --form layer)"
            )
        if isinstance(outcome, Raised):  # the user's bug, reported with their own line
            hint = ""
            if outcome.at_call and outcome.type == "TypeError":
                how = "by keyword" if by_keyword else "positionally, in this order"
                variant = self._removed_note()
                hint = (
                    f"; the call itself failed: symbptt passes "
                    f"{', '.join(self.user_name(n) for n in self.inputs)} {how}"
                    f"{variant} (declare your own argument names with names=... or --names)"
                )
            raise UserFunctionError(
                f"{name} raised {outcome.type}: {outcome.message} "
                f"({outcome.frame or 'no source line'}) "
                f"when called with shapes {self.shapes_text(arrays)}{hint}"
            )
        try:
            return self._answer(name, outcome.value, arrays)
        except UserFunctionError:  # CallConventionMismatch included
            raise
        except Exception as exc:  # something in the answer that NumPy cannot read
            raise UserFunctionError(
                f"could not read what {name} returned: {type(exc).__name__}: {exc}"
            ) from exc

    def _answer(self, name: str, result, arrays) -> UserAnswer:
        if self.form == "full":
            if not (isinstance(result, (tuple, list)) and len(result) == 2):
                raise CallConventionMismatch(
                    f"{name} returned {_describe(result)}; the full form must return a "
                    "pair (loss, grads)"
                )
            loss, grads = result
            loss_dtype = None if loss is None else _dtype_name(loss)
            loss = None if loss is None else _scalar_loss(name, loss)
        else:
            loss, grads, loss_dtype = None, result, None
        raw = self._by_name(name, grads)
        answer = UserAnswer(loss, {})
        if isinstance(grads, (tuple, list)):
            answer.raw_tuple = [v.array if isinstance(v, Foreign) else v for v in grads]
        if loss_dtype is not None and _is_float_name(loss_dtype):
            answer.dtypes["loss"] = loss_dtype
        for canonical, value in raw.items():
            expected = self.user_shape(canonical, arrays[canonical].shape)
            problem, cause = _array_problem(self.user_name(canonical), value, expected)
            if problem and self._time_major(canonical) and len(expected) >= 2:
                shape = np.shape(value.array if isinstance(value, Foreign) else value)
                if shape == (expected[1], expected[0], *expected[2:]) != tuple(expected):
                    problem = (
                        f"d{self.user_name(canonical)} has shape {shape}, expected "
                        f"{tuple(expected)}: its batch and time axes are swapped"
                    )
                    cause = "batch_time_swapped"
            if problem is None:
                note = self._singleton_axes(canonical, value, expected)
                if note:
                    answer.shape_notes[canonical] = note
            if problem:
                answer.problems[canonical] = problem
                if cause:
                    answer.causes[canonical] = cause
                continue
            answer.dtypes[canonical] = _dtype_name(value)
            value = np.asarray(value.array if isinstance(value, Foreign) else value)
            answer.grads[canonical] = self._from_user(canonical, value.reshape(expected))
        return answer

    def _singleton_axes(self, canonical: str, value, expected) -> str | None:
        shape = np.shape(value.array if isinstance(value, Foreign) else value)
        expected = tuple(expected)
        if shape == expected or self.allow_broadcast_shapes:
            return None
        user = self.user_name(canonical)
        grown = np.broadcast_shapes(shape, expected)
        effect = (
            f"{user} = {user} - lr * d{user} would make {user} {grown}"
            if grown != expected
            else f"{user} -= lr * d{user} would fail"
        )
        return (
            f"d{user} has shape {shape}, expected {expected}: the same entries with axes of "
            f"size 1 added or dropped, so {effect} (allow_broadcast_shapes=True, "
            "--allow-broadcast-shapes, accepts it)"
        )

    def _by_name(self, name: str, grads) -> dict[str, object]:
        allowed = self.gradients
        if isinstance(grads, Mapping):
            lookup = {}
            for n in allowed:
                u = self.user_name(n)
                for key in (u, "d" + u, "d_" + u, "grad_" + u):
                    lookup.setdefault(key, n)
            out = {}
            for key, value in grads.items():
                if key not in lookup:
                    close = difflib.get_close_matches(str(key), list(lookup), n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    raise CallConventionMismatch(
                        f"{name} returned a gradient under the unexpected key {key!r}"
                        f"{hint}; expected keys among "
                        f"{', '.join(self.user_name(n) for n in allowed)}"
                    )
                out[lookup[key]] = value
            return out
        if isinstance(grads, (tuple, list)):
            order = list(self.order) if self.order is not None else None
            if order is None:
                raise CallConventionMismatch(
                    f"{name} returned its gradients as a {type(grads).__name__}; "
                    "declare their order (order=... in Python, --order on the command line)"
                )
            if len(grads) != len(order):
                raise CallConventionMismatch(
                    f"{name} returned {len(grads)} gradients; expected {len(order)} "
                    f"({', '.join('d' + self.user_name(n) for n in order)})"
                )
            return dict(zip(order, grads))
        raise CallConventionMismatch(
            f"{name} returned gradients as {_describe(grads)}; return a dict keyed by "
            "parameter name, or a tuple with a declared order"
        )

    def _from_user(self, canonical: str, value: np.ndarray) -> np.ndarray:
        if self.batch_first and self._time_major(canonical):
            value = np.swapaxes(value, 0, 1)
        if self.layout == "column":
            kind = self._kind(canonical)
            if kind == "matrix":
                value = value.T
            elif kind == "bias":
                value = value[:, 0]
        return np.asarray(value, dtype=np.float64)


def _describe(value) -> str:
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of length {len(value)}"
    if isinstance(value, Opaque):
        return f"a value of type {value.type_name}"
    if isinstance(value, Foreign):
        return f"a {value.dtype_name} array"
    return f"a value of type {type(value).__name__}"


def _dtype_name(value) -> str:
    """The dtype a returned value was computed in (bfloat16 included, which NumPy lacks)."""
    if isinstance(value, Foreign):
        return value.dtype_name
    if isinstance(value, float | int):
        return "float64"
    try:
        return str(np.asarray(value).dtype)
    except Exception:
        return "object"


def _is_float_name(dtype: str) -> bool:
    return dtype.startswith("float") or dtype == "bfloat16"


def _scalar_loss(name: str, loss) -> float:
    arr = np.asarray(loss.array if isinstance(loss, Foreign) else loss)
    if arr.size != 1 or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise UserFunctionError(
            f"{name} returned a loss of {_describe(loss)} with shape {arr.shape}; "
            "the loss must be one real number"
        )
    value = float(arr.reshape(()))
    if not np.isfinite(value):
        raise UserFunctionError(f"{name} returned a non-finite loss ({value})")
    return value


def _array_problem(
    user_name: str, value, expected: tuple[int, ...]
) -> tuple[str | None, str | None]:
    """(one sentence, evident cause) if this returned gradient cannot be compared."""
    if isinstance(value, Opaque):
        return f"d{user_name} is a {value.type_name}, which could not be read as an array", None
    if isinstance(value, Foreign):
        value = value.array
    try:
        arr = np.asarray(value)
    except Exception as exc:
        return f"d{user_name} could not be read as an array ({exc})", None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating)):
        return f"d{user_name} has dtype {arr.dtype}; gradients must be floating-point arrays", None
    shape_ok = arr.shape == expected or (
        arr.size == int(np.prod(expected))
        and arr.squeeze().shape == tuple(d for d in expected if d != 1)
    )
    if not shape_ok:
        transposed = arr.shape == expected[::-1]
        hint = " (it looks transposed)" if transposed else ""
        message = f"d{user_name} has shape {arr.shape}, expected {expected}{hint}"
        return message, "transposed" if transposed else None
    if not np.all(np.isfinite(arr)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        return f"d{user_name} holds a non-finite value ({arr[bad]}) at index {bad}", None
    return None, None
