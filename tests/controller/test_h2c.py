"""An h2c revision on the cluster: HTTP/2 kept at every hop. Its route's VirtualServices
send to the activator's ``http2`` port (Istio keeps HTTP/2 there), its private Service's
port is named ``http2``, and its queue-proxy is told to speak HTTP/2 to the app."""

from __future__ import annotations

from controller.app import KubeController
from tests.fakes.kubeapi.fakeapi import FakeKubeAPI

from .helpers import endpoint_slice, put_manifest

GRPC = """\
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: grpc-ping, namespace: default}
spec:
  template:
    spec:
      containers:
        - image: ghcr.io/knative/grpc-ping-go:latest
          ports: [{name: h2c, containerPort: 8080}]
"""
REV = "grpc-ping-00001"


def destination_ports(vs: dict) -> set[int]:  # type: ignore[type-arg]
    return {
        r["destination"]["port"]["number"] for rule in vs["spec"]["http"] for r in rule["route"]
    }


async def test_an_h2c_service_keeps_http2_to_the_activator_and_the_app(
    cluster: FakeKubeAPI, controller: KubeController
) -> None:
    put_manifest(cluster, GRPC)
    deployment = await cluster.wait_for("deployments", "default", f"{REV}-deployment", within=5)
    assert deployment is not None
    queue = deployment["spec"]["template"]["spec"]["containers"][-1]
    assert {"name": "USER_PROTOCOL", "value": "h2c"} in queue["env"]
    private = await cluster.wait_for("services", "default", f"{REV}-private", within=5)
    assert private is not None and private["spec"]["ports"][0]["name"] == "http2"
    cluster.put(endpoint_slice(REV, (f"{REV}-pod", "10.0.0.9")))
    for name in ("grpc-ping-ingress", "grpc-ping-mesh"):
        vs = await cluster.wait_for(
            "virtualservices.networking.istio.io", "default", name, within=5
        )
        assert vs is not None and destination_ports(vs) == {81}, name


async def test_an_http1_service_goes_to_port_80(
    cluster: FakeKubeAPI, controller: KubeController
) -> None:
    put_manifest(cluster, GRPC.replace("name: h2c", "name: http1").replace("grpc-ping", "web"))
    rev = "web-00001"
    await cluster.wait_for("deployments", "default", f"{rev}-deployment", within=5)
    cluster.put(endpoint_slice(rev, (f"{rev}-pod", "10.0.0.9")))
    vs = await cluster.wait_for(
        "virtualservices.networking.istio.io", "default", "web-ingress", within=5
    )
    assert vs is not None and destination_ports(vs) == {80}
    private = await cluster.wait_for("services", "default", f"{rev}-private", within=5)
    assert private is not None and private["spec"]["ports"][0]["name"] == "http"
