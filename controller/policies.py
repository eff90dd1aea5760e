"""The revisions' NetworkPolicy, written by the controller in every namespace where it runs
a revision. Pure; no I/O.

The same policy as the chart's ``workloadNamespaces`` template: the revisions' pods take
requests (queue-proxy 8012) only from the activators and stats scrapes (9090) only from
the autoscaler, both in the system namespace; the user metrics port (9091) from
``--metrics-from`` (and the nodes) or, without it, from anyone;
the admin port (8022, ``/wait-for-drain``) from no pod, only from ``--node-cidr`` blocks
(with 8012, for the kubelet's probes) when given.

Ownership: the policy has one (non-controller) owner reference per Revision in its
namespace, so the garbage collector deletes it once the last revision there is gone and
the controller never deletes it itself. A policy of the same name that the controller did
not write (e.g. the chart's, from ``workloadNamespaces``) is left as it is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from controller.config import Settings
from controller.meta import MANAGED_BY, MANAGED_BY_LABEL, meta, plain_owner_reference, with_hash
from zeroserve.api.objects import Obj
from zeroserve.knative import REVISION_LABEL
from zeroserve.kube import ResourceRef

NETWORK_POLICIES = ResourceRef("networking.k8s.io", "v1", "networkpolicies")


def _component(settings: Settings, component: str) -> Obj:
    return {
        "namespaceSelector": {
            "matchLabels": {"kubernetes.io/metadata.name": settings.system_namespace}
        },
        "podSelector": {
            "matchLabels": {
                "app.kubernetes.io/name": "zeroserve",
                "app.kubernetes.io/instance": settings.release_name,
                "app.kubernetes.io/component": component,
            }
        },
    }


def _ports(*ports: int) -> list[Obj]:
    return [{"port": p, "protocol": "TCP"} for p in ports]


def network_policy(namespace: str, revisions: Iterable[Obj], settings: Settings) -> Obj:
    """The policy of ``namespace``, owned by ``revisions`` (the Revisions there)."""
    owners = sorted(revisions, key=lambda r: meta(r)["name"])
    rules: list[Obj] = [
        {"ports": _ports(8012), "from": [_component(settings, "activator")]},
        {"ports": _ports(9090), "from": [_component(settings, "autoscaler")]},
    ]
    metrics = json.loads(settings.metrics_from) if settings.metrics_from else []
    nodes = [{"ipBlock": {"cidr": c}} for c in settings.node_cidrs]
    rules.append(
        {"ports": _ports(9091), "from": [*metrics, *nodes]} if metrics else {"ports": _ports(9091)}
    )
    if settings.node_cidrs:
        rules.append(
            {
                "ports": _ports(8012, 8022),
                "from": nodes,
            }
        )
    body: Obj = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": settings.network_policy_name,
            "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY},
            "ownerReferences": [plain_owner_reference(r) for r in owners],
        },
        "spec": {
            "podSelector": {"matchExpressions": [{"key": REVISION_LABEL, "operator": "Exists"}]},
            "policyTypes": ["Ingress"],
            "ingress": rules,
        },
    }
    return with_hash(body)
