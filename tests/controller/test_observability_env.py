"""config-observability reaches each revision's queue-proxy as OBSERVABILITY_CONFIG (as
Knative's ``pkg/reconciler/revision/resources/queue.go``); a change rolls the pods."""

from __future__ import annotations

from typing import Any

from controller.app import KubeController
from tests.fakes.kubeapi.fakeapi import FakeKubeAPI
from zeroserve.observability import ObservabilityConfig

from .helpers import HELLO_V1, config_map, put_manifest


def _qp_env(deployment: dict[str, Any] | None) -> dict[str, str]:
    assert deployment is not None
    containers = deployment["spec"]["template"]["spec"]["containers"]
    queue = next(c for c in containers if c["name"] == "queue-proxy")
    return {e["name"]: e.get("value", "") for e in queue["env"]}


async def test_the_queue_proxy_gets_the_config_and_a_change_rolls_the_pods(
    cluster: FakeKubeAPI, controller: KubeController
) -> None:
    put_manifest(cluster, HELLO_V1)
    name = "hello-00001-deployment"
    d = await cluster.wait_for("deployments", "default", name)
    env = _qp_env(d)
    assert ObservabilityConfig.from_env(env) == ObservabilityConfig()
    assert "OBSERVABILITY_CONFIG" in env  # always set, as Knative
    cluster.put(
        config_map(
            "config-observability",
            {
                "logging.enable-request-log": "true",
                "logging.request-log-template": "{{.Request.Method}}",
            },
        )
    )
    want = ObservabilityConfig(enable_request_log=True, request_log_template="{{.Request.Method}}")
    d = await cluster.wait_for(
        "deployments",
        "default",
        name,
        lambda obj: ObservabilityConfig.from_env(_qp_env(obj)) == want,
    )
    assert d is not None
