"""A model file's forward equations evaluated directly, with NumPy (or PyTorch), and the loss's
derivatives by finite differences: the independent truth a file model is checked against.

Nothing here uses the rule table, the cell compiler or the engine: each rule of the file is
turned into a small Python closure over plain array operations (`@`, `+`, `tanh`, a stable
softmax, ...) and run step by step. `differences` differentiates that loss with the
fourth-order central difference, halving the step while the estimates still change (so that a
steep cell, `tanh(20 * a[t])`, is resolved) and with an error estimate per entry, and
shrinking a stencil that straddles a kink of relu; `torch_gradients` (when PyTorch is
installed) lets autograd differentiate the same evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from ..formula.ast import Binary, Call, Index, Name, Neg, Num, Power, Step, Transposed
from . import sizes as size_text
from .modelfile import ModelFile, ModelFileError

__all__ = [
    "Evaluator",
    "diagnose",
    "Differences",
    "differences",
    "finite_differences",
    "torch_gradients",
    "FD_STEP",
]

#: The first step of the fourth-order central difference: its truncation error is
#: O(h^4 f^(5)), its rounding error about eps |f| / h, both near 1e-10 of the loss at this step
#: for the gallery. A steeper loss halves it (`differences`).
FD_STEP = 1e-3
#: At most this many stencils per entry (halvings of the step, or shrinkings past a kink).
FD_STENCILS = 12
#: An entry's estimate is good enough when its error estimate is below this (absolute; the
#: check's tolerance is 1e-6 of max(1, the gradient's largest entry)).
FD_TARGET = 1e-10
#: The loss's own rounding, in units of eps |L| (a sum of many rounded terms).
_ROUNDING = 10.0


@dataclass(frozen=True)
class _Backend:
    """The array operations the evaluation needs, for NumPy or PyTorch arrays."""

    tanh: Callable
    exp: Callable
    log: Callable
    maximum0: Callable
    concat: Callable
    logsumexp: Callable
    eye: Callable
    zeros: Callable
    ids: Callable
    arange: Callable


def _numpy() -> _Backend:
    def logsumexp(o):
        m = o.max(axis=1, keepdims=True)
        return (m + np.log(np.exp(o - m).sum(axis=1, keepdims=True)))[:, 0]

    return _Backend(
        tanh=np.tanh,
        exp=np.exp,
        log=np.log,
        maximum0=lambda a: np.maximum(a, 0.0),
        concat=lambda blocks, axis: np.concatenate(blocks, axis=axis),
        logsumexp=logsumexp,
        eye=lambda n: np.eye(n),
        zeros=lambda shape: np.zeros(shape),
        ids=lambda a: np.asarray(a, dtype=np.int64),
        arange=np.arange,
    )


def _torch() -> _Backend:
    import torch

    return _Backend(
        tanh=torch.tanh,
        exp=torch.exp,
        log=torch.log,
        maximum0=torch.relu,
        concat=lambda blocks, axis: torch.cat(list(blocks), dim=axis),
        logsumexp=lambda o: torch.logsumexp(o, dim=1),
        eye=lambda n: torch.eye(n, dtype=torch.float64),
        zeros=lambda shape: torch.zeros(shape, dtype=torch.float64),
        ids=lambda a: torch.as_tensor(np.asarray(a), dtype=torch.int64),
        arange=torch.arange,
    )


class Evaluator:
    """The loss of a model file at given arrays and sizes, computed from its equations."""

    def __init__(self, model: ModelFile, backend: str = "numpy") -> None:
        self.model = model
        self.xp = _numpy() if backend == "numpy" else _torch()
        #: When a list, every relu argument's sign pattern is appended to it (NumPy only): a
        #: difference stencil whose points differ in it straddles a kink.
        self.signs: list[np.ndarray] | None = None
        self.rules = [(r.name, self._compile(r.expr)) for r in model.rules]
        self.body = self._compile(model.loss.body) if model.loss is not None else None

    def loss(self, arrays: Mapping[str, object], sizes: Mapping[str, int], T: int):
        """L at these inputs (per-step inputs with a leading T axis; a layer's upstream
        gradients under d<output>)."""
        xp, model = self.xp, self.model
        previous = {}
        for b in model.boundaries:
            if b.value is not None:
                previous[b.state] = arrays[b.value]
            else:
                shape = tuple(size_text.value(d, sizes) for d in model.shape(b.state))
                previous[b.state] = xp.zeros(shape)
        total = 0.0
        for t in range(T):
            now: dict[str, object] = {}
            env = _Env(arrays, sizes, t, now, previous, xp)
            for name, f in self.rules:
                now[name] = f(env)
            if self.body is not None:
                total = total + self.body(env)
            else:
                for out in model.outputs:
                    total = total + (arrays[f"g_{out}"][t] * now[out]).sum()
            previous = {s: now[s] for s in model.states}
        if model.loss is not None and model.loss.mean:
            total = total / (sizes["N"] * T)
        return total

    # -- closures
    def _compile(self, node) -> Callable:
        model = self.model
        if isinstance(node, Num):
            value = float(node.value)
            return lambda env: value
        if isinstance(node, Name):
            name = node.name
            if model.declaration(name) is not None:
                return lambda env: env.arrays[name]
            return lambda env: float(env.sizes[name])
        if isinstance(node, Step):
            name = node.name
            d = model.declaration(name)
            if d is not None:
                return lambda env: env.arrays[name][env.t]
            if node.index == Index("t", -1):
                return lambda env: env.previous[name]
            return lambda env: env.now[name]
        if isinstance(node, Neg):
            f = self._compile(node.arg)
            return lambda env: -f(env)
        if isinstance(node, Transposed):
            f = self._compile(node.arg)
            return lambda env: f(env).T
        if isinstance(node, Power):
            f, n = self._compile(node.arg), node.exponent
            return lambda env: f(env) ** n
        if isinstance(node, Binary):
            f, g = self._compile(node.left), self._compile(node.right)
            op = node.op
            if op == "+":
                return lambda env: f(env) + g(env)
            if op == "-":
                return lambda env: f(env) - g(env)
            if op == "*":
                return lambda env: f(env) * g(env)
            if op == "/":
                return lambda env: f(env) / g(env)
            return lambda env: f(env) @ g(env)
        if isinstance(node, Call):
            return self._call(node)
        raise TypeError(f"cannot evaluate {node!r}")

    def _call(self, node: Call) -> Callable:
        name, xp = node.function, self.xp
        if name == "onehot" or name == "cross_entropy":
            return self._ids_call(node)
        args = [self._compile(a) for a in node.args if not isinstance(a, Num)]
        f = args[0]
        if name == "tanh":
            return lambda env: xp.tanh(f(env))
        if name == "sigmoid":
            return lambda env: 1.0 / (1.0 + xp.exp(-f(env)))
        if name == "relu":

            def relu(env):
                a = f(env)
                if self.signs is not None:  # which side of relu's kink each entry is on
                    self.signs.append(np.asarray(a) > 0)
                return xp.maximum0(a)

            return relu
        if name == "exp":
            return lambda env: xp.exp(f(env))
        if name == "log":
            return lambda env: xp.log(f(env))
        if name == "identity":
            return f
        if name == "softmax":

            def softmax(env):
                o = f(env)
                return xp.exp(o - xp.logsumexp(o)[:, None])

            return softmax
        if name == "sum":
            return lambda env: f(env).sum()
        if name == "sum_rows":
            return lambda env: f(env).sum(0)
        if name in ("colblock", "rowblock"):
            k, n = (int(a.value) for a in node.args[1:])
            axis = 1 if name == "colblock" else 0

            def block(env):
                a = f(env)
                width = a.shape[axis if a.ndim > 1 else 0] // n
                where = slice((k - 1) * width, k * width)
                if a.ndim == 1:
                    return a[where]
                return a[:, where] if axis == 1 else a[where]

            return block
        if name in ("hstack", "vstack"):
            axis = 1 if name == "hstack" else 0
            return lambda env: xp.concat([g(env) for g in args], axis)
        raise TypeError(f"cannot evaluate {name}")

    def _ids_call(self, node: Call) -> Callable:
        xp = self.xp
        if node.function == "onehot":
            ids_node = node.args[0]
            bound = self.model.declaration(ids_node.name).bound
            name = ids_node.name
            return lambda env: xp.eye(size_text.value(bound, env.sizes))[
                xp.ids(env.arrays[name][env.t])
            ]
        logits = self._compile(node.args[0])
        label = node.args[1]
        name = label.args[0].name if isinstance(label, Call) else label.name

        def cross_entropy(env):
            o = logits(env)
            ids = xp.ids(env.arrays[name][env.t])
            rows = xp.arange(o.shape[0])
            return (xp.logsumexp(o) - o[rows, ids]).sum()

        return cross_entropy


@dataclass
class _Env:
    arrays: Mapping[str, object]
    sizes: Mapping[str, int]
    t: int
    now: dict
    previous: dict
    xp: _Backend


@dataclass
class Differences:
    """Finite differences of a loss, per named array: the estimate, an estimate of its
    absolute error (inf where none could be made), and the entries whose every stencil
    straddled a kink of relu (their estimate means nothing)."""

    values: dict[str, np.ndarray]
    errors: dict[str, np.ndarray]
    kinks: dict[str, np.ndarray]


def differences(
    evaluator: Evaluator,
    arrays: Mapping[str, np.ndarray],
    sizes: Mapping[str, int],
    T: int,
    names: list[str],
    h: float = FD_STEP,
) -> Differences:
    """dL/d(each named array), entry by entry, by the fourth-order central difference
    (-f(x+2h) + 8 f(x+h) - 8 f(x-h) + f(x-2h)) / 12h, with an error estimate.

    The step is halved from `h` until two successive estimates agree within FD_TARGET (their
    difference, about 15 times the finer one's truncation error, plus the rounding error
    eps |L| / h, is the error estimate; the best estimate is kept). A stencil whose points
    put a relu argument on different sides of 0 straddles a kink: it is discarded and the
    step shrunk eightfold; an entry with no clean stencil is marked a kink."""
    work = {k: np.array(v, copy=True) for k, v in arrays.items()}
    loss, center = _signed_loss(evaluator, work, sizes, T)
    rounding = _ROUNDING * np.finfo(float).eps * max(1.0, abs(loss)) * 18 / 12
    values, errors, kinks = {}, {}, {}
    for name in names:
        x = work[name]
        value, error, kink = np.zeros(x.shape), np.full(x.shape, np.inf), np.zeros(x.shape, bool)
        for index in np.ndindex(*x.shape):
            step, previous, clean = h, None, False
            for _ in range(FD_STENCILS):
                estimate, crossed = _stencil(evaluator, work, name, index, step, sizes, T, center)
                if crossed:  # a kink inside the stencil: a smaller one
                    previous, step = None, step / 8
                    continue
                if not clean:
                    value[index], clean = estimate, True
                if previous is not None:
                    e = abs(estimate - previous) + rounding / step
                    if e < error[index]:
                        value[index], error[index] = estimate, e
                    if e <= FD_TARGET or e > 100 * error[index]:
                        break  # good enough, or rounding has taken over
                previous, step = estimate, step / 2
            kink[index] = not clean
        values[name], errors[name], kinks[name] = value, error, kink
    return Differences(values, errors, kinks)


def _stencil(evaluator, work, name, index, step, sizes, T, center) -> tuple[float, bool]:
    """The fourth-order difference of one entry at one step, and whether its points put a
    relu argument on another side of 0 than the center does."""
    x = work[name]
    keep = x[index]
    f, crossed = [], False
    try:
        for offset in (2 * step, step, -step, -2 * step):
            x[index] = keep + offset
            loss, signs = _signed_loss(evaluator, work, sizes, T)
            f.append(loss)
            crossed = crossed or not _same_signs(signs, center)
    finally:
        x[index] = keep
    return (-f[0] + 8 * f[1] - 8 * f[2] + f[3]) / (12 * step), crossed


def _signed_loss(evaluator: Evaluator, arrays, sizes, T) -> tuple[float, list[np.ndarray]]:
    """The loss, and the sign pattern of every relu argument on the way."""
    evaluator.signs = []
    try:
        with np.errstate(all="ignore"):  # a loss that is no number there: no estimate, said
            return float(evaluator.loss(arrays, sizes, T)), evaluator.signs
    finally:
        evaluator.signs = None


def _same_signs(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def diagnose(
    model: ModelFile, arrays: Mapping[str, np.ndarray], sizes: Mapping[str, int], T: int
) -> ModelFileError | None:
    """Where the file's equations stop being numbers at this point: the first rule (in the
    order of the steps) with an entry that is not a finite number, and in it the innermost
    operation that makes one from finite operands, as a ModelFileError at its line and column;
    None when every value is finite."""
    evaluator = Evaluator(model)
    previous = {}
    for b in model.boundaries:
        if b.value is not None:
            previous[b.state] = np.asarray(arrays[b.value], dtype=float)
        else:
            shape = tuple(size_text.value(d, sizes) for d in model.shape(b.state))
            previous[b.state] = np.zeros(shape)
    at = ", ".join(f"{k}={v}" for k, v in {**sizes, "T": T}.items())
    with np.errstate(all="ignore"):
        for t in range(T):
            now: dict[str, object] = {}
            env = _Env(arrays, sizes, t, now, previous, evaluator.xp)
            lines = [(r.name, r.expr, r.place) for r in model.rules]
            if model.loss is not None:
                lines.append(("L", model.loss.body, model.loss.place))
            for name, expr, place in lines:
                value = evaluator._compile(expr)(env)
                if not np.all(np.isfinite(value)):
                    node, what = _culprit(evaluator, expr, env)
                    return place.error(
                        f"{what} at step {t + 1} of a random point ({at}), so "
                        f"{name}{'' if name == 'L' else '[t]'} is not a number there: inputs "
                        "are drawn around 0, and the equations must have a value near there",
                        getattr(node, "at", 0),
                    )
                now[name] = value
            previous = {s: now[s] for s in model.states}
    return None


def _culprit(evaluator: Evaluator, expr, env) -> tuple[object, str]:
    """The innermost operation of `expr` whose value is not finite while its operands are,
    and what it does there."""
    from .modelfile import _walk

    nodes = list(_walk(expr))[::-1]  # operands before what uses them, roughly
    for node in nodes:
        value = np.asarray(evaluator._compile(node)(env), dtype=float)
        if np.all(np.isfinite(value)):
            continue
        kids = _operands(node)
        values = [np.asarray(evaluator._compile(k)(env), dtype=float) for k in kids]
        if not all(np.all(np.isfinite(v)) for v in values):
            continue
        if isinstance(node, Call) and node.function == "log":
            return node, f"log of a number <= 0 ({values[0].min():.3g})"
        if isinstance(node, Call) and node.function == "exp":
            return node, f"exp of {values[0].max():.3g} overflows"
        if isinstance(node, Binary) and node.op == "/":
            return node, "a division by 0"
        if isinstance(node, Power) and node.exponent < 0:
            return node, f"a power {node.exponent} of 0"
        return node, "a value too large for a float"
    return expr, "a value that is not a number"


def _operands(node) -> list:
    if isinstance(node, Binary):
        return [node.left, node.right]
    if isinstance(node, (Neg, Transposed, Power)):
        return [node.arg]
    if isinstance(node, Call):
        return [a for a in node.args if not isinstance(a, Num)]
    return []


def finite_differences(
    evaluator: Evaluator,
    arrays: Mapping[str, np.ndarray],
    sizes: Mapping[str, int],
    T: int,
    names: list[str],
    h: float = FD_STEP,
) -> dict[str, np.ndarray]:
    """dL/d(each named array) by `differences`, the estimates alone."""
    return differences(evaluator, arrays, sizes, T, names, h).values


def torch_gradients(
    model: ModelFile,
    arrays: Mapping[str, np.ndarray],
    sizes: Mapping[str, int],
    T: int,
    names: list[str],
) -> dict[str, np.ndarray] | None:
    """dL/d(each named array) by PyTorch's autograd of the same evaluation, in float64; None
    when PyTorch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    tensors = {}
    for k, v in arrays.items():
        v = np.asarray(v)
        if v.dtype.kind == "f":
            tensors[k] = torch.tensor(v, dtype=torch.float64, requires_grad=k in names)
        else:
            tensors[k] = v
    loss = Evaluator(model, "torch").loss(tensors, sizes, T)
    loss.backward()
    return {k: tensors[k].grad.detach().numpy().copy() for k in names}
