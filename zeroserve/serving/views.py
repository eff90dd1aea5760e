"""Read-only views for the CLI: Kubernetes-shaped objects, kubectl's tables, a tree.

Objects carry what ``kubectl get -o yaml`` shows for Knative's kinds:
``metadata`` with ``generation``, ``creationTimestamp``, Knative's labels
(``serving.knative.dev/service``, ``.../configuration``,
``.../configurationGeneration``, ``.../routingState``; on a Revision the annotation
``.../routingStateModified``) and ``ownerReferences``; ``spec`` with upstream's
defaults filled in; ``status``. Tables use the columns of Knative's CRDs
(``additionalPrinterColumns``; a DomainMapping's are NAME URL READY REASON), and
kubectl's for ConfigMaps (NAME DATA AGE) and Secrets (NAME TYPE DATA AGE).

Secret values are never shown: ``get -o yaml/json`` keeps a Secret's keys and
replaces each value by ``<redacted: N bytes>`` (its decoded length, what ``kubectl
describe secret`` shows), so output can be pasted into an issue safely.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

from zeroserve.api.objects import ConfigMapObject, Obj, SecretObject
from zeroserve.serving import domainmapping, kinds
from zeroserve.serving.kinds import Kind
from zeroserve.serving.revisions import container_names
from zeroserve.serving.routes import reachable, referenced, routing_state, traffic_status
from zeroserve.serving.state import Key, State
from zeroserve.serving.status import (
    READY,
    configuration_status,
    revision_status,
    rfc3339,
    route_status,
    service_status,
)
from zeroserve.topology import RevisionKey

SERVICE_LABEL = "serving.knative.dev/service"
CONFIGURATION_LABEL = "serving.knative.dev/configuration"
GENERATION_LABEL = "serving.knative.dev/configurationGeneration"
ROUTING_STATE_LABEL = "serving.knative.dev/routingState"
ROUTING_STATE_MODIFIED = "serving.knative.dev/routingStateModified"


COLUMNS: dict[str, tuple[str, ...]] = {
    "Service": ("NAME", "URL", "LATESTCREATED", "LATESTREADY", "READY", "REASON"),
    "Configuration": ("NAME", "LATESTCREATED", "LATESTREADY", "READY", "REASON"),
    "Revision": (
        "NAME",
        "CONFIG NAME",
        "GENERATION",
        "READY",
        "REASON",
        "ACTUAL REPLICAS",
        "DESIRED REPLICAS",
    ),
    "Route": ("NAME", "URL", "READY", "REASON"),
    "DomainMapping": ("NAME", "URL", "READY", "REASON"),
    "ConfigMap": ("NAME", "DATA", "AGE"),
    "Secret": ("NAME", "TYPE", "DATA", "AGE"),
}


def _metadata(
    ns: str,
    name: str,
    created: float,
    labels: Any,
    annotations: Any,
    *,
    generation: int | None = None,
    owner: tuple[str, str] | None = None,
) -> Obj:
    meta: Obj = {"name": name, "namespace": ns}
    if generation is not None:
        meta["generation"] = generation
    meta["creationTimestamp"] = rfc3339(created)
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    if owner is not None:
        kind = kinds.kind_of(owner[0])
        meta["ownerReferences"] = [
            {
                "apiVersion": kind.api_version,
                "kind": kind.name,
                "name": owner[1],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return meta


def _object(kind: Kind, metadata: Obj, spec: Obj | None, status: Obj | None) -> Obj:
    obj: Obj = {"apiVersion": kind.api_version, "kind": kind.name, "metadata": metadata}
    if spec is not None:
        obj["spec"] = spec
    if status is not None:
        obj["status"] = status
    return obj


def service_object(state: State, key: Key) -> Obj:
    svc = state.services[key]
    route = state.routes[key]
    spec = svc.applied.spec_dict()
    # Upstream's defaulting writes the route's traffic back into the Service's spec.
    spec["traffic"] = [
        {k: v for k, v in t.to_dict().items() if k != "configurationName"} for t in route.traffic
    ]
    meta = _metadata(
        *key,
        svc.created,
        svc.applied.meta.labels,
        svc.applied.meta.annotations,
        generation=svc.generation,
    )
    return _object(kinds.SERVICE, meta, spec, service_status(state, key, svc))


def configuration_object(state: State, key: Key) -> Obj:
    cfg = state.configurations[key]
    meta = _metadata(
        *key,
        cfg.created,
        cfg.meta.labels,
        cfg.meta.annotations,
        generation=cfg.generation,
        owner=("Service", cfg.service) if cfg.service else None,
    )
    return _object(
        kinds.CONFIGURATION, meta, {"template": cfg.template.to_dict()}, configuration_status(cfg)
    )


def revision_object(
    state: State, key: RevisionKey, served: set[RevisionKey], live: set[RevisionKey]
) -> Obj:
    rev = state.revisions[key]
    labels = dict(rev.template.labels)
    labels.update(
        {
            CONFIGURATION_LABEL: rev.configuration,
            GENERATION_LABEL: str(rev.generation),
            ROUTING_STATE_LABEL: routing_state(key, served, live),
        }
    )
    if rev.service:
        labels[SERVICE_LABEL] = rev.service
    annotations = dict(rev.template.annotations)
    if rev.routing_state_modified is not None:
        annotations[ROUTING_STATE_MODIFIED] = rfc3339(rev.routing_state_modified)
    meta = _metadata(
        key.namespace,
        key.name,
        rev.created,
        labels,
        annotations,
        generation=1,
        owner=("Configuration", rev.configuration),
    )
    spec = rev.template.spec_dict()
    spec.update(containerConcurrency=rev.container_concurrency, timeoutSeconds=rev.timeout_seconds)
    if rev.response_start_timeout_seconds:
        spec["responseStartTimeoutSeconds"] = rev.response_start_timeout_seconds
    if rev.idle_timeout_seconds:
        spec["idleTimeoutSeconds"] = rev.idle_timeout_seconds
    names, init_names = container_names(rev.template, rev.container_name)
    for container, name in zip(spec["containers"], names, strict=True):
        container["name"] = name
    for container, name in zip(spec.get("initContainers", ()), init_names, strict=True):
        container["name"] = name
    return _object(kinds.REVISION, meta, spec, revision_status(rev))


def route_object(state: State, key: Key) -> Obj:
    route = state.routes[key]
    meta = _metadata(
        *key,
        route.created,
        route.meta.labels,
        route.meta.annotations,
        generation=route.generation,
        owner=("Service", route.service) if route.service else None,
    )
    spec = {"traffic": [t.to_dict() for t in route.traffic]}
    return _object(kinds.ROUTE, meta, spec, route_status(state, route))


def domain_mapping_object(state: State, key: Key) -> Obj:
    """A DomainMapping: ``spec.ref.namespace`` defaulted to its own, as Knative's
    defaulting does."""
    record = state.domain_mappings[key]
    dm = record.applied
    meta = _metadata(
        *key, record.created, dm.meta.labels, dm.meta.annotations, generation=record.generation
    )
    spec = dm.spec_dict()
    spec["ref"].setdefault("namespace", key[0])
    return _object(kinds.DOMAIN_MAPPING, meta, spec, domainmapping.status(state, record))


def config_map_object(cm: ConfigMapObject, created: float) -> Obj:
    obj = cm.to_dict()
    obj["metadata"] = _metadata(
        cm.meta.namespace, cm.meta.name, created, cm.meta.labels, cm.meta.annotations
    )
    obj.setdefault("data", {})
    return obj


def redacted(encoded: str) -> str:
    """What a Secret value is shown as: its decoded length, never the value."""
    try:
        size = len(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError):
        size = len(encoded)
    return f"<redacted: {size} bytes>"


def secret_object(secret: SecretObject, created: float) -> Obj:
    """The Secret as ``kubectl get -o yaml`` shows it, values replaced (module doc)."""
    obj = secret.to_dict()
    obj["metadata"] = _metadata(
        secret.meta.namespace,
        secret.meta.name,
        created,
        secret.meta.labels,
        secret.meta.annotations,
    )
    if secret.data:
        obj["data"] = {k: redacted(v) for k, v in secret.data.items()}
    return obj


def get(state: State, kind: Kind, namespace: str | None, name: str | None) -> list[Obj]:
    """Objects of ``kind``, sorted by namespace and name; ``namespace`` None = all.
    A ``name`` that does not exist raises ``NotFound``."""

    def wanted(ns: str, n: str) -> bool:
        return (namespace is None or ns == namespace) and (name is None or n == name)

    if kind is kinds.SERVICE:
        found = [service_object(state, k) for k in sorted(state.services) if wanted(*k)]
    elif kind is kinds.CONFIGURATION:
        found = [configuration_object(state, k) for k in sorted(state.configurations) if wanted(*k)]
    elif kind is kinds.ROUTE:
        found = [route_object(state, k) for k in sorted(state.routes) if wanted(*k)]
    elif kind is kinds.DOMAIN_MAPPING:
        found = [
            domain_mapping_object(state, k) for k in sorted(state.domain_mappings) if wanted(*k)
        ]
    elif kind is kinds.REVISION:
        served, live = referenced(state), reachable(state)
        found = [
            revision_object(state, k, served, live) for k in sorted(state.revisions) if wanted(*k)
        ]
    elif kind is kinds.SECRET:
        found = [
            secret_object(sec, state.created.get((kind.name, *k), 0.0))
            for k, sec in sorted(state.secrets.items())
            if wanted(*k)
        ]
    else:
        found = [
            config_map_object(cm, state.created.get((kind.name, *k), 0.0))
            for k, cm in sorted(state.config_maps.items())
            if wanted(*k)
        ]
    if name is not None and not found:
        raise kind.not_found(namespace or "default", name)
    return found


def ready_of(obj: Obj) -> tuple[str, str]:
    """(status, reason) of an object's Ready condition; reason empty when True."""
    for c in obj.get("status", {}).get("conditions", ()):
        if c["type"] == READY:
            return c["status"], "" if c["status"] == "True" else c.get("reason", "")
    return "Unknown", ""


def age(seconds: float) -> str:
    """kubectl's AGE (``duration.HumanDuration``): 45s, 3m20s, 17m, 5h3m, 3d4h, 40d."""
    s = int(max(0.0, seconds))
    m, h, d = s // 60, s // 3600, s // 86400
    if s < 120:
        return f"{s}s"
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if h < 3:
        return f"{m}m"
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    if h < 192:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 365 * 2:
        return f"{d}d"
    return f"{d // 365}y"


def _age_of(obj: Obj, now: float) -> str:
    stamp = obj["metadata"].get("creationTimestamp")
    if not stamp:
        return "<unknown>"
    created = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    return age(now - created)


def row(obj: Obj, now: float = 0.0) -> list[str]:
    """One table row in :data:`COLUMNS` order for the object's kind (``now`` for AGE)."""
    kind, name, status = obj["kind"], obj["metadata"]["name"], obj.get("status", {})
    if kind == "ConfigMap":
        count = len(obj.get("data", {})) + len(obj.get("binaryData", {}))
        return [name, str(count), _age_of(obj, now)]
    if kind == "Secret":
        return [name, obj.get("type", ""), str(len(obj.get("data", {}))), _age_of(obj, now)]
    ready, reason = ready_of(obj)
    created, latest = (
        status.get("latestCreatedRevisionName", ""),
        status.get("latestReadyRevisionName", ""),
    )
    if kind == "Service":
        return [name, status.get("url", ""), created, latest, ready, reason]
    if kind == "Configuration":
        return [name, created, latest, ready, reason]
    if kind in ("Route", "DomainMapping"):
        return [name, status.get("url", ""), ready, reason]
    labels = obj["metadata"].get("labels", {})
    replicas = [
        str(status[k]) if k in status else "" for k in ("actualReplicas", "desiredReplicas")
    ]
    return [
        name,
        labels.get(CONFIGURATION_LABEL, ""),
        labels.get(GENERATION_LABEL, ""),
        ready,
        reason,
        *replicas,
    ]


def table(
    kind: Kind, objects: list[Obj], *, all_namespaces: bool, now: float = 0.0
) -> tuple[list[str], list[list[str]]]:
    """kubectl's columns; with ``all_namespaces`` a leading NAMESPACE column (``-A``)."""
    headers = list(COLUMNS[kind.name])
    rows = [row(o, now) for o in objects]
    if all_namespaces:
        headers.insert(0, "NAMESPACE")
        rows = [[o["metadata"]["namespace"], *r] for o, r in zip(objects, rows, strict=True)]
    return headers, rows


def tree(state: State, namespace: str, name: str) -> Obj:
    """A Service's objects as nested data::

        {"service": {name, namespace, url, ready, reason},
         "configuration": {name, latestCreatedRevisionName, latestReadyRevisionName, ready, reason},
         "revisions": [{namespace, name, generation, ready, reason, percent, tags, routingState,
                        actualReplicas, desiredReplicas}, ...],      # the configuration's, newest first
         "route": {name, url, ready, reason, traffic}}

    ``percent`` is the revision's share of the default split; ``tags`` the tags naming it.
    """
    key = (namespace, name)
    if key not in state.services:
        raise kinds.SERVICE.not_found(namespace, name)
    svc, cfg, route = service_object(state, key), state.configurations[key], state.routes[key]
    shares: dict[str, int] = {}
    tags: dict[str, list[str]] = {}
    for t in route.programmed or ():
        shares[t.revision] = shares.get(t.revision, 0) + t.percent
        if t.tag:
            tags.setdefault(t.revision, []).append(t.tag)
    served, live = referenced(state), reachable(state)
    revisions = []
    for rev_name in reversed(cfg.revisions):
        rev_key = RevisionKey(namespace, rev_name)
        rev = revision_object(state, rev_key, served, live)
        ready, reason = ready_of(rev)
        status = rev["status"]
        revisions.append(
            {
                "namespace": namespace,
                "name": rev_name,
                "generation": state.revisions[rev_key].generation,
                "ready": ready,
                "reason": reason,
                "percent": shares.get(rev_name, 0),
                "tags": tags.get(rev_name, []),
                "routingState": rev["metadata"]["labels"][ROUTING_STATE_LABEL],
                "actualReplicas": status.get("actualReplicas"),
                "desiredReplicas": status.get("desiredReplicas"),
            }
        )
    cfg_ready = ready_of(configuration_object(state, key))
    route_ready = ready_of(route_object(state, key))
    svc_ready = ready_of(svc)
    return {
        "service": {
            "name": name,
            "namespace": namespace,
            "url": svc["status"]["url"],
            "ready": svc_ready[0],
            "reason": svc_ready[1],
        },
        "configuration": {
            "name": name,
            "latestCreatedRevisionName": cfg.latest_created,
            "latestReadyRevisionName": cfg.latest_ready,
            "ready": cfg_ready[0],
            "reason": cfg_ready[1],
        },
        "revisions": revisions,
        "route": {
            "name": name,
            "url": svc["status"]["url"],
            "ready": route_ready[0],
            "reason": route_ready[1],
            "traffic": traffic_status(state, route),
        },
    }
