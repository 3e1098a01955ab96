"""Compile a derivation to a plain Python function over NumPy arrays.

Code is emitted block by block (one block per named node of the graph or of the reverse sweep)
in topological order, with common subexpressions eliminated inside each block. The graph already
names every shared value, so the emitted code stays linear in T; whole-program CSE would grow
about T^2.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import symengine as se

from ..models.dims import Dims, resolve_name
from ..models.spec import ModelSpec
from .derivatives import Block, Derivation, Path, blocks_needed, derive
from .graph import UnrolledGraph, unroll

__all__ = [
    "CompiledFunction",
    "compile_program",
    "compile_gradients",
    "compile_paths",
    "gradient_function",
]


def _piecewise(*pieces: tuple[float, bool]) -> float:
    """SymEngine's Piecewise((value, condition), ...) as printed: the first true piece."""
    for value, condition in pieces:
        if condition:
            return value
    raise ValueError("no piece of a Piecewise applies")


#: What the emitted code may call: SymEngine prints these names.
_NAMESPACE = {
    "exp": math.exp,
    "log": math.log,
    "tanh": math.tanh,
    "E": math.e,
    "max": max,
    "Max": max,
    "Piecewise": _piecewise,
    "True": True,
}


def _argument(k: int) -> str:
    """The generated function's k-th parameter: never a name a model could shadow."""
    return f"_input{k}"


def _input_lines(graph: UnrolledGraph) -> list[str]:
    """Unpack the input arrays into one local variable per symbol, as the spec declares them:
    labels and token ids one-hot, everything else as floats."""
    spec, T = graph.spec, graph.dims.T
    lines = []
    for k, item in enumerate(spec.inputs):
        array = _argument(k)
        if item.role in ("parameter", "initial"):
            names = ", ".join(s.name for s in graph.node(item.name).symbols.flat)
            lines.append(f"    {names}, = {array}.ravel().tolist()")
            continue
        node = "Y" if item.role == "label" and spec.loss == "softmax_ce" else item.name
        names = [s.name for t in range(1, T + 1) for s in graph.node(f"{node}_{t}").symbols.flat]
        source = f"{array}.ravel().tolist()"
        if item.integer:
            source = f"_one_hot({array}, {graph.dims.size(item.bound)})"
        lines.append(f"    {', '.join(names)}, = {source}")
    return lines


def _one_hot(y: np.ndarray, C: int) -> list[float]:
    return (y[..., None] == np.arange(C)).astype(float).ravel().tolist()


#: Sums with more terms than this are emitted as sum((...)): Python's compiler recurses once per
#: `+` of a long chain and fails near a few thousand terms (L = L_1 + ... + L_T at large T).
_LONG_SUM = 64


def _py(expr: se.Basic) -> str:
    """Python source for one expression (SymEngine's printer, long top-level sums flattened)."""
    if isinstance(expr, se.Add) and len(expr.args) > _LONG_SUM:
        return f"sum(({', '.join(str(a) for a in expr.args)},))"
    return str(expr)


def _block_lines(block: Block, cse: bool) -> list[str]:
    symbols = list(block.symbols.flat)
    definitions = list(block.definition.flat)
    lines = []
    if cse and definitions:
        replacements, definitions = se.cse(definitions)
        if replacements:
            # cse names its temporaries x0, x1, ...; prefix them so they can never shadow ours.
            rename = {r: se.Symbol(f"_{r}") for r, _ in replacements}
            lines = [f"    _{r} = {_py(e.xreplace(rename))}" for r, e in replacements]
            definitions = [d.xreplace(rename) for d in definitions]
    lines.extend(f"    {s} = {_py(d)}" for s, d in zip(symbols, definitions))
    return lines


@dataclass
class CompiledFunction:
    """A compiled straight-line program: call it with the model's input arrays.

    Returns a dict mapping each output name to a float64 array. `source` is the generated
    Python code, kept for inspection.
    """

    dims: Dims
    spec: ModelSpec
    source: str
    shapes: dict[str, tuple[int, ...]]
    _raw: object

    def __call__(self, arrays: Mapping[str, np.ndarray] | None = None, **kwargs) -> dict:
        arrays = self.spec.validate(self.dims, {**(arrays or {}), **kwargs})
        return self.call_unchecked(arrays)

    def call_unchecked(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Skip input validation (for benchmarks and inner loops on trusted arrays)."""
        try:
            flat = self._raw(*(arrays[n] for n in self.spec.names))
        except (ValueError, OverflowError, ZeroDivisionError):
            located = self._where_not_a_number(arrays)
            if located is None:
                raise
            raise located from None
        return {k: np.array(v, dtype=float).reshape(self.shapes[k]) for k, v in flat.items()}

    def _where_not_a_number(self, arrays: Mapping[str, np.ndarray]):
        """For a model file whose equations have no value at these inputs (a log of a
        negative number), the ModelFileError naming the line; else None."""
        if not self.spec.from_file:
            return None
        from ..models.evaluate import diagnose

        try:
            return diagnose(self.spec.definition, arrays, self.dims.sizes, self.dims.T)
        except Exception:  # the diagnosis of a failure must not hide it
            return None


def compile_program(
    graph: UnrolledGraph,
    blocks: Iterable[Block],
    outputs: Mapping[str, np.ndarray],
    *,
    cse: bool = True,
) -> CompiledFunction:
    """Emit and compile Python code evaluating `outputs` (object arrays of symbols)."""
    wanted = [s for arr in outputs.values() for s in np.asarray(arr).flat]
    arguments = ", ".join(_argument(k) for k in range(len(graph.spec.names)))
    lines = [f"def _symbptt_program({arguments}):"]
    lines += _input_lines(graph)
    for block in blocks_needed(blocks, wanted):
        lines += _block_lines(block, cse)
    items = ", ".join(
        f"{name!r}: [{', '.join(str(s) for s in np.asarray(arr).flat)}]"
        for name, arr in outputs.items()
    )
    lines.append(f"    return {{{items}}}")
    source = "\n".join(lines) + "\n"
    namespace = dict(_NAMESPACE, _one_hot=_one_hot)
    exec(compile(source, "<symbptt generated>", "exec"), namespace)  # our own generated code
    shapes = {name: np.asarray(arr).shape for name, arr in outputs.items()}
    return CompiledFunction(graph.dims, graph.spec, source, shapes, namespace["_symbptt_program"])


def compile_gradients(
    derivation: Derivation,
    names: Iterable[str] | None = None,
    *,
    partials: bool = False,
    cse: bool = True,
) -> CompiledFunction:
    """Loss (`"loss"`) and total derivatives of every named parameter, as one function.

    With `partials=True` the outputs also hold each shared parameter's partial derivative per
    step, keyed like the graph's copies (`"W_h^(3)"`).
    """
    spec = derivation.graph.spec
    names = spec.gradient_names if names is None else names
    names = [resolve_name(n, spec.gradient_names) for n in names]
    outputs = {"loss": derivation.loss_symbol()}
    outputs.update({name: derivation.total_derivative(name) for name in names})
    if partials:
        for name in names:
            if name in spec.parameters:
                for k in range(1, derivation.graph.dims.T + 1):
                    outputs[f"{name}^({k})"] = derivation.partial_derivative(name, k)
    blocks = [*derivation.forward, *derivation.backward]
    return compile_program(derivation.graph, blocks, outputs, cse=cse)


def compile_paths(
    derivation: Derivation, paths: list[Path], *, cse: bool = True
) -> CompiledFunction:
    """One function returning every path's contribution, keyed `"path0"`, `"path1"`, ..."""
    outputs = {f"path{i}": derivation.path_contribution(p) for i, p in enumerate(paths)}
    blocks = [*derivation.forward, *derivation.path_blocks()]
    return compile_program(derivation.graph, blocks, outputs, cse=cse)


@lru_cache(maxsize=512)
def gradient_function(dims: Dims, spec: ModelSpec | None = None) -> CompiledFunction:
    """The compiled symbolic loss-and-gradients function for `dims` (and a model variant,
    default the vanilla RNN), derived once and cached."""
    return compile_gradients(derive(unroll(dims, spec=spec)))
