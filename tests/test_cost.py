"""The cost model and guard: refuses what would run for minutes, accepts the supported sizes.

No wall-clock assertions: these test the model's structure and the guard's messages; how well the
model predicts real runs is measured by bench/cost.py (docs/benchmarks.md).
"""

import dataclasses
import math
import re

import pytest

from symbptt.engine import cost
from symbptt.engine.graph import unroll
from symbptt.errors import ExpansionTooLargeError
from symbptt.models.dims import GRADIENT_NAMES, Dims

GiB = 1024**3
#: Sizes the project documents as working (README, docs/cli.md, docs/benchmarks.md).
SUPPORTED = [
    (Dims(N=2, D=2, H=2, C=3, T=3), "W_h"),  # the README example
    (Dims(N=2, D=2, H=4, C=2, T=200), "W_h"),  # about 1.1 s
    (Dims(N=2, D=2, H=8, C=2, T=200), "W_h"),  # about 3 s
    (Dims(N=1, D=1, H=1, C=2, T=3000), "W_h"),  # about 6 s
    (Dims(N=2, D=2, H=2, C=3, T=40), "W_h"),  # the most paths derive lists
    (Dims(N=2, D=2, H=2, C=3, T=40), "x"),
]
TOO_BIG = [
    Dims(N=2000, D=2, H=2, C=3, T=3),
    Dims(N=2, D=2, H=2, C=20000, T=3),
    Dims(N=2, D=2, H=500, C=3, T=3),
    Dims(N=2, D=2, H=2, C=3, T=100_000),
]


def test_constants_are_fitted_and_non_negative():
    assert set(cost.SECONDS_PER_UNIT) <= set(cost.work(Dims(1, 1, 1, 2, 1)))
    assert set(cost.BYTES_PER_UNIT) <= set(cost.work(Dims(1, 1, 1, 2, 1)))
    assert all(c >= 0 for c in cost.SECONDS_PER_UNIT.values())
    assert all(c >= 0 for c in cost.BYTES_PER_UNIT.values())
    assert cost.SECONDS_PER_UNIT["fixed"] > 0 and cost.BYTES_PER_UNIT["fixed"] > 0


@pytest.mark.parametrize("dims, wrt", SUPPORTED, ids=lambda v: str(v))
def test_supported_sizes_are_accepted(dims, wrt):
    est = cost.guard(dims, wrt, max_bytes=4 * GiB)  # even on a small machine
    assert est.seconds < 30 and est.bytes < 2 * GiB
    unroll_est = cost.guard(dims, None, paths=False, max_bytes=4 * GiB)
    assert unroll_est.seconds <= est.seconds


@pytest.mark.parametrize("dims", TOO_BIG, ids=lambda d: f"N{d.N}-C{d.C}-H{d.H}-T{d.T}")
def test_sizes_that_would_run_for_minutes_are_refused_in_one_sentence(dims):
    est = cost.estimate(dims)
    assert est.seconds > 5 * cost.DEFAULT_MAX_SECONDS
    with pytest.raises(ExpansionTooLargeError) as info:
        cost.guard(dims, "W_h", max_bytes=100 * GiB)
    message = str(info.value)
    assert "\n" not in message and message.count(";") == 1
    assert "(limit 2 min)" in message and "needs about" in message
    big = max(dims.as_dict(), key=lambda k: dims.as_dict()[k] / cost._SMALLEST[k])
    assert message.startswith(f"{big}={getattr(dims, big)} with ")
    assert f"{big} contributes most" in message


def test_the_message_names_the_largest_size_that_fits():
    dims = Dims(N=2000, D=2, H=2, C=3, T=3)
    with pytest.raises(ExpansionTooLargeError, match=r"use N=(\d+) or less") as info:
        cost.guard(dims, max_bytes=100 * GiB)
    largest = int(re.search(r"use N=(\d+) or less", str(info.value)).group(1))
    fits = cost.estimate(dataclasses.replace(dims, N=largest))
    too_many = cost.estimate(dataclasses.replace(dims, N=largest + 1))
    assert fits.seconds <= cost.DEFAULT_MAX_SECONDS < too_many.seconds
    assert 10 <= largest < 2000


def test_memory_limit_is_reported_with_the_estimate():
    dims = Dims(N=2, D=2, H=2, C=3, T=3)
    with pytest.raises(ExpansionTooLargeError, match=r"of memory \(limit 1 KB\)"):
        cost.guard(dims, max_bytes=1024)
    assert cost.guard(dims, max_bytes=None).bytes > 0  # the machine's own memory


def test_unroll_is_guarded_before_any_work():
    with pytest.raises(ExpansionTooLargeError, match=r"^T=10000000 with N=2, D=2, H=2, C=2 "):
        unroll(Dims(N=2, D=2, H=2, C=2, T=10_000_000))
    with pytest.raises(ExpansionTooLargeError, match=r"^H=500 with .*\(limit 2 min\)"):
        unroll(Dims(N=2, D=2, H=500, C=3, T=3))
    with pytest.raises(ExpansionTooLargeError, match=r"\(limit 1\.0 s\)"):
        unroll(Dims(N=2, D=2, H=8, C=2, T=200), max_seconds=1.0)


DIMENSIONS = ("N", "D", "H", "C", "T")


@pytest.mark.parametrize("wrt", [*GRADIENT_NAMES, None])
@pytest.mark.parametrize("name", DIMENSIONS)
def test_estimate_grows_in_every_dimension(name, wrt):
    base = Dims(N=3, D=3, H=3, C=3, T=5)
    values = [1, 2, 3, 5, 8, 13, 21, 34, 40, 41, 55, 89, 144, 233, 377, 610, 987]
    if name == "C":
        values = values[1:]
    previous = None
    for v in values:
        d = dataclasses.replace(base, **{name: v})
        # Paths are listed up to T=40 only, so with paths the estimate drops once after T=40.
        paths = name != "T"
        est = cost.estimate(d, wrt, paths=paths)
        if previous is not None:
            assert est.seconds > previous.seconds and est.bytes >= previous.bytes, (name, v)
        previous = est


@pytest.mark.parametrize("wrt", GRADIENT_NAMES)
def test_paths_add_cost_up_to_T_40_only(wrt):
    at40, at41 = Dims(2, 2, 2, 3, 40), Dims(2, 2, 2, 3, 41)
    assert cost.estimate(at40, wrt).seconds > cost.estimate(at40, wrt, paths=False).seconds
    assert cost.estimate(at41, wrt) == cost.estimate(at41, wrt, paths=False)
    assert cost.estimate(at41, None) == cost.estimate(at41, "W_h", paths=False)
    for T in (1, 10, 39):  # within the path regime, T still only adds cost
        lo, hi = Dims(2, 2, 2, 3, T), Dims(2, 2, 2, 3, T + 1)
        assert cost.estimate(lo, wrt).seconds < cost.estimate(hi, wrt).seconds


def test_prediction_is_the_fitted_constants_times_the_work_counts():
    dims = Dims(N=2, D=2, H=2, C=3, T=3)
    counts = cost.work(dims, "W_h")
    # The work counts at the README example, by hand. Symbols per step: the copies of W_x, W_h,
    # b, V, c (4 + 4 + 2 + 6 + 3), x (4), Y (6), a (4), h (4), o (6), m (2) and L_t (1).
    assert counts["entries"] == 2 * 3 * (19 + 4 + 6 + 4 + 4 + 6 + 2 + 1)
    # Each of a_t's 4 entries: 5 terms, each differentiated w.r.t. 9 symbols.
    assert counts["in_sums"] == 3 * 4 * 5 * 9
    assert counts["softmax"] == 3 * 6**2 and counts["loss_sum"] == 9
    # 12 chain suffixes, 2 per path (W_h^(k) -> ..., W_h -> ...), o_t and L_t per step, L.
    assert counts["path_blocks"] == 12 + 2 * 6 + 2 * 3 + 1
    assert counts["path_roots"] == 6 * 4 * 2**2  # 6 paths ending in h^T g: 4 sums of N terms
    seconds = sum(cost.SECONDS_PER_UNIT[k] * counts[k] for k in cost.SECONDS_PER_UNIT)
    size = sum(cost.BYTES_PER_UNIT[k] * counts[k] for k in cost.BYTES_PER_UNIT)
    est = cost.estimate(dims)
    assert est.seconds == pytest.approx(seconds) and est.bytes == math.ceil(size)
    # Small sizes cost about the fixed part: process warm-up and about 100 MB of interpreter.
    assert est.seconds < 2 * cost.SECONDS_PER_UNIT["fixed"] + 0.5
    assert est.bytes < 2 * cost.BYTES_PER_UNIT["fixed"]


def test_path_counts_match_the_derivation():
    from symbptt.engine.derivatives import derive

    dims = Dims(N=1, D=1, H=1, C=2, T=4)
    graph = unroll(dims)
    for wrt in GRADIENT_NAMES:
        d = derive(graph)  # path blocks are cached per derivation: a fresh one per gradient
        counts = cost.work(dims, wrt)
        n_paths = d.path_count(wrt)
        assert n_paths == (10 if wrt in ("W_h", "W_x", "b", "x") else 4), wrt
        # Count the blocks compile_paths would make: every distinct suffix of a path.
        for path in d.paths(wrt):
            d.path_contribution(path)
        assert counts["path_blocks"] == len(d.path_blocks()), wrt
        if wrt == "V":  # each path ends in h_t^T g: H*C = 2 sums of N = 1 term
            assert counts["path_roots"] == n_paths * 2 * 1**2
        if wrt == "h0":
            assert counts["path_roots"] == 0 and counts["path_chain"] > 0


def test_available_memory_is_read():
    assert cost.available_bytes() > 64 * 1024**2


def test_path_limit_matches_the_cli():
    cli = pytest.importorskip("symbptt.cli")
    assert cost.PATH_T == cli.MAX_PATH_T


def test_durations_and_sizes_read_well():
    assert cost._duration(840) == "14 min" and cost._duration(5.04) == "5.0 s"
    assert cost._duration(7200) == "2 h" and cost._duration(86400 * 3) == "3 days"
    assert cost._size(3.1 * GiB) == "3.1 GB" and cost._size(16 * GiB) == "16 GB"
