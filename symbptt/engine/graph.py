"""The unrolled graph: one named node per matrix of the forward pass, shared as a DAG.

Every entry of every node is a SymEngine symbol with a definition over its parents' symbols, so
the graph is a straight-line program and nothing is ever expanded into one big tree. Each time
step uses its own *copy* of every shared weight (`W_h^(3)` is W_h as used at t=3): the partial
derivative w.r.t. a copy is the contribution entering at that step, and the total derivative is
the sum over copies.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import symengine as se

from ..errors import UnknownNameError
from ..models.dims import Dims
from ..models.spec import CellOps, ModelSpec
from . import cost
from .rules import RULES, Rule

__all__ = ["Node", "UnrolledGraph", "unroll", "Filled"]

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, eq=False)
class Node:
    """One matrix of the unrolled forward pass.

    `rule` names the row of `rules.RULES` that maps the parents to this node (None for leaves);
    `consts` are extra inputs that are held constant (labels, the softmax shift).
    """

    name: str
    kind: str
    code: str
    step: int | None
    symbols: np.ndarray
    rule: str | None = None
    parents: tuple[str, ...] = ()
    consts: tuple[tuple[str, str], ...] = ()
    #: Fixed numbers the rule takes (the 1/(N T) of a mean).
    params: tuple[tuple[str, float], ...] = ()
    #: The rule's positional arguments: `parents`, with None where an optional input is absent
    #: (an affine map without its bias).
    arguments: tuple[str | None, ...] = ()
    definition: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.symbols.shape

    @property
    def differentiable(self) -> bool:
        """False for labels and other data (a layer's upstream gradients) and for nodes whose
        rule says so (the softmax shift)."""
        if self.rule is None:
            return self.kind not in ("label", "data")
        return RULES[self.rule].differentiable

    def rule_inputs(self, graph: UnrolledGraph) -> list[np.ndarray | None]:
        """The positional arguments of this node's rule, as symbols (None where absent)."""
        return [None if a is None else graph.node(a).symbols for a in self.arguments]

    def rule_arguments(self, graph: UnrolledGraph) -> dict:
        """The keyword arguments of this node's rule: its constants' symbols and its numbers."""
        return {**{k: graph.node(v).symbols for k, v in self.consts}, **dict(self.params)}

    def local_rule(self) -> Rule:
        if self.rule is None:
            raise UnknownNameError(f"{self.name} is a leaf of the graph and has no rule")
        return RULES[self.rule]


def symbol_matrix(code: str, shape: tuple[int, ...]) -> np.ndarray:
    """An object array of fresh symbols named `code_i_j`, valid Python identifiers."""
    out = np.empty(shape, dtype=object)
    for index in np.ndindex(*shape):
        out[index] = se.Symbol("_".join([code, *map(str, index)]))
    return out


class UnrolledGraph:
    """The DAG of the loss for given dimensions; nodes are kept in topological order."""

    def __init__(self, dims: Dims, nodes: list[Node], spec: ModelSpec):
        self.dims, self.spec = dims, spec
        self.nodes: dict[str, Node] = {n.name: n for n in nodes}
        self._children: dict[str, list[str]] = {n.name: [] for n in nodes}
        for n in nodes:
            for p in n.parents:
                self._children[p].append(n.name)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes.values())

    def __len__(self) -> int:
        return len(self.nodes)

    def node(self, name: str) -> Node:
        try:
            return self.nodes[name]
        except KeyError:
            raise UnknownNameError(f"the unrolled graph has no node {name!r}") from None

    def children(self, name: str) -> list[str]:
        return self._children[name]

    def copies(self, parameter: str) -> list[Node]:
        """The per-step copies of a shared parameter, in time order."""
        return [self.nodes[c] for c in self._children[parameter] if self.nodes[c].kind == "copy"]


class _GraphOps(CellOps):
    """The graph backend of a cell's named operations: each call adds one node at step t."""

    def __init__(self, spec: ModelSpec, add: Callable[..., Node], dims: Dims) -> None:
        self.options, self._add, self.step, self.dims = spec.options, add, 0, dims

    def node(self, base, rule, inputs, params=None, consts=None, kind=None) -> str:
        name = f"{base}_{self.step}"
        self._add(
            name,
            kind or rule,
            name,
            self.step,
            rule=rule,
            parents=tuple(inputs),
            params=tuple((params or {}).items()),
            consts=tuple((k, v) for k, v in (consts or {}).items() if v is not None),
        )
        return name

    def shift(self, value: str) -> str:
        """A node for each row's max of `value` (the softmax shift): never differentiated."""
        code = "_max_" + re.sub(r"\W", "_", value)
        self._add(f"max({value})", "shift", code, self.step, rule="rowmax", parents=(value,))
        return f"max({value})"

    def size(self, name: str) -> int:
        return self.dims.size(name)

    def filled(self, value, shape: tuple) -> np.ndarray:
        return Filled.of(value, shape, self.dims.sizes)

    @property
    def concrete(self) -> bool:
        return True


class Filled(np.ndarray):
    """One number in every entry (a zero state beside x[t] in hstack), as the graph holds it:
    the array at the graph's sizes, which also remembers the number and its shape in size
    names, so that the matrix form writes it as a constant of shape (N, H), not (2, 2)."""

    value: object
    named_shape: tuple

    @classmethod
    def of(cls, value, shape: tuple, sizes) -> Filled:
        out = np.full(size_in(shape, sizes), _exact(value), dtype=object).view(cls)
        out.value, out.named_shape = value, tuple(shape)
        return out


def _exact(value) -> se.Basic:
    """A number as SymEngine keeps it exactly (a fraction stays one)."""
    if isinstance(value, Fraction):
        return se.Rational(value.numerator, value.denominator)
    if isinstance(value, int) or float(value).is_integer():
        return se.Integer(int(value))
    return se.RealDouble(float(value))


def size_in(shape: tuple, sizes: dict[str, int]) -> tuple[int, ...]:
    from ..models import sizes as size_text

    return tuple(size_text.value(d, sizes) for d in shape)


def _step_input(add: Callable[..., Node], item, t: int, dims: Dims) -> str:
    """The node of a per-step input at step t: integer ids one-hot, as data (labels and
    tokens); floats an input with a gradient, or data (a layer's upstream gradient)."""
    name = f"{item.name}_{t}"
    if item.integer:
        add(name, "label", name, t, (dims.N, dims.size(item.bound)))
    else:
        add(name, "input" if item.role == "sequence" else "data", name, t, item.shape_in(dims)[1:])
    return name


def _ensure_trusted(spec: ModelSpec) -> None:
    """A model file's derivatives are checked against its own forward equations before first
    use (see `engine.trust`)."""
    if spec.from_file:
        from .trust import ensure_trusted

        ensure_trusted(spec)


def unroll(
    dims: Dims,
    progress: Progress | None = None,
    *,
    spec: ModelSpec | None = None,
    max_seconds: float | None = cost.DEFAULT_MAX_SECONDS,
) -> UnrolledGraph:
    """Build the unrolled graph of the loss for `dims`, one node per matrix per step, from the
    model's spec (default: the vanilla RNN) by calling its cell once per step.

    Before any work, `cost.guard` predicts the time and memory of unrolling, deriving and
    compiling every gradient, and raises ExpansionTooLargeError (one sentence with the estimate
    and the limit) above `max_seconds` or above the memory available now;
    `max_seconds=None` sets no time limit (the memory limit stays).
    """
    from ..models import VANILLA

    spec = VANILLA if spec is None else spec
    _ensure_trusted(spec)
    cost.guard(
        dims,
        None,
        paths=False,
        max_seconds=max_seconds,
        truncate=spec.options.truncate,
        spec=spec,
    )
    nodes: list[Node] = []
    by_name: dict[str, Node] = {}
    shapes: dict[str, tuple[int, ...]] = {}

    def add(name: str, kind: str, code: str, step: int | None, shape=None, **link) -> Node:
        definition = None
        if link.get("rule") is not None:  # the definition first: a Node is never mutated
            rule = RULES[link["rule"]]
            args = [None if p is None else by_name[p].symbols for p in link.get("parents", ())]
            kwargs = {k: by_name[v].symbols for k, v in link.get("consts", ())}
            kwargs.update(link.get("params", ()))
            definition = np.asarray(rule.forward(*args, **kwargs), dtype=object)
            if shape is not None:
                definition = definition.reshape(shape)
            shape = definition.shape
            link["arguments"] = tuple(link.get("parents", ()))
            link["parents"] = tuple(p for p in link["arguments"] if p is not None)
        shape = shape if shape is not None else ()
        symbols = symbol_matrix(code, shape)
        node = Node(name, kind, code, step, symbols, definition=definition, **link)
        nodes.append(node)
        by_name[name] = node
        shapes[name] = shape
        return node

    ops = _GraphOps(spec, add, dims)
    for item in spec.inputs:
        if item.role == "parameter":
            add(item.name, "parameter", item.name, None, item.shape_in(dims))
    for item in spec.initials:
        add(item.name, "input", item.name, 0, item.shape_in(dims))
    # The state before step 1: each state's initial input, or None (fixed at zero).
    state = tuple(spec.initial_of(s) for s in spec.states)
    terms: list[str] = []
    for t in range(1, dims.T + 1):
        if progress:
            progress("unroll", t - 1, dims.T)
        ops.step = t
        params = {}
        for p in spec.parameters:
            copy = add(f"{p}^({t})", "copy", f"{p}_t{t}", t, shapes[p], rule="copy", parents=(p,))
            params[p] = copy.name
        if spec.step_inputs == "mapping":  # a model file's cell: every per-step input by name
            x_t = spec.step_argument(lambda item, t=t: _step_input(add, item, t, dims))
        else:
            sequence = spec.sequence
            # Token ids enter one-hot, as data (never differentiated): onehot(x_t) W_x = W_x[x_t].
            kind = "label" if sequence.integer else "input"
            x_shape = (
                (dims.N, dims.size(sequence.bound))
                if sequence.integer
                else (sequence.shape_in(dims)[1:])
            )
            add(f"{sequence.name}_{t}", kind, f"{sequence.name}_{t}", t, x_shape)
            x_t = f"{sequence.name}_{t}"
        if spec.loss == "softmax_ce":
            label = next(i for i in spec.inputs if i.role == "label")
            add(f"Y_{t}", "label", f"Y_{t}", t, (dims.N, dims.size(label.bound)))
        state, out = spec.cell(ops, params, state, x_t)
        if spec.loss == "softmax_ce":
            logits = out
            add(f"m_{t}", "shift", f"m_{t}", t, (dims.N,), rule="rowmax", parents=(logits,))
            consts = (("Y", f"Y_{t}"), ("m", f"m_{t}"))
            add(
                f"L_{t}", "step_loss", f"L_{t}", t, rule=spec.loss, parents=(logits,), consts=consts
            )
            terms.append(f"L_{t}")
        elif out is not None:  # the cell's own loss term (none where it is 0 at this step)
            terms.append(out)
    if not terms:
        from ..errors import InvalidArgumentError

        raise InvalidArgumentError(f"the {spec.name} model's loss is 0 at every step")
    terms = tuple(terms)
    if spec.options.reduction == "mean":
        add("L_sum", "loss_sum", "L_sum", None, rule="sum", parents=terms)
        factor = Fraction(1, dims.N * dims.T)  # exact: a Rational in the symbolic graph
        add("L", "loss", "L", None, rule="scale", parents=("L_sum",), params=(("factor", factor),))
    else:
        add("L", "loss", "L", None, rule="sum", parents=terms)
    if progress:
        progress("unroll", dims.T, dims.T)
    return UnrolledGraph(dims, nodes, spec)
