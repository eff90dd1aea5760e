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

``--work`` runs **the work floor** (target ``workfloor``): the same pass-through plus
the work no queue-proxy request can skip, each done the cheapest way Python allows
(``_WorkClient``: health checks told apart, the head rebuilt with Knative's header
rules, the autoscaler's statistics and the latency metric kept). Where it stands against
nginx tells whether the queue-proxy's goal is within reach of Python at all; what the
queue-proxy costs above it is the price of its own design (a general exchange object,
a callback per header, a rebuilt response head, timeouts armed per request).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import httptools

from zeroserve.knmetrics import CodeHistograms
from zeroserve.stats import RequestStats


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
        self.send(data)

    def send(self, data: bytes) -> None:
        """``data`` to an idle app connection, or to a new one."""
        if self.pool:
            app = self.pool.pop()
            app.client = self
            app.transport.write(data)
        else:
            self.connecting = asyncio.ensure_future(self._connect_and_send(data))

    def new_app(self) -> _App:
        return _App(self.pool)

    async def _connect_and_send(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, app = await loop.create_connection(self.new_app, "127.0.0.1", self.app_port)
        except OSError:
            self.transport.close()
            return
        app.client = self
        app.transport.write(data)


# -- the work floor: the floor plus what every queue-proxy request must do -------------

# Request headers a queue-proxy never forwards: hop-by-hop ones (RFC 9110 section 7.6.1)
# and Knative's routing headers (docs/queue-proxy.md); Host is rewritten.
_DROP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"k-original-host",
        b"knative-serving-revision",
        b"knative-serving-namespace",
    }
)
_PROBE_AGENTS = (b"kube-probe/", b"Knative-Activator-Probe", b"Knative-Autoscaling-Probe")


class _Work:
    """What the queue-proxy keeps per process: its statistics and its latency metric."""

    def __init__(self) -> None:
        self.stats = RequestStats(time.monotonic())
        self.latency = CodeHistograms()
        self.last_request = 0.0


class _WorkApp(_App):
    """An app connection that also ends the exchange: status, stats, latency."""

    def __init__(self, pool: list[_App]) -> None:
        super().__init__(pool)
        self.status = 0

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_message_complete(self) -> None:
        client = self.client
        if isinstance(client, _WorkClient):
            client.finish(self.status)
        self.client = None
        self.pool.append(self)


class _WorkClient(_Client):
    """The floor plus the work no queue-proxy request can skip, each the cheapest way in
    Python: health checks told apart by their headers, the head rebuilt without the
    hop-by-hop and routing headers, with ``Host`` from ``K-Original-Host`` and the
    client's address appended to ``X-Forwarded-For``; the request counted in and out of
    the time-weighted concurrency the autoscaler scrapes (``zeroserve.stats``), the drain
    clock restarted, and its latency observed per status code (``zeroserve.knmetrics``).
    No breaker (containerConcurrency 0, as the benchmark's queue-proxy), no timeouts,
    no request log or tracing (both off by default)."""

    def __init__(self, pool: list[_App], app_port: int, work: _Work) -> None:
        super().__init__(pool, app_port)
        self.work = work
        self.client_ip = b""
        self.started = 0.0
        self.proxied = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.client_ip = str(peer[0]).encode() if peer else b""

    def on_message_complete(self) -> None:
        data = b"".join(self.received)
        self.received.clear()
        end = data.find(b"\r\n\r\n")
        lines = data[:end].split(b"\r\n")
        out = [lines[0], b"\r\n"]
        host = forwarded_for = None
        probe = proxied = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            lname = name.lower()
            if lname in _DROP:
                if lname == b"host":
                    host = host or value.strip()
                elif lname == b"k-original-host":
                    host = value.strip()
                continue
            if lname[:2] == b"k-":
                if lname == b"k-network-probe" or lname == b"k-kubelet-probe":
                    probe = True
                elif lname == b"k-proxy-request":
                    proxied = True
            elif lname == b"user-agent":
                probe = probe or value.strip().startswith(_PROBE_AGENTS)
            elif lname == b"x-forwarded-for":
                forwarded_for = value.strip()
                continue
            out.append(line)
            out.append(b"\r\n")
        if probe:
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            return
        ip = self.client_ip
        out.append(b"Host: " + (host or b"") + b"\r\nX-Forwarded-For: ")
        out.append((forwarded_for + b", " + ip if forwarded_for else ip) + b"\r\n\r\n")
        now = time.monotonic()
        work = self.work
        work.last_request = self.started = now
        self.proxied = proxied
        work.stats.request_in(now, proxied)
        self.send(b"".join(out))

    def finish(self, status: int) -> None:
        now = time.monotonic()
        work = self.work
        work.stats.request_out(now, self.proxied)
        work.latency.observe(status, now - self.started)

    def new_app(self) -> _App:
        return _WorkApp(self.pool)


async def serve(port: int, app_port: int, work: bool = False) -> None:
    loop = asyncio.get_running_loop()
    pool: list[_App] = []
    if work:
        shared = _Work()
        factory: Any = lambda: _WorkClient(pool, app_port, shared)  # noqa: E731
    else:
        factory = lambda: _Client(pool, app_port)  # noqa: E731
    server = await loop.create_server(factory, "127.0.0.1", port)
    print("listening", flush=True)
    await server.serve_forever()


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.h1floor", description=__doc__)
    p.add_argument("--serve", nargs=2, type=int, metavar=("PORT", "APP_PORT"), required=True)
    p.add_argument(
        "--work",
        action="store_true",
        help="the work floor: also do what every queue-proxy request must (see _WorkClient)",
    )
    args = p.parse_args()
    import uvloop

    port, app_port = args.serve
    uvloop.run(serve(port, app_port, work=args.work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
