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
from functools import cached_property

import numpy as np

from ..errors import InvalidArgumentError, UserFunctionError, WorkerDiedError
from ..models import VANILLA
from ..models.dims import Dims
from ..models.spec import Input, ModelSpec
from . import FORMS, LAYOUTS, PRECISIONS
from .convention import Arrangement, Convention, parts_of
from .isolation import Died, InProcess, Raised, Worker
from .plan import Plan
from .protocols import SHAPES, function_plan, pair_plan, step_pair_plan
from .worker import Foreign, Opaque

Runner = Worker | InProcess

__all__ = ["CallConventionMismatch", "Calling", "FORMS", "LAYOUTS", "PRECISIONS", "UserAnswer"]


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
class Calling:
    """How the checker calls one user's code: the model variant and form, how the code holds
    the model's arrays (`convention.Convention`), and the plan of calls (`plan.Plan`).

    Without a plan, the code is one function taking the form's arrays (positionally, or by
    the user's names when `keyword`) and returning (loss, grads) in the full form or grads in
    the layer form, grads a dict keyed by the user's names or a tuple in `order`.
    """

    form: str = "full"
    model: ModelSpec = VANILLA
    arrays: Convention = field(default_factory=Convention)
    plan: Plan | None = None
    #: The parts, in the order of a returned gradient tuple.
    order: Sequence[str] | None = None
    #: Pass arguments by the user's names (a plain function with declared names).
    keyword: bool = False
    #: Accept a gradient whose shape differs from its array's only by axes of size 1.
    allow_broadcast_shapes: bool = False
    #: Without a plan, the shape of the code (`protocols.SHAPES`): one function, a
    #: forward/backward pair over the sequence, or a step pair chained over it.
    shape: str = "function"
    #: The convention was declared as a value (not only names for a plain function): its
    #: names may name any of the model's arrays (a layer's code may take the output layer's).
    declared: bool = False

    @classmethod
    def of(
        cls,
        form: str = "full",
        layout: str = "row",
        batch_first: bool = False,
        names: Mapping[str, str] | None = None,
        order: Sequence[str] | None = None,
        model: ModelSpec = VANILLA,
        allow_broadcast_shapes: bool = False,
        arrays: Convention | None = None,
        plan: Plan | None = None,
        shape: str = "function",
    ) -> Calling:
        """A calling from the command line's options (layout, batch-first, names)."""
        if not isinstance(batch_first, bool):
            raise InvalidArgumentError(f"batch_first={batch_first!r} must be True or False")
        names = {} if names is None else names
        if not isinstance(names, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and v.isidentifier() for k, v in names.items()
        ):
            raise InvalidArgumentError(
                f"names={names!r} must map model names to your argument names, "
                "e.g. {'W_h': 'Whh'}"
            )
        if layout not in LAYOUTS:
            raise InvalidArgumentError(f"layout={layout!r} must be one of {', '.join(LAYOUTS)}")
        declared = arrays is not None
        if arrays is None:
            arrays = Convention(
                layout=layout, sequence="NTF" if batch_first else "TNF", names=dict(names)
            )
        return cls(
            form,
            model,
            arrays,
            plan,
            order,
            keyword=bool(arrays.names) and plan is None and shape == "function" and not declared,
            allow_broadcast_shapes=allow_broadcast_shapes,
            shape=shape,
            declared=declared,
        )

    def __post_init__(self) -> None:
        if self.form not in FORMS:
            raise InvalidArgumentError(f"form={self.form!r} must be one of {', '.join(FORMS)}")
        if self.shape not in SHAPES:
            raise InvalidArgumentError(f"shape={self.shape!r} must be one of {', '.join(SHAPES)}")
        if not isinstance(self.model, ModelSpec):
            raise InvalidArgumentError(f"model={self.model!r} must be a ModelSpec")
        if not isinstance(self.arrays, Convention):
            raise InvalidArgumentError(f"arrays={self.arrays!r} must be a Convention")
        if self.order is not None and (
            isinstance(self.order, str)
            or not isinstance(self.order, Sequence)
            or not all(isinstance(n, str) for n in self.order)
        ):
            raise InvalidArgumentError(
                f"order={self.order!r} must be a sequence of gradient names, "
                "e.g. ('W_x', 'W_h', 'b')"
            )
        known = (*self.inputs, *self.gradients)
        if self.plan is not None or self.declared:  # a plan may pass any of the arrays
            known = (*known, *(p for p in self._parts if p not in known))
        for part in self.arrays.names:
            if part not in known:
                close = difflib.get_close_matches(part, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise InvalidArgumentError(
                    f"names maps {part!r}, which is not an array of the {self.form} form "
                    f"({', '.join(dict.fromkeys(known))}){hint}"
                )
        user_names = [self.user_name(n) for n in self.inputs]
        clashes = sorted({u for u in user_names if user_names.count(u) > 1})
        if clashes:
            raise InvalidArgumentError(
                f"names gives two arrays the same name ({', '.join(map(repr, clashes))}); "
                "every argument needs its own name"
            )
        self.arrays.validate_for(self.model)
        if self.order is not None:
            object.__setattr__(self, "order", tuple(self.order))
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

    # -- what the form takes and gives ---------------------------------------------------------
    @cached_property
    def _parts(self) -> tuple[str, ...]:
        return parts_of(self.arrays, self.model)

    @cached_property
    def _layer_parameters(self) -> frozenset:
        """The parts that hold the recurrent layer's parameters only (the layer form's)."""
        m = self.model
        if m.from_file:
            return frozenset(m.parameters)
        state = set(m.state_parameters)
        probe = self.arrays.arrange(m, _PROBE_DIMS(m))
        return frozenset(
            p for p, a in probe.arrays.items() if a.role == "parameter" and set(a.holds) <= state
        )

    @cached_property
    def inputs(self) -> tuple[str, ...]:
        """The arrays a plain function gets, in positional order: the model's inputs (full
        form), or the recurrent layer's and an upstream gradient dh on every h_t (layer)."""
        m = self.model
        if self.form == "full" or m.from_file:
            return self._parts
        initial = tuple(i.name for i in m.initials)
        layer = tuple(p for p in self._parts if p in self._layer_parameters)
        return (m.sequence.name, *initial, *layer, "dh")

    @cached_property
    def gradients(self) -> tuple[str, ...]:
        """The gradients the form can return, in the default order of a returned tuple:
        parameters, then initial states, then the dense per-step inputs."""
        m = self.model
        roles = {i.name: i.role for i in m.inputs}
        rest = tuple(n for n in m.gradient_names if roles.get(n) != "parameter")
        if self.form == "full" or m.from_file:
            params = tuple(p for p in self._parts if p not in roles or roles[p] == "parameter")
            return (*params, *rest)
        return tuple(n for n in self.inputs if n in self._layer_parameters or n in rest)

    def user_name(self, part: str) -> str:
        return self.arrays.user_name(part)

    @property
    def layout(self) -> str:
        return self.arrays.layout

    @property
    def batch_first(self) -> bool:
        return self.arrays.batch_first

    @property
    def names(self) -> Mapping[str, str]:
        return self.arrays.names

    def arrangement(self, dims: Dims) -> Arrangement:
        """The user's arrays at these dims (cached): the model's, an upstream dh in the
        layer form, and the initial states the variant fixes at zero (a plan may pass them)."""
        cache = self.__dict__.setdefault("_arrangements", {})
        if dims not in cache:
            m = self.model
            extra: list[Input] = []
            if self.form == "layer" and not m.from_file:
                extra.append(Input("dh", ("T", "N", "H"), "upstream"))
            if not m.from_file:
                extra += [i for i in m.base_inputs if i.role == "initial" and i.name not in m.names]
            cache[dims] = Arrangement(self.arrays, m, dims, extra=tuple(extra))
        return cache[dims]

    # -- the plan ------------------------------------------------------------------------------
    def _keys(self, part: str) -> list[str]:
        u = self.user_name(part)
        return [u, "d" + u, "d_" + u, "grad_" + u]

    @cached_property
    def effective_plan(self) -> Plan:
        """The plan (the given one, or the one of this shape of code)."""
        if self.plan is not None:
            return self.plan
        if self.shape == "pair":
            return pair_plan(self.inputs, self.gradients, self.order, self._keys)
        if self.shape == "step-pair":
            m = self.model
            sequence = self.arrays.sequence
            axes = [a for a in sequence if a != "N"] if self.arrays.per_example else sequence
            return step_pair_plan(
                self.inputs,
                self._layer_parameters,
                m.states,
                [i.name for i in m.initials],
                list(axes).index("T"),
            )
        return function_plan(
            self.form,
            self.inputs,
            self.gradients,
            self.order,
            self._keys,
            self.user_name if self.keyword else None,
        )

    def claimed_keys(self) -> set[str]:
        return {k for p in self.gradients for k in self._keys(p)}

    # -- calling -------------------------------------------------------------------------
    def user_arrays(self, dims: Dims, arrays: Mapping[str, np.ndarray]) -> dict:
        """The arrays the call gets, keyed by part, in the user's layout."""
        arrangement = self.arrangement(dims)
        values = {k: np.array(v) for k, v in arrays.items()}
        for item in arrangement.extra:
            if item.role == "initial" and item.name not in values:
                values[item.name] = np.zeros(item.shape_in(dims))  # fixed at zero
        return arrangement.to_user(values)

    def shapes_text(self, dims: Dims, arrays: Mapping[str, np.ndarray]) -> str:
        """The shapes of one call's arguments, in the user's names and layout."""
        user = self.user_arrays(dims, arrays)
        shown = [p for p in self.inputs if p in user] if self.plan is None else list(user)
        return ", ".join(f"{self.user_name(n)}={np.shape(user[n])}" for n in shown)

    def call(
        self, runner: Runner, arrays: Mapping[str, np.ndarray], timeout: float | None = None
    ) -> UserAnswer:
        """Call the user's code (through runner) on the arrays; read its answer.

        Raises UserFunctionError when it raised or returned something unusable, and
        WorkerDiedError when it never answered (hung, crashed, exited, was killed).
        """
        return self.submit(runner, arrays, timeout)()

    def submit(
        self, runner: Runner, arrays: Mapping[str, np.ndarray], timeout: float | None = None
    ) -> Callable[[], UserAnswer]:
        """Start the call; the returned function waits for it and reads the answer (so the
        checker can compute the truth while the user's code runs)."""
        dims = self.model.dims_of({k: v for k, v in arrays.items() if k != "dh"})
        user = self.user_arrays(dims, arrays)
        arrangement = self.arrangement(dims)
        per_example = (
            [p for p in arrangement.data_parts if p in user] if self.arrays.per_example else []
        )
        stacked = [p for p in per_example if p in self.gradients]
        plan = self.effective_plan.to_wire(per_example, stacked)
        kwargs = {"plan": plan, "arrays": user, "sizes": dict(dims.sizes)}
        pending = runner.submit([], kwargs, timeout)
        return lambda: self._read(runner.name, pending.outcome(), dims, arrays)

    def describe_calls(self, functions: Sequence[str] = ()) -> str:
        """The plan's calls as code, in the user's names: `forward(x, h0, Wx)` and
        `backward(dh, cache)`."""
        plan = self.effective_plan

        def arg(spec) -> str:
            kind = spec[0]
            if kind == "array":
                return self.user_name(spec[1])
            if kind == "data":
                return {"h": "prev_h", "c": "prev_c"}.get(spec[1], spec[1])
            if kind == "size":
                return spec[1]
            if kind == "value":
                return repr(spec[1])
            if kind == "dict":
                return "{" + ", ".join(f"{k!r}: {arg(v)}" for k, v in spec[1].items()) + "}"
            if kind == "list":
                return "[" + ", ".join(arg(v) for v in spec[1]) + "]"
            return "None"

        def render(call, default: str) -> str:
            head = call.method or (functions[call.fn] if call.fn < len(functions) else default)
            args = [arg(a) for a in call.args] + [f"{k}={arg(v)}" for k, v in call.kwargs.items()]
            return f"{head}({', '.join(args)})"

        text = render(plan.forward, "forward")
        if plan.backward is not None:
            text += f" and {render(plan.backward, 'backward')}"
        return text

    def _how(self) -> str:
        how = "by keyword" if self.keyword else "positionally, in this order"
        return f"{', '.join(self.user_name(n) for n in self.inputs)} {how}"

    def _removed_note(self) -> str:
        """'; this model variant has no b' when the declared variant left out inputs the
        model has by default (not the ones it never takes by default, as the LSTM's c0)."""
        from ..models.spec import Options

        default = {i.name for i in replace(self.model, options=Options()).inputs}
        removed = [n for n in default if n not in self.model.names]
        if not removed or self.form != "full":
            return ""
        return f"; this model variant has no {', '.join(sorted(removed))}"

    def _read(self, name: str, outcome, dims: Dims, arrays) -> UserAnswer:
        if isinstance(outcome, Died):
            raise WorkerDiedError(
                f"{name} {outcome.reason} when called with shapes {self.shapes_text(dims, arrays)}"
            )
        if isinstance(outcome, Raised) and outcome.type == "CallConventionError":
            glue = " " if outcome.message.startswith("returned ") else ": "
            raise CallConventionMismatch(f"{name}{glue}{outcome.message}")
        if isinstance(outcome, Raised) and outcome.at_call and outcome.type == "TypeError":
            if self.plan is None and self.shape == "function":
                raise CallConventionMismatch(
                    f"{name} cannot be called as the check calls it ({outcome.message}): symbptt "
                    f"passes {self._how()}{self._removed_note()}; declare your argument names "
                    "with names=... (--names), or use the style or form your code is written in "
                    "(--style char-rnn, --form layer)"
                )
            calls = self.describe_calls(name.split(","))
            raise CallConventionMismatch(
                f"{name} cannot be called as the check calls it ({outcome.message}): symbptt "
                f"calls {calls}{self._removed_note()}"
            )
        if isinstance(outcome, Raised):  # the user's bug, reported with their own line
            hint = ""
            if outcome.at_call and outcome.type == "TypeError":
                hint = (
                    f"; the call itself failed: symbptt passes {self._how()}"
                    f"{self._removed_note()} (declare your own argument names with names=... "
                    "or --names)"
                )
            raise UserFunctionError(
                f"{name} raised {outcome.type}: {outcome.message} "
                f"({outcome.frame or 'no source line'}) "
                f"when called with shapes {self.shapes_text(dims, arrays)}{hint}"
            )
        try:
            return self._answer(name, outcome.value, dims)
        except UserFunctionError:  # CallConventionMismatch included
            raise
        except Exception as exc:  # something in the answer that NumPy cannot read
            raise UserFunctionError(
                f"could not read what {name} returned: {type(exc).__name__}: {exc}"
            ) from exc

    def _answer(self, name: str, result, dims: Dims) -> UserAnswer:
        if not isinstance(result, Mapping) or "grads" not in result:
            raise UserFunctionError(f"could not read what {name} returned ({_describe(result)})")
        loss, loss_dtype = result.get("loss"), None
        if self.form == "full" and self.effective_plan.loss is not None:
            loss_dtype = None if loss is None else _dtype_name(loss)
            loss = None if loss is None else _scalar_loss(name, loss)
        else:
            loss = None
        container = result.get("container") or {}
        self._check_container(name, container)
        answer = UserAnswer(loss, {})
        items = container.get("items")
        if isinstance(items, list):
            answer.raw_tuple = [v.array if isinstance(v, Foreign) else v for v in items]
        if loss_dtype is not None and _is_float_name(loss_dtype):
            answer.dtypes["loss"] = loss_dtype
        arrangement = self.arrangement(dims)
        returned = result["grads"] if isinstance(result["grads"], Mapping) else {}
        for key, value in returned.items():  # arrays the search has yet to place
            if isinstance(key, str) and key.startswith("?"):
                try:
                    value = value.array if isinstance(value, Foreign) else value
                    answer.grads[key] = np.asarray(value, dtype=np.float64)
                except (TypeError, ValueError):
                    pass
        for part in self.gradients:
            if part not in returned:
                continue
            value = returned[part]
            expected = arrangement.call_shape(part)
            problem, cause = _array_problem(self.user_name(part), value, expected)
            if problem and arrangement.is_sequence(part) and len(expected) >= 2:
                shape = np.shape(value.array if isinstance(value, Foreign) else value)
                swapped = arrangement.swapped_shape(part)
                if swapped is not None and shape == swapped != tuple(expected):
                    problem = (
                        f"d{self.user_name(part)} has shape {shape}, expected "
                        f"{tuple(expected)}: its batch and time axes are swapped"
                    )
                    cause = "batch_time_swapped"
            if problem is None:
                note = self._singleton_axes(part, value, expected)
                if note:
                    answer.shape_notes[part] = note
            if problem:
                answer.problems[part] = problem
                if cause:
                    answer.causes[part] = cause
                continue
            answer.dtypes[part] = _dtype_name(value)
            value = np.asarray(value.array if isinstance(value, Foreign) else value)
            answer.grads[part] = np.asarray(value.reshape(expected), dtype=np.float64)
        return answer

    def _check_container(self, name: str, container: Mapping) -> None:
        """Keys nobody claims, or a tuple of the wrong length: a usage error."""
        if "dict" in container:
            claimed = self.claimed_keys() if self.plan is None else None
            if claimed is None:
                return
            lookup = sorted(claimed)
            for key in container["dict"]:
                if key not in claimed:
                    close = difflib.get_close_matches(str(key), lookup, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    raise CallConventionMismatch(
                        f"{name} returned a gradient under the unexpected key {key!r}"
                        f"{hint}; expected keys among "
                        f"{', '.join(self.user_name(n) for n in self.gradients)}"
                    )
        elif "tuple" in container and self.plan is None:
            if self.order is None:
                raise CallConventionMismatch(
                    f"{name} returned its gradients as a tuple; declare their order "
                    "(order=... in Python, --order on the command line)"
                )
            if container["tuple"] != len(self.order):
                raise CallConventionMismatch(
                    f"{name} returned {container['tuple']} gradients; expected "
                    f"{len(self.order)} ({', '.join('d' + self.user_name(n) for n in self.order)})"
                )

    def _singleton_axes(self, part: str, value, expected) -> str | None:
        shape = np.shape(value.array if isinstance(value, Foreign) else value)
        expected = tuple(expected)
        if shape == expected or self.allow_broadcast_shapes:
            return None
        user = self.user_name(part)
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


def _PROBE_DIMS(model: ModelSpec) -> Dims:
    """Dims to lay a convention out at when only its parts matter."""
    return model.complete(Dims(N=2, D=2, H=3, C=3, T=2))


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
