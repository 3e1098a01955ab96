"""The unrolled graph: one named node per matrix of the forward pass, shared as a DAG.

Every entry of every node is a SymEngine symbol with a definition over its parents' symbols, so
the graph is a straight-line program and nothing is ever expanded into one big tree. Each time
step uses its own *copy* of every shared weight (`W_h^(3)` is W_h as used at t=3): the partial
derivative w.r.t. a copy is the contribution entering at that step, and the total derivative is
the sum over copies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import symengine as se

from . import cost
from .errors import UnknownNameError
from .model import SHARED_PARAMETERS, Dims
from .rules import RULES, Rule

__all__ = ["Node", "UnrolledGraph", "unroll"]

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
    definition: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.symbols.shape

    @property
    def differentiable(self) -> bool:
        """False for labels (data) and for nodes whose rule says so (the softmax shift)."""
        if self.rule is None:
            return self.kind != "label"
        return RULES[self.rule].differentiable

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

    def __init__(self, dims: Dims, nodes: list[Node]):
        self.dims = dims
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


def unroll(
    dims: Dims,
    progress: Progress | None = None,
    *,
    max_seconds: float | None = cost.DEFAULT_MAX_SECONDS,
) -> UnrolledGraph:
    """Build the unrolled graph of the loss for `dims`, one node per matrix per step.

    Before any work, `cost.guard` predicts the time and memory of unrolling, deriving and
    compiling every gradient, and raises ExpansionTooLargeError (one sentence with the estimate
    and the limit) above `max_seconds` or above the memory available now;
    `max_seconds=None` sets no time limit (the memory limit stays).
    """
    cost.guard(dims, None, paths=False, max_seconds=max_seconds)
    N, D, H, C, T = dims.N, dims.D, dims.H, dims.C, dims.T
    nodes: list[Node] = []
    by_name: dict[str, Node] = {}

    def add(name: str, kind: str, code: str, step: int | None, shape=None, **link) -> Node:
        symbols = symbol_matrix(code, shape if shape is not None else ())
        definition = None
        if link.get("rule") is not None:  # the definition first: a Node is never mutated
            rule = RULES[link["rule"]]
            args = [by_name[p].symbols for p in link.get("parents", ())]
            kwargs = {k: by_name[v].symbols for k, v in link.get("consts", ())}
            definition = np.asarray(rule.forward(*args, **kwargs), dtype=object)
            definition = definition.reshape(symbols.shape)
        node = Node(name, kind, code, step, symbols, definition=definition, **link)
        nodes.append(node)
        by_name[name] = node
        return node

    shapes = {"W_x": (D, H), "W_h": (H, H), "b": (H,), "V": (H, C), "c": (C,)}
    for p in SHARED_PARAMETERS:
        add(p, "parameter", p, None, shapes[p])
    add("h0", "input", "h0", 0, (N, H))
    h_prev = "h0"
    for t in range(1, T + 1):
        if progress:
            progress("unroll", t - 1, T)
        for p in SHARED_PARAMETERS:
            add(f"{p}^({t})", "copy", f"{p}_t{t}", t, shapes[p], rule="copy", parents=(p,))
        add(f"x_{t}", "input", f"x_{t}", t, (N, D))
        add(f"Y_{t}", "label", f"Y_{t}", t, (N, C))
        parents = (f"b^({t})", h_prev, f"W_h^({t})", f"x_{t}", f"W_x^({t})")
        add(f"a_{t}", "preactivation", f"a_{t}", t, (N, H), rule="affine_in", parents=parents)
        add(f"h_{t}", "hidden", f"h_{t}", t, (N, H), rule="tanh", parents=(f"a_{t}",))
        parents = (f"c^({t})", f"h_{t}", f"V^({t})")
        add(f"o_{t}", "logits", f"o_{t}", t, (N, C), rule="affine_out", parents=parents)
        add(f"m_{t}", "shift", f"m_{t}", t, (N,), rule="rowmax", parents=(f"o_{t}",))
        consts = (("Y", f"Y_{t}"), ("m", f"m_{t}"))
        add(
            f"L_{t}",
            "step_loss",
            f"L_{t}",
            t,
            rule="softmax_ce",
            parents=(f"o_{t}",),
            consts=consts,
        )
        h_prev = f"h_{t}"
    add("L", "loss", "L", None, rule="sum", parents=tuple(f"L_{t}" for t in range(1, T + 1)))
    if progress:
        progress("unroll", T, T)
    return UnrolledGraph(dims, nodes)
