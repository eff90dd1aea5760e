"""A pod create that Pod Security admission refuses (tests/fakes/kubeapi/podsecurity.py)
shows on the ReplicaSet and the Deployment as Kubernetes shows it: a ``ReplicaFailure``
condition, reason ``FailedCreate``, with the apiserver's message; it goes away once a
create works."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.fakes.kubeapi.fakeapi import FakeKubeAPI

from .controllers import ControllerManager
from .test_controllers import deployment, eventually, live_pods

ENFORCE = "pod-security.kubernetes.io/enforce"


@pytest.fixture
async def api() -> AsyncIterator[FakeKubeAPI]:
    api = FakeKubeAPI()
    manager = ControllerManager(api, root_ca_pem="-----BEGIN CERTIFICATE-----\nx\n")
    await manager.start()
    yield api
    await manager.stop()
    assert manager.errors == []


def label(api: FakeKubeAPI, level: str) -> None:
    ns = api.get("namespaces", None, "default")
    assert ns is not None
    ns["metadata"].setdefault("labels", {})[ENFORCE] = level
    api.put(ns)


def failure(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    conditions = ((obj or {}).get("status") or {}).get("conditions") or ()
    return next((c for c in conditions if c["type"] == "ReplicaFailure"), None)


async def test_a_refused_pod_create_is_a_replica_failure(api: FakeKubeAPI) -> None:
    label(api, "restricted")
    api.put(deployment(1))
    rs_failure = await eventually(
        lambda: failure((api.list("replicasets", "default") or [None])[0])
    )
    assert rs_failure["status"] == "True" and rs_failure["reason"] == "FailedCreate"
    assert rs_failure["message"].startswith('pods "web-')
    assert 'is forbidden: violates PodSecurity "restricted:latest": ' in rs_failure["message"]
    assert (
        'container "app" must set securityContext.allowPrivilegeEscalation=false'
        in (rs_failure["message"])
    )
    d_failure = await eventually(lambda: failure(api.get("deployments", "default", "web")))
    assert (d_failure["status"], d_failure["reason"], d_failure["message"]) == (
        "True",
        "FailedCreate",
        rs_failure["message"],
    )
    assert live_pods(api) == []

    label(api, "privileged")
    await eventually(lambda: len(live_pods(api)) == 1)
    await eventually(lambda: failure(api.list("replicasets", "default")[0]) is None)
    await eventually(lambda: failure(api.get("deployments", "default", "web")) is None)
