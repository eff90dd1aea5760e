"""Table tests for revision annotations and the decider spec derived from them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from autoscaler.decider import DeciderSpec
from autoscaler.spec import decider_spec
from zeroserve.autoscaling.annotations import RevisionAutoscaling
from zeroserve.autoscaling.config import AutoscalerConfig, ConfigError, DeploymentConfig

A = "autoscaling.knative.dev/"
DEFAULT = AutoscalerConfig()


def spec_for(
    annotations: dict[str, str],
    *,
    cc: int = 0,
    config: AutoscalerConfig = DEFAULT,
    reachable: bool = True,
) -> DeciderSpec:
    revision = RevisionAutoscaling.parse(annotations, config, container_concurrency=cc)
    return decider_spec(revision, config, reachable=reachable)


@pytest.mark.parametrize(
    ("annotations", "cc", "total", "target"),
    [
        # The examples in docs/autoscaling.md, "Decider spec".
        pytest.param({}, 0, 100.0, 70.0, id="cc0-defaults"),
        pytest.param({}, 10, 10.0, 7.0, id="cc10"),
        pytest.param({A + "target": "20"}, 10, 10.0, 7.0, id="cc10-target-capped-by-cc"),
        pytest.param(
            {A + "target": "20", A + "target-utilization-percentage": "100"},
            0,
            20.0,
            20.0,
            id="cc0-target20-util100",
        ),
        pytest.param({A + "metric": "rps"}, 0, 200.0, 140.0, id="rps-default"),
        # Further rows.
        pytest.param({A + "target": "20"}, 0, 20.0, 14.0, id="target-is-total-util-applies"),
        pytest.param({A + "target": "5"}, 10, 5.0, 3.5, id="target-below-cc-kept"),
        pytest.param({A + "target-utilization-percentage": "50"}, 10, 10.0, 5.0, id="util-50"),
        pytest.param({A + "targetUtilizationPercentage": "50"}, 0, 100.0, 50.0, id="util-alias"),
        pytest.param({A + "metric": "rps"}, 10, 200.0, 140.0, id="rps-ignores-cc"),
        pytest.param(
            {A + "metric": "rps", A + "target": "50"},
            10,
            50.0,
            35.0,
            id="rps-target-not-capped-by-cc",
        ),
        pytest.param(
            {A + "metric": "rps", A + "target-utilization-percentage": "100"},
            0,
            200.0,
            200.0,
            id="rps-util-annotation",
        ),
        pytest.param(
            {A + "target": "0.01", A + "target-utilization-percentage": "1"},
            0,
            0.01,
            0.01,
            id="target-floor-0.01",
        ),
    ],
)
def test_target_resolution(
    annotations: dict[str, str], cc: int, total: float, target: float
) -> None:
    spec = spec_for(annotations, cc=cc)
    assert spec.total_value == pytest.approx(total)
    assert spec.target == pytest.approx(target)


def test_config_defaults_feed_the_target() -> None:
    config = replace(
        DEFAULT,
        container_concurrency_target_default=40.0,
        container_concurrency_target_fraction=0.5,
        rps_target_default=10.0,
    )
    assert (spec_for({}, config=config).target, spec_for({}, config=config).total_value) == (
        20.0,
        40.0,
    )
    rps = spec_for({A + "metric": "rps"}, config=config)
    # The rps utilization is the fixed 0.7, never the concurrency percentage.
    assert (rps.target, rps.total_value) == (pytest.approx(7.0), 10.0)


def test_default_spec_fields() -> None:
    assert spec_for({}) == DeciderSpec(
        target=70.0,
        total_value=100.0,
        target_burst_capacity=211.0,
        panic_threshold=2.0,
        stable_window=60.0,
        max_scale_up_rate=1000.0,
        max_scale_down_rate=2.0,
        activation_scale=1,
        scale_down_delay=0.0,
        reachable=True,
        scaling_metric="concurrency",
        activator_capacity=100.0,
        initial_scale=1,
    )


def test_annotations_override_config_in_the_spec() -> None:
    config = replace(
        DEFAULT,
        max_scale_up_rate=5.0,
        max_scale_down_rate=3.0,
        activator_capacity=50.0,
        initial_scale=2,
    )
    spec = spec_for(
        {
            A + "target-burst-capacity": "-1",
            A + "window": "2m",
            A + "panic-threshold-percentage": "150",
            A + "scale-down-delay": "30s",
            A + "activation-scale": "3",
            A + "initial-scale": "4",
            A + "metric": "rps",
        },
        config=config,
        reachable=False,
    )
    assert spec == DeciderSpec(
        target=140.0,
        total_value=200.0,
        target_burst_capacity=-1.0,
        panic_threshold=1.5,
        stable_window=120.0,
        max_scale_up_rate=5.0,
        max_scale_down_rate=3.0,
        activation_scale=3,
        scale_down_delay=30.0,
        reachable=False,
        scaling_metric="rps",
        activator_capacity=50.0,
        initial_scale=4,
    )


def test_config_values_reach_the_spec_without_annotations() -> None:
    config = replace(
        DEFAULT,
        target_burst_capacity=0.0,
        stable_window=30.0,
        panic_threshold_percentage=300.0,
        scale_down_delay=10.0,
    )
    spec = spec_for({}, config=config)
    assert (
        spec.target_burst_capacity,
        spec.stable_window,
        spec.panic_threshold,
        spec.scale_down_delay,
    ) == (0.0, 30.0, 3.0, 10.0)


@pytest.mark.parametrize(
    ("annotations", "config", "expected"),
    [
        pytest.param({}, DEFAULT, 6.0, id="default-60s-10pct"),
        pytest.param({A + "window": "30s"}, DEFAULT, 3.0, id="window-annotation"),
        pytest.param({A + "panicWindowPercentage": "25"}, DEFAULT, 15.0, id="pct-alias"),
        pytest.param(
            {A + "window": "6s", A + "panic-window-percentage": "1"},
            DEFAULT,
            1.0,
            id="at-least-one-second",
        ),
        pytest.param(
            {},
            replace(DEFAULT, stable_window=45.0, panic_window_percentage=5.0),
            2.0,
            id="config-2.25s-rounds-to-2",
        ),
    ],
)
def test_panic_window(
    annotations: dict[str, str], config: AutoscalerConfig, expected: float
) -> None:
    assert RevisionAutoscaling.parse(annotations, config).panic_window == expected


@pytest.mark.parametrize(
    ("annotations", "config", "field", "expected"),
    [
        pytest.param(
            {}, DEFAULT, "autoscaler_class", "kpa.autoscaling.knative.dev", id="class-from-config"
        ),
        pytest.param(
            {},
            replace(DEFAULT, pod_autoscaler_class="hpa.autoscaling.knative.dev"),
            "metric",
            "cpu",
            id="hpa-defaults-to-cpu",
        ),
        pytest.param(
            {A + "class": "example.com/mine"},
            DEFAULT,
            "metric",
            "concurrency",
            id="other-class-defaults-to-concurrency",
        ),
        pytest.param(
            {A + "class": "hpa.autoscaling.knative.dev", A + "metric": "memory"},
            DEFAULT,
            "metric",
            "memory",
            id="hpa-any-metric",
        ),
        pytest.param(
            {A + "class": "example.com/mine", A + "metric": "queue-depth"},
            DEFAULT,
            "metric",
            "queue-depth",
            id="other-class-metric-unchecked",
        ),
        pytest.param(
            {}, replace(DEFAULT, min_scale=1, max_scale=9), "max_scale", 9, id="max-from-config"
        ),
        pytest.param({A + "minScale": "2"}, DEFAULT, "min_scale", 2, id="min-alias"),
        pytest.param(
            {A + "maxScale": "4", A + "max-scale": "6"},
            DEFAULT,
            "max_scale",
            6,
            id="hyphenated-key-wins",
        ),
        pytest.param({A + "initialScale": "3"}, DEFAULT, "initial_scale", 3, id="initial-alias"),
        pytest.param(
            {A + "initial-scale": "0"},
            replace(DEFAULT, allow_zero_initial_scale=True),
            "initial_scale",
            0,
            id="initial-zero-allowed",
        ),
        pytest.param(
            {}, replace(DEFAULT, initial_scale=5), "initial_scale", 5, id="initial-from-config"
        ),
        pytest.param({}, DEFAULT, "activation_scale", 1, id="activation-absent-is-1"),
        pytest.param(
            {A + "scaleDownDelay": "1h"}, DEFAULT, "scale_down_delay", 3600.0, id="delay-alias-max"
        ),
        pytest.param(
            {A + "scaleToZeroPodRetentionPeriod": "90.5s"},
            DEFAULT,
            "scale_to_zero_pod_retention",
            90.5,
            id="retention-alias-fractional",
        ),
        pytest.param(
            {},
            replace(DEFAULT, scale_to_zero_pod_retention_period=7.0),
            "scale_to_zero_pod_retention",
            7.0,
            id="retention-from-config",
        ),
        pytest.param(
            {A + "targetBurstCapacity": "0"}, DEFAULT, "target_burst_capacity", 0.0, id="tbc-alias"
        ),
        pytest.param(
            {A + "panicThresholdPercentage": "1000"},
            DEFAULT,
            "panic_threshold_percentage",
            1000.0,
            id="threshold-alias-max",
        ),
        pytest.param({}, DEFAULT, "metric_aggregation_algorithm", "linear", id="algorithm-default"),
        pytest.param(
            {A + "metricAggregationAlgorithm": "weightedExponential"},
            DEFAULT,
            "metric_aggregation_algorithm",
            "weighted-exponential",
            id="algorithm-camel-value-normalised",
        ),
        pytest.param(
            {A + "metric-aggregation-algorithm": "weighted-exponential"},
            DEFAULT,
            "metric_aggregation_algorithm",
            "weighted-exponential",
            id="algorithm-hyphenated",
        ),
        pytest.param(
            {"serving.knative.dev/progress-deadline": "5m"},
            DEFAULT,
            "progress_deadline",
            300.0,
            id="progress-deadline-annotation",
        ),
        pytest.param({}, DEFAULT, "progress_deadline", 600.0, id="progress-deadline-default"),
    ],
)
def test_parsed_values(
    annotations: dict[str, str], config: AutoscalerConfig, field: str, expected: Any
) -> None:
    revision = RevisionAutoscaling.parse(annotations, config)
    assert getattr(revision, field) == expected


def test_progress_deadline_from_config_deployment() -> None:
    revision = RevisionAutoscaling.parse(
        {}, DEFAULT, deployment=DeploymentConfig(progress_deadline=120.0)
    )
    assert revision.progress_deadline == 120.0


LIMITED = replace(DEFAULT, max_scale_limit=10, max_scale=5)


@pytest.mark.parametrize(
    ("annotations", "config", "message"),
    [
        pytest.param(
            {A + "max-scale": "ten"},
            DEFAULT,
            "autoscaling.knative.dev/max-scale: must be an integer >= 0, got 'ten'",
            id="max-not-an-integer",
        ),
        pytest.param(
            {A + "maxScale": "-1"},
            DEFAULT,
            "autoscaling.knative.dev/maxScale: must be an integer >= 0, got '-1'",
            id="alias-named-in-error",
        ),
        pytest.param(
            {A + "max-scale": "0"},
            LIMITED,
            "autoscaling.knative.dev/max-scale: must be an integer between 1 and "
            "max-scale-limit (10), got '0'",
            id="max-zero-with-limit",
        ),
        pytest.param(
            {A + "max-scale": "11"},
            LIMITED,
            "autoscaling.knative.dev/max-scale: must be an integer between 1 and "
            "max-scale-limit (10), got '11'",
            id="max-above-limit",
        ),
        pytest.param(
            {A + "min-scale": "3", A + "max-scale": "2"},
            DEFAULT,
            "autoscaling.knative.dev/max-scale: must be 0 or an integer >= min-scale (3), got '2'",
            id="max-below-min",
        ),
        pytest.param(
            {A + "min-scale": "-3"},
            DEFAULT,
            "autoscaling.knative.dev/min-scale: must be an integer >= 0, got '-3'",
            id="negative-min",
        ),
        pytest.param(
            {A + "minScale": "99999999999"},
            DEFAULT,
            "autoscaling.knative.dev/minScale: must be an integer >= 0, got '99999999999'",
            id="min-beyond-int32",
        ),
        pytest.param(
            {A + "activation-scale": "1"},
            DEFAULT,
            "autoscaling.knative.dev/activation-scale: must be an integer >= 2, got '1'",
            id="activation-below-2",
        ),
        pytest.param(
            {A + "activation-scale": "2", A + "min-scale": "3"},
            DEFAULT,
            "autoscaling.knative.dev/activation-scale: must be an integer >= 2 and "
            ">= min-scale (3), got '2'",
            id="activation-below-min",
        ),
        pytest.param(
            {A + "activation-scale": "6", A + "max-scale": "5"},
            DEFAULT,
            "autoscaling.knative.dev/activation-scale: must be an integer >= 2 and "
            "between min-scale (0) and max-scale (5), got '6'",
            id="activation-above-max",
        ),
        pytest.param(
            {A + "initial-scale": "0"},
            DEFAULT,
            "autoscaling.knative.dev/initial-scale: must be an integer >= 1 (0 needs "
            "allow-zero-initial-scale: true), got '0'",
            id="initial-zero-disallowed",
        ),
        pytest.param(
            {A + "initialScale": "-1"},
            replace(DEFAULT, allow_zero_initial_scale=True),
            "autoscaling.knative.dev/initialScale: must be an integer >= 0, got '-1'",
            id="initial-negative",
        ),
        pytest.param(
            {A + "target": "0.001"},
            DEFAULT,
            "autoscaling.knative.dev/target: must be a number >= 0.01, got '0.001'",
            id="target-below-min",
        ),
        pytest.param(
            {A + "target-utilization-percentage": "0.5"},
            DEFAULT,
            "autoscaling.knative.dev/target-utilization-percentage: must be a number "
            "between 1 and 100, got '0.5'",
            id="utilization-low",
        ),
        pytest.param(
            {A + "targetUtilizationPercentage": "101"},
            DEFAULT,
            "autoscaling.knative.dev/targetUtilizationPercentage: must be a number "
            "between 1 and 100, got '101'",
            id="utilization-high",
        ),
        pytest.param(
            {A + "target-burst-capacity": "-0.5"},
            DEFAULT,
            "autoscaling.knative.dev/target-burst-capacity: must be a number >= 0, or "
            "-1 for unlimited, got '-0.5'",
            id="tbc-negative",
        ),
        pytest.param(
            {A + "window": "5s"},
            DEFAULT,
            "autoscaling.knative.dev/window: must be between 6s and 1h in whole seconds, got '5s'",
            id="window-short",
        ),
        pytest.param(
            {A + "window": "6500ms"},
            DEFAULT,
            "autoscaling.knative.dev/window: must be between 6s and 1h in whole "
            "seconds, got '6500ms'",
            id="window-fractional",
        ),
        pytest.param(
            {A + "panic-window-percentage": "0"},
            DEFAULT,
            "autoscaling.knative.dev/panic-window-percentage: must be a number between "
            "1 and 100, got '0'",
            id="panic-window-zero",
        ),
        pytest.param(
            {A + "panic-threshold-percentage": "109"},
            DEFAULT,
            "autoscaling.knative.dev/panic-threshold-percentage: must be a number "
            "between 110 and 1000, got '109'",
            id="threshold-low",
        ),
        pytest.param(
            {A + "panicThresholdPercentage": "1001"},
            DEFAULT,
            "autoscaling.knative.dev/panicThresholdPercentage: must be a number "
            "between 110 and 1000, got '1001'",
            id="threshold-high",
        ),
        pytest.param(
            {A + "scale-down-delay": "61m"},
            DEFAULT,
            "autoscaling.knative.dev/scale-down-delay: must be between 0s and 1h in "
            "whole seconds, got '61m'",
            id="delay-long",
        ),
        pytest.param(
            {A + "scaleDownDelay": "500ms"},
            DEFAULT,
            "autoscaling.knative.dev/scaleDownDelay: must be between 0s and 1h in "
            "whole seconds, got '500ms'",
            id="delay-fractional",
        ),
        pytest.param(
            {A + "scale-to-zero-pod-retention-period": "-1s"},
            DEFAULT,
            "autoscaling.knative.dev/scale-to-zero-pod-retention-period: must be "
            "between 0s and 1h, got '-1s'",
            id="retention-negative",
        ),
        pytest.param(
            {A + "scale-to-zero-pod-retention-period": "1h1s"},
            DEFAULT,
            "autoscaling.knative.dev/scale-to-zero-pod-retention-period: must be "
            "between 0s and 1h, got '1h1s'",
            id="retention-long",
        ),
        pytest.param(
            {A + "metric": "cpu"},
            DEFAULT,
            "autoscaling.knative.dev/metric: must be concurrency or rps, got 'cpu'",
            id="kpa-metric",
        ),
        pytest.param(
            {A + "class": "hpa.autoscaling.knative.dev", A + "metric": ""},
            DEFAULT,
            "autoscaling.knative.dev/metric: must be a non-empty metric name, got ''",
            id="hpa-empty-metric",
        ),
        pytest.param(
            {A + "class": "foo.knative.dev"},
            DEFAULT,
            "autoscaling.knative.dev/class: must be kpa.autoscaling.knative.dev or "
            "hpa.autoscaling.knative.dev, or a class outside knative.dev, "
            "got 'foo.knative.dev'",
            id="reserved-class",
        ),
        pytest.param(
            {A + "metric-aggregation-algorithm": "average"},
            DEFAULT,
            "autoscaling.knative.dev/metric-aggregation-algorithm: must be linear or "
            "weighted-exponential, got 'average'",
            id="kpa-algorithm",
        ),
        pytest.param(
            {"serving.knative.dev/progress-deadline": "90.5s"},
            DEFAULT,
            "serving.knative.dev/progress-deadline: must be a duration >= 0s in whole "
            "seconds, got '90.5s'",
            id="progress-deadline-fractional",
        ),
    ],
)
def test_parse_rejects(annotations: dict[str, str], config: AutoscalerConfig, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        RevisionAutoscaling.parse(annotations, config)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "annotations",
    [
        pytest.param(
            {A + "min-scale": "3", A + "max-scale": "3", A + "activation-scale": "3"},
            id="all-equal",
        ),
        pytest.param({A + "min-scale": "3", A + "max-scale": "0"}, id="unbounded-max"),
        pytest.param({A + "activation-scale": "2"}, id="activation-without-bounds"),
        pytest.param(
            {A + "class": "example.com/other", A + "metric-aggregation-algorithm": "anything"},
            id="algorithm-unchecked-for-other-class",
        ),
        pytest.param({A + "target-burst-capacity": "-1"}, id="tbc-unlimited"),
        pytest.param({"serving.knative.dev/progress-deadline": "0s"}, id="progress-zero"),
        pytest.param(
            {"unrelated.example.com/key": "x", A + "unknown": "y"}, id="unknown-annotations-ignored"
        ),
    ],
)
def test_parse_accepts(annotations: dict[str, str]) -> None:
    RevisionAutoscaling.parse(annotations, DEFAULT)


def test_cross_rules_use_annotations_not_config() -> None:
    # Upstream's webhook compares the annotations with each other; the
    # config's min-scale 4 does not make a max-scale annotation of 3 invalid.
    config = replace(DEFAULT, min_scale=4)
    revision = RevisionAutoscaling.parse({A + "max-scale": "3"}, config)
    assert (revision.min_scale, revision.max_scale) == (4, 3)


def test_negative_container_concurrency() -> None:
    with pytest.raises(ConfigError, match=r"^containerConcurrency: must be an integer >= 0"):
        RevisionAutoscaling.parse({}, DEFAULT, container_concurrency=-1)
    lenient = RevisionAutoscaling.read({}, DEFAULT, container_concurrency=-1)
    assert lenient.container_concurrency == 0


@pytest.mark.parametrize(
    ("annotations", "config", "field", "expected"),
    [
        pytest.param(
            {A + "max-scale": "ten"},
            replace(DEFAULT, max_scale=7),
            "max_scale",
            7,
            id="unparsable-falls-back",
        ),
        pytest.param(
            {A + "max-scale": "ten", A + "maxScale": "3"},
            DEFAULT,
            "max_scale",
            0,
            id="bad-hyphenated-hides-alias",
        ),
        pytest.param(
            {A + "window": "3s"}, DEFAULT, "stable_window", 60.0, id="out-of-range-falls-back"
        ),
        pytest.param(
            {A + "initial-scale": "0"},
            replace(DEFAULT, initial_scale=2),
            "initial_scale",
            2,
            id="zero-initial-disallowed-falls-back",
        ),
        pytest.param(
            {A + "metric": "cpu"}, DEFAULT, "metric", "concurrency", id="bad-kpa-metric-falls-back"
        ),
        pytest.param(
            {A + "class": "foo.knative.dev"},
            DEFAULT,
            "autoscaler_class",
            "kpa.autoscaling.knative.dev",
            id="bad-class-falls-back",
        ),
        pytest.param(
            {A + "min-scale": "3", A + "max-scale": "2"},
            DEFAULT,
            "max_scale",
            2,
            id="cross-rule-not-applied",
        ),
        pytest.param({A + "max-scale": "50"}, LIMITED, "max_scale", 50, id="limit-not-applied"),
        pytest.param(
            {A + "activation-scale": "5", A + "max-scale": "2"},
            DEFAULT,
            "activation_scale",
            5,
            id="activation-cross-rule-not-applied",
        ),
        pytest.param(
            {A + "activation-scale": "1"},
            DEFAULT,
            "activation_scale",
            1,
            id="activation-below-2-absent",
        ),
        pytest.param({A + "target": "zero"}, DEFAULT, "target", None, id="bad-target-absent"),
    ],
)
def test_lenient_read(
    annotations: dict[str, str], config: AutoscalerConfig, field: str, expected: Any
) -> None:
    assert getattr(RevisionAutoscaling.read(annotations, config), field) == expected


def test_lenient_read_of_valid_annotations_equals_parse() -> None:
    annotations = {
        A + "min-scale": "1",
        A + "max-scale": "5",
        A + "window": "20s",
        A + "target": "30",
        A + "metric": "rps",
        A + "activation-scale": "2",
    }
    assert RevisionAutoscaling.read(annotations, DEFAULT, container_concurrency=4) == (
        RevisionAutoscaling.parse(annotations, DEFAULT, container_concurrency=4)
    )
