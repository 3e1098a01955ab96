"""symbptt: derive backpropagation through time symbolically, prove it numerically.

Data flows one way: `models` (a model as a spec: inputs, cell, variants) -> `engine` (rules,
the unrolled graph, derivatives, compiled code) -> outputs (`checking`: the checker and its
isolated worker) -> `cli`; `reference` is the independent NumPy BPTT everything is checked
against.

The public names below are imported on first use (PEP 562), so that `import symbptt` and the
command line start without loading SymEngine or hypothesis until they are needed.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_WHERE = {
    "Tolerance": "checking.check",
    "Convention": "checking.convention",
    "Deviations": "checking.settings",
    "Limits": "checking.settings",
    "check_gradients": "checking.check",
    "compare_gradients": "checking.check",
    "CompiledFunction": "engine.compile",
    "compile_gradients": "engine.compile",
    "compile_paths": "engine.compile",
    "gradient_function": "engine.compile",
    "Derivation": "engine.derivatives",
    "Path": "engine.derivatives",
    "derive": "engine.derivatives",
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
    "UnrolledGraph": "engine.graph",
    "unroll": "engine.graph",
    "GRADIENT_NAMES": "models.dims",
    "INPUT_NAMES": "models.dims",
    "SHARED_PARAMETERS": "models.dims",
    "Dims": "models.dims",
    "random_point": "models.dims",
    "ParameterResult": "checking.report",
    "Report": "checking.report",
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
