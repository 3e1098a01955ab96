"""Auditing a derivation rule by rule: shapes first, then values against the engine.

Each rule is judged on its own: its right-hand side is computed from the *true* values of the
quantities it uses (from the matrix form, itself checked against the element-level engine), so
one wrong line never makes the next one look wrong. Quantities the author defines are computed
from their own rules. Values are compared at small dims first, so that a wrong rule gets the
smallest counterexample, and at dims that separate common mistakes (D != H, H > 1, N != T). A
wrong rule is classified by the first small change that makes it right (a transpose, an index,
a name, a missing term, the order of a product) and gets the correct rule as the engine
derives it, in the author's notation.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from ..engine.matexpr import Indexed, MatExpr, size_in
from ..engine.matrix_form import MatrixForm, _at
from ..formula.ast import (
    Binary,
    Call,
    Index,
    Name,
    Neg,
    Num,
    Over,
    Power,
    Rule,
    Step,
    SumOverT,
    Transposed,
)
from ..models.dims import Dims
from .build import AuditShapeError, AuditUnreadError, Scope
from .concrete import CONTRACT, Deferred, ascending, contract, free_letters, has_product

__all__ = ["Finding", "audit_rules", "unread_finding", "DIMS"]

#: Dims the values are compared at, smallest first (the first failing one is the
#: counterexample): N = 1 and H = 1 hide transposes; D == H hides a W_x/W_h swap.
DIMS = (
    Dims(N=1, D=1, H=1, C=2, T=1),
    Dims(N=1, D=1, H=1, C=2, T=2),
    Dims(N=1, D=1, H=2, C=2, T=2),
    Dims(N=1, D=2, H=2, C=2, T=2),
    Dims(N=2, D=1, H=2, C=3, T=2),
    Dims(N=1, D=2, H=3, C=2, T=3),
    Dims(N=2, D=3, H=2, C=3, T=3),
    Dims(N=3, D=2, H=4, C=5, T=4),
)
RTOL = 1e-8


@dataclass
class Finding:
    """The verdict on one rule."""

    rule: Rule
    #: "right", "wrong", "shape" (it does not type-check), "defines" (a quantity of the
    #: author's, used by other rules), "compensated" (wrong alone, right in the whole).
    status: str
    message: str = ""
    classification: str | None = None
    counterexample: dict | None = None
    correction: str | None = None
    #: Where in the line the problem is (a rule that was not read), 1-based.
    column: int | None = None


def unread_finding(unread) -> Finding:
    """A line the reader could not read, as a finding of its own (status "unread")."""
    rule = Rule("?", None, None, unread.line, unread.source)
    return Finding(rule, "unread", unread.reason, column=unread.column)


@dataclass
class _World:
    """The true values at one dims: bindings of every quantity at every step, native layout."""

    dims: Dims
    bindings: dict
    gradients: dict
    #: Forward quantities after the last step (h[T+1]) do not exist; they are bound to random
    #: values, and a rule is only right if a second draw (these) gives the same result: a
    #: term multiplied by a zero adjoint may name them, a rule that needs them may not.
    ghosts: dict = field(default_factory=dict)
    #: The derivation and the point the world's values come from (for reverse passes
    #: seeded elsewhere than at the loss: Jacobians, one loss term's share).
    form: MatrixForm | None = None
    point: dict | None = None
    pulls: dict = field(default_factory=dict)
    free: object = None

    def pull(self, losses=None, seed=None, steps=None):
        """A reverse pass of the form from the loss terms at `losses` and from a unit seed
        `((base, step), entry)`, over `steps` (cached)."""
        from ..engine.matrix_form import pullback

        key = (None if losses is None else tuple(losses), seed, steps)
        if key not in self.pulls:
            seeds = None
            if seed is not None:
                (base, step), entry = seed
                shape = np.shape(self.bindings[f"{base}[{step}]"])
                unit = np.zeros(int(np.prod(shape)))
                unit[entry] = 1.0
                seeds = {("d" + base, step): unit.reshape(shape)}  # the adjoint's key
            self.pulls[key] = pullback(
                self.form, self.point, self.dims, losses=losses, seeds=seeds, steps=steps
            )
        return self.pulls[key]


def _world(form: MatrixForm, dims: Dims, seed: int, zeros: tuple = ()) -> _World:
    point = form.spec.random_point(dims, seed)
    for name in zeros:  # h_0 = 0 in the author's model, with dL/dh_0 a quantity
        point[name] = np.zeros_like(point[name])
    ev = form.evaluate(point, dims)
    bindings = dict(ev.bindings)
    T = dims.T
    sizes = dims.sizes
    for line in form.adjoints:  # nothing flows back from after the last step (nor step 0)
        shape = size_in(line.target.shape, sizes)
        zero = np.zeros(shape)
        bindings[f"{line.target.base}[{T + 1}]"] = zero
        bindings[f"{line.target.base}[T+1]"] = zero
        bindings.setdefault(f"{line.target.base}[0]", zero)
    rng = np.random.default_rng([seed, T])
    ghosts = {}
    for line in form.model:  # h[T+1], a[T+1], ...: two different random fills
        shape = size_in(line.target.shape, sizes)
        bindings[f"{line.target.base}[{T + 1}]"] = rng.standard_normal(shape)
        ghosts[f"{line.target.base}[{T + 1}]"] = rng.standard_normal(shape)
    native = {}
    for (name, k), value in ev.partials.items():  # dW_h[k]: the share of the use at step k
        native[f"d{name}[{k}]"] = form.convert(value)
        bindings[f"d{name}[{k}]"] = native[f"d{name}[{k}]"]
    for name, value in ev.gradients.items():
        if value.ndim == 3:  # x: per step
            for k in range(1, T + 1):
                native[f"d{name}[{k}]"] = form.convert(value[k - 1])
                bindings[f"d{name}[{k}]"] = native[f"d{name}[{k}]"]
        else:
            native[f"d{name}"] = form.convert(value)
            bindings[f"d{name}"] = native[f"d{name}"]  # dW_h read as a value (a chain)
    world = _World(dims, bindings, native, ghosts, form, point)
    return world


def _steps(rule: Rule, T: int) -> list[int | None]:
    """The values of t a rule is evaluated at: every t whose target step t + offset is one of
    1..T, a fixed step, or none (a whole value)."""
    if rule.index is None:
        return [None]
    if rule.index.anchor == "t":
        return [t for t in range(1, T + 1) if 1 <= t + rule.index.offset <= T]
    if rule.index.anchor == "T":
        return [T + rule.index.offset]
    return [rule.index.offset]


def _target_step(rule: Rule, step: int | None) -> int | None:
    if step is None or rule.index is None or rule.index.anchor != "t":
        return step
    return step + rule.index.offset


def _value(
    expr: MatExpr, summed: bool, step: int | None, world: _World, env: dict | None = None
) -> np.ndarray:
    if isinstance(expr, Deferred):
        if summed:
            T = world.dims.T
            return sum(_evaluate(expr.at(t, world, env), world) for t in range(1, T + 1))
        return _evaluate(expr.at(step, world, env), world)
    if summed:
        return sum(_evaluate(_at(expr, t), world) for t in range(1, world.dims.T + 1))
    if step is None:
        if any(isinstance(s, Indexed) and s.relative for s in expr.symbols()):
            raise AuditShapeError("the rule uses t outside sum(t, ...), but has no [t] itself")
        return _evaluate(expr, world)
    return _evaluate(_at(expr, step), world)


def _evaluate(expr: MatExpr, world: _World) -> np.ndarray:
    if any(isinstance(s, Indexed) and s.anchor == "T" for s in expr.symbols()):
        from ..engine.matexpr import rebuild

        T = world.dims.T
        expr = rebuild(
            expr,
            lambda n: (
                Indexed.make(n.base, n.shape, T + n.offset, None, adjoint=n.adjoint)
                if isinstance(n, Indexed) and n.anchor == "T"
                else None
            ),
        )
    value = np.asarray(expr.evaluate(world.bindings), dtype=float)
    used = [s.name for s in expr.symbols() if s.name in world.ghosts]
    if used:
        other = np.asarray(expr.evaluate({**world.bindings, **world.ghosts}), dtype=float)
        if not np.allclose(value, other, rtol=1e-12, atol=1e-12):
            raise AuditShapeError(
                f"the rule needs {used[0]}, after the last step, which does not exist"
            )
    return value


def _key(scope: Scope, rule: Rule, step: int | None) -> str:
    name = scope.canonical(rule.target)
    step = _target_step(rule, step)
    return name if step is None else f"{name}[{step}]"


def _truth(scope: Scope, rule: Rule, step: int | None, world: _World):
    """The true value of the rule's target at a step, or None for the author's quantities."""
    key = _key(scope, rule, step)
    if key in world.gradients:
        return world.gradients[key]
    if step is not None and key in world.bindings and scope.known_per_step(rule.target):
        return world.bindings[key]
    if step is not None and scope.canonical(rule.target) in scope.parts:
        return world.bindings.get(key)  # dc_from_next: what an author's name may mean
    if step is not None and rule.index is not None and rule.index.anchor != "t":
        name = scope.canonical(rule.target)  # a boundary: h[0], or an adjoint after the end
        if name in scope.per_step and key in world.bindings:
            return world.bindings[key]
    return None


def _close(ours, truth, single: bool = False) -> bool:
    ours, truth = np.asarray(ours, dtype=float), np.asarray(truth, dtype=float)
    if ours.ndim == 0 and truth.ndim > 0:  # `da[T+1] = 0`: a number fills the matrix
        ours = np.full(truth.shape, float(ours))
    if single and ours.shape != truth.shape and _squeezed(ours) == _squeezed(truth):
        ours, truth = ours.ravel(), truth.ravel()  # one example: a row or a column
    if ours.shape != truth.shape:
        return False
    scale = max(float(np.abs(truth).max(initial=0.0)), 1.0)
    return bool(np.all(np.abs(ours - truth) <= RTOL * scale))


def _squeezed(a: np.ndarray) -> tuple:
    return tuple(d for d in a.shape if d != 1)


def audit_rules(
    rules: list[Rule],
    form: MatrixForm,
    mapping: Mapping[str, str],
    seed: int = 0,
    *,
    latex: bool = False,
    single: bool = False,
    defining: set[int] = frozenset(),
    zeros: tuple[str, ...] = (),
    spelling=None,
    adjoint_names: Mapping[str, str] | None = None,
    where=None,
) -> list[Finding]:
    """A finding per rule (the caller renders them); `single`: the derivation is written for
    one example (N = 1), as textbooks write it; `spelling`: how the author writes symbols,
    steps and derivatives (corrections are printed so); `adjoint_names`: the author's own
    names for adjoints (du -> delta)."""
    scope = Scope(form, dict(mapping), latex=latex, single=single, where=where)
    scope.spelling, scope.adjoint_names = spelling, dict(adjoint_names or {})
    scope.author_adjoints = {
        scope.canonical(name)
        for rule in rules
        for name in {rule.target} | _step_names(rule.expr)
        if scope.canonical(name).startswith("d")
    }
    for rule in rules:
        scope.targets.setdefault(scope.canonical(rule.target), rule.line)
    with np.errstate(all="ignore"):  # overflow in an author's rule is a finding, not noise
        worlds = [
            _world(form, form.spec.complete(d), seed, zeros) for d in DIMS if d.N == 1 or not single
        ]
    for k, w in enumerate(worlds):  # g @ dY/dP for a matrix P: pulled back by the world
        w.bindings[CONTRACT] = lambda key, g, w=w: contract(w, key, g, scope)
        w.free = np.random.default_rng([seed, 7, k])  # a claim's free variables
    with np.errstate(all="ignore"):
        _parts_from_next(form, scope, worlds)
    findings: list[Finding] = []
    built: dict[int, MatExpr] = {}
    seen: dict[str, int] = {}
    with np.errstate(all="ignore"):
        solved = _solve_own(rules, scope, worlds)
    for rule in rules:
        original = id(rule)
        if original in solved:  # a quantity of the author's: its values are its rules'
            own, expr, summed = solved[original]
            built[original] = built[id(own)] = (expr, summed)
            key = (
                f"{scope.canonical(rule.target)}[{rule.index.text()}]"
                if rule.index
                else rule.target
            )
            seen.setdefault(key, rule.line)
            if original in defining:
                findings.append(
                    Finding(rule, "model", "defines a quantity of the model (an equation of yours)")
                )
            else:
                findings.append(
                    Finding(own, "defines", "a quantity of the derivation's own, used by its rules")
                )
            continue
        if id(rule) in defining and (
            rule.index is None or scope.known_per_step(rule.target) or rule.claim
        ):  # the author's forward equations: they define the model
            findings.append(Finding(rule, "model", "defines the model (an equation of yours)"))
            continue
        if (
            rule.index is None
            and rule.target in ("L", "J", "E")
            and not scope.gradient_of(rule.target)
            and defining
        ):
            findings.append(Finding(rule, "model", "defines the loss (an equation of yours)"))
            continue
        rule = replace(rule, expr=_hoist_sum(rule.expr))
        if rule.claim:
            with np.errstate(all="ignore"):
                findings.append(_judge_claim(rule, scope, worlds))
            continue
        summed = isinstance(rule.expr, SumOverT)
        node = rule.expr.body if summed else rule.expr
        key = f"{scope.canonical(rule.target)}[{rule.index.text()}]" if rule.index else rule.target
        chained = seen.get(key) == rule.line  # `A = B = C`: B defined A, C is judged by it
        refused = _refuse_target(scope, rule, seen)
        if refused:
            findings.append(Finding(rule, "wrong", refused, correction=_correction(scope, rule)))
            continue
        try:
            expr = scope.build(node)
        except AuditUnreadError as exc:  # a form the audit does not read: not a verdict
            findings.append(Finding(rule, "unread", str(exc)))
            continue
        except AuditShapeError as exc:
            finding = Finding(rule, "shape", str(exc))
            _classify_shape(finding, scope, node, summed, worlds[-1])
            finding.correction = _correction(scope, rule)
            findings.append(finding)
            continue
        expected = _expected_shape(scope, rule)
        if expected is not None and expr.shape and not _same_shape(scope, expr.shape, expected):
            finding = Finding(
                rule,
                "shape",
                f"the right-hand side has shape {_shape(expr.shape)} but {rule.label} is "
                f"{_shape(expected)}",
            )
            _classify_shape(finding, scope, node, summed, worlds[-1])
            finding.correction = _correction(scope, rule)
            findings.append(finding)
            continue
        built[id(rule)] = (expr, summed)
        scope.learn(rule, expr)
        with np.errstate(all="ignore"):
            finding = _judge(rule, expr, summed, scope, worlds, node, chained)
        if original in defining and finding.status == "defines":  # yhat beside the loss
            finding = Finding(
                rule, "model", "defines a quantity of the model (an equation of yours)"
            )
        findings.append(finding)
    _unused_definitions(findings, built, scope, worlds[-1])
    with np.errstate(all="ignore"):
        _meanings(findings, built, scope, worlds)
    _compensations(findings, built, scope, form, seed, zeros)
    if scope.meanings:  # corrections in the author's own names for what they mean
        for f in findings:
            if f.correction is not None and f.status in ("wrong", "shape"):
                f.correction = _correction(scope, _meant_rule(f.rule, scope)) or f.correction
    return findings


def _meant_rule(rule: Rule, scope: Scope) -> Rule:
    """A rule for an author's quantity written as one for the quantity it means."""
    meant = scope.meanings.get(scope.canonical(rule.target))
    return replace(rule, target=meant) if meant else rule


#: The parts of an adjoint that flow back from the next step, as quantities an author's
#: code-style names may mean: dc_next[t] (dc[t] from step t+1), da_prev[t+1] (the same part
#: of da[t], written at the step it comes from).
FROM_NEXT, TO_PREVIOUS = "_from_next", "_to_previous"


def _parts_from_next(form: MatrixForm, scope: Scope, worlds) -> None:
    for line in form.adjoints:
        future = [term.expr for term in line.terms if term.source == "future"]
        if not future:
            continue
        base = line.target.base
        shape = scope.per_step.get(base)
        if shape is None:
            continue
        expr = future[0]
        for e in future[1:]:
            expr = expr + e
        scope.parts[base + FROM_NEXT] = shape
        scope.parts[base + TO_PREVIOUS] = shape
        for world in worlds:
            T = world.dims.T
            for k in range(0, T + 1):
                try:
                    value = _evaluate(_at(expr, k), world) if k < T else None
                except Exception:
                    value = None
                if value is None:
                    value = np.zeros_like(world.bindings[f"{base}[{max(k, 1)}]"])
                if k >= 1:
                    world.bindings[f"{base}{FROM_NEXT}[{k}]"] = value
                world.bindings[f"{base}{TO_PREVIOUS}[{k + 1}]"] = value


def _own(rule: Rule, scope: Scope) -> bool:
    """A rule that defines a quantity of the author's own (no true value to judge it by)."""
    if rule.claim:
        return False
    name = scope.canonical(rule.target)
    return not (
        name in scope.per_step
        or name in scope.parameters
        or scope.gradient_of(name)
        or name in scope.sizes
        or name in ("L", "J", "E", "C", "mathcalL", "mathcalJ", "ell")
    )


def _solve_own(rules: list[Rule], scope: Scope, worlds) -> dict:
    """The author's own quantities, all their rules read as one system: shapes learned in
    whatever order they can be (a quantity may be used before its rule), values computed
    step by step in whatever order they can be (dc_next[t] = dc_prev[t+1] and dc_prev[t] =
    dc_next[t] * f[t] run backwards together), an error signal 0 after the last step unless
    the author says otherwise. Returns {id(rule): (rule, expr, summed)}."""
    own = [r for r in rules if _own(r, scope)]
    if not own:
        return {}
    done: dict[int, tuple] = {}
    pending = list(own)
    first: dict[str, int] = {}
    for r in own:  # two rules for one key: the first is the definition (the main loop says)
        key = f"{scope.canonical(r.target)}[{r.index.text()}]" if r.index else r.target
        if key in first and first[key] != r.line:
            pending.remove(r)
        first.setdefault(key, r.line)
    progress = True
    guessed: set[str] = set()
    while pending and (progress or _guess_shapes(pending, scope, guessed)):
        progress = False
        for r in list(pending):
            rule = replace(r, expr=_hoist_sum(r.expr))
            summed = isinstance(rule.expr, SumOverT)
            node = rule.expr.body if summed else rule.expr
            try:
                expr = scope.build(node)
            except AuditShapeError:
                continue
            name = scope.canonical(rule.target)
            if name in guessed:  # its own rule says what it is
                guessed.discard(name)
                scope.defined.pop(name, None)
            scope.learn(rule, expr)
            done[id(r)] = (rule, expr, summed)
            pending.remove(r)
            progress = True
    for name in guessed:  # a guess no rule confirmed
        scope.defined.pop(name, None)
        scope.defined_per_step.discard(name)
    signals = _error_signals(done, scope)
    for world in worlds:
        T = world.dims.T
        for name in signals:  # nothing flows back from after the last step
            shape = scope.defined.get(name)
            if shape:
                world.bindings.setdefault(
                    f"{name}[{T + 1}]", np.zeros(size_in(shape, world.dims.sizes))
                )
        todo = [(k, step) for k, (rule, _, _) in done.items() for step in _steps(rule, T)]
        progress = True
        while todo and progress:
            progress = False
            for k, step in list(todo):
                rule, expr, summed = done[k]
                try:
                    value = _value(expr, summed, step, world)
                except Exception:
                    continue
                shape = scope.defined.get(scope.canonical(rule.target))
                if np.ndim(value) == 0 and shape:  # delta[T+1] = 0: zeros of its shape
                    value = np.full(size_in(shape, world.dims.sizes), float(value))
                world.bindings[_key(scope, rule, step)] = value
                todo.remove((k, step))
                progress = True
    return done


def _guess_shapes(pending: list, scope: Scope, guessed: set) -> bool:
    """Quantities of the author's that need each other's shapes (dc_next[t] = dc_prev[t+1],
    dc_prev = dc_next * f[t]): one of them takes the shape of the quantity its name is the
    error signal of (dc_next, dc_prev: c's), until its own rule is read."""
    for r in pending:
        name = scope.canonical(r.target)
        if name in scope.defined or r.index is None:
            continue
        base = _signal_of(name, scope)
        if base is not None:
            scope.defined[name] = scope.per_step[base]
            scope.defined_per_step.add(name)
            guessed.add(name)
            return True
    return False


def _signal_of(name: str, scope: Scope) -> str | None:
    """dc_next -> c, dgamma_o -> Gamma_o, dp_ctilde -> ctilde: the model's quantity an
    author's error signal is named after."""
    if not name.startswith("d"):
        return None
    stem = name[1:]
    lower = {q.lower(): q for q in scope.per_step}
    for candidate in (stem, re.sub(r"_(next|prev)$", "", stem), stem.split("_", 1)[-1]):
        if candidate in scope.per_step:
            return candidate
        if candidate.lower() in lower:
            return lower[candidate.lower()]
    return None


def _error_signals(done: dict, scope: Scope) -> set[str]:
    """The author's quantities computed from adjoints (or from each other's): error signals."""
    names = {scope.canonical(rule.target): expr for rule, expr, _ in done.values()}
    signals: set[str] = {n for n in names if _signal_of(n, scope) is not None}
    for name, expr in names.items():  # dc_next[t] = dc_prev[t+1]: it runs backwards
        for s in expr.symbols():
            if getattr(s, "base", None) in names and getattr(s, "relative", False):
                if s.offset > 0:
                    signals |= {name, s.base}
    changed = True
    while changed:
        changed = False
        for name, expr in names.items():
            if name in signals:
                continue
            symbols = expr.symbols()
            if any(getattr(s, "adjoint", False) for s in symbols) or any(
                getattr(s, "base", s.name) in signals for s in symbols
            ):
                signals.add(name)
                changed = True
    return signals


def _meanings(findings, built, scope: Scope, worlds) -> None:
    """What the author's own per-step quantities are, from their uses: when rules using them
    are wrong but right with model quantities in their places (delta_2 used as dE/dz_t,
    dgamma_f as the gradient of the gate's argument), each quantity is the one its uses need
    (the one named like it first), its uses are right, and its own rule is judged as a rule
    for that quantity, the others it reads taken at their meanings too (the mistake is
    charged to the line that makes it). A quantity whose values are one of the model's at
    every step is that one (its rule is right)."""
    rules_of: dict[str, list[Finding]] = {}
    for d in findings:
        if d.status == "defines" and d.rule.index is not None and id(d.rule) in built:
            rules_of.setdefault(scope.canonical(d.rule.target), []).append(d)
    own = {name: found[0] for name, found in rules_of.items()}
    candidates: dict[str, list[str]] = {}
    for name in own:
        shape = scope.defined.get(name)
        if shape is None:
            continue
        same = [
            q
            for q, s in {**scope.per_step, **scope.parts}.items()
            if _same_shape(scope, s, shape) and q != name
        ]
        named = [c for c in _named_candidates(name, scope) if c in same]
        candidates[name] = named + [c for c in same if c not in named]
    meaning: dict[str, str] = scope.meanings
    for _ in range(8):  # a quantity's meaning can make the rule of another one judgeable
        found = _votes(findings, built, scope, worlds, candidates, meaning, own)
        if not found:
            break
        meaning.update(found)
        for author_name, model_name in found.items():  # corrections say da_next, not da
            scope.adjoint_names.setdefault(model_name, author_name)
            scope.author_adjoints.add(model_name)
        _apply_meanings(findings, built, scope, worlds, meaning, own, rules_of)
    for name, d in own.items():
        if name in meaning:
            continue
        for candidate in candidates.get(name, []):
            if _equals_everywhere(d, candidate, built, scope, worlds):
                d.status = "right"
                d.message = (
                    f"{d.rule.target} is {_meaning_text(candidate, scope)} (its values are, at "
                    "every step)"
                )
                break


def _meaning_text(candidate: str, scope: Scope) -> str:
    """dGamma_uhat -> the gradient by the argument of Gamma_u, in the author's notation when
    it is known; a model's name never written by the author is described, not shown."""
    base = candidate[1:] if candidate.startswith("d") else candidate
    of = None
    if base.endswith("hat") and base[: -len("hat")] in scope.per_step:
        base, of = base[: -len("hat")], "the argument of "
    spelled = base
    spelling = scope.spelling
    if spelling is not None:
        spelled = spelling.spellings.get(base, base)
    if candidate.startswith("d"):
        return f"the gradient by {of or ''}{spelled}"
    return f"{of or ''}{spelled}"


def _votes(findings, built, scope, worlds, candidates, meaning, own) -> dict[str, str]:
    """New meanings: for each wrong rule, the first reading of the author's quantities it
    uses (not yet given a meaning) that makes it right; the reading most rules need wins."""
    votes: dict[str, dict[str, int]] = {}
    for f in findings:
        if f.status != "wrong" or id(f.rule) not in built:
            continue
        names = _step_names(f.rule.expr)
        target = scope.canonical(f.rule.target)
        known = {s: meaning[s] for s in names | {target} if s in meaning}
        symbols = sorted((names & set(candidates)) - set(meaning))
        if not symbols or len(symbols) > 4:
            continue
        pools = [candidates[s][:6] for s in symbols]
        for combo in itertools.islice(itertools.product(*pools), 400):
            if _right_with(f, {**known, **dict(zip(symbols, combo))}, scope, worlds):
                for symbol, choice in zip(symbols, combo):
                    tally = votes.setdefault(symbol, {})
                    tally[choice] = tally.get(choice, 0) + 1
                break
    return {s: max(tally, key=tally.get) for s, tally in votes.items()}


def _apply_meanings(findings, built, scope, worlds, meaning: dict, own: dict, rules_of) -> None:
    """Wrong rules right with the author's quantities at their meanings say so; each
    quantity's own rule is judged as a rule for its meaning."""
    for f in findings:
        if f.status != "wrong" or id(f.rule) not in built:
            continue
        if scope.canonical(f.rule.target) in meaning:
            continue
        used = _step_names(f.rule.expr) & set(meaning)
        if used and _right_with(f, {u: meaning[u] for u in used}, scope, worlds):
            readings = ", ".join(f"{own[u].rule.target} as {meaning[u]}" for u in sorted(used))
            f.status = "right"
            f.message = f"right reading {readings} (what the rules using them need them to be)"
            f.classification = f.counterexample = f.correction = None
    for name, candidate in meaning.items():
        for d in rules_of[name]:
            _judge_as(d, candidate, built, scope, worlds, meaning)


def _named_candidates(name: str, scope: Scope) -> list[str]:
    """dgamma_f -> dGamma_fhat, dGamma_f; dp_ctilde -> dctildehat, dctilde; delta -> none:
    the model's adjoints an author's error signal is named after, its argument's first."""
    if not name.startswith("d"):
        return []
    stem = name[1:]
    lower = {q.lower(): q for q in scope.per_step}
    out: list[str] = []
    suffix = stem.rsplit("_", 1)[-1] if "_" in stem else None
    if suffix:  # dz_u: the argument of the layer whose weight is W_u (Gamma_u's)
        for line in scope.form.model:
            q = line.target.base
            weights = {getattr(s, "name", "") for s in line.expr.symbols()}
            if q.endswith("hat") and any(w.endswith("_" + suffix) for w in weights):
                if "d" + q in scope.per_step and "d" + q not in out:
                    out.append("d" + q)
    for base in (stem, re.sub(r"_(next|prev)$", "", stem), stem.split("_", 1)[-1]):
        found = base if base in scope.per_step else lower.get(base.lower())
        if found is None:
            continue
        parts = ("d" + found + FROM_NEXT, "d" + found + TO_PREVIOUS)
        for choice in ("d" + found + "hat", "d" + found, *parts):
            if (choice in scope.per_step or choice in scope.parts) and choice not in out:
                out.append(choice)
    return out


def _right_with(f: Finding, mapping: dict, scope: Scope, worlds) -> bool:
    """The rule is right with the author's quantities read as the model's (`mapping`)."""
    expr_node = f.rule.expr
    target = scope.canonical(f.rule.target)
    for old, new in mapping.items():
        if old != target:
            expr_node = _renamed(expr_node, old, new)
    rule = replace(f.rule, target=mapping.get(target, f.rule.target), expr=_hoist_sum(expr_node))
    summed = isinstance(rule.expr, SumOverT)
    node = rule.expr.body if summed else rule.expr
    try:
        expr = scope.build(node)
    except AuditShapeError:
        return False
    saved = [dict(w.bindings) for w in worlds]
    try:
        status = _judge_once(rule, expr, summed, scope, worlds, node).status
    finally:
        for w, b in zip(worlds, saved):
            w.bindings = b
    return status == "right" or (status == "defines" and not _own(f.rule, scope))


def _step_names(node) -> set[str]:
    return {n.name for n in _walk(node) if isinstance(n, (Step, Name))}


def _renamed(node, old: str, new: str):
    from ..audit.notation import _map

    def f(n):
        if isinstance(n, Step) and n.name == old:
            return Step(new, n.index, n.at)
        return None

    return _map(node, f)


def _as_meaning(users, name: str, candidate: str, scope: Scope, worlds):
    """Each user re-judged with `candidate` in place of `name`, or None when one is not
    right so."""
    out = []
    for f in users:
        rule = replace(f.rule, expr=_hoist_sum(_renamed(f.rule.expr, name, candidate)))
        summed = isinstance(rule.expr, SumOverT)
        node = rule.expr.body if summed else rule.expr
        try:
            expr = scope.build(node)
        except AuditShapeError:
            return None
        again = _judge_once(rule, expr, summed, scope, worlds, node)
        if again.status not in ("right", "defines"):
            return None
        out.append((f, again))
    return out


def _judge_as(d: Finding, candidate: str, built, scope: Scope, worlds, meaning=None) -> None:
    """The author's rule for a quantity judged as a rule for the model's `candidate`, the
    author's quantities it reads taken at their `meaning`s."""
    expr, summed = built[id(d.rule)]
    rule = replace(d.rule, target=candidate)
    node = rule.expr.body if summed else rule.expr
    own = scope.canonical(d.rule.target)
    substitutes = {k: v for k, v in (meaning or {}).items() if k != own}
    if any(k in _step_names(node) for k in substitutes):
        for old, new in substitutes.items():
            node = _renamed(node, old, new)
        try:
            expr = scope.build(node)
        except AuditShapeError:
            pass
    saved = {k: dict(w.bindings) for k, w in enumerate(worlds)}
    try:
        judged = _judge_once(rule, expr, summed, scope, worlds, node)
    finally:
        for k, w in enumerate(worlds):
            w.bindings = saved[k]
    used = f"{d.rule.target} is used as {candidate} by the rules that read it"
    if judged.status == "right":
        d.status, d.message = "right", f"{used}, and it is"
        return
    d.status = judged.status
    d.message = f"{used}, but {judged.message}"
    d.classification = judged.classification
    d.counterexample = judged.counterexample
    d.correction = _correction(scope, rule)


def _equals_everywhere(d: Finding, candidate: str, built, scope: Scope, worlds) -> bool:
    name = scope.canonical(d.rule.target)
    for world in worlds:
        for k in range(1, world.dims.T + 1):
            a, b = world.bindings.get(f"{name}[{k}]"), world.bindings.get(f"{candidate}[{k}]")
            if a is None or b is None or not _close(a, b, scope.single):
                return False
    return True


def _same_shape(scope: Scope, shape, expected) -> bool:
    """Equal shapes; for one example, also equal up to axes of size 1 ((1, H) and (H,))."""
    if tuple(shape) == tuple(expected):
        return True
    if scope.single:
        return [d for d in shape if d != 1] == [d for d in expected if d != 1]
    return False


def _refuse_target(scope: Scope, rule: Rule, seen: dict) -> str | None:
    """A target that cannot be a rule: the model's inputs redefined, dX[0], a second rule for
    the same target (each target is defined once)."""
    name = scope.canonical(rule.target)
    if rule.index is None and (name in scope.parameters or name in scope.per_step):
        kind = "input" if name in scope.parameters else "quantity"
        return f"{rule.target} is the model's {kind}: a rule cannot redefine it"
    if rule.index is not None and name in scope.parameters:
        return f"{rule.target} is the model's input, the same at every step: it has no [t]"
    if (
        rule.index is not None
        and rule.index.anchor is None
        and rule.index.offset <= 0
        and name.startswith("d")
        and name[1:] in scope.per_step
    ):
        return (
            f"{rule.label} is not a quantity: steps run from 1 (the gradient of the initial "
            f"state is d{_initial_name(scope.form.spec)})"
        )
    key = f"{name}[{rule.index.text()}]" if rule.index is not None else name
    known = name in scope.per_step or scope.gradient_of(name) is not None
    if key in seen and seen[key] != rule.line and not known:  # each rule of a model's
        # quantity is a claim of its own; an author's quantity has one definition
        return f"{rule.label} is defined twice (first on {scope.at(seen[key])})"
    seen[key] = rule.line
    return None


def _unused_definitions(findings, built, scope: Scope, world: _World) -> None:
    """A quantity of the author's that no rule uses is not checked at all: most often a
    symbol of the author's that --map should have named (delta for da)."""
    used: set[str] = set()
    for expr, _ in built.values():
        for s in expr.symbols():
            used.add(s.base if isinstance(s, Indexed) else s.name)
    for f in findings:
        if f.status != "defines" or f.rule.claim:
            continue
        name = scope.canonical(f.rule.target)
        if name in used:
            continue
        f.status = "unchecked"
        shape = scope.defined.get(name)
        alike = [
            q
            for q, s in {**scope.per_step, **scope.parameters}.items()
            if shape is not None and tuple(s) == tuple(shape)
        ]
        same = [q for q in alike if _same_values(world, name, q, f.rule)]
        hint = f" (--map {f.rule.target}={(same or alike)[0]}?)" if alike else ""
        stem = name[1:] if name.startswith("d") else ""
        similar = [p for p in scope.parameters if stem and p.startswith(stem) and p != stem]
        if f.rule.index is None and similar:  # db where the model has b_1 and b_2
            hint = f" (--map {stem}={similar[0]}?: the model has {', '.join(similar)})"
        f.message = (
            f"{f.rule.target} is not one of the model's quantities and no rule uses it, so "
            f"nothing checks it: name it with --map{hint}"
        )


def _same_values(world: _World, name: str, other: str, rule: Rule) -> bool:
    """The author's quantity has the values of one of the model's at every step."""
    if rule.index is None:
        return (
            name in world.bindings
            and other in world.bindings
            and _close(world.bindings[name], world.bindings[other])
        )
    steps = range(1, world.dims.T + 1)
    keys = [(f"{name}[{k}]", f"{other}[{k}]") for k in steps]
    return all(a in world.bindings and b in world.bindings for a, b in keys) and all(
        _close(world.bindings[a], world.bindings[b]) for a, b in keys
    )


def _compensations(
    findings, built, scope: Scope, form: MatrixForm, seed: int, zeros: tuple = ()
) -> None:
    """Rules wrong on their own whose errors cancel: the gradients the derivation gives,
    each rule fed by the derivation's own rules, are all right."""
    wrong = [f for f in findings if f.status == "wrong"]
    gradients = [f for f in findings if scope.gradient_of(f.rule.target) and f.rule.index is None]
    if len(wrong) < 2 or not gradients or any(f.status == "shape" for f in findings):
        return  # one wrong rule cannot be compensated by a right one
    if any(
        id(f.rule) not in built or f.rule.index is None or f.rule.index.anchor != "t" for f in wrong
    ):
        return  # only recurrences chain into each other
    world = _world(form, form.spec.complete(DIMS[-1]), seed, zeros)
    true_bindings = dict(world.bindings)
    own = [f.rule for f in findings if id(f.rule) in built]
    T = world.dims.T
    forward = [r for r in own if r.index is not None and not _is_adjoint(scope, r)]
    backward = [r for r in own if r.index is not None and _is_adjoint(scope, r)]
    bindings = world.bindings
    try:
        for rules_, steps in ((forward, range(1, T + 1)), (backward, range(T, 0, -1))):
            for t in steps:
                pending = list(rules_)
                for _ in range(len(rules_) + 1):  # file order need not be computation order
                    left = []
                    for rule in pending:
                        expr, _ = built[id(rule)]
                        if rule.index.anchor != "t":
                            continue
                        try:
                            value = _evaluate(_at(expr, t), world)
                        except Exception:
                            left.append(rule)
                            continue
                        bindings[_key(scope, rule, t)] = value
                    if len(left) == len(pending):
                        break
                    pending = left
        for f in gradients:
            expr, summed = built[id(f.rule)]
            truth = _truth(scope, f.rule, None, world)
            if truth is None or not _close(_value(expr, summed, None, world), truth, scope.single):
                return
    except Exception:
        return
    finally:
        world.bindings = true_bindings
    names = ", ".join(scope.at(f.rule.line) for f in wrong)
    for f in wrong:
        f.status = "compensated"
        f.message = (
            f"{f.message}; wrong on its own, but the errors of {names} cancel: the gradients "
            "this derivation gives are right"
        )


def _is_adjoint(scope: Scope, rule: Rule) -> bool:
    name = scope.canonical(rule.target)
    return name.startswith("d") and (
        name[1:] in scope.per_step or name[1:] in scope.parameters or name in scope.per_step
    )


def _hoist_sum(node):
    """`sum(t, e) * 2`, `-sum(t, e)`: constant factors of a sum moved inside it."""
    if isinstance(node, Neg) and isinstance(node.arg, SumOverT):
        return SumOverT(Neg(node.arg.body))
    if isinstance(node, Binary) and node.op in ("*", "/", "@"):
        left, right = _hoist_sum(node.left), _hoist_sum(node.right)
        if isinstance(left, SumOverT) and not _has_sum(right):
            return SumOverT(Binary(node.op, left.body, right))
        if isinstance(right, SumOverT) and node.op in ("*", "@") and not _has_sum(left):
            return SumOverT(Binary(node.op, left, right.body))
    return node


def _has_sum(node) -> bool:
    return any(isinstance(n, SumOverT) for n in _walk(node))


def _judge_claim(rule: Rule, scope: Scope, worlds, classify: bool = True) -> Finding:
    """Two expressions said to be equal (`tanh'(a[t]) = 1 - h[t]**2`, a Jacobian written out,
    one loss term's derivative): both sides computed at every step where both exist."""
    sides = []
    rule = _at_every_step(rule, scope)
    for side in (rule.lhs, rule.expr):
        side = _hoist_sum(side)
        summed = isinstance(side, SumOverT)
        node = side.body if summed else side
        if isinstance(node, Name) and node.name in IDENTITY and not scope.known(node.name):
            sides.append(("identity", summed, node))
            continue
        node = _free_variables(node, scope)
        try:
            sides.append((scope.build(node), summed, node))
        except AuditUnreadError as exc:
            return Finding(rule, "unread", str(exc))
        except AuditShapeError as exc:
            return Finding(rule, "shape", str(exc))
    (left, lsum, _), (right, rsum, rnode) = sides
    if left == "identity":
        (left, lsum, _), (right, rsum, rnode) = sides[::-1]
    if isinstance(right, MatExpr) and not _same_shape(scope, left.shape, right.shape):
        if not (left.ndim == 0 or right.ndim == 0):
            return Finding(
                rule,
                "shape",
                f"the two sides have shapes {_shape(left.shape)} and {_shape(right.shape)}",
            )
    relative = _relative(rule.lhs) or _relative(rule.expr)
    letters = list(dict.fromkeys(free_letters(rule.lhs) + free_letters(rule.expr)))
    checked = 0
    for world in worlds:
        T = world.dims.T
        for name, shape in scope.free.items():
            world.bindings[name] = world.free.standard_normal(shape)
        for step in range(1, T + 1) if relative else [None]:
            for values in itertools.product(range(0, T + 1), repeat=len(letters)):
                env = dict(zip(letters, values))
                try:
                    lv = np.asarray(_value(left, lsum, step, world, env), dtype=float)
                    if right == "identity":
                        rv = np.eye(lv.shape[0]) if lv.ndim == 2 else np.ones_like(lv)
                    else:
                        rv = np.asarray(_value(right, rsum, step, world, env), dtype=float)
                except Exception:  # a quantity that does not exist at this step (h[T+1])
                    continue
                checked += 1
                if not _close(rv, lv, scope.single):
                    notation = _prime_notation(rule, scope, worlds)
                    if notation is not None:
                        return notation
                    where = "" if step is None else f", t={step}"
                    where += "".join(f", {k}={v}" for k, v in env.items())
                    return Finding(
                        rule,
                        "wrong",
                        f"the two sides differ at {_dims(world.dims, world)}{where}",
                        counterexample=_counterexample(world, step, rv, lv),
                        classification=_classify_claim(rule, scope, worlds) if classify else None,
                    )
    if not checked:
        return Finding(rule, "unchecked", "neither side can be computed at any step")
    return Finding(rule, "right")


def _classify_claim(rule: Rule, scope: Scope, worlds) -> str | None:
    """The first small change of a claim's right-hand side that makes it hold."""
    for text, candidate in itertools.islice(_variants(rule.expr, scope), 60):
        try:
            again = _judge_claim(replace(rule, expr=candidate), scope, worlds, classify=False)
        except Exception:
            continue
        if again.status == "right":
            return text
    return None


#: The shape of a variable a claim leaves free (f'(a) = 1 - f(a)**2, for any a).
FREE_SHAPE = (1, 1)


def _free_variables(node, scope: Scope):
    """f'(a) = 1 - f(a)**2 with no quantity a in the model: a is a free variable, drawn at
    random in every world (the identity must hold for any a)."""
    from .notation import _map

    loss = {
        a.name
        for n in _walk(node)
        if isinstance(n, Call) and n.function == "grad"
        for a in n.args[:1]
        if isinstance(a, Name)
    }

    def free(n):
        if isinstance(n, Name) and not scope.known(n.name) and len(n.name) <= 2:
            if n.name in loss:  # dL/dL_t: the loss, not a free variable
                return None
            name = "_free_" + n.name
            scope.free[name] = FREE_SHAPE
            return Name(name, n.at)
        return None

    return _map(node, free)


def _at_every_step(rule: Rule, scope: Scope) -> Rule:
    """f'(a) = 1 - f(a)**2: a per-step quantity named without a step in a claim is the
    quantity at every step (a claim for all t)."""
    from .notation import _map

    def step(n):
        if isinstance(n, Name) and scope.canonical(n.name) in scope.per_step:
            return Step(n.name, Index("t", 0), n.at)
        return None

    return replace(rule, lhs=_map(rule.lhs, step), expr=_map(rule.expr, step))


def _prime_notation(rule: Rule, scope: Scope, worlds) -> Finding | None:
    """tanh'(h[t]) = 1 - h[t]**2: wrong read at the argument, the author's notation for the
    derivative written at the output (tanh' of the quantity tanh made); a definition."""
    if not (_has_prime(rule.lhs) and not _has_prime(rule.expr)):
        return None
    if not _outputs_primed(rule.lhs, scope):  # tanh'(u) of a free u: no output to be at
        return None
    at_output = _primes_at_output(rule.lhs, scope)
    again = _judge_claim(replace(rule, lhs=at_output), scope, worlds)
    if again.status != "right":
        return None
    return Finding(
        rule,
        "defines",
        "your notation: the prime written at the function's output (tanh'(h) for 1 - h^2, "
        "where h = tanh(a)); primes are read that way where the argument reading fails",
    )


def _outputs_primed(node, scope: Scope) -> bool:
    """Every primed function's argument is a quantity that function makes (h for tanh')."""
    makes = {}
    for line in scope.form.model:
        expr = line.expr
        name = getattr(expr, "name", None)
        if name in ("tanh", "sigmoid"):
            makes[line.target.base] = name
    for n in _walk(node):
        if isinstance(n, Call) and n.function in ("dtanh", "dsigmoid"):
            arg = n.args[0] if n.args else None
            base = scope.canonical(arg.name) if isinstance(arg, Step) else None
            if makes.get(base) != n.function[1:]:
                return False
    return True


#: The identity matrix, as authors write it.
IDENTITY = ("I", "Id", "mathbbI", "mathbfI")


def _relative(node) -> bool:
    """The tree reads a quantity at the general step t outside sum(t, ...)."""
    if isinstance(node, Step):
        return node.index.anchor == "t"
    if isinstance(node, SumOverT):
        return False
    if isinstance(node, Over):
        return node.lo.anchor == "t" or node.hi.anchor == "t" or _relative(node.body)
    return any(_relative(child) for child in _children(node))


def _children(node):
    for attr in ("left", "right", "arg", "body"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, (int, float, str)):
            yield child
    yield from getattr(node, "args", ()) or ()


def _judge(rule, expr, summed, scope, worlds, node, chained: bool = False) -> Finding:
    finding = _judge_once(rule, expr, summed, scope, worlds, node, chained)
    if finding.status == "wrong" and _parameter_jacobians(node, scope):
        # dL/dh_t dh_t/dW summed over t: dh_t/dW meant as the use of W at step t alone
        immediate = _immediate(node, scope)
        try:
            other = scope.build(immediate)
        except AuditShapeError:
            other = None
        if other is not None:
            again = _judge_once(rule, other, summed, scope, worlds, immediate, chained)
            if again.status in ("right", "defines"):
                again.message = (
                    "right with a derivative by a weight read as the immediate partial (the "
                    "use of the weight at that step alone, Pascanu et al.'s d+)"
                )
                return again
    if finding.status == "wrong" and has_product(node):
        # A product of matrices over j: its author may mean it from the smallest j up.
        other_node = ascending(node)
        try:
            other = scope.build(other_node)
        except AuditShapeError:
            other = None
        if other is not None:
            again = _judge_once(rule, other, summed, scope, worlds, other_node, chained)
            if again.status in ("right", "defines"):
                again.message = (
                    "right with its product of matrices read from the smallest index up "
                    "(the order a product over j is written in is not said)"
                )
                return again
    if finding.status != "wrong" or not _has_prime(node):
        return finding
    # tanh'(h_t) where h_t = tanh(a_t): some authors write the derivative at the output.
    at_output = _primes_at_output(node, scope)
    if at_output is None:
        return finding
    try:
        other = scope.build(at_output)
    except AuditShapeError:
        return finding
    again = _judge_once(rule, other, summed, scope, worlds, at_output, chained)
    if again.status == "right":
        again.message = (
            "right with the prime read as the derivative written at the function's output "
            "(tanh'(h) as 1 - h^2, sigma'(s) as s(1 - s)); at its argument it would be wrong"
        )
        return again
    return finding


def _parameter_jacobians(node, scope: Scope) -> bool:
    return any(
        isinstance(n, Call)
        and n.function == "jac"
        and len(n.args) == 2
        and isinstance(n.args[1], Name)
        and scope.canonical(n.args[1].name) in scope.parameters
        for n in _walk(node)
    )


def _immediate(node, scope: Scope):
    """The tree with each derivative by a weight read as the immediate partial."""
    from .notation import _map

    def f(n):
        if (
            isinstance(n, Call)
            and n.function == "jac"
            and len(n.args) == 2
            and isinstance(n.args[1], Name)
            and scope.canonical(n.args[1].name) in scope.parameters
        ):
            return Call("jacplus", n.args, n.at)
        return None

    return _map(node, f)


def _has_prime(node) -> bool:
    return any(isinstance(n, Call) and n.function in ("dtanh", "dsigmoid") for n in _walk(node))


def _primes_at_output(node, scope: Scope):
    """The rule with each tanh'(X), sigma'(X) read at the output: 1 - X**2, X * (1 - X)."""
    from dataclasses import replace as rebuild

    def visit(n):
        if isinstance(n, Call) and n.function in ("dtanh", "dsigmoid") and len(n.args) == 1:
            x = visit(n.args[0])
            one_minus = Binary("-", Num(1), x if n.function == "dsigmoid" else Power(x, 2))
            return one_minus if n.function == "dtanh" else Binary("*", x, one_minus)
        if isinstance(n, Binary):
            return Binary(n.op, visit(n.left), visit(n.right))
        if isinstance(n, (Neg, Transposed)):
            return type(n)(visit(n.arg))
        if isinstance(n, Power):
            return Power(visit(n.arg), n.exponent)
        if isinstance(n, SumOverT):
            return SumOverT(visit(n.body))
        if isinstance(n, Over):
            return rebuild(n, body=visit(n.body))
        if isinstance(n, Call):
            return rebuild(n, args=tuple(visit(a) for a in n.args))
        return n

    return visit(node)


def _judge_once(rule, expr, summed, scope, worlds, node, chained: bool = False) -> Finding:
    mine = False
    for world in worlds:
        for step in _steps(rule, world.dims.T):
            try:
                value = _value(expr, summed, step, world)
            except AuditShapeError as exc:
                finding = Finding(rule, "shape", str(exc), correction=_correction(scope, rule))
                _classify_shape(finding, scope, node, summed, worlds[-1])
                return finding
            except Exception as exc:  # a name without a value at this step
                return Finding(rule, "wrong", f"cannot be computed: {exc}")
            truth = _truth(scope, rule, step, world)
            if truth is None and chained:  # `A = B = C` of the author's own A: C is B's value
                truth = world.bindings.get(_key(scope, rule, step))
            if truth is None:  # the author's own quantity: remembered for the rules using it
                shape = scope.defined.get(scope.canonical(rule.target))
                if np.ndim(value) == 0 and shape:  # delta[T+1] = 0: zeros of its shape
                    value = np.full(size_in(shape, world.dims.sizes), float(value))
                world.bindings[_key(scope, rule, step)] = value
                mine = True
                continue
            if not _close(value, truth, scope.single):
                finding = Finding(
                    rule,
                    "wrong",
                    f"wrong value at {_dims(world.dims, world)}"
                    + ("" if step is None else f", t={step}"),
                    counterexample=_counterexample(world, step, value, truth),
                )
                finding.classification = _classify_value(
                    scope, rule, node, summed, worlds[-1], step
                )
                finding.correction = _correction(scope, rule)
                return finding
    if mine:
        if rule.index is not None and _adjoint_like(expr):
            # An error signal of the author's own: nothing flows back from after the last step.
            for world in worlds:
                T = world.dims.T
                last = world.bindings.get(_key(scope, rule, T))
                if last is not None:
                    world.bindings.setdefault(_key(scope, rule, T + 1), np.zeros_like(last))
        return Finding(rule, "defines", "a quantity of the derivation's own, used by its rules")
    if not any(_steps(rule, w.dims.T) for w in worlds):
        return Finding(rule, "unchecked", f"{rule.label} names no step of 1..T: nothing to check")
    return Finding(rule, "right")


def _adjoint_like(expr) -> bool:
    """The quantity is computed from adjoints (an author's error signal)."""
    return any(getattr(s, "adjoint", False) for s in expr.symbols())


def _counterexample(world: _World, step, value, truth) -> dict:
    out = {"dims": _used_sizes(world.dims, world), "t": step}
    if np.size(truth) <= 6:
        # 6 significant digits, or as many as it takes for the two to read differently
        for digits in range(6, 18):
            yours, true = _rounded(value, digits), _rounded(truth, digits)
            if yours != true:
                break
        out["yours"], out["true"] = yours, true
    else:
        out["max_error"] = float(np.max(np.abs(np.asarray(value) - np.asarray(truth))))
    return out


def _rounded(a, digits: int) -> list | float:
    """The values to `digits` significant digits, as plain numbers."""
    round_ = np.vectorize(lambda x: float(f"{x:.{digits}g}"), otypes=[float])
    return round_(np.asarray(a, dtype=float)).tolist()


def _expected_shape(scope: Scope, rule: Rule):
    name = scope.canonical(rule.target)
    parameter = scope.gradient_of(name)
    if parameter is not None:  # dW_h, or dW_h[t]: its share at one step
        return scope.parameters[parameter]
    if rule.index is not None and name in scope.per_step:
        return scope.per_step[name]
    if rule.index is not None and name[1:] in scope.per_step and name.startswith("d"):
        return scope.per_step[name[1:]]
    return None


# -- classification: the first small change that makes the rule right --------------------------
def _variants(node, scope: Scope | None = None, target: str | None = None):
    """(description, changed node) for single changes of a right-hand side: an index moved, a
    transpose added or dropped, a product's factors swapped, a term dropped, or one name
    replaced by another of the same kind (W_x for W_h, h for a), never by the rule's own
    `target` (`dv[t] = dv[t]` holds trivially and says nothing)."""
    out = []
    orders = []  # a product's factors swapped: tried last (for one example, a transpose
    # missing reads the same, and is what an author means more often)

    def swap_name(n, rebuild):
        if scope is None:
            return
        canonical = scope.canonical(n.name)
        if isinstance(n, Name) and canonical in scope.parameters:
            pool = [p for p in scope.parameters if p != canonical]
        elif isinstance(n, Step) and canonical in scope.per_step:
            pool = [p for p in scope.per_step if p != canonical]
        elif isinstance(n, Step) and scope.gradient_of(canonical):  # one step's share
            pool = ["d" + p for p in scope.parameters if "d" + p != canonical]
        else:
            return
        own = scope.canonical(target) if target else None
        for other in pool:
            if other == own and not (isinstance(n, Step) and scope.gradient_of(other)):
                continue  # dv[t] = dv[t] says nothing; dW_x = sum(t, dW_x[t]) does
            changed = Name(other) if isinstance(n, Name) else Step(other, n.index)
            out.append((f"uses {n.name} where {other} belongs", rebuild(changed)))

    def visit(n, rebuild):
        if isinstance(n, (Name, Step)):
            swap_name(n, rebuild)
        if isinstance(n, Step):
            for delta in (-1, 1):
                moved = Step(n.name, Index(n.index.anchor, n.index.offset + delta))
                if n.index.anchor is not None or moved.index.offset >= 0:
                    out.append(
                        (
                            f"uses {n.name}[{n.index.text()}] where "
                            f"{n.name}[{moved.index.text()}] belongs",
                            rebuild(moved),
                        )
                    )
            out.append((f"{n.name}[{n.index.text()}] needs a transpose", rebuild(Transposed(n))))
        if isinstance(n, Name):
            out.append((f"{n.name} needs a transpose", rebuild(Transposed(n))))
        if isinstance(n, Transposed):
            out.append(("a transpose too many", rebuild(n.arg)))
            visit(n.arg, lambda m: rebuild(Transposed(m)))
        swapped = _other_derivative(n, scope)
        if swapped is not None:
            out.append((swapped[0], rebuild(swapped[1])))
        if isinstance(n, Binary):
            if n.op == "@":
                orders.append(
                    ("the factors of a product are in the wrong order",
                     rebuild(Binary("@", n.right, n.left)))
                )  # fmt: skip
            if n.op in ("*", "@") and _products(n) >= 2:
                out.append(("a product where a sum belongs", rebuild(Binary("+", n.left, n.right))))
            if n.op in ("*", "@") and isinstance(n.left, Binary) and n.left.op in ("*", "@"):
                # a * b * c where a * (b + c) belongs
                summed_ = Binary(n.left.op, n.left.left, Binary("+", n.left.right, n.right))
                out.append(("a product where a sum belongs", rebuild(summed_)))
            if n.op in ("+", "-") and isinstance(n.left, Binary) and n.left.op in ("*", "@"):
                # a * b + c where a * (b + c) belongs
                regrouped = Binary(n.left.op, n.left.left, Binary(n.op, n.left.right, n.right))
                out.append(
                    (
                        f"missing parentheses: {_say(scope, n.left.left)} multiplies the whole sum",
                        rebuild(regrouped),
                    )
                )
            if n.op in ("+", "-") and isinstance(n.right, Binary) and n.right.op in ("*", "@"):
                regrouped = Binary(n.right.op, Binary(n.op, n.left, n.right.left), n.right.right)
                out.append(
                    (
                        f"missing parentheses: {_say(scope, n.right.right)} multiplies the whole "
                        "sum",
                        rebuild(regrouped),
                    )
                )
            if n.op in ("+", "-"):
                out.append((f"the term {_short(n.right)} does not belong", rebuild(n.left)))
                out.append((f"the term {_short(n.left)} does not belong", rebuild(n.right)))
                other = "-" if n.op == "+" else "+"
                out.append(
                    (f"the term {_short(n.right)} has the wrong sign",
                     rebuild(Binary(other, n.left, n.right)))
                )  # fmt: skip
            visit(n.left, lambda m: rebuild(Binary(n.op, m, n.right)))
            visit(n.right, lambda m: rebuild(Binary(n.op, n.left, m)))
        if isinstance(n, (Neg, Power)):
            visit(n.arg, lambda m: rebuild(replace(n, arg=m)))
        if isinstance(n, Call):
            for i, a in enumerate(n.args):
                visit(
                    a, lambda m, i=i: rebuild(replace(n, args=(*n.args[:i], m, *n.args[i + 1 :])))
                )

    visit(node, lambda m: m)
    if scope is not None:
        every = _every_matrix_transposed(node, scope)
        if every is not None:
            out.append(("a transpose is missing (or too many) in every term", every))
    return out + orders


def _other_derivative(n, scope=None):
    """1 - x**2 (tanh's derivative at its output) for x * (1 - x) (the sigmoid's), and the
    other way round: (what, the node changed), or None."""

    def one(m) -> bool:
        return isinstance(m, Num) and m.value == 1

    if isinstance(n, Binary) and n.op == "-" and one(n.left):
        right = n.right
        x = None
        if isinstance(right, Power) and right.exponent == 2:
            x = right.arg
        elif isinstance(right, Binary) and right.op == "*" and right.left == right.right:
            x = right.left
        if x is not None:
            fixed = Binary("*", x, Binary("-", Num(1), x))
            return (
                f"tanh's derivative {_say(scope, n)} where the sigmoid's {_say(scope, fixed)} "
                "belongs",
                fixed,
            )
    if isinstance(n, Binary) and n.op == "*":
        for x, other in ((n.left, n.right), (n.right, n.left)):
            if (
                isinstance(other, Binary)
                and other.op == "-"
                and one(other.left)
                and other.right == x
            ):
                fixed = Binary("-", Num(1), Power(x, 2))
                return (
                    f"the sigmoid's derivative {_say(scope, n)} where tanh's "
                    f"{_say(scope, fixed)} belongs",
                    fixed,
                )
    if isinstance(n, Call) and n.function in ("dtanh", "dsigmoid") and len(n.args) == 1:
        other = "dsigmoid" if n.function == "dtanh" else "dtanh"
        names = {"dtanh": "tanh'", "dsigmoid": "sigma'"}
        return (
            f"{names[n.function]} where {names[other]} belongs",
            Call(other, n.args, n.at),
        )
    return None


def _products(node) -> int:
    """How many factors a product of products has (a * b is 2)."""
    if isinstance(node, Binary) and node.op in ("*", "@"):
        return _products(node.left) + _products(node.right)
    return 1


def _every_matrix_transposed(node, scope: Scope):
    """The tree with every weight matrix's transpose toggled, or None (fewer than two)."""
    return _flip_weights(node, scope)


def _matrix(n: Name, scope: Scope) -> bool:
    shape = scope.parameters.get(scope.canonical(n.name))
    return shape is not None and len([d for d in shape if d != 1]) == 2


def _flip_weights(node, scope: Scope):
    """Every weight matrix's transpose toggled; None when fewer than two are."""
    count = 0

    def go(n):
        nonlocal count
        if isinstance(n, Transposed) and isinstance(n.arg, Name) and _matrix(n.arg, scope):
            count += 1
            return n.arg
        if isinstance(n, Name) and _matrix(n, scope):
            count += 1
            return Transposed(n, n.at)
        if isinstance(n, Binary):
            return Binary(n.op, go(n.left), go(n.right), n.at)
        if isinstance(n, (Neg, Transposed)):
            return type(n)(go(n.arg), n.at)
        if isinstance(n, Power):
            return Power(go(n.arg), n.exponent, n.at)
        if isinstance(n, Call):
            return replace(n, args=tuple(go(a) for a in n.args))
        if isinstance(n, (SumOverT, Over)):
            return replace(n, body=go(n.body))
        return n

    out = go(node)
    return out if count >= 2 else None


def _walk(node):
    yield node
    for attr in ("left", "right", "arg", "body"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, (int, float, str)):
            yield from _walk(child)
    for child in getattr(node, "args", ()) or ():
        yield from _walk(child)


def _fixes(scope, rule, candidate, summed, world) -> bool:
    try:
        expr = scope.build(candidate)
    except AuditShapeError:
        return False
    expected = _expected_shape(scope, rule)
    if expected is not None and tuple(expr.shape) != tuple(expected):
        return False
    for step in _steps(rule, world.dims.T):
        truth = _truth(scope, rule, step, world)
        if truth is None:
            return False
        try:
            if not _close(_value(expr, summed, step, world), truth, scope.single):
                return False
        except Exception:
            return False
    return True


def _classify_shape(finding: Finding, scope, node, summed, world) -> None:
    rule = finding.rule
    if not summed and rule.index is None and scope.gradient_of(rule.target):
        if _fixes(scope, rule, node, True, world):  # dW = h[t-1].T @ da[t]: step t's share
            finding.classification = (
                "the share of step t written as the total: the gradient sums it over t"
            )
            return
    for text, candidate in _variants(node, scope, finding.rule.target):
        if _fixes(scope, finding.rule, candidate, summed, world):
            finding.classification = text
            return


def _classify_value(scope, rule, node, summed, world, step) -> str | None:
    truth = _truth(scope, rule, step, world) if step is not None else None
    try:
        value = _value(scope.build(node), summed, step, world)
    except Exception:
        value = None
    if step is None and rule.index is None:
        truth = _truth(scope, rule, None, world)
    if scope.single and value is not None and truth is not None:
        value, truth = np.asarray(value, dtype=float), np.asarray(truth, dtype=float)
        if _squeezed(value) == _squeezed(truth):
            value, truth = value.ravel(), truth.ravel()
    if value is not None and truth is not None and np.shape(value) == np.shape(truth):
        if _close(-value, truth, scope.single):
            return "the sign is flipped"
        denom = float(np.sum(truth * truth))
        if denom > 0:
            alpha = float(np.sum(value * truth)) / denom
            if abs(alpha - 1) > 1e-6 and alpha != 0 and _close(value / alpha, truth, scope.single):
                return _factor(alpha, world.dims)
    missing = _missing_term(scope, rule, node, summed, world)
    if missing:
        return missing
    for text, candidate in _variants(node, scope, rule.target):
        if _fixes(scope, rule, candidate, summed, world):
            return text
    return None


def _factor(alpha: float, dims: Dims) -> str:
    """A constant factor, named when it is a size: "divided by N" rather than 0.333."""
    N, T = dims.N, dims.T
    named = {
        "divided by N": 1 / N,
        "divided by T": 1 / T,
        "divided by N*T": 1 / (N * T),
        "multiplied by N": N,
        "multiplied by T": T,
        "multiplied by N*T": N * T,
    }
    for text, value in named.items():
        if value != 1 and abs(alpha - value) <= 1e-9 * max(1.0, abs(value)):
            return f"{text} (a factor {alpha:.6g} at N={N}, T={T})"
    return f"off by a factor {alpha:.6g}"


def _missing_term(scope, rule, node, summed, world) -> str | None:
    """The rule equals the true one without one of its terms (the recurrent one, say)."""
    line = _true_line(scope, rule)
    if line is None:
        return None
    shift = rule.index.offset if rule.index is not None and rule.index.anchor == "t" else 0
    if shift:  # a rule written for dc[t-1]: the true line at t-1
        line = line.map(lambda e: _shifted(e, shift))

    printer = _printer(scope)
    future = [t for t in line.terms if t.source == "future"]
    for term in line.terms if len(line.terms) > 1 else ():
        rest = [t.expr for t in line.terms if t is not term]
        candidate = rest[0]
        for t in rest[1:]:
            candidate = candidate + t
        try:
            ours = scope.build(node)
        except AuditShapeError:
            return None
        ok = True
        for step in _steps(rule, world.dims.T):
            try:
                if not _close(
                    _value(ours, summed, step, world),
                    _value(candidate, line.summed, step, world),
                    scope.single,
                ):
                    ok = False
                    break
            except Exception:
                ok = False
                break
        if ok:
            what = printer.doprint(term.expr)
            if term.source == "future":
                return (
                    f"the recurrent term {what} is missing: a partial derivative written where "
                    "the total belongs"
                )
            return f"the term {what} is missing"
    if len(future) > 1 and len(future) < len(line.terms):  # every recurrent term missing
        rest = [t.expr for t in line.terms if t.source != "future"]
        candidate = rest[0]
        for e in rest[1:]:
            candidate = candidate + e
        try:
            ours = scope.build(node)
            same = all(
                _close(
                    _value(ours, summed, step, world),
                    _value(candidate, line.summed, step, world),
                    scope.single,
                )
                for step in _steps(rule, world.dims.T)
            )
        except Exception:
            same = False
        if same:
            what = " + ".join(printer.doprint(t.expr) for t in future)
            return (
                f"the recurrent terms {what} are missing: a partial derivative written where "
                "the total belongs"
            )
    return _missing_inner_term(scope, rule, node, summed, world, line, printer)


def _shifted(expr, k: int):
    from ..engine.matexpr import rebuild

    return rebuild(expr, lambda n: _moved(n, k))


def _moved(n, k: int):
    if isinstance(n, Indexed) and n.relative:
        return Indexed.make(n.base, n.shape, n.offset + k, "t", adjoint=n.adjoint)
    return None


def _missing_inner_term(scope, rule, node, summed, world, line, printer) -> str | None:
    """The rule equals the true one with an adjoint it reads cut short of its recurrent
    term (da[t] written with do[t] @ V.T where dh[t], with its path through step t+1,
    belongs)."""
    from ..engine.matexpr import rebuild

    try:
        ours = scope.build(node)
    except AuditShapeError:
        return None
    lines = {a.target.base: a for a in scope.form.adjoints}
    expr = line.expr
    for s in list(expr.symbols()):  # da[t] = dh[t] * (1 - h**2): dh's recurrent term is da's
        inner = lines.get(getattr(s, "base", None))
        if inner is None or not getattr(s, "relative", False) or not getattr(s, "adjoint", 0):
            continue
        if any(t.source == "future" for t in inner.terms):
            continue
        body = rebuild(inner.expr, lambda n, k=s.offset: _moved(n, k)) if s.offset else inner.expr
        expr = rebuild(expr, lambda n, s=s, body=body: body if n is s else None)
    for s in expr.symbols():
        inner = lines.get(getattr(s, "base", None))
        if inner is None or not getattr(s, "relative", False):
            continue
        future = [t for t in inner.terms if t.source == "future"]
        rest = [t.expr for t in inner.terms if t.source != "future"]
        if not future or not rest:
            continue
        short = rest[0]
        for e in rest[1:]:
            short = short + e
        if s.offset:
            short = rebuild(short, lambda n, k=s.offset: _moved(n, k))
        candidate = rebuild(expr, lambda n, s=s, short=short: short if n is s else None)
        try:
            same = all(
                _close(
                    _value(ours, summed, step, world),
                    _value(candidate, line.summed, step, world),
                    scope.single,
                )
                for step in _steps(rule, world.dims.T)
            )
        except Exception:
            continue
        if same:
            what = printer.doprint(future[0].expr)
            return (
                f"the recurrent term of {printer.doprint(s)} ({what}) is missing: a partial "
                "derivative written where the total belongs"
            )
    return None


def _initial_name(spec) -> str:
    """The name of the (first) initial state's input: h0, or a model file's own."""
    for state in spec.states:
        start = spec.initial_of(state)
        if start:
            return start
    return "h0"


def _true_line(scope: Scope, rule: Rule):
    name = scope.canonical(rule.target)
    form = scope.form
    parameter = scope.gradient_of(name)
    if parameter is not None:
        return form.gradients.get(parameter)
    for line in (*form.model, *form.adjoints):
        if line.target.base == name and rule.index is not None and rule.index.anchor == "t":
            return line
    if name.startswith("d") and name[1:] in {i.name for i in form.spec.sequences}:
        return form.gradients.get(name[1:])
    return None


def _reverse(scope: Scope) -> dict:
    return {model: author for author, model in scope.mapping.items()}


def _in_author_terms(expr: MatExpr, scope: Scope, depth: int = 3) -> MatExpr:
    """The expression with the adjoints the derivation never writes (da[t+1] where it only
    writes dh) replaced by their own lines, so that a correction reads in quantities the
    author uses; at most `depth` levels (a recurrence would never end)."""
    from ..engine.matexpr import rebuild

    known = scope.author_adjoints
    if not known or scope.spelling is None:  # the formula language names them all
        return expr
    lines = {line.target.base: line for line in scope.form.adjoints}
    for _ in range(depth):
        changed = False

        def inline(n):
            nonlocal changed
            if not (isinstance(n, Indexed) and n.adjoint and n.relative):
                return None
            if n.base in known or n.base not in lines:
                return None
            changed = True
            body = lines[n.base].expr
            return rebuild(body, lambda m, k=n.offset: _moved(m, k)) if n.offset else body

        expr = rebuild(expr, inline)
        if not changed:
            break
    return expr


def _printer(scope: Scope):
    """The printer of corrections: the formula language, LaTeX, or LaTeX in the author's own
    notation when the reader recorded it."""
    from ..derivation.printers import FormulaPrinter, LatexPrinter

    if not scope.latex:
        return FormulaPrinter(_reverse(scope))
    if scope.spelling is not None:
        from .spelling import AuthorPrinter

        return AuthorPrinter(scope.spelling, _reverse(scope), scope.adjoint_names)
    return LatexPrinter(_reverse(scope))


def _correction(scope: Scope, rule: Rule) -> str | None:
    """The rule as the engine derives it, in the author's names and convention, at the
    author's index (dh[t-1] = ... for a rule written for dh[t-1]); LaTeX for LaTeX input."""

    latex = scope.latex
    printer = _printer(scope)
    eq = " = "
    name = scope.canonical(rule.target)
    for line in scope.form.boundaries:
        target = line.target
        if target.base == name and rule.index is not None and rule.index.anchor != "t":
            return printer.rule(target, line.expr, eq=eq)
    line = _true_line(scope, rule)
    if line is None:
        return None
    shift = rule.index.offset if rule.index is not None and rule.index.anchor == "t" else 0
    target, expr = line.target, line.expr
    if shift:
        from ..engine.matexpr import rebuild

        def move(n):
            if isinstance(n, Indexed) and n.relative:
                return Indexed.make(n.base, n.shape, n.offset + shift, "t", adjoint=n.adjoint)
            return None

        target, expr = rebuild(target, move), rebuild(expr, move)
    expr = _in_author_terms(expr, scope)
    parameter = scope.gradient_of(name)
    if parameter is not None and rule.index is not None:  # dW_h[t]: one step's share
        body = printer.doprint(expr)
        label = f"d{_reverse(scope).get(parameter, parameter)}[t]"
        if latex:
            label = printer.total(rf"{{{printer.symbol(parameter)}}}^{{(t)}}")
        return f"{label}{eq}{body}"
    return printer.rule(target, expr, summed=line.summed, eq=eq)


def _say(scope: Scope | None, node) -> str:
    """A part of the author's rule, in the author's notation when it can be printed so."""
    if scope is not None and scope.spelling is not None:
        try:
            expr = scope.build(node)
            if not isinstance(expr, Deferred):
                return _printer(scope).doprint(expr)
        except Exception:
            pass
    return _short(node)


def _short(node) -> str:
    """A node written back in the formula language (for a finding's sentence)."""
    if isinstance(node, Name):
        return node.name
    if isinstance(node, Step):
        return f"{node.name}[{node.index.text()}]"
    if isinstance(node, Num):
        return f"{node.value:g}"
    if isinstance(node, Transposed):
        return f"{_short(node.arg)}.T"
    if isinstance(node, Neg):
        return f"-{_short(node.arg)}"
    if isinstance(node, Power):
        return f"{_short(node.arg)}**{node.exponent}"
    if isinstance(node, Call):
        return f"{node.function}({', '.join(_short(a) for a in node.args)})"
    if isinstance(node, Binary):
        return f"({_short(node.left)} {node.op} {_short(node.right)})"
    if isinstance(node, SumOverT):
        return f"sum(t, {_short(node.body)})"
    return "?"


def _shape(shape) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _used_sizes(d: Dims, world: _World | None = None) -> dict:
    """The sizes of `d` the model uses (a derivation's own model may not have H or C)."""
    sizes = d.as_dict()
    spec = world.form.spec if world is not None and world.form is not None else None
    if spec is None or not spec.from_file:
        return sizes
    keep = {"N", "T", *spec.size_names}
    return {k: v for k, v in sizes.items() if k in keep}


def _dims(d: Dims, world: _World | None = None) -> str:
    return " ".join(f"{k}={v}" for k, v in _used_sizes(d, world).items())
