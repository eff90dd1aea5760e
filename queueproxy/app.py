"""Wiring of the queue-proxy: four listeners, the stats reporter, the shutdown sequence."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from zeroserve.breaker import Breaker
from zeroserve.envconfig import ConfigError
from zeroserve.http.exchange import Request, Timeouts
from zeroserve.http.routes import RouteHandler, read_body
from zeroserve.http.server import Server, ServerConnection
from zeroserve.http.upstream import Pool, UpstreamPool
from zeroserve.observability import NONE, FollowsObservability, ObservabilityConfig
from zeroserve.periodic import every
from zeroserve.stats import RequestStats, Stat
from zeroserve.tracing import Tracing, TracingUnavailable

from .config import Settings
from .drain import Drainer
from .fastpath import QueueProxyFastConnection
from .handler import QueueProxyHandler
from .metrics import QueueProxyCollector, RequestMetrics, resource_labels
from .readiness import ReadinessProber

log = logging.getLogger("queueproxy")

REPORT_INTERVAL = 1.0
# How long upgraded connections (websockets) may outlive the drain.
TUNNEL_GRACE = 60.0
# After /wait-for-drain returned, how long before the drain is undone if no
# SIGTERM came (the app was restarted by its liveness probe, not deleted).
DRAIN_RESET_DELAY = 1.0
OBSERVABILITY_PATH = b"/observability"
"""Admin endpoint: ``GET`` the observability config in force (OBSERVABILITY_CONFIG's
JSON), ``PUT`` a new one (the local runtime's live update of config-observability)."""


class QueueProxy(FollowsObservability):
    """One replica's queue-proxy; ``start`` then ``shutdown``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = s = settings
        self.started_at = time.monotonic()
        cc = s.container_concurrency
        self.breaker: Breaker[ServerConnection] | None = Breaker(cc, 10 * cc) if cc > 0 else None
        self.stats = RequestStats(self.started_at)
        self.drainer = Drainer(s.drain_quiet_period)
        self.prober = ReadinessProber(
            s.readiness_probe,
            expected_at=(
                self.started_at + (s.app_expected_at - time.time()) if s.app_expected_at else 0.0
            ),
        )
        self.metrics = RequestMetrics()
        self.pool: Pool
        if s.user_protocol == "h2c":
            from zeroserve.http.h2upstream import H2Pool  # h2 only where an app speaks it

            self.pool = H2Pool("127.0.0.1", s.user_port)
        else:
            self.pool = UpstreamPool("127.0.0.1", s.user_port, max_idle=s.pool_size)
        self.tracing = Tracing(s.tracing_resource, "zeroserve/queueproxy")
        self.handler = QueueProxyHandler(
            tracing=self.tracing,
            pool=self.pool,
            breaker=self.breaker,
            stats=self.stats,
            drainer=self.drainer,
            prober=self.prober,
            metrics=self.metrics,
        )
        self.serving = Server(
            self.handler,
            timeouts=Timeouts(s.revision_timeout, s.response_start_timeout, s.idle_timeout),
        )
        if self.handler.h1_app:
            # the common exchange with the least Python per request (docs/queue-proxy.md)
            self.serving.connection = QueueProxyFastConnection
        self.stat = Stat(pod_name=s.pod)
        self._stat_json = self.stat.to_json()
        self.registry = CollectorRegistry()
        self.registry.register(
            QueueProxyCollector(
                self.metrics,
                resource_labels(s.namespace, s.service, s.configuration, s.revision, s.pod),
                in_flight=lambda: self.stats.concurrency,
                queue_depth=lambda: self.breaker.queued if self.breaker else 0,
                capacity=cc,
                protocol_errors=lambda: self.serving.protocol_errors,
                max_at_app=lambda: self.handler.max_at_app,
                knative=lambda: self._observability.request_metrics_protocol != NONE,
            )
        )
        self._observability = s.observability
        self.observability_listeners: list[Callable[[ObservabilityConfig], None]] = []
        """Called with the new config each time :attr:`observability` changes (request
        logs and tracing reconfigure themselves here)."""
        self.observability_listeners.append(self._set_request_log)
        self._set_request_log(self._observability)
        self.admin = Server(
            RouteHandler(
                b"queue-proxy-admin",
                {
                    b"/wait-for-drain": self._wait_for_drain,
                    OBSERVABILITY_PATH: self._serve_observability,
                },
                put={OBSERVABILITY_PATH: self._put_observability},
            ),
            timeouts=Timeouts(total=0),
        )
        self.stats_server = Server(
            RouteHandler(b"queue-proxy-metrics", {b"/metrics": self._serve_stat}),
        )
        self.prom_server = Server(
            RouteHandler(b"queue-proxy-metrics", {b"/metrics": self._serve_prometheus}),
        )
        self.ports: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._drain_calls: list[tuple[ServerConnection, Request]] = []
        """``/wait-for-drain`` calls not answered yet: the drain's end answers them, from
        whichever of its waiters wakes first (``shutdown`` closes the admin port next)."""
        self._reporter: asyncio.Task[None] | None = None
        self._sigterm = False
        self.stopped = asyncio.Event()

    async def start(self) -> dict[str, int]:
        """Apply the tracing config (``TracingUnavailable`` when it is on and the tracing
        extra is missing), then listen."""
        s = self.settings
        self.tracing.start(self._observability)
        self.observability_listeners.append(self.tracing.configure)
        addr = s.bind_address
        self.ports = {
            "serving_port": await self.serving.listen(addr, s.serving_port),
            "admin_port": await self.admin.listen(addr, s.admin_port),
            "metrics_port": await self.stats_server.listen(addr, s.metrics_port),
            "user_metrics_port": await self.prom_server.listen(addr, s.user_metrics_port),
        }
        self._reporter = asyncio.get_running_loop().create_task(
            every(REPORT_INTERVAL, self._report), name="stats-reporter"
        )
        return self.ports

    # -- stats ------------------------------------------------------------

    def _report(self) -> None:
        self.report(time.monotonic())

    def report(self, now: float) -> Stat:
        """Close a stats interval; the result is what ``:9090/metrics`` serves."""
        iv = self.stats.report(now)
        per_second = 1.0 / iv.seconds if iv.seconds > 0 else 0.0
        self.stat = Stat(
            pod_name=self.settings.pod,
            average_concurrent_requests=iv.average_concurrency,
            average_proxied_concurrent_requests=iv.average_proxied_concurrency,
            request_count=iv.request_count * per_second,
            proxied_request_count=iv.proxied_request_count * per_second,
            process_uptime=now - self.started_at,
            timestamp=int(time.time()),
        )
        self._stat_json = self.stat.to_json()
        return self.stat

    def _serve_stat(self, conn: ServerConnection, req: Request) -> None:
        conn.respond(200, self._stat_json, content_type=b"application/json")

    def _serve_prometheus(self, conn: ServerConnection, req: Request) -> None:
        conn.respond(200, generate_latest(self.registry), content_type=CONTENT_TYPE_LATEST.encode())

    # -- observability (docs/observability.md) ------------------------------------------

    def _set_request_log(self, config: ObservabilityConfig) -> None:
        """Request logs on stdout while config-observability asks for them; off, the
        request path checks one attribute (docs/observability.md, "Request logs")."""
        if not config.request_log_on:
            self.handler.request_log = None
            return
        # imported only when on: the queue-proxy's start stays light
        from zeroserve.requestlog import LogRevision, RequestLogger, stdout_writer

        s = self.settings
        revision = LogRevision(s.revision, s.namespace, s.service, s.configuration, s.pod, s.pod_ip)
        self.handler.request_log = RequestLogger.from_config(
            config, stdout_writer(), revision=revision
        )

    def _serve_observability(self, conn: ServerConnection, req: Request) -> None:
        body = json.dumps(self._observability.to_json()).encode()
        conn.respond(200, body, content_type=b"application/json")

    def _put_observability(self, conn: ServerConnection, req: Request) -> None:
        task = asyncio.get_running_loop().create_task(
            self._apply_observability(conn, req), name="put-observability"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _apply_observability(self, conn: ServerConnection, req: Request) -> None:
        body = await read_body(req)
        if conn.current is not req:
            return
        if body is None:
            conn.fail(408, b"body-timeout", b"the body did not arrive")
            return
        try:
            config = ObservabilityConfig.from_json(json.loads(body))
        except ValueError as e:  # ConfigError, or JSON's own
            msg = str(e) if isinstance(e, ConfigError) else f"OBSERVABILITY_CONFIG: not JSON: {e}"
            conn.fail(400, b"bad-config", msg.encode())
            return
        self.observability = config
        log.info("observability config updated")
        self._serve_observability(conn, req)

    # -- drain and shutdown -------------------------------------------------

    def _wait_for_drain(self, conn: ServerConnection, req: Request) -> None:
        self._drain_calls.append((conn, req))
        task = asyncio.get_running_loop().create_task(
            self._drain_then_answer(conn, req), name="wait-for-drain"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain_then_answer(self, conn: ServerConnection, req: Request) -> None:
        await self.drainer.drain()
        self._answer_drain_calls()
        await asyncio.sleep(DRAIN_RESET_DELAY)
        if not self._sigterm:
            log.info("drain reset: /wait-for-drain returned and no SIGTERM followed")
            self.drainer.reset()

    def _answer_drain_calls(self) -> None:
        calls, self._drain_calls = self._drain_calls, []
        for conn, req in calls:
            if conn.current is req:
                conn.respond(200, b"drained\n")

    async def shutdown(self) -> None:
        """SIGTERM: fail probes, wait for the quiet period, stop accepting,
        finish every accepted request, give websockets a grace period, exit."""
        self._sigterm = True
        log.info("draining: probes fail from now on; quiet period %.1fs", self.drainer.quiet_period)
        await self.drainer.drain()
        self._answer_drain_calls()  # the kubelet's preStop, before the admin port closes
        for srv in (self.serving, self.admin, self.stats_server, self.prom_server):
            srv.stop_listening()
            srv.begin_shutdown()
        log.info("drained; waiting for %d request(s) in flight", self.serving.in_flight)
        while any(not c.tunnel for c in self.serving.conns):
            await asyncio.sleep(0.05)
        if self.serving.conns:
            log.info(
                "waiting up to %.0fs for %d upgraded connection(s)",
                TUNNEL_GRACE,
                len(self.serving.conns),
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.serving.wait_closed(), TUNNEL_GRACE)
        for srv in (self.serving, self.admin, self.stats_server, self.prom_server):
            srv.abort_all()
        if self._reporter is not None:
            self._reporter.cancel()
        for task in self._tasks:
            task.cancel()
        self.handler.close()
        self.pool.close()
        await asyncio.to_thread(self.tracing.close)  # the spans still batched go out
        self.stopped.set()


async def run(settings: Settings) -> int:
    qp = QueueProxy(settings)
    try:
        ports = await qp.start()
    except OSError as e:
        print(f"queue-proxy: cannot listen: {e}", file=sys.stderr)
        return 1
    except TracingUnavailable as e:
        print(f"queue-proxy: {e}", file=sys.stderr)
        return 1
    # One machine-readable line: the local runtime reads the bound ports here
    # (ports given as 0 are picked by the kernel).
    print(json.dumps({"queue_proxy": "listening", **ports}), flush=True)
    log.info(
        "revision %s/%s: serving :%d -> app :%d, containerConcurrency %d",
        settings.namespace,
        settings.revision,
        ports["serving_port"],
        settings.user_port,
        settings.container_concurrency,
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await qp.shutdown()
    log.info("stopped")
    return 0
