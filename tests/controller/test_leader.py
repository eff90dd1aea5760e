"""Lease-based leader election against the fake API server (fast timings: 2 s leases)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.fakes.kubeapi.fakeapi import FakeKubeAPI
from zeroserve.kube import KubeClient
from zeroserve.leader import LeaderElector, LeaseRecord, micro_time, parse_micro_time

from .helpers import eventually, fast_elector

LEASE = ("leases", "knative-serving", "zeroserve-controller")


def test_times_are_timezone_aware_micro_times() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert micro_time(moment) == "2026-01-02T01:04:05.123456Z"
    parsed = parse_micro_time("2026-01-02T01:04:05.123456Z")
    assert parsed == moment and parsed is not None and parsed.tzinfo is not None
    with pytest.raises(ValueError, match="timezone-aware"):
        micro_time(datetime(2026, 1, 1))
    assert parse_micro_time("yesterday") is None


async def test_timings_must_leave_room_to_step_down(kube: KubeClient) -> None:
    with pytest.raises(ValueError, match="renew_deadline < lease_duration"):
        LeaderElector(kube, "ns", "x", lease_duration=5, renew_interval=5)


async def test_acquire_renew_release(cluster: FakeKubeAPI, kube: KubeClient) -> None:
    a = fast_elector(kube, "a")
    a.start()
    try:
        await asyncio.wait_for(a.wait_leading(), 3)
        lease = cluster.get(*LEASE)
        assert lease is not None
        spec = lease["spec"]
        assert (spec["holderIdentity"], spec["leaseDurationSeconds"]) == ("a", 2)
        first = parse_micro_time(spec["renewTime"])
        assert first is not None and abs((datetime.now(UTC) - first).total_seconds()) < 5
        assert spec["renewTime"].endswith("Z") and spec["acquireTime"].endswith("Z")
        renewed = await cluster.wait_for(
            *LEASE,
            lambda o: o is not None and o["spec"]["renewTime"] != spec["renewTime"],
            within=3,
        )
        assert renewed is not None and renewed["spec"]["acquireTime"] == spec["acquireTime"]
    finally:
        await a.stop()
    assert not a.leading
    released = cluster.get(*LEASE)
    assert released is not None and not released["spec"].get("holderIdentity")


async def test_a_standby_takes_over_at_once_when_the_leader_stops(
    cluster: FakeKubeAPI, kube: KubeClient
) -> None:
    a, b = fast_elector(kube, "a"), fast_elector(kube, "b")
    changes: list[bool] = []
    b.on_change(changes.append)
    a.start()
    await asyncio.wait_for(a.wait_leading(), 3)
    b.start()
    try:
        await asyncio.sleep(0.5)
        assert a.leading and not b.leading and changes == []
        await a.stop()
        await asyncio.wait_for(b.wait_leading(), 1.0)  # no need to wait for the lease to expire
        lease = cluster.get(*LEASE)
        assert lease is not None and lease["spec"]["holderIdentity"] == "b"
        assert changes == [True]
    finally:
        await a.stop()
        await b.stop()


async def test_a_dead_leader_is_replaced_after_the_lease_duration(
    cluster: FakeKubeAPI, kube: KubeClient
) -> None:
    a, b = fast_elector(kube, "a"), fast_elector(kube, "b")
    a.start()
    await asyncio.wait_for(a.wait_leading(), 3)
    b.start()
    try:
        await a.stop(release=False)  # a crash: the Lease still names "a"
        await asyncio.sleep(1.0)
        assert not b.leading  # not before the lease (2 s) has run out unrenewed
        await asyncio.wait_for(b.wait_leading(), 3)
        lease = cluster.get(*LEASE)
        assert lease is not None
        assert LeaseRecord.from_lease(lease).holder == "b"
        assert lease["spec"]["leaseTransitions"] == 1
    finally:
        await b.stop()


async def test_a_leader_that_cannot_renew_steps_down(
    cluster: FakeKubeAPI, kube: KubeClient
) -> None:
    a = fast_elector(kube, "a")
    a.start()
    try:
        await asyncio.wait_for(a.wait_leading(), 3)
        await cluster.stop()  # the API goes away: no renewal possible
        await eventually(lambda: not a.leading, "a steps down", within=3)
        await cluster.start()
        await asyncio.wait_for(a.wait_leading(), 3)  # and leads again once it can
    finally:
        await a.stop()
