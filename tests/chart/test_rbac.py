"""RBAC: each component gets exactly the access its code uses, nothing else.

The tables below are the whole grant per component: a new rule in the chart fails
here until it is added on purpose, with the code that needs it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chart.helm import NAMESPACE, Obj, one, only

pytestmark = pytest.mark.process

READ = ("get", "list", "watch")
WRITE = ("create", "update", "patch", "delete")
WRITE_VERBS = frozenset(
    {
        "create",
        "update",
        "patch",
        "delete",
        "deletecollection",
        "escalate",
        "bind",
        "impersonate",
        "*",
    }
)

Grant = tuple[str, str, str, str, str]
"""(scope, apiGroup, resource, resourceName or "", verb); scope is "cluster" or the namespace."""


def _grants(role: Obj, scope: str) -> Iterator[Grant]:
    for rule in role["rules"]:
        assert "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for name in rule.get("resourceNames", [""]):
                    for verb in rule["verbs"]:
                        yield scope, group, resource, name, verb


def grants_of(objects: list[Obj], account: str) -> set[Grant]:
    """Everything the ServiceAccount ``account`` of the release namespace may do, through
    every binding that names it."""
    subject = {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
    found: set[Grant] = set()
    for binding in only(objects, "ClusterRoleBinding") + only(objects, "RoleBinding"):
        if subject not in binding["subjects"]:
            continue
        ref = binding["roleRef"]
        if binding["kind"] == "ClusterRoleBinding":
            assert ref["kind"] == "ClusterRole"
            found |= set(_grants(one(objects, "ClusterRole", ref["name"]), "cluster"))
        else:
            assert ref["kind"] == "Role"  # a ClusterRole bound in one namespace is not used here
            ns = binding["metadata"]["namespace"]
            found |= set(_grants(one(objects, "Role", ref["name"], ns), ns))
    return found


def _table(
    scope: str, group: str, resources: tuple[str, ...], verbs: tuple[str, ...], name: str = ""
) -> set[Grant]:
    return {(scope, group, r, name, v) for r in resources for v in verbs}


EXPECTED: dict[str, set[Grant]] = {
    "activator": (
        _table("cluster", "serving.knative.dev", ("revisions", "routes"), READ)
        | _table("cluster", "discovery.k8s.io", ("endpointslices",), READ)
        | _table("cluster", "", ("pods",), READ)
        | _table(NAMESPACE, "", ("configmaps",), READ)  # config-observability, config-tracing
    ),
    "autoscaler": (
        _table("cluster", "serving.knative.dev", ("revisions",), READ)
        | _table("cluster", "discovery.k8s.io", ("endpointslices",), READ)
        | _table("cluster", "", ("pods",), READ)
        | _table("cluster", "apps", ("deployments",), READ)
        | _table("cluster", "apps", ("deployments/scale",), ("patch",))
        | _table(NAMESPACE, "", ("configmaps",), READ)
        | _table(NAMESPACE, "coordination.k8s.io", ("leases",), ("create",))
        | _table(
            NAMESPACE, "coordination.k8s.io", ("leases",), ("get", "update"), "zeroserve-autoscaler"
        )
    ),
    "controller": (
        _table("cluster", "serving.knative.dev", ("services",), READ)
        | _table(
            "cluster",
            "serving.knative.dev",
            ("configurations", "revisions", "routes"),
            READ + WRITE,
        )
        | _table(
            "cluster",
            "serving.knative.dev",
            ("services/status", "configurations/status", "revisions/status", "routes/status"),
            ("update", "patch"),
        )
        | _table(
            "cluster",
            "serving.knative.dev",
            (
                "services/finalizers",
                "configurations/finalizers",
                "revisions/finalizers",
                "routes/finalizers",
            ),
            ("update",),
        )
        | _table("cluster", "apps", ("deployments",), READ + WRITE)
        | _table("cluster", "", ("services",), READ + WRITE)
        | _table("cluster", "networking.istio.io", ("virtualservices",), READ + WRITE)
        | _table("cluster", "serving.knative.dev", ("domainmappings",), (*READ, "patch"))
        | _table("cluster", "serving.knative.dev", ("domainmappings/status",), ("update", "patch"))
        | _table("cluster", "serving.knative.dev", ("domainmappings/finalizers",), ("update",))
        | _table(
            "cluster",
            "networking.internal.knative.dev",
            ("clusterdomainclaims",),
            (*READ, "create", "delete"),
        )
        | _table(
            "cluster",
            "networking.k8s.io",
            ("networkpolicies",),
            (*READ, "create", "update", "patch"),
        )
        | _table("cluster", "discovery.k8s.io", ("endpointslices",), READ)
        | _table("cluster", "", ("pods",), READ)
        | _table("cluster", "", ("events",), ("create", "patch"))
        | _table(
            "cluster",
            "admissionregistration.k8s.io",
            ("mutatingwebhookconfigurations",),
            ("get", "update"),
            "webhook.serving.knative.dev",
        )
        | _table(
            "cluster",
            "admissionregistration.k8s.io",
            ("validatingwebhookconfigurations",),
            ("get", "update"),
            "validation.webhook.serving.knative.dev",
        )
        | _table(NAMESPACE, "", ("configmaps",), READ)
        | _table(NAMESPACE, "coordination.k8s.io", ("leases",), ("create",))
        | _table(
            NAMESPACE, "coordination.k8s.io", ("leases",), ("get", "update"), "zeroserve-controller"
        )
        | _table(NAMESPACE, "", ("secrets",), ("get", "update"), "webhook-certs")
    ),
}


@pytest.mark.parametrize("account", sorted(EXPECTED))
def test_each_component_has_exactly_its_grants(objects: list[Obj], account: str) -> None:
    got = grants_of(objects, account)
    assert sorted(got - EXPECTED[account]) == [], "more than the code uses"
    assert sorted(EXPECTED[account] - got) == [], "less than the code uses"


def test_the_activator_writes_nothing(objects: list[Obj]) -> None:
    assert {g for g in grants_of(objects, "activator") if g[4] in WRITE_VERBS} == set()


def test_only_the_autoscaler_scales_and_nobody_else_touches_scale(objects: list[Obj]) -> None:
    scalers = {
        a
        for a in EXPECTED
        if any(g[2] == "deployments/scale" and g[4] in WRITE_VERBS for g in grants_of(objects, a))
    }
    assert scalers == {"autoscaler"}
    # ...and the autoscaler cannot change a Deployment in any other way.
    assert {
        g for g in grants_of(objects, "autoscaler") if g[2] == "deployments" and g[4] in WRITE_VERBS
    } == set()


def test_no_wildcards_secrets_or_privilege_verbs(objects: list[Obj]) -> None:
    """No Secret but the webhook's own certificate, by name, in the release namespace."""
    for role in only(objects, "ClusterRole") + only(objects, "Role"):
        for rule in role["rules"]:
            assert (
                "*" not in rule["verbs"]
                and "*" not in rule["resources"]
                and "*" not in rule["apiGroups"]
            )
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])
            if "secrets" in rule["resources"]:
                assert role["kind"] == "Role" and rule["resourceNames"] == ["webhook-certs"]


def test_every_role_is_bound_and_every_account_used(objects: list[Obj]) -> None:
    roles = {
        (o["kind"], o["metadata"]["name"])
        for o in only(objects, "ClusterRole") + only(objects, "Role")
    }
    bound = {
        (b["roleRef"]["kind"], b["roleRef"]["name"])
        for b in only(objects, "ClusterRoleBinding") + only(objects, "RoleBinding")
    }
    assert roles == bound
    accounts = {o["metadata"]["name"] for o in only(objects, "ServiceAccount")}
    used = {
        d["spec"]["template"]["spec"]["serviceAccountName"] for d in only(objects, "Deployment")
    }
    assert accounts == used == set(EXPECTED)
