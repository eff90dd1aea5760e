"""The activator's request path (docs/activator.md, "Request path").

Per request: health checks are answered here; the revision comes from the
trusted ingress headers or from the Host through the routing table (unknown
host -> 404, never a forward anywhere else); the request is counted for the
autoscaler from arrival (queued time included); the revision's throttler
gives it a replica now or parks it in a bounded FIFO; it is then forwarded to
that replica's queue-proxy with ``K-Proxy-Request: activator`` and the Host
moved to ``K-Original-Host``. A connection error before any byte reached the
replica sends the request to another replica (at the head of the queue), at
most ``MAX_ATTEMPTS`` times. A revision that failed and is backing off is
answered at once, with why (``revision_failed``).
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from zeroserve.http.exchange import Request
from zeroserve.http.headers import PROPAGATION_HEADERS
from zeroserve.http.server import FORWARD_DROP, Handler, ServerConnection
from zeroserve.requestlog import LogRevision, RequestLogger
from zeroserve.topology import RevisionInfo, RevisionKey
from zeroserve.tracing import Tracing

from .metrics import ActivatorMetrics
from .revisions import POKED, Granted, Revisions, RevisionState, cold_report
from .routing import RoutingTable
from .stats import StatsReporter
from .throttler import BUDGET_FULL, QUEUE_FULL, QUEUED, Tracker

if TYPE_CHECKING:
    from zeroserve.otel import RequestTrace

_monotonic: Final = time.monotonic
log = logging.getLogger(__name__)

MAX_ATTEMPTS: Final = 3
COLD_LOG_AFTER: Final = 5.0
"""A cold start whose first request waited at least this long is logged with its phases
(docs/activator.md, "Cold-start log"); so is a request that left after waiting so long."""
PROBE_USER_AGENTS: Final = (b"kube-probe/", b"Knative-Autoscaling-Probe")

# A client's own K-Original-Host is dropped: the queue-proxy makes it the Host
# the app sees, and that must be the host this activator routed on.
_DROP: Final = FORWARD_DROP | {
    b"k-original-host",
    b"knative-serving-revision",
    b"knative-serving-namespace",
    b"k-proxy-request",
}
_PROXY_LINE: Final = b"K-Proxy-Request: activator\r\n"
# As the ingress (``zeroserve up``), the activator says which scheme the client used, as
# Envoy at the edge does (it overwrites a client's X-Forwarded-Proto with the downstream
# connection's scheme: its x-forwarded-proto docs); behind Istio the gateway already did.
_INGRESS_LINE: Final = b"X-Forwarded-Proto: http\r\n"
_INGRESS_DROP: Final = _DROP | {b"x-forwarded-proto"}
# With tracing on, the caller's trace headers are replaced by the forward attempt's.
_TRACED_DROP: Final = _DROP | PROPAGATION_HEADERS
_TRACED_INGRESS_DROP: Final = _INGRESS_DROP | PROPAGATION_HEADERS
_APP_UNREACHABLE: Final = b"X-Zeroserve-Error: queue-proxy; reason=app-unreachable\r\n"
# How much of a failed revision's reason and message the X-Zeroserve-Error header
# carries (the body has all of it).
FAILURE_DETAIL_MAX: Final = 160


def failure_detail(failure: str, limit: int = FAILURE_DETAIL_MAX) -> bytes:
    """``failure`` as a quoted-string header parameter (RFC 9110 5.6.4): printable
    ASCII only, quotes and backslashes escaped, shortened to ``limit`` characters."""
    text = "".join(c if " " <= c <= "~" else "?" for c in failure)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return b'"' + text.replace("\\", "\\\\").replace('"', '\\"').encode() + b'"'


def revision_timers(req: Request, info: RevisionInfo, now: float) -> None:
    """The revision's own timeouts on ``req``, from ``now`` (its arrival), in place of
    the listener's defaults (the activator's listeners have none)."""
    req.deadline = now + info.timeout_seconds if info.timeout_seconds else 0.0
    req.start_deadline = (
        now + info.response_start_timeout_seconds if info.response_start_timeout_seconds else 0.0
    )
    req.idle_timeout = info.idle_timeout_seconds


class TrustPolicy:
    """Which peers may name the revision in ``Knative-Serving-*`` headers."""

    def __init__(self, cidrs: list[str] | None = None, trust_all: bool = False) -> None:
        self.networks = [ipaddress.ip_network(c, strict=False) for c in (cidrs or [])]
        self.trust_all = trust_all
        self._cache: dict[bytes, bool] = {}

    def trusted(self, ip: bytes) -> bool:
        if self.trust_all:
            return True
        known = self._cache.get(ip)
        if known is None:
            try:
                addr = ipaddress.ip_address(ip.decode())
                known = any(addr in net for net in self.networks)
            except ValueError:
                known = False
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[ip] = known
        return known


class ActivatorHandler(Handler):
    """See the module docstring. Several listeners (trusted or not) share one state."""

    hop = b"activator"
    unreachable_reason = b"upstream-unreachable"
    timeout_body = b"activator request timeout"
    capture = frozenset(
        {
            b"knative-serving-revision",
            b"knative-serving-namespace",
            b"k-network-probe",
            b"user-agent",
            b"knative-serving-tag",
        }
    )

    def __init__(
        self,
        *,
        routes: Callable[[], RoutingTable],
        revisions: Revisions,
        stats: StatsReporter,
        metrics: ActivatorMetrics,
        trust: TrustPolicy,
        activation_timeout: float,
        retry_after: int = 1,
        draining: Callable[[], bool] = lambda: False,
        ingress: bool = False,
        tracing: Tracing | None = None,
    ) -> None:
        self.routes = routes
        self.ingress = ingress
        # Fixed per listener, so the request path adds nothing to find them.
        self.forward_lines = _PROXY_LINE + (_INGRESS_LINE if ingress else b"")
        self._drop = _INGRESS_DROP if ingress else _DROP
        self._traced_drop = _TRACED_INGRESS_DROP if ingress else _TRACED_DROP
        self.tracing = tracing if tracing is not None else Tracing({}, "activator")
        self.revisions = revisions
        self.stats = stats
        self.metrics = metrics
        self.trust = trust
        self.activation_timeout = activation_timeout
        self.retry_after = b"Retry-After: %d\r\n" % retry_after
        self.draining = draining
        self.request_log: RequestLogger | None = None
        """Set while config-observability turns request logs on (``activator.app``): a
        line for each request this activator answers itself."""

    # -- the request path ---------------------------------------------------

    def on_request(self, conn: ServerConnection, req: Request) -> None:
        h = req.h
        if b"k-network-probe" in h or (
            b"user-agent" in h and h[b"user-agent"].startswith(PROBE_USER_AGENTS)
        ):
            self._health(conn, req)
            return
        tracer = self.tracing.tracer
        if tracer is not None:
            req.trace = tracer.server(req, "handle")
        rev = self._revision(conn, req)
        if req.trace is not None:
            self._trace_route(req.trace, req, rev)
        if rev is None:
            return
        req.ctx = rev
        now = req.started
        info = rev.info
        revision_timers(req, info, now)
        # The live entry: an old one is only ever dropped with nothing in flight.
        stats = rev.stats = self.stats.request_in(rev.key, now)
        if info.backing_off and not rev.trackers:
            # No replica is starting: waiting would end only at the activation timeout.
            self.revision_failed(conn, rev)
            return
        result = rev.throttler.acquire(conn)
        if isinstance(result, Tracker):
            req.slot = result
            self._forward(conn, req, result)
            return
        rt = req.trace
        if result == QUEUED:
            req.wait_deadline = now + self.activation_timeout
            cold = rev.throttler.capacity == 0
            if cold:
                if not rev.cold_since:
                    rev.cold_since = now
                    rev.cold_phases = [(POKED, _monotonic())]
                self.stats.poke(stats)  # a burst at a cold revision: say how big
            self.metrics.queued(rev.key)
            if rt is not None:
                rt.held = now
                rt.cold = cold
        elif result == QUEUE_FULL:
            if rt is not None:
                rt.why = "pending request queue full"
            conn.fail(
                503,
                b"queue-full",
                b"pending request queue full for revision " + str(rev.key).encode(),
                self.retry_after,
            )
        elif result == BUDGET_FULL:
            if rt is not None:
                rt.why = "activator request budget exhausted"
            conn.fail(503, b"queue-full", b"activator request budget exhausted", self.retry_after)

    def _revision(self, conn: ServerConnection, req: Request) -> RevisionState | None:
        h = req.h
        name = h.get(b"knative-serving-revision")
        if name is not None and self.trust.trusted(conn.client_ip):
            ns = h.get(b"knative-serving-namespace", b"")
            key = RevisionKey(ns.decode(errors="replace"), name.decode(errors="replace"))
        else:
            # From an untrusted peer these headers are ignored (and dropped
            # on forward): routing is by Host alone.
            host = h.get(b"host", b"")
            # Knative-Serving-Tag (tag-header routing) reaches the app unchanged, as
            # through Knative's ingress.
            split = self.routes().lookup(host, h.get(b"knative-serving-tag"))
            if split is None:
                conn.fail(404, b"no-route", b"no route for host " + (host or b"(none)"))
                return None
            key = split.choose()
        rev = self.revisions.get(key)
        if rev is None:
            conn.fail(404, b"no-route", b"revision not found: " + str(key).encode())
        return rev

    def _forward(self, conn: ServerConnection, req: Request, tracker: Tracker) -> None:
        rev: RevisionState = req.ctx
        if rev.cold_since:
            # the first forward after the revision was at zero: how long the
            # first held request waited for a replica
            now = _monotonic()
            self.metrics.cold_start(rev.key, now - rev.cold_since)
            if now - rev.cold_since >= COLD_LOG_AFTER:
                log.info("slow cold start, a replica now: %s", cold_report(rev, now))
            rev.cold_since = 0.0
        h = req.h
        extra = self.forward_lines
        host = h.get(b"host")
        if host is not None:
            extra += b"K-Original-Host: " + host + b"\r\n"
        req.attempts += 1
        drop = self._drop
        if req.trace is not None:
            drop = self._traced_drop
            extra += self._trace_forward(req.trace, req, rev, tracker)
        conn.forward(tracker.target, drop=drop, host=tracker.target.authority, extra=extra)

    def on_finish(self, conn: ServerConnection, req: Request) -> None:
        rev: RevisionState | None = req.ctx
        if req.trace is not None:
            self._trace_finish(req.trace, req, rev)
        if self.request_log is not None and req.local:
            self._log_request(conn, req, rev)
        if rev is None:
            return  # health check or 404
        now = _monotonic()
        if rev.stats is not None:
            self.stats.request_out(rev.stats, now)
        self.metrics.finished(rev.key, req.status, now - req.started)
        tracker = req.slot
        if isinstance(tracker, Tracker):
            req.slot = None
            granted = rev.throttler.release(tracker)
            if granted is not None:
                self._start_granted(rev, [granted])
        elif rev.throttler.cancel(conn):
            self._log_held(rev, req, now, "left while waiting for a replica")

    def _log_held(self, rev: RevisionState, req: Request, now: float, what: str) -> None:
        """A request that waited ``COLD_LOG_AFTER`` or more and ends without a replica:
        why it was still held (the revision's cold-start phases so far)."""
        if now - req.started >= COLD_LOG_AFTER:
            detail = cold_report(rev, now) if rev.cold_since else f"revision {rev.key}"
            log.warning("a request %s after %.1fs: %s", what, now - req.started, detail)

    def _log_request(self, conn: ServerConnection, req: Request, rev: RevisionState | None) -> None:
        """The request log line of a response this activator made itself (no route,
        overload, activation timeout, ...); relayed responses are the queue-proxy's to
        log, and health checks are never logged here, as Knative's activator."""
        h = req.h
        if rev is None and (
            b"k-network-probe" in h
            or (b"user-agent" in h and h[b"user-agent"].startswith(PROBE_USER_AGENTS))
        ):
            return
        revision = None
        if rev is not None:
            info = rev.info
            revision = LogRevision(
                info.key.name, info.key.namespace, info.service, info.configuration
            )
        assert self.request_log is not None
        self.request_log.log(conn, req, revision or LogRevision())

    def on_wait_timeout(self, conn: ServerConnection, req: Request) -> None:
        rev: RevisionState = req.ctx
        rev.throttler.cancel(conn)
        self._log_held(rev, req, _monotonic(), "timed out waiting for a replica")
        why = rev.info.failure
        if req.trace is not None:
            req.trace.why = "activation timeout" + (f" ({why})" if why else "")
        conn.fail(
            503,
            b"activation-timeout",
            b"revision "
            + str(rev.key).encode()
            + b" had no ready replica in time"
            + (b" (" + why.encode(errors="replace") + b")" if why else b""),
            self.retry_after,
        )

    def retry_response(self, req: Request, status: int, lines: list[bytes]) -> bool:
        """A queue-proxy that could not reach its app (it died) answers 502
        ``app-unreachable``: nothing reached an app, so a bodyless request goes
        to another replica instead (a body may have been read already)."""
        return status == 502 and not req.has_body and _APP_UNREACHABLE in lines

    def on_upstream_error(self, conn: ServerConnection, req: Request, error: Exception) -> None:
        rev: RevisionState = req.ctx
        tracker = req.slot
        req.slot = None
        if req.trace is not None:
            req.trace.tracer.attempt_failed(req.trace, error)
        if isinstance(tracker, Tracker):
            granted = self.revisions.failed(rev, tracker)
            if (
                req.attempts < MAX_ATTEMPTS
                and self.revisions.get(rev.key) is rev
                and rev.throttler.requeue_front(conn)
            ):
                # Nothing reached the app: try another replica, ahead of the
                # queue, still bounded by the activation timeout from arrival.
                req.wait_deadline = req.started + self.activation_timeout
                nxt = rev.throttler.release(tracker)
                self._start_granted(rev, granted + ([nxt] if nxt is not None else []))
                return
            nxt = rev.throttler.release(tracker)
            self._start_granted(rev, granted + ([nxt] if nxt is not None else []))
        conn.fail(
            502,
            self.unreachable_reason,
            b"could not connect to a replica of "
            + str(rev.key).encode()
            + b": "
            + str(error).encode(),
        )

    def start_granted(self, rev: RevisionState, granted: Granted) -> None:
        """Forward requests that just got a replica (capacity appeared)."""
        self._start_granted(rev, granted)

    def _start_granted(self, rev: RevisionState, granted: Granted) -> None:
        for waiter, tracker in granted:
            req = waiter.current
            if req is None or req.ctx is not rev:
                # Cannot happen: a waiter that leaves is cancelled first. Keep
                # the slot moving rather than lose it if it ever does.
                nxt = rev.throttler.release(tracker)
                if nxt is not None:
                    self._start_granted(rev, [nxt])
                continue
            req.slot = tracker
            req.wait_deadline = 0.0
            self.metrics.waited(rev.key, _monotonic() - req.started)
            self._forward(waiter, req, tracker)

    def fail_waiters(self, key: RevisionKey, waiters: list[ServerConnection]) -> None:
        """The revision was deleted while requests waited for it."""
        for conn in waiters:
            req = conn.current
            if req is not None:
                req.slot = None
                if req.trace is not None:
                    req.trace.why = "revision deleted"
                conn.fail(
                    503,
                    b"revision-deleted",
                    b"revision " + str(key).encode() + b" was deleted",
                    self.retry_after,
                )

    def revision_failed(self, conn: ServerConnection, rev: RevisionState) -> None:
        """Answer a request for a revision that failed and is backing off: 503 with its
        Ready condition's reason and message (the exit code and the app's last lines),
        in full in the body and shortened in ``X-Zeroserve-Error``. Knative's activator
        would hold the request until the activation timeout instead."""
        req = conn.current
        failure = rev.info.failure or "RevisionFailed"
        if req is not None:
            req.slot = None
            req.wait_deadline = 0.0
            if req.trace is not None:
                req.trace.why = "revision failed: " + failure
        conn.fail(
            503,
            b"revision-failed; detail=" + failure_detail(failure),
            b"revision " + str(rev.key).encode() + b" failed: " + failure.encode(errors="replace"),
            self.retry_after,
        )

    # -- tracing (docs/observability.md, "Tracing") ----------------------------

    def _trace_route(self, rt: RequestTrace, req: Request, rev: RevisionState | None) -> None:
        """Route resolution as a span; the revision's names on the server span, as
        Knative's activator labels its ``handle`` span."""
        tracer = rt.tracer
        if not rt.recording:
            return
        if rev is None:
            tracer.span(
                rt, "activator_route", start=req.started, end=_monotonic(), error="no route"
            )
            return
        info = rev.info
        names = {"k8s.namespace.name": rev.key.namespace, "kn.revision.name": rev.key.name}
        if info.service:
            names["kn.service.name"] = info.service
        if info.configuration:
            names["kn.configuration.name"] = info.configuration
        rt.server.set_attributes(names)
        tracer.span(rt, "activator_route", start=req.started, end=_monotonic(), attributes=names)

    def _trace_throttler(
        self, rt: RequestTrace, rev: RevisionState, start: float, now: float
    ) -> None:
        """``throttler_try`` (Knative's span for getting capacity) from arrival to ``now``;
        with a ``held`` child while it waited, the cold-start phases it saw as events."""
        if not rt.recording:
            return
        tracer = rt.tracer
        attributes = {"zeroserve.held": bool(rt.held), "zeroserve.cold_start": rt.cold}
        parent = tracer.span(rt, "throttler_try", start=start, attributes=attributes, error=rt.why)
        if rt.held:
            held = rt.held
            events = (
                [(name, at) for name, at in rev.cold_phases if held <= at <= now] if rt.cold else []
            )
            tracer.span(
                rt,
                "held",
                start=held,
                end=now,
                parent=parent,
                attributes={"zeroserve.cold_start": rt.cold},
                events=events,
                error=rt.why,
            )
        tracer.end(parent, now)

    def _trace_forward(
        self, rt: RequestTrace, req: Request, rev: RevisionState, tracker: Tracker
    ) -> bytes:
        """The first forward ends the throttler's span and opens ``activator_proxy``; each
        forward (a retry too) is a client span under it, whose context goes along."""
        tracer = rt.tracer
        if rt.proxy is None:
            now = _monotonic()
            self._trace_throttler(rt, rev, req.started, now)
            rt.proxy = tracer.span(rt, "activator_proxy", start=now)
        name = req.method.decode("latin-1") + " " + req.target.split(b"?", 1)[0].decode("latin-1")
        return tracer.client(rt, req, name, tracker.target.authority, rt.proxy)

    def _trace_finish(self, rt: RequestTrace, req: Request, rev: RevisionState | None) -> None:
        if rev is not None and rt.proxy is None:
            # never forwarded: refused by the throttler, timed out, or the client left
            if not rt.why:
                rt.why = f"ended while waiting ({req.status})"
            self._trace_throttler(rt, rev, req.started, _monotonic())
        rt.tracer.finish(rt, req.status)

    # -- health --------------------------------------------------------------

    def _health(self, conn: ServerConnection, req: Request) -> None:
        probe = req.h.get(b"k-network-probe")
        if probe not in (None, b"activator", b"queue"):
            conn.fail(400, b"bad-probe", b"unexpected probe header value: " + probe)
        elif self.draining():
            conn.fail(503, b"draining", b"shutting down")
        else:
            conn.respond(200, b"activator")
