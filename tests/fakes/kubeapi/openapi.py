"""The OpenAPI v3 documents kubectl and helm ask for before they send objects.

Both validate what they send with ``--validate=strict`` (their default): they read
``/openapi/v3``, then the group-version's document, and look for the PATCH operation of
the object's kind (``x-kubernetes-group-version-kind``) with a ``fieldValidation`` query
parameter (kubectl ``resource.QueryParamVerifierV3``). Finding it, they leave the checking
to the server; not finding one, they fall back to client-side validation with OpenAPI v2,
which this server does not serve. So each group-version's document lists, per kind, the
paths with their operations and parameters, and only a stub schema per kind: the server
accepts unknown fields as a lenient apiserver would (``fieldValidation`` is ignored).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .resources import ResourceRegistry, ResourceType

_QUERY = ("dryRun", "fieldManager", "fieldValidation", "pretty")


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _doc(registry: ResourceRegistry, group: str, version: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for rt in registry.types():
        if rt.group != group or rt.version != version:
            continue
        paths.update(_paths(rt))
        schemas[_schema_name(rt)] = {
            "type": "object",
            "x-kubernetes-group-version-kind": [_gvk(rt)],
            "x-kubernetes-preserve-unknown-fields": True,
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.31.0-zeroserve-fake"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _gvk(rt: ResourceType) -> dict[str, str]:
    return {"group": rt.group, "version": rt.version, "kind": rt.kind}


def _schema_name(rt: ResourceType) -> str:
    prefix = ".".join(reversed(rt.group.split("."))) if rt.group else "io.k8s.api.core"
    return f"{prefix}.{rt.version}.{rt.kind}"


def _paths(rt: ResourceType) -> dict[str, Any]:
    base = "/" + _gv_path(rt.group, rt.version)
    scope = f"{base}/namespaces/{{namespace}}" if rt.namespaced else base
    params = [
        {"name": q, "in": "query", "schema": {"type": "string"}, "uniqueItems": True}
        for q in _QUERY
    ]
    ref = {"$ref": f"#/components/schemas/{_schema_name(rt)}"}
    body = {"content": {"application/json": {"schema": ref}}}
    ok = {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}}

    def op(action: str, verb: str) -> dict[str, Any]:
        return {
            "operationId": f"{verb}{rt.kind}",
            "parameters": params,
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": _gvk(rt),
            "requestBody": body,
            "responses": ok,
        }

    return {
        f"{scope}/{rt.plural}": {"post": op("post", "create"), "get": op("list", "list")},
        f"{scope}/{rt.plural}/{{name}}": {
            "get": op("get", "read"),
            "put": op("put", "replace"),
            "patch": op("patch", "patch"),
            "delete": op("delete", "delete"),
        },
    }


def root(registry: ResourceRegistry) -> dict[str, Any]:
    """``/openapi/v3``: each group-version and the URL of its document (with a hash)."""
    out = {}
    versions = sorted({(rt.group, rt.version) for rt in registry.types()})
    for group, version in versions:
        doc = json.dumps(_doc(registry, group, version), sort_keys=True).encode()
        digest = hashlib.sha512(doc).hexdigest()[:32].upper()
        path = _gv_path(group, version)
        out[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": out}


def group_version(registry: ResourceRegistry, path: str) -> dict[str, Any] | None:
    """``/openapi/v3/api/v1`` or ``/openapi/v3/apis/<group>/<version>``; None if unknown."""
    parts = path.strip("/").split("/")
    if parts[:1] == ["api"] and len(parts) == 2:
        group, version = "", parts[1]
    elif parts[:1] == ["apis"] and len(parts) == 3:
        group, version = parts[1], parts[2]
    else:
        return None
    if not any(rt.group == group and rt.version == version for rt in registry.types()):
        return None
    return _doc(registry, group, version)
