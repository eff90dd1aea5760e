"""Revision garbage collection: which revisions of a configuration may be deleted.

Knative's rules (knative/serving ``pkg/reconciler/gc/gc.go``, settings from
``config-gc``, :class:`zeroserve.api.network.GCConfig`), per configuration:

- Nothing happens while the configuration has at most ``min-non-active-revisions``
  revisions, or when ``max-non-active-revisions``, ``retain-since-create-time`` and
  ``retain-since-last-active-time`` are all disabled.
- Only *non-active* revisions are candidates: not the latest ready one, not annotated
  ``serving.knative.dev/no-gc: "true"``, and in routing state ``reserve`` (a route
  named it once and no longer does, or it never had traffic and is not its
  configuration's newest). zeroserve also never collects the latest created revision
  nor any revision a route names (in its spec or in what it serves, tags and 0 %
  targets included).
- Candidates are taken oldest "last active" first: the time the routing state last
  changed (``routingStateModified``), which for a reserve revision is when it left the
  routes, or its creation.
- A candidate is stale when it is older than ``retain-since-create-time`` *and*
  inactive for longer than ``retain-since-last-active-time`` (a disabled bound does
  not hold it back; both disabled: nothing is stale). Stale candidates are collected
  while more than ``min-non-active-revisions`` candidates remain.
- Then, unless ``max-non-active-revisions`` is disabled, the oldest remaining
  candidates beyond that number are collected whatever their age.

Pure: time is an argument. :func:`collect` applies the verdict to a ``State``.
"""

from __future__ import annotations

from zeroserve.api.network import DISABLED, GCConfig
from zeroserve.api.validate import NO_GC
from zeroserve.serving.routes import referenced
from zeroserve.serving.state import ConfigurationRecord, RevisionRecord, State
from zeroserve.topology import RevisionKey

RESERVE = "reserve"
"""Knative's routing state of a revision no route serves."""


def last_active(rev: RevisionRecord) -> float:
    """Knative's ``revisionLastActiveTime``: ``routingStateModified``, else creation."""
    return rev.created if rev.routing_state_modified is None else rev.routing_state_modified


def named_by_routes(state: State) -> set[RevisionKey]:
    """Revisions any route names: in its traffic spec or in what it serves."""
    out = set(referenced(state))
    for route in state.routes.values():
        for t in route.traffic:
            if t.revision_name:
                out.add(RevisionKey(route.namespace, t.revision_name))
    return out


def _preserved(rev: RevisionRecord) -> bool:
    return rev.template.annotations.get(NO_GC, "").lower() == "true"


def _non_active(
    state: State, cfg: ConfigurationRecord, named: set[RevisionKey]
) -> list[RevisionRecord]:
    """The configuration's candidates, oldest last-active first."""
    out = [
        rev
        for rev in state.configuration_revisions(cfg)
        if rev.key.name not in (cfg.latest_ready, cfg.latest_created)
        and not _preserved(rev)
        and rev.routing_state == RESERVE
        and rev.key not in named
    ]
    out.sort(key=lambda r: (last_active(r), r.created, r.key.name))
    return out


def _stale(gc: GCConfig, rev: RevisionRecord, now: float) -> bool:
    since_create, since_active = gc.retain_since_create_time, gc.retain_since_last_active_time
    if since_create == DISABLED and since_active == DISABLED:
        return False
    if since_create != DISABLED and now - rev.created < since_create:
        return False
    return not (since_active != DISABLED and now - last_active(rev) < since_active)


def _all_disabled(gc: GCConfig) -> bool:
    return (
        gc.max_non_active_revisions == DISABLED
        and gc.retain_since_create_time == DISABLED
        and gc.retain_since_last_active_time == DISABLED
    )


def collectable(state: State, gc: GCConfig, now: float) -> list[RevisionKey]:
    """The revisions Knative's garbage collector deletes at ``now``, sorted."""
    if _all_disabled(gc):
        return []
    low, high = gc.min_non_active_revisions, gc.max_non_active_revisions
    named = named_by_routes(state)
    out: list[RevisionKey] = []
    for cfg in state.configurations.values():
        if len(cfg.revisions) <= low:
            continue
        revs = _non_active(state, cfg, named)
        if len(revs) <= low:
            continue
        most = len(revs) - low  # at least ``low`` candidates remain
        stale = [r for r in revs if _stale(gc, r, now)][:most]
        out += [r.key for r in stale]
        if len(stale) == most or high == DISABLED:
            continue
        rest = [r for r in revs if r not in stale]
        out += [r.key for r in rest[: max(0, len(rest) - high)]]
    return sorted(out)


def next_deadline(state: State, gc: GCConfig, now: float) -> float | None:
    """When a reconcile may next collect something by the passing of time alone: ``now``
    when something is collectable already, else the earliest time a candidate turns
    stale (in a configuration with more candidates than the minimum); None: never."""
    if collectable(state, gc, now):
        return now
    since_create, since_active = gc.retain_since_create_time, gc.retain_since_last_active_time
    if since_create == DISABLED and since_active == DISABLED:
        return None
    named = named_by_routes(state)
    soonest: float | None = None
    for cfg in state.configurations.values():
        if len(cfg.revisions) <= gc.min_non_active_revisions:
            continue
        revs = _non_active(state, cfg, named)
        if len(revs) <= gc.min_non_active_revisions:
            continue
        for rev in revs:
            due = max(
                rev.created + since_create if since_create != DISABLED else rev.created,
                last_active(rev) + since_active if since_active != DISABLED else rev.created,
            )
            if due > now and (soonest is None or due < soonest):
                soonest = due
    return soonest


def collect(state: State, now: float) -> list[RevisionKey]:
    """Delete what :func:`collectable` names (with ``state.configs.gc``) from ``state``;
    returns the deleted revisions."""
    gone = collectable(state, state.configs.gc, now)
    for key in gone:
        rev = state.revisions.pop(key)
        cfg = state.configurations.get((key.namespace, rev.configuration))
        if cfg is not None and key.name in cfg.revisions:
            cfg.revisions.remove(key.name)
    return gone
