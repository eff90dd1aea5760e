"""Prometheus metrics of the autoscaler: upstream's ``kn.revision.*`` gauges, underscored.

Rendered at scrape time from the multiscaler's per-revision state (a custom
collector), so a tick over thousands of revisions pays nothing for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from .multiscaler import Multiscaler

LABELS = ["namespace_name", "revision_name", "configuration_name", "service_name"]


class AutoscalerCollector(Collector):
    def __init__(self, multiscaler: Multiscaler) -> None:
        self.ms = multiscaler

    def collect(self) -> Iterator[Metric]:
        def gauge(name: str, doc: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=LABELS)

        desired = gauge(
            "kn_revision_pods_desired", "Replicas the autoscaler wants (-1: not known yet)."
        )
        ready = gauge("kn_revision_pods_ready", "Ready replicas.")
        excess = gauge("kn_revision_capacity_excess", "Excess burst capacity.")
        panic = gauge("kn_revision_panic_mode", "1 while the revision is in panic mode.")
        families = {
            metric: (
                gauge(
                    f"kn_revision_{metric}_stable",
                    f"Average {metric} over the stable window (revision total).",
                ),
                gauge(
                    f"kn_revision_{metric}_panic",
                    f"Average {metric} over the panic window (revision total).",
                ),
                gauge(f"kn_revision_{metric}_target", f"Target {metric} per replica."),
            )
            for metric in ("concurrency", "rps")
        }
        for rev in list(self.ms.revisions.values()):
            labels = [rev.key.namespace, rev.key.name, rev.info.configuration, rev.info.service]
            desired.add_metric(labels, rev.desired)
            ready.add_metric(labels, rev.ready)
            excess.add_metric(labels, rev.excess)
            panic.add_metric(labels, 1 if rev.decider.in_panic else 0)
            stable_f, panic_f, target_f = families[
                "rps" if rev.spec.scaling_metric == "rps" else "concurrency"
            ]
            stable_f.add_metric(labels, rev.last_stable)
            panic_f.add_metric(labels, rev.last_panic)
            target_f.add_metric(labels, rev.spec.target)
        yield from (desired, ready, excess, panic)
        for fams in families.values():
            yield from fams
        unknown = CounterMetricFamily(
            "zeroserve_autoscaler_unknown_revision_stats",
            "Activator stats for revisions the autoscaler does not know.",
        )
        unknown.add_metric([], self.ms.unknown_stats)
        yield unknown
