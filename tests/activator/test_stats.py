"""The activator's stats for the autoscaler: pokes, batches, forgetting idle revisions."""

from __future__ import annotations

import json

from activator.stats import StatsReporter
from zeroserve.topology import RevisionKey

KEY = RevisionKey("default", "hello-00001")


def stats_of(frame: str) -> list[tuple[str, float, float]]:
    return [
        (f["revision"], f["stat"]["average_concurrent_requests"], f["stat"]["request_count"])
        for f in json.loads(frame)
    ]


def test_first_request_is_reported_at_once_and_taken_off_the_first_interval() -> None:
    sent: list[str] = []
    r = StatsReporter("activator-0", sent.append)
    entry = r.request_in(KEY, 0.0)
    assert stats_of(sent[0]) == [("hello-00001", 1.0, 1.0)]
    assert json.loads(sent[0])[0]["stat"]["pod_name"] == "activator-0"
    batch = r.report(1.0)  # one request held all second: 1, of which 1 was said
    assert batch is not None and stats_of(batch) == [("hello-00001", 0.0, 0.0)]
    batch = r.report(2.0)
    assert batch is not None and stats_of(batch) == [("hello-00001", 1.0, 0.0)]
    r.request_out(entry, 2.5)
    r.report(3.0)
    assert KEY in r.entries  # 0.5 on average: still tracked
    assert r.report(4.0) is not None
    assert KEY not in r.entries  # an idle interval with nothing in flight: forgotten
    r.request_in(KEY, 5.0)
    assert len(sent) == 2  # ... so the next request pokes again


def test_burst_poke_reports_what_is_waiting_beyond_the_first_poke() -> None:
    sent: list[str] = []
    r = StatsReporter("a", sent.append)
    entry = r.request_in(KEY, 0.0)
    for _ in range(199):
        r.request_in(KEY, 0.0)
    r.poke(entry)
    r.poke(entry)  # nothing new: no message
    assert [stats_of(f) for f in sent] == [
        [("hello-00001", 1.0, 1.0)],
        [("hello-00001", 199.0, 0.0)],
    ]
    batch = r.report(1.0)  # 200 held all second, 200 already said
    assert batch is not None and stats_of(batch) == [("hello-00001", 0.0, 199.0)]


def test_nothing_to_report_without_entries() -> None:
    assert StatsReporter("a", lambda _: None).report(1.0) is None
