"""Which Events the controller reports for its writes (pure; written by
``zeroserve.kube.events.EventRecorder``, leader only, like every write).

The reasons and messages are Knative's (``pkg/reconciler``):

- a child created: ``Created`` on its owner, "Created Configuration "x"" (the Service's,
  Configuration's and Route's reconcilers; for a Route the VirtualService and the
  placeholder Service stand for Knative's Ingress);
- a write the API refused: ``CreationFailed`` on the owner, ``UpdateFailed`` on the
  object ("Failed to update status for "x": ..."), as the generated reconcilers do;
  a Deployment that cannot be written shows here;
- a Revision becoming ready: ``RevisionReady`` (``revision.go``);
- a Configuration: ``ConfigurationReady`` for its first ready revision,
  ``LatestReadyUpdate`` when it moves, ``LatestCreatedFailed`` / ``LatestReadyFailed``
  when its latest revision fails (``configuration.go``).

Beyond Knative: a Revision that stops being ready gets a Warning with its Ready
condition's reason and message (a crashing container, pods that cannot be scaled up),
which Knative only shows in the status.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from controller.writes import Write
from zeroserve.api.objects import Obj
from zeroserve.kube import ResourceRef

NORMAL, WARNING = "Normal", "Warning"

KINDS = {
    ("serving.knative.dev", "services"): "Service",
    ("serving.knative.dev", "configurations"): "Configuration",
    ("serving.knative.dev", "revisions"): "Revision",
    ("serving.knative.dev", "routes"): "Route",
    ("serving.knative.dev", "domainmappings"): "DomainMapping",
    ("apps", "deployments"): "Deployment",
    ("", "services"): "Service",
    ("networking.istio.io", "virtualservices"): "VirtualService",
    ("networking.k8s.io", "networkpolicies"): "NetworkPolicy",
    ("networking.internal.knative.dev", "clusterdomainclaims"): "ClusterDomainClaim",
}


@dataclass(frozen=True)
class Event:
    involved: Obj
    type: str
    reason: str
    message: str


def _kind(ref: ResourceRef) -> str:
    return KINDS.get((ref.group, ref.plural), ref.plural)


def _object(ref: ResourceRef, meta: dict[str, Any]) -> Obj:
    return {"apiVersion": ref.api_version, "kind": _kind(ref), "metadata": meta}


def _owner(obj: Obj | None, namespace: str) -> Obj | None:
    for owner in ((obj or {}).get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("controller"):
            return {
                "apiVersion": owner.get("apiVersion", ""),
                "kind": owner.get("kind", ""),
                "metadata": {
                    "name": owner.get("name", ""),
                    "namespace": namespace,
                    "uid": owner.get("uid", ""),
                },
            }
    return None


def _ready(status: Obj | None) -> dict[str, Any]:
    for condition in (status or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return dict(condition)
    return {}


def on_success(write: Write) -> list[Event]:
    """The Events of a write the API took."""
    if write.verb == "create":
        owner = _owner(write.body, write.namespace)
        if owner is None:
            return []
        return [Event(owner, NORMAL, "Created", f'Created {_kind(write.ref)} "{write.name}"')]
    if write.verb != "status" or write.current is None or write.body is None:
        return []
    old_status = write.current.get("status") or {}
    new_status = write.body.get("status") or {}
    involved = _object(write.ref, write.current.get("metadata") or {})
    old, new = _ready(old_status), _ready(new_status)
    events = []
    kind = _kind(write.ref)
    if kind == "Revision" and write.ref.group == "serving.knative.dev":
        if new.get("status") == "True" and old.get("status") != "True":
            events.append(
                Event(
                    involved,
                    NORMAL,
                    "RevisionReady",
                    "Revision becomes ready upon all resources being ready",
                )
            )
        elif new.get("status") == "False" and old.get("status") != "False":
            events.append(
                Event(
                    involved,
                    WARNING,
                    new.get("reason") or "RevisionFailed",
                    new.get("message") or "Revision is not ready",
                )
            )
    elif kind == "Configuration":
        before = old_status.get("latestReadyRevisionName") or ""
        after = new_status.get("latestReadyRevisionName") or before
        if after != before:
            if not before:
                events.append(
                    Event(involved, NORMAL, "ConfigurationReady", "Configuration becomes ready")
                )
            events.append(
                Event(
                    involved,
                    NORMAL,
                    "LatestReadyUpdate",
                    f'LatestReadyRevisionName updated to "{after}"',
                )
            )
        if new.get("status") == "False" and old.get("status") != "False":
            created = new_status.get("latestCreatedRevisionName") or ""
            if created and created == after:
                events.append(
                    Event(
                        involved,
                        WARNING,
                        "LatestReadyFailed",
                        f'Latest ready revision "{created}" has failed',
                    )
                )
            elif created:
                events.append(
                    Event(
                        involved,
                        WARNING,
                        "LatestCreatedFailed",
                        f'Latest created revision "{created}" has failed',
                    )
                )
    return events


def on_failure(write: Write, error: str) -> list[Event]:
    """The Warning of a write the API refused."""
    kind = _kind(write.ref)
    if write.verb == "create":
        owner = _owner(write.body, write.namespace)
        if owner is None:
            return []
        return [
            Event(
                owner, WARNING, "CreationFailed", f'Failed to create {kind} "{write.name}": {error}'
            )
        ]
    if write.verb == "delete":
        return []
    meta = (write.current or {}).get("metadata") or {
        "name": write.name,
        "namespace": write.namespace,
    }
    if write.verb == "status":
        return [
            Event(
                _object(write.ref, meta),
                WARNING,
                "UpdateFailed",
                f'Failed to update status for "{write.name}": {error}',
            )
        ]
    owner = _owner(write.current, write.namespace) or _object(write.ref, meta)
    return [
        Event(owner, WARNING, "UpdateFailed", f'Failed to update {kind} "{write.name}": {error}')
    ]
