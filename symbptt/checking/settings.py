"""What a check is told, as small values: what to call (`Target`), what the code declares it does
differently from the exact gradient (`Deviations`), and what it may use (`Limits`); how its
arrays hold the model's is the fourth (`convention.Convention`).

Each value checks its own fields when it is made, one sentence per bad field, so the command
line, `check_gradients`, the pytest fixture and batch mode refuse the same things in the same
words, before any user code runs.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import InvalidArgumentError
from . import PRECISIONS, STYLES
from .judging import Tolerance

__all__ = ["Target", "Deviations", "Limits"]


def _real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _flag(label: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise InvalidArgumentError(f"{label}={value!r} must be True or False")


@dataclass(frozen=True)
class Target:
    """What to call and how: a `"file.py:name"` string (a function, a pair `f,g`, a class,
    `Class.method`, a notebook's definitions), a function or a (forward, backward) pair; its
    style ("plain", or "char-rnn" for a min-char-rnn lossFun), whether a pair is the one-step
    pair (None: from its names), a script's definitions only, a char-rnn script's size
    globals, more folders its imports come from, and (for a callable) whether it runs in a
    worker process."""

    code: Any
    style: str = "plain"
    step: bool | None = None
    defs_only: bool = False
    globals: Mapping[str, str] | None = None
    path: tuple[str, ...] = ()
    isolate: bool = True

    def __post_init__(self) -> None:
        from .styles import pair_of

        code = self.code
        if not (callable(code) or isinstance(code, str) or pair_of(code)):
            raise InvalidArgumentError(
                f"fn must be a function, a (forward, backward) pair or a 'file.py:function' "
                f"string, got {type(code).__name__}"
            )
        if self.style not in STYLES:
            raise InvalidArgumentError(f"style={self.style!r} must be one of {', '.join(STYLES)}")
        if self.step is not None:
            _flag("step", self.step)
        _flag("defs_only", self.defs_only)
        _flag("isolate", self.isolate)
        if self.globals is not None and not isinstance(self.globals, Mapping):
            raise InvalidArgumentError("globals must map a global's name to D, H or C")
        paths = [self.path] if isinstance(self.path, (str, Path)) else list(self.path)
        resolved = []
        for folder in paths:
            if not isinstance(folder, (str, Path)) or not Path(folder).is_dir():
                raise InvalidArgumentError(f"path={folder!r} is not a folder (--path DIR)")
            resolved.append(str(Path(folder).resolve()))
        object.__setattr__(self, "path", tuple(resolved))
        if self.globals is not None:
            object.__setattr__(self, "globals", MappingProxyType(dict(self.globals)))


@dataclass(frozen=True)
class Deviations:
    """What the code declares it does differently from the exact float64 gradient: the values
    it returns (`only`; None: every gradient and the loss), the precision it computes at,
    elementwise or norm clipping, tolerances per dtype, gradients shaped like their arrays
    up to axes of size 1; and whether saturated inputs are tried after a right verdict."""

    only: tuple[str, ...] | None = None
    precision: str | None = None
    clip: float | None = None
    clip_norm: float | None = None
    tolerances: Mapping[str, Tolerance] | None = None
    allow_broadcast_shapes: bool = False
    probe: bool = True

    def __post_init__(self) -> None:
        from .judging import TOLERANCES

        if self.only is not None:
            if (
                isinstance(self.only, str)
                or not all(isinstance(n, str) for n in self.only)
                or (not self.only)
            ):
                raise InvalidArgumentError(
                    f"only={self.only!r} must be a non-empty sequence of names, e.g. ('W_h', 'W_x')"
                )
            object.__setattr__(self, "only", tuple(dict.fromkeys(self.only)))
        if self.precision is not None and self.precision not in PRECISIONS:
            raise InvalidArgumentError(
                f"precision={self.precision!r} must be one of {', '.join(PRECISIONS)} (or None)"
            )
        for label, value in (("clip", self.clip), ("clip_norm", self.clip_norm)):
            if value is not None and (not _real(value) or not (0 < value < math.inf)):
                raise InvalidArgumentError(f"{label}={value!r} must be a positive number")
        if self.clip is not None and self.clip_norm is not None:
            raise InvalidArgumentError("declare one of clip and clip_norm, not both")
        _flag("allow_broadcast_shapes", self.allow_broadcast_shapes)
        _flag("probe", self.probe)
        if self.tolerances is not None:
            if not isinstance(self.tolerances, Mapping):
                raise InvalidArgumentError(
                    "tolerances must map a dtype to a Tolerance, e.g. "
                    "{'float64': Tolerance(rtol=1e-8, floor=1e-8)}"
                )
            for dtype, tol in self.tolerances.items():
                if dtype not in TOLERANCES:
                    raise InvalidArgumentError(
                        f"tolerances has the key {dtype!r}; keys are dtypes: "
                        f"{', '.join(TOLERANCES)}"
                    )
                if not isinstance(tol, Tolerance):
                    raise InvalidArgumentError(
                        f"tolerances[{dtype!r}]={tol!r} must be a Tolerance(rtol=..., floor=...)"
                    )
            object.__setattr__(self, "tolerances", MappingProxyType(dict(self.tolerances)))

    @property
    def table(self) -> dict[str, Tolerance]:
        """The tolerance of each dtype: the defaults with the declared ones over them."""
        from .judging import TOLERANCES

        return {**TOLERANCES, **(self.tolerances or {})}


@dataclass(frozen=True)
class Limits:
    """What the code may use: seconds per call and for the whole check, MiB of memory,
    modules it may not import (a guard for graders, not a security boundary), and the sandbox
    a target's worker runs in: "auto" (bubblewrap when it works here), "required" (refuse to
    run without it) or "off" (see docs/threat-model.md)."""

    timeout: float = 5.0
    total_timeout: float = 300.0
    memory_mb: int = 2048
    forbid_imports: tuple[str, ...] = field(default=())
    sandbox: str = "auto"

    def __post_init__(self) -> None:
        for label, value in (("timeout", self.timeout), ("total_timeout", self.total_timeout)):
            if not _real(value) or not (0 < value < math.inf):
                raise InvalidArgumentError(
                    f"{label}={value!r} must be a positive number of seconds"
                )
        if (
            isinstance(self.memory_mb, bool)
            or not isinstance(self.memory_mb, int)
            or self.memory_mb < 16
        ):
            raise InvalidArgumentError(
                f"memory_mb={self.memory_mb!r} must be a whole number of MiB, >= 16"
            )
        forbid = self.forbid_imports
        if isinstance(forbid, str) or not all(
            isinstance(m, str) and m.isidentifier() for m in forbid
        ):
            raise InvalidArgumentError(
                f"forbid_imports={forbid!r} must be a sequence of top-level module names, "
                "e.g. ('symbptt', 'torch')"
            )
        if "numpy" in forbid:
            raise InvalidArgumentError("numpy cannot be forbidden: the arrays are NumPy arrays")
        object.__setattr__(self, "forbid_imports", tuple(forbid))
        check_sandbox(self.sandbox)

    def worker(self):
        """The worker process's limits (`isolation.Limits`)."""
        from .isolation import Limits as WorkerLimits

        return WorkerLimits.for_check(
            self.timeout, self.total_timeout, self.memory_mb, self.sandbox
        )


def check_sandbox(value: Any) -> None:
    """InvalidArgumentError unless value is a sandbox mode."""
    from .sandbox import MODES

    if value not in MODES:
        raise InvalidArgumentError(f"sandbox={value!r} must be one of {', '.join(MODES)}")


def search_options(max_examples: Any, seed: Any, progress: Callable | None, shapes: Any) -> None:
    """The search's own options: how many problems, which seed, progress, shapes."""
    if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1:
        raise InvalidArgumentError(f"max_examples={max_examples!r} must be a positive integer")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise InvalidArgumentError(
            f"seed={seed!r} must be a whole number at least 0, or None (one drawn per check)"
        )
    if progress is not None and not callable(progress):
        raise InvalidArgumentError("progress must be a function progress(done, total) or None")
    if shapes is not None:
        from hypothesis.strategies import SearchStrategy

        if not isinstance(shapes, SearchStrategy):
            raise InvalidArgumentError(f"shapes={shapes!r} must be a strategy such as rnn_shapes()")
