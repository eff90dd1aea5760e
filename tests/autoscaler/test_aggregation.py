"""Table tests for per-second metric buckets and window averaging."""

from __future__ import annotations

import pytest

from autoscaler.aggregation import TimedBuckets, WeightedBuckets, smoothing_alpha
from zeroserve.autoscaling.config import panic_window

EXAMPLE_1 = [(100.0, 10.0), (101.0, 20.0), (102.0, 30.0)]
EXAMPLE_2 = [(100.0 + i, v) for i, v in enumerate([10.0, 20.0, 30.0, 0.0, 40.0, 50.0, 60.0])]
EXAMPLE_3 = [(100.0, 10.0), (100.0, 5.0), (104.0, 40.0)]


@pytest.mark.parametrize(
    ("records", "now", "expected"),
    [
        # Linear averaging as upstream's pkg/autoscaler/aggregation/bucketing.go, window 6 s.
        (EXAMPLE_1, 102.0, 20.0),
        (EXAMPLE_1, 103.0, 20.0),
        (EXAMPLE_1, 104.0, 20.0),
        (EXAMPLE_1, 105.0, 20.0),
        (EXAMPLE_1, 106.0, 25.0),
        (EXAMPLE_1, 107.0, 30.0),
        (EXAMPLE_1, 108.0, 0.0),
        (EXAMPLE_2, 106.0, 33.333333),
        (EXAMPLE_2, 107.0, 36.0),
        (EXAMPLE_3, 104.0, 11.0),
        # Interior gaps count as zeros: (10 + 0 + 0 + 40) / 4.
        ([(100.0, 10.0), (103.0, 40.0)], 103.0, 12.5),
        # Less than a window since the last write: the old bucket is kept.
        ([(100.0, 10.0), (105.0, 20.0)], 105.0, 5.0),
        # A whole window without writes clears everything before 106.
        ([(100.0, 10.0), (106.0, 20.0)], 106.0, 20.0),
        # b + window <= last_write: too old, dropped.
        ([(106.0, 10.0), (100.0, 5.0)], 106.0, 10.0),
        # Late but inside the window: accepted and moves first_write back to 101.
        ([(106.0, 10.0), (101.0, 5.0)], 106.0, 2.5),
        # Times are floored to whole seconds.
        ([(100.9, 10.0), (101.1, 20.0)], 101.99, 15.0),
        # Asking before the last write divides the whole total.
        ([(100.0, 10.0), (101.0, 20.0)], 100.0, 15.0),
        # Rounded to 6 decimals, halves away from zero.
        ([(100.0, 10.0), (101.0, 10.0), (102.0, 0.0)], 102.0, 6.666667),
        ([(100.0, -1.0), (101.0, 0.0), (102.0, 0.0)], 102.0, -0.333333),
        # The running total survives many turns of the ring: mean of 194..199.
        ([(float(t), float(t)) for t in range(100, 200)], 199.0, 196.5),
        ([], 100.0, 0.0),
    ],
    ids=[
        "ex1-at-last-write",
        "ex1-trailing-1s-not-zero",
        "ex1-trailing-2s-not-zero",
        "ex1-trailing-3s-not-zero",
        "ex1-oldest-left-window",
        "ex1-only-newest-left",
        "ex1-window-passed",
        "ex2-full-window",
        "ex2-one-trailing-second",
        "ex3-same-bucket-summed",
        "interior-gap-counts-as-zero",
        "gap-below-window-keeps-data",
        "gap-of-window-resets",
        "too-old-dropped",
        "late-within-window-accepted",
        "fractional-times-floored",
        "now-before-last-write",
        "rounds-to-6-decimals",
        "rounds-negative-away-from-zero",
        "ring-wraps-many-times",
        "never-written-is-zero",
    ],
)
def test_linear_average(records: list[tuple[float, float]], now: float, expected: float) -> None:
    buckets = TimedBuckets(6.0)
    for t, value in records:
        buckets.record(t, value)
    assert buckets.average(now) == expected


@pytest.mark.parametrize(
    ("records", "now", "empty", "average"),
    [
        ([], 100.0, True, 0.0),
        ([(100.0, 10.0)], 100.0, False, 10.0),
        ([(100.0, 10.0)], 106.0, False, 0.0),
        ([(100.0, 10.0)], 106.9, False, 0.0),
        ([(100.0, 10.0)], 107.0, True, 0.0),
    ],
    ids=[
        "never-written",
        "just-written",
        "exactly-one-window-not-empty-but-zero",
        "now-floored-before-comparing",
        "strictly-more-than-window-empty",
    ],
)
def test_is_empty(
    records: list[tuple[float, float]], now: float, empty: bool, average: float
) -> None:
    buckets = TimedBuckets(6.0)
    for t, value in records:
        buckets.record(t, value)
    assert (buckets.is_empty(now), buckets.average(now)) == (empty, average)


@pytest.mark.parametrize("window", [0.0, -6.0], ids=["zero", "negative"])
def test_window_must_be_positive(window: float) -> None:
    with pytest.raises(ValueError, match="window"):
        TimedBuckets(window)


@pytest.mark.parametrize(
    ("stable_window", "percentage", "expected"),
    [
        (60.0, 10.0, 6.0),
        (60.0, 100.0, 60.0),
        (7.0, 10.0, 1.0),
        (3.0, 10.0, 1.0),
        (25.0, 10.0, 3.0),
        (35.0, 10.0, 4.0),
        (60.0, 1.0, 1.0),
        (100.0, 13.0, 13.0),
    ],
    ids=[
        "default-6s",
        "whole-window",
        "0.7s-rounds-up",
        "0.3s-raised-to-1s",
        "2.5s-half-away-from-zero",
        "3.5s-half-away-from-zero",
        "0.6s-rounds-to-1s",
        "13s",
    ],
)
def test_panic_window(stable_window: float, percentage: float, expected: float) -> None:
    assert panic_window(stable_window, percentage) == expected


@pytest.mark.parametrize(
    ("buckets", "alpha"),
    [(60, 0.2), (6, 0.78456), (10, 0.60189)],
    ids=["60-floored-at-0.2", "6-buckets", "10-buckets"],
)
def test_weighted_alpha(buckets: int, alpha: float) -> None:
    assert round(smoothing_alpha(buckets), 5) == alpha
    assert round(WeightedBuckets(float(buckets)).alpha, 5) == alpha


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # 0.2*30 + 0.16*20 + 0.128*10
        (102.0, 10.48),
        # one second without data: weights start at 0.2*0.8
        (103.0, 8.384),
        # two seconds: 0.128*30 + 0.1024*20 + 0.08192*10
        (104.0, 6.7072),
        # before the last write nothing is skipped
        (101.0, 10.48),
        # a whole window since the last write: no bucket left to walk
        (162.0, 0.0),
        (163.0, 0.0),
    ],
    ids=[
        "at-last-write",
        "one-quiet-second",
        "two-quiet-seconds",
        "before-last-write",
        "one-window-later",
        "empty",
    ],
)
def test_weighted_average_by_hand(now: float, expected: float) -> None:
    buckets = WeightedBuckets(60.0)  # alpha = 0.2 exactly
    for t, value in EXAMPLE_1:
        buckets.record(t, value)
    assert buckets.average(now) == pytest.approx(expected, rel=1e-12, abs=0.0)


def test_weighted_average_six_second_window_unnormalised() -> None:
    buckets = WeightedBuckets(6.0)
    buckets.record(100.0, 10.0)
    buckets.record(101.0, 20.0)
    a = buckets.alpha
    # The weights of the two written buckets sum to well under 1: no normalisation.
    assert buckets.average(101.0) == pytest.approx(20 * a + 10 * a * (1 - a), rel=1e-12)
    assert buckets.average(101.0) == pytest.approx(17.3814, abs=1e-4)


def test_weighted_average_last_bucket_of_window() -> None:
    buckets = WeightedBuckets(60.0)
    buckets.record(100.0, 10.0)
    # 59 quiet seconds: only the written bucket is left to walk.
    assert buckets.average(159.0) == pytest.approx(10 * 0.2 * 0.8**59, rel=1e-12)


def test_weighted_never_written_is_zero() -> None:
    assert WeightedBuckets(6.0).average(100.0) == 0.0
