"""The matrix-form derivation: BPTT's recurrences, found by applying the rule table's VJPs to
one step of the model on printable matrix expressions.

The spec's cell runs on `MatExpr`s for a general step t (the model lines, `a[t] = ...`) and
again for step t+1 fed with step t's state (the uses of h[t] in the future). Each node's adjoint
`dn[t]` = dL/dn_t, the *total* derivative, is the sum of the VJPs of its uses: in the loss term
L_t, at step t, and at step t+1 (the recurrent term). A parameter's gradient is the sum over t of
the VJPs of its uses at step t (each the *partial* derivative w.r.t. its copy at step t); h0's is
the future term at t = 0; x_t's is the VJP of its use at step t. Nothing is typed in: another
cell, activation or variant gives other lines.

`MatrixForm.evaluate` computes the lines with NumPy for given inputs, so that every line can be
compared with the element-level engine before it is printed (`symbptt.derivation.verify`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import reduce
from operator import add
from typing import Any

import numpy as np

from ..errors import InternalError, UnknownNameError
from ..models.dims import Dims
from ..models.spec import PER_STEP, CellOps, ModelSpec
from .matexpr import (
    Constant,
    Function,
    Indexed,
    MatExpr,
    Symbol,
    one_hot,
    rebuild,
    size_in,
    to_columns,
)
from .rules import RULES

__all__ = ["Term", "Line", "MatrixForm", "matrix_form", "CONVENTIONS", "pullback", "Pullback"]

CONVENTIONS = ("row", "column")

#: Row-wise functions of a node that the derivation names as a quantity of their own.
PREDICTIONS = {"softmax": "yhat"}


@dataclass(frozen=True)
class Term:
    """One term of a line; `source` says where it comes from: "loss" (the loss term L_t
    itself), "step" (a use at step t) or "future" (a use at step t+1, the recurrent term)."""

    expr: MatExpr
    source: str = "step"


@dataclass(frozen=True)
class Line:
    """One identity `target = terms[0] + terms[1] + ...` (for every t when `target` is
    relative; summed over t = 1..T when `summed`).

    `kind`: "model" (forward), "loss", "boundary", "adjoint" (a recurrence), "gradient".
    `about`: the node or input the line defines (`a`, `W_h`).
    """

    target: MatExpr
    terms: tuple[Term, ...]
    kind: str
    about: str
    summed: bool = False

    @property
    def expr(self) -> MatExpr:
        if not self.terms:
            return Constant(0)
        return reduce(add, (t.expr for t in self.terms))

    def map(self, f) -> Line:
        return replace(
            self,
            target=f(self.target),
            terms=tuple(Term(f(t.expr), t.source) for t in self.terms),
        )


@dataclass(frozen=True)
class _Use:
    """A node of the cell as run on matrix expressions: its rule, arguments and output."""

    out: Indexed
    rule: str
    inputs: tuple[MatExpr | None, ...]
    value: MatExpr
    params: tuple[tuple[str, Any], ...] = ()


class _MatrixOps(CellOps):
    """The matrix-expression backend of a cell's named operations, for step t + offset."""

    def __init__(self, spec: ModelSpec, offset: int, anchor: str | None = "t") -> None:
        self.options, self.offset, self.anchor = spec.options, offset, anchor
        self.uses: list[_Use] = []

    def node(self, base, rule, inputs, params=None, consts=None, kind=None) -> Indexed:
        params = {**(params or {}), **(consts or {})}
        value = RULES[rule].forward(*inputs, **params)
        if not isinstance(value, MatExpr):
            raise InternalError(f"{base}[t] is not a matrix expression ({value!r})")
        out = Indexed.make(base, value.shape, self.offset, anchor=self.anchor)
        self.uses.append(_Use(out, rule, tuple(inputs), value, tuple(params.items())))
        return out

    def size(self, name: str) -> MatExpr:
        return Symbol(name)

    def filled(self, value, shape: tuple) -> MatExpr:
        return Constant(value, tuple(shape))


def _positions(use: _Use, node: MatExpr) -> list[int]:
    return [i for i, x in enumerate(use.inputs) if x is node]


def _vjp(use: _Use, index: int, g: MatExpr) -> MatExpr:
    rule = RULES[use.rule]
    return rule.vjp(index, g, use.out, *use.inputs, **dict(use.params))


def _adjoint(node: Indexed) -> Indexed:
    return Indexed.make("d" + node.base, node.shape, node.offset, anchor=node.anchor, adjoint=True)


@dataclass(frozen=True)
class MatrixForm:
    """The derivation of one model variant in one convention: model lines, the loss, the
    boundaries, the adjoint recurrences (in the order they are computed) and the gradients."""

    spec: ModelSpec
    convention: str
    model: tuple[Line, ...]
    loss: Line
    boundaries: tuple[Line, ...]
    adjoints: tuple[Line, ...]
    gradients: dict[str, Line] = field(default_factory=dict)
    #: The seed dL/dL_t: 1 for a sum, 1/(N T) for a mean.
    seed: MatExpr = Constant(1)
    #: The names of the recurrent state's matrices (h; h and c): h[0] is the initial state.
    states: tuple[str, ...] = ("h",)
    #: The quantities the derivation names itself (yhat = softmax(o), or phat where the model
    #: uses yhat): model lines that are no node of the model.
    predictions: tuple[str, ...] = ()

    @property
    def state(self) -> str:
        """The hidden state's name (h), the one the output layer reads."""
        return self.states[0]

    @property
    def truncate(self) -> int | None:
        return self.spec.options.truncate

    def gradient(self, name: str) -> Line:
        if name not in self.gradients:
            raise UnknownNameError(
                f"no gradient of {name!r} in the {self.spec.name} model's derivation: it has "
                f"{', '.join(self.gradients)}"
            )
        return self.gradients[name]

    def lines_for(self, names: Iterable[str]) -> tuple[Line, ...]:
        """The adjoint recurrences the gradients of `names` need, in computation order."""
        defined = {line.target.base: line for line in self.adjoints}
        needed: set[str] = set()
        stack = [self.gradient(n).expr for n in names]
        while stack:
            for s in stack.pop().symbols():
                if isinstance(s, Indexed) and s.base in defined and s.base not in needed:
                    needed.add(s.base)
                    stack.append(defined[s.base].expr)
        return tuple(line for line in self.adjoints if line.target.base in needed)

    def columns(self) -> MatrixForm:
        """The same derivation in the column convention (every quantity transposed)."""
        if self.convention == "column":
            return self
        return replace(
            self,
            convention="column",
            model=tuple(line.map(to_columns) for line in self.model),
            loss=self.loss.map(to_columns),
            boundaries=tuple(line.map(to_columns) for line in self.boundaries),
            adjoints=tuple(line.map(to_columns) for line in self.adjoints),
            gradients={k: line.map(to_columns) for k, line in self.gradients.items()},
        )

    # -- numbers ------------------------------------------------------------------------------
    def convert(self, array: np.ndarray) -> np.ndarray:
        """A row-convention array in this convention (integer ids stay as they are)."""
        a = np.asarray(array)
        if self.convention == "row" or a.dtype.kind in "iu":
            return a
        return a.T if a.ndim == 2 else a.reshape(-1, 1) if a.ndim == 1 else a

    def unconvert(self, array: np.ndarray, *, row_ndim: int) -> np.ndarray:
        """This convention's array back in the row convention (`row_ndim` axes there)."""
        a = np.asarray(array)
        if self.convention == "row":
            return a
        return a.T if row_ndim == 2 else a.reshape(-1) if row_ndim == 1 else a

    def evaluate(
        self, point: Mapping[str, np.ndarray], dims: Dims, *, lags: bool = False
    ) -> Evaluation:
        """Every line computed with NumPy at `point` (row-convention arrays, as the spec's
        `random_point` draws them); results come back in the row convention. With `lags`,
        each loss term is also pulled back on its own, and each parameter's share of it at
        step k is kept by lag t - k (`Evaluation.lags`)."""
        with np.errstate(all="ignore"):  # a value that is no number is compared, not warned
            return _evaluate(self, point, dims, lags)


@dataclass
class Evaluation:
    """Numbers of a derivation, row convention: `values[(base, t)]` for the per-step
    quantities and adjoints (adjoints summed over loss terms when truncated), `gradients` by
    input name (x stacked to (T, N, D)), `partials[(name, k)]` each parameter's share at step k,
    and the loss."""

    values: dict[tuple[str, int], np.ndarray]
    gradients: dict[str, np.ndarray]
    partials: dict[tuple[str, int], np.ndarray]
    loss: float
    #: The bindings of a formula of this form at fixed steps, in its own convention (names
    #: such as `h[0]`, `a[2]`, `W_h`): what a path's term is evaluated with.
    bindings: dict[str, Any] = field(default_factory=dict)
    #: With `lags`: `lags[(name, l)]`, the sum over loss terms L_t of a parameter's share at
    #: step k = t - l (the temporal components of Pascanu et al.), row convention.
    lags: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)


def matrix_form(spec: ModelSpec, convention: str = "row") -> MatrixForm:
    """Derive the model's BPTT recurrences in matrix form, by rule application."""
    if convention not in CONVENTIONS:
        raise UnknownNameError(f"convention={convention!r} is not one of {', '.join(CONVENTIONS)}")
    form = _derive(spec)
    return form.columns() if convention == "column" else form


def _letters(spec: ModelSpec) -> dict[str, MatExpr]:
    return {i.name: Symbol(i.name, i.shape) for i in spec.inputs if i.role == "parameter"}


def _run_cell(spec: ModelSpec, params, state, offset: int, anchor: str | None = "t"):
    """The cell at step t + offset (anchor None: at step `offset`): its uses, state, logits
    (or loss term) and per-step input."""
    ops = _MatrixOps(spec, offset, anchor)
    x = spec.step_argument(lambda item: _step_input_at(item, offset, anchor))
    new_state, logits = spec.cell(ops, params, state, x)
    return ops.uses, new_state, logits, x


def _step_input_at(item, offset: int, anchor: str | None) -> MatExpr:
    """A per-step input at step t + offset: integer ids one-hot, as data."""
    if item.integer:
        return one_hot(Indexed.make(item.name, item.shape[1:], offset, anchor), item.bound)
    return Indexed.make(item.name, item.shape[1:], offset, anchor)


def _sequence_at(spec: ModelSpec, offset: int, anchor: str | None) -> MatExpr:
    return _step_input_at(spec.sequence, offset, anchor)


def _labels_at(spec: ModelSpec, offset: int, anchor: str | None = "t") -> MatExpr:
    label = next(i for i in spec.inputs if i.role == "label")
    return one_hot(Indexed.make(label.name, label.shape[1:], offset, anchor), label.bound)


#: Names for a generated prediction when the model uses `yhat` itself (a <letter>hat prints
#: with a hat), then yhat2, yhat3, ...
_FREE_PREDICTIONS = ("yhat", "phat", "qhat", "shat")


def _taken(spec: ModelSpec, uses: Iterable[_Use]) -> dict:
    """What the derivation's own names must not be: the model's quantities and inputs (and
    what reads as one of them at a step, `yhat_1`); a model file's own name for a softmax of
    one of its quantities (`p[t] = softmax(o[t])`); and the free name of each prediction."""
    names = {u.out.base for u in uses} | {i.name for i in spec.inputs}
    taken: dict = {"names": names}
    for u in uses:
        if u.rule == "softmax" and isinstance(u.inputs[0], Indexed):
            taken[("softmax", u.inputs[0].base)] = u.out.base

    def free(name: str) -> bool:
        return not any(n == name or re.fullmatch(rf"{name}(_\d+)+|d{name}", n) for n in names)

    for function, base in PREDICTIONS.items():
        candidates = [base, *_FREE_PREDICTIONS, *(f"{base}{k}" for k in range(2, 100))]
        taken[function] = next(c for c in candidates if free(c))
    return taken


def _name_predictions(
    expr: MatExpr, nodes: Iterable[Indexed], found: dict, taken: Mapping | None = None
) -> MatExpr:
    """Write softmax(o[t]) as yhat[t]: a quantity the reader meets in the model lines (a model
    file that names it itself keeps its own name; one that uses the name yhat for something
    else gets a free name, phat)."""
    ids = {id(n) for n in nodes}
    taken = taken or {}

    def replace_(node: MatExpr) -> MatExpr | None:
        if isinstance(node, Function) and node.name in PREDICTIONS and id(node.arg) in ids:
            arg = node.arg
            own = taken.get((node.name, arg.base))
            if own is not None:
                return Indexed.make(own, node.shape, arg.offset, arg.anchor)
            base = taken.get(node.name, PREDICTIONS[node.name])
            named = Indexed.make(base, node.shape, arg.offset, arg.anchor)
            found.setdefault(base, (named, node))
            return named
        return None

    return rebuild(expr, replace_)


def loss_seed(spec: ModelSpec) -> MatExpr:
    """dL/dL_t: 1 for a sum of the loss terms, 1/(N T) for their mean (N, T as symbols)."""
    if spec.options.reduction == "mean":
        g = RULES["scale"].vjp(0, Constant(1), None, None, factor=1 / (Symbol("N") * Symbol("T")))
        return g
    return Constant(1)


def _derive(spec: ModelSpec) -> MatrixForm:
    params = _letters(spec)
    # The cell's state at t-1, fed back: the cell must return its state under these names.
    h_prev = tuple(Indexed.make(name, spec.state_shape(name), -1) for name in spec.states)
    uses, state, out, x = _run_cell(spec, params, h_prev, 0)
    names = tuple(getattr(s, "base", None) for s in state)
    shapes = tuple(spec.state_shape(name) for name in spec.states)
    if names != spec.states or any(s.shape != shape for s, shape in zip(state, shapes)):
        raise InternalError(
            f"the {spec.name} cell returns a state named {names}, not {spec.states} of shapes "
            f"{shapes}"
        )
    future, _, _, _ = _run_cell(spec, params, state, 1)
    seed = loss_seed(spec)
    logits = out if spec.loss == "softmax_ce" else None
    # A model file's cell computes its loss term itself: that use is the loss line, and what
    # it pulls back starts from the seed dL/dL_t instead of an adjoint of its own.
    own_loss = None if logits is not None else next(u for u in uses if u.out is out)
    future_loss = None
    if logits is not None:
        Y = _labels_at(spec, 0)
        loss_value = RULES[spec.loss].forward(logits, Y=Y, m=None)
    else:
        loss_value = own_loss.value
        uses = [u for u in uses if u is not own_loss]
        future_loss = next((u for u in future if u.out.base == own_loss.out.base), None)
        future = [u for u in future if u is not future_loss]
    loss_line = Line(Indexed.make("L", (), 0), (Term(loss_value),), "loss", "L")

    nodes = [u.out for u in uses]
    taken = _taken(spec, uses)
    predictions: dict[str, tuple[Indexed, MatExpr]] = {}

    def named(g: MatExpr) -> MatExpr:
        return _name_predictions(g, nodes, predictions, taken)

    adjoints: list[Line] = []
    for use in reversed(uses):
        n = use.out
        terms: list[Term] = []
        if n is logits:
            g = RULES[spec.loss].vjp(0, seed, None, n, Y=Y, m=None)
            terms.append(Term(named(g), "loss"))
        if own_loss is not None:
            for i in _positions(own_loss, n):
                terms.append(Term(named(_vjp(own_loss, i, seed)), "loss"))
        for source, group in (("step", uses), ("future", future)):
            for consumer in group:
                for i in _positions(consumer, n):
                    g = _vjp(consumer, i, _adjoint(consumer.out))
                    terms.append(Term(named(g), source))
        if own_loss is not None and future_loss is not None:
            for i in _positions(future_loss, n):  # the next step's loss term reads a state
                terms.append(Term(named(_vjp(future_loss, i, seed)), "future"))
        if terms:
            adjoints.append(Line(_adjoint(n), tuple(terms), "adjoint", n.base))

    model = [Line(u.out, (Term(u.value),), "model", u.out.base) for u in uses]
    model += [
        Line(named_, (Term(value),), "model", base) for base, (named_, value) in predictions.items()
    ]
    all_uses = uses if own_loss is None else [*uses, own_loss]

    gradients: dict[str, Line] = {}
    for name, symbol in params.items():
        terms = tuple(
            Term(_vjp(u, i, _loss_or_adjoint(u, own_loss, seed)))
            for u in all_uses
            for i in _positions(u, symbol)
        )
        if terms:
            gradients[name] = Line(
                Symbol("d" + name, symbol.shape, adjoint=True), terms, "gradient", name, True
            )
    boundaries = []
    inputs = {i.name: i for i in spec.inputs}
    later = future if own_loss is None or future_loss is None else [*future, future_loss]
    for name, current, shape in zip(spec.states, state, shapes):
        initial = inputs.get(spec.initial_of(name) or "")
        start = Indexed.make(name, shape, 0, anchor=None)
        value = Symbol(initial.name, initial.shape) if initial else Constant(0)
        boundaries.append(Line(start, (Term(value),), "boundary", name))
        if initial is None or initial.name in params:
            continue
        terms = tuple(
            Term(_at(_vjp(u, i, _loss_or_adjoint(u, future_loss, seed)), 0))
            for u in later
            for i in _positions(u, current)
        )
        gradients[initial.name] = Line(
            Symbol("d" + initial.name, initial.shape, adjoint=True), terms, "gradient", initial.name
        )
    for item in spec.sequences:
        x_t = x[item.name] if isinstance(x, dict) else x
        terms = tuple(
            Term(_vjp(u, i, _loss_or_adjoint(u, own_loss, seed)))
            for u in all_uses
            for i in _positions(u, x_t)
        )
        target = Indexed.make("d" + item.name, x_t.shape, 0, adjoint=True)
        gradients[item.name] = Line(target, terms, "gradient", item.name)
    # An adjoint read from step t+1 is 0 after the last step.
    ends = {
        s.base: s
        for line in adjoints
        for term in line.terms
        if term.source == "future"
        for s in term.expr.symbols()
        if isinstance(s, Indexed) and s.relative and s.offset == 1 and s.adjoint
    }
    for base, s in ends.items():
        end = Indexed.make(base, s.shape, 1, anchor="T", adjoint=True)
        boundaries.append(Line(end, (Term(Constant(0)),), "boundary", base))
    return MatrixForm(
        spec=spec,
        convention="row",
        model=tuple(model),
        loss=loss_line,
        boundaries=tuple(boundaries),
        adjoints=tuple(adjoints),
        gradients=gradients,
        seed=seed,
        states=spec.states,
        predictions=tuple(predictions),
    )


def _loss_or_adjoint(use: _Use, loss: _Use | None, seed: MatExpr) -> MatExpr:
    """What a use pulls back: the seed dL/dL_t for a model file's loss term, else the adjoint
    of what it computes."""
    return seed if use is loss else _adjoint(use.out)


def _at(expr: MatExpr, step: int) -> MatExpr:
    """The expression with t := step: every relative per-step symbol made absolute."""
    return rebuild(expr, lambda n: n.at(step) if isinstance(n, Indexed) and n.relative else None)


# -- numbers --------------------------------------------------------------------------------------
def _forward(form: MatrixForm, point: Mapping[str, np.ndarray], dims: Dims):
    """The model lines at every step: (values by (base, step), the inputs that take no step,
    an evaluator of an expression at a step given adjoints), native convention."""
    spec, T = form.spec, dims.T
    sizes = dims.sizes
    env: dict[tuple[str, int], np.ndarray] = {}
    plain: dict[str, np.ndarray] = {}
    for item in spec.inputs:
        value = np.asarray(point[item.name])
        if item.role in PER_STEP:
            for k in range(1, T + 1):
                env[(item.name, k)] = form.convert(value[k - 1])
        else:
            plain[item.name] = form.convert(value)
    for name in form.states:
        start = plain.get(spec.initial_of(name) or "")
        zero = np.zeros(size_in(spec.state_shape(name), sizes))
        env[(name, 0)] = start if start is not None else form.convert(zero)

    def ev(expr: MatExpr, t: int, adj: Mapping[tuple[str, int], np.ndarray]) -> np.ndarray:
        bindings: dict[str, Any] = dict(sizes)
        for s in expr.symbols():
            if isinstance(s, Indexed):
                step = s.offset + (t if s.relative else 0)
                key = (s.base, step)
                if key in env:
                    bindings[s.name] = env[key]
                elif key in adj:
                    bindings[s.name] = adj[key]
                elif s.adjoint:  # an adjoint past the last step (or the window)
                    bindings[s.name] = np.zeros(size_in(s.shape, sizes))
                else:
                    raise InternalError(f"{s.name} at t={t} has no value")
            elif s.name in plain:
                bindings[s.name] = plain[s.name]
        return np.asarray(expr.evaluate(bindings), dtype=float)

    for k in range(1, T + 1):
        for line in form.model:
            env[(line.target.base, k)] = ev(line.expr, k, {})
    return env, plain, ev


def _from_loss(term: Term) -> bool:
    """A gradient's term that reads no adjoint: a use inside the loss term itself (a model
    file's loss reading a weight), pulled back from the seed dL/dL_t."""
    return not any(getattr(s, "adjoint", False) for s in term.expr.symbols())


def _backward(form: MatrixForm, ev, dims: Dims, steps, losses=None, seeds=None) -> dict:
    """The adjoints at `steps` (from the last down), pulled back from the loss terms at
    `losses` (None: every step) and from `seeds` {(base, step): array} (a Jacobian's row)."""
    seeds = seeds or {}
    T = dims.T
    lined = {line.target.base for line in form.adjoints}
    adj: dict[tuple[str, int], np.ndarray] = {}
    for k in steps:
        for (base, step), value in seeds.items():  # a node no rule pulls back (yhat)
            if step == k and base not in lined:
                adj[(base, k)] = value
        for line in form.adjoints:
            # A future term is linear in an adjoint at step k+1, zero after the last step
            # (where the step's other quantities do not exist either).
            terms = [
                t
                for t in line.terms
                if not (t.source == "loss" and losses is not None and k not in losses)
                and not (t.source == "future" and k == T)
            ]
            value = sum(
                (ev(t.expr, k, adj) for t in terms),
                np.zeros(size_in(line.target.shape, dims.sizes)),
            )
            key = (line.target.base, k)
            adj[key] = value + seeds[key] if key in seeds else value
    return adj


def _gradient_at(line: Line, k: int, ev, adj, losses=None) -> np.ndarray | None:
    """A gradient line's value at step k: its terms, a term inside the loss term only when
    that loss term is pulled back."""
    terms = [
        t for t in line.terms if not (_from_loss(t) and losses is not None and k not in losses)
    ]
    if not terms:
        return None
    return reduce(add, (ev(t.expr, k, adj) for t in terms))


def _before(losses: set | None) -> set | None:
    """The loss terms as the steps before them (dh0's line is written at t = 0)."""
    return None if losses is None else {s - 1 for s in losses}


@dataclass
class Pullback:
    """What flows back from some loss terms or from seeds: adjoints by (base, step), each
    parameter's gradient (and its share by (name, step)), per-step inputs' gradients by
    (name, step), the initial states' gradients; native convention."""

    adjoints: dict
    gradients: dict
    partials: dict


def pullback(
    form: MatrixForm,
    point: Mapping[str, np.ndarray],
    dims: Dims,
    *,
    losses: Iterable[int] | None = None,
    seeds: Mapping[tuple[str, int], np.ndarray] | None = None,
    steps: Iterable[int] | None = None,
) -> Pullback:
    """The reverse pass from the loss terms at `losses` (None: all; empty: none) and from
    `seeds` (the adjoint given to a node at a step: a Jacobian's row), over `steps` (default
    every step; a single step gives the immediate partials of that step alone)."""
    _, _, ev = _forward(form, point, dims)
    losses = None if losses is None else set(losses)
    steps = list(range(dims.T, 0, -1)) if steps is None else sorted(set(steps), reverse=True)
    adj = _backward(form, ev, dims, steps, losses, dict(seeds or {}))
    gradients: dict = {}
    partials: dict = {}
    for name, line in form.gradients.items():
        if line.summed:
            total = None
            for k in steps:
                part = _gradient_at(line, k, ev, adj, losses)
                if part is None:
                    continue
                partials[(name, k)] = part
                total = part if total is None else total + part
            if total is not None:
                gradients[name] = total
        elif isinstance(line.target, Indexed):  # dx[t]
            for k in steps:
                part = _gradient_at(line, k, ev, adj, losses)
                if part is not None:
                    gradients[(name, k)] = part
        elif 1 in steps:  # dh0: from the adjoints (and a loss term reading it) at step 1
            part = _gradient_at(line, 0, ev, adj, _before(losses))
            if part is not None:
                gradients[name] = part
    return Pullback(adj, gradients, partials)


def _evaluate(
    form: MatrixForm, point: Mapping[str, np.ndarray], dims: Dims, lags: bool = False
) -> Evaluation:
    spec, T = form.spec, dims.T
    sizes = dims.sizes
    env, plain, ev = _forward(form, point, dims)
    loss = sum(float(ev(form.loss.expr, k, {})) for k in range(1, T + 1))
    if spec.options.reduction == "mean":
        loss /= dims.N * T

    K = form.truncate
    windows = (
        [(None, range(T, 0, -1))]
        if (K is None or K >= T - 1) and not lags
        else [(s, range(s, max(1, s - (T if K is None else K)) - 1, -1)) for s in range(1, T + 1)]
    )
    by_lag: dict[tuple[str, int], np.ndarray] = {}
    values: dict[tuple[str, int], np.ndarray] = {}
    gradients: dict[str, np.ndarray] = {}
    partials: dict[tuple[str, int], np.ndarray] = {}

    def accumulate(store: dict, key, value) -> None:
        store[key] = store[key] + value if key in store else value

    for s, steps in windows:
        losses = None if s is None else {s}
        adj = _backward(form, ev, dims, steps, losses)
        for key, value in adj.items():
            accumulate(values, key, value)
        for name, line in form.gradients.items():
            if line.summed:
                for k in steps:
                    part = _gradient_at(line, k, ev, adj, losses)
                    if part is None:
                        continue
                    accumulate(partials, (name, k), part)
                    accumulate(gradients, name, part)
                    if lags:
                        accumulate(by_lag, (name, s - k), part)
            elif isinstance(line.target, Indexed):  # dx[t]
                for k in steps:
                    part = _gradient_at(line, k, ev, adj, losses)
                    if part is not None:
                        accumulate(gradients, (name, k), part)
            elif 1 in steps:  # dh0: from the adjoints (and a loss term reading it) at step 1
                part = _gradient_at(line, 0, ev, adj, _before(losses))
                if part is not None:
                    accumulate(gradients, name, part)
    out: dict[str, np.ndarray] = {}
    for name, line in form.gradients.items():
        if isinstance(line.target, Indexed):
            zero = np.zeros(size_in(line.target.shape, sizes))
            stack = [gradients.get((name, k), zero) for k in range(1, T + 1)]
            out[name] = np.stack([form.unconvert(a, row_ndim=2) for a in stack])
        else:
            row_ndim = len(spec.input(name).shape)
            zero = np.zeros(size_in(line.target.shape, sizes))
            out[name] = form.unconvert(gradients.get(name, zero), row_ndim=row_ndim)
    row = {
        key: form.unconvert(value, row_ndim=value.ndim)
        for key, value in {**env, **values}.items()
        if value.dtype.kind == "f"
    }
    parts = {
        key: form.unconvert(v, row_ndim=len(spec.input(key[0]).shape))
        for key, v in partials.items()
    }
    bindings: dict[str, Any] = {**sizes, **plain}
    for (base, k), value in {**env, **values}.items():
        bindings[Indexed.make(base, (), k, anchor=None).name] = value
    lagged = {
        key: form.unconvert(v, row_ndim=len(spec.input(key[0]).shape)) for key, v in by_lag.items()
    }
    return Evaluation(row, out, parts, loss, bindings, lagged)


# -- one path at a time -------------------------------------------------------------------------
@dataclass(frozen=True)
class PathTerm:
    """One path of the unrolled graph and its term: the product of the local Jacobians along
    it, applied as VJPs from the loss down (a matrix of the parameter's shape)."""

    path: Any  # derivatives.Path
    #: (child, parent) node names of each local Jacobian d child / d parent, loss first.
    jacobians: tuple[tuple[str, str], ...]
    expr: MatExpr


def node_expressions(graph: Any) -> tuple[dict[str, MatExpr | None], dict[str, tuple]]:
    """Every node of the unrolled graph as a matrix expression (per-step quantities at fixed
    steps: `a[2]`; None for the softmax shift), and for each node with a rule what its VJPs
    need: (node, inputs, consts, params, out)."""
    spec = graph.spec
    letters = {i.name: i.shape for i in spec.inputs}
    exprs: dict[str, MatExpr | None] = {}
    uses: dict[str, tuple] = {}
    seed_factor = 1 / (Symbol("N") * Symbol("T"))
    for node in graph:
        base, step = _base_of(node.name), node.step
        if node.rule is None:
            exprs[node.name] = _leaf(spec, node, base, step, letters)
            continue
        if node.rule == "rowmax":  # the softmax shift: no value in the matrix form
            exprs[node.name] = None
            continue
        inputs = [None if a is None else exprs[a] for a in node.arguments]
        consts = {k: exprs[v] for k, v in node.consts}
        params = dict(node.params)
        for key in params:
            if key.startswith("size_"):  # a size in a model file's formula, as a symbol
                params[key] = Symbol(key[len("size_") :])
        if node.rule == "composite":  # a block of one number: in size names
            params["program"] = _named_numbers(params["program"])
        if node.rule == "scale" and spec.options.reduction == "mean":
            params["factor"] = seed_factor  # the mean's 1/(N T), with N and T as symbols
        if node.rule == "copy":
            exprs[node.name] = inputs[0]
            uses[node.name] = (node, inputs, consts, params, inputs[0])
            continue
        value = RULES[node.rule].forward(*inputs, **consts, **params)
        if step is None:
            out: MatExpr = Symbol(node.name, value.shape)
        else:
            out = Indexed.make(base, value.shape, step, anchor=None)
        exprs[node.name] = out
        uses[node.name] = (node, inputs, consts, params, out)
    return exprs, uses


def _named_numbers(program: tuple) -> tuple:
    """A composite's program with each block of one number (`graph.Filled`, sized at the
    graph's sizes) as a constant of its shape in size names."""
    from .graph import Filled

    def named(ref):
        if isinstance(ref, tuple) and len(ref) == 2 and isinstance(ref[1], Filled):
            return (ref[0], Constant(ref[1].value, ref[1].named_shape))
        return ref

    return tuple(
        replace(
            op,
            args=tuple(named(a) for a in op.args),
            params=tuple((k, named(v)) for k, v in op.params),
        )
        for op in program
    )


def local_vjp(uses: Mapping[str, tuple], child: str, parent: str, g: MatExpr) -> MatExpr:
    """g pulled back through one edge parent -> child of the graph: the local Jacobian
    d child / d parent applied as a VJP, in matrix form."""
    node, inputs, consts, params, out = uses[child]
    index = node.arguments.index(parent)
    return RULES[node.rule].vjp(index, g, out, *inputs, **consts, **params)


def path_terms(graph: Any, paths: Iterable[Any], convention: str = "row") -> list[PathTerm]:
    """The matrix form of each path's contribution, by the rule table's VJPs along the path
    on the unrolled graph's own nodes (per-step quantities at fixed steps: `a[2]`)."""
    exprs, uses = node_expressions(graph)
    spec = graph.spec
    h_prev = tuple(Indexed.make(name, spec.state_shape(name), -1) for name in spec.states)
    taken = _taken(spec, _run_cell(spec, _letters(spec), h_prev, 0)[0])
    terms = []
    for path in paths:
        g: MatExpr = Constant(1)
        jacobians = []
        for child, parent in reversed(list(zip(path.nodes[1:], path.nodes[:-1]))):
            g = local_vjp(uses, child, parent, g)
            jacobians.append((child, parent))
        steps = [exprs[n] for n in path.nodes if isinstance(exprs.get(n), Indexed)]
        expr = _name_predictions(g, steps, {}, taken)
        if convention == "column":
            expr = to_columns(expr)
        terms.append(PathTerm(path, tuple(jacobians), expr))
    return terms


def _base_of(name: str) -> str:
    head, _, tail = name.rpartition("_")
    return head if head and tail.isdigit() else name


def _leaf(spec: ModelSpec, node: Any, base: str, step: int | None, letters) -> MatExpr:
    if node.kind == "parameter":
        return Symbol(node.name, letters[node.name])
    for state in spec.states:  # an initial state: the state at step 0
        if spec.initial_of(state) == node.name:
            return Indexed.make(state, spec.state_shape(state), 0, anchor=None)
    per_step = {i.name: i for i in spec.per_step}
    if step is not None and base in per_step and not (spec.loss == "softmax_ce" and base == "Y"):
        return _step_input_at(per_step[base], step, None)
    if base == "Y":
        return _labels_at(spec, step, None)
    raise InternalError(f"the graph's leaf {node.name} has no matrix form")
