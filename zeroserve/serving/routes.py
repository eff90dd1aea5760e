"""Routes: defaulting traffic, resolving targets to revisions, and the routing table.

Resolution follows upstream's traffic builder (knative/serving
``pkg/reconciler/route/traffic/traffic.go``): a
``latestRevision`` target follows its configuration's latest *ready* revision;
a named revision must exist (and, in a Service, belong to it) and be ready. If
any target cannot be resolved the route is not ready and keeps serving its
previous programming -- unless that programming names a revision that no longer
exists, which would only give errors. The default split merges targets by
revision and drops 0 % shares; each tag gets its own hosts for its revision.

One difference from upstream, on purpose: a route that has never been ready,
whose targets are only *waiting* (created, not failed), is programmed
provisionally with those revisions. Upstream has no ingress until then, so a
request sent right after ``apply`` gets a 404; here the activator holds it until
the first replica is up, which is what a scale-from-zero platform promises. The
route's status still says it is not ready, and ``status.traffic`` stays empty
until the traffic really resolves; a failure removes the provisional programming.

Gradual rollout (:mod:`zeroserve.serving.rollout`, docs/routing.md): when a
``latestRevision`` target's revision changes while the route already serves, the new
revision's share grows in steps over the rollout duration; ``programmed`` (and so the
routing table and ``status.traffic``) holds the split in effect, the older revisions
as ``latestRevision`` entries with their shrinking percents, as upstream shows them.
"""

from __future__ import annotations

from dataclasses import replace

from zeroserve.api.objects import Route as RouteObject
from zeroserve.api.objects import Service, TrafficTarget
from zeroserve.api.validate import rollout_seconds
from zeroserve.serving import rollout
from zeroserve.serving.domains import CLUSTER_DOMAIN, Hosts, hosts
from zeroserve.serving.state import (
    FALSE,
    TRUE,
    UNKNOWN,
    Condition,
    Key,
    ResolvedTarget,
    RouteRecord,
    State,
)
from zeroserve.topology import RevisionKey, Route, TagRoute, Target

ASSIGNED = "AllTrafficAssigned"
MISSING_REVISION = "RevisionMissing"
MISSING_CONFIGURATION = "ConfigurationMissing"


def service_traffic(svc: Service) -> tuple[TrafficTarget, ...]:
    """The traffic of a Service's own Route: defaults applied (as upstream's
    ``pkg/apis/serving/v1/route_defaults.go``), and every
    ``latestRevision`` target pointing at the Service's configuration."""
    name = svc.meta.name
    if not svc.traffic:
        return (TrafficTarget(configuration_name=name, latest_revision=True, percent=100),)
    return tuple(
        replace(t, configuration_name=name, latest_revision=True)
        if t.is_latest
        else replace(t, latest_revision=False)
        for t in svc.traffic
    )


def route_traffic(route: RouteObject) -> tuple[TrafficTarget, ...]:
    """A standalone Route's traffic with ``latestRevision`` defaulted."""
    return tuple(replace(t, latest_revision=t.is_latest) for t in route.traffic)


def _problem(status: str, reason: str, message: str) -> Condition:
    return Condition(ASSIGNED, status, reason, message)


def _resolve_one(state: State, route: RouteRecord, t: TrafficTarget) -> ResolvedTarget | Condition:
    ns = route.namespace
    percent = t.percent or 0
    if t.latest_revision:
        cfg = state.configurations.get((ns, t.configuration_name))
        if cfg is None:
            return _problem(
                FALSE,
                MISSING_CONFIGURATION,
                f'Configuration "{t.configuration_name}" referenced in traffic not found.',
            )
        if not cfg.latest_ready:
            latest = state.revisions.get(RevisionKey(ns, cfg.latest_created))
            if latest is not None and latest.observed.ready is False:
                return _problem(
                    FALSE,
                    MISSING_REVISION,
                    f'Configuration "{cfg.name}" does not have any ready Revision.',
                )
            return _problem(
                UNKNOWN,
                MISSING_REVISION,
                f'Configuration "{cfg.name}" is waiting for a Revision to become ready.',
            )
        return ResolvedTarget(cfg.latest_ready, percent, t.tag, True, cfg.name)
    rev = state.revisions.get(RevisionKey(ns, t.revision_name))
    if rev is None:
        return _problem(
            FALSE,
            MISSING_REVISION,
            f'Revision "{t.revision_name}" referenced in traffic not found.',
        )
    if route.service and rev.configuration != route.service:
        # A Service's route may only send traffic to the Service's own revisions.
        return _problem(
            FALSE,
            MISSING_REVISION,
            f'Revision "{rev.key.name}" belongs to Configuration "{rev.configuration}", '
            f'not to Service "{route.service}".',
        )
    if rev.observed.ready is False:
        return _problem(
            FALSE,
            MISSING_REVISION,
            f'Revision "{rev.key.name}" referenced in traffic failed: {rev.observed.message}'.rstrip(
                ": "
            ),
        )
    if rev.observed.ready is None:
        return _problem(
            UNKNOWN,
            MISSING_REVISION,
            f'Revision "{rev.key.name}" referenced in traffic is not ready yet.',
        )
    return ResolvedTarget(rev.key.name, percent, t.tag, False, rev.configuration)


def _provisional_one(state: State, route: RouteRecord, t: TrafficTarget) -> ResolvedTarget | None:
    """The revision a target will get once it is ready: the latest created one of a
    followed configuration, or the named one; None if there is none or it failed."""
    ns = route.namespace
    if t.latest_revision:
        cfg = state.configurations.get((ns, t.configuration_name))
        name = cfg.latest_created if cfg is not None else ""
    else:
        name = t.revision_name
    rev = state.revisions.get(RevisionKey(ns, name))
    if (
        rev is None
        or rev.observed.ready is False
        or (route.service and rev.configuration != route.service)
    ):
        return None
    return ResolvedTarget(name, t.percent or 0, t.tag, bool(t.latest_revision), rev.configuration)


def rollout_duration(state: State, route: RouteRecord) -> int:
    """Seconds a new revision takes to get its traffic: the route's (a Service's route
    carries the Service's annotations) ``serving.knative.dev/rollout-duration``, else
    ``config-network``'s ``rollout-duration``. As upstream, an annotation of 0 falls
    back to the cluster's setting."""
    return rollout_seconds(route.meta.annotations) or state.configs.network.rollout_duration


def reconcile_route(state: State, route: RouteRecord, now: float | None = None) -> None:
    """Resolve the route's traffic; program it when every target resolves. ``now``:
    the reconcile's time, which moves gradual rollouts (None: no rollout, every
    change at once)."""
    resolved: list[ResolvedTarget] = []
    problems: list[Condition] = []
    for t in route.traffic:
        outcome = _resolve_one(state, route, t)
        if isinstance(outcome, Condition):
            problems.append(outcome)
        else:
            resolved.append(outcome)
    if not problems:
        if route.rollout is None or now is None:
            # Nothing served before (or no clock): the traffic takes effect at once.
            route.rollout = rollout.build(resolved)
        else:
            route.rollout = rollout.advance(
                resolved, route.rollout, now, rollout_duration(state, route)
            )
        route.programmed = tuple(
            ResolvedTarget(share.revision, share.percent, t.tag, t.latest_revision, t.configuration)
            for t, shares in rollout.apply(resolved, route.rollout)
            for share in shares
        )
        route.provisional = False
        route.assignment = Condition(ASSIGNED, TRUE)
        return
    # A failure is reported before a wait, as upstream marks False over Unknown.
    failed = [p for p in problems if p.status == FALSE]
    route.assignment = failed[0] if failed else problems[-1]
    if route.programmed is None or route.provisional:
        pending = [_provisional_one(state, route, t) for t in route.traffic]
        complete = not failed and all(p is not None for p in pending)
        route.programmed = tuple(p for p in pending if p is not None) if complete else None
        route.provisional = complete
    elif any(
        RevisionKey(route.namespace, t.revision) not in state.revisions for t in route.programmed
    ):
        route.programmed = None
        route.rollout = None


def next_rollout_step(state: State, now: float) -> float | None:
    """When the controller must reconcile again for a rollout step (the earliest step
    due over every route, never before ``now``); None when nothing is rolling out."""
    due = [
        t
        for route in state.routes.values()
        if route.rollout is not None and (t := route.rollout.next_step()) is not None
    ]
    return max(now, min(due)) if due else None


def rolling_out(route: RouteRecord) -> bool:
    """Whether a gradual rollout is moving the route's traffic (upstream marks
    ``IngressReady`` Unknown, ``RolloutInProgress``, meanwhile)."""
    return route.rollout is not None and not route.rollout.done


def route_hosts(
    state: State, route: RouteRecord, *, tag: str = "", cluster_domain: str = CLUSTER_DOMAIN
) -> Hosts:
    """The hosts of ``route``'s default split or of one ``tag``, from config-domain,
    config-network and the route's labels, annotations and cluster-local tags."""
    return hosts(
        route.name,
        route.namespace,
        route.meta.labels,
        state.configs.domain,
        tag=tag,
        cluster_domain=cluster_domain,
        network=state.configs.network,
        annotations=route.meta.annotations,
        cluster_local=bool(tag) and tag in route.cluster_local_tags,
    )


def referenced(state: State) -> set[RevisionKey]:
    """Revisions some route's programmed traffic names (tags and 0 % targets included)."""
    return {
        RevisionKey(r.namespace, t.revision)
        for r in state.routes.values()
        if r.programmed
        for t in r.programmed
    }


def reachable(state: State) -> set[RevisionKey]:
    """Revisions whose min-scale counts (``RevisionInfo.reachable``).

    Those a route serves, plus each configuration's latest created revision when a
    route follows that configuration's latest revision or no route names the
    configuration at all: upstream's "pending" routing state, which it treats as
    reachable. A revision pinned out of every route is not reachable."""
    out = referenced(state)
    following: set[Key] = set()
    routed: set[Key] = set()
    for route in state.routes.values():
        for t in route.traffic:
            if t.latest_revision:
                following.add((route.namespace, t.configuration_name))
                routed.add((route.namespace, t.configuration_name))
            else:
                rev = state.revisions.get(RevisionKey(route.namespace, t.revision_name))
                if rev is not None:
                    routed.add((route.namespace, rev.configuration))
    for key, cfg in state.configurations.items():
        if cfg.latest_created and (key in following or key not in routed):
            out.add(RevisionKey(cfg.namespace, cfg.latest_created))
    return out


def routing_state(key: RevisionKey, served: set[RevisionKey], live: set[RevisionKey]) -> str:
    """Upstream's ``serving.knative.dev/routingState`` label value: ``served`` from
    :func:`referenced`, ``live`` from :func:`reachable`."""
    if key in served:
        return "active"
    return "pending" if key in live else "reserve"


def routing_table(state: State, *, cluster_domain: str = CLUSTER_DOMAIN) -> list[Route]:
    """Every programmed route as the activator consumes it, sorted by namespace and name:
    public hosts in ``hosts``, cluster-local names in ``local_hosts`` (both per tag too)."""
    table = []
    for (ns, name), route in sorted(state.routes.items()):
        if route.programmed is None:
            continue
        merged: dict[str, int] = {}
        for t in route.programmed:
            if t.percent:
                merged[t.revision] = merged.get(t.revision, 0) + t.percent
        by_tag: dict[str, list[ResolvedTarget]] = {}
        for t in route.programmed:
            if t.tag:
                by_tag.setdefault(t.tag, []).append(t)
        tags = {}
        for tag, entries in by_tag.items():
            h = route_hosts(state, route, tag=tag, cluster_domain=cluster_domain)
            split = tuple(Target(RevisionKey(ns, e.revision), e.percent) for e in entries)
            tags[tag] = TagRoute(
                hosts=h.public,
                local_hosts=h.local,
                revision=RevisionKey(ns, entries[-1].revision),
                targets=split if len(entries) > 1 and any(e.percent for e in entries) else (),
            )
        h = route_hosts(state, route, cluster_domain=cluster_domain)
        table.append(
            Route(
                namespace=ns,
                name=name,
                hosts=h.public,
                targets=tuple(Target(RevisionKey(ns, rev), pct) for rev, pct in merged.items()),
                tags=tags,
                local_hosts=h.local,
            )
        )
    return table


def traffic_status(
    state: State, route: RouteRecord, *, cluster_domain: str = CLUSTER_DOMAIN
) -> list[dict[str, object]]:
    """``status.traffic``: the programmed targets (during a rollout, each rolling target
    as one entry per revision, oldest first), with a URL for each tag (none while the
    programming is provisional: Knative's status shows resolved traffic only)."""
    out: list[dict[str, object]] = []
    for t in () if route.provisional else route.programmed or ():
        entry: dict[str, object] = {}
        if t.tag:
            entry["tag"] = t.tag
        entry.update(revisionName=t.revision, latestRevision=t.latest_revision, percent=t.percent)
        if t.tag:
            entry["url"] = route_hosts(state, route, tag=t.tag, cluster_domain=cluster_domain).url
        out.append(entry)
    return out
