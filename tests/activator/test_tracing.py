"""Tracing through both hops: the activator (in this process) and real queue-proxy
processes export their spans by OTLP/HTTP to a receiver in the test; one trace from the
caller's context down to the app (docs/observability.md, "Tracing")."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from activator.app import Activator
from activator.config import Settings
from tests.activator.test_activator_e2e import HOST, V1, endpoint, route
from tests.support.apps import run_app
from tests.support.h2app import run_h2_app
from tests.support.otlp import Span, otlp_receiver
from tests.support.procs import queue_proxy
from zeroserve.local.ports import kernel_port
from zeroserve.observability import ObservabilityConfig
from zeroserve.topology import Endpoint, RevisionInfo

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = "00f067aa0ba902b7"
OFF = ObservabilityConfig()


def tracing(url: str, rate: float = 1.0) -> ObservabilityConfig:
    return ObservabilityConfig(
        tracing_protocol="http/protobuf", tracing_endpoint=url, tracing_sampling_rate=rate
    )


@pytest.fixture(autouse=True)
def _fast_export(monkeypatch: pytest.MonkeyPatch) -> None:
    # the batch processor's delay (OTel's variable): spans arrive within 0.1 s, here and
    # in the queue-proxies (which inherit the environment)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")


@contextlib.asynccontextmanager
async def activator(config: ObservabilityConfig) -> AsyncIterator[tuple[Activator, str]]:
    act = Activator(Settings(host="127.0.0.1", port=0, metrics_port=0, drain_seconds=0))
    act.observability = config
    ports = await act.start()
    try:
        yield act, f"http://127.0.0.1:{ports['port']}"
    finally:
        await act.close()


def by_id(spans: list[Span]) -> dict[str, Span]:
    return {s.span_id: s for s in spans}


def chain(spans: list[Span], leaf: Span) -> list[str]:
    """Span names from ``leaf`` up to the root it reaches."""
    ids = by_id(spans)
    names = [leaf.name]
    while leaf.parent_id in ids:
        leaf = ids[leaf.parent_id]
        names.append(leaf.name)
    return names


@pytest.mark.process
async def test_a_request_from_zero_is_one_trace_from_the_caller_to_the_app(
    tmp_path: Path,
) -> None:
    async with otlp_receiver() as rx, run_app() as (app_port, _state):
        config = tracing(rx.url)
        async with activator(config) as (act, url):
            act.set_routes(route())
            act.put_revision(RevisionInfo(V1, service="hello", configuration="hello"))
            async with httpx.AsyncClient(timeout=30) as client:
                # held: the revision has no replica yet
                pending = asyncio.ensure_future(
                    client.get(
                        url + "/headers",
                        headers={"Host": HOST, "traceparent": f"00-{TRACE}-{CALLER}-01"},
                    )
                )
                await asyncio.sleep(0.3)
                assert not pending.done()
                env = {"OBSERVABILITY_CONFIG": config.to_env(), "CONTAINER_CONCURRENCY": "1"}
                async with queue_proxy(app_port, tmp_path, **env) as qp:
                    act.set_endpoints(V1, [endpoint(qp, ready=False)])  # probed until ready
                    r = await pending
                    assert r.status_code == 200
                    await rx.wait_for(lambda s: any(x.name == "kn.queueproxy.proxy" for x in s))
                    await rx.wait_for(lambda s: any(x.name == "handle" for x in s))
    spans = rx.spans
    assert rx.content_types == {"application/x-protobuf"}
    assert {s.trace_id for s in spans} == {TRACE}, [(s.name, s.trace_id) for s in spans]

    handle = rx.one("handle")
    assert handle.parent_id == CALLER and handle.kind == "server"
    assert handle.service == "activator"
    assert handle.attributes["kn.revision.name"] == "hello-00001"
    assert handle.attributes["kn.service.name"] == "hello"
    assert handle.attributes["http.request.method"] == "GET"
    assert handle.attributes["http.response.status_code"] == 200

    throttler = rx.one("throttler_try")
    assert throttler.attributes["zeroserve.cold_start"] is True
    held = rx.one("held")
    assert held.parent_id == throttler.span_id
    assert [name for name, _ in held.events] == [
        "autoscaler poked",
        "replica endpoint seen",
        "replica ready",
    ]
    times = [t for _, t in held.events]
    assert held.start_ns <= times[0] <= times[1] <= times[2] <= held.end_ns
    assert held.end_ns - held.start_ns >= 0.3e9  # it waited for the queue-proxy to start

    attempt = rx.one("GET /headers")
    assert attempt.kind == "client"
    assert chain(spans, attempt) == ["GET /headers", "activator_proxy", "handle"]

    # the queue-proxy's spans hang under the activator's forward attempt
    queue = rx.one("queue")
    assert queue.kind == "server" and queue.parent_id == attempt.span_id
    assert queue.service == "hello"  # Knative: the Service's name
    assert queue.resource["k8s.container.name"] == "queue-proxy"
    assert queue.resource["kn.revision.name"] == "hello-00001"
    wait = rx.one("kn.queueproxy.wait")
    proxy = rx.one("kn.queueproxy.proxy")
    assert wait.parent_id == proxy.parent_id == queue.span_id
    assert proxy.kind == "client"
    # the app got the queue-proxy's proxy span as its parent, in W3C and B3
    seen = r.json()["headers"]
    assert seen["traceparent"] == f"00-{TRACE}-{proxy.span_id}-01"
    assert seen["x-b3-traceid"] == TRACE and seen["x-b3-spanid"] == proxy.span_id


@pytest.mark.process
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"b3": f"{TRACE}-{CALLER}-1"}, id="b3-single"),
        pytest.param(
            {"X-B3-TraceId": TRACE, "X-B3-SpanId": CALLER, "X-B3-Sampled": "1"}, id="b3-multi"
        ),
    ],
)
async def test_b3_context_is_continued_over_http2_and_http1(
    tmp_path: Path, headers: dict[str, str]
) -> None:
    async with otlp_receiver() as rx, run_app() as (app_port, _state):
        config = tracing(rx.url, rate=0.0)  # the caller's sampling decision counts
        env = {"OBSERVABILITY_CONFIG": config.to_env()}
        async with queue_proxy(app_port, tmp_path, **env) as qp, activator(config) as (act, url):
            act.set_routes(route())
            act.put_revision(RevisionInfo(V1))
            act.set_endpoints(V1, [endpoint(qp)])
            async with httpx.AsyncClient(http1=False, http2=True, timeout=20) as h2:
                r2 = await h2.get(url + "/headers", headers={"Host": HOST, **headers})
            async with httpx.AsyncClient(timeout=20) as h1:
                r1 = await h1.get(url + "/headers", headers={"Host": HOST, **headers})
            assert r2.http_version == "HTTP/2" and r2.status_code == r1.status_code == 200
            await rx.wait_for(lambda s: len([x for x in s if x.name == "queue"]) == 2)
            await rx.wait_for(lambda s: len([x for x in s if x.name == "handle"]) == 2)
    assert {s.trace_id for s in rx.spans} == {TRACE}
    handles = rx.named("handle")
    assert [h.parent_id for h in handles] == [CALLER, CALLER]
    assert sorted(h.attributes["network.protocol.version"] for h in handles) == ["1.1", "2.0"]
    for r in (r1, r2):
        seen = r.json()["headers"]
        # the caller's B3 headers were replaced by the hops' own, W3C and B3 multi
        assert "b3" not in seen
        proxy_id = seen["x-b3-spanid"]
        assert seen["traceparent"] == f"00-{TRACE}-{proxy_id}-01"
        assert by_id(rx.spans)[proxy_id].name == "kn.queueproxy.proxy"


@pytest.mark.process
async def test_sampling_rate_zero_exports_nothing_but_still_propagates(tmp_path: Path) -> None:
    async with otlp_receiver() as rx, run_app() as (app_port, _state):
        config = tracing(rx.url, rate=0.0)
        env = {"OBSERVABILITY_CONFIG": config.to_env()}
        async with queue_proxy(app_port, tmp_path, **env) as qp, activator(config) as (act, url):
            act.set_routes(route())
            act.put_revision(RevisionInfo(V1))
            act.set_endpoints(V1, [endpoint(qp)])
            async with httpx.AsyncClient(timeout=20) as client:
                for _ in range(5):
                    r = await client.get(url + "/headers", headers={"Host": HOST})
                    assert r.status_code == 200
            await asyncio.sleep(0.5)  # five batch delays
    assert rx.spans == [] and rx.posts == 0
    # a trace the hops did not sample still reaches the app, flagged unsampled
    version, trace_id, _span, flags = r.json()["headers"]["traceparent"].split("-")
    assert version == "00" and len(trace_id) == 32 and int(flags, 16) & 1 == 0


@pytest.mark.process
async def test_live_config_turns_tracing_on_and_off_without_a_restart(tmp_path: Path) -> None:
    async with otlp_receiver() as rx, run_app() as (app_port, _state):
        async with queue_proxy(app_port, tmp_path) as qp, activator(OFF) as (act, url):
            act.set_routes(route())
            act.put_revision(RevisionInfo(V1))
            act.set_endpoints(V1, [endpoint(qp)])
            caller = {"Host": HOST, "traceparent": f"00-{TRACE}-{CALLER}-01"}

            async def put(config: ObservabilityConfig) -> None:
                async with httpx.AsyncClient() as admin:
                    r = await admin.put(
                        qp.admin_url("/observability"), content=config.to_env().encode()
                    )
                    assert r.status_code == 200, r.text
                act.observability = config

            async with httpx.AsyncClient(timeout=20) as client:
                r = await client.get(url + "/headers", headers=caller)
                # off: the caller's context passes through both hops untouched
                assert r.json()["headers"]["traceparent"] == f"00-{TRACE}-{CALLER}-01"
                await put(tracing(rx.url))
                await client.get(url + "/headers", headers=caller)
                await rx.wait_for(lambda s: {"queue", "handle"} <= {x.name for x in s})
                await put(OFF)
                rx.clear()
                r = await client.get(url + "/headers", headers=caller)
                assert r.json()["headers"]["traceparent"] == f"00-{TRACE}-{CALLER}-01"
                await asyncio.sleep(0.5)
                assert qp.proc.returncode is None
    assert rx.spans == []
    log = qp.log_text()
    assert "tracing on: OTLP/HTTP to " + rx.url in log and "tracing off" in log


@pytest.mark.process
async def test_each_forward_attempt_is_a_client_span_and_a_retry_is_another(
    tmp_path: Path,
) -> None:
    dead = Endpoint(name="gone", host="127.0.0.1", port=kernel_port(), stats_port=0)
    async with otlp_receiver() as rx, run_app() as (app_port, _state):
        config = tracing(rx.url)
        async with queue_proxy(app_port, tmp_path) as qp, activator(config) as (act, url):
            act.set_routes(route())
            act.put_revision(RevisionInfo(V1))
            act.set_endpoints(V1, [dead])  # announced ready, refuses connections
            async with httpx.AsyncClient(timeout=20) as client:
                pending = asyncio.ensure_future(
                    client.get(url + "/headers", headers={"Host": HOST})
                )
                await rx.wait_for(lambda s: any(x.kind == "client" for x in s))
                act.set_endpoints(V1, [dead, endpoint(qp)])
                assert (await pending).status_code == 200
            await rx.wait_for(lambda s: any(x.name == "handle" for x in s))
    # the dead replica, announced ready again with the live one, may be tried twice
    *failed, last = sorted(rx.named("GET /headers"), key=lambda s: s.start_ns)
    assert 1 <= len(failed) <= 2
    proxy = rx.one("activator_proxy")
    assert {s.parent_id for s in [*failed, last]} == {proxy.span_id}
    for n, attempt in enumerate(failed):
        assert attempt.error and attempt.attributes["server.port"] == dead.port
        assert attempt.attributes["error.type"] == "ConnectionRefusedError"
        assert attempt.attributes.get("http.request.resend_count") == (n or None)
    assert not last.error and last.attributes["server.port"] == qp.port
    assert last.attributes["http.request.resend_count"] == len(failed)
    assert last.attributes["http.response.status_code"] == 200


async def test_a_request_the_throttler_refuses_is_an_error_on_throttler_try() -> None:
    async with otlp_receiver() as rx:
        act = Activator(
            Settings(host="127.0.0.1", port=0, metrics_port=0, drain_seconds=0, queue_depth=1)
        )
        act.observability = tracing(rx.url)
        url = f"http://127.0.0.1:{(await act.start())['port']}"
        try:
            act.set_routes(route())
            act.put_revision(RevisionInfo(V1))  # no replica: the first request waits
            async with httpx.AsyncClient(timeout=20) as client:
                waiting = asyncio.ensure_future(client.get(url + "/", headers={"Host": HOST}))
                await asyncio.sleep(0.2)
                refused = await client.get(url + "/", headers={"Host": HOST})
                assert refused.status_code == 503
                await rx.wait_for(lambda s: any(x.name == "handle" for x in s))
                waiting.cancel()
        finally:
            await act.close()
    # the request that waited ended too (the client left); the refused one never waited
    (throttler,) = [s for s in rx.named("throttler_try") if not s.attributes["zeroserve.held"]]
    assert throttler.error and throttler.status_message == "pending request queue full"
    handle = by_id(rx.spans)[throttler.parent_id]
    assert handle.name == "handle" and handle.error
    assert handle.attributes["http.response.status_code"] == 503
    assert [s.name for s in rx.spans if s.trace_id == handle.trace_id] == [
        "activator_route",
        "throttler_try",
        "handle",
    ]
    (gone,) = [s for s in rx.named("throttler_try") if s.attributes["zeroserve.held"]]
    assert gone.error and gone.status_message == "ended while waiting (499)"


@pytest.mark.process
async def test_an_h2c_revision_is_traced_over_http2_on_both_hops(tmp_path: Path) -> None:
    async with otlp_receiver() as rx, run_h2_app() as (app_port, state):
        config = tracing(rx.url)
        env = {"OBSERVABILITY_CONFIG": config.to_env(), "USER_PROTOCOL": "h2c"}
        async with queue_proxy(app_port, tmp_path, **env) as qp, activator(config) as (act, url):
            act.set_routes(route())
            act.put_revision(RevisionInfo(V1, protocol="h2c"))
            act.set_endpoints(V1, [endpoint(qp)])
            async with httpx.AsyncClient(http1=False, http2=True, timeout=20) as client:
                r = await client.get(
                    url + "/hello",
                    headers={"Host": HOST, "traceparent": f"00-{TRACE}-{CALLER}-01"},
                )
            assert r.status_code == 200 and r.http_version == "HTTP/2"
            await rx.wait_for(lambda s: {"queue", "handle"} <= {x.name for x in s})
    attempt, queue = rx.one("GET /hello"), rx.one("queue")
    assert queue.parent_id == attempt.span_id and queue.trace_id == TRACE
    assert queue.attributes["network.protocol.version"] == "2.0"  # the activator spoke h2c
    proxy = rx.one("kn.queueproxy.proxy")
    (seen,) = state.headers
    assert seen[b"traceparent"] == f"00-{TRACE}-{proxy.span_id}-01".encode()
