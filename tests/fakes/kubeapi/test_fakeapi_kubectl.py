"""kubectl against the fake API server (skipped where kubectl is not installed).

kubectl exercises what kubernetes_asyncio does not: aggregated discovery fallbacks, server-side
Table printing, client-side apply (strategic merge patch for built-ins, merge patch for custom
resources) and ``kubectl scale`` through the ``/scale`` subresource.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from .fakeapi import FakeKubeAPI

KUBECTL = shutil.which("kubectl")
pytestmark = [
    pytest.mark.process,
    pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed"),
]

MANIFESTS = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: app, image: "img:1"}]
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: hello}
spec:
  template:
    spec:
      containers: [{image: "img:1"}]
"""


async def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    assert KUBECTL is not None
    home = kubeconfig.parent
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "KUBECACHEDIR": str(home / "cache"),
        "HOME": str(home),  # keep kubectl's caches and config out of the real home
    }
    proc = await asyncio.create_subprocess_exec(
        KUBECTL,
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, f"kubectl {' '.join(args)} failed: {err.decode()}"
    return out.decode()


async def test_kubectl_apply_get_scale_delete(fake_kube: FakeKubeAPI, kubeconfig: Path) -> None:
    # No OpenAPI documents are served, so client-side validation has to be off.
    # kubectl validates (strict, its default) with the served OpenAPI v3 documents
    applied = await kubectl(kubeconfig, "apply", "-f", "-", stdin=MANIFESTS)
    assert "deployment.apps/web created" in applied
    assert "service.serving.knative.dev/hello created" in applied

    reapplied = await kubectl(
        kubeconfig,
        "apply",
        "--validate=false",
        "-f",
        "-",
        stdin=MANIFESTS.replace("img:1", "img:2"),
    )
    assert "deployment.apps/web configured" in reapplied
    deployment = fake_kube.get("deployments", "default", "web")
    assert deployment is not None and deployment["metadata"]["generation"] == 2
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "img:2"
    ksvc = fake_kube.get("ksvc", "default", "hello")
    assert (
        ksvc is not None and ksvc["spec"]["template"]["spec"]["containers"][0]["image"] == "img:2"
    )

    table = await kubectl(kubeconfig, "get", "deployments,ksvc")
    # the apiserver's Deployment columns
    assert table.splitlines()[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert "deployment.apps/web" in table and "service.serving.knative.dev/hello" in table

    assert "scaled" in await kubectl(kubeconfig, "scale", "deployment/web", "--replicas=4")
    assert (
        await kubectl(kubeconfig, "get", "deploy", "web", "-o", "jsonpath={.spec.replicas}") == "4"
    )
    scale_call = fake_kube.requests_matching("PATCH", "/deployments/web/scale")[-1]
    assert scale_call.content_type == "application/merge-patch+json"

    await kubectl(kubeconfig, "delete", "ksvc", "hello")
    assert fake_kube.get("ksvc", "default", "hello") is None
