"""Write strategies of the fake API server: create, update (PUT) and patch, plus the
``/status`` and ``/scale`` subresources, following the apiserver's generic registry.

* optimistic concurrency on ``metadata.resourceVersion`` (409 Conflict when stale), also as
  a precondition inside patches; custom resources refuse PUT without one (422);
* ``metadata.generation`` starts at 1 and bumps whenever the spec (anything outside
  metadata, and outside status for types with a status subresource) changes;
* with a status subresource, writes to the main resource keep the stored ``.status`` and
  writes to ``/status`` change nothing else;
* writes that change nothing do not bump the resourceVersion or emit an event;
* removing the last finalizer of a terminating object deletes it.
"""

from __future__ import annotations

import copy
import json
import random
import uuid
from typing import Any

from . import errors, podsecurity
from .lifecycle import Lifecycle
from .patches import apply_patch
from .resources import CRD_STORAGE_KEY, NAMESPACES_STORAGE_KEY, ResourceType
from .selection import format_label_selector
from .storage import get_path, now, set_path
from .validation import decode, validate

_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# Status the apiserver's strategies give new objects (anything sent by the client is dropped).
_INITIAL_STATUS: dict[str, dict[str, Any]] = {
    "namespaces": {"phase": "Active"},
    "pods": {"phase": "Pending"},
    "services": {"loadBalancer": {}},
}


class Store(Lifecycle):
    """The complete object store behind the fake API server's HTTP handlers."""

    # ----- create ----------------------------------------------------------------------

    def _check_body_type(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        if rt.custom and (not obj.get("apiVersion") or not obj.get("kind")):
            raise errors.bad_request("Object 'Kind' is missing in '" + json.dumps(obj)[:200] + "'")
        api_version = obj.get("apiVersion") or rt.api_version
        served = {t.api_version for t in self.registry.served_versions(rt.group, rt.plural)}
        if api_version not in served:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected "
                f"API version ({rt.api_version})"
            )
        if obj.get("kind", rt.kind) != rt.kind:
            raise errors.bad_request(
                f"the kind in the data ({obj['kind']}) does not match the expected kind ({rt.kind})"
            )

    def _check_identity(
        self, rt: ResourceType, meta: dict[str, Any], namespace: str | None, name: str | None
    ) -> None:
        if name is not None and meta.get("name") not in (None, "", name):
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the "
                f"URL ({name})"
            )
        if rt.namespaced and meta.get("namespace") not in (None, "", namespace):
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent "
                "on the request"
            )

    def _check_namespace_open(self, rt: ResourceType, namespace: str) -> None:
        if not rt.namespaced or not self.strict_namespaces:
            return
        ns = self._objects.get(NAMESPACES_STORAGE_KEY, {}).get(("", namespace))
        if ns is None:
            raise errors.not_found("namespaces", "", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise errors.ApiError(
                403,
                f"unable to create new content in namespace {namespace} because it is "
                "being terminated",
                "Forbidden",
            )

    def create(
        self,
        rt: ResourceType,
        namespace: str | None,
        body: Any,
        *,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise errors.bad_request("the request body must be a JSON object")
        obj = decode(rt, copy.deepcopy(body))
        self._check_body_type(rt, obj)
        meta = obj.setdefault("metadata", {})
        self._check_identity(rt, meta, namespace, None)
        if rt.namespaced:
            namespace = namespace or meta.get("namespace") or "default"
            meta["namespace"] = namespace
            self._check_namespace_open(rt, namespace)
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            prefix = meta.get("generateName")
            if not prefix:
                raise errors.invalid(
                    rt.kind,
                    rt.group,
                    "",
                    [
                        (
                            "metadata.name",
                            "FieldValueRequired",
                            "name or generateName is required",
                        )
                    ],
                )
            while True:
                meta["name"] = prefix + "".join(random.choices(_NAME_SUFFIX_ALPHABET, k=5))
                if self.find(rt, namespace, meta["name"]) is None:
                    break
        if meta.get("resourceVersion"):
            raise errors.ApiError(
                500,
                "resourceVersion should not be set on objects to be created",
                "InternalError",
            )
        for field in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        meta["generation"] = 1
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        if rt.status_subresource:
            obj.pop("status", None)
            if rt.storage_key in _INITIAL_STATUS:
                obj["status"] = copy.deepcopy(_INITIAL_STATUS[rt.storage_key])
            elif not rt.custom:
                obj["status"] = {}
        for dotted, value in rt.defaults:
            if get_path(obj, dotted) is None:
                set_path(obj, dotted, copy.deepcopy(value))
        validate(rt, obj, None)
        if rt.storage_key == CRD_STORAGE_KEY:
            obj["status"] = self._crd_status(obj)
        if rt.group == "" and rt.plural == "pods" and namespace:
            # the PodSecurity admission plugin, on every pod create (podsecurity.py)
            podsecurity.admit(
                obj, self._objects.get(NAMESPACES_STORAGE_KEY, {}).get(("", namespace))
            )
        if self.find(rt, namespace, meta["name"]) is not None:
            raise errors.already_exists(rt.plural, rt.group, meta["name"])
        if dry_run:
            return self.present(rt, obj)
        return self.present(rt, self._commit(rt.storage_key, "ADDED", obj, None))

    # ----- update and patch ------------------------------------------------------------

    def update(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise errors.bad_request("the request body must be a JSON object")
        old = self._require(rt, namespace, name)
        new = decode(rt, copy.deepcopy(body))
        self._check_body_type(rt, new)
        meta = new.setdefault("metadata", {})
        self._check_identity(rt, meta, namespace, name)
        rv = meta.get("resourceVersion")
        if not rv:
            if not rt.allow_unconditional_update:
                raise errors.invalid(
                    rt.kind,
                    rt.group,
                    name,
                    [
                        (
                            "metadata.resourceVersion",
                            "FieldValueInvalid",
                            "Invalid value: 0x0: must be specified for an update",
                        )
                    ],
                )
        elif rv != old["metadata"]["resourceVersion"]:
            raise errors.stale_object(rt.plural, rt.group, name)
        self._check_uid(rt, name, meta.get("uid"), old)
        return self._replace(rt, old, new, subresource, dry_run)

    def patch(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        content_type: str,
        body: bytes,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        old = self._require(rt, namespace, name)
        patched = apply_patch(content_type, self.present(rt, old), body, custom=rt.custom)
        if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
            raise errors.bad_request("the patched object is not a valid object")
        patched = decode(rt, patched)
        meta = patched["metadata"]
        self._check_identity(rt, meta, namespace, name)
        # A resourceVersion in the patch is a precondition, as on a real server.
        if meta.get("resourceVersion") not in (None, "", old["metadata"]["resourceVersion"]):
            raise errors.stale_object(rt.plural, rt.group, name)
        self._check_uid(rt, name, meta.get("uid"), old)
        return self._replace(rt, old, patched, subresource, dry_run)

    @staticmethod
    def _check_uid(rt: ResourceType, name: str, uid: Any, old: dict[str, Any]) -> None:
        if uid and uid != old["metadata"]["uid"]:
            raise errors.conflict(
                rt.plural,
                rt.group,
                name,
                f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
                f"{old['metadata']['uid']}",
            )

    def _replace(
        self,
        rt: ResourceType,
        old: dict[str, Any],
        new: dict[str, Any],
        subresource: str | None,
        dry_run: bool,
    ) -> dict[str, Any]:
        """Apply the update strategy to ``new`` (already checked) and commit it.

        ``subresource`` is None, "status" or "scale"; object validation runs for writes to
        the main resource only (a Scale write validates its replica count itself, so a
        minimal Deployment seeded with put() can still be scaled).
        """
        if subresource == "status":
            # Writes to /status change nothing but .status.
            result = copy.deepcopy(old)
            if "status" in new:
                result["status"] = new["status"]
            else:
                result.pop("status", None)
        else:
            result = new
            if rt.status_subresource:
                # ...and writes to the main resource cannot change .status.
                if "status" in old:
                    result["status"] = copy.deepcopy(old["status"])
                else:
                    result.pop("status", None)
        result["apiVersion"], result["kind"] = rt.api_version, rt.kind
        meta, old_meta = result.setdefault("metadata", {}), old["metadata"]
        for field in (
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ):
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        if self._spec_part(rt, result) != self._spec_part(rt, old):
            meta["generation"] = old_meta.get("generation", 0) + 1
        if subresource is None:
            validate(rt, result, old)
        if result == old:
            # The apiserver skips writes that change nothing: no new resourceVersion, no event.
            return self.present(rt, old)
        if dry_run:
            return self.present(rt, result)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            # Removing the last finalizer of a terminating object completes its deletion.
            final = self._commit(rt.storage_key, "DELETED", result, old)
            self._after_delete(final)
            return self.present(rt, final)
        return self.present(rt, self._commit(rt.storage_key, "MODIFIED", result, old))

    # ----- scale -----------------------------------------------------------------------

    def _scale_of(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        assert rt.scale is not None
        meta = obj["metadata"]
        status: dict[str, Any] = {"replicas": get_path(obj, rt.scale.status_replicas) or 0}
        selector: str | None = None
        if rt.scale.structured_selector:
            selector = format_label_selector(get_path(obj, "spec.selector"))
        elif rt.scale.label_selector:
            selector = get_path(obj, rt.scale.label_selector)
        if selector:
            status["selector"] = selector
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: meta[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in meta
            },
            "spec": {"replicas": get_path(obj, rt.scale.spec_replicas) or 0},
            "status": status,
        }

    def get_scale(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        return self._scale_of(rt, self._require(rt, namespace, name))

    def update_scale(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        scale: Any,
        *,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        assert rt.scale is not None
        if not isinstance(scale, dict):
            raise errors.bad_request("the request body must be a JSON object")
        old = self._require(rt, namespace, name)
        meta = scale.get("metadata") or {}
        self._check_identity(rt, meta, namespace, name)
        rv = meta.get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise errors.stale_object(rt.plural, rt.group, name)
        replicas = (scale.get("spec") or {}).get("replicas", 0)
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise errors.invalid(
                "Scale",
                "autoscaling",
                name,
                [
                    (
                        "spec.replicas",
                        "FieldValueInvalid",
                        f"Invalid value: {replicas!r}: must be greater than or equal to 0",
                    )
                ],
            )
        new = copy.deepcopy(old)
        set_path(new, rt.scale.spec_replicas, replicas)
        result = self._replace(rt, old, new, "scale", dry_run)
        return self._scale_of(rt, result)

    def patch_scale(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        content_type: str,
        body: bytes,
        *,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        # The patch applies to the Scale object (a built-in type, so SMP is allowed even for
        # custom resources), and the result is written back like a PUT of that Scale.
        current = self.get_scale(rt, namespace, name)
        patched = apply_patch(content_type, current, body, custom=False)
        return self.update_scale(rt, namespace, name, patched, dry_run=dry_run)

    # ----- direct access for tests -----------------------------------------------------

    def put(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or overwrite an object with no admission, strategy or precondition.

        System metadata is filled in (uid, creationTimestamp, generation) and the write gets
        a resourceVersion and a watch event like any other; ``.status`` is taken as given.
        """
        new = copy.deepcopy(obj)
        new["apiVersion"], new["kind"] = rt.api_version, rt.kind
        meta = new.setdefault("metadata", {})
        if not meta.get("name"):
            raise ValueError("put() needs metadata.name")
        if rt.namespaced:
            meta["namespace"] = meta.get("namespace") or "default"
        else:
            meta.pop("namespace", None)
        old = self.find(rt, meta.get("namespace"), meta["name"])
        if old is None:
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", now())
            meta.setdefault("generation", 1)
            if rt.storage_key == CRD_STORAGE_KEY and "status" not in new:
                new["status"] = self._crd_status(new)
            return self.present(rt, self._commit(rt.storage_key, "ADDED", new, None))
        old_meta = old["metadata"]
        for field in ("uid", "creationTimestamp", "generation"):
            meta.setdefault(field, old_meta.get(field))
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if self._spec_part(rt, new) != self._spec_part(rt, old) and (
            meta["generation"] == old_meta.get("generation")
        ):
            meta["generation"] = (old_meta.get("generation") or 0) + 1
        if new == old:
            return self.present(rt, old)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            # A test playing a controller cleared the last finalizer: the deletion completes.
            final = self._commit(rt.storage_key, "DELETED", new, old)
            self._after_delete(final)
            return self.present(rt, final)
        return self.present(rt, self._commit(rt.storage_key, "MODIFIED", new, old))
