"""A model file's derivatives checked before their first use.

A built-in model has an independent NumPy BPTT written by hand. A model file has its own
forward equations instead: `models.evaluate` computes its loss from them with plain NumPy, and
central finite differences of that loss (fourth order, in float64) at three small shapes, one
with every size 1, must agree with the engine's total derivatives and with the matrix-form
recurrences' values; with PyTorch installed, autograd of the same evaluation is a second,
tighter check. Only then is a formula of the file printed or code judged with it. The outcome
is kept per file content, in memory and on disk (`$XDG_CACHE_HOME/symbptt/trusted/`), so a
file is checked once.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InternalError
from ..models.dims import Dims
from ..models.spec import ModelSpec

__all__ = ["ModelCheckError", "TrustRecord", "ensure_trusted", "check_model", "RTOL", "TORCH_RTOL"]

#: Agreement demanded of the engine with fourth-order differences of the file's own loss:
#: |engine - differences| <= RTOL * max(1, largest |difference| of that gradient). The
#: differences' own error is near 1e-10 relative at these sizes (measured in bench/models.py).
RTOL = 1e-6
#: With PyTorch, autograd of the same evaluation agrees to rounding.
TORCH_RTOL = 1e-9
_SEED = 20261207

_TRUSTED: dict[str, TrustRecord] = {}
_BUSY: set[str] = set()
_LOCK = threading.RLock()


class ModelCheckError(InternalError):
    """The engine's derivatives of a model file disagree with differences of the file's own
    equations (exit 3): nothing is printed or judged with them."""


@dataclass
class TrustRecord:
    """What was checked: the shapes, the gradients, the largest relative error of each
    check, whether autograd took part, the time."""

    sha256: str
    shapes: list[dict[str, int]] = field(default_factory=list)
    gradients: list[str] = field(default_factory=list)
    max_error: float = 0.0
    torch_error: float | None = None
    seconds: float = 0.0
    cached: bool = False

    def sentence(self) -> str:
        shapes = "; ".join(", ".join(f"{k}={v}" for k, v in d.items()) for d in self.shapes)
        torch = (
            f", and PyTorch autograd of it within {self.torch_error:.1e}"
            if self.torch_error is not None
            else ""
        )
        return (
            f"the engine's gradients of this model file agree with fourth-order finite "
            f"differences of its own forward equations at {len(self.shapes)} shapes ({shapes}) "
            f"within a relative {self.max_error:.1e} (tolerance {RTOL:g}){torch}"
        )


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "symbptt" / "trusted"


def _cache_key(spec: ModelSpec) -> str:
    """The file's content and this symbptt's own code: a change to either checks again."""
    return f"{spec.definition.sha256[:32]}-{_fingerprint()}"


@functools.lru_cache(maxsize=1)
def _fingerprint() -> str:
    """A hash of the code that derives and evaluates (engine, models, formula)."""
    import hashlib

    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for folder in ("engine", "models", "formula"):
        for path in sorted((root / folder).glob("*.py")):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def ensure_trusted(spec: ModelSpec) -> TrustRecord | None:
    """Check a model file's derivatives once (per content); ModelCheckError if they disagree.
    A built-in model has nothing to check here."""
    if not spec.from_file:
        return None
    key = _cache_key(spec)
    with _LOCK:
        if key in _TRUSTED:
            return _TRUSTED[key]
        if key in _BUSY:  # the check itself unrolls the model
            return None
        record = _read_cache(key)
        if record is None:
            record = check_model(spec)
            _write_cache(key, record)
        _TRUSTED[key] = record
        return record


def _read_cache(key: str) -> TrustRecord | None:
    try:
        data = json.loads((_cache_dir() / f"{key}.json").read_text())
        return TrustRecord(**{**data, "cached": True})
    except (OSError, ValueError, TypeError):
        return None


def _write_cache(key: str, record: TrustRecord) -> None:
    folder = _cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".{key}.{os.getpid()}.tmp"
        temporary.write_text(json.dumps(asdict(record)))
        os.replace(temporary, folder / f"{key}.json")
    except OSError:  # a read-only home: the check runs again next time
        pass


def shapes_for(spec: ModelSpec) -> list[Dims]:
    """Three small shapes: every size 1 (class counts 2), every size 2, and sizes 3, 2, 4 in
    turn (so that two sizes differ)."""
    names = [n for n in spec.size_names if n != "N"]
    bounds = {i.bound for i in spec.inputs if i.integer}
    out = []
    for N, T, pick in (
        (1, 2, lambda k: 1),
        (2, 3, lambda k: 2),
        (3, 2, lambda k: (3, 2, 4)[k % 3]),
    ):
        sizes = {n: pick(k) for k, n in enumerate(names)}
        for bound in bounds:
            for n in names:
                if bound == n:
                    sizes[n] = max(sizes[n], 2)
        five = {k: sizes.get(k, 2 if k == "C" else 1) for k in ("D", "H", "C")}
        five["C"] = max(five["C"], 2)
        more = {k: v for k, v in sizes.items() if k not in ("D", "H", "C")}
        out.append(Dims(N=N, T=T, more=more, **five))
    return out


def check_model(spec: ModelSpec) -> TrustRecord:
    """Compare the engine's total derivatives and the matrix form's with differences (and
    autograd) of the file's own loss, at three shapes."""
    key = _cache_key(spec)
    with _LOCK:
        _BUSY.add(key)  # the check unrolls the model: that is no first use
        try:
            return _check(spec)
        finally:
            _BUSY.discard(key)


def _check(spec: ModelSpec) -> TrustRecord:
    from ..models.evaluate import Evaluator, finite_differences, torch_gradients
    from ..models.modelfile import ModelFileError
    from .compile import gradient_function
    from .matrix_form import matrix_form

    started = time.perf_counter()
    model = spec.definition
    record = TrustRecord(model.sha256, gradients=list(spec.gradient_names))
    evaluator = Evaluator(model)
    form = matrix_form(spec)
    for k, dims in enumerate(shapes_for(spec)):
        point = spec.random_point(dims, seed=_SEED + k)
        sizes = dims.sizes
        loss = float(evaluator.loss(point, sizes, dims.T))
        if not np.isfinite(loss):
            raise ModelFileError(
                f"the model's loss is {loss} at a random point ({_dims_text(dims)}): a log of "
                "a negative number or a division by zero? Inputs are drawn around 0"
            )
        truth = finite_differences(evaluator, point, sizes, dims.T, list(spec.gradient_names))
        engine = gradient_function(dims, spec)(point)
        ours = form.evaluate(point, dims)
        _agree("the loss", engine["loss"], loss, dims, RTOL)
        _agree("the loss of the matrix form", ours.loss, loss, dims, RTOL)
        for name, want in truth.items():
            error = _agree(f"dL/d{name}", engine[name], want, dims, RTOL)
            record.max_error = max(record.max_error, error)
            error = _agree(f"dL/d{name} of the matrix form", ours.gradients[name], want, dims, RTOL)
            record.max_error = max(record.max_error, error)
        exact = torch_gradients(model, point, sizes, dims.T, list(spec.gradient_names))
        if exact is not None:
            worst = 0.0
            for name, want in exact.items():
                worst = max(
                    worst, _agree(f"dL/d{name} (autograd)", engine[name], want, dims, TORCH_RTOL)
                )
            record.torch_error = max(record.torch_error or 0.0, worst)
        record.shapes.append(sizes)
    record.seconds = time.perf_counter() - started
    return record


def _dims_text(dims: Dims) -> str:
    return ", ".join(f"{k}={v}" for k, v in dims.sizes.items())


def _agree(what: str, ours, truth, dims: Dims, rtol: float) -> float:
    ours, truth = np.asarray(ours, dtype=float), np.asarray(truth, dtype=float)
    if ours.shape != truth.shape:
        raise ModelCheckError(
            f"{what} has shape {ours.shape} in the engine but {truth.shape} from the file's "
            f"equations at {_dims_text(dims)}; nothing was printed: please report this"
        )
    scale = max(1.0, float(np.abs(truth).max(initial=0.0)))
    error = float(np.abs(ours - truth).max(initial=0.0)) / scale
    if not error <= rtol:
        raise ModelCheckError(
            f"{what} disagrees with finite differences of the file's own equations at "
            f"{_dims_text(dims)} (relative error {error:.1e}, tolerance {rtol:g}); nothing was "
            "printed: please report this with the model file"
        )
    return error
