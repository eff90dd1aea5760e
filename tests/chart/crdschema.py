"""CRD schemas: the API server's structural rules, and the conversion to JSON Schema.

``structural_problems`` checks an ``openAPIV3Schema`` the way the API server does before
it accepts a CRD (the subset of rules our schemas can break): every node has a type
(unless it is int-or-string or keeps unknown fields), arrays have one ``items`` schema,
``properties`` and ``additionalProperties`` are not mixed, only the keywords Kubernetes
allows appear, ``required`` names declared properties, and the root ``metadata`` only
constrains ``name`` and ``generateName``.

``to_json_schema`` turns it into a JSON Schema (draft 2020-12) that behaves like the API
server with strict field validation: an object without
``x-kubernetes-preserve-unknown-fields`` refuses undeclared fields (where the server
would reject or prune them), ``x-kubernetes-int-or-string`` becomes integer-or-string,
``nullable`` adds null, ``format: int32/int64`` become bounds; the other ``x-kubernetes-*``
keys have no JSON Schema meaning and are dropped. The root ``metadata`` stays open, since
the API server validates ObjectMeta itself.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

ALLOWED_KEYWORDS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "properties",
        "items",
        "additionalProperties",
        "required",
        "enum",
        "maximum",
        "minimum",
        "exclusiveMaximum",
        "exclusiveMinimum",
        "maxLength",
        "minLength",
        "pattern",
        "maxItems",
        "minItems",
        "uniqueItems",
        "multipleOf",
        "maxProperties",
        "minProperties",
        "nullable",
        "default",
        "example",
        "externalDocs",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-int-or-string",
        "x-kubernetes-embedded-resource",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-map-type",
        "x-kubernetes-validations",
    }
)
"""What apiextensions.k8s.io/v1 accepts in a structural schema. Left out on purpose:
``$ref``, ``definitions``, ``patternProperties``, ``dependencies``, ``additionalItems``,
``id``, ``$schema`` (all forbidden), and the combinators ``allOf``/``anyOf``/``oneOf``/
``not`` (allowed only in restricted forms, and not needed by these CRDs)."""

TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean"})
_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
}
_INT_BOUNDS = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


def structural_problems(schema: Schema) -> list[str]:
    """Every rule the schema breaks, each as ``path: problem``; empty when structural."""
    problems: list[str] = []
    if schema.get("type") != "object":
        problems.append("<root>: type must be object")
    meta = (schema.get("properties") or {}).get("metadata")
    if meta is not None:
        extra = set(meta.get("properties") or {}) - {"name", "generateName"}
        if extra or set(meta) - {"type", "properties"}:
            problems.append("metadata: only name and generateName may be constrained")
    _check(schema, "", problems)
    return problems


def _check(node: Any, path: str, problems: list[str]) -> None:
    where = path or "<root>"
    if not isinstance(node, dict):
        problems.append(f"{where}: a schema must be a mapping, got {node!r}")
        return
    for k in sorted(set(node) - ALLOWED_KEYWORDS):
        problems.append(f"{where}: keyword {k!r} is not allowed in a structural schema")
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    preserve = node.get("x-kubernetes-preserve-unknown-fields")
    if preserve is not None and preserve is not True:
        problems.append(f"{where}: x-kubernetes-preserve-unknown-fields must be true when set")
    kind = node.get("type")
    if int_or_string:
        if kind is not None:
            problems.append(f"{where}: x-kubernetes-int-or-string must not have a type")
    elif kind is None:
        if preserve is not True:
            problems.append(f"{where}: no type")
    elif kind not in TYPES:
        problems.append(f"{where}: unknown type {kind!r}")
    for v in node.get("enum", ()):
        if kind in _JSON_TYPES and (
            not isinstance(v, _JSON_TYPES[kind]) or (kind != "boolean" and isinstance(v, bool))
        ):
            problems.append(f"{where}: enum value {v!r} is not of type {kind}")
    props = node.get("properties")
    additional = node.get("additionalProperties")
    if props is not None and additional is not None:
        problems.append(f"{where}: properties and additionalProperties are mutually exclusive")
    if (props is not None or additional is not None) and kind != "object":
        problems.append(f"{where}: properties on a non-object")
    if isinstance(additional, bool):
        problems.append(f"{where}: additionalProperties must be a schema, not {additional}")
    for name in node.get("required", ()):
        if name not in (props or {}):
            problems.append(f"{where}: required field {name!r} is not declared")
    if kind == "array":
        items = node.get("items")
        if not isinstance(items, dict):
            problems.append(f"{where}: an array needs exactly one items schema")
    elif "items" in node:
        problems.append(f"{where}: items on a non-array")
    list_type = node.get("x-kubernetes-list-type")
    if list_type is not None:
        if list_type not in ("atomic", "set", "map"):
            problems.append(f"{where}: unknown x-kubernetes-list-type {list_type!r}")
        if list_type == "map":
            keys = node.get("x-kubernetes-list-map-keys") or []
            if not keys:
                problems.append(f"{where}: a map list needs x-kubernetes-list-map-keys")
            items = node.get("items") or {}
            for k in keys:
                declared = (items.get("properties") or {}).get(k)
                if declared is None:
                    problems.append(f"{where}: list-map key {k!r} is not a field of the items")
                elif k not in (items.get("required") or ()) and "default" not in declared:
                    problems.append(f"{where}: list-map key {k!r} must be required or defaulted")
    for name, child in (props or {}).items():
        _check(child, f"{path}.{name}" if path else name, problems)
    if isinstance(additional, dict):
        _check(additional, f"{path}.*", problems)
    if isinstance(node.get("items"), dict):
        _check(node["items"], f"{path}[]", problems)


def to_json_schema(crd_schema: Schema) -> Schema:
    """The JSON Schema equivalent of an ``openAPIV3Schema``, see the module docstring."""
    out = _convert(crd_schema, at_root=True)
    out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return out


def _convert(node: Schema, *, at_root: bool = False, open_object: bool = False) -> Schema:
    out: Schema = {}
    for k, v in node.items():
        if k.startswith("x-kubernetes-") or k in ("nullable", "example", "externalDocs"):
            continue
        if k == "properties":
            out[k] = {
                name: _convert(child, open_object=at_root and name == "metadata")
                for name, child in v.items()
            }
        elif k in ("additionalProperties", "items") and isinstance(v, dict):
            out[k] = _convert(v)
        else:
            out[k] = v
    if node.get("x-kubernetes-int-or-string") is True:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    bounds = _INT_BOUNDS.get(node.get("format", ""))
    if node.get("type") == "integer" and bounds:
        out["minimum"] = max(out.get("minimum", bounds[0]), bounds[0])
        out["maximum"] = min(out.get("maximum", bounds[1]), bounds[1])
    if node.get("nullable") is True and "type" in out:
        out["type"] = [out["type"], "null"]
    closed = (
        node.get("type") == "object"
        and "additionalProperties" not in node
        and node.get("x-kubernetes-preserve-unknown-fields") is not True
        and not open_object
    )
    if closed:
        out["additionalProperties"] = False
    return out
