"""Health checks and drain/shutdown (docs/queue-proxy.md) of a real queue-proxy process."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import httpx
import pytest

from tests.queueproxy.grpc_health import NOT_SERVING, SERVING, HealthState, grpc_app
from tests.support.apps import run_app
from tests.support.procs import queue_proxy
from zeroserve.local.ports import kernel_port

pytestmark = pytest.mark.process  # every test here runs a queue-proxy process

TCP_PROBE = json.dumps({"tcpSocket": {"port": 0}, "periodSeconds": 1, "timeoutSeconds": 1})


@pytest.mark.parametrize(
    ("headers", "status", "body"),
    [
        ({"K-Network-Probe": "queue"}, 200, "queue"),
        ({"User-Agent": "kube-probe/1.31", "K-Network-Probe": "queue"}, 200, "queue"),
        ({"User-Agent": "kube-probe/1.31"}, 200, "queue"),
        ({"User-Agent": "Knative-Activator-Probe", "K-Network-Probe": "queue"}, 200, "queue"),
        ({"K-Kubelet-Probe": "queue"}, 200, "queue"),
        ({"K-Network-Probe": "bogus"}, 400, "unexpected probe header value: bogus\n"),
        (
            {"K-Network-Probe": "probe"},
            400,
            "K-Network-Probe: probe needs a K-Network-Hash header\n",
        ),
        ({"K-Network-Probe": "probe", "K-Network-Hash": "abc123"}, 200, ""),
    ],
    ids=[
        "network-probe",
        "kubelet-with-header",
        "kubelet-ua",
        "activator-ua",
        "legacy-kubelet-header",
        "bad-value",
        "probe-without-hash",
        "probe-hash-echo",
    ],
)
async def test_health_checks_are_answered_by_the_proxy(
    tmp_path: Path, headers: dict[str, str], status: int, body: str
) -> None:
    async with (
        run_app() as (port, state),
        queue_proxy(port, tmp_path, SERVING_READINESS_PROBE=TCP_PROBE) as qp,
    ):
        async with httpx.AsyncClient() as client:
            r = await client.get(qp.url("/"), headers=headers)
        assert (r.status_code, r.text) == (status, body)
        if "K-Network-Hash" in headers:
            assert r.headers["k-network-hash"] == headers["K-Network-Hash"]
        assert state.requests == 0


async def test_probe_fails_while_the_app_is_down_and_passes_once_it_is_up(tmp_path: Path) -> None:
    async with run_app() as (port, _):
        pass  # the port is free again: nothing listens there now
    async with queue_proxy(port, tmp_path, SERVING_READINESS_PROBE=TCP_PROBE) as qp:
        async with httpx.AsyncClient() as client:
            r = await client.get(qp.url("/"), headers={"K-Network-Probe": "queue"})
            assert r.status_code == 503
            assert r.headers["x-zeroserve-error"] == "queue-proxy; reason=not-ready"
            r = await client.get(qp.url("/hello"))
            assert r.status_code == 502
            assert r.headers["x-zeroserve-error"] == "queue-proxy; reason=app-unreachable"
            assert "could not connect" in r.text


async def test_aggressive_probe_waits_for_the_app_to_come_up(tmp_path: Path) -> None:
    port = kernel_port()  # nothing listens there yet
    probe = json.dumps({"httpGet": {"path": "/hello", "port": port}, "periodSeconds": 0})
    async with queue_proxy(port, tmp_path, SERVING_READINESS_PROBE=probe) as qp:
        async with httpx.AsyncClient(timeout=15) as client:
            pending = asyncio.create_task(
                client.get(qp.url("/"), headers={"K-Network-Probe": "queue"})
            )
            await asyncio.sleep(0.5)
            assert not pending.done()  # retrying every 50 ms, not failing at once
            from aiohttp import web

            from tests.support.apps import AppState, make_app

            runner = web.AppRunner(make_app(AppState()))
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            try:
                r = await pending
                assert (r.status_code, r.text) == (200, "queue")
            finally:
                await runner.cleanup()


async def test_sigterm_completes_in_flight_requests_then_refuses_connections(
    tmp_path: Path,
) -> None:
    async with (
        run_app() as (port, state),
        queue_proxy(
            port, tmp_path, DRAIN_QUIET_PERIOD_SECONDS="1", CONTAINER_CONCURRENCY="2"
        ) as qp,
    ):
        async with httpx.AsyncClient(timeout=30) as client:
            in_flight = [asyncio.create_task(client.get(qp.url("/sleep?s=2"))) for _ in range(5)]
            while state.in_flight < 2:
                await asyncio.sleep(0.01)
            qp.proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            # draining: health checks fail so nobody sends more
            r = await client.get(qp.url("/"), headers={"K-Network-Probe": "queue"})
            assert r.status_code == 503
            assert r.headers["x-zeroserve-error"] == "queue-proxy; reason=draining"
            rs = await asyncio.gather(*in_flight)
            assert [x.status_code for x in rs] == [200] * 5  # queued ones included
            assert await qp.wait() == 0
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient() as fresh:
                await fresh.get(qp.url("/hello"))
        assert state.requests == 5


async def test_requests_during_the_quiet_period_are_served_and_extend_it(tmp_path: Path) -> None:
    async with (
        run_app() as (port, _),
        queue_proxy(port, tmp_path, DRAIN_QUIET_PERIOD_SECONDS="1") as qp,
    ):
        loop = asyncio.get_running_loop()
        async with httpx.AsyncClient(timeout=30) as client:
            assert (await client.get(qp.url("/hello"))).status_code == 200
            qp.proc.send_signal(signal.SIGTERM)
            start = loop.time()
            for _ in range(3):
                await asyncio.sleep(0.5)
                assert (await client.get(qp.url("/hello"))).status_code == 200
            assert await qp.wait() == 0
            # the last request at ~1.5 s restarted the 1 s quiet period
            assert loop.time() - start >= 2.4


async def test_wait_for_drain_blocks_until_quiet_then_probes_recover(tmp_path: Path) -> None:
    async with (
        run_app() as (port, _),
        queue_proxy(port, tmp_path, DRAIN_QUIET_PERIOD_SECONDS="0.5") as qp,
    ):
        loop = asyncio.get_running_loop()
        async with httpx.AsyncClient(timeout=30) as client:
            start = loop.time()
            drain = asyncio.create_task(client.get(qp.admin_url("/wait-for-drain")))
            await asyncio.sleep(0.2)
            assert not drain.done()
            r = await client.get(qp.url("/"), headers={"K-Network-Probe": "queue"})
            assert r.status_code == 503
            assert (await drain).status_code == 200
            assert loop.time() - start >= 0.49  # loop.time() has 1 ms steps
            # no SIGTERM followed: after 1 s the drain is undone (the pod recovers)
            await asyncio.sleep(1.3)
            r = await client.get(qp.url("/"), headers={"K-Network-Probe": "queue"})
            assert (r.status_code, r.text) == (200, "queue")


@pytest.mark.parametrize("first", ["wait-for-drain", "sigterm"])
async def test_wait_for_drain_is_answered_when_sigterm_comes_with_it(
    tmp_path: Path, first: str
) -> None:
    """The kubelet calls the user container's preStop (/wait-for-drain) while it sends the
    queue-proxy, which has no preStop, its SIGTERM: whichever comes first, the call is
    answered before the queue-proxy exits (a dropped call is a FailedPreStopHook Event)."""
    for _ in range(5):  # the two drain waiters wake in either order
        async with (
            run_app() as (port, _),
            queue_proxy(port, tmp_path, DRAIN_QUIET_PERIOD_SECONDS="0.2") as qp,
        ):
            async with httpx.AsyncClient(timeout=30) as client:
                if first == "sigterm":
                    qp.proc.send_signal(signal.SIGTERM)
                drain = asyncio.create_task(client.get(qp.admin_url("/wait-for-drain")))
                if first == "wait-for-drain":
                    await asyncio.sleep(0.05)
                    qp.proc.send_signal(signal.SIGTERM)
                r = await drain
                assert (r.status_code, r.text) == (200, "drained\n")
                assert await qp.wait() == 0


async def test_a_grpc_probe_is_ready_once_the_app_reports_serving(tmp_path: Path) -> None:
    state = HealthState(statuses={"": NOT_SERVING})
    probe = json.dumps({"grpc": {"port": 0}, "periodSeconds": 1, "timeoutSeconds": 1})
    async with (
        grpc_app(state) as port,
        queue_proxy(port, tmp_path, SERVING_READINESS_PROBE=probe) as qp,
    ):
        kubelet = {"User-Agent": "kube-probe/1.31", "K-Network-Probe": "queue"}
        async with httpx.AsyncClient(timeout=10) as client:
            r = await client.get(qp.url("/"), headers=kubelet)
            assert r.status_code == 503
            assert r.headers["x-zeroserve-error"] == "queue-proxy; reason=not-ready"
            state.statuses[""] = SERVING
            r = await client.get(qp.url("/"), headers=kubelet)
            assert (r.status_code, r.text) == (200, "queue")
        assert state.asked == ["", ""]  # grpc.port 0: the user port, the whole server
