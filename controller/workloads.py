"""What a revision runs as: its Deployment (the revision's containers plus the injected
queue-proxy sidecar) and its private Service. Pure functions from the revision to
objects; no I/O.

The pod follows upstream's injection (Knative's ``deploy.go``/``queue.go``; see
docs/kubernetes.md, "The revision's pod"):

- every pod field of the template is copied as written (``volumes``,
  ``serviceAccountName``, ``automountServiceAccountToken``, ``imagePullSecrets``,
  ``securityContext``, and the ``config-features`` ones: ``affinity``, ``tolerations``,
  ``nodeSelector``...); ``enableServiceLinks`` is false unless written, and
  ``terminationGracePeriodSeconds`` is the revision's ``timeoutSeconds``, so a request
  accepted before the drain can finish;
- every container keeps every field as written (image, ``imagePullPolicy``, command,
  args, ``workingDir``, env with ``valueFrom``, ``envFrom``, resources, ``volumeMounts``,
  ``securityContext``, probes...) and gets ``K_SERVICE``/``K_CONFIGURATION``/
  ``K_REVISION`` and a ``preStop`` hook that calls the queue-proxy's ``/wait-for-drain``
  (so the app gets SIGTERM only after the queue-proxy has drained);
  ``terminationMessagePolicy`` defaults to ``FallbackToLogsOnError``, so a crash's log
  tail reaches the revision's condition;
- the serving container (the one with the port) gets the single user port and
  ``PORT``; an ``httpGet``/``tcpSocket``/``grpc`` readiness probe is removed and handed
  to the queue-proxy (``SERVING_READINESS_PROBE``, TCP on the user port when there is
  none), which answers the kubelet's probe of the queue-proxy only once the app's probe
  passes; an ``exec`` readiness probe stays on the container (the kubelet runs it) and
  the queue-proxy checks TCP on the user port; liveness and startup probes stay, aimed
  at the user port when they name none. Sidecars keep their probes as written;
- init containers are copied as written;
- the queue-proxy runs ``python -m queueproxy`` from the zeroserve image, as non-root
  with a read-only root filesystem, on 8012 (traffic), 8022 (admin), 9090 (autoscaler
  stats) and 9091 (Prometheus); ``config-deployment`` gives its requests and limits
  (Knative's ``queue-sidecar-*`` keys) and the pull secrets of its image, which join the
  template's ``imagePullSecrets`` (docs/kubernetes.md, "The queue-proxy sidecar").

``replicas`` is written once, at creation (the revision's initial scale); afterwards the
autoscaler owns it, and updates made here never carry it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from controller.meta import (
    GENERATION_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    ROUTING_STATE_MODIFIED,
    SERVICE_TYPE_LABEL,
    labels_of,
    owner_reference,
    with_hash,
)
from zeroserve.api.objects import Container, Obj
from zeroserve.autoscaling.config import DeploymentConfig
from zeroserve.knative import (
    CONFIGURATION_LABEL,
    REVISION_LABEL,
    ROUTING_STATE_LABEL,
    SERVICE_LABEL,
    STATS_PORT_NAME,
    deployment_name,
    private_service_name,
    revision_protocol,
)
from zeroserve.observability import ENV as OBSERVABILITY_ENV
from zeroserve.serving.revisions import DesiredRevision
from zeroserve.serving.revisions import container_names as revision_container_names

_SIDECAR = DeploymentConfig()
"""``config-deployment``'s defaults (Knative's: a 25m CPU request, no limits)."""
QUEUE_CONTAINER = "queue-proxy"
QUEUE_SERVING_PORT = 8012
QUEUE_ADMIN_PORT = 8022
QUEUE_METRICS_PORT = 9090
USER_METRICS_PORT = 9091
DRAIN_QUIET_PERIOD_SECONDS = 30
PROBE_HEADER = {"name": "K-Network-Probe", "value": "queue"}
_REVISION_FIELDS = frozenset(
    {
        "containerConcurrency",
        "timeoutSeconds",
        "responseStartTimeoutSeconds",
        "idleTimeoutSeconds",
        "containers",
        "initContainers",
    }
)
"""The revision spec fields that are not pod spec fields (or are rendered separately)."""
_PROBE_TIMING = (
    "initialDelaySeconds",
    "timeoutSeconds",
    "periodSeconds",
    "successThreshold",
    "failureThreshold",
)
QUEUE_ADMIN_PORT_NAME = "http-queueadm"
"""Knative's name (``QueueAdminPortName``): Istio reads a port's protocol from its name's
prefix (``http``, ``http2``, ``grpc``, ``tcp``...)."""
ISTIO_EXCLUDE_INBOUND = "traffic.sidecar.istio.io/excludeInboundPorts"
"""Istio's pod annotation: inbound traffic to these ports bypasses the sidecar. The
queue-proxy's admin port is listed so that the kubelet's plaintext ``preStop`` call
(``/wait-for-drain``) reaches it under STRICT mTLS, where the sidecar would refuse it
(docs/kubernetes.md, "Istio sidecars")."""
QUEUE_PORTS = (
    ("http", QUEUE_SERVING_PORT),
    (QUEUE_ADMIN_PORT_NAME, QUEUE_ADMIN_PORT),
    (STATS_PORT_NAME, QUEUE_METRICS_PORT),
    ("http-usermetric", USER_METRICS_PORT),
)
"""The queue-proxy's ports by name; the private Service and its EndpointSlices use the
same names (the activator and the autoscaler look for ``http`` and ``http-autometric``)."""


def _seconds(value: float) -> str:
    return f"{value:g}"


def pod_labels(revision: Obj) -> dict[str, str]:
    """The revision's labels without ``routingState``: that one changes with traffic,
    and a changed pod template would restart every pod."""
    labels = labels_of(revision)
    labels.pop(ROUTING_STATE_LABEL, None)
    labels[REVISION_LABEL] = revision["metadata"]["name"]
    return labels


def _handler_port(probe: Mapping[str, Any], port: int) -> Obj:
    """A probe whose ``httpGet``/``tcpSocket``/``grpc`` handler, when it names no port,
    is aimed at ``port`` (the user port; a written port stays)."""
    out = dict(probe)
    for handler in ("httpGet", "tcpSocket", "grpc"):
        action = out.get(handler)
        if isinstance(action, Mapping) and not action.get("port"):
            out[handler] = {**action, "port": port}
    return out


def _queue_probed(probe: Mapping[str, Any] | None) -> bool:
    """The readiness probe is one the queue-proxy runs (not the kubelet)."""
    return probe is not None and any(h in probe for h in ("httpGet", "tcpSocket", "grpc"))


def user_readiness_probe(rev: DesiredRevision) -> Obj:
    """What the queue-proxy probes (``SERVING_READINESS_PROBE``): the serving container's
    readiness probe aimed at the user port; an ``exec`` probe stays with the kubelet, so
    the queue-proxy checks TCP on the user port instead (as it does by default, retried
    every 50 ms until it passes, when there is no probe)."""
    port = rev.container.port
    written = rev.template.container.readiness_probe
    if written is None:
        return {"tcpSocket": {"port": port}, "successThreshold": 1}
    probe = {k: v for k, v in written.items() if k != "exec"}
    if "exec" in written:
        probe["tcpSocket"] = {"port": port}
    elif "httpGet" in probe:
        # The queue-proxy dials the user port of its own pod: a named port means nothing there.
        probe["httpGet"] = {**probe["httpGet"], "port": port}
    elif "tcpSocket" in probe:
        probe["tcpSocket"] = {**probe["tcpSocket"], "port": port}
    return _handler_port(probe, port)


def readiness_probe_json(rev: DesiredRevision) -> str:
    """``SERVING_READINESS_PROBE``: :func:`user_readiness_probe` as compact JSON."""
    return json.dumps(user_readiness_probe(rev), separators=(",", ":"), sort_keys=True)


def queue_readiness_probe(rev: DesiredRevision) -> Obj:
    """The kubelet's probe of the queue-proxy: a GET that the queue-proxy answers itself
    (after probing the app), with the user probe's timing."""
    user = rev.template.container.readiness_probe or {}
    probe: Obj = {
        "httpGet": {"port": QUEUE_SERVING_PORT, "path": "/", "httpHeaders": [dict(PROBE_HEADER)]}
    }
    for key in _PROBE_TIMING:
        value = user.get(key)
        if isinstance(value, int) and value > 0:
            probe[key] = value
    # Knative's periodSeconds 0 means "probe aggressively"; the kubelet needs >= 1.
    probe.setdefault("periodSeconds", 1)
    probe["successThreshold"] = 1
    return probe


def _downward(name: str, field: str) -> Obj:
    return {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": field}}}


def queue_env(rev: DesiredRevision, observability: str = "") -> list[Obj]:
    """The queue-proxy's environment (docs/contracts.md, "Queue-proxy environment");
    ``observability`` is config-observability's JSON (``OBSERVABILITY_CONFIG``, as
    Knative's ``pkg/reconciler/revision/resources/queue.go``): a change rolls the pods."""
    info = rev.info
    plain = [
        ("SERVING_NAMESPACE", info.key.namespace),
        ("SERVING_SERVICE", info.service),
        ("SERVING_CONFIGURATION", info.configuration),
        ("SERVING_REVISION", info.key.name),
        ("CONTAINER_CONCURRENCY", str(info.container_concurrency)),
        ("QUEUE_SERVING_PORT", str(QUEUE_SERVING_PORT)),
        ("QUEUE_ADMIN_PORT", str(QUEUE_ADMIN_PORT)),
        ("QUEUE_METRICS_PORT", str(QUEUE_METRICS_PORT)),
        ("USER_METRICS_PORT", str(USER_METRICS_PORT)),
        ("USER_PORT", str(rev.container.port)),
        ("USER_PROTOCOL", "h2c" if rev.container.h2c else "http1"),
        ("REVISION_TIMEOUT_SECONDS", _seconds(info.timeout_seconds)),
        ("REVISION_RESPONSE_START_TIMEOUT_SECONDS", _seconds(info.response_start_timeout_seconds)),
        ("REVISION_IDLE_TIMEOUT_SECONDS", _seconds(info.idle_timeout_seconds)),
        ("SERVING_READINESS_PROBE", readiness_probe_json(rev)),
        ("DRAIN_QUIET_PERIOD_SECONDS", str(DRAIN_QUIET_PERIOD_SECONDS)),
        *([(OBSERVABILITY_ENV, observability)] if observability else []),
    ]
    env = [{"name": k, "value": v} for k, v in plain]
    # The pod's own name and IP are known only once it is scheduled: the downward API.
    env[4:4] = [
        _downward("SERVING_POD", "metadata.name"),
        _downward("SERVING_POD_IP", "status.podIP"),
    ]
    return env


def _knative_env(rev: DesiredRevision) -> list[Obj]:
    info = rev.info
    return [
        {"name": "K_REVISION", "value": info.key.name},
        {"name": "K_CONFIGURATION", "value": info.configuration},
        {"name": "K_SERVICE", "value": info.service},
    ]


def container_names(rev: DesiredRevision) -> tuple[list[str], list[str]]:
    """The names of the containers and of the init containers, in order
    (:func:`zeroserve.serving.revisions.container_names`)."""
    return revision_container_names(rev.template, rev.container.name)


def _as_written(c: Container, name: str) -> Obj:
    """The container as written, named; fields left empty are left out (an empty value
    inside a field, such as ``emptyDir: {}``, means something and stays)."""
    out = {k: v for k, v in c.to_dict().items() if v not in ([], {}, None, "")}
    out["name"] = name
    return out


def user_container(rev: DesiredRevision, c: Container, name: str) -> Obj:
    """One container of the revision as written, with the ``K_*`` variables and the
    ``preStop`` hook; the serving one also gets the user port (and ``PORT``), loses the
    readiness probe the queue-proxy runs, and has its probes' ports filled in."""
    container = _as_written(c, name)
    serving = c is rev.template.container
    port = rev.container.port
    env = list(container.get("env", ()))
    if serving:
        env.append({"name": "PORT", "value": str(port)})
        container["ports"] = [
            {
                "name": "h2c" if rev.container.h2c else "user-port",
                "containerPort": port,
                "protocol": "TCP",
            }
        ]
        if _queue_probed(c.readiness_probe):
            del container["readinessProbe"]
        for key in ("livenessProbe", "startupProbe"):
            if key in container:
                container[key] = _handler_port(container[key], port)
    container["env"] = env + _knative_env(rev)
    container["lifecycle"] = {
        "preStop": {"httpGet": {"port": QUEUE_ADMIN_PORT, "path": "/wait-for-drain"}}
    }
    # On a crash the kubelet keeps the log's tail as the termination message, which the
    # controller shows in the revision's RevisionFailed condition.
    container.setdefault("terminationMessagePolicy", "FallbackToLogsOnError")
    return container


def queue_container(
    rev: DesiredRevision, image: str, observability: str = "", sidecar: DeploymentConfig = _SIDECAR
) -> Obj:
    """The queue-proxy container; ``sidecar`` (``config-deployment``) gives its requests
    and limits (Knative's ``queue-sidecar-*-request``/``-limit`` keys)."""
    return {
        "name": QUEUE_CONTAINER,
        "image": image,
        "command": ["python", "-m", "queueproxy"],
        "env": queue_env(rev, observability),
        "ports": [{"name": n, "containerPort": p, "protocol": "TCP"} for n, p in QUEUE_PORTS],
        "readinessProbe": queue_readiness_probe(rev),
        "resources": sidecar.queue_resources(),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


def image_pull_secrets(written: object, sidecar: Sequence[str]) -> list[Obj]:
    """The pod's ``imagePullSecrets``: the template's as written, then each of the
    sidecar's (``zeroserve.queue-sidecar-image-pull-secrets``) that is not among them."""
    out = [dict(s) for s in written] if isinstance(written, list) else []
    names = {s.get("name") for s in out}
    out += [{"name": name} for name in sidecar if name not in names]
    return out


def pod_spec(
    rev: DesiredRevision, image: str, observability: str = "", sidecar: DeploymentConfig = _SIDECAR
) -> Obj:
    """The revision's pod spec: every pod field of the template as written, its
    containers (:func:`user_container`) and the queue-proxy, its init containers as
    written; ``terminationGracePeriodSeconds`` is the revision's timeout, and
    ``enableServiceLinks`` is false unless the template says otherwise (Knative's
    ``config-defaults`` default). The sidecar's pull secrets join the template's
    ``imagePullSecrets`` (:func:`image_pull_secrets`)."""
    template = rev.template
    names, init_names = container_names(rev)
    spec: Obj = {k: v for k, v in template.spec_dict().items() if k not in _REVISION_FIELDS}
    spec["containers"] = [
        user_container(rev, c, name) for c, name in zip(template.containers, names, strict=True)
    ] + [queue_container(rev, image, observability, sidecar)]
    secrets = image_pull_secrets(
        spec.get("imagePullSecrets"), sidecar.queue_sidecar_image_pull_secrets
    )
    if secrets:
        spec["imagePullSecrets"] = secrets
    if template.init_containers:
        spec["initContainers"] = [
            _as_written(c, name)
            for c, name in zip(template.init_containers, init_names, strict=True)
        ]
    spec["terminationGracePeriodSeconds"] = max(1, round(rev.info.timeout_seconds))
    spec.setdefault("enableServiceLinks", False)
    return spec


def deployment(
    rev: DesiredRevision,
    revision: Obj,
    *,
    image: str,
    replicas: int,
    progress_deadline: float,
    observability: str = "",
    sidecar: DeploymentConfig = _SIDECAR,
) -> Obj:
    """The revision's Deployment ``<revision>-deployment``, owned by the Revision object,
    with the spec-hash annotation set; ``observability``: the queue-proxy's
    ``OBSERVABILITY_CONFIG`` (empty: left out, its defaults); ``sidecar``:
    ``config-deployment``, the queue-proxy's resources and pull secrets."""
    name = rev.info.key.name
    labels = pod_labels(revision)
    # Knative leaves routingStateModified out: a routing change must not roll the pods.
    annotations = {
        k: v
        for k, v in (revision["metadata"].get("annotations") or {}).items()
        if k != ROUTING_STATE_MODIFIED
    }
    pod_annotations = {**annotations, ISTIO_EXCLUDE_INBOUND: _exclude_admin_port(annotations)}
    body: Obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(name),
            "namespace": rev.info.key.namespace,
            "labels": {**labels, MANAGED_BY_LABEL: MANAGED_BY},
            "annotations": dict(annotations),
            "ownerReferences": [owner_reference(revision)],
        },
        "spec": {
            "selector": {"matchLabels": {REVISION_LABEL: name}},
            "progressDeadlineSeconds": max(1, round(progress_deadline)),
            # As Knative's: no pod goes before its replacement is ready, so a roll (a new
            # sidecar image, docs/kubernetes.md "Upgrades") never lowers the capacity;
            # maxSurge keeps Kubernetes' 25 %.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}},
            "template": {
                "metadata": {
                    "labels": dict(labels),
                    "annotations": pod_annotations,
                },
                "spec": pod_spec(rev, image, observability, sidecar),
            },
        },
    }
    hashed = with_hash(body)
    # Added after hashing: the hash must not depend on a value that is never updated.
    hashed["spec"]["replicas"] = replicas
    return hashed


def _exclude_admin_port(annotations: Mapping[str, str]) -> str:
    """The revision's own ``excludeInboundPorts`` with the admin port added."""
    ports = [p.strip() for p in annotations.get(ISTIO_EXCLUDE_INBOUND, "").split(",") if p.strip()]
    if str(QUEUE_ADMIN_PORT) not in ports:
        ports.append(str(QUEUE_ADMIN_PORT))
    return ",".join(ports)


def private_service(revision: Obj) -> Obj:
    """``<revision>-private``: selects the revision's pods; its EndpointSlices (which carry
    the Service's labels) tell the activator and the autoscaler where the pods are."""
    name = revision["metadata"]["name"]
    h2c = revision_protocol(revision.get("spec") or {}) == "h2c"
    labels = {
        k: v
        for k, v in pod_labels(revision).items()
        if k in (SERVICE_LABEL, CONFIGURATION_LABEL, GENERATION_LABEL, REVISION_LABEL)
    }
    body: Obj = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": private_service_name(name),
            "namespace": revision["metadata"]["namespace"],
            "labels": {**labels, SERVICE_TYPE_LABEL: "Private", MANAGED_BY_LABEL: MANAGED_BY},
            "ownerReferences": [owner_reference(revision)],
        },
        "spec": {
            "type": "ClusterIP",
            "selector": {REVISION_LABEL: name},
            "ports": [
                {
                    # http2 for an h2c revision: Istio and the activator then speak HTTP/2
                    "name": "http2" if h2c else "http",
                    "port": 80,
                    "targetPort": QUEUE_SERVING_PORT,
                    "protocol": "TCP",
                },
                {
                    "name": STATS_PORT_NAME,
                    "port": QUEUE_METRICS_PORT,
                    "targetPort": QUEUE_METRICS_PORT,
                    "protocol": "TCP",
                },
                {
                    "name": "http-usermetric",
                    "port": USER_METRICS_PORT,
                    "targetPort": USER_METRICS_PORT,
                    "protocol": "TCP",
                },
                {
                    "name": QUEUE_ADMIN_PORT_NAME,
                    "port": QUEUE_ADMIN_PORT,
                    "targetPort": QUEUE_ADMIN_PORT,
                    "protocol": "TCP",
                },
            ],
        },
    }
    return with_hash(body)
