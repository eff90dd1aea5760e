"""The ``config-autoscaler`` and ``config-deployment`` settings: defaults, parsing, validation."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from zeroserve.configmap import (
    ValueReader,
    parse_bool,
    parse_duration,
    parse_float,
    parse_int32,
    parse_whole_seconds,
)
from zeroserve.envconfig import ConfigError

__all__ = [
    "BUCKET_SIZE",
    "CONCURRENCY",
    "CPU",
    "HPA_CLASS",
    "KPA_CLASS",
    "RPS",
    "RPS_TARGET_UTILIZATION",
    "SCRAPE_INTERVAL",
    "TARGET_MIN",
    "TICK_INTERVAL",
    "WINDOW_MAX",
    "WINDOW_MIN",
    "AutoscalerConfig",
    "ConfigError",
    "DeploymentConfig",
    "parse_duration",
]

# Internal constants: upstream has no keys for these.
TICK_INTERVAL = 2.0
"""Seconds between two decider evaluations of one revision."""
BUCKET_SIZE = 1.0
"""Width in seconds of one metric aggregation bucket."""
SCRAPE_INTERVAL = 1.0
"""Seconds between two scrapes of a revision's queue-proxies."""
RPS_TARGET_UTILIZATION = 0.7
"""Share of the requests-per-second total aimed at when the metric is ``rps``."""
TARGET_MIN = 0.01
"""Smallest per-pod target the decider accepts."""
WINDOW_MIN = 6.0
"""Shortest stable window in seconds (key and annotation)."""
WINDOW_MAX = 3600.0
"""Longest stable window in seconds (key and annotation)."""

KPA_CLASS = "kpa.autoscaling.knative.dev"
HPA_CLASS = "hpa.autoscaling.knative.dev"
CONCURRENCY = "concurrency"
RPS = "rps"
CPU = "cpu"

_SOURCE = "config-autoscaler: "


def _percentage_to_fraction(text: str) -> float:
    # Legacy: fractions in (0, 1] are accepted as they are, so 1 means 100 %
    # and "percent" values start above 1.
    value = parse_float(text)
    return value / 100 if value > 1 else value


@dataclass(frozen=True, kw_only=True, slots=True)
class AutoscalerConfig:
    """Cluster-wide autoscaling settings (the ``config-autoscaler`` ConfigMap).

    Build it with :meth:`from_mapping`, which validates every key; the
    constructor does not validate and is meant for known-good values (tests).
    """

    pod_autoscaler_class: str = KPA_CLASS
    """Autoscaler class of revisions that do not name one."""

    enable_scale_to_zero: bool = True
    """False keeps every revision at one pod or more."""

    allow_zero_initial_scale: bool = False
    """Whether ``initial-scale`` (key or annotation) may be 0."""

    initial_scale: int = 1
    """Pods a new revision starts with unless its annotation says otherwise."""

    min_scale: int = 0
    """Lower scale bound of revisions without a ``min-scale`` annotation."""

    max_scale: int = 0
    """Upper scale bound of revisions without a ``max-scale`` annotation; 0 = none."""

    max_scale_limit: int = 0
    """Largest ``max-scale`` a revision may ask for; 0 = no limit."""

    max_scale_up_rate: float = 1000.0
    """One tick may grow a revision to at most this ratio of its ready pods."""

    max_scale_down_rate: float = 2.0
    """One tick may shrink a revision to no less than ready pods over this ratio."""

    container_concurrency_target_fraction: float = 0.7
    """Share of the per-pod concurrency aimed at, in (0, 1]; the key holds a percentage."""

    container_concurrency_target_default: float = 100.0
    """Per-pod concurrency total of revisions with unlimited containerConcurrency."""

    rps_target_default: float = 200.0
    """Per-pod requests-per-second total when the metric is ``rps``."""

    target_burst_capacity: float = 211.0
    """Spare concurrency wanted above the panic value: -1 unlimited, 0 none."""

    stable_window: float = 60.0
    """Seconds of the stable averaging window; whole seconds in [6, 3600]."""

    panic_window_percentage: float = 10.0
    """Panic window as a percentage of the stable window, in [1, 100]."""

    panic_threshold_percentage: float = 200.0
    """Panic when the panic want reaches this percentage of ready pods."""

    activator_capacity: float = 100.0
    """Concurrency one activator can absorb; >= 1."""

    scale_to_zero_grace_period: float = 30.0
    """Seconds an inactive revision keeps its last pod before going to zero; > 0."""

    scale_to_zero_pod_retention_period: float = 0.0
    """Minimum seconds the last pod is kept after traffic stopped; >= 0."""

    scale_down_delay: float = 0.0
    """Seconds the highest recent desired scale is held before scaling down."""

    @classmethod
    def from_mapping(cls, data: Mapping[str, str]) -> AutoscalerConfig:
        """Parse and validate the ConfigMap's ``data``; absent keys keep their defaults.

        Unknown keys are ignored (see :meth:`unknown_keys`); any bad value
        rejects the whole map with a ``ConfigError``.
        """
        r = ValueReader(data, prefix=_SOURCE)
        d = cls()

        allow_zero = r.read(
            "allow-zero-initial-scale",
            parse_bool,
            d.allow_zero_initial_scale,
            rule="true or false",
        )
        initial = r.read(
            "initial-scale",
            parse_int32,
            d.initial_scale,
            rule="an integer >= 0"
            if allow_zero
            else "an integer >= 1 (0 needs allow-zero-initial-scale: true)",
            ok=lambda n: n >= 1 or (n == 0 and allow_zero),
        )

        limit = r.read(
            "max-scale-limit",
            parse_int32,
            d.max_scale_limit,
            rule="an integer >= 0",
            ok=_non_negative,
        )
        max_rule = (
            f"an integer between 1 and max-scale-limit ({limit})" if limit else "an integer >= 0"
        )
        max_scale = r.read("max-scale", parse_int32, d.max_scale, rule=max_rule, ok=_non_negative)
        # Checked on the effective value: a limit without a max-scale key
        # rejects the default 0, which would mean "unbounded".
        if limit and not 1 <= max_scale <= limit:
            raise r.error("max-scale", max_rule, max_scale)
        min_scale = r.read(
            "min-scale",
            parse_int32,
            d.min_scale,
            rule=(
                f"an integer between 0 and max-scale ({max_scale})"
                if max_scale
                else "an integer >= 0"
            ),
            ok=lambda n: n >= 0 and (max_scale == 0 or n <= max_scale),
        )

        fraction = r.read(
            "container-concurrency-target-percentage",
            _percentage_to_fraction,
            d.container_concurrency_target_fraction,
            rule="a percentage in (0, 100] or a fraction in (0, 1]",
            ok=lambda x: 0 < x <= 1,
        )
        cc_default = r.read(
            "container-concurrency-target-default",
            parse_float,
            d.container_concurrency_target_default,
            rule="a number",
        )
        if fraction * cc_default < TARGET_MIN:
            # The product is the default per-pod target; blame whichever key was set.
            raise r.error(
                ("container-concurrency-target-default", "container-concurrency-target-percentage"),
                f"such that the target percentage ({fraction:g}) x the target default "
                f"({cc_default:g}) is >= {TARGET_MIN:g}",
                cc_default,
            )

        return cls(
            pod_autoscaler_class=r.read(
                "pod-autoscaler-class", str, d.pod_autoscaler_class, rule="a string"
            ),
            enable_scale_to_zero=r.read(
                "enable-scale-to-zero", parse_bool, d.enable_scale_to_zero, rule="true or false"
            ),
            allow_zero_initial_scale=allow_zero,
            initial_scale=initial,
            min_scale=min_scale,
            max_scale=max_scale,
            max_scale_limit=limit,
            max_scale_up_rate=r.read(
                "max-scale-up-rate",
                parse_float,
                d.max_scale_up_rate,
                rule="a number > 1",
                ok=_above_one,
            ),
            max_scale_down_rate=r.read(
                "max-scale-down-rate",
                parse_float,
                d.max_scale_down_rate,
                rule="a number > 1",
                ok=_above_one,
            ),
            container_concurrency_target_fraction=fraction,
            container_concurrency_target_default=cc_default,
            rps_target_default=r.read(
                "requests-per-second-target-default",
                parse_float,
                d.rps_target_default,
                rule=f"a number >= {TARGET_MIN:g}",
                ok=lambda x: x >= TARGET_MIN,
            ),
            target_burst_capacity=r.read(
                "target-burst-capacity",
                parse_float,
                d.target_burst_capacity,
                rule="a number >= 0, or -1 for unlimited",
                ok=_valid_burst_capacity,
            ),
            stable_window=r.read(
                "stable-window",
                parse_whole_seconds,
                d.stable_window,
                rule="between 6s and 1h in whole seconds",
                ok=_valid_window,
            ),
            panic_window_percentage=r.read(
                "panic-window-percentage",
                parse_float,
                d.panic_window_percentage,
                rule="a number between 1 and 100",
                ok=lambda x: 1 <= x <= 100,
            ),
            # Upstream checks this only on the annotation, never in the map.
            panic_threshold_percentage=r.read(
                "panic-threshold-percentage",
                parse_float,
                d.panic_threshold_percentage,
                rule="a number",
            ),
            activator_capacity=r.read(
                "activator-capacity",
                parse_float,
                d.activator_capacity,
                rule="a number >= 1",
                ok=lambda x: x >= 1,
            ),
            scale_to_zero_grace_period=r.read(
                "scale-to-zero-grace-period",
                parse_duration,
                d.scale_to_zero_grace_period,
                rule="a duration > 0s",
                ok=lambda s: s > 0,
            ),
            scale_to_zero_pod_retention_period=r.read(
                "scale-to-zero-pod-retention-period",
                parse_duration,
                d.scale_to_zero_pod_retention_period,
                rule="a duration >= 0s",
                ok=_non_negative,
            ),
            # No upper bound in the map (the annotation has one: 1h).
            scale_down_delay=r.read(
                "scale-down-delay",
                parse_whole_seconds,
                d.scale_down_delay,
                rule="a duration >= 0s in whole seconds",
                ok=_non_negative,
            ),
        )

    @staticmethod
    def unknown_keys(data: Mapping[str, str]) -> list[str]:
        """Keys ``from_mapping`` ignores, for a warning; ``_example`` is never reported."""
        return sorted(k for k in data if k not in _KEYS and k != "_example")


_KEYS = frozenset(
    {
        "pod-autoscaler-class",
        "enable-scale-to-zero",
        "allow-zero-initial-scale",
        "initial-scale",
        "min-scale",
        "max-scale",
        "max-scale-limit",
        "max-scale-up-rate",
        "max-scale-down-rate",
        "container-concurrency-target-percentage",
        "container-concurrency-target-default",
        "requests-per-second-target-default",
        "target-burst-capacity",
        "stable-window",
        "panic-window-percentage",
        "panic-threshold-percentage",
        "activator-capacity",
        "scale-to-zero-grace-period",
        "scale-to-zero-pod-retention-period",
        "scale-down-delay",
    }
)


QUEUE_SIDECAR_IMAGE = "queue-sidecar-image"
REGISTRIES_SKIPPING_TAG_RESOLVING = "registries-skipping-tag-resolving"
QUEUE_SIDECAR_IMAGE_PULL_SECRETS = "zeroserve.queue-sidecar-image-pull-secrets"
"""zeroserve's own key (Knative has none): Secrets added to every revision pod's
``imagePullSecrets`` so the kubelet can pull the queue-proxy image."""
QUEUE_SIDECAR_RESOURCES = ("cpu", "memory", "ephemeral-storage")
"""The resources of the ``queue-sidecar-<resource>-request``/``-limit`` keys."""
DEPLOYMENT_KEYS = frozenset(
    {
        "progress-deadline",
        QUEUE_SIDECAR_IMAGE,
        REGISTRIES_SKIPPING_TAG_RESOLVING,
        QUEUE_SIDECAR_IMAGE_PULL_SECRETS,
        *(
            f"queue-sidecar-{r}-{kind}"
            for r in QUEUE_SIDECAR_RESOURCES
            for kind in ("request", "limit")
        ),
    }
)
"""Every ``config-deployment`` key zeroserve reads."""
DEPLOYMENT_CLUSTER_ONLY_KEYS = DEPLOYMENT_KEYS - {"progress-deadline"}
"""The keys that configure the revision's pod on Kubernetes: locally the queue-proxy is a
process of the installed package, with no image, no pull and no requests or limits."""
DEPLOYMENT_KNATIVE_UNSUPPORTED_KEYS = frozenset(
    {
        "digest-resolution-timeout",
        "queue-sidecar-token-audiences",
        "queue-sidecar-rootca",
        "queue-sidecar-tls-min-version",
        "queue-sidecar-tls-max-version",
        "queue-sidecar-tls-cipher-suites",
        "queue-sidecar-tls-curve-preferences",
        "default-affinity-type",
        "runtime-class-name",
        "pod-is-always-schedulable",
        # Knative's legacy spellings of its keys.
        "queueSidecarImage",
        "progressDeadline",
        "digestResolutionTimeout",
        "registriesSkippingTagResolving",
        "queueSidecarCPURequest",
        "queueSidecarMemoryRequest",
        "queueSidecarEphemeralStorageRequest",
        "queueSidecarCPULimit",
        "queueSidecarMemoryLimit",
        "queueSidecarEphemeralStorageLimit",
    }
)
"""Knative's other keys (pkg/deployment/config.go), which zeroserve does not implement."""
_DEFAULT_REGISTRIES_SKIPPING_TAG_RESOLVING = frozenset({"kind.local", "ko.local", "dev.local"})

# A Kubernetes quantity: a decimal number, then a binary (Ki..Ei) or decimal (n..E) suffix
# or an exponent. Resource requirements cannot be negative.
_QUANTITY = re.compile(
    r"\+?(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:(?P<suffix>[KMGTPE]i|[numkMGTPE])|[eE](?P<exponent>[+-]?[0-9]+))?"
)
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
# Secret names are DNS-1123 subdomains.
_SECRET_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def parse_quantity(text: str) -> Fraction:
    """The exact value of a non-negative Kubernetes quantity (``25m``, ``0.5``, ``64Mi``,
    ``1e3``); ``ValueError`` for anything else."""
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise ValueError(f"invalid quantity {text!r}")
    value = Fraction(match["number"])
    suffix, exponent = match["suffix"], match["exponent"]
    if suffix in _BINARY:
        return value * 1024 ** _BINARY[suffix]
    if suffix:
        return value * Fraction(10) ** _DECIMAL[suffix]
    if exponent:
        if abs(int(exponent)) > 18:  # Kubernetes' own bound on a quantity's scale
            raise ValueError(f"quantity {text!r} out of range")
        return value * Fraction(10) ** int(exponent)
    return value


def _quantity(text: str) -> str:
    parse_quantity(text)
    return text


def _name_list(text: str) -> tuple[str, ...]:
    """Comma-separated names; blanks around them and empty items are dropped."""
    return tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))


def _secret_names(text: str) -> tuple[str, ...]:
    names = _name_list(text)
    for name in names:
        if len(name) > 253 or not _SECRET_NAME.fullmatch(name):
            raise ValueError(f"invalid Secret name {name!r}")
    return names


@dataclass(frozen=True, kw_only=True, slots=True)
class DeploymentConfig:
    """``config-deployment``: the revision's Deployment (its progress deadline) and its
    queue-proxy sidecar (image, requests and limits, pull secrets). Knative's keys and
    defaults (pkg/deployment/config.go); docs/kubernetes.md, "The queue-proxy sidecar"."""

    progress_deadline: float = 600.0
    """Seconds a revision may take to become ready; > 0. Activation times out 30 s later."""
    queue_sidecar_image: str = ""
    """``queue-sidecar-image``: the queue-proxy image of revision pods; empty: the
    controller's ``--queue-proxy-image``."""
    queue_sidecar_requests: tuple[tuple[str, str], ...] = (("cpu", "25m"),)
    """``queue-sidecar-<resource>-request`` by resource (``cpu``, ``memory``,
    ``ephemeral-storage``); Knative's default is a 25m CPU request and nothing else."""
    queue_sidecar_limits: tuple[tuple[str, str], ...] = ()
    """``queue-sidecar-<resource>-limit`` by resource; none unless set (as Knative)."""
    queue_sidecar_image_pull_secrets: tuple[str, ...] = ()
    """``zeroserve.queue-sidecar-image-pull-secrets``: Secret names (comma-separated in
    the map) added to every revision pod's ``imagePullSecrets``."""
    registries_skipping_tag_resolving: frozenset[str] = _DEFAULT_REGISTRIES_SKIPPING_TAG_RESOLVING
    """Accepted for Knative's maps; zeroserve never resolves tags to digests, so it is
    checked and has no effect."""

    @classmethod
    def from_mapping(cls, data: Mapping[str, str]) -> DeploymentConfig:
        """Parse the ConfigMap's ``data``; keys zeroserve does not read are left to the
        caller (``Configs.with_config_map`` rejects them)."""
        r = ValueReader(data, prefix="config-deployment: ")
        d = cls()
        requests: dict[str, str] = dict(d.queue_sidecar_requests)
        limits: dict[str, str] = {}
        rule = "a quantity like 25m, 0.5, 64Mi or 1Gi"
        for resource in QUEUE_SIDECAR_RESOURCES:
            for kind, into in (("request", requests), ("limit", limits)):
                value = r.read_optional(f"queue-sidecar-{resource}-{kind}", _quantity, rule=rule)
                if value is not None:
                    into[resource] = value
        for resource, limit in limits.items():
            request = requests.get(resource)
            if request is not None and parse_quantity(request) > parse_quantity(limit):
                key = f"queue-sidecar-{resource}-request"
                source = request if key in data else f"{request}, the default"
                raise ConfigError(
                    f"config-deployment: queue-sidecar-{resource}-limit: must be at least "
                    f"{key} ({source}), got {limit!r}"
                )
        return cls(
            progress_deadline=r.read(
                "progress-deadline",
                parse_duration,
                d.progress_deadline,
                rule="a duration > 0s",
                ok=lambda s: s > 0,
            ),
            queue_sidecar_image=r.read(
                QUEUE_SIDECAR_IMAGE,
                str.strip,
                d.queue_sidecar_image,
                rule="an image reference without blanks",
                ok=lambda s: bool(s) and not any(c.isspace() for c in s),
            ),
            queue_sidecar_requests=tuple(requests.items()),
            queue_sidecar_limits=tuple(limits.items()),
            queue_sidecar_image_pull_secrets=r.read(
                QUEUE_SIDECAR_IMAGE_PULL_SECRETS,
                _secret_names,
                d.queue_sidecar_image_pull_secrets,
                rule="comma-separated Secret names (lower-case DNS names)",
            ),
            registries_skipping_tag_resolving=r.read(
                REGISTRIES_SKIPPING_TAG_RESOLVING,
                lambda s: frozenset(_name_list(s)),
                d.registries_skipping_tag_resolving,
                rule="comma-separated registry hosts like kind.local",
                ok=lambda hosts: all(not any(c.isspace() or c == "/" for c in h) for h in hosts),
            ),
        )

    def queue_resources(self) -> dict[str, dict[str, str]]:
        """The queue-proxy container's ``resources``: requests, and limits when any."""
        out = {"requests": dict(self.queue_sidecar_requests)}
        if self.queue_sidecar_limits:
            out["limits"] = dict(self.queue_sidecar_limits)
        return out


def _non_negative(x: float) -> bool:
    return x >= 0


def _above_one(x: float) -> bool:
    return x > 1


def _valid_burst_capacity(x: float) -> bool:
    return x >= 0 or x == -1


def _valid_window(seconds: float) -> bool:
    return WINDOW_MIN <= seconds <= WINDOW_MAX


def panic_window(stable_window: float, panic_window_percentage: float) -> float:
    """Length in seconds of the panic window: a share of the stable window.

    Rounded to whole seconds (halves away from zero) and at least one second.
    """
    if not stable_window > 0:
        raise ValueError(f"stable_window={stable_window!r}: must be > 0")
    if not panic_window_percentage > 0:
        raise ValueError(f"panic_window_percentage={panic_window_percentage!r}: must be > 0")
    # Work in whole nanoseconds as upstream's durations do, so a product that is
    # a hair under a half second in float seconds still rounds the same way.
    nanos = int(round(stable_window * 1e9) * panic_window_percentage / 100)
    seconds = (nanos + 500_000_000) // 1_000_000_000
    return float(max(1, seconds))
