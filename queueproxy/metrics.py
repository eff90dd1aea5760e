"""Operator metrics of the queue-proxy (Prometheus, ``USER_METRICS_PORT``), under
Knative's names (docs/metrics.md).

The hot path only bumps plain numbers (``RequestMetrics.observe``: a dict lookup,
a bisect and two list increments); prometheus-client renders them at scrape time
through a custom collector. prometheus-client's own ``Counter``/``Histogram`` take
a lock per update and cost about 1.4 us per request, a tenth of the proxy's whole
budget.

Knative's queue-proxy carries the revision's names as OpenTelemetry resource
attributes (``knative/serving pkg/queue/sharedmain/otel.go``); here they are
labels on every series, so a query needs no join with ``target_info``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Final

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from zeroserve import knmetrics as kn

INVOCATION_DURATION: Final = "kn_serving_invocation_duration_seconds"
QUEUE_DEPTH: Final = "kn_serving_queue_depth"


class RequestMetrics(kn.CodeHistograms):
    """Finished requests (probes excluded): latency histograms per status code."""

    __slots__ = ()


def resource_labels(
    namespace: str, service: str, configuration: str, revision: str, pod: str
) -> dict[str, str]:
    """The queue-proxy's resource attributes, as Prometheus labels."""
    return {
        kn.NAMESPACE: namespace,
        kn.SERVICE: service,
        kn.CONFIGURATION: configuration,
        kn.REVISION: revision,
        kn.POD: pod,
    }


class QueueProxyCollector(Collector):
    """Renders ``RequestMetrics`` and live gauges for prometheus-client."""

    def __init__(
        self,
        metrics: RequestMetrics,
        labels: dict[str, str],
        *,
        in_flight: Callable[[], int],
        queue_depth: Callable[[], int],
        capacity: int,
        protocol_errors: Callable[[], dict[int, int]],
        max_at_app: Callable[[], int] = lambda: 0,
        knative: Callable[[], bool] = lambda: True,
    ) -> None:
        self.metrics = metrics
        self.label_names = list(labels)
        self.label_values = list(labels.values())
        self.in_flight = in_flight
        self.queue_depth = queue_depth
        self.capacity = capacity
        self.protocol_errors = protocol_errors
        self.max_at_app = max_at_app
        self.knative = knative
        """Whether the Knative-named series are served (``request-metrics-protocol`` is
        not ``none``); zeroserve's own always are."""

    def collect(self) -> Iterator[Metric]:
        names, values = self.label_names, self.label_values
        if self.knative():
            yield from self._knative(names, values)
        yield from self._zeroserve(names, values)

    def _knative(self, names: list[str], values: list[str]) -> Iterator[Metric]:
        duration = HistogramMetricFamily(
            INVOCATION_DURATION,
            "Time from request arrival to the end of its response, by status code "
            "(Knative's kn.serving.invocation.duration; here the breaker wait is included).",
            labels=[*names, kn.STATUS_CODE],
        )
        for code, buckets, total in self.metrics.samples():
            duration.add_metric([*values, str(code)], buckets, total)
        yield duration

        if self.capacity > 0:
            # Knative records it only with a breaker (containerConcurrency > 0): the
            # breaker's in-flight count, the requests waiting for a slot included.
            depth = GaugeMetricFamily(
                QUEUE_DEPTH,
                "Requests in the queue-proxy's breaker, waiting ones included.",
                labels=names,
            )
            depth.add_metric(values, self.in_flight())
            yield depth

    def _zeroserve(self, names: list[str], values: list[str]) -> Iterator[Metric]:
        for name, doc, value in (
            (
                "zeroserve_queue_requests_in_flight",
                "Requests in the queue-proxy (queued included), with or without a breaker.",
                self.in_flight(),
            ),
            (
                "zeroserve_queue_depth",
                "Requests waiting for a concurrency slot.",
                self.queue_depth(),
            ),
            ("zeroserve_queue_capacity", "containerConcurrency (0 = unlimited).", self.capacity),
            (
                "zeroserve_queue_app_in_flight_max",
                "Most requests at the app at once since start.",
                self.max_at_app(),
            ),
        ):
            g = GaugeMetricFamily(name, doc, labels=names)
            g.add_metric(values, value)
            yield g

        errors = CounterMetricFamily(
            "zeroserve_queue_protocol_errors",
            "Connections closed for malformed or too large requests, by status sent.",
            labels=[*names, kn.STATUS_CODE],
        )
        for code, n in sorted(self.protocol_errors().items()):
            errors.add_metric([*values, str(code)], n)
        yield errors
