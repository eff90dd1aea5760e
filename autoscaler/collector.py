"""Per-revision metric collection into stable and panic windows (docs/autoscaling.md, "Windows").

Every stat, scraped from queue-proxies or pushed by an activator, is reduced
to one sample of the revision's scaling metric and added to both windows;
samples landing in the same second add up, so the scrape's estimate of the
direct traffic plus each activator's count of the traffic it proxied give
the revision total.
"""

from __future__ import annotations

from typing import NamedTuple

from zeroserve.stats import Stat

from .aggregation import TimedBuckets, WeightedBuckets

WEIGHTED = frozenset({"weighted-exponential", "weightedExponential"})


class MetricCollector:
    """The windows of one revision.

    ``stable`` and ``panic`` average the metric the revision scales on; the other
    metric gets windows of its own (``other_stable``, ``other_panic``), as upstream's
    collection keeps concurrency and RPS buckets both (knative/serving
    ``pkg/autoscaler/metrics/collector.go``): the autoscaler reports both
    (``observed``), the decider reads one (``values``).
    """

    __slots__ = ("other_panic", "other_stable", "panic", "rps", "stable")

    def __init__(
        self, *, metric: str, stable_window: float, panic_window: float, algorithm: str = "linear"
    ) -> None:
        cls = WeightedBuckets if algorithm in WEIGHTED else TimedBuckets
        self.stable: TimedBuckets = cls(stable_window)
        self.panic: TimedBuckets = cls(panic_window)
        self.other_stable: TimedBuckets = cls(stable_window)
        self.other_panic: TimedBuckets = cls(panic_window)
        self.rps = metric == "rps"

    def record(self, now: float, stat: Stat) -> None:
        # Requests that came through an activator are counted by the
        # activator; the queue-proxies' share of them is subtracted here so
        # nothing is counted twice.
        rps = stat.request_count - stat.proxied_request_count
        concurrency = stat.average_concurrent_requests - stat.average_proxied_concurrent_requests
        value, other = (rps, concurrency) if self.rps else (concurrency, rps)
        self.stable.record(now, value)
        self.panic.record(now, value)
        self.other_stable.record(now, other)
        self.other_panic.record(now, other)

    def values(self, now: float) -> tuple[float, float] | None:
        """(stable, panic) averages at ``now``; None when there is no data
        (the decision is then invalid and changes nothing)."""
        if self.stable.is_empty(now):
            return None
        return self.stable.average(now), self.panic.average(now)

    def observed(self, now: float) -> Observed:
        """Both metrics over both windows at ``now`` (zeros without data)."""
        if self.stable.is_empty(now):
            return Observed(0.0, 0.0, 0.0, 0.0)
        main = (self.stable.average(now), self.panic.average(now))
        other = (self.other_stable.average(now), self.other_panic.average(now))
        concurrency, rps = (other, main) if self.rps else (main, other)
        return Observed(*concurrency, *rps)


class Observed(NamedTuple):
    """A revision's observed load (revision totals), as the autoscaler reports it."""

    stable_concurrency: float
    panic_concurrency: float
    stable_rps: float
    panic_rps: float
