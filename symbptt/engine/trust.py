"""A model file's derivatives checked before their first use.

A built-in model has an independent NumPy BPTT written by hand. A model file has its own
forward equations instead: `models.evaluate` computes its loss from them with plain NumPy, and
central finite differences of that loss (fourth order, in float64, the step halved until the
estimate settles, each entry with an error estimate) at three small shapes, one with every
size 1, must agree with the engine's total derivatives and with the matrix-form recurrences'
values within a relative RTOL plus the differences' own error estimate; with PyTorch
installed, autograd of the same evaluation is a second, tighter check, and the judge where the
differences cannot tell (a stencil at a kink of relu, a cell too steep for them). Only then
is a formula of the file printed or code judged with it. The outcome is kept per file content,
in memory and on disk (`$XDG_CACHE_HOME/symbptt/trusted/`), so a file is checked once.
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
#: An entry's difference is compared when its error estimate is below this fraction of the
#: gradient's scale (else the differences cannot tell it: a kink of relu inside every stencil,
#: or a cell too steep); it must then agree within RTOL plus SAFETY times that estimate.
RESOLVED = 1e-3
SAFETY = 2.0
#: A shape's point is drawn again (at most this many times) while some entry of it sits at a
#: kink of relu for every stencil tried.
DRAWS = 3
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
    #: Entries the differences could not tell (a kink of relu in every stencil, or too steep
    #: a loss), of how many: autograd judged them when PyTorch is installed, else nothing did.
    unresolved: int = 0
    entries: int = 0

    def sentence(self) -> str:
        shapes = "; ".join(", ".join(f"{k}={v}" for k, v in d.items()) for d in self.shapes)
        torch = (
            f", and PyTorch autograd of it within {self.torch_error:.1e}"
            if self.torch_error is not None
            else ""
        )
        left = ""
        if self.unresolved:
            judge = "autograd alone" if self.torch_error is not None else "nothing"
            left = (
                f" ({self.unresolved} of {self.entries} entries, at a kink of relu or too steep "
                f"for differences, were judged by {judge})"
            )
        return (
            f"the engine's gradients of this model file agree with fourth-order finite "
            f"differences of its own forward equations at {len(self.shapes)} shapes ({shapes}) "
            f"within a relative {self.max_error:.1e} (tolerance {RTOL:g} plus the differences' "
            f"own error estimate){torch}{left}"
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
    from ..models.evaluate import Evaluator, differences, torch_gradients
    from .compile import gradient_function
    from .matrix_form import matrix_form

    started = time.perf_counter()
    model = spec.definition
    record = TrustRecord(model.sha256, gradients=list(spec.gradient_names))
    evaluator = Evaluator(model)
    form = matrix_form(spec)
    names = list(spec.gradient_names)
    for k, dims in enumerate(shapes_for(spec)):
        sizes = dims.sizes
        for draw in range(DRAWS):  # away from relu's kinks where a first point sits on one
            point = spec.random_point(dims, seed=_SEED + k + 1000 * draw)
            loss = _finite_loss(evaluator, point, dims)
            truth = differences(evaluator, point, sizes, dims.T, names)
            if not any(kink.any() for kink in truth.kinks.values()):
                break
        engine = gradient_function(dims, spec)(point)
        ours = form.evaluate(point, dims)
        _agree("the loss", engine["loss"], loss, dims, RTOL)
        _agree("the loss of the matrix form", ours.loss, loss, dims, RTOL)
        exact = torch_gradients(model, point, sizes, dims.T, names)
        if exact is not None:
            worst = 0.0
            for name, want in exact.items():
                worst = max(
                    worst, _agree(f"dL/d{name} (autograd)", engine[name], want, dims, TORCH_RTOL)
                )
                worst = max(
                    worst,
                    _agree(
                        f"dL/d{name} of the matrix form (autograd)",
                        ours.gradients[name],
                        want,
                        dims,
                        TORCH_RTOL,
                    ),
                )
            record.torch_error = max(record.torch_error or 0.0, worst)
        for name in names:
            left = 0
            for what, value in (
                (f"dL/d{name}", engine[name]),
                (f"dL/d{name} of the matrix form", ours.gradients[name]),
            ):
                error, unresolved = _agree_differences(what, value, truth, name, dims, exact)
                record.max_error = max(record.max_error, error)
                left = max(left, unresolved)
            record.unresolved += left
            record.entries += truth.values[name].size
        record.shapes.append(sizes)
    record.seconds = time.perf_counter() - started
    return record


def _finite_loss(evaluator, point, dims: Dims) -> float:
    """The file's loss at a point; ModelFileError where it is not a number there."""
    from ..models.evaluate import diagnose
    from ..models.modelfile import ModelFileError

    with np.errstate(all="ignore"):  # a log of a negative number is said below, not warned
        loss = float(evaluator.loss(point, dims.sizes, dims.T))
    if not np.isfinite(loss):
        located = diagnose(evaluator.model, point, dims.sizes, dims.T)
        if located is not None:
            raise located
        raise ModelFileError(
            f"the model's loss is {loss} at a random point ({_dims_text(dims)}): a log of "
            "a negative number or a division by zero? Inputs are drawn around 0"
        )
    return loss


def _agree_differences(what: str, ours, truth, name: str, dims: Dims, exact) -> tuple[float, int]:
    """The engine's gradient against the differences, entry by entry within RTOL of the
    gradient's scale plus SAFETY times each entry's error estimate; entries the differences
    cannot tell are skipped (and counted). Where the differences disagree but autograd, which
    is exact, agreed with the engine, the differences are wrong there: counted, not raised.
    Returns the largest relative error and the count."""
    ours = np.asarray(ours, dtype=float)
    value, errors, kinks = truth.values[name], truth.errors[name], truth.kinks[name]
    if ours.shape != value.shape:
        raise ModelCheckError(
            f"{what} has shape {ours.shape} in the engine but {value.shape} from the file's "
            f"equations at {_dims_text(dims)}; nothing was printed: please report this"
        )
    told = ~kinks & np.isfinite(errors)
    scale = max(1.0, float(np.abs(value[told]).max(initial=0.0)))
    resolved = told & (errors <= RESOLVED * scale)
    gap = np.abs(ours - value)
    tolerance = RTOL * scale + SAFETY * np.where(resolved, errors, 0.0)
    bad = resolved & ~(gap <= tolerance)
    if bad.any():
        if exact is None:
            worst = np.unravel_index(np.argmax(np.where(bad, gap - tolerance, -np.inf)), gap.shape)
            raise ModelCheckError(
                f"{what} disagrees with finite differences of the file's own equations at "
                f"{_dims_text(dims)} (relative error {gap[worst] / scale:.1e}, tolerance "
                f"{tolerance[worst] / scale:.1e}); nothing was printed: please report this with "
                "the model file"
            )
        resolved = resolved & ~bad  # autograd agreed: the differences were off there
    error = float(np.where(resolved, gap, 0.0).max(initial=0.0)) / scale
    return error, int((~resolved).sum())


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
        against = "PyTorch autograd" if "autograd" in what else "an evaluation"
        raise ModelCheckError(
            f"{what.replace(' (autograd)', '')} disagrees with {against} of the file's own "
            f"equations at {_dims_text(dims)} (relative error {error:.1e}, tolerance {rtol:g}); "
            "nothing was printed: please report this with the model file"
        )
    return error
