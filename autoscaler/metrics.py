"""Prometheus metrics of the autoscaler: Knative's ``kn.revision.*`` instruments as its
Prometheus exporter names them (docs/metrics.md).

Rendered at scrape time from the multiscaler's per-revision state (a custom
collector), so a tick over thousands of revisions pays nothing for them. Knative
splits these between the decider (``knative/serving pkg/autoscaler/scaling/metrics.go``:
desired pods, excess capacity, panic mode, stable/panic/target of the scaling
metric) and the KPA reconciler (``pkg/reconciler/autoscaling/kpa/metrics.go``: pods
requested and ready); zeroserve's autoscaler holds both figures, so it exports both.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from zeroserve import knmetrics as kn

if TYPE_CHECKING:
    from .multiscaler import Multiscaler

LABELS = list(kn.REVISION_LABELS)

# The scaling metric's three gauges: the rps ones carry the unit {request}/s, which
# the exporter writes as the suffix _per_second.
METRIC_GAUGES = {
    "concurrency": (
        "kn_revision_concurrency_stable",
        "kn_revision_concurrency_panic",
        "kn_revision_concurrency_target",
    ),
    "rps": (
        "kn_revision_rps_stable_per_second",
        "kn_revision_rps_panic_per_second",
        "kn_revision_rps_target_per_second",
    ),
}


class AutoscalerCollector(Collector):
    def __init__(self, multiscaler: Multiscaler) -> None:
        self.ms = multiscaler

    def collect(self) -> Iterator[Metric]:
        def gauge(name: str, doc: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=LABELS)

        desired = gauge(
            "kn_revision_pods_desired", "Replicas the autoscaler wants (-1: not known yet)."
        )
        requested = gauge(
            "kn_revision_pods_requested",
            "Replicas the revision's scale target has (the Deployment's spec.replicas, or "
            "the local runtime's count).",
        )
        count = gauge("kn_revision_pods_count", "Ready replicas.")
        excess = gauge("kn_revision_capacity_excess", "Excess burst capacity.")
        panic = gauge("kn_revision_panic_mode", "1 while the revision is in panic mode.")
        families = {
            metric: (
                gauge(stable, f"Average {metric} over the stable window (revision total)."),
                gauge(panic_name, f"Average {metric} over the panic window (revision total)."),
                gauge(target, f"Target {metric} per replica."),
            )
            for metric, (stable, panic_name, target) in METRIC_GAUGES.items()
        }
        for rev in list(self.ms.revisions.values()):
            labels = [rev.key.namespace, rev.info.service, rev.info.configuration, rev.key.name]
            desired.add_metric(labels, rev.desired)
            replicas = self.ms.scaler.current_scale(rev.key)
            if replicas is not None:
                requested.add_metric(labels, replicas)
            count.add_metric(labels, rev.ready)
            excess.add_metric(labels, rev.excess)
            panic.add_metric(labels, 1 if rev.decider.in_panic else 0)
            stable_f, panic_f, target_f = families[
                "rps" if rev.spec.scaling_metric == "rps" else "concurrency"
            ]
            stable_f.add_metric(labels, rev.last_stable)
            panic_f.add_metric(labels, rev.last_panic)
            target_f.add_metric(labels, rev.spec.target)
        yield from (desired, requested, count, excess, panic)
        for fams in families.values():
            yield from fams
        unknown = CounterMetricFamily(
            "zeroserve_autoscaler_unknown_revision_stats",
            "Activator stats for revisions the autoscaler does not know.",
        )
        unknown.add_metric([], self.ms.unknown_stats)
        yield unknown
