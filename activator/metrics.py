"""Prometheus metrics of the activator, per revision, under Knative's names where
Knative has the figure (docs/metrics.md); plain counters on the hot path.

Rendered at scrape time by a prometheus-client custom collector (the same
reason as the queue-proxy's: its own Counter/Histogram lock per update).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from typing import Final, TypeAlias

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from zeroserve import knmetrics as kn
from zeroserve.topology import RevisionKey

# Final, as every module-level name of a compiled module (docs/http.md, "Compiling the
# hot path"): a C static, not a lookup in the module's dict at each call.
_bisect_left: Final = bisect.bisect_left

REQUEST_DURATION: Final = "http_server_request_duration_seconds"
REQUEST_CONCURRENCY: Final = "kn_revision_request_concurrency"
REQUEST_QUEUED: Final = "kn_revision_request_queued"
REQUEST_ACTIVE: Final = "kn_revision_request_active"
LINK_REACHABLE: Final = "kn_activator_stats_conn_reachable"
LINK_ERRORS: Final = "kn_activator_stats_conn_errors"

# Waiting and cold starts are seconds, not milliseconds.
# (Its type declared: see knmetrics.DURATION_BOUNDS.)
WAIT_BUCKETS: Final[tuple[float, ...]] = (
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
        self.buckets[_bisect_left(self.bounds, value)] += 1
        self.total += value

    def samples(self) -> tuple[list[tuple[str, float]], float]:
        out: list[tuple[str, float]] = []
        cumulative = 0.0
        for bound, n in zip((*self.bounds, float("inf")), self.buckets, strict=True):
            cumulative += n
            out.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        return out, self.total


class RevisionMetrics:
    __slots__ = ("cold_starts", "latency", "queued_total", "waited")

    def __init__(self) -> None:
        self.latency = kn.CodeHistograms()
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
        self._rev(key).latency.observe(status, seconds)

    def queued(self, key: RevisionKey) -> None:
        self._rev(key).queued_total += 1

    def waited(self, key: RevisionKey, seconds: float) -> None:
        self._rev(key).waited.observe(seconds)

    def cold_start(self, key: RevisionKey, seconds: float) -> None:
        self._rev(key).cold_starts.observe(seconds)

    def forget(self, key: RevisionKey) -> None:
        self.revisions.pop(key, None)


Names: TypeAlias = Callable[[RevisionKey], tuple[str, str]]
"""A revision's (service, configuration) names; empty when not known."""


class ActivatorCollector(Collector):
    def __init__(
        self,
        metrics: ActivatorMetrics,
        *,
        live: Callable[[], dict[RevisionKey, tuple[int, int, int]]],
        budget: Callable[[], tuple[int, int]],
        pod: str,
        names: Names = lambda key: ("", ""),
        concurrency: Callable[[], dict[RevisionKey, float]] = dict,
        link: Callable[[], tuple[bool, int] | None] = lambda: None,
        knative: Callable[[], bool] = lambda: True,
    ) -> None:
        self.metrics = metrics
        self.live = live  # key -> (in flight at replicas, queued, capacity)
        self.budget = budget
        self.pod = pod
        self.names = names
        self.concurrency = concurrency  # key -> average concurrency of the last 1 s report
        self.link = link  # (connected, connection errors) of the autoscaler link, if any
        self.knative = knative
        """Whether the Knative-named series are served (``metrics-protocol`` is not
        ``none``); zeroserve's own always are."""

    def collect(self) -> Iterator[Metric]:
        knative = self.knative()
        for family in self._families():
            if knative or family.name.startswith("zeroserve_"):
                yield family

    def _families(self) -> Iterator[Metric]:
        revision_labels = list(kn.REVISION_LABELS)

        def full(key: RevisionKey) -> list[str]:
            service, configuration = self.names(key)
            return [key.namespace, service, configuration, key.name]

        requests = HistogramMetricFamily(
            REQUEST_DURATION,
            "Arrival to end of response, waiting included, by status code "
            "(Knative's activator: otelhttp's http.server.request.duration).",
            labels=[*revision_labels, kn.STATUS_CODE],
        )
        # zeroserve's own figures keep the two labels that name a revision.
        labels = [kn.NAMESPACE, kn.REVISION]
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
            rv = full(key)
            for code, buckets, total in m.latency.samples():
                requests.add_metric([*rv, str(code)], buckets, total)
            waited.add_metric(lv, *m.waited.samples())
            cold.add_metric(lv, *m.cold_starts.samples())
            queued_total.add_metric(lv, m.queued_total)
        yield from (requests, waited, cold, queued_total)

        concurrency = GaugeMetricFamily(
            REQUEST_CONCURRENCY,
            "Average concurrency of the revision's requests at this activator over the "
            "last 1 s report to the autoscaler.",
            labels=revision_labels,
        )
        for key, value in list(self.concurrency().items()):
            concurrency.add_metric(full(key), value)
        yield concurrency

        # Knative labels these two with the namespace and revision only.
        active = GaugeMetricFamily(
            REQUEST_ACTIVE, "Requests forwarded and not yet answered.", labels=labels
        )
        queue = GaugeMetricFamily(
            REQUEST_QUEUED, "Requests waiting in the activator for capacity.", labels=labels
        )
        capacity = GaugeMetricFamily(
            "zeroserve_activator_capacity",
            "Requests this activator may have at the revision's replicas at once.",
            labels=labels,
        )
        for key, (in_flight, waiting, cap) in self.live().items():
            lv = [key.namespace, key.name]
            active.add_metric(lv, in_flight)
            queue.add_metric(lv, waiting)
            capacity.add_metric(lv, cap)
        yield from (active, queue, capacity)
        used, limit = self.budget()
        budget = GaugeMetricFamily(
            "zeroserve_activator_budget", "Waiting requests across all revisions.", labels=["kind"]
        )
        budget.add_metric(["used"], used)
        budget.add_metric(["limit"], limit)
        yield budget

        link = self.link()
        if link is not None:
            connected, errors = link
            reachable = GaugeMetricFamily(
                LINK_REACHABLE,
                "1 while the stats websocket to the peer is open, 0 otherwise.",
                labels=[kn.PEER],
            )
            reachable.add_metric(["autoscaler"], 1 if connected else 0)
            failures = CounterMetricFamily(
                LINK_ERRORS,
                "Stats websocket connections to the peer that failed or broke.",
                labels=[kn.PEER],
            )
            failures.add_metric(["autoscaler"], errors)
            yield from (reachable, failures)
