"""One request/response exchange and the settings every proxy hop shares.

``Request`` holds what the parser found in a request head plus the state of
its exchange; it is the only object allocated per request besides the header
lines themselves. Handlers (the queue-proxy, the activator) read its fields
and keep their own per-request state in ``ctx`` and ``slot``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
"""What a client speaking HTTP/2 with prior knowledge sends first (RFC 9113 section 3.4)."""

# Exchange phases, in order. A request moves forward only.
WAITING = 0  # handed to the handler, which has not forwarded it yet (queued)
CONNECTING = 1  # forwarded, waiting for an upstream connection
SENT = 2  # request head sent upstream, no response byte yet
RESPONDING = 3  # response head written to the client
TUNNEL = 4  # upgraded: bytes pass both ways untouched
DONE = 5


class Request:
    """A parsed request and the state of its exchange."""

    __slots__ = (
        "attempts",
        "body",
        "body_done",
        "body_read",
        "body_size",
        "chunked",
        "ctx",
        "deadline",
        "expect_continue",
        "h",
        "head_out",
        "idle_timeout",
        "keep_alive",
        "last_read",
        "last_write",
        "lines",
        "local",
        "method",
        "phase",
        "resp_size",
        "slot",
        "start_deadline",
        "started",
        "status",
        "target",
        "trace",
        "trailers",
        "upgrade",
        "version",
        "wait_deadline",
    )

    def __init__(self) -> None:
        self.method = b""
        self.target = b""
        self.version = "1.1"
        self.keep_alive = True
        self.upgrade = False
        # (lower-cased name, b"Name: value\r\n") in arrival order
        self.lines: list[tuple[bytes, bytes]] = []
        # values of the headers the server captures (see Server.capture)
        self.h: dict[bytes, bytes] = {}
        self.head_out = b""  # the head as forwarded upstream
        self.body: list[bytes] | None = None  # body bytes not yet sent upstream
        self.body_size = 0
        self.body_done = False
        self.body_read = 0  # body bytes received so far
        self.last_read = 0.0  # when body bytes last arrived (coarse clock)
        self.chunked = False
        self.expect_continue = False
        self.phase = WAITING
        self.status = 0
        self.resp_size = 0  # response body bytes sent (the request log's .Response.Size)
        self.local = False  # answered by this hop (respond/fail), not relayed
        self.started = 0.0  # 0 until the handler sees the request
        self.deadline = 0.0  # absolute monotonic time; 0 = none
        self.start_deadline = 0.0
        self.idle_timeout = 0.0
        self.last_write = 0.0
        self.wait_deadline = 0.0  # while WAITING: when the handler gives up on it
        self.attempts = 0  # upstreams tried (the handler's retry count)
        self.slot: Any = None  # handler: what it holds (a breaker slot, a replica)
        self.ctx: Any = None  # handler: per-request context
        self.trace: Any = None  # the hop's spans while tracing is on (zeroserve/otel.py)
        self.trailers: list[bytes] | None = None  # response trailers from an HTTP/2 upstream

    @property
    def has_body(self) -> bool:
        return self.chunked or self.h.get(b"content-length", b"0") != b"0"

    def header(self, lname: bytes) -> bytes | None:
        """First value of a header by lower-case name (a scan: not for the hot path)."""
        for name, line in self.lines:
            if name == lname:
                return line.split(b":", 1)[1].strip()
        return None


class UpstreamRefused(Exception):
    """The upstream answered, but with an error meaning it did not take the request."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-request timeouts (docs/http.md, "Limits and timeouts"; Knative's are in
    knative/serving `pkg/http/handler/timeout.go`), seconds; 0 disables one."""

    total: float = 300.0
    """From arrival to the end of the response (``timeoutSeconds``)."""
    response_start: float = 0.0
    """From arrival to the first response byte (``responseStartTimeoutSeconds``)."""
    idle: float = 0.0
    """Longest gap between writes to the client (``idleTimeoutSeconds``)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Connection limits of a listener; the defaults are documented in the README."""

    max_head_bytes: int = 64 * 1024
    """Request line plus headers; more -> 431 and the connection closed."""
    max_headers: int = 200
    """Header lines per request; more -> 431."""
    header_timeout: float = 30.0
    """Seconds to receive a complete request head once it started -> 408."""
    keepalive_timeout: float = 75.0
    """Seconds an idle client connection is kept open."""
    body_buffer: int = 64 * 1024
    """Body bytes buffered while a request waits before reading pauses."""
    max_body_bytes: int = 0
    """Largest request body; more -> 413 and the connection closed (0 = no limit)."""
    body_timeout: float = 60.0
    """Seconds without request-body bytes while a body is due (and the proxy is
    not itself holding reading back) -> 408 and the connection closed."""
