"""The three PATCH formats the apiserver accepts for JSON objects.

* JSON merge patch (RFC 7386), ``application/merge-patch+json``.
* JSON patch (RFC 6902), ``application/json-patch+json``.
* Strategic merge patch, ``application/strategic-merge-patch+json``: a merge patch in which
  some lists are merged element-wise instead of replaced. Upstream reads the list strategy
  from Go struct tags; here a table of the well-known list fields stands in for the tags
  (containers/env/volumes by ``name``, conditions by ``type``, ownerReferences by ``uid``,
  container ports by ``containerPort``, Service ports by ``port``, finalizers as a set). The
  ``$patch`` (replace/delete), ``$retainKeys`` and ``$deleteFromPrimitiveList/<field>``
  directives are honoured; ``$setElementOrder/<field>`` is accepted and used for ordering.

Errors follow the apiserver: an undecodable patch is 400 BadRequest, a JSON patch that does
not apply (failed ``test``, missing path) is 422 Invalid.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from . import errors

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# ----- JSON patch ------------------------------------------------------------------------


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise errors.bad_request(f"invalid JSON pointer {path!r}")
    if path == "":
        return []
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _unprocessable(message: str) -> errors.ApiError:
    return errors.ApiError(422, message, "Invalid")


def _index(container: list[Any], token: str, *, for_add: bool) -> int:
    if token == "-" and for_add:
        return len(container)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise _unprocessable(f"invalid array index {token!r}")
    idx = int(token)
    limit = len(container) if for_add else len(container) - 1
    if idx > limit:
        raise _unprocessable(f"array index {idx} out of bounds")
    return idx


def _parent(doc: Any, tokens: list[str]) -> Any:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise _unprocessable(f"doc is missing path: /{'/'.join(tokens)}")
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, for_add=False)]
        else:
            raise _unprocessable(f"doc is missing path: /{'/'.join(tokens)}")
    return node


def _get(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        return doc
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _unprocessable(f"doc is missing path: /{'/'.join(tokens)}")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, for_add=False)]
    raise _unprocessable(f"doc is missing path: /{'/'.join(tokens)}")


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, for_add=True), value)
    else:
        raise _unprocessable(f"doc is missing path: /{'/'.join(tokens)}")
    return doc


def _remove(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        raise _unprocessable("cannot remove the whole document")
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _unprocessable(f"Unable to remove nonexistent key: {last}: missing value")
        del parent[last]
    elif isinstance(parent, list):
        del parent[_index(parent, last, for_add=False)]
    else:
        raise _unprocessable(f"doc is missing path: /{'/'.join(tokens)}")
    return doc


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902, applied to a copy of ``target``."""
    if not isinstance(operations, list):
        raise errors.bad_request(
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
        )
    doc = copy.deepcopy(target)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise errors.bad_request(f"invalid JSON patch operation {op!r}")
        kind = op["op"]
        tokens = _pointer(op["path"])
        if kind in ("add", "replace", "test") and "value" not in op:
            raise errors.bad_request(f"JSON patch operation {kind!r} needs a value")
        if kind == "add":
            doc = _add(doc, tokens, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc = _remove(doc, tokens)
        elif kind == "replace":
            _get(doc, tokens)  # replace requires the target to exist
            if tokens and isinstance(_parent(doc, tokens), list):
                doc = _remove(doc, tokens)
            doc = _add(doc, tokens, copy.deepcopy(op["value"]))
        elif kind in ("move", "copy"):
            source = _pointer(op.get("from"))
            value = copy.deepcopy(_get(doc, source))
            if kind == "move":
                doc = _remove(doc, source)
            doc = _add(doc, tokens, value)
        elif kind == "test":
            if _get(doc, tokens) != op["value"]:
                raise _unprocessable(f"testing value {op['path']} failed: test failed")
        else:
            raise errors.bad_request(f"unexpected JSON patch operation {kind!r}")
    return doc


# ----- strategic merge patch -------------------------------------------------------------

# Element merge keys of the list fields that carry patchStrategy=merge upstream, by field name.
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",
    "ownerReferences": "uid",
    "podIPs": "ip",
    "hostIPs": "ip",
}
_CONTAINER_LISTS = {"containers", "initContainers", "ephemeralContainers"}
_SET_LISTS = {"finalizers"}  # primitive lists with patchStrategy=merge


def _list_strategy(path: tuple[str, ...]) -> tuple[str, str | None]:
    name = path[-1]
    parent = path[-2] if len(path) > 1 else ""
    if name == "ports":
        if parent in _CONTAINER_LISTS:
            return "merge", "containerPort"
        if parent == "spec" and len(path) == 2:  # Service.spec.ports
            return "merge", "port"
        return "replace", None
    if name in _SET_LISTS:
        return "set", None
    key = _MERGE_KEYS.get(name)
    return ("merge", key) if key else ("replace", None)


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        raise errors.bad_request("strategic merge patch must be a JSON object")
    result = _merge_map(target if isinstance(target, dict) else {}, patch, ())
    return {} if result is None else result


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


def _merge_map(
    target: dict[str, Any], patch: dict[str, Any], path: tuple[str, ...]
) -> dict[str, Any] | None:
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return _strip_directives(patch)
    if directive is not None:
        raise errors.bad_request(f"unknown patch directive {directive!r}")
    result = copy.deepcopy(target)
    orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value
        elif key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [v for v in result[field] if v not in value]
        elif key in ("$patch", "$retainKeys"):
            continue
        elif value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            existing = result.get(key)
            merged = _merge_map(existing if isinstance(existing, dict) else {}, value, (*path, key))
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, (*path, key))
        else:
            result[key] = value
    for field, order in orders.items():
        if isinstance(result.get(field), list):
            result[field] = _apply_order(result[field], order, _list_strategy((*path, field)))
    if "$retainKeys" in patch:
        keep = set(patch["$retainKeys"])
        result = {k: v for k, v in result.items() if k in keep}
    return result


def _merge_list(current: Any, patch: list[Any], path: tuple[str, ...]) -> list[Any]:
    strategy, key = _list_strategy(path)
    current = current if isinstance(current, list) else []
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [
            _strip_directives(i)
            for i in patch
            if not (isinstance(i, dict) and i.get("$patch") == "replace")
        ]
    if strategy == "set":
        merged = list(current)
        merged.extend(v for v in patch if v not in merged)
        return merged
    if strategy != "merge" or not all(isinstance(i, dict) for i in patch):
        return _strip_directives(patch)
    merged = copy.deepcopy(current)
    for item in patch:
        ident = item.get(key)
        position = next(
            (
                i
                for i, existing in enumerate(merged)
                if isinstance(existing, dict) and existing.get(key) == ident
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if position is not None:
                del merged[position]
            continue
        if position is None:
            merged.append(_strip_directives(item))
        else:
            existing = merged[position]
            updated = _merge_map(existing if isinstance(existing, dict) else {}, item, path)
            if updated is None:
                del merged[position]
            else:
                merged[position] = updated
    return merged


def _apply_order(items: list[Any], order: list[Any], strategy: tuple[str, str | None]) -> list[Any]:
    """Reorder ``items`` as ``$setElementOrder`` asks; unlisted items keep their place last."""
    kind, key = strategy

    def ident(item: Any) -> Any:
        return item.get(key) if kind == "merge" and isinstance(item, dict) else item

    wanted = [ident(o) for o in order]
    ranked = sorted(
        enumerate(items),
        key=lambda pair: (
            wanted.index(ident(pair[1])) if ident(pair[1]) in wanted else len(wanted),
            pair[0],
        ),
    )
    return [item for _, item in ranked]


def apply_patch(content_type: str, target: dict[str, Any], body: bytes, *, custom: bool) -> Any:
    """Decode ``body`` and apply it to ``target`` according to the request's content type.

    Custom resources refuse strategic merge patch (there are no Go struct tags to read the
    list strategies from), and server-side apply is not served at all: both answer 415.
    """
    media = content_type.split(";", 1)[0].strip().lower()
    accepted = [JSON_PATCH, MERGE_PATCH] + ([] if custom else [STRATEGIC_MERGE_PATCH])
    if media not in accepted:
        raise errors.unsupported_media_type(media, accepted)
    try:
        patch = json.loads(body or b"null")
    except ValueError as exc:
        raise errors.bad_request(f"error decoding patch: {exc}") from None
    if media == JSON_PATCH:
        return json_patch(target, patch)
    if not isinstance(patch, dict):
        raise errors.bad_request("the patch must be a JSON object")
    if media == MERGE_PATCH:
        return merge_patch(target, patch)
    return strategic_merge_patch(target, patch)
