"""HTTP/2 towards an h2c app (zeroserve/http/h2upstream.py): whatever the client
spoke, the app is spoken to in HTTP/2; streams share a connection; bodies pass both
ways under flow control; trailers reach HTTP/2 clients and chunked HTTP/1.1 ones."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
from h2.events import DataReceived, StreamEnded, TrailersReceived

from tests.support.h2app import H2AppState, run_h2_app
from tests.support.raw import raw_exchange
from zeroserve.http.exchange import Request, Timeouts
from zeroserve.http.h2upstream import H2Pool
from zeroserve.http.server import Handler, Server, ServerConnection

from .test_http2 import RawClient


class Forward(Handler):
    hop = b"test-proxy"

    def __init__(self, pool: H2Pool) -> None:
        self.pool = pool

    def on_request(self, conn: ServerConnection, req: Request) -> None:
        conn.forward(self.pool)


@contextlib.asynccontextmanager
async def hop() -> AsyncIterator[tuple[int, H2AppState, H2Pool]]:
    async with run_h2_app() as (app, state):
        pool = H2Pool("127.0.0.1", app)
        server = Server(Forward(pool), timeouts=Timeouts(total=30))
        port = await server.listen("127.0.0.1", 0)
        try:
            yield port, state, pool
        finally:
            server.stop_listening()
            server.abort_all()
            await server.wait_closed()
            pool.close()


async def test_an_http11_client_reaches_the_app_over_http2() -> None:
    async with hop() as (port, state, _pool), httpx.AsyncClient() as client:
        r = await client.get(f"http://127.0.0.1:{port}/proto", headers={"x-a": "b"})
        assert (r.http_version, r.status_code, r.text) == ("HTTP/1.1", 200, "HTTP/2")
        seen = state.headers[-1]
        assert seen[b":authority"] == f"127.0.0.1:{port}".encode()
        assert seen[b"x-a"] == b"b" and b"127.0.0.1" in seen[b"x-forwarded-for"]
        assert b"connection" not in seen
        r = await client.post(f"http://127.0.0.1:{port}/sink", content=b"x" * 3_000_000)
        assert r.text == "3000000"


async def test_an_http2_client_too_and_streams_share_a_connection() -> None:
    async with (
        hop() as (port, state, _pool),
        httpx.AsyncClient(http1=False, http2=True, timeout=20) as client,
    ):
        state.release.clear()
        calls = [
            asyncio.create_task(client.get(f"http://127.0.0.1:{port}/hold")) for _ in range(10)
        ]
        for _ in range(100):
            if state.in_flight == 10:
                break
            await asyncio.sleep(0.05)
        assert state.in_flight == 10
        state.release.set()
        assert {(await c).text for c in calls} == {"released"}
        assert state.connections == 1  # ten streams, one connection to the app
        body = bytes(range(256)) * 16_000
        r = await client.post(f"http://127.0.0.1:{port}/echo", content=body)
        assert r.content == body
        r = await client.get(f"http://127.0.0.1:{port}/download", params={"size": 5_000_000})
        assert len(r.content) == 5_000_000


async def test_trailers_reach_http2_and_chunked_http11_clients() -> None:
    async with hop() as (port, _state, _pool):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = RawClient(reader, writer)
        client.h2.initiate_connection()
        client.flush()
        sid = client.request("/trailers")
        await client.read_until(lambda: client.of(StreamEnded, sid))
        assert b"".join(e.data for e in client.of(DataReceived, sid)) == b"with trailers"
        [trailers] = client.of(TrailersReceived, sid)
        assert dict(trailers.headers) == {b"grpc-status": b"0", b"grpc-message": b"ok"}
        writer.close()
        reply = await raw_exchange(
            port, b"GET /trailers HTTP/1.1\r\nHost: x\r\nTE: trailers\r\nConnection: close\r\n\r\n"
        )
        assert b"Transfer-Encoding: chunked" in reply
        assert reply.endswith(b"0\r\ngrpc-status: 0\r\ngrpc-message: ok\r\n\r\n")


async def test_an_app_that_is_not_there_is_a_502_and_a_later_one_is_used() -> None:
    async with run_h2_app() as (app, _state):
        pass  # the port is closed now
    pool = H2Pool("127.0.0.1", app)
    server = Server(Forward(pool), timeouts=Timeouts(total=30))
    port = await server.listen("127.0.0.1", 0)
    try:
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{port}/hello")
            assert r.status_code == 502
            assert "upstream-unreachable" in r.headers["x-zeroserve-error"]
    finally:
        server.stop_listening()
        server.abort_all()
        await server.wait_closed()
        pool.close()


async def test_streams_over_the_apps_limit_wait_for_a_free_one() -> None:
    async with run_h2_app(max_streams=2) as (app, state):
        pool = H2Pool("127.0.0.1", app, max_connections=1)
        server = Server(Forward(pool), timeouts=Timeouts(total=30))
        port = await server.listen("127.0.0.1", 0)
        try:
            state.release.clear()
            async with httpx.AsyncClient(http1=False, http2=True, timeout=20) as client:
                calls = [
                    asyncio.create_task(client.get(f"http://127.0.0.1:{port}/hold"))
                    for _ in range(6)
                ]
                for _ in range(100):
                    if state.in_flight == 2:
                        break
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.2)
                assert state.in_flight == 2  # the app's limit, one connection
                state.release.set()
                assert [(await c).text for c in calls] == ["released"] * 6
            assert state.max_in_flight == 2 and state.connections == 1
        finally:
            server.stop_listening()
            server.abort_all()
            await server.wait_closed()
            pool.close()
