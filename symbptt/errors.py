"""Errors are part of the interface: one base class, a few typed subclasses.

Every message is one sentence a student can act on; the CLI prints it on one line and exits
non-zero instead of showing a traceback.
"""

from __future__ import annotations

__all__ = [
    "SymbpttError",
    "DimensionError",
    "UnknownNameError",
    "ExpansionTooLargeError",
    "InputArrayError",
    "UserFunctionError",
    "InvalidArgumentError",
    "TargetError",
    "InternalError",
    "WorkerDiedError",
    "IsolationUnavailableError",
]


class SymbpttError(Exception):
    """Base class of every error symbptt raises on purpose."""


class DimensionError(SymbpttError, ValueError):
    """A dimension (N, D, H, C, T) is not a valid size."""


class UnknownNameError(SymbpttError, KeyError):
    """A parameter or node name that the model does not have."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ExpansionTooLargeError(SymbpttError, ValueError):
    """The symbolic expansion asked for would not fit in memory or time."""


class InputArrayError(SymbpttError, ValueError):
    """An input array has the wrong shape, dtype or non-finite values."""


class UserFunctionError(SymbpttError):
    """A function supplied by the user raised or returned something unusable."""


class InvalidArgumentError(SymbpttError, ValueError):
    """An argument of a public function or a command-line option is not valid."""


class TargetError(SymbpttError, ValueError):
    """A `file.py:function` target that names no file, no function or nothing callable, or
    code that is not called the way the check was set up (a usage error, exit 2).

    `suggestion`, when the check found how the code is called: {"argv": [...], "toml": ...}.
    """

    def __init__(self, message: str, suggestion: dict | None = None) -> None:
        super().__init__(message)
        self.suggestion = suggestion


class InternalError(SymbpttError):
    """symbptt disagrees with itself (the symbolic engine and the NumPy reference): a bug in
    symbptt, to be reported; the command line exits with status 3."""


class WorkerDiedError(UserFunctionError):
    """The user's function never answered: it hung, crashed, exited or was killed."""


class IsolationUnavailableError(SymbpttError):
    """This system cannot run user code in a separate worker process (no fork, no pipes)."""


class DerivationCheckError(InternalError):
    """A line of a generated derivation disagreed with the element-level engine: nothing is
    printed, and the command line exits with status 3 (a bug of symbptt, to be reported)."""
