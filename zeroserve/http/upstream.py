"""Upstream side of the proxy hop: keep-alive connections to one target and their pool.

An ``UpstreamConnection`` parses one response at a time (httptools) and hands
each piece straight to the client connection it is attached to; it never
buffers a body. The ``UpstreamPool`` keeps idle connections in a LIFO stack
(the most recently used one is the least likely to have been closed by the
server) and opens new ones on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Final, Protocol, cast

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

log = logging.getLogger(__name__)

_monotonic: Final = time.monotonic

# Response headers the client-side head is built without (framing is redone
# for the client) -- RFC 9110 hop-by-hop plus the framing headers.
_RESP_DROP: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)


class Downstream(Protocol):
    """What the upstream side needs of the client connection it serves (in this package,
    ``server.ServerConnection``). Declared here, where it is used, so that this module
    does not import the server: the server drives the pool, and the pool reports back
    through these calls (docs/http.md, "The request path")."""

    tunnel: bool
    """The exchange became a two-way byte tunnel (after a 101): bytes pass as they are."""
    batch: list[bytes] | None
    """Writes to the client collected while one read from the upstream is handled, then
    written with one ``writelines``."""

    @property
    def current(self) -> object | None:
        """The request being served (compared by identity: has it changed meanwhile?)."""

    @property
    def waiting_for_upstream(self) -> bool:
        """The current request waits for a connection from the pool."""

    def upstream_ready(self, up: UpstreamConnection) -> None:
        """``up`` is connected and attached: send the request head and body."""

    def upstream_connect_failed(self, error: Exception) -> None:
        """No connection could be opened; nothing reached the upstream."""

    def upstream_head(self, up: UpstreamConnection, status: int, lines: list[bytes]) -> None:
        """The response head arrived (``lines``: its header lines, hop-by-hop ones out)."""

    def upstream_body(self, data: bytes) -> None:
        """Response body bytes (de-chunked)."""

    def upstream_trailers(self, up: UpstreamConnection, lines: list[bytes]) -> None:
        """The response's trailer fields (from an HTTP/2 upstream), before ``upstream_done``."""

    def upstream_done(self, up: UpstreamConnection, keep_alive: bool) -> None:
        """The response is complete; ``keep_alive``: ``up`` may serve another request."""

    def upstream_lost(self, up: UpstreamConnection, exc: Exception | None) -> None:
        """``up`` closed before the response was complete."""

    def upstream_failed(self, up: UpstreamConnection, message: str, after_bytes: bool) -> None:
        """The upstream broke the protocol (``after_bytes``: the client got some already)."""

    def upstream_upgraded(self, up: UpstreamConnection, rest: bytes) -> None:
        """The upstream switched protocols; ``rest`` is what followed its 101 head."""

    def tunnel_from_upstream(self, data: bytes) -> None:
        """Bytes from the upstream side of a tunnel."""

    def tunnel_upstream_eof(self) -> bool:
        """The upstream half-closed a tunnel; returns whether to keep its transport open."""

    def upstream_write_paused(self, paused: bool) -> None:
        """The upstream's write buffer filled (True) or drained (False): stop or resume
        reading the client."""

    def transport_write_lines(self, lines: list[bytes]) -> None:
        """Write ``lines`` to the client at once."""


class Pool(Protocol):
    """Where a hop forwards: :class:`UpstreamPool` (HTTP/1.1) or ``h2upstream.H2Pool``."""

    authority: bytes

    def acquire(self, client: Downstream, head_request: bool) -> None: ...

    def connect(self, client: Downstream, head_request: bool) -> None: ...

    def release(self, up: Any) -> None: ...

    def sweep(self, now: float) -> None: ...

    def close(self) -> None: ...


def _flush(client: Downstream, batch: list[bytes]) -> None:
    """Write what one read from the upstream produced for ``client``, unless a response
    that ended in that read already flushed it (the batch is then no longer the
    client's). A function of its own: the caller set ``client.batch = batch`` before the
    parser ran, and the parser's callbacks may have changed it since; a type checker
    that narrows ``client.batch`` over the call would take the comparison for always
    true (mypyc compiles that narrowing into a runtime check: docs/http.md, "Compiling
    the hot path")."""
    if client.batch is batch:
        client.batch = None
        if batch:
            client.transport_write_lines(batch)


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection to the upstream; serves one exchange at a time."""

    # What an HTTP/2 exchange (``h2upstream.H2Exchange``) also tells the client side;
    # an HTTP/1.1 response never has them.
    fields: list[tuple[bytes, bytes]] | None = None
    """The response's header fields as HTTP/2 carried them (no re-parsing of lines)."""
    headers_only = False
    """The response was its HEADERS alone (gRPC's trailers-only answer)."""

    __slots__ = (
        "chunked",
        "client",
        "fast_parser",
        "got_bytes",
        "has_length",
        "idle_since",
        "lines",
        "no_body",
        "parser",
        "pool",
        "quick",
        "reused",
        "status",
        "transport",
        "upgrade_value",
    )

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = HttpResponseParser(self)
        self.client: Downstream | None = None
        self.lines: list[bytes] = []
        self.status = 0
        self.has_length = False
        self.chunked = False
        self.upgrade_value: bytes | None = None
        self.no_body = False  # the request was HEAD: the response has no body
        self.reused = False
        self.got_bytes = False
        self.idle_since = 0.0
        self.quick: Callable[[UpstreamConnection, bytes], None] | None = None
        """Set by a hop's fast path for its exchange (docs/http.md, "Fast paths"): the
        response's bytes go to it as they are, not through this connection's parser."""
        self.fast_parser: Any = None
        """That fast path's own parser of this connection's responses, kept between its
        exchanges (None once a response left its path half-parsed)."""

    # -- asyncio.Protocol -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        client = self.client
        if client is None:
            # Bytes on an idle connection: the server broke the protocol.
            self.close()
            return
        quick = self.quick
        if quick is not None:
            quick(self, data)
            return
        if client.tunnel:
            client.tunnel_from_upstream(data)
            return
        self.got_bytes = True
        # Collect what this read produces for the client and write it with a
        # single call: head + body + terminator of a small response in one
        # syscall instead of three.
        batch: list[bytes] = []
        client.batch = batch
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade as e:
            _flush(client, batch)
            client.upstream_upgraded(self, data[e.args[0] :])
            return
        except HttpParserError as e:
            # A response that ended in this read was flushed with its end (the batch is
            # then no longer the client's): written once, not again here.
            _flush(client, batch)
            if self.client is not client:
                # The error is in bytes after a response that was over, this connection
                # already back in the pool (or handed on from it): the app broke the
                # protocol, so no one gets this connection again (a request already
                # handed to it is sent again on a fresh one, as after any reused
                # connection that closes before answering).
                self.close()
            client.upstream_failed(self, f"invalid response from upstream: {e}", after_bytes=True)
            return
        _flush(client, batch)

    def eof_received(self) -> bool:
        client = self.client
        if client is not None and self.quick is None:
            # (a fast path's exchange learns of the close as a lost connection)
            if client.tunnel:
                return client.tunnel_upstream_eof()
            if self.status >= 200 and not (self.has_length or self.chunked or self.no_body):
                # A close-delimited body ends with the connection (HTTP/1.0 style).
                client.upstream_done(self, keep_alive=False)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        client = self.client
        if client is not None:
            self.client = None
            client.upstream_lost(self, exc)
        else:
            self.pool.discard(self)

    def pause_writing(self) -> None:
        if self.client is not None:
            self.client.upstream_write_paused(True)

    def resume_writing(self) -> None:
        if self.client is not None:
            self.client.upstream_write_paused(False)

    # -- httptools callbacks ------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        lname = name.lower()
        if lname in _RESP_DROP:
            if lname == b"upgrade":
                self.upgrade_value = value
            elif lname == b"transfer-encoding":
                self.chunked = True
            return
        if lname == b"content-length":
            self.has_length = True
        self.lines.append(name + b": " + value + b"\r\n")

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            # Interim response (100 Continue, 103 Early Hints): the proxy
            # answers Expect itself, so these are dropped.
            self.lines = []
            self.has_length = self.chunked = False
            return
        self.status = status
        client = self.client
        assert client is not None
        client.upstream_head(self, status, self.lines)
        if self.no_body and status != 101:
            # httptools cannot be told the request was HEAD; it would wait for
            # Content-Length body bytes that never come. End the response here
            # and give the connection a fresh parser.
            self.parser = HttpResponseParser(self)
            client.upstream_done(self, keep_alive=True)

    def on_body(self, body: bytes) -> None:
        if self.status >= 200:
            client = self.client
            if client is not None and body:
                client.upstream_body(body)

    def on_message_complete(self) -> None:
        status = self.status
        if status < 200 or self.no_body:
            return
        client = self.client
        if client is not None and status != 101:
            client.upstream_done(self, keep_alive=self.parser.should_keep_alive())

    # -- pool interface -----------------------------------------------------

    def attach(self, client: Downstream, head_request: bool) -> None:
        self.client = client
        self.quick = None
        self.no_body = head_request
        self.lines = []
        self.status = 0
        self.has_length = self.chunked = False
        self.upgrade_value = None
        self.got_bytes = False

    def close(self) -> None:
        t = self.transport
        if t is not None:
            t.close()

    def abort(self) -> None:
        t = self.transport
        if t is not None:
            t.abort()


class UpstreamPool:
    """Keep-alive connections to one ``host:port``."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        max_idle: int,
        idle_timeout: float = 60.0,
        connect_timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.authority = f"{host}:{port}".encode()
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self._idle: list[UpstreamConnection] = []
        self._connecting: set[asyncio.Task[None]] = set()
        self.closed = False

    def acquire(self, client: Downstream, head_request: bool) -> None:
        """Attach ``client`` to an idle connection now, or to a new one once
        it is open (``client.upstream_ready`` or ``client.upstream_connect_failed``)."""
        up = self.take_idle()
        if up is None:
            self.connect(client, head_request)
            return
        up.attach(client, head_request)
        client.upstream_ready(up)

    def take_idle(self) -> UpstreamConnection | None:
        """The most recently used open idle connection, off the stack and not attached
        yet (``attach``, unless a fast path attaches it its own way); None if none."""
        idle = self._idle
        while idle:
            up = idle.pop()
            t = up.transport
            if t is not None and not t.is_closing():
                up.reused = True
                return up
        return None

    def connect(self, client: Downstream, head_request: bool) -> None:
        """Open a fresh connection for ``client`` (never one from the stack)."""
        task = asyncio.get_running_loop().create_task(
            self._open(client, client.current, head_request),
            name=f"upstream-connect {self.host}:{self.port}",
        )
        self._connecting.add(task)
        task.add_done_callback(self._connected)

    def _connected(self, task: asyncio.Task[None]) -> None:
        self._connecting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("upstream connect task failed", exc_info=task.exception())

    async def _open(self, client: Downstream, req: object, head_request: bool) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, up = await asyncio.wait_for(
                loop.create_connection(lambda: UpstreamConnection(self), self.host, self.port),
                self.connect_timeout,
            )
        except (OSError, TimeoutError) as e:
            if client.current is req:
                client.upstream_connect_failed(e)
            return
        if client.current is req and client.waiting_for_upstream:
            up.attach(client, head_request)
            client.upstream_ready(up)
        else:
            # The request went away while we connected: keep the connection.
            self.release(up)

    def release(self, up: UpstreamConnection) -> None:
        """Take back a connection whose exchange ended cleanly."""
        up.client = None
        t = up.transport
        if self.closed or t is None or t.is_closing() or len(self._idle) >= self.max_idle:
            up.close()
            return
        up.idle_since = _monotonic()
        self._idle.append(up)

    def discard(self, up: UpstreamConnection) -> None:
        """Forget a connection the server closed while idle."""
        with contextlib.suppress(ValueError):
            self._idle.remove(up)

    def sweep(self, now: float) -> None:
        """Close connections idle for longer than ``idle_timeout`` (oldest first)."""
        idle = self._idle
        limit = now - self.idle_timeout
        while idle and idle[0].idle_since < limit:
            idle.pop(0).close()

    def close(self) -> None:
        self.closed = True
        for up in self._idle:
            up.close()
        self._idle.clear()
        for task in self._connecting:
            task.cancel()
