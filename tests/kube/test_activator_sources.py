"""``activator.kubernetes.KubeActivatorSources`` against the fake API server, pushing into a
real ``Activator``: routes, revisions, endpoints (ready and probed), peers, deletions."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from activator.app import Activator
from activator.config import Settings
from activator.kubernetes import KubeActivatorSources
from activator.routing import RoutingTable
from tests.fakes.kubeapi.fakeapi import FakeKubeAPI
from zeroserve.kube import KubeClient, KubeError
from zeroserve.observability import ObservabilityConfig
from zeroserve.topology import Endpoint, RevisionInfo, RevisionKey, Target

from .helpers import endpoint, endpoint_slice, eventually, pod, revision

V1 = RevisionKey("default", "hello-00001")
V2 = RevisionKey("default", "hello-00002")
V3 = RevisionKey("default", "hello-00003")
HOST = "hello.default.example.com"
# Nothing listens on port 1: probes of not-ready endpoints are refused at once, and no
# request of these tests is ever forwarded to a replica.
PORTS = {"http": 1, "http-autometric": 9090}
OWN_IP = "10.1.0.5"


class RecordingActivator(Activator):
    """A real activator that also records the control-plane calls it receives."""

    def __init__(self) -> None:
        super().__init__(Settings(host="127.0.0.1", port=0, metrics_port=0, drain_seconds=0))
        self.calls: list[tuple[str, Any]] = []

    def set_routes(self, table: RoutingTable) -> None:
        self.calls.append(("set_routes", table.hosts()))
        super().set_routes(table)

    def put_revision(self, info: RevisionInfo) -> None:
        self.calls.append(("put_revision", info.key))
        super().put_revision(info)

    def remove_revision(self, key: RevisionKey) -> None:
        self.calls.append(("remove_revision", key))
        super().remove_revision(key)

    def set_endpoints(self, key: RevisionKey, endpoints: Sequence[Endpoint]) -> None:
        self.calls.append(("set_endpoints", (key, sorted(e.host for e in endpoints))))
        super().set_endpoints(key, endpoints)

    def set_peers(self, index: int, count: int) -> None:
        self.calls.append(("set_peers", (index, count)))
        super().set_peers(index, count)

    def called(self, name: str) -> list[Any]:
        return [args for call, args in self.calls if call == name]


@pytest.fixture
async def activator() -> AsyncIterator[RecordingActivator]:
    act = RecordingActivator()
    await act.start()
    try:
        yield act
    finally:
        await act.close()


def knative_route(
    name: str,
    traffic: list[dict[str, Any]] | None,
    *,
    url: str | None = None,
    namespace: str = "default",
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Route",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"traffic": [{"configurationName": name, "percent": 100}]},
    }
    if traffic is not None:
        obj["status"] = {"traffic": traffic, "url": url or f"http://{name}.{namespace}.example.com"}
    return obj


def activator_slice(
    name: str, *ips: str, not_ready: Sequence[str] = (), service: str = "activator"
) -> dict[str, Any]:
    endpoints = [{"addresses": [ip], "conditions": {"ready": ip not in not_ready}} for ip in ips]
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": "knative-serving",
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8012, "protocol": "TCP"}],
    }


def public_slice(rev: str, ip: str) -> dict[str, Any]:
    """The revision's public Service's slice, whose endpoint is an activator."""
    obj = endpoint_slice(f"{rev}-abcde", rev, [endpoint("activator-0", ip)], ports={"http": 8012})
    obj["metadata"]["labels"]["kubernetes.io/service-name"] = rev
    return obj


def seed(fake: FakeKubeAPI) -> None:
    # The pods here are made-up addresses no probe reaches. In mesh-compatibility-mode
    # auto a ready pod is probed before use until a direct probe has answered
    # (docs/activator.md, "Mesh mode"); disabled trusts readiness, which is what these
    # tests are about.
    fake.put(_config_map("config-network", {"mesh-compatibility-mode": "disabled"}))
    fake.put(revision("hello-00001", containerConcurrency=2))
    fake.put(revision("hello-00002"))
    fake.put(
        knative_route(
            "hello",
            [
                {
                    "revisionName": "hello-00001",
                    "percent": 20,
                    "tag": "current",
                    "url": f"http://current-{HOST}",
                },
                {"revisionName": "hello-00002", "percent": 80, "latestRevision": True},
            ],
        )
    )
    fake.put(knative_route("pending", None))  # not reconciled yet: no traffic, no hosts
    fake.put(
        endpoint_slice(
            "hello-00001-private-a",
            "hello-00001",
            [
                endpoint("pod-a", "10.0.0.1"),
                endpoint("pod-b", "127.0.0.2", ready=False),
                endpoint("pod-c", "10.0.0.3", ready=False, terminating=True),
            ],
            ports=PORTS,
        )
    )
    fake.put(public_slice("hello-00001", OWN_IP))
    fake.put(
        endpoint_slice(
            "other-00001-private-a", "other-00001", [endpoint("pod-x", "10.0.9.1")], ports=PORTS
        )
    )  # no such revision
    fake.put(pod("pod-a", "hello-00001", "2024-05-01T10:00:05Z", created="2024-05-01T10:00:00Z"))
    fake.put(activator_slice("activator-a", OWN_IP, "10.1.0.3", "10.1.0.4", not_ready=["10.1.0.4"]))
    fake.put(activator_slice("autoscaler-a", "10.1.0.1", service="autoscaler"))


def sources_for(kube: KubeClient, act: Activator, **kwargs: Any) -> KubeActivatorSources:
    return KubeActivatorSources(kube, act, pod_ip=OWN_IP, **kwargs)


def addresses(act: Activator, key: RevisionKey) -> dict[tuple[str, int], bool]:
    rev = act.revisions.get(key)
    assert rev is not None, f"{key} is not at the activator"
    return {address: e.ready for address, e in rev.endpoints.items()}


def healthy(act: Activator, key: RevisionKey) -> set[tuple[str, int]]:
    rev = act.revisions.get(key)
    return set(rev.trackers) if rev is not None else set()


def targets(act: Activator, host: str) -> tuple[Target, ...] | None:
    split = act.routes.lookup(host.encode())
    return None if split is None else split.targets


async def test_initial_state_is_applied_once_after_sync(
    kube: KubeClient, fake_kube: FakeKubeAPI, activator: RecordingActivator
) -> None:
    seed(fake_kube)
    async with sources_for(kube, activator) as sources:
        await sources.wait_synced(5)
        assert sources.live

        # One call per kind of state, peers first and routes last (a host never names a
        # revision the activator does not know); no endpoints for a revision that does
        # not exist, and none for one without replicas.
        kinds = [call for call, _ in activator.calls]
        assert kinds[0] == "set_peers" and kinds[-1] == "set_routes"
        assert activator.called("set_peers") == [(1, 2)]  # ready: 10.1.0.3, 10.1.0.5
        assert sorted(activator.called("put_revision")) == [V1, V2]
        assert activator.called("set_endpoints") == [(V1, ["10.0.0.1", "127.0.0.2"])]
        assert len(activator.called("set_routes")) == 1

        assert activator.revisions.peers == (1, 2)
        v1 = activator.revisions.get(V1)
        assert v1 is not None and v1.info.container_concurrency == 2
        assert v1.info.annotations == {"autoscaling.knative.dev/target": "10"}
        # The ready replica is used at once, the not-ready one is being probed; the
        # terminating one and the public Service's endpoint (an activator) are not there.
        assert addresses(activator, V1) == {("10.0.0.1", 1): True, ("127.0.0.2", 1): False}
        assert healthy(activator, V1) == {("10.0.0.1", 1)}
        assert (
            v1.endpoints[("10.0.0.1", 1)].started_at
            == datetime(2024, 5, 1, 10, 0, 5, tzinfo=UTC).timestamp()
        )
        assert activator.revisions.get(RevisionKey("default", "other-00001")) is None

        assert targets(activator, HOST) == (Target(V1, 20), Target(V2, 80))
        assert targets(activator, "hello.default.svc.cluster.local") == (
            Target(V1, 20),
            Target(V2, 80),
        )
        assert targets(activator, "HELLO.default.svc:8080") == (Target(V1, 20), Target(V2, 80))
        assert targets(activator, f"current-{HOST}") == (Target(V1, 100),)
        assert targets(activator, "current-hello.default.svc.cluster.local") == (Target(V1, 100),)
        assert targets(activator, "pending.default.example.com") is None


async def test_changes_are_pushed_as_they_arrive(
    kube: KubeClient, fake_kube: FakeKubeAPI, activator: RecordingActivator
) -> None:
    seed(fake_kube)
    async with sources_for(kube, activator) as sources:
        await sources.wait_synced(5)

        # The not-ready replica turns ready; a new one appears in a second slice.
        fake_kube.patch(
            "endpointslices",
            "default",
            "hello-00001-private-a",
            {"endpoints": [endpoint("pod-a", "10.0.0.1"), endpoint("pod-b", "127.0.0.2")]},
        )
        fake_kube.put(
            endpoint_slice(
                "hello-00001-private-b", "hello-00001", [endpoint("pod-d", "10.0.0.4")], ports=PORTS
            )
        )
        await eventually(
            lambda: healthy(activator, V1) == {("10.0.0.1", 1), ("127.0.0.2", 1), ("10.0.0.4", 1)},
            "three healthy replicas",
        )

        # A new revision whose slice arrives first: its endpoints come with it.
        fake_kube.put(
            endpoint_slice(
                "hello-00003-private-a", "hello-00003", [endpoint("pod-e", "10.0.0.5")], ports=PORTS
            )
        )
        await eventually(
            lambda: "hello-00003-private-a" in {name for _, name in sources.slices.objects},
            "the slice is seen",
        )
        assert activator.revisions.get(V3) is None
        fake_kube.put(revision("hello-00003"))
        await eventually(lambda: activator.revisions.get(V3) is not None, "hello-00003 is known")
        assert healthy(activator, V3) == {("10.0.0.5", 1)}

        # The route moves all traffic to it, and tags the old one.
        fake_kube.patch(
            "routes",
            "default",
            "hello",
            {
                "status": {
                    "traffic": [
                        {"revisionName": "hello-00003", "percent": 100},
                        {
                            "revisionName": "hello-00001",
                            "percent": 0,
                            "tag": "old",
                            "url": f"http://old-{HOST}",
                        },
                    ]
                }
            },
        )
        await eventually(lambda: targets(activator, HOST) == (Target(V3, 100),), "the new split")
        assert targets(activator, f"old-{HOST}") == (Target(V1, 100),)
        assert targets(activator, f"current-{HOST}") is None
        # The route that was pending gets its traffic.
        fake_kube.put(knative_route("pending", [{"revisionName": "hello-00002", "percent": 100}]))
        await eventually(
            lambda: targets(activator, "pending.default.example.com") == (Target(V2, 100),),
            "the pending route is routable",
        )

        # A third activator becomes ready, sorting first: this one is now index 2 of 3.
        fake_kube.put(activator_slice("activator-b", "10.1.0.1"))
        await eventually(lambda: activator.revisions.peers == (2, 3), "activator 2 of 3")

        # Pods report status changes all the time; one that changes no endpoint pushes nothing.
        pushes = len(activator.called("set_endpoints"))
        fake_kube.patch(
            "pods",
            "default",
            "pod-a",
            {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        )
        await eventually(
            lambda: "conditions" in (sources.pods.get("default", "pod-a") or {}).get("status", {}),
            "the pod change is seen",
        )
        assert len(activator.called("set_endpoints")) == pushes
        # A route status change that moves no traffic (a condition) is not pushed either.
        routes = len(activator.called("set_routes"))
        fake_kube.patch(
            "routes",
            "default",
            "hello",
            {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        )
        await eventually(
            lambda: "conditions" in (sources.routes.get("default", "hello") or {})["status"],
            "the route change is seen",
        )
        assert len(activator.called("set_routes")) == routes


async def test_deletions(
    kube: KubeClient, fake_kube: FakeKubeAPI, activator: RecordingActivator
) -> None:
    seed(fake_kube)
    async with sources_for(kube, activator) as sources:
        await sources.wait_synced(5)

        # A replica goes away, then the revision itself, then (later) its slices.
        fake_kube.patch(
            "endpointslices",
            "default",
            "hello-00001-private-a",
            {"endpoints": [endpoint("pod-a", "10.0.0.1")]},
        )
        await eventually(
            lambda: addresses(activator, V1) == {("10.0.0.1", 1): True}, "only pod-a left"
        )
        fake_kube.delete("revisions", "default", "hello-00001")
        await eventually(lambda: activator.revisions.get(V1) is None, "hello-00001 removed")
        assert activator.called("remove_revision") == [V1]
        pushes = len(activator.called("set_endpoints"))
        fake_kube.delete("endpointslices", "default", "hello-00001-private-a")
        await eventually(
            lambda: sources.slices.get("default", "hello-00001-private-a") is None,
            "the slice deletion is seen",
        )
        # Nothing is announced for a revision that is gone, so the activator keeps nothing
        # for it either.
        assert len(activator.called("set_endpoints")) == pushes

        # A revision that comes back gets its current endpoints again.
        fake_kube.put(
            endpoint_slice(
                "hello-00001-private-c", "hello-00001", [endpoint("pod-f", "10.0.0.6")], ports=PORTS
            )
        )
        fake_kube.put(revision("hello-00001"))
        await eventually(lambda: healthy(activator, V1) == {("10.0.0.6", 1)}, "hello-00001 is back")

        fake_kube.delete("routes", "default", "hello")
        await eventually(lambda: targets(activator, HOST) is None, "the route is gone")
        assert targets(activator, f"current-{HOST}") is None

        # Every activator endpoint gone: this one no longer knows its share, so uses all.
        fake_kube.delete("endpointslices", "knative-serving", "activator-a")
        await eventually(lambda: activator.revisions.peers == (-1, 0), "no peers")


async def test_state_survives_an_api_outage(
    kube: KubeClient, fake_kube: FakeKubeAPI, activator: RecordingActivator
) -> None:
    seed(fake_kube)
    async with sources_for(kube, activator) as sources:
        await sources.wait_synced(5)
        # The API breaks: every stream is cut and every request fails (overloaded, or a
        # proxy in front of a dead apiserver), until the fault is cleared.
        fake_kube.fail_next("*", "/", 503, count=1_000_000)
        fake_kube.close_watches(abrupt=True)
        # A change made meanwhile reaches the activator once the API answers again.
        fake_kube.patch(
            "routes",
            "default",
            "hello",
            {"status": {"traffic": [{"revisionName": "hello-00002", "percent": 100}]}},
        )
        await eventually(
            lambda: all(c.last_error is not None for c in sources.caches),
            "every cache noticed the outage",
        )
        assert targets(activator, HOST) == (Target(V1, 20), Target(V2, 80))
        assert healthy(activator, V1) == {("10.0.0.1", 1)}
        assert activator.revisions.peers == (1, 2)
        assert set(activator.revisions.revisions) == {V1, V2}
        fake_kube.faults.clear()
        await eventually(
            lambda: targets(activator, HOST) == (Target(V2, 100),),
            "the change made during the outage",
            within=15,
        )


async def test_malformed_route_status_keeps_the_previous_traffic(
    kube: KubeClient,
    fake_kube: FakeKubeAPI,
    activator: RecordingActivator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    seed(fake_kube)
    async with sources_for(kube, activator) as sources:
        await sources.wait_synced(5)
        bad = copy.deepcopy(fake_kube.get("routes", "default", "hello"))
        assert bad is not None
        bad["status"]["traffic"][1]["percent"] = 180
        fake_kube.put(bad)
        await eventually(
            lambda: "status.traffic[1].percent is 180" in caplog.text, "the bad status is reported"
        )
        assert targets(activator, HOST) == (Target(V1, 20), Target(V2, 80))
        assert len(activator.called("set_routes")) == 1


async def test_only_the_given_namespace_is_watched(
    kube: KubeClient, fake_kube: FakeKubeAPI, activator: RecordingActivator
) -> None:
    seed(fake_kube)
    other = revision("elsewhere-00001")
    other["metadata"]["namespace"] = "kube-public"
    fake_kube.put(other)
    fake_kube.put(
        knative_route(
            "elsewhere",
            [{"revisionName": "elsewhere-00001", "percent": 100}],
            namespace="kube-public",
        )
    )
    async with sources_for(kube, activator, namespace="default") as sources:
        await sources.wait_synced(5)
        assert set(activator.revisions.revisions) == {V1, V2}
        assert targets(activator, "elsewhere.kube-public.example.com") is None
        assert activator.revisions.peers == (1, 2)  # the system namespace is still read


async def test_wait_synced_names_the_cache_that_could_not_list(
    kube: KubeClient, fake_kube: FakeKubeAPI, activator: RecordingActivator
) -> None:
    fake_kube.fail_next("GET", "/routes", 403, count=100)
    sources = sources_for(kube, activator)
    sources.start()
    try:
        with pytest.raises(
            KubeError,
            match=r"not synced within 0.5s: routes.serving.knative.dev "
            r"\(all namespaces\) \(list .*Forbidden",
        ):
            await sources.wait_synced(0.5)
        assert not sources.live
        assert activator.calls == []  # nothing half-applied
    finally:
        await sources.stop()
    await fake_kube.wait_for_watches(0)


def _config_map(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "knative-serving"},
        "data": data,
    }


async def test_config_observability_is_followed_live(
    kube: KubeClient, fake_kube: FakeKubeAPI, activator: RecordingActivator
) -> None:
    on = {"logging.enable-request-log": "true", "logging.request-log-template": "{{.TraceID}}"}
    fake_kube.put(_config_map("config-observability", on))
    async with sources_for(kube, activator) as sources:
        await sources.wait_synced(5)
        want = ObservabilityConfig(enable_request_log=True, request_log_template="{{.TraceID}}")
        assert activator.observability == want
        fake_kube.put(_config_map("config-tracing", {"debug": "true"}))
        await eventually(
            lambda: activator.observability.tracing_sampling_rate == 1.0, "config-tracing"
        )
        # a version that does not parse changes nothing
        fake_kube.put(_config_map("config-observability", {"metrics-protocol": "grpc"}))
        fake_kube.put(_config_map("config-unrelated", {"a": "b"}))
        fake_kube.put(_config_map("config-observability", {}))
        await eventually(lambda: activator.observability.enable_request_log is False, "deleted")
        assert activator.observability.tracing_sampling_rate == 1.0


async def test_config_network_mesh_mode_is_followed_live(
    kube: KubeClient, fake_kube: FakeKubeAPI, activator: RecordingActivator
) -> None:
    """config-network's mesh-compatibility-mode reaches the activator's revisions with the
    private Services' addresses (docs/activator.md, "Mesh mode")."""
    fake_kube.put(_config_map("config-network", {"mesh-compatibility-mode": "enabled"}))
    async with sources_for(kube, activator, cluster_domain="example.internal") as sources:
        await sources.wait_synced(5)
        revs = activator.revisions
        assert revs.mesh_mode == "enabled"
        assert revs.service_address is not None
        assert revs.service_address(V1) == ("hello-00001-private.default.svc.example.internal", 80)
        # a value that does not parse changes nothing
        fake_kube.put(_config_map("config-network", {"mesh-compatibility-mode": "on"}))
        fake_kube.put(_config_map("config-network", {}))
        await eventually(lambda: revs.mesh_mode == "auto", "deleted: Knative's default")
