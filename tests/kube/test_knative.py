"""``zeroserve.knative``: Revisions, EndpointSlices, Pods and Routes to topology values (tables)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from zeroserve.knative import (
    activator_peers,
    is_private_slice,
    pod_started_at,
    revision_info,
    route_from_status,
    serving_port,
    slice_endpoints,
    slice_revision,
)
from zeroserve.topology import Endpoint, RevisionKey, Route, TagRoute, Target

from .helpers import endpoint, endpoint_slice, pod

REV = RevisionKey("default", "hello-00001")


def unix(stamp: str) -> float:
    return datetime.fromisoformat(stamp).astimezone(UTC).timestamp()


# ----- revisions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("meta", "spec", "expected"),
    [
        (
            {},
            {},
            {
                "reachable": True,
                "container_concurrency": 0,
                "timeout_seconds": 300.0,
                "response_start_timeout_seconds": 0.0,
                "idle_timeout_seconds": 0.0,
                "service": "",
                "configuration": "",
                "annotations": {},
            },
        ),
        (
            {
                "labels": {
                    "serving.knative.dev/service": "hello",
                    "serving.knative.dev/configuration": "hello-cfg",
                },
                "annotations": {"autoscaling.knative.dev/min-scale": "1"},
            },
            {},
            {
                "service": "hello",
                "configuration": "hello-cfg",
                "annotations": {"autoscaling.knative.dev/min-scale": "1"},
            },
        ),
        ({"labels": {"serving.knative.dev/routingState": "reserve"}}, {}, {"reachable": False}),
        ({"labels": {"serving.knative.dev/routingState": "active"}}, {}, {"reachable": True}),
        (
            {},
            {
                "containerConcurrency": 3,
                "timeoutSeconds": 60,
                "responseStartTimeoutSeconds": 5,
                "idleTimeoutSeconds": 30.5,
            },
            {
                "container_concurrency": 3,
                "timeout_seconds": 60.0,
                "response_start_timeout_seconds": 5.0,
                "idle_timeout_seconds": 30.5,
            },
        ),
        (
            {},
            {"containerConcurrency": "many", "timeoutSeconds": True, "idleTimeoutSeconds": [1]},
            {"container_concurrency": 0, "timeout_seconds": 300.0, "idle_timeout_seconds": 0.0},
        ),
        (
            {},
            {
                "containers": [
                    {"name": "sidecar"},
                    {"name": "app", "ports": [{"name": "h2c", "containerPort": 8080}]},
                ]
            },
            {"protocol": "h2c"},
        ),
        (
            {},
            {"containers": [{"ports": [{"containerPort": 8080}]}]},
            {"protocol": "http1"},
        ),
    ],
    ids=[
        "defaults",
        "labels-and-annotations",
        "reserve-is-unreachable",
        "active-is-reachable",
        "timeouts",
        "malformed-numbers-fall-back",
        "h2c-port",
        "unnamed-port",
    ],
)
def test_revision_info(
    meta: dict[str, Any], spec: dict[str, Any], expected: dict[str, Any]
) -> None:
    info = revision_info({"metadata": {"name": "r-1", "namespace": "ns", **meta}, "spec": spec})
    assert info.key == RevisionKey("ns", "r-1")
    assert {k: getattr(info, k) for k in expected} == expected


# ----- endpoint slices ---------------------------------------------------------------------

PODS = {
    "pod-a": pod("pod-a", "hello-00001", "2024-05-01T10:00:05Z", created="2024-05-01T10:00:00Z"),
    "pod-b": pod("pod-b", "hello-00001", None, created="2024-05-01T11:00:00Z"),
}


@pytest.mark.parametrize(
    ("endpoints", "ports", "expected"),
    [
        (
            [endpoint("pod-a", "10.0.0.1"), endpoint("pod-b", "10.0.0.2", ready=False)],
            None,
            [
                Endpoint(
                    "pod-a", "10.0.0.1", 8012, 9090, unix("2024-05-01T10:00:05+00:00"), ready=True
                ),
                Endpoint(
                    "pod-b", "10.0.0.2", 8012, 9090, unix("2024-05-01T11:00:00+00:00"), ready=False
                ),
            ],
        ),
        (
            [endpoint("pod-c", "10.0.0.3", ready=None)],
            None,
            [Endpoint("pod-c", "10.0.0.3", 8012, 9090, 0.0, ready=True)],
        ),
        (
            [
                endpoint("pod-a", "10.0.0.1", ready=False, terminating=True),
                endpoint("pod-b", "10.0.0.2", ready=True, terminating=True),
            ],
            None,
            [],
        ),
        ([{"addresses": [], "conditions": {"ready": True}}], None, []),
        (
            [{"addresses": ["10.0.0.9"], "conditions": {}}],
            None,
            [Endpoint("10.0.0.9", "10.0.0.9", 8012, 9090, 0.0, ready=True)],
        ),
        (
            [endpoint("pod-a", "10.0.0.1")],
            {"http2": 8013, "http-autometric": 9191},
            [Endpoint("pod-a", "10.0.0.1", 8013, 9191, unix("2024-05-01T10:00:05+00:00"))],
        ),
        (
            [endpoint("pod-a", "10.0.0.1")],
            {"http2": 8013, "http": 8012},
            [Endpoint("pod-a", "10.0.0.1", 8012, 9090, unix("2024-05-01T10:00:05+00:00"))],
        ),
        ([endpoint("pod-a", "10.0.0.1")], {"http-queueadm": 8022}, []),
    ],
    ids=[
        "ready-and-not-ready",
        "missing-ready-is-ready",
        "terminating-left-out",
        "no-address",
        "no-target-ref-named-by-address",
        "h2c-and-stats-port",
        "http-preferred",
        "no-serving-port",
    ],
)
def test_slice_endpoints(
    endpoints: list[dict[str, Any]], ports: dict[str, int] | None, expected: list[Endpoint]
) -> None:
    assert slice_endpoints(endpoint_slice("s", "hello-00001", endpoints, ports), PODS) == expected


def test_slice_without_ports_or_endpoints_publishes_nothing() -> None:
    bare = {"metadata": {"name": "s", "namespace": "default"}}
    assert serving_port(bare) is None
    assert slice_endpoints(bare, {}) == []


@pytest.mark.parametrize(
    ("labels", "revision", "private"),
    [
        (
            {
                "serving.knative.dev/revision": "hello-00001",
                "kubernetes.io/service-name": "hello-00001-private",
            },
            REV,
            True,
        ),
        # The public Service of the revision: its endpoints may be the activators.
        (
            {
                "serving.knative.dev/revision": "hello-00001",
                "kubernetes.io/service-name": "hello-00001",
            },
            REV,
            False,
        ),
        ({"serving.knative.dev/revision": "hello-00001"}, REV, True),
        ({"kubernetes.io/service-name": "hello-00001-private"}, None, False),
    ],
    ids=["private", "public", "hand-made", "no-revision-label"],
)
def test_slice_revision_and_private(
    labels: dict[str, str], revision: RevisionKey | None, private: bool
) -> None:
    obj = {"metadata": {"name": "s", "namespace": "default", "labels": labels}}
    assert slice_revision(obj) == revision
    assert is_private_slice(obj) is private


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (None, 0.0),
        (
            pod("p", "r", "2024-05-01T10:00:05Z", created="2024-05-01T10:00:00Z"),
            unix("2024-05-01T10:00:05+00:00"),
        ),
        (pod("p", "r", None, created="2024-05-01T10:00:00Z"), unix("2024-05-01T10:00:00+00:00")),
        (pod("p", "r", "yesterday", created="never"), 0.0),
    ],
    ids=["no-pod", "start-time", "creation-fallback", "unparsable"],
)
def test_pod_started_at(obj: dict[str, Any] | None, expected: float) -> None:
    assert pod_started_at(obj) == expected


# ----- activator peers ---------------------------------------------------------------------


def activator_slice(*endpoints: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "activator-x", "namespace": "knative-serving"},
        "endpoints": list(endpoints),
    }


def addr(ip: str, *, ready: bool | None = True, terminating: bool = False) -> dict[str, Any]:
    conditions: dict[str, Any] = {"terminating": terminating}
    if ready is not None:
        conditions["ready"] = ready
    return {"addresses": [ip], "conditions": conditions}


@pytest.mark.parametrize(
    ("slices", "pod_ip", "expected"),
    [
        ([], "10.0.0.1", (-1, 0)),
        (
            [activator_slice(addr("10.0.0.9"), addr("10.0.0.2"), addr("10.0.0.10"))],
            "10.0.0.9",
            (2, 3),
        ),
        (
            [activator_slice(addr("10.0.0.9"), addr("10.0.0.2"), addr("10.0.0.10"))],
            "10.0.0.10",
            (0, 3),
        ),
        (
            [
                activator_slice(
                    addr("10.0.0.1"),
                    addr("10.0.0.2", ready=False),
                    addr("10.0.0.3", terminating=True),
                    addr("10.0.0.4", ready=None),
                )
            ],
            "10.0.0.4",
            (1, 2),
        ),
        ([activator_slice(addr("10.0.0.1"), addr("10.0.0.2", ready=False))], "10.0.0.2", (-1, 1)),
        (
            [
                activator_slice(addr("10.0.0.1"), addr("10.0.0.2")),
                activator_slice(addr("10.0.0.2"), addr("10.0.0.3")),
            ],
            "10.0.0.3",
            (2, 3),
        ),
        ([activator_slice(addr("10.0.0.1"), addr("10.0.0.2"))], None, (-1, 2)),
    ],
    ids=[
        "no-activators",
        "sorted-as-strings",
        "sorted-as-strings-first",
        "only-ready-count",
        "self-not-ready",
        "same-address-in-two-slices",
        "own-ip-unknown",
    ],
)
def test_activator_peers(
    slices: list[dict[str, Any]], pod_ip: str | None, expected: tuple[int, int]
) -> None:
    assert activator_peers(slices, pod_ip) == expected


# ----- routes ------------------------------------------------------------------------------

V1 = RevisionKey("default", "hello-00001")
V2 = RevisionKey("default", "hello-00002")
LOCAL = ("hello.default.svc.cluster.local", "hello.default.svc")


def route(status: dict[str, Any] | None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Route",
        "metadata": {"name": "hello", "namespace": "default"},
        "spec": {},
    }
    if status is not None:
        obj["status"] = status
    return obj


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, None),
        ({"url": "http://hello.default.example.com", "traffic": []}, None),
        (
            {
                "url": "http://hello.default.example.com",
                "traffic": [
                    {"revisionName": "hello-00001", "percent": 100, "latestRevision": True}
                ],
            },
            Route(
                "default",
                "hello",
                ("hello.default.example.com",),
                (Target(V1, 100),),
                local_hosts=LOCAL,
            ),
        ),
        (
            {
                "url": "https://Hello.Default.Example.com:8443/",
                "traffic": [
                    {
                        "revisionName": "hello-00001",
                        "percent": 20,
                        "tag": "current",
                        "url": "http://current-hello.default.example.com",
                    },
                    {"revisionName": "hello-00002", "percent": 80},
                    {
                        "revisionName": "hello-00002",
                        "percent": 0,
                        "tag": "latest",
                        "url": "http://latest-hello.default.example.com",
                    },
                ],
            },
            Route(
                "default",
                "hello",
                ("hello.default.example.com",),
                (Target(V1, 20), Target(V2, 80), Target(V2, 0)),
                {
                    "current": TagRoute(
                        ("current-hello.default.example.com",),
                        ("current-hello.default.svc.cluster.local", "current-hello.default.svc"),
                        V1,
                    ),
                    "latest": TagRoute(
                        ("latest-hello.default.example.com",),
                        ("latest-hello.default.svc.cluster.local", "latest-hello.default.svc"),
                        V2,
                    ),
                },
                local_hosts=LOCAL,
            ),
        ),
        (
            {
                "url": "http://hello.default.svc.cluster.local",
                "traffic": [
                    {"revisionName": "hello-00001", "percent": 100},
                    {"revisionName": "hello-00002", "tag": "next"},
                ],
            },
            Route(
                "default",
                "hello",
                (),
                (Target(V1, 100), Target(V2, 0)),
                {
                    "next": TagRoute(
                        (), ("next-hello.default.svc.cluster.local", "next-hello.default.svc"), V2
                    )
                },
                local_hosts=LOCAL,
            ),
        ),
        (
            {"traffic": [{"revisionName": "hello-00001", "percent": 100}]},
            Route("default", "hello", (), (Target(V1, 100),), local_hosts=LOCAL),
        ),
    ],
    ids=[
        "no-status",
        "no-traffic-yet",
        "one-revision",
        "split-and-tags",
        "cluster-local-and-tag-without-url",
        "no-url",
    ],
)
def test_route_from_status(status: dict[str, Any] | None, expected: Route | None) -> None:
    assert route_from_status(route(status)) == expected


def test_route_cluster_domain() -> None:
    obj = route({"traffic": [{"revisionName": "hello-00001", "percent": 100, "tag": "t"}]})
    found = route_from_status(obj, cluster_domain="corp.internal")
    assert found is not None
    assert found.hosts == ()
    assert found.local_hosts == ("hello.default.svc.corp.internal", "hello.default.svc")
    assert found.tags == {
        "t": TagRoute((), ("t-hello.default.svc.corp.internal", "t-hello.default.svc"), V1)
    }


@pytest.mark.parametrize(
    ("traffic", "message"),
    [
        ([{"revisionName": "hello-00001", "percent": 150}], r"traffic\[0\]\.percent is 150"),
        ([{"revisionName": "hello-00001", "percent": "50"}], r"traffic\[0\]\.percent is '50'"),
        (
            [{"revisionName": "hello-00001", "percent": 50}, {"percent": 50}],
            r"traffic\[1\]\.revisionName is None",
        ),
        ([{"revisionName": "hello-00001", "percent": True}], r"traffic\[0\]\.percent is True"),
        ("everything", r"traffic is 'everything', not a list"),
        (["hello-00001"], r"traffic\[0\] is 'hello-00001', not an object"),
    ],
    ids=[
        "percent-over-100",
        "percent-string",
        "no-revision-name",
        "percent-bool",
        "traffic-not-a-list",
        "entry-not-an-object",
    ],
)
def test_route_from_status_rejects_malformed_traffic(traffic: Any, message: str) -> None:
    with pytest.raises(ValueError, match=r"route default/hello: status\." + message):
        route_from_status(route({"traffic": traffic}))
