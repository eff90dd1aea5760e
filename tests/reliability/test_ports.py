"""What each port exposes: the queue-proxy's admin and stats endpoints exist only on their
own ports (the serving port hands those paths to the app), the activator's metrics only on
its metrics port, and ``zeroserve up`` listens on loopback only by default; with ``--host
0.0.0.0`` only its two ingress listeners (the activators' public port and local gateway)
leave loopback."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import httpx
import pytest

from activator.app import Activator
from activator.config import Settings
from activator.routing import RoutingTable
from tests.local.support import EXAMPLES, UpProcess, zeroserve_up
from tests.support.apps import run_app
from tests.support.procs import queue_proxy
from zeroserve.topology import Endpoint, RevisionInfo, RevisionKey, Route, Target

from .procfs import components, descendants, listening
from .support import pod_rows, until

PROBE = {"K-Network-Probe": "queue"}
POD_RANGE = ipaddress.ip_network("198.18.0.0/15")


def _internal(pid: int, host: str) -> bool:
    """Loopback, or a pod sandbox's own address inside its own network namespace (a
    replica's queue-proxy listens at its pod IP, as in a pod: reachable from this machine
    over the run's bridge, from no other)."""
    ip = ipaddress.ip_address(host)
    if ip.is_loopback:
        return True
    try:
        in_a_pod = os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    except OSError:
        return False
    return in_a_pod and ip in POD_RANGE


@pytest.mark.process
async def test_queue_proxy_admin_and_stats_paths_on_the_serving_port_reach_the_app(
    tmp_path: Path,
) -> None:
    async with (
        run_app() as (port, app),
        queue_proxy(port, tmp_path) as qp,
        httpx.AsyncClient(timeout=10) as client,
    ):
        for path in ("/wait-for-drain", "/metrics"):
            r = await client.get(qp.url(path))
            # the app's own answer (it has no such route), not the queue-proxy's endpoint
            assert r.status_code == 404 and "x-zeroserve-error" not in r.headers, (
                path,
                r.status_code,
                r.text,
            )
        assert app.paths == ["/wait-for-drain", "/metrics"]
        # No drain started: health checks pass, and traffic flows.
        r = await client.get(qp.url("/"), headers=PROBE)
        assert (r.status_code, r.text) == (200, "queue")
        assert (await client.get(qp.url("/hello"))).status_code == 200
        # The stats are on their port (JSON for the autoscaler).
        stats = (await client.get(qp.stats_url())).json()
        assert stats["pod_name"] == "hello-00001-pod"
        # The check can tell: the admin port's /wait-for-drain does start a drain.
        assert (await client.get(qp.admin_url("/wait-for-drain"))).status_code == 200
        r = await client.get(qp.url("/"), headers=PROBE)
        assert (
            r.status_code == 503
            and r.headers["x-zeroserve-error"] == "queue-proxy; reason=draining"
        )


async def test_activator_metrics_are_not_served_on_its_traffic_port() -> None:
    key = RevisionKey("default", "hello-00001")
    async with run_app() as (port, app):
        act = Activator(Settings(host="127.0.0.1", port=0, metrics_port=0, drain_seconds=0))
        ports = await act.start()
        try:
            act.set_routes(
                RoutingTable(
                    [Route("default", "hello", ("hello.default.example.com",), (Target(key, 100),))]
                )
            )
            act.put_revision(RevisionInfo(key))
            act.set_endpoints(key, [Endpoint("pod", "127.0.0.1", port, 1)])
            traffic = f"http://127.0.0.1:{ports['port']}/metrics"
            async with httpx.AsyncClient(timeout=10) as client:
                r = await client.get(traffic)  # Host 127.0.0.1:port: no route
                assert (r.status_code, r.headers["x-zeroserve-error"]) == (
                    404,
                    "activator; reason=no-route",
                )
                r = await client.get(traffic, headers={"Host": "hello.default.example.com"})
                assert r.status_code == 404 and "zeroserve_activator" not in r.text  # the app's 404
                r = await client.get(f"http://127.0.0.1:{ports['metrics_port']}/metrics")
                assert r.status_code == 200 and "zeroserve_activator_budget" in r.text
            assert app.paths == ["/metrics"]
        finally:
            await act.close()


@pytest.mark.process
@pytest.mark.timeout(90)
async def test_zeroserve_up_listens_on_loopback_only(tmp_path: Path) -> None:
    async with zeroserve_up(tmp_path, EXAMPLES / "helloworld.yaml") as up:
        await until(lambda: _running(up), "a Running replica", 60, every=0.3)
        control_port = int(up.control.rsplit(":", 1)[1])
        mine = listening(up.proc.pid)
        assert ("127.0.0.1", control_port) in mine, mine
        # every listener of the control API process, and of everything it started
        # (autoscaler, activator, replicas' queue-proxies and apps), is on loopback
        family = {pid: listening(pid) for pid in {up.proc.pid, *descendants(up.proc.pid)}}
        sockets = [(pid, addr) for pid, found in family.items() for addr in found]
        assert len(sockets) >= 8, family  # control, ingress, metrics, autoscaler, replica ports
        public = [(pid, addr) for pid, addr in sockets if not _internal(pid, addr[0])]
        assert public == [], public


async def _running(up: UpProcess) -> bool:
    return any(r[2] == "Running" for r in await pod_rows(up))


@pytest.mark.process
@pytest.mark.timeout(90)
async def test_with_host_0_0_0_0_only_the_ingress_listeners_leave_loopback(
    tmp_path: Path,
) -> None:
    # The addresses are read from /proc: nothing here connects to a non-loopback address.
    args = ("--host", "0.0.0.0")
    async with zeroserve_up(tmp_path, EXAMPLES / "helloworld.yaml", args=args) as up:
        await until(lambda: _running(up), "a Running replica", 60, every=0.3)
        assert up.local_gateway is not None
        ingress = {up.ingress_port, int(up.local_gateway.rsplit(":", 1)[1])}
        activators = components(up.proc.pid, "activator")
        autoscalers = components(up.proc.pid, "autoscaler")
        assert len(activators) == 1 and len(autoscalers) == 1
        family = {pid: listening(pid) for pid in {up.proc.pid, *descendants(up.proc.pid)}}
        # the control API: loopback, whatever --host says (--control-host's default)
        assert family[up.proc.pid] == [("127.0.0.1", up.control_port)], family[up.proc.pid]
        (activator,) = activators
        public = sorted(a for a in family[activator] if a[0] == "0.0.0.0")
        assert public == sorted(("0.0.0.0", p) for p in ingress), family[activator]
        assert len(family[activator]) == 3, family[activator]  # and its metrics, on loopback
        # everything else: the autoscaler's websocket and metrics, queue-proxies, apps
        others = [
            (pid, addr)
            for pid, found in family.items()
            for addr in found
            if not (pid == activator and addr[1] in ingress)
        ]
        assert len(others) >= 8, family  # control, metrics x2, websocket, replica's 4 ports
        leaked = [(pid, a) for pid, a in others if not _internal(pid, a[0])]
        assert leaked == [], leaked
    assert "warning" not in up.stderr, up.stderr
