"""The controller's settings: the command line (:class:`Settings`) and the
``knative-serving`` ConfigMaps, followed live (:class:`ClusterConfig`).

The ConfigMaps are parsed by the same code as locally (``Configs.with_config_map``), so a
key means the same thing in both places and an invalid value is rejected with the same
words. One ConfigMap that does not parse is logged and ignored while the others apply:
the last good version of it stays in force, as upstream rejects a bad map whole.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from zeroserve.api.configs import Configs, DomainConfig
from zeroserve.api.objects import CONFIG_MAP_NAMES
from zeroserve.envconfig import ConfigError
from zeroserve.serving.domains import CLUSTER_DOMAIN

log = logging.getLogger(__name__)

QUEUE_SIDECAR_IMAGE_KEY = "queue-sidecar-image"
"""The ``config-deployment`` key that overrides ``--queue-proxy-image`` (upstream's name)."""


def _default_image() -> str:
    try:
        version = metadata.version("zeroserve")
    except metadata.PackageNotFoundError:
        version = "latest"
    return f"zeroserve:{version}"


@dataclass(frozen=True, kw_only=True)
class Settings:
    """``zeroserve controller`` options (see ``--help``)."""

    kubeconfig: str | None = None
    """kubeconfig file; None: ``$KUBECONFIG``, else the in-cluster service account."""
    namespace: str | None = None
    """Reconcile only this namespace; None: all namespaces."""
    system_namespace: str = "knative-serving"
    """Where the ConfigMaps, the activator, the ingress Gateway and the Lease live."""
    queue_proxy_image: str = field(default_factory=_default_image)
    """The queue-proxy sidecar's image (``python -m queueproxy`` runs in it)."""
    host: str = "0.0.0.0"
    """Address of the metrics listener."""
    metrics_port: int = 9090
    """Prometheus ``/metrics`` and ``/healthz``; 0 picks a free port."""
    leader_elect: bool = True
    """Reconcile only while holding the Lease ``zeroserve-controller``."""
    cluster_domain: str = CLUSTER_DOMAIN
    """The cluster's DNS domain (``svc.<cluster-domain>`` names are cluster-local)."""
    domain: str | None = None
    """Domain of routes when ``config-domain`` names none; None: ``svc.<cluster-domain>``
    (upstream's default: such routes are reachable inside the cluster only)."""
    sync_timeout: float = 60.0
    """Seconds to wait for the first list of every watched resource at start."""
    resync_period: float = 300.0
    """A full reconcile at least this often, even without any change seen."""
    lease_name: str = "zeroserve-controller"

    @property
    def default_domain(self) -> str:
        return self.domain or f"svc.{self.cluster_domain}"

    @property
    def activator_host(self) -> str:
        """Where every route's traffic goes: the activator Service."""
        return f"activator.{self.system_namespace}.svc.{self.cluster_domain}"

    @property
    def ingress_gateway(self) -> str:
        return f"{self.system_namespace}/knative-ingress-gateway"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The subcommand's options (``zeroserve controller --help``)."""
    d = Settings()
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, else in-cluster)")
    p.add_argument("--namespace", help="reconcile only this namespace (default: all)")
    p.add_argument(
        "--system-namespace",
        default=d.system_namespace,
        help="namespace of the config-* ConfigMaps, the activator, the ingress "
        f"Gateway and the leader Lease (default {d.system_namespace})",
    )
    p.add_argument(
        "--queue-proxy-image",
        default=d.queue_proxy_image,
        help="image of the queue-proxy sidecar; config-deployment's "
        f"queue-sidecar-image overrides it (default {d.queue_proxy_image})",
    )
    p.add_argument(
        "--host", default=d.host, help=f"address of the metrics listener (default {d.host})"
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=d.metrics_port,
        help=f"Prometheus /metrics, /healthz, /readyz (default {d.metrics_port}; 0: any)",
    )
    p.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=d.leader_elect,
        help="reconcile only while holding the Lease zeroserve-controller in the "
        "system namespace (default on)",
    )
    p.add_argument(
        "--cluster-domain",
        default=d.cluster_domain,
        help=f"the cluster's DNS domain (default {d.cluster_domain})",
    )
    p.add_argument(
        "--domain",
        help="domain of routes that config-domain gives none "
        "(default: svc.<cluster-domain>, reachable inside the cluster only)",
    )
    p.add_argument(
        "--sync-timeout",
        type=float,
        default=d.sync_timeout,
        help=f"seconds to wait for the first lists at start (default {d.sync_timeout:g})",
    )


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(
        kubeconfig=args.kubeconfig,
        namespace=args.namespace,
        system_namespace=args.system_namespace,
        queue_proxy_image=args.queue_proxy_image,
        host=args.host,
        metrics_port=args.metrics_port,
        leader_elect=args.leader_elect,
        cluster_domain=args.cluster_domain,
        domain=args.domain,
        sync_timeout=args.sync_timeout,
    )


class ClusterConfig:
    """The ``knative-serving`` ConfigMaps as :class:`Configs`, plus the queue-proxy image
    (``config-deployment`` ``queue-sidecar-image`` over the command line)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._good: dict[str, dict[str, str]] = {}
        """The data of each map as last accepted (absent: defaults)."""
        self.configs = self._build(self._good)
        self.queue_proxy_image = settings.queue_proxy_image

    def update(self, config_maps: Mapping[tuple[str, str], dict[str, Any]]) -> bool:
        """Take the current maps of the system namespace; True if a setting changed."""
        ns = self.settings.system_namespace
        good = dict(self._good)
        for name in CONFIG_MAP_NAMES:
            obj = config_maps.get((ns, name))
            data = {str(k): str(v) for k, v in ((obj or {}).get("data") or {}).items()}
            if good.get(name, {}) == data:
                continue
            candidate = {**good, name: data}
            try:
                self._build(candidate)
            except ConfigError as exc:
                log.error(
                    "ignoring ConfigMap %s/%s, keeping its last good version: %s", ns, name, exc
                )
                continue
            good = candidate
        if good == self._good:
            return False
        self._good = good
        self.configs = self._build(good)
        image = good.get("config-deployment", {}).get(QUEUE_SIDECAR_IMAGE_KEY)
        self.queue_proxy_image = image or self.settings.queue_proxy_image
        log.info("configuration updated from the ConfigMaps in %s", ns)
        return True

    def _build(self, maps: Mapping[str, Mapping[str, str]]) -> Configs:
        default_domain = self.settings.default_domain
        configs = Configs(domain=DomainConfig({default_domain: {}}))
        for name in CONFIG_MAP_NAMES:
            data = dict(maps.get(name) or {})
            if name == "config-deployment":
                # Only the cluster reads this key; the shared parser does not know it.
                data.pop(QUEUE_SIDECAR_IMAGE_KEY, None)
            if data or name in maps:
                configs = configs.with_config_map(name, data, default_domain=default_domain)
        return configs
