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
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import yaml

from zeroserve.api.configs import Configs, DomainConfig
from zeroserve.api.objects import CONFIG_MAP_NAMES
from zeroserve.envconfig import ConfigError
from zeroserve.serving.domains import CLUSTER_DOMAIN

log = logging.getLogger(__name__)

CONFIG_ISTIO = "config-istio"
"""net-istio's ConfigMap: which Istio Gateways serve public and cluster-local hosts."""
KNATIVE_INGRESS_GATEWAY = "knative-ingress-gateway"
KNATIVE_LOCAL_GATEWAY = "knative-local-gateway"
_GATEWAY_PREFIX = "gateway."
_LOCAL_GATEWAY_PREFIX = "local-gateway."
_EXTERNAL_GATEWAYS = "external-gateways"
_LOCAL_GATEWAYS = "local-gateways"
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True)
class IstioGateways:
    """``config-istio`` as net-istio reads it: the Gateways (``namespace/name``) bound to
    public hosts and to cluster-local hosts, with the Service behind each."""

    ingress: tuple[tuple[str, str], ...]
    """(``namespace/name``, service host) of each public gateway."""
    local: tuple[tuple[str, str], ...]
    """(``namespace/name``, service host) of each cluster-local gateway."""

    @property
    def ingress_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.ingress)

    @property
    def local_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.local)


def default_gateways(system_namespace: str) -> IstioGateways:
    """net-istio's defaults: ``knative-ingress-gateway`` backed by
    ``istio-ingressgateway.istio-system``, ``knative-local-gateway`` backed by
    ``knative-local-gateway.istio-system``, both in the system namespace."""
    return IstioGateways(
        ingress=(
            (
                f"{system_namespace}/{KNATIVE_INGRESS_GATEWAY}",
                "istio-ingressgateway.istio-system.svc.cluster.local",
            ),
        ),
        local=(
            (
                f"{system_namespace}/{KNATIVE_LOCAL_GATEWAY}",
                "knative-local-gateway.istio-system.svc.cluster.local",
            ),
        ),
    )


def _gateway(key: str, namespace: str, name: str, service: Any) -> tuple[str, str]:
    if not namespace or not name:
        raise ConfigError(f"config-istio {key}: a gateway needs a namespace and a name")
    if not isinstance(service, str) or not service:
        raise ConfigError(f"config-istio {key}: gateway {namespace}/{name}: missing service")
    if not _DNS_SUBDOMAIN.match(service.removesuffix(".")) or len(service) > 253:
        raise ConfigError(
            f"config-istio {key}: gateway {namespace}/{name}: service {service!r} is not "
            "a DNS subdomain"
        )
    return f"{namespace}/{name}", service


def _new_format(key: str, text: str) -> tuple[tuple[str, str], ...]:
    try:
        items = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config-istio {key}: not YAML: {exc}") from None
    if not isinstance(items, list):
        raise ConfigError(f"config-istio {key}: must be a list of gateways")
    out = []
    defaults = 0
    for item in items:
        if not isinstance(item, dict):
            raise ConfigError(f"config-istio {key}: each gateway is a map")
        if item.get("labelSelector") is None:
            defaults += 1
        else:
            continue  # gateways for selected routes only: not supported, ignored
        out.append(
            _gateway(
                key,
                str(item.get("namespace") or ""),
                str(item.get("name") or ""),
                item.get("service"),
            )
        )
    if items and defaults != 1:
        raise ConfigError(
            f"config-istio {key}: exactly one gateway with no labelSelector can be defined"
        )
    return tuple(out)


def parse_config_istio(data: Mapping[str, str], system_namespace: str) -> IstioGateways:
    """net-istio's two formats: ``gateway.<namespace>.<name>: <service>`` and
    ``local-gateway.<namespace>.<name>: <service>`` keys (a name without a namespace is in
    the system namespace), or YAML lists under ``external-gateways``/``local-gateways``;
    not both. A kind left unset keeps its default. ``ConfigError`` names the bad key."""
    defaults = default_gateways(system_namespace)
    old = [k for k in data if k.startswith((_GATEWAY_PREFIX, _LOCAL_GATEWAY_PREFIX))]
    new = [k for k in (_EXTERNAL_GATEWAYS, _LOCAL_GATEWAYS) if data.get(k)]
    if old and new:
        raise ConfigError(
            f"config-istio: {_EXTERNAL_GATEWAYS!r} or {_LOCAL_GATEWAYS!r} cannot be set "
            f"together with {_GATEWAY_PREFIX!r} or {_LOCAL_GATEWAY_PREFIX!r} keys"
        )
    if new:
        ingress = (
            _new_format(_EXTERNAL_GATEWAYS, data[_EXTERNAL_GATEWAYS])
            if data.get(_EXTERNAL_GATEWAYS)
            else defaults.ingress
        )
        local = (
            _new_format(_LOCAL_GATEWAYS, data[_LOCAL_GATEWAYS])
            if data.get(_LOCAL_GATEWAYS)
            else defaults.local
        )
        return IstioGateways(ingress, local)

    def old_format(prefix: str) -> tuple[tuple[str, str], ...]:
        out = []
        for key in sorted(k for k in data if k.startswith(prefix) and k != prefix):
            namespace, dot, name = key[len(prefix) :].partition(".")
            if not dot:
                namespace, name = system_namespace, namespace
            out.append(_gateway(key, namespace, name, data[key]))
        return tuple(out)

    return IstioGateways(
        old_format(_GATEWAY_PREFIX) or defaults.ingress,
        old_format(_LOCAL_GATEWAY_PREFIX) or defaults.local,
    )


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
    network_policies: bool = True
    """Write the revisions' NetworkPolicy in every namespace that runs a revision."""
    network_policy_name: str = "zeroserve-revisions"
    release_name: str = "zeroserve"
    """The Helm release (``app.kubernetes.io/instance`` of the activator and autoscaler
    pods, which the NetworkPolicies let in)."""
    node_cidrs: tuple[str, ...] = ()
    metrics_from: str = ""
    """NetworkPolicy peers (a JSON list) let in to the queue-proxy's Prometheus port 9091;
    empty: anyone."""
    """Nodes' CIDRs let in to the queue-proxy's 8012 and 8022 (kubelet probes, preStop)."""
    webhook_port: int = 0
    """The admission webhook's HTTPS port (controller/webhook.py); 0: no webhook."""
    webhook_service: str = "webhook"
    """The Service in the system namespace that the webhook configurations call."""
    webhook_secret: str = "webhook-certs"
    """The Secret in the system namespace holding the webhook's certificate."""

    @property
    def default_domain(self) -> str:
        return self.domain or f"svc.{self.cluster_domain}"

    @property
    def activator_host(self) -> str:
        """Where every route's traffic goes: the activator Service."""
        return f"activator.{self.system_namespace}.svc.{self.cluster_domain}"

    @property
    def ingress_gateway(self) -> str:
        """The default public gateway (``config-istio`` may name others)."""
        return f"{self.system_namespace}/{KNATIVE_INGRESS_GATEWAY}"


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
    p.add_argument(
        "--network-policies",
        action=argparse.BooleanOptionalAction,
        default=d.network_policies,
        help="write the revisions' NetworkPolicy in every namespace running a revision "
        "(default on)",
    )
    p.add_argument(
        "--network-policy-name",
        default=d.network_policy_name,
        help=f"name of that NetworkPolicy (default {d.network_policy_name})",
    )
    p.add_argument(
        "--release-name",
        default=d.release_name,
        help="the Helm release: app.kubernetes.io/instance of the activator and autoscaler "
        f"pods the NetworkPolicy lets in (default {d.release_name})",
    )
    p.add_argument(
        "--node-cidr",
        action="append",
        default=[],
        help="a CIDR of the nodes, let in to the queue-proxy's 8012 and 8022 (repeatable)",
    )
    p.add_argument(
        "--metrics-from",
        default=d.metrics_from,
        type=_peers,
        help="JSON list of NetworkPolicy peers that may scrape the queue-proxy's 9091 "
        "(default: anyone)",
    )
    p.add_argument(
        "--webhook-port",
        type=int,
        default=d.webhook_port,
        help="serve the admission webhook (defaulting, validation) over HTTPS on this port "
        "(default: no webhook)",
    )
    p.add_argument(
        "--webhook-service",
        default=d.webhook_service,
        help=f"the webhook's Service in the system namespace (default {d.webhook_service})",
    )
    p.add_argument(
        "--webhook-secret",
        default=d.webhook_secret,
        help="the Secret in the system namespace for the webhook's certificate "
        f"(default {d.webhook_secret})",
    )


def _peers(text: str) -> str:
    import json

    try:
        value = json.loads(text) if text else []
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--metrics-from: not JSON: {exc}") from None
    if not isinstance(value, list) or not all(isinstance(p, dict) for p in value):
        raise argparse.ArgumentTypeError("--metrics-from: must be a JSON list of objects")
    return text


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
        network_policies=args.network_policies,
        network_policy_name=args.network_policy_name,
        release_name=args.release_name,
        node_cidrs=tuple(args.node_cidr),
        metrics_from=args.metrics_from,
        webhook_port=args.webhook_port,
        webhook_service=args.webhook_service,
        webhook_secret=args.webhook_secret,
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
        self.gateways = default_gateways(settings.system_namespace)
        self._istio: dict[str, str] | None = None

    def update(self, config_maps: Mapping[tuple[str, str], dict[str, Any]]) -> bool:
        """Take the current maps of the system namespace; True if a setting changed."""
        ns = self.settings.system_namespace
        istio_changed = self._update_istio(config_maps.get((ns, CONFIG_ISTIO)))
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
            return istio_changed
        self._good = good
        self.configs = self._build(good)
        self.queue_proxy_image = (
            self.configs.deployment.queue_sidecar_image or self.settings.queue_proxy_image
        )
        log.info("configuration updated from the ConfigMaps in %s", ns)
        return True

    def _update_istio(self, obj: dict[str, Any] | None) -> bool:
        """``config-istio`` (net-istio's keys); a bad version is logged and ignored."""
        ns = self.settings.system_namespace
        data = {str(k): str(v) for k, v in ((obj or {}).get("data") or {}).items()}
        if data == self._istio:
            return False
        self._istio = data
        try:
            gateways = parse_config_istio(data, ns)
        except ConfigError as exc:
            log.error(
                "ignoring ConfigMap %s/%s, keeping the gateways in force: %s", ns, CONFIG_ISTIO, exc
            )
            return False
        if gateways == self.gateways:
            return False
        self.gateways = gateways
        log.info(
            "gateways: public %s, cluster-local %s",
            ", ".join(gateways.ingress_names),
            ", ".join(gateways.local_names),
        )
        return True

    def _build(self, maps: Mapping[str, Mapping[str, str]]) -> Configs:
        default_domain = self.settings.default_domain
        configs = Configs(domain=DomainConfig({default_domain: {}}))
        for name in CONFIG_MAP_NAMES:
            data = dict(maps.get(name) or {})
            if data or name in maps:
                # cluster: config-deployment's keys for the revision pods are read here.
                configs = configs.with_config_map(
                    name, data, default_domain=default_domain, cluster=True
                )
        return configs
