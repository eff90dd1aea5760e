"""Queue-proxy settings: the env contract, and clear failures at start."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from queueproxy.config import Settings
from queueproxy.readiness import ProbeSpec, parse_probe
from zeroserve.envconfig import ConfigError

GOOD = {
    "SERVING_NAMESPACE": "default",
    "SERVING_CONFIGURATION": "hello",
    "SERVING_REVISION": "hello-00001",
    "SERVING_POD": "hello-00001-deployment-abc",
    "SERVING_POD_IP": "10.0.0.5",
    "CONTAINER_CONCURRENCY": "10",
    "QUEUE_SERVING_PORT": "8012",
    "USER_PORT": "8080",
    "REVISION_TIMEOUT_SECONDS": "300",
}


def test_defaults() -> None:
    s = Settings.from_env(GOOD)
    assert (s.admin_port, s.metrics_port, s.user_metrics_port) == (8022, 9090, 9091)
    assert s.drain_quiet_period == 30.0
    assert (s.response_start_timeout, s.idle_timeout) == (0.0, 0.0)
    assert s.readiness_probe is None
    assert s.app_expected_at == 0.0
    assert s.pool_size == 10
    expected = Settings.from_env({**GOOD, "QUEUE_APP_EXPECTED_AT": "1796606153.25"})
    assert expected.app_expected_at == 1796606153.25
    assert Settings.from_env({**GOOD, "CONTAINER_CONCURRENCY": "0"}).pool_size == 1000


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"SERVING_REVISION": None}, "SERVING_REVISION: required environment variable is not set"),
        ({"USER_PORT": ""}, "USER_PORT: required environment variable is not set"),
        ({"CONTAINER_CONCURRENCY": "ten"}, "CONTAINER_CONCURRENCY: must be an integer, got 'ten'"),
        ({"CONTAINER_CONCURRENCY": "-1"}, "CONTAINER_CONCURRENCY: must be >= 0, got -1"),
        ({"CONTAINER_CONCURRENCY": "1001"}, "CONTAINER_CONCURRENCY: must be <= 1000, got 1001"),
        ({"QUEUE_SERVING_PORT": "70000"}, "QUEUE_SERVING_PORT: must be <= 65535, got 70000"),
        ({"USER_PORT": "0"}, "USER_PORT: must be the app's port"),
        (
            {"REVISION_TIMEOUT_SECONDS": "5m"},
            "REVISION_TIMEOUT_SECONDS: must be a number, got '5m'",
        ),
        (
            {"REVISION_IDLE_TIMEOUT_SECONDS": "nan"},
            "REVISION_IDLE_TIMEOUT_SECONDS: must be a finite number",
        ),
        ({"DRAIN_QUIET_PERIOD_SECONDS": "-3"}, "DRAIN_QUIET_PERIOD_SECONDS: must be >= 0"),
        ({"SERVING_READINESS_PROBE": "{"}, "SERVING_READINESS_PROBE: not valid JSON"),
        ({"QUEUE_APP_EXPECTED_AT": "soon"}, "QUEUE_APP_EXPECTED_AT: must be a number"),
        (
            {"USER_PROTOCOL": "h2"},
            "USER_PROTOCOL: must be http1 or h2c (the port's name), got 'h2'",
        ),
    ],
    ids=[
        "missing",
        "empty",
        "not-int",
        "negative-cc",
        "cc-over-limit",
        "port-range",
        "user-port-zero",
        "timeout-unit",
        "nan",
        "negative-drain",
        "probe-json",
        "expected-at",
        "protocol",
    ],
)
def test_bad_env_names_the_variable(change: dict[str, str | None], message: str) -> None:
    env = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(ConfigError) as e:
        Settings.from_env(env)
    assert str(e.value).startswith(message)


@pytest.mark.process
def test_missing_variable_exits_1_with_one_line() -> None:
    env = {k: v for k, v in GOOD.items() if k != "USER_PORT"}
    p = subprocess.run(
        [sys.executable, "-m", "queueproxy"], env=env, capture_output=True, text=True, timeout=30
    )
    assert p.returncode == 1
    assert p.stderr.strip().splitlines() == [
        "queue-proxy: USER_PORT: required environment variable is not set"
    ]


@pytest.mark.process
def test_port_in_use_exits_1_naming_the_problem() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        env = {
            **GOOD,
            "QUEUE_SERVING_PORT": str(busy),
            "QUEUE_BIND_ADDRESS": "127.0.0.1",
            "QUEUE_ADMIN_PORT": "0",
            "QUEUE_METRICS_PORT": "0",
            "USER_METRICS_PORT": "0",
        }
        p = subprocess.run(
            [sys.executable, "-m", "queueproxy"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert p.returncode == 1
    assert "queue-proxy: cannot listen" in p.stderr


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        ({"tcpSocket": {"port": 0}}, ProbeSpec(kind="tcp", host="127.0.0.1", port=8080)),
        (
            {
                "httpGet": {
                    "path": "/healthz",
                    "port": 8080,
                    "httpHeaders": [{"name": "X-A", "value": "1"}],
                },
                "periodSeconds": 5,
                "timeoutSeconds": 2,
                "successThreshold": 2,
            },
            ProbeSpec(
                kind="http",
                host="127.0.0.1",
                port=8080,
                path="/healthz",
                headers=(("X-A", "1"),),
                period=5,
                timeout=2,
                success_threshold=2,
            ),
        ),
        (
            {"httpGet": {"port": "9000", "scheme": "HTTPS"}},
            ProbeSpec(kind="http", host="127.0.0.1", port=9000, path="/", https=True),
        ),
        ({"grpc": {}}, ProbeSpec(kind="grpc", host="127.0.0.1", port=8080)),
        (
            {
                "grpc": {"port": 9000, "service": "shop.Cart"},
                "periodSeconds": 2,
                "timeoutSeconds": 3,
                "successThreshold": 1,
            },
            ProbeSpec(
                kind="grpc", host="127.0.0.1", port=9000, service="shop.Cart", period=2, timeout=3
            ),
        ),
        (
            {"grpc": {"port": 0, "service": None}},
            ProbeSpec(kind="grpc", host="127.0.0.1", port=8080),
        ),
    ],
    ids=[
        "tcp-user-port",
        "http-full",
        "https-string-port",
        "grpc-user-port",
        "grpc-full",
        "grpc-null-service",
    ],
)
def test_probe_parsing(probe: dict, expected: ProbeSpec) -> None:  # type: ignore[type-arg]
    assert parse_probe(json.dumps(probe), user_port=8080) == expected


@pytest.mark.parametrize(
    ("probe", "message"),
    [
        (
            {"grpc": {"port": "8080"}},
            "SERVING_READINESS_PROBE.grpc.port: must be a port number, got '8080'",
        ),
        (
            {"grpc": {"port": 70000}},
            "SERVING_READINESS_PROBE.grpc.port: must be a port number, got 70000",
        ),
        (
            {"grpc": {"port": True}},
            "SERVING_READINESS_PROBE.grpc.port: must be a port number, got True",
        ),
        (
            {"grpc": {"port": 8080, "service": 5}},
            "SERVING_READINESS_PROBE.grpc.service: must be a string, got 5",
        ),
        ({"grpc": [8080]}, "SERVING_READINESS_PROBE.grpc: must be an object"),
        (
            {"exec": {"command": ["true"]}},
            "SERVING_READINESS_PROBE.exec: exec probes are run by the kubelet",
        ),
        (
            {"httpGet": {"path": "healthz"}},
            "SERVING_READINESS_PROBE.httpGet.path: must start with '/'",
        ),
        (
            {"tcpSocket": {"port": 99999}},
            "SERVING_READINESS_PROBE.tcpSocket.port: must be a port number",
        ),
        ({"periodSeconds": 1}, "SERVING_READINESS_PROBE: needs httpGet, tcpSocket or grpc"),
        (
            {"tcpSocket": {}, "periodSeconds": -1},
            "SERVING_READINESS_PROBE.periodSeconds: must be a number >= 0",
        ),
        (
            {"tcpSocket": {}, "livenessish": 1},
            "SERVING_READINESS_PROBE: unsupported field(s) livenessish",
        ),
        ([1], "SERVING_READINESS_PROBE: must be a JSON object"),
    ],
    ids=[
        "grpc-string-port",
        "grpc-port-range",
        "grpc-bool-port",
        "grpc-service-type",
        "grpc-not-object",
        "exec",
        "relative-path",
        "port-range",
        "no-handler",
        "negative-period",
        "unknown-field",
        "list",
    ],
)
def test_probe_errors_name_the_field(probe: object, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_probe(json.dumps(probe), user_port=8080)
    assert str(e.value).startswith(message)


def test_a_grpc_probe_without_grpcio_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "grpc" else real(name, *a)
    )
    with pytest.raises(ConfigError) as e:
        parse_probe(json.dumps({"grpc": {"port": 8080}}), user_port=8080)
    assert str(e.value) == "SERVING_READINESS_PROBE.grpc: gRPC probes need the grpcio package"


@pytest.mark.process
def test_parsing_a_grpc_probe_does_not_import_grpcio() -> None:
    # The queue-proxy loads grpcio only once it probes over gRPC.
    code = (
        "import json, sys\n"
        "from queueproxy.config import Settings\n"
        "from queueproxy.app import QueueProxy\n"
        f"s = Settings.from_env({{**{GOOD!r}, 'SERVING_READINESS_PROBE': "
        "json.dumps({'grpc': {'port': 8080}})})\n"
        "assert s.readiness_probe.kind == 'grpc'\n"
        "print('grpc' in sys.modules)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert (p.returncode, p.stdout.strip()) == (0, "False"), p.stderr
