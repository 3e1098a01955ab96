"""symbptt: derive backpropagation through time symbolically, prove it numerically.

Data flows one way: `model` (dims, names) -> `graph` (the unrolled DAG) -> `derivatives`
(partial, total, paths) -> outputs (`compile`, `check`) -> `cli`; `reference` is the
independent NumPy BPTT everything is checked against.

The public names below are imported on first use (PEP 562), so that `import symbptt` and the
command line start without loading SymEngine or hypothesis until they are needed.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_WHERE = {
    "Tolerance": "check",
    "check_gradients": "check",
    "compare_gradients": "check",
    "CompiledFunction": "compile",
    "compile_gradients": "compile",
    "compile_paths": "compile",
    "gradient_function": "compile",
    "Derivation": "derivatives",
    "Path": "derivatives",
    "derive": "derivatives",
    "DimensionError": "errors",
    "ExpansionTooLargeError": "errors",
    "InputArrayError": "errors",
    "InternalError": "errors",
    "InvalidArgumentError": "errors",
    "SymbpttError": "errors",
    "TargetError": "errors",
    "UnknownNameError": "errors",
    "UserFunctionError": "errors",
    "WorkerDiedError": "errors",
    "UnrolledGraph": "graph",
    "unroll": "graph",
    "GRADIENT_NAMES": "model",
    "INPUT_NAMES": "model",
    "SHARED_PARAMETERS": "model",
    "Dims": "model",
    "random_point": "model",
    "ParameterResult": "report",
    "Report": "report",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'symbptt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
