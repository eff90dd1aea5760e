"""The controller in-process against the fake API server: the Knative docs' samples from
manifest to Ready, with the tests playing the kubelet (EndpointSlices, Pods) and the
autoscaler (``/scale``)."""

from __future__ import annotations

from controller.app import KubeController
from tests.fakes.kubeapi.fakeapi import FakeKubeAPI
from zeroserve.api.objects import Obj
from zeroserve.knative import route_from_status
from zeroserve.kube import KubeClient
from zeroserve.topology import RevisionKey, Route, TagRoute, Target

from .helpers import (
    HELLO_V1,
    HELLO_V2,
    HELLOWORLD_GO,
    condition,
    config_map,
    crashing_pod,
    endpoint_slice,
    has_status,
    is_ready,
    put_manifest,
    settled,
)

REV = "helloworld-go-00001"


def owner(obj: Obj | None) -> tuple[str, str]:
    assert obj is not None
    [ref] = obj["metadata"]["ownerReferences"]
    assert ref["controller"] is True and ref["blockOwnerDeletion"] is True and ref["uid"]
    return ref["kind"], ref["name"]


async def deployed(api: FakeKubeAPI, revision: str, ns: str = "default") -> Obj:
    found = await api.wait_for("deployments", ns, f"{revision}-deployment", within=5)
    assert found is not None
    return found


async def ready(api: FakeKubeAPI, revision: str, *pods: tuple[str, str]) -> None:
    """Play the kubelet: the revision's pods pass their readiness probes."""
    await deployed(api, revision)
    api.put(endpoint_slice(revision, *(pods or ((f"{revision}-pod", "10.0.0.9"),))))
    await api.wait_for(
        "revisions.serving.knative.dev", "default", revision, lambda r: is_ready(r), within=5
    )


async def test_helloworld_go_from_manifest_to_ready(
    cluster: FakeKubeAPI, controller: KubeController
) -> None:
    put_manifest(cluster, HELLOWORLD_GO)
    deployment = await deployed(cluster, REV)

    cfg = cluster.get("configurations.serving.knative.dev", "default", "helloworld-go")
    assert owner(cfg) == ("Service", "helloworld-go")
    assert cfg is not None and cfg["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": "TARGET", "value": "Go Sample v1"}
    ]
    rev = cluster.get("revisions.serving.knative.dev", "default", REV)
    assert owner(rev) == ("Configuration", "helloworld-go")
    assert rev is not None and rev["metadata"]["labels"] == {
        "serving.knative.dev/service": "helloworld-go",
        "serving.knative.dev/configuration": "helloworld-go",
        "serving.knative.dev/configurationGeneration": "1",
        "serving.knative.dev/revision": REV,
        "serving.knative.dev/routingState": "active",
    }
    assert rev["spec"] == {
        "containerConcurrency": 0,
        "timeoutSeconds": 300,
        "containers": [
            {
                "name": "user-container",
                "image": "ghcr.io/knative/helloworld-go:latest",
                "env": [{"name": "TARGET", "value": "Go Sample v1"}],
                "ports": [{"containerPort": 8080}],
            }
        ],
    }

    assert owner(deployment) == ("Revision", REV)
    assert deployment["spec"]["replicas"] == 1
    pod = deployment["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["user-container", "queue-proxy"]
    assert pod["terminationGracePeriodSeconds"] == 300
    user, queue = pod["containers"]
    assert "readinessProbe" not in user
    assert user["lifecycle"]["preStop"] == {"httpGet": {"port": 8022, "path": "/wait-for-drain"}}
    assert {"name": "PORT", "value": "8080"} in user["env"]
    assert queue["image"] == controller.settings.queue_proxy_image
    assert {"name": "SERVING_REVISION", "value": REV} in queue["env"]
    assert queue["readinessProbe"]["httpGet"]["httpHeaders"] == [
        {"name": "K-Network-Probe", "value": "queue"}
    ]

    private = await cluster.wait_for("services", "default", f"{REV}-private")
    assert owner(private) == ("Revision", REV)
    assert private is not None and private["spec"]["selector"] == {
        "serving.knative.dev/revision": REV
    }
    vs = await cluster.wait_for("virtualservices", "default", "helloworld-go-ingress")
    assert owner(vs) == ("Route", "helloworld-go")
    assert vs is not None and vs["spec"]["hosts"] == [
        "helloworld-go.default.svc.cluster.local",
        "helloworld-go.default.svc",
    ]
    # No config-domain: the route is cluster-local, bound to the local gateway only.
    assert vs["spec"]["gateways"] == ["knative-serving/knative-local-gateway"]
    assert vs["spec"]["http"][0]["route"][0]["destination"] == {
        "host": "activator.knative-serving.svc.cluster.local",
        "port": {"number": 80},
    }
    assert vs["spec"]["http"][0]["retries"] == {"attempts": 0}
    mesh = await cluster.wait_for("virtualservices", "default", "helloworld-go-mesh")
    assert owner(mesh) == ("Route", "helloworld-go")
    assert mesh is not None and mesh["spec"]["gateways"] == ["mesh"]
    assert mesh["spec"]["hosts"] == vs["spec"]["hosts"]

    ksvc = await cluster.wait_for(
        "ksvc", "default", "helloworld-go", has_status("latestCreatedRevisionName", REV)
    )
    assert condition(ksvc)["status"] == "Unknown"  # no ready pod yet

    cluster.put(endpoint_slice(REV, ("helloworld-go-00001-deployment-x1", "10.0.0.5")))
    ksvc = await cluster.wait_for("ksvc", "default", "helloworld-go", is_ready)
    assert ksvc is not None
    status = ksvc["status"]
    assert status["url"] == "http://helloworld-go.default.svc.cluster.local"
    assert (status["latestCreatedRevisionName"], status["latestReadyRevisionName"]) == (REV, REV)
    assert status["traffic"] == [{"revisionName": REV, "latestRevision": True, "percent": 100}]
    assert status["observedGeneration"] == 1
    assert {c["type"] for c in status["conditions"]} == {
        "ConfigurationsReady",
        "Ready",
        "RoutesReady",
    }
    rev = await cluster.wait_for(
        "revisions.serving.knative.dev", "default", REV, has_status("actualReplicas", 1)
    )
    assert rev is not None and rev["status"]["desiredReplicas"] == 1
    assert rev["metadata"]["labels"]["serving.knative.dev/routingState"] == "active"
    route = cluster.get("routes.serving.knative.dev", "default", "helloworld-go")
    assert route is not None and route_from_status(route) == Route(
        namespace="default",
        name="helloworld-go",
        hosts=(),
        targets=(Target(RevisionKey("default", REV), 100),),
        tags={},
        local_hosts=("helloworld-go.default.svc.cluster.local", "helloworld-go.default.svc"),
    )


async def test_the_autoscalers_replicas_are_never_undone(
    cluster: FakeKubeAPI, controller: KubeController, kube: KubeClient
) -> None:
    put_manifest(cluster, HELLOWORLD_GO)
    await ready(cluster, REV)
    await kube.set_scale("default", f"{REV}-deployment", 3)
    await cluster.wait_for(
        "revisions.serving.knative.dev", "default", REV, has_status("desiredReplicas", 3)
    )
    # A new queue-proxy image re-renders every Deployment: the pods change, replicas not.
    cluster.put(config_map("config-deployment", {"queue-sidecar-image": "zeroserve:next"}))
    deployment = await cluster.wait_for(
        "deployments",
        "default",
        f"{REV}-deployment",
        lambda d: (
            d is not None
            and d["spec"]["template"]["spec"]["containers"][1]["image"] == "zeroserve:next"
        ),
    )
    assert deployment is not None and deployment["spec"]["replicas"] == 3
    # Scaled to zero, the revision stays Ready (it was), and says it is idle.
    await kube.set_scale("default", f"{REV}-deployment", 0)
    cluster.put(endpoint_slice(REV))
    rev = await cluster.wait_for(
        "revisions.serving.knative.dev", "default", REV, has_status("actualReplicas", 0)
    )
    await settled(controller)
    rev = cluster.get("revisions.serving.knative.dev", "default", REV)
    assert is_ready(rev) and rev is not None and rev["status"]["desiredReplicas"] == 0
    assert condition(rev, "Active")["reason"] == "NoTraffic"
    assert is_ready(cluster.get("ksvc", "default", "helloworld-go"))
    deployment = cluster.get("deployments", "default", f"{REV}-deployment")
    assert deployment is not None and deployment["spec"]["replicas"] == 0


async def test_a_second_template_and_the_traffic_split(
    cluster: FakeKubeAPI, controller: KubeController
) -> None:
    put_manifest(cluster, HELLO_V1)
    await ready(cluster, "hello-00001", ("hello-00001-a", "10.0.1.1"))
    put_manifest(cluster, HELLO_V2)
    rev = await cluster.wait_for("revisions.serving.knative.dev", "default", "hello-00002")
    assert rev is not None and rev["spec"]["containers"][0]["env"] == [
        {"name": "TARGET", "value": "Knative"}
    ]
    assert rev["metadata"]["labels"]["serving.knative.dev/configurationGeneration"] == "2"
    first = cluster.get("revisions.serving.knative.dev", "default", "hello-00001")
    assert first is not None and first["spec"]["containers"][0]["env"][0]["value"] == "World"
    await ready(cluster, "hello-00002", ("hello-00002-a", "10.0.1.2"))

    ksvc = await cluster.wait_for(
        "ksvc", "default", "hello", has_status("latestReadyRevisionName", "hello-00002")
    )
    await settled(controller)
    ksvc = cluster.get("ksvc", "default", "hello")
    route = cluster.get("routes.serving.knative.dev", "default", "hello")
    assert ksvc is not None and route is not None and is_ready(ksvc)
    local = "default.svc.cluster.local"
    assert (
        route["status"]["traffic"]
        == ksvc["status"]["traffic"]
        == [
            {"revisionName": "hello-00002", "latestRevision": True, "percent": 80},
            {
                "tag": "current",
                "revisionName": "hello-00001",
                "latestRevision": False,
                "percent": 20,
                "url": f"http://current-hello.{local}",
            },
            {
                "tag": "latest",
                "revisionName": "hello-00002",
                "latestRevision": True,
                "percent": 0,
                "url": f"http://latest-hello.{local}",
            },
        ]
    )
    table = route_from_status(route)
    v1, v2 = RevisionKey("default", "hello-00001"), RevisionKey("default", "hello-00002")
    assert table == Route(
        namespace="default",
        name="hello",
        hosts=(),
        targets=(Target(v2, 80), Target(v1, 20), Target(v2, 0)),
        tags={
            "current": TagRoute((), (f"current-hello.{local}", "current-hello.default.svc"), v1),
            "latest": TagRoute((), (f"latest-hello.{local}", "latest-hello.default.svc"), v2),
        },
        local_hosts=(f"hello.{local}", "hello.default.svc"),
    )
    vs = cluster.get("virtualservices", "default", "hello-ingress")
    assert vs is not None and vs["spec"]["hosts"] == [
        f"hello.{local}",
        "hello.default.svc",
        f"current-hello.{local}",
        "current-hello.default.svc",
        f"latest-hello.{local}",
        "latest-hello.default.svc",
    ]
    placeholders = {
        s["metadata"]["name"]: s["spec"]
        for s in cluster.list(
            "services", "default", label_selector="serving.knative.dev/route=hello"
        )
    }
    assert sorted(placeholders) == ["current-hello", "hello", "latest-hello"]
    assert placeholders["hello"]["externalName"] == "activator.knative-serving.svc.cluster.local"
    for name in ("hello-00001", "hello-00002"):
        revision = cluster.get("revisions.serving.knative.dev", "default", name)
        assert revision is not None
        assert revision["metadata"]["labels"]["serving.knative.dev/routingState"] == "active"

    # Back to one target: the tags' hosts and placeholder Services go.
    put_manifest(cluster, HELLO_V2.split("  traffic:")[0])
    await cluster.wait_for("services", "default", "current-hello", lambda s: s is None)
    vs = await cluster.wait_for(
        "virtualservices",
        "default",
        "hello-ingress",
        lambda v: v is not None and len(v["spec"]["hosts"]) == 2,
    )
    first = await cluster.wait_for(
        "revisions.serving.knative.dev",
        "default",
        "hello-00001",
        lambda r: (
            r is not None
            and r["metadata"]["labels"]["serving.knative.dev/routingState"] == "reserve"
        ),
    )


async def test_a_config_domain_change_updates_urls_and_hosts(
    cluster: FakeKubeAPI, controller: KubeController
) -> None:
    put_manifest(cluster, HELLOWORLD_GO)
    await ready(cluster, REV)
    cluster.put(config_map("config-domain", {"example.com": ""}))
    ksvc = await cluster.wait_for(
        "ksvc",
        "default",
        "helloworld-go",
        has_status("url", "http://helloworld-go.default.example.com"),
    )
    vs = await cluster.wait_for(
        "virtualservices",
        "default",
        "helloworld-go-ingress",
        lambda v: v is not None and v["spec"]["hosts"][0] == "helloworld-go.default.example.com",
    )
    assert vs is not None and "helloworld-go.default.svc.cluster.local" in vs["spec"]["hosts"]
    route = cluster.get("routes.serving.knative.dev", "default", "helloworld-go")
    table = route_from_status(route) if route is not None else None
    assert table is not None and table.hosts[0] == "helloworld-go.default.example.com"
    # An invalid map is ignored; the last good one stays in force.
    cluster.put(config_map("config-domain", {"not a domain": ""}))
    await settled(controller)
    ksvc = cluster.get("ksvc", "default", "helloworld-go")
    assert ksvc is not None and ksvc["status"]["url"] == "http://helloworld-go.default.example.com"


async def test_deleting_the_service_deletes_everything(
    cluster: FakeKubeAPI, controller: KubeController
) -> None:
    put_manifest(cluster, HELLOWORLD_GO)
    await ready(cluster, REV)
    await cluster.wait_for("virtualservices", "default", "helloworld-go-ingress")
    cluster.delete("ksvc", "default", "helloworld-go")
    await settled(controller)
    for resource, name in (
        ("configurations.serving.knative.dev", "helloworld-go"),
        ("routes.serving.knative.dev", "helloworld-go"),
        ("revisions.serving.knative.dev", REV),
        ("deployments", f"{REV}-deployment"),
        ("services", f"{REV}-private"),
        ("services", "helloworld-go"),
        ("virtualservices", "helloworld-go-ingress"),
    ):
        assert cluster.get(resource, "default", name) is None, (resource, name)


async def test_invalid_objects_get_ready_false_and_change_nothing(
    cluster: FakeKubeAPI, controller: KubeController
) -> None:
    put_manifest(cluster, HELLO_V1)
    await ready(cluster, "hello-00001")
    bad = HELLO_V2.replace("percent: 20", "percent: 10")
    put_manifest(cluster, bad)
    ksvc = await cluster.wait_for(
        "ksvc", "default", "hello", lambda k: condition(k).get("reason") == "InvalidSpec"
    )
    assert condition(ksvc) == {
        "type": "Ready",
        "status": "False",
        "reason": "InvalidSpec",
        "message": "spec.traffic: percents must add up to 100, got 90",
        "lastTransitionTime": condition(ksvc)["lastTransitionTime"],
    }
    await settled(controller)
    assert cluster.get("revisions.serving.knative.dev", "default", "hello-00002") is None
    cfg = cluster.get("configurations.serving.knative.dev", "default", "hello")
    assert cfg is not None and cfg["metadata"]["generation"] == 1
    put_manifest(cluster, HELLO_V2)  # fixed: reconciled as usual
    await cluster.wait_for("revisions.serving.knative.dev", "default", "hello-00002")


async def test_a_crash_looping_revision_fails_with_its_exit_code(
    cluster: FakeKubeAPI, controller: KubeController
) -> None:
    put_manifest(cluster, HELLOWORLD_GO)
    await deployed(cluster, REV)
    cluster.put(
        crashing_pod(
            REV, f"{REV}-deployment-abc", exit_code=2, message="panic: TARGET is not a number"
        )
    )
    rev = await cluster.wait_for(
        "revisions.serving.knative.dev",
        "default",
        REV,
        lambda r: condition(r).get("status") == "False",
    )
    assert condition(rev)["reason"] == "ExitCode2"
    assert condition(rev, "ContainerHealthy")["message"] == (
        "Container failed with: panic: TARGET is not a number"
    )
    ksvc = await cluster.wait_for(
        "ksvc", "default", "helloworld-go", lambda k: condition(k).get("status") == "False"
    )
    assert condition(ksvc)["reason"] == "RevisionFailed"
    assert condition(ksvc)["message"] == (
        f'Revision "{REV}" failed with message: Container failed with: panic: TARGET is not a '
        "number."
    )


BLUE_CONFIG = """\
apiVersion: serving.knative.dev/v1
kind: Configuration
metadata:
  name: blue
  namespace: default
spec:
  template:
    spec:
      containerConcurrency: 5
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
"""

SHOP_ROUTE = """\
apiVersion: serving.knative.dev/v1
kind: Route
metadata:
  name: shop
  namespace: default
  labels:
    app: shop
spec:
  traffic:
    - configurationName: blue
      percent: 100
      tag: blue
"""


async def test_a_standalone_configuration_and_route(
    cluster: FakeKubeAPI, controller: KubeController
) -> None:
    cluster.put(
        config_map(
            "config-domain", {"example.com": "", "shop.example.org": "selector:\n  app: shop"}
        )
    )
    put_manifest(cluster, BLUE_CONFIG)
    put_manifest(cluster, SHOP_ROUTE)
    rev = await cluster.wait_for("revisions.serving.knative.dev", "default", "blue-00001")
    assert rev is not None and rev["spec"]["containerConcurrency"] == 5
    assert "serving.knative.dev/service" not in rev["metadata"]["labels"]
    await ready(cluster, "blue-00001")
    route = await cluster.wait_for("routes.serving.knative.dev", "default", "shop", is_ready)
    assert route is not None and route["status"]["url"] == "http://shop.default.shop.example.org"
    assert route["status"]["traffic"] == [
        {
            "tag": "blue",
            "revisionName": "blue-00001",
            "latestRevision": True,
            "percent": 100,
            "url": "http://blue-shop.default.shop.example.org",
        }
    ]
    vs = cluster.get("virtualservices", "default", "shop-ingress")
    assert vs is not None and vs["spec"]["hosts"][0] == "shop.default.shop.example.org"
    assert "blue-shop.default.shop.example.org" in vs["spec"]["hosts"]
    deployment = cluster.get("deployments", "default", "blue-00001-deployment")
    assert deployment is not None
    queue = deployment["spec"]["template"]["spec"]["containers"][1]
    assert {"name": "CONTAINER_CONCURRENCY", "value": "5"} in queue["env"]
    assert {"name": "SERVING_SERVICE", "value": ""} in queue["env"]


NAMED = HELLO_V1.replace("  template:\n", "  template:\n    metadata:\n      name: hello-world\n")


async def test_a_named_template_names_its_revision_and_must_change_with_it(
    cluster: FakeKubeAPI, controller: KubeController
) -> None:
    put_manifest(cluster, NAMED)
    await ready(cluster, "hello-world")
    await cluster.wait_for("ksvc", "default", "hello", is_ready)
    put_manifest(cluster, NAMED.replace('value: "World"', 'value: "Moon"'))  # same name
    ksvc = await cluster.wait_for(
        "ksvc", "default", "hello", lambda k: condition(k).get("reason") == "InvalidSpec"
    )
    assert condition(ksvc)["message"].startswith(
        "spec.template.metadata.name: 'hello-world' already names a revision with a different "
        "template"
    )
    rev = cluster.get("revisions.serving.knative.dev", "default", "hello-world")
    assert rev is not None and rev["spec"]["containers"][0]["env"][0]["value"] == "World"
    assert ksvc is not None and ksvc["status"]["traffic"][0]["revisionName"] == "hello-world"
    put_manifest(cluster, NAMED)  # back to the template the revision has: fine again
    await cluster.wait_for("ksvc", "default", "hello", is_ready)


async def test_the_settings_apply_to_new_revisions(
    cluster: FakeKubeAPI, controller: KubeController
) -> None:
    cluster.put(
        config_map(
            "config-defaults", {"container-concurrency": "10", "revision-timeout-seconds": "120"}
        )
    )
    cluster.put(
        config_map("config-autoscaler", {"initial-scale": "0", "allow-zero-initial-scale": "true"})
    )
    await settled(controller)
    put_manifest(cluster, HELLOWORLD_GO)
    deployment = await deployed(cluster, REV)
    rev = cluster.get("revisions.serving.knative.dev", "default", REV)
    assert rev is not None
    assert (rev["spec"]["containerConcurrency"], rev["spec"]["timeoutSeconds"]) == (10, 120)
    assert deployment["spec"]["replicas"] == 0
    pod = deployment["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 120
    assert {"name": "CONTAINER_CONCURRENCY", "value": "10"} in pod["containers"][1]["env"]
    # min-scale lifts the initial scale of a routed revision.
    put_manifest(
        cluster,
        HELLOWORLD_GO.replace(
            "  template:\n",
            "  template:\n    metadata:\n      annotations:\n"
            '        autoscaling.knative.dev/min-scale: "3"\n',
        ),
    )
    deployment = await deployed(cluster, "helloworld-go-00002")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["template"]["metadata"]["annotations"] == {
        "autoscaling.knative.dev/min-scale": "3",
        "traffic.sidecar.istio.io/excludeInboundPorts": "8022",
    }
