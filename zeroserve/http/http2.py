"""HTTP/2 cleartext (h2c) on a hop's serving port, next to HTTP/1.1 (docs/http.md, "HTTP/2").

A client connection that opens with the HTTP/2 preface (prior knowledge), or asks for
``Upgrade: h2c`` in an HTTP/1.1 request, is served by :class:`H2ServerConnection`: the
``h2`` library (sans-IO) keeps the protocol state, this module moves bytes. Every stream
is a request: it gets its own :class:`~zeroserve.http.exchange.Request` and an
:class:`H2Stream`, which is what the hop's ``Handler`` sees as the connection (``forward``,
``respond``, ``fail``, ``current``, ``client_ip``) and what the upstream side sees as the
``Downstream``. So the queue-proxy's breaker, the activator's throttler and
load-balancing, the timeouts, retries and statistics count streams, and one client
connection's streams go to as many upstream connections (and replicas) as they need.
Towards the next hop a stream is an HTTP/1.1 exchange on the ordinary ``UpstreamPool``.

Flow control is the backpressure: request body bytes are acknowledged (WINDOW_UPDATE)
only once they were written upstream, so a client cannot make a hop buffer more than a
window per stream while the upstream is slow (the connection's window is raised, so one
slow stream does not stall the others); response bytes beyond the client's window wait
in the stream, and past ``_HIGH_WATER`` the upstream connection stops being read.

Shutdown sends GOAWAY and lets the streams in flight finish; a connection with no
streams for the keep-alive timeout is closed the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any, Protocol, cast

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    PingReceived,
    PriorityUpdated,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import H2Error
from h2.settings import SettingCodes
from hyperframe.frame import GoAwayFrame

from .clientside import ClientSide
from .exchange import (
    CONNECTING,
    DONE,
    RESPONDING,
    SENT,
    Limits,
    Request,
    Timeouts,
)
from .framing import request_head
from .h2conn import H2Transport
from .headers import FORWARD_DROP
from .hpackcache import install as install_hpack_cache

if TYPE_CHECKING:
    from .upstream import Pool, UpstreamConnection

log = logging.getLogger(__name__)

_monotonic = time.monotonic

MAX_CONCURRENT_STREAMS = 250
"""Streams a client may have open at once (Go's net/http2 default)."""
CONNECTION_WINDOW = 16 * 1024 * 1024
"""The receive window of the whole connection: request bodies of streams whose upstream
is slow hold only their own window, not the others'."""
FLOOD_WINDOW = 10.0
"""Seconds over which a client's resets and control frames are counted."""
MAX_RESETS = 1000
"""Streams a client may reset per ``FLOOD_WINDOW`` (rapid reset, CVE-2023-44487: each
costs the hop a request's work); beyond, GOAWAY ENHANCE_YOUR_CALM and the connection
closes."""
MAX_CONTROL_FRAMES = 1000
"""SETTINGS, PING and PRIORITY frames a client may send per ``FLOOD_WINDOW`` (each
SETTINGS and PING makes the hop write an acknowledgement)."""
MAX_PENDING_OUTPUT = 16 * 1024 * 1024
"""Bytes waiting to be written to a client that does not read before it is cut off."""
_HIGH_WATER = 256 * 1024
"""Response bytes a stream holds for a client whose window is shut before the upstream
connection stops being read."""

# Not valid in HTTP/2 (RFC 9113 section 8.2.2), never sent to an HTTP/2 client.
_CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)


class Server(Protocol):
    """What this module uses of ``server.Server`` (which imports this module)."""

    handler: Any  # server.Handler; its methods take an H2Stream as their connection
    timeouts: Timeouts
    limits: Limits
    capture: frozenset[bytes]
    now: float
    closing: bool
    conns: set[Any]
    active: set[Any]

    def connection_closed(self) -> None: ...

    def on_protocol_error(self, status: int) -> None: ...


def _response_headers(status: int, lines: list[bytes]) -> list[tuple[bytes, bytes]]:
    """An HTTP/1.1 response's header lines as HTTP/2 header fields."""
    headers = [(b":status", b"%d" % status)]
    for line in lines:
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        lname = name.strip().lower()
        if lname and lname not in _CONNECTION_SPECIFIC:
            headers.append((lname, value.strip()))
    return headers


def _lines(block: bytes) -> list[bytes]:
    """``b"Name: value\\r\\n..."`` as its lines."""
    return [line + b"\r\n" for line in block.split(b"\r\n") if line]


class H2Stream(ClientSide):
    """One stream of an HTTP/2 connection: the handler's connection for its request and
    the upstream side's ``Downstream``."""

    __slots__ = (
        "batch",
        "client_ip",
        "conn",
        "current",
        "ended",
        "finish",
        "handler",
        "held",
        "pending",
        "pool",
        "reading_paused",
        "server",
        "sid",
        "upstream",
        "upstream_paused",
    )

    tunnel = False  # HTTP/2 has no Upgrade: a stream never becomes a tunnel

    def __init__(self, conn: H2ServerConnection, sid: int, req: Request) -> None:
        self.conn = conn
        self.sid = sid
        self.current: Request | None = req
        self.server = conn.server
        self.handler = conn.server.handler
        self.client_ip = conn.client_ip
        self.upstream: UpstreamConnection | None = None
        self.pool: Pool | None = None
        self.batch: list[bytes] | None = None  # the upstream side's write batching: unused
        self.pending = bytearray()  # response bytes waiting for the client's window
        self.ended = False  # END_STREAM sent (or the stream reset)
        self.finish = False  # the response is complete: END_STREAM once ``pending`` is out
        self.held = 0  # request body bytes received but not yet acknowledged
        self.upstream_paused = False  # the upstream's write buffer is full
        self.reading_paused = False  # we stopped reading the upstream (client window shut)

    # -- handler API --------------------------------------------------------------

    def forward(
        self,
        pool: Pool,
        *,
        drop: frozenset[bytes] | None = None,
        host: bytes | None = None,
        extra: bytes = b"",
    ) -> None:
        """As ``ServerConnection.forward``: the stream goes upstream as HTTP/1.1."""
        req = self.current
        if req is None or req.phase >= SENT:
            return
        h = req.h
        req.head_out = request_head(
            req.method,
            req.target,
            req.lines,
            FORWARD_DROP if drop is None else drop,
            host if host is not None else h.get(b"host") or pool.authority,
            self.client_ip,
            h.get(b"x-forwarded-for"),
            None,
            b"chunked" if req.chunked else None,
            None,
            extra,
        )
        req.phase = CONNECTING
        self.pool = pool
        pool.acquire(self, req.method == b"HEAD")

    def respond(
        self,
        status: int,
        body: bytes = b"",
        headers: bytes = b"",
        content_type: bytes = b"text/plain; charset=utf-8",
        *,
        recorded: int = 0,
    ) -> None:
        """Answer the stream locally (nothing was sent to the client yet)."""
        req = self.current
        if req is None or req.phase >= RESPONDING:
            return
        self._drop_upstream()
        req.phase = RESPONDING
        req.status = recorded or status
        req.local = True
        req.resp_size = 0 if req.method == b"HEAD" else len(body)
        fields = [
            (b":status", b"%d" % status),
            (b"content-length", b"%d" % len(body)),
            (b"content-type", content_type),
        ]
        fields += _response_headers(status, _lines(headers))[1:]
        no_body = req.method == b"HEAD" or not body
        if not self.conn.send_headers(self.sid, fields, no_body):
            self.ended = True  # the client reset the stream meanwhile
        elif no_body:
            self.ended = True
        else:
            self.pending += body
            self._pump(finish=True)
        # a request body still coming is acknowledged and dropped (on_body)
        self._end(req)

    # -- from the client -------------------------------------------------------------

    def on_body(self, data: bytes, flow: int) -> None:
        req = self.current
        if req is None or not data:  # (an empty DATA frame only carries END_STREAM)
            self.conn.acknowledge(self.sid, flow)
            return
        req.body_read += len(data)
        req.last_read = self.server.now
        limit = self.server.limits.max_body_bytes
        if limit and req.body_read > limit:
            self.conn.acknowledge(self.sid, flow)
            if req.phase < RESPONDING:
                self.fail(413, b"body-too-large", b"request body larger than %d bytes" % limit)
            else:
                self._drop_upstream()
                self._reset(req)
            return
        up = self.upstream
        if req.phase >= SENT and up is not None and up.transport is not None:
            if req.phase < DONE:
                if req.chunked:
                    up.transport.writelines((b"%x\r\n" % len(data), data, b"\r\n"))
                else:
                    up.transport.write(data)
            if self.upstream_paused:
                self.held += flow
            else:
                self.conn.acknowledge(self.sid, flow)
            return
        if req.phase >= RESPONDING:  # answered already: the rest of the body is dropped
            self.conn.acknowledge(self.sid, flow)
            return
        if req.body is None:
            req.body = [data]
        else:
            req.body.append(data)
        req.body_size += len(data)
        if req.body_size > self.server.limits.body_buffer:
            self.held += flow  # the client's window fills: it waits for the upstream
        else:
            self.conn.acknowledge(self.sid, flow)

    def on_end(self) -> None:
        req = self.current
        if req is None:
            return
        req.body_done = True
        if SENT <= req.phase < DONE and req.chunked:
            up = self.upstream
            if up is not None and up.transport is not None:
                up.transport.write(b"0\r\n\r\n")

    def on_reset(self) -> None:
        """The client cancelled the stream (RST_STREAM) or the connection is gone."""
        self.ended = True
        req = self.current
        if req is None or req.phase == DONE:
            return
        self._drop_upstream()
        if req.phase < RESPONDING:
            req.status = 499
        self._end(req)

    def window_opened(self) -> None:
        if self.pending:
            self._pump(finish=self.finish)

    # -- upstream API (Downstream) ---------------------------------------------------

    def upstream_ready(self, up: UpstreamConnection) -> None:
        req = self.current
        assert req is not None
        self.upstream = up
        req.phase = SENT
        t = up.transport
        assert t is not None
        if self.reading_paused:
            t.pause_reading()
        parts = [req.head_out]
        body = req.body
        if body:
            if req.chunked:
                for chunk in body:
                    parts += (b"%x\r\n" % len(chunk), chunk, b"\r\n")
            else:
                parts += body
            req.body = None
            req.body_size = 0
        if req.body_done and req.chunked:
            parts.append(b"0\r\n\r\n")
        t.writelines(parts)
        if self.held and not self.upstream_paused:
            self.conn.acknowledge(self.sid, self.held)
            self.held = 0

    def upstream_head(self, up: UpstreamConnection, status: int, lines: list[bytes]) -> None:
        req = self.current
        assert req is not None
        if self.refused(req, status, lines):
            return
        req.phase = RESPONDING
        req.status = status
        no_body = up.no_body or status in (204, 304) or up.headers_only
        fields = up.fields  # from an HTTP/2 upstream: no re-parsing
        headers = (
            [(b":status", b"%d" % status)]
            + [f for f in fields if f[0][:1] != b":" and f[0] not in _CONNECTION_SPECIFIC]
            if fields is not None
            else _response_headers(status, lines)
        )
        if self.conn.send_headers(self.sid, headers, no_body):
            self.ended = no_body
        else:
            self.ended = True
        if req.idle_timeout:
            req.last_write = _monotonic()

    def upstream_trailers(self, up: UpstreamConnection, lines: list[bytes]) -> None:
        req = self.current
        if req is not None and self.upstream is up:
            req.trailers = lines

    def upstream_body(self, data: bytes) -> None:
        req = self.current
        if req is None or self.ended:
            return
        self.pending += data
        req.resp_size += len(data)
        self._pump(finish=False)
        if req.idle_timeout:
            req.last_write = _monotonic()

    def upstream_done(self, up: UpstreamConnection, keep_alive: bool) -> None:
        req = self.current
        if req is None or self.upstream is not up:
            return
        self.upstream = None
        if keep_alive and req.body_done:
            if self.reading_paused and up.transport is not None:
                up.transport.resume_reading()
            up.pool.release(up)
        else:
            up.client = None
            up.close()
        if not self.ended:
            self._pump(finish=True)
        self._end(req)

    def upstream_upgraded(self, up: UpstreamConnection, rest: bytes) -> None:
        # never asked for (the head sent upstream carries no Upgrade)
        self.upstream_failed(up, "the upstream switched protocols unasked", True)

    def tunnel_from_upstream(self, data: bytes) -> None:  # pragma: no cover - never a tunnel
        pass

    def tunnel_upstream_eof(self) -> bool:  # pragma: no cover - never a tunnel
        return False

    def upstream_write_paused(self, paused: bool) -> None:
        self.upstream_paused = paused
        if not paused and self.held:
            self.conn.acknowledge(self.sid, self.held)
            self.held = 0

    def transport_write_lines(self, lines: list[bytes]) -> None:
        pass  # nothing is batched (see ``batch``)

    def pause_upstream(self, paused: bool) -> None:
        """The client's connection cannot take more (or can again)."""
        self.reading_paused = paused
        up = self.upstream
        if up is not None and up.transport is not None:
            if paused:
                up.transport.pause_reading()
            else:
                up.transport.resume_reading()

    # -- server API -------------------------------------------------------------------

    def _timeout(self, req: Request) -> None:
        self._drop_upstream()
        if req.phase < RESPONDING:
            self.fail(504, b"timeout", self.handler.timeout_body)
        else:
            self._reset(req)

    # -- internals ---------------------------------------------------------------------

    def start(self, req: Request) -> None:
        if req.method == b"CONNECT":  # extended CONNECT (websockets over HTTP/2) is not served
            self.server.active.add(self)
            self.fail(405, b"bad-request", b"CONNECT is not supported")
            return
        self.arm(req)
        self.server.active.add(self)
        self.handler.on_request(self, req)

    def _pump(self, *, finish: bool) -> None:
        """Send what the client's window allows; END_STREAM once all is out and the
        response is complete (``finish``); stop reading the upstream while too much
        waits (``window_opened`` goes on)."""
        if self.ended:
            self.pending.clear()
            return
        if finish:
            self.finish = True
        conn = self.conn
        if self.pending:
            sent = conn.send_data(self.sid, self.pending)
            if sent:
                del self.pending[:sent]
        if self.pending:
            if len(self.pending) > _HIGH_WATER and not self.reading_paused:
                self.pause_upstream(True)
            return
        if self.finish:
            req = self.current
            trailers = req.trailers if req is not None else None
            if trailers:
                conn.send_headers(self.sid, _response_headers(0, trailers)[1:], True)
            else:
                conn.end_stream(self.sid)
            self.ended = True
            conn.stream_sent(self)
        elif self.reading_paused and not conn.write_paused:
            self.pause_upstream(False)

    def _cut(self, req: Request) -> None:
        self._reset(req)

    def _reset(self, req: Request) -> None:
        """Cut the response: the client sees the stream reset, not a short body."""
        self.conn.reset(self.sid, ErrorCodes.INTERNAL_ERROR)
        self.ended = True
        self.pending.clear()
        self._end(req)

    def _drop_upstream(self) -> None:
        up = self.upstream
        if up is not None:
            self.upstream = None
            up.client = None
            up.abort()

    def _end(self, req: Request) -> None:
        if req.phase == DONE:
            return
        req.phase = DONE
        self.server.active.discard(self)
        if req.started:
            try:
                self.handler.on_finish(self, req)
            except Exception:
                log.exception("handler.on_finish failed")
        if self.held:
            self.conn.acknowledge(self.sid, self.held)
            self.held = 0
        self.conn.stream_done(self)


class H2ServerConnection(H2Transport):
    """One client connection speaking HTTP/2; see the module docstring."""

    tunnel = False  # (an HTTP/1.1 connection's upgraded state; shutdown waits on the rest)

    def __init__(self, server: Server, client_ip: bytes) -> None:
        self.server = server
        self.client_ip = client_ip
        self.transport: asyncio.Transport | None = None
        limits = server.limits
        self.h2 = H2Connection(
            H2Configuration(
                client_side=False,
                header_encoding=None,
                validate_inbound_headers=True,
                # what it sends is built here, lower-case and trimmed already
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
            )
        )
        install_hpack_cache(self.h2)
        self.h2.local_settings.update(
            {
                SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
                SettingCodes.MAX_HEADER_LIST_SIZE: limits.max_head_bytes,
            }
        )
        self.streams: dict[int, H2Stream] = {}
        """Streams whose exchange is not over, plus those still sending their response."""
        self.sending: dict[int, H2Stream] = {}
        """Streams whose exchange ended with response bytes still waiting for a window."""
        self.idle_since = server.now
        self.write_paused = False
        self.going_away = False
        self.window_start = server.now
        self.start_writing()
        self.resets = 0
        self.control_frames = 0

    # -- start ---------------------------------------------------------------------------

    def start(
        self,
        transport: asyncio.Transport,
        data: bytes,
        upgraded: tuple[Request, bytes] | None = None,
    ) -> None:
        """Take over ``transport`` (from the HTTP/1.1 protocol that detected HTTP/2):
        ``data`` is what was read after the preface was recognised (or after an
        Upgrade request), ``upgraded`` the request that asked for ``Upgrade: h2c`` and
        its ``HTTP2-Settings`` value (it becomes stream 1)."""
        self.transport = transport
        transport.set_protocol(self)
        self.server.conns.add(self)
        h2 = self.h2
        if upgraded is not None:
            req, settings = upgraded
            h2.initiate_upgrade_connection(settings)
        else:
            h2.initiate_connection()
        h2.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self._flush()
        if upgraded is not None:
            req = upgraded[0]
            req.version = "2.0"
            stream = H2Stream(self, 1, req)
            self.streams[1] = stream
            stream.start(req)
        if data:
            self.data_received(data)

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # pragma: no cover
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except H2Error as e:
            log.debug("HTTP/2 protocol error from %s: %s", self.client_ip, e)
            self.server.on_protocol_error(400)
            self._close()  # (with the GOAWAY h2 queued, saying why)
            return
        now = self.server.now
        if now - self.window_start >= FLOOD_WINDOW:
            self.window_start, self.resets, self.control_frames = now, 0, 0
        for event in events:
            if isinstance(
                event, (StreamReset, PingReceived, RemoteSettingsChanged, PriorityUpdated)
            ):
                if isinstance(event, StreamReset):
                    self.resets += 1
                else:
                    self.control_frames += 1
                if self.resets > MAX_RESETS or self.control_frames > MAX_CONTROL_FRAMES:
                    self._calm_down()
                    return
            if isinstance(event, DataReceived):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.on_body(event.data, event.flow_controlled_length)
                else:
                    self.acknowledge(event.stream_id, event.flow_controlled_length)
                # END_STREAM comes as its own StreamEnded event
            elif isinstance(event, RequestReceived):
                self._request(event)
            elif isinstance(event, StreamEnded):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.on_end()
            elif isinstance(event, WindowUpdated):
                if event.stream_id:
                    stream = self.streams.get(event.stream_id) or self.sending.get(event.stream_id)
                    if stream is not None:
                        stream.window_opened()
                else:
                    for stream in list(self.sending.values()) + list(self.streams.values()):
                        stream.window_opened()
            elif isinstance(event, StreamReset):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.on_reset()
                sent = self.sending.pop(event.stream_id, None)
                if sent is not None:
                    sent.ended = True
                    sent.pending.clear()
                    self._maybe_idle()
            elif isinstance(event, TrailersReceived):
                pass  # request trailers have no HTTP/1.1 equivalent upstream here
            elif isinstance(event, ConnectionTerminated):
                self.going_away = True
        self._flush()
        t = self.transport
        if t is not None and t.get_write_buffer_size() > MAX_PENDING_OUTPUT:
            self._calm_down()  # it sends but does not read (acknowledgements pile up)
            return
        if self.going_away and not self.streams and not self.sending:
            self._close()

    def _calm_down(self) -> None:
        """A flooding client: GOAWAY ENHANCE_YOUR_CALM, its streams end, the connection
        closes; other connections are not touched."""
        log.warning("HTTP/2 client %s flooded the connection; closing it", self.client_ip.decode())
        self.server.on_protocol_error(429)
        self.going_away = True
        with contextlib.suppress(H2Error):
            self.h2.close_connection(ErrorCodes.ENHANCE_YOUR_CALM)
        self._write_now()
        t = self.transport
        if t is not None:
            if t.get_write_buffer_size() > MAX_PENDING_OUTPUT:
                t.abort()  # it does not read: the GOAWAY would never get out
            else:
                t.close()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.server.conns.discard(self)
        for stream in list(self.streams.values()):
            stream.on_reset()
        self.streams.clear()
        self.sending.clear()
        self.server.connection_closed()

    def pause_writing(self) -> None:
        self.write_paused = True
        for stream in self.streams.values():
            stream.pause_upstream(True)

    def resume_writing(self) -> None:
        self.write_paused = False
        for stream in list(self.streams.values()):
            if len(stream.pending) <= _HIGH_WATER:
                stream.pause_upstream(False)

    # -- what streams call ---------------------------------------------------------------

    def send_headers(self, sid: int, headers: list[tuple[bytes, bytes]], end: bool) -> bool:
        try:
            self.h2.send_headers(sid, headers, end_stream=end)
        except H2Error:
            return False  # the stream was reset meanwhile
        self._flush()
        return True

    def reset(self, sid: int, code: ErrorCodes) -> None:
        try:
            self.h2.reset_stream(sid, code)
        except H2Error:
            return
        self._flush()

    def stream_done(self, stream: H2Stream) -> None:
        """The stream's exchange is over (its response may still be going out)."""
        self.streams.pop(stream.sid, None)
        if not stream.ended:
            self.sending[stream.sid] = stream
        self._maybe_idle()

    def stream_sent(self, stream: H2Stream) -> None:
        """The stream's last byte is out."""
        if self.sending.pop(stream.sid, None) is not None:
            self._maybe_idle()

    def _maybe_idle(self) -> None:
        if not self.streams and not self.sending:
            self.idle_since = self.server.now
            if self.going_away:
                self._close()

    # -- server API ----------------------------------------------------------------------

    def check_idle(self, now: float, limits: Limits) -> None:
        if self.transport is None or self.streams or self.sending:
            return
        if now - self.idle_since >= limits.keepalive_timeout:
            self.close_if_idle()

    def close_if_idle(self) -> None:
        """Shutdown (or idleness): GOAWAY; streams in flight finish, then it closes."""
        if not self.going_away:
            self.going_away = True
            # GOAWAY by hand: h2's close_connection() would also stop the streams in flight
            # from sending; new streams past this id are refused (_request)
            self._write_now()
            frame = GoAwayFrame(0)
            frame.last_stream_id = self.h2.highest_inbound_stream_id
            frame.error_code = 0
            if self.transport is not None:
                self.transport.write(frame.serialize())
        if not self.streams and not self.sending:
            self._close()

    def check_timeouts(self, now: float) -> None:  # the streams are timed, not the connection
        pass

    # -- internals -------------------------------------------------------------------

    def _request(self, event: RequestReceived) -> None:
        sid = event.stream_id
        if self.going_away or self.server.closing:
            self.reset(sid, ErrorCodes.REFUSED_STREAM)
            return
        req = Request()
        req.version = "2.0"
        capture = self.server.capture
        h = req.h
        lines = req.lines
        authority = b""
        cookies: list[bytes] = []
        for name, value in event.headers or ():
            name = bytes(name)
            value = bytes(value)
            if name[:1] == b":":
                if name == b":method":
                    req.method = value
                elif name == b":path":
                    req.target = value
                elif name == b":authority":
                    authority = value
                continue
            if name == b"cookie":  # HTTP/2 may split it; one line for HTTP/1.1 (RFC 9113 8.2.3)
                cookies.append(value)
                continue
            lines.append((name, name + b": " + value + b"\r\n"))
            if name in capture:
                prev = h.get(name)
                h[name] = value if prev is None else prev + b", " + value
        if cookies:
            lines.append((b"cookie", b"cookie: " + b"; ".join(cookies) + b"\r\n"))
        if authority and b"host" not in h:
            h[b"host"] = authority
            lines.append((b"host", b"host: " + authority + b"\r\n"))
        ended = event.stream_ended is not None
        req.body_done = ended
        if not ended and b"content-length" not in h:
            req.chunked = True  # an HTTP/2 body of unknown length goes upstream chunked
        req.last_read = self.server.now
        stream = H2Stream(self, sid, req)
        self.streams[sid] = stream
        stream.start(req)

    def _close(self) -> None:
        self._write_now()
        t = self.transport
        if t is not None:
            t.close()
