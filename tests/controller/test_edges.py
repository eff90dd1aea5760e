"""The cluster's edges against the fake API server: which gateway serves which host
(cluster-local names never on the public gateway), Istio retries off, gateways named by
``config-istio``, tag-header routing, the revisions' NetworkPolicies, DomainMappings with
their ClusterDomainClaims, and the rollout/GC requeue."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from controller import planner
from controller.app import KubeController
from tests.fakes.kubeapi.fakeapi import FakeKubeAPI
from zeroserve.api.objects import Obj
from zeroserve.topology import RevisionKey

from .helpers import HELLO_V1, condition, config_map, endpoint_slice, is_ready, put_manifest

PUBLIC_GW = "knative-serving/knative-ingress-gateway"
LOCAL_GW = "knative-serving/knative-local-gateway"
VISIBILITY = "networking.knative.dev/visibility"

TAGGED = (
    HELLO_V1
    + """\
  traffic:
    - latestRevision: true
      percent: 100
    - revisionName: hello-00001
      tag: internal
    - revisionName: hello-00001
      tag: preview
"""
)


async def ready(api: FakeKubeAPI, revision: str, ns: str = "default") -> None:
    await api.wait_for("deployments", ns, f"{revision}-deployment", within=5)
    api.put(endpoint_slice(revision, (f"{revision}-pod", "10.0.0.9"), namespace=ns))
    await api.wait_for("revisions.serving.knative.dev", ns, revision, is_ready, within=5)


def hosts_by_gateway(vs: Obj) -> dict[str, set[str]]:
    """Which authority prefixes each gateway routes (tag-header rules left out)."""
    out: dict[str, set[str]] = {}
    for rule in vs["spec"]["http"]:
        for m in rule["match"]:
            if "headers" not in m:
                for gw in m["gateways"]:
                    out.setdefault(gw, set()).add(m["authority"]["prefix"])
    return out


async def virtual_service(
    api: FakeKubeAPI, name: str, check: Callable[[Obj | None], bool] = lambda o: o is not None
) -> Obj:
    found = await api.wait_for("virtualservices", "default", name, check, within=5)
    assert found is not None
    return found


def every_rule_has_no_retries(vs: Obj) -> bool:
    return all(rule["retries"] == {"attempts": 0} for rule in vs["spec"]["http"])


async def test_a_public_service_has_its_external_host_on_the_public_gateway_only_and_its_local_names_on_the_local_gateway(
    cluster: FakeKubeAPI, controller: KubeController
) -> None:
    cluster.put(config_map("config-domain", {"example.com": ""}))
    put_manifest(cluster, HELLO_V1)
    await ready(cluster, "hello-00001")
    vs = await virtual_service(cluster, "hello-ingress")
    assert hosts_by_gateway(vs) == {
        PUBLIC_GW: {"hello.default.example.com"},
        LOCAL_GW: {"hello.default.svc"},
    }
    assert vs["spec"]["gateways"] == [PUBLIC_GW, LOCAL_GW]
    assert every_rule_has_no_retries(vs)
    mesh = await virtual_service(cluster, "hello-mesh")
    assert mesh["spec"]["gateways"] == ["mesh"]
    assert mesh["spec"]["hosts"] == ["hello.default.svc.cluster.local", "hello.default.svc"]
    assert hosts_by_gateway(mesh) == {"mesh": {"hello.default.svc"}}
    assert every_rule_has_no_retries(mesh)


async def test_a_cluster_local_service_is_bound_to_no_public_gateway(
    cluster: FakeKubeAPI, controller: KubeController
) -> None:
    cluster.put(config_map("config-domain", {"example.com": ""}))
    put_manifest(
        cluster,
        HELLO_V1.replace(
            "  namespace: default\n",
            f"  namespace: default\n  labels:\n    {VISIBILITY}: cluster-local\n",
        ),
    )
    await ready(cluster, "hello-00001")
    vs = await virtual_service(cluster, "hello-ingress")
    assert vs["spec"]["gateways"] == [LOCAL_GW]
    assert hosts_by_gateway(vs) == {LOCAL_GW: {"hello.default.svc"}}
    assert not any(h.endswith("example.com") for h in vs["spec"]["hosts"])
    assert every_rule_has_no_retries(vs)


async def test_a_tag_whose_placeholder_service_is_labelled_cluster_local_loses_its_public_host(
    cluster: FakeKubeAPI, controller: KubeController
) -> None:
    cluster.put(config_map("config-domain", {"example.com": ""}))
    put_manifest(cluster, TAGGED)
    await ready(cluster, "hello-00001")
    vs = await virtual_service(cluster, "hello-ingress")
    assert hosts_by_gateway(vs)[PUBLIC_GW] == {
        "hello.default.example.com",
        "internal-hello.default.example.com",
        "preview-hello.default.example.com",
    }
    placeholder = cluster.get("services", "default", "internal-hello")
    assert placeholder is not None
    placeholder["metadata"]["labels"][VISIBILITY] = "cluster-local"
    cluster.put(placeholder)

    vs = await virtual_service(
        cluster,
        "hello-ingress",
        lambda o: o is not None and "internal-hello.default.example.com" not in o["spec"]["hosts"],
    )
    by_gateway = hosts_by_gateway(vs)
    assert by_gateway[PUBLIC_GW] == {
        "hello.default.example.com",
        "preview-hello.default.example.com",
    }
    assert "internal-hello.default.svc" in by_gateway[LOCAL_GW]
    kept = cluster.get("services", "default", "internal-hello")
    assert kept is not None and kept["metadata"]["labels"][VISIBILITY] == "cluster-local"
    # The status shows it too: the tag's URL is its cluster-local one.
    route = await cluster.wait_for(
        "routes.serving.knative.dev",
        "default",
        "hello",
        lambda r: (
            r is not None
            and any(
                t.get("url") == "http://internal-hello.default.svc.cluster.local"
                for t in r["status"].get("traffic", [])
            )
        ),
        within=5,
    )
    assert route is not None
    urls = {t.get("tag"): t.get("url") for t in route["status"]["traffic"] if t.get("tag")}
    assert urls["preview"] == "http://preview-hello.default.example.com"


async def test_tag_header_routing_rewrites_the_authority_to_the_tag_host_before_the_default_rule(
    cluster: FakeKubeAPI, controller: KubeController
) -> None:
    cluster.put(config_map("config-domain", {"example.com": ""}))
    put_manifest(cluster, TAGGED)
    await ready(cluster, "hello-00001")
    vs = await virtual_service(cluster, "hello-ingress")
    assert not any("headers" in m for r in vs["spec"]["http"] for m in r["match"])

    cluster.put(config_map("config-features", {"tag-header-based-routing": "enabled"}))
    vs = await virtual_service(
        cluster,
        "hello-ingress",
        lambda o: o is not None and "headers" in o["spec"]["http"][0]["match"][0],
    )
    header_rules = [r for r in vs["spec"]["http"] if "headers" in r["match"][0]]
    assert vs["spec"]["http"][: len(header_rules)] == header_rules  # evaluated first
    public = {
        r["match"][0]["headers"]["Knative-Serving-Tag"]["exact"]: r
        for r in header_rules
        if r["match"][0]["gateways"] == [PUBLIC_GW]
    }
    assert sorted(public) == ["internal", "preview"]
    assert public["preview"]["match"][0]["authority"] == {"prefix": "hello.default.example.com"}
    assert public["preview"]["rewrite"] == {"authority": "preview-hello.default.example.com"}
    local = [r for r in header_rules if r["match"][0]["gateways"] == [LOCAL_GW]]
    assert {r["rewrite"]["authority"] for r in local} == {
        "internal-hello.default.svc.cluster.local",
        "preview-hello.default.svc.cluster.local",
    }
    assert every_rule_has_no_retries(vs)
    mesh = await virtual_service(
        cluster,
        "hello-mesh",
        lambda o: o is not None and "headers" in o["spec"]["http"][0]["match"][0],
    )
    assert {r["match"][0]["gateways"][0] for r in mesh["spec"]["http"]} == {"mesh"}


async def test_the_gateways_follow_config_istio(
    cluster: FakeKubeAPI, controller: KubeController
) -> None:
    cluster.put(config_map("config-domain", {"example.com": ""}))
    put_manifest(cluster, HELLO_V1)
    await ready(cluster, "hello-00001")
    await virtual_service(cluster, "hello-ingress")
    cluster.put(
        config_map(
            "config-istio",
            {
                "gateway.edge.public-gw": "istio-ingressgateway.istio-system.svc.cluster.local",
                "local-gateway.edge.private-gw": "private.istio-system.svc.cluster.local",
            },
        )
    )
    vs = await virtual_service(
        cluster,
        "hello-ingress",
        lambda o: o is not None and o["spec"]["gateways"] == ["edge/private-gw", "edge/public-gw"],
    )
    assert hosts_by_gateway(vs) == {
        "edge/public-gw": {"hello.default.example.com"},
        "edge/private-gw": {"hello.default.svc"},
    }


# ----- NetworkPolicies ---------------------------------------------------------------------


async def test_every_namespace_running_a_revision_gets_the_network_policy_until_its_last_revision_goes(
    cluster: FakeKubeAPI, controller: KubeController
) -> None:
    from .helpers import namespace

    cluster.put(namespace("team"))
    put_manifest(cluster, HELLO_V1)
    put_manifest(cluster, HELLO_V1.replace("namespace: default", "namespace: team"))
    for ns in ("default", "team"):
        policy = await cluster.wait_for(
            "networkpolicies.networking.k8s.io", ns, "zeroserve-revisions", within=5
        )
        assert policy is not None
        assert [r["name"] for r in policy["metadata"]["ownerReferences"]] == ["hello-00001"]
        assert not policy["metadata"]["ownerReferences"][0].get("controller")
        spec = policy["spec"]
        assert spec["podSelector"] == {
            "matchExpressions": [{"key": "serving.knative.dev/revision", "operator": "Exists"}]
        }
        by_port = {r["ports"][0]["port"]: r.get("from") for r in spec["ingress"]}
        assert by_port[8012] == [
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": "knative-serving"}
                },
                "podSelector": {
                    "matchLabels": {
                        "app.kubernetes.io/name": "zeroserve",
                        "app.kubernetes.io/instance": "zeroserve",
                        "app.kubernetes.io/component": "activator",
                    }
                },
            }
        ]
        assert by_port[9090][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == (
            "autoscaler"
        )
        assert 8022 not in by_port  # the admin port: no pod may reach it
    cluster.delete("ksvc", "team", "hello")
    await cluster.wait_for(
        "networkpolicies.networking.k8s.io",
        "team",
        "zeroserve-revisions",
        lambda o: o is None,
        within=5,
    )
    assert cluster.get("networkpolicies.networking.k8s.io", "default", "zeroserve-revisions")


# ----- DomainMappings ----------------------------------------------------------------------


def domain_mapping(domain: str, ns: str = "default", ref: str = "hello") -> Obj:
    return {
        "apiVersion": "serving.knative.dev/v1beta1",
        "kind": "DomainMapping",
        "metadata": {"name": domain, "namespace": ns},
        "spec": {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": ref}},
    }


def dm_condition(kind: str, status: str, reason: str = "") -> Callable[[Obj | None], bool]:
    def check(obj: Obj | None) -> bool:
        c = condition(obj, kind)
        return c.get("status") == status and (not reason or c.get("reason") == reason)

    return check


async def test_a_domain_mapping_claims_its_domain_and_rewrites_to_its_service(
    cluster: FakeKubeAPI, controller: KubeController
) -> None:
    cluster.put(config_map("config-network", {"autocreate-cluster-domain-claims": "true"}))
    put_manifest(cluster, HELLO_V1)
    await ready(cluster, "hello-00001")
    cluster.put(domain_mapping("shop.example.org"))
    dm = await cluster.wait_for(
        "domainmappings.serving.knative.dev",
        "default",
        "shop.example.org",
        dm_condition("Ready", "True"),
        within=5,
    )
    assert dm is not None
    assert dm["status"]["url"] == "http://shop.example.org"
    assert {c["type"]: c["status"] for c in dm["status"]["conditions"]} == {
        "CertificateProvisioned": "True",
        "DomainClaimed": "True",
        "IngressReady": "True",
        "ReferenceResolved": "True",
        "Ready": "True",
    }
    claim = cluster.get(
        "clusterdomainclaims.networking.internal.knative.dev", None, "shop.example.org"
    )
    assert claim is not None and claim["spec"] == {"namespace": "default"}
    vs = await virtual_service(cluster, "shop.example.org-ingress")
    assert vs["metadata"]["ownerReferences"][0]["kind"] == "DomainMapping"
    assert vs["spec"]["hosts"] == ["shop.example.org"]
    assert vs["spec"]["gateways"] == [PUBLIC_GW]
    [rule] = vs["spec"]["http"]
    assert rule["match"] == [{"gateways": [PUBLIC_GW], "authority": {"prefix": "shop.example.org"}}]
    assert rule["rewrite"] == {"authority": "hello.default.svc.cluster.local"}
    assert rule["retries"] == {"attempts": 0}

    # Another namespace's mapping of the same domain is refused, as Knative does.
    from .helpers import namespace

    cluster.put(namespace("other"))
    cluster.put(domain_mapping("shop.example.org", ns="other"))
    other = await cluster.wait_for(
        "domainmappings.serving.knative.dev",
        "other",
        "shop.example.org",
        dm_condition("Ready", "False", "DomainAlreadyClaimed"),
        within=5,
    )
    assert condition(other, "DomainClaimed")["message"] == (
        "The domain name is already in use by another DomainMapping"
    )
    assert cluster.get("virtualservices", "other", "shop.example.org-ingress") is None

    # Deleted, the first mapping gives the domain back (its finalizer deletes the claim);
    # the other namespace's mapping then claims it and becomes Ready.
    cluster.delete("domainmappings.serving.knative.dev", "default", "shop.example.org")
    await cluster.wait_for(
        "domainmappings.serving.knative.dev",
        "default",
        "shop.example.org",
        lambda o: o is None,
        within=5,
    )
    other = await cluster.wait_for(
        "domainmappings.serving.knative.dev",
        "other",
        "shop.example.org",
        dm_condition("DomainClaimed", "True"),
        within=5,
    )
    claim = cluster.get(
        "clusterdomainclaims.networking.internal.knative.dev", None, "shop.example.org"
    )
    assert claim is not None and claim["spec"] == {"namespace": "other"}


async def test_without_autocreate_a_domain_mapping_waits_for_an_administrators_claim(
    cluster: FakeKubeAPI, controller: KubeController
) -> None:
    put_manifest(cluster, HELLO_V1)
    await ready(cluster, "hello-00001")
    cluster.put(domain_mapping("shop.example.org"))
    await cluster.wait_for(
        "domainmappings.serving.knative.dev",
        "default",
        "shop.example.org",
        dm_condition("DomainClaimed", "False", "DomainAlreadyClaimed"),
        within=5,
    )
    assert (
        cluster.get("clusterdomainclaims.networking.internal.knative.dev", None, "shop.example.org")
        is None
    )
    cluster.put(
        {
            "apiVersion": "networking.internal.knative.dev/v1alpha1",
            "kind": "ClusterDomainClaim",
            "metadata": {"name": "shop.example.org"},
            "spec": {"namespace": "default"},
        }
    )
    await cluster.wait_for(
        "domainmappings.serving.knative.dev",
        "default",
        "shop.example.org",
        dm_condition("Ready", "True"),
        within=5,
    )
    # An administrator's claim outlives the mapping.
    cluster.delete("domainmappings.serving.knative.dev", "default", "shop.example.org")
    await cluster.wait_for(
        "domainmappings.serving.knative.dev",
        "default",
        "shop.example.org",
        lambda o: o is None,
        within=5,
    )
    assert cluster.get(
        "clusterdomainclaims.networking.internal.knative.dev", None, "shop.example.org"
    )


async def test_a_domain_mapping_to_a_missing_service_is_not_resolved(
    cluster: FakeKubeAPI, controller: KubeController
) -> None:
    cluster.put(config_map("config-network", {"autocreate-cluster-domain-claims": "true"}))
    cluster.put(domain_mapping("shop.example.org", ref="nothere"))
    dm = await cluster.wait_for(
        "domainmappings.serving.knative.dev",
        "default",
        "shop.example.org",
        dm_condition("Ready", "False", "ResolveFailed"),
        within=5,
    )
    assert "nothere" in condition(dm, "ReferenceResolved")["message"]
    assert condition(dm, "IngressReady")["status"] == "Unknown"


# ----- rollout requeue and GC --------------------------------------------------------------


async def test_a_pass_runs_when_the_next_rollout_step_is_due_without_any_change(
    cluster: FakeKubeAPI, controller: KubeController, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    put_manifest(cluster, HELLO_V1)
    await ready(cluster, "hello-00001")
    due: list[float] = []

    def next_rollout_step(state: Any, now: float) -> float | None:
        if not due:
            due.append(now + 0.5)
        return due[0] if now < due[0] else None

    monkeypatch.setattr(planner, "next_rollout_step", next_rollout_step)
    controller._wake.set()  # one pass to learn the due time
    for _ in range(100):
        if due:
            break
        await asyncio.sleep(0.02)
    assert due
    passes = controller.passes
    await asyncio.sleep(max(0.0, due[0] - time.time()) + 0.3)
    assert controller.passes > passes  # woken by the timer: nothing changed in the API


async def test_collected_revisions_are_deleted_with_their_workloads(
    cluster: FakeKubeAPI, controller: KubeController, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_manifest(cluster, HELLO_V1)
    await ready(cluster, "hello-00001")
    put_manifest(cluster, HELLO_V1.replace('value: "World"', 'value: "Again"'))
    await ready(cluster, "hello-00002")
    await cluster.wait_for(
        "routes.serving.knative.dev",
        "default",
        "hello",
        lambda r: (
            r is not None
            and [t["revisionName"] for t in r["status"].get("traffic", [])] == ["hello-00002"]
        ),
        within=5,
    )
    old = RevisionKey("default", "hello-00001")

    def collectable(state: Any, gc: Any, now: float) -> list[RevisionKey]:
        return [old, RevisionKey("default", "hello-00002")]  # the routed one is protected

    monkeypatch.setattr(planner, "collectable", collectable)
    controller._wake.set()
    await cluster.wait_for(
        "revisions.serving.knative.dev", "default", "hello-00001", lambda o: o is None, within=5
    )
    await cluster.wait_for(
        "deployments", "default", "hello-00001-deployment", lambda o: o is None, within=5
    )
    await cluster.wait_for(
        "services", "default", "hello-00001-private", lambda o: o is None, within=5
    )
    assert cluster.get("revisions.serving.knative.dev", "default", "hello-00002") is not None


async def test_config_gc_collects_a_revision_the_route_left(
    cluster: FakeKubeAPI, controller: KubeController
) -> None:
    """The shared GC rules on the cluster: with config-gc keeping no non-active revision,
    the first revision goes once the route moves to the second (its Deployment and
    private Service with it); the routing state and its time are kept on the Revision,
    not on the Deployment (a routing change must not roll the pods)."""
    cluster.put(
        config_map(
            "config-gc",
            {
                "retain-since-create-time": "disabled",
                "retain-since-last-active-time": "disabled",
                "min-non-active-revisions": "0",
                "max-non-active-revisions": "0",
            },
        )
    )
    put_manifest(cluster, HELLO_V1)
    await ready(cluster, "hello-00001")
    first = await cluster.wait_for(
        "revisions.serving.knative.dev",
        "default",
        "hello-00001",
        lambda o: (
            o is not None
            and "serving.knative.dev/routingStateModified" in o["metadata"].get("annotations", {})
        ),
        within=5,
    )
    assert first is not None
    assert first["metadata"]["labels"]["serving.knative.dev/routingState"] == "active"
    deployment = cluster.get("deployments", "default", "hello-00001-deployment")
    assert deployment is not None
    assert "serving.knative.dev/routingStateModified" not in (
        deployment["spec"]["template"]["metadata"].get("annotations") or {}
    )
    put_manifest(cluster, HELLO_V1.replace('value: "World"', 'value: "Again"'))
    await ready(cluster, "hello-00002")
    for gone in ("revisions.serving.knative.dev", "deployments", "services"):
        name = {"deployments": "hello-00001-deployment", "services": "hello-00001-private"}.get(
            gone, "hello-00001"
        )
        await cluster.wait_for(gone, "default", name, lambda o: o is None, within=5)
    assert cluster.get("revisions.serving.knative.dev", "default", "hello-00002") is not None
