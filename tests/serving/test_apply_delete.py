"""apply's lines and all-or-nothing batches, delete's cascade, and ``version``."""

from __future__ import annotations

import pytest

from tests.api.manifests import (
    CONFIG_DOMAIN_EXAMPLE_COM,
    CONTAINER,
    HELLO_V1,
    HELLO_V2,
    doc,
    dump,
    edit,
    snapshot,
)
from zeroserve.api import ManifestErrors, load
from zeroserve.serving.controller import Controller
from zeroserve.serving.kinds import NotAllowed, NotFound, UnknownKind
from zeroserve.topology import RevisionKey

CONFIGURATION = {
    "apiVersion": "serving.knative.dev/v1",
    "kind": "Configuration",
    "metadata": {"name": "blue"},
    "spec": doc(HELLO_V1)["spec"],
}
ROUTE = {
    "apiVersion": "serving.knative.dev/v1",
    "kind": "Route",
    "metadata": {"name": "shop"},
    "spec": {"traffic": [{"configurationName": "blue", "percent": 100}]},
}


def test_apply_lines_are_kubectls() -> None:
    c = Controller(0.0)
    text = dump(doc(HELLO_V1), CONFIGURATION, ROUTE, doc(CONFIG_DOMAIN_EXAMPLE_COM))
    assert c.apply(load(text, "all.yaml"), now=1.0) == [
        "service.serving.knative.dev/hello created",
        "configuration.serving.knative.dev/blue created",
        "route.serving.knative.dev/shop created",
        "configmap/config-domain created",
    ]
    assert c.apply(load(text, "all.yaml"), now=2.0) == [
        "service.serving.knative.dev/hello unchanged",
        "configuration.serving.knative.dev/blue unchanged",
        "route.serving.knative.dev/shop unchanged",
        "configmap/config-domain unchanged",
    ]
    relabelled = edit(doc(HELLO_V1), ("metadata", "labels"), {"team": "a"})
    assert c.apply(load(dump(relabelled), "l.yaml"), now=3.0) == [
        "service.serving.knative.dev/hello configured"
    ]
    # Labels are metadata: no new generation, no new revision.
    [svc] = c.get("ksvc", "default", "hello")
    assert svc["metadata"]["generation"] == 1
    assert svc["metadata"]["labels"] == {"team": "a"}
    assert c.get("route", "default", "hello")[0]["metadata"]["labels"] == {
        "team": "a",
        "serving.knative.dev/service": "hello",
    }


def test_configmaps_in_a_batch_take_effect_for_the_rest_of_it() -> None:
    c = Controller(0.0)
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "config-defaults", "namespace": "knative-serving"},
        "data": {"container-concurrency-max-limit": "2000", "container-concurrency": "7"},
    }
    # The ConfigMap comes after the Service in the file, yet its limit already applies.
    svc = edit(doc(HELLO_V1), ("spec", "template", "spec", "containerConcurrency"), 1500)
    c.apply(load(dump(svc, cm), "f.yaml"), now=1.0)
    assert c.revisions()[RevisionKey("default", "hello-00001")].info.container_concurrency == 1500
    other = edit(doc(HELLO_V1), ("metadata", "name"), "other")
    c.apply(load(dump(other), "o.yaml"), now=2.0)
    assert c.revisions()[RevisionKey("default", "other-00001")].info.container_concurrency == 7
    assert c.config_data("config-defaults") == cm["data"]
    assert c.config_data("config-autoscaler") == {}


def test_version_moves_only_for_what_the_runtime_acts_on() -> None:
    c = Controller(0.0)
    v0 = c.version
    c.apply(load(HELLO_V1, "v1.yaml"), now=1.0)
    v1 = c.version
    assert v1 > v0  # a revision to run, and its route
    c.apply(load(HELLO_V1, "v1.yaml"), now=2.0)
    assert c.version == v1  # unchanged
    c.set_revision_state(
        RevisionKey("default", "hello-00001"), ready=None, actual_replicas=0, now=3.0
    )
    c.set_revision_state(RevisionKey("default", "hello-00001"), ready=True, now=4.0)
    assert c.version == v1  # status only: the route was already programmed (provisionally)
    c.set_revision_state(RevisionKey("default", "hello-00001"), ready=False, now=5.0)
    assert c.version == v1  # once ready, the route keeps its programming
    c.apply(
        load(
            dump(edit(doc(HELLO_V1), ("spec", "template", "spec", "containerConcurrency"), 5)),
            "v1.yaml",
        ),
        now=6.0,
    )
    assert c.version == v1 + 1  # a new revision
    autoscaler = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "config-autoscaler", "namespace": "knative-serving"},
        "data": {"stable-window": "30s"},
    }
    c.apply(load(dump(autoscaler), "a.yaml"), now=7.0)
    assert c.version == v1 + 2  # settings
    assert c.configs.autoscaler.stable_window == 30.0


def test_delete_service_cascades() -> None:
    c = Controller(0.0)
    c.apply(load(HELLO_V1, "v1.yaml"), now=1.0)
    c.set_revision_state(RevisionKey("default", "hello-00001"), ready=True, now=2.0)
    c.apply(load(HELLO_V2, "v2.yaml"), now=3.0)
    assert len(c.revisions()) == 2
    assert (
        c.delete("ksvc", "default", "hello", now=4.0)
        == 'service.serving.knative.dev "hello" deleted'
    )
    for kind in ("ksvc", "config", "rev", "route"):
        assert c.get(kind) == [], kind
    assert c.revisions() == {}
    assert c.routing_table() == []
    # Applying it again starts over at 00001.
    c.apply(load(HELLO_V1, "v1.yaml"), now=5.0)
    assert list(c.revisions()) == [RevisionKey("default", "hello-00001")]


def test_delete_standalone_configuration_unprograms_routes_to_it() -> None:
    c = Controller(0.0)
    c.apply(load(dump(CONFIGURATION, ROUTE), "s.yaml"), now=1.0)
    c.set_revision_state(RevisionKey("default", "blue-00001"), ready=True, now=2.0)
    assert len(c.routing_table()) == 1
    assert c.delete("configuration", "default", "blue", now=3.0) == (
        'configuration.serving.knative.dev "blue" deleted'
    )
    assert c.revisions() == {}
    # The route remains, not ready, and no longer sends traffic to revisions that are gone.
    assert c.routing_table() == []
    assert c.table("routes", "default")[1] == [
        ["shop", "http://shop.default.localhost", "False", "ConfigurationMissing"]
    ]
    assert c.delete("rt", "default", "shop") == 'route.serving.knative.dev "shop" deleted'


@pytest.mark.parametrize(
    ("kind", "namespace", "name", "error", "message"),
    [
        pytest.param(
            "ksvc",
            "default",
            "nope",
            NotFound,
            'services.serving.knative.dev "nope" not found in namespace default',
            id="missing",
        ),
        pytest.param(
            "route",
            "default",
            "hello",
            NotAllowed,
            'route "hello" is owned by Service default/hello; delete the Service',
            id="owned-route",
        ),
        pytest.param(
            "config",
            "default",
            "hello",
            NotAllowed,
            'configuration "hello" is owned by Service default/hello; delete the Service',
            id="owned-configuration",
        ),
        pytest.param(
            "rev",
            "default",
            "hello-00001",
            NotAllowed,
            "revisions are deleted with their Configuration (or Service)",
            id="revision",
        ),
        pytest.param(
            "cm",
            "default",
            "config-domain",
            NotFound,
            'configmaps "config-domain" not found in namespace default',
            id="configmap-namespace",
        ),
        pytest.param(
            "deployments",
            "default",
            "x",
            UnknownKind,
            'the server doesn\'t have a resource type "deployments" (known: services '
            "(ksvc/kservice/kservices), configurations (config/cfg), revisions (rev), routes (rt), "
            "domainmappings (dm), "
            "configmaps (cm), secrets)",
            id="unknown-kind",
        ),
    ],
)
def test_delete_refusals_change_nothing(
    kind: str, namespace: str, name: str, error: type[Exception], message: str
) -> None:
    c = Controller(0.0)
    c.apply(load(HELLO_V1, "v1.yaml"), now=1.0)
    before = snapshot(c)
    with pytest.raises(error) as info:
        c.delete(kind, namespace, name)
    assert str(info.value) == message
    assert snapshot(c) == before


def test_a_service_cannot_take_over_a_standalone_configuration() -> None:
    c = Controller(0.0)
    c.apply(load(dump(CONFIGURATION), "c.yaml"), now=1.0)
    before = snapshot(c)
    takeover = edit(doc(HELLO_V1), ("metadata", "name"), "blue")
    with pytest.raises(ManifestErrors) as info:
        c.apply(load(dump(takeover), "s.yaml"), now=2.0)
    assert str(info.value) == (
        "s.yaml: Service default/blue: metadata.name: Configuration default/blue already exists and is "
        "not owned by a Service of that name; delete it first"
    )
    assert snapshot(c) == before


def test_a_failed_apply_never_leaves_a_half_created_revision() -> None:
    c = Controller(0.0)
    named = edit(doc(HELLO_V1), ("spec", "template", "metadata", "name"), "hello-a")
    c.apply(load(dump(named), "a.yaml"), now=1.0)
    before = snapshot(c)
    # A good new Service first, then a template conflict: neither is applied.
    fresh = edit(doc(HELLO_V1), ("metadata", "name"), "fresh")
    conflict = edit(named, (*CONTAINER, "args"), ["--changed"])
    with pytest.raises(ManifestErrors):
        c.apply(load(dump(fresh, conflict), "b.yaml"), now=2.0)
    assert snapshot(c) == before
    assert c.get("ksvc", "default") == [c.get("ksvc", "default", "hello")[0]]


def test_apply_names_the_creator_and_the_last_modifier() -> None:
    """Knative's webhook sets serving.knative.dev/creator and lastModifier from the
    request's user; locally the user is the OS user running zeroserve (control API)."""
    c = Controller(0.0)
    text = dump(doc(HELLO_V1), CONFIGURATION, ROUTE)
    c.apply(load(text, "all.yaml"), now=1.0, user="alice")

    def who(kind: str, name: str) -> tuple[str, str]:
        [obj] = c.get(kind, "default", name)
        a = obj["metadata"]["annotations"]
        return a["serving.knative.dev/creator"], a["serving.knative.dev/lastModifier"]

    assert who("ksvc", "hello") == who("configuration", "blue") == ("alice", "alice")
    assert who("route", "shop") == ("alice", "alice")
    # the Service's children carry its annotations
    assert who("configuration", "hello") == ("alice", "alice")
    # the same manifest from someone else changes nothing
    assert c.apply(load(text, "all.yaml"), now=2.0, user="bob")[0].endswith("unchanged")
    assert who("ksvc", "hello") == ("alice", "alice")
    # a metadata-only change keeps the last modifier; a spec change names the new one
    relabelled = edit(doc(HELLO_V1), ("metadata", "labels"), {"team": "a"})
    c.apply(load(dump(relabelled), "l.yaml"), now=3.0, user="bob")
    assert who("ksvc", "hello") == ("alice", "alice")
    changed = edit(
        doc(HELLO_V2), ("metadata", "annotations"), {"serving.knative.dev/creator": "eve"}
    )
    c.apply(load(dump(changed), "v2.yaml"), now=4.0, user="bob")
    assert who("ksvc", "hello") == ("alice", "bob")  # the creator cannot be rewritten
