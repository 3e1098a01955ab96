"""The common shapes of code, as plans: one function, a forward/backward pair, a step pair.

Each builder returns the `Plan` that calls code of that shape on one problem; the arrays go
by part name (the user's own arrays of `convention.py`), the gradients come back by position
(a declared order) or by the user's names (a dict).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .plan import Call, Plan

__all__ = ["function_plan", "pair_plan", "step_pair_plan", "SHAPES"]

#: The shapes a `Calling` builds its plan for (any other code gets its plan from the search
#: or a convention file).
SHAPES = ("function", "pair", "step-pair")


def _item(index: int | None, keys: list[str]) -> tuple:
    return ("item", index, keys)


def _positions(gradients: Sequence[str], order: Sequence[str] | None) -> dict[str, int | None]:
    """Each gradient's position in a returned tuple: its place in the declared order (-1:
    not in it), or None (no order declared: a tuple is then a usage error)."""
    if order is None:
        return {g: None for g in gradients}
    return {g: (list(order).index(g) if g in order else -1) for g in gradients}


def function_plan(
    form: str,
    inputs: Sequence[str],
    gradients: Sequence[str],
    order: Sequence[str] | None,
    keys: Callable[[str], list[str]],
    keyword_names: Callable[[str], str] | None = None,
) -> Plan:
    """One function: fn(inputs...) -> (loss, grads) (full form) or grads (layer form), grads
    a dict keyed by the user's names or a tuple in `order`."""
    if keyword_names is not None:
        call = Call(kwargs={keyword_names(p): ("array", p) for p in inputs})
    else:
        call = Call(args=tuple(("array", p) for p in inputs))
    full = form == "full"
    base = ("return", ("index", 1)) if full else ("return",)
    at = _positions(gradients, order)
    return Plan(
        level="full",
        forward=call,
        loss=(("index", 0),) if full else None,
        grads={g: (*base, _item(at[g], keys(g))) for g in gradients},
        container=(("index", 1),) if full else (),
        returns=2 if full else None,
    )


def pair_plan(
    inputs: Sequence[str],
    gradients: Sequence[str],
    order: Sequence[str] | None,
    keys: Callable[[str], list[str]],
) -> Plan:
    """CS231n's sequence pair: forward(x, h0, ..., weights) -> (h, ..., cache) and
    backward(dh, cache) -> (dx, dh0, ..., dweights) or a dict."""
    at = _positions(gradients, order)
    return Plan(
        level="sequence",
        forward=Call(fn=0, args=tuple(("array", p) for p in inputs if p != "dh")),
        backward=Call(fn=1, args=(("array", "dh"), ("data", "cache"))),
        cache=(("last",),),
        grads={g: ("return", _item(at[g], keys(g))) for g in gradients},
        container=(),
    )


def step_pair_plan(
    inputs: Sequence[str],
    parameters: Sequence[str],
    states: Sequence[str],
    initials: Sequence[str],
    time_axis: int,
) -> Plan:
    """CS231n's step pair, chained over the sequence: step_forward(x_t, prev_h[, prev_c],
    weights) -> (next_h[, next_c], cache) and step_backward(dnext_h[, dnext_c], cache) ->
    (dx, dprev_h[, dprev_c], dweights...)."""
    count = 1 + len(states)
    weights = [p for p in inputs if p in parameters]
    forward = Call(
        fn=0,
        args=(("data", "x_t"), *(("data", s) for s in states), *(("array", p) for p in weights)),
    )
    backward = Call(
        fn=1,
        args=(
            ("data", "dnext_h"),
            *(("data", f"dnext_{s}") for s in states[1:]),
            ("data", "cache"),
        ),
    )
    return Plan(
        level="step",
        forward=forward,
        backward=backward,
        cache=(("last",),),
        next={s: (("index", k),) for k, s in enumerate(states)},
        back={"x": (("index", 0),), **{s: (("index", 1 + k),) for k, s in enumerate(states)}},
        states=tuple(states),
        initials=tuple(initials),
        grads={p: ("return", ("index", count + k)) for k, p in enumerate(weights)},
        time_axis={"x": time_axis, "dh": time_axis},
    )
