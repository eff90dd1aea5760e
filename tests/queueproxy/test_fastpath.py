"""The queue-proxy's fast path (queueproxy/fastpath.py), on real sockets in one process.

A ``QueueProxy`` runs in the test's event loop in front of a scripted app, so a test can
see which kind of connection serves each client (``FastConnection`` while on the fast
path, ``ServerConnection`` once handed over), what the app received and what the client
got, byte for byte. The general path's own behaviour is tested everywhere else (every
other queue-proxy test runs a ``python -m queueproxy`` process, so its requests take the
fast path or leave it as their shape says); here, the fast path must be what the general
path would have been (the same bytes to the app and to the client, the same statistics
and metrics), and each way off it must hand the exchange over intact.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from queueproxy.app import QueueProxy
from queueproxy.config import Settings
from queueproxy.fastpath import QueueProxyFastConnection
from tests.http.wire import FakeTransport
from tests.support.procs import qp_env
from tests.support.scripted import (
    OK,
    ScriptedApp,
    exchange,
    in_loop_thread,
    responses,
    scripted_app,
    spy_take_over,
    twice_through_each,
    written_apart,
)
from zeroserve.http.server import ServerConnection
from zeroserve.observability import ObservabilityConfig

GET = (
    b"GET /path?q=1 HTTP/1.1\r\nHost: internal.example\r\nUser-Agent: hey/0.0.1\r\n"
    b"K-Original-Host: hello.default.example.com\r\nKnative-Serving-Revision: hello-00001\r\n"
    b"Knative-Serving-Namespace: default\r\nK-Proxy-Request: activator\r\n"
    b"X-Forwarded-For: 203.0.113.7, 10.0.0.1\r\nX-Forwarded-Proto: https\r\n"
    b"Keep-Alive: timeout=5\r\nConnection: keep-alive\r\nX-Custom: kept\r\n\r\n"
)


@contextlib.asynccontextmanager
async def queue_proxy(
    app_port: int, *, general: bool = False, **env: str
) -> AsyncIterator[tuple[QueueProxy, int]]:
    """An in-process queue-proxy in front of ``app_port`` (``general``: with the general
    path only, as before the fast path)."""
    qp = QueueProxy(Settings.from_env(qp_env(app_port, **env)))
    if general:
        qp.serving.connection = ServerConnection
    port = (await qp.start())["serving_port"]
    try:
        yield qp, port
    finally:
        await qp.shutdown()


@contextlib.asynccontextmanager
async def app_and_qp(
    *, general: bool = False, **env: str
) -> AsyncIterator[tuple[ScriptedApp, QueueProxy, int]]:
    async with (
        scripted_app() as (app, app_port),
        queue_proxy(app_port, general=general, **env) as (
            qp,
            port,
        ),
    ):
        yield app, qp, port


def _kinds(qp: QueueProxy) -> set[str]:
    return {type(c).__name__ for c in qp.serving.conns}


async def test_a_plain_request_stays_on_the_path_and_is_rewritten_as_the_general_path_would():
    async with app_and_qp() as (app, qp, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(3):
            writer.write(GET)
            assert await reader.readexactly(len(OK)) == OK  # as the app wrote it
        assert _kinds(qp) == {"QueueProxyFastConnection"}
        assert len(app.connections) == 1  # one kept-alive app connection, reused
        writer.close()
    assert app.requests[0] == (
        b"GET /path?q=1 HTTP/1.1\r\nUser-Agent: hey/0.0.1\r\nK-Proxy-Request: activator\r\n"
        b"X-Forwarded-Proto: https\r\nX-Custom: kept\r\nHost: hello.default.example.com\r\n"
        b"X-Forwarded-For: 203.0.113.7, 10.0.0.1, 127.0.0.1\r\n"
        b"Forwarded: for=203.0.113.7;proto=https, for=10.0.0.1\r\n\r\n"
    )
    assert qp.stats.concurrency == 0 and qp.stats.proxied_concurrency == 0
    iv = qp.stats.report(time.monotonic())
    assert iv.request_count == 3 and iv.proxied_request_count == 3
    assert qp.metrics.count(200) == 3


async def test_the_fast_path_is_what_the_general_path_sends_and_answers() -> None:
    """Every request and response shape of the equivalence test below, on a path each."""
    async with app_and_qp() as (fast_app, _, fast), app_and_qp(general=True) as (gen_app, _, gen):
        got_fast = await exchange(fast, GET, GET)
        got_gen = await exchange(gen, GET, GET)
    assert got_fast == got_gen
    assert fast_app.requests == gen_app.requests


# -- leaving the path: each way, served as the general path serves it -------------------


@pytest.fixture
def handed_over(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    return spy_take_over(monkeypatch)


BODY = b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"


@pytest.mark.parametrize(
    ("writes", "answered_by_app"),
    [
        pytest.param([BODY], 1, id="a body"),
        pytest.param(
            [
                b"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            ],
            1,
            id="a chunked body",
        ),
        pytest.param([b"GET /p HTTP/1.1\r\nHo", b"st: a\r\n\r\n"], 1, id="a head over two reads"),
        pytest.param([b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"], 2, id="pipelined"),
        pytest.param([b"GET /p HTTP/1.0\r\n\r\n"], 1, id="HTTP/1.0"),
        pytest.param([b"GET /p HTTP/1.1\r\nConnection: close\r\n\r\n"], 1, id="close"),
        pytest.param(
            [b"POST /p HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n", b"hello"],
            1,
            id="Expect",
        ),
        pytest.param([b"GET / HTTP/1.1\r\nK-Network-Probe: queue\r\n\r\n"], 0, id="a probe"),
        pytest.param([b"GET / HTTP/1.1\r\nUser-Agent: kube-probe/1.31\r\n\r\n"], 0, id="kubelet"),
        pytest.param([b"GET /p HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"], 1, id="Host twice"),
    ],
)
async def test_a_request_off_the_path_is_handed_over_and_served_as_before(
    writes: list[bytes], answered_by_app: int, handed_over: list[object]
) -> None:
    async with (
        scripted_app() as (app, app_port),
        queue_proxy(app_port) as (qp, port),
        queue_proxy(app_port, general=True) as (_, gen),
    ):
        got = [await written_apart(p, writes, answered_by_app, app) for p in (port, gen)]
        assert len(handed_over) == 1  # the fast path's connection, once
        assert len(app.requests) == answered_by_app
        assert got[0] == got[1]
    assert qp.stats.concurrency == 0


async def test_a_response_over_two_reads_is_handed_over_with_its_exchange() -> None:
    async with app_and_qp() as (app, qp, port):
        app.parts = [OK[:20], OK[20:]]
        app.pause = 0.05
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(GET)
        assert await reader.readexactly(len(OK)) == OK
        assert _kinds(qp) == {"ServerConnection"}
        app.parts = [OK]
        writer.write(GET)  # the connection goes on, on the general path
        assert await reader.readexactly(len(OK)) == OK
        writer.close()
    assert qp.metrics.count(200) == 2 and qp.stats.concurrency == 0
    assert len(app.connections) == 1  # the app connection went back to the pool


@pytest.mark.parametrize(
    "field", [b"Keep-Alive: timeout=5", b"KEEP-ALIVE: timeout=5", b"tRaIlEr: X", b"TE: x"]
)
async def test_a_response_with_a_hop_by_hop_field_in_any_case_is_handed_over(
    field: bytes, handed_over: list[object]
) -> None:
    """The general path drops the field, whatever its letters' case, so such a response
    goes its way rather than through as it came."""
    async with app_and_qp() as (app, _, port):
        app.parts = [b"HTTP/1.1 200 OK\r\n" + field + b"\r\nContent-Length: 2\r\n\r\nhi"]
        got, _ = await exchange(port, GET)
    assert len(handed_over) == 1
    ((status, fields, body),) = got
    assert status == b"OK" and body == b"hi"
    assert field.split(b":")[0].lower() not in dict(fields)


async def test_a_reused_app_connection_closed_unanswered_is_retried_on_a_fresh_one() -> None:
    async with app_and_qp() as (app, qp, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(GET)
        assert await reader.readexactly(len(OK)) == OK
        app.drop = 1  # the app closes the kept-alive connection as the next request comes
        writer.write(GET)
        assert await reader.readexactly(len(OK)) == OK
        writer.close()
    assert len(app.connections) == 2 and len(app.requests) == 3
    assert qp.metrics.count(200) == 2


@pytest.mark.parametrize(
    "before",
    [
        pytest.param([OK[:20], OK[20:]], id="a response over two reads"),
        pytest.param([b"HTTP/1.1 204 No Content\r\n\r\n"], id="a 204"),
    ],
)
async def test_the_retry_holds_after_the_app_connection_served_the_general_path(
    before: list[bytes],
) -> None:
    """The app connection's last exchange was the general path's (it read a response
    then): a fast exchange whose app closes that connection unanswered has still read
    nothing, so it is retried (not cut short by what the last response left)."""
    async with app_and_qp() as (app, qp, port):
        app.parts, app.pause = before, 0.05
        got, _ = await exchange(port, GET)  # handed over: the general path reads it
        assert len(got) == 1
        app.parts = [OK]
        app.drop = 1
        got, _ = await exchange(port, GET)  # a new client: fast, on the same app connection
        assert [status for status, _, _ in got] == [b"OK"]
    assert len(app.connections) == 2 and qp.metrics.count(200) >= 1


async def test_an_app_that_is_not_there_is_a_502_naming_the_queue_proxy() -> None:
    async with scripted_app() as (_, app_port):
        pass  # closed: nothing listens there now
    async with queue_proxy(app_port) as (qp, port):
        got, _ = await exchange(port, GET)
    ((status, fields, _),) = got
    assert status == b"Bad Gateway"
    assert (b"x-zeroserve-error", b"queue-proxy; reason=app-unreachable") in fields
    assert qp.metrics.count(502) == 1 and qp.stats.concurrency == 0


async def test_a_timeout_is_a_504_and_gives_the_request_back() -> None:
    async with app_and_qp(REVISION_TIMEOUT_SECONDS="1") as (app, qp, port):
        app.hold = asyncio.Event()
        got, _ = await exchange(port, GET)
        app.hold.set()
    ((status, fields, _),) = got
    assert status == b"Gateway Timeout"
    assert (b"x-zeroserve-error", b"queue-proxy; reason=timeout") in fields
    assert qp.metrics.count(504) == 1 and qp.stats.concurrency == 0


async def test_a_client_gone_mid_exchange_is_a_499_and_the_app_connection_is_dropped() -> None:
    async with app_and_qp() as (app, qp, port):
        app.hold = asyncio.Event()
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(GET)
        while not app.requests:
            await asyncio.sleep(0.01)
        assert qp.stats.concurrency == 1
        writer.close()
        for _ in range(200):
            if qp.metrics.count(499):
                break
            await asyncio.sleep(0.01)
        assert qp.metrics.count(499) == 1 and qp.stats.concurrency == 0
        for _ in range(200):
            if app.connections[0].transport.is_closing():
                break
            await asyncio.sleep(0.01)
        assert app.connections[0].transport.is_closing()  # aborted: no one waits for it
        app.hold.set()


async def test_with_no_free_slot_the_request_queues_on_the_general_path() -> None:
    async with app_and_qp(CONTAINER_CONCURRENCY="1") as (app, qp, port):
        app.hold = asyncio.Event()
        first = asyncio.ensure_future(exchange(port, GET))
        while not app.requests:
            await asyncio.sleep(0.01)
        second = asyncio.ensure_future(exchange(port, GET))
        assert qp.breaker is not None
        for _ in range(500):  # (a loaded machine may take a while to connect)
            if qp.breaker.queued:
                break
            await asyncio.sleep(0.01)
        assert len(app.requests) == 1  # queued behind the breaker, not at the app
        assert qp.breaker.queued == 1
        assert _kinds(qp) == {"QueueProxyFastConnection", "ServerConnection"}
        app.hold.set()
        for task in (first, second):
            got, _ = await task
            assert [status for status, _, _ in got] == [b"OK"]
    assert qp.handler.max_at_app == 1 and qp.metrics.count(200) == 2


async def test_shutting_down_the_response_in_flight_says_close() -> None:
    async with app_and_qp() as (app, qp, port):
        app.hold = asyncio.Event()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(GET)
        while not app.requests:
            await asyncio.sleep(0.01)
        stopping = asyncio.ensure_future(qp.shutdown())
        await asyncio.sleep(0.05)
        app.hold.set()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert b"Connection: close" in head
        assert await reader.readexactly(5) == b"hello"
        assert await reader.read() == b""
        await stopping


async def test_with_request_logs_on_requests_take_the_general_path(
    handed_over: list[object], capfd: pytest.CaptureFixture[str]
) -> None:
    async with app_and_qp() as (_, qp, port):
        await exchange(port, GET)
        assert handed_over == []
        qp.observability = ObservabilityConfig(
            enable_request_log=True, request_log_template="logged {{.Request.Method}}"
        )
        got, _ = await exchange(port, GET)
        assert [status for status, _, _ in got] == [b"OK"]
        assert len(handed_over) == 1
        qp.observability = ObservabilityConfig()  # off again: the fast path again
        await exchange(port, GET)
        assert len(handed_over) == 1
    assert capfd.readouterr().out.count("logged GET") == 1


class _Client(FakeTransport):
    """A client connection in memory, so a test can act between two steps of the event
    loop: the protocol it is given on a hand-over is kept."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 40000))
        self.protocol: Any = None

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol


async def _opening(qp: QueueProxy) -> tuple[QueueProxyFastConnection, _Client]:
    """A fast connection whose request waits for a new app connection (none is idle)."""
    conn = QueueProxyFastConnection(qp.serving)
    client = _Client()
    conn.connection_made(client)  # type: ignore[arg-type]
    conn.data_received(GET)
    assert conn.waiting_for_upstream  # the connection to the app is being opened
    return conn, client


async def _settle(app: ScriptedApp) -> None:
    for _ in range(20):
        await asyncio.sleep(0.01)


async def test_a_client_gone_while_the_app_connection_opens_sends_the_app_nothing() -> None:
    async with app_and_qp() as (app, qp, _):
        conn, client = await _opening(qp)
        conn.connection_lost(None)  # before the connection to the app is open
        await _settle(app)
        assert isinstance(client.protocol, ServerConnection)
        assert app.requests == []  # as the general path: the opened connection is kept
        assert qp.metrics.count(499) == 1 and qp.stats.concurrency == 0
        assert qp.metrics.count(200) == 0


async def test_a_request_pipelined_while_the_app_connection_opens_is_answered_after() -> None:
    async with app_and_qp() as (app, qp, _):
        conn, client = await _opening(qp)
        conn.data_received(GET)  # the next request before the first one's connection
        await _settle(app)
        general = client.protocol
        general.connection_lost(None)  # the client goes (the server waits for it to)
        assert isinstance(general, ServerConnection)
        assert b"".join(client.written) == OK + OK  # both, in order, on the general path
        assert len(app.requests) == 2 and qp.metrics.count(200) == 2
        assert qp.stats.concurrency == 0


# -- the same bytes as the general path, for any request and response shape -----------

_FIELDS = {
    b"Host": [b"a.example", b"b.example"],
    b"HOST": [b"a.example"],
    b"K-Original-Host": [b"hello.default.example.com", b""],
    b"X-Forwarded-For": [b"203.0.113.7", b"203.0.113.7, 10.0.0.1", b"  198.51.100.1  "],
    b"x-forwarded-for": [b"192.0.2.9"],
    b"X-Forwarded-Host": [b"a.example"],
    b"X-Forwarded-Proto": [b"https"],
    b"Forwarded": [b"for=192.0.2.1"],
    b"K-Proxy-Request": [b"activator"],
    b"Knative-Serving-Revision": [b"hello-00001"],
    b"Connection": [b"keep-alive", b"close", b"X-Custom", b"Keep-Alive "],
    b"Keep-Alive": [b"timeout=5"],
    b"TE": [b"trailers"],
    b"Trailer": [b"X"],
    b"Proxy-Authorization": [b"Basic eA=="],
    b"User-Agent": [b"hey/0.0.1", b"kube-probe/1.31"],
    b"Content-Length": [b"0"],
    b"X-Custom": [b"kept", b"  spaced  "],
}
_request_headers = st.lists(
    st.sampled_from([(name, value) for name, values in _FIELDS.items() for value in values]),
    max_size=6,
)


@pytest.fixture(scope="module")
def both_paths() -> Any:
    """One scripted app with two queue-proxies in front of it, the fast path's and the
    general path's, running in a loop of their own for every example of the test below
    (starting them per example would make it take minutes)."""

    async def start(stack: contextlib.AsyncExitStack) -> tuple[ScriptedApp, int, int]:
        app, app_port = await stack.enter_async_context(scripted_app())
        _, fast = await stack.enter_async_context(queue_proxy(app_port))
        _, general = await stack.enter_async_context(queue_proxy(app_port, general=True))
        return app, fast, general

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
)
def test_any_exchange_is_the_same_on_either_path(
    both_paths: Any,
    method: bytes,
    version: bytes,
    headers: list[tuple[bytes, bytes]],
    parts: list[bytes],
) -> None:
    """Whatever the request and the response, the app receives the same request and the
    client the same response (and the same closing) whether the connection starts on
    the fast path or not: shapes the fast path takes and shapes it hands over alike."""
    loop, app, fast, general = both_paths
    on_fast, on_general = twice_through_each(
        loop, app, parts, method, version, headers, fast, general
    )
    assert on_fast == on_general
