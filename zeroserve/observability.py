"""``config-observability`` (and Knative 1.14's ``config-tracing``): request logs, the
metrics protocol, tracing (docs/observability.md).

Knative's keys and defaults (knative/serving ``pkg/observability/config.go`` over
knative.dev/pkg ``observability/{metrics,tracing,runtime}/config.go``), with zeroserve's
limits said at parse time rather than ignored:

- metrics are served, never pushed: ``metrics-protocol`` and
  ``request-metrics-protocol`` take ``prometheus`` (zeroserve's default; Knative's is
  ``none``) or ``none``; the OTLP protocols are refused, and so is a ``*-endpoint`` (the
  metrics ports are the components' flags and the queue-proxy's ``USER_METRICS_PORT``);
- traces are pushed with OTLP over HTTP only: ``tracing-protocol`` is ``none`` or
  ``http/protobuf`` (``grpc`` and ``stdout`` are refused), ``tracing-endpoint`` is
  required with ``http/protobuf`` and refused with ``none``, as Knative;
- keys that need a cluster agent or Go's runtime (``logging.enable-var-log-collection``,
  ``logging.revision-url-template``, ``runtime-profiling``) take only their defaults;
  ``runtime-export-interval`` is read for its type and has no effect.

``config-tracing`` is Knative 1.14's map, now deprecated upstream: ``backend: none``,
``sample-rate`` and ``debug`` are accepted (the sampling rate applies when
``config-observability`` turns tracing on without ``tracing-sampling-rate``; ``debug:
true`` samples everything), ``backend: zipkin`` and ``zipkin-endpoint`` are refused
with a pointer to OTLP in ``config-observability``.

The queue-proxy gets the parsed config as JSON in ``OBSERVABILITY_CONFIG`` in Knative's
shape (knative/serving ``pkg/reconciler/revision/resources/queue.go``):
:meth:`ObservabilityConfig.to_json` / :meth:`ObservabilityConfig.from_json`.

Imports nothing heavy: the queue-proxy loads it at start.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from zeroserve.configmap import ValueReader, parse_bool, parse_duration_nanos, parse_float
from zeroserve.envconfig import ConfigError

_log = logging.getLogger(__name__)

CONFIG_MAP = "config-observability"
TRACING_CONFIG_MAP = "config-tracing"
ENV = "OBSERVABILITY_CONFIG"
"""The queue-proxy's environment variable carrying :meth:`ObservabilityConfig.to_json`."""
EXAMPLE_KEY = "_example"

DEFAULT_REQUEST_LOG_TEMPLATE = (
    '{"httpRequest": {"requestMethod": "{{.Request.Method}}", "requestUrl": '
    '"{{js .Request.RequestURI}}", "requestSize": "{{.Request.ContentLength}}", "status": '
    '{{.Response.Code}}, "responseSize": "{{.Response.Size}}", "userAgent": '
    '"{{js .Request.UserAgent}}", "remoteIp": "{{js .Request.RemoteAddr}}", "serverIp": '
    '"{{.Revision.PodIP}}", "referer": "{{js .Request.Referer}}", "latency": '
    '"{{.Response.Latency}}s", "protocol": "{{.Request.Proto}}"}, "traceId": "{{.TraceID}}"}'
)
"""Knative's default request log template (one JSON object a line)."""

PROMETHEUS, NONE, HTTP_PROTOBUF = "prometheus", "none", "http/protobuf"
_OTLP = ("http/protobuf", "grpc")

ENABLE_REQUEST_LOG = "logging.enable-request-log"
REQUEST_LOG_TEMPLATE = "logging.request-log-template"
ENABLE_PROBE_REQUEST_LOG = "logging.enable-probe-request-log"

_KEYS = frozenset(
    {
        ENABLE_REQUEST_LOG,
        REQUEST_LOG_TEMPLATE,
        ENABLE_PROBE_REQUEST_LOG,
        "logging.enable-var-log-collection",
        "logging.revision-url-template",
        "metrics-protocol",
        "metrics-endpoint",
        "metrics-export-interval",
        "request-metrics-protocol",
        "request-metrics-endpoint",
        "request-metrics-export-interval",
        "runtime-profiling",
        "runtime-export-interval",
        "tracing-protocol",
        "tracing-endpoint",
        "tracing-sampling-rate",
    }
)
_TRACING_KEYS = frozenset({"backend", "zipkin-endpoint", "debug", "sample-rate"})
_NANOS = 1_000_000_000


@dataclass(frozen=True, kw_only=True, slots=True)
class ObservabilityConfig:
    """The settings of ``config-observability`` (with ``config-tracing``) zeroserve honours."""

    enable_request_log: bool = False
    """``logging.enable-request-log``: the queue-proxy (and the activator, for what it
    answers itself) writes one line per request to stdout."""
    request_log_template: str = DEFAULT_REQUEST_LOG_TEMPLATE
    """``logging.request-log-template``: a Go text/template (the subset in
    :mod:`zeroserve.requestlog`); empty: no request log."""
    enable_probe_request_log: bool = False
    """``logging.enable-probe-request-log``: health checks get a line too."""
    metrics_protocol: str = PROMETHEUS
    """``metrics-protocol``: ``prometheus`` (served on the metrics ports) or ``none``."""
    metrics_export_interval: float = 0.0
    """``metrics-export-interval`` in seconds (an OTLP push setting: no effect on
    Prometheus, as in Knative)."""
    request_metrics_protocol: str = PROMETHEUS
    """``request-metrics-protocol``: the queue-proxy's request metrics, ``prometheus`` or
    ``none``."""
    request_metrics_export_interval: float = 0.0
    """``request-metrics-export-interval`` in seconds (no effect on Prometheus)."""
    tracing_protocol: str = NONE
    """``tracing-protocol``: ``none`` or ``http/protobuf`` (OTLP over HTTP)."""
    tracing_endpoint: str = ""
    """``tracing-endpoint``: the OTLP/HTTP traces URL (``http://host:4318/v1/traces``)."""
    tracing_sampling_rate: float = 0.0
    """``tracing-sampling-rate``: the fraction of new traces sampled, 0 to 1."""

    @property
    def request_log_on(self) -> bool:
        """Whether request log lines are written at all (enabled, with a template)."""
        return self.enable_request_log and self.request_log_template != ""

    # -- parsing ----------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, data: Mapping[str, str]) -> ObservabilityConfig:
        """Parse ``config-observability``'s data; raises ``ConfigError`` naming the key."""
        return cls.from_maps(data, None)

    @classmethod
    def from_maps(
        cls, observability: Mapping[str, str] | None, tracing: Mapping[str, str] | None
    ) -> ObservabilityConfig:
        """Parse ``config-observability`` with Knative 1.14's ``config-tracing`` (either
        None: not applied); raises ``ConfigError`` naming the map and the key."""
        data = dict(observability or {})
        _check_keys(CONFIG_MAP, data, _KEYS)
        r = ValueReader(data, prefix=f"{CONFIG_MAP}: ")
        d = cls()
        bool_rule = "true or false"
        enable = r.read(ENABLE_REQUEST_LOG, parse_bool, d.enable_request_log, rule=bool_rule)
        template = data.get(REQUEST_LOG_TEMPLATE, d.request_log_template)
        if enable and template == "":
            raise ConfigError(
                f"{CONFIG_MAP}: {REQUEST_LOG_TEMPLATE}: must not be empty when "
                f"{ENABLE_REQUEST_LOG} is true"
            )
        if template not in ("", DEFAULT_REQUEST_LOG_TEMPLATE):  # the default is known good
            _check_template(template)
        probes = r.read(
            ENABLE_PROBE_REQUEST_LOG, parse_bool, d.enable_probe_request_log, rule=bool_rule
        )
        if r.read("logging.enable-var-log-collection", parse_bool, False, rule=bool_rule):
            raise ConfigError(
                f"{CONFIG_MAP}: logging.enable-var-log-collection: must be false (the fluentd "
                f"DaemonSet it turns on is not part of zeroserve; components and apps log to "
                f"stdout), got {data['logging.enable-var-log-collection']!r}"
            )
        url_template = data.get("logging.revision-url-template", "")
        if url_template != "":
            raise ConfigError(
                f"{CONFIG_MAP}: logging.revision-url-template: not supported by zeroserve "
                f"(Revisions get no status.logUrl), got {url_template!r}"
            )
        profiling = data.get("runtime-profiling", "disabled")
        if profiling != "disabled":
            rule = "disabled (Go's pprof server has no zeroserve equivalent)"
            if profiling != "enabled":
                rule = "enabled or disabled; zeroserve takes only disabled"
            raise ConfigError(f"{CONFIG_MAP}: runtime-profiling: must be {rule}, got {profiling!r}")
        _interval(r, "runtime-export-interval")
        metrics = _metrics_protocol(data, "metrics-")
        request_metrics = _metrics_protocol(data, "request-metrics-")
        protocol, endpoint = _tracing_protocol(data)
        rate = r.read_optional(
            "tracing-sampling-rate",
            parse_float,
            rule="a number between 0 and 1",
            ok=lambda x: 0.0 <= x <= 1.0,
        )
        legacy_rate = _legacy_tracing(tracing)  # validated whether or not its rate is used
        if rate is None:
            rate = legacy_rate
        return cls(
            enable_request_log=enable,
            request_log_template=template,
            enable_probe_request_log=probes,
            metrics_protocol=metrics,
            metrics_export_interval=_interval(r, "metrics-export-interval"),
            request_metrics_protocol=request_metrics,
            request_metrics_export_interval=_interval(r, "request-metrics-export-interval"),
            tracing_protocol=protocol,
            tracing_endpoint=endpoint,
            tracing_sampling_rate=rate,
        )

    # -- OBSERVABILITY_CONFIG -------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """Knative's JSON of the config (its field names; durations in nanoseconds;
        empty and zero values left out, as Go's ``omitempty``)."""
        out: dict[str, Any] = {
            "tracing": _compact(
                {
                    "protocol": self.tracing_protocol,
                    "endpoint": self.tracing_endpoint,
                    "samplingRate": self.tracing_sampling_rate,
                }
            ),
            "metrics": _compact(
                {
                    "protocol": self.metrics_protocol,
                    "exportInterval": round(self.metrics_export_interval * _NANOS),
                }
            ),
            "runtime": {"profiling": "disabled"},
            "requestMetrics": _compact(
                {
                    "protocol": self.request_metrics_protocol,
                    "exportInterval": round(self.request_metrics_export_interval * _NANOS),
                }
            ),
        }
        out.update(
            _compact(
                {
                    "enableRequestLog": self.enable_request_log,
                    "requestLogTemplate": self.request_log_template,
                    "enableProbeRequestLog": self.enable_probe_request_log,
                }
            )
        )
        return out

    def to_env(self) -> str:
        """The ``OBSERVABILITY_CONFIG`` value: :meth:`to_json` as compact JSON."""
        return json.dumps(self.to_json(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ObservabilityConfig:
        """Read :meth:`to_json`'s shape (missing fields: defaults, as Go's unmarshalling
        into the defaults); the values are validated as the map's. Raises ``ConfigError``
        naming ``OBSERVABILITY_CONFIG`` and the field."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{ENV}: must be a JSON object, got {type(data).__name__}")
        d = cls()
        tracing = _section(data, "tracing")
        metrics = _section(data, "metrics")
        request_metrics = _section(data, "requestMetrics")
        _section(data, "runtime")
        get = _json_getter(data)
        mapping = {
            ENABLE_REQUEST_LOG: _go_bool(get("enableRequestLog", bool, d.enable_request_log)),
            REQUEST_LOG_TEMPLATE: get("requestLogTemplate", str, d.request_log_template),
            ENABLE_PROBE_REQUEST_LOG: _go_bool(
                get("enableProbeRequestLog", bool, d.enable_probe_request_log)
            ),
            "metrics-protocol": _json_getter(metrics, "metrics")(
                "protocol", str, d.metrics_protocol
            ),
            "metrics-export-interval": _nanos(
                _json_getter(metrics, "metrics")("exportInterval", int, 0)
            ),
            "request-metrics-protocol": _json_getter(request_metrics, "requestMetrics")(
                "protocol", str, d.request_metrics_protocol
            ),
            "request-metrics-export-interval": _nanos(
                _json_getter(request_metrics, "requestMetrics")("exportInterval", int, 0)
            ),
            "tracing-protocol": _json_getter(tracing, "tracing")("protocol", str, NONE),
            "tracing-endpoint": _json_getter(tracing, "tracing")("endpoint", str, ""),
            "tracing-sampling-rate": repr(
                float(_json_getter(tracing, "tracing")("samplingRate", float, 0.0))
            ),
        }
        try:
            return cls.from_mapping(mapping)
        except ConfigError as e:
            raise ConfigError(f"{ENV}: {e}") from None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ObservabilityConfig:
        """``OBSERVABILITY_CONFIG`` from ``env``; unset or empty: the defaults (request logs
        and tracing off)."""
        raw = env.get(ENV, "").strip()
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
        except ValueError as e:
            raise ConfigError(f"{ENV}: not valid JSON: {e}") from None
        return cls.from_json(data)


# -- helpers ------------------------------------------------------------------------------


def _check_keys(name: str, data: Mapping[str, str], known: frozenset[str]) -> None:
    for key in sorted(data):
        if key != EXAMPLE_KEY and key not in known:
            raise ConfigError(f"{name}: {key}: unknown key")


def _check_template(template: str) -> None:
    """Knative checks that the template parses; zeroserve also checks that it uses only
    what its subset of Go's text/template has (zeroserve/gotemplate.py)."""
    from zeroserve.gotemplate import Template, TemplateError  # only when a map is read

    try:
        Template.parse(template)
    except TemplateError as e:
        raise ConfigError(f"{CONFIG_MAP}: {REQUEST_LOG_TEMPLATE}: {e}") from None


def _interval(r: ValueReader, key: str) -> float:
    nanos = r.read(
        key, parse_duration_nanos, 0, rule="a duration >= 0 (like 60s)", ok=lambda n: n >= 0
    )
    return nanos / _NANOS


def _metrics_protocol(data: Mapping[str, str], prefix: str) -> str:
    key = f"{prefix}protocol"
    protocol = data.get(key, PROMETHEUS)
    if protocol in _OTLP:
        raise ConfigError(
            f"{CONFIG_MAP}: {key}: {protocol} (OTLP export) is not supported by zeroserve, which "
            f"serves Prometheus only; use prometheus or none"
        )
    if protocol not in (PROMETHEUS, NONE):
        raise ConfigError(f"{CONFIG_MAP}: {key}: must be prometheus or none, got {protocol!r}")
    endpoint_key = f"{prefix}endpoint"
    endpoint = data.get(endpoint_key, "")
    if endpoint != "":
        if protocol == NONE:
            raise ConfigError(
                f"{CONFIG_MAP}: {endpoint_key}: must not be set when {key} is none, "
                f"got {endpoint!r}"
            )
        raise ConfigError(
            f"{CONFIG_MAP}: {endpoint_key}: not supported by zeroserve (Prometheus is served on "
            f"each component's metrics port, set by its flags or the queue-proxy's "
            f"USER_METRICS_PORT), got {endpoint!r}"
        )
    return protocol


def _tracing_protocol(data: Mapping[str, str]) -> tuple[str, str]:
    key = "tracing-protocol"
    protocol = data.get(key, NONE)
    if protocol == "grpc":
        raise ConfigError(
            f"{CONFIG_MAP}: {key}: grpc is not supported by zeroserve; use http/protobuf "
            f"(OTLP over HTTP, the collector's port 4318)"
        )
    if protocol not in (NONE, HTTP_PROTOBUF):
        raise ConfigError(f"{CONFIG_MAP}: {key}: must be none or http/protobuf, got {protocol!r}")
    endpoint = data.get("tracing-endpoint", "")
    if protocol == NONE:
        if endpoint != "":
            raise ConfigError(
                f"{CONFIG_MAP}: tracing-endpoint: must not be set when tracing-protocol is "
                f"none, got {endpoint!r}"
            )
        return protocol, ""
    if endpoint == "":
        raise ConfigError(
            f"{CONFIG_MAP}: tracing-endpoint: must be set when tracing-protocol is "
            f"http/protobuf (like http://otel-collector:4318/v1/traces)"
        )
    scheme, sep, rest = endpoint.partition("://")
    if not sep or scheme not in ("http", "https") or not rest or rest.startswith("/"):
        raise ConfigError(
            f"{CONFIG_MAP}: tracing-endpoint: must be an http:// or https:// URL with a "
            f"host, got {endpoint!r}"
        )
    return protocol, endpoint


def _legacy_tracing(data: Mapping[str, str] | None) -> float:
    """``config-tracing`` (Knative 1.14): the sampling rate it sets (0 when none)."""
    data = dict(data or {})
    name = TRACING_CONFIG_MAP
    _check_keys(name, data, _TRACING_KEYS)
    otlp = f"set tracing-protocol: http/protobuf and tracing-endpoint in {CONFIG_MAP} instead"
    backend = data.get("backend", NONE)
    if backend == "zipkin":
        raise ConfigError(f"{name}: backend: zipkin is not supported by zeroserve; {otlp}")
    if backend != NONE:
        raise ConfigError(f"{name}: backend: must be none ({otlp}), got {backend!r}")
    if "zipkin-endpoint" in data:
        raise ConfigError(f"{name}: zipkin-endpoint: not supported by zeroserve; {otlp}")
    r = ValueReader(data, prefix=f"{name}: ")
    debug = r.read("debug", parse_bool, False, rule="true or false")
    rate = r.read(
        "sample-rate", parse_float, 0.0, rule="a number between 0 and 1", ok=lambda x: 0 <= x <= 1
    )
    return 1.0 if debug else rate


def _compact(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v not in ("", 0, 0.0, False)}


def _section(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name, {})
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{ENV}: {name}: must be a JSON object, got {value!r}")
    return value


def _json_getter(data: Mapping[str, Any], section: str = "") -> Callable[[str, type, Any], Any]:
    where = f"{section}." if section else ""

    def get(key: str, kind: type, default: Any) -> Any:
        value = data.get(key, default)
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok:
            raise ConfigError(f"{ENV}: {where}{key}: must be a JSON {kind.__name__}, got {value!r}")
        return value

    return get


def _go_bool(value: bool) -> str:
    return "true" if value else "false"


def _nanos(value: int) -> str:
    return f"{value}ns"


class FollowsObservability:
    """What a proxy (the activator, the queue-proxy) keeps of config-observability: the
    settings in force and the functions to call when they change (its request log, its
    tracing; docs/observability.md). The class sets ``_observability`` and
    ``observability_listeners`` in its ``__init__``."""

    _observability: ObservabilityConfig
    observability_listeners: list[Callable[[ObservabilityConfig], None]]

    @property
    def observability(self) -> ObservabilityConfig:
        """The settings in force (the queue-proxy's OBSERVABILITY_CONFIG at start, the
        activator's from the control plane)."""
        return self._observability

    @observability.setter
    def observability(self, config: ObservabilityConfig) -> None:
        if config == self._observability:
            return
        self._observability = config
        for listener in list(self.observability_listeners):
            try:
                listener(config)
            except Exception:
                _log.exception("applying the observability config failed")
