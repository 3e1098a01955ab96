"""What the benchmarks share: the median of repeated timings (machines here are noisy)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_seconds(f: Callable[[], object], repeat: int) -> float:
    """The median wall time of `repeat` calls of f."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
