"""Wiring of ``python -m autoscaler``: sources, multiscaler, servers, config.

On Kubernetes (:class:`Autoscaler`) the autoscaler reads Revisions,
EndpointSlices, Pods and Deployments through watch caches, scrapes
queue-proxies, takes activator stats on its websocket (``:8080``), serves
Prometheus on ``:9090``, and follows the ``config-autoscaler`` and
``config-deployment`` ConfigMaps of the system namespace live: a new valid map
applies at once; an invalid one is logged and ignored (the last good one stays,
as upstream rejects a bad map whole). In local mode (:class:`LocalAutoscaler`)
the same parts follow ``zeroserve up``'s control API instead, ConfigMaps
included.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from zeroserve import kube
from zeroserve.api.network import NETWORK, parse_mesh_mode
from zeroserve.autoscaling.config import AutoscalerConfig, DeploymentConfig
from zeroserve.knative import CLUSTER_DOMAIN, private_service_name
from zeroserve.leader import LeaderElector
from zeroserve.local.protocol import Snapshot

from .config import Settings
from .figures import FigureReporter
from .kubernetes import KubernetesSources
from .local import ControlPlaneCluster
from .metrics import AutoscalerCollector
from .model import RevisionKey
from .multiscaler import Multiscaler
from .scraper import QUEUE_METRICS_PORT, StatsScraper
from .statserver import StatServer

log = logging.getLogger("autoscaler")

LEASE_NAME = "zeroserve-autoscaler"


def leader_elector(client: kube.KubeClient, settings: Settings) -> LeaderElector:
    """The election that ``--leader-elect`` runs: one autoscaler decides at a time, since
    its windows are in memory and two would scale the same Deployments apart."""
    return LeaderElector(client, settings.system_namespace, LEASE_NAME)


async def serve(
    ms: Multiscaler, registry: CollectorRegistry, host: str, port: int, metrics_port: int
) -> tuple[list[web.AppRunner], dict[str, int]]:
    """The stats websocket and the Prometheus endpoint of ``ms``; returns the runners and bound ports."""
    registry.register(AutoscalerCollector(ms))
    stats = StatServer(ms.record)

    async def metrics_handler(request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    metrics = web.Application()
    metrics.router.add_get("/metrics", metrics_handler)
    runners, ports = [], {}
    for name, app, p in (("port", stats.app, port), ("metrics_port", metrics, metrics_port)):
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=5)
        await runner.setup()
        await web.TCPSite(runner, host, p).start()
        runners.append(runner)
        ports[name] = runner.addresses[0][1]
    return runners, ports


class Autoscaler:
    """Kubernetes mode."""

    def __init__(
        self, settings: Settings, client: kube.KubeClient, cluster_domain: str = CLUSTER_DOMAIN
    ) -> None:
        self.settings = settings
        self.client = client
        self.config = settings.autoscaler_config()
        self.deployment = DeploymentConfig()
        self.sources = KubernetesSources(client, settings.namespace)
        self.config_cache = client.watch_cache(
            kube.CONFIG_MAPS, namespace=settings.system_namespace
        )
        self.session: aiohttp.ClientSession | None = None
        self.scraper: StatsScraper | None = None
        self.cluster_domain = cluster_domain
        self.multiscaler: Multiscaler | None = None
        self.runners: list[web.AppRunner] = []
        self.registry = CollectorRegistry()
        self.ports: dict[str, int] = {}

    async def start(self) -> None:
        s = self.settings
        self.config_cache.on_change(self._config_changed)
        self.config_cache.start()
        self.sources.start()
        await self.sources.wait_synced(s.sync_timeout)
        await self.config_cache.wait_synced(s.sync_timeout)
        self._apply_config()
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self.scraper = StatsScraper(self.session)
        self._apply_mesh()
        ms = Multiscaler(
            config=self.config,
            deployment=self.deployment,
            revisions=self.sources.revisions,
            pods=self.sources.endpoints,
            scaler=self.sources.scaler,
            scraper=self.scraper,
        )
        self.multiscaler = ms
        self.runners, self.ports = await serve(ms, self.registry, s.host, s.port, s.metrics_port)
        await ms.start()

    def _config_changed(self, kind: str, obj: dict[str, Any]) -> None:
        name = obj.get("metadata", {}).get("name")
        if name in ("config-autoscaler", "config-deployment"):
            self._apply_config()
        if name == NETWORK:
            self._apply_mesh()

    def _apply_mesh(self) -> None:
        """``config-network`` ``mesh-compatibility-mode``: how the revisions' stats are
        scraped (docs/autoscaling.md, "Mesh mode"); a value that does not parse is logged
        and the mode in force stays."""
        if self.scraper is None:
            return
        ns = self.settings.system_namespace
        data = (self.config_cache.get(ns, NETWORK) or {}).get("data") or {}
        try:
            mode = parse_mesh_mode(data.get("mesh-compatibility-mode"))
        except ValueError as e:
            log.error("ignoring ConfigMap %s/%s, keeping the mode in force: %s", ns, NETWORK, e)
            return
        if (mode, self.scraper.service_url) != (self.scraper.mesh_mode, self._service_url):
            self.scraper.set_mesh(mode, self._service_url)
            log.info("%s: mesh-compatibility-mode %s", NETWORK, mode)

    def _service_url(self, key: RevisionKey) -> str:
        """The queue-proxy's stats through the private Service's ``http-autometric`` port."""
        host = f"{private_service_name(key.name)}.{key.namespace}.svc.{self.cluster_domain}"
        return f"http://{host}:{QUEUE_METRICS_PORT}/metrics"

    def _apply_config(self) -> None:
        ns = self.settings.system_namespace
        autoscaler_cm = self.config_cache.get(ns, "config-autoscaler") or {}
        deployment_cm = self.config_cache.get(ns, "config-deployment") or {}
        data = {**(autoscaler_cm.get("data") or {}), **self.settings.overrides}
        try:
            config = AutoscalerConfig.from_mapping(data)
            deployment = DeploymentConfig.from_mapping(deployment_cm.get("data") or {})
        except ValueError as e:
            log.error("ignoring the new configuration, keeping the last good one: %s", e)
            return
        if (config, deployment) == (self.config, self.deployment):
            return
        self.config, self.deployment = config, deployment
        if self.multiscaler is not None:
            self.multiscaler.update_config(config, deployment)
            log.info("configuration updated")

    async def stop(self) -> None:
        if self.multiscaler is not None:
            await self.multiscaler.stop()
        for runner in self.runners:
            await runner.cleanup()  # websockets are told to reconnect (1012)
        if self.session is not None:
            await self.session.close()
        await self.config_cache.stop()
        await self.sources.stop()


class LocalAutoscaler:
    """Local mode: revisions, pods and replica counts through ``zeroserve up``'s control API;
    config-autoscaler and config-deployment come with its state snapshots."""

    def __init__(self, settings: Settings, control_url: str) -> None:
        self.settings = settings
        self.control_url = control_url
        self.registry = CollectorRegistry()
        self.session: aiohttp.ClientSession | None = None
        self.cluster: ControlPlaneCluster | None = None
        self.multiscaler: Multiscaler | None = None
        self.reporter: FigureReporter | None = None
        self.runners: list[web.AppRunner] = []
        self.ports: dict[str, int] = {}
        self._config_data: tuple[dict[str, str], dict[str, str]] | None = None

    async def start(self) -> None:
        s = self.settings
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self.cluster = ControlPlaneCluster(self.control_url, self.session, self._snapshot)
        self.cluster.start()
        await asyncio.wait_for(self.cluster.follower.synced.wait(), s.sync_timeout)
        config, deployment = self._configs(self.cluster.snapshot)
        ms = Multiscaler(
            config=config,
            deployment=deployment,
            revisions=self.cluster,
            pods=self.cluster,
            scaler=self.cluster,
            scraper=StatsScraper(self.session),
        )
        self.multiscaler = ms
        # every tick's figures to zeroserve up's live page
        self.reporter = FigureReporter(ms, self.session, self.control_url)
        self.runners, self.ports = await serve(ms, self.registry, s.host, s.port, s.metrics_port)
        await ms.start()

    def _configs(self, snap: Snapshot) -> tuple[AutoscalerConfig, DeploymentConfig]:
        data = {**snap.autoscaler_config, **self.settings.overrides}
        self._config_data = (data, dict(snap.deployment_config))
        return AutoscalerConfig.from_mapping(data), DeploymentConfig.from_mapping(
            snap.deployment_config
        )

    def _snapshot(self, snap: Snapshot) -> None:
        data = ({**snap.autoscaler_config, **self.settings.overrides}, dict(snap.deployment_config))
        if self.multiscaler is None or data == self._config_data:
            return
        try:
            config, deployment = self._configs(snap)
        except ValueError as e:
            log.error("ignoring the new configuration, keeping the last good one: %s", e)
            return
        self.multiscaler.update_config(config, deployment)
        log.info("configuration updated")

    async def stop(self) -> None:
        if self.multiscaler is not None:
            await self.multiscaler.stop()
        if self.reporter is not None:
            await self.reporter.stop()
        for runner in self.runners:
            await runner.cleanup()
        if self.cluster is not None:
            await self.cluster.stop()
        if self.session is not None:
            await self.session.close()
