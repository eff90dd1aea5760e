"""NetworkPolicies: who may reach the revisions' pods and zeroserve's own pods, and on
which ports. Rules are compared whole: a rule without ``from`` lets everyone in."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from controller.config import add_arguments, settings_from
from controller.policies import network_policy
from tests.chart.helm import NAMESPACE, Obj, find_tool, one, only, render

pytestmark = pytest.mark.process

SELECT = {"app.kubernetes.io/name": "zeroserve", "app.kubernetes.io/instance": "zeroserve"}
IN_RELEASE = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}}}


def _pods(component: str) -> dict[str, Any]:
    return {"podSelector": {"matchLabels": {**SELECT, "app.kubernetes.io/component": component}}}


def _ports(*numbers: int) -> list[dict[str, Any]]:
    return [{"port": n, "protocol": "TCP"} for n in numbers]


def _rules(policy: Obj) -> list[tuple[tuple[int, ...], list[Any] | None]]:
    """(ports, from) per ingress rule; from None means anyone."""
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    return [
        (tuple(p["port"] for p in r["ports"]), r.get("from")) for r in policy["spec"]["ingress"]
    ]


NODES = [{"ipBlock": {"cidr": "10.240.0.0/16"}}]
METRICS = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
GATEWAY = [
    {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-system"}},
        "podSelector": {"matchLabels": {"istio": "public-gateway"}},
    }
]


def test_revision_pods_default(default_objects: list[Obj]) -> None:
    [policy] = [
        p for p in only(default_objects, "NetworkPolicy") if p["metadata"]["namespace"] != NAMESPACE
    ]
    assert policy["metadata"] == {
        **policy["metadata"],
        "name": "zeroserve-revisions",
        "namespace": "default",
    }
    assert policy["spec"]["podSelector"] == {
        "matchExpressions": [{"key": "serving.knative.dev/revision", "operator": "Exists"}]
    }
    assert _rules(policy) == [
        ((8012,), [{**IN_RELEASE, **_pods("activator")}]),  # requests: only through an activator
        ((9090,), [{**IN_RELEASE, **_pods("autoscaler")}]),  # stats: only the autoscaler scrapes
        ((9091,), None),  # Prometheus port: metricsFrom, default anyone
    ]
    # The admin port (8022, /wait-for-drain) and the user container's port are in no rule.
    assert all(8022 not in ports and 8080 not in ports for ports, _ in _rules(policy))


def test_revision_pods_custom(custom_objects: list[Obj]) -> None:
    policies = [
        p for p in only(custom_objects, "NetworkPolicy") if p["metadata"]["namespace"] != NAMESPACE
    ]
    assert sorted(p["metadata"]["namespace"] for p in policies) == ["default", "payments", "shop"]
    for policy in policies:
        assert _rules(policy) == [
            ((8012,), [{**IN_RELEASE, **_pods("activator")}]),
            ((9090,), [{**IN_RELEASE, **_pods("autoscaler")}]),
            ((9091,), [*METRICS, *NODES]),
            ((8012, 8022), NODES),  # the kubelet's probes and preStop hook, for strict CNIs
        ]


@pytest.mark.parametrize("which", ["default", "custom"])
def test_the_controller_writes_the_charts_revision_policy(
    default_objects: list[Obj], custom_objects: list[Obj], which: str
) -> None:
    """With the flags the chart gives it, the controller's policy for a namespace where a
    revision runs is the chart's ``workloadNamespaces`` one, name and rules."""
    objects = default_objects if which == "default" else custom_objects
    [container] = one(objects, "Deployment", "controller")["spec"]["template"]["spec"]["containers"]
    p = argparse.ArgumentParser()
    add_arguments(p)
    settings = settings_from(p.parse_args(container["args"]))
    chart = one(objects, "NetworkPolicy", "zeroserve-revisions", "default")
    written = network_policy("default", [], settings)
    assert written["metadata"]["name"] == chart["metadata"]["name"]
    assert written["spec"] == chart["spec"]
    assert settings.network_policies
    off = render_args(["networkPolicy.enabled=false"])
    assert "--no-network-policies" in off


def render_args(sets: list[str]) -> list[str]:
    helm = find_tool("helm")
    assert helm is not None
    objects = render(helm, sets=sets)
    [container] = one(objects, "Deployment", "controller")["spec"]["template"]["spec"]["containers"]
    return list(container["args"])


def test_the_queue_proxy_ports_are_the_ones_in_the_policy(default_objects: list[Obj]) -> None:
    """The policy's ports are the queue-proxy's (docs/contracts.md, "Ports": 8012 serving,
    8022 admin, 9090 stats, 9091 Prometheus); 8022 is deliberately not opened to any pod."""
    policy = one(default_objects, "NetworkPolicy", "zeroserve-revisions", "default")
    opened = {port for ports, _ in _rules(policy) for port in ports}
    assert opened == {8012, 9090, 9091}


@pytest.mark.parametrize(
    ("name", "default_rules", "custom_rules"),
    [
        (
            "activator",
            [((8012,), None), ((9090,), None)],
            [((8012,), [*GATEWAY, *NODES]), ((9090,), [*METRICS, *NODES])],
        ),
        (
            "autoscaler",
            [((8080,), [_pods("activator")]), ((9090,), None)],
            [((8080,), [_pods("activator"), *NODES]), ((9090,), [*METRICS, *NODES])],
        ),
        # 8443: the admission webhook, called by the API server from wherever it runs
        (
            "controller",
            [((9090,), None), ((8443,), None)],
            [((9090,), [*METRICS, *NODES]), ((8443,), None)],
        ),
    ],
)
def test_components(
    default_objects: list[Obj],
    custom_objects: list[Obj],
    name: str,
    default_rules: list[Any],
    custom_rules: list[Any],
) -> None:
    for objects, expected in ((default_objects, default_rules), (custom_objects, custom_rules)):
        policy = one(objects, "NetworkPolicy", name, NAMESPACE)
        assert policy["spec"]["podSelector"] == {
            "matchLabels": {**SELECT, "app.kubernetes.io/component": name}
        }
        assert _rules(policy) == expected


def test_policies_can_be_left_out(helm: str) -> None:
    assert not only(render(helm, sets=["networkPolicy.enabled=false"]), "NetworkPolicy")


def test_ports_in_policies_exist_on_the_pods(default_objects: list[Obj]) -> None:
    for name in ("activator", "autoscaler", "controller"):
        [container] = one(default_objects, "Deployment", name)["spec"]["template"]["spec"][
            "containers"
        ]
        exposed = {p["containerPort"] for p in container["ports"]}
        policy = one(default_objects, "NetworkPolicy", name, NAMESPACE)
        assert {port for ports, _ in _rules(policy) for port in ports} == exposed
