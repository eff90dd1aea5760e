"""Conflicts, API restarts and outages, and two controllers behind one Lease."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from controller.app import KubeController
from tests.fakes.kubeapi.fakeapi import FakeKubeAPI

from .helpers import (
    HELLO_V1,
    HELLO_V2,
    HELLOWORLD_GO,
    endpoint_slice,
    eventually,
    has_status,
    is_ready,
    put_manifest,
    running,
    settled,
)

REVISIONS = "revisions.serving.knative.dev"


async def test_conflicts_are_retried_on_a_fresh_read(
    cluster: FakeKubeAPI, controller: KubeController
) -> None:
    put_manifest(cluster, HELLO_V1)
    await cluster.wait_for("deployments", "default", "hello-00001-deployment")
    await settled(controller)
    # The next update of the Configuration and two status patches lose a race.
    put_fault = cluster.fail_next("PUT", "/configurations/hello", 409, reason="Conflict")
    patch_fault = cluster.fail_next("PATCH", "/status", 409, count=2, reason="Conflict")
    put_manifest(cluster, HELLO_V2)
    await cluster.wait_for(REVISIONS, "default", "hello-00002")
    cluster.put(endpoint_slice("hello-00001", ("a", "10.0.0.1")))
    cluster.put(
        {
            **endpoint_slice("hello-00002", ("b", "10.0.0.2")),
            "metadata": {
                **endpoint_slice("hello-00002")["metadata"],
                "name": "hello-00002-private-x",
            },
        }
    )
    await cluster.wait_for(
        "ksvc", "default", "hello", lambda k: is_ready(k) and has_status("observedGeneration", 2)(k)
    )
    assert put_fault.remaining == 0 and patch_fault.remaining == 0
    registry = controller.metrics.registry  # every conflict was absorbed, none failed a pass
    assert (
        registry.get_sample_value("zeroserve_controller_errors_total", {"reason": "Conflict"})
        is None
    )
    assert (
        registry.get_sample_value("zeroserve_controller_reconciles_total", {"result": "failed"})
        is None
    )


async def test_an_api_restart_mid_watch_is_survived(
    cluster: FakeKubeAPI, controller: KubeController
) -> None:
    put_manifest(cluster, HELLOWORLD_GO)
    await cluster.wait_for("deployments", "default", "helloworld-go-00001-deployment")
    await cluster.restart()  # every watch ends; objects and resourceVersions survive
    cluster.put(endpoint_slice("helloworld-go-00001", ("pod", "10.0.0.3")))
    await cluster.wait_for("ksvc", "default", "helloworld-go", is_ready, within=10)


async def test_an_outage_loses_nothing_and_work_resumes(
    cluster: FakeKubeAPI, controller: KubeController
) -> None:
    put_manifest(cluster, HELLO_V1)
    deployment = await cluster.wait_for("deployments", "default", "hello-00001-deployment")
    assert deployment is not None
    cluster.put(endpoint_slice("hello-00001", ("a", "10.0.0.1")))
    await cluster.wait_for("ksvc", "default", "hello", is_ready)
    await settled(controller)
    await cluster.stop()  # the API goes away ...
    put_manifest(cluster, HELLO_V2)  # ... while a user's change lands in its storage
    await asyncio.sleep(1.0)
    await cluster.start()
    await cluster.wait_for(REVISIONS, "default", "hello-00002", within=15)
    await cluster.wait_for("deployments", "default", "hello-00002-deployment", within=5)
    # Nothing the controller had made was replaced or lost on the way.
    after = cluster.get("deployments", "default", "hello-00001-deployment")
    assert after is not None and after["metadata"]["uid"] == deployment["metadata"]["uid"]
    assert cluster.get(REVISIONS, "default", "hello-00001") is not None
    assert is_ready(cluster.get(REVISIONS, "default", "hello-00001"))


async def test_two_controllers_one_writes_the_other_takes_over(
    cluster: FakeKubeAPI, kubeconfig: Path
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        a = await stack.enter_async_context(running(kubeconfig, identity="controller-a"))
        assert a.elector is not None
        await asyncio.wait_for(a.elector.wait_leading(), 3)
        async with running(kubeconfig, identity="controller-b") as b:
            assert b.elector is not None
            put_manifest(cluster, HELLOWORLD_GO)
            await cluster.wait_for("deployments", "default", "helloworld-go-00001-deployment")
            await settled(a)
            assert not b.elector.leading
            assert b.passes == 0 and a.passes > 0  # only the leader reconciles
            await stack.aclose()  # the leader stops and frees the Lease
            await asyncio.wait_for(b.elector.wait_leading(), 2)
            put_manifest(cluster, HELLO_V1)
            await cluster.wait_for("deployments", "default", "hello-00001-deployment")
            await eventually(lambda: b.passes > 0, "b reconciles")
            lease = cluster.get("leases", "knative-serving", "zeroserve-controller")
            assert lease is not None and lease["spec"]["holderIdentity"] == "controller-b"
