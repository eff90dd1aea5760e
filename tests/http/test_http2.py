"""HTTP/2 cleartext on the engine's serving port (zeroserve/http/http2.py): prior
knowledge and ``Upgrade: h2c`` next to HTTP/1.1, every stream a request of its own,
flow control both ways, resets, local answers and GOAWAY on shutdown; real sockets,
in-process, an aiohttp app upstream."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import DataReceived, ResponseReceived, StreamEnded, StreamReset
from h2.settings import SettingCodes, Settings

from tests.support.apps import AppState, run_app
from tests.support.raw import raw_exchange
from zeroserve.http.exchange import Limits, Request, Timeouts
from zeroserve.http.headers import grpc_error_headers
from zeroserve.http.server import Handler, Server, ServerConnection
from zeroserve.http.upstream import UpstreamPool


class Forward(Handler):
    hop = b"test-proxy"

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.finished: list[tuple[bytes, int]] = []

    def on_request(self, conn: ServerConnection, req: Request) -> None:
        if req.target == b"/local":
            conn.fail(503, b"test-local", b"answered by the hop")
            return
        conn.forward(self.pool)

    def on_finish(self, conn: ServerConnection, req: Request) -> None:
        self.finished.append((req.target, req.status))


@contextlib.asynccontextmanager
async def hop(limits: Limits = Limits()) -> AsyncIterator[tuple[int, AppState, Server, Forward]]:
    async with run_app() as (app, state):
        pool = UpstreamPool("127.0.0.1", app, max_idle=50)
        handler = Forward(pool)
        server = Server(handler, timeouts=Timeouts(total=30), limits=limits)
        port = await server.listen("127.0.0.1", 0)
        try:
            yield port, state, server, handler
        finally:
            server.stop_listening()
            server.abort_all()
            await server.wait_closed()
            pool.close()


def h2_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(http1=False, http2=True, timeout=20)


async def test_prior_knowledge_and_http11_share_the_port() -> None:
    async with hop() as (port, _state, server, handler):
        async with h2_client() as client:
            r = await client.get(f"http://127.0.0.1:{port}/hello")
            assert (r.http_version, r.status_code, r.text) == ("HTTP/2", 200, "hello")
            r = await client.get(f"http://127.0.0.1:{port}/headers", headers={"x-a": "b"})
            seen = r.json()
            # the app gets HTTP/1.1 with the client's authority as Host
            assert seen["host"] == f"127.0.0.1:{port}"
            assert seen["headers"]["x-a"] == "b"
            assert "127.0.0.1" in seen["headers"]["x-forwarded-for"]
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{port}/hello")
            assert (r.http_version, r.text) == ("HTTP/1.1", "hello")
        assert (b"/hello", 200) in handler.finished
        assert server.in_flight == 0


async def test_bodies_of_any_size_pass_both_ways() -> None:
    body = bytes(range(256)) * 20_000  # 5 MB, far over every window
    async with hop() as (port, _state, _server, _handler), h2_client() as client:
        r = await client.post(f"http://127.0.0.1:{port}/sink", content=body)
        assert r.json() == {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}

        async def chunks() -> AsyncIterator[bytes]:
            for i in range(0, len(body), 100_000):
                yield body[i : i + 100_000]

        # no Content-Length: chunked towards the app
        r = await client.post(f"http://127.0.0.1:{port}/echo", content=chunks())
        assert r.content == body
        r = await client.get(f"http://127.0.0.1:{port}/download", params={"size": 6_000_000})
        assert len(r.content) == 6_000_000


async def test_every_stream_is_a_request_of_its_own() -> None:
    async with hop() as (port, state, _server, handler), h2_client() as client:
        state.release.clear()
        calls = [
            asyncio.create_task(client.get(f"http://127.0.0.1:{port}/hold")) for _ in range(10)
        ]
        for _ in range(100):
            if state.in_flight == 10:
                break
            await asyncio.sleep(0.05)
        # one client connection, ten requests at the app at once (ten upstream connections)
        assert state.in_flight == 10
        state.release.set()
        replies = await asyncio.gather(*calls)
        assert {r.text for r in replies} == {"released"}
        assert len(state.peers) >= 10
        assert handler.finished.count((b"/hold", 200)) == 10


async def test_a_local_answer_is_an_http2_response_with_the_attribution() -> None:
    async with hop() as (port, state, _server, _handler), h2_client() as client:
        r = await client.get(f"http://127.0.0.1:{port}/local")
        assert r.status_code == 503
        assert r.headers["x-zeroserve-error"] == "test-proxy; reason=test-local"
        assert r.text == "answered by the hop\n"
        assert state.requests == 0
        # HEAD and no-body statuses end with the headers
        r = await client.head(f"http://127.0.0.1:{port}/hello")
        assert r.status_code == 200 and r.content == b""
        r = await client.get(f"http://127.0.0.1:{port}/status/204")
        assert r.status_code == 204


class RawClient:
    """An HTTP/2 client on a socket, driven by hand (h2 as the client)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.h2 = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        self.events: list[Any] = []
        self.goaway: int | None = None  # the last stream id of a GOAWAY received
        self._buffer = b""

    def _frames(self, data: bytes) -> bytes:
        """``data`` without GOAWAY frames, which are noted: h2 as a client would refuse
        the rest of the streams in flight after one (real clients finish them)."""
        self._buffer += data
        kept = b""
        while len(self._buffer) >= 9:
            length = int.from_bytes(self._buffer[:3], "big")
            if len(self._buffer) < 9 + length:
                break
            frame, self._buffer = self._buffer[: 9 + length], self._buffer[9 + length :]
            if frame[3] == 0x7:
                self.goaway = int.from_bytes(frame[9:13], "big") & 0x7FFFFFFF
            else:
                kept += frame
        return kept

    def flush(self) -> None:
        self.writer.write(self.h2.data_to_send())

    async def read_until(self, done: Any, within: float = 10) -> None:
        async with asyncio.timeout(within):
            while not done():
                data = await self.reader.read(65536)
                if not data:
                    return
                self.events += self.h2.receive_data(self._frames(data))
                self.flush()

    def request(self, path: str, *, end: bool = True, authority: str = "x") -> int:
        sid = self.h2.get_next_available_stream_id()
        headers = [
            (":method", "GET"),
            (":path", path),
            (":scheme", "http"),
            (":authority", authority),
        ]
        self.h2.send_headers(sid, headers, end_stream=end)
        self.flush()
        return sid

    def of(self, kind: type, sid: int) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind) and e.stream_id == sid]


async def test_upgrade_h2c_answers_101_and_serves_the_request_as_stream_1() -> None:
    async with hop() as (port, _state, _server, _handler):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = RawClient(reader, writer)
        settings = client.h2.initiate_upgrade_connection()
        writer.write(
            b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: " + settings + b"\r\n\r\n"
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        assert b"Upgrade: h2c" in head
        client.flush()  # the client's preface and SETTINGS
        await client.read_until(lambda: client.of(StreamEnded, 1))
        [response] = client.of(ResponseReceived, 1)
        assert dict(response.headers)[b":status"] == b"200"
        assert b"".join(e.data for e in client.of(DataReceived, 1)) == b"hello"
        # and the connection goes on as HTTP/2
        sid = client.request("/hello")
        await client.read_until(lambda: client.of(StreamEnded, sid))
        assert b"".join(e.data for e in client.of(DataReceived, sid)) == b"hello"
        writer.close()


async def test_a_reset_stream_ends_its_exchange_only() -> None:
    async with hop() as (port, state, server, handler):
        state.release.clear()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = RawClient(reader, writer)
        client.h2.initiate_connection()
        client.flush()
        held = client.request("/hold")
        for _ in range(100):
            if state.in_flight:
                break
            await asyncio.sleep(0.05)
        assert state.in_flight == 1 and server.in_flight == 1
        client.h2.reset_stream(held)
        client.flush()
        other = client.request("/hello")
        await client.read_until(lambda: client.of(StreamEnded, other))
        assert b"".join(e.data for e in client.of(DataReceived, other)) == b"hello"
        assert (b"/hold", 499) in handler.finished  # the client went away
        assert server.in_flight == 0
        writer.close()


async def test_shutdown_sends_goaway_and_lets_streams_in_flight_finish() -> None:
    async with hop() as (port, state, server, _handler):
        state.release.clear()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = RawClient(reader, writer)
        client.h2.initiate_connection()
        client.flush()
        held = client.request("/hold")
        for _ in range(100):
            if state.in_flight:
                break
            await asyncio.sleep(0.05)
        server.begin_shutdown()
        await client.read_until(lambda: client.goaway is not None)
        assert client.goaway == held
        state.release.set()
        await client.read_until(lambda: client.of(StreamEnded, held))
        assert b"".join(e.data for e in client.of(DataReceived, held)) == b"released"
        assert await asyncio.wait_for(reader.read(), 5) == b""  # then it closes
        assert not client.of(StreamReset, held)


async def test_garbage_after_the_preface_closes_that_connection_only() -> None:
    async with hop() as (port, _state, server, _handler):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = RawClient(reader, writer)
        client.h2.initiate_connection()
        client.flush()
        # a DATA frame on stream 0: a connection error (RFC 9113 section 6.1)
        writer.write(b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x")
        async with asyncio.timeout(5):
            while await reader.read(65536):
                pass
        assert server.protocol_errors.get(400) == 1
        async with h2_client() as client:
            assert (await client.get(f"http://127.0.0.1:{port}/hello")).text == "hello"


async def test_a_platform_error_to_a_grpc_request_is_grpc_shaped() -> None:
    async with hop() as (port, _state, _server, handler), h2_client() as client:
        r = await client.post(
            f"http://127.0.0.1:{port}/local",
            content=b"\x00\x00\x00\x00\x00",
            headers={"content-type": "application/grpc", "te": "trailers"},
        )
        # trailers-only: HTTP 200, the gRPC status in the headers, no body
        assert r.status_code == 200 and r.content == b""
        assert r.headers["content-type"] == "application/grpc"
        assert r.headers["grpc-status"] == "14"  # UNAVAILABLE for a 503
        assert r.headers["grpc-message"] == "answered by the hop"
        assert r.headers["x-zeroserve-error"] == "test-proxy; reason=test-local"
        assert (b"/local", 503) in handler.finished  # what the hop counts
    async with hop() as (port, _state, _server, _handler):
        reply = await raw_exchange(
            port,
            b"POST /local HTTP/1.1\r\nHost: x\r\nContent-Type: application/grpc+proto\r\n"
            b"Content-Length: 0\r\nConnection: close\r\n\r\n",
        )
        assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"grpc-status: 14\r\n" in reply


def test_grpc_codes_and_messages() -> None:
    assert grpc_error_headers(504, b"request timeout") == (
        b"grpc-status: 4\r\ngrpc-message: request timeout\r\n"
    )
    assert grpc_error_headers(404, b"no route for 'x'\n").startswith(b"grpc-status: 12\r\n")
    assert grpc_error_headers(502, b"100% down\r\n") == (
        b"grpc-status: 14\r\ngrpc-message: 100%25 down\r\n"
    )
    assert grpc_error_headers(418, b"?").startswith(b"grpc-status: 2\r\n")


async def _flood(port: int, frames: Callable[[H2Connection, int], None], count: int) -> bytes:
    """Send ``count`` rounds of ``frames`` on one connection; what the hop answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    writer.write(client.data_to_send())
    for i in range(count):
        frames(client, i)
        writer.write(client.data_to_send())
        if i % 100 == 0:
            await writer.drain()
    received = b""
    with contextlib.suppress(ConnectionError):
        async with asyncio.timeout(10):
            while chunk := await reader.read(65536):
                received += chunk
    writer.close()
    return received


def _goaway_code(received: bytes) -> int | None:
    i = 0
    while i + 9 <= len(received):
        length = int.from_bytes(received[i : i + 3], "big")
        if received[i + 3] == 0x7:
            return int.from_bytes(received[i + 13 : i + 17], "big")
        i += 9 + length
    return None


async def test_rapid_reset_and_ping_floods_close_that_connection_only() -> None:
    async with hop() as (port, _state, server, _handler):

        def rapid_reset(client: H2Connection, i: int) -> None:
            sid = client.get_next_available_stream_id()
            client.send_headers(
                sid,
                [(":method", "GET"), (":path", "/local"), (":scheme", "http"), (":authority", "x")],
            )
            client.reset_stream(sid)

        received = await _flood(port, rapid_reset, 3000)
        assert _goaway_code(received) == 0xB  # ENHANCE_YOUR_CALM
        assert server.protocol_errors.get(429) == 1

        received = await _flood(port, lambda client, i: client.ping(b"%08d" % i), 3000)
        assert _goaway_code(received) == 0xB
        assert server.protocol_errors.get(429) == 2
        # nothing is left behind, and other clients are served
        assert server.in_flight == 0
        async with h2_client() as client:
            assert (await client.get(f"http://127.0.0.1:{port}/hello")).text == "hello"


async def test_split_cookies_reach_an_http11_app_as_one_line() -> None:
    async with hop() as (port, _state, _server, _handler):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = RawClient(reader, writer)
        client.h2.initiate_connection()
        sid = client.h2.get_next_available_stream_id()
        client.h2.send_headers(
            sid,
            [
                (":method", "GET"),
                (":path", "/headers"),
                (":scheme", "http"),
                (":authority", "x"),
                ("cookie", "a=1"),
                ("cookie", "b=2"),
            ],
            end_stream=True,
        )
        client.flush()
        await client.read_until(lambda: client.of(StreamEnded, sid))
        body = b"".join(e.data for e in client.of(DataReceived, sid))
        assert json.loads(body)["headers"]["cookie"] == "a=1; b=2"
        writer.close()


async def test_a_client_that_does_not_read_holds_the_upstream_back() -> None:
    """Response backpressure: with the client's window shut, the stream holds at most
    about _HIGH_WATER bytes and the upstream stops being read; opening the window lets
    the whole body through."""
    size = 30_000_000
    async with hop() as (port, _state, server, _handler):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = RawClient(reader, writer)
        client.h2.local_settings = Settings(
            client=True, initial_values={SettingCodes.INITIAL_WINDOW_SIZE: 65_535}
        )
        client.h2.initiate_connection()
        client.flush()
        sid = client.request(f"/download?size={size}")
        got = 0
        # read what the window lets through, acknowledging nothing
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.5):
                while True:
                    data = await reader.read(65536)
                    for e in client.h2.receive_data(data):
                        if isinstance(e, DataReceived):
                            got += len(e.data)
        [stream] = list(server.active)
        assert got <= 65_535
        assert len(stream.pending) <= 2 * 256 * 1024  # held, not the whole body
        assert stream.reading_paused
        # the client reads on (and acknowledges what it had): everything arrives
        total = got
        if got:
            client.h2.acknowledge_received_data(got, sid)
            client.flush()
        async with asyncio.timeout(30):
            while not client.of(StreamEnded, sid):
                data = await reader.read(1 << 20)
                assert data
                for e in client.h2.receive_data(data):
                    client.events.append(e)
                    if isinstance(e, DataReceived):
                        total += len(e.data)
                        client.h2.acknowledge_received_data(e.flow_controlled_length, sid)
                client.flush()
        assert total == size
        writer.close()
