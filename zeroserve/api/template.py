"""Parsing ``spec.template``: revision metadata, the pod spec, its containers.

Shape only (types, known fields); the rules that need configuration (the
``config-features`` flags) or relate fields to each other are in
:mod:`zeroserve.api.validate`. Every field Kubernetes has in a pod spec is
known here: Knative's allowed subset is read (typed where zeroserve acts on
it, kept as written where only the cluster does, like ``affinity``); the
fields Knative never allows (``restartPolicy``, ``lifecycle``, ``hostPort``...)
are refused with Knative's message, ``must not set the field(s)``, so a
user can tell "not in Knative" from a typo.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from zeroserve.api.errors import describe
from zeroserve.api.fields import Fields, Problems
from zeroserve.api.objects import (
    Container,
    ContainerPort,
    EnvFrom,
    EnvSource,
    EnvVar,
    FieldRef,
    KeyRef,
    ResourceFieldRef,
    RevisionTemplate,
)

NOT_IN_KNATIVE = "must not set the field(s)"
"""Knative's message for a Kubernetes field its revisions never allow."""

# Knative's own fields of a revision spec, beside the pod spec's.
_KNATIVE_SPEC = (
    "containerConcurrency",
    "timeoutSeconds",
    "responseStartTimeoutSeconds",
    "idleTimeoutSeconds",
)
# Pod spec fields that are kept as written; the value's type is checked here and
# config-features decides in validate.py whether they may be set at all.
_POD_STRINGS = (
    "serviceAccountName",
    "runtimeClassName",
    "priorityClassName",
    "schedulerName",
    "dnsPolicy",
)
_POD_BOOLS = (
    "automountServiceAccountToken",
    "enableServiceLinks",
    "shareProcessNamespace",
    "hostIPC",
    "hostPID",
    "hostNetwork",
)
_POD_OBJECTS = ("affinity", "dnsConfig")
_POD_LISTS = ("tolerations", "topologySpreadConstraints", "hostAliases")
_POD_NOT_IN_KNATIVE = dict.fromkeys(
    (
        "restartPolicy",
        "terminationGracePeriodSeconds",
        "activeDeadlineSeconds",
        "nodeName",
        "hostname",
        "subdomain",
        "priority",
        "readinessGates",
        "preemptionPolicy",
        "overhead",
        "setHostnameAsFQDN",
        "os",
        "hostUsers",
        "schedulingGates",
        "resourceClaims",
        "ephemeralContainers",
        "serviceAccount",
        "resources",
        "hostnameOverride",
    ),
    NOT_IN_KNATIVE,
)
_CONTAINER_NOT_IN_KNATIVE = dict.fromkeys(
    ("lifecycle", "stdin", "stdinOnce", "tty", "volumeDevices", "resizePolicy", "restartPolicy"),
    NOT_IN_KNATIVE,
)
_PROBE_INTS = (
    "initialDelaySeconds",
    "timeoutSeconds",
    "periodSeconds",
    "successThreshold",
    "failureThreshold",
    "terminationGracePeriodSeconds",
)
PROBE_HANDLERS = ("httpGet", "tcpSocket", "exec", "grpc")
_HOST_UNSUPPORTED = {"host": "not supported by zeroserve: probes always go to the container itself"}
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
TERMINATION_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
# A Kubernetes resource quantity: 100m, 0.5, 128Mi, 1e3.
_QUANTITY = re.compile(
    r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?"
)
_SECURITY_CONTEXT_NOT_IN_KNATIVE = dict.fromkeys(
    ("seLinuxOptions", "procMount", "windowsOptions", "appArmorProfile"), NOT_IN_KNATIVE
)
_POD_SECURITY_CONTEXT_NOT_IN_KNATIVE = dict.fromkeys(
    (
        "seLinuxOptions",
        "windowsOptions",
        "sysctls",
        "fsGroupChangePolicy",
        "appArmorProfile",
        "supplementalGroupsPolicy",
        "seLinuxChangePolicy",
    ),
    NOT_IN_KNATIVE,
)
VOLUME_SOURCES = (
    "secret",
    "configMap",
    "projected",
    "emptyDir",
    "persistentVolumeClaim",
    "hostPath",
    "csi",
    "ephemeral",
    "image",
)
_VOLUME_NOT_IN_KNATIVE = dict.fromkeys(
    (
        "awsElasticBlockStore",
        "azureDisk",
        "azureFile",
        "cephfs",
        "cinder",
        "downwardAPI",
        "fc",
        "flexVolume",
        "flocker",
        "gcePersistentDisk",
        "gitRepo",
        "glusterfs",
        "iscsi",
        "nfs",
        "photonPersistentDisk",
        "portworxVolume",
        "quobyte",
        "rbd",
        "scaleIO",
        "storageos",
        "vsphereVolume",
    ),
    NOT_IN_KNATIVE,
)


_ENV_SOURCES = ("secretKeyRef", "configMapKeyRef", "fieldRef", "resourceFieldRef")
_PROJECTIONS = ("secret", "configMap", "serviceAccountToken", "downwardAPI")


def exactly_one(
    problems: Problems, path: str, given: Sequence[str], choices: Sequence[str]
) -> bool:
    """Knative's one-of rule: notes ``expected exactly one, got both: <given>`` or
    ``got neither: <choices>``; True when exactly one was given."""
    if len(given) > 1:
        problems.append((path, f"expected exactly one, got both: {', '.join(given)}"))
    elif not given:
        problems.append((path, f"expected exactly one, got neither: {', '.join(choices)}"))
    return len(given) == 1


def parse_template(spec: Fields) -> RevisionTemplate:
    """``spec.template`` of a Service or Configuration (required)."""
    t = spec.mapping("template")
    if t is None:
        if not spec.has("template"):
            spec.note("template", "missing required field")
        return RevisionTemplate()
    name, labels, annotations = "", {}, {}
    meta = t.mapping("metadata")
    if meta is not None:
        name = meta.string("name")
        labels = meta.str_map("labels")
        annotations = meta.str_map("annotations")
        meta.null("creationTimestamp")
        meta.only(
            unsupported={
                "namespace": "not allowed: a revision lives in its configuration's namespace",
                "generateName": "not supported by zeroserve (set name, or leave it out)",
            }
        )
    pod = t.mapping("spec")
    t.only()
    if pod is None:
        if not t.has("spec"):
            t.note("spec", "missing required field")
        return RevisionTemplate(name=name, labels=labels, annotations=annotations)
    if not pod.has("containers"):
        pod.note("containers", "missing required field")
    template = RevisionTemplate(
        name=name,
        labels=labels,
        annotations=annotations,
        containers=_containers(pod, "containers"),
        init_containers=_containers(pod, "initContainers"),
        container_concurrency=pod.integer("containerConcurrency"),
        timeout_seconds=pod.integer("timeoutSeconds"),
        response_start_timeout_seconds=pod.integer("responseStartTimeoutSeconds"),
        idle_timeout_seconds=pod.integer("idleTimeoutSeconds"),
        pod=_pod_fields(pod),
    )
    pod.only(unsupported=_POD_NOT_IN_KNATIVE)
    return template


def _containers(pod: Fields, key: str) -> tuple[Container, ...]:
    return tuple(_container(path, item, pod.problems) for path, item in pod.items(key))


def _pod_fields(pod: Fields) -> dict[str, Any]:
    """Every pod-level field other than the containers and Knative's own, as written."""
    out: dict[str, Any] = {}
    for key in _POD_STRINGS:
        text = pod.string(key)
        if text:
            out[key] = text
    for key in _POD_BOOLS:
        value = pod.boolean(key)
        if value is not None:
            out[key] = value
    for key in _POD_OBJECTS:
        body = pod.mapping(key)
        if body is not None:
            out[key] = body.plain()
    for key in _POD_LISTS:
        items = [
            f.plain()
            for path, item in pod.items(key)
            if (f := Fields.of(item, path, pod.problems)) is not None
        ]
        if items:
            out[key] = items
    selector = pod.str_map("nodeSelector")
    if selector:
        out["nodeSelector"] = selector
    pull_secrets = []
    for path, item in pod.items("imagePullSecrets"):
        f = Fields.of(item, path, pod.problems)
        if f is not None:
            pull_secrets.append({"name": f.string("name", required=True)})
            f.only()
    if pull_secrets:
        out["imagePullSecrets"] = pull_secrets
    context = pod.mapping("securityContext")
    if context is not None:
        out["securityContext"] = _security_context(context, pod_level=True)
    volumes = [v for path, item in pod.items("volumes") if (v := _volume(path, item, pod.problems))]
    if volumes:
        out["volumes"] = volumes
    return out


# ----- containers --------------------------------------------------------------------------


def _container(path: str, value: object, problems: Problems) -> Container:
    f = Fields.of(value, path, problems)
    if f is None:
        return Container()
    ports = []
    for port_path, item in f.items("ports"):
        p = Fields.of(item, port_path, problems)
        if p is not None:
            number = p.integer("containerPort")
            ports.append(
                ContainerPort(
                    container_port=number or 8080,
                    name=p.string("name"),
                    protocol=p.string("protocol"),
                )
            )
            p.only(unsupported=dict.fromkeys(("hostPort", "hostIP"), NOT_IN_KNATIVE))
    pull = f.string("imagePullPolicy")
    if pull and pull not in PULL_POLICIES:
        f.note(
            "imagePullPolicy", f"must be one of {', '.join(PULL_POLICIES)}, got {describe(pull)}"
        )
    policy = f.string("terminationMessagePolicy")
    if policy and policy not in TERMINATION_MESSAGE_POLICIES:
        f.note(
            "terminationMessagePolicy",
            f"must be one of {', '.join(TERMINATION_MESSAGE_POLICIES)}, got {describe(policy)}",
        )
    context = f.mapping("securityContext")
    container = Container(
        name=f.string("name"),
        image=f.string("image"),
        command=f.strs("command"),
        args=f.strs("args"),
        env=tuple(_env(f)),
        env_from=tuple(_env_from(f)),
        ports=tuple(ports),
        readiness_probe=_probe(f, "readinessProbe"),
        liveness_probe=_probe(f, "livenessProbe"),
        startup_probe=_probe(f, "startupProbe"),
        working_dir=f.string("workingDir"),
        resources=_resources(f),
        volume_mounts=tuple(_volume_mounts(f)),
        image_pull_policy=pull if pull in PULL_POLICIES else "",
        security_context={} if context is None else _security_context(context, pod_level=False),
        termination_message_path=f.string("terminationMessagePath"),
        termination_message_policy=policy if policy in TERMINATION_MESSAGE_POLICIES else "",
    )
    f.only(unsupported=_CONTAINER_NOT_IN_KNATIVE)
    return container


def _env(container: Fields) -> list[EnvVar]:
    out = []
    for path, item in container.items("env"):
        e = Fields.of(item, path, container.problems)
        if e is None:
            continue
        name = e.string("name", required=True)
        value = e.string("value")
        source = None
        ref = e.mapping("valueFrom")
        if ref is not None:
            source = _env_source(ref)
            if value:
                e.note("valueFrom", "may not be specified when `value` is not empty")
        out.append(EnvVar(name=name, value=value, value_from=source))
        e.only()
    return out


def _env_source(ref: Fields) -> EnvSource | None:
    found: list[EnvSource] = []
    given = [key for key in _ENV_SOURCES if ref.has(key)]
    for kind, key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
        k = ref.mapping(key)
        if k is not None:
            found.append(
                KeyRef(
                    kind=kind,
                    name=k.string("name", required=True),
                    key=k.string("key", required=True),
                    optional=k.boolean("optional"),
                )
            )
            k.only()
    field_ref = ref.mapping("fieldRef")
    if field_ref is not None:
        found.append(
            FieldRef(
                field_path=field_ref.string("fieldPath", required=True),
                api_version=field_ref.string("apiVersion"),
            )
        )
        field_ref.only()
    resource_ref = ref.mapping("resourceFieldRef")
    if resource_ref is not None:
        divisor = resource_ref.raw("divisor")
        if divisor is not None and not _is_quantity(divisor):
            resource_ref.note(
                "divisor", f"must be a quantity like 1m or 1Mi, got {describe(divisor)}"
            )
            divisor = None
        found.append(
            ResourceFieldRef(
                resource=resource_ref.string("resource", required=True),
                container_name=resource_ref.string("containerName"),
                divisor=divisor,
            )
        )
        resource_ref.only()
    ref.only()
    if not exactly_one(ref.problems, ref.path, given, _ENV_SOURCES):
        return None
    return found[0] if found else None


def _env_from(container: Fields) -> list[EnvFrom]:
    out = []
    for path, item in container.items("envFrom"):
        e = Fields.of(item, path, container.problems)
        if e is None:
            continue
        prefix = e.string("prefix")
        refs = []
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            r = e.mapping(key)
            if r is not None:
                refs.append(
                    EnvFrom(
                        kind=kind,
                        name=r.string("name", required=True),
                        prefix=prefix,
                        optional=r.boolean("optional"),
                    )
                )
                r.only()
        e.only()
        given = ["configMapRef" if r.kind == "ConfigMap" else "secretRef" for r in refs]
        if exactly_one(e.problems, path, given, ("configMapRef", "secretRef")):
            out.append(refs[0])
    return out


def _volume_mounts(container: Fields) -> list[dict[str, Any]]:
    out = []
    for path, item in container.items("volumeMounts"):
        m = Fields.of(item, path, container.problems)
        if m is None:
            continue
        mount: dict[str, Any] = {"name": m.string("name", required=True)}
        mount["mountPath"] = m.string("mountPath", required=True)
        for key in ("subPath", "mountPropagation"):
            if m.has(key):
                mount[key] = m.string(key)
        read_only = m.boolean("readOnly")
        if read_only is not None:
            mount["readOnly"] = read_only
        m.only(unsupported=dict.fromkeys(("subPathExpr", "recursiveReadOnly"), NOT_IN_KNATIVE))
        out.append(mount)
    return out


def _security_context(f: Fields, *, pod_level: bool) -> dict[str, Any]:
    """A pod or container ``securityContext`` with the fields Knative knows, as written
    (which of them config-features allows is checked in validate.py)."""
    out: dict[str, Any] = {}
    for key in ("runAsUser", "runAsGroup"):
        n = f.integer(key)
        if n is not None:
            out[key] = n
    if f.has("runAsNonRoot"):
        out["runAsNonRoot"] = f.boolean("runAsNonRoot")
    seccomp = f.mapping("seccompProfile")
    if seccomp is not None:
        profile = {"type": seccomp.string("type", required=True)}
        if seccomp.has("localhostProfile"):
            profile["localhostProfile"] = seccomp.string("localhostProfile")
        seccomp.only()
        out["seccompProfile"] = profile
    if pod_level:
        n = f.integer("fsGroup")
        if n is not None:
            out["fsGroup"] = n
        groups = []
        for path, item in f.items("supplementalGroups"):
            if isinstance(item, int) and not isinstance(item, bool):
                groups.append(item)
            else:
                f.problems.append((path, f"must be an integer, got {describe(item)}"))
        if f.has("supplementalGroups"):
            out["supplementalGroups"] = groups
        f.only(unsupported=_POD_SECURITY_CONTEXT_NOT_IN_KNATIVE)
        return out
    for key in ("readOnlyRootFilesystem", "allowPrivilegeEscalation", "privileged"):
        value = f.boolean(key)
        if value is not None:
            out[key] = value
    caps = f.mapping("capabilities")
    if caps is not None:
        capabilities: dict[str, Any] = {}
        for key in ("add", "drop"):
            if caps.has(key):
                capabilities[key] = list(caps.strs(key))
        caps.only()
        out["capabilities"] = capabilities
    f.only(unsupported=_SECURITY_CONTEXT_NOT_IN_KNATIVE)
    return out


# ----- probes --------------------------------------------------------------------------------


def _probe(container: Fields, key: str) -> dict[str, Any] | None:
    """A probe checked shallowly and kept as a plain dict (the queue-proxy reads it)."""
    f = container.mapping(key)
    if f is None:
        return None
    out: dict[str, Any] = {}
    for name in _PROBE_INTS:
        n = f.integer(name)
        if n is not None and n < 0:
            f.note(name, f"must be >= 0, got {n}")
        elif n is not None:
            out[name] = n
    http = f.mapping("httpGet")
    if http is not None:
        get: dict[str, Any] = {}
        path = http.string("path")
        if path and not path.startswith("/"):
            http.note("path", f"must start with '/', got {describe(path)}")
        elif path:
            get["path"] = path
        _probe_port(http, get)
        scheme = http.string("scheme")
        if scheme and scheme not in ("HTTP", "HTTPS"):
            http.note("scheme", f"must be HTTP or HTTPS, got {describe(scheme)}")
        elif scheme:
            get["scheme"] = scheme
        headers = []
        for header_path, item in http.items("httpHeaders"):
            h = Fields.of(item, header_path, f.problems)
            if h is not None:
                headers.append(
                    {"name": h.string("name", required=True), "value": h.string("value")}
                )
                h.only()
        if headers:
            get["httpHeaders"] = headers
        http.only(unsupported=_HOST_UNSUPPORTED)
        out["httpGet"] = get
    tcp = f.mapping("tcpSocket")
    if tcp is not None:
        sock: dict[str, Any] = {}
        _probe_port(tcp, sock)
        tcp.only(unsupported=_HOST_UNSUPPORTED)
        out["tcpSocket"] = sock
    run = f.mapping("exec")
    if run is not None:
        command = run.strs("command")
        if not command:
            run.note("command", "missing required field")
        run.only()
        out["exec"] = {"command": list(command)}
    grpc = f.mapping("grpc")
    if grpc is not None:
        call: dict[str, Any] = {}
        port = grpc.integer("port")
        if port is not None and not 0 <= port <= 65535:
            grpc.note("port", f"must be between 1 and 65535, got {port}")
        elif port:
            call["port"] = port
        if grpc.has("service"):
            call["service"] = grpc.string("service")
        grpc.only()
        out["grpc"] = call
    handlers = [h for h in PROBE_HANDLERS if h in out]
    if len(handlers) > 1:  # none is a rule of the serving container's probes (podspec.py)
        exactly_one(f.problems, f.path, handlers, PROBE_HANDLERS)
    f.only()
    return out


def _probe_port(handler: Fields, out: dict[str, Any]) -> None:
    """A handler's port; 0 (what Go clients write for "unset") means the container's port."""
    port = handler.raw("port")
    if port is None or port == 0:
        return
    if isinstance(port, bool) or not isinstance(port, int | str):
        handler.note("port", f"must be a port number or name, got {describe(port)}")
    elif isinstance(port, int) and not 1 <= port <= 65535:
        handler.note("port", f"must be between 1 and 65535, got {describe(port)}")
    else:
        out["port"] = port


# ----- resources and volumes -----------------------------------------------------------------


def _is_quantity(value: object) -> bool:
    return bool(
        (isinstance(value, str) and _QUANTITY.fullmatch(value))
        or (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value >= 0
        )
    )


def _resources(container: Fields) -> dict[str, dict[str, str | int | float]]:
    f = container.mapping("resources")
    if f is None:
        return {}
    out: dict[str, dict[str, str | int | float]] = {}
    for section in ("limits", "requests"):
        m = f.mapping(section)
        if m is None:
            continue
        values: dict[str, str | int | float] = {}
        for name in m.names():
            value = m.raw(name)
            if _is_quantity(value):
                values[name] = value
            else:
                m.note(name, f"must be a quantity like 500m or 128Mi, got {describe(value)}")
        m.only()
        out[section] = values
    f.only(unsupported={"claims": NOT_IN_KNATIVE})
    return out


def _key_to_paths(f: Fields) -> list[dict[str, Any]]:
    items = []
    for path, item in f.items("items"):
        i = Fields.of(item, path, f.problems)
        if i is None:
            continue
        entry: dict[str, Any] = {
            "key": i.string("key", required=True),
            "path": i.string("path", required=True),
        }
        mode = i.integer("mode")
        if mode is not None:
            entry["mode"] = mode
        i.only()
        items.append(entry)
    return items


def _object_source(f: Fields, name_key: str) -> dict[str, Any]:
    """A secret or configMap volume (or projection): the object's name, items, modes."""
    out: dict[str, Any] = {name_key: f.string(name_key, required=True)}
    if f.has("items"):
        out["items"] = _key_to_paths(f)
    for key in ("defaultMode",):
        n = f.integer(key)
        if n is not None:
            out[key] = n
    optional = f.boolean("optional")
    if optional is not None:
        out["optional"] = optional
    f.only()
    return out


def _projection(path: str, value: object, problems: Problems) -> dict[str, Any] | None:
    f = Fields.of(value, path, problems)
    if f is None:
        return None
    out: dict[str, Any] = {}
    for key in ("secret", "configMap"):
        s = f.mapping(key)
        if s is not None:
            out[key] = _object_source(s, "name")
    token = f.mapping("serviceAccountToken")
    if token is not None:
        t: dict[str, Any] = {"path": token.string("path", required=True)}
        if token.has("audience"):
            t["audience"] = token.string("audience")
        seconds = token.integer("expirationSeconds")
        if seconds is not None:
            t["expirationSeconds"] = seconds
        token.only()
        out["serviceAccountToken"] = t
    downward = f.mapping("downwardAPI")
    if downward is not None:
        files = []
        for item_path, item in downward.items("items"):
            d = Fields.of(item, item_path, problems)
            if d is None:
                continue
            entry: dict[str, Any] = {"path": d.string("path", required=True)}
            for key in ("fieldRef", "resourceFieldRef"):
                ref = d.mapping(key)
                if ref is not None:
                    entry[key] = ref.plain()
            mode = d.integer("mode")
            if mode is not None:
                entry["mode"] = mode
            d.only()
            choices = ("fieldRef", "resourceFieldRef")
            exactly_one(problems, item_path, [k for k in choices if k in entry], choices)
            files.append(entry)
        downward.only()
        out["downwardAPI"] = {"items": files}
    f.only(unsupported={"clusterTrustBundle": NOT_IN_KNATIVE, "podCertificate": NOT_IN_KNATIVE})
    exactly_one(problems, path, list(out), _PROJECTIONS)
    return out


_VOLUME_READERS: dict[str, Callable[[Fields], dict[str, Any]]] = {
    "secret": lambda f: _object_source(f, "secretName"),
    "configMap": lambda f: _object_source(f, "name"),
    "csi": lambda f: f.plain(),
    "ephemeral": lambda f: f.plain(),
}


def _volume(path: str, value: object, problems: Problems) -> dict[str, Any] | None:
    f = Fields.of(value, path, problems)
    if f is None:
        return None
    out: dict[str, Any] = {"name": f.string("name", required=True)}
    for key, read in _VOLUME_READERS.items():
        m = f.mapping(key)
        if m is not None:
            out[key] = read(m)
    projected = f.mapping("projected")
    if projected is not None:
        projections = [
            p
            for source_path, item in projected.items("sources")
            if (p := _projection(source_path, item, problems)) is not None
        ]
        body: dict[str, Any] = {"sources": projections}
        mode = projected.integer("defaultMode")
        if mode is not None:
            body["defaultMode"] = mode
        projected.only()
        out["projected"] = body
    empty = f.mapping("emptyDir")
    if empty is not None:
        e: dict[str, Any] = {}
        if empty.has("medium"):
            e["medium"] = empty.string("medium")
        limit = empty.raw("sizeLimit")
        if limit is not None:
            if _is_quantity(limit):
                e["sizeLimit"] = limit
            else:
                empty.note("sizeLimit", f"must be a quantity like 64Mi, got {describe(limit)}")
        empty.only()
        out["emptyDir"] = e
    claim = f.mapping("persistentVolumeClaim")
    if claim is not None:
        c: dict[str, Any] = {"claimName": claim.string("claimName", required=True)}
        read_only = claim.boolean("readOnly")
        if read_only is not None:
            c["readOnly"] = read_only
        claim.only()
        out["persistentVolumeClaim"] = c
    host = f.mapping("hostPath")
    if host is not None:
        h = {"path": host.string("path", required=True)}
        if host.has("type"):
            h["type"] = host.string("type")
        host.only()
        out["hostPath"] = h
    image = f.mapping("image")
    if image is not None:
        i = {"reference": image.string("reference", required=True)}
        if image.has("pullPolicy"):
            policy = image.string("pullPolicy")
            if policy and policy not in PULL_POLICIES:
                image.note(
                    "pullPolicy",
                    f"must be one of {', '.join(PULL_POLICIES)}, got {describe(policy)}",
                )
            i["pullPolicy"] = policy
        image.only()
        out["image"] = i
    f.only(unsupported=_VOLUME_NOT_IN_KNATIVE)
    exactly_one(problems, path, [k for k in VOLUME_SOURCES if k in out], VOLUME_SOURCES)
    return out
