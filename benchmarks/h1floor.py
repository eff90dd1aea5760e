"""The floor of an HTTP/1.1 hop in Python: a bare pass-through, measured.

``python -m benchmarks.h1floor --serve PORT APP_PORT`` runs the smallest HTTP/1.1
proxy the queue-proxy's design allows (one process, uvloop, an ``asyncio.Protocol``
per connection, ``httptools`` finding where each message ends, a pool of kept-alive
connections to the app): a request's bytes are copied to an idle app connection as
they were received, and the response's bytes back to the client as they arrive. No
head is rebuilt (no ``Forwarded`` headers, no hop-by-hop headers removed), no limits,
timeouts, statistics, metrics or probes, no pipelining and no request bodies in
flight before the head is complete. What it costs per request is what any Python hop
on this engine costs at least: the four system calls every proxy makes (read the
client, write the app, read the app, write the client, as nginx), the event loop's
wake-ups, and one parser callback per event.

The suite measures it as the hop target ``floor``, next to the queue-proxy and nginx
in the same run (``make bench``, part ``hops-go``; the README's "Each hop against
nginx"), so what the queue-proxy adds above it is its own work.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import httptools


class _App(asyncio.Protocol):
    """One kept-alive connection to the app; copies each response to its client."""

    def __init__(self, pool: list[_App]) -> None:
        self.pool = pool
        self.client: _Client | None = None
        self.transport: Any = None
        self.parser = httptools.HttpResponseParser(self)

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.client is not None:
            self.client.transport.write(data)
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        self.client = None
        self.pool.append(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.pool:
            self.pool.remove(self)
        if self.client is not None:
            self.client.transport.close()


class _Client(asyncio.Protocol):
    """One client connection: each complete request goes to an idle app connection."""

    def __init__(self, pool: list[_App], app_port: int) -> None:
        self.pool = pool
        self.app_port = app_port
        self.transport: Any = None
        self.parser = httptools.HttpRequestParser(self)
        self.received: list[bytes] = []
        self.connecting: asyncio.Future[None] | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received.append(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_complete(self) -> None:
        data = b"".join(self.received)
        self.received.clear()
        if self.pool:
            app = self.pool.pop()
            app.client = self
            app.transport.write(data)
        else:
            self.connecting = asyncio.ensure_future(self._connect_and_send(data))

    async def _connect_and_send(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, app = await loop.create_connection(
                lambda: _App(self.pool), "127.0.0.1", self.app_port
            )
        except OSError:
            self.transport.close()
            return
        app.client = self
        app.transport.write(data)


async def serve(port: int, app_port: int) -> None:
    loop = asyncio.get_running_loop()
    pool: list[_App] = []
    server = await loop.create_server(lambda: _Client(pool, app_port), "127.0.0.1", port)
    print("listening", flush=True)
    await server.serve_forever()


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.h1floor", description=__doc__)
    p.add_argument("--serve", nargs=2, type=int, metavar=("PORT", "APP_PORT"), required=True)
    args = p.parse_args()
    import uvloop

    uvloop.run(serve(*args.serve))
    return 0


if __name__ == "__main__":
    sys.exit(main())
