"""The resource table of the fake API server, and the discovery documents built from it.

A :class:`ResourceType` is one (group, version, plural) the server serves. Built-in types are
listed in :data:`BUILTIN_TYPES`; custom types come from CustomResourceDefinition objects, so
"registering a custom resource" and "creating a CRD" are the same operation (the defaults for
Knative and Istio are CRD manifests seeded at start-up, see :func:`default_crds`).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import errors

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
SUBRESOURCE_VERBS = ("get", "patch", "update")
META_FIELDS = ("metadata.name", "metadata.namespace")


@dataclass(frozen=True)
class ScalePaths:
    """Where the ``/scale`` subresource reads and writes its numbers (CRD ``scale`` style).

    ``structured_selector`` marks built-ins (Deployment, ReplicaSet) whose selector is a
    LabelSelector object in ``spec.selector`` rather than a selector string in the status.
    """

    spec_replicas: str = ".spec.replicas"
    status_replicas: str = ".status.replicas"
    label_selector: str | None = None
    structured_selector: bool = False


@dataclass(frozen=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    singular: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_subresource: bool = False
    scale: ScalePaths | None = None
    # Custom resources are unstructured: strategic merge patch is refused and items keep
    # apiVersion/kind inside lists, as the real apiextensions server does.
    custom: bool = False
    # Extra field-selector labels beyond metadata.name / metadata.namespace.
    field_labels: tuple[str, ...] = ()
    # Pods, Services, Namespaces and custom resources answer DELETE with the object; most
    # other built-ins answer with a success Status.
    return_deleted_object: bool = False
    # customResourceStrategy refuses PUT without metadata.resourceVersion.
    allow_unconditional_update: bool = True
    name_rule: str = "subdomain"  # or "label1123" / "label1035"
    defaults: tuple[tuple[str, Any], ...] = field(default=())  # (dotted path, value) on create

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def storage_key(self) -> str:
        """All served versions of one resource share storage, keyed by group + plural."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def selectable_fields(self) -> tuple[str, ...]:
        return META_FIELDS + self.field_labels

    @property
    def builtin_group(self) -> bool:
        return not self.custom


def _core(plural: str, kind: str, **kw: Any) -> ResourceType:
    return ResourceType("", "v1", plural, kind, kind.lower(), **kw)


BUILTIN_TYPES: tuple[ResourceType, ...] = (
    _core(
        "pods",
        "Pod",
        short_names=("po",),
        categories=("all",),
        status_subresource=True,
        return_deleted_object=True,
        field_labels=(
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ),
    ),
    _core(
        "services",
        "Service",
        short_names=("svc",),
        categories=("all",),
        status_subresource=True,
        return_deleted_object=True,
        name_rule="label1035",
    ),
    _core("endpoints", "Endpoints", short_names=("ep",)),
    _core("configmaps", "ConfigMap", short_names=("cm",)),
    _core("secrets", "Secret", field_labels=("type",)),
    _core("serviceaccounts", "ServiceAccount", short_names=("sa",)),
    _core(
        "namespaces",
        "Namespace",
        short_names=("ns",),
        namespaced=False,
        status_subresource=True,
        return_deleted_object=True,
        name_rule="label1123",
        field_labels=("status.phase",),
    ),
    _core(
        "events",
        "Event",
        short_names=("ev",),
        field_labels=(
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ),
    ),
    ResourceType(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        "deployment",
        short_names=("deploy",),
        categories=("all",),
        status_subresource=True,
        scale=ScalePaths(structured_selector=True),
        defaults=(("spec.replicas", 1),),
    ),
    ResourceType(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        "replicaset",
        short_names=("rs",),
        categories=("all",),
        status_subresource=True,
        scale=ScalePaths(structured_selector=True),
        defaults=(("spec.replicas", 1),),
    ),
    ResourceType(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "EndpointSlice",
        "endpointslice",
    ),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease", "lease"),
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        "customresourcedefinition",
        namespaced=False,
        short_names=("crd", "crds"),
        categories=("api-extensions",),
        status_subresource=True,
    ),
)

CRD_STORAGE_KEY = "customresourcedefinitions.apiextensions.k8s.io"
NAMESPACES_STORAGE_KEY = "namespaces"


def _jsonpath_to_dotted(path: str) -> str:
    return path[1:] if path.startswith(".") else path


def types_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """The ResourceTypes a CustomResourceDefinition serves (one per served version)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    kind = names["kind"]
    plural = names["plural"]
    out = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        scale = None
        if "scale" in subresources:
            sub = subresources["scale"] or {}
            scale = ScalePaths(
                spec_replicas=sub.get("specReplicasPath", ".spec.replicas"),
                status_replicas=sub.get("statusReplicasPath", ".status.replicas"),
                label_selector=sub.get("labelSelectorPath"),
            )
        out.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=plural,
                kind=kind,
                singular=names.get("singular") or kind.lower(),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                status_subresource="status" in subresources,
                scale=scale,
                custom=True,
                field_labels=tuple(
                    _jsonpath_to_dotted(f["jsonPath"])
                    for f in version.get("selectableFields") or ()
                ),
                return_deleted_object=True,
                allow_unconditional_update=False,
            )
        )
    return out


def crd_manifest(
    group: str,
    kind: str,
    plural: str,
    versions: Iterable[str],
    *,
    short_names: Iterable[str] = (),
    categories: Iterable[str] = (),
    namespaced: bool = True,
    status: bool = True,
) -> dict[str, Any]:
    """A minimal apiextensions.k8s.io/v1 CRD whose schema preserves unknown fields."""
    versions = list(versions)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                **({"shortNames": list(short_names)} if short_names else {}),
                **({"categories": list(categories)} if categories else {}),
            },
            "scope": "Namespaced" if namespaced else "Cluster",
            "versions": [
                {
                    "name": v,
                    "served": True,
                    "storage": i == 0,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                    **({"subresources": {"status": {}}} if status else {}),
                }
                for i, v in enumerate(versions)
            ],
        },
    }


def default_crds() -> list[dict[str, Any]]:
    """CRDs every FakeKubeAPI starts with: Knative Serving (+ its internal kinds) and Istio."""
    knative = ("all", "knative", "serving")
    return [
        crd_manifest(
            "serving.knative.dev",
            "Service",
            "services",
            ["v1"],
            short_names=["kservice", "ksvc"],
            categories=knative,
        ),
        crd_manifest(
            "serving.knative.dev",
            "Configuration",
            "configurations",
            ["v1"],
            short_names=["config", "cfg"],
            categories=knative,
        ),
        crd_manifest(
            "serving.knative.dev",
            "Revision",
            "revisions",
            ["v1"],
            short_names=["rev"],
            categories=knative,
        ),
        crd_manifest(
            "serving.knative.dev", "Route", "routes", ["v1"], short_names=["rt"], categories=knative
        ),
        crd_manifest(
            "autoscaling.internal.knative.dev",
            "PodAutoscaler",
            "podautoscalers",
            ["v1alpha1"],
            short_names=["kpa", "pa"],
            categories=["knative-internal", "autoscaling"],
        ),
        crd_manifest(
            "autoscaling.internal.knative.dev",
            "Metric",
            "metrics",
            ["v1alpha1"],
            categories=["knative-internal", "autoscaling"],
        ),
        crd_manifest(
            "networking.internal.knative.dev",
            "ServerlessService",
            "serverlessservices",
            ["v1alpha1"],
            short_names=["sks"],
            categories=["knative-internal", "networking"],
        ),
        crd_manifest(
            "networking.internal.knative.dev",
            "Ingress",
            "ingresses",
            ["v1alpha1"],
            short_names=["kingress", "king"],
            categories=["knative-internal", "networking"],
        ),
        crd_manifest(
            "networking.istio.io",
            "VirtualService",
            "virtualservices",
            ["v1beta1"],
            short_names=["vs"],
            categories=["istio-io", "networking-istio-io"],
        ),
        crd_manifest(
            "networking.istio.io",
            "Gateway",
            "gateways",
            ["v1beta1"],
            short_names=["gw"],
            categories=["istio-io", "networking-istio-io"],
        ),
    ]


_VERSION_RE = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key putting versions in Kubernetes order: v2, v1, v1beta2, v1beta1, v1alpha1, foo."""
    m = _VERSION_RE.match(version)
    if not m:
        return (3, 0, 0, version)
    stage = {None: 0, "beta": 1, "alpha": 2}[m.group(2)]
    return (stage, -int(m.group(1)), -int(m.group(3) or 0), version)


def _storage_version_hash(rt: ResourceType) -> str:
    digest = hashlib.sha256(f"{rt.group}/{rt.version}/{rt.kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


class ResourceRegistry:
    """Everything the server currently serves, indexed for routing and name resolution."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}

    def register(self, rt: ResourceType) -> None:
        self._types[(rt.group, rt.version, rt.plural)] = rt

    def unregister(self, group: str, plural: str) -> None:
        for key in [k for k in self._types if k[0] == group and k[2] == plural]:
            del self._types[key]

    def types(self) -> list[ResourceType]:
        return list(self._types.values())

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def served_versions(self, group: str, plural: str) -> list[ResourceType]:
        found = [rt for (g, _, p), rt in self._types.items() if g == group and p == plural]
        return sorted(found, key=lambda rt: version_priority(rt.version))

    def preferred(self, group: str, plural: str) -> ResourceType | None:
        versions = self.served_versions(group, plural)
        return versions[0] if versions else None

    def for_storage_key(self, storage_key: str) -> ResourceType | None:
        plural, _, group = storage_key.partition(".")
        return self.preferred(group, plural)

    def for_api_version_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for rt in self._types.values():
            if rt.group == group and rt.version == version and rt.kind == kind:
                return rt
        return None

    def resolve(self, name: str) -> ResourceType:
        """Find a type the way kubectl does: plural, singular, Kind or short name,
        optionally qualified as ``name.group`` or ``name.version.group``.

        Unqualified names prefer the core group, then other built-ins, then custom
        resources, so ``services`` is the core Service and ``ksvc`` the Knative one.
        """
        candidates = []
        for rt in self._types.values():
            for qualifier in ("", rt.group, f"{rt.version}.{rt.group}"):
                for rank, alias in enumerate(
                    (rt.plural, rt.singular, rt.kind.lower(), *rt.short_names)
                ):
                    full = f"{alias}.{qualifier}" if qualifier else alias
                    if full.lower() == name.lower():
                        group_rank = 0 if rt.group == "" else (1 if rt.builtin_group else 2)
                        candidates.append(
                            (min(rank, 3), group_rank, version_priority(rt.version), rt.group, rt)
                        )
        if not candidates:
            raise KeyError(f"the server doesn't have a resource type {name!r}")
        candidates.sort(key=lambda c: c[:4])
        return candidates[0][4]

    # ----- discovery documents -------------------------------------------------------

    def groups(self) -> dict[str, list[str]]:
        """group -> served versions, most preferred first (the core group excluded)."""
        out: dict[str, set[str]] = {}
        for group, version, _ in self._types:
            if group:
                out.setdefault(group, set()).add(version)
        return {g: sorted(vs, key=version_priority) for g, vs in sorted(out.items())}

    def api_group(self, group: str) -> dict[str, Any] | None:
        versions = self.groups().get(group)
        if not versions:
            return None
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": group,
            "versions": entries,
            "preferredVersion": entries[0],
        }

    def api_group_list(self) -> dict[str, Any]:
        groups = []
        for group in self.groups():
            doc = self.api_group(group)
            assert doc is not None
            doc.pop("kind")
            doc.pop("apiVersion")
            groups.append(doc)
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def api_resource_list(self, group: str, version: str) -> dict[str, Any]:
        resources: list[dict[str, Any]] = []
        matching = [rt for (g, v, _), rt in self._types.items() if g == group and v == version]
        if not matching:
            raise errors.no_such_route()
        for rt in sorted(matching, key=lambda rt: rt.plural):
            entry: dict[str, Any] = {
                "name": rt.plural,
                "singularName": rt.singular,
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": list(ALL_VERBS),
                "storageVersionHash": _storage_version_hash(rt),
            }
            if rt.short_names:
                entry["shortNames"] = list(rt.short_names)
            if rt.categories:
                entry["categories"] = list(rt.categories)
            resources.append(entry)
            if rt.scale is not None:
                resources.append(
                    {
                        "name": f"{rt.plural}/scale",
                        "singularName": "",
                        "namespaced": rt.namespaced,
                        "group": "autoscaling",
                        "version": "v1",
                        "kind": "Scale",
                        "verbs": list(SUBRESOURCE_VERBS),
                    }
                )
            if rt.status_subresource:
                resources.append(
                    {
                        "name": f"{rt.plural}/status",
                        "singularName": "",
                        "namespaced": rt.namespaced,
                        "kind": rt.kind,
                        "verbs": list(SUBRESOURCE_VERBS),
                    }
                )
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        }


# What the controller writes besides the chart's CRDs, served built in by a real API
# server (NetworkPolicy) or installed with Knative (DomainMapping, ClusterDomainClaim):
# custom resources here, for the controller's tests and benchmarks/component_memory.py.
CONTROLLER_EXTRA_CRDS = (
    crd_manifest("networking.k8s.io", "NetworkPolicy", "networkpolicies", ["v1"], status=False),
    crd_manifest(
        "serving.knative.dev",
        "DomainMapping",
        "domainmappings",
        ["v1beta1"],
        short_names=["dm"],
        categories=["all", "knative", "serving"],
    ),
    crd_manifest(
        "networking.internal.knative.dev",
        "ClusterDomainClaim",
        "clusterdomainclaims",
        ["v1alpha1"],
        short_names=["cdc"],
        namespaced=False,
        status=False,
    ),
)
