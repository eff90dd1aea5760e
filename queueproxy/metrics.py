"""Operator metrics of the queue-proxy (Prometheus, ``USER_METRICS_PORT``).

The hot path only bumps plain integers (``RequestMetrics.observe``: a dict
increment and a bisect); prometheus-client renders them at scrape time through
a custom collector. prometheus-client's own ``Counter``/``Histogram`` take a
lock per update and cost about 1.4 us per request, a tenth of the proxy's
whole budget.
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

# Seconds; upper bounds of the latency histogram.
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


class RequestMetrics:
    """Counters of finished requests by status code, and their latency."""

    __slots__ = ("buckets", "codes", "latency_sum")

    def __init__(self) -> None:
        self.codes: dict[int, int] = {}
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # last one: +Inf
        self.latency_sum = 0.0

    def observe(self, status: int, seconds: float) -> None:
        codes = self.codes
        codes[status] = codes.get(status, 0) + 1
        self.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds


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
    ) -> None:
        self.metrics = metrics
        self.label_names = list(labels)
        self.label_values = list(labels.values())
        self.in_flight = in_flight
        self.queue_depth = queue_depth
        self.capacity = capacity
        self.protocol_errors = protocol_errors
        self.max_at_app = max_at_app

    def collect(self) -> Iterator[Metric]:
        names, values = self.label_names, self.label_values
        m = self.metrics
        requests = CounterMetricFamily(
            "zeroserve_queue_requests",
            "Requests served through the queue-proxy, by response status code.",
            labels=[*names, "response_code", "response_code_class"],
        )
        for code, n in sorted(m.codes.items()):
            requests.add_metric([*values, str(code), f"{code // 100}xx"], n)
        yield requests

        cumulative, buckets = 0, []
        for bound, n in zip((*LATENCY_BUCKETS, float("inf")), m.buckets, strict=True):
            cumulative += n
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        latency = HistogramMetricFamily(
            "zeroserve_queue_request_duration_seconds",
            "Time from request arrival to the end of its response, queueing included.",
            labels=names,
        )
        latency.add_metric(values, buckets, m.latency_sum)
        yield latency

        for name, doc, value in (
            (
                "zeroserve_queue_requests_in_flight",
                "Requests in the queue-proxy (queued included).",
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
            labels=[*names, "response_code"],
        )
        for code, n in sorted(self.protocol_errors().items()):
            errors.add_metric([*values, str(code)], n)
        yield errors
