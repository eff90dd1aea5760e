"""The autoscaler's Kubernetes adapters against the fake API server: Revisions to
RevisionInfo, EndpointSlices and Pods to ready endpoints, Deployments' /scale."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from autoscaler.kubernetes import (
    KubeEndpoints,
    KubeReplicaScaler,
    KubeRevisionSource,
    KubernetesSources,
    revision_info,
    start_kubernetes_sources,
)
from autoscaler.model import Endpoint, RevisionInfo, RevisionKey, ScaleError
from tests.fakes.kubeapi.fakeapi import FakeKubeAPI
from zeroserve.kube import KubeClient, KubeError

from .helpers import (
    deployment,
    endpoint,
    endpoint_slice,
    eventually,
    pod,
    revision,
)

HELLO = RevisionKey("default", "hello-00001")
HELLO_DEPLOYMENT = "hello-00001-deployment"


def unix(stamp: str) -> float:
    return datetime.fromisoformat(stamp).astimezone(UTC).timestamp()


# ----- revisions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "spec", "expected"),
    [
        (
            {},
            {},
            {
                "reachable": True,
                "container_concurrency": 0,
                "timeout_seconds": 300.0,
                "service": "",
                "configuration": "",
            },
        ),
        ({"serving.knative.dev/routingState": "reserve"}, {}, {"reachable": False}),
        ({"serving.knative.dev/routingState": "pending"}, {}, {"reachable": True}),
        (
            {},
            {
                "containerConcurrency": 1,
                "timeoutSeconds": 60,
                "responseStartTimeoutSeconds": 5,
                "idleTimeoutSeconds": 30,
            },
            {
                "container_concurrency": 1,
                "timeout_seconds": 60.0,
                "response_start_timeout_seconds": 5.0,
                "idle_timeout_seconds": 30.0,
            },
        ),
        (
            {},
            {"containerConcurrency": "many", "timeoutSeconds": True},
            {"container_concurrency": 0, "timeout_seconds": 300.0},
        ),
    ],
    ids=[
        "defaults",
        "reserve-is-unreachable",
        "other-states-reachable",
        "spec-fields",
        "malformed-numbers-fall-back",
    ],
)
def test_revision_info(
    labels: dict[str, str], spec: dict[str, Any], expected: dict[str, Any]
) -> None:
    obj = {"metadata": {"name": "r-1", "namespace": "ns", "labels": labels}, "spec": spec}
    info = revision_info(obj)
    assert info.key == RevisionKey("ns", "r-1")
    assert {k: getattr(info, k) for k in expected} == expected


async def test_revision_source_follows_revisions(kube: KubeClient, fake_kube: FakeKubeAPI) -> None:
    fake_kube.put(
        revision(
            "hello-00001",
            containerConcurrency=10,
            timeoutSeconds=120,
            responseStartTimeoutSeconds=20,
            idleTimeoutSeconds=40,
        )
    )
    source = KubeRevisionSource(kube)
    assert source.revisions() == {}
    source.start()
    try:
        await source.cache.wait_synced(5)
        assert source.revisions() == {
            HELLO: RevisionInfo(
                key=HELLO,
                container_concurrency=10,
                annotations={"autoscaling.knative.dev/target": "10"},
                reachable=True,
                service="hello",
                configuration="hello",
                timeout_seconds=120.0,
                response_start_timeout_seconds=20.0,
                idle_timeout_seconds=40.0,
            )
        }
        snapshot = source.revisions()

        fake_kube.patch(
            "revisions",
            "default",
            "hello-00001",
            {"metadata": {"labels": {"serving.knative.dev/routingState": "reserve"}}},
        )
        fake_kube.put(revision("hello-00002"))
        await eventually(
            lambda: len(source.revisions()) == 2 and not source.revisions()[HELLO].reachable,
            "both revisions, 1 reserved",
        )
        assert len(snapshot) == 1  # what a reader holds does not change under it

        fake_kube.delete("revisions", "default", "hello-00001")
        await eventually(
            lambda: list(source.revisions()) == [RevisionKey("default", "hello-00002")],
            "the deleted revision is gone",
        )
    finally:
        await source.stop()


# ----- endpoints ---------------------------------------------------------------------------


async def test_ready_pods_merges_slices_and_filters_unready(
    kube: KubeClient, fake_kube: FakeKubeAPI
) -> None:
    fake_kube.put(
        endpoint_slice(
            "hello-00001-private-a",
            "hello-00001",
            [
                endpoint("pod-a", "10.0.0.1"),
                endpoint("pod-b", "10.0.0.2", ready=False),
                endpoint("pod-c", "10.0.0.3", ready=False, terminating=True),
            ],
        )
    )
    # A second slice of the same revision, with other port numbers and no stats port; its
    # endpoint has no ready condition at all, which the API says to read as ready.
    fake_kube.put(
        endpoint_slice(
            "hello-00001-private-b",
            "hello-00001",
            [
                endpoint("pod-d", "10.0.0.4", ready=None),
                endpoint("pod-a", "10.0.0.1"),  # a pod seen in two slices during a handover
            ],
            ports={"http": 8013},
        )
    )
    fake_kube.put(
        endpoint_slice("other-00001-private-a", "other-00001", [endpoint("pod-x", "10.0.1.1")])
    )
    fake_kube.put(
        pod("pod-a", "hello-00001", "2024-05-01T10:00:05Z", created="2024-05-01T10:00:00Z")
    )
    fake_kube.put(pod("pod-d", "hello-00001", None, created="2024-05-01T11:00:00Z"))

    endpoints = KubeEndpoints(kube)
    assert endpoints.ready_pods(HELLO) is None  # unknown until synced
    endpoints.start()
    try:
        await eventually(lambda: endpoints.ready_pods(HELLO) is not None, "synced")
        assert endpoints.ready_pods(HELLO) == [
            Endpoint(
                name="pod-a",
                host="10.0.0.1",
                port=8012,
                stats_port=9090,
                started_at=unix("2024-05-01T10:00:05+00:00"),
            ),
            Endpoint(
                name="pod-d",
                host="10.0.0.4",
                port=8013,
                stats_port=9090,
                started_at=unix("2024-05-01T11:00:00+00:00"),
            ),
        ]
        assert [
            e.name for e in endpoints.ready_pods(RevisionKey("default", "other-00001")) or []
        ] == ["pod-x"]
        assert endpoints.ready_pods(RevisionKey("default", "nothing")) == []

        # pod-a turns unready in both slices; pod-b becomes ready.
        fake_kube.patch(
            "endpointslices",
            "default",
            "hello-00001-private-a",
            {
                "endpoints": [
                    endpoint("pod-a", "10.0.0.1", ready=False),
                    endpoint("pod-b", "10.0.0.2"),
                ]
            },
        )
        fake_kube.delete("endpointslices", "default", "hello-00001-private-b")
        await eventually(
            lambda: [e.name for e in endpoints.ready_pods(HELLO) or []] == ["pod-b"],
            "only pod-b ready",
        )
        # No Pod object for pod-b (yet): the start time is unknown, not an error.
        assert (endpoints.ready_pods(HELLO) or [])[0].started_at == 0.0
    finally:
        await endpoints.stop()


@pytest.mark.parametrize(
    ("ports", "expected"),
    [
        ({"http2": 8013, "http-autometric": 9191}, [(8013, 9191)]),
        ({"http-queueadm": 8022}, []),
    ],
    ids=["h2c-port", "no-serving-port-ignored"],
)
async def test_ready_pods_port_names(
    kube: KubeClient, fake_kube: FakeKubeAPI, ports: dict[str, int], expected: list[tuple[int, int]]
) -> None:
    fake_kube.put(endpoint_slice("s", "hello-00001", [endpoint("pod-a", "10.0.0.1")], ports=ports))
    endpoints = KubeEndpoints(kube)
    endpoints.start()
    try:
        await eventually(lambda: endpoints.synced, "synced")
        assert [(e.port, e.stats_port) for e in endpoints.ready_pods(HELLO) or []] == expected
    finally:
        await endpoints.stop()


# ----- replicas ----------------------------------------------------------------------------


@pytest.fixture
async def scaler(kube: KubeClient, fake_kube: FakeKubeAPI) -> AsyncIterator[KubeReplicaScaler]:
    fake_kube.put(deployment("hello-00001", replicas=1))
    scaler = KubeReplicaScaler(kube)
    scaler.start()
    try:
        await scaler.deployments.wait_synced(5)
        yield scaler
    finally:
        await scaler.stop()


def stored_replicas(fake_kube: FakeKubeAPI) -> int:
    stored = fake_kube.get("deployments", "default", HELLO_DEPLOYMENT)
    assert stored is not None
    return int(stored["spec"]["replicas"])


async def test_set_scale_lands_on_the_deployment_and_current_scale_follows(
    scaler: KubeReplicaScaler, fake_kube: FakeKubeAPI
) -> None:
    assert scaler.current_scale(HELLO) == 1
    assert scaler.current_scale(RevisionKey("default", "nope")) is None
    await scaler.set_scale(HELLO, 3)
    assert stored_replicas(fake_kube) == 3
    await eventually(lambda: scaler.current_scale(HELLO) == 3, "the watch reports 3 replicas")
    # Someone else scales it (kubectl scale): the cache follows that too.
    fake_kube.patch("deployments", "default", HELLO_DEPLOYMENT, {"spec": {"replicas": 0}})
    await eventually(lambda: scaler.current_scale(HELLO) == 0, "the watch reports 0 replicas")
    fake_kube.delete("deployments", "default", HELLO_DEPLOYMENT)
    await eventually(lambda: scaler.current_scale(HELLO) is None, "the deployment is gone")


async def test_current_scale_makes_no_api_call(
    scaler: KubeReplicaScaler, fake_kube: FakeKubeAPI
) -> None:
    before = len(fake_kube.requests)
    for _ in range(100):
        assert scaler.current_scale(HELLO) == 1
    assert len(fake_kube.requests) == before


async def test_set_scale_retries_a_conflict(
    scaler: KubeReplicaScaler, fake_kube: FakeKubeAPI
) -> None:
    fake_kube.fail_next("PATCH", f"/deployments/{HELLO_DEPLOYMENT}/scale", 409)
    await scaler.set_scale(HELLO, 2)
    assert stored_replicas(fake_kube) == 2
    assert len(fake_kube.requests_matching("PATCH", "/scale")) == 2


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("conflicts", "still conflicting after 3 attempts"),
        ("missing", "the Deployment does not exist"),
        ("api-down", "the Kubernetes API is unavailable"),
        ("forbidden", "Forbidden"),
    ],
)
async def test_set_scale_failures_raise_scale_error(
    scaler: KubeReplicaScaler, fake_kube: FakeKubeAPI, setup: str, message: str
) -> None:
    key = HELLO
    if setup == "conflicts":
        fake_kube.fail_next("PATCH", "/scale", 409, count=3)
    elif setup == "missing":
        key = RevisionKey("default", "gone-00001")
    elif setup == "api-down":
        await fake_kube.stop()
    else:
        fake_kube.fail_next("PATCH", "/scale", 403)
    with pytest.raises(ScaleError, match=message) as info:
        await scaler.set_scale(key, 5)
    assert f"cannot scale revision {key} (Deployment default/{key.name}-deployment) to 5" in str(
        info.value
    )
    # The last applied scale is still known from memory, whatever the API did.
    assert scaler.current_scale(HELLO) == 1


# ----- all three ---------------------------------------------------------------------------


async def test_start_kubernetes_sources(kube: KubeClient, fake_kube: FakeKubeAPI) -> None:
    fake_kube.put(revision("hello-00001"))
    fake_kube.put(deployment("hello-00001", replicas=2))
    sources = await start_kubernetes_sources(kube, sync_timeout=5)
    try:
        assert list(sources.revisions.revisions()) == [HELLO]
        assert sources.endpoints.ready_pods(HELLO) == []
        assert sources.scaler.current_scale(HELLO) == 2
        await fake_kube.wait_for_watches(len(sources.caches))
    finally:
        await sources.stop()
    await fake_kube.wait_for_watches(0)


async def test_start_kubernetes_sources_fails_clearly_and_cleans_up(
    kube: KubeClient, fake_kube: FakeKubeAPI
) -> None:
    fake_kube.fail_next("GET", "/revisions", 403, count=100)
    with pytest.raises(
        KubeError,
        match=r"not synced within 0.5s: revisions.serving.knative.dev "
        r"\(all namespaces\) \(list .*Forbidden",
    ):
        await start_kubernetes_sources(kube, sync_timeout=0.5)


async def test_sources_as_a_context_manager(kube: KubeClient, fake_kube: FakeKubeAPI) -> None:
    async with KubernetesSources(kube, "default") as sources:
        await sources.wait_synced(5)
        assert sources.revisions.revisions() == {}
