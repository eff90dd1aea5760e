"""The activator assembled: listeners, revisions, stats link, metrics, shutdown.

``Activator`` is driven by the control plane through four calls (the local
runtime makes them directly; on Kubernetes, watch caches do):
``set_routes``, ``put_revision`` / ``remove_revision``, ``set_endpoints`` and
``set_peers``. Everything on the request path reads memory only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence

import aiohttp
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from zeroserve.http.exchange import Request, Timeouts
from zeroserve.http.routes import RouteHandler
from zeroserve.http.server import Server, ServerConnection
from zeroserve.observability import NONE, FollowsObservability, ObservabilityConfig
from zeroserve.periodic import every
from zeroserve.requestlog import RequestLogger, stdout_writer
from zeroserve.topology import Endpoint, RevisionInfo, RevisionKey
from zeroserve.tracing import Tracing

from .config import Settings
from .fastpath import ActivatorFastConnection
from .handler import ActivatorHandler, TrustPolicy
from .link import AutoscalerLink
from .metrics import ActivatorCollector, ActivatorMetrics
from .revisions import Address, Granted, Revisions, RevisionState
from .routing import RoutingTable
from .stats import StatsReporter
from .throttler import Budget

log = logging.getLogger("activator")

REPORT_INTERVAL = 1.0


class Activator(FollowsObservability):
    """One activator process's parts, built from its :class:`~activator.config.Settings`;
    the sources (Kubernetes or local) feed it through the control plane's calls below."""

    def __init__(self, settings: Settings) -> None:
        self.settings = s = settings
        self.routes = RoutingTable()
        """The main listener's table (public hosts only when ``local_port`` is set)."""
        self.local_routes = RoutingTable(listener="local")
        """The local gateway listener's table (cluster-local names)."""
        self.budget = Budget(s.budget)
        self.metrics = ActivatorMetrics()
        self.link: AutoscalerLink | None = None
        self.stats = StatsReporter(s.pod_name, self._send)
        self.revisions = Revisions(
            budget=self.budget,
            queue_depth=s.queue_depth,
            on_granted=self._granted,
            on_removed=self._removed,
            on_failed=self._failed,
            probe_interval=s.probe_interval,
        )
        self.draining = False
        self.tracing = Tracing(s.tracing_resource, "zeroserve/activator")
        """Spans of every listener's requests; follows :attr:`observability` once started."""
        common = dict(
            tracing=self.tracing,
            routes=lambda: self.routes,
            revisions=self.revisions,
            stats=self.stats,
            metrics=self.metrics,
            activation_timeout=s.activation_timeout,
            draining=lambda: self.draining,
            ingress=s.ingress,
        )
        self.handler = ActivatorHandler(trust=TrustPolicy(list(s.trusted_cidrs)), **common)  # type: ignore[arg-type]
        # Revision timeouts are set per request; none at the listener level.
        no_timeout = Timeouts(total=0)
        self.servers = [Server(self.handler, timeouts=no_timeout, limits=s.limits)]
        self.local_server: Server | None = None
        if s.local_port is not None:
            local = ActivatorHandler(
                trust=TrustPolicy(list(s.trusted_cidrs)),
                **{**common, "routes": lambda: self.local_routes},  # type: ignore[arg-type]
            )
            self.local_server = Server(local, timeouts=no_timeout, limits=s.limits)
            self.servers.append(self.local_server)
        self.trusted_server: Server | None = None
        if s.trusted_port is not None:
            trusted = ActivatorHandler(trust=TrustPolicy(trust_all=True), **common)  # type: ignore[arg-type]
            self.trusted_server = Server(trusted, timeouts=no_timeout, limits=s.limits)
            self.servers.append(self.trusted_server)
        for srv in self.servers:
            # the common request's own path (docs/activator.md, "Fast path")
            srv.connection = ActivatorFastConnection
        self.registry = CollectorRegistry()
        self.registry.register(
            ActivatorCollector(
                self.metrics,
                live=self._live,
                budget=self._budget,
                pod=s.pod_name,
                names=self._names,
                concurrency=lambda: self.stats.last_concurrency,
                link=self._link_state,
                knative=lambda: self._observability.metrics_protocol != NONE,
            )
        )
        self.metrics_server = Server(
            RouteHandler(b"activator-metrics", {b"/metrics": self._prometheus})
        )
        self._observability = ObservabilityConfig()
        self.observability_listeners: list[Callable[[ObservabilityConfig], None]] = []
        """Called with the new config each time :attr:`observability` changes (request
        logs and tracing reconfigure themselves here)."""
        self.observability_listeners.append(self._set_request_log)
        self.ports: dict[str, int] = {}
        self._session: aiohttp.ClientSession | None = None
        self._reporter: asyncio.Task[None] | None = None

    # -- the control plane's calls -----------------------------------------------

    def set_routes(self, table: RoutingTable) -> None:
        """The routes to serve. With a local gateway listener (``local_port``) the table's
        routes are split: public hosts on the main listener, cluster-local names on the
        local one; without, the table serves as given."""
        if self.local_server is None:
            self.routes = table
            return
        flag = table.tag_header_routing
        self.routes = RoutingTable(table.routes, listener="public", tag_header_routing=flag)
        self.local_routes = RoutingTable(table.routes, listener="local", tag_header_routing=flag)

    def put_revision(self, info: RevisionInfo) -> None:
        self.revisions.put_revision(info)

    def remove_revision(self, key: RevisionKey) -> None:
        self.revisions.remove_revision(key)
        self.metrics.forget(key)
        self.stats.forget(key)

    def set_endpoints(self, key: RevisionKey, endpoints: Sequence[Endpoint]) -> None:
        self.revisions.set_endpoints(key, endpoints)

    def set_peers(self, index: int, count: int) -> None:
        self.revisions.set_peers(index, count)

    def set_mesh(self, mode: str, service_address: Callable[[RevisionKey], Address]) -> None:
        """``config-network`` ``mesh-compatibility-mode`` and where a revision's private
        Service is (docs/activator.md, "Mesh mode")."""
        self.revisions.set_mesh(mode, service_address)

    def _set_request_log(self, config: ObservabilityConfig) -> None:
        """Request log lines on stdout, for the responses the activator makes itself,
        while config-observability asks for them (docs/observability.md)."""
        logger = RequestLogger.from_config(config, stdout_writer())
        for srv in self.servers:
            handler = srv.handler
            assert isinstance(handler, ActivatorHandler)
            handler.request_log = logger

    # -- wiring ---------------------------------------------------------------------

    def _granted(self, rev: RevisionState, granted: Granted) -> None:
        self.handler.start_granted(rev, granted)

    def _removed(self, key: RevisionKey, waiters: list[ServerConnection]) -> None:
        self.handler.fail_waiters(key, waiters)

    def _failed(self, rev: RevisionState, waiters: list[ServerConnection]) -> None:
        for conn in waiters:
            self.handler.revision_failed(conn, rev)

    def _send(self, batch: str) -> None:
        if self.link is not None:
            self.link.send(batch)

    def _live(self) -> dict[RevisionKey, tuple[int, int, int]]:
        return {
            key: (rev.throttler.in_flight, rev.throttler.queued, rev.throttler.capacity)
            for key, rev in self.revisions.revisions.items()
        }

    def _names(self, key: RevisionKey) -> tuple[str, str]:
        rev = self.revisions.revisions.get(key)
        return (rev.info.service, rev.info.configuration) if rev is not None else ("", "")

    def _link_state(self) -> tuple[bool, int] | None:
        link = self.link
        return (link.connected.is_set(), link.errors) if link is not None else None

    def _budget(self) -> tuple[int, int]:
        return self.budget.used, self.budget.limit

    def _prometheus(self, conn: ServerConnection, req: Request) -> None:
        conn.respond(200, generate_latest(self.registry), content_type=CONTENT_TYPE_LATEST.encode())

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> dict[str, int]:
        """Apply the tracing config (``TracingUnavailable`` when it is on and the tracing
        extra is missing), then listen."""
        s = self.settings
        self.tracing.start(self._observability)
        self.observability_listeners.append(self.tracing.configure)
        self.ports["port"] = await self.servers[0].listen(s.host, s.port, reuse_port=s.reuse_port)
        if self.local_server is not None:
            assert s.local_port is not None
            self.ports["local_port"] = await self.local_server.listen(
                s.host, s.local_port, reuse_port=s.reuse_port
            )
        if self.trusted_server is not None:
            assert s.trusted_port is not None
            self.ports["trusted_port"] = await self.trusted_server.listen(s.host, s.trusted_port)
        self.ports["metrics_port"] = await self.metrics_server.listen(
            s.metrics_host or s.host, s.metrics_port
        )
        if s.autoscaler_url:
            self._session = aiohttp.ClientSession()
            self.link = AutoscalerLink(s.autoscaler_url, self._session)
            self.link.start()
        self._reporter = asyncio.get_running_loop().create_task(
            every(REPORT_INTERVAL, self._report), name="activator-stats"
        )
        return self.ports

    def _report(self) -> None:
        batch = self.stats.report(time.monotonic())
        if batch is not None:
            self._send(batch)

    @property
    def in_flight(self) -> int:
        return sum(srv.in_flight for srv in self.servers)

    async def shutdown(self, drain_seconds: float | None = None) -> None:
        """Fail health checks, wait for the ingress to notice, stop accepting,
        finish what is in flight and queued (queued requests are bounded by
        the activation timeout), then close."""
        self.draining = True
        delay = self.settings.drain_seconds if drain_seconds is None else drain_seconds
        if delay > 0:
            log.info("draining: health checks fail; closing listeners in %.0fs", delay)
            await asyncio.sleep(delay)
        for srv in self.servers:
            srv.stop_listening()
            srv.begin_shutdown()
        self.metrics_server.stop_listening()
        log.info("waiting for %d request(s)", self.in_flight)
        while any(srv.conns for srv in self.servers):
            await asyncio.sleep(0.05)
        self.metrics_server.abort_all()
        await self.close()

    async def close(self) -> None:
        """Stop background work (used by shutdown, and by tests after an abort)."""
        if self._reporter is not None:
            self._reporter.cancel()
            await asyncio.gather(self._reporter, return_exceptions=True)
            self._reporter = None
        if self.link is not None:
            await self.link.stop()
        if self._session is not None:
            await self._session.close()
            self._session = None
        self.revisions.close()
        await self.revisions.wait_probes_stopped()
        await asyncio.to_thread(self.tracing.close)  # the spans still batched go out
        for srv in (*self.servers, self.metrics_server):
            srv.stop_listening()
            srv.abort_all()
            with contextlib.suppress(Exception):
                await srv.wait_closed()
