"""Table tests for the KPA decider and its scale-down delay window."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoscaler.decider import Decider, DeciderSpec, DelayWindow, ScaleResult

INVALID = ScaleResult(0, 0, False)


def make_spec(**overrides: Any) -> DeciderSpec:
    """A small spec for table rows: target 10 per pod, EBC off, 2x panic, 60 s window."""
    fields: dict[str, Any] = {
        "target": 10.0,
        "total_value": 20.0,
        "target_burst_capacity": 0.0,
        "panic_threshold": 2.0,
        "stable_window": 60.0,
        "max_scale_up_rate": 10.0,
        "max_scale_down_rate": 2.0,
    }
    fields.update(overrides)
    return DeciderSpec(**fields)


def default_spec(**overrides: Any) -> DeciderSpec:
    """The spec upstream's default config yields for containerConcurrency 0
    (docs/autoscaling.md, "Decider spec")."""
    fields: dict[str, Any] = {
        "target": 70.0,
        "total_value": 100.0,
        "target_burst_capacity": 211.0,
        "panic_threshold": 2.0,
        "stable_window": 60.0,
        "max_scale_up_rate": 1000.0,
        "max_scale_down_rate": 2.0,
    }
    fields.update(overrides)
    return DeciderSpec(**fields)


class Tick(NamedTuple):
    """One scale() call and what it must return."""

    now: float
    ready: int | None
    stable: float | None
    panic: float | None
    result: ScaleResult
    in_panic: bool


def ok(desired: int, ebc: int = 0) -> ScaleResult:
    return ScaleResult(desired, ebc, True)


def run(decider: Decider, ticks: list[Tick]) -> None:
    for i, tick in enumerate(ticks):
        got = decider.scale(tick.now, ready_pods=tick.ready, stable=tick.stable, panic=tick.panic)
        assert (got, decider.in_panic) == (tick.result, tick.in_panic), f"tick {i} at {tick.now}"


# Each row: spec overrides, ready pods at construction (at t=0), ticks.
DECIDER_TABLE = [
    pytest.param({}, 0, [Tick(2, None, 10, 10, INVALID, False)], id="no-ready-count-invalid"),
    pytest.param({}, 0, [Tick(2, 1, None, 10, INVALID, False)], id="no-stable-data-invalid"),
    pytest.param({}, 0, [Tick(2, 1, 10, None, INVALID, False)], id="no-panic-data-invalid"),
    pytest.param({}, 0, [Tick(2, 2, 20, 20, ok(2), False)], id="stable-only"),
    pytest.param({}, 0, [Tick(2, 2, 21, 21, ok(3), False)], id="stable-want-rounds-up"),
    pytest.param({}, 0, [Tick(2, 2, 20, 30, ok(2), False)], id="panic-ratio-under-threshold"),
    pytest.param({}, 0, [Tick(2, 2, 20, 40, ok(4), True)], id="panic-entry-at-exact-threshold"),
    pytest.param(
        {},
        0,
        [
            Tick(2, 2, 20, 40, ok(4), True),
            Tick(50, 4, 20, 80, ok(8), True),  # over again: panic time moves to 50
            Tick(100, 8, 20, 20, ok(8), True),  # 50 + 60 is not before 100
            Tick(110, 8, 20, 20, ok(8), True),  # exactly a window: not strictly elapsed
            Tick(111, 8, 20, 20, ok(4), False),  # exit; stable want clamped to 8 / 2
        ],
        id="panic-extension-then-exit",
    ),
    pytest.param(
        {},
        0,
        [
            Tick(2, 2, 20, 40, ok(4), True),
            Tick(62, 4, 20, 20, ok(4), True),
            Tick(63, 4, 20, 20, ok(2), False),
        ],
        id="panic-exit-needs-strict-elapse",
    ),
    pytest.param(
        {},
        0,
        [Tick(2, 2, 20, 40, ok(4), True), Tick(100, 4, 20, 80, ok(8), True)],
        id="over-tick-after-window-stays-in-panic",
    ),
    pytest.param(
        {},
        0,
        [
            Tick(2, 2, 20, 80, ok(8), True),
            Tick(4, 8, 20, 160, ok(16), True),
            Tick(6, 16, 20, 40, ok(16), True),  # wants 8 now, but never below 16 in panic
        ],
        id="max-panic-pods-never-decreases",
    ),
    pytest.param({}, 4, [Tick(2, 4, 100, 10, ok(10), True)], id="stable-want-larger-in-panic"),
    pytest.param(
        {"panic_threshold": 0.0},
        1,
        [Tick(2, 1, 0, 0, ok(1), True)],
        id="max-panic-pods-seeded-even-when-calm",
    ),
    pytest.param(
        {"max_scale_up_rate": 1.1, "panic_threshold": 100.0},
        0,
        [Tick(2, 2, 1000, 1000, ok(3), False)],
        id="rate-up-ceil-of-2.2",
    ),
    pytest.param(
        {"max_scale_up_rate": 1.01, "panic_threshold": 1000.0},
        0,
        [Tick(2, 1, 1000, 1000, ok(2), False)],
        id="rate-up-grows-by-at-least-one",
    ),
    pytest.param({}, 0, [Tick(2, 10, 0, 0, ok(5), False)], id="rate-down-halves"),
    pytest.param({}, 0, [Tick(2, 5, 0, 0, ok(2), False)], id="rate-down-floors"),
    pytest.param(
        {"reachable": False}, 0, [Tick(2, 10, 0, 0, ok(0), False)], id="unreachable-drops-to-zero"
    ),
    pytest.param(
        {"reachable": False, "scale_down_delay": 60.0, "panic_threshold": 100.0},
        0,
        [Tick(2, 1, 50, 50, ok(5), False), Tick(4, 5, 0, 0, ok(0), False)],
        id="unreachable-skips-delay-window",
    ),
    pytest.param(
        {"activation_scale": 3}, 0, [Tick(2, 0, 0.2, 1, ok(3), False)], id="activation-lifts-want"
    ),
    pytest.param(
        {"activation_scale": 3}, 0, [Tick(2, 0, 0, 0, ok(0), False)], id="activation-keeps-zero"
    ),
    pytest.param(
        {"activation_scale": 5, "max_scale_up_rate": 2.0, "panic_threshold": 100.0},
        0,
        [Tick(2, 1, 100, 100, ok(5), False)],
        id="activation-after-clamp-exceeds-max-up",
    ),
    pytest.param(
        {"activation_scale": 3},
        0,
        [Tick(2, 10, 10, 10, ok(5), False)],
        id="activation-below-clamped-want-ignored",
    ),
    pytest.param(
        {"target_burst_capacity": -1.0},
        0,
        [Tick(2, 2, 20, 20, ok(2, -1), False)],
        id="ebc-unlimited-tbc",
    ),
    pytest.param(
        {"target_burst_capacity": 30.0},
        0,
        [Tick(2, 3, 20, 25, ok(2, 5), False)],
        id="ebc-positive-tbc",
    ),
    pytest.param(
        {"target_burst_capacity": 40.5},
        0,
        [Tick(2, 2, 20, 4.25, ok(2, -5), False)],
        id="ebc-floors-toward-minus-infinity",
    ),
    pytest.param(
        {"target_burst_capacity": 30.0},
        0,
        [Tick(2, 0, 10, 5, ok(1, -35), False)],
        id="ebc-zero-ready-means-no-capacity",
    ),
    pytest.param({}, 2, [Tick(2, 2, 0, 0, ok(2), True)], id="starts-in-panic-with-two-ready"),
    pytest.param({}, 1, [Tick(2, 1, 0, 0, ok(0), False)], id="starts-calm-with-one-ready"),
    pytest.param(
        {},
        3,
        [Tick(60, 3, 0, 0, ok(3), True), Tick(61, 3, 0, 0, ok(1), False)],
        id="construction-panic-lasts-a-stable-window",
    ),
    pytest.param(
        {"scale_down_delay": 4.0, "panic_threshold": 100.0},
        0,
        [
            Tick(2, 1, 50, 50, ok(5), False),  # bucket 1
            Tick(4, 5, 0, 0, ok(5), False),  # bucket 2: wants 2, holds 5
            Tick(6, 5, 0, 0, ok(2), False),  # bucket 3: bucket 1 left the window
        ],
        id="delay-holds-recent-max",
    ),
    pytest.param(
        {"scaling_metric": "rps"}, 0, [Tick(2, 2, 20, 40, ok(4), True)], id="rps-same-math"
    ),
]


@pytest.mark.parametrize(("overrides", "start_ready", "ticks"), DECIDER_TABLE)
def test_decider_table(overrides: dict[str, Any], start_ready: int, ticks: list[Tick]) -> None:
    run(Decider(make_spec(**overrides), ready_pods=start_ready, now=0.0), ticks)


def test_worked_examples_1_to_3_surge_and_panic_exit() -> None:
    decider = Decider(default_spec(), ready_pods=0, now=0.0)
    run(
        decider,
        [
            # 1: wants 3 and 8, ratio 8/3 >= 2: panic, EBC 300 - 211 - 500.
            Tick(2, 3, 150, 500, ok(8, -411), True),
            # 2: wants 5 and 2 with 8 ready, 20 s later: still panicking.
            Tick(22, 8, 300, 120, ok(8, 469), True),
            # 3: 61 s after the last over-threshold tick: clamp(5, 4, 8000).
            Tick(63, 8, 300, 120, ok(5, 469), False),
        ],
    )


@pytest.mark.parametrize(
    ("overrides", "ready", "stable", "panic", "expected"),
    [
        ({}, 100, 0.0, 0.0, ok(50, 9789)),
        ({"reachable": False}, 100, 0.0, 0.0, ok(0, 9789)),
        ({"activation_scale": 3}, 0, 0.02, 1.0, ok(3, -212)),
    ],
    ids=["4-load-vanishes-halves", "4-unreachable-to-zero", "5-activation-scale-from-zero"],
)
def test_worked_examples_single_tick(
    overrides: dict[str, Any], ready: int, stable: float, panic: float, expected: ScaleResult
) -> None:
    decider = Decider(default_spec(**overrides), ready_pods=0, now=0.0)
    assert decider.scale(2.0, ready_pods=ready, stable=stable, panic=panic) == expected
    assert not decider.in_panic


def test_delay_window_worked_example() -> None:
    decider = Decider(make_spec(scale_down_delay=300.0), ready_pods=0, now=0.0)
    run(
        decider,
        [
            Tick(2, 1, 40, 40, ok(4), True),  # bucket 1 = 4
            Tick(300, 1, 0, 0, ok(4), False),  # bucket 150 = 0; 150 - 1 < 150 keeps 4
            Tick(302, 1, 0, 0, ok(0), False),  # bucket 151: bucket 1 is 150 old, dropped
        ],
    )


def test_update_changes_target_for_next_call() -> None:
    decider = Decider(make_spec(panic_threshold=100.0), ready_pods=0, now=0.0)
    assert decider.scale(2.0, ready_pods=2, stable=20, panic=20) == ok(2)
    decider.update(make_spec(panic_threshold=100.0, target=5.0))
    assert decider.scale(4.0, ready_pods=2, stable=20, panic=20) == ok(4)


@pytest.mark.parametrize(
    ("ready", "in_panic"),
    [(0, False), (1, False), (2, True), (7, True)],
    ids=["zero-ready", "one-ready", "two-ready", "seven-ready"],
)
def test_construction_panic_state(ready: int, in_panic: bool) -> None:
    assert Decider(make_spec(), ready_pods=ready, now=5.0).in_panic is in_panic


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("target", 0.0),
        ("max_scale_up_rate", 1.0),
        ("max_scale_down_rate", 0.5),
        ("stable_window", -1.0),
        ("scale_down_delay", -2.0),
    ],
    ids=[
        "zero-target",
        "up-rate-not-above-one",
        "down-rate-below-one",
        "negative-window",
        "negative-delay",
    ],
)
def test_spec_rejects_values_that_break_arithmetic(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        make_spec(**{field: value})


# --- Scale-down delay window on its own ---------------------------------------------------


@pytest.mark.parametrize(
    ("delay", "records", "expected"),
    [
        (6.0, [], [0]),
        (6.0, [(0, 1)], [1]),
        (
            6.0,  # 3 buckets; the maximum slides down as old buckets leave
            [(0, 1), (2, 5), (4, 3), (6, 2), (8, 1), (10, 0), (12, 4)],
            [1, 5, 5, 5, 3, 2, 4],
        ),
        (2.0, [(2, 5), (3, 3)], [5, 5]),
        (2.0, [(2, 3), (3, 5)], [3, 5]),
        (2.0, [(2, 5), (3, 3), (4, 1)], [5, 5, 1]),
        (5.0, [(0, 7), (4, 1), (6, 1)], [7, 7, 1]),
        (300.0, [(2, 4), (300, 0), (302, 0)], [4, 4, 0]),
        (300.0, [(3, 4), (301, 0)], [4, 4]),
        (6.0, [(10, 4), (2, 9)], [4, 9]),
    ],
    ids=[
        "empty-is-zero",
        "single-record",
        "sliding-maximum",
        "same-bucket-keeps-larger-first",
        "same-bucket-keeps-larger-second",
        "same-bucket-entries-expire-together",
        "size-rounds-up-to-3-buckets",
        "reference-example-300s",
        "t301-still-bucket-150",
        "clock-step-back-joins-newest-bucket",
    ],
)
def test_delay_window(delay: float, records: list[tuple[float, int]], expected: list[int]) -> None:
    window = DelayWindow(delay)
    got = [window.current()] if not records else []
    for t, value in records:
        window.record(t, value)
        got.append(window.current())
    assert got == expected


@given(
    st.integers(min_value=1, max_value=12),
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=6), st.integers(min_value=0, max_value=20)),
        max_size=40,
    ),
)
def test_delay_window_matches_naive_maximum(delay: int, steps: list[tuple[int, int]]) -> None:
    """The monotone deque equals the maximum over the last ``size`` buckets of the newest record."""
    window = DelayWindow(float(delay))
    per_bucket: dict[int, int] = {}
    t = 0
    for advance, value in steps:
        t += advance
        window.record(float(t), value)
        index = t // 2
        per_bucket[index] = max(per_bucket.get(index, value), value)
        assert window.current() == max(v for i, v in per_bucket.items() if index - i < window.size)


# --- Upstream's quirks: each fails if the quirk is implemented the "obvious" way ------


def test_pitfall_inputs_are_totals_and_target_is_per_pod() -> None:
    # Dividing the total by the ready count first would want ceil(50 / 70) = 1.
    decider = Decider(default_spec(), ready_pods=0, now=0.0)
    assert decider.scale(2.0, ready_pods=3, stable=150, panic=150).desired_pods == 3


def test_pitfall_ebc_uses_panic_value_and_real_ready_count() -> None:
    # The stable value would give -130; the "at least one pod" count would give -15.
    decider = Decider(make_spec(target_burst_capacity=30.0), ready_pods=0, now=0.0)
    assert decider.scale(2.0, ready_pods=0, stable=100, panic=5) == ok(10, -35)


def test_pitfall_panic_ratio_uses_unclamped_panic_want() -> None:
    # The clamped panic want is ceil(1.5 * 1) = 2, and 2 / 1 < 3 would not panic.
    spec = make_spec(max_scale_up_rate=1.5, panic_threshold=3.0)
    decider = Decider(spec, ready_pods=0, now=0.0)
    assert decider.scale(2.0, ready_pods=1, stable=0, panic=100) == ok(2)
    assert decider.in_panic


def test_pitfall_panic_ratio_divides_by_at_least_one_pod() -> None:
    # Dividing by the real count (0) would fail or give infinity.
    decider = Decider(make_spec(), ready_pods=0, now=0.0)
    assert decider.scale(2.0, ready_pods=0, stable=0, panic=20) == ok(2)
    assert decider.in_panic


def test_pitfall_panic_threshold_is_inclusive() -> None:
    # A strict ">" would not panic at a ratio of exactly 2.
    decider = Decider(make_spec(), ready_pods=0, now=0.0)
    decider.scale(2.0, ready_pods=3, stable=0, panic=60)
    assert decider.in_panic


def test_pitfall_panic_exit_needs_stable_window_strictly_elapsed() -> None:
    # Exiting at "elapsed >= window" would leave panic at t = 62.
    decider = Decider(make_spec(), ready_pods=0, now=0.0)
    decider.scale(2.0, ready_pods=1, stable=0, panic=20)
    decider.scale(62.0, ready_pods=1, stable=0, panic=0)
    assert decider.in_panic
    decider.scale(62.5, ready_pods=1, stable=0, panic=0)
    assert not decider.in_panic


def test_pitfall_every_over_threshold_tick_moves_panic_time() -> None:
    # Remembering only the panic start (t = 2) would exit at t = 100.
    decider = Decider(make_spec(), ready_pods=0, now=0.0)
    decider.scale(2.0, ready_pods=1, stable=0, panic=20)
    decider.scale(50.0, ready_pods=1, stable=0, panic=20)
    decider.scale(100.0, ready_pods=1, stable=0, panic=0)
    assert decider.in_panic


def test_pitfall_max_panic_pods_starts_at_construction_ready_count() -> None:
    # Starting from 0 would give clamp(0, floor(5 / 2), 50) = 2.
    decider = Decider(make_spec(), ready_pods=5, now=0.0)
    assert decider.scale(2.0, ready_pods=5, stable=10, panic=10) == ok(5)


def test_pitfall_max_panic_pods_resets_only_on_panic_exit() -> None:
    # Keeping the old maximum across panic episodes would give 10 on re-entry.
    decider = Decider(make_spec(), ready_pods=0, now=0.0)
    assert decider.scale(2.0, ready_pods=5, stable=0, panic=100) == ok(10)
    assert decider.scale(4.0, ready_pods=10, stable=0, panic=0) == ok(10)
    assert decider.scale(70.0, ready_pods=2, stable=0, panic=0) == ok(1)
    assert not decider.in_panic
    assert decider.scale(72.0, ready_pods=2, stable=0, panic=40) == ok(4)


@pytest.mark.parametrize(
    ("built_with", "updated_to", "after_drop"),
    [(0.0, 60.0, 2), (60.0, 0.0, 5), (4.0, 300.0, 2)],
    ids=["not-created-by-update", "not-removed-by-update", "not-resized-by-update"],
)
def test_pitfall_delay_window_exists_only_from_construction(
    built_with: float, updated_to: float, after_drop: int
) -> None:
    decider = Decider(
        make_spec(scale_down_delay=built_with, panic_threshold=100.0), ready_pods=0, now=0.0
    )
    decider.update(make_spec(scale_down_delay=updated_to, panic_threshold=100.0))
    assert decider.scale(2.0, ready_pods=1, stable=50, panic=50) == ok(5)
    decider.scale(4.0, ready_pods=5, stable=0, panic=0)
    assert decider.scale(6.0, ready_pods=5, stable=0, panic=0) == ok(after_drop)


def test_pitfall_delay_window_neither_read_nor_written_while_unreachable() -> None:
    spec = make_spec(scale_down_delay=60.0, panic_threshold=100.0)
    decider = Decider(spec, ready_pods=0, now=0.0)
    assert decider.scale(2.0, ready_pods=1, stable=50, panic=50) == ok(5)
    decider.update(make_spec(scale_down_delay=60.0, panic_threshold=100.0, reachable=False))
    assert decider.scale(4.0, ready_pods=5, stable=0, panic=0) == ok(0)
    # Back to reachable: the 0 above was never recorded, the earlier 5 still holds.
    decider.update(spec)
    assert decider.scale(6.0, ready_pods=1, stable=10, panic=10) == ok(5)


def test_pitfall_delay_window_expires_by_bucket_index_not_elapsed_time() -> None:
    # Only 299 s have passed, but t = 3 is bucket 1 and t = 302 is bucket 151.
    decider = Decider(
        make_spec(scale_down_delay=300.0, panic_threshold=100.0), ready_pods=0, now=0.0
    )
    assert decider.scale(3.0, ready_pods=1, stable=40, panic=40) == ok(4)
    assert decider.scale(302.0, ready_pods=1, stable=0, panic=0) == ok(0)


def test_pitfall_invalid_result_changes_nothing() -> None:
    # Evaluating the panic exit before checking the inputs would leave panic here.
    decider = Decider(make_spec(), ready_pods=3, now=0.0)
    assert decider.scale(61.0, ready_pods=3, stable=None, panic=0) == INVALID
    assert decider.in_panic
    assert decider.scale(61.0, ready_pods=3, stable=0, panic=0) == ok(1)
    assert not decider.in_panic


def test_pitfall_unreachable_allows_immediate_drop_to_zero() -> None:
    # Keeping the halving limit would give 5.
    decider = Decider(make_spec(reachable=False), ready_pods=0, now=0.0)
    assert decider.scale(2.0, ready_pods=10, stable=0, panic=0) == ok(0)


@pytest.mark.parametrize(
    ("ready", "stable", "expected"),
    [(1, 100.0, 5), (1, 0.0, 0)],
    ids=["lifted-past-max-up", "zero-want-stays-zero"],
)
def test_pitfall_activation_scale_after_clamp_and_only_for_nonzero(
    ready: int, stable: float, expected: int
) -> None:
    # Lifting before the clamp would give max_up = 2; lifting zero would block scale to zero.
    spec = make_spec(activation_scale=5, max_scale_up_rate=2.0, panic_threshold=100.0)
    decider = Decider(spec, ready_pods=0, now=0.0)
    assert decider.scale(2.0, ready_pods=ready, stable=stable, panic=stable) == ok(expected)
