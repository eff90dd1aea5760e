"""The queue-proxy's fast path: the common exchange with the least Python per request.

Nearly every request through a queue-proxy is alike: a small HTTP/1.1 request with no
body, whose head arrives in one read, answered by the app with a small response whose
head and body arrive in one read. ``FastConnection`` serves exactly that exchange with
one function per side, as the work floor does (benchmarks/h1floor.py): the request head
is rebuilt from its lines in one pass (Knative's header rules, docs/queue-proxy.md), and
the response is written to the client as the app sent it, once checked to already be
what the general path would write. ``httptools`` still reads every byte of both, so
nothing that the general path refuses passes here.

Anything else takes the connection off the fast path for good
(``ServerConnection.take_over``, docs/http.md "Fast paths"), at the point where the
general path would start to differ, and the event that did it is passed on to the
general connection, which does with it what it always does:

- on the request side, before anything is counted: a head split over reads, bytes
  after the head (a body, a pipelined request), HTTP/1.0 or ``Connection: close``,
  ``HEAD``, ``CONNECT``, ``Upgrade``, ``Expect``, ``Transfer-Encoding``,
  ``HTTP2-Settings``, a ``Connection`` option other than ``keep-alive``, a header that
  appears twice where the general path would join the values, a head over the limits,
  a health check, no free breaker slot, request logs or tracing on, an app spoken to
  in HTTP/2, HTTP/2's preface;
- with the request in flight (it is handed over as a ``Request`` in phase CONNECTING
  or SENT, its slot and statistics with it): a response not whole in one read, or not
  HTTP/1.1 with its standard reason phrase, a 1xx, 204 or 304, a hop-by-hop field, an
  app closing after it, the server shutting down; a failed connect, a lost app
  connection, a timeout, a lost client, a full write buffer on either side.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import TYPE_CHECKING, cast

from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser, HttpResponseParser

from zeroserve.http.exchange import CONNECTING, H2_PREFACE, SENT, Limits, Request
from zeroserve.http.headers import synthesize_forwarded
from zeroserve.http.server import STATUS_LINES, Server, ServerConnection, client_ip_of
from zeroserve.http.upstream import UpstreamConnection

from .handler import PROBE_USER_AGENTS

if TYPE_CHECKING:
    from .handler import QueueProxyHandler

_monotonic = time.monotonic

# What the request rebuild does with a header, by lower-case name; any other header is
# forwarded as it came.
_DROP = 0  # hop-by-hop or Knative's routing headers: not forwarded
_OFF = 1  # the general path's (a body, an upgrade, a health check ...)
_HOST = 2
_ORIGINAL_HOST = 3
_XFF = 4
_XFH = 5
_XFP = 6
_FORWARDED = 7
_USER_AGENT = 8
_PROXIED = 9
_CONNECTION = 10
_CONTENT_LENGTH = 11
_ACTIONS = {
    b"keep-alive": _DROP,
    b"proxy-connection": _DROP,
    b"proxy-authenticate": _DROP,
    b"proxy-authorization": _DROP,
    b"te": _DROP,
    b"trailer": _DROP,
    b"knative-serving-revision": _DROP,
    b"knative-serving-namespace": _DROP,
    b"transfer-encoding": _OFF,
    b"upgrade": _OFF,
    b"expect": _OFF,
    b"http2-settings": _OFF,
    b"k-network-probe": _OFF,
    b"k-kubelet-probe": _OFF,
    b"host": _HOST,
    b"k-original-host": _ORIGINAL_HOST,
    b"x-forwarded-for": _XFF,
    b"x-forwarded-host": _XFH,
    b"x-forwarded-proto": _XFP,
    b"forwarded": _FORWARDED,
    b"user-agent": _USER_AGENT,
    b"k-proxy-request": _PROXIED,
    b"connection": _CONNECTION,
    b"content-length": _CONTENT_LENGTH,
}

# A response field the general path would drop (upstream.py's hop-by-hop set); its
# head is then rebuilt, so such a response is not passed through.
_HOP_BY_HOP_FIELD = re.compile(
    rb"\r\n(?:connection|keep-alive|proxy-connection|proxy-authenticate|te|trailer"
    rb"|transfer-encoding|upgrade)[ \t]*:",
    re.IGNORECASE,
)
_OK = STATUS_LINES[200]
_NO_CALLBACKS = object()


class _ResponseEnds:
    """The fast path's response parser of one app connection, with its callbacks:
    ``ended`` is 3 after a read that holds exactly one whole message (1 for each start
    of a message, 2 for each end)."""

    __slots__ = ("ended", "parser")

    def __init__(self) -> None:
        self.ended = 0
        self.parser = HttpResponseParser(self)

    def on_message_begin(self) -> None:
        self.ended += 1

    def on_message_complete(self) -> None:
        self.ended += 2


class FastConnection(asyncio.Protocol):
    """One client connection of the serving port while it stays on the fast path (see
    the module docstring); ``Server.connection`` makes one per accepted connection."""

    __slots__ = (
        "client_ip",
        "current",
        "first",
        "handler",
        "idle_since",
        "max_head_bytes",
        "max_headers",
        "parser",
        "proxied",
        "raw",
        "server",
        "started",
        "successor",
        "transport",
        "upstream",
    )

    tunnel = False
    batch: list[bytes] | None = None

    def __init__(self, server: Server) -> None:
        self.server = server
        self.handler = cast("QueueProxyHandler", server.handler)
        self.transport: asyncio.Transport | None = None
        self.client_ip = b""
        self.parser = HttpRequestParser(_NO_CALLBACKS)
        """It only checks the bytes as the general path's parser would; where a message
        ends the fast path knows itself (a request has a body only if a field says so)."""
        self.first = True  # no request read yet: HTTP/2's preface may come
        self.current: bytes | None = None
        """While an exchange is in flight: the head sent to the app (also what the pool
        compares by identity to know the exchange is still the same)."""
        self.raw = b""  # the client's last request as it came (read again if handed over)
        self.started = 0.0
        self.proxied = False
        self.upstream: UpstreamConnection | None = None
        self.idle_since = 0.0
        self.successor: ServerConnection | None = None
        """The general connection this one was handed over to (then this one is done,
        but for a connection to the app that was being opened for it meanwhile)."""
        limits: Limits = server.limits
        self.max_head_bytes = limits.max_head_bytes
        self.max_headers = limits.max_headers

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.client_ip = client_ip_of(transport)
        self.idle_since = self.server.now
        self.server.conns.add(self)

    def data_received(self, data: bytes) -> None:
        handler = self.handler
        head = None
        if self.current is None and handler.request_log is None and handler.tracing.tracer is None:
            head = self._rebuild(data)
        if head is None:
            self._off().data_received(data)
            return
        now = _monotonic()
        if not handler.request_admitted(now, self.proxied):
            self._off().data_received(data)  # the general path queues it
            return
        self.first = False
        self.current = head
        self.raw = data
        self.started = now
        self.server.active.add(self)
        pool = handler.pool
        up = pool.take_idle()  # type: ignore[attr-defined]  # an UpstreamPool (h1_app)
        if up is None:
            pool.connect(self, False)  # then upstream_ready
            return
        # attached the least the fast path needs; leaving it, the rest is set (take_over)
        up.client = self
        up.quick = self._response
        self.upstream = up
        up.transport.write(head)

    def eof_received(self) -> bool:
        return False  # as the general path: a client that stops sending has gone away

    def connection_lost(self, exc: Exception | None) -> None:
        if self.current is not None:
            self._off().connection_lost(exc)
            return
        self.transport = None
        server = self.server
        server.conns.discard(self)
        server.connection_closed()

    def pause_writing(self) -> None:
        self._off().pause_writing()

    # -- the request ------------------------------------------------------------------------

    def _rebuild(self, data: bytes) -> bytes | None:
        """The head to send the app for a request that stays on the fast path, else None
        (then nothing was counted, and the general path gets the same bytes)."""
        end = data.find(b"\r\n\r\n")
        if end < 0 or end + 4 != len(data) or end > self.max_head_bytes:
            return None
        if self.first and H2_PREFACE.startswith(data[:24]):
            return None
        try:
            self.parser.feed_data(data)
        except (HttpParserError, HttpParserUpgrade):
            return None
        # One valid head, nothing after it: the parser took the request line's three
        # parts apart (its spaces are counted here). Keep-alive is HTTP/1.1's default; a
        # Connection field other than keep-alive, or a field declaring a body, leaves the
        # path below.
        request_line, _, fields = data[:end].partition(b"\r\n")
        lines = fields.split(b"\r\n") if fields else []
        if (
            len(lines) > self.max_headers
            or not request_line.endswith(b" HTTP/1.1")
            or request_line.count(b" ") != 2
            or request_line.startswith(b"HEAD ")
        ):
            return None
        out = [request_line]  # joined with CRLFs
        host = original = xff = xfh = xfp = None
        forwarded = proxied = False
        action_of = _ACTIONS.get
        for line in lines:
            colon = line.find(b":")  # there is one: the parser took the line
            action = action_of(line[:colon].lower())
            if action is None:
                out.append(line)
                continue
            if action == _DROP:
                continue
            if action == _OFF:
                return None
            value = line[colon + 1 :].lstrip()
            if action == _HOST:
                if host is not None:
                    return None
                host = value
                continue
            if action == _ORIGINAL_HOST:
                if original is not None:
                    return None
                original = value
                continue
            if action == _XFF:
                if xff is not None:
                    return None
                xff = value
                continue
            if action == _CONNECTION:
                if value.rstrip().lower() != b"keep-alive":
                    return None
                continue
            if action == _CONTENT_LENGTH and value.rstrip() != b"0":
                return None  # a body comes (or the general path refuses the head)
            if action == _USER_AGENT:
                if value.startswith(PROBE_USER_AGENTS):
                    return None
            elif action == _PROXIED:
                proxied = True
            elif action == _FORWARDED:
                forwarded = True
            elif action == _XFH:
                if xfh is not None:
                    return None
                xfh = value
            elif action == _XFP:
                if xfp is not None:
                    return None
                xfp = value
            out.append(line)
        ip = self.client_ip
        if original is None:
            original = host or self.handler.pool.authority
        out.append(b"Host: " + original)
        out.append(b"X-Forwarded-For: " + (xff + b", " + ip if xff else ip))
        if (xff is not None or xfh is not None or xfp is not None) and not forwarded:
            fwd = synthesize_forwarded(xff, xfh, xfp)
            if fwd is not None:
                out.append(b"Forwarded: " + fwd)
        out.append(b"\r\n")  # the empty line that ends the head
        self.proxied = proxied
        return b"\r\n".join(out)

    # -- the upstream side (``upstream.Downstream``) ------------------------------------------

    @property
    def waiting_for_upstream(self) -> bool:
        successor = self.successor
        if successor is not None:  # the pool's connect outlived the fast path
            return successor.waiting_for_upstream
        return self.current is not None and self.upstream is None

    def upstream_ready(self, up: UpstreamConnection) -> None:
        successor = self.successor
        if successor is not None:
            # Opened for this exchange before it was handed over: the exchange (or the
            # next one, pipelined) now waits for it on the general connection.
            req = successor.current
            up.attach(successor, req is not None and req.method == b"HEAD")
            successor.upstream_ready(up)
            return
        self.upstream = up
        up.quick = self._response
        t = up.transport
        assert t is not None and self.current is not None
        t.write(self.current)

    def _response(self, up: UpstreamConnection, data: bytes) -> None:
        """The app's bytes: written as they came if they are one whole response the
        general path would write unchanged, else the exchange leaves the fast path."""
        ends = up.fast_parser
        if ends is None:
            ends = up.fast_parser = _ResponseEnds()
        ends.ended = 0
        try:
            ends.parser.feed_data(data)
            ok = ends.ended == 3
        except (HttpParserError, HttpParserUpgrade):
            ok = False
        if ok:
            # One whole message, valid: its status line is "HTTP/1.x NNN ...". It passes
            # as it came if the general path would write the same: HTTP/1.1 with the
            # code's own reason phrase, a body (so a length: a close-delimited body would
            # not have ended), no hop-by-hop field (so the app keeps the connection).
            if data.startswith(_OK):
                status = 200
            else:
                status = int(data[9:12])
                line = STATUS_LINES.get(status)
                ok = (
                    line is not None
                    and data.startswith(line)
                    and status >= 200
                    and status != 204
                    and status != 304
                )
            # A small response is searched whole, body too (a field name that the
            # search finds in a body only sends that response the general path's way).
            size = len(data)
            ok = (
                ok
                and not self.server.closing
                and _HOP_BY_HOP_FIELD.search(
                    data, 0, size if size <= 1024 else data.find(b"\r\n\r\n") + 2
                )
                is None
            )
        if not ok:
            up.fast_parser = None  # it may have stopped anywhere in a message
            self._off()
            up.data_received(data)  # now through the general path's parser
            return
        t = self.transport
        if t is not None:
            t.write(data)
        up.quick = None
        self.upstream = None
        self.current = None
        up.pool.release(up)
        server = self.server
        server.active.discard(self)
        self.idle_since = server.now
        self.handler.request_done(_monotonic(), self.proxied, status, self.started)

    # Everything else the upstream side can report takes the exchange off the fast path.

    def upstream_connect_failed(self, error: Exception) -> None:
        if self.current is not None or self.successor is not None:
            self._off().upstream_connect_failed(error)

    def upstream_lost(self, up: UpstreamConnection, exc: Exception | None) -> None:
        if self.current is not None and self.upstream is up:
            self._off().upstream_lost(up, exc)

    def upstream_write_paused(self, paused: bool) -> None:
        self._off().upstream_write_paused(paused)

    def upstream_head(self, up: UpstreamConnection, status: int, lines: list[bytes]) -> None:
        self._off().upstream_head(up, status, lines)

    def upstream_body(self, data: bytes) -> None:
        self._off().upstream_body(data)

    def upstream_trailers(self, up: UpstreamConnection, lines: list[bytes]) -> None:
        self._off().upstream_trailers(up, lines)

    def upstream_done(self, up: UpstreamConnection, keep_alive: bool) -> None:
        self._off().upstream_done(up, keep_alive)

    def upstream_failed(self, up: UpstreamConnection, message: str, after_bytes: bool) -> None:
        self._off().upstream_failed(up, message, after_bytes)

    def upstream_upgraded(self, up: UpstreamConnection, rest: bytes) -> None:
        self._off().upstream_upgraded(up, rest)

    def tunnel_from_upstream(self, data: bytes) -> None:
        self._off().tunnel_from_upstream(data)

    def tunnel_upstream_eof(self) -> bool:
        return self._off().tunnel_upstream_eof()

    def transport_write_lines(self, lines: list[bytes]) -> None:
        self._off().transport_write_lines(lines)

    # -- the server's timers (``server.Connection``) -----------------------------------------

    def check_timeouts(self, now: float) -> None:
        if self.current is None:
            return
        t = self.server.timeouts
        age = now - self.started
        if (
            (t.total and age >= t.total)
            or (t.response_start and age >= t.response_start)
            or (t.idle and age >= t.idle)
        ):
            self._off().check_timeouts(now)

    def check_idle(self, now: float, limits: Limits) -> None:
        t = self.transport
        if (
            t is not None
            and self.current is None
            and now - self.idle_since >= (limits.keepalive_timeout)
        ):
            t.close()

    def close_if_idle(self) -> None:
        t = self.transport
        if t is not None and self.current is None:
            t.close()

    # -- leaving the fast path ------------------------------------------------------------------

    def _off(self) -> ServerConnection:
        """The general connection that serves this transport from now on, with the
        exchange in flight if there is one; this object is done (the same connection
        again if it was handed over already)."""
        if self.successor is not None:
            return self.successor
        t = self.transport
        assert t is not None
        self.transport = None
        req = self._request() if self.current is not None else None
        self.successor = ServerConnection.take_over(
            self,
            self.server,
            t,
            self.client_ip,
            first=self.first,
            req=req,
            pool=self.handler.pool,
            upstream=self.upstream,
        )
        return self.successor

    def _request(self) -> Request:
        """The exchange in flight as the general path keeps it: counted in, holding its
        slot, its head already built, its timers to run from when it came."""
        raw = self.raw
        lines = raw[: raw.find(b"\r\n\r\n")].split(b"\r\n")
        req = Request()
        req.method, req.target, _ = lines[0].split(b" ")
        capture = self.server.capture
        h = req.h
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            value = value.lstrip()
            lname = name.lower()
            req.lines.append((lname, name + b": " + value + b"\r\n"))
            if lname in capture:
                prev = h.get(lname)
                h[lname] = value if prev is None else prev + b", " + value
        assert self.current is not None
        req.head_out = self.current
        req.body_done = True
        req.phase = SENT if self.upstream is not None else CONNECTING
        req.started = self.started  # its timers run from then (take_over arms them)
        req.ctx = self.proxied
        req.slot = True
        return req
