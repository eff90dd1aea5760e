"""The in-cluster controller: watch caches, the reconcile loop, leader election, metrics.

Every watched resource is a ``zeroserve.kube`` watch cache; any change wakes the loop,
which waits a moment for more changes to arrive, then runs one pass: plan the writes
from memory (``planner.plan``), carry them out (``writes.execute``). Nothing calls the
API to read during a pass; nothing is read per data-plane request at all.

State survives API trouble because there is no state besides the API and the caches:

- an outage: the caches keep their last contents and reconnect on their own; a pass whose
  write fails as Unavailable stops and is retried with backoff (0.2 s doubling to 10 s);
  nothing is ever deleted because of what a list said (deletions are the garbage
  collector's, through owner references, and only a route's removed tags are deleted
  explicitly, judged against that route's current programming);
- a restart (of the API or of the controller): the caches re-list, and every decision is
  re-derived from the objects (generations, the statuses written before);
- a conflict: the write re-reads the object and applies its change again.

With leader election only the holder of the Lease ``zeroserve-controller`` writes; the
others keep their caches warm and take over within seconds of the leader stopping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiohttp import web

from controller.config import ClusterConfig, Settings
from controller.meta import ROUTE_LABEL
from controller.metrics import ControllerMetrics, serve
from controller.planner import plan
from controller.snapshot import ClusterView
from controller.writes import execute
from zeroserve.knative import REVISION_LABEL
from zeroserve.kube import (
    CONFIG_MAPS,
    CONFIGURATIONS,
    DEPLOYMENTS,
    ENDPOINT_SLICES,
    KSERVICES,
    PODS,
    REVISIONS,
    ROUTES,
    SERVICES,
    VIRTUAL_SERVICES,
    Backoff,
    KubeClient,
    KubeError,
    NotFound,
    Unavailable,
    WatchCache,
    not_synced,
)
from zeroserve.leader import LeaderElector

log = logging.getLogger("controller")

DEBOUNCE = 0.05
"""Seconds to wait after a change for the ones that come with it (a write's echo)."""


class KubeController:
    """Owns its caches, loop task, elector and metrics listener; ``start``/``stop``."""

    def __init__(
        self,
        client: KubeClient,
        settings: Settings,
        *,
        elector: LeaderElector | None = None,
        metrics: ControllerMetrics | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.config = ClusterConfig(settings)
        self.metrics = metrics or ControllerMetrics()
        if elector is None and settings.leader_elect:
            elector = LeaderElector(client, settings.system_namespace, settings.lease_name)
        self.elector = elector
        ns = settings.namespace
        watch = client.watch_cache
        self.caches: dict[str, WatchCache] = {
            "services": watch(KSERVICES, ns),
            "configurations": watch(CONFIGURATIONS, ns),
            "revisions": watch(REVISIONS, ns),
            "routes": watch(ROUTES, ns),
            "config_maps": watch(CONFIG_MAPS, settings.system_namespace),
            "deployments": watch(DEPLOYMENTS, ns, label_selector=REVISION_LABEL),
            "private_services": watch(SERVICES, ns, label_selector=REVISION_LABEL),
            "endpoint_slices": watch(ENDPOINT_SLICES, ns, label_selector=REVISION_LABEL),
            "pods": watch(PODS, ns, label_selector=REVISION_LABEL),
            "placeholders": watch(SERVICES, ns, label_selector=ROUTE_LABEL),
            "virtual_services": watch(VIRTUAL_SERVICES, ns, label_selector=ROUTE_LABEL),
        }
        self.istio = True
        """False when the cluster has no VirtualService CRD: routes then get none."""
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self.metrics_port = 0
        self.passes = 0
        """Completed passes (tests wait on it)."""
        for name, cache in self.caches.items():
            cache.on_change(self._changed)
            self.metrics.watch(name, cache.objects.__len__)

    @property
    def leading(self) -> bool:
        return self.elector is None or self.elector.leading

    @property
    def synced(self) -> bool:
        return all(c.synced.is_set() for c in self.caches.values())

    def _changed(self, kind: str, obj: dict[str, object]) -> None:
        self._wake.set()

    def _leadership(self, leading: bool) -> None:
        self.metrics.leader.set(1 if leading else 0)
        if leading:
            self._wake.set()

    # ----- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the caches and wait for their first lists, then the metrics listener,
        the election and the loop. A ``KubeError`` names what did not sync in time."""
        for cache in self.caches.values():
            cache.start()
        timeout = self.settings.sync_timeout
        try:
            async with asyncio.timeout(timeout):
                for name, cache in self.caches.items():
                    if name != "virtual_services":
                        await cache.synced.wait()
                while not self.caches["virtual_services"].synced.is_set():
                    if isinstance(self.caches["virtual_services"].last_error, NotFound):
                        break
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise not_synced(self.caches.values(), timeout) from None
        vs = self.caches["virtual_services"]
        if not vs.synced.is_set():
            self.istio = False
            await vs.stop()
            log.warning(
                "Istio's VirtualService CRD is not installed (%s): routes get no "
                "VirtualService; install Istio and restart the controller",
                vs.last_error,
            )
        self._runner, self.metrics_port = await serve(
            self.metrics,
            lambda: self.synced or not self.istio,
            self.settings.host,
            self.settings.metrics_port,
        )
        if self.elector is not None:
            self.elector.on_change(self._leadership)
            self.elector.start()
        else:
            self.metrics.leader.set(1)
        self._wake.set()
        self._task = asyncio.create_task(self._loop(), name="controller reconcile loop")

    async def stop(self) -> None:
        """Stop reconciling, give up the Lease (a standby takes over at once), stop the
        listener and the caches."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.elector is not None:
            await self.elector.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for cache in self.caches.values():
            await cache.stop()

    # ----- the loop ------------------------------------------------------------------------

    async def _loop(self) -> None:
        backoff = Backoff(initial=0.2, cap=10.0)
        retry_in: float | None = None
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(retry_in or self.settings.resync_period):
                    await self._wake.wait()
            if not self.leading:
                self._wake.clear()
                retry_in = None
                continue
            await asyncio.sleep(DEBOUNCE)
            self._wake.clear()
            try:
                ok = await self.reconcile_once()
            except Exception:
                log.exception("reconcile pass failed")
                ok = False
            if ok:
                backoff.reset()
                retry_in = None
            else:
                retry_in = backoff.next()

    def view(self) -> ClusterView:
        c = self.caches
        return ClusterView(
            services=c["services"].objects,
            configurations=c["configurations"].objects,
            revisions=c["revisions"].objects,
            routes=c["routes"].objects,
            deployments=c["deployments"].objects,
            private_services=c["private_services"].objects,
            endpoint_slices=c["endpoint_slices"].objects,
            pods=c["pods"].objects,
            virtual_services=c["virtual_services"].objects if self.istio else None,
            placeholders=c["placeholders"].objects,
        )

    async def reconcile_once(self) -> bool:
        """One pass; False when a write failed (the loop retries with backoff)."""
        started = time.monotonic()
        self.config.update(self.caches["config_maps"].objects)
        writes = plan(
            self.view(),
            self.config.configs,
            self.config.queue_proxy_image,
            self.settings,
            time.time(),
        )
        ok = True
        for write in writes:
            if not self.leading:
                log.info("no longer the leader: pass abandoned")
                break
            try:
                changed = await execute(self.client, write)
            except Unavailable as exc:
                self.metrics.errors.labels(exc.reason or "Unavailable").inc()
                log.warning("%s: %s; the pass is retried", write, exc)
                ok = False
                break  # the API is away: the rest would fail the same way
            except KubeError as exc:
                self.metrics.errors.labels(exc.reason or type(exc).__name__).inc()
                log.error("%s: %s", write, exc)
                ok = False
                continue
            if changed:
                self.metrics.writes.labels(write.verb, str(write.ref)).inc()
                log.info("%s", write)
        self.passes += 1
        self.metrics.reconciles.labels("ok" if ok else "failed").inc()
        self.metrics.duration.observe(time.monotonic() - started)
        return ok
