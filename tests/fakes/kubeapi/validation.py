"""Decoding checks and validation for the objects the fake stores.

Two classes of mistake are caught the way a real apiserver catches them, so that client bugs
show up in tests instead of on a cluster:

* decoding errors (400 BadRequest): label values that are not strings, timestamps without a
  timezone in Lease times (Python's naive ``datetime.isoformat()`` is the usual culprit);
* validation errors (422 Invalid): malformed names, a Deployment whose selector does not
  match its template labels, an EndpointSlice without an addressType, an inconsistent CRD.

Only the rules that zeroserve's components can plausibly trip over are modelled.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from . import errors
from .resources import ResourceType
from .selection import format_label_selector, labels_match, parse_label_selector

Cause = tuple[str, str, str]  # field, reason, message

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_NAME_RULES = {
    "subdomain": (_SUBDOMAIN, 253, "a lowercase RFC 1123 subdomain"),
    "label1123": (_LABEL_1123, 63, "a lowercase RFC 1123 label"),
    "label1035": (_LABEL_1035, 63, "a DNS-1035 label"),
}
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
_LEASE_TIMES = ("acquireTime", "renewTime")


def check_name(rt: ResourceType, name: str) -> list[Cause]:
    pattern, limit, what = _NAME_RULES[rt.name_rule]
    if len(name) > limit:
        return [
            ("metadata.name", "FieldValueTooLong", f"Too long: may not be more than {limit} bytes")
        ]
    if not pattern.match(name):
        return [
            (
                "metadata.name",
                "FieldValueInvalid",
                f'Invalid value: "{name}": must be {what} (lower case alphanumerics and '
                f"'-'{', or .' if rt.name_rule == 'subdomain' else ''}, starting and "
                "ending with an alphanumeric character)",
            )
        ]
    return []


def _micro_time(value: Any, field: str) -> str:
    """Parse a metav1.MicroTime and re-render it the way the apiserver serializes it."""
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise errors.bad_request(
            f"{field}: parsing time {value!r} as RFC3339: a timezone offset is required"
        )
    text = value.replace("Z", "+00:00")
    whole, _, rest = text.partition(".")
    if rest:
        digits = re.match(r"\d+", rest)
        assert digits is not None
        fraction = digits.group(0)[:6].ljust(6, "0")
        text = f"{whole}.{fraction}{rest[len(digits.group(0)) :]}"
    parsed = datetime.fromisoformat(text).astimezone(UTC)
    return parsed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def decode(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    """Reject what the apiserver could not even decode; normalize what it re-serializes."""
    meta = obj.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise errors.bad_request("metadata must be an object")
    for field in ("labels", "annotations"):
        values = (meta or {}).get(field)
        if values is None:
            continue
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            raise errors.bad_request(
                f"json: cannot unmarshal into Go struct field ObjectMeta.metadata.{field} "
                "of type map[string]string"
            )
    if rt.group == "coordination.k8s.io" and isinstance(obj.get("spec"), dict):
        spec = obj["spec"]
        for field in _LEASE_TIMES:
            if spec.get(field) is not None:
                spec[field] = _micro_time(spec[field], f"spec.{field}")
    return obj


def _selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    reqs = parse_label_selector(format_label_selector(selector))
    return labels_match(reqs, {"metadata": {"labels": labels}})


def _workload(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    causes: list[Cause] = []
    spec = obj.get("spec") or {}
    selector = spec.get("selector")
    if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        causes.append(("spec.selector", "FieldValueRequired", "Required value"))
    else:
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if not _selector_matches(selector, labels):
            causes.append(
                (
                    "spec.template.metadata.labels",
                    "FieldValueInvalid",
                    "Invalid value: `selector` does not match template `labels`",
                )
            )
        if old is not None and (old.get("spec") or {}).get("selector") != selector:
            causes.append(("spec.selector", "FieldValueInvalid", "field is immutable"))
    replicas = spec.get("replicas")
    if replicas is not None and (not isinstance(replicas, int) or replicas < 0):
        causes.append(
            (
                "spec.replicas",
                "FieldValueInvalid",
                f"Invalid value: {replicas}: must be greater than or equal to 0",
            )
        )
    return causes


def _endpoint_slice(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    address_type = obj.get("addressType")
    if not address_type:
        return [("addressType", "FieldValueRequired", "Required value")]
    if address_type not in ("IPv4", "IPv6", "FQDN"):
        return [
            (
                "addressType",
                "FieldValueNotSupported",
                f'Unsupported value: "{address_type}": supported values: "FQDN", "IPv4", "IPv6"',
            )
        ]
    if old is not None and old.get("addressType") != address_type:
        return [("addressType", "FieldValueInvalid", "field is immutable")]
    return []


def _crd(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    spec = obj.get("spec") or {}
    names = spec.get("names") or {}
    causes: list[Cause] = []
    for field, value in (
        ("spec.group", spec.get("group")),
        ("spec.names.plural", names.get("plural")),
        ("spec.names.kind", names.get("kind")),
    ):
        if not value:
            causes.append((field, "FieldValueRequired", "Required value"))
    if causes:
        return causes
    expected = f"{names['plural']}.{spec['group']}"
    if obj["metadata"].get("name") != expected:
        causes.append(
            (
                "metadata.name",
                "FieldValueInvalid",
                f'Invalid value: "{obj["metadata"].get("name")}": '
                f'must be spec.names.plural+"."+spec.group',
            )
        )
    if spec.get("scope", "Namespaced") not in ("Namespaced", "Cluster"):
        causes.append(
            (
                "spec.scope",
                "FieldValueNotSupported",
                'Unsupported value: supported values: "Cluster", "Namespaced"',
            )
        )
    versions = spec.get("versions") or []
    if not versions:
        causes.append(("spec.versions", "FieldValueInvalid", "must have exactly one version"))
    elif sum(1 for v in versions if v.get("storage")) != 1:
        causes.append(
            (
                "spec.versions",
                "FieldValueInvalid",
                "Invalid value: must have exactly one version marked as storage version",
            )
        )
    if old is not None and (old.get("spec") or {}).get("scope") != spec.get("scope"):
        causes.append(("spec.scope", "FieldValueInvalid", "field is immutable"))
    return causes


_VALIDATORS = {
    "deployments.apps": _workload,
    "replicasets.apps": _workload,
    "endpointslices.discovery.k8s.io": _endpoint_slice,
    "customresourcedefinitions.apiextensions.k8s.io": _crd,
}


def validate(rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """Raise 422 Invalid for an object the apiserver's validation would refuse."""
    name = obj["metadata"].get("name", "")
    causes = check_name(rt, name) if old is None else []
    check = _VALIDATORS.get(rt.storage_key)
    if check is not None:
        causes += check(obj, old)
    if causes:
        raise errors.invalid(rt.kind, rt.group, name, causes)
