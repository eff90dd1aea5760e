"""Time-weighted request statistics and the Stat wire format (docs/autoscaling.md)."""

from __future__ import annotations

import pytest

from zeroserve.stats import RequestStats, Stat


def test_constant_load_averages_to_its_level() -> None:
    s = RequestStats(now=0.0)
    for _ in range(4):
        s.request_in(0.0, proxied=False)
    iv = s.report(1.0)
    assert iv.average_concurrency == 4.0
    assert iv.request_count == 4
    # in-flight requests carry over; the next interval sees them again, no new arrivals
    iv = s.report(2.0)
    assert (iv.average_concurrency, iv.request_count) == (4.0, 0)


@pytest.mark.parametrize(
    ("events", "report_at", "avg", "proxied_avg", "count", "proxied_count"),
    [
        ([("in", 0.5, False), ("out", 1.0, False)], 1.0, 0.5, 0.0, 1, 0),
        ([("in", 0.0, True), ("in", 0.0, False), ("out", 0.5, True)], 1.0, 1.5, 0.5, 2, 1),
        ([("in", 0.25, False), ("out", 0.75, False), ("in", 0.75, False)], 1.0, 0.75, 0.0, 2, 0),
        ([], 1.0, 0.0, 0.0, 0, 0),
        ([("in", 0.5, False), ("out", 0.2, False)], 1.0, 0.0, 0.0, 1, 0),  # out applied at 0.5
    ],
    ids=["half-interval", "proxied-split", "back-to-back", "idle", "clock-going-back-is-ignored"],
)
def test_interval_table(events, report_at, avg, proxied_avg, count, proxied_count) -> None:  # type: ignore[no-untyped-def]
    s = RequestStats(now=0.0)
    for kind, t, proxied in events:
        (s.request_in if kind == "in" else s.request_out)(t, proxied)
    iv = s.report(report_at)
    assert iv.average_concurrency == pytest.approx(avg)
    assert iv.average_proxied_concurrency == pytest.approx(proxied_avg)
    assert (iv.request_count, iv.proxied_request_count) == (count, proxied_count)


def test_report_with_no_elapsed_time_is_zero() -> None:
    s = RequestStats(now=5.0)
    s.request_in(5.0, False)
    assert s.report(5.0).average_concurrency == 0.0


def test_stat_json_round_trip_uses_upstream_field_names() -> None:
    st = Stat(
        pod_name="p",
        average_concurrent_requests=1.5,
        request_count=3,
        process_uptime=9.0,
        timestamp=17,
    )
    body = st.to_json()
    assert body.startswith(b'{"pod_name":"p","average_concurrent_requests":1.5,')
    assert Stat.from_json(body) == st


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[1]", "must be a JSON object"),
        (b'{"pod_name": 3}', "pod_name must be a string"),
        (b'{"request_count": "many"}', "request_count must be a number"),
        (b'{"average_concurrent_requests": true}', "average_concurrent_requests must be a number"),
        (b"{", "not valid JSON"),
    ],
    ids=["not-object", "pod-name-type", "count-type", "bool-is-not-a-number", "bad-json"],
)
def test_stat_parse_errors_name_the_field(body: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Stat.from_json(body)
