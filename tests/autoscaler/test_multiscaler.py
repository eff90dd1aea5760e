"""The multiscaler end to end over an in-memory cluster, on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from autoscaler.local import InMemoryCluster
from autoscaler.model import Endpoint, RevisionInfo, RevisionKey
from autoscaler.multiscaler import Multiscaler
from zeroserve.autoscaling.config import AutoscalerConfig
from zeroserve.stats import Stat

KEY = RevisionKey("default", "hello-00001")


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def pods(n: int) -> list[Endpoint]:
    return [
        Endpoint(name=f"p{i}", host="127.0.0.1", port=1, stats_port=1, started_at=0.0)
        for i in range(n)
    ]


def make(
    annotations: dict[str, str] | None = None,
    *,
    cc: int = 0,
    replicas: int = 1,
    ready: int = 1,
    config: dict[str, str] | None = None,
) -> tuple[Multiscaler, InMemoryCluster, Clock]:
    cluster = InMemoryCluster()
    cluster.put_revision(
        RevisionInfo(KEY, container_concurrency=cc, annotations=annotations or {}), replicas
    )
    cluster.set_pods(KEY, pods(ready))
    clock = Clock()
    ms = Multiscaler(
        config=AutoscalerConfig.from_mapping(config or {}),
        revisions=cluster,
        pods=cluster,
        scaler=cluster,
        clock=clock,
    )
    ms.sync(clock())
    return ms, cluster, clock


def activator_stat(concurrency: float, rps: float = 0.0) -> Stat:
    return Stat(pod_name="activator", average_concurrent_requests=concurrency, request_count=rps)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_first_request_at_zero_pokes_a_decision_at_once() -> None:
    ms, cluster, _clock = make(replicas=0, ready=0)
    ms.record(KEY, activator_stat(1.0))  # the activator's immediate stat
    await settle()
    assert cluster.scale_calls == [(KEY, 1)]  # no tick needed


async def test_a_burst_at_a_cold_revision_is_sized_by_the_next_poke() -> None:
    # CC 10 -> target 7. The first poke wakes it (1 pod); the activator's next
    # poke says 200 are waiting: with no replica ready yet that is decided at
    # once too, in panic, instead of at the next tick.
    ms, cluster, _ = make(cc=10, replicas=0, ready=0)
    ms.record(KEY, activator_stat(1.0))
    await settle()
    ms.record(KEY, activator_stat(199.0))
    await settle()
    assert cluster.scale_calls == [(KEY, 1), (KEY, 29)]  # ceil(200 / 7)


async def test_no_poke_once_replicas_are_ready_and_desired_is_known() -> None:
    ms, cluster, clock = make(cc=10, replicas=2, ready=2)
    ms.record(KEY, activator_stat(5.0))
    clock.now += 2
    ms.tick(clock())
    await settle()
    calls = list(cluster.scale_calls)
    ms.record(KEY, activator_stat(500.0))  # load, but the next tick handles it
    await settle()
    assert cluster.scale_calls == calls


async def test_activation_scale_applies_on_the_poke() -> None:
    ms, cluster, _ = make({"autoscaling.knative.dev/activation-scale": "3"}, replicas=0, ready=0)
    ms.record(KEY, activator_stat(1.0))
    await settle()
    assert cluster.scale_calls == [(KEY, 3)]


async def test_sustained_load_scales_up_to_the_target() -> None:
    # CC 10 -> target 7 per pod; 70 in flight -> 10 pods
    ms, cluster, clock = make(cc=10, replicas=1, ready=1)
    for _ in range(6):
        ms.record(KEY, activator_stat(70.0))
        clock.now += 1
    ms.tick(clock())
    await settle()
    assert cluster.replicas(KEY) == 10
    assert ms.revisions[KEY].decider.in_panic  # 70/7 = 10 pods wanted on 1 ready: panic


async def test_max_scale_caps_and_min_scale_floors() -> None:
    ms, cluster, clock = make(
        {"autoscaling.knative.dev/max-scale": "4", "autoscaling.knative.dev/min-scale": "2"},
        cc=10,
        replicas=1,
        ready=1,
    )
    for _ in range(6):
        ms.record(KEY, activator_stat(70.0))
        clock.now += 1
    ms.tick(clock())
    await settle()
    assert cluster.replicas(KEY) == 4


async def test_idle_revision_goes_to_zero_after_stable_window_and_grace() -> None:
    config = {"stable-window": "6s", "scale-to-zero-grace-period": "4s"}
    ms, cluster, clock = make(replicas=1, ready=1, config=config)
    ms.record(KEY, activator_stat(0.0))  # data, but no load
    seen = []
    for _ in range(20):  # 40 s of 2 s ticks
        clock.now += 2
        ms.record(KEY, activator_stat(0.0))
        ms.tick(clock())
        await settle()
        seen.append(cluster.replicas(KEY))
    assert seen[-1] == 0
    zero_at = seen.index(0)
    # 1 until active for a stable window (6 s), then inactive for the grace period (4 s)
    assert 4 <= zero_at <= 7, seen


async def test_missing_metrics_never_scale_to_zero() -> None:
    ms, cluster, clock = make(replicas=3, ready=3, config={"stable-window": "6s"})
    for _ in range(100):  # 200 s without a single stat
        clock.now += 2
        ms.tick(clock())
        await settle()
    assert cluster.scale_calls == []
    assert cluster.replicas(KEY) == 3
    assert ms.revisions[KEY].desired == -1


async def test_unknown_ready_pods_make_decisions_invalid() -> None:
    ms, cluster, clock = make(replicas=2, ready=2)
    cluster._pods.pop(KEY)  # the pod source lost track (not synced)
    ms.record(KEY, activator_stat(500.0))
    clock.now += 2
    ms.tick(clock())
    await settle()
    assert cluster.scale_calls == []


async def test_failed_scale_is_retried_with_backoff() -> None:
    ms, cluster, clock = make(cc=10, replicas=1, ready=1)
    cluster.fail_scales = 2
    for _ in range(6):
        ms.record(KEY, activator_stat(35.0))
        clock.now += 1
    attempts = []
    for _ in range(10):
        ms.tick(clock())
        await settle()
        attempts.append(cluster.replicas(KEY))
        clock.now += 2
        ms.record(KEY, activator_stat(35.0))
    assert attempts[0] == 1  # first attempt failed
    assert attempts[-1] == 5  # then it got through
    assert cluster.fail_scales == 0


async def test_removed_revision_is_forgotten() -> None:
    ms, cluster, clock = make()
    cluster.remove_revision(KEY)
    ms.sync(clock())
    assert KEY not in ms.revisions
    ms.record(KEY, activator_stat(3.0))
    assert ms.unknown_stats == 1


async def test_annotation_change_updates_the_target() -> None:
    ms, cluster, clock = make(cc=0)
    assert ms.revisions[KEY].spec.target == pytest.approx(70.0)
    cluster.put_revision(RevisionInfo(KEY, annotations={"autoscaling.knative.dev/target": "10"}))
    ms.sync(clock())
    assert ms.revisions[KEY].spec.target == pytest.approx(7.0)
