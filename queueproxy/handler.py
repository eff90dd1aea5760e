"""The queue-proxy's request path (docs/queue-proxy.md): probes, stats, breaker, proxy.

Per request: a health check is answered here (never counted, never queued);
anything else is counted in the stats before the breaker (queued requests
count as concurrency), restarts the drain quiet period, takes a breaker slot
or waits for one in FIFO order, and is forwarded to the app with ``Host``
restored from ``K-Original-Host`` and the routing headers removed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Final

from zeroserve.breaker import Breaker
from zeroserve.http.exchange import Request
from zeroserve.http.headers import PROPAGATION_HEADERS, synthesize_forwarded
from zeroserve.http.server import FORWARD_DROP, Handler, ServerConnection
from zeroserve.http.upstream import Pool, UpstreamPool
from zeroserve.stats import RequestStats
from zeroserve.tracing import Tracing

from .drain import Drainer
from .metrics import RequestMetrics
from .readiness import ReadinessProber

if TYPE_CHECKING:
    from zeroserve.otel import RequestTrace
    from zeroserve.requestlog import RequestLogger

log = logging.getLogger(__name__)

_monotonic: Final = time.monotonic

# User agents of health checks (kubelet, activator, autoscaler), as upstream.
PROBE_USER_AGENTS: Final = (
    b"kube-probe/",
    b"Knative-Activator-Probe",
    b"Knative-Autoscaling-Probe",
)

_DROP: Final = FORWARD_DROP | {
    b"knative-serving-revision",
    b"knative-serving-namespace",
    b"k-original-host",
}

# With tracing on, the caller's trace headers are replaced by the proxy span's.
_TRACED_DROP: Final = _DROP | PROPAGATION_HEADERS

_RETRY_AFTER: Final = b"Retry-After: 1\r\n"


class QueueProxyHandler(Handler):
    """Serving-port handler; see the module docstring."""

    hop = b"queue-proxy"
    unreachable_reason = b"app-unreachable"
    closed_reason = b"app-closed"
    timeout_body = b"request timeout"
    capture = frozenset(
        {
            b"user-agent",
            b"k-network-probe",
            b"k-network-hash",
            b"k-kubelet-probe",
            b"k-proxy-request",
            b"k-original-host",
            b"x-forwarded-host",
            b"x-forwarded-proto",
            b"forwarded",
        }
    )

    def __init__(
        self,
        *,
        pool: Pool,
        breaker: Breaker[ServerConnection] | None,
        stats: RequestStats,
        drainer: Drainer,
        prober: ReadinessProber,
        metrics: RequestMetrics,
        tracing: Tracing,
    ) -> None:
        self.pool = pool
        self.tracing = tracing
        self.breaker = breaker
        self.stats = stats
        self.drainer = drainer
        self.prober = prober
        self.metrics = metrics
        self.max_at_app = 0  # high-water mark of requests at the app at once
        self.request_log: RequestLogger | None = None
        """Set while config-observability turns request logs on (``queueproxy.app``)."""
        self._probes: set[asyncio.Task[None]] = set()
        self.h1_app = isinstance(pool, UpstreamPool)
        """The app is spoken to in HTTP/1.1 (the fast path's pool is an ``UpstreamPool``)."""

    # -- the request path -------------------------------------------------

    def on_request(self, conn: ServerConnection, req: Request) -> None:
        h = req.h
        ua = h.get(b"user-agent")
        if (
            b"k-network-probe" in h
            or b"k-kubelet-probe" in h
            or (ua is not None and ua.startswith(PROBE_USER_AGENTS))
        ):
            self._health_check(conn, req)
            return
        now = req.started
        self.drainer.last_request = now
        proxied = b"k-proxy-request" in h
        req.ctx = proxied  # non-None: counted in the stats
        self.stats.request_in(now, proxied)
        tracer = self.tracing.tracer
        if tracer is not None:
            req.trace = tracer.server(req, "queue")
        breaker = self.breaker
        if breaker is None or breaker.try_acquire():
            req.slot = True
            self._forward(conn, req)
        elif not breaker.enqueue(conn):
            conn.fail(503, b"queue-full", b"pending request queue full", _RETRY_AFTER)
        # else: parked; on_finish of another request hands it a slot

    def _forward(self, conn: ServerConnection, req: Request) -> None:
        breaker = self.breaker
        at_app = breaker.in_flight if breaker is not None else self.stats.concurrency
        if at_app > self.max_at_app:
            self.max_at_app = at_app
        h = req.h
        extra = b""
        if (
            b"x-forwarded-for" in h or b"x-forwarded-host" in h or b"x-forwarded-proto" in h
        ) and b"forwarded" not in h:
            fwd = synthesize_forwarded(
                h.get(b"x-forwarded-for"), h.get(b"x-forwarded-host"), h.get(b"x-forwarded-proto")
            )
            if fwd is not None:
                extra = b"Forwarded: " + fwd + b"\r\n"
        drop = _DROP
        rt = req.trace
        if rt is not None:
            drop = _TRACED_DROP
            extra += self._trace_forward(rt, req)
        conn.forward(self.pool, drop=drop, host=h.get(b"k-original-host"), extra=extra)

    def _trace_forward(self, rt: RequestTrace, req: Request) -> bytes:
        """The breaker wait (Knative's ``kn.queueproxy.wait``, when there is a breaker) and
        the proxy span to the app; returns the lines carrying its context to the app."""
        tracer = rt.tracer
        if self.breaker is not None:
            tracer.span(rt, "kn.queueproxy.wait", start=req.started, end=_monotonic())
        return tracer.client(rt, req, "kn.queueproxy.proxy", self.pool.authority, None)

    def on_finish(self, conn: ServerConnection, req: Request) -> None:
        request_log = self.request_log
        if request_log is not None and (req.ctx is not None or request_log.probes):
            request_log.log(conn, req)
        proxied = req.ctx
        if proxied is None:
            return  # a health check
        now = _monotonic()
        rt = req.trace
        if rt is not None:
            if not req.slot and self.breaker is not None:
                # never got a slot: the queue was full, or it left while waiting
                why = "queue full" if req.status == 503 else f"ended while waiting ({req.status})"
                rt.tracer.span(rt, "kn.queueproxy.wait", start=req.started, end=now, error=why)
            rt.tracer.finish(rt, req.status)
        if req.slot or self.breaker is None:
            self.request_done(now, proxied, req.status, req.started)
        else:
            self.stats.request_out(now, proxied)
            self.metrics.observe(req.status, now - req.started)
            self.breaker.cancel(conn)  # left the queue (client gone, timeout)

    # -- what the fast path shares (queueproxy/fastpath.py) --------------------------------

    def request_admitted(self, now: float, proxied: bool) -> bool:
        """A request (not a health check) takes a breaker slot now, and is counted: the
        drain clock, the stats, the high-water mark at the app. False, with nothing
        counted, when the breaker has no free slot (the general path queues it)."""
        breaker = self.breaker
        if breaker is not None and not breaker.try_acquire():
            return False
        self.drainer.last_request = now
        self.stats.request_in(now, proxied)
        at_app = breaker.in_flight if breaker is not None else self.stats.concurrency
        if at_app > self.max_at_app:
            self.max_at_app = at_app
        return True

    def request_done(self, now: float, proxied: bool, status: int, started: float) -> None:
        """A request that had a slot (or no breaker) ended: counted out, its latency
        observed, its slot given to the first request waiting for one."""
        self.stats.request_out(now, proxied)
        self.metrics.observe(status, now - started)
        breaker = self.breaker
        if breaker is not None:
            waiter = breaker.release()
            if waiter is not None:
                nxt = waiter.current
                assert nxt is not None
                nxt.slot = True
                self._forward(waiter, nxt)

    # -- health checks ----------------------------------------------------

    def _health_check(self, conn: ServerConnection, req: Request) -> None:
        h = req.h
        probe = h.get(b"k-network-probe")
        if self.drainer.draining:
            conn.fail(503, b"draining", b"shutting down")
            return
        if probe == b"probe":
            # Ingress network probe: echo the config hash it carries.
            digest = h.get(b"k-network-hash")
            if not digest:
                conn.fail(
                    400, b"bad-probe", b"K-Network-Probe: probe needs a K-Network-Hash header"
                )
            else:
                conn.respond(200, b"", b"K-Network-Hash: " + digest + b"\r\n")
            return
        if probe is not None and probe != b"queue":
            conn.fail(400, b"bad-probe", b"unexpected probe header value: " + probe)
            return
        task = asyncio.get_running_loop().create_task(self._answer(conn, req), name="health-check")
        self._probes.add(task)
        task.add_done_callback(self._probe_done)

    async def _answer(self, conn: ServerConnection, req: Request) -> None:
        ok = await self.prober.check()
        if conn.current is not req:
            return  # the prober went away
        if self.drainer.draining:
            conn.fail(503, b"draining", b"shutting down")
        elif ok:
            conn.respond(200, b"queue")
        else:
            conn.fail(503, b"not-ready", b"the app is not ready")

    def _probe_done(self, task: asyncio.Task[None]) -> None:
        self._probes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("health check failed", exc_info=task.exception())

    def sweep(self, now: float) -> None:
        self.pool.sweep(now)

    def close(self) -> None:
        for task in self._probes:
            task.cancel()
        self.prober.close()
