"""The queue-proxy's fast path: the common exchange with the least Python per request.

``QueueProxyFastConnection`` is the engine's fast path (zeroserve/http/fastpath.py,
docs/http.md "Fast paths") with the queue-proxy's rules: the request head is rebuilt
from its lines in one pass by Knative's header rules (docs/queue-proxy.md), the request
takes a breaker slot and is counted as the general path counts it
(``QueueProxyHandler.request_admitted`` and ``request_done``), and goes to the app.

Besides what takes any fast path off its path, the queue-proxy's leaves it, before
anything is counted, for: ``Connection: close`` or any ``Connection`` option other than
``keep-alive``, ``CONNECT``, ``Upgrade``, ``Expect``, ``Transfer-Encoding``, a
``Content-Length`` other than 0, ``HTTP2-Settings``, a header that appears twice where
the general path would join the values, a health check, no free breaker slot, request
logs or tracing on (and an app spoken to in HTTP/2 gets no fast path at all); with the
request in flight, the server's timeouts.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final, cast

from zeroserve.http.exchange import Request
from zeroserve.http.fastpath import FastConnection, lower, lstrip, partition, rstrip
from zeroserve.http.headers import synthesize_forwarded

from .handler import PROBE_USER_AGENTS

if TYPE_CHECKING:
    from zeroserve.http.server import Server
    from zeroserve.http.upstream import UpstreamPool

    from .handler import QueueProxyHandler

_monotonic: Final = time.monotonic

# What the request rebuild does with a header, by lower-case name; any other header is
# forwarded as it came.
_DROP: Final = 0  # hop-by-hop or Knative's routing headers: not forwarded
_OFF: Final = 1  # the general path's (a body, an upgrade, a health check ...)
_HOST: Final = 2
_ORIGINAL_HOST: Final = 3
_XFF: Final = 4
_XFH: Final = 5
_XFP: Final = 6
_FORWARDED: Final = 7
_USER_AGENT: Final = 8
_PROXIED: Final = 9
_CONNECTION: Final = 10
_CONTENT_LENGTH: Final = 11
_ACTIONS: Final = {
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


class QueueProxyFastConnection(FastConnection):
    """One serving-port connection while it stays on the fast path (module docstring)."""

    __slots__ = ("handler", "proxied")

    def __init__(self, server: Server) -> None:
        super().__init__(server)
        # Its own declared type (a subclass may not narrow an attribute's type: mypyc).
        self.handler = cast("QueueProxyHandler", server.handler)
        self.proxied = False  # the exchange in flight came through the activator

    def _start(self, data: bytes) -> UpstreamPool | None:
        handler = self.handler
        if handler.request_log is not None or handler.tracing.tracer is not None:
            return None
        head = self._rebuild(data)
        if head is None:
            return None
        now = _monotonic()
        if not handler.request_admitted(now, self.proxied):
            return None  # the general path queues it
        self.current = head
        self.started = now
        return handler.pool  # type: ignore[return-value]  # an UpstreamPool (h1_app)

    def _done(self, status: int) -> None:
        self.handler.request_done(_monotonic(), self.proxied, status, self.started)

    def _expired(self, now: float) -> bool:
        t = self.server.timeouts
        age = now - self.started
        return bool(
            (t.total and age >= t.total)
            or (t.response_start and age >= t.response_start)
            or (t.idle and age >= t.idle)
        )

    def _fill(self, req: Request) -> None:
        req.ctx = self.proxied
        req.slot = True

    def _rebuild(self, data: bytes) -> bytes | None:
        """The head to send the app for a request that stays on the fast path, else None
        (then nothing was counted, and the general path gets the same bytes)."""
        lines = self._fields(data)
        if lines is None:
            return None
        # Keep-alive is HTTP/1.1's default; a Connection field other than keep-alive, or
        # a field declaring a body, leaves the path below.
        out = [lines[0]]  # the request line; joined with CRLFs
        host = original = xff = xfh = xfp = None
        forwarded = proxied = False
        action_of = _ACTIONS.get
        for line in lines[1:-2]:
            name, _, value = partition(line, b":")  # there is one: the parser took the line
            action = action_of(lower(name))
            if action is None:
                out.append(line)
                continue
            if action == _DROP:
                continue
            if action == _OFF:
                return None
            value = lstrip(value)
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
                if lower(rstrip(value)) != b"keep-alive":
                    return None
                continue
            if action == _CONTENT_LENGTH and rstrip(value) != b"0":
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
