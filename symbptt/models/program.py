"""A composite's program: a few operations of the rule table applied in order, one node of the
unrolled graph for a whole expression (`(1 - z[t]) * n[t] + z[t] * h[t-1]`). Model files
write their cells with it; the rule table (`engine.rules`, the `composite` row) runs it on every
backend and pulls adjoints back through it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Op", "REF_KINDS", "is_ref"]

#: What an argument of an operation can be: the composite's input k (`("in", k)`), an earlier
#: operation's value (`("op", j)`), one of the composite's named constants (`("const", "Y")`:
#: labels, a softmax shift, a size), or a number (`("num", value)`, in the backend's own form).
REF_KINDS = ("in", "op", "num", "const")


@dataclass(frozen=True)
class Op:
    """One operation: a rule of the table applied to `args` (references, or None for an absent
    input), with keyword constants `params` (a number, or a reference: softmax_ce's labels
    `("Y", ("const", "Y"))`)."""

    rule: str
    args: tuple = ()
    params: tuple[tuple[str, object], ...] = ()


def is_ref(value) -> bool:
    """Whether `value` is a reference to an input, an operation, a constant or a number."""
    return isinstance(value, tuple) and len(value) == 2 and value[0] in REF_KINDS
