"""Sizes written in size names: `H`, `4H` (also `4 * H`), `H + D`, `2H + D + 1`.

A shape's entry is a whole number or such a size. Every size has one canonical text, so that
two shapes are equal exactly when they have the same sizes: names sorted, a multiple written
`4H`, a whole-number part last (`D+H`, `2H+D+1`). Sizes are read with a regular expression,
never evaluated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..errors import InvalidArgumentError, UnknownNameError

__all__ = ["Dim", "canonical", "terms", "value", "times", "share", "plus", "names_in"]

#: A dimension: a whole number, or a size's canonical text.
Dim = int | str

_TERM = re.compile(r"\s*(?:(\d+)\s*\*?\s*)?([A-Za-z_][A-Za-z0-9_]*)?\s*")


def terms(dim: Dim) -> tuple[dict[str, int], int]:
    """The multiples of each size name in `dim`, and its whole-number part."""
    if isinstance(dim, bool):
        raise InvalidArgumentError(f"{dim!r} is not a size")
    if isinstance(dim, int):
        return {}, dim
    if not isinstance(dim, str) or not dim.strip():
        raise InvalidArgumentError(f"{dim!r} is not a size such as H, 4H or H + D")
    counts: dict[str, int] = {}
    constant = 0
    for part in dim.split("+"):
        match = _TERM.fullmatch(part)
        if match is None or not (match.group(1) or match.group(2)):
            raise InvalidArgumentError(
                f"{dim!r} is not a size: write a size name (H), a multiple (4 * H) or a sum (H + D)"
            )
        number, name = match.groups()
        k = int(number) if number else 1
        if name is None:
            constant += k
        else:
            counts[name] = counts.get(name, 0) + k
    return counts, constant


def _text(counts: Mapping[str, int], constant: int) -> Dim:
    parts = [f"{k if k != 1 else ''}{name}" for name, k in sorted(counts.items()) if k]
    if constant or not parts:
        if not parts:
            return constant
        parts.append(str(constant))
    return "+".join(parts)


def canonical(dim: Dim) -> Dim:
    """The canonical form of a size (`4 * H` -> `4H`, `H + D` -> `D+H`, `3` -> 3)."""
    counts, constant = terms(dim)
    return _text(counts, constant)


def value(dim: Dim, sizes: Mapping[str, int]) -> int:
    """The number a size stands for, given the sizes of its names."""
    counts, constant = terms(dim)
    total = constant
    for name, k in counts.items():
        if name not in sizes:
            raise UnknownNameError(
                f"the size {name!r} (in {dim!r}) has no value: give it, e.g. --size {name}=3"
            )
        total += k * int(sizes[name])
    return total


def times(k: int, dim: Dim) -> Dim:
    """k blocks of size `dim`: 4 * H is `4H`, 4 * 3 is 12."""
    counts, constant = terms(dim)
    return _text({n: k * c for n, c in counts.items()}, k * constant)


def share(dim: Dim, k: int) -> Dim:
    """One of k equal blocks of `dim`: `4H` / 4 is `H`; an error when it does not split."""
    counts, constant = terms(dim)
    if constant % k or any(c % k for c in counts.values()):
        raise InvalidArgumentError(f"a dimension {dim!r} does not split into {k} equal blocks")
    return _text({n: c // k for n, c in counts.items()}, constant // k)


def plus(*dims: Dim) -> Dim:
    """The size of blocks side by side: H and D make `D+H`."""
    counts: dict[str, int] = {}
    constant = 0
    for dim in dims:
        more, c = terms(dim)
        constant += c
        for name, k in more.items():
            counts[name] = counts.get(name, 0) + k
    return _text(counts, constant)


def names_in(dim: Dim) -> tuple[str, ...]:
    """The size names a size uses, sorted."""
    return tuple(sorted(terms(dim)[0]))
