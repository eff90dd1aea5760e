"""Kubernetes' protobuf encoding, read for the few kinds clients send that way.

client-go's typed clients (helm's release storage, kubectl's Secrets and ConfigMaps)
send built-in objects as ``application/vnd.kubernetes.protobuf`` and do not fall back to
JSON on a 415. This decodes what they send: the ``k8s\\0`` envelope (a
``runtime.Unknown`` with the TypeMeta and the raw message), then Secrets, ConfigMaps and
DeleteOptions (k8s.io/api core/v1 and apimachinery meta/v1 ``generated.proto`` field
numbers) into the same dicts JSON would give. Other kinds get a 415 naming JSON, which
every client here can send. Responses are always JSON (clients accept it).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    pass


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(data):
            raise ProtobufError("truncated varint")
        b = data[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value): varints as ints, length-delimited as bytes."""
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
            yield number, value
        elif wire == 2:
            length, i = _varint(data, i)
            yield number, data[i : i + length]
            i += length
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")


def _str(v: int | bytes) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _entry(v: int | bytes) -> tuple[str, bytes]:
    key, value = "", b""
    for n, x in fields(v if isinstance(v, bytes) else b""):
        if n == 1:
            key = _str(x)
        elif n == 2 and isinstance(x, bytes):
            value = x
    return key, value


def _time(v: int | bytes) -> str:
    import datetime

    seconds = 0
    for n, x in fields(v if isinstance(v, bytes) else b""):
        if n == 1 and isinstance(x, int):
            seconds = x
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _owner_ref(v: bytes) -> dict[str, Any]:
    names = {1: "kind", 3: "name", 4: "uid", 5: "apiVersion"}
    out: dict[str, Any] = {}
    for n, x in fields(v):
        if n in names:
            out[names[n]] = _str(x)
        elif n == 6:
            out["controller"] = bool(x)
        elif n == 7:
            out["blockOwnerDeletion"] = bool(x)
    return out


def object_meta(data: bytes) -> dict[str, Any]:
    strings = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}
    meta: dict[str, Any] = {}
    for n, v in fields(data):
        if n in strings:
            meta[strings[n]] = _str(v)
        elif n == 7:
            meta["generation"] = v
        elif n in (8, 9):
            meta["creationTimestamp" if n == 8 else "deletionTimestamp"] = _time(v)
        elif n in (11, 12):
            k, value = _entry(v)
            meta.setdefault("labels" if n == 11 else "annotations", {})[k] = value.decode()
        elif n == 13 and isinstance(v, bytes):
            meta.setdefault("ownerReferences", []).append(_owner_ref(v))
        elif n == 14:
            meta.setdefault("finalizers", []).append(_str(v))
    for key in ("uid", "resourceVersion"):
        if not meta.get(key):
            meta.pop(key, None)
    return meta


def _secret(data: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n, v in fields(data):
        if n == 1 and isinstance(v, bytes):
            out["metadata"] = object_meta(v)
        elif n == 2:
            k, value = _entry(v)
            out.setdefault("data", {})[k] = base64.b64encode(value).decode()
        elif n == 3:
            out["type"] = _str(v)
        elif n == 4:
            k, value = _entry(v)
            out.setdefault("stringData", {})[k] = value.decode()
        elif n == 5:
            out["immutable"] = bool(v)
    return out


def _config_map(data: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n, v in fields(data):
        if n == 1 and isinstance(v, bytes):
            out["metadata"] = object_meta(v)
        elif n == 2:
            k, value = _entry(v)
            out.setdefault("data", {})[k] = value.decode()
        elif n == 3:
            k, value = _entry(v)
            out.setdefault("binaryData", {})[k] = base64.b64encode(value).decode()
        elif n == 4:
            out["immutable"] = bool(v)
    return out


def _delete_options(data: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n, v in fields(data):
        if n == 1:
            out["gracePeriodSeconds"] = v
        elif n == 2 and isinstance(v, bytes):
            pre = {
                ({1: "uid", 2: "resourceVersion"}[m]): _str(x) for m, x in fields(v) if m in (1, 2)
            }
            out["preconditions"] = pre
        elif n == 3:
            out["orphanDependents"] = bool(v)
        elif n == 4:
            out["propagationPolicy"] = _str(v)
        elif n == 5:
            out.setdefault("dryRun", []).append(_str(v))
    return out


_DECODERS: dict[str, Callable[[bytes], dict[str, Any]]] = {
    "Secret": _secret,
    "ConfigMap": _config_map,
    "DeleteOptions": _delete_options,
}


def decode(body: bytes) -> dict[str, Any] | None:
    """The object in a protobuf request body; None for a kind not decoded here."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf envelope")
    api_version = kind = ""
    raw = b""
    for n, v in fields(body[len(MAGIC) :]):
        if n == 1 and isinstance(v, bytes):
            for m, x in fields(v):
                if m == 1:
                    api_version = _str(x)
                elif m == 2:
                    kind = _str(x)
        elif n == 2 and isinstance(v, bytes):
            raw = v
    decoder = _DECODERS.get(kind)
    if decoder is None:
        return None
    obj = decoder(raw)
    obj["apiVersion"], obj["kind"] = api_version, kind
    return obj
