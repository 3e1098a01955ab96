"""The author's model, from the author's own forward equations.

A derivation that states its forward pass (`h_t = \\tanh(W h_{t-1} + U x_t + b)`, `o_t = V h_t
+ c`, `L = \\sum_t L_t`) defines the model its backward rules are about. Those rules are
written here as a model file (docs/models.md): every name the rules use but never define is
an input (read at [t]: a per-step input; otherwise a weight, a bias or a size), every
quantity read at [t-1] is a state (starting from an input unless the author sets it to 0),
every shape is inferred from how the names are combined (sizes are named H for the state, D
for the input, C for the classes, K... for the rest), and the loss is the author's, or the
cross-entropy of the logits a softmax turns into probabilities, or, for a loss left abstract
(`\\ell(o_t, y_t)`), a given gradient. The file is then read and checked like any model file:
its derivatives agree with differences of its own equations before anything is judged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

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
    text_of,
)

__all__ = ["AuthorModel", "author_model", "LOSS_NAMES", "classify"]

#: Names a loss goes by (a derivation's own is found from its definition).
LOSS_NAMES = ("L", "J", "E", "C", "ell", "l", "mathcalL", "Loss", "loss")
_FUNCTIONS = {"tanh", "sigmoid", "relu", "exp", "log", "identity", "softmax", "onehot"}
_FUNCTIONS |= {"sum", "sum_all", "sum_rows", "sum_cols", "colblock", "rowblock", "hstack"}
_FUNCTIONS |= {"vstack", "cross_entropy", "concat", "pick", "sum_examples", "sum_entries", "prod"}
_SIZE_NAMES = ("N", "T")


@dataclass
class AuthorModel:
    """The model the derivation's forward lines define, or why there is none."""

    spec: object | None
    #: One sentence for the report: how the model was found, or why the default was used.
    how: str
    #: The rules that define the model (by id), judged as definitions, not as claims.
    forward: set[int] = field(default_factory=set)
    #: Forward lines the model cannot express: (rule, reason), each a line not read.
    problems: list[tuple[Rule, str]] = field(default_factory=list)
    #: The model file written for it.
    text: str = ""
    #: Inputs that the author sets to 0 (h_0 = 0) but whose gradient a rule states: the
    #: model takes them as inputs, the audit's points hold them at 0.
    zeros: tuple[str, ...] = ()
    #: Rules not judged (a second definition of a quantity): their problem says why.
    excluded: set[int] = field(default_factory=set)
    #: Numbers the derivation names (epsilon = 1e-5): no claim, listed as skipped.
    constants: tuple[Rule, ...] = ()
    #: Names that stand for an expression of the model (a weight's block): name -> node.
    rewrites: dict = field(default_factory=dict)
    #: The rules read as the forward pass (also when no model could be made of them).
    forward_rules: tuple = ()
    forward_texts: frozenset = frozenset()


def _walk(node) -> Iterable:
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        if isinstance(n, Binary):
            stack += [n.left, n.right]
        elif isinstance(n, (Neg, Transposed, Power)):
            stack.append(n.arg)
        elif isinstance(n, (SumOverT, Over)):
            stack.append(n.body)
        elif isinstance(n, Call):
            stack += list(n.args)


def _names(node) -> set[str]:
    return {n.name for n in _walk(node) if isinstance(n, (Name, Step))}


def classify(rules: list[Rule], loss_names: Iterable[str] = LOSS_NAMES) -> tuple[list, list]:
    """(forward rules, backward rules): a rule is backward when it or what it reads is an
    adjoint (dX of a name the derivation uses, or a quantity a backward rule defines)."""
    used = set()
    for r in rules:
        used.add(r.target)
        used |= _names(r.expr)
    adjoint = {
        n
        for n in used
        if n.startswith("d")
        and len(n) > 1
        and (
            n[1:] in used
            or len(n) <= 3
            or _weight_like(n[1:])
            or re.sub(r"_(next|prev)$", "", n[1:]) in used  # dc_next: an error signal of c
            or n[1:].lower() in {u.lower() for u in used}  # dgamma_f beside Gamma_f
        )
        and n not in ("delta", "dt")
    }
    adjoint |= {n for n in used if n.startswith("d") and n[1:] in loss_names}
    backward_names = set(adjoint)
    targets = {r.target for r in rules if not r.claim}
    # The labels enter only the loss: any other quantity read from them (an output error
    # delta_o = yhat - y) is backward.
    for r in rules:
        if (
            r.target not in loss_names
            and not r.claim
            and _labels(r.expr, targets) is not None
            and r.index is not None
        ):
            backward_names.add(r.target)
    changed = True
    while changed:
        changed = False
        for r in rules:
            if r.target in backward_names:
                continue
            if _names(r.expr) & backward_names or _adjoint_boundary(r):
                backward_names.add(r.target)
                changed = True
    for r in rules:
        if not r.claim and _derivatives(r.expr):
            backward_names.add(r.target)
    forward = [r for r in rules if r.target not in backward_names and not r.claim]
    backward = [r for r in rules if r.target in backward_names or r.claim]
    return forward, backward


def _derivatives(node) -> bool:
    """The tree holds a Jacobian or one loss term's derivative: a backward rule's."""
    return any(
        isinstance(n, Call) and n.function in ("jac", "jacplus", "grad") for n in _walk(node)
    )


def _adjoint_boundary(rule: Rule) -> bool:
    return rule.index is not None and rule.index.anchor == "T" and rule.index.offset > 0


def author_model(
    rules: list[Rule],
    convention: str | None,
    loss_names: Iterable[str] = LOSS_NAMES,
    where=None,
) -> AuthorModel:
    """The model of the derivation's forward rules (a ModelSpec read and checked like any
    model file), or an AuthorModel without a spec saying why not; either way the rules read
    as the forward pass."""
    loss_names = tuple(loss_names)
    model = _author_model(rules, convention, loss_names, where or (lambda n: f"line {n}"))
    forward, _ = classify(rules, loss_names)
    steps = [r for r in forward if r.index is not None and r.index.anchor == "t"]
    model.forward_rules = tuple(steps)
    model.forward_texts = frozenset(r.text for r in steps)
    return model


def _author_model(
    rules: list[Rule],
    convention: str | None,
    loss_names: Iterable[str] = LOSS_NAMES,
    where=lambda n: f"line {n}",
) -> AuthorModel:
    """The model of the derivation's forward rules (a ModelSpec read and checked like any
    model file), or an AuthorModel without a spec saying why not."""
    loss_names = tuple(loss_names)
    forward, backward = classify(rules, loss_names)
    steps = [r for r in forward if r.index is not None and r.index.anchor == "t"]
    if not steps:
        return AuthorModel(None, "the derivation states no forward equations")
    states_loss = any(r.target in loss_names for r in forward)
    if not backward and not states_loss:  # a few equations, no loss: claims about the default
        return AuthorModel(
            None, "the derivation has no backward rules: its equations are judged as claims"
        )
    problems: list[tuple[Rule, str]] = []
    excluded: set[int] = set()
    constants: list[Rule] = []
    blocks: list[Rule] = []
    defined: dict[str, Rule] = {}
    boundaries: dict[str, str] = {}
    loss_total, loss_step = None, None
    used_rules: set[int] = set()
    arguments: list[str] = []
    for r in forward:
        if r.index is None and r.target in loss_names:
            loss_total = loss_total or r
            used_rules.add(id(r))
        elif r.index is not None and r.index.anchor == "t" and r.index.offset == 0:
            if r.target in loss_names:
                loss_step = loss_step or r
                used_rules.add(id(r))
            elif r.target in defined and _names_argument(defined[r.target], r, defined):
                # f[t] = sigmoid(a_f[t]) after f[t] = sigmoid(W_f @ z[t] + b_f): a_f names
                # the argument
                first = defined[r.target]
                argument = r.expr.args[0].name
                defined[argument] = Rule(argument, r.index, first.expr.args[0], r.line, r.text)
                defined[r.target] = Rule(r.target, first.index, r.expr, first.line, first.text)
                arguments.append(argument)
                used_rules.add(id(r))
            elif r.target in defined:
                first = defined[r.target]
                if first.line != r.line:  # h_t = ReLU(a_t) in an exercise, after h_t = tanh
                    problems.append(
                        (
                            r,
                            f"{r.label} is defined again ({where(first.line)} defines it): a "
                            "variant or an exercise, not judged",
                        )
                    )
                    excluded.add(id(r))
                continue  # a chain's other members: the first defines it
            else:
                defined[r.target] = r
                used_rules.add(id(r))
        elif r.index is not None and r.index.anchor is None and r.index.offset == 0:
            value = r.expr
            if isinstance(value, Num) and value.value == 0:
                boundaries[r.target] = "0"
            elif isinstance(value, (Name, Step)):
                boundaries[r.target] = value.name
            else:
                problems.append((r, "a state's boundary is an input or 0"))
                continue
            used_rules.add(id(r))
        elif r.index is None and _block_naming(r):  # W_f = [W_fh, W_fx]: names its blocks
            excluded.add(id(r))
            blocks.append(r)
        elif r.index is None and _constant(r.expr):  # epsilon = 10**-5: a constant, no claim
            excluded.add(id(r))
            constants.append(r)
        else:
            problems.append((r, f"a forward rule defines a quantity at step t, not at {r.label}"))
    unknown = {
        n.function
        for r in defined.values()
        for n in _walk(r.expr)
        if isinstance(n, Call) and n.function not in _FUNCTIONS
    }
    if unknown:
        names = ", ".join(sorted(unknown))
        return AuthorModel(
            None,
            f"the forward equations use {names}, which is no function symbptt knows: say "
            f"which with --map (e.g. --map {sorted(unknown)[0]}=tanh)",
        )
    defined, named_notes = _named_subexpressions(defined)
    defined, more = _arguments_by_analogy(defined, arguments, backward)
    if arguments:
        named_notes.append(
            f"{', '.join(arguments + more)} read as the arguments of "
            f"{', '.join(_argument_of(defined, a) for a in arguments + more)}"
        )
    defined = _named_logits(defined)
    defined = _named_arguments(defined, backward)
    states = sorted(
        {
            n.name
            for r in defined.values()
            for n in _walk(r.expr)
            if isinstance(n, Step) and n.index == Index("t", -1) and n.name in defined
        }
    )
    (factor, loss), notes = _loss(loss_total, loss_step, defined, loss_names)
    notes = [*named_notes, *notes]
    per_step_inputs: set[str] = set()
    weights: set[str] = set()
    for body in [r.expr for r in defined.values()] + ([loss] if loss is not None else []):
        for n in _walk(body):
            if isinstance(n, Step) and n.name not in defined:
                per_step_inputs.add(n.name)
            elif isinstance(n, Name) and n.name not in defined and n.name not in _SIZE_NAMES:
                weights.add(n.name)
    if not states:
        return AuthorModel(
            None,
            "the forward equations state no recurrence (no quantity read at step t-1)",
        )
    # Every name the backward rules use must be the model's, an adjoint of one, or a
    # quantity of their own: dW_x or W_h that the forward lines never mention means they do
    # not state the whole model (a derivation quoting a few forward lines).
    rewrites, block_notes = _block_rewrites(blocks, defined, where)
    notes = [*notes, *block_notes]
    known = {*defined, *weights, *per_step_inputs, *boundaries.values(), *loss_names, *rewrites}
    known |= {*_SIZE_NAMES, "ones", "D", "H", "C"} | {s + "0" for s in states}
    own = {r.target for r in backward if not r.claim}
    for r in backward:
        if r.claim:
            continue
        for name in sorted(_names(r.expr) | {r.target}):
            base = name[1:] if name.startswith("d") else name
            if name in known or base in known or name.removeprefix("n_") in known:
                continue
            if name in own and not (name.startswith("d") and _weight_like(base)):
                continue  # a backward quantity of the author's own (delta, dtanh)
            if base in own:
                continue
            if loss_total is not None or loss_step is not None:
                # the forward lines state a loss: they are the model, a name they never
                # mention is a rule's problem (its finding says which --map may name it)
                notes.append(
                    f"the backward rules use {name}, which the forward equations never mention"
                )
                continue
            return AuthorModel(
                None,
                f"the backward rules use {name}, which the forward equations never "
                "mention: they do not state the whole model",
            )
    labels = _labels(loss) if loss is not None and _class_labels(loss) else None
    # h_0 = 0: h0 is an input held at 0 (so that dL/dh_0 and dh_1/dh_0 exist).
    zeros = []
    for state in states:
        if boundaries.get(state) == "0" and state + "0" not in weights | per_step_inputs:
            boundaries[state] = state + "0"
            zeros.append(state + "0")
    # A quantity the loss does not read (yhat = softmax(o) beside the cross-entropy of o) is
    # no part of the model file: the audit computes it from its own line.
    live = _reaching(defined, [loss] if loss is not None else [], states)
    defined = {k: v for k, v in defined.items() if k in live}
    per_step_inputs = {n for n in per_step_inputs if _read_by(n, defined, loss)}
    weights = {n for n in weights if _read_by(n, defined, loss)}
    text_lines = []
    try:
        bodies = [r.expr for r in defined.values()] + ([loss] if loss is not None else [])
        convention = convention or _convention(bodies)
        text_lines = _declarations(
            defined, states, boundaries, per_step_inputs, weights, labels, convention, loss
        )
        for state in states:
            start = boundaries.get(state)
            text_lines.append(f"{state}[0] = {start if start is not None else state + '0'}")
        stack = "vstack" if convention == "column" else "hstack"
        for name, r in defined.items():
            text_lines.append(f"{name}[t] = {text_of(_concatenated(r.expr, stack))}")
        if loss is not None:
            scale = f"({text_of(_scalar_products(factor))}) * " if factor is not None else ""
            text_lines.append(f"L = {scale}sum(t, {text_of(loss)})")
        text, spec = _read(text_lines, convention)
    except _Unreadable as exc:
        return AuthorModel(None, str(exc), problems=problems)
    notes = list(dict.fromkeys(notes))  # each sentence once
    how = (
        f"the model of the derivation's own forward equations ({len(used_rules)} lines"
        + (f"; {'; '.join(notes)}" if notes else "")
        + ")"
    )
    return AuthorModel(
        spec, how, used_rules, problems, text, tuple(zeros), excluded, tuple(constants), rewrites
    )


def _block_naming(rule: Rule) -> bool:
    """W_f = concat(W_fh, W_fx): a weight named block by block."""
    e = rule.expr
    return (
        isinstance(e, Call)
        and e.function in ("concat", "hstack", "vstack")
        and len(e.args) > 1
        and all(isinstance(a, Name) for a in e.args)
    )


def _block_rewrites(blocks: list, defined: dict, where=None) -> tuple[dict, list[str]]:
    """Each block's name -> block(W, k, parts...) where the forward rules multiply W by
    concat(parts...): W_fh is the part of W_f that multiplies h[t-1]."""
    rewrites: dict = {}
    notes: list[str] = []
    for r in blocks:
        weight = r.target
        parts = None
        for d in defined.values():
            for n in _walk(d.expr):
                if isinstance(n, Binary) and n.op == "@":
                    for w, v in ((n.left, n.right), (n.right, n.left)):
                        if (
                            isinstance(w, Name)
                            and w.name == weight
                            and isinstance(v, Call)
                            and v.function in ("concat", "hstack", "vstack")
                            and len(v.args) == len(r.expr.args)
                        ):
                            parts = v.args
        if parts is None:
            continue
        for k, block in enumerate(r.expr.args, start=1):
            rewrites[block.name] = Call("block", (Name(weight), Num(k), *parts))
        at = where(r.line) if where is not None else f"line {r.line}"
        notes.append(
            f"{', '.join(a.name for a in r.expr.args)} read as the blocks of {weight} ({at})"
        )
    return rewrites, notes


def _constant(node) -> bool:
    """A number written out: 10**-5, 0.5, 1 / 2."""
    if isinstance(node, Num):
        return True
    if isinstance(node, Neg):
        return _constant(node.arg)
    if isinstance(node, Power):
        return _constant(node.arg)
    if isinstance(node, Binary):
        return _constant(node.left) and _constant(node.right)
    return False


def _reaching(defined: dict, roots: list, states: list) -> set[str]:
    """The quantities the loss (and the recurrence) reads, directly or through others."""
    todo = [n for body in roots for n in _names(body)] + list(states)
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name not in defined:
            continue
        seen.add(name)
        todo += list(_names(defined[name].expr))
    return seen


def _read_by(name: str, defined: dict, loss) -> bool:
    bodies = [r.expr for r in defined.values()] + ([loss] if loss is not None else [])
    return any(name in _names(b) for b in bodies)


#: The functions whose argument an author may name with a hat (f = sigma(fhat)).
_ACTIVATIONS = ("sigmoid", "tanh", "relu", "identity", "exp")


def _named_arguments(defined: dict, backward: list) -> dict:
    """f[t] = sigmoid(W_f @ v + b_f) with backward rules about fhat (the argument, never
    named in the forward lines): fhat[t] = W_f @ v + b_f, f[t] = sigmoid(fhat[t])."""
    used = set()
    for r in backward:
        used |= _names(r.expr) | {r.target}
    wanted = set()
    for name in used:
        base = name[1:] if name.startswith("d") and name[1:].endswith("hat") else name
        if base.endswith("hat") and base not in defined:
            wanted.add(base[: -len("hat")])
    own = {r.target for r in backward if not r.claim and r.target.startswith("d")}
    forward_names = set(defined) | {n for r in defined.values() for n in _names(r.expr)}
    signals = {
        n
        for n in own
        if n[1:] not in forward_names
        and n[1:].removesuffix("hat") not in forward_names
        and not n[1:].endswith("0")  # dh0: the initial state's gradient
    }
    if signals:  # dgamma_f, dp_ctilde: error signals of the author's own; what they may be
        # (the gradient of an activation's argument) must be a quantity of the model
        wanted |= set(defined)
    out: dict = {}
    for name, r in defined.items():
        expr = r.expr
        if (
            name in wanted
            and r.index == Index("t", 0)
            and isinstance(expr, Call)
            and expr.function in _ACTIVATIONS
            and len(expr.args) == 1
            and not isinstance(expr.args[0], Step)
        ):
            at_t = Index("t", 0)
            out[name + "hat"] = Rule(name + "hat", at_t, expr.args[0], r.line, r.text)
            r = Rule(
                r.target, r.index, Call(expr.function, (Step(name + "hat", at_t),)), r.line, r.text
            )
        out[name] = r
    return out


def _names_argument(first: Rule, again: Rule, defined: dict) -> bool:
    """f[t] = sigmoid(a_f[t]) after f[t] = sigmoid(E): the second line names E a_f."""
    one, two = first.expr, again.expr
    return (
        isinstance(one, Call)
        and isinstance(two, Call)
        and one.function == two.function
        and one.function in _ACTIVATIONS
        and len(one.args) == len(two.args) == 1
        and not isinstance(one.args[0], Step)
        and isinstance(two.args[0], Step)
        and two.args[0].index == Index("t", 0)
        and two.args[0].name not in defined
    )


def _argument_of(defined: dict, name: str) -> str:
    for other, r in defined.items():
        e = r.expr
        if isinstance(e, Call) and e.args and e.args[0] == Step(name, Index("t", 0)):
            return other
    return "?"


def _arguments_by_analogy(defined: dict, arguments: list, backward: list) -> tuple[dict, list]:
    """a_f names f's argument ("and so on"): a_i, a_o, a_C that the backward rules use and no
    line defines are the arguments of the gates they are named after (the gate i, or the
    layer whose weight is W_C)."""
    if not arguments:
        return defined, []
    prefixes = set()
    for a in arguments:
        gate = _argument_of(defined, a)
        if a.endswith("_" + gate):
            prefixes.add(a[: -len(gate)])
    used = set()
    for r in backward:
        for n in _names(r.expr) | {r.target}:
            used.add(n[1:] if n.startswith("d") else n)
    out = dict(defined)
    more = []
    for name in sorted(used - set(defined)):
        prefix = next((p for p in prefixes if name.startswith(p) and len(name) > len(p)), None)
        if prefix is None:
            continue
        letter = name[len(prefix) :]
        gates = []
        for gate, r in defined.items():
            e = r.expr
            if not (
                r.index == Index("t", 0)
                and isinstance(e, Call)
                and e.function in _ACTIVATIONS
                and len(e.args) == 1
                and not isinstance(e.args[0], Step)
            ):
                continue
            weights = {n for n in _names(e.args[0]) if n.endswith("_" + letter)}
            if gate == letter or weights:
                gates.append(gate)
        if len(gates) != 1:
            continue
        gate = gates[0]
        r = out[gate]
        at_t = Index("t", 0)
        out[name] = Rule(name, at_t, r.expr.args[0], r.line, r.text)
        out[gate] = Rule(gate, r.index, Call(r.expr.function, (Step(name, at_t),)), r.line, r.text)
        more.append(name)
    return out, more


def _named_subexpressions(defined: dict) -> tuple[dict, list[str]]:
    """a[t] = W @ h[t-1] + U @ x[t] + b beside h[t] = tanh(W @ h[t-1] + U @ x[t] + b), z[t] =
    concat(h[t-1], x[t]) beside f[t] = sigmoid(W_f @ concat(h[t-1], x[t]) + b_f): a quantity
    the derivation names for an expression its other forward lines write out is that
    expression there (h[t] = tanh(a[t])), so that its gradient is one of the model's."""
    from .notation import _map

    names = {}
    for name, r in defined.items():
        if r.index == Index("t", 0) and isinstance(r.expr, (Binary, Call)):
            if r.expr not in names.values():
                names[name] = r.expr
    if not names:
        return defined, []
    out: dict = {}
    used: list[str] = []
    for name, r in defined.items():
        expr = r.expr
        for other, body in names.items():
            if other == name or other in _names(body):
                continue

            def named(n, other=other, body=body):
                if n == body:
                    return Step(other, Index("t", 0), getattr(n, "at", 0))
                return None

            new = _map(expr, named)
            if new != expr:
                expr = new
                if other not in used:
                    used.append(other)
        out[name] = r if expr is r.expr else Rule(r.target, r.index, expr, r.line, r.text)
    notes = [f"{n} read where its expression is written out" for n in used]
    return out, notes


def _named_logits(defined: dict) -> dict:
    """yhat[t] = softmax(V @ s[t]): the logits named (o, or o_yhat when o is taken), so that
    the loss can be the cross-entropy of them."""
    out: dict = {}
    used = set(defined) | {
        n.name for r in defined.values() for n in _walk(r.expr) if isinstance(n, (Name, Step))
    }
    for name, r in defined.items():
        expr = r.expr
        if (
            isinstance(expr, Call)
            and expr.function == "softmax"
            and not isinstance(expr.args[0], Step)
        ):
            logits = "o" if "o" not in used else f"o_{name}"
            used.add(logits)
            at_t = Index("t", 0)
            out[logits] = Rule(logits, at_t, expr.args[0], r.line, r.text)
            r = Rule(r.target, r.index, Call("softmax", (Step(logits, at_t),)), r.line, r.text)
        out[name] = r
    return out


def _concatenated(node, stack: str):
    """concat(h[t-1], x[t]) as the model file writes it in the convention: hstack of rows,
    vstack of columns."""
    if isinstance(node, Call):
        args = tuple(_concatenated(a, stack) for a in node.args)
        return Call(stack if node.function == "concat" else node.function, args, node.at)
    if isinstance(node, Binary):
        return Binary(node.op, _concatenated(node.left, stack), _concatenated(node.right, stack))
    if isinstance(node, (Neg, Transposed)):
        return type(node)(_concatenated(node.arg, stack))
    if isinstance(node, Power):
        return Power(_concatenated(node.arg, stack), node.exponent)
    return node


def _weight_like(name: str) -> bool:
    """W_x, U, V, b_h, c: what the gradient dW_x of a rule's target is the gradient of."""
    return bool(name) and (
        name[0].isupper() or name.startswith(("b_", "W", "U", "V")) or name in ("b", "c")
    )


class _Unreadable(Exception):
    pass


def _convention(bodies) -> str:
    """Row when per-step quantities multiply weights from the left (h W), column when from
    the right (W h)."""
    row = column = 0
    for body in bodies:
        for n in _walk(body):
            if isinstance(n, Binary) and n.op == "@":
                if isinstance(n.left, Step) and isinstance(n.right, Name):
                    row += 1
                elif isinstance(n.left, Name) and isinstance(n.right, Step):
                    column += 1
    return "column" if column > row else "row"


def _loss(total: Rule | None, step: Rule | None, defined: dict, loss_names) -> tuple:
    """The per-step loss as a model file writes it (a constant factor of the sum kept as
    `(factor, body)`), and notes on how it was read."""
    body, factor = None, None
    notes: list[str] = []
    if total is not None:
        factor, body = _factor_sum(total.expr)
        if isinstance(body, Step) and body.name in loss_names:
            body = step.expr if step is not None else None
    elif step is not None:
        body = step.expr
    if body is not None:
        abstract = _abstract(body, defined)
        if abstract is not None:
            notes.append("its loss left abstract: dL/d" + abstract + " is given")
            given = Binary("*", Step("g_" + abstract, Index("t", 0)), Step(abstract, Index("t", 0)))
            return (factor, Call("sum", (given,))), notes
        entropy = _cross_entropy(body, defined)
        if entropy is not None:
            logits, labels = entropy
            if _log_sign(body) > 0:  # log(p[y]) summed: minus the cross-entropy
                factor = _times(Num(-1), factor)
            probs = next(
                (
                    name
                    for name, r in defined.items()
                    if isinstance(r.expr, Call)
                    and r.expr.function == "softmax"
                    and r.expr.args[0] == Step(logits, Index("t", 0))
                ),
                None,
            )
            what = f"softmax({logits})" if probs is None or "_" not in logits else probs
            notes.append(f"its loss read as the cross-entropy of {what} with {labels}")
            at_t = Index("t", 0)
            return (factor, Call("cross_entropy", (Step(logits, at_t), Step(labels, at_t)))), notes
        if not _class_labels(body):
            return (factor, body), notes
    # No loss line read: the cross-entropy of the softmax's logits, if the model has one.
    for name, r in defined.items():
        if isinstance(r.expr, Call) and r.expr.function == "softmax":
            arg = r.expr.args[0]
            if isinstance(arg, Step):
                notes.append(
                    f"no loss line read: the cross-entropy of {name} = softmax({arg.name}) with "
                    "labels y assumed"
                )
                return (None, Call("cross_entropy", (arg, Step("y", Index("t", 0))))), notes
    return (None, None), notes


def _factor_sum(node) -> tuple:
    """c * sum(t, body) (or -sum, sum / c, sum(t, .) * c): (c or None, body); (None, None)
    when the node is no such sum."""
    if isinstance(node, SumOverT):
        return None, node.body
    if isinstance(node, Neg):
        factor, body = _factor_sum(node.arg)
        return _times(Num(-1), factor), body
    if isinstance(node, Binary) and node.op in ("*", "@", "/"):
        if node.op != "/" and not _has_sum(node.left):
            factor, body = _factor_sum(node.right)
            if body is not None:
                return _times(node.left, factor), body
        if not _has_sum(node.right):
            factor, body = _factor_sum(node.left)
            if body is not None:
                right = node.right if node.op != "/" else Binary("/", Num(1), node.right)
                return _times(right, factor), body
    return None, None


def _scalar_products(node):
    """1 / (N @ T) -> 1 / (N * T): sizes written side by side (\\frac{1}{NT}) multiply."""
    if isinstance(node, Binary):
        left, right = _scalar_products(node.left), _scalar_products(node.right)
        op = "*" if node.op == "@" and _scalar(left) and _scalar(right) else node.op
        return Binary(op, left, right, node.at)
    if isinstance(node, Neg):
        return Neg(_scalar_products(node.arg), node.at)
    return node


def _scalar(node) -> bool:
    if isinstance(node, Num):
        return True
    if isinstance(node, Name):
        return node.name in ("N", "T")
    if isinstance(node, Binary):
        return _scalar(node.left) and _scalar(node.right)
    return isinstance(node, Neg) and _scalar(node.arg)


def _times(a, b):
    return a if b is None else Binary("*", a, b)


def _has_sum(node) -> bool:
    return any(isinstance(n, SumOverT) for n in _walk(node))


def _cross_entropy(body, defined) -> tuple[str, str] | None:
    """-log(pick(P, y)), -y.T @ log(P), -sum(y * log(P)), cross_entropy(o, y): the
    cross-entropy of the logits whose softmax P is, with labels y."""
    for n in _walk(body):
        if isinstance(n, Call) and n.function == "cross_entropy" and len(n.args) == 2:
            o, y = n.args
            if isinstance(o, Step) and isinstance(y, Step):
                return o.name, y.name
    logits = None
    for n in _walk(body):
        if isinstance(n, Call) and n.function == "log" and n.args:
            arg = n.args[0]
            if isinstance(arg, Call) and arg.function == "pick":
                arg = arg.args[0]
            logits = logits or _softmax_of(arg, defined)
    if logits is None:
        return None
    labels = _labels(body, defined)
    if labels is None:
        return None
    return logits, labels


def _log_sign(body) -> int:
    """+1 when the body is the log-likelihood (log p[y], y.T @ log p), -1 when it is its
    negative (the cross-entropy as written: -log p[y], -y.T @ log p)."""
    return _path_sign(body) or 1


def _path_sign(node) -> int | None:
    """The sign in front of the log in a product of factors (None: no log below)."""
    if isinstance(node, Call) and node.function == "log":
        return 1
    if isinstance(node, Neg):
        inner = _path_sign(node.arg)
        return None if inner is None else -inner
    if isinstance(node, Call) and node.function in (
        "sum",
        "sum_all",
        "sum_examples",
        "sum_entries",
        "pick",
    ):
        return _path_sign(node.args[0])
    if isinstance(node, Binary) and node.op in ("*", "@", "/"):
        for side, other in ((node.left, node.right), (node.right, node.left)):
            inner = _path_sign(side)
            if inner is not None:
                return inner * _factor_sign(other)
    return None


def _factor_sign(node) -> int:
    if isinstance(node, Neg):
        return -_factor_sign(node.arg)
    if isinstance(node, Num):
        return 1 if node.value >= 0 else -1
    if isinstance(node, Transposed):
        return _factor_sign(node.arg)
    if isinstance(node, Binary) and node.op in ("*", "@", "/"):
        return _factor_sign(node.left) * _factor_sign(node.right)
    return 1


def _softmax_of(node, defined) -> str | None:
    """The logits o of P = softmax(o) (P a quantity the forward rules define, or the call)."""
    if isinstance(node, Step) and node.name in defined:
        node = defined[node.name].expr
    if isinstance(node, Call) and node.function == "softmax" and isinstance(node.args[0], Step):
        return node.args[0].name
    return None


def _class_labels(body) -> bool:
    """The loss uses labels as classes (a pick, a one-hot, a cross-entropy)."""
    return any(
        isinstance(n, Call) and n.function in ("pick", "onehot", "cross_entropy")
        for n in _walk(body)
    )


def _abstract(body, defined) -> str | None:
    """`l(o[t], y[t])`: a loss left abstract, differentiated by its first argument."""
    if isinstance(body, Call) and body.function not in _FUNCTIONS and body.args:
        first = body.args[0]
        if isinstance(first, Step) and first.name in defined:
            return first.name
    return None


def _labels(body, defined: Iterable[str] = ()) -> str | None:
    """The class labels a tree reads: in a one-hot, a pick or a cross-entropy, or (a loss
    written y.T @ log(p)) an input named as labels are (never a quantity a rule defines:
    min-char-rnn's logits are y)."""
    if body is None:
        return None
    for n in _walk(body):
        if isinstance(n, Call) and n.function in ("onehot", "cross_entropy", "pick"):
            arg = n.args[0] if n.function == "onehot" else n.args[-1]
            if isinstance(arg, Call) and arg.args:
                arg = arg.args[0]
            if isinstance(arg, Step):
                return arg.name
    defined = set(defined)
    for n in _walk(body):
        if (
            isinstance(n, Step)
            and n.name in ("y", "Y", "target", "targets", "labels")
            and n.name not in defined
        ):
            return n.name
    return None


def _ranks(rules) -> dict[str, int]:
    """Each weight's rank: 2 when it multiplies (@) or is transposed, else 1 (a bias, or a
    vector multiplied entry by entry)."""
    rank: dict[str, int] = {}
    for body in rules:
        for n in _walk(body):
            if isinstance(n, Binary) and n.op == "@":
                for side in (n.left, n.right):
                    if isinstance(side, Name):
                        rank[side.name] = 2
                    if isinstance(side, Transposed) and isinstance(side.arg, Name):
                        rank[side.arg.name] = 2
            elif isinstance(n, Name):
                rank.setdefault(n.name, 1)
    return rank


def _declarations(defined, states, boundaries, per_step, weights, labels, convention, loss=None):
    """Declarations with unknown sizes `_S1`, `_S2` ..."""
    counter = iter(range(1, 10_000))
    lines = []
    rank = _ranks([r.expr for r in defined.values()] + ([loss] if loss is not None else []))
    for name in sorted(per_step):
        if name == labels:
            lines.append(f"{name}[t]: (N,) in _S{next(counter)}")
        elif name.startswith("g_"):
            lines.append(f"{name}[t]: " + _per_step(f"_S{next(counter)}", convention))
        else:
            lines.append(f"{name}[t]: " + _per_step(f"_S{next(counter)}", convention))
    for name in sorted(weights):
        if rank.get(name, 1) == 2:
            lines.append(f"{name}: (_S{next(counter)}, _S{next(counter)})")
        else:
            lines.append(f"{name}: (_S{next(counter)},)")
    for state in states:
        start = boundaries.get(state)
        if start is None:
            start = state + "0"
        if start != "0" and start not in weights:
            lines.append(f"{start}: " + _per_step(f"_S{next(counter)}", convention))
    return lines


def _per_step(size: str, convention: str) -> str:
    return f"(N, {size})" if convention == "row" else f"({size}, N)"


_NICE = ("H", "D", "C", "K", "M", "P", "Q", "R")


def _read(lines: list[str], convention: str):
    """Read the model with unknown sizes, name them, read it again (strictly) and make it a
    spec; _Unreadable with the reader's sentence when it does not read."""
    from ..models.filespec import spec_of
    from ..models.modelfile import UNKNOWN_SIZE, ModelFileError, read_model

    text = "\n".join(lines) + "\n"
    try:
        guessed = read_model(text, convention=convention, infer=True)
    except ModelFileError as exc:
        raise _Unreadable(_sentence(exc)) from None
    free: list[str] = []
    for value in guessed.solution.values():
        for name in re.findall(r"_S\d+", str(value)):
            if name not in free:
                free.append(name)
    # H for the first state's width, D for the first input's, C for the classes, then K...
    used_names = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text))
    order: list[str] = []
    for state in guessed.states:
        for d in guessed.shape(state)[1:]:
            order += [n for n in re.findall(r"_S\d+", str(d)) if n in free]
    for d in guessed.declarations:
        for dim in (*d.shape, *([d.bound] if d.bound is not None else [])):
            order += [n for n in re.findall(r"_S\d+", str(dim)) if n in free]
    order = list(dict.fromkeys([*order, *free]))
    names: dict[str, str] = {}
    bounds = {str(_resolved(d.bound, guessed)) for d in guessed.declarations if d.bound}
    # Each size by its role (the state's width H, the input's D, the classes C); a letter the
    # derivation uses for a quantity (Colah's C_t, a lab's H_t) is never a size, and the
    # letters of the other roles are not taken for it (the author's D stays the input's).
    roles: dict[str, str] = {}
    for state in guessed.states:
        for d in guessed.shape(state)[1:]:
            for n in re.findall(r"_S\d+", str(_resolved(d, guessed))):
                roles.setdefault(n, "H")
    for line in lines:
        m = re.match(r"^([A-Za-z][A-Za-z0-9_]*)\[t\]: \((?:N, )?(_S\d+)(?:, N)?\)$", line)
        if m is not None and not m.group(1).startswith("g_"):
            for n in re.findall(r"_S\d+", str(_resolved(m.group(2), guessed))):
                roles.setdefault(n, "D")
    for n in bounds:
        roles.setdefault(n, "C")
    others = [n for n in _NICE if n not in ("H", "D", "C") and n not in used_names]
    for unknown in order:
        pick = roles.get(unknown)
        if pick is None or pick in used_names or pick in names.values():
            pick = others.pop(0) if others else f"K{len(names) + 1}"
        names[unknown] = pick

    def named(dim) -> str:
        return re.sub(r"_S\d+", lambda m: names.get(m.group(), m.group()), str(dim))

    final = []
    for line in lines:
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*(\[t\])?): (.*)$", line)
        if m is None:
            final.append(line)
            continue
        decl = guessed.declaration(m.group(1).split("[")[0])
        shape = decl.shape if convention == "row" else _column(decl.shape)
        dims = ", ".join(named(_resolved(d, guessed)) for d in shape)
        dims = f"({dims},)" if len(shape) == 1 else f"({dims})"
        bound = f" in {named(_resolved(decl.bound, guessed))}" if decl.bound is not None else ""
        final.append(f"{m.group(1)}: {dims}{bound}")
    text = "\n".join(final) + "\n"
    if UNKNOWN_SIZE.search(text):
        raise _Unreadable("the forward equations leave a size undetermined")
    try:
        model = read_model(text, convention=convention)
    except ModelFileError as exc:
        raise _Unreadable(_sentence(exc)) from None
    return text, spec_of(model, "derivation")


def _resolved(dim, guessed):
    value = guessed.solution.get(dim, dim) if isinstance(dim, str) else dim
    from ..models import sizes

    counts, constant = sizes.terms(value) if isinstance(value, str) else ({}, value)
    total: dict[str, int] = {}
    for name, k in counts.items():
        inner = guessed.solution.get(name, name)
        c, const = sizes.terms(inner)
        constant += k * const
        for n, v in c.items():
            total[n] = total.get(n, 0) + k * v
    return sizes._text({n: v for n, v in total.items() if v}, constant) if counts else value


def _column(shape):
    if len(shape) == 2:
        return shape[::-1]
    return shape


def _sentence(exc) -> str:
    first = str(exc).splitlines()[0]
    return "the forward equations do not make a model: " + re.sub(
        r"^line \d+(, column \d+)?: ", "", first
    )
