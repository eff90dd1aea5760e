"""The activator's fast path: a request for a revision with a free replica, forwarded
with the least Python (docs/activator.md, "Fast path").

``ActivatorFastConnection`` is the engine's fast path (zeroserve/http/fastpath.py,
docs/http.md "Fast paths") with the activator's request path (activator/handler.py) for
its common case: the revision comes from the Host through the routing table, the
revision's throttler has a replica for the request now, and the request is forwarded to
that replica's queue-proxy. The head is rebuilt in one pass by the same rules as the
general path's: hop-by-hop fields and Knative's routing headers out, ``Host`` the
replica's, ``X-Forwarded-For`` appended, then ``K-Proxy-Request: activator``
(``X-Forwarded-Proto: http`` when the activator is the ingress, which drops the client's)
and ``K-Original-Host`` with the client's ``Host``. It is counted for the autoscaler from
arrival and out at its end, its latency observed, its replica handed to the first
request waiting for one, as ``ActivatorHandler.on_request`` and ``on_finish`` do.

Besides what takes any fast path off its path, the activator's leaves it, before
anything is counted (and before the split's choice is made, so the general path makes
the same one), for: ``Connection: close`` or any ``Connection`` option other than
``keep-alive``, ``Upgrade``, ``Expect``, ``Transfer-Encoding``, a ``Content-Length``
other than 0, ``HTTP2-Settings``, ``Host`` or ``X-Forwarded-For`` twice, no ``Host``, a
health check, ``Knative-Serving-Revision`` (the trusted header routing) or
``Knative-Serving-Tag``, a host with no route or a revision not known, a revision at
zero or starting (held requests), failed and backing off, or spoken to in HTTP/2, no
replica free now (the general path queues it), tracing on. With the
request in flight: the revision's timeouts, and a 502 (which may mean another replica
should get it: ``retry_response``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar, Final, cast

from zeroserve.http.exchange import Request
from zeroserve.http.fastpath import FastConnection, lower, lstrip, partition, rstrip
from zeroserve.http.upstream import UpstreamPool

from .handler import PROBE_USER_AGENTS, revision_timers

if TYPE_CHECKING:
    from zeroserve.http.server import Server

    from .handler import ActivatorHandler
    from .revisions import RevisionState
    from .throttler import Tracker

_monotonic: Final = time.monotonic

# What the request rebuild does with a header, by lower-case name; any other header is
# forwarded as it came (handler._DROP, as the general path's forward drops them).
_DROP: Final = 0  # hop-by-hop, or a header this hop writes itself: not forwarded
_OFF: Final = 1  # the general path's (a body, an upgrade, a health check, header routing ...)
_HOST: Final = 2
_XFF: Final = 3
_USER_AGENT: Final = 4
_CONNECTION: Final = 5
_CONTENT_LENGTH: Final = 6
_ACTIONS: Final = {
    b"keep-alive": _DROP,
    b"proxy-connection": _DROP,
    b"proxy-authenticate": _DROP,
    b"proxy-authorization": _DROP,
    b"te": _DROP,
    b"trailer": _DROP,
    b"k-original-host": _DROP,
    b"k-proxy-request": _DROP,
    b"knative-serving-namespace": _DROP,  # (routing only with the revision's name)
    b"transfer-encoding": _OFF,
    b"upgrade": _OFF,
    b"expect": _OFF,
    b"http2-settings": _OFF,
    b"k-network-probe": _OFF,
    b"knative-serving-revision": _OFF,
    b"knative-serving-tag": _OFF,
    b"host": _HOST,
    b"x-forwarded-for": _XFF,
    b"user-agent": _USER_AGENT,
    b"connection": _CONNECTION,
    b"content-length": _CONTENT_LENGTH,
}
# The ingress (``zeroserve up``) writes X-Forwarded-Proto itself.
_INGRESS_ACTIONS: Final = {**_ACTIONS, b"x-forwarded-proto": _DROP}


class ActivatorFastConnection(FastConnection):
    """One activator listener's connection while it stays on the fast path (module
    docstring)."""

    __slots__ = ("actions", "handler", "revision", "tracker")

    off_statuses: ClassVar[frozenset[int]] = frozenset({204, 304, 502})
    server_timers = False  # a revision's own timeouts, as on_request sets them

    def __init__(self, server: Server) -> None:
        super().__init__(server)
        # Its own declared type (a subclass may not narrow an attribute's type: mypyc).
        self.handler = cast("ActivatorHandler", server.handler)
        self.actions = _INGRESS_ACTIONS if self.handler.ingress else _ACTIONS
        self.revision: RevisionState | None = None  # of the exchange in flight
        self.tracker: Tracker | None = None  # its replica

    def _start(self, data: bytes) -> UpstreamPool | None:
        handler = self.handler
        # (Request logs need nothing of it: the activator logs only what it answers
        # itself, never a relayed response, as Knative's.)
        if handler.tracing.tracer is not None:
            return None
        lines = self._fields(data)
        if lines is None:
            return None
        out = [lines[0]]  # the request line; joined with CRLFs
        host = xff = None
        action_of = self.actions.get
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
            elif action == _XFF:
                if xff is not None:
                    return None
                xff = value
            elif action == _CONNECTION:
                if lower(rstrip(value)) != b"keep-alive":
                    return None
            elif action == _CONTENT_LENGTH:
                if rstrip(value) != b"0":
                    return None  # a body comes (or the general path refuses the head)
                out.append(line)
            else:  # _USER_AGENT
                if value.startswith(PROBE_USER_AGENTS):
                    return None
                out.append(line)
        if not host:
            return None
        split = handler.routes().lookup(host)
        if split is None:
            return None
        rev = handler.revisions.get(split.peek())
        if rev is None or rev.cold_since or rev.info.backing_off or rev.info.protocol == "h2c":
            return None
        tracker = rev.throttler.acquire_now()
        if tracker is None:
            return None  # the general path queues it
        split.choose()  # the one peeked at
        now = _monotonic()
        rev.stats = handler.stats.request_in(rev.key, now)
        self.revision = rev
        self.tracker = tracker
        self.started = now
        pool: UpstreamPool = tracker.target
        ip = self.client_ip
        out.append(b"Host: " + pool.authority)
        out.append(b"X-Forwarded-For: " + (xff + b", " + ip if xff else ip))
        out.append(handler.forward_lines + b"K-Original-Host: " + host + b"\r\n\r\n")
        self.current = b"\r\n".join(out)
        return pool

    def _done(self, status: int) -> None:
        now = _monotonic()
        handler = self.handler
        rev = self.revision
        tracker = self.tracker
        assert rev is not None and tracker is not None
        self.revision = self.tracker = None
        if rev.stats is not None:
            handler.stats.request_out(rev.stats, now)
        handler.metrics.finished(rev.key, status, now - self.started)
        granted = rev.throttler.release(tracker)
        if granted is not None:
            handler.start_granted(rev, [granted])

    def _expired(self, now: float) -> bool:
        assert self.revision is not None
        info = self.revision.info
        age = now - self.started  # (no byte was written to the client yet)
        return bool(
            (info.timeout_seconds and age >= info.timeout_seconds)
            or (info.response_start_timeout_seconds and age >= info.response_start_timeout_seconds)
            or (info.idle_timeout_seconds and age >= info.idle_timeout_seconds)
        )

    def _fill(self, req: Request) -> None:
        rev = self.revision
        assert rev is not None
        req.ctx = rev
        req.slot = self.tracker
        req.attempts = 1
        req.last_write = self.started
        revision_timers(req, rev.info, self.started)  # as on_request sets them
