"""A model as a value: its inputs, its per-step cell, its loss options and variants.

A `ModelSpec` declares every input once (name, shape in terms of the dimensions, role) and a
`cell` that builds one time step from named operations. Everything that needs names or shapes
(validation, random points, the unrolled graph, compiled code, strategies, user-code forms, the
command line's choices) reads them from here, so a new model is one file in `symbptt/models/`
and a variant is one option.
"""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np

from ..errors import InputArrayError, InvalidArgumentError, UnknownNameError
from . import sizes
from .dims import Dims
from .program import Op

__all__ = [
    "ROLES",
    "ACTIVATIONS",
    "CellOps",
    "Input",
    "Options",
    "ModelSpec",
    "size_of",
    "describe_model",
]

#: parameter: shared by every step; initial: the state before step 1; sequence: one slice per
#: step (x_t); label: data the loss compares against (y_t), never differentiated; upstream: a
#: layer's upstream gradient on one of its outputs (data, one slice per step).
ROLES = ("parameter", "initial", "sequence", "label", "upstream")
#: The roles with one slice per time step.
PER_STEP = ("sequence", "label", "upstream")
ACTIVATIONS = ("tanh", "relu", "identity")
REDUCTIONS = ("sum", "mean")
#: Options only some models have (the rest are every model's): their allowed values.
MODEL_OPTIONS = {
    "c0": ("zero", "input"),
    "gate_order": ("ifog", "ifgo"),
    "reset": ("after", "before"),
}


def size_of(letter: str | int, dims: Dims) -> int:
    """The size a shape entry names: "H" is dims.H, "4H" four times it (an LSTM's gates),
    "D+H" their sum, K a model file's own size."""
    return sizes.value(letter, dims.sizes)


@dataclass(frozen=True)
class Input:
    """One input array of a model: its name, its shape in dimension letters, its role."""

    name: str
    shape: tuple[str, ...]
    role: str
    #: Integer data (labels, token ids) whose values lie in [0, dims.<bound>).
    integer: bool = False
    bound: str | None = None

    def shape_in(self, dims: Dims) -> tuple[int, ...]:
        return tuple(size_of(letter, dims) for letter in self.shape)


def _whole(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass(frozen=True)
class Options:
    """The variants of a model that real code uses, each one option."""

    #: Biases the model does not have (names among the spec's `biases`).
    no_bias: tuple[str, ...] = ()
    #: "input": h0 is an input with a gradient; "zero": h0 is fixed at 0 and is no input.
    h0: str = "input"
    #: "dense": x_t is (N, D) and x_t W_x a product; "tokens": x_t holds ids, W_x[x_t] a lookup.
    inputs: str = "dense"
    activation: str = "tanh"
    #: "sum" of every loss term, or their "mean" over all N*T terms.
    reduction: str = "sum"
    #: K-step truncated BPTT: only paths with t - k <= K (None: full BPTT).
    truncate: int | None = None
    #: LSTM: "zero" (c_0 = 0, CS231n's) or "input" (c0 an input with a gradient).
    c0: str = "zero"
    #: LSTM: the gates' order in W_x, W_h and b: "ifog" (CS231n) or "ifgo" (PyTorch).
    gate_order: str = "ifog"
    #: GRU: the reset gate applied "after" the product with W_hn (PyTorch) or "before" it.
    reset: str = "after"

    def __post_init__(self) -> None:
        if isinstance(self.no_bias, str) or not all(isinstance(b, str) for b in self.no_bias):
            raise InvalidArgumentError(f"no_bias={self.no_bias!r} must be a sequence of names")
        object.__setattr__(self, "no_bias", tuple(sorted(set(self.no_bias))))
        for label, value, allowed in (
            ("h0", self.h0, ("input", "zero")),
            ("inputs", self.inputs, ("dense", "tokens")),
            ("activation", self.activation, ACTIVATIONS),
            ("reduction", self.reduction, REDUCTIONS),
            *((k, getattr(self, k), v) for k, v in MODEL_OPTIONS.items()),
        ):
            if value not in allowed:
                raise InvalidArgumentError(f"{label}={value!r} must be one of {', '.join(allowed)}")
        if self.truncate is not None and (not _whole(self.truncate) or self.truncate < 0):
            raise InvalidArgumentError(
                f"truncate={self.truncate!r} must be a whole number of steps >= 0 (or None)"
            )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "no_bias": list(self.no_bias)}

    def reference_options(self, form: str = "full") -> dict[str, Any]:
        """The keyword options of the NumPy reference for this variant (absent biases and h0
        are absent keys of the arrays); the layer form has no loss, so no reduction."""
        options = {"truncate": self.truncate, "activation": self.activation, "inputs": self.inputs}
        if form == "full":
            options["reduction"] = self.reduction
        return options


class CellOps:
    """The named operations a cell builds one step from; a backend implements `node` (one
    rule applied to its inputs) and every operation below comes with it.

    An input that is None is absent (h0 or c0 fixed at zero at the first step): products with
    it are left out, as the value they would add is zero.
    """

    options: Options

    def node(
        self,
        base: str,
        rule: str,
        inputs: tuple,
        params: Mapping[str, Any] | None = None,
        consts: Mapping[str, Any] | None = None,
        kind: str | None = None,
    ):
        """`rule` applied to `inputs` (with numbers `params` and held-constant values `consts`:
        labels, a softmax shift) as the quantity `base` of this step; `kind` names its role in
        the graph (default: the rule)."""
        raise NotImplementedError

    def affine(self, base: str, bias, *pairs):
        """bias + sum_k A_k @ W_k (rows times weights)."""
        kept = [m for a, w in pairs if a is not None for m in (a, w)]
        if not kept:
            raise InvalidArgumentError(f"{base}: affine needs at least one product")
        return self.node(base, "affine", (bias, *kept))

    def hadamard(self, base: str, start, *pairs):
        """start + sum_k A_k * B_k, entry by entry (start may be None)."""
        kept = [m for a, b in pairs if a is not None and b is not None for m in (a, b)]
        if not kept:
            raise InvalidArgumentError(f"{base}: hadamard needs at least one product")
        return self.node(base, "hadamard", (start, *kept))

    def apply(self, base: str, function: str, a):
        """function(a) entry by entry (tanh, sigmoid, relu, identity)."""
        return self.node(base, function, (a,))

    def columns(self, base: str, a, part: int, parts: int, axis: int = -1):
        """Block `part` (0-based) of `parts` equal blocks of a's columns: one gate's share (of
        its rows with `axis=0`)."""
        params = {"part": part, "parts": parts, **({"axis": axis} if axis != -1 else {})}
        return self.node(base, "columns", (a,), params)

    def add(self, base: str, *terms):
        """The sum of the terms that are present."""
        return self.node(base, "add", tuple(t for t in terms if t is not None))

    def lerp(self, base: str, z, a, b):
        """(1 - z) * a + z * b (b None: zero)."""
        return self.node(base, "lerp", (z, a, b))

    def softmax(self, base: str, a):
        """The softmax of each row of a (shifted by each row's max, held constant)."""
        return self.node(base, "softmax", (a,), consts={"m": self.shift(a)})

    def cross_entropy(self, base: str, logits, labels, kind: str = "step_loss"):
        """sum_i -log softmax(logits)[i, label_i]: labels one-hot, as data."""
        consts = {"Y": labels, "m": self.shift(logits)}
        return self.node(base, "softmax_ce", (logits,), consts=consts, kind=kind)

    def composite(
        self,
        base: str,
        inputs: tuple,
        program: tuple[Op, ...],
        consts: Mapping[str, Any] | None = None,
        sizes: tuple[str, ...] = (),
        kind: str | None = None,
    ):
        """A whole expression as one quantity: `program` run on `inputs` (see `program.Op`);
        the sizes it names are its constants `size_<name>`."""
        params = {"program": program, **{f"size_{n}": self.size(n) for n in sizes}}
        return self.node(base, "composite", tuple(inputs), params, consts, kind)

    def constant(self, base: str, value, shape: tuple, kind: str | None = None):
        """A quantity that is one number everywhere (a sigmoid of a zero state)."""
        program = (Op("add", (("num", self.filled(value, shape)),)),)
        return self.node(base, "composite", (), {"program": program}, None, kind)

    # -- what a backend says about itself
    def shift(self, value):
        """Each row's largest entry of `value`, held constant (None: the backend needs none)."""
        return None

    def size(self, name: str):
        """A size as this backend writes it: a number, or a symbol in a printed formula."""
        return 1

    def filled(self, value, shape: tuple):
        """An array of the given shape (in size names) holding `value` everywhere."""
        return None

    @property
    def concrete(self) -> bool:
        """Whether this backend builds one particular step (states may be absent: zero)."""
        return False


class _Trace(CellOps):
    """A cell backend on sets of names: what each value depends on."""

    def __init__(self, options: Options) -> None:
        self.options = options

    def node(self, base, rule, inputs, params=None, consts=None, kind=None) -> set:
        found: set = set()
        for item in inputs:
            found |= set(item or ())
        return found

    @property
    def concrete(self) -> bool:
        return True


#: cell(ops, params, state, x_t) -> (new state, logits): one step built from named operations;
#: the state is a tuple, one matrix (N, H) per name of the spec's `states` (None: zero).
Cell = Callable[[Any, Mapping[str, Any], Any, Any], tuple[Any, Any]]


@dataclass(frozen=True)
class ModelSpec:
    """A model: its full list of inputs, its per-step cell, and the options of this variant."""

    name: str
    base_inputs: tuple[Input, ...]
    #: Compared by identity: two specs with different cells are different models.
    cell: Cell
    #: The inputs an option may remove: biases (no_bias) and the initial state (h0="zero").
    biases: tuple[str, ...] = ()
    #: The per-step loss: a rule of the vocabulary from the step's logits and its one-hot labels
    #: (the rows of every step's loss are then summed, or averaged with reduction="mean").
    loss: str = "softmax_ce"
    #: sample(dims, rng, scale) -> every input of the full model: how random points are drawn.
    sample: Callable[[Dims, np.random.Generator, float], dict[str, np.ndarray]] | None = None
    options: Options = Options()
    #: The recurrent state's matrices, each (N, H): ("h",), or ("h", "c") for the LSTM. The
    #: initial input of state s is named s + "0" and the option of that name says whether it
    #: is an input or fixed at zero.
    states: tuple[str, ...] = ("h",)
    #: The model-specific options (of MODEL_OPTIONS) this model has.
    choices: tuple[str, ...] = ()
    #: One sentence on the model for help texts and reports.
    summary: str = ""
    #: How the model is named in prose ("vanilla RNN", "LSTM").
    title: str = ""
    #: Options of every model that this one does not offer (left at their defaults).
    fixed: tuple[str, ...] = ()
    #: (model's name, reference's name) for inputs the NumPy reference and the mistakes'
    #: simulation call otherwise (the LSTM's output bias b_y is their c).
    reference_names: tuple[tuple[str, str], ...] = ()
    #: Each state's boundary: (state, the input it starts from, or None for zero). Empty: the
    #: built-ins' rule, state s starts from the input s0 unless an option fixes it at zero.
    boundaries: tuple[tuple[str, str | None], ...] = ()
    #: Each state's shape, in size names (empty: (N, H) for every state).
    state_shapes: tuple[tuple[str, ...], ...] = ()
    #: What a cell gets as its per-step input: "sequence" (the sequence input alone; the labels
    #: go to the loss) or "mapping" (every per-step input by name: a model file's cell).
    step_inputs: str = "sequence"
    #: The model file this spec was read from (`modelfile.ModelFile`), None for a built-in.
    definition: Any = None
    #: The gates' letters in the order their blocks of columns sit side by side in the gated
    #: parameters (shapes "kH"); "" for a model without gates. `fused_gates` has the
    #: variant's order (the LSTM's gate_order option).
    gates: str = ""
    #: Other letters code uses for each gate (the LSTM's g is often c, its i u for "update"):
    #: how checking reads per-gate names such as Wc or W_iz.
    gate_names: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: The pre-activation's terms code often stacks into one matrix acting on [h, x] or
    #: [1, x, h]: (letter, parameter) with letters x (input), h (state), 1 (the bias) and 2
    #: (a second bias, the GRU's b_h).
    stacking: tuple[tuple[str, str], ...] = ()
    #: A gate whose complement other code uses in its place (the GRU's z: h = (1-z) h_prev +
    #: z n is the GRU with z and 1 - z exchanged, i.e. its pre-activation negated).
    complement_gate: str = ""

    def __post_init__(self) -> None:
        defaults = Options()
        for option in MODEL_OPTIONS:
            if option not in self.choices and getattr(self.options, option) != getattr(
                defaults, option
            ):
                from . import MODELS  # the models that have it, named in the message

                owners = [m.name for m in MODELS.values() if option in m.choices]
                raise InvalidArgumentError(
                    f"{option} is an option of the {' and the '.join(owners)} model, not of "
                    f"the {self.name} model"
                )
        for option in self.fixed:
            value = getattr(self.options, option)
            if value != getattr(defaults, option):
                raise InvalidArgumentError(
                    f"{option}={value!r} is not available for the {self.name} model (it has "
                    f"{option}={getattr(defaults, option)!r} only)"
                )
        for bias in self.options.no_bias:
            if bias not in self.biases:
                close = difflib.get_close_matches(bias, self.biases, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise InvalidArgumentError(
                    f"no_bias names {bias!r}, not a bias of the {self.name} model "
                    f"({', '.join(self.biases)}){hint}"
                )

    def variant(self, **options: Any) -> ModelSpec:
        """The same model with some options changed (validated)."""
        unknown = sorted(set(options) - set(asdict(self.options)))
        if unknown:
            close = difflib.get_close_matches(unknown[0], list(asdict(self.options)), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise InvalidArgumentError(
                f"{unknown[0]!r} is not an option of a model variant "
                f"({', '.join(asdict(self.options))}){hint}"
            )
        return replace(self, options=Options(**{**asdict(self.options), **options}))

    # -- names and shapes --------------------------------------------------------------------
    @property
    def fused_gates(self) -> str:
        """The gates' order in this variant's gated parameters ("ifog", "rzn"; "" without)."""
        if "gate_order" in self.choices:
            return self.options.gate_order
        return self.gates

    @property
    def from_file(self) -> bool:
        """Whether this model was read from a model file (not one of the built-ins)."""
        return self.definition is not None

    @cached_property
    def inputs(self) -> tuple[Input, ...]:
        """The inputs this variant has, in the order the compiled functions take them."""
        if self.from_file:  # a file says everything itself: no option removes an input
            return self.base_inputs
        kept = []
        for item in self.base_inputs:
            if item.name in self.options.no_bias:
                continue
            if item.role == "initial" and getattr(self.options, item.name, "input") == "zero":
                continue
            if item.role == "sequence" and self.options.inputs == "tokens":
                item = Input(
                    item.name, item.shape[:-1], item.role, integer=True, bound=item.shape[-1]
                )
            kept.append(item)
        return tuple(kept)

    @cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.inputs)

    @cached_property
    def parameters(self) -> tuple[str, ...]:
        """Shared weights and biases: one copy per step in the unrolled graph."""
        return tuple(i.name for i in self.inputs if i.role == "parameter")

    @cached_property
    def gradient_names(self) -> tuple[str, ...]:
        """Everything a gradient exists for: parameters, the initial state, dense inputs."""
        order = ("parameter", "initial", "sequence")
        return tuple(
            i.name for role in order for i in self.inputs if i.role == role and not i.integer
        )

    @cached_property
    def state_parameters(self) -> tuple[str, ...]:
        """The parameters the recurrent state depends on (the RNN layer's, not the output's):
        found by running the cell once on names instead of arrays."""
        start = tuple(set() for _ in self.states)
        x_t = self.step_argument(lambda item: set())
        state, _ = self.cell(_Trace(self.options), {p: {p} for p in self.parameters}, start, x_t)
        found = set().union(*(s for s in state if s is not None))
        return tuple(p for p in self.parameters if p in found)

    @cached_property
    def initials(self) -> tuple[Input, ...]:
        """The initial states this variant takes as inputs (h0; c0 with c0="input")."""
        return tuple(i for i in self.inputs if i.role == "initial")

    def initial_of(self, state: str) -> str | None:
        """The input state `state` starts from before step 1 (None: it starts at zero)."""
        if self.boundaries:
            return dict(self.boundaries).get(state)
        name = f"{state}0"
        return name if name in self.names else None

    def state_shape(self, state: str) -> tuple[str, ...]:
        """A state's shape in size names: (N, H) for the built-ins."""
        if self.state_shapes:
            return tuple(self.state_shapes[self.states.index(state)])
        return ("N", "H")

    @cached_property
    def per_step(self) -> tuple[Input, ...]:
        """The inputs with one slice per step (x, the labels y, a layer's upstream gradients)."""
        return tuple(i for i in self.inputs if i.role in PER_STEP)

    @cached_property
    def sequences(self) -> tuple[Input, ...]:
        """The per-step inputs that have a gradient (dense x; a model file's float inputs)."""
        return tuple(i for i in self.inputs if i.role == "sequence" and not i.integer)

    def step_argument(self, make: Callable[[Input], Any]):
        """What the cell gets as its per-step input: make(the sequence input), or for a model
        file a dict of make(item) for every per-step input by name."""
        if self.step_inputs == "mapping":
            return {item.name: make(item) for item in self.per_step}
        return make(self.sequence)

    def complete(self, dims: Dims, default: int | None = None) -> Dims:
        """`dims` with a value for every size this model uses that it lacks (a model file's
        own, such as K): `default`, or H + 1. For the shapes symbptt picks itself (checks,
        pictures); what a user asks for names every size."""
        more = dict(dims.more)
        for name in self.size_names:
            if name not in dims.sizes:
                more[name] = dims.H + 1 if default is None else default
        return dims if len(more) == len(dims.more) else replace(dims, more=more)

    @cached_property
    def size_names(self) -> tuple[str, ...]:
        """The sizes this model's shapes use, N first (T is every model's)."""
        found: list[str] = ["N"]
        for item in self.inputs:
            for dim in (*item.shape, *([item.bound] if item.bound else [])):
                found += [n for n in sizes.names_in(dim) if n != "T"]
        return tuple(dict.fromkeys(found))

    def truth(
        self, arrays: Mapping[str, Any], form: str = "full"
    ) -> tuple[float | None, dict[str, np.ndarray]]:
        """The loss and gradients of the model's independent NumPy reference (`form` "layer":
        the recurrent layer alone, given an upstream gradient `dh`); see `models.truth`."""
        from .truth import truth

        return truth(self, arrays, form)

    def describe(self) -> dict[str, Any]:
        """The model's name and the options it has (reports and JSON); a model file's name,
        path, title and content hash."""
        if self.from_file:
            model = self.definition
            return {
                "name": self.name,
                "file": model.path or "<text>",
                "title": self.title,
                "sha256": model.sha256,
                "convention": model.convention,
            }
        options = self.options.as_dict()
        for option in MODEL_OPTIONS:
            if option not in self.choices:
                options.pop(option)
        return {"name": self.name, **options}

    @cached_property
    def sequence(self) -> Input | None:
        """The first input with one slice per step that is not a label (x), if any."""
        return next((i for i in self.inputs if i.role == "sequence"), None)

    @cached_property
    def initial(self) -> Input | None:
        """The initial hidden state h0 (None when fixed at zero)."""
        return next((i for i in self.inputs if i.role == "initial" and i.name == "h0"), None)

    @cached_property
    def time_major(self) -> tuple[str, ...]:
        """Inputs with a leading T axis (the ones batch-first code transposes)."""
        return tuple(i.name for i in self.inputs if i.shape and i.shape[0] == "T")

    def input(self, name: str) -> Input:
        """The named input, or UnknownNameError suggesting close names."""
        for item in self.inputs:
            if item.name == name:
                return item
        close = difflib.get_close_matches(name, self.names, n=2, cutoff=0.5)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        removed = " (this variant has none)" if name in {i.name for i in self.base_inputs} else ""
        raise UnknownNameError(
            f"the {self.name} model has no input {name!r}{removed}: it has "
            f"{', '.join(self.names)}{hint}"
        )

    def shape(self, name: str, dims: Dims) -> tuple[int, ...]:
        return self.input(name).shape_in(dims)

    # -- data ------------------------------------------------------------------------------
    def random_point(self, dims: Dims, seed: int = 0, scale: float = 1.0) -> dict[str, np.ndarray]:
        """Seeded random inputs of this variant: the full model's draw (the spec's `sample`)
        with the arrays the variant lacks removed, so every variant shares its draws."""
        if self.sample is None:
            raise InvalidArgumentError(
                f"the {self.name} model's spec has no sample recipe: give ModelSpec a "
                "sample(dims, rng, scale) to draw random points"
            )
        full = self.sample(dims, np.random.default_rng(seed), scale)
        point = {n: full[n] for n in self.names if n in full}
        for item in self.inputs:
            if item.integer and item.role == "sequence" and not self.from_file:
                rng = np.random.default_rng([seed, 1])
                point[item.name] = rng.integers(0, dims.size(item.bound), item.shape_in(dims))
        return point

    def dims_of(self, arrays: Mapping[str, Any]) -> Dims:
        """The dimensions the arrays' shapes imply (each size from the first input that shows
        it; a multiple 4H or a sum D+H once the rest is known); InputArrayError when one
        cannot be read."""
        found: dict[str, int] = {}
        pending: list[tuple[Input, sizes.Dim, int]] = []
        for item in self.inputs:
            if item.name not in arrays:
                continue
            shape = np.shape(arrays[item.name])
            if len(shape) != len(item.shape):
                axes = ", ".join(map(str, item.shape))
                raise InputArrayError(
                    f"{item.name} must have {len(item.shape)} axes ({axes}), got shape {shape}"
                )
            for dim, size in zip(item.shape, shape):
                pending.append((item, dim, int(size), shape))
        progress = True
        while progress:  # a size named alone first, then multiples and sums of known ones
            progress = False
            for entry in list(pending):
                item, dim, size, shape = entry
                counts, constant = sizes.terms(dim)
                unknown = [n for n in counts if n not in found]
                if len(unknown) > 1:
                    continue
                pending.remove(entry)
                progress = True
                if not unknown:
                    continue
                (name,) = unknown
                rest = size - constant - sum(k * found[n] for n, k in counts.items() if n != name)
                if rest % counts[name] or rest < 1:
                    why = f" ({rest} is not a multiple of {counts[name]})" if rest >= 1 else ""
                    raise InputArrayError(
                        f"{item.name} has shape {shape}: its axis {dim} is {size}, which is not "
                        f"{dim} for any whole {name} >= 1{why}"
                    )
                found[name] = rest // counts[name]
        needed = [n for n in (*self.size_names, "T") if n not in found]
        if self.from_file:
            needed = [n for n in needed if n not in ("D", "H", "C")]  # defaults of Dims
        else:
            needed += [n for n in ("N", "D", "H", "C", "T") if n not in found and n not in needed]
        if needed:
            raise InputArrayError(
                f"the arrays do not say {', '.join(needed)}: missing input array(s) among "
                f"{', '.join(self.names)}"
            )
        five = {k: found.get(k, default) for k, default in (("N", 1), ("D", 1), ("H", 1), ("C", 2))}
        more = {k: v for k, v in found.items() if k not in ("N", "D", "H", "C", "T")}
        return Dims(**five, T=found["T"], more=more)

    def validate(self, dims: Dims, arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Check every input's presence, shape, dtype and values; float64/int64 copies.

        Raises InputArrayError naming the first problem.
        """
        missing = [n for n in self.names if n not in arrays]
        if missing:
            raise InputArrayError(f"missing input array(s): {', '.join(missing)}")
        extra = sorted(set(arrays) - set(self.names))
        if extra:
            raise InputArrayError(
                f"unexpected input array(s) for this variant: {', '.join(extra)}; "
                f"expected {', '.join(self.names)}"
            )
        out: dict[str, np.ndarray] = {}
        for item in self.inputs:
            value = np.asarray(arrays[item.name])
            want = item.shape_in(dims)
            if value.shape != want:
                raise InputArrayError(
                    f"{item.name} has shape {value.shape}, expected {want} for {dims}"
                )
            if item.integer:
                what = "class labels" if item.role == "label" else "token ids"
                if not np.issubdtype(value.dtype, np.integer):
                    raise InputArrayError(
                        f"{item.name} must hold integer {what}, got dtype {value.dtype}"
                    )
                high = dims.size(item.bound)
                if value.size and (value.min() < 0 or value.max() >= high):
                    raise InputArrayError(
                        f"{item.name} holds {what.split()[-1]} outside [0, {high}): "
                        f"min {value.min()}, max {value.max()}"
                    )
                out[item.name] = value.astype(np.int64)
                continue
            if value.dtype.kind not in "iuf":
                raise InputArrayError(f"{item.name} must be a real array, got dtype {value.dtype}")
            value = value.astype(np.float64)
            if not np.all(np.isfinite(value)):
                bad = tuple(int(i) for i in np.argwhere(~np.isfinite(value))[0])
                raise InputArrayError(
                    f"{item.name} holds a non-finite value ({value[bad]}) at index {bad}"
                )
            out[item.name] = value
        return out


def describe_model(model: dict | None) -> str:
    """ "vanilla RNN with truncate=1, no_bias=['b']", or "" for the plain vanilla RNN."""
    if not model:
        return ""
    if "file" in model:  # a model file: its path and its title
        title = model.get("title") or model["name"]
        return f"{title} (model file {model['file']})"
    defaults = Options().as_dict()
    changed = {k: v for k, v in model.items() if k != "name" and v != defaults.get(k, v)}
    title = {"vanilla": "vanilla RNN", "lstm": "LSTM", "gru": "GRU"}.get(
        model["name"], model["name"]
    )
    if not changed:
        return "" if model["name"] == "vanilla" else title
    return f"{title} with " + ", ".join(f"{k}={v}" for k, v in changed.items())
