"""The autoscaler's Prometheus series under Knative's names and attribute keys
(docs/metrics.md), following the multiscaler's decisions (fake clock, in-memory cluster)."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, generate_latest

from autoscaler.local import InMemoryCluster
from autoscaler.metrics import AutoscalerCollector
from autoscaler.model import Endpoint, RevisionInfo, RevisionKey
from autoscaler.multiscaler import Multiscaler
from tests.support.prom import label_sets, value
from zeroserve.autoscaling.config import AutoscalerConfig
from zeroserve.stats import Stat

KEY = RevisionKey("default", "hello-00001")
NAMES = {
    "k8s_namespace_name": "default",
    "kn_service_name": "hello",
    "kn_configuration_name": "hello",
    "kn_revision_name": "hello-00001",
}


def setup(annotations: dict[str, str]) -> tuple[Multiscaler, InMemoryCluster, list[float]]:
    cluster = InMemoryCluster()
    info = RevisionInfo(
        KEY,
        container_concurrency=10,
        annotations=annotations,
        service="hello",
        configuration="hello",
    )
    cluster.put_revision(info, 1)
    cluster.set_pods(KEY, [Endpoint("p0", "127.0.0.1", 1, 1, started_at=0.0)])
    now = [1_000_000.0]
    ms = Multiscaler(
        config=AutoscalerConfig.from_mapping({}),
        revisions=cluster,
        pods=cluster,
        scaler=cluster,
        clock=lambda: now[0],
    )
    ms.sync(now[0])
    return ms, cluster, now


def scrape(ms: Multiscaler) -> str:
    registry = CollectorRegistry()
    registry.register(AutoscalerCollector(ms))
    return generate_latest(registry).decode()


async def test_decision_gauges_follow_a_burst() -> None:
    ms, cluster, now = setup({})
    quiet = scrape(ms)
    assert value(quiet, "kn_revision_pods_desired", **NAMES) == -1  # no decision yet
    assert value(quiet, "kn_revision_pods_requested", **NAMES) == 1
    assert value(quiet, "kn_revision_pods_count", **NAMES) == 1
    assert value(quiet, "kn_revision_panic_mode", **NAMES) == 0
    assert value(quiet, "kn_revision_concurrency_target", **NAMES) == 7  # cc 10 at 70 %

    # 70 requests in flight at one replica with target 7: panic, 10 replicas.
    ms.record(KEY, Stat(pod_name="activator", average_concurrent_requests=70.0))
    now[0] += 2
    ms.tick(now[0])
    for _ in range(5):
        await asyncio.sleep(0)  # the scale call runs as a task
    busy = scrape(ms)
    assert value(busy, "kn_revision_pods_desired", **NAMES) == 10
    assert value(busy, "kn_revision_pods_requested", **NAMES) == 10 == cluster.scale_calls[-1][1]
    assert value(busy, "kn_revision_panic_mode", **NAMES) == 1
    assert value(busy, "kn_revision_concurrency_stable", **NAMES) == 70
    assert value(busy, "kn_revision_concurrency_panic", **NAMES) == 70
    assert value(busy, "kn_revision_capacity_excess", **NAMES) < 0  # type: ignore[operator]
    cluster.set_pods(KEY, [Endpoint(f"p{i}", "127.0.0.1", 1, 1, started_at=0.0) for i in range(4)])
    now[0] += 2
    ms.tick(now[0])
    assert value(scrape(ms), "kn_revision_pods_count", **NAMES) == 4
    for labels in label_sets(busy, "kn_revision_pods_desired"):
        assert labels == NAMES


def test_rps_revisions_export_the_rps_gauges() -> None:
    ms, _, _ = setup(
        {"autoscaling.knative.dev/metric": "rps", "autoscaling.knative.dev/target": "50"}
    )
    text = scrape(ms)
    assert value(text, "kn_revision_rps_target_per_second", **NAMES) == 35  # 50 at 70 %
    assert value(text, "kn_revision_rps_stable_per_second", **NAMES) == 0
    assert value(text, "kn_revision_concurrency_target") is None
