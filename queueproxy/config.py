"""Queue-proxy settings from its environment (docs/contracts.md, "Queue-proxy environment")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from zeroserve.envconfig import ConfigError, env_float, env_int, env_port, env_str
from zeroserve.observability import ObservabilityConfig

from .readiness import ProbeSpec, parse_probe

# Upper bound of CONTAINER_CONCURRENCY (config-defaults container-concurrency-max-limit).
MAX_CONTAINER_CONCURRENCY = 1000
# Idle keep-alive connections kept to the app when CC is 0 (upstream's figure).
UNLIMITED_POOL = 1000


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the queue-proxy reads at start; invalid input fails there."""

    namespace: str
    """SERVING_NAMESPACE (required)."""
    service: str
    """SERVING_SERVICE (optional)."""
    configuration: str
    """SERVING_CONFIGURATION (required)."""
    revision: str
    """SERVING_REVISION (required)."""
    pod: str
    """SERVING_POD (required): the name reported in stats."""
    pod_ip: str
    """SERVING_POD_IP (required)."""
    container_concurrency: int
    """CONTAINER_CONCURRENCY (required): requests at once at the app; 0 = no limit."""
    serving_port: int
    """QUEUE_SERVING_PORT (required): proxied traffic."""
    admin_port: int
    """QUEUE_ADMIN_PORT (default 8022): ``/wait-for-drain``."""
    metrics_port: int
    """QUEUE_METRICS_PORT (default 9090): autoscaler stats, JSON."""
    user_metrics_port: int
    """USER_METRICS_PORT (default 9091): Prometheus."""
    user_port: int
    """USER_PORT (required): the app's port on 127.0.0.1."""
    user_protocol: str
    """USER_PROTOCOL (default http1): ``h2c`` when the app's port is named so (HTTP/2
    with prior knowledge to the app, whatever the client spoke)."""
    revision_timeout: float
    """REVISION_TIMEOUT_SECONDS (required): total request timeout; 0 = none."""
    response_start_timeout: float
    """REVISION_RESPONSE_START_TIMEOUT_SECONDS (default 0 = off)."""
    idle_timeout: float
    """REVISION_IDLE_TIMEOUT_SECONDS (default 0 = off)."""
    readiness_probe: ProbeSpec | None
    """SERVING_READINESS_PROBE (JSON Probe; default: none = always ready)."""
    drain_quiet_period: float
    """DRAIN_QUIET_PERIOD_SECONDS (default 30): quiet time before shutdown."""
    bind_address: str
    """QUEUE_BIND_ADDRESS (default 0.0.0.0): where all four listeners bind."""
    app_expected_at: float = 0.0
    """QUEUE_APP_EXPECTED_AT (default 0 = unknown): the Unix time at which the app is
    expected to listen; until then a readiness check retries less often
    (``ReadinessProber.expected_at``). The local runtime sets it from the revision's
    fastest start so far."""
    observability: ObservabilityConfig = field(default_factory=ObservabilityConfig)
    """OBSERVABILITY_CONFIG (Knative's JSON of config-observability; default: request
    logs and tracing off). Locally replaced live through the admin port."""

    @property
    def tracing_resource(self) -> dict[str, str]:
        """The OpenTelemetry resource of its spans, as Knative's queue-proxy
        (knative/serving ``pkg/queue/sharedmain/otel.go``): ``service.name`` is the
        Knative Service (else the Configuration, the Revision), the container is
        ``queue-proxy``, and the Knative names are attributes."""
        resource = {
            "service.name": self.service or self.configuration or self.revision or self.pod,
            "service.instance.id": self.pod,
            "k8s.namespace.name": self.namespace,
            "k8s.pod.name": self.pod,
            "k8s.container.name": "queue-proxy",
            "kn.configuration.name": self.configuration,
            "kn.revision.name": self.revision,
        }
        if self.service:
            resource["kn.service.name"] = self.service
        return resource

    @property
    def pool_size(self) -> int:
        """Idle keep-alive connections kept to the app."""
        return self.container_concurrency or UNLIMITED_POOL

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Parse ``env``; raises ``ConfigError`` naming the first bad variable."""
        user_port = env_port(env, "USER_PORT")
        if user_port == 0:
            raise ConfigError("USER_PORT: must be the app's port (1-65535), got 0")
        timeout = env_float(env, "REVISION_TIMEOUT_SECONDS", minimum=0)
        return cls(
            namespace=env_str(env, "SERVING_NAMESPACE"),
            service=env_str(env, "SERVING_SERVICE", ""),
            configuration=env_str(env, "SERVING_CONFIGURATION"),
            revision=env_str(env, "SERVING_REVISION"),
            pod=env_str(env, "SERVING_POD"),
            pod_ip=env_str(env, "SERVING_POD_IP"),
            container_concurrency=env_int(
                env, "CONTAINER_CONCURRENCY", minimum=0, maximum=MAX_CONTAINER_CONCURRENCY
            ),
            serving_port=env_port(env, "QUEUE_SERVING_PORT"),
            admin_port=env_port(env, "QUEUE_ADMIN_PORT", 8022),
            metrics_port=env_port(env, "QUEUE_METRICS_PORT", 9090),
            user_metrics_port=env_port(env, "USER_METRICS_PORT", 9091),
            user_port=user_port,
            user_protocol=_protocol(env),
            revision_timeout=timeout,
            response_start_timeout=env_float(
                env, "REVISION_RESPONSE_START_TIMEOUT_SECONDS", 0.0, minimum=0
            ),
            idle_timeout=env_float(env, "REVISION_IDLE_TIMEOUT_SECONDS", 0.0, minimum=0),
            readiness_probe=parse_probe(env.get("SERVING_READINESS_PROBE", ""), user_port),
            drain_quiet_period=env_float(env, "DRAIN_QUIET_PERIOD_SECONDS", 30.0, minimum=0),
            bind_address=env_str(env, "QUEUE_BIND_ADDRESS", "0.0.0.0"),
            app_expected_at=env_float(env, "QUEUE_APP_EXPECTED_AT", 0.0, minimum=0),
            observability=ObservabilityConfig.from_env(env),
        )


def _protocol(env: Mapping[str, str]) -> str:
    value = env.get("USER_PROTOCOL", "") or "http1"
    if value not in ("http1", "h2c"):
        raise ConfigError(f"USER_PROTOCOL: must be http1 or h2c (the port's name), got {value!r}")
    return value
