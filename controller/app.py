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
import os
import time

from aiohttp import web

from controller import events
from controller.config import ClusterConfig, Settings
from controller.domainmapping import CLUSTER_DOMAIN_CLAIMS, DOMAIN_MAPPINGS
from controller.meta import MANAGED_SELECTOR, ROUTE_LABEL
from controller.metrics import ControllerMetrics, serve
from controller.planner import run
from controller.policies import NETWORK_POLICIES
from controller.snapshot import ClusterView
from controller.webhook import Certificates, WebhookServer
from controller.writes import execute
from zeroserve.api.configs import Configs
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
from zeroserve.kube.events import EventRecorder
from zeroserve.leader import LeaderElector

log = logging.getLogger("controller")

DEBOUNCE = 0.05
"""Seconds to wait after a change for the ones that come with it (a write's echo)."""
TIMER_FLOOR = 0.25
"""Seconds at least between passes a timer asks for (a deadline already past included),
so that a step that keeps failing does not spin the loop."""
OPTIONAL = {
    "virtual_services": "Istio's VirtualService CRD: routes get no VirtualService",
    "network_policies": "NetworkPolicies: no revision NetworkPolicy is written",
    "domain_mappings": "the DomainMapping CRD: DomainMappings are not served",
    "domain_claims": "the ClusterDomainClaim CRD: DomainMappings are not served",
}
"""Caches of resources a cluster may not serve, and what is skipped without them."""


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
            "virtual_services": watch(VIRTUAL_SERVICES, ns, label_selector=MANAGED_SELECTOR),
            "network_policies": watch(NETWORK_POLICIES, ns, label_selector=MANAGED_SELECTOR),
            "domain_mappings": watch(DOMAIN_MAPPINGS, ns),
            "domain_claims": watch(CLUSTER_DOMAIN_CLAIMS, None),
        }
        self.absent: set[str] = set()
        """Optional caches whose resource the API does not serve (see ``OPTIONAL``)."""
        self.next_due: float | None = None
        """Unix time of the next pass the last one asked for (a rollout step)."""
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self.metrics_port = 0
        self.passes = 0
        """Completed passes (tests wait on it)."""
        for name, cache in self.caches.items():
            cache.on_change(self._changed)
            self.metrics.watch(name, cache.objects.__len__)
        self.recorder = EventRecorder(
            client, component="controller", host=os.environ.get("POD_NAME", "")
        )
        self.webhook: WebhookServer | None = None
        if settings.webhook_port:
            self.webhook = WebhookServer(
                Certificates(
                    client,
                    settings.system_namespace,
                    service=settings.webhook_service,
                    secret=settings.webhook_secret,
                ),
                self.current_configs,
                host=settings.host,
                port=settings.webhook_port,
            )

    @property
    def istio(self) -> bool:
        """False when the cluster has no VirtualService CRD: routes then get none."""
        return "virtual_services" not in self.absent

    @property
    def leading(self) -> bool:
        return self.elector is None or self.elector.leading

    @property
    def synced(self) -> bool:
        return all(c.synced.is_set() for c in self.caches.values())

    def current_configs(self) -> Configs:
        """The settings of the config-* ConfigMaps as the caches hold them now (every
        replica's; the webhook answers on stand-bys too)."""
        self.config.update(self.caches["config_maps"].objects)
        return self.config.configs

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
                    if name not in OPTIONAL:
                        await cache.synced.wait()
                for name in OPTIONAL:
                    cache = self.caches[name]
                    while not cache.synced.is_set():
                        if isinstance(cache.last_error, NotFound):
                            break
                        await asyncio.sleep(0.05)
        except TimeoutError:
            raise not_synced(self.caches.values(), timeout) from None
        for name, skipped in OPTIONAL.items():
            cache = self.caches[name]
            if not cache.synced.is_set():
                self.absent.add(name)
                await cache.stop()
                log.warning(
                    "the API does not serve %s (%s); install it and restart the controller",
                    skipped,
                    cache.last_error,
                )
        if self.webhook is not None:
            # before /readyz can say yes: kubectl apply needs the webhook trusted
            await self.webhook.start()
        await self.recorder.start()
        self._runner, self.metrics_port = await serve(
            self.metrics,
            lambda: (
                (self.webhook is None or self.webhook.ready)
                and all(c.synced.is_set() for n, c in self.caches.items() if n not in self.absent)
            ),
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
        if self.webhook is not None:
            await self.webhook.stop()
        await self.recorder.stop()
        for cache in self.caches.values():
            await cache.stop()

    # ----- the loop ------------------------------------------------------------------------

    async def _loop(self) -> None:
        backoff = Backoff(initial=0.2, cap=10.0)
        retry_in: float | None = None
        while True:
            wait = retry_in or self.settings.resync_period
            if self.next_due is not None:
                wait = min(wait, max(TIMER_FLOOR, self.next_due - time.time()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
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

    def _record(self, found: list[events.Event]) -> None:
        for event in found:
            self.recorder.event(event.involved, event.type, event.reason, event.message)

    def _optional(self, name: str) -> dict[tuple[str, str], dict[str, object]] | None:
        return None if name in self.absent else self.caches[name].objects

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
            virtual_services=self._optional("virtual_services"),
            placeholders=c["placeholders"].objects,
            network_policies=self._optional("network_policies"),
            domain_mappings=self._optional("domain_mappings"),
            domain_claims=self._optional("domain_claims"),
        )

    async def reconcile_once(self) -> bool:
        """One pass; False when a write failed (the loop retries with backoff)."""
        started = time.monotonic()
        self.config.update(self.caches["config_maps"].objects)
        planned = run(
            self.view(),
            self.config.configs,
            self.config.queue_proxy_image,
            self.settings,
            time.time(),
            self.config.gateways,
        )
        writes = planned.writes
        self.next_due = planned.next_due
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
                self._record(events.on_failure(write, str(exc)))
                ok = False
                continue
            if changed:
                self._record(events.on_success(write))
                self.metrics.writes.labels(write.verb, str(write.ref)).inc()
                log.info("%s", write)
        self.passes += 1
        self.metrics.reconciles.labels("ok" if ok else "failed").inc()
        self.metrics.duration.observe(time.monotonic() - started)
        return ok
