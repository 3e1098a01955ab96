"""symbptt: derive backpropagation through time symbolically, prove it numerically.

Data flows one way: `model` (dims, names) -> `graph` (the unrolled DAG) -> `derivatives`
(partial, total, paths) -> outputs (`compile`, `check`) -> `cli`; `reference` is the
independent NumPy BPTT everything is checked against.
"""

from .check import Tolerance, check_gradients, compare_gradients
from .compile import CompiledFunction, compile_gradients, compile_paths, gradient_function
from .derivatives import Derivation, Path, derive
from .errors import (
    DimensionError,
    ExpansionTooLargeError,
    InputArrayError,
    InternalError,
    InvalidArgumentError,
    SymbpttError,
    TargetError,
    UnknownNameError,
    UserFunctionError,
    WorkerDiedError,
)
from .graph import UnrolledGraph, unroll
from .model import GRADIENT_NAMES, INPUT_NAMES, SHARED_PARAMETERS, Dims, random_point
from .report import ParameterResult, Report

__version__ = "0.1.0"

__all__ = [
    "CompiledFunction",
    "Derivation",
    "Dims",
    "DimensionError",
    "ExpansionTooLargeError",
    "GRADIENT_NAMES",
    "INPUT_NAMES",
    "InputArrayError",
    "InternalError",
    "InvalidArgumentError",
    "ParameterResult",
    "Path",
    "Report",
    "SHARED_PARAMETERS",
    "SymbpttError",
    "TargetError",
    "UnknownNameError",
    "UnrolledGraph",
    "Tolerance",
    "UserFunctionError",
    "WorkerDiedError",
    "check_gradients",
    "compare_gradients",
    "compile_gradients",
    "compile_paths",
    "derive",
    "gradient_function",
    "random_point",
    "unroll",
]
