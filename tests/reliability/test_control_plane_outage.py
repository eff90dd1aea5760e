"""The control plane goes away; the activator keeps serving with the last state it had.

``python -m activator`` runs in front of a real queue-proxy and app, following either a
fake ``zeroserve up`` control API (local mode) or the fake Kubernetes API server; the
test then stops that control plane and keeps sending requests.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.kubeapi.fakeapi import FakeKubeAPI
from tests.kube.helpers import endpoint, endpoint_slice, revision
from tests.support.apps import run_app
from tests.support.procs import activator_process, queue_proxy
from zeroserve.topology import Endpoint, RevisionKey

from .support import FakeControl, snapshot, until

pytestmark = pytest.mark.process

HOST = "hello.default.example.com"
KEY = RevisionKey("default", "hello-00001")
OUTAGE = 3.0  # seconds of requests with the control plane down


async def _serves(client: httpx.AsyncClient, url: str, host: str = HOST, n: int = 1) -> list[int]:
    """``n`` requests, each on a new connection (nothing rides on an old keep-alive)."""
    return [
        (
            await client.get(url + "/hello", headers={"Host": host, "Connection": "close"})
        ).status_code
        for _ in range(n)
    ]


async def _through_outage(client: httpx.AsyncClient, url: str) -> list[int]:
    statuses: list[int] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + OUTAGE
    while loop.time() < end:
        statuses += await _serves(client, url)
        await asyncio.sleep(0.05)
    return statuses


@pytest.mark.timeout(60)
async def test_local_activator_keeps_serving_when_the_control_api_is_down(tmp_path: Path) -> None:
    async with run_app() as (app_port, app), queue_proxy(app_port, tmp_path) as qp:
        ep = Endpoint(
            name="hello-pod", host="127.0.0.1", port=qp.port, stats_port=qp.ports["metrics_port"]
        )
        control = FakeControl(snapshot(1, {HOST: KEY}, {KEY: [ep]}))
        async with (
            control,
            activator_process(tmp_path / "activator.log", "--control", control.url) as act,
            httpx.AsyncClient(timeout=10) as client,
        ):
            assert await _serves(client, act.url, n=3) == [200] * 3
            await control.stop()
            statuses = await _through_outage(client, act.url)
            assert statuses and set(statuses) == {200}, statuses
            # It noticed the outage (and keeps trying) rather than never having asked.
            assert "unreachable (keeping the last state)" in act.log_text()
            # The control API comes back with a new route: followed again.
            control.publish(snapshot(2, {HOST: KEY, "other.default.example.com": KEY}, {KEY: [ep]}))
            await control.start()

            async def other_routed() -> bool:
                return await _serves(client, act.url, host="other.default.example.com") == [200]

            await until(other_routed, "the new route after the outage", 15, every=0.2)
            assert await _serves(client, act.url) == [200]
            assert act.proc.returncode is None
        assert app.requests >= len(statuses) + 5


def _knative_route(rev: str) -> dict[str, Any]:
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Route",
        "metadata": {"name": "hello", "namespace": "default"},
        "spec": {"traffic": [{"configurationName": "hello", "percent": 100}]},
        "status": {"url": f"http://{HOST}", "traffic": [{"revisionName": rev, "percent": 100}]},
    }


@pytest.mark.timeout(60)
async def test_kubernetes_activator_keeps_serving_when_the_api_server_is_down(
    tmp_path: Path,
) -> None:
    async with (
        run_app() as (app_port, app),
        queue_proxy(app_port, tmp_path) as qp,
        FakeKubeAPI(bookmark_interval=0.2) as api,
    ):
        api.put(revision("hello-00001"))
        api.put(_knative_route("hello-00001"))
        api.put(
            endpoint_slice(
                "hello-00001-private-a",
                "hello-00001",
                [endpoint("hello-pod", "127.0.0.1")],
                ports={"http": qp.port, "http-autometric": qp.ports["metrics_port"]},
            )
        )
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        async with (
            activator_process(tmp_path / "activator.log", "--kubeconfig", str(kubeconfig)) as act,
            httpx.AsyncClient(timeout=10) as client,
        ):
            assert await _serves(client, act.url, n=3) == [200] * 3
            await api.stop()
            statuses = await _through_outage(client, act.url)
            assert statuses and set(statuses) == {200}, statuses
            await api.start()  # same port, same objects: the watches resume
            await asyncio.sleep(0.5)
            assert await _serves(client, act.url, n=3) == [200] * 3
            assert act.proc.returncode is None
        assert app.requests >= len(statuses) + 6
