"""Rules evaluated step by step: sums and products over another step index than t
(`\\sum_{k=1}^{t}`, `\\prod_{j=k+1}^{t}`, the path-sum form of Pascanu et al.), Jacobians
`\\partial h_{t+1} / \\partial h_t` and the share of one loss term `\\partial L_t / \\partial X`.

Such a right-hand side has no one matrix expression for a general step t: it is written out
for each concrete step (every index a number, every sum and product expanded) and built then.
A Jacobian `jac(Y, X)` is the matrix of the total derivatives of Y's entries with respect to
X's through every path of the unrolled graph (for one example: the entries of a row or a
column); `jacplus(Y, X)` is the immediate partial (the uses at Y's own step only); `grad(L[s],
X)` is the share of loss term s in dL/dX. Their values come from reverse passes of the model's
own matrix form seeded at Y (or at loss term s alone), never from differences.
"""

from __future__ import annotations

import zlib
from dataclasses import fields, replace

import numpy as np

from ..engine.matexpr import size_in
from ..formula.ast import Binary, Call, Index, Num, Over
from ..formula.reader import FormulaSyntaxError

__all__ = ["DERIVED", "needs_steps", "expand", "Deferred", "derived_value", "RANGE_STEP"]

#: Calls whose value comes from a reverse pass, not from an expression.
DERIVED = ("jac", "jacplus", "grad")
#: The step a rule written with other step indices is shaped at (t = 2 of T = 3).
RANGE_STEP = (2, 3)


def needs_steps(node) -> bool:
    """The tree sums or multiplies over another index, or names a derived quantity."""
    if isinstance(node, Over):
        return True
    if isinstance(node, Call) and node.function in (*DERIVED, "eye_like"):
        return True
    if isinstance(node, Index):
        return node.anchor not in (None, "t", "T")
    if not hasattr(node, "__dataclass_fields__"):
        return False
    for f in fields(node):
        value = getattr(node, f.name)
        items = value if isinstance(value, tuple) else (value,)
        if any(needs_steps(v) for v in items):
            return True
    return False


class OutOfRange(KeyError):
    """A derivative of or by a quantity at a step that does not exist (h[T+1])."""


class EmptyRange(FormulaSyntaxError):
    """A sum's or a product's range that runs backwards (not an empty one)."""


def free_letters(node, bound: frozenset = frozenset()) -> list[str]:
    """The step letters a tree uses that no sum or product of it binds (besides t and T)."""
    found: list[str] = []

    def go(n, bound):
        if isinstance(n, Index):
            if n.anchor not in (None, "t", "T") and n.anchor not in bound:
                if n.anchor not in found:
                    found.append(n.anchor)
            return
        if isinstance(n, Over):
            go(n.lo, bound)
            go(n.hi, bound)
            go(n.body, bound | {n.var})
            return
        if not hasattr(n, "__dataclass_fields__"):
            return
        for f in fields(n):
            value = getattr(n, f.name)
            for v in value if isinstance(value, tuple) else (value,):
                go(v, bound)

    go(node, frozenset(bound))
    return found


def _step(index: Index, env: dict, T: int) -> int:
    if index.anchor is None:
        return index.offset
    if index.anchor == "T":
        return T + index.offset
    if index.anchor not in env:
        raise FormulaSyntaxError(f"the step index {index.anchor} is not bound by a sum")
    return env[index.anchor] + index.offset


def expand(node, t: int | None, T: int, *, example: bool = False, env: dict | None = None):
    """The tree at step t of T: every index a number, every sum and product written out (a
    product from its largest index down, as the chain rule orders Jacobians). With `example`,
    each sum and product keeps one term (the tree's shape, whatever its range)."""
    env = dict(env or {})
    if t is not None:
        env.setdefault("t", t)

    def go(n):
        if isinstance(n, Index):
            return Index(None, _step(n, env, T))
        if isinstance(n, Over):
            lo, hi = _step(n.lo, env, T), _step(n.hi, env, T)
            if lo > hi + 1 and not example:  # k > t in a product over j = k+1..t
                raise EmptyRange(f"the range {n.var} = {lo}..{hi} runs backwards")
            ks = [lo] if example else list(range(lo, hi + 1))
            if n.op == "prod":  # produp: the other order, from the smallest index up
                ks = ks[::-1]
            terms = [expand(n.body, None, T, example=example, env={**env, n.var: k}) for k in ks]
            if not terms:
                if n.op == "sum":
                    return Num(0)
                # The empty product: the identity, as large as a factor would be.
                factor = expand(n.body, None, T, example=True, env={**env, n.var: lo})
                return Call("eye_like", (factor,))
            out = terms[0]
            for term in terms[1:]:
                out = Binary("+" if n.op == "sum" else "@", out, term)
            return out
        if not hasattr(n, "__dataclass_fields__"):
            return n
        changes = {}
        for f in fields(n):
            value = getattr(n, f.name)
            if isinstance(value, tuple):
                changes[f.name] = tuple(go(v) for v in value)
            elif hasattr(value, "__dataclass_fields__"):
                changes[f.name] = go(value)
        return replace(n, **changes) if changes else n

    return go(node)


def ascending(node):
    """The tree with each product read from its smallest index up (the other order a
    product of matrices can mean when its author does not say)."""
    if isinstance(node, Over) and node.op == "prod":
        return replace(node, op="produp", body=ascending(node.body))
    if not hasattr(node, "__dataclass_fields__"):
        return node
    changes = {}
    for f in fields(node):
        value = getattr(node, f.name)
        if isinstance(value, tuple):
            changes[f.name] = tuple(ascending(v) for v in value)
        elif hasattr(value, "__dataclass_fields__"):
            changes[f.name] = ascending(value)
    return replace(node, **changes) if changes else node


def has_product(node) -> bool:
    if isinstance(node, Over) and node.op in ("prod", "produp"):
        return True
    if not hasattr(node, "__dataclass_fields__"):
        return False
    for f in fields(node):
        value = getattr(node, f.name)
        items = value if isinstance(value, tuple) else (value,)
        if any(has_product(v) for v in items):
            return True
    return False


class Deferred:
    """A right-hand side built at each concrete step (`at(t, world)`); its shape and symbols
    are those of one representative expansion."""

    def __init__(self, node, scope, summed: bool = False) -> None:
        self.node, self.scope = node, scope
        t, T = RANGE_STEP
        env = {letter: t for letter in free_letters(node)}
        self.example = scope.build_static(expand(node, t, T, example=True, env=env))
        self.shape = self.example.shape

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def symbols(self):
        return self.example.symbols()

    def at(self, t: int | None, world, env: dict | None = None):
        """The matrix expression at step t of the world (and the other free step letters at
        `env`), its derived quantities computed."""
        expr = self.scope.build_static(expand(self.node, t, world.dims.T, env=env))
        for s in expr.symbols():
            key = self.scope.derived.get(s.name)
            if key is None or s.name in world.bindings:
                continue
            try:
                world.bindings[s.name] = derived_value(world, key, self.scope)
            except OutOfRange:
                # dh[T+1] @ jac(h[T+1], h[T]): a quantity after the last step, two different
                # random fills (a rule is right only if it does not depend on them)
                shape = size_in(s.shape, world.dims.sizes)
                rng = np.random.default_rng(zlib.crc32(s.name.encode()))
                world.bindings[s.name] = rng.standard_normal(shape)
                world.ghosts[s.name] = rng.standard_normal(shape)
        return expr


def derived_value(world, key: tuple, scope) -> np.ndarray:
    """The value of a Jacobian, an immediate partial, a loss term's share or an identity, in
    the world's convention."""
    kind = key[0]
    if kind == "eye":
        from ..engine.matexpr import size_in

        (n,) = size_in((key[1],), world.dims.sizes)
        return np.eye(n)
    if kind == "grad":
        _, step, wrt = key
        if step is None:  # dL/dL_s = the seed: 1 for a sum, 1/(N T) for a mean
            return np.asarray(_seed(world))
        if not 1 <= step <= world.dims.T:
            raise OutOfRange(f"L[{step}] is no loss term of 1..T")
        pulled = world.pull(losses=(step,))
        return _wrt(world, pulled, wrt, scope)
    _, of, wrt = key
    base, step = of
    if not 1 <= step <= world.dims.T:
        raise OutOfRange(f"{base}[{step}] is no step of 1..T")
    value = np.asarray(world.bindings[f"{base}[{step}]"])
    rows = []
    steps = (step,) if kind == "jacplus" else None
    for i in range(value.size):
        pulled = world.pull(losses=(), seed=(of, i), steps=steps)
        rows.append(np.ravel(_wrt(world, pulled, wrt, scope)))
    return np.array(rows)


from ..engine.matexpr import MatExpr, _node, _Unary  # noqa: E402


@_node
class Contracted(_Unary):
    """g @ dY/dP for a matrix P (a tensor written as a factor, as in Pascanu et al.'s
    \\partial^+ h_k / \\partial W): the vector g pulled back through Y's dependence on P."""

    key: tuple = ()

    def _compute(self, args, bindings, sizes):
        return bindings[CONTRACT](self.key, args[0])


#: The world's contraction function, bound among its values.
CONTRACT = "__contract__"


def contract(world, key: tuple, seed: np.ndarray, scope) -> np.ndarray:
    """sum_i g_i dY_i/dP: the unit pulls of Y (cached) weighted by g's entries."""
    kind, of, wrt = key
    base, step = of
    if not 1 <= step <= world.dims.T:
        raise OutOfRange(f"{base}[{step}] is no step of 1..T")
    g = np.ravel(seed)
    value = np.asarray(world.bindings[f"{base}[{step}]"])
    if g.size != value.size:
        raise ValueError(f"a vector of {g.size} entries times d{base}/d{wrt[0]} ({value.size})")
    steps = (step,) if kind == "jacplus" else None
    total = None
    for i, gi in enumerate(g):
        pulled = world.pull(losses=(), seed=(of, i), steps=steps)
        part = gi * np.asarray(_wrt(world, pulled, wrt, scope))
        total = part if total is None else total + part
    return total


def contracted(left: MatExpr, key: tuple, shape: tuple) -> MatExpr:
    return Contracted(left, tuple(shape), key=key)


def _seed(world) -> float:
    spec = world.form.spec
    if spec.options.reduction == "mean":
        return 1.0 / (world.dims.N * world.dims.T)
    return 1.0


def _wrt(world, pulled, wrt: tuple, scope) -> np.ndarray:
    """What a reverse pass gives for X: a node's adjoint, a per-step input's gradient, a
    parameter's gradient, an initial state's (zero where no path leads)."""
    base, step = wrt
    if step is None:
        value = pulled.gradients.get(base)
        if value is None:
            value = np.zeros_like(np.asarray(world.bindings[base]), dtype=float)
        return value
    if step < 0 or step > world.dims.T:
        raise OutOfRange(f"{base}[{step}] is no step of 0..T")
    if ("d" + base, step) in pulled.adjoints:
        return pulled.adjoints[("d" + base, step)]
    if (base, step) in pulled.gradients:
        return pulled.gradients[(base, step)]
    if step == 0:
        start = world.form.spec.initial_of(base)
        if start and start in pulled.gradients:
            return pulled.gradients[start]
    return np.zeros_like(np.asarray(world.bindings[f"{base}[{step}]"]), dtype=float)
