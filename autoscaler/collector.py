"""Per-revision metric collection into stable and panic windows (docs/autoscaling.md, "Windows").

Every stat, scraped from queue-proxies or pushed by an activator, is reduced
to one sample of the revision's scaling metric and added to both windows;
samples landing in the same second add up, so the scrape's estimate of the
direct traffic plus each activator's count of the traffic it proxied give
the revision total.
"""

from __future__ import annotations

from zeroserve.stats import Stat

from .aggregation import TimedBuckets, WeightedBuckets

WEIGHTED = frozenset({"weighted-exponential", "weightedExponential"})


class MetricCollector:
    """The windows of one revision."""

    __slots__ = ("panic", "rps", "stable")

    def __init__(
        self, *, metric: str, stable_window: float, panic_window: float, algorithm: str = "linear"
    ) -> None:
        cls = WeightedBuckets if algorithm in WEIGHTED else TimedBuckets
        self.stable: TimedBuckets = cls(stable_window)
        self.panic: TimedBuckets = cls(panic_window)
        self.rps = metric == "rps"

    def record(self, now: float, stat: Stat) -> None:
        # Requests that came through an activator are counted by the
        # activator; the queue-proxies' share of them is subtracted here so
        # nothing is counted twice.
        if self.rps:
            value = stat.request_count - stat.proxied_request_count
        else:
            value = stat.average_concurrent_requests - stat.average_proxied_concurrent_requests
        self.stable.record(now, value)
        self.panic.record(now, value)

    def values(self, now: float) -> tuple[float, float] | None:
        """(stable, panic) averages at ``now``; None when there is no data
        (the decision is then invalid and changes nothing)."""
        if self.stable.is_empty(now):
            return None
        return self.stable.average(now), self.panic.average(now)
