"""Kubernetes access for zeroserve: one client on plain JSON objects, and watch caches.

The only package that imports ``kubernetes_asyncio``. Its modules, by concern:

* :mod:`~zeroserve.kube.resources`: :class:`ResourceRef` and the resources zeroserve
  uses (``DEPLOYMENTS``, ``PODS``, ...), object keys and content types;
* :mod:`~zeroserve.kube.errors`: the :class:`KubeError` tree, and the one place that
  translates ``ApiException``, aiohttp and timeout errors into it;
* :mod:`~zeroserve.kube.client`: :func:`connect` and :class:`KubeClient` (get, list,
  create, replace, patch, delete, scale, watch);
* :mod:`~zeroserve.kube.watch`: :class:`WatchCache`, the in-memory informer the data
  plane reads instead of calling the API.

The names below are re-exported so callers write ``from zeroserve import kube`` and
``kube.connect``, ``kube.KubeError``, ``kube.DEPLOYMENTS``. How the components use the
API in a cluster (the objects the controller writes, the RBAC each one needs) is in
``docs/kubernetes.md``.
"""

from zeroserve.kube.client import DEFAULT_REQUEST_TIMEOUT, KubeClient, connect
from zeroserve.kube.errors import (
    AlreadyExists,
    Conflict,
    Expired,
    Invalid,
    KubeError,
    NotFound,
    Unavailable,
)
from zeroserve.kube.resources import (
    CONFIG_MAPS,
    CONFIGURATIONS,
    DEPLOYMENTS,
    ENDPOINT_SLICES,
    JSON,
    KSERVICES,
    LEASES,
    MERGE_PATCH,
    PODS,
    REVISIONS,
    ROUTES,
    SERVICES,
    VIRTUAL_SERVICES,
    ChangeCallback,
    ObjectKey,
    ObjectList,
    ResourceRef,
    object_key,
)
from zeroserve.kube.watch import Backoff, WatchCache, not_synced

__all__ = [
    "CONFIGURATIONS",
    "CONFIG_MAPS",
    "DEFAULT_REQUEST_TIMEOUT",
    "DEPLOYMENTS",
    "ENDPOINT_SLICES",
    "JSON",
    "KSERVICES",
    "LEASES",
    "MERGE_PATCH",
    "PODS",
    "REVISIONS",
    "ROUTES",
    "SERVICES",
    "VIRTUAL_SERVICES",
    "AlreadyExists",
    "Backoff",
    "ChangeCallback",
    "Conflict",
    "Expired",
    "Invalid",
    "KubeClient",
    "KubeError",
    "NotFound",
    "ObjectKey",
    "ObjectList",
    "ResourceRef",
    "Unavailable",
    "WatchCache",
    "connect",
    "not_synced",
    "object_key",
]
