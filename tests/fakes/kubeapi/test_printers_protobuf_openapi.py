"""The fake API server's kubectl columns, protobuf request bodies and OpenAPI v3
documents (what kubectl and helm need of it; both are also run against it end to end in
tests/e2e_kube)."""

from __future__ import annotations

import base64

import pytest

from . import openapi, printers, protobuf
from .resources import BUILTIN_TYPES, ResourceRegistry, default_crds, types_from_crd


def _varint(n: int) -> bytes:
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def _field(number: int, value: bytes | int) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _entry(number: int, key: str, value: bytes) -> bytes:
    return _field(number, _field(1, key.encode()) + _field(2, value))


def _envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = _field(1, api_version.encode()) + _field(2, kind.encode())
    return protobuf.MAGIC + _field(1, type_meta) + _field(2, raw)


def test_a_protobuf_secret_decodes_as_its_json_would() -> None:
    meta = (
        _field(1, b"sh.helm.release.v1.zeroserve.v1")
        + _field(3, b"knative-serving")
        + _entry(11, "owner", b"helm")
        + _entry(11, "status", b"deployed")
    )
    raw = _field(1, meta) + _entry(2, "release", b"\x1f\x8bgz") + _field(3, b"helm.sh/release.v1")
    obj = protobuf.decode(_envelope("v1", "Secret", raw))
    assert obj == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "sh.helm.release.v1.zeroserve.v1",
            "namespace": "knative-serving",
            "labels": {"owner": "helm", "status": "deployed"},
        },
        "data": {"release": base64.b64encode(b"\x1f\x8bgz").decode()},
        "type": "helm.sh/release.v1",
    }


def test_protobuf_delete_options_and_unknown_kinds() -> None:
    raw = _field(4, b"Background") + _field(5, b"All")
    assert protobuf.decode(_envelope("meta.k8s.io/v1", "DeleteOptions", raw)) == {
        "apiVersion": "meta.k8s.io/v1",
        "kind": "DeleteOptions",
        "propagationPolicy": "Background",
        "dryRun": ["All"],
    }
    assert protobuf.decode(_envelope("apps/v1", "Deployment", b"")) is None
    with pytest.raises(protobuf.ProtobufError):
        protobuf.decode(b'{"kind": "Secret"}')


def test_openapi_v3_names_each_kinds_patch_with_field_validation() -> None:
    registry = ResourceRegistry()
    for rt in BUILTIN_TYPES:
        registry.register(rt)
    root = openapi.root(registry)
    assert root["paths"]["apis/apps/v1"]["serverRelativeURL"].startswith(
        "/openapi/v3/apis/apps/v1?hash="
    )
    doc = openapi.group_version(registry, "apis/apps/v1")
    assert doc is not None
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {
        "group": "apps",
        "version": "v1",
        "kind": "Deployment",
    }
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}
    assert openapi.group_version(registry, "apis/nothing.example/v1") is None


def test_jsonpath_of_printer_columns() -> None:
    obj = {
        "status": {
            "url": "http://a.default.example.com",
            "conditions": [
                {"type": "ConfigurationsReady", "status": "True"},
                {"type": "Ready", "status": "Unknown", "reason": "RevisionMissing"},
            ],
        }
    }
    assert printers.jsonpath(obj, ".status.url") == "http://a.default.example.com"
    assert printers.jsonpath(obj, ".status.conditions[?(@.type=='Ready')].status") == "Unknown"
    assert (
        printers.jsonpath(obj, '.status.conditions[?(@.type=="Ready")].reason') == "RevisionMissing"
    )
    assert printers.jsonpath(obj, ".status.conditions[0].type") == "ConfigurationsReady"
    assert printers.jsonpath(obj, ".status.missing") is None


def test_crd_columns_and_pod_status_as_kubectl_shows_them() -> None:
    ksvc_crd = next(c for c in default_crds() if c["spec"]["names"]["plural"] == "services")
    version = types_from_crd(ksvc_crd)[0].version
    columns = printers.crd_columns(ksvc_crd, version)
    if columns is not None:  # the seeded CRD may declare none; the chart's do
        assert all("name" in d for d, _ in columns)
    crd = {
        "spec": {
            "versions": [
                {
                    "name": "v1",
                    "additionalPrinterColumns": [
                        {"name": "URL", "type": "string", "jsonPath": ".status.url"},
                        {
                            "name": "Ready",
                            "type": "string",
                            "jsonPath": ".status.conditions[?(@.type=='Ready')].status",
                        },
                    ],
                }
            ]
        }
    }
    (url, ready) = printers.crd_columns(crd, "v1") or []
    obj = {"status": {"url": "http://x", "conditions": [{"type": "Ready", "status": "True"}]}}
    assert (url[1](obj), ready[1](obj)) == ("http://x", "True")
    pod = {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {"name": "a", "ready": True, "restartCount": 2, "state": {"running": {}}},
                {
                    "name": "b",
                    "ready": False,
                    "restartCount": 1,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                },
            ],
        },
    }
    cells = {d["name"]: f(pod) for d, f in printers.BUILTIN["pods"]}
    assert (cells["Ready"], cells["Status"], cells["Restarts"]) == ("1/2", "CrashLoopBackOff", "3")
    pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert dict((d["name"], f(pod)) for d, f in printers.BUILTIN["pods"])["Status"] == "Terminating"
