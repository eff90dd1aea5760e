"""Every port the chart renders and the controller writes is named with Istio's protocol
prefix (``<protocol>`` or ``<protocol>-<suffix>``), so that a sidecar handles it as the
protocol it is (docs/kubernetes.md, "Istio sidecars"; Istio's "Protocol Selection")."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from controller import workloads
from tests.chart.helm import Obj
from tests.controller.test_resources import REVISION, desired

# Istio's protocols that zeroserve's ports may carry.
ISTIO_PROTOCOLS = ("http", "http2", "https", "grpc", "grpc-web", "tcp", "tls")


def istio_named(name: str) -> bool:
    return any(name == p or name.startswith(p + "-") for p in ISTIO_PROTOCOLS)


def ports_of(obj: Obj, *, skip_containers: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(where, name) of every Service port and container port of ``obj``."""
    out = []
    if obj["kind"] == "Service":
        out += [
            (f"Service {obj['metadata']['name']}", p.get("name", "")) for p in obj["spec"]["ports"]
        ]
    template = (obj.get("spec") or {}).get("template") or {}
    for c in (template.get("spec") or {}).get("containers", ()):
        if c["name"] in skip_containers:
            continue
        out += [
            (f"{obj['kind']} {obj['metadata']['name']} {c['name']}", p.get("name", ""))
            for p in c.get("ports", ())
        ]
    return out


@pytest.mark.process
def test_every_port_the_chart_renders_has_an_istio_protocol_prefix(objects: list[Obj]) -> None:
    ports = [p for obj in objects for p in ports_of(obj)]
    assert ports, "no ports rendered"
    assert [p for p in ports if not istio_named(p[1])] == []


@pytest.mark.parametrize("protocol", ["http1", "h2c"])
def test_every_port_the_controller_writes_has_an_istio_protocol_prefix(protocol: str) -> None:
    revision: dict[str, Any] = copy.deepcopy(REVISION)
    revision["spec"] = {
        "containers": [{"image": "x", "ports": [{"name": protocol, "containerPort": 8081}]}]
    }
    service = workloads.private_service(revision)
    deployment = workloads.deployment(
        desired(), REVISION, image="qp:1", replicas=1, progress_deadline=600
    )
    # The user container's port keeps the name its author gave it (Knative allows h2c,
    # http1 or none); Istio reads protocols from Service ports, not container ports.
    ports = ports_of(service) + ports_of(deployment, skip_containers=("app",))
    assert ("Service hello-00002-private", "http-queueadm") in ports
    assert ("Service hello-00002-private", "http2" if protocol == "h2c" else "http") in ports
    assert len(ports) == 8  # four Service ports, four queue-proxy ports
    assert [p for p in ports if not istio_named(p[1])] == []


def test_revision_pods_let_the_kubelets_prestop_past_the_sidecar() -> None:
    """The kubelet's preStop call to the admin port is plaintext: the port bypasses the
    sidecar (Istio's ``traffic.sidecar.istio.io/excludeInboundPorts``)."""
    key = workloads.ISTIO_EXCLUDE_INBOUND
    deployment = workloads.deployment(
        desired(), REVISION, image="qp:1", replicas=1, progress_deadline=600
    )
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["annotations"][key] == "8022"
    queue = next(c for c in pod["spec"]["containers"] if c["name"] == "queue-proxy")
    assert {"name": "http-queueadm", "containerPort": 8022, "protocol": "TCP"} in queue["ports"]
    app = next(c for c in pod["spec"]["containers"] if c["name"] == "app")
    assert app["lifecycle"]["preStop"]["httpGet"]["port"] == 8022
    # the revision's own excluded ports are kept
    revision = copy.deepcopy(REVISION)
    revision["metadata"]["annotations"][key] = "9000, 9001"
    deployment = workloads.deployment(
        desired(), revision, image="qp:1", replicas=1, progress_deadline=600
    )
    assert deployment["spec"]["template"]["metadata"]["annotations"][key] == "9000,9001,8022"
