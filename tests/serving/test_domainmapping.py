"""DomainMapping locally: status and conditions as Knative's reconciler leaves them
(knative/serving ``pkg/reconciler/domainmapping``), claims across namespaces, the
reference resolved (or not), and the routing table entries."""

from __future__ import annotations

import pytest

from tests.api.manifests import HELLO_V1
from zeroserve.api import ManifestErrors, load
from zeroserve.api.objects import ObjectRef
from zeroserve.serving import domainmapping
from zeroserve.serving.controller import Controller
from zeroserve.topology import RevisionKey, Route, Target


def dm(
    domain: str = "shop.example.org",
    namespace: str = "default",
    name: str = "hello",
    kind: str = "Service",
    api_version: str = "serving.knative.dev/v1",
) -> str:
    return f"""\
apiVersion: serving.knative.dev/v1beta1
kind: DomainMapping
metadata:
  name: {domain}
  namespace: {namespace}
spec:
  ref:
    name: {name}
    kind: {kind}
    apiVersion: {api_version}
"""


def hello(namespace: str = "default") -> str:
    return HELLO_V1.replace("  name: hello\n", f"  name: hello\n  namespace: {namespace}\n", 1)


def conditions(c: Controller, domain: str = "shop.example.org", ns: str = "default") -> dict:
    [obj] = c.get("domainmapping", ns, domain)
    return {
        k["type"]: (k["status"], k.get("reason", ""), k.get("message", ""))
        for k in obj["status"]["conditions"]
    }


READY_CONDITIONS = {
    "CertificateProvisioned": ("True", "TLSNotEnabled", "external-domain-tls is not enabled"),
    "DomainClaimed": ("True", "", ""),
    "IngressReady": ("True", "", ""),
    "ReferenceResolved": ("True", "", ""),
    "Ready": ("True", "", ""),
}


def ready_hello(c: Controller, namespace: str = "default", now: float = 2.0) -> None:
    assert c.set_revision_state(RevisionKey(namespace, "hello-00001"), ready=True, now=now)


def test_a_mapping_of_a_service_is_ready_with_its_url_and_routes() -> None:
    c = Controller(0.0)
    lines = c.apply(load(hello() + "---\n" + dm(), "f.yaml"), now=1.0)
    assert lines[1] == "domainmapping.serving.knative.dev/shop.example.org created"
    ready_hello(c)
    [obj] = c.get("dm", "default", "shop.example.org")
    assert obj["apiVersion"] == "serving.knative.dev/v1beta1"
    assert obj["kind"] == "DomainMapping"
    assert obj["metadata"]["generation"] == 1
    # Knative's defaulting fills the ref's namespace.
    assert obj["spec"] == {
        "ref": {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "name": "hello",
            "namespace": "default",
        }
    }
    assert obj["status"]["url"] == "http://shop.example.org"
    assert obj["status"]["address"] == {"url": "http://shop.example.org"}
    assert conditions(c) == READY_CONDITIONS
    assert c.table("domainmappings") == (
        ["NAME", "URL", "READY", "REASON"],
        [["shop.example.org", "http://shop.example.org", "True", ""]],
    )
    entry = Route(
        namespace="default",
        name="shop.example.org",
        hosts=("shop.example.org",),
        targets=(Target(RevisionKey("default", "hello-00001"), 100),),
    )
    assert c.routing_table()[-1] == entry
    assert entry.local_hosts == () and entry.tags == {}
    assert c.apply(load(dm(), "f.yaml"), now=3.0) == [
        "domainmapping.serving.knative.dev/shop.example.org unchanged"
    ]


def test_the_mapping_follows_the_targets_default_split() -> None:
    split = """\
apiVersion: serving.knative.dev/v1
kind: Route
metadata: {name: split}
spec:
  traffic:
    - {revisionName: hello-00001, percent: 100}
    - {revisionName: hello-00001, percent: 0, tag: old}
"""
    c = Controller(0.0)
    c.apply(load(hello() + "---\n" + split + "---\n" + dm(name="split", kind="Route"), "f"), now=1)
    ready_hello(c)
    [entry] = [r for r in c.routing_table() if r.name == "shop.example.org"]
    [route] = [r for r in c.routing_table() if r.name == "split"]
    assert entry.targets == route.targets and entry.hosts == ("shop.example.org",)
    assert entry.tags == {}
    assert conditions(c)["Ready"] == ("True", "", "")


def test_the_url_takes_the_default_external_scheme() -> None:
    network = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: config-network, namespace: knative-serving}
data: {default-external-scheme: https}
"""
    c = Controller(0.0)
    c.apply(load(network + "---\n" + hello() + "---\n" + dm(), "f.yaml"), now=1.0)
    [obj] = c.get("dm", "default", "shop.example.org")
    assert obj["status"]["url"] == "https://shop.example.org"


def test_a_missing_reference_then_created() -> None:
    c = Controller(0.0)
    c.apply(load(dm(), "f.yaml"), now=1.0)
    assert conditions(c) == {
        "CertificateProvisioned": READY_CONDITIONS["CertificateProvisioned"],
        "DomainClaimed": ("True", "", ""),
        "IngressReady": ("Unknown", "IngressNotConfigured", "Ingress has not yet been reconciled."),
        "ReferenceResolved": (
            "False",
            "ResolveFailed",
            'failed to get object default/hello: services.serving.knative.dev "hello" not found',
        ),
        "Ready": (
            "False",
            "ResolveFailed",
            'failed to get object default/hello: services.serving.knative.dev "hello" not found',
        ),
    }
    assert c.table("dm")[1] == [
        ["shop.example.org", "http://shop.example.org", "False", "ResolveFailed"]
    ]
    assert [r.name for r in c.routing_table()] == []
    c.apply(load(hello(), "f.yaml"), now=2.0)
    ready_hello(c, now=3.0)
    assert conditions(c) == READY_CONDITIONS
    assert c.routing_table()[-1].hosts == ("shop.example.org",)
    # The Service goes: the mapping no longer resolves and leaves the routing table.
    c.delete("ksvc", "default", "hello", now=4.0)
    assert conditions(c)["Ready"][:2] == ("False", "ResolveFailed")
    assert c.routing_table() == []


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (
            ObjectRef("serving.knative.dev/v1", "Route", "nope"),
            'failed to get object default/nope: routes.serving.knative.dev "nope" not found',
        ),
        (
            ObjectRef("v1", "Service", "nope"),
            'failed to get object default/nope: services "nope" not found',
        ),
        (
            ObjectRef("serving.knative.dev/v1", "Configuration", "hello"),
            "address not set for Configuration default/hello (serving.knative.dev/v1)",
        ),
        (
            ObjectRef("v1", "ConfigMap", "nope"),
            'failed to get object default/nope: configmaps "nope" not found',
        ),
        (
            ObjectRef("example.com/v1", "Widget", "hello"),
            "failed to get lister for example.com/v1, Resource=widgets: zeroserve resolves "
            "Knative Services and Routes (serving.knative.dev/v1) and the Kubernetes Service "
            "(v1) of a Route",
        ),
    ],
)
def test_references_that_do_not_resolve(ref: ObjectRef, message: str) -> None:
    c = Controller(0.0)
    c.apply(load(hello(), "f.yaml"), now=1.0)
    state = c._state  # the pure function over the controller's state
    assert domainmapping.resolve(state, "default", ref) == (None, message)


@pytest.mark.parametrize(
    "ref",
    [
        ObjectRef("serving.knative.dev/v1", "Service", "hello"),
        ObjectRef("serving.knative.dev/v1", "Route", "hello"),
        ObjectRef("v1", "Service", "hello"),  # the Route's Kubernetes Service
    ],
)
def test_references_that_resolve(ref: ObjectRef) -> None:
    c = Controller(0.0)
    c.apply(load(hello(), "f.yaml"), now=1.0)
    assert domainmapping.resolve(c._state, "default", ref) == (("default", "hello"), "")


def test_another_kind_is_not_resolved_through_the_controller() -> None:
    c = Controller(0.0)
    c.apply(load(hello() + "---\n" + dm(kind="Configuration"), "f.yaml"), now=1.0)
    ready_hello(c)
    status, reason, message = conditions(c)["ReferenceResolved"]
    assert (status, reason) == ("False", "ResolveFailed")
    assert message.startswith("address not set for Configuration default/hello")
    assert all(r.name != "shop.example.org" for r in c.routing_table())


def test_the_first_namespace_claims_the_domain_and_delete_releases_it() -> None:
    c = Controller(0.0)
    c.apply(load(hello("default") + "---\n" + dm(namespace="default"), "a.yaml"), now=1.0)
    c.apply(load(hello("other") + "---\n" + dm(namespace="other"), "b.yaml"), now=2.0)
    ready_hello(c, "default", now=3.0)
    ready_hello(c, "other", now=3.0)
    assert conditions(c, ns="default") == READY_CONDITIONS
    claimed = (
        "False",
        "DomainAlreadyClaimed",
        "The domain name is already in use by another DomainMapping",
    )
    assert conditions(c, ns="other") == {
        "CertificateProvisioned": ("Unknown", "", ""),
        "DomainClaimed": claimed,
        "IngressReady": ("Unknown", "IngressNotConfigured", "Ingress has not yet been reconciled."),
        "ReferenceResolved": ("Unknown", "", ""),
        "Ready": claimed,
    }
    headers, rows = c.table("dm")
    assert headers == ["NAMESPACE", "NAME", "URL", "READY", "REASON"]
    assert rows == [
        ["default", "shop.example.org", "http://shop.example.org", "True", ""],
        ["other", "shop.example.org", "http://shop.example.org", "False", "DomainAlreadyClaimed"],
    ]
    mapped = [r for r in c.routing_table() if r.name == "shop.example.org"]
    assert [(r.namespace, r.targets[0].revision) for r in mapped] == [
        ("default", RevisionKey("default", "hello-00001"))
    ]
    # Re-applying the losing mapping changes nothing; deleting the winner hands the
    # domain over.
    c.apply(load(dm(namespace="other"), "b.yaml"), now=4.0)
    assert conditions(c, ns="other")["Ready"] == claimed
    assert c.delete("domainmapping", "default", "shop.example.org", now=5.0) == (
        'domainmapping.serving.knative.dev "shop.example.org" deleted'
    )
    assert conditions(c, ns="other") == READY_CONDITIONS
    mapped = [r for r in c.routing_table() if r.name == "shop.example.org"]
    assert [r.namespace for r in mapped] == ["other"]
    # The first namespace now loses if it maps the domain again.
    c.apply(load(dm(namespace="default"), "a.yaml"), now=6.0)
    assert conditions(c, ns="default")["Ready"] == claimed


def test_a_changed_ref_counts_a_generation_and_delete_errors() -> None:
    c = Controller(0.0)
    c.apply(load(hello() + "---\n" + dm(), "f.yaml"), now=1.0)
    assert c.apply(load(dm(name="hello", kind="Route"), "f.yaml"), now=2.0) == [
        "domainmapping.serving.knative.dev/shop.example.org configured"
    ]
    [obj] = c.get("dm", "default", "shop.example.org")
    assert obj["metadata"]["generation"] == 2
    assert obj["status"]["observedGeneration"] == 2
    with pytest.raises(
        LookupError, match=r'domainmappings\.serving\.knative\.dev "x\.org" not found'
    ):
        c.delete("dm", "default", "x.org")


def test_an_invalid_mapping_is_refused_whole() -> None:
    c = Controller(0.0)
    with pytest.raises(ManifestErrors, match=r"metadata\.name"):
        c.apply(load(hello() + "---\n" + dm(domain="shop"), "f.yaml"), now=1.0)
    assert c.get("dm") == [] and c.get("ksvc") == []


def test_the_mapping_moves_with_a_gradual_rollout() -> None:
    rollout = hello().replace(
        "  name: hello\n",
        "  name: hello\n  annotations:\n    serving.knative.dev/rollout-duration: 100s\n",
        1,
    )
    c = Controller(0.0)
    c.apply(load(rollout + "---\n" + dm(), "f.yaml"), now=1.0)
    ready_hello(c)
    c.apply(load(rollout.replace('value: "World"', 'value: "v2"'), "f.yaml"), now=10.0)
    assert c.set_revision_state(RevisionKey("default", "hello-00002"), ready=True, now=20.0)
    [route, mapped] = c.routing_table()
    assert len(route.targets) == 2 and mapped.targets == route.targets
