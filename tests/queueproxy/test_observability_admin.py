"""The queue-proxy's observability config: OBSERVABILITY_CONFIG at start, replaced live
on its admin port (``GET``/``PUT /observability``), listeners told of each change."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from queueproxy.app import QueueProxy
from queueproxy.config import Settings
from tests.support.apps import run_app
from tests.support.procs import qp_env, queue_proxy
from zeroserve.envconfig import ConfigError
from zeroserve.observability import ENV, ObservabilityConfig

ON = ObservabilityConfig(enable_request_log=True, request_log_template="{{.Request.Method}}")


def test_the_env_gives_the_config_at_start() -> None:
    assert Settings.from_env(qp_env(1)).observability == ObservabilityConfig()
    assert Settings.from_env(qp_env(1, **{ENV: ON.to_env()})).observability == ON


def test_a_bad_env_stops_the_start_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^OBSERVABILITY_CONFIG: not valid JSON"):
        Settings.from_env(qp_env(1, **{ENV: "{"}))


def test_listeners_hear_each_change_once() -> None:
    qp = QueueProxy(Settings.from_env(qp_env(1)))
    heard: list[ObservabilityConfig] = []
    qp.observability_listeners.append(heard.append)
    qp.observability = ObservabilityConfig()  # the same: nothing to tell
    qp.observability = ON
    qp.observability = ON
    assert heard == [ON] and qp.observability == ON


@pytest.mark.process
async def test_the_admin_port_serves_and_replaces_the_config(tmp_path: Path) -> None:
    async with run_app() as (app_port, _), queue_proxy(app_port, tmp_path) as qp:
        url = qp.admin_url("/observability")
        async with httpx.AsyncClient() as client:
            r = await client.get(url)
            assert r.status_code == 200
            assert ObservabilityConfig.from_json(r.json()) == ObservabilityConfig()
            r = await client.put(url, content=ON.to_env())
            assert r.status_code == 200, r.text
            assert ObservabilityConfig.from_json(r.json()) == ON
            r = await client.get(url)
            assert ObservabilityConfig.from_json(r.json()) == ON
            bad = {"tracing": {"protocol": "grpc", "endpoint": "http://c:4317"}}
            r = await client.put(url, content=json.dumps(bad))
            assert r.status_code == 400
            assert "config-observability: tracing-protocol: grpc" in r.text
            r = await client.put(url, content=b"{")
            assert r.status_code == 400 and "not JSON" in r.text
            r = await client.get(url)  # a refused one changes nothing
            assert ObservabilityConfig.from_json(r.json()) == ON
