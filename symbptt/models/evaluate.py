"""A model file's forward equations evaluated directly, with NumPy (or PyTorch), and the loss's
derivatives by finite differences: the independent truth a file model is checked against.

Nothing here uses the rule table, the cell compiler or the engine: each rule of the file is
turned into a small Python closure over plain array operations (`@`, `+`, `tanh`, a stable
softmax, ...) and run step by step. `finite_differences` differentiates that loss with the
fourth-order central difference; `torch_gradients` (when PyTorch is installed) lets autograd
differentiate the same evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from ..formula.ast import Binary, Call, Index, Name, Neg, Num, Power, Step, Transposed
from . import sizes as size_text
from .modelfile import ModelFile

__all__ = ["Evaluator", "finite_differences", "torch_gradients", "FD_STEP"]

#: The step of the fourth-order central difference: its truncation error is O(h^4 f^(5)),
#: its rounding error about eps |f| / h, both near 1e-10 of the loss at this step.
FD_STEP = 1e-3


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
            return lambda env: xp.maximum0(f(env))
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


def finite_differences(
    evaluator: Evaluator,
    arrays: Mapping[str, np.ndarray],
    sizes: Mapping[str, int],
    T: int,
    names: list[str],
    h: float = FD_STEP,
) -> dict[str, np.ndarray]:
    """dL/d(each named array), entry by entry, by the fourth-order central difference
    (-f(x+2h) + 8 f(x+h) - 8 f(x-h) + f(x-2h)) / 12h."""
    work = {k: np.array(v, copy=True) for k, v in arrays.items()}
    out = {}
    for name in names:
        x = work[name]
        grad = np.zeros(x.shape)
        for index in np.ndindex(*x.shape):
            keep = x[index]
            values = []
            for step in (2 * h, h, -h, -2 * h):
                x[index] = keep + step
                values.append(float(evaluator.loss(work, sizes, T)))
            x[index] = keep
            grad[index] = (-values[0] + 8 * values[1] - 8 * values[2] + values[3]) / (12 * h)
        out[name] = grad
    return out


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
