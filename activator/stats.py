"""The activator's request statistics for the autoscaler (docs/activator.md).

Every request is counted per revision from the moment it arrives, queued time
included, with the queue-proxy's time-weighted algorithm. The first request
for a revision with no entry is reported at once (the poke that wakes a
revision at zero); every second all entries are reported in one batch, and
idle ones are forgotten, so the next request pokes again.

Zeroserve reports the revision's current in-flight count in the poke, not
upstream's fixed 1: a burst that arrives at once is seen whole by the first
decision.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TypeAlias

from zeroserve.stats import RequestStats
from zeroserve.topology import RevisionKey

Send: TypeAlias = Callable[[str], None]


class RevisionStats:
    """One revision's entry."""

    __slots__ = ("key", "prefix", "reported", "stats")

    def __init__(self, key: RevisionKey, now: float) -> None:
        self.key = key
        self.stats = RequestStats(now)
        self.reported = 0.0  # concurrency already sent by the poke
        self.prefix = json.dumps({"namespace": key.namespace, "revision": key.name})[:-1]


class StatsReporter:
    """Per-revision entries; ``send`` takes a JSON text batch."""

    def __init__(
        self, pod_name: str, send: Send, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.pod_name = pod_name
        self.send = send
        self.clock = clock
        self.entries: dict[RevisionKey, RevisionStats] = {}
        self.last_concurrency: dict[RevisionKey, float] = {}
        """Each revision's average concurrency of the last closed interval (the figure
        Knative's activator records as kn.revision.request.concurrency); kept at its
        last value, 0 once idle, until the revision is forgotten."""
        self._pod = json.dumps(pod_name)

    def request_in(self, key: RevisionKey, now: float) -> RevisionStats:
        entry = self.entries.get(key)
        if entry is None:
            entry = RevisionStats(key, now)
            self.entries[key] = entry
            entry.stats.request_in(now, False)
            entry.reported = 1.0
            self.send("[" + self._line(entry, 1.0, 1.0) + "]")
            return entry
        entry.stats.request_in(now, False)
        return entry

    def request_out(self, entry: RevisionStats, now: float) -> None:
        entry.stats.request_out(now, False)

    def poke(self, entry: RevisionStats) -> None:
        """Report the revision's current in-flight count now (a burst waiting
        at zero), on top of what the first poke said."""
        current = float(entry.stats.concurrency)
        if current > entry.reported:
            extra = current - entry.reported
            entry.reported = current
            self.send("[" + self._line(entry, extra, 0.0) + "]")

    def report(self, now: float) -> str | None:
        """Close a 1 s interval for every entry; the batch to send, or None."""
        lines = []
        for key, entry in list(self.entries.items()):
            iv = entry.stats.report(now)
            per_second = 1.0 / iv.seconds if iv.seconds > 0 else 0.0
            avg = iv.average_concurrency
            self.last_concurrency[key] = avg
            count = iv.request_count * per_second
            if entry.reported:
                # what the poke(s) already said is taken off the first interval
                avg = max(0.0, avg - entry.reported)
                count -= 1.0
                entry.reported = 0.0
            lines.append(self._line(entry, avg, count))
            if iv.average_concurrency == 0 and entry.stats.concurrency == 0:
                del self.entries[key]
        return "[" + ",".join(lines) + "]" if lines else None

    def forget(self, key: RevisionKey) -> None:
        self.last_concurrency.pop(key, None)

    def _line(self, entry: RevisionStats, concurrency: float, count: float) -> str:
        return (
            f'{entry.prefix},"stat":{{"pod_name":{self._pod},'
            f'"average_concurrent_requests":{concurrency!r},"request_count":{count!r}}}}}'
        )
