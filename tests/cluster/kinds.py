"""The built-in kinds the test cluster serves beyond the fake API server's own: what the
chart installs (RBAC, PodDisruptionBudgets, HorizontalPodAutoscalers, NetworkPolicies,
webhook configurations) and Nodes. Stored and served like any other object; no
controller acts on PDBs, HPAs or NetworkPolicies (a real cluster's CNI enforces the
latter; here nothing does)."""

from __future__ import annotations

from tests.fakes.kubeapi.admission import ADMISSION_TYPES
from tests.fakes.kubeapi.auth import RBAC_TYPES
from tests.fakes.kubeapi.fakeapi import FakeKubeAPI
from tests.fakes.kubeapi.resources import ResourceType, crd_manifest, default_crds

EXTRA_TYPES = (
    ResourceType(
        "",
        "v1",
        "nodes",
        "Node",
        "node",
        namespaced=False,
        short_names=("no",),
        status_subresource=True,
    ),
    ResourceType(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        "networkpolicy",
        short_names=("netpol",),
    ),
    ResourceType(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        "poddisruptionbudget",
        short_names=("pdb",),
        status_subresource=True,
    ),
    ResourceType(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscaler",
        short_names=("hpa",),
        status_subresource=True,
    ),
    *RBAC_TYPES,
    *ADMISSION_TYPES,
)


def istio_crds() -> list[dict]:
    """Istio's CRDs only: Istio is installed on the cluster before zeroserve; Knative's
    come from the chart. PeerAuthentication drives the mesh model (tests/cluster/mesh.py)."""
    return [c for c in default_crds() if c["spec"]["group"].endswith("istio.io")] + [
        crd_manifest(
            "security.istio.io",
            "PeerAuthentication",
            "peerauthentications",
            ["v1", "v1beta1"],
            short_names=["pa"],
            categories=["istio-io", "security-istio-io"],
        )
    ]


def register_extra_types(api: FakeKubeAPI) -> None:
    """Serve :data:`EXTRA_TYPES` that the server does not serve already."""
    for rt in EXTRA_TYPES:
        if api.registry.lookup(rt.group, rt.version, rt.plural) is None:
            api.registry.register(rt)
