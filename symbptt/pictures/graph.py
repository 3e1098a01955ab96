"""The unrolled graph as a picture: deterministic Graphviz DOT text, one cluster per time step,
every edge labelled with its local Jacobian in matrix form (the VJP δ ↦ δ ∂child/∂parent), the
paths from a parameter to the loss highlighted, optionally only those through one node or
ending in one loss term. The path count in the caption is counted on the graph, not drawn.
Labels are in the documents' notation (h_1 with a real subscript, ⊙, ⊤: see notation.py), as
Graphviz HTML-like labels; edge labels are 10 pt at the picture's natural size.

Rendering to SVG or PNG needs Graphviz's `dot` program (Debian: graphviz); DOT text does not.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from ..errors import InvalidArgumentError, UnknownNameError
from ..models.dims import Dims
from ..models.spec import ModelSpec
from .notation import GraphPrinter, html, node_label

__all__ = ["GraphFigure", "graph_figure", "render", "FORMATS"]

FORMATS = ("dot", "svg", "png")
#: The largest T drawn: a picture of more steps is unreadable (and a gated cell's graph big).
MAX_T = 8

#: Font sizes in points, which are the SVG's own units at its natural size: edge labels at
#: 10 pt read at 100 % zoom (their subscripts at 80 %).
CAPTION_SIZE, NODE_SIZE, EDGE_SIZE = 13, 13, 10
#: The labels are math: a serif face, as the documents set it.
_MATH_FONT = "Times"

#: Colours: the highlighted paths, the rest of the graph.
_ON, _OFF = "#c0392b", "#b0b0b0"


@dataclass(frozen=True)
class GraphFigure:
    """A drawn graph: the DOT text, the number of highlighted paths and the caption; for an
    interactive page, the highlighted subgraph (its nodes in topological order, its edges,
    where its paths start and end) and each node's label."""

    dot: str
    paths: int
    caption: str
    nodes: int
    order: tuple[str, ...] = ()
    lit_edges: tuple[tuple[str, str], ...] = ()
    roots: tuple[str, ...] = ()
    end: str = "L"
    labels: tuple[tuple[str, str], ...] = ()


def graph_figure(
    spec: ModelSpec,
    T: int,
    wrt: str = "W_h",
    *,
    through: str | None = None,
    to: str | None = None,
    convention: str = "row",
) -> GraphFigure:
    """The unrolled graph of `spec` for T steps with every path from `wrt` to L highlighted
    (only those through the node `through`, or ending in the loss term `to`, when given); the
    edges' Jacobians written in the row or the column convention."""
    from ..engine.graph import unroll
    from ..engine.matexpr import Symbol, to_columns
    from ..engine.matrix_form import CONVENTIONS, local_vjp, node_expressions
    from ..models.dims import resolve_name

    if isinstance(T, bool) or not isinstance(T, int) or not 1 <= T <= MAX_T:
        raise InvalidArgumentError(f"T={T!r} must be a whole number from 1 to {MAX_T}")
    if convention not in CONVENTIONS:
        raise InvalidArgumentError(f"convention {convention!r} is not one of row, column")
    wrt = resolve_name(wrt, spec.gradient_names)
    graph = unroll(spec.complete(Dims(N=1, D=1, H=1, C=2, T=T), 1), spec=spec, max_seconds=None)
    shown = [n for n in graph if n.differentiable and n.kind not in ("label", "shift", "data")]
    names = {n.name for n in shown}
    per_step = {i.name for i in spec.sequences}
    roots = [f"{wrt}_{t}" for t in range(1, T + 1)] if wrt in per_step else [wrt]
    end = "L"
    if to is not None:
        to = _node_name(to, names, "--to")
        if graph.node(to).kind != "step_loss":
            raise InvalidArgumentError(
                f"--to {to}: a loss term L_t is expected (L_1 .. L_{T}), not another node"
            )
        end = to
    if through is not None:
        through = _node_name(through, names, "--through")
    edges = [(p, n.name) for n in shown for p in n.parents if p in names]
    order = [n.name for n in shown]
    children: dict[str, list[str]] = {n: [] for n in order}
    for parent, child in edges:
        children[parent].append(child)

    def count_to(target: str) -> dict[str, int]:
        """Paths from each node to `target`."""
        ways = dict.fromkeys(order, 0)
        ways[target] = 1
        for name in reversed(order):
            if name != target:
                ways[name] = sum(ways[c] for c in children[name])
        return ways

    def count_from(sources: list[str]) -> dict[str, int]:
        """Paths from any of `sources` to each node."""
        ways = dict.fromkeys(order, 0)
        for name in order:
            ways[name] += int(name in sources)
            for c in children[name]:
                ways[c] += ways[name]
        return ways

    from_root, to_end = count_from(roots), count_to(end)
    if through is None:
        total = sum(to_end[r] for r in roots)
        on_path = {n for n in order if from_root[n] and to_end[n]}
        on_edge = {(p, c) for p, c in edges if from_root[p] and to_end[c]}
    else:
        to_mid, from_mid = count_to(through), count_from([through])
        total = sum(to_mid[r] for r in roots) * to_end[through]
        first = {n for n in order if from_root[n] and to_mid[n]}
        second = {n for n in order if from_mid[n] and to_end[n]}
        on_path = first | second if total else set()
        on_edge = {
            (p, c)
            for p, c in edges
            if total and ((from_root[p] and to_mid[c]) or (from_mid[p] and to_end[c]))
        }
    if spec.options.truncate is not None:  # K-step truncation drops paths: the kept ones
        from ..engine.derivatives import Derivation

        kept = [
            p.nodes[: p.nodes.index(end) + 1]
            for p in Derivation(graph, [], [], {}).paths(wrt)
            if end in p.nodes and (through is None or through in p.nodes)
        ]
        total = len(kept)
        on_path = {n for nodes in kept for n in nodes}
        on_edge = {(a, b) for nodes in kept for a, b in zip(nodes, nodes[1:])}
    if total == 0:
        where = "".join([f" through {through}" if through else "", f" to {to}" if to else " to L"])
        raise InvalidArgumentError(f"no path leads from {wrt}{where}: nothing to highlight")

    exprs, uses = node_expressions(graph)
    lines = [
        "digraph unrolled {",
        f'  graph [rankdir=BT, fontname="Helvetica", fontsize={CAPTION_SIZE}, labelloc=t, '
        "newrank=true];",
        '  node [shape=box, style="rounded,filled", fillcolor="white", '
        f'fontname="{_MATH_FONT}", fontsize={NODE_SIZE}];',
        f'  edge [fontname="{_MATH_FONT}", fontsize={EDGE_SIZE}];',
    ]
    caption = _caption(wrt, total, through, to, T, spec.options.truncate)
    math = _caption(wrt, total, through, to, T, spec.options.truncate, name=_math_name)
    lines.append(f"  label=<{math}>;")

    def label_of(name: str) -> str:
        return node_label(name, exprs.get(name), NODE_SIZE)

    def node_line(name: str, indent: str) -> str:
        colour = _ON if name in on_path else _OFF
        width = 2 if name in on_path else 1
        return (
            f"{indent}{_quote(name)} [label=<{label_of(name)}>, color={_quote(colour)}, "
            f"penwidth={width}];"
        )

    # Parameters, and h0 (c0) at step 0, are drawn outside the steps' clusters.
    steps = sorted({graph.node(n).step for n in order if graph.node(n).step})
    outside = [n for n in order if not graph.node(n).step]
    for name in outside:
        lines.append(node_line(name, "  "))
    for t in steps:
        lines.append(f"  subgraph cluster_t{t} {{")
        lines.append(f'    label=<<I>t</I> = {t}>; labelloc=b; color="#c8c8c8"; margin=12;')
        for name in order:
            if graph.node(name).step == t:
                lines.append(node_line(name, "    "))
        lines.append("  }")
    for parent, child in edges:
        # the gradient the VJP receives, δ (no model name: those are ASCII identifiers)
        g = Symbol("δ", exprs[child].shape if exprs.get(child) is not None else ())
        try:
            vjp = local_vjp(uses, child, parent, g)
            vjp = to_columns(vjp) if convention == "column" else vjp
            jacobian = GraphPrinter(EDGE_SIZE).doprint(vjp)
        except Exception:  # a label that cannot be written is left out, never a crash
            jacobian = ""
        on = (parent, child) in on_edge
        attrs = [
            f"label=<{jacobian}>" if jacobian else None,
            f"color={_quote(_ON if on else _OFF)}",
            f"fontcolor={_quote(_ON if on else '#808080')}",
            f"penwidth={2 if on else 1}",
        ]
        attrs_text = ", ".join(a for a in attrs if a)
        lines.append(f"  {_quote(parent)} -> {_quote(child)} [{attrs_text}];")
    lines.append("}")
    labels = tuple((n, html(label_of(n))) for n in order)
    return GraphFigure(
        "\n".join(lines) + "\n",
        total,
        caption,
        len(order),
        order=tuple(n for n in order if n in on_path),
        lit_edges=tuple(e for e in edges if e in on_edge),
        roots=tuple(roots),
        end=end,
        labels=labels,
    )


def _caption(
    wrt: str,
    total: int,
    through: str | None,
    to: str | None,
    T: int,
    K: int | None = None,
    *,
    name=lambda n: n,
) -> str:
    """The caption, in plain text; with `name` (a node's name in the notation), as an
    HTML-like label for the picture."""
    where = f" through {name(through)}" if through else ""
    target = name(to) if to else "L"
    noun = "path" if total == 1 else "paths"
    kept = f" kept by {K}-step truncation (t - k ≤ {K})" if K is not None else ""
    return (
        f"dL/d{name(wrt)}, T = {T}: {total:,} {noun}{kept} from {name(wrt)}{where} to {target} "
        "(highlighted); each edge is labelled with its local Jacobian as a VJP, "
        "δ ↦ δ ∂child/∂parent, δ the gradient dL/dchild"
    )


def _math_name(name: str) -> str:
    """A node's name in the caption of the picture: h_2 as h₂ with a real subscript."""
    return node_label(name, None, CAPTION_SIZE)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _node_name(name: str, names: set[str], option: str) -> str:
    """A node of the drawn graph by its name (h_2, L_3, W_h^(2)); a close name suggested."""
    aliases = {name, name.replace("[", "_").replace("]", "")}
    for alias in aliases:
        if alias in names:
            return alias
    close = difflib.get_close_matches(name, sorted(names), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
    raise UnknownNameError(f"{option} {name}: the unrolled graph has no node {name!r}{hint}")


def render(figure: GraphFigure, fmt: str) -> bytes:
    """The figure as `fmt` bytes: DOT text as is, SVG or PNG through Graphviz's dot program
    (InvalidArgumentError, one sentence, when it is not installed)."""
    if fmt not in FORMATS:
        raise InvalidArgumentError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    if fmt == "dot":
        return figure.dot.encode()
    import graphviz

    try:
        return graphviz.Source(figure.dot).pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise InvalidArgumentError(
            "Graphviz's dot program is not installed (Debian: apt-get install graphviz), so "
            f"no {fmt.upper()} can be drawn; -o FILE.dot writes the DOT text without it"
        ) from None
