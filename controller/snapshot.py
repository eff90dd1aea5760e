"""Knative objects from the cluster as the pure controller's records.

The pure controller (``zeroserve.serving``) keeps its whole world in memory; in the
cluster the API is the memory. These functions rebuild the same records from the watched
objects, so that the pure reconcile (latest ready revision, route resolution, status
conditions) runs unchanged on them:

- a Configuration's generation is its ``metadata.generation`` (the API bumps it on every
  spec change), so revision names survive controller restarts;
- what the controller decided before and must remember is read back from the status it
  wrote: ``latestReadyRevisionName`` (it never moves back), the route's programmed
  ``status.traffic`` (kept while a new target is not ready), each condition's
  ``lastTransitionTime``, and a revision's last Ready verdict (a ready revision scaled to
  zero stays Ready);
- a manifest is parsed and validated by ``zeroserve.api`` exactly as ``zeroserve apply``
  does, minus the local-only rules.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from controller.meta import (
    GENERATION_LABEL,
    ROUTING_STATE_MODIFIED,
    SYSTEM_LABELS,
    compact,
    created_at,
    labels_of,
    meta,
    user_object,
)
from controller.observe import Observation
from zeroserve.api.configs import Configs, DefaultsConfig
from zeroserve.api.errors import ManifestError
from zeroserve.api.objects import Configuration, Obj, Object, RevisionTemplate
from zeroserve.api.parse import parse_document
from zeroserve.api.validate import validate
from zeroserve.knative import CONFIGURATION_LABEL, ROUTING_STATE_LABEL, SERVICE_LABEL
from zeroserve.kube import ObjectKey
from zeroserve.serving.state import (
    FALSE,
    TRUE,
    UNKNOWN,
    Condition,
    Conditions,
    Observed,
    ResolvedTarget,
    RevisionRecord,
)
from zeroserve.topology import RevisionKey

log = logging.getLogger(__name__)

Objects = Mapping[ObjectKey, Obj]

READY = "Ready"
SYSTEM_ANNOTATIONS = frozenset({ROUTING_STATE_MODIFIED})
"""Annotations the controller sets on revisions; the rest came from the template."""


def problems_text(errors: list[ManifestError]) -> str:
    """Validation problems as one status message: ``path: rule; path: rule``."""
    return "; ".join(f"{e.path}: {e.rule}" if e.path else e.rule for e in errors)


def parse_object(obj: Obj, configs: Configs) -> tuple[Object | None, str]:
    """The user's manifest of a Service, Configuration or Route, validated for the
    cluster; (None, the problems) when it is not acceptable."""
    parsed = parse_document(user_object(obj), "")
    if isinstance(parsed, list):
        return None, problems_text(parsed)
    found = validate(parsed, configs, local=False)
    if found:
        return None, problems_text(found)
    return parsed, ""


def _time(text: Any) -> float:
    if not isinstance(text, str):
        return 0.0
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def conditions_of(obj: Obj | None) -> Conditions:
    """The object's status conditions as records (their transition times kept)."""
    out: Conditions = {}
    for c in ((obj or {}).get("status") or {}).get("conditions") or ():
        if not isinstance(c, dict) or not c.get("type"):
            continue
        status = c.get("status") if c.get("status") in (TRUE, FALSE, UNKNOWN) else UNKNOWN
        out[str(c["type"])] = Condition(
            str(c["type"]),
            str(status),
            str(c.get("reason") or ""),
            str(c.get("message") or ""),
            _time(c.get("lastTransitionTime")),
        )
    return out


def last_verdict(obj: Obj | None) -> Observed:
    """A revision's Ready verdict as its status last recorded it."""
    ready = conditions_of(obj).get(READY)
    if ready is None or ready.status == UNKNOWN:
        return Observed()
    if ready.status == TRUE:
        return Observed(ready=True)
    return Observed(ready=False, reason=ready.reason, message=ready.message)


def merge(previous: Observed, seen: Observation) -> Observed:
    """The new verdict: what the pods say, else the last one (``set_revision_state``'s rule)."""
    ready, reason, message = seen.ready, seen.reason, seen.message
    if ready is None and previous.ready is not None:
        ready, reason, message = previous.ready, previous.reason, previous.message
    return Observed(
        ready=ready,
        reason=reason,
        message=message,
        desired_replicas=seen.desired_replicas,
        actual_replicas=seen.actual_replicas,
    )


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def revision_template(revision: Obj) -> RevisionTemplate | None:
    """A Revision's spec read back as a template (it was written from one); None if it
    does not parse, e.g. a Revision someone else wrote."""
    m = meta(revision)
    user_labels = {k: v for k, v in labels_of(revision).items() if k not in SYSTEM_LABELS}
    template_meta: Obj = {}
    if user_labels:
        template_meta["labels"] = user_labels
    user_annotations = {
        k: v for k, v in (m.get("annotations") or {}).items() if k not in SYSTEM_ANNOTATIONS
    }
    if user_annotations:
        template_meta["annotations"] = user_annotations
    doc = {
        "apiVersion": Configuration.api_version,
        "kind": "Configuration",
        "metadata": {"name": m.get("name", "revision"), "namespace": m.get("namespace")},
        "spec": {"template": {"metadata": template_meta, "spec": revision.get("spec") or {}}},
    }
    parsed = parse_document(doc, "")
    if isinstance(parsed, list):
        log.warning(
            "revision %s/%s: cannot read its spec: %s",
            m.get("namespace"),
            m.get("name"),
            problems_text(parsed),
        )
        return None
    assert isinstance(parsed, Configuration)
    return parsed.template


def revision_record(revision: Obj, defaults: DefaultsConfig) -> RevisionRecord | None:
    """The record of an existing Revision object (its spec has its defaults already)."""
    template = revision_template(revision)
    if template is None:
        return None
    m, labels, spec = meta(revision), labels_of(revision), revision.get("spec") or {}
    timeout = _int(spec.get("timeoutSeconds"), defaults.revision_timeout_seconds)
    generation = labels.get(GENERATION_LABEL, "")
    return RevisionRecord(
        key=RevisionKey(m.get("namespace") or "", m["name"]),
        configuration=labels.get(CONFIGURATION_LABEL, ""),
        service=labels.get(SERVICE_LABEL, ""),
        generation=int(generation) if generation.isdigit() else 0,
        created=created_at(revision),
        template=template,
        container_concurrency=_int(
            spec.get("containerConcurrency"), defaults.container_concurrency
        ),
        timeout_seconds=timeout,
        response_start_timeout_seconds=_int(spec.get("responseStartTimeoutSeconds"), 0),
        idle_timeout_seconds=_int(spec.get("idleTimeoutSeconds"), 0),
        container_name=template.container.name or defaults.container_name,
        observed=last_verdict(revision),
        conditions=conditions_of(revision),
        routing_state=labels.get(ROUTING_STATE_LABEL, ""),
        routing_state_modified=(
            _time(modified) or None
            if isinstance(modified := (m.get("annotations") or {}).get(ROUTING_STATE_MODIFIED), str)
            else None
        ),
    )


def same_template(revision: Obj, template: RevisionTemplate) -> bool:
    """Whether an existing Revision was made from ``template``: its spec, less the
    defaults it got at creation, and its annotations, are the template's."""
    wanted = compact(template.spec_dict())
    spec = {
        k: v
        for k, v in compact(revision.get("spec") or {}).items()
        if k in wanted or k == "containers"
    }
    containers = [dict(c) for c in spec.get("containers") or ()]
    for have, want in zip(containers, wanted.get("containers") or (), strict=False):
        if "name" not in want:
            have.pop("name", None)
    spec["containers"] = containers
    annotations = {
        k: v
        for k, v in (meta(revision).get("annotations") or {}).items()
        if k not in SYSTEM_ANNOTATIONS
    }
    return spec == wanted and annotations == dict(template.annotations)


def programmed_traffic(
    route: Obj, revisions: Mapping[RevisionKey, RevisionRecord]
) -> tuple[ResolvedTarget, ...] | None:
    """The traffic a Route was programmed with (its ``status.traffic``), None if none."""
    namespace = meta(route).get("namespace") or ""
    out = []
    for entry in (route.get("status") or {}).get("traffic") or ():
        if not isinstance(entry, dict) or not isinstance(entry.get("revisionName"), str):
            continue
        name = entry["revisionName"]
        record = revisions.get(RevisionKey(namespace, name))
        out.append(
            ResolvedTarget(
                revision=name,
                percent=_int(entry.get("percent"), 0),
                tag=str(entry.get("tag") or ""),
                latest_revision=entry.get("latestRevision") is True,
                configuration=record.configuration if record is not None else "",
            )
        )
    return tuple(out) or None


@dataclass(frozen=True)
class ClusterView:
    """The watch caches' contents (read, never changed)."""

    services: Objects = field(default_factory=dict)
    configurations: Objects = field(default_factory=dict)
    revisions: Objects = field(default_factory=dict)
    routes: Objects = field(default_factory=dict)
    deployments: Objects = field(default_factory=dict)
    private_services: Objects = field(default_factory=dict)
    """Core Services labelled with a revision."""
    endpoint_slices: Objects = field(default_factory=dict)
    pods: Objects = field(default_factory=dict)
    virtual_services: Objects | None = field(default_factory=dict)
    """None when the cluster has no Istio (routes then get no VirtualService)."""
    placeholders: Objects = field(default_factory=dict)
    """Core Services labelled with a route."""
    network_policies: Objects | None = field(default_factory=dict)
    """The NetworkPolicies the controller wrote; None: the API has none."""
    domain_mappings: Objects | None = field(default_factory=dict)
    """None when the DomainMapping CRD is not installed."""
    domain_claims: Objects | None = field(default_factory=dict)
    """ClusterDomainClaims (cluster-scoped: namespace ""); None without their CRD."""


def by_label(objects: Objects, label: str) -> dict[tuple[str, str], list[Obj]]:
    out: dict[tuple[str, str], list[Obj]] = defaultdict(list)
    for (namespace, _), obj in objects.items():
        value = labels_of(obj).get(label)
        if value:
            out[(namespace, value)].append(obj)
    return out


def creation_order(revision: Obj) -> tuple[int, float, str]:
    generation = labels_of(revision).get(GENERATION_LABEL, "")
    return (
        int(generation) if generation.isdigit() else 0,
        created_at(revision),
        meta(revision)["name"],
    )
