"""A hop's fast path: its common exchange with the least Python per request.

Nearly every request through a hop is alike: a small HTTP/1.1 request with no body,
whose head arrives in one read, answered upstream with a small response whose head
and body arrive in one read. ``FastConnection`` serves exactly that exchange with one
function per side, as the work floor does (benchmarks/h1floor.py): the hop rebuilds the
request head from its lines in one pass (``_start``, each hop's own header rules), and
the response is written to the client as the upstream sent it, once checked to already
be what the general path would write. ``httptools`` still reads every byte of both, so
nothing that the general path refuses passes here.

Anything else takes the connection off the fast path for good
(``ServerConnection.take_over``, docs/http.md "Fast paths"), at the point where the
general path would start to differ, and the event that did it is passed on to the
general connection, which does with it what it always does:

- on the request side, before anything is counted: a head split over reads, bytes
  after the head (a body, a pipelined request), HTTP/1.0, ``HEAD``, a head over the
  limits, HTTP/2's preface, and whatever the hop's ``_start`` declines;
- with the request in flight (it is handed over as a ``Request`` in phase CONNECTING
  or SENT, with what the hop holds for it, ``_fill``): a response not whole in one
  read, or not HTTP/1.1 with its standard reason phrase, a 1xx or one of
  ``off_statuses``, a hop-by-hop field, an upstream closing after it, the server
  shutting down; a failed connect, a lost upstream connection, a timeout
  (``_expired``), a lost client, a full write buffer on either side.

A hop subclasses it (queueproxy/fastpath.py, activator/fastpath.py) and sets it as its
listener's ``Server.connection``.
"""

from __future__ import annotations

import abc
import asyncio
import re
from typing import TYPE_CHECKING, ClassVar, Final, cast

from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser, HttpResponseParser

from .exchange import CONNECTING, H2_PREFACE, SENT, Limits, Request
from .server import STATUS_LINES, Server, ServerConnection, client_ip_of

if TYPE_CHECKING:
    from .upstream import UpstreamConnection, UpstreamPool

# A response field the general path would drop (upstream.py's hop-by-hop set); its
# head is then rebuilt, so such a response is not passed through.
# Searched in the lower-cased bytes: lowering and a case-sensitive search take 0.28 µs
# of benchmarks/hoppython.py's response, an IGNORECASE search of it 0.41.
_find_hop_by_hop_field: Final = re.compile(
    rb"\r\n(?:connection|keep-alive|proxy-connection|proxy-authenticate|te|trailer"
    rb"|transfer-encoding|upgrade)[ \t]*:"
).search
_OK: Final = STATUS_LINES[200]
_NO_CALLBACKS: Final = object()

# The methods of bytes that each request calls, through Final names (the hops' head
# rebuilds use them too). Compiled, ``line.partition(b":")`` looks the method up by name
# at every call (mypyc has no primitive for them); ``partition(line, b":")`` calls it
# directly: 17 ns less a call on the benchmark machine (docs/http.md, "Compiling the hot
# path").
count: Final = bytes.count
find: Final = bytes.find
lower: Final = bytes.lower
lstrip: Final = bytes.lstrip
partition: Final = bytes.partition
rstrip: Final = bytes.rstrip
split: Final = bytes.split


class _ResponseEnds:
    """The fast path's response parser of one upstream connection, with its callbacks:
    ``ended`` is 3 after a read that holds exactly one whole message (1 for each start
    of a message, 2 for each end). ``feed`` is the parser's ``feed_data``, bound once
    (compiled, a method called on an object of a type mypyc does not know is looked up
    by name at each call)."""

    __slots__ = ("ended", "feed")

    def __init__(self) -> None:
        self.ended = 0
        self.feed = HttpResponseParser(self).feed_data

    def on_message_begin(self) -> None:
        self.ended += 1

    def on_message_complete(self) -> None:
        self.ended += 2


class FastConnection(asyncio.Protocol, abc.ABC):
    """One client connection of a listener while it stays on the fast path (see the
    module docstring); ``Server.connection`` makes one per accepted connection."""

    __slots__ = (
        "active",
        "check_head",
        "client_ip",
        "current",
        "first",
        "idle_since",
        "max_head_bytes",
        "max_headers",
        "pool",
        "raw",
        "server",
        "started",
        "successor",
        "transport",
        "upstream",
    )

    tunnel = False
    batch: list[bytes] | None = None
    off_statuses: ClassVar[frozenset[int]] = frozenset({204, 304})
    """Response codes that leave the path (besides 1xx): 204 and 304, whose framing the
    general path writes its own way, and any the hop's handler looks at. A class
    variable: compiled (zeroserve/compiled.py), an instance attribute with this default
    would build a new frozenset for every connection."""
    server_timers = True
    """``take_over`` arms a handed-over request's timers from the server's ``Timeouts``
    (False: ``_fill`` set them, as the hop's handler would)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.client_ip = b""
        self.check_head = HttpRequestParser(_NO_CALLBACKS).feed_data
        """A parser's ``feed_data`` (bound once, as ``_ResponseEnds.feed``): it only
        checks the bytes as the general path's parser would; where a message ends the
        fast path knows itself (a request has a body only if a field says so)."""
        self.active = server.active  # (the server's set, read here without a lookup)
        self.first = True  # no request read yet: HTTP/2's preface may come
        self.current: bytes | None = None
        """While an exchange is in flight: the head sent upstream (also what the pool
        compares by identity to know the exchange is still the same)."""
        self.raw = b""  # the client's last request as it came (read again if handed over)
        self.started = 0.0
        self.pool: UpstreamPool | None = None  # where the exchange in flight goes
        self.upstream: UpstreamConnection | None = None
        self.idle_since = 0.0
        self.successor: ServerConnection | None = None
        """The general connection this one was handed over to (then this one is done,
        but for a connection upstream that was being opened for it meanwhile)."""
        limits: Limits = server.limits
        self.max_head_bytes = limits.max_head_bytes
        self.max_headers = limits.max_headers

    # -- what each hop says -------------------------------------------------------------------

    @abc.abstractmethod
    def _start(self, data: bytes) -> UpstreamPool | None:
        """Admit the request in ``data`` (a whole read, not yet checked): set ``current``
        to the head to send and ``started`` to now, count the request in, and return the
        pool to send it to; or None, with nothing counted, to leave the path."""

    @abc.abstractmethod
    def _done(self, status: int) -> None:
        """The exchange in flight was answered with ``status``: count it out."""

    @abc.abstractmethod
    def _expired(self, now: float) -> bool:
        """Whether a timer of the exchange in flight has run out (the general path then
        answers it as it does)."""

    @abc.abstractmethod
    def _fill(self, req: Request) -> None:
        """What the hop's handler keeps in ``req`` for the exchange in flight (``ctx``,
        ``slot``; its timers too when ``server_timers`` is False)."""

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.client_ip = client_ip_of(transport)
        self.idle_since = self.server.now
        self.server.conns.add(self)

    def data_received(self, data: bytes) -> None:
        # Tested through a name, not ``self.current``: ``_start`` sets it, and a type
        # checker narrowing ``self.current`` to None over that call would take the
        # assertion below for false (mypyc compiles narrowing into runtime checks).
        in_flight = self.current
        if in_flight is None:
            pool = self._start(data)
            if pool is not None:
                self.first = False
                self.raw = data
                self.pool = pool
                self.active.add(self)
                up = pool.take_idle()
                if up is None:
                    pool.connect(self, False)  # then upstream_ready
                    return
                # attached the least the fast path needs; leaving it, the rest is set
                # (take_over)
                up.client = self
                up.quick = self._response
                self.upstream = up
                t = up.transport
                assert t is not None and self.current is not None  # (idle: open; set)
                t.write(self.current)
                return
        self._off().data_received(data)

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

    def _fields(self, data: bytes) -> list[bytes] | None:
        """``data``'s lines, if it is one valid bodiless-looking HTTP/1.1 head (not HEAD)
        and nothing after it, within the limits; else None. The request line comes first
        and two empty lines last (the head's end): a hop reads the field lines as
        ``lines[1:-2]``."""
        end = len(data) - 4
        if end < 0 or find(data, b"\r\n\r\n") != end or end > self.max_head_bytes:
            return None
        if self.first and H2_PREFACE.startswith(data[:24]):
            return None
        try:
            self.check_head(data)
        except (HttpParserError, HttpParserUpgrade):
            return None
        # One valid head, nothing after it: the parser took the request line's three
        # parts apart (its spaces are counted here).
        lines = split(data, b"\r\n")
        request_line = lines[0]
        fields = len(lines) - 3
        if (
            fields > self.max_headers
            # the general path counts 4 bytes a field beside its name and value: over
            # the limit by that count, it decides
            or end + fields > self.max_head_bytes
            or request_line[-9:] != b" HTTP/1.1"
            or count(request_line, b" ") != 2
            or request_line[:5] == b"HEAD "
        ):
            return None
        return lines

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
        """The upstream's bytes: written as they came if they are one whole response the
        general path would write unchanged, else the exchange leaves the fast path."""
        ends = up.fast_parser
        if ends is None:
            ends = up.fast_parser = _ResponseEnds()
        ends.ended = 0
        try:
            ends.feed(data)
            ok = ends.ended == 3
        except (HttpParserError, HttpParserUpgrade):
            ok = False
        if ok:
            # One whole message, valid: its status line is "HTTP/1.x NNN ...". It passes
            # as it came if the general path would write the same: HTTP/1.1 with the
            # code's own reason phrase, a body (so a length: a close-delimited body would
            # not have ended), no hop-by-hop field (so the upstream keeps the connection).
            if data.startswith(_OK):
                status = 200
            else:
                status = int(data[9:12])
                line = STATUS_LINES.get(status)
                ok = (
                    line is not None
                    and data.startswith(line)
                    and status >= 200
                    and status not in self.off_statuses
                )
            # A small response is searched whole, body too (a field name that the
            # search finds in a body only sends that response the general path's way).
            ok = (
                ok
                and not self.server.closing
                and _find_hop_by_hop_field(
                    lower(data if len(data) <= 1024 else data[: find(data, b"\r\n\r\n") + 2])
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
        self.active.discard(self)
        self.idle_since = self.server.now
        self._done(status)

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
        if self.current is not None and self._expired(now):
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
            pool=self.pool,
            upstream=self.upstream,
            arm=self.server_timers,
        )
        return self.successor

    def _request(self) -> Request:
        """The exchange in flight as the general path keeps it: counted in, holding what
        the hop holds for it, its head already built, its timers to run from when it
        came."""
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
        req.started = self.started  # its timers run from then (take_over or _fill arms them)
        self._fill(req)
        return req
