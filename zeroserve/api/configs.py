"""The cluster-wide settings: ``config-defaults`` and ``config-domain`` parsed here, with
``config-autoscaler`` and ``config-deployment`` from :mod:`zeroserve.autoscaling.config`
``config-features`` from :mod:`zeroserve.api.features` and ``config-network`` and
``config-gc`` from :mod:`zeroserve.api.network`, ``config-observability`` and
``config-tracing`` from :mod:`zeroserve.observability`, bundled as :class:`Configs`.

Upstream ignores keys it does not know; zeroserve rejects them (a typo in a
setting would otherwise do nothing without a word). ``_example``, the
documentation block of upstream's shipped maps, is always allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from zeroserve.api.errors import describe
from zeroserve.api.features import CONFIG_MAP as FEATURES_CONFIG_MAP
from zeroserve.api.features import FeaturesConfig
from zeroserve.api.names import check_dns1123_label, check_dns1123_subdomain
from zeroserve.api.network import GC, NETWORK, GCConfig, NetworkConfig
from zeroserve.autoscaling.config import (
    DEPLOYMENT_CLUSTER_ONLY_KEYS,
    DEPLOYMENT_KEYS,
    DEPLOYMENT_KNATIVE_UNSUPPORTED_KEYS,
    AutoscalerConfig,
    DeploymentConfig,
)
from zeroserve.configmap import ValueReader, parse_bool, parse_int32
from zeroserve.envconfig import ConfigError
from zeroserve.observability import CONFIG_MAP as OBSERVABILITY
from zeroserve.observability import TRACING_CONFIG_MAP as TRACING
from zeroserve.observability import ObservabilityConfig

LOCAL_DOMAIN = "localhost"
"""Default domain locally: browsers and curl resolve ``*.localhost`` to the loopback."""
CLUSTER_LOCAL_DOMAIN = "svc.cluster.local"
"""The cluster-local domain; a route whose domain it is has no external host."""
EXAMPLE_KEY = "_example"


@dataclass(frozen=True, kw_only=True, slots=True)
class DefaultsConfig:
    """``config-defaults``: what a revision gets when its template leaves a field out."""

    revision_timeout_seconds: int = 300
    """``timeoutSeconds`` of revisions that do not set one."""
    max_revision_timeout_seconds: int = 600
    """Largest ``timeoutSeconds`` a revision may ask for."""
    revision_response_start_timeout_seconds: int | None = None
    """Default response-start timeout; None: same as ``revision_timeout_seconds`` (so off)."""
    revision_idle_timeout_seconds: int = 0
    """Default idle timeout; 0 = off."""
    container_concurrency: int = 0
    """``containerConcurrency`` of revisions that do not set one; 0 = unlimited."""
    container_concurrency_max_limit: int = 1000
    """Largest ``containerConcurrency`` allowed."""
    allow_container_concurrency_zero: bool = True
    """Whether 0 (unlimited) is allowed at all."""
    container_name: str = "user-container"
    """``container-name-template``: the name of containers that have none (literal only)."""

    @classmethod
    def from_mapping(cls, data: Mapping[str, str]) -> DefaultsConfig:
        _reject_unknown("config-defaults", data, _DEFAULTS_KEYS, _DEFAULTS_CLUSTER_ONLY)
        r = ValueReader(data, prefix="config-defaults: ")
        d = cls()
        max_timeout = r.read(
            "max-revision-timeout-seconds",
            parse_int32,
            d.max_revision_timeout_seconds,
            rule="an integer >= 1",
            ok=lambda n: n >= 1,
        )
        timeout = r.read(
            "revision-timeout-seconds",
            parse_int32,
            d.revision_timeout_seconds,
            rule=f"an integer between 1 and max-revision-timeout-seconds ({max_timeout})",
            ok=lambda n: 1 <= n <= max_timeout,
        )
        within = f"an integer between 0 and revision-timeout-seconds ({timeout})"
        start = r.read_optional(
            "revision-response-start-timeout-seconds",
            parse_int32,
            rule=within,
            ok=lambda n: 0 <= n <= timeout,
        )
        idle = r.read(
            "revision-idle-timeout-seconds",
            parse_int32,
            d.revision_idle_timeout_seconds,
            rule=within,
            ok=lambda n: 0 <= n <= timeout,
        )
        limit = r.read(
            "container-concurrency-max-limit",
            parse_int32,
            d.container_concurrency_max_limit,
            rule="an integer >= 1",
            ok=lambda n: n >= 1,
        )
        allow_zero = r.read(
            "allow-container-concurrency-zero",
            parse_bool,
            d.allow_container_concurrency_zero,
            rule="true or false",
        )
        low = 0 if allow_zero else 1
        cc_rule = f"an integer between {low} and container-concurrency-max-limit ({limit})" + (
            "" if allow_zero else " (0 needs allow-container-concurrency-zero: true)"
        )
        cc = r.read(
            "container-concurrency",
            parse_int32,
            d.container_concurrency,
            rule=cc_rule,
            ok=lambda n: low <= n <= limit,
        )
        if not low <= cc <= limit:  # the default 0 with allow-container-concurrency-zero: false
            raise r.error("container-concurrency", cc_rule, cc)
        # Upstream's value is a Go template over the revision's metadata; zeroserve takes
        # a plain name, which is what the default is.
        name = r.read(
            "container-name-template",
            str,
            d.container_name,
            rule="a plain DNS-1123 label (templates are not supported by zeroserve)",
            ok=lambda s: check_dns1123_label(s) is None,
        )
        return cls(
            revision_timeout_seconds=timeout,
            max_revision_timeout_seconds=max_timeout,
            revision_response_start_timeout_seconds=start,
            revision_idle_timeout_seconds=idle,
            container_concurrency=cc,
            container_concurrency_max_limit=limit,
            allow_container_concurrency_zero=allow_zero,
            container_name=name,
        )

    @property
    def response_start_timeout_seconds(self) -> int:
        s = self.revision_response_start_timeout_seconds
        return self.revision_timeout_seconds if s is None else s


_DEFAULTS_KEYS = frozenset(
    {
        "revision-timeout-seconds",
        "max-revision-timeout-seconds",
        "revision-response-start-timeout-seconds",
        "revision-idle-timeout-seconds",
        "container-concurrency",
        "container-concurrency-max-limit",
        "allow-container-concurrency-zero",
        "container-name-template",
    }
)
_DEFAULTS_CLUSTER_ONLY = frozenset(
    {
        "revision-cpu-request",
        "revision-memory-request",
        "revision-ephemeral-storage-request",
        "revision-cpu-limit",
        "revision-memory-limit",
        "revision-ephemeral-storage-limit",
        "init-container-name-template",
        "enable-service-links",
    }
)


@dataclass(frozen=True, slots=True)
class DomainConfig:
    """``config-domain``: which domain a route's hosts use, chosen by the route's labels.

    Each key is a domain; its value is empty (the default, matches every route)
    or ``selector:`` with labels. A route gets the matching domain with the most
    selector labels; ties go to the alphabetically first domain (as upstream).
    """

    domains: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: {LOCAL_DOMAIN: {}})
    """domain -> label selector (empty = matches everything)."""

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, str], *, default_domain: str = LOCAL_DOMAIN
    ) -> DomainConfig:
        """Parse the map; without any domain the ``default_domain`` is used (upstream's
        default is ``svc.cluster.local``; locally it is ``localhost``)."""
        domains: dict[str, Mapping[str, str]] = {}
        for domain, text in data.items():
            if domain == EXAMPLE_KEY:
                continue
            bad = check_dns1123_subdomain(domain)
            if bad:
                raise ConfigError(f"config-domain: {domain}: {bad}")
            domains[domain] = _selector(domain, text)
        return cls(dict(sorted(domains.items())) or {default_domain: {}})

    def domain_for(self, labels: Mapping[str, str]) -> str | None:
        """The domain of a route with these labels; None when no selector matches (then
        the route is reachable only inside the cluster, as with an empty upstream domain)."""
        best: str | None = None
        best_size = -1
        for domain, selector in self.domains.items():  # sorted: first wins a tie
            if len(selector) > best_size and all(labels.get(k) == v for k, v in selector.items()):
                best, best_size = domain, len(selector)
        return best


def _selector(domain: str, text: str) -> Mapping[str, str]:
    rule = (
        "must be empty (the default domain) or 'selector:' followed by labels, like "
        "'selector: {app: prod}'"
    )
    try:
        value: Any = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, RecursionError):
        raise ConfigError(f"config-domain: {domain}: {rule}, got {describe(text)}") from None
    if value is None or value == "":
        return {}
    if not isinstance(value, dict) or set(value) - {"selector"}:
        raise ConfigError(f"config-domain: {domain}: {rule}, got {describe(text)}")
    selector = value.get("selector") or {}
    if not isinstance(selector, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in selector.items()
    ):
        raise ConfigError(
            f"config-domain: {domain}: selector: must map label names to "
            f"string values, got {describe(text)}"
        )
    return dict(selector)


@dataclass(frozen=True, kw_only=True, slots=True)
class Configs:
    """Every setting the controller and the runtime read, with upstream's defaults."""

    autoscaler: AutoscalerConfig = field(default_factory=AutoscalerConfig)
    deployment: DeploymentConfig = field(default_factory=DeploymentConfig)
    defaults: DefaultsConfig = field(default_factory=DefaultsConfig)
    domain: DomainConfig = field(default_factory=DomainConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    gc: GCConfig = field(default_factory=GCConfig)
    observability: ObservabilityConfig = field(default_factory=ObservabilityConfig)
    """``config-observability`` with ``config-tracing`` folded in."""
    observability_data: Mapping[str, str] = field(default_factory=dict)
    """``config-observability``'s data as applied (re-read when ``config-tracing`` changes)."""
    tracing_data: Mapping[str, str] = field(default_factory=dict)
    """``config-tracing``'s data as applied."""

    def with_config_map(
        self,
        name: str,
        data: Mapping[str, str] | None,
        *,
        default_domain: str = LOCAL_DOMAIN,
        cluster: bool = False,
    ) -> Configs:
        """These configs with one ConfigMap replaced (``data`` None: deleted, back to
        defaults). Raises ``ConfigError`` naming the map, the key and the rule.
        ``cluster``: read by the Kubernetes controller, which takes the keys that
        configure revision pods (locally they are refused as needing a cluster)."""
        data = data or {}
        if name == "config-autoscaler":
            unknown = AutoscalerConfig.unknown_keys(data)
            if unknown:
                raise ConfigError(f"{name}: {unknown[0]}: unknown key")
            return replace(self, autoscaler=AutoscalerConfig.from_mapping(data))
        if name == "config-deployment":
            # The sidecar's image, resources and pull secrets configure revision pods,
            # which exist only on a cluster: locally the queue-proxy is a process.
            for key in sorted(data):
                if key in DEPLOYMENT_KNATIVE_UNSUPPORTED_KEYS:
                    raise ConfigError(f"{name}: {key}: not supported by zeroserve")
            if cluster:
                _reject_unknown(name, data, DEPLOYMENT_KEYS, frozenset())
            else:
                local = DEPLOYMENT_KEYS - DEPLOYMENT_CLUSTER_ONLY_KEYS
                _reject_unknown(name, data, local, DEPLOYMENT_CLUSTER_ONLY_KEYS)
            return replace(self, deployment=DeploymentConfig.from_mapping(data))
        if name == "config-defaults":
            return replace(self, defaults=DefaultsConfig.from_mapping(data))
        if name == "config-domain":
            return replace(
                self, domain=DomainConfig.from_mapping(data, default_domain=default_domain)
            )
        if name == NETWORK:
            return replace(self, network=NetworkConfig.from_mapping(data))
        if name == GC:
            return replace(self, gc=GCConfig.from_mapping(data))
        if name == FEATURES_CONFIG_MAP:
            return replace(self, features=FeaturesConfig.from_mapping(data))
        if name == OBSERVABILITY:
            return replace(
                self,
                observability=ObservabilityConfig.from_maps(data, self.tracing_data),
                observability_data=dict(data),
            )
        if name == TRACING:
            return replace(
                self,
                observability=ObservabilityConfig.from_maps(self.observability_data, data),
                tracing_data=dict(data),
            )
        raise ConfigError(f"{name}: not a ConfigMap zeroserve reads")


def _reject_unknown(
    name: str, data: Mapping[str, str], known: frozenset[str], cluster_only: frozenset[str] | None
) -> None:
    """Raise for the first key that is not ``known``; ``cluster_only`` keys (all others
    when None) get "not supported" rather than "unknown"."""
    for key in sorted(data):
        if key == EXAMPLE_KEY or key in known:
            continue
        if cluster_only is None or key in cluster_only:
            raise ConfigError(
                f"{name}: {key}: not supported by zeroserve (it needs a Kubernetes cluster)"
            )
        raise ConfigError(f"{name}: {key}: unknown key")
