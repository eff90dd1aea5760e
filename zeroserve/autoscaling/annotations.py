"""A revision's ``autoscaling.knative.dev/*`` annotations over config-autoscaler, validated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from zeroserve.autoscaling.config import (
    CONCURRENCY,
    CPU,
    HPA_CLASS,
    KPA_CLASS,
    RPS,
    TARGET_MIN,
    WINDOW_MAX,
    WINDOW_MIN,
    AutoscalerConfig,
    DeploymentConfig,
    panic_window,
)
from zeroserve.configmap import (
    ValueReader,
    parse_duration,
    parse_float,
    parse_int32,
    parse_whole_seconds,
)
from zeroserve.envconfig import ConfigError

_P = "autoscaling.knative.dev/"

# Each annotation with its camelCase alias, in lookup priority: the first key
# present wins, hyphenated spelling first.
CLASS = (f"{_P}class",)
METRIC = (f"{_P}metric",)
TARGET = (f"{_P}target",)
TARGET_UTILIZATION = (f"{_P}target-utilization-percentage", f"{_P}targetUtilizationPercentage")
TARGET_BURST_CAPACITY = (f"{_P}target-burst-capacity", f"{_P}targetBurstCapacity")
WINDOW = (f"{_P}window",)
PANIC_WINDOW_PERCENTAGE = (f"{_P}panic-window-percentage", f"{_P}panicWindowPercentage")
PANIC_THRESHOLD_PERCENTAGE = (f"{_P}panic-threshold-percentage", f"{_P}panicThresholdPercentage")
MIN_SCALE = (f"{_P}min-scale", f"{_P}minScale")
MAX_SCALE = (f"{_P}max-scale", f"{_P}maxScale")
INITIAL_SCALE = (f"{_P}initial-scale", f"{_P}initialScale")
ACTIVATION_SCALE = (f"{_P}activation-scale",)
SCALE_DOWN_DELAY = (f"{_P}scale-down-delay", f"{_P}scaleDownDelay")
SCALE_TO_ZERO_POD_RETENTION = (
    f"{_P}scale-to-zero-pod-retention-period",
    f"{_P}scaleToZeroPodRetentionPeriod",
)
METRIC_AGGREGATION_ALGORITHM = (
    f"{_P}metric-aggregation-algorithm",
    f"{_P}metricAggregationAlgorithm",
)
PROGRESS_DEADLINE = ("serving.knative.dev/progress-deadline",)

LINEAR = "linear"
WEIGHTED_EXPONENTIAL = "weighted-exponential"
_ALGORITHMS = {
    LINEAR: LINEAR,
    WEIGHTED_EXPONENTIAL: WEIGHTED_EXPONENTIAL,
    "weightedExponential": WEIGHTED_EXPONENTIAL,
}

_DEFAULT_DEPLOYMENT = DeploymentConfig()


@dataclass(frozen=True, kw_only=True, slots=True)
class RevisionAutoscaling:
    """One revision's effective autoscaling settings: its annotations over the config.

    Build it with :meth:`parse` (validation: any bad annotation raises) or
    :meth:`read` (the reconciler: a bad annotation reads as absent).
    """

    autoscaler_class: str
    """Autoscaler class: the ``class`` annotation, else ``pod-autoscaler-class``."""

    metric: str
    """Scaling metric: the ``metric`` annotation, else ``cpu`` for HPA, else ``concurrency``."""

    container_concurrency: int
    """The revision's containerConcurrency; 0 = unlimited."""

    target: float | None
    """The ``target`` annotation: per-pod total before utilization; None if absent."""

    target_utilization: float | None
    """The ``target-utilization-percentage`` annotation as a fraction; None if absent."""

    target_burst_capacity: float
    """Spare concurrency wanted above the panic value: -1 unlimited, 0 none."""

    stable_window: float
    """Seconds of the stable window: the ``window`` annotation, else ``stable-window``."""

    panic_window_percentage: float
    """Panic window as a percentage of the stable window."""

    panic_threshold_percentage: float
    """Panic when the panic want reaches this percentage of ready pods."""

    min_scale: int
    """Lower scale bound while the revision is reachable."""

    max_scale: int
    """Upper scale bound; 0 = unbounded."""

    initial_scale: int
    """Pods the revision starts with (docs/autoscaling.md, "Initial scale")."""

    activation_scale: int
    """Smallest non-zero scale; 1 when the annotation is absent (no effect)."""

    scale_down_delay: float
    """Seconds the highest recent desired scale is held before scaling down."""

    scale_to_zero_pod_retention: float
    """Minimum seconds the last pod is kept after the revision went inactive."""

    metric_aggregation_algorithm: str
    """How windows are averaged: ``linear`` or ``weighted-exponential``."""

    progress_deadline: float
    """Seconds the revision may take to become ready (annotation, else config-deployment)."""

    @classmethod
    def parse(
        cls,
        annotations: Mapping[str, str],
        config: AutoscalerConfig,
        *,
        container_concurrency: int = 0,
        deployment: DeploymentConfig = _DEFAULT_DEPLOYMENT,
    ) -> RevisionAutoscaling:
        """Validate every annotation; the first bad one raises ``ConfigError``."""
        if container_concurrency < 0:
            raise ConfigError(
                f"containerConcurrency: must be an integer >= 0, got {container_concurrency!r}"
            )
        r = ValueReader(annotations, strict=True)
        return _build(r, config, container_concurrency, deployment)

    @classmethod
    def read(
        cls,
        annotations: Mapping[str, str],
        config: AutoscalerConfig,
        *,
        container_concurrency: int = 0,
        deployment: DeploymentConfig = _DEFAULT_DEPLOYMENT,
    ) -> RevisionAutoscaling:
        """Read as the reconciler does: a bad annotation falls back to the config.

        Upstream falls back only for values that do not parse and uses parsable
        out-of-range values as they are; we also drop those, so that a value the
        webhook should have rejected can never reach the decider's arithmetic.
        Rules that relate two settings are not applied here (upstream neither).
        """
        r = ValueReader(annotations, strict=False)
        return _build(r, config, max(0, container_concurrency), deployment)

    @property
    def panic_window(self) -> float:
        """Seconds of the panic window used by the metric aggregation (never the decider)."""
        return panic_window(self.stable_window, self.panic_window_percentage)


def _default_metric(autoscaler_class: str) -> str:
    # Any class but HPA scales on concurrency when no metric is named.
    return CPU if autoscaler_class == HPA_CLASS else CONCURRENCY


def _valid_class(name: str) -> bool:
    # Only the knative.dev namespace is reserved; other classes belong to
    # third-party autoscalers and are not checked.
    return not name.endswith(".knative.dev") or name in (KPA_CLASS, HPA_CLASS)


def _build(
    r: ValueReader, config: AutoscalerConfig, cc: int, deployment: DeploymentConfig
) -> RevisionAutoscaling:
    klass = r.read(
        CLASS,
        str,
        config.pod_autoscaler_class,
        rule=f"{KPA_CLASS} or {HPA_CLASS}, or a class outside knative.dev",
        ok=_valid_class,
    )
    if klass == KPA_CLASS:
        metric_rule, metric_ok = f"{CONCURRENCY} or {RPS}", (lambda m: m in (CONCURRENCY, RPS))
    elif klass == HPA_CLASS:
        metric_rule, metric_ok = "a non-empty metric name", (lambda m: m != "")
    else:
        metric_rule, metric_ok = "a string", (lambda _: True)
    metric = r.read(METRIC, str, _default_metric(klass), rule=metric_rule, ok=metric_ok)

    target = r.read_optional(
        TARGET, parse_float, rule=f"a number >= {TARGET_MIN:g}", ok=lambda x: x >= TARGET_MIN
    )
    utilization = r.read_optional(
        TARGET_UTILIZATION,
        parse_float,
        rule="a number between 1 and 100",
        ok=lambda x: 1 <= x <= 100,
    )

    min_scale = r.read_optional(MIN_SCALE, parse_int32, rule="an integer >= 0", ok=_non_negative)
    limit = config.max_scale_limit
    max_rule = f"an integer between 1 and max-scale-limit ({limit})" if limit else "an integer >= 0"
    max_scale = r.read_optional(MAX_SCALE, parse_int32, rule=max_rule, ok=_non_negative)
    # Rules relating two values: strict only. As upstream's webhook, they
    # compare the annotations with each other (absent = 0), not with the config.
    if r.strict and max_scale is not None:
        if limit and not 1 <= max_scale <= limit:
            raise r.error(MAX_SCALE, max_rule)
        if max_scale and max_scale < (min_scale or 0):
            raise r.error(MAX_SCALE, f"0 or an integer >= min-scale ({min_scale})")

    activation = r.read_optional(
        ACTIVATION_SCALE, parse_int32, rule="an integer >= 2", ok=lambda n: n >= 2
    )
    if r.strict and activation is not None:
        low, high = min_scale or 0, max_scale or 0
        if activation < low or (high and activation > high):
            span = (
                f"between min-scale ({low}) and max-scale ({high})"
                if high
                else (f">= min-scale ({low})")
            )
            raise r.error(ACTIVATION_SCALE, f"an integer >= 2 and {span}")

    allow_zero = config.allow_zero_initial_scale
    # As upstream: a 0 while zero is not allowed falls back to the config when
    # read leniently, and is an error when validated.
    initial = r.read(
        INITIAL_SCALE,
        parse_int32,
        config.initial_scale,
        rule="an integer >= 0"
        if allow_zero
        else "an integer >= 1 (0 needs allow-zero-initial-scale: true)",
        ok=lambda n: n >= 1 or (n == 0 and allow_zero),
    )

    algorithm_rule = f"{LINEAR} or {WEIGHTED_EXPONENTIAL}"
    algorithm = r.read(
        METRIC_AGGREGATION_ALGORITHM,
        str,
        LINEAR,
        rule=algorithm_rule,
        # Only the KPA interprets the algorithm; other classes keep any value.
        ok=lambda a: klass != KPA_CLASS or a in _ALGORITHMS,
    )

    return RevisionAutoscaling(
        autoscaler_class=klass,
        metric=metric,
        container_concurrency=cc,
        target=target,
        target_utilization=None if utilization is None else utilization / 100,
        target_burst_capacity=r.read(
            TARGET_BURST_CAPACITY,
            parse_float,
            config.target_burst_capacity,
            rule="a number >= 0, or -1 for unlimited",
            ok=lambda x: x >= 0 or x == -1,
        ),
        stable_window=r.read(
            WINDOW,
            parse_whole_seconds,
            config.stable_window,
            rule="between 6s and 1h in whole seconds",
            ok=lambda s: WINDOW_MIN <= s <= WINDOW_MAX,
        ),
        panic_window_percentage=r.read(
            PANIC_WINDOW_PERCENTAGE,
            parse_float,
            config.panic_window_percentage,
            rule="a number between 1 and 100",
            ok=lambda x: 1 <= x <= 100,
        ),
        panic_threshold_percentage=r.read(
            PANIC_THRESHOLD_PERCENTAGE,
            parse_float,
            config.panic_threshold_percentage,
            rule="a number between 110 and 1000",
            ok=lambda x: 110 <= x <= 1000,
        ),
        min_scale=config.min_scale if min_scale is None else min_scale,
        max_scale=config.max_scale if max_scale is None else max_scale,
        initial_scale=initial,
        activation_scale=1 if activation is None else activation,
        scale_down_delay=r.read(
            SCALE_DOWN_DELAY,
            parse_whole_seconds,
            config.scale_down_delay,
            rule="between 0s and 1h in whole seconds",
            ok=_at_most_an_hour,
        ),
        scale_to_zero_pod_retention=r.read(
            SCALE_TO_ZERO_POD_RETENTION,
            parse_duration,
            config.scale_to_zero_pod_retention_period,
            rule="between 0s and 1h",
            ok=_at_most_an_hour,
        ),
        metric_aggregation_algorithm=_ALGORITHMS.get(algorithm, algorithm),
        progress_deadline=r.read(
            PROGRESS_DEADLINE,
            parse_whole_seconds,
            deployment.progress_deadline,
            rule="a duration >= 0s in whole seconds",
            ok=_non_negative,
        ),
    )


def _non_negative(x: float) -> bool:
    return x >= 0


def _at_most_an_hour(seconds: float) -> bool:
    return 0 <= seconds <= 3600
