"""RBAC: each component gets exactly the access its code uses, nothing else.

The tables below are the whole grant per component: a new rule in the chart fails
here until it is added on purpose, with the code that needs it. That the code really
makes these calls (and no others) is checked against the test cluster's audit at the end
of tests/e2e_kube/test_walkthrough.py. The namespace users' aggregated roles are
Knative's (docs/kubernetes.md, "RBAC").
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chart.helm import NAMESPACE, Obj, one, only

pytestmark = pytest.mark.process

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

AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"


def aggregated(role: Obj) -> set[str]:
    """The built-in roles (admin, edit, view) ``role`` is aggregated into."""
    labels = role["metadata"].get("labels") or {}
    return {
        k.removeprefix(AGGREGATE)
        for k, v in labels.items()
        if k.startswith(AGGREGATE) and v == "true"
    }


def component_roles(objects: list[Obj]) -> list[Obj]:
    """The Roles and ClusterRoles of the components (not the namespace users' ones)."""
    return [o for o in only(objects, "ClusterRole") + only(objects, "Role") if not aggregated(o)]


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


WATCHED = ("list", "watch")
"""A watch cache's calls: the components never get one object of a kind they watch."""
UPDATED = ("create", "get", "update")
"""create, then PUT of the whole object; get only to re-read it after a 409."""

EXPECTED: dict[str, set[Grant]] = {
    "activator": (
        _table("cluster", "serving.knative.dev", ("revisions", "routes"), WATCHED)
        | _table("cluster", "discovery.k8s.io", ("endpointslices",), WATCHED)
        | _table("cluster", "", ("pods",), WATCHED)
        | _table(NAMESPACE, "", ("configmaps",), WATCHED)  # config-observability, config-tracing
    ),
    "autoscaler": (
        _table("cluster", "serving.knative.dev", ("revisions",), WATCHED)
        | _table("cluster", "discovery.k8s.io", ("endpointslices",), WATCHED)
        | _table("cluster", "", ("pods",), WATCHED)
        | _table("cluster", "apps", ("deployments",), WATCHED)
        | _table("cluster", "apps", ("deployments/scale",), ("patch",))
        | _table(NAMESPACE, "", ("configmaps",), WATCHED)
        | _table(NAMESPACE, "coordination.k8s.io", ("leases",), ("create",))
        | _table(
            NAMESPACE, "coordination.k8s.io", ("leases",), ("get", "update"), "zeroserve-autoscaler"
        )
    ),
    "controller": (
        _table("cluster", "serving.knative.dev", ("services",), WATCHED)
        | _table("cluster", "serving.knative.dev", ("configurations", "routes"), WATCHED + UPDATED)
        | _table(
            "cluster",
            "serving.knative.dev",
            ("revisions",),
            (*WATCHED, "create", "patch", "delete"),
        )
        | _table(
            "cluster",
            "serving.knative.dev",
            ("services/status", "configurations/status", "revisions/status", "routes/status"),
            ("patch",),
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
        | _table("cluster", "apps", ("deployments",), WATCHED + UPDATED)
        | _table("cluster", "", ("services",), (*WATCHED, *UPDATED, "delete"))
        | _table(
            "cluster", "networking.istio.io", ("virtualservices",), (*WATCHED, *UPDATED, "delete")
        )
        | _table("cluster", "serving.knative.dev", ("domainmappings",), (*WATCHED, "patch"))
        | _table("cluster", "serving.knative.dev", ("domainmappings/status",), ("patch",))
        | _table("cluster", "serving.knative.dev", ("domainmappings/finalizers",), ("update",))
        | _table(
            "cluster",
            "networking.internal.knative.dev",
            ("clusterdomainclaims",),
            (*WATCHED, "create", "delete"),
        )
        | _table("cluster", "networking.k8s.io", ("networkpolicies",), WATCHED + UPDATED)
        | _table("cluster", "discovery.k8s.io", ("endpointslices",), WATCHED)
        | _table("cluster", "", ("pods",), WATCHED)
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
        | _table(NAMESPACE, "", ("configmaps",), WATCHED)
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
    """No Secret but the webhook's own certificate, by name, in the release namespace.
    (The namespace users' aggregated roles are Knative's and checked below.)"""
    for role in component_roles(objects):
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
    roles = {(o["kind"], o["metadata"]["name"]) for o in component_roles(objects)}
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


# Knative's config/core/200-roles/clusterrole-namespaced.yaml, for the groups zeroserve
# serves (it has no autoscaling.internal or caching.internal kinds).
NAMESPACED = {
    "admin": {
        ("serving.knative.dev", "*", "*"),
        ("networking.internal.knative.dev", "*", "get"),
        ("networking.internal.knative.dev", "*", "list"),
        ("networking.internal.knative.dev", "*", "watch"),
    },
    "edit": {
        *(("serving.knative.dev", "*", v) for v in ("create", "update", "patch", "delete")),
        *(("networking.internal.knative.dev", "*", v) for v in ("get", "list", "watch")),
    },
    "view": {
        (g, "*", v)
        for g in ("serving.knative.dev", "networking.internal.knative.dev")
        for v in ("get", "list", "watch")
    },
}


def test_namespace_users_get_knatives_aggregated_roles(objects: list[Obj]) -> None:
    """Namespace users bound to the built-in admin, edit or view roles reach the Knative
    objects through three ClusterRoles aggregated into those (nobody binds them)."""
    roles = [o for o in only(objects, "ClusterRole") if aggregated(o)]
    into = {}
    for role in roles:
        (target,) = aggregated(role)  # one built-in role each
        assert target not in into
        into[target] = {
            (group, resource, verb)
            for rule in role["rules"]
            for group in rule["apiGroups"]
            for resource in rule["resources"]
            for verb in rule["verbs"]
        }
        assert role["metadata"]["name"] == f"zeroserve-namespaced-{target}"
        assert "aggregationRule" not in role
    assert into == NAMESPACED
    bound = {
        b["roleRef"]["name"]
        for b in only(objects, "ClusterRoleBinding") + only(objects, "RoleBinding")
    }
    assert not bound & {r["metadata"]["name"] for r in roles}


def test_namespace_users_cannot_write_cluster_domain_claims(objects: list[Obj]) -> None:
    """A ClusterDomainClaim says which namespace owns a domain: users read them only."""
    for role in only(objects, "ClusterRole"):
        if aggregated(role):
            for rule in role["rules"]:
                if "networking.internal.knative.dev" in rule["apiGroups"]:
                    assert set(rule["verbs"]) <= {"get", "list", "watch"}
