"""Derivatives of the loss on the unrolled graph: partial, total, and path by path.

Total derivatives come from one reverse sweep over the shared DAG (BPTT done on symbols): each
local partial derivative is SymEngine's `diff` of an entry's definition w.r.t. a parent entry,
and every adjoint is a new named symbol, so the cost stays linear in T. Path contributions are
computed independently, as products of the matrix-form VJP rules of `rules.RULES` along one
path; that the paths add up to the total is therefore a real check of the rule table.

Vocabulary: the *partial* derivative w.r.t. a copy `W_h^(k)` holds every other use of W_h fixed;
the *total* derivative dL/dW_h sums over all copies, i.e. over every path of the graph.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import symengine as se

from ..errors import ExpansionTooLargeError, UnknownNameError
from ..models.dims import resolve_name
from .graph import Node, UnrolledGraph, symbol_matrix
from .rules import vjp

__all__ = [
    "Block",
    "Derivation",
    "Path",
    "derive",
    "sum_paths",
    "MAX_EXPAND_T",
]

#: Largest T for which derivatives are expanded into one expression in the raw inputs.
MAX_EXPAND_T = 4

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, eq=False)
class Block:
    """A named matrix of symbols with their definitions: one assignment of the program."""

    name: str
    symbols: np.ndarray
    definition: np.ndarray


@dataclass(frozen=True)
class Path:
    """One path of the unrolled graph from a parameter (or input) to the loss L.

    `nodes` names every node on the way, copies included (`W_h^(k)` marks the use at step k);
    `steps` and `kinds` are those nodes' time steps and roles, as the graph has them.
    """

    wrt: str
    nodes: tuple[str, ...]
    steps: tuple[int | None, ...]
    kinds: tuple[str, ...]

    @property
    def shown(self) -> tuple[str, ...]:
        """The path as written in the derivation: copies folded into the parameter."""
        return tuple(n for n, kind in zip(self.nodes, self.kinds) if kind != "copy")

    @property
    def entry_step(self) -> int:
        """The step k at which the path enters the recurrence: the step of the first node the
        parameter or input feeds (its copy W^(k), or a_1 for h0, a_k for x_k)."""
        return self.steps[1] or 0

    @property
    def loss_step(self) -> int:
        """The step t of the loss term L_t the path ends in (the last node with a step: a
        mean adds an unstepped sum between L_t and L)."""
        return next((s for s in reversed(self.steps) if s is not None), 0)

    def __str__(self) -> str:
        return " -> ".join(self.shown)


def _adjoint_symbols(node: Node) -> np.ndarray:
    return symbol_matrix("d_" + node.code, node.shape)


@dataclass
class Derivation:
    """The derivatives of L on one unrolled graph.

    `forward` and `backward` together are a straight-line program (a list of `Block`s) that
    `compile` turns into NumPy-callable code; `adjoint[name]` holds the symbols of dL/d(node).
    """

    graph: UnrolledGraph
    forward: list[Block]
    backward: list[Block]
    adjoint: dict[str, np.ndarray]
    _path_blocks: dict[tuple[str, ...], Block] = field(default_factory=dict, repr=False)

    # -- partial and total derivatives -------------------------------------------------------
    def partial_derivative(self, parameter: str, step: int) -> np.ndarray:
        """dL/dθ^(step): the derivative w.r.t. θ's use at one step, all other uses held fixed."""
        parameter = resolve_name(parameter, self.graph.spec.parameters)
        if not 1 <= step <= self.graph.dims.T:
            raise UnknownNameError(f"step={step} is outside 1..T={self.graph.dims.T}")
        return self.adjoint[f"{parameter}^({step})"]

    def total_derivative(self, name: str) -> np.ndarray:
        """dL/dθ through every path, as adjoint symbols; `x` is stacked to shape (T, N, D)."""
        name = resolve_name(name, self.graph.spec.gradient_names)
        if name in {i.name for i in self.graph.spec.sequences}:
            T = self.graph.dims.T
            return np.stack([self.adjoint[f"{name}_{t}"] for t in range(1, T + 1)])
        return self.adjoint[name]

    def loss_symbol(self) -> np.ndarray:
        return self.graph.node("L").symbols

    # -- paths ------------------------------------------------------------------------------
    def paths(self, name: str) -> list[Path]:
        """Every path from θ (every x_t for `x`) to L, in order of entry step then loss step."""
        name = resolve_name(name, self.graph.spec.gradient_names)
        found: list[Path] = []
        for root in self._roots(name):
            for nodes in self._walk(root):
                graph_nodes = [self.graph.node(n) for n in nodes]
                steps = tuple(n.step for n in graph_nodes)
                found.append(Path(name, nodes, steps, tuple(n.kind for n in graph_nodes)))
        K = _truncation(self.graph)
        if K is not None:  # truncated BPTT: only the paths that reach back at most K steps
            found = [p for p in found if p.loss_step - p.entry_step <= K]
        return sorted(found, key=lambda p: (p.entry_step, p.loss_step, p.nodes))

    def path_count(self, name: str, *, truncated: bool = True) -> int:
        """How many paths `paths(name)` would list, counted without listing them (with
        `truncated=False`: every path of the graph, the dropped ones included)."""
        name = resolve_name(name, self.graph.spec.gradient_names)
        K = _truncation(self.graph) if truncated else None
        # count[node][age]: paths from the node to L whose loss term is `age` steps after it.
        count: dict[str, dict[int | None, int]] = {}
        for node in reversed(list(self.graph)):
            if node.name == "L":
                count["L"] = {None: 1}
            elif node.differentiable:
                here: dict[int | None, int] = {}
                for c in self.graph.children(node.name):
                    child = self.graph.node(c)
                    for age, n in count.get(c, {}).items():
                        parent_age = _parent_age(node, child, age, K)
                        if parent_age is not False:
                            here[parent_age] = here.get(parent_age, 0) + n
                count[node.name] = here
        return sum(sum(count[r].values()) for r in self._roots(name))

    def _roots(self, name: str) -> list[str]:
        """The graph nodes a derivative starts from: every x_t for the sequence input, else the
        node itself."""
        if name in {i.name for i in self.graph.spec.sequences}:
            return [f"{name}_{t}" for t in range(1, self.graph.dims.T + 1)]
        return [name]

    def _walk(self, root: str) -> Iterator[tuple[str, ...]]:
        # Depth-first with an explicit stack: paths are about 2T long, deeper than recursion.
        stack = [(root,)]
        while stack:
            prefix = stack.pop()
            if prefix[-1] == "L":
                yield prefix
                continue
            for child in self.graph.children(prefix[-1]):
                if self.graph.node(child).differentiable:
                    stack.append((*prefix, child))

    def path_contribution(self, path: Path) -> np.ndarray:
        """The product of local partial derivatives along one path, as named symbols.

        Shares suffixes between paths, so all T(T+1)/2 paths of W_h cost O(T^2) blocks.
        """
        return self._pull_back(path.nodes).symbols

    def path_blocks(self) -> list[Block]:
        """Blocks created so far by `path_contribution`, in an order valid for evaluation."""
        return list(self._path_blocks.values())

    def _pull_back(self, nodes: tuple[str, ...]) -> Block:
        # Suffixes from the loss up, each built on the one below it: iterative, since a path
        # is about 2T nodes long (deeper than Python's recursion at T in the hundreds).
        cached = 0  # the longest suffix already built (every shorter one is built too)
        while cached < len(nodes) and nodes[cached:] not in self._path_blocks:
            cached += 1
        for start in range(cached - 1, -1, -1):
            suffix = nodes[start:]
            if len(suffix) == 1:  # the loss itself: dL/dL = 1
                g = np.asarray(se.Integer(1), dtype=object)
            else:
                below = self._path_blocks[suffix[1:]]
                child = self.graph.node(suffix[1])
                inputs = child.rule_inputs(self.graph)
                consts = child.rule_arguments(self.graph)
                index = child.arguments.index(suffix[0])
                g = vjp(child.local_rule(), index, below.symbols, child.symbols, inputs, consts)
            node = self.graph.node(suffix[0])
            code = f"p{len(self._path_blocks)}_{node.code}"
            block = Block(" -> ".join(suffix), symbol_matrix(code, node.shape), np.asarray(g))
            self._path_blocks[suffix] = block
        return self._path_blocks[nodes]

    # -- expansion for printing ---------------------------------------------------------------
    def expand(self, symbols: np.ndarray) -> np.ndarray:
        """The given derivative symbols written out in the raw inputs (SymEngine expressions).

        Only for small T (MAX_EXPAND_T): expanded trees grow exponentially with T. The softmax
        shift is set to 0 here, which changes no value.
        """
        if self.graph.dims.T > MAX_EXPAND_T:
            raise ExpansionTooLargeError(
                f"T={self.graph.dims.T} is too large to write the derivative out in the raw "
                f"inputs (at most T={MAX_EXPAND_T}); the named-node form has no such limit"
            )
        definitions: dict[se.Symbol, se.Basic] = {}
        for block in [*self.forward, *self.backward, *self.path_blocks()]:
            for s, d in zip(block.symbols.flat, block.definition.flat):
                definitions[s] = d
        for node in self.graph:
            if node.kind == "shift":
                for s in node.symbols.flat:
                    definitions[s] = se.Integer(0)
        memo: dict[se.Symbol, se.Basic] = {}

        def full(s: se.Symbol) -> se.Basic:
            if s not in memo:
                d = definitions.get(s)
                if d is None:
                    memo[s] = s
                else:
                    memo[s] = d.xreplace({f: full(f) for f in d.free_symbols})
            return memo[s]

        out = np.empty(symbols.shape, dtype=object)
        for index in np.ndindex(*symbols.shape):
            out[index] = full(symbols[index])
        return out


def _truncation(graph: UnrolledGraph) -> int | None:
    """K of K-step truncated BPTT, or None when every path counts (K >= T - 1 included)."""
    K = graph.spec.options.truncate
    return None if K is None or K >= graph.dims.T - 1 else K


def _parent_age(parent: Node, child: Node, age: int | None, K: int | None) -> int | None | bool:
    """How many steps back from its loss term a contribution is once it reaches `parent`
    (None: not counted by age; False: past the truncation, dropped).

    Age is t - (the step of the node) for a contribution of L_t. Leaves (h0, x_t) and per-step
    weight copies enter at the step they feed, so only the recurrent edge (h_{s-1} into step s)
    ages a contribution; parameters gather every age that was kept.
    """
    if K is None or parent.step is None:
        return None
    base = 0 if age is None else age
    if parent.rule is not None and child.step is not None:
        base += child.step - parent.step
    return base if base <= K else False


def derive(graph: UnrolledGraph, progress: Progress | None = None) -> Derivation:
    """Run the reverse sweep: adjoint symbols and definitions for every node of the graph.

    With K-step truncation (the spec's `truncate`), adjoints are kept apart by age (how many
    steps back from its loss term a contribution has come) and a contribution older than K is
    dropped: exactly the paths with t - k <= K count. Without it there is one adjoint per node.
    """
    K = _truncation(graph)
    owner: dict[se.Symbol, str] = {}
    for node in graph:
        if node.differentiable:
            for s in node.symbols.flat:
                owner[s] = node.name
    contributions: dict[tuple[se.Symbol, int | None], list[se.Basic]] = {}
    ages: dict[str, set] = {}
    adjoint: dict[str, np.ndarray] = {}
    backward: list[Block] = []
    nodes = [n for n in graph if n.differentiable]
    total = len(nodes)
    for done, node in enumerate(reversed(nodes)):
        if progress and done % 64 == 0:
            progress("derive", done, total)
        by_age: dict[int | None, np.ndarray] = {}
        for age in sorted(ages.pop(node.name, {None}), key=lambda a: -1 if a is None else a):
            code = node.code if age is None else f"{node.code}_age{age}"
            symbols = symbol_matrix("d_" + code, node.shape)
            if node.name == "L":
                definition = np.asarray(se.Integer(1), dtype=object)
            else:
                definition = np.empty(node.shape, dtype=object)
                for index in np.ndindex(*node.shape):
                    terms = contributions.pop((node.symbols[index], age), ())
                    definition[index] = se.Add(*terms) if terms else se.Integer(0)
            backward.append(
                Block(
                    f"dL/d{node.name}" + ("" if age is None else f" (age {age})"),
                    symbols,
                    definition,
                )
            )
            by_age[age] = symbols
        if set(by_age) == {None}:
            adjoint[node.name] = by_age[None]
        else:  # the node's adjoint: every age that was kept, added up
            symbols = _adjoint_symbols(node)
            definition = np.empty(node.shape, dtype=object)
            for index in np.ndindex(*node.shape):
                definition[index] = se.Add(*(part[index] for part in by_age.values()))
            backward.append(Block(f"dL/d{node.name}", symbols, definition))
            adjoint[node.name] = symbols
        if node.rule is None:
            continue
        parents = set(node.parents)
        # Where each age of this node sends its contributions, per parent (None: every age
        # is kept as one; False: dropped by the truncation).
        sends = {
            (age, p): _parent_age(graph.node(p), node, age, K) for age in by_age for p in parents
        }
        for p, parent_age in {(p, a) for (_, p), a in sends.items() if a is not False}:
            ages.setdefault(p, set()).add(parent_age)
        for flat, (entry, entry_def) in enumerate(zip(node.symbols.flat, node.definition.flat)):
            locals_ = [
                (s, owner[s], entry_def.diff(s).xreplace({entry_def: entry}))
                for s in entry_def.free_symbols
                if owner.get(s) in parents
            ]
            for age, symbols in by_age.items():
                entry_adj = symbols.flat[flat]
                for s, parent, local in locals_:
                    parent_age = sends[age, parent]
                    if parent_age is not False:
                        contributions.setdefault((s, parent_age), []).append(entry_adj * local)
    if progress:
        progress("derive", total, total)
    forward = [Block(n.name, n.symbols, n.definition) for n in graph if n.rule is not None]
    return Derivation(graph, forward, backward, adjoint)


def sum_paths(
    paths: Iterable[Path], values: Iterable[np.ndarray], shape: tuple[int, ...]
) -> np.ndarray:
    """Add evaluated path contributions up in the shape of the total derivative.

    A path from x_k contributes to slot k-1 of dL/dx (shape (T, N, D)); every other path
    contributes to the whole parameter.
    """
    total = np.zeros(shape)
    for path, value in zip(paths, values):
        if path.steps[0] is not None and path.kinds[0] == "input" and path.steps[0] > 0:
            total[path.entry_step - 1] += value
        else:
            total += value
    return total


def blocks_needed(blocks: Iterable[Block], outputs: Iterable[se.Symbol]) -> list[Block]:
    """The blocks the outputs depend on, in their original order (dead code dropped)."""
    blocks = list(blocks)
    needed = set(outputs)
    keep: list[Block] = []
    for block in reversed(blocks):
        if any(s in needed for s in block.symbols.flat):
            keep.append(block)
            for d in block.definition.flat:
                needed.update(d.free_symbols)
    return keep[::-1]
