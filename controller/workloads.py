"""What a revision runs as: its Deployment (the user container plus the injected
queue-proxy sidecar) and its private Service. Pure functions from the revision to
objects; no I/O.

The pod follows upstream's injection (docs/kubernetes.md, "The revision's pod"):

- the user container keeps its image, command, args, env and liveness probe, and gets
  ``PORT`` and ``K_SERVICE``/``K_CONFIGURATION``/``K_REVISION``; its readiness probe is
  removed and handed to the queue-proxy (``SERVING_READINESS_PROBE``; TCP on the user port
  when it has none), which answers the kubelet's probe of the queue-proxy only once the
  app's probe passes; its ``preStop`` hook calls the queue-proxy's ``/wait-for-drain``, so
  the app gets SIGTERM only after the queue-proxy has drained;
- the queue-proxy runs ``python -m queueproxy`` from the zeroserve image, as non-root
  with a read-only root filesystem, on 8012 (traffic), 8022 (admin), 9090 (autoscaler
  stats) and 9091 (Prometheus);
- ``terminationGracePeriodSeconds`` is the revision's ``timeoutSeconds``, so a request
  accepted before the drain can finish.

``replicas`` is written once, at creation (the revision's initial scale); afterwards the
autoscaler owns it, and updates made here never carry it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from controller.meta import (
    GENERATION_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    SERVICE_TYPE_LABEL,
    labels_of,
    owner_reference,
    with_hash,
)
from zeroserve.api.objects import Obj
from zeroserve.knative import (
    CONFIGURATION_LABEL,
    REVISION_LABEL,
    ROUTING_STATE_LABEL,
    SERVICE_LABEL,
    STATS_PORT_NAME,
    deployment_name,
    private_service_name,
)
from zeroserve.serving.revisions import DesiredRevision

QUEUE_CONTAINER = "queue-proxy"
QUEUE_SERVING_PORT = 8012
QUEUE_ADMIN_PORT = 8022
QUEUE_METRICS_PORT = 9090
USER_METRICS_PORT = 9091
DRAIN_QUIET_PERIOD_SECONDS = 30
PROBE_HEADER = {"name": "K-Network-Probe", "value": "queue"}
_PROBE_TIMING = (
    "initialDelaySeconds",
    "timeoutSeconds",
    "periodSeconds",
    "successThreshold",
    "failureThreshold",
)
QUEUE_PORTS = (
    ("http", QUEUE_SERVING_PORT),
    ("queue-adm", QUEUE_ADMIN_PORT),
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


def _with_port(probe: Mapping[str, Any], port: int) -> Obj:
    """A probe with its handler aimed at the user port (manifests may leave it out)."""
    out = dict(probe)
    for handler in ("httpGet", "tcpSocket"):
        if handler in out:
            out[handler] = {**out[handler], "port": port}
    return out


def readiness_probe_json(rev: DesiredRevision) -> str:
    """``SERVING_READINESS_PROBE``: the app's readiness probe, or Knative's default (TCP on
    the user port, retried every 50 ms until it passes)."""
    port = rev.container.port
    probe = rev.container.readiness_probe or {"tcpSocket": {}, "successThreshold": 1}
    return json.dumps(_with_port(probe, port), separators=(",", ":"), sort_keys=True)


def queue_readiness_probe(rev: DesiredRevision) -> Obj:
    """The kubelet's probe of the queue-proxy: a GET that the queue-proxy answers itself
    (after probing the app), with the user probe's timing."""
    user = rev.container.readiness_probe or {}
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


def queue_env(rev: DesiredRevision) -> list[Obj]:
    """The queue-proxy's environment (docs/contracts.md, "Queue-proxy environment")."""
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
        ("REVISION_TIMEOUT_SECONDS", _seconds(info.timeout_seconds)),
        ("REVISION_RESPONSE_START_TIMEOUT_SECONDS", _seconds(info.response_start_timeout_seconds)),
        ("REVISION_IDLE_TIMEOUT_SECONDS", _seconds(info.idle_timeout_seconds)),
        ("SERVING_READINESS_PROBE", readiness_probe_json(rev)),
        ("DRAIN_QUIET_PERIOD_SECONDS", str(DRAIN_QUIET_PERIOD_SECONDS)),
    ]
    env = [{"name": k, "value": v} for k, v in plain]
    # The pod's own name and IP are known only once it is scheduled: the downward API.
    env[4:4] = [
        _downward("SERVING_POD", "metadata.name"),
        _downward("SERVING_POD_IP", "status.podIP"),
    ]
    return env


def user_container(rev: DesiredRevision) -> Obj:
    c = rev.container
    info = rev.info
    container: Obj = {"name": c.name, "image": c.image}
    if c.command:
        container["command"] = list(c.command)
    if c.args:
        container["args"] = list(c.args)
    if c.working_dir:
        container["workingDir"] = c.working_dir
    container["env"] = [{"name": k, "value": v} for k, v in c.env] + [
        {"name": "PORT", "value": str(c.port)},
        {"name": "K_REVISION", "value": info.key.name},
        {"name": "K_CONFIGURATION", "value": info.configuration},
        {"name": "K_SERVICE", "value": info.service},
    ]
    container["ports"] = [
        {"name": "h2c" if c.h2c else "user-port", "containerPort": c.port, "protocol": "TCP"}
    ]
    if c.liveness_probe is not None:
        container["livenessProbe"] = _with_port(c.liveness_probe, c.port)
    container["lifecycle"] = {
        "preStop": {"httpGet": {"port": QUEUE_ADMIN_PORT, "path": "/wait-for-drain"}}
    }
    if c.resources:
        container["resources"] = {k: dict(v) for k, v in c.resources.items()}
    # On a crash the kubelet keeps the log's tail as the termination message, which the
    # controller shows in the revision's RevisionFailed condition.
    container["terminationMessagePolicy"] = "FallbackToLogsOnError"
    return container


def queue_container(rev: DesiredRevision, image: str) -> Obj:
    return {
        "name": QUEUE_CONTAINER,
        "image": image,
        "command": ["python", "-m", "queueproxy"],
        "env": queue_env(rev),
        "ports": [{"name": n, "containerPort": p, "protocol": "TCP"} for n, p in QUEUE_PORTS],
        "readinessProbe": queue_readiness_probe(rev),
        "resources": {"requests": {"cpu": "25m", "memory": "64Mi"}},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


def deployment(
    rev: DesiredRevision, revision: Obj, *, image: str, replicas: int, progress_deadline: float
) -> Obj:
    """The revision's Deployment ``<revision>-deployment``, owned by the Revision object,
    with the spec-hash annotation set."""
    name = rev.info.key.name
    labels = pod_labels(revision)
    annotations = dict(revision["metadata"].get("annotations") or {})
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
            "template": {
                "metadata": {
                    "labels": dict(labels),
                    **({"annotations": dict(annotations)} if annotations else {}),
                },
                "spec": {
                    "containers": [user_container(rev), queue_container(rev, image)],
                    "terminationGracePeriodSeconds": max(1, round(rev.info.timeout_seconds)),
                    "enableServiceLinks": False,
                },
            },
        },
    }
    hashed = with_hash(body)
    # Added after hashing: the hash must not depend on a value that is never updated.
    hashed["spec"]["replicas"] = replicas
    return hashed


def private_service(revision: Obj) -> Obj:
    """``<revision>-private``: selects the revision's pods; its EndpointSlices (which carry
    the Service's labels) tell the activator and the autoscaler where the pods are."""
    name = revision["metadata"]["name"]
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
                {"name": "http", "port": 80, "targetPort": QUEUE_SERVING_PORT, "protocol": "TCP"},
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
                    "name": "queue-adm",
                    "port": QUEUE_ADMIN_PORT,
                    "targetPort": QUEUE_ADMIN_PORT,
                    "protocol": "TCP",
                },
            ],
        },
    }
    return with_hash(body)
