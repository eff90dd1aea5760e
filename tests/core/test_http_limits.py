"""Limits of the shared proxy engine against hostile clients, in-process with small limits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx

from tests.support.apps import run_app
from tests.support.raw import raw_exchange
from zeroserve.http.exchange import Limits, Request, Timeouts
from zeroserve.http.server import Handler, Server, ServerConnection
from zeroserve.http.upstream import UpstreamPool


class Forward(Handler):
    hop = b"test-proxy"

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool

    def on_request(self, conn: ServerConnection, req: Request) -> None:
        conn.forward(self.pool)


@contextlib.asynccontextmanager
async def proxy(app_port: int, limits: Limits) -> AsyncIterator[int]:
    pool = UpstreamPool("127.0.0.1", app_port, max_idle=10)
    server = Server(Forward(pool), timeouts=Timeouts(total=30), limits=limits)
    port = await server.listen("127.0.0.1", 0)
    try:
        yield port
    finally:
        server.stop_listening()
        server.abort_all()
        await server.wait_closed()
        pool.close()


async def test_declared_body_over_the_limit_is_refused_before_it_is_read() -> None:
    async with run_app() as (app, state), proxy(app, Limits(max_body_bytes=1000)) as port:
        reply = await raw_exchange(
            port, b"POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"
        )
        assert reply.startswith(b"HTTP/1.1 413 ")
        assert b"X-Zeroserve-Error: test-proxy; reason=body-too-large" in reply
        assert state.requests == 0
        async with httpx.AsyncClient() as client:
            r = await client.post(f"http://127.0.0.1:{port}/sink", content=b"x" * 1000)
        assert r.json()["bytes"] == 1000  # at the limit is fine


async def test_chunked_body_growing_over_the_limit_gets_413() -> None:
    async with run_app() as (app, _state), proxy(app, Limits(max_body_bytes=2000)) as port:
        chunk = b"1f4\r\n" + b"x" * 500 + b"\r\n"
        reply = await raw_exchange(
            port,
            b"POST /sink HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 6,
        )
        assert reply.startswith(b"HTTP/1.1 413 ")
        assert b"Connection: close" in reply


async def test_body_trickled_too_slowly_gets_408_and_others_are_served() -> None:
    async with run_app() as (app, _), proxy(app, Limits(body_timeout=0.5)) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        async with httpx.AsyncClient() as client:
            for _ in range(5):  # meanwhile others are served
                assert (await client.get(f"http://127.0.0.1:{port}/hello")).status_code == 200
        reply = await asyncio.wait_for(reader.read(4096), 5)
        writer.close()
        assert reply.startswith(b"HTTP/1.1 408 ")
        assert b"reason=request-timeout" in reply


async def test_head_trickled_too_slowly_gets_408() -> None:
    async with run_app() as (app, _), proxy(app, Limits(header_timeout=0.5)) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /hello HTTP/1.1\r\nHost: x\r\n")
        for _ in range(3):
            await asyncio.sleep(0.3)
            writer.write(b"X-Slow: 1\r\n")
        reply = await asyncio.wait_for(reader.read(4096), 5)
        writer.close()
        assert reply.startswith(b"HTTP/1.1 408 ")


async def test_idle_keepalive_connection_is_closed() -> None:
    async with run_app() as (app, _), proxy(app, Limits(keepalive_timeout=0.5)) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(reader.readuntil(b"hello"), 5)
        assert await asyncio.wait_for(reader.read(100), 5) == b""  # closed by the proxy
        writer.close()
