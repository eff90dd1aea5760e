"""Events as the local control plane keeps them: what ``zeroserve get events`` and the
end of ``zeroserve describe`` show (docs/local-mode.md, "Logs and events").

On Kubernetes, components write Event objects and the API server keeps them for an
hour. Locally nothing writes them, so :class:`EventWatcher` derives the same events
from the changes it observes between two states of the objects, pods and replica
counts (after every change the hub publishes), with the reasons and messages their
writers use on Kubernetes:

- the controller's (``controller/events.py``, after Knative's ``pkg/reconciler``):
  ``Created`` on the owner of a new child, ``RevisionReady``, a Revision's failure
  with its Ready reason and message, ``ConfigurationReady``, ``LatestReadyUpdate``,
  ``LatestCreatedFailed`` / ``LatestReadyFailed``;
- the kubelet's for pods: ``Started`` (a container started), ``BackOff`` (its restart
  waits out the back-off), ``Unhealthy`` (a ready container's readiness probe
  failed), ``Killing`` (the pod is being stopped);
- the Deployment controller's ``ScalingReplicaSet`` on the revision's Deployment
  (``{revision}-deployment``) when its replica count changes.

:class:`EventLog` keeps them as the API server and the event recorder do: a repeat of
the same event on the same object raises its count and last time (client-go's event
correlator), at most :data:`MAX_PER_OBJECT` per object, none older than
:data:`EVENT_TTL`, at most :data:`MAX_OBJECTS` objects. Pure: time is passed in.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from zeroserve.local.podstatus import rfc3339

NORMAL, WARNING = "Normal", "Warning"
MAX_PER_OBJECT = 50
"""Events kept per object (the oldest go first)."""
MAX_OBJECTS = 1000
"""Objects with events kept (those whose last event is oldest go first)."""
EVENT_TTL = 3600.0
"""The API server's default ``--event-ttl`` (one hour)."""

Ref = tuple[str, str, str]
"""(kind, namespace, name) of the object an event is about."""

API_VERSIONS = {
    "Service": "serving.knative.dev/v1",
    "Configuration": "serving.knative.dev/v1",
    "Revision": "serving.knative.dev/v1",
    "Route": "serving.knative.dev/v1",
    "DomainMapping": "serving.knative.dev/v1beta1",
    "Pod": "v1",
    "Deployment": "apps/v1",
}


@dataclass
class Event:
    kind: str
    namespace: str
    name: str
    type: str
    reason: str
    message: str
    source: str
    """The component that reports it (``From`` in ``kubectl describe``)."""
    first: float
    last: float
    count: int = 1
    seq: int = 0
    """The order it was last recorded in (events recorded at one time keep it)."""

    @property
    def ref(self) -> Ref:
        return (self.kind, self.namespace, self.name)

    def to_object(self) -> dict[str, Any]:
        """As a core/v1 Event."""
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{self.name}.{int(self.first * 1e6):x}",
                "namespace": self.namespace,
            },
            "involvedObject": {
                "apiVersion": API_VERSIONS.get(self.kind, ""),
                "kind": self.kind,
                "namespace": self.namespace,
                "name": self.name,
            },
            "type": self.type,
            "reason": self.reason,
            "message": self.message,
            "source": {"component": self.source},
            "count": self.count,
            "firstTimestamp": rfc3339(self.first),
            "lastTimestamp": rfc3339(self.last),
        }


class EventLog:
    """Events by object, bounded."""

    def __init__(
        self,
        per_object: int = MAX_PER_OBJECT,
        max_objects: int = MAX_OBJECTS,
        ttl: float = EVENT_TTL,
    ) -> None:
        self.per_object = per_object
        self.max_objects = max_objects
        self.ttl = ttl
        self._by_object: OrderedDict[Ref, list[Event]] = OrderedDict()
        """Least recently recorded object first."""
        self._seq = 0

    def record(
        self,
        ref: Ref,
        type_: str,
        reason: str,
        message: str,
        source: str,
        now: float,
    ) -> Event:
        events = self._by_object.pop(ref, [])
        events = [e for e in events if now - e.last <= self.ttl]
        for e in events:
            if (e.type, e.reason, e.message, e.source) == (type_, reason, message, source):
                e.count += 1
                e.last = now
                events.remove(e)
                events.append(e)
                break
        else:
            e = Event(*ref, type_, reason, message, source, first=now, last=now)
            events.append(e)
        self._seq += 1
        e.seq = self._seq
        self._by_object[ref] = events[-self.per_object :]
        while len(self._by_object) > self.max_objects:
            self._by_object.popitem(last=False)
        return e

    def list(
        self,
        namespace: str | None = None,
        refs: Iterable[tuple[str, str]] | None = None,
        *,
        now: float | None = None,
    ) -> list[Event]:
        """The events in ``namespace`` (None: all), of the objects ``refs`` ((kind,
        name) pairs; None: every object), oldest last-seen first."""
        wanted = None if refs is None else set(refs)
        out = [
            e
            for (kind, ns, name), events in self._by_object.items()
            if (namespace is None or ns == namespace) and (wanted is None or (kind, name) in wanted)
            for e in events
            if now is None or now - e.last <= self.ttl
        ]
        return sorted(out, key=lambda e: (e.last, e.seq))


# -- what changed ----------------------------------------------------------------------

Objects = Mapping[str, list[dict[str, Any]]]
"""Kind (``Service``, ``Configuration``, ``Revision``, ``Route``, ``Pod``) -> objects."""
Derived = tuple[Ref, str, str, str, str]
"""(object, type, reason, message, source)."""

SOURCES = {
    "Service": "service-controller",
    "Configuration": "configuration-controller",
    "Revision": "revision-controller",
    "Route": "route-controller",
}
"""Knative's reconcilers' names, as their events' source."""


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


def _ready(obj: Mapping[str, Any] | None) -> dict[str, Any]:
    for c in ((obj or {}).get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready":
            return dict(c)
    return {}


def _owner(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    for o in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if o.get("controller"):
            return str(o.get("kind", "")), str(o.get("name", ""))
    return None


def object_events(
    kind: str, old: Mapping[str, Any] | None, new: Mapping[str, Any]
) -> list[Derived]:
    """The controller's events for one object of ``kind`` that went from ``old`` (None:
    it is new) to ``new``."""
    ns, name = _key(new)
    ref = (kind, ns, name)
    out: list[Derived] = []
    if old is None and (owner := _owner(new)) is not None:
        okind, oname = owner
        out.append(
            (
                (okind, ns, oname),
                NORMAL,
                "Created",
                f'Created {kind} "{name}"',
                SOURCES.get(okind, ""),
            )
        )
    before, after = _ready(old), _ready(new)
    src = SOURCES.get(kind, "")
    if kind == "Revision":
        if after.get("status") == "True" and before.get("status") != "True":
            msg = "Revision becomes ready upon all resources being ready"
            out.append((ref, NORMAL, "RevisionReady", msg, src))
        elif after.get("status") == "False" and before.get("status") != "False":
            reason = after.get("reason") or "RevisionFailed"
            out.append((ref, WARNING, reason, after.get("message") or "Revision is not ready", src))
    elif kind == "Configuration":
        old_status, new_status = (old or {}).get("status") or {}, new.get("status") or {}
        was = old_status.get("latestReadyRevisionName") or ""
        now_ready = new_status.get("latestReadyRevisionName") or was
        if now_ready != was:
            if not was:
                out.append((ref, NORMAL, "ConfigurationReady", "Configuration becomes ready", src))
            msg = f'LatestReadyRevisionName updated to "{now_ready}"'
            out.append((ref, NORMAL, "LatestReadyUpdate", msg, src))
        if after.get("status") == "False" and before.get("status") != "False":
            created = new_status.get("latestCreatedRevisionName") or ""
            if created and created == now_ready:
                msg = f'Latest ready revision "{created}" has failed'
                out.append((ref, WARNING, "LatestReadyFailed", msg, src))
            elif created:
                msg = f'Latest created revision "{created}" has failed'
                out.append((ref, WARNING, "LatestCreatedFailed", msg, src))
    return out


def _containers(pod: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    status = (pod or {}).get("status") or {}
    return {
        str(c.get("name")): c
        for c in [
            *(status.get("initContainerStatuses") or ()),
            *(status.get("containerStatuses") or ()),
        ]
    }


def pod_events(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[Derived]:
    """The kubelet's events for a pod that went from ``old`` (None: new) to ``new``."""
    ns, name = _key(new)
    ref = ("Pod", ns, name)
    uid = (new.get("metadata") or {}).get("uid", "")
    out: list[Derived] = []
    before, after = _containers(old), _containers(new)
    for cname, c in after.items():
        prev = before.get(cname) or {}
        state, was = c.get("state") or {}, prev.get("state") or {}
        running, was_running = state.get("running"), was.get("running")
        if running and (
            not was_running or was_running.get("startedAt") != running.get("startedAt")
        ):
            out.append((ref, NORMAL, "Started", f"Started container {cname}", "kubelet"))
        waiting = (state.get("waiting") or {}).get("reason")
        if waiting == "CrashLoopBackOff" and (was.get("waiting") or {}).get("reason") != waiting:
            msg = f"Back-off restarting failed container {cname} in pod {name}_{ns}({uid})"
            out.append((ref, WARNING, "BackOff", msg, "kubelet"))
        if (
            running
            and was_running
            and was_running.get("startedAt") == running.get("startedAt")
            and prev.get("ready")
            and not c.get("ready")
            and not (new.get("metadata") or {}).get("deletionTimestamp")
        ):
            out.append((ref, WARNING, "Unhealthy", "Readiness probe failed", "kubelet"))
    deleting = (new.get("metadata") or {}).get("deletionTimestamp")
    if deleting and not ((old or {}).get("metadata") or {}).get("deletionTimestamp"):
        for cname, c in after.items():
            if (c.get("state") or {}).get("running"):
                out.append((ref, NORMAL, "Killing", f"Stopping container {cname}", "kubelet"))
    return out


def scale_events(
    old: Mapping[tuple[str, str], int], new: Mapping[tuple[str, str], int]
) -> list[Derived]:
    """The Deployment controller's events for revisions ((namespace, revision)) whose
    replica count changed (a new revision's first count included)."""
    out: list[Derived] = []
    for (ns, rev), n in sorted(new.items()):
        was = old.get((ns, rev), 0)
        if n == was:
            continue
        deployment = f"{rev}-deployment"
        way = "up" if n > was else "down"
        msg = f"Scaled {way} replica set {deployment} to {n} from {was}"
        out.append(
            (
                ("Deployment", ns, deployment),
                NORMAL,
                "ScalingReplicaSet",
                msg,
                "deployment-controller",
            )
        )
    return out


class EventWatcher:
    """Records the events of each change between the states it is shown."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        self._scales: dict[tuple[str, str], int] = {}

    def observe(
        self, objects: Objects, scales: Mapping[tuple[str, str], int], now: float
    ) -> list[Event]:
        derived: list[Derived] = []
        seen: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        # children before owners' status: "Created Revision" before "RevisionReady"
        for kind, items in objects.items():
            before = self._objects.get(kind, {})
            seen[kind] = {}
            for obj in items:
                key = _key(obj)
                seen[kind][key] = obj
                old = before.get(key)
                if old is obj:
                    continue  # the same object shown again (ObserveRoutes keeps them)
                derived += pod_events(old, obj) if kind == "Pod" else object_events(kind, old, obj)
        derived += scale_events(self._scales, scales)
        self._objects, self._scales = seen, dict(scales)
        return [self.log.record(*d, now=now) for d in derived]
