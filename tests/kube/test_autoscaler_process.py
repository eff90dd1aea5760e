"""``python -m autoscaler`` as a real process against the fake API server."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import aiohttp
import httpx
import pytest

from tests.fakes.kubeapi.fakeapi import FakeKubeAPI
from tests.support.procs import start_listening, stop_process

from .helpers import deployment, revision

pytestmark = pytest.mark.process  # every test here runs a component, helm or kubectl


async def start(kubeconfig: Path, *extra: str) -> tuple[asyncio.subprocess.Process, dict[str, int]]:
    proc, info = await start_listening(
        kubeconfig.with_name("autoscaler.log"),
        "-m",
        "autoscaler",
        "--kubeconfig",
        str(kubeconfig),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--metrics-port",
        "0",
        *extra,
    )
    return proc, {"ws": info["port"], "metrics": info["metrics_port"]}


async def test_activator_stat_for_a_revision_at_zero_scales_its_deployment(
    fake_kube: FakeKubeAPI, kubeconfig: Path
) -> None:
    fake_kube.put(revision("hello-00001"))
    fake_kube.put(deployment("hello-00001", replicas=0))
    fake_kube.put(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "config-autoscaler", "namespace": "knative-serving"},
            "data": {"stable-window": "6s"},
        }
    )
    proc, ports = await start(kubeconfig)
    try:
        async with (
            aiohttp.ClientSession() as s,
            s.ws_connect(f"http://127.0.0.1:{ports['ws']}/") as ws,
        ):
            await ws.send_str(
                json.dumps(
                    [
                        {
                            "namespace": "default",
                            "revision": "hello-00001",
                            "stat": {
                                "pod_name": "activator-0",
                                "average_concurrent_requests": 1,
                                "request_count": 1,
                            },
                        }
                    ]
                )
            )
            d = await fake_kube.wait_for(
                "deployments",
                "default",
                "hello-00001-deployment",
                lambda d: d["spec"]["replicas"] == 1,
                within=10,
            )
            assert d["spec"]["replicas"] == 1
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{ports['metrics']}/metrics")).text
        assert (
            'kn_revision_pods_desired{k8s_namespace_name="default",kn_configuration_name="hello",'
            'kn_revision_name="hello-00001",kn_service_name="hello"} 1.0' in text
        )
        assert "kn_revision_concurrency_target{" in text
    finally:
        assert await stop_process(proc) == 0


async def test_api_outage_is_survived_and_decisions_resume(
    fake_kube: FakeKubeAPI, kubeconfig: Path
) -> None:
    fake_kube.put(revision("hello-00001"))
    fake_kube.put(deployment("hello-00001", replicas=0))
    proc, ports = await start(kubeconfig)
    try:
        await fake_kube.stop()  # the API goes away
        await asyncio.sleep(1.0)
        assert proc.returncode is None  # the autoscaler keeps running on its caches
        await fake_kube.start()  # same port, same objects
        async with (
            aiohttp.ClientSession() as s,
            s.ws_connect(f"http://127.0.0.1:{ports['ws']}/") as ws,
        ):
            for _ in range(3):
                await ws.send_str(
                    json.dumps(
                        [
                            {
                                "namespace": "default",
                                "revision": "hello-00001",
                                "stat": {"pod_name": "a", "average_concurrent_requests": 1},
                            }
                        ]
                    )
                )
                await asyncio.sleep(0.3)
            await fake_kube.wait_for(
                "deployments",
                "default",
                "hello-00001-deployment",
                lambda d: d["spec"]["replicas"] == 1,
                within=15,
            )
    finally:
        assert await stop_process(proc) == 0


async def test_bad_config_flag_exits_1_naming_the_key(kubeconfig: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "autoscaler",
        "--kubeconfig",
        str(kubeconfig),
        "--config",
        "stable-window=3s",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 1
    assert b"stable-window" in err and b"3s" in err


async def test_no_kubeconfig_anywhere_exits_1(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "autoscaler", stderr=asyncio.subprocess.PIPE, env=env
    )
    _, err = await proc.communicate()
    assert proc.returncode == 1
    assert err.startswith(b"autoscaler: ")
