"""A user app for tests: real aiohttp server on 127.0.0.1 with endpoints that
exercise every proxy path, and counters that let tests see what reached it."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web


@dataclass
class AppState:
    """What the app saw."""

    in_flight: int = 0
    max_in_flight: int = 0
    requests: int = 0
    paths: list[str] = field(default_factory=list)
    peers: set[tuple[str, int]] = field(default_factory=set)  # client (host, port) = connections
    last_headers: dict[str, str] = field(default_factory=dict)
    release: asyncio.Event = field(default_factory=asyncio.Event)


def make_app(state: AppState) -> web.Application:
    @web.middleware
    async def track(request: web.Request, handler):  # type: ignore[no-untyped-def]
        state.requests += 1
        state.paths.append(request.path_qs)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            state.peers.add((peer[0], peer[1]))
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            return await handler(request)
        finally:
            state.in_flight -= 1

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    async def headers(request: web.Request) -> web.Response:
        state.last_headers = dict(request.headers)
        body = {
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "host": request.host,
            "method": request.method,
            "path": request.path_qs,
        }
        return web.json_response(body)

    async def sleep(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("s", "1")))
        return web.Response(text="slept")

    async def hold(request: web.Request) -> web.Response:
        await state.release.wait()
        return web.Response(text="released")

    async def sink(request: web.Request) -> web.Response:
        h = hashlib.sha256()
        n = 0
        async for chunk in request.content.iter_chunked(1 << 16):
            h.update(chunk)
            n += len(chunk)
        return web.json_response({"bytes": n, "sha256": h.hexdigest()})

    async def echo(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        async for chunk in request.content.iter_chunked(1 << 16):
            await resp.write(chunk)
        await resp.write_eof()
        return resp

    async def download(request: web.Request) -> web.StreamResponse:
        size = int(request.query["size"])
        resp = web.StreamResponse()
        if request.query.get("chunked"):
            resp.enable_chunked_encoding()
        else:
            resp.content_length = size
        await resp.prepare(request)
        block = b"z" * (1 << 16)
        left = size
        while left > 0:
            piece = block if left >= len(block) else block[:left]
            await resp.write(piece)
            left -= len(piece)
        await resp.write_eof()
        return resp

    async def sse(request: web.Request) -> web.StreamResponse:
        n = int(request.query.get("n", "3"))
        interval = float(request.query.get("interval", "0.5"))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(n):
            await resp.write(f"data: event {i}\n\n".encode())
            if i < n - 1:
                await asyncio.sleep(interval)
        await resp.write_eof()
        return resp

    async def stall(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(b"first bytes\n")
        await asyncio.sleep(float(request.query.get("s", "30")))
        await resp.write(b"late\n")
        return resp

    async def status(request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        return web.Response(status=code, text=None if code in (204, 304) else f"status {code}")

    async def ws(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        async for msg in sock:
            if msg.type == WSMsgType.TEXT:
                await sock.send_str("echo: " + msg.data)
            elif msg.type == WSMsgType.BINARY:
                await sock.send_bytes(msg.data)
        return sock

    app = web.Application(middlewares=[track], client_max_size=1 << 40)
    app.router.add_route("*", "/hello", hello)
    app.router.add_route("*", "/headers", headers)
    app.router.add_get("/sleep", sleep)
    app.router.add_get("/hold", hold)
    app.router.add_post("/sink", sink)
    app.router.add_post("/echo", echo)
    app.router.add_get("/download", download)
    app.router.add_get("/sse", sse)
    app.router.add_get("/stall", stall)
    app.router.add_route("*", "/status/{code}", status)
    app.router.add_get("/ws", ws)
    return app


@asynccontextmanager
async def run_app(keepalive_timeout: float = 75.0) -> AsyncIterator[tuple[int, AppState]]:
    """Serve the test app on a free loopback port; yields (port, state)."""
    state = AppState()
    # handler_cancellation: a handler whose client (the proxy) went away is
    # cancelled, as the tests expect of an app behind a timeout.
    runner = web.AppRunner(
        make_app(state),
        access_log=None,
        keepalive_timeout=keepalive_timeout,
        shutdown_timeout=0.5,
        handler_cancellation=True,
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield port, state
    finally:
        state.release.set()
        await runner.cleanup()


def parse_json(body: bytes) -> dict:  # type: ignore[type-arg]
    return json.loads(body)  # type: ignore[no-any-return]
