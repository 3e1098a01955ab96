"""Predicted cost of `symbptt derive`: wall time and peak memory, from the sizes alone.

The pipeline is unroll -> derive (one reverse sweep) -> compile_gradients(partials=True) ->
evaluate, and, for T <= PATH_T, listing, compiling and evaluating every path of the chosen
gradient. Its cost is a sum of *work counts* (element-level operations, computed exactly from
Dims and the gradient asked for, see `work`) times constants fitted on this machine class by
`bench/cost.py` (results in `bench/results/cost.json`; rerun it after changing the engine).

The work counts (P = D*H + H*H + H + H*C + C entries of the weight copies made at every step):

- `steps`: T; the fixed cost of a step's dozen nodes, blocks and arrays.
- `entries`: scalar symbols, forward and adjoint: 2T(P + N(D + 2C + 2H + 1) + 1).
- `terms`: terms of the forward and adjoint definitions, hence of the emitted code:
  T(2P + N*H*(2H + 2D + 2C + 3) + N*C*(H + 3) + N(2C + 2) + N(H*H + D*H + H + C)).
- `in_sums`: a_t's N*H entries are sums of H + D + 1 terms, each differentiated with respect to
  each of its 2H + 2D + 1 symbols, every `diff` walking the whole sum (and the sums are built
  term by term, SymEngine copying a sum on every `+`): T*N*H*(H + D + 1)*(2H + 2D + 1).
- `out_sums`: the same for o_t's N*C sums of H + 1 terms: T*N*C*(H + 1)*(2H + 1).
- `hidden_blocks`: common subexpression elimination of the (N, H) blocks with sums of H terms:
  T*N*H^3.
- `softmax`: L_t is one sum over all N*C logits, differentiated with respect to each of them,
  and its adjoint block has about N*C common subexpressions, renamed one by one: T(N*C)^2.
- `softmax_rows`: each logit's local derivative holds its own copy of its row's sum of C
  exponentials: T*N*C^2 (this is what fills memory when C is large).
- `loss_sum`: L = L_1 + ... + L_T, built and differentiated term by term: T^2.
- paths, only when listed (T <= PATH_T): `path_blocks` (one block per distinct suffix of a
  path: T(T+1) through the hidden chain, one or two per path, 2T + 1 for L_t, o_t and L),
  `path_entries` and `path_terms` (their size: about 10 us of code generation and Python
  `compile` per entry), `path_chain` (half the chain blocks pull an (N, H) adjoint back through
  W_h, H^2 work per entry: N*H*(H + 1)^2 each), `path_roots` (each path's last product, e.g.
  h_{k-1}^T g for W_h: H^2 sums of N terms built one by one, H^2 N^2), `path_softmax`
  (T(N*C)^2 and the rows again) and `path_forward` (the forward program is emitted again).

The biggest sizes accepted in 2 minutes are then about N=720 (at D=2, H=2, C=3, T=3), C=955
(N=2), H=182 (N=2, T=3), H=37 (N=2, T=40, with paths) and T=15,850 (N=D=H=1, C=2).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from ..errors import ExpansionTooLargeError
from ..models.dims import GRADIENT_NAMES, Dims, resolve_name

__all__ = [
    "Estimate",
    "estimate",
    "guard",
    "work",
    "WORK_COUNTS",
    "available_bytes",
    "DEFAULT_MAX_SECONDS",
    "MEMORY_SAFETY",
    "PATH_T",
    "SECONDS_PER_UNIT",
    "BYTES_PER_UNIT",
]

#: Largest T for which `symbptt derive` lists every path (the same number as cli.MAX_PATH_T).
PATH_T = 40
#: Default time limit of `guard`, in seconds.
DEFAULT_MAX_SECONDS = 120.0
#: Fraction of the machine's available memory `guard` lets one derivation use by default.
MEMORY_SAFETY = 0.7

# Fitted by `python bench/cost.py` (four runs merged with --refit; bench/results/cost.json) on
# the project's 2-core machine, Python 3.11, SymEngine 0.15, NumPy 2.4: per pipeline stage,
# relative least squares with non-negative constants over a grid of 42 sizes that vary N, D, H,
# C, T and --wrt one at a time, then scaled up (time x1.38, memory x1.24) so that no grid point
# took longer or more memory than predicted. Predicted/measured over the grid: time 1.02-1.76,
# memory 1.02-1.32 (docs/benchmarks.md). Rerun the benchmark after changing the engine.
#: Seconds per unit of each work count.
SECONDS_PER_UNIT: dict[str, float] = {
    "fixed": 0.257,
    "steps": 0.000778,
    "terms": 1.04e-05,
    "in_sums": 6.12e-07,
    "out_sums": 2.09e-06,
    "hidden_blocks": 6.59e-07,
    "softmax": 5.64e-06,
    "softmax_rows": 3.74e-06,
    "loss_sum": 3.94e-07,
    "path_blocks": 2.63e-05,
    "path_entries": 4.15e-06,
    "path_terms": 1e-05,
    "path_chain": 2.94e-07,
    "path_roots": 1.57e-06,
    "path_softmax": 1.3e-06,
    "path_forward": 7.24e-06,
}
#: Bytes of peak resident memory per unit of each work count ("fixed": the process itself).
BYTES_PER_UNIT: dict[str, float] = {
    "fixed": 133000000.0,
    "steps": 56400.0,
    "entries": 1420.0,
    "terms": 1090.0,
    "softmax_rows": 764.0,
    "path_blocks": 3240.0,
    "path_entries": 1770.0,
    "path_terms": 1760.0,
}

#: The work counts `work` returns, in a fixed order.
WORK_COUNTS: tuple[str, ...] = (
    "fixed",
    "steps",
    "entries",
    "terms",
    "in_sums",
    "out_sums",
    "hidden_blocks",
    "softmax",
    "softmax_rows",
    "loss_sum",
    "path_blocks",
    "path_entries",
    "path_terms",
    "path_chain",
    "path_roots",
    "path_softmax",
    "path_forward",
)
#: Gradients whose paths run back through the hidden chain h_t -> a_t -> h_{t-1} -> ...
_CHAIN = frozenset({"W_h", "W_x", "b", "x", "h0"})


@dataclass(frozen=True)
class Estimate:
    """Predicted wall time (seconds) and peak resident memory (bytes) of one derivation."""

    seconds: float
    bytes: int


def work(dims: Dims, wrt: str | None = "W_h", paths: bool = True) -> dict[str, float]:
    """The work counts of one derivation, keyed by WORK_COUNTS (see the module docstring).

    `wrt=None` means every gradient at once (as `compile.gradient_function` does), never with
    paths. Paths are counted only when `paths` is true and T <= PATH_T, as `derive` lists them.
    """
    N, D, H, C, T = dims.N, dims.D, dims.H, dims.C, dims.T
    P = D * H + H * H + H + H * C + C
    forward_entries = P + N * (D + 2 * C + 2 * H + 1) + 1
    forward_terms = P + N * H * (H + D + 2) + N * C * (H + 2) + N * (2 * C + 2)
    adjoint_terms = P + N * H * (H + D + 2 * C + 1) + N * C + N * (H * H + D * H + H + C)
    counts: dict[str, float] = dict.fromkeys(WORK_COUNTS, 0.0)
    counts.update(
        fixed=1.0,
        steps=float(T),
        entries=float(2 * T * forward_entries),
        terms=float(T * (forward_terms + adjoint_terms)),
        in_sums=float(T * N * H * (H + D + 1) * (2 * H + 2 * D + 1)),
        out_sums=float(T * N * C * (H + 1) * (2 * H + 1)),
        hidden_blocks=float(T * N * H**3),
        softmax=float(T * (N * C) ** 2),
        softmax_rows=float(T * N * C * C),
        loss_sum=float(T * T),
    )
    if wrt is None or not paths or T > PATH_T:
        return counts
    wrt = resolve_name(wrt, GRADIENT_NAMES)
    chain = wrt in _CHAIN
    n_paths = T * (T + 1) // 2 if wrt in ("W_h", "W_x", "b", "x") else T
    # Suffixes through the hidden chain, (a_j ... L_t) and (h_j ... L_t) for j <= t.
    chain_blocks = T * (T + 1) if chain else 0
    # Each path ends in one product: (entries of that block, terms summed in each entry).
    root_entries, root_terms = {
        "W_h": (H * H, N),
        "W_x": (D * H, N),
        "b": (H, N),
        "x": (N * D, H),
        "h0": (0, 0),
        "V": (H * C, N),
        "c": (C, N),
    }[wrt]
    copy_entries = 0 if wrt in ("x", "h0") else root_entries  # the parameter itself, per path
    counts.update(
        path_blocks=float(chain_blocks + n_paths * (1 if copy_entries == 0 else 2) + 2 * T + 1),
        path_entries=float(
            chain_blocks * N * H + n_paths * (root_entries + copy_entries) + T * N * C
        ),
        path_terms=float(
            chain_blocks * N * (H + 1) * (H + 1) // 2
            + n_paths * (root_entries * root_terms + copy_entries)
            + T * N * C * (1 + (H if chain else 0))
        ),
        path_chain=float(chain_blocks * N * H * (H + 1) ** 2 // 2),
        path_roots=float(n_paths * root_entries * root_terms**2),
        path_softmax=float(T * (N * C) ** 2 + T * N * C * C * (H + 1 if chain else 1)),
        path_forward=float(T * (forward_entries + forward_terms)),
    )
    return counts


def estimate(
    dims: Dims, wrt: str | None = "W_h", paths: bool = True, truncate: int | None = None
) -> Estimate:
    """Predicted wall time and peak memory of `symbptt derive` at these sizes.

    Covers unroll, the reverse sweep, compiling and evaluating the loss, the total and the
    per-step partials of `wrt`, and (when `paths` and T <= PATH_T) listing, compiling and
    evaluating every path. `wrt=None` estimates all gradients without paths, which is what
    `unroll` guards. K-step truncation (`truncate`) keeps up to K + 1 adjoints per node apart
    by age: the whole estimate is scaled by that, which errs on the slow side. The counts are
    the vanilla RNN's (a variant costs at most as much). Intended to err on the slow side; see
    `bench/cost.py` for the fit.
    """
    counts = work(dims, wrt, paths)
    seconds = sum(c * counts[k] for k, c in SECONDS_PER_UNIT.items())
    size = sum(c * counts[k] for k, c in BYTES_PER_UNIT.items())
    ages = 1 if truncate is None or truncate >= dims.T - 1 else truncate + 1
    return Estimate(seconds=float(seconds) * ages, bytes=int(math.ceil(size * ages)))


def available_bytes() -> int:
    """Memory available to a new allocation now: MemAvailable of /proc/meminfo, else sysconf."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES")
        if pages <= 0:
            pages = os.sysconf("SC_PHYS_PAGES")
        return int(pages) * int(os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, AttributeError):
        return 8 * 1024**3  # no way to tell: assume a small machine


#: A gated cell (LSTM, GRU) costs about what the vanilla model costs with twice H, twice over
#: (bench/gated.py: 4.1x and 3.9x the vanilla RNN at H=4, T=50; this predicts 3.8x).
GATED_WIDTH, GATED_FACTOR = 2, 2.0


#: A model file is estimated as the vanilla RNN times the ratio of its work per step (the
#: terms of its products and the entries of its other operations) to the vanilla RNN's, times
#: this margin (composite nodes differentiate whole expressions; bench/models.py).
FILE_FACTOR = 2.0


def file_work(definition, dims: Dims) -> float:
    """A model file's work per step: each product's terms (rows x columns x inner size) and
    each other operation's entries, from the shapes its reader inferred."""
    from ..formula.ast import Binary, Call
    from ..models.modelfile import _walk
    from ..models.sizes import value

    sizes = dims.sizes

    def entries(node) -> float:
        shape = definition.node_shapes.get(id(node), ())
        total = 1.0
        for d in shape:
            total *= value(d, sizes)
        return total

    work = 0.0
    bodies = [r.expr for r in definition.rules] + (
        [definition.loss.body] if definition.loss is not None else []
    )
    for body in bodies:
        for node in _walk(body):
            if isinstance(node, Binary) and node.op == "@":
                inner = definition.node_shapes.get(id(node.right), (1,))[0]
                work += entries(node) * value(inner, sizes)
            elif isinstance(node, (Binary, Call)):
                work += entries(node) * (2 if isinstance(node, Call) else 1)
    return work


def _estimate_for(
    dims: Dims, wrt: str | None, paths: bool, truncate: int | None, gated: bool, spec=None
) -> Estimate:
    if spec is not None and spec.from_file:
        from ..models.filespec import _file_model

        vanilla = _file_model("rnn")
        ratio = file_work(spec.definition, dims) / max(file_work(vanilla, dims), 1.0)
        est = estimate(dims, None, False, truncate)
        factor = FILE_FACTOR * max(ratio, 1.0)
        return Estimate(est.seconds * factor, int(est.bytes * factor))
    if not gated:
        return estimate(dims, wrt, paths, truncate)
    # Every gradient, no paths: a gated cell's paths are counted, and listed only up to a cap.
    wide = Dims(N=dims.N, D=dims.D, H=GATED_WIDTH * dims.H, C=dims.C, T=dims.T)
    est = estimate(wide, None, False, truncate)
    return Estimate(est.seconds * GATED_FACTOR, int(est.bytes * GATED_FACTOR))


def guard(
    dims: Dims,
    wrt: str | None = "W_h",
    *,
    paths: bool = True,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    max_bytes: int | None = None,
    truncate: int | None = None,
    spec=None,
) -> Estimate:
    """Return the estimate, or raise ExpansionTooLargeError if it exceeds a limit.

    `max_seconds=None` sets no time limit; `max_bytes=None` means MEMORY_SAFETY times the
    memory available now. The error is one sentence naming the estimate, the limit, the
    dimension that contributes most and, when one exists, the largest value of it that fits.
    `spec`: the model (default the vanilla RNN); a gated cell is estimated as a wider RNN.
    """
    gated = spec is not None and (spec.from_file or spec.name != "vanilla")
    if wrt is not None:
        wrt = resolve_name(wrt, spec.gradient_names if gated else GRADIENT_NAMES)
    est = _estimate_for(dims, wrt, paths, truncate, gated, spec)
    too_slow = max_seconds is not None and est.seconds > max_seconds
    if not too_slow and max_bytes is None and est.bytes <= _MIN_GUARDED_BYTES:
        return est  # small enough for any machine: skip reading /proc/meminfo
    limit_bytes = int(MEMORY_SAFETY * available_bytes()) if max_bytes is None else max_bytes
    if not too_slow and est.bytes <= limit_bytes:
        return est

    def fits(d: Dims) -> bool:
        e = _estimate_for(d, wrt, paths, truncate, gated, spec)
        return (max_seconds is None or e.seconds <= max_seconds) and e.bytes <= limit_bytes

    name, largest = _dominant(dims, fits, spec)
    parts = []
    if too_slow:
        parts.append(f"about {_duration(est.seconds)} (limit {_duration(max_seconds)})")
    else:
        parts.append(f"about {_duration(est.seconds)}")
    if est.bytes > limit_bytes:
        parts.append(f"about {_size(est.bytes)} of memory (limit {_size(limit_bytes)})")
    else:
        parts.append(f"about {_size(est.bytes)} of memory")
    sizes = ", ".join(f"{k}={v}" for k, v in dims.as_dict().items() if k != name)
    if largest is None:
        advice = (
            f"{name} contributes most, but no {name} fits with the other sizes: use smaller sizes"
        )
    else:
        advice = f"{name} contributes most: use {name}={largest} or less, or smaller sizes"
    raise ExpansionTooLargeError(
        f"{name}={getattr(dims, name)} with {sizes} needs {' and '.join(parts)} "
        f"to derive{_what(wrt, paths, dims)}; {advice}"
    )


#: Below this many predicted bytes `guard` does not look at the machine's memory at all.
_MIN_GUARDED_BYTES = 256 * 1024**2

#: The smallest valid value of each dimension.
_SMALLEST = {"N": 1, "D": 1, "H": 1, "C": 2, "T": 1}


def _what(wrt: str | None, paths: bool, dims: Dims) -> str:
    if wrt is None:
        return " and compile every gradient"
    if paths and dims.T <= PATH_T:
        return f" dL/d{wrt} and its paths"
    return f" dL/d{wrt}"


def _dominant(dims: Dims, fits, spec=None) -> tuple[str, int | None]:
    """The dimension whose reduction to its smallest value cuts the cost most, and the largest
    value of it (at most the current one) for which everything fits, or None (a model file's
    own sizes stay as given)."""
    from dataclasses import replace

    sizes = {k: v for k, v in dims.as_dict().items() if k in _SMALLEST}

    def with_(name: str, value: int) -> Dims:
        return replace(dims, **{name: value})

    def seconds_at_smallest(name: str) -> float:
        # Without paths: their drop after T=PATH_T would favour T unfairly.
        return estimate(with_(name, _SMALLEST[name]), None, False).seconds

    candidates = [n for n in sizes if sizes[n] > _SMALLEST[n]]
    if not candidates:
        return "T", None
    name = min(candidates, key=lambda n: (seconds_at_smallest(n), "TNHCD".index(n)))
    # fits() is monotone within T <= PATH_T and within T > PATH_T (paths switch off at PATH_T),
    # and monotone everywhere in the other dimensions: search each monotone segment, top first.
    low, high = _SMALLEST[name], sizes[name] - 1
    segments = [(low, high)]
    if name == "T" and high > PATH_T:
        segments = [(PATH_T + 1, high), (low, PATH_T)]
    for lo, hi in segments:
        if lo > hi or not fits(with_(name, lo)):
            continue
        while lo < hi:  # largest value in [lo, hi] that fits
            mid = (lo + hi + 1) // 2
            if fits(with_(name, mid)):
                lo = mid
            else:
                hi = mid - 1
        return name, lo
    return name, None


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.0f} h"
    if seconds < 730 * 86400:
        return f"{seconds / 86400:.0f} days"
    return f"{seconds / (365 * 86400):.0f} years"


def _size(n: float) -> str:
    for unit, scale in (("TB", 1024**4), ("GB", 1024**3), ("MB", 1024**2)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}" if n < 10 * scale else f"{n / scale:.0f} {unit}"
    return f"{max(n, 0) / 1024:.0f} KB"
