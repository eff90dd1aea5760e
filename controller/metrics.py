"""The controller's Prometheus metrics, and the small HTTP server that exposes them
(``/metrics``) with the health checks the Deployment's probes call (``/healthz``:
the process runs; ``/readyz``: its caches are synced)."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class ControllerMetrics:
    """Counters the reconcile loop updates; one registry per controller (tests run several)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.reconciles = Counter(
            "zeroserve_controller_reconciles",
            "Reconcile passes, by result (ok, failed: some "
            "write failed and the pass is retried with backoff).",
            ["result"],
            registry=r,
        )
        self.duration = Histogram(
            "zeroserve_controller_reconcile_duration_seconds",
            "Time of one reconcile pass (planning and writes).",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.writes = Counter(
            "zeroserve_controller_writes",
            "API writes that changed something, by verb and resource.",
            ["verb", "resource"],
            registry=r,
        )
        self.errors = Counter(
            "zeroserve_controller_errors",
            "Failed API writes, by the API's reason "
            "(Conflict after retries, Unavailable, Invalid, ...).",
            ["reason"],
            registry=r,
        )
        self.leader = Gauge(
            "zeroserve_controller_leader",
            "1 while this replica holds the leader Lease (always 1 without leader election).",
            registry=r,
        )
        self.objects = Gauge(
            "zeroserve_controller_watched_objects",
            "Objects in the watch caches, by resource.",
            ["resource"],
            registry=r,
        )

    def watch(self, resource: str, count: Callable[[], int]) -> None:
        self.objects.labels(resource).set_function(lambda: float(count()))


async def serve(
    metrics: ControllerMetrics, ready: Callable[[], bool], host: str, port: int
) -> tuple[web.AppRunner, int]:
    """Start the listener; returns its runner (clean up to stop) and the bound port."""

    async def metrics_handler(request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(request: web.Request) -> web.Response:
        return web.Response(text="ok") if ready() else web.Response(status=503, text="syncing")

    app = web.Application()
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, int(runner.addresses[0][1])
