"""The test cluster's mesh model (tests/cluster/mesh.py, docs/test-cluster.md "The mesh"):
Istio's PeerAuthentication precedence as a pure function, and, with pods in network
namespaces, STRICT ports refusing plaintext while meshed clients through a ClusterIP, the
excluded ports, PERMISSIVE ports and the node agent's probes get through."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from zeroserve.local.sandbox.network import sandbox_unavailable

from .cluster import TestCluster
from .controllers import admit_pod
from .mesh import (
    EXCLUDE_INBOUND,
    excluded_ports,
    is_meshed,
    mesh_unavailable,
    port_modes,
)
from .test_node import until


def pa(
    namespace: str,
    name: str,
    mode: str | None = None,
    *,
    selector: dict[str, str] | None = None,
    ports: dict[str, str] | None = None,
    created: str = "2026-01-01T00:00:00Z",
) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if mode is not None:
        spec["mtls"] = {"mode": mode}
    if selector is not None:
        spec["selector"] = {"matchLabels": selector}
    if ports is not None:
        spec["portLevelMtls"] = {k: {"mode": v} for k, v in ports.items()}
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created},
        "spec": spec,
    }


def a_pod(
    namespace: str = "foo", labels: dict[str, str] | None = None, **annotations: str
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "p",
            "namespace": namespace,
            "labels": labels or {"app": "finance"},
            "annotations": annotations,
        }
    }


def ns(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}}


# ----- the policy ------------------------------------------------------------------------------


def test_no_policy_is_permissive() -> None:
    modes = port_modes(a_pod(), [])
    assert modes.default == "PERMISSIVE" and not modes.strict(8012)


def test_precedence_workload_over_namespace_over_mesh() -> None:
    mesh = pa("istio-system", "default", "STRICT")
    assert port_modes(a_pod(), [mesh]).default == "STRICT"
    namespace = pa("foo", "default", "PERMISSIVE")
    assert port_modes(a_pod(), [mesh, namespace]).default == "PERMISSIVE"
    workload = pa("foo", "finance", "STRICT", selector={"app": "finance"})
    assert port_modes(a_pod(), [mesh, namespace, workload]).default == "STRICT"
    # a selector that does not match, or a policy of another namespace, does not apply
    other = pa("foo", "other", "DISABLE", selector={"app": "other"})
    elsewhere = pa("bar", "default", "DISABLE")
    assert port_modes(a_pod(), [namespace, other, elsewhere]).default == "PERMISSIVE"


def test_unset_inherits_from_the_next_level() -> None:
    mesh = pa("istio-system", "default", "STRICT")
    namespace = pa("foo", "default", "UNSET")
    workload = pa("foo", "finance", None, selector={"app": "finance"})
    assert port_modes(a_pod(), [mesh, namespace, workload]).default == "STRICT"


def test_port_level_applies_only_with_a_selector() -> None:
    workload = pa(
        "foo",
        "finance",
        "UNSET",
        selector={"app": "finance"},
        ports={"8080": "DISABLE", "9090": "STRICT", "7070": "UNSET"},
    )
    namespace = pa("foo", "default", "STRICT")
    modes = port_modes(a_pod(), [namespace, workload])
    assert (modes.mode(8080), modes.mode(9090), modes.mode(7070)) == (
        "DISABLE",
        "STRICT",
        "STRICT",
    )
    wide = pa("foo", "default", "PERMISSIVE", ports={"9090": "STRICT"})
    assert not port_modes(a_pod(), [wide]).strict(9090)


def test_root_namespace_selector_policies_are_ignored_and_the_oldest_wins() -> None:
    rooted = pa("istio-system", "finance", "STRICT", selector={"app": "finance"})
    assert port_modes(a_pod(), [rooted]).default == "PERMISSIVE"
    older = pa("foo", "b", "STRICT", created="2026-01-01T00:00:00Z")
    newer = pa("foo", "a", "DISABLE", created="2026-02-01T00:00:00Z")
    assert port_modes(a_pod(), [newer, older]).default == "STRICT"


def test_excluded_ports_bypass_strict_and_bad_input_is_named() -> None:
    modes = port_modes(a_pod(**{EXCLUDE_INBOUND: "8022, 9091"}), [pa("foo", "d", "STRICT")])
    assert modes.strict(8012) and not modes.strict(8022) and not modes.strict(9091)
    with pytest.raises(ValueError, match=f"{EXCLUDE_INBOUND}: 'http' is not a port number"):
        excluded_ports(a_pod(**{EXCLUDE_INBOUND: "8022,http"}))
    with pytest.raises(ValueError, match=r"PeerAuthentication foo/d: spec.mtls: mode 'STRCT'"):
        port_modes(a_pod(), [pa("foo", "d", "STRCT")])


def test_injection_follows_the_namespace_label_and_the_pod_switch() -> None:
    enabled = ns("foo", **{"istio-injection": "enabled"})
    assert is_meshed(a_pod(), enabled)
    assert not is_meshed(a_pod(), ns("foo"))
    assert not is_meshed(a_pod(labels={"sidecar.istio.io/inject": "false"}), enabled)
    assert not is_meshed(a_pod(**{"sidecar.istio.io/inject": "false"}), enabled)
    assert is_meshed(a_pod(labels={"sidecar.istio.io/inject": "true"}), ns("foo"))
    assert is_meshed(a_pod(**{"sidecar.istio.io/inject": "true"}), None)
    # the label wins over the annotation, as Istio's injector
    both = a_pod(labels={"sidecar.istio.io/inject": "false"}, **{"sidecar.istio.io/inject": "true"})
    assert not is_meshed(both, enabled)


# ----- on pods ---------------------------------------------------------------------------------

_why = sandbox_unavailable() or mesh_unavailable()

SERVER = """
import http.server, threading
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = str(self.server.server_address[1]).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
for port in (8012, 8022):
    s = http.server.ThreadingHTTPServer(("0.0.0.0", port), H)
    threading.Thread(target=s.serve_forever, daemon=True).start()
threading.Event().wait()
"""

CLIENT = """
import json, sys, time, urllib.request
def get(url):
    try:
        return urllib.request.urlopen(url, timeout=3).read().decode()
    except Exception as e:
        return "refused: " + type(e).__name__
while True:
    print(json.dumps({u: get(u) for u in sys.argv[1:]}), flush=True)
    time.sleep(0.3)
"""


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[TestCluster]:
    c = TestCluster(tmp_path)
    await c.start()
    try:
        yield c
    finally:
        await c.stop()


async def until_async(get: Any, want: str, within: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + within
    while (got := await get()) != want:
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what} (last: {got!r})")
        await asyncio.sleep(0.1)


def _fetch(ip: str, port: int) -> str:
    try:
        with socket.create_connection((ip, port), timeout=3) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            chunks = []
            while chunk := s.recv(4096):
                chunks.append(chunk)
            data = b"".join(chunks).decode()
    except OSError as e:
        return f"refused: {type(e).__name__}"
    return data.rsplit("\r\n\r\n", 1)[-1] if data else "refused: closed"


async def fetch(ip: str, port: int) -> str:
    """A GET from this process (the node's address): the body or ``refused: ...`` (in a
    thread: the Services proxy runs on this loop)."""
    return await asyncio.to_thread(_fetch, ip, port)


@pytest.mark.process
@pytest.mark.timeout(90)
@pytest.mark.skipif(_why is not None, reason=f"the mesh model: {_why}")
async def test_strict_ports_take_only_meshed_clients_through_a_cluster_ip(
    cluster: TestCluster,
) -> None:
    api = cluster.api
    assert api is not None and cluster.services is not None
    if why := json.loads(cluster.ready_line())["mesh_unavailable"]:
        pytest.skip(why)
    api.put(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "work", "labels": {"istio-injection": "enabled"}},
        }
    )
    api.put(pa("work", "default", "STRICT"))
    server = admit_pod(
        {
            "metadata": {
                "name": "srv",
                "namespace": "work",
                "labels": {"app": "srv"},
                "annotations": {EXCLUDE_INBOUND: "8022"},
            },
            "spec": {
                "terminationGracePeriodSeconds": 30,
                "containers": [
                    {
                        "name": "app",
                        "image": "zeroserve:dev",
                        "command": ["python", "-c", SERVER],
                        "ports": [{"containerPort": 8012}, {"containerPort": 8022}],
                        # passes only from the mesh address (Istio's probe rewrite)
                        "readinessProbe": {
                            "httpGet": {"port": 8012, "path": "/"},
                            "periodSeconds": 1,
                        },
                        # the kubelet's own call from the node: refused on a STRICT port
                        "lifecycle": {"preStop": {"httpGet": {"port": 8012, "path": "/"}}},
                    }
                ],
            },
        }
    )
    api.store.create(api.resource("pods"), "work", server)
    api.put(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "srv", "namespace": "work"},
            "spec": {"selector": {"app": "srv"}, "ports": [{"name": "http", "port": 8012}]},
        }
    )

    def ready() -> str | None:
        obj = api.get("pods", "work", "srv") or {}
        conds = {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions") or ()}
        return obj["status"]["podIP"] if conds.get("Ready") == "True" else None

    pod_ip = await until(ready, what="the meshed pod ready: its probe came from the mesh")
    cluster_ip = await until(
        lambda: (api.get("services", "work", "srv") or {}).get("spec", {}).get("clusterIP")
    )
    await until(lambda: cluster.services and cluster.services.endpoints("work", "srv", "http"))

    # from the node (plaintext): direct and through the ClusterIP refused; excluded port open
    assert await fetch(pod_ip, 8012) == "refused: ConnectionRefusedError"  # a reset to the SYN
    # the proxy's connection to the pod is reset: it closes the client's
    assert await fetch(cluster_ip, 8012) == "refused: closed"
    assert await fetch(pod_ip, 8022) == "8022"

    # the ingress gateway is Envoy, in the mesh: it reaches the STRICT port
    api.put(
        {
            "apiVersion": "networking.istio.io/v1beta1",
            "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": "work"},
            "spec": {"servers": [{"port": {"number": 8081}, "hosts": ["*"]}]},
        }
    )
    api.put(
        {
            "apiVersion": "networking.istio.io/v1beta1",
            "kind": "VirtualService",
            "metadata": {"name": "srv", "namespace": "work"},
            "spec": {
                "gateways": ["gw"],
                "hosts": ["srv.example"],
                "http": [
                    {
                        "route": [
                            {
                                "destination": {
                                    "host": "srv.work.svc.cluster.local",
                                    "port": {"number": 8012},
                                }
                            }
                        ]
                    }
                ],
            },
        }
    )
    assert cluster.gateway is not None
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{cluster.gateway.local_port}/"
        async with session.get(url, headers={"Host": "srv.example"}) as r:
            assert (r.status, await r.text()) == (200, "8012")

    # a meshed client pod: through the ClusterIP accepted, to the pod IP refused
    urls = ["http://srv.work.svc.cluster.local:8012/", f"http://{pod_ip}:8012/"]
    client = admit_pod(
        {
            "metadata": {"name": "cli", "namespace": "work"},
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "image": "zeroserve:dev",
                        "command": ["python", "-c", CLIENT, *urls],
                    }
                ]
            },
        }
    )
    api.store.create(api.resource("pods"), "work", client)
    log = cluster.directory / "pods" / "work_cli" / "app.log"

    def last() -> dict[str, str] | None:
        lines = log.read_text().splitlines() if log.exists() else []
        return json.loads(lines[-1]) if lines else None

    seen = await until(last, what="the client's first round")
    assert seen == {urls[0]: "8012", urls[1]: "refused: URLError"}, seen

    # PERMISSIVE: the rules follow the policy, plaintext gets through
    api.put(pa("work", "default", "PERMISSIVE"))
    await until_async(lambda: fetch(pod_ip, 8012), "8012", what="PERMISSIVE lets the node in")
    assert await fetch(cluster_ip, 8012) == "8012"
    api.put(pa("work", "default", "STRICT"))
    await until_async(
        lambda: fetch(pod_ip, 8012), "refused: ConnectionRefusedError", what="STRICT again"
    )

    # the kubelet's preStop to the STRICT port fails: an Event, then SIGTERM at once
    started = time.monotonic()
    api.delete("pods", "work", "srv")
    await until(lambda: api.get("pods", "work", "srv") is None, within=20, what="srv gone")
    assert time.monotonic() - started < 15
    events = [e for e in api.list("events", "work") if e["involvedObject"]["name"] == "srv"]
    assert [e["reason"] for e in events] == ["FailedPreStopHook"], events
    assert "Container 'app'" in events[0]["message"]
