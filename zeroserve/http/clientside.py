"""What an HTTP/1.1 client connection (``server.ServerConnection``) and an HTTP/2 stream
(``http2.H2Stream``) share: the client side of one exchange at a time, as the hop's
``Handler`` and the upstream side see it (docs/http.md, "The request path" and "HTTP/2").

Each subclass says how it writes (``respond``), how it cuts a response that has started
(``_cut``: a closed connection, or a reset stream) and what its timeout does once the
status is out (``_timeout``); the decisions below are the same for both.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .exchange import CONNECTING, RESPONDING, SENT, TUNNEL, WAITING, Request, UpstreamRefused
from .headers import error_header, grpc_error_headers, is_grpc

if TYPE_CHECKING:
    from .upstream import Pool, UpstreamConnection

_monotonic = time.monotonic


class ClientSide:
    """The shared half of a client side; subclasses set the attributes below."""

    __slots__ = ()

    current: Request | None
    upstream: UpstreamConnection | None
    pool: Pool | None
    handler: Any  # server.Handler
    server: Any  # server.Server (its ``timeouts``)

    if TYPE_CHECKING:  # what each subclass provides

        def respond(
            self,
            status: int,
            body: bytes = b"",
            headers: bytes = b"",
            content_type: bytes = b"text/plain; charset=utf-8",
            *,
            recorded: int = 0,
        ) -> None: ...

        def _cut(self, req: Request) -> None: ...  # end a started response, visibly cut

        def _timeout(self, req: Request) -> None: ...

        def _drop_upstream(self) -> None: ...

    # -- shared ----------------------------------------------------------------------------

    @property
    def waiting_for_upstream(self) -> bool:
        req = self.current
        return req is not None and req.phase == CONNECTING

    def fail(self, status: int, reason: bytes, body: bytes, headers: bytes = b"") -> None:
        """A platform-generated error: ``respond`` plus the attribution header; to a gRPC
        request, gRPC's trailers-only shape (200, ``grpc-status``, ``grpc-message``, no
        body), the handler and the metrics still seeing ``status``."""
        attribution = error_header(self.handler.hop, reason) + headers
        req = self.current
        if req is not None and is_grpc(req.header(b"content-type")):
            self.respond(
                200,
                b"",
                attribution + grpc_error_headers(status, body),
                b"application/grpc",
                recorded=status,
            )
            return
        self.respond(status, body + b"\n", attribution)

    def arm(self, req: Request, now: float = 0.0) -> None:
        """The request's timers, from the server's ``Timeouts``, as the handler gets it
        (``now``: when it came, if not now: a request a fast path handed over)."""
        if not now:
            now = _monotonic()
        req.started = now
        req.last_write = now
        t = self.server.timeouts
        if t.total:
            req.deadline = now + t.total
        if t.response_start:
            req.start_deadline = now + t.response_start
        req.idle_timeout = t.idle

    def check_timeouts(self, now: float) -> None:
        req = self.current
        if req is None or req.phase >= TUNNEL:
            return
        if req.wait_deadline and req.phase == WAITING and now >= req.wait_deadline:
            req.wait_deadline = 0.0
            self.handler.on_wait_timeout(self, req)
            return
        if (
            (req.deadline and now >= req.deadline)
            or (req.start_deadline and req.phase < RESPONDING and now >= req.start_deadline)
            or (req.idle_timeout and now - req.last_write >= req.idle_timeout)
        ):
            self._timeout(req)

    def upstream_connect_failed(self, error: Exception) -> None:
        req = self.current
        if req is None or req.phase != CONNECTING:
            return
        req.phase = WAITING
        self.handler.on_upstream_error(self, req, error)

    def refused(self, req: Request, status: int, lines: list[bytes]) -> bool:
        """An upstream 5xx head that means nothing reached the app (the handler's
        ``retry_response``): nothing was written to the client yet, so the answer and its
        connection are dropped and the handler sends the request elsewhere."""
        if status < 500 or not self.handler.retry_response(req, status, lines):
            return False
        self._drop_upstream()
        req.phase = WAITING
        self.handler.on_upstream_error(
            self, req, UpstreamRefused(f"the upstream answered {status}")
        )
        return True

    def upstream_lost(self, up: UpstreamConnection, exc: Exception | None) -> None:
        """The upstream connection (or stream) closed while serving us."""
        req = self.current
        if req is None or self.upstream is not up:
            return
        self.upstream = None  # type: ignore[misc]  # (a slot of each subclass)
        if req.phase == SENT:
            pool = self.pool
            if up.reused and not up.got_bytes and not req.has_body and pool is not None:
                # The server closed a kept-alive connection as we reused it (or refused
                # the stream); nothing reached the app, so a fresh one is safe.
                req.phase = CONNECTING
                pool.connect(self, req.method == b"HEAD")  # type: ignore[arg-type]
            else:
                self.fail(
                    502,
                    self.handler.closed_reason,
                    b"upstream closed the connection before responding",
                )
        elif req.phase == RESPONDING:
            self._cut(req)

    def upstream_failed(self, up: UpstreamConnection, message: str, after_bytes: bool) -> None:
        """The upstream broke the protocol."""
        req = self.current
        if req is None or self.upstream is not up:
            return
        self._drop_upstream()
        if req.phase < RESPONDING:
            self.fail(502, self.handler.closed_reason, message.encode())
        else:
            self._cut(req)
