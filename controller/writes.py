"""The controller's API writes as values, and how one is carried out.

The planner decides *what* to write (pure, from the caches); :func:`execute` writes it
and absorbs the races a controller meets all the time:

- a create that finds the object already there (our own earlier write, not yet in the
  cache) is done;
- an update whose resourceVersion went stale (409) re-reads the object and applies the
  same change to the fresh copy, a few times; a patch that conflicts is sent again;
- an update of an object that is gone is dropped: the next pass sees the deletion.

Everything else (the API unreachable, an object refused) is raised as a ``KubeError`` for
the caller's retry with backoff.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from zeroserve.api.objects import Obj
from zeroserve.kube import AlreadyExists, Conflict, KubeClient, NotFound, ResourceRef

log = logging.getLogger(__name__)

Verb = Literal["create", "update", "patch", "status", "delete"]
CONFLICT_ATTEMPTS = 4


@dataclass(frozen=True)
class Write:
    """One API write. ``body``: the object (create) or the merge patch (patch, status).
    ``mutate``: for update, the change as a function of the current object (None when
    the object is already as wanted); ``current`` is the cached object it starts from
    (for status, the object whose status changes: its Events compare the two)."""

    verb: Verb
    ref: ResourceRef
    namespace: str
    name: str
    body: Obj | None = None
    mutate: Callable[[Obj], Obj | None] | None = None
    current: Obj | None = None

    def __str__(self) -> str:
        return f"{self.verb} {self.ref} {self.namespace}/{self.name}"


def status_patch(ref: ResourceRef, obj: Obj, status: Obj) -> Write | None:
    """A ``/status`` merge patch that makes ``obj``'s status ``status`` (keys it no longer
    has are removed), or None when it already is."""
    current = obj.get("status") or {}
    if current == status:
        return None
    body = {"status": {**{k: None for k in current if k not in status}, **status}}
    m = obj["metadata"]
    return Write("status", ref, m.get("namespace") or "", m["name"], body=body, current=obj)


def replacing(
    fields: dict[str, Any],
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    keep: tuple[str, ...] = (),
) -> Callable[[Obj], Obj | None]:
    """An update that sets top-level ``fields`` (e.g. ``spec``) and, if given, the labels
    and annotations; paths in ``keep`` (``spec.replicas``) keep their current values."""

    def mutate(current: Obj) -> Obj | None:
        new = copy.deepcopy(current)
        for key, value in fields.items():
            new[key] = copy.deepcopy(value)
        for path in keep:
            _copy_path(current, new, path)
        m = new.setdefault("metadata", {})
        if labels is not None:
            m["labels"] = dict(labels)
        if annotations is not None:
            m["annotations"] = dict(annotations)
        return None if new == current else new

    return mutate


def _copy_path(source: Obj, target: Obj, path: str) -> None:
    *parents, leaf = path.split(".")
    src: Any = source
    dst: Any = target
    for part in parents:
        src = src.get(part) if isinstance(src, dict) else None
        dst = dst.setdefault(part, {})
    if isinstance(src, dict) and leaf in src:
        dst[leaf] = copy.deepcopy(src[leaf])
    else:
        dst.pop(leaf, None)


async def execute(client: KubeClient, write: Write) -> bool:
    """Carry out one write; True if the API changed something."""
    if write.verb == "create":
        assert write.body is not None
        try:
            await client.create(write.ref, write.body, write.namespace)
        except AlreadyExists:
            log.debug("%s: exists already", write)
            return False
        return True
    if write.verb == "delete":
        try:
            await client.delete(write.ref, write.namespace, write.name)
        except NotFound:
            return False
        return True
    if write.verb in ("patch", "status"):
        return await _patch(client, write)
    return await _update(client, write)


async def _patch(client: KubeClient, write: Write) -> bool:
    assert write.body is not None
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        try:
            if write.verb == "status":
                await client.patch_status(write.ref, write.namespace, write.name, write.body)
            else:
                await client.patch(write.ref, write.namespace, write.name, write.body)
            return True
        except NotFound:
            return False
        except Conflict:
            # A merge patch carries no resourceVersion: a 409 is the API's own race.
            if attempt == CONFLICT_ATTEMPTS:
                raise
            log.info("%s: conflict, sending it again (attempt %d)", write, attempt + 1)
    return False


async def _update(client: KubeClient, write: Write) -> bool:
    assert write.mutate is not None
    current = write.current
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        try:
            if current is None:
                current = await client.get(write.ref, write.namespace, write.name)
            new = write.mutate(current)
            if new is None:
                return False
            await client.replace(write.ref, new)
            return True
        except NotFound:
            return False
        except Conflict:
            if attempt == CONFLICT_ATTEMPTS:
                raise
            log.info("%s: conflict, re-reading and applying the change again", write)
            current = None
    return False
