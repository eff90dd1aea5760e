"""``zeroserve controller`` and ``python -m autoscaler --leader-elect`` as real processes
against the fake API server, and kubectl against the result."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.kubeapi.fakeapi import FakeKubeAPI
from tests.support.procs import start_listening, stop_process

from .helpers import HELLOWORLD_GO, endpoint_slice, is_ready, put_manifest

pytestmark = pytest.mark.process

KUBECTL = shutil.which(
    "kubectl", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
)
REV = "helloworld-go-00001"


async def start(kubeconfig: Path, *args: str) -> tuple[asyncio.subprocess.Process, dict[str, Any]]:
    """Start a process (stderr next to the kubeconfig); wait for its JSON "up" line."""
    return await start_listening(kubeconfig.with_name(f"{args[1]}.log"), *args)


def controller_args(kubeconfig: Path) -> tuple[str, ...]:
    return (
        "-m",
        "zeroserve.cli",
        "controller",
        "--kubeconfig",
        str(kubeconfig),
        "--host",
        "127.0.0.1",
        "--metrics-port",
        "0",
        "--queue-proxy-image",
        "zeroserve:test",
    )


async def test_zeroserve_controller_process(cluster: FakeKubeAPI, kubeconfig: Path) -> None:
    proc, info = await start(kubeconfig, *controller_args(kubeconfig))
    try:
        assert info["controller"] == "running" and info["leader_elect"] is True
        put_manifest(cluster, HELLOWORLD_GO)
        deployment = await cluster.wait_for(
            "deployments", "default", f"{REV}-deployment", within=10
        )
        assert deployment is not None
        assert deployment["spec"]["template"]["spec"]["containers"][1]["image"] == "zeroserve:test"
        cluster.put(endpoint_slice(REV, ("pod-1", "10.0.0.7")))
        await cluster.wait_for("ksvc", "default", "helloworld-go", is_ready, within=10)
        lease = cluster.get("leases", "knative-serving", "zeroserve-controller")
        assert lease is not None and lease["spec"]["holderIdentity"]
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"http://127.0.0.1:{info['metrics_port']}/metrics")).text
            ready = await client.get(f"http://127.0.0.1:{info['metrics_port']}/readyz")
        assert ready.status_code == 200
        assert "zeroserve_controller_leader 1.0" in metrics
        assert 'zeroserve_controller_reconciles_total{result="ok"}' in metrics
        assert (
            'zeroserve_controller_writes_total{resource="deployments.apps",verb="create"} 1.0'
            in metrics
        )
    finally:
        assert await stop_process(proc) == 0
    lease = cluster.get("leases", "knative-serving", "zeroserve-controller")
    assert lease is not None and not lease["spec"].get("holderIdentity")  # released on exit


async def test_a_bad_kubeconfig_is_one_line_and_exit_1(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "zeroserve.cli",
        "controller",
        "--kubeconfig",
        str(tmp_path / "missing"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1 and out == b""
    assert (
        err.decode().strip().splitlines()[-1].startswith("controller: kubeconfig ")
        and "no such file" in err.decode()
    )


async def kubectl(kubeconfig: Path, *args: str) -> str:
    assert KUBECTL is not None
    home = kubeconfig.parent
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "HOME": str(home),
        "KUBECACHEDIR": str(home / "cache"),
    }
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    return out.decode()


@pytest.mark.skipif(
    KUBECTL is None, reason="kubectl is not installed (neither in the venv nor on PATH)"
)
async def test_kubectl_apply_and_get_ksvc(
    cluster: FakeKubeAPI, kubeconfig: Path, tmp_path: Path
) -> None:
    manifest = tmp_path / "helloworld.yaml"
    manifest.write_text(HELLOWORLD_GO)
    proc, _ = await start(kubeconfig, *controller_args(kubeconfig), "--no-leader-elect")
    try:
        out = await kubectl(kubeconfig, "apply", "--validate=false", "-f", str(manifest))
        assert out.strip() == "service.serving.knative.dev/helloworld-go created"
        await cluster.wait_for("deployments", "default", f"{REV}-deployment", within=10)
        cluster.put(endpoint_slice(REV, ("pod-1", "10.0.0.7")))
        await cluster.wait_for("ksvc", "default", "helloworld-go", is_ready, within=10)
        listed = await kubectl(kubeconfig, "get", "ksvc")
        assert listed.splitlines()[1].split()[0] == "helloworld-go"
        columns = (
            "custom-columns=NAME:.metadata.name,URL:.status.url,"
            "LATESTREADY:.status.latestReadyRevisionName,"
            'READY:.status.conditions[?(@.type=="Ready")].status'
        )
        table = await kubectl(kubeconfig, "get", "ksvc", "-o", columns)
        assert table.splitlines()[1].split() == [
            "helloworld-go",
            "http://helloworld-go.default.svc.cluster.local",
            REV,
            "True",
        ]
        revisions = await kubectl(kubeconfig, "get", "revisions", "-o", "name")
        assert revisions.split() == [f"revision.serving.knative.dev/{REV}"]
    finally:
        assert await stop_process(proc) == 0


async def test_autoscaler_leader_election(cluster: FakeKubeAPI, kubeconfig: Path) -> None:
    args = (
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
        "--leader-elect",
    )
    first, info = await start(kubeconfig, *args)
    standby = None
    try:
        assert info["autoscaler"] == "listening"
        lease = cluster.get("leases", "knative-serving", "zeroserve-autoscaler")
        assert lease is not None and lease["spec"]["holderIdentity"]
        with kubeconfig.with_name("standby.log").open("wb") as err:
            standby = await asyncio.create_subprocess_exec(
                sys.executable, *args, stdout=asyncio.subprocess.PIPE, stderr=err
            )
        assert standby.stdout is not None
        with pytest.raises(TimeoutError):  # a standby does not listen while the other leads
            await asyncio.wait_for(standby.stdout.readline(), 1.5)
        assert await stop_process(first) == 0
        line = await asyncio.wait_for(standby.stdout.readline(), 10)
        assert json.loads(line)["autoscaler"] == "listening"
    finally:
        await stop_process(first)
        if standby is not None:
            assert await stop_process(standby) == 0
