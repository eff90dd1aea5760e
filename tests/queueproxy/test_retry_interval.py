"""How often a readiness check retries (queueproxy/readiness.py, ``retry_interval``)."""

from __future__ import annotations

from queueproxy.readiness import (
    AGGRESSIVE_FAST_FOR,
    AGGRESSIVE_FAST_INTERVAL,
    AGGRESSIVE_INTERVAL,
    expected_interval,
    retry_interval,
)


def test_a_check_retries_fast_at_first_then_at_knatives_pace() -> None:
    assert retry_interval(0.0) == AGGRESSIVE_FAST_INTERVAL == 0.005
    assert retry_interval(AGGRESSIVE_FAST_FOR - 0.01) == AGGRESSIVE_FAST_INTERVAL
    assert retry_interval(AGGRESSIVE_FAST_FOR) == AGGRESSIVE_INTERVAL == 0.05


def test_before_the_app_is_expected_a_check_waits_an_eighth_of_the_time_left() -> None:
    fast = AGGRESSIVE_FAST_INTERVAL
    assert expected_interval(fast, 1.0) == AGGRESSIVE_INTERVAL  # never slower than Knative
    assert expected_interval(fast, 0.2) == 0.025
    assert expected_interval(fast, 0.02) == fast  # close to it: every 5 ms
    assert expected_interval(fast, -0.1) == fast  # past it
    assert expected_interval(AGGRESSIVE_INTERVAL, 0.2) == AGGRESSIVE_INTERVAL  # after 2 s
