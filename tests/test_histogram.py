"""LatencyHistogram against references computed from the raw samples."""

from __future__ import annotations

import math
import pickle
import random
import tracemalloc
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warmline._histogram import LatencyHistogram

EPS = 1e-12  # float noise on bucket edges


def nearest_rank(samples: list[float], p: float) -> float:
    """The reference: the sample of rank ceil(p/100 * n), computed exactly."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(Fraction(str(p)) * len(ordered) / 100))
    return ordered[rank - 1]


def filled(samples: list[float]) -> LatencyHistogram:
    h = LatencyHistogram()
    for s in samples:
        h.record(s)
    return h


def test_empty_histogram_reports_none() -> None:
    h = LatencyHistogram()
    assert h.count == 0
    assert (h.min, h.max, h.mean) == (None, None, None)
    assert h.percentile(50) is None
    assert h.to_dict() == {
        "count": 0,
        "min": None,
        "mean": None,
        "p50": None,
        "p90": None,
        "p99": None,
        "p99.9": None,
        "max": None,
    }
    assert repr(h) == "<LatencyHistogram empty>"


def test_relative_error_is_about_one_percent() -> None:
    assert 0.0108 < LatencyHistogram.RELATIVE_ERROR < 0.0110


@settings(max_examples=60, deadline=None)
@given(
    samples=st.lists(
        st.floats(min_value=1e-6, max_value=100.0, allow_nan=False), min_size=1, max_size=300
    ),
    p=st.sampled_from([0.0, 1.0, 25.0, 50.0, 90.0, 99.0, 99.9, 100.0]),
)
def test_percentile_within_stated_precision(samples: list[float], p: float) -> None:
    h = filled(samples)
    got = h.percentile(p)
    want = nearest_rank(samples, p)
    assert got is not None
    assert abs(got - want) <= want * (LatencyHistogram.RELATIVE_ERROR + EPS)


def test_percentiles_on_a_lognormal_sample() -> None:
    rng = random.Random(12)
    samples = [rng.lognormvariate(math.log(50e-6), 1.5) for _ in range(20_000)]
    h = filled(samples)
    ps = (50, 90, 99, 99.9)
    got = h.percentiles(ps)
    assert list(got) == list(ps)
    for p in ps:
        want = nearest_rank(samples, p)
        value = got[p]
        assert value is not None
        assert abs(value - want) <= want * (LatencyHistogram.RELATIVE_ERROR + EPS)
    assert h.count == len(samples)
    assert h.max == max(samples)
    assert h.min == min(samples)
    assert h.mean == pytest.approx(sum(samples) / len(samples), rel=1e-9)
    assert h.percentile(100) == max(samples)
    assert h.percentile(0) == min(samples)


def test_percentile_rank_is_not_pushed_up_by_float_noise() -> None:
    # 99.9 * 1000 / 100 is 999.0000000000001 in binary: rank 999, not 1000.
    samples = [0.001] * 999 + [1.0]
    assert filled(samples).percentile(99.9) == pytest.approx(0.001, rel=0.011)


def test_out_of_range_values_are_clamped_to_the_exact_extremes() -> None:
    h = filled([0.0, 2e-7, 500.0, math.inf])
    assert h.count == 4
    assert h.min == 0.0
    assert h.percentile(25) == 0.0  # the underflow bucket reports the exact min
    assert h.percentile(100) == math.inf
    h2 = filled([5e-7, 5e-7, 250.0])
    assert h2.percentile(50) == 5e-7
    assert h2.percentile(100) == 250.0


@pytest.mark.parametrize("p", [-1, 100.5, math.nan])
def test_bad_percentile_is_a_value_error(p: float) -> None:
    h = filled([0.001])
    with pytest.raises(ValueError, match="percentile"):
        h.percentile(p)


def test_merge_equals_recording_everything_in_one() -> None:
    rng = random.Random(3)
    a = [rng.uniform(1e-5, 1e-2) for _ in range(500)]
    b = [rng.uniform(1e-4, 1.0) for _ in range(700)]
    merged = filled(a).merge(filled(b))
    whole = filled(a + b)
    assert merged.count == whole.count == 1200
    assert merged.percentiles() == whole.percentiles()
    assert merged.max == whole.max
    assert merged.min == whole.min
    assert merged.sum == pytest.approx(whole.sum)
    assert filled(a).merge(LatencyHistogram()).percentiles() == filled(a).percentiles()


def test_merge_rejects_other_types() -> None:
    with pytest.raises(TypeError, match="LatencyHistogram"):
        LatencyHistogram().merge({"count": 1})  # type: ignore[arg-type]


def test_reset_keeps_the_object_and_forgets_samples() -> None:
    h = filled([0.01, 0.02])
    counts = h._counts
    h.reset()
    assert h._counts is counts
    assert h.count == 0
    assert h.max is None
    h.record(0.5)
    assert h.percentile(50) == 0.5


def test_copy_is_independent() -> None:
    h = filled([0.01])
    c = h.copy()
    h.record(0.02)
    assert (c.count, h.count) == (1, 2)


def test_pickle_round_trip_and_bad_state() -> None:
    h = filled([0.001, 0.002, 0.3])
    back = pickle.loads(pickle.dumps(h))
    assert back.to_dict() == h.to_dict()
    back.record(0.004)
    assert h.count == 3
    state = h.__getstate__()
    state["counts"] = state["counts"][:-1]
    with pytest.raises(ValueError, match="buckets"):
        LatencyHistogram().__setstate__(state)


def test_to_dict_and_repr() -> None:
    h = filled([0.001, 0.002, 0.003])
    d = h.to_dict((50, 99.9))
    assert list(d) == ["count", "min", "mean", "p50", "p99.9", "max"]
    assert d["count"] == 3
    assert d["p50"] == pytest.approx(0.002, rel=0.011)
    assert d["max"] == 0.003
    assert repr(h).startswith("<LatencyHistogram n=3 p50=1.98ms")


def test_cumulative_counts_match_the_samples_within_precision() -> None:
    samples = [1e-5] * 10 + [1e-3] * 5 + [0.1] * 2 + [200.0]
    h = filled(samples)
    assert h.cumulative_counts([5e-6, 2e-5, 2e-3, 0.5, 150.0, math.inf]) == [0, 10, 15, 17, 17, 18]


def test_memory_is_bounded_whatever_the_number_of_samples() -> None:
    h = LatencyHistogram()
    rng = random.Random(5)
    values = [rng.lognormvariate(math.log(1e-3), 3.0) for _ in range(10_000)]
    for v in values:  # warm every bucket these values reach
        h.record(v)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(50):
            for v in values:
                h.record(v)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # Counts over 2**30 become bigger ints; nothing else may grow.
    assert after - before < 16_384
    # 10 million samples through merges: the same 853 counters.
    big = LatencyHistogram()
    for _ in range(20):
        big.merge(h)
    assert big.count == 20 * 510_000
    assert len(big._counts) == len(LatencyHistogram()._counts) < 1000


def same_state(a: LatencyHistogram, b: LatencyHistogram) -> bool:
    sa, sb = a.__getstate__(), b.__getstate__()
    sums_close = math.isclose(sa["sum"], sb["sum"], rel_tol=1e-9) or (
        math.isnan(sa["sum"]) and math.isnan(sb["sum"])
    )
    return (
        sa["counts"] == sb["counts"]
        and (sa["min"], sa["max"]) == (sb["min"], sb["max"])
        and sums_close
    )


@settings(max_examples=80, deadline=None)
@given(
    samples=st.lists(
        st.one_of(
            st.floats(min_value=1e-7, max_value=200.0),
            st.sampled_from([0.0, -1.0, 1e-6, 100.0, math.inf, math.nan]),
            st.floats(min_value=1e-3, max_value=1.1e-3),  # narrow: the sorted walk
        ),
        max_size=300,
    )
)
def test_record_many_counts_exactly_as_record(samples: list[float]) -> None:
    one_by_one = filled(samples)
    batch = LatencyHistogram()
    batch.record_many(samples)
    assert same_state(one_by_one, batch)


@pytest.mark.parametrize("sigma", [0.01, 0.3, 2.0])
def test_record_many_narrow_and_wide_batches_and_zeros(sigma: float) -> None:
    rng = random.Random(7)
    samples = [rng.lognormvariate(-8, sigma) for _ in range(500)] + [0.0] * 20
    rng.shuffle(samples)
    batch = LatencyHistogram()
    for start in range(0, len(samples), 256):
        batch.record_many(samples[start : start + 256])
    assert same_state(filled(samples), batch)
    assert batch.count == 520 and batch.min == 0.0
