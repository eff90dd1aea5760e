"""Parsing ``spec.template``: revision metadata, the pod spec subset, the container.

Shape only (types, known fields); the rules that need configuration or relate
fields to each other are in :mod:`zeroserve.api.validate`. Fields Knative
accepts and zeroserve cannot honour (volumes, service accounts, exec probes...)
get their own message, so a user can tell "typo" from "not here".
"""

from __future__ import annotations

import math
import re
from typing import Any

from zeroserve.api.errors import describe
from zeroserve.api.fields import Fields, Problems
from zeroserve.api.objects import Container, ContainerPort, EnvVar, RevisionTemplate

_CLUSTER_ONLY = "not supported by zeroserve (it needs a Kubernetes cluster)"
_POD_UNSUPPORTED = dict.fromkeys(
    (
        "volumes",
        "serviceAccountName",
        "automountServiceAccountToken",
        "imagePullSecrets",
        "enableServiceLinks",
        "nodeSelector",
        "tolerations",
        "affinity",
        "securityContext",
        "runtimeClassName",
        "priorityClassName",
        "schedulerName",
        "topologySpreadConstraints",
        "hostAliases",
        "initContainers",
        "dnsPolicy",
        "dnsConfig",
        "hostIPC",
        "hostNetwork",
        "hostPID",
        "shareProcessNamespace",
    ),
    _CLUSTER_ONLY,
)
_CONTAINER_UNSUPPORTED = {
    **dict.fromkeys(
        (
            "volumeMounts",
            "securityContext",
            "lifecycle",
            "imagePullPolicy",
            "terminationMessagePath",
            "terminationMessagePolicy",
            "stdin",
            "tty",
        ),
        _CLUSTER_ONLY,
    ),
    "envFrom": "not supported by zeroserve (list each variable under env)",
    "startupProbe": "not supported by zeroserve (use readinessProbe)",
}
_PROBE_INTS = (
    "initialDelaySeconds",
    "timeoutSeconds",
    "periodSeconds",
    "successThreshold",
    "failureThreshold",
    "terminationGracePeriodSeconds",
)
_PROBE_UNSUPPORTED = {
    "exec": "exec probes are not supported by zeroserve (use httpGet or tcpSocket)",
    "grpc": "gRPC probes are not supported by zeroserve (use httpGet or tcpSocket)",
}
_HOST_UNSUPPORTED = {"host": "not supported: probes always go to the container itself"}
# A Kubernetes resource quantity: 100m, 0.5, 128Mi, 1e3.
_QUANTITY = re.compile(
    r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?"
)


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
    containers = tuple(
        _container(path, item, pod.problems) for path, item in pod.items("containers")
    )
    if not pod.has("containers"):
        pod.note("containers", "missing required field")
    template = RevisionTemplate(
        name=name,
        labels=labels,
        annotations=annotations,
        containers=containers,
        container_concurrency=pod.integer("containerConcurrency"),
        timeout_seconds=pod.integer("timeoutSeconds"),
        response_start_timeout_seconds=pod.integer("responseStartTimeoutSeconds"),
        idle_timeout_seconds=pod.integer("idleTimeoutSeconds"),
    )
    pod.only(unsupported=_POD_UNSUPPORTED)
    return template


def _container(path: str, value: object, problems: Problems) -> Container:
    f = Fields.of(value, path, problems)
    if f is None:
        return Container()
    env = []
    for env_path, item in f.items("env"):
        e = Fields.of(item, env_path, problems)
        if e is not None:
            env.append(EnvVar(name=e.string("name", required=True), value=e.string("value")))
            e.only(unsupported={"valueFrom": "not supported by zeroserve (give a literal value)"})
    ports = []
    for port_path, item in f.items("ports"):
        p = Fields.of(item, port_path, problems)
        if p is not None:
            number = p.integer("containerPort")
            ports.append(
                ContainerPort(
                    container_port=8080 if number is None else number,
                    name=p.string("name"),
                    protocol=p.string("protocol"),
                )
            )
            p.only(unsupported=dict.fromkeys(("hostPort", "hostIP"), _CLUSTER_ONLY))
    container = Container(
        name=f.string("name"),
        image=f.string("image"),
        command=f.strs("command"),
        args=f.strs("args"),
        env=tuple(env),
        ports=tuple(ports),
        readiness_probe=_probe(f, "readinessProbe"),
        liveness_probe=_probe(f, "livenessProbe"),
        working_dir=f.string("workingDir"),
        resources=_resources(f),
    )
    f.only(unsupported=_CONTAINER_UNSUPPORTED)
    return container


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
    if http is not None and tcp is not None:
        f.note("tcpSocket", "a probe takes one of httpGet or tcpSocket, not both")
    f.only(unsupported=_PROBE_UNSUPPORTED)
    return out


def _probe_port(handler: Fields, out: dict[str, Any]) -> None:
    port = handler.raw("port")
    if port is None:
        return
    if isinstance(port, bool) or not isinstance(port, int | str):
        handler.note("port", f"must be a port number or name, got {describe(port)}")
    elif isinstance(port, int) and not 1 <= port <= 65535:
        handler.note("port", f"must be between 1 and 65535, got {describe(port)}")
    else:
        out["port"] = port


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
            ok = (isinstance(value, str) and _QUANTITY.fullmatch(value)) or (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value)
                and value >= 0
            )
            if ok:
                values[name] = value
            else:
                m.note(name, f"must be a quantity like 500m or 128Mi, got {describe(value)}")
        m.only()
        out[section] = values
    f.only(unsupported={"claims": _CLUSTER_ONLY})
    return out
