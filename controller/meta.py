"""Object metadata the controller reads and writes: owner references, labels, the spec
hash of generated objects, and the user-written part of a Knative object.

Generated objects (Deployments, Services, VirtualServices) carry a hash of what the
controller rendered in the annotation ``zeroserve.dev/spec-hash``; a change is detected
by comparing hashes, not objects, because a real API server adds defaults (and other
controllers add fields) that would make a field-by-field comparison differ forever.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from zeroserve.api.objects import Obj
from zeroserve.knative import (
    CONFIGURATION_LABEL,
    REVISION_LABEL,
    ROUTING_STATE_LABEL,
    SERVICE_LABEL,
)

GENERATION_LABEL = "serving.knative.dev/configurationGeneration"
ROUTE_LABEL = "serving.knative.dev/route"
ROUTE_NAMESPACE_LABEL = "serving.knative.dev/routeNamespace"
DOMAIN_MAPPING_LABEL = "serving.knative.dev/domainMapping"
SERVICE_TYPE_LABEL = "networking.internal.knative.dev/serviceType"
ROUTING_STATE_MODIFIED = "serving.knative.dev/routingStateModified"
"""When a revision's ``routingState`` last changed (Knative's annotation): GC counts a
revision's "last active" time from it. Not copied to the Deployment (Knative's rule)."""
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "zeroserve"
MANAGED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
"""Label selector of every object the controller generates."""
SPEC_HASH_ANNOTATION = "zeroserve.dev/spec-hash"
SYSTEM_LABELS = frozenset(
    {SERVICE_LABEL, CONFIGURATION_LABEL, GENERATION_LABEL, REVISION_LABEL, ROUTING_STATE_LABEL}
)
"""Labels the controller sets on revisions; the rest came from the template."""
_CLIENT_ANNOTATION_PREFIXES = ("kubectl.kubernetes.io/",)
"""Annotations that tools put on the object they wrote; not copied to children."""


def meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def labels_of(obj: Obj) -> dict[str, str]:
    return dict(meta(obj).get("labels") or {})


def generation_of(obj: Obj) -> int:
    generation = meta(obj).get("generation")
    return generation if isinstance(generation, int) and generation > 0 else 1


def created_at(obj: Obj) -> float:
    """``creationTimestamp`` as Unix time, 0 if absent."""
    stamp = meta(obj).get("creationTimestamp")
    if not isinstance(stamp, str):
        return 0.0
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def owner_reference(owner: Obj) -> Obj:
    """The reference that makes ``owner`` the controller of a dependent: the garbage
    collector deletes the dependent with it."""
    return {**plain_owner_reference(owner), "controller": True, "blockOwnerDeletion": True}


def plain_owner_reference(owner: Obj) -> Obj:
    """A reference that is not the controller: the dependent goes once every owner has."""
    m = meta(owner)
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": m["name"],
        "uid": m["uid"],
    }


def controller_ref(obj: Obj) -> Obj | None:
    for ref in meta(obj).get("ownerReferences") or ():
        if ref.get("controller"):
            return dict(ref)
    return None


def controlled_by(obj: Obj, owner: Obj) -> bool:
    ref = controller_ref(obj)
    return ref is not None and ref.get("uid") == meta(owner).get("uid")


def owner_name(obj: Obj, kind: str) -> str:
    """The name of the object's controller if it is of ``kind`` (in serving.knative.dev)."""
    ref = controller_ref(obj)
    if (
        ref is None
        or ref.get("kind") != kind
        or not str(ref.get("apiVersion", "")).startswith("serving.knative.dev/")
    ):
        return ""
    return str(ref.get("name", ""))


def inherited_annotations(annotations: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in annotations.items() if not k.startswith(_CLIENT_ANNOTATION_PREFIXES)}


def user_object(obj: Obj) -> Obj:
    """What the user wrote: apiVersion, kind, name, namespace, labels, annotations, spec
    (the parser refuses the fields the API server and controllers add)."""
    m = meta(obj)
    out: Obj = {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": {
            k: copy.deepcopy(m[k])
            for k in ("name", "namespace", "labels", "annotations")
            if m.get(k)
        },
    }
    if "spec" in obj:
        out["spec"] = copy.deepcopy(obj["spec"])
    return out


def compact(value: Any) -> Any:
    """``value`` without empty lists, maps and nulls at any depth (Kubernetes' omitempty),
    so that what the controller writes reads like what a user writes."""
    if isinstance(value, dict):
        out = {k: compact(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in ([], {}, None)}
    if isinstance(value, list):
        return [compact(v) for v in value]
    return value


def spec_hash(body: Obj) -> str:
    """A digest of a rendered object (metadata labels/annotations and everything else)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]


def with_hash(body: Obj) -> Obj:
    """``body`` with its :func:`spec_hash` in the spec-hash annotation."""
    digest = spec_hash(body)
    out = copy.deepcopy(body)
    out["metadata"].setdefault("annotations", {})[SPEC_HASH_ANNOTATION] = digest
    return out


def hash_of(obj: Obj | None) -> str:
    if obj is None:
        return ""
    return str((meta(obj).get("annotations") or {}).get(SPEC_HASH_ANNOTATION, ""))
