"""Table tests for config-autoscaler and config-deployment parsing and validation."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import pytest

from zeroserve.autoscaling.config import AutoscalerConfig, ConfigError, DeploymentConfig
from zeroserve.envconfig import ConfigError as CoreConfigError


def test_defaults_are_upstreams() -> None:
    assert AutoscalerConfig.from_mapping({}) == AutoscalerConfig(
        pod_autoscaler_class="kpa.autoscaling.knative.dev",
        enable_scale_to_zero=True,
        allow_zero_initial_scale=False,
        initial_scale=1,
        min_scale=0,
        max_scale=0,
        max_scale_limit=0,
        max_scale_up_rate=1000.0,
        max_scale_down_rate=2.0,
        container_concurrency_target_fraction=0.7,
        container_concurrency_target_default=100.0,
        rps_target_default=200.0,
        target_burst_capacity=211.0,
        stable_window=60.0,
        panic_window_percentage=10.0,
        panic_threshold_percentage=200.0,
        activator_capacity=100.0,
        scale_to_zero_grace_period=30.0,
        scale_to_zero_pod_retention_period=0.0,
        scale_down_delay=0.0,
    )


def test_every_field_is_read_from_its_key() -> None:
    every_key = {
        "pod-autoscaler-class": "example.com/custom",
        "enable-scale-to-zero": "false",
        "allow-zero-initial-scale": "true",
        "initial-scale": "0",
        "min-scale": "2",
        "max-scale": "8",
        "max-scale-limit": "10",
        "max-scale-up-rate": "3.5",
        "max-scale-down-rate": "1.5",
        "container-concurrency-target-percentage": "80",
        "container-concurrency-target-default": "50",
        "requests-per-second-target-default": "150",
        "target-burst-capacity": "-1",
        "stable-window": "2m",
        "panic-window-percentage": "20",
        "panic-threshold-percentage": "300",
        "activator-capacity": "25",
        "scale-to-zero-grace-period": "45s",
        "scale-to-zero-pod-retention-period": "1m30s",
        "scale-down-delay": "15s",
    }
    config = AutoscalerConfig.from_mapping(every_key)
    default = AutoscalerConfig()
    for f in fields(AutoscalerConfig):
        assert getattr(config, f.name) != getattr(default, f.name), f.name
    assert config.container_concurrency_target_fraction == pytest.approx(0.8)
    assert config.stable_window == 120.0
    assert config.scale_to_zero_pod_retention_period == 90.0
    assert AutoscalerConfig.unknown_keys(every_key) == []


@pytest.mark.parametrize(
    ("value", "fraction"),
    [
        pytest.param("70", 0.7, id="percentage"),
        pytest.param("100", 1.0, id="hundred-percent"),
        pytest.param("0.5", 0.5, id="fraction-kept"),
        pytest.param("1", 1.0, id="one-is-a-fraction"),
        pytest.param("1.5", 0.015, id="just-above-one-is-a-percentage"),
    ],
)
def test_target_percentage_rule(value: str, fraction: float) -> None:
    config = AutoscalerConfig.from_mapping({"container-concurrency-target-percentage": value})
    assert config.container_concurrency_target_fraction == pytest.approx(fraction)


@pytest.mark.parametrize(
    ("data", "field", "expected"),
    [
        pytest.param({"stable-window": "6s"}, "stable_window", 6.0, id="window-min"),
        pytest.param({"stable-window": "1h"}, "stable_window", 3600.0, id="window-max"),
        pytest.param({"target-burst-capacity": "0"}, "target_burst_capacity", 0.0, id="tbc-zero"),
        pytest.param(
            {"target-burst-capacity": "-1"}, "target_burst_capacity", -1.0, id="tbc-unlimited"
        ),
        pytest.param(
            {"panic-threshold-percentage": "50"},
            "panic_threshold_percentage",
            50.0,
            id="panic-threshold-unchecked",
        ),
        pytest.param(
            {"scale-down-delay": "2h"}, "scale_down_delay", 7200.0, id="delay-no-upper-bound"
        ),
        pytest.param(
            {"scale-to-zero-pod-retention-period": "1.5s"},
            "scale_to_zero_pod_retention_period",
            1.5,
            id="retention-fractional",
        ),
        pytest.param(
            {"max-scale-limit": "10", "max-scale": "10"}, "max_scale", 10, id="max-at-limit"
        ),
        pytest.param({"max-scale": "5", "min-scale": "5"}, "min_scale", 5, id="min-equals-max"),
        pytest.param(
            {"max-scale": "0", "min-scale": "50"}, "min_scale", 50, id="min-unbounded-max"
        ),
        pytest.param(
            {"initial-scale": "0", "allow-zero-initial-scale": "true"},
            "initial_scale",
            0,
            id="zero-initial-allowed",
        ),
        pytest.param(
            {
                "container-concurrency-target-percentage": "1",
                "container-concurrency-target-default": "0.01",
            },
            "container_concurrency_target_default",
            0.01,
            id="target-exactly-min",
        ),
        pytest.param(
            {"pod-autoscaler-class": "hpa.autoscaling.knative.dev"},
            "pod_autoscaler_class",
            "hpa.autoscaling.knative.dev",
            id="class-any-string",
        ),
        pytest.param(
            {"enable-scale-to-zero": "False"}, "enable_scale_to_zero", False, id="go-bool-spelling"
        ),
    ],
)
def test_accepted_edges(data: dict[str, str], field: str, expected: Any) -> None:
    assert getattr(AutoscalerConfig.from_mapping(data), field) == expected


P = "config-autoscaler: "


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(
            {"stable-window": "3s"},
            "stable-window: must be between 6s and 1h in whole seconds, got '3s'",
            id="window-too-short",
        ),
        pytest.param(
            {"stable-window": "61m"},
            "stable-window: must be between 6s and 1h in whole seconds, got '61m'",
            id="window-too-long",
        ),
        pytest.param(
            {"stable-window": "60.5s"},
            "stable-window: must be between 6s and 1h in whole seconds, got '60.5s'",
            id="window-fractional",
        ),
        pytest.param(
            {"stable-window": "60"},
            "stable-window: must be between 6s and 1h in whole seconds, got '60'",
            id="window-without-unit",
        ),
        pytest.param(
            {"enable-scale-to-zero": "yes"},
            "enable-scale-to-zero: must be true or false, got 'yes'",
            id="bad-bool",
        ),
        pytest.param(
            {"allow-zero-initial-scale": "nope"},
            "allow-zero-initial-scale: must be true or false, got 'nope'",
            id="bad-bool-allow-zero",
        ),
        pytest.param(
            {"initial-scale": "0"},
            "initial-scale: must be an integer >= 1 (0 needs allow-zero-initial-scale: "
            "true), got '0'",
            id="zero-initial-disallowed",
        ),
        pytest.param(
            {"initial-scale": "-1", "allow-zero-initial-scale": "true"},
            "initial-scale: must be an integer >= 0, got '-1'",
            id="negative-initial",
        ),
        pytest.param(
            {"min-scale": "-1"}, "min-scale: must be an integer >= 0, got '-1'", id="negative-min"
        ),
        pytest.param(
            {"min-scale": "4", "max-scale": "3"},
            "min-scale: must be an integer between 0 and max-scale (3), got '4'",
            id="min-above-max",
        ),
        pytest.param(
            {"max-scale": "-2"}, "max-scale: must be an integer >= 0, got '-2'", id="negative-max"
        ),
        pytest.param(
            {"max-scale": "11", "max-scale-limit": "10"},
            "max-scale: must be an integer between 1 and max-scale-limit (10), got '11'",
            id="max-above-limit",
        ),
        pytest.param(
            {"max-scale": "0", "max-scale-limit": "10"},
            "max-scale: must be an integer between 1 and max-scale-limit (10), got '0'",
            id="unbounded-max-with-limit",
        ),
        pytest.param(
            {"max-scale-limit": "10"},
            "max-scale: must be an integer between 1 and max-scale-limit (10), got 0 (the default)",
            id="limit-needs-a-max",
        ),
        pytest.param(
            {"max-scale-limit": "-1"},
            "max-scale-limit: must be an integer >= 0, got '-1'",
            id="negative-limit",
        ),
        pytest.param(
            {"max-scale": "3.0"},
            "max-scale: must be an integer >= 0, got '3.0'",
            id="max-not-an-integer",
        ),
        pytest.param(
            {"max-scale-up-rate": "1"},
            "max-scale-up-rate: must be a number > 1, got '1'",
            id="up-rate-one",
        ),
        pytest.param(
            {"max-scale-down-rate": "0.5"},
            "max-scale-down-rate: must be a number > 1, got '0.5'",
            id="down-rate-low",
        ),
        pytest.param(
            {"container-concurrency-target-percentage": "0"},
            "container-concurrency-target-percentage: must be a percentage in (0, 100] "
            "or a fraction in (0, 1], got '0'",
            id="percentage-zero",
        ),
        pytest.param(
            {"container-concurrency-target-percentage": "101"},
            "container-concurrency-target-percentage: must be a percentage in (0, 100] "
            "or a fraction in (0, 1], got '101'",
            id="percentage-over-100",
        ),
        pytest.param(
            {"container-concurrency-target-default": "0.01"},
            "container-concurrency-target-default: must be such that the target "
            "percentage (0.7) x the target default (0.01) is >= 0.01, got '0.01'",
            id="default-target-below-min",
        ),
        pytest.param(
            {"container-concurrency-target-percentage": "0.00005"},
            "container-concurrency-target-percentage: must be such that the target "
            "percentage (5e-05) x the target default (100) is >= 0.01, got '0.00005'",
            id="tiny-percentage-blamed-when-default-unset",
        ),
        pytest.param(
            {"requests-per-second-target-default": "0.001"},
            "requests-per-second-target-default: must be a number >= 0.01, got '0.001'",
            id="rps-below-min",
        ),
        pytest.param(
            {"target-burst-capacity": "-2"},
            "target-burst-capacity: must be a number >= 0, or -1 for unlimited, got '-2'",
            id="tbc-negative",
        ),
        pytest.param(
            {"panic-window-percentage": "0.5"},
            "panic-window-percentage: must be a number between 1 and 100, got '0.5'",
            id="panic-window-low",
        ),
        pytest.param(
            {"panic-window-percentage": "101"},
            "panic-window-percentage: must be a number between 1 and 100, got '101'",
            id="panic-window-high",
        ),
        pytest.param(
            {"panic-threshold-percentage": "lots"},
            "panic-threshold-percentage: must be a number, got 'lots'",
            id="panic-threshold-unparsable",
        ),
        pytest.param(
            {"activator-capacity": "0.5"},
            "activator-capacity: must be a number >= 1, got '0.5'",
            id="activator-capacity-low",
        ),
        pytest.param(
            {"scale-to-zero-grace-period": "0s"},
            "scale-to-zero-grace-period: must be a duration > 0s, got '0s'",
            id="grace-zero",
        ),
        pytest.param(
            {"scale-to-zero-pod-retention-period": "-1s"},
            "scale-to-zero-pod-retention-period: must be a duration >= 0s, got '-1s'",
            id="retention-negative",
        ),
        pytest.param(
            {"scale-down-delay": "1.5s"},
            "scale-down-delay: must be a duration >= 0s in whole seconds, got '1.5s'",
            id="delay-fractional",
        ),
        pytest.param(
            {"scale-down-delay": "-2s"},
            "scale-down-delay: must be a duration >= 0s in whole seconds, got '-2s'",
            id="delay-negative",
        ),
    ],
)
def test_rejected(data: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        AutoscalerConfig.from_mapping(data)
    assert str(info.value) == P + message


def test_config_error_is_the_shared_one() -> None:
    assert ConfigError is CoreConfigError


def test_unknown_keys_are_ignored_and_reported_except_example() -> None:
    data = {
        "_example": "# long commented text",
        "tick-interval": "2s",
        "panic-window": "6s",
        "stable-window": "30s",
    }
    assert AutoscalerConfig.from_mapping(data).stable_window == 30.0
    assert AutoscalerConfig.unknown_keys(data) == ["panic-window", "tick-interval"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, 600.0),
        ({"progress-deadline": "2m"}, 120.0),
        ({"progress-deadline": "1.5s"}, 1.5),
        ({"queue-sidecar-image": "ignored"}, 600.0),
    ],
)
def test_deployment_config(data: dict[str, str], expected: float) -> None:
    assert DeploymentConfig.from_mapping(data).progress_deadline == expected


@pytest.mark.parametrize("value", ["0s", "-1m", "ten"])
def test_deployment_config_rejects(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        DeploymentConfig.from_mapping({"progress-deadline": value})
    assert str(info.value) == (
        f"config-deployment: progress-deadline: must be a duration > 0s, got {value!r}"
    )
