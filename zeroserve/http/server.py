"""Client side of the proxy hop: an HTTP/1.1 server protocol that forwards.

``Server`` owns a listener and its connections; ``ServerConnection`` parses
requests with httptools and runs one exchange at a time (pipelined requests
wait their turn). A ``Handler`` decides what each request gets: a local
response (``respond``/``fail``) or a forward to an ``UpstreamPool``
(``forward``), now or later (after queueing). Bytes then move between the two
transports as they arrive, with backpressure both ways, so a body of any size
passes in bounded memory and streamed responses are flushed at once.

Theory of operation: one request's phases (``exchange.WAITING`` .. ``DONE``; a request
only moves forward), and the methods that move it (docs/http.md, "The request path"):

1. head parsed: ``on_message_begin``, ``on_url``, ``on_header`` (size limits -> 431),
   ``on_headers_complete`` (413 for a declared body over the limit) -> ``_start``, or
   the pipeline while another exchange runs (``_pump`` starts it later);
2. WAITING: ``Handler.on_request`` answers locally (``respond``/``fail``) or calls
   ``forward``, which builds the head (``framing.request_head``) and asks the pool;
3. CONNECTING -> SENT: ``upstream_ready`` writes the head and any buffered body;
   ``on_body``/``on_message_complete`` relay the rest; ``upstream_connect_failed``
   hands the request back to the handler (``on_upstream_error``: retry or 502);
4. RESPONDING: ``upstream_head`` (``framing.response_framing``, ``framing.persistence``),
   ``upstream_body``, ``upstream_done`` (the upstream goes back to the pool);
   ``upstream_upgraded`` turns the exchange into a TUNNEL;
5. DONE: ``_end`` tells the handler (``on_finish``, exactly once) and either keeps the
   connection for the next request or closes it.

Timers run from ``Server._sweep`` (every 0.1 s): ``check_timeouts`` (504, or a cut
body once the status is out) and ``check_idle`` (408 for a trickled head or body, idle
keep-alive close). Errors outside an exchange go through ``_bad_request`` /
``_raw_error`` (400/405/408/413/431, then close).

Why hand-written instead of aiohttp's server and client: a request through
aiohttp's ``web`` server and ``ClientSession`` costs about 10x the CPU of this
path (see benchmarks/README.md); the queue-proxy sits on every request.

Error attribution: every response the hop generates itself carries
``X-Zeroserve-Error: <hop>; reason=<reason>``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections import deque
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Protocol, cast

from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser

from .clientside import ClientSide
from .exchange import (
    CONNECTING,
    DONE,
    H2_PREFACE,
    RESPONDING,
    SENT,
    TUNNEL,
    Limits,
    Request,
    Timeouts,
)
from .framing import CHUNKED, CLOSE, LENGTH, persistence, request_head, response_framing
from .headers import FORWARD_DROP, connection_tokens, error_header
from .upstream import Pool, UpstreamConnection

if TYPE_CHECKING:
    from .http2 import H2ServerConnection as H2Connection
    from .http2 import H2Stream as H2Exchange

log = logging.getLogger(__name__)

_monotonic = time.monotonic

# Headers whose values the parser keeps in ``Request.h`` for every request.
BASE_CAPTURE = frozenset(
    {
        b"host",
        b"content-length",
        b"transfer-encoding",
        b"connection",
        b"expect",
        b"upgrade",
        b"x-forwarded-for",
        b"http2-settings",
    }
)


# Why reading from the client is paused (bits; reading resumes when none is left).
_PAUSE_UPSTREAM = 1  # the upstream's write buffer is full
_PAUSE_BUFFER = 2  # body bytes buffered while the request waits
_PAUSE_PIPELINE = 4  # a pipelined request waits for the current one

_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
STATUS_LINES = {code: b"HTTP/1.1 %d %s\r\n" % (code, phrase) for code, phrase in _REASONS.items()}
"""The status line a hop writes for each standard code: the code's own reason phrase,
whatever the upstream sent (as Go's proxy)."""


class Connection(Protocol):
    """What the server asks of each client connection in ``conns`` and ``active``: an
    HTTP/1.1 ``ServerConnection``, an HTTP/2 connection, or a hop's fast path."""

    @property
    def tunnel(self) -> bool:
        """The connection is a two-way byte tunnel (after an upgrade)."""

    @property
    def transport(self) -> asyncio.Transport | None: ...

    def check_timeouts(self, now: float) -> None:
        """Called every 0.1 s while it has a request in flight (``Server.active``)."""

    def check_idle(self, now: float, limits: Limits) -> None:
        """Called every second: trickling heads and bodies, idle keep-alive."""

    def close_if_idle(self) -> None:
        """Shutting down: close now unless a request is in flight."""


def client_ip_of(transport: asyncio.BaseTransport) -> bytes:
    """The client's address as ``X-Forwarded-For`` carries it (empty if unknown)."""
    peer = transport.get_extra_info("peername")
    return str(peer[0]).encode() if peer else b""


class _HeadTooLarge(Exception):
    """The request head passed its size or line limit (answered with 431)."""


class Handler:
    """What a hop does with requests. Subclasses implement ``on_request``."""

    hop = b"proxy"
    """Name in ``X-Zeroserve-Error``."""
    unreachable_reason = b"upstream-unreachable"
    """Reason of a 502 when the upstream could not be connected to (nothing reached it)."""
    closed_reason = b"upstream-closed"
    """Reason of a 502 when the upstream took the request but broke off before a
    response (it may have acted on it, so it is never retried elsewhere)."""
    timeout_body = b"request timeout"
    capture: frozenset[bytes] = frozenset()
    """Extra headers (lower-case) the handler wants in ``Request.h``."""

    def on_request(self, conn: ServerConnection, req: Request) -> None:
        """Called once per request when its head is complete; must eventually
        call ``conn.forward``, ``conn.respond`` or ``conn.fail`` (unless the
        client goes away first, which ``on_finish`` reports)."""
        raise NotImplementedError

    def on_finish(self, conn: ServerConnection, req: Request) -> None:
        """Called exactly once per ``on_request``, when the exchange ended for
        any reason (``req.status`` is 499 if the client went away first)."""

    def on_wait_timeout(self, conn: ServerConnection, req: Request) -> None:
        """``req.wait_deadline`` passed while the request was still WAITING."""
        conn.fail(503, b"wait-timeout", b"no capacity in time", b"Retry-After: 1\r\n")

    def retry_response(self, req: Request, status: int, lines: list[bytes]) -> bool:
        """Whether an upstream's 5xx response head means nothing reached the app,
        so the response is dropped and ``on_upstream_error`` tries again. ``lines``
        are the response's header lines as received (``b"Name: value\\r\\n"``)."""
        return False

    def on_upstream_error(self, conn: ServerConnection, req: Request, error: Exception) -> None:
        """The upstream could not be reached before any byte was exchanged."""
        conn.fail(
            502,
            self.unreachable_reason,
            b"could not connect to upstream: " + str(error).encode(),
        )

    def sweep(self, now: float) -> None:
        """Called about once a second (pool upkeep)."""


class ServerConnection(ClientSide, asyncio.Protocol):
    """One client connection; see the module docstring."""

    __slots__ = (
        "batch",
        "capture",
        "client_eof",
        "client_ip",
        "current",
        "fresh",
        "h2c",
        "handler",
        "head_bytes",
        "head_count",
        "head_started",
        "idle_since",
        "max_body_bytes",
        "max_head_bytes",
        "max_headers",
        "parse_error",
        "parser",
        "paused",
        "pipeline",
        "pool",
        "pumping",
        "reading",
        "resp_mode",
        "server",
        "transport",
        "tunnel",
        "upgrading",
        "upstream",
        "upstream_eof",
        "write_paused",
    )

    def __init__(self, server: Server) -> None:
        self.server = server
        self.handler = server.handler
        self.capture = server.capture
        self.max_head_bytes = server.limits.max_head_bytes
        self.max_headers = server.limits.max_headers
        self.max_body_bytes = server.limits.max_body_bytes
        self.transport: asyncio.Transport | None = None
        self.parser = HttpRequestParser(self)
        self.client_ip = b""
        self.reading: Request | None = None  # request whose head/body is being parsed
        self.current: Request | None = None  # request being served
        self.pipeline: deque[Request] = deque()
        self.pumping = False
        self.upstream: UpstreamConnection | None = None
        self.pool: Pool | None = None
        self.batch: list[bytes] | None = None
        self.resp_mode = LENGTH
        self.paused = 0
        self.write_paused = False
        self.head_bytes = 0
        self.head_count = 0
        self.head_started = 0.0
        self.idle_since = 0.0
        self.parse_error = 0
        self.upgrading = False
        self.tunnel = False
        self.client_eof = False
        self.upstream_eof = False
        self.fresh: bytes | None = b""  # the first bytes, until they tell HTTP/1.1 from HTTP/2
        self.h2c: Request | None = None  # a request asking for Upgrade: h2c (switch_to_h2)

    # -- asyncio.Protocol -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)
        self.client_ip = client_ip_of(transport)
        self.idle_since = self.server.now
        self.server.conns.add(self)

    def data_received(self, data: bytes) -> None:
        fresh = self.fresh
        if fresh is not None:
            # Before the first request: HTTP/2 with prior knowledge opens with its preface
            # (docs/http.md, "HTTP/2"); anything else is HTTP/1.1.
            data = fresh + data if fresh else data
            if len(data) < len(H2_PREFACE) and H2_PREFACE.startswith(data):
                self.fresh = data
                return
            self.fresh = None
            if data.startswith(H2_PREFACE):
                self._switch_to_h2(data, None)
                return
        if self.h2c is not None:
            self._upgrade_to_h2(data)
            return
        if self.tunnel:
            up = self.upstream
            if up is not None and up.transport is not None:
                up.transport.write(data)
            return
        if self.upgrading:
            # Bytes after an Upgrade request head, before the tunnel is up.
            self._buffer_body(self.current, data)
            return
        if self.parse_error:
            return
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade as e:
            if self.h2c is not None:
                self._upgrade_to_h2(data[e.args[0] :])
            else:
                self._upgrade_requested(data[e.args[0] :])
        except HttpParserError as e:
            self._bad_request(e)

    def eof_received(self) -> bool:
        if self.tunnel:
            self.client_eof = True
            up = self.upstream
            if up is not None and up.transport is not None and up.transport.can_write_eof():
                up.transport.write_eof()
            return not self.upstream_eof
        # A client that stops sending has gone away (as Go's server treats it):
        # close, which aborts whatever it had in flight.
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        server = self.server
        server.conns.discard(self)
        self.pipeline.clear()
        req = self.current
        if req is not None and req.phase != DONE:
            if req.phase == TUNNEL:
                up = self.upstream
                self.upstream = None
                if up is not None:
                    up.client = None
                    up.close()  # graceful: bytes already queued still go out
            else:
                self._drop_upstream()
            if req.phase < RESPONDING:
                req.status = 499
            self._end(req)
        server.connection_closed()

    def pause_writing(self) -> None:
        self.write_paused = True
        up = self.upstream
        if up is not None and up.transport is not None:
            up.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        up = self.upstream
        if up is not None and up.transport is not None:
            up.transport.resume_reading()

    # -- httptools callbacks (request parsing) ------------------------------

    def on_message_begin(self) -> None:
        self.reading = Request()
        self.head_bytes = 0
        self.head_count = 0
        # the sweeper's clock (0.1 s resolution) is plenty for a 30 s limit
        self.head_started = self.server.now

    def on_url(self, url: bytes) -> None:
        req = self.reading
        assert req is not None
        req.target += url
        self.head_bytes += len(url)
        if self.head_bytes > self.max_head_bytes:
            self.parse_error = 431
            raise _HeadTooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        req = self.reading
        assert req is not None
        size = self.head_bytes + len(name) + len(value) + 4
        self.head_bytes = size
        count = self.head_count + 1
        self.head_count = count
        if size > self.max_head_bytes or count > self.max_headers:
            self.parse_error = 431
            raise _HeadTooLarge
        lname = name.lower()
        req.lines.append((lname, name + b": " + value + b"\r\n"))
        if lname in self.capture:
            h = req.h
            prev = h.get(lname)
            h[lname] = value if prev is None else prev + b", " + value

    def on_headers_complete(self) -> None:
        req = self.reading
        assert req is not None
        parser = self.parser
        self.head_started = 0.0
        req.method = parser.get_method()
        req.version = parser.get_http_version()
        req.keep_alive = parser.should_keep_alive()
        req.upgrade = parser.should_upgrade() and req.method != b"CONNECT"
        h = req.h
        te = h.get(b"transfer-encoding")
        if te is not None:
            req.chunked = True
        if self.max_body_bytes:
            length = h.get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
                self.parse_error = 413  # refused before a byte of it is read
                raise _HeadTooLarge
        req.last_read = self.server.now
        expect = h.get(b"expect")
        if expect is not None and expect.lower() == b"100-continue":
            req.expect_continue = True
        if (
            req.upgrade
            and b"http2-settings" in h
            and not req.chunked
            and self.current is None
            and not self.pipeline
            and b"h2c" in connection_tokens(h.get(b"upgrade", b""))
            and int(h.get(b"content-length", b"0") or 0) <= self.server.limits.body_buffer
        ):
            # Upgrade: h2c (RFC 7540 section 3.2): the switch happens once the body, if
            # any, is in (``_upgrade_to_h2``); the request becomes stream 1
            self.h2c = req
            req.body = []
            return
        if self.current is None and not self.pipeline:
            self._start(req)
        else:
            self.pipeline.append(req)
            self._pause(_PAUSE_PIPELINE)

    def on_body(self, body: bytes) -> None:
        req = self.reading
        if req is None:
            return
        req.body_read += len(body)
        req.last_read = self.server.now
        if self.max_body_bytes and req.body_read > self.max_body_bytes:
            self.parse_error = 413
            raise _HeadTooLarge
        if req is self.current and req.phase >= SENT:
            up = self.upstream
            if up is not None and up.transport is not None and req.phase < DONE:
                if req.chunked:
                    up.transport.writelines((b"%x\r\n" % len(body), body, b"\r\n"))
                else:
                    up.transport.write(body)
            # else: the response is over or failed; the rest of the body is dropped
            return
        self._buffer_body(req, body)

    def on_message_complete(self) -> None:
        req = self.reading
        if req is None:
            return
        self.reading = None
        req.body_done = True
        if req is self.current and SENT <= req.phase < DONE and req.chunked:
            up = self.upstream
            if up is not None and up.transport is not None:
                up.transport.write(b"0\r\n\r\n")

    # -- handler API ----------------------------------------------------------

    def forward(
        self,
        pool: Pool,
        *,
        drop: frozenset[bytes] = FORWARD_DROP,
        host: bytes | None = None,
        extra: bytes = b"",
    ) -> None:
        """Send the current request to ``pool``'s target.

        ``drop``: lower-case names not forwarded (must include ``FORWARD_DROP``);
        ``host``: the Host to send (default: the client's); ``extra``: header
        lines (``b"Name: value\\r\\n"``) to add. Can be called again after
        ``on_upstream_error`` to try another target.
        """
        req = self.current
        if req is None or req.phase >= SENT:
            return
        h = req.h
        # Positional: keyword arguments cost measurably on this per-request call.
        req.head_out = request_head(
            req.method,
            req.target,
            req.lines,
            drop,
            # HTTP/1.0 may omit Host; HTTP/1.1 needs one
            host if host is not None else h.get(b"host") or pool.authority,
            self.client_ip,
            h.get(b"x-forwarded-for"),
            h.get(b"connection"),
            h[b"transfer-encoding"] if req.chunked else None,
            h.get(b"upgrade", b"") if req.upgrade else None,
            extra,
        )
        req.phase = CONNECTING
        self.pool = pool
        if req.upgrade:
            pool.connect(self, False)  # a tunnel never goes back to the pool
        else:
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
        """Answer the current request locally (nothing was sent to the client yet);
        ``recorded``: the status the handler and metrics see, when not ``status`` (a
        gRPC-shaped error is a 200 on the wire)."""
        req = self.current
        if req is None or req.phase >= RESPONDING:
            return
        self._drop_upstream()
        if not req.body_done:
            req.keep_alive = False  # the rest of the body would be taken for a request
        req.phase = RESPONDING
        req.status = recorded or status
        req.local = True
        req.resp_size = 0 if req.method == b"HEAD" else len(body)
        close = not req.keep_alive or self.server.closing or req.upgrade
        if close:
            req.keep_alive = False
        head = b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\nContent-Type: %s\r\n%s%s\r\n" % (
            status,
            _REASONS.get(status, b"Unknown"),
            len(body),
            content_type,
            headers,
            b"Connection: close\r\n" if close else b"",
        )
        if req.method == b"HEAD" or not body:
            self._write(head)
        else:
            self._write(head + body)
        self._end(req)

    # -- upstream API (called by UpstreamConnection / UpstreamPool) ----------

    def upstream_ready(self, up: UpstreamConnection) -> None:
        req = self.current
        assert req is not None
        self.upstream = up
        req.phase = SENT
        t = up.transport
        assert t is not None
        if self.write_paused:
            t.pause_reading()
        head = req.head_out
        body = req.body
        if body:
            parts = [head]
            if req.chunked and not req.upgrade:
                for chunk in body:
                    parts += (b"%x\r\n" % len(chunk), chunk, b"\r\n")
            else:
                parts += body
            if req.body_done and req.chunked:
                parts.append(b"0\r\n\r\n")
            t.writelines(parts)
            req.body = None
            req.body_size = 0
            if self.paused & _PAUSE_BUFFER:
                self._resume(_PAUSE_BUFFER)
        elif req.body_done and req.chunked:
            t.writelines((head, b"0\r\n\r\n"))
        else:
            t.write(head)
        if req.expect_continue and not req.body_done:
            self._write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def upstream_head(self, up: UpstreamConnection, status: int, lines: list[bytes]) -> None:
        req = self.current
        assert req is not None
        if self.refused(req, status, lines):
            return
        req.phase = RESPONDING
        req.status = status
        if status == 101:
            extra = b"Connection: Upgrade\r\nUpgrade: " + (up.upgrade_value or b"") + b"\r\n"
            self.resp_mode = LENGTH
        else:
            mode = self.resp_mode = response_framing(status, up.has_length, up.no_body, req.version)
            req.keep_alive, extra = persistence(
                mode, req.keep_alive, self.server.closing, req.upgrade, req.version
            )
            if mode == CHUNKED:
                extra = b"Transfer-Encoding: chunked\r\n" + extra
        lines.append(extra)
        lines.append(b"\r\n")
        # The reason phrase is the standard one for the code, as Go's proxy
        # writes it, whatever the app sent.
        status_line = STATUS_LINES.get(status) or b"HTTP/1.1 %d Unknown\r\n" % status
        self._write(status_line + b"".join(lines))

    def upstream_body(self, data: bytes) -> None:
        req = self.current
        if req is None:
            return
        if self.resp_mode == CHUNKED:
            chunk = (b"%x\r\n" % len(data), data, b"\r\n")
            batch = self.batch
            if batch is not None:
                batch += chunk
            elif self.transport is not None:
                self.transport.writelines(chunk)
        else:
            self._write(data)
        req.resp_size += len(data)
        if req.idle_timeout:
            req.last_write = _monotonic()

    def upstream_trailers(self, up: UpstreamConnection, lines: list[bytes]) -> None:
        req = self.current
        if req is not None and self.upstream is up:
            req.trailers = lines

    def upstream_done(self, up: UpstreamConnection, keep_alive: bool) -> None:
        req = self.current
        if req is None or self.upstream is not up:
            return
        if self.resp_mode == CHUNKED:
            # trailers go in the last chunk (RFC 9112 section 7.1.2); without chunking
            # an HTTP/1.1 response has nowhere to carry them
            trailers = req.trailers
            self._write(b"0\r\n" + b"".join(trailers) + b"\r\n" if trailers else b"0\r\n\r\n")
        elif self.resp_mode == CLOSE:
            req.keep_alive = False
        self.upstream = None
        if keep_alive and req.body_done and not req.upgrade:
            if self.write_paused and up.transport is not None:
                up.transport.resume_reading()
            up.pool.release(up)
        else:
            up.client = None
            up.close()
        self._end(req)

    def upstream_lost(self, up: UpstreamConnection, exc: Exception | None) -> None:
        """The upstream connection closed while serving us."""
        req = self.current
        if req is not None and req.phase == TUNNEL and self.upstream is up:
            self.upstream = None
            self._end(req)
            self._close()
            return
        ClientSide.upstream_lost(self, up, exc)

    def upstream_upgraded(self, up: UpstreamConnection, rest: bytes) -> None:
        req = self.current
        if req is None or self.upstream is not up:
            return
        if up.status != 101 or not req.upgrade:
            self._drop_upstream()
            self._truncate(req)
            return
        req.phase = TUNNEL
        self.tunnel = True
        self.upgrading = False
        if rest:
            self._write(rest)
        body = req.body
        req.body = None
        if body and up.transport is not None:
            up.transport.writelines(body)
        self._resume(_PAUSE_BUFFER)

    def tunnel_from_upstream(self, data: bytes) -> None:
        t = self.transport
        if t is not None:
            t.write(data)

    def tunnel_upstream_eof(self) -> bool:
        """Upstream half-closed a tunnel; returns whether to keep its transport open."""
        self.upstream_eof = True
        t = self.transport
        if t is not None and t.can_write_eof():
            t.write_eof()
        if self.client_eof:
            req = self.current
            if req is not None:
                self._end(req)
            self._close()
            return False
        return True

    def upstream_write_paused(self, paused: bool) -> None:
        if paused:
            self._pause(_PAUSE_UPSTREAM)
        else:
            self._resume(_PAUSE_UPSTREAM)

    def transport_write_lines(self, lines: list[bytes]) -> None:
        t = self.transport
        if t is not None:
            t.writelines(lines)

    # -- server API -------------------------------------------------------------

    def check_idle(self, now: float, limits: Limits) -> None:
        if self.transport is None:
            return
        reading = self.reading
        if reading is not None and not self.head_started and not reading.body_done:
            # A body is due. Only a client that stops sending it is timed
            # out, not one whose reading this proxy paused (backpressure).
            if not self.paused and now - reading.last_read >= limits.body_timeout:
                if reading is self.current and reading.phase < RESPONDING:
                    self.fail(408, b"request-timeout", b"request body not received in time")
                else:
                    if self.current is not None:
                        self._end(self.current)
                    self._close()
            return
        if self.current is not None:
            return
        if self.head_started:
            if now - self.head_started >= limits.header_timeout:
                self._raw_error(408, b"request-timeout", b"request head not received in time")
        elif now - self.idle_since >= limits.keepalive_timeout:
            self._close()

    def close_if_idle(self) -> None:
        if self.current is None and not self.head_started:
            self._close()

    @classmethod
    def take_over(
        cls,
        old: object,
        server: Server,
        transport: asyncio.Transport,
        client_ip: bytes,
        *,
        first: bool,
        req: Request | None = None,
        pool: Pool | None = None,
        upstream: UpstreamConnection | None = None,
        arm: bool = True,
    ) -> ServerConnection:
        """A general connection for a transport that a hop's fast path (``old``) served
        until now (docs/http.md, "Fast paths"): at a request boundary, or with ``req`` in
        flight (phase CONNECTING, or SENT to ``upstream``). It takes ``old``'s place in the
        server's sets, on the transport and on the upstream; the fast path then passes on
        the event that took the connection off its path (its bytes, an upstream's failure,
        a timeout) to the connection returned. ``req``'s timers are armed here from the
        server's ``Timeouts``, from ``req.started`` (when the request came, not when it was
        handed over), unless ``arm`` is False (the fast path set them, as its handler
        would).

        ``first``: no request was read yet, so HTTP/2's preface may still come."""
        conn = cls(server)
        conn.transport = transport
        conn.client_ip = client_ip
        conn.idle_since = server.now
        if not first:
            conn.fresh = None
        server.conns.discard(old)
        server.active.discard(old)
        server.conns.add(conn)
        if req is not None:
            if arm:
                conn.arm(req, req.started)
            conn.current = req
            conn.pool = pool
            server.active.add(conn)
            if upstream is not None:
                conn.upstream = upstream
                upstream.quick = None
                # A fast exchange has read nothing of its response here (what it read
                # went with it or comes again): the upstream as a general exchange
                # finds it, whatever its last one left.
                if upstream.client is old:
                    upstream.attach(conn, req.method == b"HEAD")
                else:  # it was lost: what retries it asks whether it read anything
                    upstream.got_bytes = False
        transport.set_protocol(conn)
        return conn

    # -- internals -------------------------------------------------------------

    def _start(self, req: Request) -> None:
        if req.method == b"CONNECT":
            self.current = req
            req.keep_alive = False
            self.server.active.add(self)
            self.fail(405, b"bad-request", b"CONNECT is not supported")
            return
        self.arm(req)
        self.current = req
        self.resp_mode = LENGTH
        self.server.active.add(self)
        self.handler.on_request(self, req)

    def _end(self, req: Request) -> None:
        """The exchange is over (answered, failed or abandoned)."""
        if req.phase == DONE:
            return
        req.phase = DONE
        self.server.active.discard(self)
        if req.started:  # the handler saw it (CONNECT is refused before)
            try:
                self.handler.on_finish(self, req)
            except Exception:
                log.exception("handler.on_finish failed")
        self._flush()
        if self.transport is None:
            self.current = None
            return
        self.current = None
        # A body the response did not wait for would be read as the next
        # request: close instead of draining it.
        if not req.keep_alive or not req.body_done or self.server.closing or self.parse_error:
            self._close()
            return
        self.idle_since = self.server.now
        if self.pipeline:
            self._pump()

    def _pump(self) -> None:
        # A loop, not recursion: many pipelined requests answered locally
        # would otherwise nest one stack frame set per request.
        if self.pumping:
            return
        self.pumping = True
        try:
            while self.current is None and self.pipeline and self.transport is not None:
                req = self.pipeline.popleft()
                if not self.pipeline:
                    self._resume(_PAUSE_PIPELINE)
                self._start(req)
        finally:
            self.pumping = False

    def _timeout(self, req: Request) -> None:
        self._drop_upstream()
        if req.phase < RESPONDING:
            self.fail(504, b"timeout", self.handler.timeout_body)
        else:
            # The status is out; end the response the way its framing allows.
            if self.resp_mode == CHUNKED:
                text = self.handler.timeout_body
                self._write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(text), text))
            req.keep_alive = False
            self._end(req)
            self._close()

    def _cut(self, req: Request) -> None:
        self._truncate(req)

    def _truncate(self, req: Request) -> None:
        """The upstream failed mid-response: close so the client sees a cut body."""
        req.keep_alive = False
        self._end(req)
        self._close()

    def _drop_upstream(self) -> None:
        up = self.upstream
        if up is not None:
            self.upstream = None
            up.client = None
            up.abort()

    def _buffer_body(self, req: Request | None, data: bytes) -> None:
        if req is None:
            return
        if req.body is None:
            req.body = [data]
        else:
            req.body.append(data)
        req.body_size += len(data)
        if req.body_size > self.server.limits.body_buffer:
            self._pause(_PAUSE_BUFFER)

    def _upgrade_requested(self, rest: bytes) -> None:
        # httptools stops at the end of an Upgrade (or CONNECT) head; the
        # request was started (or queued) by on_headers_complete.
        req = (
            self.current
            if self.current is not None
            else (self.pipeline[-1] if self.pipeline else None)
        )
        if req is None:
            return
        req.body_done = True
        self.upgrading = True
        if rest:
            self._buffer_body(req, rest)

    def _switch_to_h2(self, data: bytes, upgraded: tuple[Request, bytes] | None) -> None:
        """Hand the transport to an HTTP/2 connection (``http2.H2ServerConnection``);
        this protocol object is done."""
        from .http2 import H2ServerConnection

        t = self.transport
        if t is None:
            return
        self.transport = None
        self.server.conns.discard(self)
        H2ServerConnection(self.server, self.client_ip).start(t, data, upgraded)

    def _upgrade_to_h2(self, data: bytes) -> None:
        """Bytes after an ``Upgrade: h2c`` head: its body (Content-Length), then the
        client's preface. Once the body is in, 101 and HTTP/2 from there."""
        req = self.h2c
        assert req is not None
        body = req.body
        assert body is not None
        if data:
            body.append(data)
            req.body_size += len(data)
        length = int(req.h.get(b"content-length", b"0") or 0)  # at most body_buffer
        if req.body_size < length:
            return
        received = b"".join(body)
        req.body = [received[:length]] if length else None
        req.body_size = length
        req.body_done = True
        rest = received[length:]
        settings = req.h.pop(b"http2-settings")
        for name in (b"connection", b"upgrade"):
            req.h.pop(name, None)
        req.lines = [
            line
            for line in req.lines
            if line[0] not in (b"connection", b"upgrade", b"http2-settings")
        ]
        req.upgrade = False
        self.h2c = None
        t = self.transport
        if t is None:
            return
        t.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
        self._switch_to_h2(rest, (req, settings))

    def _bad_request(self, error: Exception) -> None:
        status = self.parse_error or 400
        self.parse_error = status
        if status == 431:
            reason, body = b"header-too-large", b"request head too large"
        elif status == 413:
            reason, body = (
                b"body-too-large",
                b"request body larger than %d bytes" % self.max_body_bytes,
            )
        else:
            reason, body = b"bad-request", b"malformed request: " + str(error).encode()
        req = self.current
        if req is not None and req.phase != DONE:
            # The bad bytes belong to the request being served (its body) or
            # to a pipelined one: either way this connection is done.
            req.keep_alive = False
            if req is self.reading:
                self.server.on_protocol_error(status)
                if req.phase < RESPONDING:
                    self.fail(status, reason, body)  # also drops the upstream exchange
                else:
                    self._drop_upstream()
                    self._truncate(req)
            return
        self._raw_error(status, reason, body)

    def _raw_error(self, status: int, reason: bytes, body: bytes) -> None:
        """An error outside any exchange (bad head, head timeout); closes."""
        t = self.transport
        if t is None:
            return
        body += b"\n"
        t.write(
            b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Connection: close\r\n%s\r\n%s"
            % (
                status,
                _REASONS.get(status, b"Error"),
                len(body),
                error_header(self.handler.hop, reason),
                body,
            )
        )
        self.server.on_protocol_error(status)
        self._close()

    def _write(self, data: bytes) -> None:
        batch = self.batch
        if batch is not None:
            batch.append(data)
        elif self.transport is not None:
            self.transport.write(data)

    def _flush(self) -> None:
        batch = self.batch
        if batch is not None:
            self.batch = None
            if batch and self.transport is not None:
                self.transport.writelines(batch)

    def _pause(self, why: int) -> None:
        if not self.paused and self.transport is not None:
            self.transport.pause_reading()
        self.paused |= why

    def _resume(self, why: int) -> None:
        if self.paused & why:
            self.paused &= ~why
            if not self.paused and self.transport is not None:
                self.transport.resume_reading()

    def _close(self) -> None:
        self._flush()
        t = self.transport
        if t is not None:
            t.close()


def bound_socket(host: str, port: int, *, backlog: int, reuse_port: bool) -> socket.socket | None:
    """A listening socket on ``host:port`` when ``host`` is one IP address, as
    ``loop.create_server`` would make it (``SO_REUSEADDR``, ``IPV6_V6ONLY`` for IPv6,
    ``SO_REUSEPORT`` if asked); None for a name or an empty host (all interfaces), which
    ``create_server`` resolves. Made here, the address needs no ``getaddrinfo``: a
    queue-proxy taking a replica listens on four ports while the app starts on the same
    CPU, and the first resolution in a process costs about 1-2 ms of CPU
    (docs/local-mode.md, "Cold start CPU")."""
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return None
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class Server:
    """A listener serving ``handler``; tracks its connections for timeouts and shutdown."""

    def __init__(
        self,
        handler: Handler,
        *,
        timeouts: Timeouts = Timeouts(),
        limits: Limits = Limits(),
    ) -> None:
        self.handler = handler
        self.timeouts = timeouts
        self.limits = limits
        self.capture = BASE_CAPTURE | handler.capture
        self.connection: Callable[[Server], asyncio.Protocol] = ServerConnection
        """What each accepted connection starts as: the general ``ServerConnection``, or a
        hop's own fast path that hands its connection over to one (``take_over``) for
        anything off its path (docs/http.md, "Fast paths")."""
        self.conns: set[Connection | H2Connection] = set()
        """Client connections: HTTP/1.1, or HTTP/2 (``http2.H2ServerConnection``)."""
        self.active: set[Connection | H2Exchange] = set()
        """What has a request in flight: an HTTP/1.1 connection or an HTTP/2 stream."""
        self.closing = False
        self.now = _monotonic()
        """A clock the sweeper refreshes every 0.1 s, for coarse per-connection timers."""
        self.protocol_errors: dict[int, int] = {}
        self._listeners: list[asyncio.Server] = []
        self._sweeper: asyncio.TimerHandle | None = None
        self._ticks = 0
        self._idle_waiters: list[asyncio.Future[None]] = []

    async def listen(
        self, host: str, port: int, *, backlog: int = 2048, reuse_port: bool = False
    ) -> int:
        """Start accepting on ``host:port`` (0 = a free port); returns the bound port.

        ``reuse_port``: several processes share the port and the kernel spreads
        connections over them (several local activators behind one address)."""
        loop = asyncio.get_running_loop()
        sock = bound_socket(host, port, backlog=backlog, reuse_port=reuse_port)
        if sock is not None:
            # the backlog again: create_server listens on a given socket with its own
            srv = await loop.create_server(
                lambda: self.connection(self), sock=sock, backlog=backlog
            )
        else:
            srv = await loop.create_server(
                lambda: self.connection(self),
                host,
                port,
                backlog=backlog,
                reuse_address=True,
                reuse_port=reuse_port or None,
            )
        self._listeners.append(srv)
        if self._sweeper is None:
            self._sweeper = loop.call_later(0.1, self._sweep)
        return int(srv.sockets[0].getsockname()[1])

    def stop_listening(self) -> None:
        """Refuse new connections from now on (the listening sockets close)."""
        for srv in self._listeners:
            srv.close()

    def begin_shutdown(self) -> None:
        """Close idle connections; busy ones close after their current exchange."""
        self.closing = True
        for conn in list(self.conns):
            conn.close_if_idle()

    async def wait_closed(self) -> None:
        """Wait until every connection has closed."""
        while self.conns:
            fut = asyncio.get_running_loop().create_future()
            self._idle_waiters.append(fut)
            await fut
        for srv in self._listeners:
            await srv.wait_closed()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def abort_all(self) -> None:
        for conn in list(self.conns):
            if conn.transport is not None:
                conn.transport.abort()

    @property
    def in_flight(self) -> int:
        return len(self.active)

    def connection_closed(self) -> None:
        if not self.conns and self._idle_waiters:
            for fut in self._idle_waiters:
                if not fut.done():
                    fut.set_result(None)
            self._idle_waiters.clear()

    def on_protocol_error(self, status: int) -> None:
        self.protocol_errors[status] = self.protocol_errors.get(status, 0) + 1

    def _sweep(self) -> None:
        now = self.now = _monotonic()
        for exchange in list(self.active):
            exchange.check_timeouts(now)
        self._ticks += 1
        if self._ticks % 10 == 0:
            limits = self.limits
            for conn in list(self.conns):
                conn.check_idle(now, limits)
            try:
                self.handler.sweep(now)
            except Exception:
                log.exception("handler sweep failed")
        self._sweeper = asyncio.get_running_loop().call_later(0.1, self._sweep)
