"""HTTP/2 (h2c, prior knowledge) towards the next hop (docs/http.md, "HTTP/2").

:class:`H2Pool` has the interface of ``upstream.UpstreamPool`` (``acquire``, ``connect``,
``release``, ``sweep``, ``close``, ``authority``) and hands each exchange an
:class:`H2Exchange`, which has what the client side uses of an ``UpstreamConnection``
(``transport``, ``pool``, ``status``, ``has_length``, ``no_body``, ``reused``,
``got_bytes``, ``close``, ``abort``). So a hop's client side, HTTP/1.1
(``server.ServerConnection``) or HTTP/2 (``http2.H2Stream``), forwards to an h2c app or
hop without knowing: it writes the HTTP/1.1 request it would write anyway to the
exchange's ``transport``, which parses it (httptools) into a stream's HEADERS and DATA;
the response comes back through the same ``Downstream`` calls as from HTTP/1.1, plus
``upstream_trailers`` (gRPC's ``grpc-status``).

Each stream is one exchange; a few connections (``max_connections``) carry them all,
opening another when the app's ``SETTINGS_MAX_CONCURRENT_STREAMS`` is reached. Flow
control is the backpressure both ways: request bytes beyond the app's window wait in
the exchange (past ``_HIGH_WATER`` the client stops being read); response bytes are
acknowledged only while the client side takes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, cast

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import H2Error, ProtocolError
from httptools import HttpParserError, HttpRequestParser

from .h2conn import H2Transport
from .headers import HOP_BY_HOP
from .hpackcache import install as install_hpack_cache

if TYPE_CHECKING:
    from .upstream import Downstream

log = logging.getLogger(__name__)

_monotonic = time.monotonic
_HIGH_WATER = 256 * 1024
CONNECTION_WINDOW = 16 * 1024 * 1024
_SKIP = HOP_BY_HOP | {b"host", b"http2-settings"}


class UpstreamReset(Exception):
    """The next hop reset the stream (or went away) before answering."""


class _RequestWriter:
    """The exchange's ``transport`` for the client side: what it writes (an HTTP/1.1
    request: head, body, chunked or not) becomes the stream's frames."""

    __slots__ = ("exchange", "parser")

    def __init__(self, exchange: H2Exchange) -> None:
        self.exchange = exchange
        self.parser = HttpRequestParser(exchange)

    def write(self, data: bytes) -> None:
        if not data or self.exchange.ended_out:
            return
        try:
            self.parser.feed_data(data)
        except HttpParserError as e:  # the client side wrote something that is not HTTP
            log.error("h2 upstream: cannot translate the request: %s", e)
            self.exchange.abort()

    def writelines(self, lines: object) -> None:
        self.write(b"".join(cast("list[bytes]", lines)))

    def pause_reading(self) -> None:
        self.exchange.hold(True)

    def resume_reading(self) -> None:
        self.exchange.hold(False)

    def is_closing(self) -> bool:
        return self.exchange.conn is None

    def can_write_eof(self) -> bool:
        return False

    def write_eof(self) -> None:  # pragma: no cover - never a tunnel
        pass

    def close(self) -> None:
        self.exchange.close()

    def abort(self) -> None:
        self.exchange.abort()

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


class H2Exchange:
    """One request on one stream (see the module docstring)."""

    __slots__ = (
        "authority",
        "client",
        "conn",
        "ended_out",
        "fields",
        "got_bytes",
        "has_length",
        "headers_only",
        "held",
        "holding",
        "lines",
        "method",
        "no_body",
        "out",
        "out_done",
        "path",
        "pool",
        "reused",
        "sid",
        "status",
        "transport",
        "upgrade_value",
        "writer_paused",
    )

    def __init__(self, pool: H2Pool, conn: H2Upstream, client: Downstream, head: bool) -> None:
        self.pool = pool
        self.conn: H2Upstream | None = conn
        self.client: Downstream | None = client
        self.no_body = head
        self.sid = 0
        self.status = 0
        self.has_length = False
        self.reused = conn.used
        self.got_bytes = False
        self.upgrade_value = None
        self.headers_only = False
        """The response is its HEADERS alone (END_STREAM on them): gRPC's trailers-only
        answer, which an HTTP/2 client side must pass on as such."""
        self.fields: list[tuple[bytes, bytes]] | None = None
        """The response's header fields as received, for an HTTP/2 client side (which
        then skips re-parsing ``lines``)."""
        self.transport = _RequestWriter(self)
        self.method = b""
        self.path = b""
        self.authority = b""
        self.lines: list[tuple[bytes, bytes]] = []
        self.out = bytearray()  # request body bytes waiting for the app's window
        self.out_done = False  # the request body is complete
        self.ended_out = False  # END_STREAM sent (or the stream is gone)
        self.held = 0  # response bytes received but not acknowledged (client side slow)
        self.holding = False
        self.writer_paused = False

    # -- httptools callbacks: the request the client side wrote ------------------------

    def on_url(self, url: bytes) -> None:
        self.path += url

    def on_header(self, name: bytes, value: bytes) -> None:
        lname = name.lower()
        if lname == b"host":
            self.authority = value
        elif lname not in _SKIP:
            self.lines.append((lname, value))

    def on_headers_complete(self) -> None:
        self.method = self.transport.parser.get_method()
        conn = self.conn
        if conn is None:
            return
        headers = [
            (b":method", self.method),
            (b":scheme", b"http"),
            (b":authority", self.authority or self.pool.authority),
            (b":path", self.path or b"/"),
        ]
        headers += self.lines
        if any(n == b"content-type" and v.startswith(b"application/grpc") for n, v in self.lines):
            headers.append((b"te", b"trailers"))  # gRPC servers want it; hop-by-hop in 1.1
        self.sid = conn.open_stream(self, headers)

    def on_body(self, body: bytes) -> None:
        if self.sid and not self.ended_out:
            self.out += body
            self._push()

    def on_message_complete(self) -> None:
        self.out_done = True
        self._push()

    def _push(self) -> None:
        conn = self.conn
        if conn is None or not self.sid or self.ended_out:
            return
        if self.out:
            sent = conn.send_data(self.sid, self.out)
            del self.out[:sent]
        if not self.out and self.out_done:
            conn.end_stream(self.sid)
            self.ended_out = True
        client = self.client
        if client is not None:
            paused = len(self.out) > _HIGH_WATER
            if paused != self.writer_paused:
                self.writer_paused = paused
                client.upstream_write_paused(paused)

    # -- from the connection -----------------------------------------------------------

    def on_response(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.got_bytes = True
        self.status = status
        self.fields = headers
        lines = []
        for name, value in headers:
            if name[:1] == b":":
                continue
            if name == b"content-length":
                self.has_length = True
            lines.append(name + b": " + value + b"\r\n")
        client = self.client
        if client is not None:
            client.upstream_head(self, status, lines)  # type: ignore[arg-type]

    def on_data(self, data: bytes, flow: int) -> None:
        self.got_bytes = True
        client = self.client
        if client is not None and data and self.status >= 200 and not self.no_body:
            client.upstream_body(data)
        if self.holding:
            self.held += flow
        elif self.conn is not None:
            self.conn.acknowledge(self.sid, flow)

    def on_trailers(self, headers: list[tuple[bytes, bytes]]) -> None:
        client = self.client
        if client is not None:
            lines = [n + b": " + v + b"\r\n" for n, v in headers if n[:1] != b":"]
            client.upstream_trailers(self, lines)  # type: ignore[arg-type]

    def on_end(self) -> None:
        client = self.client
        self._detach()
        if client is not None:
            client.upstream_done(self, keep_alive=True)  # type: ignore[arg-type]

    def on_reset(self, error: Exception) -> None:
        client = self.client
        self._detach()
        if client is not None:
            self.client = None
            client.upstream_lost(self, error)  # type: ignore[arg-type]

    def window_opened(self) -> None:
        if self.out or (self.out_done and not self.ended_out):
            self._push()

    def hold(self, holding: bool) -> None:
        """The client side cannot take more of the response (or can again)."""
        self.holding = holding
        if not holding and self.held and self.conn is not None:
            self.conn.acknowledge(self.sid, self.held)
            self.held = 0

    # -- what the client side calls -------------------------------------------------------

    def close(self) -> None:
        """Done with the exchange; a stream still open is cancelled."""
        self.client = None
        conn = self.conn
        if conn is not None and self.sid:
            conn.cancel(self.sid)
        self._detach()

    abort = close

    def _detach(self) -> None:
        conn = self.conn
        self.conn = None
        self.ended_out = True
        if conn is not None:
            if self.held:
                conn.acknowledge(self.sid, self.held)
                self.held = 0
            conn.stream_gone(self)


class H2Upstream(H2Transport):
    """One HTTP/2 connection to the next hop, carrying many exchanges."""

    def __init__(self, pool: H2Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.h2 = H2Connection(
            H2Configuration(
                client_side=True,
                header_encoding=None,
                # the request is built here from what the client side parsed (lower-case
                # names, trimmed values), as the HTTP/1.1 path builds its head
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
                # the app's answers are passed on as an HTTP/1.1 app's are (httptools checks
                # their syntax there; h2's HPACK decoding does here)
                validate_inbound_headers=False,
            )
        )
        install_hpack_cache(self.h2)
        self.streams: dict[int, H2Exchange] = {}
        self.going_away = False
        self.used = False
        self.idle_since = _monotonic()
        self.start_writing()
        self.settled = asyncio.Event()
        """The peer's first SETTINGS arrived: its stream limit is known."""

    @property
    def capacity(self) -> int:
        if self.transport is None or self.going_away:
            return 0
        return self.h2.remote_settings.max_concurrent_streams - len(self.streams)

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self._flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except ProtocolError as e:
            log.warning("h2 upstream %s: protocol error: %s", self.pool.authority.decode(), e)
            self._fail_all(UpstreamReset(f"HTTP/2 protocol error: {e}"))
            self._write_now()
            self.close()
            return
        for event in events:
            stream = self.streams.get(getattr(event, "stream_id", 0) or 0)
            if isinstance(event, DataReceived):
                if stream is not None:
                    stream.on_data(event.data, event.flow_controlled_length)
                else:
                    self.acknowledge(event.stream_id, event.flow_controlled_length)
            elif isinstance(event, ResponseReceived):
                if stream is not None:
                    headers = event.headers or []
                    status = int(dict(headers).get(b":status", b"0"))
                    stream.headers_only = event.stream_ended is not None
                    stream.on_response(status, headers)
            elif isinstance(event, TrailersReceived):
                if stream is not None:
                    stream.on_trailers(event.headers or [])
            elif isinstance(event, StreamEnded):
                if stream is not None:
                    stream.on_end()
            elif isinstance(event, StreamReset):
                if stream is not None:
                    if event.error_code == ErrorCodes.REFUSED_STREAM:
                        # not processed (RFC 9113 section 8.7): the client side may send
                        # it again, as after a stale keep-alive connection
                        stream.reused, stream.got_bytes = True, False
                    stream.on_reset(UpstreamReset(f"the stream was reset ({event.error_code!r})"))
            elif isinstance(event, WindowUpdated):
                targets = [stream] if event.stream_id else list(self.streams.values())
                for target in targets:
                    if target is not None:
                        target.window_opened()
            elif isinstance(event, RemoteSettingsChanged):
                self.settled.set()
            elif isinstance(event, ConnectionTerminated):
                self.going_away = True
                last = event.last_stream_id or 0
                for sid, ex in list(self.streams.items()):
                    if sid > last:  # never processed: safe to send elsewhere
                        ex.reused, ex.got_bytes = True, False
                        ex.on_reset(UpstreamReset("the upstream is going away"))
        self._flush()
        if self.going_away and not self.streams:
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.pool.discard(self)
        self._fail_all(UpstreamReset(f"the connection closed: {exc or 'EOF'}"))

    def pause_writing(self) -> None:
        for ex in self.streams.values():
            if ex.client is not None and not ex.writer_paused:
                ex.writer_paused = True
                ex.client.upstream_write_paused(True)

    def resume_writing(self) -> None:
        for ex in list(self.streams.values()):
            if ex.client is not None and ex.writer_paused and len(ex.out) <= _HIGH_WATER:
                ex.writer_paused = False
                ex.client.upstream_write_paused(False)

    # -- for exchanges -------------------------------------------------------------------

    def open_stream(self, ex: H2Exchange, headers: list[tuple[bytes, bytes]]) -> int:
        sid = self.h2.get_next_available_stream_id()
        self.streams[sid] = ex
        self.used = True
        try:
            self.h2.send_headers(sid, headers)
        except H2Error as e:
            del self.streams[sid]
            ex.on_reset(UpstreamReset(f"cannot open a stream: {e}"))
            return 0
        self._flush()
        return sid

    def cancel(self, sid: int) -> None:
        with contextlib.suppress(H2Error):
            self.h2.reset_stream(sid, ErrorCodes.CANCEL)
        self._flush()

    def stream_gone(self, ex: H2Exchange) -> None:
        if self.streams.get(ex.sid) is ex:
            del self.streams[ex.sid]
            self.pool.slot_freed(self)
        if not self.streams:
            self.idle_since = _monotonic()
            if self.going_away:
                self.close()

    def close(self) -> None:
        self._write_now()
        t = self.transport
        if t is not None:
            t.close()

    def _fail_all(self, error: Exception) -> None:
        for ex in list(self.streams.values()):
            ex.on_reset(error)
        self.streams.clear()


class H2Pool:
    """A few HTTP/2 connections to one ``host:port`` (see the module docstring)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        max_connections: int = 4,
        idle_timeout: float = 60.0,
        connect_timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.authority = f"{host}:{port}".encode()
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self.conns: list[H2Upstream] = []
        self._opening: asyncio.Task[H2Upstream] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiting: deque[tuple[Downstream, object, bool]] = deque()
        """Exchanges waiting for a stream: every connection is at the peer's
        ``SETTINGS_MAX_CONCURRENT_STREAMS`` and no more may be opened."""
        self.closed = False

    def acquire(self, client: Downstream, head_request: bool) -> None:
        """An exchange on a connection with room for a stream, now or once one is open
        (``client.upstream_ready`` or ``client.upstream_connect_failed``)."""
        best = max(self.conns, key=lambda c: c.capacity, default=None)
        if best is not None and best.capacity > 0:
            client.upstream_ready(H2Exchange(self, best, client, head_request))  # type: ignore[arg-type]
            return
        self.connect(client, head_request)

    def connect(self, client: Downstream, head_request: bool) -> None:
        task = asyncio.get_running_loop().create_task(
            self._attach(client, client.current, head_request),
            name=f"h2-upstream {self.host}:{self.port}",
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _attach(self, client: Downstream, req: object, head_request: bool) -> None:
        try:
            conn = await self._connection()
        except (OSError, TimeoutError) as e:
            if client.current is req:
                client.upstream_connect_failed(e)
            return
        if client.current is not req or not client.waiting_for_upstream:
            return
        if conn.capacity <= 0:
            self._waiting.append((client, req, head_request))  # until a stream ends
            return
        client.upstream_ready(H2Exchange(self, conn, client, head_request))  # type: ignore[arg-type]

    def slot_freed(self, conn: H2Upstream) -> None:
        """A stream of ``conn`` ended: the next waiting exchange takes its place."""
        while self._waiting and conn.capacity > 0:
            client, req, head = self._waiting.popleft()
            if client.current is req and client.waiting_for_upstream:
                client.upstream_ready(H2Exchange(self, conn, client, head))  # type: ignore[arg-type]

    async def _connection(self) -> H2Upstream:
        """A connection with room, opening one (only one at a time) when none has."""
        for conn in self.conns:
            if conn.capacity > 0:
                return conn
        opening = self._opening
        if opening is None or opening.done():
            opening = self._opening = asyncio.get_running_loop().create_task(self._open())
        conn = await asyncio.shield(opening)
        if conn.capacity <= 0 and len(self.conns) < self.max_connections:
            return await self._connection()
        return conn

    async def _open(self) -> H2Upstream:
        loop = asyncio.get_running_loop()
        _, conn = await asyncio.wait_for(
            loop.create_connection(lambda: H2Upstream(self), self.host, self.port),
            self.connect_timeout,
        )
        try:
            # its stream limit first: streams over it would be refused
            await asyncio.wait_for(conn.settled.wait(), self.connect_timeout)
        except TimeoutError:
            conn.close()
            raise OSError(f"{self.host}:{self.port} sent no HTTP/2 SETTINGS") from None
        if self.closed or conn.transport is None:
            conn.close()
            raise OSError("the pool is closed" if self.closed else "the connection closed")
        self.conns.append(conn)
        if len(self.conns) > self.max_connections:
            # the oldest idle one goes
            for old in self.conns:
                if not old.streams and old is not conn:
                    old.close()
                    break
        return conn

    def release(self, up: object) -> None:
        """An exchange ended cleanly; its stream is closed already."""

    def discard(self, conn: H2Upstream) -> None:
        with contextlib.suppress(ValueError):
            self.conns.remove(conn)
        waiting, self._waiting = self._waiting, deque()
        for client, req, head in waiting:  # they wait for a connection again
            if client.current is req and client.waiting_for_upstream and not self.closed:
                self.connect(client, head)

    def sweep(self, now: float) -> None:
        """Close connections without streams for longer than ``idle_timeout``."""
        for conn in list(self.conns):
            if not conn.streams and now - conn.idle_since > self.idle_timeout:
                conn.close()

    def close(self) -> None:
        self.closed = True
        for conn in list(self.conns):
            conn.close()
        for task in list(self._tasks):
            task.cancel()
