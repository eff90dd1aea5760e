"""Storage core of the fake API server: what etcd and the watch cache do upstream.

* One global, monotonically increasing resourceVersion (etcd's revision) stamps every write.
* Every write is also an :class:`Event` in a bounded history; watches replay from it, and a
  watch or continue token older than the retained history is refused with 410 Expired.
* Watchers get filtered events in bounded queues (see :class:`Watcher`).

Stored dicts are never mutated after commit, so history entries and in-flight watch events
can share them; everything handed out to callers is a copy. The API semantics built on top
live in :mod:`.lifecycle` (deletion, finalizers, garbage collection) and :mod:`.store`
(create/update/patch strategies, ``/status`` and ``/scale``).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import errors
from .resources import CRD_STORAGE_KEY, ResourceRegistry, ResourceType, types_from_crd

Predicate = Callable[[dict[str, Any]], bool]
Ident = tuple[str, str]  # (namespace or "", name)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def get_path(obj: Any, dotted: str) -> Any:
    node = obj
    for part in dotted.strip(".").split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def set_path(obj: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.strip(".").split(".")
    node = obj
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


@dataclass(frozen=True)
class Event:
    rv: int
    type: str  # ADDED, MODIFIED or DELETED
    key: str  # storage key of the resource
    obj: dict[str, Any]  # state after the write (for DELETED: the final state)
    prev: dict[str, Any] | None


class Watcher:
    """One watch subscription: filters store events into a bounded queue.

    ``None`` in the queue ends the stream; ``close_reason`` says why. A consumer that falls
    ``queue_limit`` events behind is cut off, as the apiserver drops a watcher whose buffer
    is full, so a stuck test cannot grow memory without bound.
    """

    def __init__(self, key: str, namespace: str | None, predicate: Predicate, queue_limit: int):
        self.key = key
        self.namespace = namespace
        self.predicate = predicate
        self.queue_limit = queue_limit
        self.queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = asyncio.Queue()
        self.close_reason: str | None = None

    def _matches(self, obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        if self.namespace is not None and obj["metadata"].get("namespace") != self.namespace:
            return False
        return self.predicate(obj)

    def offer(self, event: Event) -> None:
        if event.key != self.key or self.close_reason is not None:
            return
        now_matches = self._matches(event.obj)
        if event.type == "ADDED":
            if now_matches:
                self._push("ADDED", event.obj)
        elif event.type == "DELETED":
            if now_matches:
                self._push("DELETED", event.obj)
        else:
            # An object moving into or out of the selected set is reported as ADDED or
            # DELETED, as the apiserver's watch cache does for filtered watches.
            was_matching = self._matches(event.prev)
            if was_matching and now_matches:
                self._push("MODIFIED", event.obj)
            elif now_matches:
                self._push("ADDED", event.obj)
            elif was_matching:
                self._push("DELETED", event.obj)

    def _push(self, kind: str, obj: dict[str, Any]) -> None:
        if self.queue.qsize() >= self.queue_limit:
            self.close("overflow")
            return
        self.queue.put_nowait((kind, obj))

    def close(self, reason: str) -> None:
        if self.close_reason is None:
            self.close_reason = reason
            self.queue.put_nowait(None)


class ObjectStorage:
    """Objects by resource, the resourceVersion counter, the event history and watchers."""

    def __init__(
        self,
        registry: ResourceRegistry,
        *,
        history_limit: int = 1000,
        watch_queue_limit: int = 10_000,
        strict_namespaces: bool = True,
    ) -> None:
        self.registry = registry
        self.strict_namespaces = strict_namespaces
        self.watch_queue_limit = watch_queue_limit
        self.rv = 0
        # Events with rv <= compacted_rv are gone: watching from before it is 410 Expired.
        self.compacted_rv = 0
        self._history: deque[Event] = deque(maxlen=history_limit)
        self._objects: dict[str, dict[Ident, dict[str, Any]]] = {}
        self._uids: dict[str, tuple[str, Ident]] = {}
        self._watchers: set[Watcher] = set()
        self._listeners: set[Callable[[Event], None]] = set()

    # ----- reading ---------------------------------------------------------------------

    @staticmethod
    def present(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """A private copy of a stored object as seen through ``rt``'s API version."""
        out = copy.deepcopy(obj)
        out["apiVersion"] = rt.api_version
        out["kind"] = rt.kind
        return out

    def _bucket(self, rt: ResourceType) -> dict[Ident, dict[str, Any]]:
        return self._objects.setdefault(rt.storage_key, {})

    @staticmethod
    def _ident(rt: ResourceType, namespace: str | None, name: str) -> Ident:
        return ((namespace or "") if rt.namespaced else "", name)

    def find(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored object itself (do not mutate), or None."""
        return self._bucket(rt).get(self._ident(rt, namespace, name))

    def _require(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self.find(rt, namespace, name)
        if obj is None:
            raise errors.not_found(rt.plural, rt.group, name)
        return obj

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        return self.present(rt, self._require(rt, namespace, name))

    def select(
        self, rt: ResourceType, namespace: str | None, predicate: Predicate | None = None
    ) -> list[dict[str, Any]]:
        """Stored objects (not copies) in key order, as etcd returns them."""
        items = [
            obj
            for (ns, _), obj in sorted(self._bucket(rt).items())
            if (namespace is None or ns == namespace) and (predicate is None or predicate(obj))
        ]
        return items

    def list(
        self,
        rt: ResourceType,
        namespace: str | None,
        predicate: Predicate | None = None,
        *,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> dict[str, Any]:
        items = self.select(rt, namespace, predicate)
        list_rv = self.rv
        if continue_token:
            list_rv, start = self._decode_continue(continue_token)
            items = [
                o
                for o in items
                if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > start
            ]
        meta: dict[str, Any] = {"resourceVersion": str(list_rv)}
        if limit and len(items) > limit:
            last = items[limit - 1]["metadata"]
            meta["continue"] = self._encode_continue(
                list_rv, (last.get("namespace", ""), last["name"])
            )
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        presented = [self.present(rt, o) for o in items]
        if not rt.custom:
            # Typed lists omit the members' apiVersion/kind; unstructured ones keep them.
            for item in presented:
                item.pop("apiVersion", None)
                item.pop("kind", None)
        return {
            "kind": rt.list_kind,
            "apiVersion": rt.api_version,
            "metadata": meta,
            "items": presented,
        }

    @staticmethod
    def _encode_continue(rv: int, start: Ident) -> str:
        raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": list(start)})
        return base64.urlsafe_b64encode(raw.encode()).decode()

    def _decode_continue(self, token: str) -> tuple[int, Ident]:
        try:
            data = json.loads(base64.urlsafe_b64decode(token.encode()))
            rv, (ns, name) = int(data["rv"]), data["start"]
        except (ValueError, KeyError, TypeError):
            raise errors.bad_request(f"continue key is not valid: {token!r}") from None
        if rv < self.compacted_rv:
            raise errors.expired(
                "The provided continue parameter is too old to display a consistent list "
                "result. You can start a new list without the continue parameter."
            )
        return rv, (str(ns), str(name))

    def owned_by(self, uid: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for key, bucket in list(self._objects.items()):
            for obj in list(bucket.values()):
                refs = obj["metadata"].get("ownerReferences") or []
                if any(ref.get("uid") == uid for ref in refs):
                    yield key, obj

    # ----- committing writes -----------------------------------------------------------

    def _commit(
        self, key: str, kind: str, obj: dict[str, Any], prev: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Stamp a new resourceVersion on a fresh dict, store it, and publish the event."""
        self.rv += 1
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self.rv)
        ident = (meta.get("namespace", ""), meta["name"])
        bucket = self._objects.setdefault(key, {})
        if kind == "DELETED":
            bucket.pop(ident, None)
            self._uids.pop(meta["uid"], None)
        else:
            bucket[ident] = obj
            self._uids[meta["uid"]] = (key, ident)
        event = Event(self.rv, kind, key, obj, prev)
        if self._history.maxlen is not None and len(self._history) == self._history.maxlen:
            self.compacted_rv = self._history[0].rv
        self._history.append(event)
        for watcher in list(self._watchers):
            watcher.offer(event)
        for listener in list(self._listeners):
            listener(event)
        if key == CRD_STORAGE_KEY:
            self._sync_crd(obj, deleted=kind == "DELETED")
        return obj

    def _sync_crd(self, crd: dict[str, Any], *, deleted: bool) -> None:
        spec = crd.get("spec") or {}
        group, plural = spec.get("group", ""), (spec.get("names") or {}).get("plural", "")
        self.registry.unregister(group, plural)
        if not deleted:
            for rt in types_from_crd(crd):
                self.registry.register(rt)

    @property
    def history_length(self) -> int:
        return len(self._history)

    def compact(self, rv: int | None = None) -> None:
        """Forget history up to ``rv`` (default: everything), as an etcd compaction does."""
        target = self.rv if rv is None else min(rv, self.rv)
        while self._history and self._history[0].rv <= target:
            self._history.popleft()
        self.compacted_rv = max(self.compacted_rv, target)

    def add_listener(self, listener: Callable[[Event], None]) -> None:
        self._listeners.add(listener)

    def remove_listener(self, listener: Callable[[Event], None]) -> None:
        self._listeners.discard(listener)

    # ----- watching --------------------------------------------------------------------

    def watch(
        self,
        rt: ResourceType,
        namespace: str | None,
        predicate: Predicate,
        resource_version: str | None,
        *,
        send_initial_events: bool = False,
    ) -> Watcher:
        """Subscribe; the returned watcher's queue already holds the initial/replayed events.

        Without a resourceVersion (or with "0") the watch starts with synthetic ADDED events
        for the current objects. With one, it replays the retained events after it, or
        raises 410 Expired if those are no longer retained.
        """
        watcher = Watcher(rt.storage_key, namespace, predicate, self.watch_queue_limit)
        if send_initial_events or resource_version in (None, "", "0"):
            for obj in self.select(rt, namespace, predicate):
                watcher.queue.put_nowait(("ADDED", obj))
        else:
            try:
                since = int(resource_version or "")
            except ValueError:
                raise errors.bad_request(
                    f"resourceVersion: Invalid value: {resource_version!r}: "
                    "must be a non-negative integer"
                ) from None
            if since < self.compacted_rv:
                oldest = self._history[0].rv if self._history else self.rv + 1
                raise errors.expired(f"too old resource version: {since} ({oldest})")
            for event in self._history:
                if event.rv > since:
                    watcher.offer(event)
        # No await since the snapshot above: no write can slip between replay and subscribe.
        self._watchers.add(watcher)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)

    def close_watchers(self, reason: str) -> None:
        for watcher in list(self._watchers):
            watcher.close(reason)
        self._watchers.clear()

    @staticmethod
    def _crd_status(crd: dict[str, Any]) -> dict[str, Any]:
        # The real apiextensions controllers set these asynchronously; here the CRD is
        # established the moment it is stored.
        stamp = now()
        spec = crd["spec"]
        return {
            "acceptedNames": copy.deepcopy(spec["names"]),
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                    "lastTransitionTime": stamp,
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                    "lastTransitionTime": stamp,
                },
            ],
            "storedVersions": [v["name"] for v in spec["versions"] if v.get("storage")],
        }

    def _spec_part(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        skipped = {"metadata", "apiVersion", "kind"}
        if rt.status_subresource:
            skipped.add("status")
        return {k: v for k, v in obj.items() if k not in skipped}
