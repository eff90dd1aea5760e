"""``config-observability`` and ``config-tracing`` (zeroserve/observability.py): Knative's
keys and defaults, zeroserve's refusals, and the queue-proxy's OBSERVABILITY_CONFIG JSON."""

from __future__ import annotations

import json

import pytest

from zeroserve.api.configs import Configs
from zeroserve.api.objects import CONFIG_MAP_NAMES
from zeroserve.envconfig import ConfigError
from zeroserve.observability import (
    DEFAULT_REQUEST_LOG_TEMPLATE,
    ENV,
    ObservabilityConfig,
)

OTLP = {"tracing-protocol": "http/protobuf", "tracing-endpoint": "http://collector:4318/v1/traces"}


def test_the_defaults_are_knatives_with_prometheus_metrics() -> None:
    c = ObservabilityConfig.from_mapping({})
    assert c == ObservabilityConfig()
    assert c.enable_request_log is False
    assert c.request_log_template == DEFAULT_REQUEST_LOG_TEMPLATE
    assert c.enable_probe_request_log is False
    assert c.metrics_protocol == "prometheus"
    assert c.tracing_protocol == "none"
    assert c.tracing_endpoint == ""
    assert c.tracing_sampling_rate == 0.0
    assert c.request_log_on is False


def test_every_key_is_read() -> None:
    c = ObservabilityConfig.from_mapping(
        {
            "_example": "ignored",
            "logging.enable-request-log": "true",
            "logging.request-log-template": "{{.Request.Method}}",
            "logging.enable-probe-request-log": "t",
            "logging.enable-var-log-collection": "false",
            "logging.revision-url-template": "",
            "metrics-protocol": "none",
            "metrics-export-interval": "30s",
            "request-metrics-protocol": "prometheus",
            "request-metrics-export-interval": "1m",
            "runtime-profiling": "disabled",
            "runtime-export-interval": "15s",
            **OTLP,
            "tracing-sampling-rate": "0.25",
        }
    )
    assert c == ObservabilityConfig(
        enable_request_log=True,
        request_log_template="{{.Request.Method}}",
        enable_probe_request_log=True,
        metrics_protocol="none",
        metrics_export_interval=30.0,
        request_metrics_protocol="prometheus",
        request_metrics_export_interval=60.0,
        tracing_protocol="http/protobuf",
        tracing_endpoint="http://collector:4318/v1/traces",
        tracing_sampling_rate=0.25,
    )
    assert c.request_log_on is True


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"logging.enable-requst-log": "true"}, "logging.enable-requst-log: unknown key"),
        ({"logging.enable-request-log": "yes"}, "logging.enable-request-log: must be true or"),
        (
            {"logging.enable-request-log": "true", "logging.request-log-template": ""},
            "logging.request-log-template: must not be empty when logging.enable-request-log",
        ),
        ({"logging.enable-probe-request-log": "1.0"}, "logging.enable-probe-request-log: must"),
        ({"logging.enable-var-log-collection": "true"}, "enable-var-log-collection: must be false"),
        ({"logging.revision-url-template": "http://l/${REVISION_UID}"}, "revision-url-template"),
        ({"runtime-profiling": "enabled"}, "runtime-profiling: must be disabled"),
        ({"runtime-profiling": "on"}, "runtime-profiling: must be enabled or disabled"),
        ({"runtime-export-interval": "-1s"}, "runtime-export-interval: must be a duration >= 0"),
        ({"metrics-protocol": "grpc"}, "metrics-protocol: grpc (OTLP export) is not supported"),
        ({"metrics-protocol": "http/protobuf"}, "serves Prometheus only"),
        ({"metrics-protocol": "statsd"}, "metrics-protocol: must be prometheus or none"),
        ({"metrics-endpoint": ":9095"}, "metrics-endpoint: not supported by zeroserve"),
        (
            {"metrics-protocol": "none", "metrics-endpoint": "x:1"},
            "metrics-endpoint: must not be set when metrics-protocol is none",
        ),
        ({"metrics-export-interval": "soon"}, "metrics-export-interval: must be a duration"),
        ({"request-metrics-protocol": "grpc"}, "request-metrics-protocol: grpc (OTLP export)"),
        ({"request-metrics-endpoint": "h:1"}, "request-metrics-endpoint: not supported"),
        ({"request-metrics-export-interval": "-5s"}, "request-metrics-export-interval: must"),
        ({"tracing-protocol": "grpc"}, "tracing-protocol: grpc is not supported by zeroserve; use"),
        ({"tracing-protocol": "stdout"}, "tracing-protocol: must be none or http/protobuf"),
        ({"tracing-protocol": "zipkin"}, "tracing-protocol: must be none or http/protobuf"),
        ({"tracing-protocol": "http/protobuf"}, "tracing-endpoint: must be set when"),
        ({"tracing-endpoint": "http://c:4318"}, "tracing-endpoint: must not be set when"),
        ({**OTLP, "tracing-endpoint": "collector:4318"}, "tracing-endpoint: must be an http://"),
        ({**OTLP, "tracing-endpoint": "ftp://c/v1/traces"}, "tracing-endpoint: must be an http://"),
        ({"tracing-sampling-rate": "1.5"}, "tracing-sampling-rate: must be a number between 0"),
        ({"tracing-sampling-rate": "-0.1"}, "tracing-sampling-rate: must be a number between 0"),
        ({"tracing-sampling-rate": "half"}, "tracing-sampling-rate: must be a number between 0"),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else "",
)
def test_a_bad_value_names_the_map_and_the_key(data: dict[str, str], error: str) -> None:
    with pytest.raises(ConfigError, match=r"^config-observability: ") as e:
        ObservabilityConfig.from_mapping(data)
    assert error in str(e.value)


def test_a_template_may_be_empty_while_request_logs_are_off() -> None:
    c = ObservabilityConfig.from_mapping({"logging.request-log-template": ""})
    assert c.request_log_template == "" and c.request_log_on is False


# -- config-tracing (Knative 1.14) -----------------------------------------------------


@pytest.mark.parametrize(
    ("tracing", "observability", "rate"),
    [
        ({"backend": "none"}, {}, 0.0),
        ({"backend": "none", "sample-rate": "0.5"}, OTLP, 0.5),
        ({"sample-rate": "0.5", "debug": "true"}, OTLP, 1.0),
        ({"sample-rate": "0.5"}, {**OTLP, "tracing-sampling-rate": "0.2"}, 0.2),
    ],
    ids=["backend-none", "sample-rate", "debug", "config-observability-wins"],
)
def test_config_tracing_is_accepted_where_it_means_the_same(
    tracing: dict[str, str], observability: dict[str, str], rate: float
) -> None:
    c = ObservabilityConfig.from_maps(observability, tracing)
    assert c.tracing_sampling_rate == rate
    assert c.tracing_protocol == observability.get("tracing-protocol", "none")


@pytest.mark.parametrize(
    ("tracing", "error"),
    [
        ({"backend": "zipkin"}, "backend: zipkin is not supported by zeroserve; set tracing-"),
        ({"backend": "jaeger"}, "backend: must be none"),
        ({"zipkin-endpoint": "http://zipkin:9411/api/v2/spans"}, "zipkin-endpoint: not supported"),
        ({"sample-rate": "2"}, "sample-rate: must be a number between 0 and 1"),
        ({"debug": "maybe"}, "debug: must be true or false"),
        ({"enable": "true"}, "enable: unknown key"),
    ],
    ids=["zipkin", "jaeger", "zipkin-endpoint", "rate", "debug", "unknown"],
)
def test_config_tracing_refuses_what_needs_otlp_instead(
    tracing: dict[str, str], error: str
) -> None:
    with pytest.raises(ConfigError, match=r"^config-tracing: ") as e:
        ObservabilityConfig.from_maps({}, tracing)
    assert error in str(e.value)
    if "zipkin" in error:
        assert "config-observability" in str(e.value)  # points to OTLP there


def test_config_tracing_is_checked_even_when_its_rate_is_not_used() -> None:
    with pytest.raises(ConfigError, match="config-tracing: backend: zipkin"):
        ObservabilityConfig.from_maps({**OTLP, "tracing-sampling-rate": "1"}, {"backend": "zipkin"})


def test_configs_fold_both_maps_whatever_the_order() -> None:
    a = Configs().with_config_map("config-tracing", {"debug": "true"})
    a = a.with_config_map("config-observability", OTLP)
    b = Configs().with_config_map("config-observability", OTLP)
    b = b.with_config_map("config-tracing", {"debug": "true"})
    assert a.observability == b.observability
    assert a.observability.tracing_sampling_rate == 1.0
    # deleting config-tracing takes its rate away again
    c = b.with_config_map("config-tracing", None)
    assert c.observability.tracing_sampling_rate == 0.0
    assert {"config-observability", "config-tracing"} <= set(CONFIG_MAP_NAMES)


def test_configs_refuse_a_bad_map_naming_it() -> None:
    with pytest.raises(ConfigError, match="config-observability: metrics-protocol"):
        Configs().with_config_map("config-observability", {"metrics-protocol": "grpc"})


# -- OBSERVABILITY_CONFIG ------------------------------------------------------------------


def test_the_json_is_knatives_shape() -> None:
    c = ObservabilityConfig.from_mapping(
        {
            "logging.enable-request-log": "true",
            "metrics-export-interval": "30s",
            **OTLP,
            "tracing-sampling-rate": "0.5",
        }
    )
    assert c.to_json() == {
        "tracing": {
            "protocol": "http/protobuf",
            "endpoint": "http://collector:4318/v1/traces",
            "samplingRate": 0.5,
        },
        "metrics": {"protocol": "prometheus", "exportInterval": 30_000_000_000},
        "runtime": {"profiling": "disabled"},
        "requestMetrics": {"protocol": "prometheus"},
        "enableRequestLog": True,
        "requestLogTemplate": DEFAULT_REQUEST_LOG_TEMPLATE,
    }


@pytest.mark.parametrize(
    "config",
    [
        ObservabilityConfig(),
        ObservabilityConfig(
            enable_request_log=True,
            request_log_template='{{.Request.Method}} "{{js .Request.URL}}"',
            enable_probe_request_log=True,
            metrics_protocol="none",
            request_metrics_protocol="none",
            metrics_export_interval=1.5,
            tracing_protocol="http/protobuf",
            tracing_endpoint="https://c.example:4318/v1/traces",
            tracing_sampling_rate=1e-05,
        ),
    ],
    ids=["defaults", "everything"],
)
def test_the_json_round_trips_through_the_env(config: ObservabilityConfig) -> None:
    assert ObservabilityConfig.from_json(config.to_json()) == config
    assert ObservabilityConfig.from_env({ENV: config.to_env()}) == config


def test_missing_fields_are_the_defaults_as_go_unmarshals_into_them() -> None:
    assert ObservabilityConfig.from_json({}) == ObservabilityConfig()
    assert ObservabilityConfig.from_env({}) == ObservabilityConfig()
    assert ObservabilityConfig.from_env({ENV: " "}) == ObservabilityConfig()


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("{", "OBSERVABILITY_CONFIG: not valid JSON"),
        ("[]", "OBSERVABILITY_CONFIG: must be a JSON object"),
        ('{"tracing": 1}', "OBSERVABILITY_CONFIG: tracing: must be a JSON object"),
        ('{"enableRequestLog": "yes"}', "OBSERVABILITY_CONFIG: enableRequestLog: must be a JSON"),
        ('{"tracing": {"samplingRate": "1"}}', "tracing.samplingRate: must be a JSON float"),
        ('{"metrics": {"exportInterval": 1.5}}', "metrics.exportInterval: must be a JSON int"),
        (
            '{"tracing": {"protocol": "grpc", "endpoint": "http://c"}}',
            "OBSERVABILITY_CONFIG: config-observability: tracing-protocol: grpc",
        ),
    ],
    ids=["json", "array", "section", "bool", "float", "int", "invalid"],
)
def test_a_bad_env_names_the_variable_and_the_field(raw: str, error: str) -> None:
    with pytest.raises(ConfigError) as e:
        ObservabilityConfig.from_env({ENV: raw})
    assert error in str(e.value)


def test_the_env_value_is_one_compact_line() -> None:
    value = ObservabilityConfig(enable_request_log=True).to_env()
    assert "\n" not in value and json.loads(value)["enableRequestLog"] is True


def test_the_example_turns_request_logs_on() -> None:
    import yaml

    from tests.support.procs import ROOT

    doc = yaml.safe_load((ROOT / "examples" / "config-observability.yaml").read_text())
    configs = Configs().with_config_map(doc["metadata"]["name"], doc["data"])
    assert configs.observability.request_log_on
