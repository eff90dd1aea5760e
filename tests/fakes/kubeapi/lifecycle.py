"""Deletion semantics of the fake API server: finalizers, ``deletionTimestamp``,
propagation policies, namespace and CRD teardown, and ownerReference garbage collection.

Upstream, kube-controller-manager's garbage collector and namespace controller do this work
asynchronously; here it runs synchronously inside the deleting call, so by the time a DELETE
returns every dependent that can go is gone (and its watch events are published, after the
owner's). Dependents blocked by their own finalizers stay terminating, and a foreground or
namespace deletion completes when the last of them is removed.
"""

from __future__ import annotations

import copy
from typing import Any

from . import errors
from .resources import CRD_STORAGE_KEY, NAMESPACES_STORAGE_KEY, ResourceType
from .storage import ObjectStorage, Predicate, now

PROPAGATION_POLICIES = ("Background", "Foreground", "Orphan")
FOREGROUND_FINALIZER = "foregroundDeletion"


class Lifecycle(ObjectStorage):
    """Deletion on top of the storage core; :class:`.store.Store` adds the write paths."""

    def _current(self, key: str, obj: dict[str, Any]) -> dict[str, Any] | None:
        """The stored version of ``obj`` now: a cascade may have changed or removed it since
        a loop took its snapshot of dependents."""
        meta = obj["metadata"]
        current = self._objects.get(key, {}).get((meta.get("namespace", ""), meta["name"]))
        if current is None or current["metadata"]["uid"] != meta["uid"]:
            return None
        return current

    def delete(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        *,
        propagation: str | None = None,
        preconditions: dict[str, Any] | None = None,
        dry_run: bool = False,
        grace_period: int | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Delete an object; returns (its last state, whether it is gone already).
        ``grace_period``: DeleteOptions' ``gracePeriodSeconds`` (pods: see _pod_grace)."""
        obj = self._require(rt, namespace, name)
        self._asked_grace = (obj["metadata"]["uid"], grace_period)
        preconditions = preconditions or {}
        for field in ("uid", "resourceVersion"):
            wanted = preconditions.get(field)
            if wanted and wanted != obj["metadata"].get(field):
                label = "UID" if field == "uid" else "ResourceVersion"
                raise errors.conflict(
                    rt.plural,
                    rt.group,
                    name,
                    f"Precondition failed: {label} in precondition: {wanted}, {label} in "
                    f"object meta: {obj['metadata'].get(field)}",
                )
        policy = propagation or "Background"
        if policy not in PROPAGATION_POLICIES:
            raise errors.bad_request(
                f'propagationPolicy: Unsupported value: "{policy}": supported values: '
                '"Background", "Foreground", "Orphan"'
            )
        if dry_run:
            return self.present(rt, obj), not obj["metadata"].get("finalizers")
        final, gone = self._delete(rt.storage_key, obj, policy)
        return self.present(rt, final), gone

    def _delete(self, key: str, obj: dict[str, Any], policy: str) -> tuple[dict[str, Any], bool]:
        meta = obj["metadata"]
        if key == NAMESPACES_STORAGE_KEY:
            return self._delete_namespace(obj)
        if key == CRD_STORAGE_KEY:
            self._delete_crd_instances(obj)
        if policy == "Orphan":
            for dep_key, dependent in list(self.owned_by(meta["uid"])):
                new = copy.deepcopy(dependent)
                new["metadata"]["ownerReferences"] = [
                    r
                    for r in dependent["metadata"]["ownerReferences"]
                    if r.get("uid") != meta["uid"]
                ]
                if not new["metadata"]["ownerReferences"]:
                    del new["metadata"]["ownerReferences"]
                self._commit(dep_key, "MODIFIED", new, dependent)
        finalizers = list(meta.get("finalizers") or [])
        foreground = policy == "Foreground" and any(True for _ in self.owned_by(meta["uid"]))
        if foreground and FOREGROUND_FINALIZER not in finalizers:
            finalizers.append(FOREGROUND_FINALIZER)
        if not finalizers:
            final = self._commit(key, "DELETED", copy.deepcopy(obj), obj)
            self._after_delete(final)
            return final, True
        if meta.get("deletionTimestamp") and finalizers == meta.get("finalizers"):
            return obj, False  # already terminating; deleting again changes nothing
        pending = self._mark_terminating(key, obj, finalizers)
        if foreground:
            for dep_key, dependent in list(self.owned_by(meta["uid"])):
                current_dependent = self._current(dep_key, dependent)
                if current_dependent is not None:
                    self._delete(dep_key, current_dependent, "Background")
            self._finish_foreground(meta["uid"])
        current = self._current(key, obj)
        return (current or pending), current is None

    _asked_grace: tuple[str, int | None] = ("", None)

    @staticmethod
    def _pod_grace(pod: dict[str, Any], asked: int | None) -> int:
        """A pod's ``deletionGracePeriodSeconds`` (the pod strategy's CheckGracefulDelete):
        the one asked for, else ``spec.terminationGracePeriodSeconds`` (30); 0 for a pod no
        node runs yet."""
        if not (pod.get("spec") or {}).get("nodeName"):
            return 0
        if asked is not None:
            return max(int(asked), 0)
        return int((pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))

    def _mark_terminating(
        self, key: str, obj: dict[str, Any], finalizers: list[str]
    ) -> dict[str, Any]:
        new = copy.deepcopy(obj)
        meta = new["metadata"]
        if not meta.get("deletionTimestamp"):
            meta["deletionTimestamp"] = now()
            grace = 0
            if key == "pods":  # the asked grace is the deleted pod's, not its dependents'
                uid, asked = self._asked_grace
                grace = self._pod_grace(obj, asked if uid == meta["uid"] else None)
            meta["deletionGracePeriodSeconds"] = grace
            meta["generation"] = meta.get("generation", 0) + 1
        meta["finalizers"] = finalizers
        return self._commit(key, "MODIFIED", new, obj)

    def _after_delete(self, gone: dict[str, Any]) -> None:
        """Garbage-collect after ``gone`` left the store (what kube-controller-manager does)."""
        meta = gone["metadata"]
        for dep_key, dependent in list(self.owned_by(meta["uid"])):
            current = self._current(dep_key, dependent)
            if current is None:
                continue  # removed meanwhile by an earlier cascade step
            refs = current["metadata"].get("ownerReferences") or []
            if not any(r.get("uid") == meta["uid"] for r in refs):
                continue
            live = [r for r in refs if r.get("uid") in self._uids]
            if live:
                # Other owners still exist: only the dangling reference is dropped.
                new = copy.deepcopy(current)
                new["metadata"]["ownerReferences"] = live
                self._commit(dep_key, "MODIFIED", new, current)
            else:
                self._delete(dep_key, current, "Background")
        for ref in meta.get("ownerReferences") or []:
            self._finish_foreground(ref.get("uid", ""))
        namespace = meta.get("namespace")
        if namespace:
            self._finish_namespace(namespace)

    def _finish_foreground(self, uid: str) -> None:
        """Complete a foreground deletion once the owner has no dependents left."""
        location = self._uids.get(uid)
        if location is None:
            return
        key, ident = location
        owner = self._objects[key][ident]
        finalizers = owner["metadata"].get("finalizers") or []
        if FOREGROUND_FINALIZER not in finalizers or any(True for _ in self.owned_by(uid)):
            return
        new = copy.deepcopy(owner)
        new["metadata"]["finalizers"] = [f for f in finalizers if f != FOREGROUND_FINALIZER]
        if new["metadata"]["finalizers"]:
            self._commit(key, "MODIFIED", new, owner)
        else:
            del new["metadata"]["finalizers"]
            final = self._commit(key, "DELETED", new, owner)
            self._after_delete(final)

    def _delete_namespace(self, ns: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        name = ns["metadata"]["name"]
        if not ns["metadata"].get("deletionTimestamp"):
            new = copy.deepcopy(ns)
            new["metadata"]["deletionTimestamp"] = now()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["status"] = {"phase": "Terminating"}
            ns = self._commit(NAMESPACES_STORAGE_KEY, "MODIFIED", new, ns)
        # What the namespace controller does: delete the content, then the namespace.
        for key, bucket in list(self._objects.items()):
            for (obj_ns, _), obj in list(bucket.items()):
                current = self._current(key, obj) if obj_ns == name else None
                if current is not None and not current["metadata"].get("deletionTimestamp"):
                    self._delete(key, current, "Background")
        self._finish_namespace(name)
        current = self._objects[NAMESPACES_STORAGE_KEY].get(("", name))
        return (current or ns), current is None

    def _finish_namespace(self, name: str) -> None:
        ns = self._objects.get(NAMESPACES_STORAGE_KEY, {}).get(("", name))
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        if ns["metadata"].get("finalizers"):
            return
        for bucket in self._objects.values():
            if any(obj_ns == name for obj_ns, _ in bucket):
                return
        final = self._commit(NAMESPACES_STORAGE_KEY, "DELETED", copy.deepcopy(ns), ns)
        self._after_delete(final)

    def _delete_crd_instances(self, crd: dict[str, Any]) -> None:
        # The apiextensions finalizer removes every instance before the CRD goes; instance
        # finalizers are not waited for here.
        spec = crd.get("spec") or {}
        key = f"{(spec.get('names') or {}).get('plural')}.{spec.get('group')}"
        for obj in list(self._objects.get(key, {}).values()):
            current = self._current(key, obj)
            if current is not None:
                final = self._commit(key, "DELETED", copy.deepcopy(current), current)
                self._after_delete(final)
        self._objects.pop(key, None)

    def delete_collection(
        self,
        rt: ResourceType,
        namespace: str | None,
        predicate: Predicate,
        *,
        propagation: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        deleted = []
        for obj in self.select(rt, namespace, predicate):
            if self.find(rt, obj["metadata"].get("namespace"), obj["metadata"]["name"]) is None:
                continue  # already removed by the cascade of an earlier item
            last, _ = self.delete(
                rt,
                obj["metadata"].get("namespace"),
                obj["metadata"]["name"],
                propagation=propagation,
                dry_run=dry_run,
            )
            deleted.append(last)
        return {
            "kind": rt.list_kind,
            "apiVersion": rt.api_version,
            "metadata": {"resourceVersion": str(self.rv)},
            "items": deleted,
        }
