"""The activator in front of real queue-proxy processes and apps, on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from activator.app import Activator
from activator.config import Settings
from activator.routing import Route, RoutingTable, TagRoute, Target
from tests.support.apps import run_app
from tests.support.procs import QueueProxyProcess, queue_proxy
from zeroserve.local.ports import kernel_port
from zeroserve.topology import Endpoint, RevisionInfo, RevisionKey

V1 = RevisionKey("default", "hello-00001")
V2 = RevisionKey("default", "hello-00002")
HOST = "hello.default.example.com"


def route(*targets: Target, tags: dict[str, RevisionKey] | None = None) -> RoutingTable:
    return RoutingTable(
        [
            Route(
                namespace="default",
                name="hello",
                hosts=(HOST,),
                targets=targets or (Target(V1, 100),),
                tags={t: TagRoute((f"{t}-{HOST}",), (), k) for t, k in (tags or {}).items()},
                local_hosts=("hello.default.svc.cluster.local",),
            )
        ]
    )


@contextlib.asynccontextmanager
async def activator(**settings: object) -> AsyncIterator[tuple[Activator, str]]:
    s = Settings(host="127.0.0.1", port=0, metrics_port=0, drain_seconds=0, **settings)  # type: ignore[arg-type]
    act = Activator(s)
    ports = await act.start()
    try:
        yield act, f"http://127.0.0.1:{ports['port']}"
    finally:
        await act.close()


def endpoint(qp: QueueProxyProcess, ready: bool = True) -> Endpoint:
    return Endpoint(
        name=f"pod-{qp.port}",
        host="127.0.0.1",
        port=qp.port,
        stats_port=qp.ports["metrics_port"],
        ready=ready,
    )


@pytest.mark.process
async def test_routes_by_host_and_forwards_through_the_queue_proxy(tmp_path: Path) -> None:
    async with (
        run_app() as (port, _state),
        queue_proxy(port, tmp_path) as qp,
        activator() as (act, url),
    ):
        act.set_routes(route())
        act.put_revision(RevisionInfo(V1))
        act.set_endpoints(V1, [endpoint(qp)])
        async with httpx.AsyncClient() as client:
            r = await client.get(url + "/headers", headers={"Host": HOST + ":8080"})
        assert r.status_code == 200
        seen = r.json()
        assert seen["host"] == HOST + ":8080"  # restored by the queue-proxy from K-Original-Host
        assert seen["headers"]["k-proxy-request"] == "activator"
        assert "k-original-host" not in seen["headers"]
        async with httpx.AsyncClient() as client:
            # a client cannot choose the Host the app sees: it is the routed one
            r = await client.get(
                url + "/headers", headers={"Host": HOST, "K-Original-Host": "admin.internal"}
            )
        assert r.json()["host"] == HOST


async def test_unknown_host_is_404_naming_it(tmp_path: Path) -> None:
    async with activator() as (act, url):
        act.set_routes(route())
        async with httpx.AsyncClient() as client:
            r = await client.get(url + "/", headers={"Host": "nope.default.example.com"})
            ip = await client.get(url + "/")  # Host: 127.0.0.1:port -> no route, no open proxy
    assert r.status_code == 404
    assert "nope.default.example.com" in r.text
    assert r.headers["x-zeroserve-error"] == "activator; reason=no-route"
    assert ip.status_code == 404


@pytest.mark.process
async def test_untrusted_revision_headers_are_ignored_and_stripped(tmp_path: Path) -> None:
    async with (
        run_app() as (port, _state),
        queue_proxy(port, tmp_path) as qp,
        activator() as (act, url),
    ):
        act.set_routes(route())
        act.put_revision(RevisionInfo(V1))
        act.set_endpoints(V1, [endpoint(qp)])
        async with httpx.AsyncClient() as client:
            # names a revision that exists only in the header: ignored, Host decides
            r = await client.get(
                url + "/headers",
                headers={
                    "Host": HOST,
                    "Knative-Serving-Revision": "secret-00009",
                    "Knative-Serving-Namespace": "kube-system",
                },
            )
            assert r.status_code == 200
            assert "knative-serving-revision" not in r.json()["headers"]
            # without a known Host the spoofed headers get nothing
            r = await client.get(
                url + "/",
                headers={
                    "Host": "evil.example.com",
                    "Knative-Serving-Revision": "hello-00001",
                    "Knative-Serving-Namespace": "default",
                },
            )
            assert r.status_code == 404


@pytest.mark.process
async def test_trusted_listener_routes_by_revision_headers(tmp_path: Path) -> None:
    async with (
        run_app() as (port, _state),
        queue_proxy(port, tmp_path) as qp,
        activator(trusted_port=0) as (act, _),
    ):
        act.put_revision(RevisionInfo(V1))
        act.set_endpoints(V1, [endpoint(qp)])
        trusted = f"http://127.0.0.1:{act.ports['trusted_port']}"
        async with httpx.AsyncClient() as client:
            r = await client.get(
                trusted + "/hello",
                headers={
                    "Host": "whatever.example.com",
                    "Knative-Serving-Revision": "hello-00001",
                    "Knative-Serving-Namespace": "default",
                },
            )
        assert (r.status_code, r.text) == (200, "hello")


@pytest.mark.process
async def test_percent_split_and_tag_hosts(tmp_path: Path) -> None:
    async with (
        run_app() as (p1, s1),
        run_app() as (p2, s2),
        queue_proxy(p1, tmp_path) as q1,
        queue_proxy(p2, tmp_path) as q2,
        activator() as (act, url),
    ):
        act.set_routes(route(Target(V1, 20), Target(V2, 80), tags={"current": V1, "latest": V2}))
        act.put_revision(RevisionInfo(V1))
        act.put_revision(RevisionInfo(V2))
        act.set_endpoints(V1, [endpoint(q1)])
        act.set_endpoints(V2, [endpoint(q2)])
        async with httpx.AsyncClient() as client:
            for _ in range(200):
                assert (await client.get(url + "/hello", headers={"Host": HOST})).status_code == 200
            assert (s1.requests, s2.requests) == (40, 160)
            for _ in range(5):
                await client.get(url + "/hello", headers={"Host": f"current-{HOST}"})
            assert s1.requests == 45
            await client.get(url + "/hello", headers={"Host": f"latest-{HOST}"})
            assert s2.requests == 161


@pytest.mark.process
async def test_burst_at_zero_is_held_and_released_at_each_replicas_pace(tmp_path: Path) -> None:
    cc = 10
    async with (
        run_app() as (p1, s1),
        run_app() as (p2, s2),
        queue_proxy(p1, tmp_path, CONTAINER_CONCURRENCY=str(cc)) as q1,
        queue_proxy(p2, tmp_path, CONTAINER_CONCURRENCY=str(cc)) as q2,
        activator() as (act, url),
    ):
        act.set_routes(route())
        act.put_revision(RevisionInfo(V1, container_concurrency=cc))
        n = 2000
        limits = httpx.Limits(max_connections=n, max_keepalive_connections=0)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            burst = [
                asyncio.create_task(
                    client.get(url + f"/sleep?s=0.01&id={i}", headers={"Host": HOST})
                )
                for i in range(n)
            ]
            await asyncio.sleep(1.0)  # all waiting: no replica yet
            assert s1.requests == s2.requests == 0
            act.set_endpoints(V1, [endpoint(q1, ready=False)])  # probed, then used
            await asyncio.sleep(0.5)
            act.set_endpoints(V1, [endpoint(q1, ready=False), endpoint(q2, ready=False)])
            rs = await asyncio.gather(*burst)
        assert Counter(r.status_code for r in rs) == {200: n}
        # each request reached an app exactly once
        ids = Counter(p.split("id=")[1] for p in s1.paths + s2.paths)
        assert len(ids) == n and set(ids.values()) == {1}
        assert s1.max_in_flight <= cc and s2.max_in_flight <= cc
        assert s2.requests > 0  # the replica that came later took queued work


async def test_queue_limit_gives_503_with_retry_after(tmp_path: Path) -> None:
    async with activator(queue_depth=3) as (act, url):
        act.set_routes(route())
        act.put_revision(RevisionInfo(V1, container_concurrency=1))
        async with httpx.AsyncClient(timeout=10) as client:
            waiting = [
                asyncio.create_task(client.get(url + "/", headers={"Host": HOST})) for _ in range(3)
            ]
            await _until(lambda: act.revisions.get(V1).throttler.queued == 3)  # type: ignore[union-attr]
            r = await client.get(url + "/", headers={"Host": HOST})
            assert r.status_code == 503
            assert r.headers["retry-after"] == "1"
            assert r.headers["x-zeroserve-error"] == "activator; reason=queue-full"
            for t in waiting:
                t.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
            await _until(lambda: act.revisions.get(V1).throttler.queued == 0)  # type: ignore[union-attr]
        assert act.budget.used == 0


async def test_activation_timeout(tmp_path: Path) -> None:
    async with activator(activation_timeout=0.5) as (act, url):
        act.set_routes(route())
        act.put_revision(RevisionInfo(V1))
        async with httpx.AsyncClient(timeout=10) as client:
            r = await client.get(url + "/", headers={"Host": HOST})
        assert r.status_code == 503
        assert r.headers["x-zeroserve-error"] == "activator; reason=activation-timeout"
        assert "retry-after" in r.headers
        assert act.budget.used == 0


async def test_client_that_leaves_the_queue_frees_its_place(tmp_path: Path) -> None:
    async with activator() as (act, url):
        act.set_routes(route())
        act.put_revision(RevisionInfo(V1))
        async with httpx.AsyncClient(timeout=10) as client:
            t = asyncio.create_task(client.get(url + "/", headers={"Host": HOST}))
            await _until(lambda: act.revisions.get(V1).throttler.queued == 1)  # type: ignore[union-attr]
            t.cancel()
            await asyncio.gather(t, return_exceptions=True)
            await _until(lambda: act.revisions.get(V1).throttler.queued == 0)  # type: ignore[union-attr]
        assert act.budget.used == 0


@pytest.mark.process
async def test_connect_error_is_retried_on_another_replica(tmp_path: Path) -> None:
    async with (
        run_app() as (port, state),
        queue_proxy(port, tmp_path) as qp,
        activator() as (act, url),
    ):
        async with run_app() as (dead_port, _):
            pass  # nothing listens there any more
        act.set_routes(route())
        act.put_revision(RevisionInfo(V1, container_concurrency=1))
        dead = Endpoint(name="dead", host="127.0.0.1", port=dead_port, stats_port=1, ready=True)
        act.set_endpoints(V1, [dead, endpoint(qp)])
        async with httpx.AsyncClient(timeout=10) as client:
            rs = [await client.get(url + "/hello", headers={"Host": HOST}) for _ in range(6)]
        assert [r.status_code for r in rs] == [200] * 6
        assert state.requests == 6


async def test_revision_deleted_while_requests_wait(tmp_path: Path) -> None:
    async with activator() as (act, url):
        act.set_routes(route())
        act.put_revision(RevisionInfo(V1))
        async with httpx.AsyncClient(timeout=10) as client:
            t = asyncio.create_task(client.get(url + "/", headers={"Host": HOST}))
            await _until(lambda: act.revisions.get(V1).throttler.queued == 1)  # type: ignore[union-attr]
            act.remove_revision(V1)
            r = await t
        assert r.status_code == 503
        assert r.headers["x-zeroserve-error"] == "activator; reason=revision-deleted"


@pytest.mark.process
async def test_stats_poke_and_batches_reach_a_websocket_server(tmp_path: Path) -> None:
    frames: list[list[dict]] = []  # type: ignore[type-arg]

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            frames.append(json.loads(msg.data))
        return ws

    app = web.Application()
    app.router.add_get("/", ws_handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    ws_url = f"ws://127.0.0.1:{runner.addresses[0][1]}/"
    try:
        async with (
            run_app() as (port, _),
            queue_proxy(port, tmp_path) as qp,
            activator(autoscaler_url=ws_url, pod_name="activator-7") as (act, url),
        ):
            act.set_routes(route())
            act.put_revision(RevisionInfo(V1))
            await asyncio.wait_for(act.link.connected.wait(), 5)  # type: ignore[union-attr]
            async with httpx.AsyncClient(timeout=10) as client:
                t = asyncio.create_task(client.get(url + "/sleep?s=1.5", headers={"Host": HOST}))
                await _until(lambda: len(frames) >= 1)
                first = frames[0][0]
                assert (first["namespace"], first["revision"]) == ("default", "hello-00001")
                assert first["stat"] == {
                    "pod_name": "activator-7",
                    "average_concurrent_requests": 1.0,
                    "request_count": 1.0,
                }
                act.set_endpoints(V1, [endpoint(qp)])
                assert (await t).status_code == 200
            await _until(lambda: len(frames) >= 3, within=5)
        # later frames are the 1 s batches
        assert all(f[0]["revision"] == "hello-00001" for f in frames)
    finally:
        await runner.cleanup()


@pytest.mark.process
async def test_warm_traffic_flows_while_the_autoscaler_is_down(tmp_path: Path) -> None:
    async with (
        run_app() as (port, _state),
        queue_proxy(port, tmp_path) as qp,
        activator(autoscaler_url="ws://127.0.0.1:1/") as (act, url),
    ):
        act.set_routes(route())
        act.put_revision(RevisionInfo(V1))
        act.set_endpoints(V1, [endpoint(qp)])
        async with httpx.AsyncClient(timeout=10) as client:
            for _ in range(20):
                assert (await client.get(url + "/hello", headers={"Host": HOST})).status_code == 200
        assert act.link is not None and not act.link.connected.is_set()


async def _until(predicate, within: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.01)


@pytest.mark.process
async def test_streaming_and_websockets_pass_through_both_hops(tmp_path: Path) -> None:
    import aiohttp

    async with run_app() as (port, _), queue_proxy(port, tmp_path) as qp, activator() as (act, url):
        act.set_routes(route())
        act.put_revision(RevisionInfo(V1))
        act.set_endpoints(V1, [endpoint(qp)])
        loop = asyncio.get_running_loop()
        async with httpx.AsyncClient(timeout=10) as client:
            async with client.stream(
                "GET", url + "/sse?n=3&interval=0.5", headers={"Host": HOST}
            ) as resp:
                start, arrivals = loop.time(), []
                async for line in resp.aiter_lines():
                    if line.startswith("data:"):
                        arrivals.append(loop.time() - start)
            assert len(arrivals) == 3 and arrivals[0] < 0.3 and arrivals[2] > 0.8
            body = b"x" * (5 << 20)
            r = await client.post(url + "/sink", content=body, headers={"Host": HOST})
            assert r.json()["bytes"] == len(body)
        async with (
            aiohttp.ClientSession() as s,
            s.ws_connect(url + "/ws", headers={"Host": HOST}) as ws,
        ):
            await ws.send_str("ping")
            assert (await ws.receive(timeout=5)).data == "echo: ping"


@pytest.mark.process
async def test_revision_timeout_gives_504_from_the_activator(tmp_path: Path) -> None:
    async with run_app() as (port, _), queue_proxy(port, tmp_path) as qp, activator() as (act, url):
        act.set_routes(route())
        act.put_revision(RevisionInfo(V1, timeout_seconds=0.5))
        act.set_endpoints(V1, [endpoint(qp)])
        async with httpx.AsyncClient(timeout=10) as client:
            r = await client.get(url + "/sleep?s=3", headers={"Host": HOST})
        assert r.status_code == 504
        assert r.headers["x-zeroserve-error"] == "activator; reason=timeout"
        assert r.text == "activator request timeout\n"


async def test_every_replica_unreachable_gives_502_after_bounded_retries(tmp_path: Path) -> None:
    async with activator() as (act, url):
        dead = [
            Endpoint(
                name=f"dead-{i}", host="127.0.0.1", port=kernel_port(), stats_port=1, ready=True
            )
            for i in range(4)
        ]  # ports nothing listens on
        act.set_routes(route())
        act.put_revision(RevisionInfo(V1, container_concurrency=1))
        act.set_endpoints(V1, dead)
        async with httpx.AsyncClient(timeout=10) as client:
            r = await client.get(url + "/", headers={"Host": HOST})
        assert r.status_code == 502
        assert r.headers["x-zeroserve-error"] == "activator; reason=upstream-unreachable"


@pytest.mark.process
async def test_prometheus_metrics_per_revision(tmp_path: Path) -> None:
    async with run_app() as (port, _), queue_proxy(port, tmp_path) as qp, activator() as (act, url):
        act.set_routes(route())
        act.put_revision(RevisionInfo(V1))
        async with httpx.AsyncClient(timeout=10) as client:
            first = asyncio.create_task(client.get(url + "/hello", headers={"Host": HOST}))
            await _until(lambda: act.revisions.get(V1).throttler.queued == 1)  # type: ignore[union-attr]
            act.set_endpoints(V1, [endpoint(qp)])
            assert (await first).status_code == 200
            await client.get(url + "/status/404", headers={"Host": HOST})
            text = (await client.get(f"http://127.0.0.1:{act.ports['metrics_port']}/metrics")).text
        lv = 'k8s_namespace_name="default",kn_revision_name="hello-00001"'
        assert (
            'http_server_request_duration_seconds_count{http_response_status_code="200",'
            'k8s_namespace_name="default",kn_configuration_name="",'
            'kn_revision_name="hello-00001",kn_service_name=""} 1.0'
        ) in text
        assert 'http_response_status_code="404"' in text
        assert f"zeroserve_activator_cold_start_seconds_count{{{lv}}} 1.0" in text
        assert f"zeroserve_activator_queue_wait_seconds_count{{{lv}}} 1.0" in text
        assert f"zeroserve_activator_queued_requests_total{{{lv}}} 1.0" in text
        assert f"kn_revision_request_queued{{{lv}}} 0.0" in text
        assert f"kn_revision_request_active{{{lv}}} 0.0" in text
        assert 'zeroserve_activator_budget{kind="limit"} 10000.0' in text


@pytest.mark.process
async def test_shutdown_fails_health_then_finishes_in_flight_requests(tmp_path: Path) -> None:
    async with run_app() as (port, _), queue_proxy(port, tmp_path) as qp, activator() as (act, url):
        act.set_routes(route())
        act.put_revision(RevisionInfo(V1))
        act.set_endpoints(V1, [endpoint(qp)])
        async with httpx.AsyncClient(timeout=10) as client:
            assert (
                await client.get(url + "/", headers={"K-Network-Probe": "activator"})
            ).text == "activator"
            slow = [
                asyncio.create_task(client.get(url + "/sleep?s=1", headers={"Host": HOST}))
                for _ in range(5)
            ]
            await asyncio.sleep(0.2)
            stopping = asyncio.create_task(act.shutdown(drain_seconds=0.3))
            await asyncio.sleep(0.1)
            probe = await client.get(url + "/", headers={"User-Agent": "kube-probe/1.31"})
            assert probe.status_code == 503
            assert probe.headers["x-zeroserve-error"] == "activator; reason=draining"
            assert [r.status_code for r in await asyncio.gather(*slow)] == [200] * 5
            await asyncio.wait_for(stopping, 10)
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient() as fresh:
                await fresh.get(url + "/", headers={"Host": HOST})


@pytest.mark.process
@pytest.mark.parametrize("ingress", [True, False], ids=["ingress", "behind-a-gateway"])
async def test_x_forwarded_proto_is_set_only_as_the_ingress(tmp_path: Path, ingress: bool) -> None:
    """As the ingress (``zeroserve up``) the activator sets ``X-Forwarded-Proto: http``,
    overwriting a client's, as Envoy at the edge; behind a gateway it passes it on. Either
    way ``X-Forwarded-For`` gets the client appended and ``Forwarded`` and
    ``traceparent`` reach the app."""
    async with (
        run_app() as (port, _state),
        queue_proxy(port, tmp_path) as qp,
        activator(ingress=ingress) as (act, url),
    ):
        act.set_routes(route())
        act.put_revision(RevisionInfo(V1))
        act.set_endpoints(V1, [endpoint(qp)])
        trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        sent = {"Host": HOST, "Forwarded": "for=192.0.2.60", "traceparent": trace}
        async with httpx.AsyncClient() as client:
            plain = (await client.get(url + "/headers", headers=sent)).json()["headers"]
            spoofed = (
                await client.get(
                    url + "/headers",
                    headers={**sent, "X-Forwarded-Proto": "https", "X-Forwarded-For": "192.0.2.1"},
                )
            ).json()["headers"]
    if ingress:
        assert plain["x-forwarded-proto"] == "http"
        assert spoofed["x-forwarded-proto"] == "http"
    else:
        assert "x-forwarded-proto" not in plain
        assert spoofed["x-forwarded-proto"] == "https"
    assert plain["x-forwarded-for"].startswith("127.0.0.1")
    assert spoofed["x-forwarded-for"].startswith("192.0.2.1, 127.0.0.1")
    assert (plain["forwarded"], plain["traceparent"]) == ("for=192.0.2.60", trace)
