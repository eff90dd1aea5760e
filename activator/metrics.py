"""Prometheus metrics of the activator, per revision; plain counters on the hot path.

Rendered at scrape time by a prometheus-client custom collector (the same
reason as the queue-proxy's: its own Counter/Histogram lock per update).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from zeroserve.topology import RevisionKey

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)
# Waiting and cold starts are seconds, not milliseconds.
WAIT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.0,
    3.0,
    5.0,
    10.0,
    20.0,
    30.0,
    60.0,
    120.0,
)


class Histogram:
    __slots__ = ("bounds", "buckets", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.buckets[bisect_left(self.bounds, value)] += 1
        self.total += value

    def samples(self) -> tuple[list[tuple[str, float]], float]:
        out: list[tuple[str, float]] = []
        cumulative = 0.0
        for bound, n in zip((*self.bounds, float("inf")), self.buckets, strict=True):
            cumulative += n
            out.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        return out, self.total


class RevisionMetrics:
    __slots__ = ("codes", "cold_starts", "latency", "queued_total", "waited")

    def __init__(self) -> None:
        self.codes: dict[int, int] = {}
        self.latency = Histogram(LATENCY_BUCKETS)
        self.waited = Histogram(WAIT_BUCKETS)
        self.cold_starts = Histogram(WAIT_BUCKETS)
        self.queued_total = 0


class ActivatorMetrics:
    """Counters per revision; the hot path touches one dict and a bisect."""

    def __init__(self) -> None:
        self.revisions: dict[RevisionKey, RevisionMetrics] = {}

    def _rev(self, key: RevisionKey) -> RevisionMetrics:
        m = self.revisions.get(key)
        if m is None:
            m = self.revisions[key] = RevisionMetrics()
        return m

    def finished(self, key: RevisionKey, status: int, seconds: float) -> None:
        m = self._rev(key)
        m.codes[status] = m.codes.get(status, 0) + 1
        m.latency.observe(seconds)

    def queued(self, key: RevisionKey) -> None:
        self._rev(key).queued_total += 1

    def waited(self, key: RevisionKey, seconds: float) -> None:
        self._rev(key).waited.observe(seconds)

    def cold_start(self, key: RevisionKey, seconds: float) -> None:
        self._rev(key).cold_starts.observe(seconds)

    def forget(self, key: RevisionKey) -> None:
        self.revisions.pop(key, None)


class ActivatorCollector(Collector):
    def __init__(
        self,
        metrics: ActivatorMetrics,
        *,
        live: Callable[[], dict[RevisionKey, tuple[int, int, int]]],
        budget: Callable[[], tuple[int, int]],
        pod: str,
    ) -> None:
        self.metrics = metrics
        self.live = live  # key -> (in flight at replicas, queued, capacity)
        self.budget = budget
        self.pod = pod

    def collect(self) -> Iterator[Metric]:
        labels = ["namespace_name", "revision_name"]
        requests = CounterMetricFamily(
            "zeroserve_activator_requests",
            "Requests by response status code.",
            labels=[*labels, "response_code", "response_code_class"],
        )
        latency = HistogramMetricFamily(
            "zeroserve_activator_request_duration_seconds",
            "Arrival to end of response, waiting included.",
            labels=labels,
        )
        waited = HistogramMetricFamily(
            "zeroserve_activator_queue_wait_seconds",
            "Time requests waited for a replica.",
            labels=labels,
        )
        cold = HistogramMetricFamily(
            "zeroserve_activator_cold_start_seconds",
            "From the first request held at zero replicas to its forward.",
            labels=labels,
        )
        queued_total = CounterMetricFamily(
            "zeroserve_activator_queued_requests",
            "Requests that had to wait for a replica.",
            labels=labels,
        )
        for key, m in list(self.metrics.revisions.items()):
            lv = [key.namespace, key.name]
            for code, n in sorted(m.codes.items()):
                requests.add_metric([*lv, str(code), f"{code // 100}xx"], n)
            latency.add_metric(lv, *m.latency.samples())
            waited.add_metric(lv, *m.waited.samples())
            cold.add_metric(lv, *m.cold_starts.samples())
            queued_total.add_metric(lv, m.queued_total)
        yield from (requests, latency, waited, cold, queued_total)
        in_flight = GaugeMetricFamily(
            "zeroserve_activator_requests_in_flight",
            "Requests forwarded and not yet answered.",
            labels=labels,
        )
        queue = GaugeMetricFamily(
            "zeroserve_activator_queue_length", "Requests waiting for a replica.", labels=labels
        )
        capacity = GaugeMetricFamily(
            "zeroserve_activator_capacity",
            "Requests this activator may have at the revision's replicas at once.",
            labels=labels,
        )
        for key, (active, waiting, cap) in self.live().items():
            lv = [key.namespace, key.name]
            in_flight.add_metric(lv, active)
            queue.add_metric(lv, waiting)
            capacity.add_metric(lv, cap)
        yield from (in_flight, queue, capacity)
        used, limit = self.budget()
        budget = GaugeMetricFamily(
            "zeroserve_activator_budget", "Waiting requests across all revisions.", labels=["kind"]
        )
        budget.add_metric(["used"], used)
        budget.add_metric(["limit"], limit)
        yield budget
