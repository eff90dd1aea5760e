"""The test cluster's controllers on the fake API server, with pods made ready by hand
(no node agent): Deployment -> ReplicaSet -> Pods, rolling updates, EndpointSlices."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.fakes.kubeapi.fakeapi import FakeKubeAPI

from .controllers import (
    SA_MOUNT,
    ControllerManager,
    pod_template_hash,
    scaled,
    surge_and_unavailable,
)


def deployment(replicas: int = 2, image: str = "app:1", **strategy: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "image": image,
                        "ports": [{"name": "http", "containerPort": 8080}],
                    }
                ]
            },
        },
    }
    if strategy:
        spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": strategy}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": spec,
    }


def make_ready(api: FakeKubeAPI, pod: dict[str, Any], ip: str) -> None:
    pod = api.get("pods", "default", pod["metadata"]["name"]) or pod
    pod["spec"]["nodeName"] = "node-1"
    pod["status"] = {
        "phase": "Running",
        "podIP": ip,
        "conditions": [{"type": "Ready", "status": "True"}],
    }
    api.put(pod)


def live_pods(api: FakeKubeAPI) -> list[dict[str, Any]]:
    return [p for p in api.list("pods", "default") if not p["metadata"].get("deletionTimestamp")]


async def eventually(check: Any, within: float = 5.0) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {within} s: {check.__doc__ or check}")
        await asyncio.sleep(0.02)


@pytest.fixture
async def cluster() -> Any:
    api = FakeKubeAPI()
    manager = ControllerManager(api, root_ca_pem="-----BEGIN CERTIFICATE-----\nx\n")
    await manager.start()
    yield api
    await manager.stop()
    assert manager.errors == []


def test_fenceposts_follow_kubernetes() -> None:
    assert scaled("25%", 3, round_up=True) == 1
    assert scaled("25%", 3, round_up=False) == 0
    assert surge_and_unavailable(deployment(3)) == (1, 0)
    assert surge_and_unavailable(deployment(1, maxSurge=0, maxUnavailable=0)) == (0, 1)
    assert surge_and_unavailable(deployment(10, maxSurge=2, maxUnavailable="50%")) == (2, 5)


def test_template_hash_is_stable_and_changes_with_the_template() -> None:
    a = deployment()["spec"]["template"]
    assert pod_template_hash(a) == pod_template_hash(deployment()["spec"]["template"])
    assert pod_template_hash(a) != pod_template_hash(deployment(image="app:2")["spec"]["template"])
    assert set(pod_template_hash(a)) <= set("bcdfghjklmnpqrstvwxz2456789")


async def test_deployment_makes_a_replicaset_and_pods_with_the_service_account_volume(
    cluster: FakeKubeAPI,
) -> None:
    cluster.put(deployment(2))
    pods = await eventually(lambda: len(live_pods(cluster)) == 2 and live_pods(cluster))
    (rs,) = cluster.list("replicasets", "default")
    h = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{h}"
    for pod in pods:
        assert pod["metadata"]["name"].startswith(f"web-{h}-")
        assert pod["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
        assert pod["spec"]["serviceAccountName"] == "default"
        (mount,) = pod["spec"]["containers"][0]["volumeMounts"]
        assert mount["mountPath"] == SA_MOUNT
    assert cluster.get("serviceaccounts", "default", "default") is not None
    assert cluster.get("configmaps", "default", "kube-root-ca.crt") is not None
    for i, pod in enumerate(pods):
        make_ready(cluster, pod, f"198.18.0.{10 + i}")
    await eventually(
        lambda: (
            (cluster.get("deployments", "default", "web") or {})
            .get("status", {})
            .get("availableReplicas")
            == 2
        )
    )
    status = cluster.get("deployments", "default", "web")["status"]
    available = {c["type"]: c for c in status["conditions"]}["Available"]
    assert available["status"] == "True" and available["reason"] == "MinimumReplicasAvailable"


async def test_scale_down_deletes_the_not_ready_pod_first(cluster: FakeKubeAPI) -> None:
    cluster.put(deployment(2))
    pods = await eventually(lambda: len(live_pods(cluster)) == 2 and live_pods(cluster))
    make_ready(cluster, pods[0], "198.18.0.10")
    cluster.patch("deployments", "default", "web", {"spec": {"replicas": 1}})
    (left,) = await eventually(lambda: len(live_pods(cluster)) == 1 and live_pods(cluster))
    assert left["metadata"]["name"] == pods[0]["metadata"]["name"]


async def test_rolling_update_keeps_availability(cluster: FakeKubeAPI) -> None:
    """maxUnavailable 0, maxSurge 1: never fewer than 2 ready pods of either template
    while the new ReplicaSet replaces the old one."""
    cluster.put(deployment(2, maxSurge=1, maxUnavailable=0))
    pods = await eventually(lambda: len(live_pods(cluster)) == 2 and live_pods(cluster))
    for i, pod in enumerate(pods):
        make_ready(cluster, pod, f"198.18.0.{10 + i}")
    await eventually(
        lambda: cluster.get("deployments", "default", "web")["status"].get("availableReplicas") == 2
    )
    d = cluster.get("deployments", "default", "web")
    d["spec"]["template"]["spec"]["containers"][0]["image"] = "app:2"
    cluster.put(d)
    ip = 20
    for _ in range(40):
        await asyncio.sleep(0.1)
        ready = [p for p in live_pods(cluster) if p.get("status", {}).get("podIP")]
        assert len(ready) >= 2, "availability dropped below replicas - maxUnavailable"
        assert len(live_pods(cluster)) <= 3, "more than replicas + maxSurge pods"
        for pod in live_pods(cluster):
            if not pod.get("status", {}).get("podIP"):
                make_ready(cluster, pod, f"198.18.0.{ip}")
                ip += 1
        images = {p["spec"]["containers"][0]["image"] for p in live_pods(cluster)}
        if images == {"app:2"} and len(live_pods(cluster)) == 2:
            break
    else:
        raise AssertionError("the rollout did not finish")
    replicasets = {
        rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs
        for rs in cluster.list("replicasets", "default")
    }
    assert replicasets["app:1"]["spec"]["replicas"] == 0
    assert (
        replicasets["app:2"]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    )


async def test_endpointslice_lists_ready_and_terminating_pods(cluster: FakeKubeAPI) -> None:
    cluster.put(deployment(2))
    cluster.put(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "default", "labels": {"tier": "front"}},
            "spec": {
                "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        }
    )
    pods = await eventually(lambda: len(live_pods(cluster)) == 2 and live_pods(cluster))
    make_ready(cluster, pods[0], "198.18.0.10")
    pods[1] = cluster.get("pods", "default", pods[1]["metadata"]["name"])
    pods[1]["status"] = {"phase": "Running", "podIP": "198.18.0.11"}
    cluster.put(pods[1])

    def slice_() -> dict[str, Any] | None:
        found = cluster.list(
            "endpointslices", "default", label_selector="kubernetes.io/service-name=web"
        )
        return found[0] if found and len(found[0].get("endpoints") or ()) == 2 else None

    s = await eventually(slice_)
    assert s["metadata"]["labels"]["tier"] == "front"
    assert (
        s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"]
        == "endpointslice-controller.k8s.io"
    )
    assert s["ports"] == [{"name": "http", "protocol": "TCP", "port": 8080}]
    by_ip = {e["addresses"][0]: e["conditions"] for e in s["endpoints"]}
    assert by_ip == {
        "198.18.0.10": {"ready": True, "serving": True, "terminating": False},
        "198.18.0.11": {"ready": False, "serving": False, "terminating": False},
    }
