"""What the CLI shows: Kubernetes-shaped objects, kubectl's kind names and columns,
and the Service tree."""

from __future__ import annotations

import pytest

from tests.api.manifests import HELLO_V1, HELLO_V2, dump
from zeroserve.api import load
from zeroserve.serving.controller import Controller
from zeroserve.serving.kinds import NotFound
from zeroserve.topology import RevisionKey


@pytest.fixture
def c() -> Controller:
    """The traffic-splitting tutorial: v1 and v2 ready, v1 scaled to one replica."""
    c = Controller(0.0)
    c.apply(load(HELLO_V1, "v1.yaml"), now=1.0)
    c.set_revision_state(
        RevisionKey("default", "hello-00001"),
        ready=True,
        actual_replicas=1,
        desired_replicas=1,
        now=2.0,
    )
    c.apply(load(HELLO_V2, "v2.yaml"), now=3.0)
    c.set_revision_state(
        RevisionKey("default", "hello-00002"),
        ready=True,
        actual_replicas=0,
        desired_replicas=0,
        now=4.0,
    )
    return c


@pytest.mark.parametrize(
    ("alias", "kind"),
    [
        *[
            pytest.param(a, "Service", id=a)
            for a in (
                "ksvc",
                "kservice",
                "service",
                "services",
                "Service",
                "services.serving.knative.dev",
            )
        ],
        *[
            pytest.param(a, "Configuration", id=a)
            for a in ("config", "cfg", "configuration", "configurations")
        ],
        *[pytest.param(a, "Revision", id=a) for a in ("rev", "revision", "revisions")],
        *[pytest.param(a, "Route", id=a) for a in ("route", "routes", "rt")],
    ],
)
def test_kubectl_kind_names(c: Controller, alias: str, kind: str) -> None:
    assert {o["kind"] for o in c.get(alias)} == {kind}


def test_service_object(c: Controller) -> None:
    [svc] = c.get("ksvc", "default", "hello")
    assert svc["apiVersion"] == "serving.knative.dev/v1"
    assert svc["metadata"] == {
        "name": "hello",
        "namespace": "default",
        "generation": 2,
        "creationTimestamp": "1970-01-01T00:00:01Z",
    }
    assert svc["spec"]["traffic"] == [
        {"latestRevision": True, "percent": 80},
        {"tag": "current", "revisionName": "hello-00001", "latestRevision": False, "percent": 20},
        {"tag": "latest", "latestRevision": True},
    ]
    assert svc["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": "TARGET", "value": "Knative"}
    ]
    status = svc["status"]
    assert {
        k: status[k]
        for k in (
            "observedGeneration",
            "url",
            "address",
            "latestCreatedRevisionName",
            "latestReadyRevisionName",
        )
    } == {
        "observedGeneration": 2,
        "url": "http://hello.default.localhost",
        "address": {"url": "http://hello.default.svc.cluster.local"},
        "latestCreatedRevisionName": "hello-00002",
        "latestReadyRevisionName": "hello-00002",
    }
    assert [x["type"] for x in status["conditions"]] == [
        "ConfigurationsReady",
        "Ready",
        "RoutesReady",
    ]


def test_children_carry_knatives_labels_and_owners(c: Controller) -> None:
    [cfg] = c.get("config", "default", "hello")
    assert cfg["metadata"]["labels"] == {"serving.knative.dev/service": "hello"}
    assert cfg["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "name": "hello",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    [rev] = c.get("rev", "default", "hello-00001")
    assert rev["metadata"]["labels"] == {
        "serving.knative.dev/configuration": "hello",
        "serving.knative.dev/configurationGeneration": "1",
        "serving.knative.dev/routingState": "active",
        "serving.knative.dev/service": "hello",
    }
    assert rev["metadata"]["ownerReferences"][0]["kind"] == "Configuration"
    assert rev["spec"]["containerConcurrency"] == 0
    assert rev["spec"]["timeoutSeconds"] == 300
    assert rev["spec"]["containers"][0]["name"] == "user-container"
    [route] = c.get("route", "default", "hello")
    assert route["spec"]["traffic"][0] == {
        "configurationName": "hello",
        "latestRevision": True,
        "percent": 80,
    }


def test_tables_have_kubectls_columns(c: Controller) -> None:
    assert c.table("ksvc", "default") == (
        ["NAME", "URL", "LATESTCREATED", "LATESTREADY", "READY", "REASON"],
        [["hello", "http://hello.default.localhost", "hello-00002", "hello-00002", "True", ""]],
    )
    assert c.table("configurations", "default") == (
        ["NAME", "LATESTCREATED", "LATESTREADY", "READY", "REASON"],
        [["hello", "hello-00002", "hello-00002", "True", ""]],
    )
    assert c.table("revisions", "default") == (
        [
            "NAME",
            "CONFIG NAME",
            "GENERATION",
            "READY",
            "REASON",
            "ACTUAL REPLICAS",
            "DESIRED REPLICAS",
        ],
        [
            ["hello-00001", "hello", "1", "True", "", "1", "1"],
            ["hello-00002", "hello", "2", "True", "", "0", "0"],
        ],
    )
    assert c.table("routes", "default") == (
        ["NAME", "URL", "READY", "REASON"],
        [["hello", "http://hello.default.localhost", "True", ""]],
    )


def test_namespace_column_when_rows_span_namespaces(c: Controller) -> None:
    assert c.table("ksvc")[0][0] == "NAME"
    assert c.table("ksvc", all_namespaces=True)[0][:2] == ["NAMESPACE", "NAME"]
    other = HELLO_V1.replace("name: hello\n", "name: hello\n  namespace: prod\n")
    c.apply(load(other, "p.yaml"), now=5.0)
    headers, rows = c.table("ksvc")
    assert headers[:2] == ["NAMESPACE", "NAME"]
    assert [r[:2] for r in rows] == [["default", "hello"], ["prod", "hello"]]
    assert c.table("ksvc", "prod")[1] == [
        ["hello", "http://hello.prod.localhost", "hello-00001", "", "Unknown", "RevisionMissing"]
    ]


def test_configmaps_are_listed_with_their_data(c: Controller) -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "config-domain", "namespace": "knative-serving"},
        "data": {"example.com": ""},
    }
    c.apply(load(dump(cm), "d.yaml"), now=5.0)
    metadata = {**cm["metadata"], "creationTimestamp": "1970-01-01T00:00:05Z"}
    assert c.get("cm", name="config-domain") == [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": cm["data"]}
    ]
    assert c.table("configmaps", "knative-serving", now=65.0) == (
        ["NAME", "DATA", "AGE"],
        [["config-domain", "1", "60s"]],
    )


def test_get_by_name_that_does_not_exist(c: Controller) -> None:
    with pytest.raises(NotFound) as info:
        c.get("rev", name="hello-00009")
    assert (
        str(info.value)
        == 'revisions.serving.knative.dev "hello-00009" not found in namespace default'
    )
    assert c.get("ksvc", "prod") == []


def test_tree(c: Controller) -> None:
    tree = c.tree("default", "hello")
    assert tree["service"] == {
        "name": "hello",
        "namespace": "default",
        "url": "http://hello.default.localhost",
        "ready": "True",
        "reason": "",
    }
    assert tree["configuration"] == {
        "name": "hello",
        "latestCreatedRevisionName": "hello-00002",
        "latestReadyRevisionName": "hello-00002",
        "ready": "True",
        "reason": "",
    }
    assert tree["revisions"] == [
        {
            "namespace": "default",
            "name": "hello-00002",
            "generation": 2,
            "ready": "True",
            "reason": "",
            "percent": 80,
            "tags": ["latest"],
            "routingState": "active",
            "actualReplicas": 0,
            "desiredReplicas": 0,
        },
        {
            "namespace": "default",
            "name": "hello-00001",
            "generation": 1,
            "ready": "True",
            "reason": "",
            "percent": 20,
            "tags": ["current"],
            "routingState": "active",
            "actualReplicas": 1,
            "desiredReplicas": 1,
        },
    ]
    assert tree["route"]["url"] == "http://hello.default.localhost"
    assert [t["revisionName"] for t in tree["route"]["traffic"]] == [
        "hello-00002",
        "hello-00001",
        "hello-00002",
    ]
    with pytest.raises(NotFound):
        c.tree("default", "nope")


def test_views_are_copies(c: Controller) -> None:
    [svc] = c.get("ksvc")
    svc["spec"]["template"]["spec"]["containers"][0]["env"].clear()
    svc["status"]["traffic"].clear()
    [again] = c.get("ksvc")
    assert again["spec"]["template"]["spec"]["containers"][0]["env"] != []
    assert again["status"]["traffic"] != []
