"""``load``: YAML text -> manifest objects, or every problem of the file at once.

Documents are read with PyYAML's safe loader (no arbitrary Python objects),
made strict about duplicate keys as the API server is (PyYAML would keep the
last one silently). Each document must be a ``serving.knative.dev/v1``
Service, Configuration or Route, or a ``v1`` ConfigMap or Secret. Shape problems (types, unknown fields) are found here;
rules that need configuration are in :mod:`zeroserve.api.validate`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, ScalarNode

from zeroserve.api.errors import ManifestError, ManifestErrors, describe
from zeroserve.api.fields import Fields, Problems, join
from zeroserve.api.objects import (
    CONFIG_MAP_NAMES,
    CORE_API_VERSION,
    DEFAULT_NAMESPACE,
    SERVING_API_VERSION,
    SERVING_V1BETA1,
    SYSTEM_NAMESPACE,
    ConfigMapObject,
    Configuration,
    DomainMapping,
    Object,
    ObjectMeta,
    ObjectRef,
    RevisionTemplate,
    Route,
    SecretObject,
    Service,
    TrafficTarget,
)
from zeroserve.api.template import parse_template

_KINDS_RULE = (
    "must be Service, Configuration or Route (apiVersion serving.knative.dev/v1), "
    "DomainMapping (apiVersion serving.knative.dev/v1beta1) or ConfigMap or Secret "
    "(apiVersion v1)"
)
# Kubernetes' rule for ConfigMap and Secret keys.
_DATA_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_MAX_DATA_KEY = 253
NO_OBJECTS = "no objects in the manifest (it is empty, or only comments and '---')"


class _StrictLoader(yaml.SafeLoader):
    """The safe loader, refusing duplicate keys in a mapping (kubectl does too)."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[str, int] = {}
        for key_node, _ in node.value:
            # Only plain scalar keys can be compared before construction; ``<<`` merges
            # may legitimately override keys.
            if not isinstance(key_node, ScalarNode) or key_node.value == "<<":
                continue
            line = key_node.start_mark.line + 1
            if key_node.value in first_line:
                raise ConstructorError(
                    None,
                    None,
                    f"duplicate key {key_node.value!r} (first at line {first_line[key_node.value]})",
                    key_node.start_mark,
                )
            first_line[key_node.value] = line
        return super().construct_mapping(node, deep=deep)


def load(text: str, file: str) -> list[Object]:
    """Every object in ``text`` (YAML, ``---``-separated; empty documents skipped).

    Raises ``ManifestErrors`` with all problems of the file; then nothing of it
    is returned. A file without any object is an error too, as ``kubectl apply``'s
    "no objects passed to apply": an empty file is more often the wrong file (or a
    redirect that failed) than a request to do nothing. ``file`` is only used in
    messages.
    """
    documents, syntax_errors = _documents(text, file)
    errors: list[ManifestError] = []
    objects: list[Object] = []
    for index, line, doc in documents:
        parsed = parse_document(doc, file, index=index, line=line)
        if isinstance(parsed, list):
            errors.extend(parsed)
        else:
            objects.append(parsed)
    # A syntax error ends reading, so it comes after the documents before it.
    errors.extend(syntax_errors)
    if not errors and not objects:
        errors.append(ManifestError(file, "", "", NO_OBJECTS))
    if errors:
        raise ManifestErrors(errors)
    return objects


def _documents(text: str, file: str) -> tuple[list[tuple[int, int, Any]], list[ManifestError]]:
    """(index, line, value) of each non-empty document, and the YAML error that stopped
    reading, if any. Documents before a syntax error are still returned (and checked)."""
    found: list[tuple[int, int, Any]] = []
    loader: _StrictLoader | None = None
    index = 0
    try:
        # The reader checks the characters while it is constructed: inside the try.
        loader = _StrictLoader(text)
        while loader.check_node():
            node = loader.get_node()
            index += 1
            if node is None:
                continue
            value = loader.construct_document(node)
            if value is not None:
                found.append((index, node.start_mark.line + 1, value))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = ": ".join(str(p) for p in (e.context, e.problem) if p)
        line = None if mark is None else mark.line + 1
        return found, [ManifestError(file, "", "", f"invalid YAML: {problem}", line)]
    except yaml.reader.ReaderError as e:  # a character YAML forbids; no line is known
        return found, [
            ManifestError(
                file,
                "",
                "",
                f"invalid YAML: {e.reason}: character #x{e.character:04x} at position {e.position}",
            )
        ]
    except yaml.YAMLError as e:
        return found, [ManifestError(file, "", "", f"invalid YAML: {' '.join(str(e).split())}")]
    except (ValueError, RecursionError, OverflowError) as e:
        # PyYAML lets a few of Python's own limits escape: a 5,000-digit integer
        # (int max_str_digits), nesting deeper than the recursion limit.
        return found, [ManifestError(file, "", "", f"invalid YAML: {type(e).__name__}: {e}")]
    finally:
        if loader is not None:
            loader.dispose()
    return found, []


def parse_document(
    doc: Any, file: str, *, index: int = 1, line: int | None = None
) -> Object | list[ManifestError]:
    """One YAML document as an object, or its problems (never both)."""
    anonymous = f"document {index}"
    problems: Problems = []
    f = Fields.of(doc, "", problems)
    if f is None:
        return [
            ManifestError(
                file,
                anonymous,
                "",
                f"must be a mapping (a Kubernetes object), got {describe(doc)}",
                line,
            )
        ]
    api_version = f.string("apiVersion", required=True)
    kind = f.string("kind", required=True)
    build = _BUILDERS.get((api_version, kind))
    if build is None:
        # Not an object zeroserve takes: its other fields would only be noise.
        if kind in ("Service", "Configuration", "Route"):
            f.note(
                "apiVersion",
                f"must be {SERVING_API_VERSION} for a {kind}, got {describe(api_version)}",
            )
        elif kind == "DomainMapping":
            f.note(
                "apiVersion",
                f"must be {SERVING_V1BETA1} for a DomainMapping, got {describe(api_version)}",
            )
        elif kind in ("ConfigMap", "Secret"):
            f.note(
                "apiVersion",
                f"must be {CORE_API_VERSION} for a {kind}, got {describe(api_version)}",
            )
        elif kind:
            f.note("kind", f"{_KINDS_RULE}, got {describe(kind)}")
        return [ManifestError(file, anonymous, path, rule, line) for path, rule in problems]
    meta = _metadata(f)
    obj = build(f, meta, file)
    f.only(unsupported={"status": "must not be set: status is written by the controller"})
    if problems:
        named = bool(meta.name or meta.generate_name)
        label = f"{kind} {meta.namespace}/{meta.name or meta.generate_name}" if named else anonymous
        return [
            ManifestError(file, label, path, rule, None if named else line)
            for path, rule in problems
        ]
    return obj


def _metadata(f: Fields) -> ObjectMeta:
    m = f.mapping("metadata")
    if m is None:
        if not f.has("metadata"):
            f.note("metadata", "missing required field")
        return ObjectMeta(name="")
    generate_name = m.string("generateName")
    meta = ObjectMeta(
        name=m.string("name", required=not generate_name),
        namespace=m.string("namespace") or DEFAULT_NAMESPACE,
        labels=m.str_map("labels"),
        annotations=m.str_map("annotations"),
        generate_name=generate_name,
    )
    m.null("creationTimestamp")
    m.only()
    return meta


def _spec(f: Fields) -> Fields | None:
    spec = f.mapping("spec")
    if spec is None and not f.has("spec"):
        f.note("spec", "missing required field")
    return spec


def _service(f: Fields, meta: ObjectMeta, file: str) -> Service:
    spec = _spec(f)
    if spec is None:
        return Service(meta=meta, template=RevisionTemplate(), source=file)
    service = Service(meta=meta, template=parse_template(spec), traffic=_traffic(spec), source=file)
    spec.only()
    return service


def _configuration(f: Fields, meta: ObjectMeta, file: str) -> Configuration:
    spec = _spec(f)
    if spec is None:
        return Configuration(meta=meta, template=RevisionTemplate(), source=file)
    configuration = Configuration(meta=meta, template=parse_template(spec), source=file)
    spec.only()
    return configuration


def _route(f: Fields, meta: ObjectMeta, file: str) -> Route:
    spec = _spec(f)
    if spec is None:
        return Route(meta=meta, source=file)
    route = Route(meta=meta, traffic=_traffic(spec, metadata="metadata"), source=file)
    spec.only(metadata="metadata")  # a Route has no revision template
    return route


def _config_map(f: Fields, meta: ObjectMeta, file: str) -> ConfigMapObject:
    if (
        meta.namespace == SYSTEM_NAMESPACE
        and meta.name.startswith("config-")
        and meta.name not in CONFIG_MAP_NAMES
    ):
        f.note(
            "metadata.name",
            f"is not a setting zeroserve reads: the ConfigMaps of {SYSTEM_NAMESPACE} it reads are "
            f"{', '.join(CONFIG_MAP_NAMES)}, got {describe(meta.name)}",
        )
    data = f.str_map("data")
    binary = f.str_map("binaryData")
    for key, value in binary.items():
        if _base64(value) is None:
            _note_key(f, "binaryData", key, "must be base64-encoded")
    for key in (*data, *binary):
        _check_data_key(f, "data" if key in data else "binaryData", key)
    for key in set(data) & set(binary):
        _note_key(f, "binaryData", key, "is also a key of data; keys must be unique")
    cm = ConfigMapObject(
        meta=meta, data=data, binary_data=binary, immutable=f.boolean("immutable"), source=file
    )
    if cm.is_setting and (binary or cm.immutable is not None):
        f.note(
            "binaryData" if binary else "immutable",
            f"not supported in {meta.name} (zeroserve's settings are plain data)",
        )
    f.only()
    return cm


def _secret(f: Fields, meta: ObjectMeta, file: str) -> SecretObject:
    data: dict[str, str] = {}
    for key, value in f.str_map("data").items():
        if _check_data_key(f, "data", key) and _base64(value) is None:
            _note_key(f, "data", key, "must be base64-encoded (use stringData for plain text)")
        data[key] = value
    for key, value in f.str_map("stringData").items():
        if _check_data_key(f, "stringData", key):
            # As the API server: stringData is merged into data, and wins.
            data[key] = base64.b64encode(value.encode()).decode()
    secret = SecretObject(
        meta=meta,
        data=data,
        type=f.string("type") or "Opaque",
        immutable=f.boolean("immutable"),
        source=file,
    )
    f.only()
    return secret


def _domain_mapping(f: Fields, meta: ObjectMeta, file: str) -> DomainMapping:
    spec = _spec(f)
    ref = ObjectRef("", "", "")
    if spec is not None:
        r = spec.mapping("ref")
        if r is None:
            if not spec.has("ref"):
                spec.note("ref", "missing required field")
        else:
            ref = ObjectRef(
                api_version=r.string("apiVersion", required=True),
                kind=r.string("kind", required=True),
                name=r.string("name", required=True),
                namespace=r.string("namespace"),
            )
            r.only(metadata="metadata")
        spec.only(
            unsupported={
                "tls": "not supported by zeroserve yet (it has no TLS); leave it out",
            },
            metadata="metadata",
        )
    return DomainMapping(meta=meta, ref=ref, source=file)


def _base64(value: str) -> bytes | None:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _note_key(f: Fields, section: str, key: str, rule: str) -> None:
    f.problems.append((join(join(f.path, section), key), rule))


def _check_data_key(f: Fields, section: str, key: str) -> bool:
    if len(key) > _MAX_DATA_KEY or not _DATA_KEY.fullmatch(key) or key in (".", ".."):
        _note_key(
            f,
            section,
            key,
            "a key must consist of letters, digits, '-', '_' or '.' (at most 253), "
            f"got {describe(key)}",
        )
        return False
    return True


def _traffic(spec: Fields, *, metadata: str | None = None) -> tuple[TrafficTarget, ...]:
    targets = []
    for path, item in spec.items("traffic"):
        t = Fields.of(item, path, spec.problems)
        if t is None:
            continue
        targets.append(
            TrafficTarget(
                revision_name=t.string("revisionName"),
                configuration_name=t.string("configurationName"),
                latest_revision=t.boolean("latestRevision"),
                percent=t.integer("percent"),
                tag=t.string("tag"),
            )
        )
        if t.raw("url") is not None:
            t.note("url", "must not be set in spec: a target's URL is status only")
        t.only(metadata=metadata)
    return tuple(targets)


_BUILDERS: dict[tuple[str, str], Callable[[Fields, ObjectMeta, str], Object]] = {
    (SERVING_API_VERSION, "Service"): _service,
    (SERVING_API_VERSION, "Configuration"): _configuration,
    (SERVING_API_VERSION, "Route"): _route,
    (CORE_API_VERSION, "ConfigMap"): _config_map,
    (CORE_API_VERSION, "Secret"): _secret,
    (SERVING_V1BETA1, "DomainMapping"): _domain_mapping,
}
