"""The activator's fast path (activator/fastpath.py), on real sockets in one process.

An ``Activator`` runs in the test's event loop in front of scripted queue-proxies
(``tests.support.scripted``: they answer the activator's probe as a queue-proxy does, and
each request as the test says), so a test sees which kind of connection serves each
client (``ActivatorFastConnection`` while on the fast path, ``ServerConnection`` once
handed over), what each queue-proxy received and what the client got. The general path's
own behaviour is tested everywhere else (every activator test sends its requests through
the fast path or off it, as their shape says); here, the fast path must be what the
general path would have been, and each way off it must hand the exchange over intact,
with its replica, its statistics and its revision's timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activator.app import Activator
from activator.config import Settings
from activator.routing import Route, RoutingTable, Target
from tests.support.scripted import (
    OK,
    ScriptedApp,
    exchange,
    in_loop_thread,
    requests_seen,
    responses,
    scripted_app,
    spy_take_over,
    twice_through_each,
    written_apart,
)
from zeroserve.http.server import ServerConnection
from zeroserve.observability import ObservabilityConfig
from zeroserve.topology import Endpoint, RevisionInfo, RevisionKey

KEY = RevisionKey("default", "hello-00001")
KEY2 = RevisionKey("default", "hello-00002")
HOST = b"hello.default.example.com"
GET = (
    b"GET /path?q=1 HTTP/1.1\r\nHost: hello.default.example.com\r\nUser-Agent: hey/0.0.1\r\n"
    b"K-Original-Host: admin.internal\r\nKnative-Serving-Namespace: kube-system\r\n"
    b"K-Proxy-Request: someone\r\nX-Forwarded-For: 203.0.113.7\r\n"
    b"X-Forwarded-Proto: https\r\nKeep-Alive: timeout=5\r\nConnection: keep-alive\r\n"
    b"X-Custom: kept\r\n\r\n"
)
UNREACHABLE = (
    b"HTTP/1.1 502 Bad Gateway\r\nX-Zeroserve-Error: queue-proxy; reason=app-unreachable\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def _routes(*targets: Target) -> RoutingTable:
    return RoutingTable(
        [Route("default", "hello", (HOST.decode(),), targets or (Target(KEY, 100),))]
    )


@contextlib.asynccontextmanager
async def activator(
    upstreams: Sequence[int],
    *,
    general: bool = False,
    ingress: bool = False,
    info: RevisionInfo | None = None,
    routes: RoutingTable | None = None,
    endpoints: Mapping[RevisionKey, Sequence[int]] | None = None,
) -> AsyncIterator[tuple[Activator, int]]:
    """An in-process activator routing ``HOST`` to ``KEY`` (or ``routes``), whose
    replicas are the scripted queue-proxies on ``upstreams`` (or ``endpoints`` per
    revision), ready once probed; ``general``: with the general path only."""
    act = Activator(
        Settings(host="127.0.0.1", port=0, metrics_port=0, drain_seconds=0, ingress=ingress)
    )
    if general:
        for srv in act.servers:
            srv.connection = ServerConnection
    act.set_routes(routes or _routes())
    by_key = endpoints if endpoints is not None else {KEY: upstreams}
    for key in by_key:
        act.put_revision(info or RevisionInfo(key))
    port = (await act.start())["port"]
    try:
        for key, ports in by_key.items():
            act.set_endpoints(
                key,
                [Endpoint(f"pod-{p}", "127.0.0.1", p, stats_port=0, ready=True) for p in ports],
            )
            rev = act.revisions.get(key)
            assert rev is not None
            for _ in range(500):
                if len(rev.trackers) == len(ports):
                    break
                await asyncio.sleep(0.01)
            assert len(rev.trackers) == len(ports), "the replicas were not probed healthy"
        yield act, port
    finally:
        await act.close()


def _kinds(act: Activator) -> set[str]:
    return {type(c).__name__ for c in act.servers[0].conns}


def _count(act: Activator, status: int, key: RevisionKey = KEY) -> int:
    metrics = act.metrics.revisions.get(key)
    return metrics.latency.count(status) if metrics is not None else 0


def _idle(act: Activator, key: RevisionKey = KEY) -> bool:
    """Nothing of ``key`` in flight: no replica's slot held, no request counted in."""
    rev = act.revisions.get(key)
    assert rev is not None
    entry = act.stats.entries[key]
    return rev.throttler.in_flight == 0 and entry.stats.concurrency == 0


async def _until(condition: Callable[[], object]) -> None:
    """Let the loop run until ``condition`` holds, at most a second."""
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0.01)


@pytest.fixture
def handed_over(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    return spy_take_over(monkeypatch)


async def test_a_plain_request_stays_on_the_path_and_is_rewritten_as_the_general_path_would() -> (
    None
):
    async with scripted_app() as (qp, qp_port):
        async with activator([qp_port]) as (act, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(3):
                writer.write(GET)
                assert await reader.readexactly(len(OK)) == OK  # as the queue-proxy wrote it
            assert _kinds(act) == {"ActivatorFastConnection"}
            writer.close()
            assert _count(act, 200) == 3 and _idle(act)
            assert act.stats.entries[KEY].stats.report(time.monotonic()).request_count == 3
        assert len(qp.connections) == 1  # one kept alive for all three (no probe needed)
        fast = qp.requests[:]
        qp.requests.clear()
        async with activator([qp_port], general=True) as (_, port):
            await exchange(port, GET)
        assert qp.requests[0] == fast[0]  # byte for byte
    assert fast[0] == (
        b"GET /path?q=1 HTTP/1.1\r\nUser-Agent: hey/0.0.1\r\nX-Forwarded-Proto: https\r\n"
        b"X-Custom: kept\r\nHost: 127.0.0.1:%d\r\nX-Forwarded-For: 203.0.113.7, 127.0.0.1\r\n"
        b"K-Proxy-Request: activator\r\nK-Original-Host: hello.default.example.com\r\n\r\n"
        % qp_port
    )


async def test_as_the_ingress_it_sets_x_forwarded_proto() -> None:
    async with scripted_app() as (qp, qp_port), activator([qp_port], ingress=True) as (act, port):
        got, _ = await exchange(port, GET)
        assert _kinds(act) == {"ActivatorFastConnection"}
    assert [status for status, _, _ in got] == [b"OK"]
    ((_, fields, _),) = requests_seen(qp)
    assert (b"x-forwarded-proto", b"http") in fields  # the client's "https" dropped
    assert (b"x-forwarded-proto", b"https") not in fields


# -- leaving the path: each way, served as the general path serves it -------------------

TAGGED = RoutingTable(
    [
        Route(
            "default",
            "hello",
            (HOST.decode(),),
            (Target(KEY, 100),),
        )
    ],
    tag_header_routing=True,
)


@pytest.mark.parametrize(
    ("writes", "answered_by_app"),
    [
        pytest.param(
            [b"POST /p HTTP/1.1\r\nHost: %s\r\nContent-Length: 5\r\n\r\nhello" % HOST],
            1,
            id="a body",
        ),
        pytest.param(
            [b"GET /p HTTP/1.1\r\nHo", b"st: %s\r\n\r\n" % HOST], 1, id="a head over two reads"
        ),
        pytest.param(
            [
                b"GET /a HTTP/1.1\r\nHost: %s\r\n\r\nGET /b HTTP/1.1\r\nHost: %s\r\n\r\n"
                % (HOST, HOST)
            ],
            2,
            id="pipelined",
        ),
        pytest.param([b"GET /p HTTP/1.0\r\nHost: %s\r\n\r\n" % HOST], 1, id="HTTP/1.0"),
        pytest.param(
            [b"GET /p HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % HOST], 1, id="close"
        ),
        pytest.param([b"GET / HTTP/1.1\r\nK-Network-Probe: activator\r\n\r\n"], 0, id="a probe"),
        pytest.param([b"GET / HTTP/1.1\r\nHost: nope.example\r\n\r\n"], 0, id="no route"),
        pytest.param([b"GET / HTTP/1.1\r\n\r\n"], 0, id="no Host"),
        pytest.param([b"GET / HTTP/1.1\r\nHost: %s\r\nHost: a\r\n\r\n" % HOST], 0, id="Host twice"),
        pytest.param(
            [b"GET / HTTP/1.1\r\nHost: %s\r\nKnative-Serving-Tag: x\r\n\r\n" % HOST], 1, id="a tag"
        ),
        pytest.param(
            [b"GET / HTTP/1.1\r\nHost: a\r\nKnative-Serving-Revision: hello-00001\r\n\r\n"],
            0,
            id="header routing (untrusted: the Host decides)",
        ),
    ],
)
async def test_a_request_off_the_path_is_handed_over_and_served_as_before(
    writes: list[bytes], answered_by_app: int, handed_over: list[object]
) -> None:
    async with (
        scripted_app() as (app, app_port),
        activator([app_port], routes=TAGGED) as (act, port),
        activator([app_port], routes=TAGGED, general=True) as (_, gen),
    ):
        got = [await written_apart(p, writes, answered_by_app, app) for p in (port, gen)]
        assert len(handed_over) == 1  # the fast path's connection, once
        assert len(app.requests) == answered_by_app
        assert got[0] == got[1]
        assert _idle(act) if KEY in act.stats.entries else True


async def test_a_request_held_for_a_cold_revision_leaves_the_path_and_is_forwarded() -> None:
    async with scripted_app() as (_, app_port), activator([]) as (act, port):
        held = asyncio.ensure_future(exchange(port, GET))
        rev = act.revisions.get(KEY)
        assert rev is not None
        await _until(lambda: rev.throttler.queued)
        assert rev.throttler.queued == 1 and _kinds(act) == {"ServerConnection"}
        act.set_endpoints(KEY, [Endpoint("pod", "127.0.0.1", app_port, stats_port=0, ready=True)])
        got, _ = await held
        assert [status for status, _, _ in got] == [b"OK"]
        got, _ = await exchange(port, GET)  # the revision is warm: the fast path again
        assert [status for status, _, _ in got] == [b"OK"]
        assert "ActivatorFastConnection" in _kinds(act) or not act.servers[0].conns
        assert _count(act, 200) == 2 and _idle(act)
        assert sum(act.metrics.revisions[KEY].cold_starts.buckets) == 1


async def test_a_cold_start_whose_held_request_left_is_measured_by_the_next_request() -> None:
    """The first forward after the revision was at zero observes the cold start, on the
    general path, even when the request that waited for it had gone."""
    async with scripted_app() as (_, app_port), activator([]) as (act, port):
        held = asyncio.ensure_future(exchange(port, GET))
        rev = act.revisions.get(KEY)
        assert rev is not None
        await _until(lambda: rev.throttler.queued)
        held.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await held
        await _until(lambda: not rev.throttler.queued)
        assert rev.cold_since and not rev.throttler.queued
        act.set_endpoints(KEY, [Endpoint("pod", "127.0.0.1", app_port, stats_port=0, ready=True)])
        got, _ = await exchange(port, GET)
        assert [status for status, _, _ in got] == [b"OK"]
        assert not rev.cold_since
        assert sum(act.metrics.revisions[KEY].cold_starts.buckets) == 1


@pytest.mark.parametrize("general", [False, True], ids=["fast", "general"])
async def test_a_failed_revision_reached_through_its_service_is_answered_at_once(
    general: bool,
) -> None:
    """Mesh mode: the revision's one target is its private Service, and it has no
    replica of its own (``trackers``); backing off after a failure, it is answered at
    once with why, on either path (the Service would otherwise take the request)."""
    info = RevisionInfo(KEY, backing_off=True, failure="ExitCode1: boom")
    async with (
        scripted_app() as (service, service_port),
        activator([], info=info, general=general, endpoints={KEY: []}) as (act, port),
    ):
        act.set_mesh("enabled", lambda key: ("127.0.0.1", service_port))
        act.set_endpoints(KEY, [Endpoint("pod", "192.0.2.1", 8012, stats_port=0, ready=True)])
        rev = act.revisions.get(KEY)
        assert rev is not None
        await _until(lambda: rev.service is not None)
        assert rev.service is not None and not rev.trackers
        got, _ = await exchange(port, GET)
    ((status, fields, body),) = got
    assert status == b"Service Unavailable" and b"boom" in body
    assert any(v.startswith(b"activator; reason=revision-failed") for _, v in fields)
    assert service.requests == []


async def test_with_no_free_replica_the_request_queues_and_gets_the_fast_ones_slot() -> None:
    async with (
        scripted_app() as (app, app_port),
        activator([app_port], info=RevisionInfo(KEY, container_concurrency=1)) as (act, port),
    ):
        app.hold = asyncio.Event()
        first = asyncio.ensure_future(exchange(port, GET))
        while not app.requests:
            await asyncio.sleep(0.01)
        second = asyncio.ensure_future(exchange(port, GET))
        rev = act.revisions.get(KEY)
        assert rev is not None
        await _until(lambda: rev.throttler.queued)
        assert rev.throttler.queued == 1 and len(app.requests) == 1
        assert _kinds(act) == {"ActivatorFastConnection", "ServerConnection"}
        app.hold.set()  # the fast exchange ends, and hands its replica to the queued one
        for task in (first, second):
            got, _ = await task
            assert [status for status, _, _ in got] == [b"OK"]
        assert _count(act, 200) == 2 and _idle(act)
        assert act.metrics.revisions[KEY].queued_total == 1


async def test_a_queue_proxy_whose_app_is_unreachable_sends_the_request_to_another_replica() -> (
    None
):
    async with scripted_app() as (one, one_port), scripted_app() as (two, two_port):
        bad, good = (one, two) if one_port < two_port else (two, one)
        bad.parts = [UNREACHABLE]
        # containerConcurrency 1 gives replicas in address order: the bad one first
        info = RevisionInfo(KEY, container_concurrency=1)
        async with activator(sorted([one_port, two_port]), info=info) as (act, port):
            got, _ = await exchange(port, GET)
            assert [status for status, _, _ in got] == [b"OK"]
            assert len(bad.requests) == 1 and len(good.requests) == 1
            assert _count(act, 200) == 1 and _count(act, 502) == 0 and _idle(act)


async def test_a_reused_connection_closed_unanswered_is_retried_on_a_fresh_one() -> None:
    async with scripted_app() as (app, app_port), activator([app_port]) as (act, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(GET)
        assert await reader.readexactly(len(OK)) == OK
        app.drop = 1
        writer.write(GET)
        assert await reader.readexactly(len(OK)) == OK
        writer.close()
        assert _count(act, 200) == 2 and _idle(act)
    assert len(app.requests) == 3


async def test_the_revisions_timeout_is_a_504_and_gives_the_replica_back() -> None:
    info = RevisionInfo(KEY, timeout_seconds=1)
    async with scripted_app() as (app, app_port), activator([app_port], info=info) as (act, port):
        app.hold = asyncio.Event()
        got, _ = await exchange(port, GET)
        app.hold.set()
        ((status, fields, _),) = got
        assert status == b"Gateway Timeout"
        assert (b"x-zeroserve-error", b"activator; reason=timeout") in fields
        assert _count(act, 504) == 1 and _idle(act)


async def test_a_client_gone_mid_exchange_is_a_499_and_gives_the_replica_back() -> None:
    async with scripted_app() as (app, app_port), activator([app_port]) as (act, port):
        app.hold = asyncio.Event()
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(GET)
        while not app.requests:
            await asyncio.sleep(0.01)
        assert not _idle(act)
        writer.close()
        for _ in range(200):
            if _count(act, 499):
                break
            await asyncio.sleep(0.01)
        assert _count(act, 499) == 1 and _idle(act)
        app.hold.set()


async def test_a_split_picks_on_the_fast_path_as_on_the_general_path() -> None:
    routes = _routes(Target(KEY, 50), Target(KEY2, 50))
    seen = []
    async with scripted_app() as (one, one_port), scripted_app() as (_, two_port):
        by_key = {KEY: [one_port], KEY2: [two_port]}
        for general in (False, True):
            async with activator([], routes=routes, endpoints=by_key, general=general) as (
                _,
                port,
            ):
                order = []
                for _ in range(4):
                    before = len(one.requests)
                    await exchange(port, GET)
                    order.append(1 if len(one.requests) > before else 2)
                seen.append(order)
    assert seen[0] == seen[1] == [1, 2, 1, 2]


async def test_a_split_request_that_leaves_the_path_goes_where_the_split_looked() -> None:
    """The split's choice is looked at before anything that sends the request the general
    path's way, and made only once it stays: the general path then makes the same one."""
    routes = _routes(Target(KEY, 50), Target(KEY2, 50))
    async with (
        scripted_app() as (two, two_port),
        activator([], routes=routes, endpoints={KEY: [], KEY2: [two_port]}) as (act, port),
    ):
        held = asyncio.ensure_future(exchange(port, GET))  # KEY's turn: it has no replica
        rev = act.revisions.get(KEY)
        assert rev is not None
        await _until(lambda: rev.throttler.queued)
        assert rev.throttler.queued == 1
        got, _ = await exchange(port, GET)  # KEY2's turn, on the fast path
        assert [status for status, _, _ in got] == [b"OK"] and len(two.requests) == 1
        held.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await held


async def test_with_request_logs_on_a_relayed_request_stays_on_the_path(
    handed_over: list[object], capfd: pytest.CaptureFixture[str]
) -> None:
    """The activator logs only what it answers itself (a relayed response is the
    queue-proxy's to log), so request logs take nothing from the fast path."""
    async with scripted_app() as (_, app_port), activator([app_port]) as (act, port):
        act.observability = ObservabilityConfig(
            enable_request_log=True, request_log_template="logged {{.Request.Host}}"
        )
        got, _ = await exchange(port, GET, GET)
        assert [status for status, _, _ in got] == [b"OK", b"OK"]
        assert handed_over == []
        got, _ = await exchange(port, b"GET / HTTP/1.1\r\nHost: nope.example\r\n\r\n")
        assert [status for status, _, _ in got] == [b"Not Found"]
        assert len(handed_over) == 1
    out = capfd.readouterr().out
    assert out.count("logged") == 1 and "logged nope.example" in out


# -- the same bytes as the general path, for any request and response shape -----------

_FIELDS = {
    b"Host": [
        HOST,
        b"Hello.Default.Example.COM:8080",
        b"nope.example",
        b"hello.default.example.com. ",
    ],
    b"HOST": [HOST],
    b"K-Original-Host": [b"admin.internal", b""],
    b"X-Forwarded-For": [b"203.0.113.7", b"203.0.113.7, 10.0.0.1", b"  198.51.100.1  "],
    b"x-forwarded-for": [b"192.0.2.9"],
    b"X-Forwarded-Proto": [b"https"],
    b"Forwarded": [b"for=192.0.2.1"],
    b"K-Proxy-Request": [b"activator"],
    b"Knative-Serving-Namespace": [b"default"],
    b"Knative-Serving-Revision": [b"hello-00001"],
    b"Connection": [b"keep-alive", b"close", b"X-Custom", b"Keep-Alive "],
    b"Keep-Alive": [b"timeout=5"],
    b"TE": [b"trailers"],
    b"Proxy-Authorization": [b"Basic eA=="],
    b"User-Agent": [b"hey/0.0.1", b"kube-probe/1.31", b"Knative-Autoscaling-Probe"],
    b"K-Network-Probe": [b"activator"],
    b"Content-Length": [b"0"],
    b"X-Custom": [b"kept", b"  spaced  "],
}
_request_headers = st.lists(
    st.sampled_from([(name, value) for name, values in _FIELDS.items() for value in values]),
    max_size=6,
)


@pytest.fixture(scope="module")
def both_paths() -> Any:
    """One scripted queue-proxy with four activators in front of it (the fast path's and
    the general path's, each as the ingress and not), running in a loop of their own for
    every example of the test below (starting them per example would take minutes)."""

    async def start(
        stack: contextlib.AsyncExitStack,
    ) -> tuple[ScriptedApp, dict[tuple[bool, bool], int]]:
        app, app_port = await stack.enter_async_context(scripted_app())
        ports = {}
        for ingress in (False, True):
            for general in (False, True):
                _, ports[ingress, general] = await stack.enter_async_context(
                    activator([app_port], general=general, ingress=ingress)
                )
        return app, ports

    with in_loop_thread(start) as (loop, started):
        yield loop, *started


@pytest.mark.timeout(120)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from([b"GET", b"GET", b"DELETE", b"POST"]),
    version=st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0"]),
    headers=_request_headers,
    parts=responses(),
    ingress=st.booleans(),
)
def test_any_exchange_is_the_same_on_either_path(
    both_paths: Any,
    method: bytes,
    version: bytes,
    headers: list[tuple[bytes, bytes]],
    parts: list[bytes],
    ingress: bool,
) -> None:
    """Whatever the request and the queue-proxy's response, the queue-proxy receives the
    same request and the client the same response (and the same closing) whether the
    connection starts on the fast path or not."""
    loop, app, ports = both_paths
    on_fast, on_general = twice_through_each(
        loop, app, parts, method, version, headers, ports[ingress, False], ports[ingress, True]
    )
    assert on_fast == on_general
