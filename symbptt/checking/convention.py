"""How a user's arrays relate to the model's: the `Convention` value and its `Arrangement`.

Code for the same model stores the same numbers in many ways: x W or W x, one matrix for all
the gates or one per gate, the gates in any order, the input stacked as [h, x] or [1, x, h]
(the bias as a row of the matrix), biases (H,), (1, H) or (H, 1), sequences time-major,
batch-first or features first, one example per call. Each is a re-arrangement of the model's
entries: a signed permutation of the parameters (signed, because the GRU written with
h = (1 - z) h_prev + z n is the model with z's pre-activation negated) and a move of the data's
axes. A `Convention` says which re-arrangement; `arrange(model, dims)` gives the `Arrangement`
that maps the model's arrays, and their true gradients, into the user's arrays, so that a
report speaks the user's names and shapes.

The user's parameter arrays are named by *parts*: a model parameter (`W_x`), one gate's block
of it (`W_x.f`), the stacked matrix (`W`, or `W.f` per gate, holding the stacked rows of
`W_h`, `W_x` and, with a "1" in the stack, the bias). `names` maps parts to the user's names.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from types import MappingProxyType
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError
from ..models.dims import Dims
from ..models.spec import ModelSpec

__all__ = ["Convention", "Arrangement", "UserArray", "LAYOUTS", "WEIGHTS", "UPDATES", "BIASES"]

LAYOUTS = ("row", "column")
WEIGHTS = ("fused", "per-gate")
#: The GRU's update: z weighs h_{t-1} ("prev", PyTorch's) or the new state n ("new").
UPDATES = ("prev", "new")
#: A bias as a flat (H,), a row (1, H) or a column (H, 1).
BIASES = ("F", "1F", "F1")
#: The letters of an axes string: time, batch (absent: one example per call), features, and
#: an axis of size one.
_SEQUENCE_LETTERS = frozenset("TNF1")
_STATE_LETTERS = frozenset("NF1")


def _axes(label: str, value: Any, letters: frozenset, required: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(f"{label}={value!r} must be a string of axis letters")
    bad = sorted(set(value) - letters)
    if bad:
        raise InvalidArgumentError(
            f"{label}={value!r} has {', '.join(map(repr, bad))}; its letters are "
            f"{', '.join(sorted(letters))} (T time, N batch, F features, 1 an axis of size one)"
        )
    for letter in set(value) - {"1"}:
        if value.count(letter) > 1:
            raise InvalidArgumentError(f"{label}={value!r} names the axis {letter} twice")
    missing = [letter for letter in required if letter not in value]
    if missing:
        raise InvalidArgumentError(f"{label}={value!r} has no {' and no '.join(missing)} axis")
    return value


@dataclass(frozen=True)
class Convention:
    """How the user's arrays hold the model's: layout, axes, gates, stacking, biases, names.

    The defaults are the model's own arrays (row layout, time-major, one matrix per parameter).
    """

    #: "row": x W with W (D, kH), as the model; "column": W x with W (kH, D).
    layout: str = "row"
    #: Axes of the per-step data (x, its gradient, an upstream dh; labels without F): T time,
    #: N batch, F features, 1 a singleton. "TNF" time-major, "NTF" batch-first, "FNT" features
    #: first (deeplearning.ai); without N, the code takes one example per call.
    sequence: str = "TNF"
    #: Axes of an initial state (h0, c0 and their gradients): "NF", "FN", or "F" with one
    #: example per call. None: "NF" (or "F" when the sequence has no N).
    state: str | None = None
    #: A bias (and a bias gradient) as "F" (H,), "1F" (1, H) or "F1" (H, 1). None: F for the
    #: row layout, F1 for the column layout.
    bias: str | None = None
    #: The user's order of the model's gates (LSTM letters i f o g, GRU r z n), e.g. "fgio".
    #: None: the model's own order.
    gates: str | None = None
    #: "fused": one array per parameter, gates side by side; "per-gate": one array per gate.
    weights: str = "fused"
    #: The pre-activation's terms stacked into one array, in the order of its rows: "hx"
    #: ([h, x]), "xh", "1xh" (a bias row first: Karpathy's WLSTM), "12" (the GRU's two biases
    #: as the rows of one array: Keras's); letters x, h, 1, 2 (`ModelSpec.stacking`).
    stack: str | None = None
    #: The recurrent layer's bias held as the sum of two arrays, one beside the input's
    #: weights and one beside the state's (PyTorch's b_ih + b_hh): parts b_ih and b_hh.
    split: bool = False
    #: The GRU's update: "prev" (h = (1-z) n + z h_prev, PyTorch's) or "new" (h = (1-z)
    #: h_prev + z n).
    update: str = "prev"
    #: Part name (`W_x`, `W_x.f`, `W.f`, `b.i`, `h0`) -> the user's name for that array.
    names: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise InvalidArgumentError(
                f"layout={self.layout!r} must be one of {', '.join(LAYOUTS)}"
            )
        sequence = _axes("sequence", self.sequence, _SEQUENCE_LETTERS, "TF")
        if self.state is not None:
            _axes("state", self.state, _STATE_LETTERS, "F")
        state = self.state_axes
        if ("N" in sequence) != ("N" in state):
            raise InvalidArgumentError(
                f"sequence={sequence!r} and state={state!r}: either both have the batch axis N "
                "or neither (one example per call)"
            )
        if self.bias is not None and self.bias not in BIASES:
            raise InvalidArgumentError(
                f"bias={self.bias!r} must be one of {', '.join(BIASES)} ((H,), (1, H), (H, 1))"
            )
        if self.weights not in WEIGHTS:
            raise InvalidArgumentError(
                f"weights={self.weights!r} must be one of {', '.join(WEIGHTS)}"
            )
        if self.update not in UPDATES:
            raise InvalidArgumentError(
                f"update={self.update!r} must be one of {', '.join(UPDATES)}"
            )
        if self.gates is not None and (
            not isinstance(self.gates, str) or len(set(self.gates)) != len(self.gates)
        ):
            raise InvalidArgumentError(
                f"gates={self.gates!r} must name each gate once, e.g. 'fgio'"
            )
        if self.stack is not None:
            stack = self.stack
            if (
                not isinstance(stack, str)
                or set(stack) - set("xh12")
                or len(set(stack)) != len(stack)
                or len(stack) < 2
            ):
                raise InvalidArgumentError(
                    f"stack={stack!r} must order two or more of x, h, 1 and 2 (bias rows), "
                    "e.g. 'hx', 'xh', '1xh' or '12'"
                )
        if not isinstance(self.split, bool):
            raise InvalidArgumentError(f"split={self.split!r} must be True or False")
        if not isinstance(self.names, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and v and not set(v) & set(" \t\n")
            for k, v in self.names.items()
        ):
            raise InvalidArgumentError(
                f"names={self.names!r} must map part names to your names, e.g. {{'W_h': 'Whh'}}"
            )
        object.__setattr__(self, "names", MappingProxyType(dict(self.names)))

    def __hash__(self) -> int:
        values = [getattr(self, f.name) for f in fields(self)]
        values[-1] = tuple(sorted(self.names.items()))
        return hash(tuple(values))

    # -- facts -------------------------------------------------------------------------------
    @property
    def state_axes(self) -> str:
        """The initial states' axes: as given, else NF (F with one example per call)."""
        if self.state is not None:
            return self.state
        return "NF" if "N" in self.sequence else "F"

    @property
    def bias_axes(self) -> str:
        """A bias's shape: as given, else F (H,) for the row layout, F1 (H, 1) for the column."""
        if self.bias is not None:
            return self.bias
        return "F" if self.layout == "row" else "F1"

    @property
    def per_example(self) -> bool:
        """Whether the code takes one example per call (no batch axis)."""
        return "N" not in self.sequence

    @property
    def batch_first(self) -> bool:
        return (
            self.sequence.index("N") < self.sequence.index("T") if "N" in self.sequence else False
        )

    def user_name(self, part: str) -> str:
        return self.names.get(part, part)

    def changes(self, other: Convention) -> dict[str, tuple[Any, Any]]:
        """The fields where this convention differs from other: name -> (this, other)."""
        out = {}
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.name == "names":
                a, b = dict(a), dict(b)
            if a != b:
                out[f.name] = (a, b)
        return out

    def as_dict(self) -> dict[str, Any]:
        """The fields that differ from the defaults, as plain data (TOML, JSON)."""
        default = Convention(layout=self.layout)
        out: dict[str, Any] = {"layout": self.layout}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "names":
                if value:
                    out["names"] = dict(value)
            elif value != getattr(default, f.name) and value is not None:
                out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "the convention") -> Convention:
        """A convention from plain data; InvalidArgumentError naming an unknown key."""
        known = [f.name for f in fields(cls)]
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise InvalidArgumentError(
                    f"{where} has the unknown key {key!r}{hint}; keys are {', '.join(known)}"
                )
        return cls(**dict(data))

    def settled(self, model: ModelSpec) -> Convention:
        """The same convention with every default spelled out for this model (to compare)."""
        return replace(
            self,
            gates=self.gates or model.fused_gates or None,
            state=self.state_axes,
            bias=self.bias_axes,
            names={p: u for p, u in self.names.items() if p != u},
        )

    def validate_for(self, model: ModelSpec) -> None:
        """InvalidArgumentError when this convention cannot hold the model's arrays."""
        gates = model.fused_gates
        if self.gates is not None and sorted(self.gates) != sorted(gates):
            what = f"the gates {', '.join(gates)}" if gates else "no gates"
            raise InvalidArgumentError(
                f"gates={self.gates!r} does not order the {model.title or model.name}'s gates: "
                f"it has {what}"
            )
        if self.weights == "per-gate" and not gates:
            raise InvalidArgumentError(
                f"weights='per-gate' splits a gated model's matrices; the "
                f"{model.title or model.name} has no gates"
            )
        if self.stack is not None:
            stacking = dict(model.stacking)
            if not stacking:
                raise InvalidArgumentError(
                    f"stack={self.stack!r}: the {model.title or model.name} names no matrices "
                    "that code stacks (a model file's code takes its arrays as declared)"
                )
            unknown = [k for k in self.stack if k not in stacking]
            if unknown:
                raise InvalidArgumentError(
                    f"stack={self.stack!r}: the {model.title or model.name} stacks only "
                    f"{', '.join(f'{k} ({v})' for k, v in model.stacking)}"
                )
            missing = [stacking[k] for k in self.stack if stacking[k] not in model.parameters]
            if missing:
                raise InvalidArgumentError(
                    f"stack={self.stack!r} stacks {', '.join(missing)}, which this variant "
                    "does not have"
                )
        if self.split:
            stacking = dict(model.stacking)
            bias = stacking.get("1")
            if bias is None or "2" in stacking or bias not in model.parameters:
                raise InvalidArgumentError(
                    f"split=True holds one bias as two arrays (b_ih + b_hh); the "
                    f"{model.title or model.name} (this variant) has "
                    + ("two biases already" if "2" in stacking else "no such bias")
                )
            if self.stack and "1" in self.stack:
                raise InvalidArgumentError("split=True and a bias row in the stack: choose one")
        if self.update != "prev" and not model.complement_gate:
            raise InvalidArgumentError(
                f"update={self.update!r} is the GRU's other update convention; the "
                f"{model.title or model.name} has no such gate"
            )
        parts = set(parts_of(self, model))
        unknown = [p for p in self.names if p not in parts]
        if unknown:
            close = difflib.get_close_matches(unknown[0], sorted(parts), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise InvalidArgumentError(
                f"names renames {unknown[0]!r}, which is not one of the arrays of this "
                f"convention ({', '.join(parts_of(self, model))}){hint}"
            )
        user = [self.user_name(p) for p in parts_of(self, model)]
        clashes = sorted({u for u in user if user.count(u) > 1})
        if clashes:
            raise InvalidArgumentError(
                f"names gives two arrays the same name ({', '.join(map(repr, clashes))})"
            )

    def arrange(self, model: ModelSpec, dims: Dims, extra: tuple = ()) -> Arrangement:
        """The user's arrays of this model at these dims (and of `extra` data inputs)."""
        return Arrangement(self, model, dims, extra)


# -- the parts of a convention --------------------------------------------------------------


def _gated(model: ModelSpec) -> tuple[str, ...]:
    """The parameters whose last axis holds every gate's block (shape "kH", k the gates)."""
    k = len(model.fused_gates)
    if not k:
        return ()
    return tuple(p for p in model.parameters if model.input(p).shape[-1:] == (f"{k}H",))


def _stacked(convention: Convention, model: ModelSpec) -> tuple[str, ...]:
    """The model parameters the stacked array holds, in its row order."""
    if convention.stack is None:
        return ()
    stacking = dict(model.stacking)
    return tuple(stacking[k] for k in convention.stack)


def _stack_name(convention: Convention) -> str:
    """The stacked array's part name: W (weights, maybe with bias rows), B (biases only)."""
    return "W" if set(convention.stack or "") & set("xh") else "B"


def _split_bias(convention: Convention, model: ModelSpec) -> str | None:
    return dict(model.stacking).get("1") if convention.split else None


def parts_of(convention: Convention, model: ModelSpec) -> tuple[str, ...]:
    """Every array of the user's, by part name: the data the model has, then the
    parameters (a stacked array where its first parameter sits; a split bias as b_ih and
    b_hh)."""
    gates = convention.gates or model.fused_gates
    gated, stacked = _gated(model), _stacked(convention, model)
    split = _split_bias(convention, model)
    per_gate = convention.weights == "per-gate"
    out: list[str] = []

    def each(head: str, name: str | None) -> list[str]:
        if per_gate and (name is None or name in gated):
            return [f"{head}.{g}" for g in gates]
        return [head]

    for item in model.inputs:
        name = item.name
        if item.role != "parameter":
            out.append(name)
        elif name in stacked:
            if name == next(p for p in model.parameters if p in stacked):
                out += each(_stack_name(convention), None)
        elif name == split:
            out += each(f"{name}_ih", name) + each(f"{name}_hh", name)
        else:
            out += each(name, name)
    return tuple(out)


# -- the arrangement at given dims ----------------------------------------------------------


@dataclass(frozen=True)
class UserArray:
    """One array as the user's code holds it.

    Parameters: `ids` indexes the model's parameters' entries laid end to end (the user's
    shape), `signs` multiplies them (the GRU's complemented gate); data: `axes` are the
    user's axes in the model's letters.
    """

    part: str
    user: str
    role: str
    shape: tuple[int, ...]
    #: The model arrays whose entries this one holds.
    holds: tuple[str, ...]
    ids: np.ndarray | None = None
    signs: np.ndarray | None = None
    axes: str | None = None
    #: A split bias's half ("ih" or "hh"): its values are the bias minus, or equal to, a
    #: fixed random shift (so that both halves matter), its gradient is the bias's.
    half: str | None = None
    shift: np.ndarray | None = None

    def where(self, index: tuple[int, ...]) -> str:
        """An entry of this array, as the user indexes it."""
        return f"{self.user}[{', '.join(map(str, index))}]"


class Arrangement:
    """The user's arrays of one model at one set of dims: the maps both ways."""

    def __init__(
        self, convention: Convention, model: ModelSpec, dims: Dims, extra: tuple = ()
    ) -> None:
        convention.validate_for(model)
        self.convention, self.model, self.dims = convention, model, dims
        #: Data inputs beyond the model's (a layer's upstream dh, states fixed at zero).
        self.extra = tuple(extra)
        self.offsets: dict[str, tuple[int, tuple[int, ...]]] = {}
        total = 0
        for name in model.parameters:
            shape = model.shape(name, dims)
            self.offsets[name] = (total, shape)
            total += int(np.prod(shape, dtype=np.int64))
        self.size = total
        self.arrays: dict[str, UserArray] = {}
        for item in model.inputs:
            if item.role != "parameter":
                self.arrays[item.name] = self._data(item)
        for array in self._parameters():
            self.arrays[array.part] = array
        order = parts_of(convention, model)
        self.arrays = {p: self.arrays[p] for p in order if p in self.arrays}
        for item in self.extra:
            self.arrays[item.name] = self._data(item)
        covered = np.zeros(total, dtype=np.int64)
        for array in self.arrays.values():
            if array.ids is not None and array.half != "hh":
                np.add.at(covered, array.ids.ravel(), 1)
        if total and not np.all(covered == 1):  # a bug of ours, never the user's
            raise AssertionError(f"the arrangement of {convention} does not cover every entry once")

    # -- building --------------------------------------------------------------------------
    def _ids(self, name: str) -> np.ndarray:
        start, shape = self.offsets[name]
        return np.arange(start, start + int(np.prod(shape, dtype=np.int64))).reshape(shape)

    def _parameters(self) -> list[UserArray]:
        conv, model = self.convention, self.model
        H = self.dims.H
        model_gates = model.fused_gates
        gates = conv.gates or model_gates
        gated, stacked = _gated(model), _stacked(conv, model)
        complement = model.complement_gate if conv.update == "new" else ""

        def block(name: str, gate: str | None) -> tuple[np.ndarray, np.ndarray]:
            ids = self._ids(name)
            if gate is not None and name in gated:
                k = model_gates.index(gate)
                ids = ids[..., k * H : (k + 1) * H]
            sign = np.ones(ids.shape, dtype=np.int8)
            if complement and name in gated and gate == complement:
                sign = -sign
            return ids, sign

        def fused(name: str) -> tuple[np.ndarray, np.ndarray]:
            if name not in gated:
                return block(name, None)
            pieces = [block(name, g) for g in gates]
            return (
                np.concatenate([p[0] for p in pieces], axis=-1),
                np.concatenate([p[1] for p in pieces], axis=-1),
            )

        def oriented(ids: np.ndarray, sign: np.ndarray, bias: bool) -> tuple:
            if bias:
                if conv.bias_axes == "1F":
                    return ids[None, :], sign[None, :]
                if conv.bias_axes == "F1":
                    return ids[:, None], sign[:, None]
                return ids, sign
            if conv.layout == "column" and ids.ndim == 2:
                return ids.T, sign.T
            return ids, sign

        out: list[UserArray] = []

        def add(part: str, holds: tuple[str, ...], ids, sign, bias: bool, half=None) -> None:
            ids, sign = oriented(ids, sign, bias)
            signs = None if np.all(sign == 1) else sign
            shift = None
            if half is not None:  # a fixed, non-zero share: both halves must be used
                rng = np.random.default_rng([7, *ids.shape])
                shift = 0.3 * rng.standard_normal(ids.shape)
            out.append(
                UserArray(
                    part,
                    conv.user_name(part),
                    "parameter",
                    ids.shape,
                    holds,
                    ids,
                    signs,
                    half=half,
                    shift=shift,
                )
            )

        def stack(gate: str | None) -> tuple[np.ndarray, np.ndarray]:
            rows = []
            for name in stacked:
                ids, sign = block(name, gate) if gate is not None else fused(name)
                if ids.ndim == 1:  # the bias, as one row
                    ids, sign = ids[None, :], sign[None, :]
                rows.append((ids, sign))
            return (
                np.concatenate([r[0] for r in rows], axis=0),
                np.concatenate([r[1] for r in rows], axis=0),
            )

        per_gate = conv.weights == "per-gate"
        split = _split_bias(conv, model)
        for name in model.parameters:
            if name in stacked:
                continue
            item = model.input(name)
            bias = len(item.shape) == 1
            heads = (
                [(f"{name}_ih", "ih"), (f"{name}_hh", "hh")] if name == split else [(name, None)]
            )
            for head, half in heads:
                if per_gate and name in gated:
                    for g in gates:
                        add(f"{head}.{g}", (name,), *block(name, g), bias, half)
                else:
                    add(head, (name,), *fused(name), bias, half)
        if stacked:
            stack_name = _stack_name(conv)
            if per_gate:
                for g in gates:
                    add(f"{stack_name}.{g}", stacked, *stack(g), False)
            else:
                add(stack_name, stacked, *stack(None), False)
        return out

    def _data(self, item) -> UserArray:
        """A data array (x, y, h0, c0, dh): the model's axes moved to the user's."""
        conv = self.convention
        shape = item.shape
        if item.role == "initial" or (len(shape) == 2 and shape[0] == "N"):
            model_axes, axes = "NF", conv.state_axes
        elif shape and shape[0] == "T" and len(shape) in (2, 3):
            model_axes = "TNF"[: len(shape)]
            axes = conv.sequence if len(shape) == 3 else conv.sequence.replace("F", "")
        else:  # a model file's other data: as declared
            model_axes = axes = None
        real = item.shape_in(self.dims)
        user_shape = real
        if model_axes is not None:
            size = dict(zip(model_axes, real))
            user_shape = tuple(1 if a == "1" else size[a] for a in axes)
        return UserArray(
            item.name,
            conv.user_name(item.name),
            item.role,
            user_shape,
            (item.name,),
            axes=None if model_axes is None else f"{model_axes}>{axes}",
        )

    # -- mapping -----------------------------------------------------------------------------
    @cached_property
    def parameters(self) -> tuple[str, ...]:
        """The parts that are parameters, in order."""
        return tuple(p for p, a in self.arrays.items() if a.role == "parameter")

    @cached_property
    def data_parts(self) -> tuple[str, ...]:
        """The parts that are data (x, y, h0, dh, ...), in order."""
        return tuple(p for p, a in self.arrays.items() if a.role != "parameter")

    def call_shape(self, part: str) -> tuple[int, ...]:
        """The shape a value of this part has on the wire: the user's, with the examples on
        a leading axis for data when the code takes one example per call."""
        array = self.arrays[part]
        if array.ids is None and self.convention.per_example and array.axes and "N" in array.axes:
            return (self.dims.N, *array.shape)
        return array.shape

    def is_sequence(self, part: str) -> bool:
        array = self.arrays[part]
        return bool(array.axes) and array.axes.startswith("T")

    def swapped_shape(self, part: str) -> tuple[int, ...] | None:
        """A sequence's call shape with its batch and time axes exchanged (None without N)."""
        shape = list(self.call_shape(part))
        array = self.arrays[part]
        model_axes, axes = array.axes.split(">")
        if "N" not in axes:
            return None
        i, j = axes.index("N"), axes.index("T")
        shape[i], shape[j] = shape[j], shape[i]
        return tuple(shape)

    def _flat(self, values: Mapping[str, np.ndarray]) -> np.ndarray:
        flat = np.empty(self.size)
        for name, (start, shape) in self.offsets.items():
            flat[start : start + int(np.prod(shape, dtype=np.int64))] = np.asarray(
                values[name], dtype=np.float64
            ).ravel()
        return flat

    def to_user(
        self,
        values: Mapping[str, np.ndarray],
        parts: Sequence[str] | None = None,
        gradients: bool = False,
    ):
        """The model's arrays as the user's, keyed by part; with `gradients`, the model's
        gradients as the gradients of the user's arrays (a signed permutation maps both
        alike; a split bias's halves each get the bias's gradient). A part whose model
        arrays are missing is left out. For one example per call, data arrays get a
        leading axis over the examples."""
        present = all(n in values for n in self.offsets)
        flat = self._flat(values) if present and self.offsets else None
        out = {}
        for part, array in self.arrays.items():
            if parts is not None and part not in parts:
                continue
            if array.ids is not None:
                if flat is None:
                    if not all(n in values for n in array.holds):
                        continue
                    partial = np.zeros(self.size)
                    for name in array.holds:
                        start, shape = self.offsets[name]
                        partial[start : start + int(np.prod(shape))] = np.ravel(values[name])
                    value = partial[array.ids]
                else:
                    value = flat[array.ids]
                if array.signs is not None:
                    value = value * array.signs
                if array.half is not None and not gradients:
                    value = value - array.shift if array.half == "ih" else array.shift.copy()
                out[part] = value
            elif part in values:
                out[part] = self._move(np.asarray(values[part]), array, forward=True)
        return out

    def to_model(self, user: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The user's arrays (keyed by part) back in the model's: every model array all of
        whose entries the given parts hold."""
        flat = np.full(self.size, np.nan)
        seen = np.zeros(self.size, dtype=bool)
        out: dict[str, np.ndarray] = {}
        for part, value in user.items():
            array = self.arrays[part]
            if array.ids is None:
                out[part] = self._move(np.asarray(value), array, forward=False)
                continue
            value = np.asarray(value, dtype=np.float64).reshape(array.shape)
            if array.signs is not None:
                value = value * array.signs
            if array.half is not None:  # a split bias: its halves add up
                current = np.where(seen[array.ids], flat[array.ids], 0.0)
                flat[array.ids] = current + value
            else:
                flat[array.ids] = value
            seen[array.ids] = True
        for name, (start, shape) in self.offsets.items():
            stop = start + int(np.prod(shape, dtype=np.int64))
            if seen[start:stop].all():
                out[name] = flat[start:stop].reshape(shape)
        return out

    def _move(self, value: np.ndarray, array: UserArray, forward: bool) -> np.ndarray:
        """Data axes, model -> user (forward) or back. With one example per call the
        examples ride on a leading axis (the caller loops over it)."""
        if array.axes is None:
            return value
        model_axes, axes = array.axes.split(">")
        if "N" in model_axes and "N" not in axes:
            axes = "N" + axes
        kept = [a for a in axes if a != "1"]
        if forward:
            moved = np.transpose(value, [model_axes.index(a) for a in kept])
            shape = [1 if a == "1" else moved.shape[kept.index(a)] for a in axes]
            return np.ascontiguousarray(moved.reshape(shape))
        squeezed = np.reshape(value, [s for a, s in zip(axes, np.shape(value)) if a != "1"])
        return np.transpose(squeezed, [kept.index(a) for a in model_axes])
