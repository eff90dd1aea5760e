"""How often a readiness check retries (queueproxy/readiness.py, ``retry_interval``)."""

from __future__ import annotations

from queueproxy.readiness import (
    AGGRESSIVE_FAST_FOR,
    AGGRESSIVE_FAST_INTERVAL,
    AGGRESSIVE_INTERVAL,
    retry_interval,
)


def test_a_check_retries_fast_at_first_then_at_knatives_pace() -> None:
    assert retry_interval(0.0) == AGGRESSIVE_FAST_INTERVAL == 0.005
    assert retry_interval(AGGRESSIVE_FAST_FOR - 0.01) == AGGRESSIVE_FAST_INTERVAL
    assert retry_interval(AGGRESSIVE_FAST_FOR) == AGGRESSIVE_INTERVAL == 0.05
