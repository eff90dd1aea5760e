"""The activator's Prometheus series under Knative's names and attribute keys
(docs/metrics.md), moving with traffic, and the autoscaler link's reachability."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from aiohttp import WSMsgType, web

from tests.activator.test_activator_e2e import HOST, V1, activator, endpoint, route
from tests.support.apps import run_app
from tests.support.procs import queue_proxy
from tests.support.prom import label_sets, series, value
from zeroserve.local.ports import kernel_port
from zeroserve.observability import ObservabilityConfig
from zeroserve.topology import RevisionInfo

NAMES = {
    "k8s_namespace_name": "default",
    "kn_service_name": "hello",
    "kn_configuration_name": "hello",
    "kn_revision_name": "hello-00001",
}
SHORT = {"k8s_namespace_name": "default", "kn_revision_name": "hello-00001"}
DURATION = "http_server_request_duration_seconds"


async def _until(scrape: Callable[[], Awaitable[str]], check: Callable[[str], bool]) -> str:
    """The first scrape that passes ``check`` (within 5 s)."""
    for _ in range(100):
        text = await scrape()
        if check(text):
            return text
        await asyncio.sleep(0.05)
    raise AssertionError(f"not reached; last scrape:\n{text}")


@pytest.mark.process
async def test_request_series_move_with_traffic(tmp_path: Path) -> None:
    async with (
        run_app() as (port, _),
        queue_proxy(port, tmp_path) as qp,
        activator() as (act, url),
        httpx.AsyncClient(timeout=30) as client,
    ):
        metrics_url = f"http://127.0.0.1:{act.ports['metrics_port']}/metrics"

        async def scrape() -> str:
            return (await client.get(metrics_url)).text

        act.set_routes(route())
        act.put_revision(RevisionInfo(V1, service="hello", configuration="hello"))
        # Held at zero replicas: queued, not active.
        first = asyncio.create_task(client.get(url + "/sleep?s=1.2", headers={"Host": HOST}))
        waiting = await _until(
            scrape, lambda t: value(t, "kn_revision_request_queued", **SHORT) == 1
        )
        assert value(waiting, "kn_revision_request_active", **SHORT) == 0
        act.set_endpoints(V1, [endpoint(qp)])
        # Forwarded: active, no longer queued; the 1 s report averages it.
        second = asyncio.create_task(client.get(url + "/sleep?s=1.2", headers={"Host": HOST}))
        busy = await _until(scrape, lambda t: value(t, "kn_revision_request_active", **SHORT) == 2)
        assert value(busy, "kn_revision_request_queued", **SHORT) == 0
        reported = await _until(
            scrape, lambda t: (value(t, "kn_revision_request_concurrency", **NAMES) or 0) > 0.5
        )
        assert label_sets(reported, "kn_revision_request_concurrency") == [NAMES]
        assert (await first).status_code == 200 and (await second).status_code == 200
        assert (await client.get(url + "/status/503", headers={"Host": HOST})).status_code == 503
        done = await scrape()
    assert value(done, f"{DURATION}_count", **NAMES, http_response_status_code="200") == 2
    assert value(done, f"{DURATION}_count", **NAMES, http_response_status_code="503") == 1
    assert value(done, f"{DURATION}_bucket", http_response_status_code="200", le="0.5") == 0
    assert value(done, f"{DURATION}_bucket", http_response_status_code="200", le="2.5") == 2
    assert value(done, "kn_revision_request_active", **SHORT) == 0
    for labels in label_sets(done, f"{DURATION}_count"):
        assert labels.keys() == {*NAMES, "http_response_status_code"}
    assert "kn_activator_stats_conn_reachable" not in done  # no autoscaler link configured


@contextlib.asynccontextmanager
async def fake_autoscaler() -> AsyncIterator[tuple[str, list[web.WebSocketResponse]]]:
    """A websocket endpoint standing in for the autoscaler's stats server."""
    sockets: list[web.WebSocketResponse] = []

    async def accept(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sockets.append(ws)
        async for msg in ws:
            if msg.type == WSMsgType.ERROR:
                break
        return ws

    app = web.Application()
    app.router.add_get("/", accept)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"ws://127.0.0.1:{runner.addresses[0][1]}/", sockets
    finally:
        await runner.cleanup()


async def test_autoscaler_link_reachability_and_errors() -> None:
    async with fake_autoscaler() as (ws_url, sockets):
        async with (
            activator(autoscaler_url=ws_url) as (act, _),
            httpx.AsyncClient(timeout=10) as client,
        ):
            metrics_url = f"http://127.0.0.1:{act.ports['metrics_port']}/metrics"

            async def scrape() -> str:
                return (await client.get(metrics_url)).text

            peer = {"peer": "autoscaler"}
            up = await _until(
                scrape, lambda t: value(t, "kn_activator_stats_conn_reachable", **peer) == 1
            )
            assert value(up, "kn_activator_stats_conn_errors_total", **peer) == 0
            await sockets[0].close()  # the autoscaler drops the link
            down = await _until(
                scrape, lambda t: (value(t, "kn_activator_stats_conn_errors_total") or 0) >= 1
            )
            assert value(down, "kn_activator_stats_conn_errors_total", **peer) >= 1  # type: ignore[operator]
            # it reconnects at once: reachable again
            await _until(scrape, lambda t: value(t, "kn_activator_stats_conn_reachable") == 1)


async def test_unreachable_autoscaler_reads_zero_and_counts_errors() -> None:
    nobody = f"ws://127.0.0.1:{kernel_port()}/"  # nothing listens there
    async with (
        activator(autoscaler_url=nobody) as (act, _),
        httpx.AsyncClient(timeout=10) as client,
    ):
        metrics_url = f"http://127.0.0.1:{act.ports['metrics_port']}/metrics"

        async def scrape() -> str:
            return (await client.get(metrics_url)).text

        text = await _until(
            scrape, lambda t: (value(t, "kn_activator_stats_conn_errors_total") or 0) >= 2
        )
    assert value(text, "kn_activator_stats_conn_reachable", peer="autoscaler") == 0


async def test_metrics_protocol_none_hides_the_knative_series() -> None:
    async with (
        activator() as (act, url),
        httpx.AsyncClient(timeout=10) as client,
    ):
        metrics_url = f"http://127.0.0.1:{act.ports['metrics_port']}/metrics"
        act.set_routes(route())
        act.put_revision(RevisionInfo(V1, service="hello", configuration="hello"))
        act.set_endpoints(V1, [])  # no replica: the request is held, then given up
        act.observability = ObservabilityConfig(metrics_protocol="none")
        held = asyncio.create_task(client.get(url + "/", headers={"Host": HOST}))

        async def scrape() -> str:
            return (await client.get(metrics_url)).text

        off = await _until(
            scrape, lambda t: value(t, "zeroserve_activator_queued_requests_total") == 1
        )
        act.observability = ObservabilityConfig()
        on = (await client.get(metrics_url)).text
        held.cancel()
        await asyncio.gather(held, return_exceptions=True)
    assert not [n for n in series(off) if n.startswith(("kn_", "http_server_"))]
    assert value(on, "kn_revision_request_queued", **SHORT) == 1
