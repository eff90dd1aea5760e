"""Knative and Kubernetes objects as the data plane sees them: pure mappings to ``topology``.

The autoscaler's and the activator's Kubernetes adapters both read Revisions, the
EndpointSlices of the revisions' private Services and their Pods, and the activator
also reads Routes; this module turns those objects (plain dicts, as ``zeroserve.kube``
returns them) into :mod:`zeroserve.topology` values. It does no I/O and keeps no state,
so it is tested with tables; the only side effect is a log warning when a field that the
schema should have prevented is malformed and a default is used instead.

Names follow Knative: revision ``r`` runs as Deployment ``r-deployment``
(knative/serving ``pkg/reconciler/revision/resources/names/names.go``); its pods are
published by the private Service ``r-private``
(``pkg/reconciler/serverlessservice/resources/names/names.go``), whose EndpointSlices
carry the Service's ``serving.knative.dev/revision`` label; ports are named ``http`` (or
``http2``, h2c) for the queue-proxy (knative/networking ``pkg/apis/networking/ports.go``)
and ``http-autometric`` for its stats (``pkg/apis/serving/v1/revision_helpers.go``). A
Route's ``status.traffic`` holds the resolved split (every entry names a revision), and
its public host is ``status.url``'s host (none when that is a cluster-local name) and its
cluster-local names are the Route's ``svc`` names (``pkg/apis/serving/v1/route_types.go``,
``pkg/reconciler/route/traffic/traffic.go``). On Kubernetes the activator serves both
sets: Istio's two gateways keep the public and the cluster-local hosts apart.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from zeroserve.api.names import child_name
from zeroserve.api.objects import Obj

from .topology import Endpoint, RevisionInfo, RevisionKey, Route, TagRoute, Target

log = logging.getLogger(__name__)


REVISION_LABEL = "serving.knative.dev/revision"
SERVICE_LABEL = "serving.knative.dev/service"
CONFIGURATION_LABEL = "serving.knative.dev/configuration"
ROUTING_STATE_LABEL = "serving.knative.dev/routingState"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
CREATOR_ANNOTATION = "serving.knative.dev/creator"
"""Who created a Service, Configuration or Route (Knative's webhook sets it; immutable)."""
LAST_MODIFIER_ANNOTATION = "serving.knative.dev/lastModifier"
"""Who last changed its spec."""
"""Set by Kubernetes on every EndpointSlice: the Service the slice belongs to."""
SERVING_PORT_NAMES = ("http", "http2")
STATS_PORT_NAME = "http-autometric"
DEFAULT_STATS_PORT = 9090
CLUSTER_DOMAIN = "cluster.local"


def deployment_name(revision: str) -> str:
    return child_name(revision, "-deployment")


def private_service_name(revision: str) -> str:
    return child_name(revision, "-private")


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _labels(obj: Obj) -> Mapping[str, str]:
    return _meta(obj).get("labels") or {}


def revision_key(obj: Obj) -> RevisionKey:
    """The key of a Revision (any namespaced object): its namespace and name."""
    meta = _meta(obj)
    return RevisionKey(meta.get("namespace") or "", meta["name"])


# ----- revisions ---------------------------------------------------------------------------


def _number(obj: Obj, path: str, value: Any, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        # The CRD schema should prevent this; one bad field must not hide the revision.
        log.warning(
            "revision %s: %s is %r, not a number; using %g", revision_key(obj), path, value, default
        )
        return default
    return float(value)


def revision_info(obj: Obj) -> RevisionInfo:
    """A ``serving.knative.dev/v1`` Revision as the data plane sees it."""
    meta = _meta(obj)
    spec = obj.get("spec") or {}
    labels = _labels(obj)
    return RevisionInfo(
        key=revision_key(obj),
        container_concurrency=int(
            _number(obj, "spec.containerConcurrency", spec.get("containerConcurrency"), 0)
        ),
        annotations=dict(meta.get("annotations") or {}),
        # Knative labels a revision no route points at "reserve"; until the labeller has
        # run there is no label, and such a revision counts as reachable (as upstream).
        reachable=labels.get(ROUTING_STATE_LABEL) != "reserve",
        service=labels.get(SERVICE_LABEL, ""),
        configuration=labels.get(CONFIGURATION_LABEL, ""),
        timeout_seconds=_number(obj, "spec.timeoutSeconds", spec.get("timeoutSeconds"), 300.0),
        response_start_timeout_seconds=_number(
            obj, "spec.responseStartTimeoutSeconds", spec.get("responseStartTimeoutSeconds"), 0.0
        ),
        idle_timeout_seconds=_number(
            obj, "spec.idleTimeoutSeconds", spec.get("idleTimeoutSeconds"), 0.0
        ),
        failure=_failure(obj),
        protocol=revision_protocol(spec),
    )


def revision_protocol(spec: Obj) -> str:
    """``h2c`` when the serving container's port is named so (the container with
    ``ports``; ``pkg/apis/serving/v1/revision_helpers.go`` GetProtocol)."""
    containers = spec.get("containers")
    for c in containers if isinstance(containers, list) else []:
        ports = c.get("ports") if isinstance(c, dict) else None
        if isinstance(ports, list) and ports and isinstance(ports[0], dict):
            return "h2c" if ports[0].get("name") == "h2c" else "http1"
    return "http1"


def _failure(obj: Obj) -> str:
    """``reason: message`` of a Ready=False condition, else empty."""
    status = obj.get("status")
    conditions = status.get("conditions") if isinstance(status, dict) else None
    for c in conditions if isinstance(conditions, list) else []:
        if isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "False":
            return ": ".join(str(x) for x in (c.get("reason"), c.get("message")) if x)
    return ""


# ----- endpoints ---------------------------------------------------------------------------


def slice_revision(endpoint_slice: Obj) -> RevisionKey | None:
    """The revision an EndpointSlice publishes (its ``serving.knative.dev/revision``
    label), None for a slice without one."""
    revision = _labels(endpoint_slice).get(REVISION_LABEL)
    if not revision:
        return None
    return RevisionKey(_meta(endpoint_slice).get("namespace") or "", revision)


def is_private_slice(endpoint_slice: Obj) -> bool:
    """Whether the slice belongs to its revision's private Service ``<rev>-private``.

    A revision's public Service carries the same revision label, and while the revision
    is behind the activator its endpoints are the activators themselves: an activator
    that took those for replicas would forward requests to itself. A slice without the
    service-name label (hand-made, as in a test) is taken for a private one."""
    labels = _labels(endpoint_slice)
    revision = labels.get(REVISION_LABEL)
    if not revision:
        return False
    service = labels.get(SERVICE_NAME_LABEL)
    return service is None or service == private_service_name(revision)


def _ports(endpoint_slice: Obj) -> dict[Any, Any]:
    return {p.get("name"): p.get("port") for p in endpoint_slice.get("ports") or ()}


def serving_port(endpoint_slice: Obj) -> int | None:
    """The queue-proxy's serving port of a slice (named ``http``, else ``http2``), None
    when it has neither: such a slice publishes nothing a proxy could use."""
    ports = _ports(endpoint_slice)
    port = next((ports[n] for n in SERVING_PORT_NAMES if ports.get(n)), None)
    return None if port is None else int(port)


def _unix_time(stamp: Any) -> float | None:
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None


def pod_started_at(pod: Obj | None) -> float:
    """Unix time a pod started (``status.startTime``, else its creation), 0 if unknown."""
    if pod is None:
        return 0.0
    started = _unix_time((pod.get("status") or {}).get("startTime"))
    if started is None:
        started = _unix_time(_meta(pod).get("creationTimestamp"))
    return started or 0.0


def slice_endpoints(endpoint_slice: Obj, pods_by_name: Mapping[str, Obj]) -> list[Endpoint]:
    """Every replica a slice publishes on the queue-proxy's serving port, in slice order.

    ``ready`` follows the endpoint's condition (the API reads a missing one as ready);
    not-ready replicas are included because the activator probes them and uses them the
    moment a probe passes. Terminating ones are left out: they will take no new work.
    ``pods_by_name`` (the slice's namespace) gives start times; a pod missing from it has
    ``started_at`` 0. A slice without a serving port yields nothing."""
    port = serving_port(endpoint_slice)
    if port is None:
        return []
    stats_port = int(_ports(endpoint_slice).get(STATS_PORT_NAME) or DEFAULT_STATS_PORT)
    found = []
    for endpoint in endpoint_slice.get("endpoints") or ():
        conditions = endpoint.get("conditions") or {}
        addresses = endpoint.get("addresses") or ()
        if conditions.get("terminating") or not addresses:
            continue
        target = endpoint.get("targetRef") or {}
        pod = target.get("name") if target.get("kind", "Pod") == "Pod" else None
        found.append(
            Endpoint(
                name=pod or addresses[0],
                host=addresses[0],
                port=port,
                stats_port=stats_port,
                started_at=pod_started_at(pods_by_name.get(pod)) if pod else 0.0,
                ready=conditions.get("ready") is not False,
            )
        )
    return found


def activator_peers(endpoint_slices: Iterable[Obj], pod_ip: str | None) -> tuple[int, int]:
    """(index, count) of this activator among the ready addresses of the activator
    Service's slices (knative/serving ``pkg/activator/net/throttler.go``): ``count`` ready
    activators, ``index`` the position of ``pod_ip`` in their sorted list, -1 when it is
    not among them (not ready yet, or the IP is unknown). Every activator sorts the same
    list, so each gets its own index."""
    ready: set[str] = set()
    for endpoint_slice in endpoint_slices:
        for endpoint in endpoint_slice.get("endpoints") or ():
            conditions = endpoint.get("conditions") or {}
            if conditions.get("ready") is False or conditions.get("terminating"):
                continue
            ready.update(endpoint.get("addresses") or ())
    addresses = sorted(ready)
    index = addresses.index(pod_ip) if pod_ip in ready else -1
    return index, len(addresses)


# ----- routes ------------------------------------------------------------------------------


def _url_host(url: Any) -> str | None:
    if not isinstance(url, str) or not url:
        return None
    return urlsplit(url).hostname or None


def route_from_status(route_obj: Obj, *, cluster_domain: str = CLUSTER_DOMAIN) -> Route | None:
    """The traffic a ``serving.knative.dev/v1`` Route has been programmed with.

    Reads ``status.traffic`` (each entry: ``revisionName``, ``percent``, optional ``tag``
    and ``url``) and ``status.url``. The default split goes to every entry by percent
    (a revision named twice gets the sum); its public host is the host of ``status.url``
    unless that is cluster-local, its local hosts ``{name}.{ns}.svc.{cluster_domain}``
    and ``{name}.{ns}.svc``. Each tag gets the host of its ``url`` (public unless
    cluster-local) and ``{tag}-{name}.{ns}.svc.{cluster_domain}`` / ``.svc`` (the
    default tag-template), all for its revision; a tag named by several entries (a
    gradual rollout) is split between them by percent.

    None while the route has no resolved traffic (a new route the controller has not
    reconciled yet). A malformed entry raises ``ValueError`` naming the field: status is
    written by the controller, so that is a bug, and guessing would misroute traffic."""
    meta = _meta(route_obj)
    namespace, name = meta.get("namespace") or "", meta["name"]
    status = route_obj.get("status") or {}
    traffic = status.get("traffic")
    if not traffic:
        return None
    where = f"route {namespace}/{name}: status.traffic"
    if not isinstance(traffic, list):
        raise ValueError(f"{where} is {traffic!r}, not a list")
    local_suffix = f".svc.{cluster_domain}"

    def split_hosts(url_host: str | None, label: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        local = f"{label}.{namespace}.svc"
        public = () if url_host is None or url_host.endswith(local_suffix) else (url_host,)
        locals_ = [f"{local}.{cluster_domain}", local]
        if url_host is not None and url_host.endswith(local_suffix):
            locals_ += [url_host, url_host[: -len(cluster_domain) - 1]]
        return public, _unique(locals_)

    targets: list[Target] = []
    tagged: dict[str, list[tuple[Target, str | None]]] = {}
    for i, entry in enumerate(traffic):
        if not isinstance(entry, dict):
            raise ValueError(f"{where}[{i}] is {entry!r}, not an object")
        revision = entry.get("revisionName")
        if not isinstance(revision, str) or not revision:
            raise ValueError(f"{where}[{i}].revisionName is {revision!r}, not a revision name")
        percent = entry.get("percent", 0)
        if percent is None:
            percent = 0
        if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
            raise ValueError(f"{where}[{i}].percent is {percent!r}, not an integer in 0..100")
        target = Target(RevisionKey(namespace, revision), percent)
        targets.append(target)
        tag = entry.get("tag")
        if tag:
            tagged.setdefault(str(tag), []).append((target, _url_host(entry.get("url"))))
    tags = {}
    for tag, entries in tagged.items():
        public, local = split_hosts(entries[0][1], f"{tag}-{name}")
        split = tuple(t for t, _ in entries)
        tags[tag] = TagRoute(
            hosts=public,
            local_hosts=local,
            revision=split[-1].revision,
            targets=split if len(split) > 1 and any(t.percent for t in split) else (),
        )
    public, local = split_hosts(_url_host(status.get("url")), name)
    return Route(
        namespace=namespace,
        name=name,
        hosts=public,
        targets=tuple(targets),
        tags=tags,
        local_hosts=local,
    )


def _unique(hosts: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(h for h in hosts if h))
