"""Service -> Configuration -> Revisions -> Route, with the Knative docs' manifests:
helloworld-go, the v1/v2 traffic split with tags, autoscaling annotations."""

from __future__ import annotations

import pytest

from tests.api.manifests import (
    AUTOSCALED,
    CONTAINER,
    HELLO_V1,
    HELLO_V2,
    HELLOWORLD_GO,
    doc,
    dump,
    edit,
)
from zeroserve.api import ManifestErrors, load
from zeroserve.serving.controller import Controller
from zeroserve.serving.revisions import DesiredRevision, RunnableContainer
from zeroserve.topology import RevisionInfo, RevisionKey, Route, TagRoute, Target


def key(name: str, namespace: str = "default") -> RevisionKey:
    return RevisionKey(namespace, name)


def ready(c: Controller, name: str, now: float, namespace: str = "default") -> None:
    assert c.set_revision_state(key(name, namespace), ready=True, now=now)


def test_helloworld_go_gets_a_revision_a_url_and_a_route() -> None:
    c = Controller(0.0)
    assert c.apply(load(HELLOWORLD_GO, "helloworld.yaml"), now=1.0) == [
        "service.serving.knative.dev/helloworld-go created"
    ]
    assert c.revisions() == {
        key("helloworld-go-00001"): DesiredRevision(
            info=RevisionInfo(
                key=key("helloworld-go-00001"),
                container_concurrency=0,
                annotations={},
                reachable=True,
                service="helloworld-go",
                configuration="helloworld-go",
                timeout_seconds=300.0,
            ),
            container=RunnableContainer(
                name="user-container",
                image="ghcr.io/knative/helloworld-go:latest",
                command=("python", "examples/helloworld/app.py"),
                args=(),
                env=(("TARGET", "Go Sample v1"),),
                port=8080,
                h2c=False,
                readiness_probe=None,
                liveness_probe=None,
                working_dir="",
            ),
            template=load(HELLOWORLD_GO, "helloworld.yaml")[0].template,  # type: ignore[union-attr]
        )
    }
    [svc] = c.get("ksvc")
    assert svc["status"]["url"] == "http://helloworld-go.default.localhost"
    routed = [
        Route(
            namespace="default",
            name="helloworld-go",
            hosts=("helloworld-go.default.localhost",),
            targets=(Target(key("helloworld-go-00001"), 100),),
            tags={},
            local_hosts=("helloworld-go.default.svc.cluster.local", "helloworld-go.default.svc"),
        )
    ]
    # Routed at once, so the activator holds the first request while the revision starts
    # (zeroserve's provisional programming); the status shows no traffic until it is ready.
    assert c.routing_table() == routed
    assert "traffic" not in svc["status"]
    ready(c, "helloworld-go-00001", 2.0)
    assert c.routing_table() == routed
    assert c.get("ksvc")[0]["status"]["traffic"] == [
        {"revisionName": "helloworld-go-00001", "latestRevision": True, "percent": 100}
    ]


def test_provisional_programming_only_before_the_first_ready_revision() -> None:
    c = Controller(0.0)
    c.apply(load(HELLO_V1, "v1.yaml"), now=1.0)
    assert c.routing_table()[0].targets == (Target(key("hello-00001"), 100),)
    # A failed first revision is not worth holding requests for: no route, a quick 404.
    c.set_revision_state(key("hello-00001"), ready=False, message="exited", now=2.0)
    assert c.routing_table() == []
    # A fixed template gets its own provisional programming again.
    fixed = edit(doc(HELLO_V1), (*CONTAINER, "args"), ["--fixed"])
    c.apply(load(dump(fixed), "v1.yaml"), now=3.0)
    assert c.routing_table()[0].targets == (Target(key("hello-00002"), 100),)
    ready(c, "hello-00002", 4.0)
    # Once a revision was ready, a new unready one never takes traffic provisionally.
    c.apply(load(dump(edit(fixed, (*CONTAINER, "args"), ["--v3"])), "v3.yaml"), now=5.0)
    assert c.routing_table()[0].targets == (Target(key("hello-00002"), 100),)
    assert c.get("ksvc")[0]["status"]["latestCreatedRevisionName"] == "hello-00003"


def split() -> Controller:
    """The traffic-splitting tutorial up to v2 applied: v1 ready, v2 created."""
    c = Controller(0.0)
    c.apply(load(HELLO_V1, "v1.yaml"), now=1.0)
    ready(c, "hello-00001", 2.0)
    assert c.apply(load(HELLO_V2, "v2.yaml"), now=3.0) == [
        "service.serving.knative.dev/hello configured"
    ]
    return c


def test_v2_does_not_take_traffic_before_it_is_ready() -> None:
    c = split()
    v1 = key("hello-00001")
    [route] = c.routing_table()
    # latestRevision follows the latest READY revision: still v1, for the 80 % and the tag.
    assert route.targets == (Target(v1, 100),)
    assert {tag: t.revision for tag, t in route.tags.items()} == {"current": v1, "latest": v1}
    [svc] = c.get("ksvc", "default", "hello")
    assert (
        svc["status"]["latestCreatedRevisionName"],
        svc["status"]["latestReadyRevisionName"],
    ) == ("hello-00002", "hello-00001")


def test_v2_ready_splits_20_80_with_tag_hosts() -> None:
    c = split()
    ready(c, "hello-00002", 4.0)
    assert c.routing_table() == [
        Route(
            namespace="default",
            name="hello",
            hosts=("hello.default.localhost",),
            targets=(Target(key("hello-00002"), 80), Target(key("hello-00001"), 20)),
            local_hosts=("hello.default.svc.cluster.local", "hello.default.svc"),
            tags={
                "current": TagRoute(
                    ("current-hello.default.localhost",),
                    ("current-hello.default.svc.cluster.local", "current-hello.default.svc"),
                    key("hello-00001"),
                ),
                "latest": TagRoute(
                    ("latest-hello.default.localhost",),
                    ("latest-hello.default.svc.cluster.local", "latest-hello.default.svc"),
                    key("hello-00002"),
                ),
            },
        )
    ]
    [svc] = c.get("ksvc", "default", "hello")
    assert svc["status"]["traffic"] == [
        {"revisionName": "hello-00002", "latestRevision": True, "percent": 80},
        {
            "tag": "current",
            "revisionName": "hello-00001",
            "latestRevision": False,
            "percent": 20,
            "url": "http://current-hello.default.localhost",
        },
        {
            "tag": "latest",
            "revisionName": "hello-00002",
            "latestRevision": True,
            "percent": 0,
            "url": "http://latest-hello.default.localhost",
        },
    ]


def test_latest_ready_never_goes_to_a_created_but_unready_revision() -> None:
    c = split()
    ready(c, "hello-00002", 4.0)
    v3 = edit(doc(HELLO_V2), (*CONTAINER, "env", 0, "value"), "v3")
    c.apply(load(dump(v3), "v3.yaml"), now=5.0)
    assert c.set_revision_state(
        key("hello-00003"), ready=False, reason="ExitCode1", message="exited with code 1", now=6.0
    )
    [route] = c.routing_table()
    assert route.targets == (Target(key("hello-00002"), 80), Target(key("hello-00001"), 20))
    [cfg] = c.get("config")
    assert (
        cfg["status"]["latestCreatedRevisionName"],
        cfg["status"]["latestReadyRevisionName"],
    ) == ("hello-00003", "hello-00002")


def test_an_older_revision_becoming_ready_late_still_moves_latest_ready_forward() -> None:
    c = split()
    v3 = edit(doc(HELLO_V2), (*CONTAINER, "env", 0, "value"), "v3")
    c.apply(load(dump(v3), "v3.yaml"), now=5.0)
    ready(c, "hello-00002", 6.0)  # v2 is newer than v1, though not the latest created
    assert c.get("config")[0]["status"]["latestReadyRevisionName"] == "hello-00002"
    ready(c, "hello-00003", 7.0)
    assert c.get("config")[0]["status"]["latestReadyRevisionName"] == "hello-00003"


def test_traffic_only_change_makes_no_revision_but_a_new_generation() -> None:
    c = split()
    ready(c, "hello-00002", 4.0)
    pinned = edit(
        doc(HELLO_V2), ("spec", "traffic"), [{"revisionName": "hello-00001", "percent": 100}]
    )
    c.apply(load(dump(pinned), "p.yaml"), now=5.0)
    assert sorted(c.revisions()) == [key("hello-00001"), key("hello-00002")]
    [svc] = c.get("ksvc")
    assert svc["metadata"]["generation"] == 3
    assert c.get("config")[0]["metadata"]["generation"] == 2
    assert c.routing_table()[0].targets == (Target(key("hello-00001"), 100),)
    # Pinned out of the route, v2 is no longer reachable (its min-scale stops counting).
    assert c.revisions()[key("hello-00002")].info.reachable is False
    assert (
        c.get("rev", "default", "hello-00002")[0]["metadata"]["labels"][
            "serving.knative.dev/routingState"
        ]
        == "reserve"
    )


def test_given_template_names_and_immutability() -> None:
    c = Controller(0.0)
    named = edit(doc(HELLO_V1), ("spec", "template", "metadata", "name"), "hello-world")
    c.apply(load(dump(named), "n.yaml"), now=1.0)
    assert list(c.revisions()) == [key("hello-world")]
    # Same name, different template: a revision cannot change.
    changed = edit(named, (*CONTAINER, "env", 0, "value"), "Knative")
    with pytest.raises(ManifestErrors) as info:
        c.apply(load(dump(changed), "n.yaml"), now=2.0)
    assert str(info.value) == (
        "n.yaml: Service default/hello: spec.template.metadata.name: 'hello-world' already names a "
        "revision with a different template; a revision cannot change, so give the changed "
        "template a new name"
    )
    # A new name makes a new revision; going back to the first template reuses its revision.
    renamed = edit(changed, ("spec", "template", "metadata", "name"), "hello-world-2")
    c.apply(load(dump(renamed), "n.yaml"), now=3.0)
    c.apply(load(dump(named), "n.yaml"), now=4.0)
    assert list(c.revisions()) == [key("hello-world"), key("hello-world-2")]
    cfg = c.get("config")[0]
    assert (cfg["metadata"]["generation"], cfg["status"]["latestCreatedRevisionName"]) == (
        3,
        "hello-world",
    )


def test_revision_spec_is_defaulted_at_creation_and_kept() -> None:
    c = Controller(0.0)
    defaults = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "config-defaults", "namespace": "knative-serving"},
        "data": {
            "container-concurrency": "10",
            "revision-timeout-seconds": "120",
            "revision-idle-timeout-seconds": "30",
        },
    }
    c.apply(load(dump(defaults, doc(HELLO_V1)), "d.yaml"), now=1.0)
    info = c.revisions()[key("hello-00001")].info
    assert (
        info.container_concurrency,
        info.timeout_seconds,
        info.idle_timeout_seconds,
        info.response_start_timeout_seconds,
    ) == (10, 120.0, 30.0, 0.0)
    [rev] = c.get("rev")
    assert {
        k: rev["spec"][k] for k in ("containerConcurrency", "timeoutSeconds", "idleTimeoutSeconds")
    } == {"containerConcurrency": 10, "timeoutSeconds": 120, "idleTimeoutSeconds": 30}
    # Changing the defaults later does not touch the existing revision (no new one either).
    c.apply(load(dump(edit(defaults, ("data",), {})), "d.yaml"), now=2.0)
    assert c.revisions()[key("hello-00001")].info.container_concurrency == 10
    assert list(c.revisions()) == [key("hello-00001")]


@pytest.mark.parametrize(
    ("given", "default", "expected"),
    [
        pytest.param(None, 0, 0.0, id="default-off"),
        pytest.param(None, 60, 60.0, id="default-shorter-than-timeout"),
        pytest.param(None, 300, 0.0, id="default-not-shorter-than-timeout"),
        pytest.param(500, 60, 500.0, id="given-wins"),
    ],
)
def test_idle_timeout_defaulting(given: int | None, default: int, expected: float) -> None:
    c = Controller(0.0)
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "config-defaults", "namespace": "knative-serving"},
        "data": {"revision-idle-timeout-seconds": str(default)},
    }
    svc = (
        doc(HELLO_V1)
        if given is None
        else edit(doc(HELLO_V1), ("spec", "template", "spec", "idleTimeoutSeconds"), given)
    )
    c.apply(load(dump(cm, svc), "t.yaml"), now=1.0)
    assert c.revisions()[key("hello-00001")].info.idle_timeout_seconds == expected


def test_autoscaling_annotations_reach_the_data_plane() -> None:
    c = Controller(0.0)
    c.apply(load(AUTOSCALED, "a.yaml"), now=1.0)
    info = c.revisions()[key("autoscale-go-00001")].info
    assert info.annotations == {
        "autoscaling.knative.dev/target": "10",
        "autoscaling.knative.dev/min-scale": "1",
        "autoscaling.knative.dev/max-scale": "5",
    }
    assert info.reachable  # pending: the route will follow it once it is ready


def test_probe_ports_are_left_to_the_runtime() -> None:
    probed = edit(
        doc(HELLO_V1),
        (*CONTAINER, "readinessProbe"),
        {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1},
    )
    c = Controller(0.0)
    c.apply(load(dump(probed), "p.yaml"), now=1.0)
    assert c.revisions()[key("hello-00001")].container.readiness_probe == {
        "periodSeconds": 1,
        "httpGet": {"path": "/healthz"},
    }


def test_standalone_configuration_and_route() -> None:
    c = Controller(0.0)
    cfg = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Configuration",
        "metadata": {"name": "blue"},
        "spec": doc(HELLO_V1)["spec"],
    }
    route = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Route",
        "metadata": {"name": "shop"},
        "spec": {"traffic": [{"configurationName": "blue", "percent": 100, "tag": "main"}]},
    }
    assert c.apply(load(dump(cfg, route), "s.yaml"), now=1.0) == [
        "configuration.serving.knative.dev/blue created",
        "route.serving.knative.dev/shop created",
    ]
    assert c.table("route", "default")[1] == [
        ["shop", "http://shop.default.localhost", "Unknown", "RevisionMissing"]
    ]
    ready(c, "blue-00001", 2.0)
    [table] = c.routing_table()
    assert (table.name, table.hosts[0], table.targets) == (
        "shop",
        "shop.default.localhost",
        (Target(key("blue-00001"), 100),),
    )
    assert table.tags["main"].hosts[0] == "main-shop.default.localhost"
    assert c.revisions()[key("blue-00001")].info.service == ""
