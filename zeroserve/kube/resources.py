"""Where objects live in the Kubernetes API: resource references and the types around them.

A :class:`ResourceRef` names one REST resource (group, version, plural) and builds its
URL paths; the constants below are the resources zeroserve reads and writes. Objects
themselves are plain JSON dicts (:data:`~zeroserve.api.objects.Obj`), keyed in caches by
:func:`object_key`. This module imports neither ``kubernetes_asyncio`` nor ``aiohttp``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import quote

from zeroserve.api.objects import Obj

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
ObjectKey = tuple[str, str]
"""(namespace, name) of an object; namespace is "" for cluster-scoped ones."""
ChangeCallback = Callable[[str, Obj], None]


@dataclass(frozen=True)
class ResourceRef:
    """One REST resource: where its objects live in the API."""

    group: str
    """API group, "" for the core group (pods, services, configmaps)."""
    version: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        """The URL path; without a namespace a namespaced resource is listed cluster-wide."""
        path = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            path += f"/namespaces/{quote(namespace, safe='')}"
        elif self.namespaced and name is not None:
            raise ValueError(f"{self} is namespaced: {name!r} needs a namespace")
        path += f"/{self.plural}"
        if name is not None:
            path += f"/{quote(name, safe='')}"
        if subresource is not None:
            path += f"/{subresource}"
        return path

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


DEPLOYMENTS = ResourceRef("apps", "v1", "deployments")
ENDPOINT_SLICES = ResourceRef("discovery.k8s.io", "v1", "endpointslices")
PODS = ResourceRef("", "v1", "pods")
SERVICES = ResourceRef("", "v1", "services")
CONFIG_MAPS = ResourceRef("", "v1", "configmaps")
LEASES = ResourceRef("coordination.k8s.io", "v1", "leases")
KSERVICES = ResourceRef("serving.knative.dev", "v1", "services")
CONFIGURATIONS = ResourceRef("serving.knative.dev", "v1", "configurations")
REVISIONS = ResourceRef("serving.knative.dev", "v1", "revisions")
ROUTES = ResourceRef("serving.knative.dev", "v1", "routes")
VIRTUAL_SERVICES = ResourceRef("networking.istio.io", "v1beta1", "virtualservices")


class ObjectList(NamedTuple):
    items: list[Obj]
    resource_version: str
    """The list's resourceVersion: watch from here to see every later change."""


def object_key(obj: Obj) -> ObjectKey:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "", meta["name"])


def describe(ref: ResourceRef, namespace: str | None, name: str | None = None) -> str:
    """The objects (or the one object) as a person would name them in a message."""
    if name is None:
        return f"{ref} in {namespace}" if namespace else f"{ref} (all namespaces)"
    return f"{ref} {namespace}/{name}" if namespace else f"{ref} {name}"
