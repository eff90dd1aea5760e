"""Wiring of ``python -m autoscaler`` on Kubernetes: sources, multiscaler, servers, config.

The autoscaler reads Revisions, EndpointSlices, Pods and Deployments through
watch caches, scrapes queue-proxies, takes activator stats on its websocket
(``:8080``), serves Prometheus on ``:9090``, and follows the
``config-autoscaler`` and ``config-deployment`` ConfigMaps of the system
namespace live: a new valid map applies at once; an invalid one is logged and
ignored (the last good one stays, as upstream rejects a bad map whole).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from zeroserve import kube
from zeroserve.autoscaling.config import AutoscalerConfig, DeploymentConfig

from .kubernetes import KubernetesSources
from .metrics import AutoscalerCollector
from .multiscaler import Multiscaler
from .scraper import StatsScraper
from .statserver import StatServer

log = logging.getLogger("autoscaler")


@dataclass(frozen=True)
class Settings:
    """Command-line settings (see ``python -m autoscaler --help``)."""

    kubeconfig: str | None = None
    namespace: str | None = None
    """Watch only this namespace (default: all)."""
    system_namespace: str = "knative-serving"
    """Where config-autoscaler and config-deployment live."""
    host: str = "0.0.0.0"
    port: int = 8080
    """The activators' stats websocket."""
    metrics_port: int = 9090
    overrides: Mapping[str, str] = field(default_factory=dict)
    """config-autoscaler keys given on the command line; they win over the ConfigMap."""
    sync_timeout: float = 60.0


class Autoscaler:
    def __init__(self, settings: Settings, client: kube.KubeClient) -> None:
        self.settings = settings
        self.client = client
        self.config = AutoscalerConfig.from_mapping(dict(settings.overrides))
        self.deployment = DeploymentConfig()
        self.sources = KubernetesSources(client, settings.namespace)
        self.config_cache = client.watch_cache(kube.CONFIG_MAPS, namespace=settings.system_namespace)
        self.session: aiohttp.ClientSession | None = None
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
        ms = Multiscaler(config=self.config, deployment=self.deployment, revisions=self.sources.revisions,
                         pods=self.sources.endpoints, scaler=self.sources.scaler,
                         scraper=StatsScraper(self.session))
        self.multiscaler = ms
        self.registry.register(AutoscalerCollector(ms))
        stats = StatServer(ms.record)
        metrics = web.Application()
        metrics.router.add_get("/metrics", self._metrics)
        for name, app, port in (("port", stats.app, s.port), ("metrics_port", metrics, s.metrics_port)):
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=5)
            await runner.setup()
            site = web.TCPSite(runner, s.host, port)
            await site.start()
            self.runners.append(runner)
            self.ports[name] = runner.addresses[0][1]
        await ms.start()

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    def _config_changed(self, kind: str, obj: dict[str, Any]) -> None:
        if obj.get("metadata", {}).get("name") in ("config-autoscaler", "config-deployment"):
            self._apply_config()

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
