"""Every line of a derivation checked against the element-level engine before it is printed.

The matrix-form lines are computed with NumPy (`MatrixForm.evaluate`) at seeded random points
for several shapes (N = 1, H = 1, D != H among them), and compared entry by entry with the
engine's compiled program for the same unrolled graph: each model quantity and each adjoint at
every step, every gradient, each parameter's share at every step (the partial derivative w.r.t.
its copy), the loss, and, for the document's T, every path's term. Any disagreement raises
DerivationCheckError and nothing is printed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..engine.matexpr import Function
from ..engine.matrix_form import PREDICTIONS, MatrixForm, PathTerm
from ..errors import DerivationCheckError
from ..models.dims import Dims

__all__ = ["Verification", "verify", "SHAPES", "RTOL", "ATOL"]

#: Shapes every derivation is checked at (T is raised for truncation to show its effect).
SHAPES = (
    Dims(N=1, D=2, H=1, C=2, T=3),
    Dims(N=2, D=3, H=2, C=3, T=4),
    Dims(N=3, D=1, H=3, C=2, T=1),
)
RTOL, ATOL = 1e-9, 1e-12

Progress = Callable[[str, int, int], None]


@dataclass
class Verification:
    """What was checked: the shapes, how many arrays were compared, the largest error."""

    shapes: list[Dims] = field(default_factory=list)
    comparisons: int = 0
    max_error: float = 0.0
    paths: int = 0
    #: Whether the loss as textbooks write it (-sum_i log yhat_t[i, y_t[i]], from the printed
    #: yhat line) was checked against the engine's loss (the document prints it only then).
    textbook_loss: bool = False
    seconds: float = 0.0
    rtol: float = RTOL
    atol: float = ATOL

    def compare(self, what: str, ours: np.ndarray, engine: np.ndarray, dims: Dims) -> None:
        ours, engine = np.asarray(ours, dtype=float), np.asarray(engine, dtype=float)
        if ours.shape != engine.shape:
            raise DerivationCheckError(
                f"{what} has shape {ours.shape} in the matrix form but {engine.shape} in the "
                f"engine at {dims}; nothing was printed"
            )
        error = np.abs(ours - engine)
        if not np.all(error <= self.atol + self.rtol * np.abs(engine)):
            raise DerivationCheckError(
                f"{what} disagrees with the element-level engine at {dims} (largest error "
                f"{error.max():.3g}); nothing was printed: please report this"
            )
        self.comparisons += 1
        scale = np.maximum(np.abs(engine), 1.0)
        self.max_error = max(self.max_error, float((error / scale).max(initial=0.0)))


def verify(
    form: MatrixForm,
    *,
    path_terms: Sequence[PathTerm] = (),
    path_dims: Dims | None = None,
    shapes: Sequence[Dims] = SHAPES,
    seed: int = 0,
    progress: Progress | None = None,
) -> Verification:
    """Check every line of `form` (and each path term, at `path_dims`) against the engine, at
    `shapes` (the caller picks their T: with K-step truncation, T > K + 1 where the printed
    lines are the truncated ones, T <= K + 1 where they are full BPTT)."""
    from ..engine.compile import compile_paths, compile_program, gradient_function
    from ..engine.derivatives import derive, sum_paths
    from ..engine.graph import unroll

    start = time.perf_counter()
    report = Verification()
    spec = form.spec
    todo = list(shapes)
    for done, dims in enumerate(todo):
        if progress:
            progress("verify", done, len(todo) + bool(path_terms))
        graph = unroll(dims, spec=spec, max_seconds=None)
        derivation = derive(graph)
        outputs: dict[str, np.ndarray] = {"loss": derivation.loss_symbol()}
        for name in form.gradients:
            outputs[f"d{name}"] = derivation.total_derivative(name)
        steps = range(1, dims.T + 1)
        engine_nodes = [
            line.target.base
            for line in form.model
            if any(f"{line.target.base}_{k}" in graph.nodes for k in steps)
        ]
        for base in engine_nodes:
            for k in steps:  # (a model file's function of a zero state is no node at step 1)
                if f"{base}_{k}" in graph.nodes:
                    outputs[f"{base}[{k}]"] = graph.node(f"{base}_{k}").symbols
        for line in form.adjoints:
            base = line.target.base[1:]
            for k in steps:  # a model file's quantity that is a number at a step (a function
                if f"{base}_{k}" in derivation.adjoint:  # of a zero state) has no adjoint there
                    outputs[f"d{base}[{k}]"] = derivation.adjoint[f"{base}_{k}"]
        for name, line in form.gradients.items():
            if line.summed:
                for k in steps:
                    outputs[f"d{name}^({k})"] = derivation.partial_derivative(name, k)
        blocks = [*derivation.forward, *derivation.backward]
        engine = compile_program(graph, blocks, outputs)
        point = spec.random_point(dims, seed=seed + done)
        _has_a_value(spec, point, dims)
        truth = engine(point)
        ours = form.evaluate(point, dims)
        report.compare("the loss", ours.loss, truth["loss"], dims)
        if textbook_loss_line(form) is not None:
            report.compare(
                "the loss as textbooks write it",
                textbook_loss(form, point, ours.values, dims),
                truth["loss"],
                dims,
            )
        for base in engine_nodes:
            for k in steps:
                if f"{base}[{k}]" in truth:
                    report.compare(
                        f"{base}[{k}]", ours.values[(base, k)], truth[f"{base}[{k}]"], dims
                    )
        for line in form.model:  # named predictions (yhat = softmax(o)): the printed line
            base = line.target.base  # evaluated on the engine's own o
            prediction = isinstance(line.expr, Function) and line.expr.name in PREDICTIONS
            if base not in engine_nodes and prediction:
                (arg,) = line.expr.symbols()
                for k in steps:
                    o = form.convert(truth[f"{arg.base}[{k}]"])
                    value = form.unconvert(line.expr.evaluate({arg.name: o}), row_ndim=2)
                    report.compare(f"{base}[{k}]", ours.values[(base, k)], value, dims)
        for line in form.adjoints:
            base = line.target.base
            for k in steps:
                if f"{base}[{k}]" in truth:
                    report.compare(
                        f"{base}[{k}]", ours.values[(base, k)], truth[f"{base}[{k}]"], dims
                    )
        for name, line in form.gradients.items():
            report.compare(f"d{name}", ours.gradients[name], truth[f"d{name}"], dims)
            if line.summed:
                for k in steps:
                    report.compare(
                        f"the share of d{name} at step {k}",
                        ours.partials[(name, k)],
                        truth[f"d{name}^({k})"],
                        dims,
                    )
        report.shapes.append(dims)
    if path_terms:
        if progress:
            progress("verify", len(todo), len(todo) + 1)
        graph = unroll(path_dims, spec=spec, max_seconds=None)
        derivation = derive(graph)
        paths = [t.path for t in path_terms]
        engine = compile_paths(derivation, paths)
        point = spec.random_point(path_dims, seed=seed)
        _has_a_value(spec, point, path_dims)
        truth = engine(point)
        ours = form.evaluate(point, path_dims)
        for i, term in enumerate(path_terms):
            value = term.expr.evaluate(ours.bindings)
            row_ndim = len(truth[f"path{i}"].shape)
            report.compare(
                f"the term of the path {term.path}",
                form.unconvert(value, row_ndim=row_ndim),
                truth[f"path{i}"],
                path_dims,
            )
        # The terms add up to the engine's total, which comes from differentiating each entry
        # (not from the rule table these terms were built with).
        totals = gradient_function(path_dims, spec)(point)
        for name in dict.fromkeys(t.path.wrt for t in path_terms):
            mine = [(i, t) for i, t in enumerate(path_terms) if t.path.wrt == name]
            shape = totals[name].shape
            summed = sum_paths(
                [t.path for _, t in mine], [truth[f"path{i}"] for i, _ in mine], shape
            )
            ours_sum = sum_paths(
                [t.path for _, t in mine],
                [
                    form.unconvert(t.expr.evaluate(ours.bindings), row_ndim=truth[f"path{i}"].ndim)
                    for i, t in mine
                ],
                shape,
            )
            report.compare(f"the sum of the paths of {name}", ours_sum, totals[name], path_dims)
            report.compare(f"the engine's paths of {name}", summed, totals[name], path_dims)
        report.paths = len(path_terms)
        report.shapes.append(path_dims)
    if progress:
        progress("verify", 1, 1)
    report.textbook_loss = bool(report.shapes) and textbook_loss_line(form) is not None
    report.seconds = time.perf_counter() - start
    return report


def textbook_loss_line(form: MatrixForm):
    """The model line `yhat_t = softmax(o_t)` the textbook loss is written with, or None (a
    model file's own loss, or a layer's)."""
    if form.spec.loss != "softmax_ce":
        return None
    for line in form.model:
        if isinstance(line.expr, Function) and line.expr.name == "softmax":
            return line
    return None


def textbook_loss(form: MatrixForm, point, values, dims: Dims) -> float:
    """The loss as the document prints it, `L_t = -sum_i log yhat_t[i, y_t[i]]` (column
    convention: `yhat_t[y_t[i], i]`), `L = sum_t L_t` (or that over N T for the mean),
    evaluated entry by entry from the printed yhat line's values (`values[(yhat, t)]`) and the
    labels, in the document's convention."""
    line = textbook_loss_line(form)
    label = next(i.name for i in form.spec.inputs if i.role == "label")
    total = 0.0
    for t in range(1, dims.T + 1):
        yhat = np.asarray(form.convert(values[(line.target.base, t)]), dtype=float)
        ids = np.asarray(point[label][t - 1]).astype(int)
        rows = np.arange(ids.shape[0])
        picked = yhat[rows, ids] if form.convention == "row" else yhat[ids, rows]
        total += -np.log(picked).sum()
    if form.spec.options.reduction == "mean":
        total /= dims.N * dims.T
    return total


def _has_a_value(spec, point, dims: Dims) -> None:
    """A model file's equations must have a value at the point the lines are checked at: a
    log of a negative number there is the file's (ModelFileError at its line), not a
    disagreement of the derivation."""
    if spec.from_file:
        from ..models.evaluate import diagnose

        located = diagnose(spec.definition, point, dims.sizes, dims.T)
        if located is not None:
            raise located
