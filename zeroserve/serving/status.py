"""Knative status: conditions for every object, and the ``status`` blocks ``get`` shows.

Conditions follow upstream's condition sets:

- Revision: ``Ready`` = ``ResourcesAvailable`` and ``ContainerHealthy`` (from what the
  runtime reports); ``Active`` (replicas up or not) is informational, as upstream.
- Configuration: ``Ready`` mirrors its latest created revision; a failed one gives
  ``RevisionFailed`` with the revision's message.
- Route: ``Ready`` = ``AllTrafficAssigned`` (resolution) and ``IngressReady`` (programmed).
- Service: ``Ready`` = ``ConfigurationsReady`` and ``RoutesReady``, copied from its children.

A ``Ready`` is False when any dependent is (the first one's reason), else Unknown
when any is (the last one's, as upstream's propagation marks them in order), else
True. ``lastTransitionTime`` moves only when a condition's status changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from zeroserve.serving.domains import CLUSTER_DOMAIN
from zeroserve.serving.routes import rolling_out, route_hosts, traffic_status
from zeroserve.serving.state import (
    FALSE,
    TRUE,
    UNKNOWN,
    Condition,
    Conditions,
    ConfigurationRecord,
    RevisionRecord,
    RouteRecord,
    ServiceRecord,
    State,
)
from zeroserve.topology import RevisionKey

READY = "Ready"
DEFAULT_FAILURE = "RevisionFailed"
"""A revision's reason when the runtime reports a failure without one."""
_RESOURCE_REASONS = frozenset(
    {
        "ProgressDeadlineExceeded",
        "Unschedulable",
        "ResourcesUnavailable",
        "FailedCreate",  # a Deployment's ReplicaFailure: the pod create was refused
        "FailedDelete",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)
"""Failures of getting replicas up at all (``ResourcesAvailable``) rather than of the
container (``ContainerHealthy``), as upstream sorts them: a container that waits (its
waiting reason, such as ``CreateContainerConfigError``) marks ResourcesAvailable False
(``pkg/reconciler/revision/reconcile_resources.go``)."""


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def combine(type_: str, dependents: Iterable[Condition]) -> Condition:
    deps = list(dependents)
    failed = [d for d in deps if d.status == FALSE]
    if failed:
        return Condition(type_, FALSE, failed[0].reason, failed[0].message)
    waiting = [d for d in deps if d.status == UNKNOWN]
    if waiting:
        return Condition(type_, UNKNOWN, waiting[-1].reason, waiting[-1].message)
    return Condition(type_, TRUE)


def revision_conditions(rev: RevisionRecord) -> list[Condition]:
    o = rev.observed
    resources = Condition("ResourcesAvailable", UNKNOWN, "Deploying")
    container = Condition("ContainerHealthy", UNKNOWN, "Deploying")
    if o.ready is True:
        resources = Condition(resources.type, TRUE)
        container = Condition(container.type, TRUE)
    elif o.ready is False:
        reason = o.reason or DEFAULT_FAILURE
        if reason in _RESOURCE_REASONS:
            resources = Condition(resources.type, FALSE, reason, o.message)
        else:
            container = Condition(container.type, FALSE, reason, o.message)
    actual, desired = o.actual_replicas, o.desired_replicas
    if actual:
        active = Condition("Active", TRUE)
    elif actual == 0 and desired == 0:
        active = Condition("Active", FALSE, "NoTraffic", "The target is not receiving traffic.")
    elif actual == 0 and desired:
        active = Condition("Active", UNKNOWN, "Activating", f"Scaling from 0 to {desired}.")
    else:
        active = Condition("Active", UNKNOWN, "Deploying")
    return [resources, container, active, combine(READY, [resources, container])]


def configuration_conditions(state: State, cfg: ConfigurationRecord) -> list[Condition]:
    latest = state.revisions.get(RevisionKey(cfg.namespace, cfg.latest_created))
    ready = latest.conditions.get(READY) if latest is not None else None
    if ready is None or ready.status == UNKNOWN:
        return [Condition(READY, UNKNOWN)]
    if ready.status == TRUE:
        return [Condition(READY, TRUE)]
    message = f'Revision "{cfg.latest_created}" failed with message: {ready.message}'.rstrip(": ")
    return [Condition(READY, FALSE, DEFAULT_FAILURE, message + ".")]


def route_conditions(route: RouteRecord) -> list[Condition]:
    ingress = (
        Condition("IngressReady", TRUE)
        if route.programmed is not None
        else Condition(
            "IngressReady", UNKNOWN, "IngressNotConfigured", "Ingress has not yet been reconciled."
        )
    )
    if rolling_out(route):
        ingress = Condition(
            "IngressReady",
            UNKNOWN,
            "RolloutInProgress",
            "A gradual rollout of the latest revision(s) is in progress.",
        )
    # Resolution last: while it waits, its reason (RevisionMissing) is the one shown.
    return [ingress, route.assignment, combine(READY, [ingress, route.assignment])]


def service_conditions(state: State, key: tuple[str, str]) -> list[Condition]:
    unknown = Condition(READY, UNKNOWN)
    cfg_ready = state.configurations[key].conditions.get(READY, unknown)
    route_ready = state.routes[key].conditions.get(READY, unknown)
    configs = replace(cfg_ready, type="ConfigurationsReady")
    routes = replace(route_ready, type="RoutesReady")
    return [configs, routes, combine(READY, [configs, routes])]


def stamp(old: Conditions, new: list[Condition], now: float) -> Conditions:
    """``new`` keyed by type, each keeping its ``since`` from ``old`` while its status
    holds (``lastTransitionTime``)."""
    out: Conditions = {}
    for c in new:
        prev = old.get(c.type)
        out[c.type] = replace(c, since=prev.since if prev and prev.status == c.status else now)
    return out


def refresh(state: State, now: float) -> None:
    """Recompute every condition, children before parents."""
    for rev in state.revisions.values():
        rev.conditions = stamp(rev.conditions, revision_conditions(rev), now)
    for cfg in state.configurations.values():
        cfg.conditions = stamp(cfg.conditions, configuration_conditions(state, cfg), now)
    for route in state.routes.values():
        route.conditions = stamp(route.conditions, route_conditions(route), now)
    for key, svc in state.services.items():
        svc.conditions = stamp(svc.conditions, service_conditions(state, key), now)


def refresh_services(state: State, now: float) -> None:
    """Recompute only the Services' conditions, for a caller that changed a child's
    conditions after :func:`refresh` (the cluster controller marks an invalid
    Configuration so)."""
    for key, svc in state.services.items():
        svc.conditions = stamp(svc.conditions, service_conditions(state, key), now)


def conditions_list(conditions: Conditions) -> list[dict[str, Any]]:
    """Sorted by type, as upstream keeps them."""
    out = []
    for c in sorted(conditions.values(), key=lambda c: c.type):
        entry: dict[str, Any] = {"type": c.type, "status": c.status}
        if c.reason:
            entry["reason"] = c.reason
        if c.message:
            entry["message"] = c.message
        entry["lastTransitionTime"] = rfc3339(c.since)
        out.append(entry)
    return out


def revision_status(rev: RevisionRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"observedGeneration": 1, "conditions": conditions_list(rev.conditions)}
    if rev.observed.actual_replicas is not None:
        out["actualReplicas"] = rev.observed.actual_replicas
    if rev.observed.desired_replicas is not None:
        out["desiredReplicas"] = rev.observed.desired_replicas
    out["containerStatuses"] = [{"name": rev.container_name}]
    return out


def configuration_status(cfg: ConfigurationRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"observedGeneration": cfg.generation}
    if cfg.latest_created:
        out["latestCreatedRevisionName"] = cfg.latest_created
    if cfg.latest_ready:
        out["latestReadyRevisionName"] = cfg.latest_ready
    out["conditions"] = conditions_list(cfg.conditions)
    return out


def route_status(
    state: State, route: RouteRecord, *, cluster_domain: str = CLUSTER_DOMAIN
) -> dict[str, Any]:
    h = route_hosts(state, route, cluster_domain=cluster_domain)
    out: dict[str, Any] = {
        "observedGeneration": route.generation,
        "url": h.url,
        "address": {"url": h.cluster_local_url},
    }
    if route.programmed is not None and not route.provisional:
        out["traffic"] = traffic_status(state, route, cluster_domain=cluster_domain)
    out["conditions"] = conditions_list(route.conditions)
    return out


def service_status(
    state: State, key: tuple[str, str], svc: ServiceRecord, *, cluster_domain: str = CLUSTER_DOMAIN
) -> dict[str, Any]:
    cfg = configuration_status(state.configurations[key])
    route = route_status(state, state.routes[key], cluster_domain=cluster_domain)
    out: dict[str, Any] = {
        "observedGeneration": svc.generation,
        "url": route["url"],
        "address": route["address"],
    }
    for name in ("latestCreatedRevisionName", "latestReadyRevisionName"):
        if name in cfg:
            out[name] = cfg[name]
    if "traffic" in route:
        out["traffic"] = route["traffic"]
    out["conditions"] = conditions_list(svc.conditions)
    return out
