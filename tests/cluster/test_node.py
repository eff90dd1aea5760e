"""The node agent running pods for real (root: each pod in its own network namespace):
the in-cluster environment, restarts, liveness, preStop hooks and grace periods."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from zeroserve.local.sandbox.network import sandbox_unavailable

from .cluster import TestCluster
from .controllers import admit_pod

_why = sandbox_unavailable()
pytestmark = [
    pytest.mark.process,
    pytest.mark.skipif(_why is not None, reason=f"pods run in network namespaces: {_why}"),
    pytest.mark.timeout(90),
]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[TestCluster]:
    c = TestCluster(tmp_path, with_gateway=False)
    await c.start()
    try:
        yield c
    finally:
        await c.stop()
    assert not any(Path("/run/netns").glob(f"zs-{c.sandbox.state.run_id}-*")) if c.sandbox else True


def pod(name: str, script: str, **spec: Any) -> dict[str, Any]:
    container = {"name": "app", "image": "zeroserve:dev", "command": ["python", "-c", script]}
    container.update(spec.pop("container", {}))
    return admit_pod(
        {
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [container], **spec},
        }
    )


def create(cluster: TestCluster, obj: dict[str, Any]) -> None:
    assert cluster.api is not None
    cluster.api.store.create(cluster.api.resource("pods"), "default", obj)


async def until(check: Any, within: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.1)


def status(cluster: TestCluster, name: str) -> dict[str, Any]:
    assert cluster.api is not None
    obj = cluster.api.get("pods", "default", name)
    return (obj or {}).get("status") or {}


def log(cluster: TestCluster, name: str) -> str:
    path = cluster.directory / "pods" / f"default_{name}" / "app.log"
    return path.read_text() if path.exists() else ""


async def test_a_pod_gets_its_ip_names_and_service_account(cluster: TestCluster) -> None:
    script = (
        "import json, os, socket\n"
        "sa = '/var/run/secrets/kubernetes.io/serviceaccount'\n"
        "print(json.dumps({'host': os.environ.get('KUBERNETES_SERVICE_HOST'),\n"
        "  'files': sorted(f for f in os.listdir(sa) if not f.startswith('..')),\n"
        "  'ns': open(sa + '/namespace').read(),\n"
        "  'api': socket.gethostbyname('kubernetes.default.svc.cluster.local'),\n"
        "  'me': socket.gethostbyname(socket.gethostname())}), flush=True)\n"
        "import time; time.sleep(60)\n"
    )
    create(cluster, pod("facts", script))
    line = await until(lambda: log(cluster, "facts").strip(), what="the pod printed its facts")
    assert line.startswith("{"), line
    facts = json.loads(line.splitlines()[0])
    assert cluster.services is not None
    assert facts["host"] == facts["api"] == cluster.services.api_ip
    assert facts["files"] == ["ca.crt", "namespace", "token"]
    assert facts["ns"] == "default"
    st = await until(lambda: status(cluster, "facts").get("podIP") and status(cluster, "facts"))
    assert facts["me"] == st["podIP"] and st["podIP"].startswith("198.18.")
    assert st["phase"] == "Running"


async def test_a_crashing_container_restarts_with_back_off(cluster: TestCluster) -> None:
    create(cluster, pod("crash", "import sys; print('up', flush=True); sys.exit(3)"))
    st = await until(
        lambda: (
            (s := status(cluster, "crash")).get("containerStatuses")
            and s["containerStatuses"][0]["restartCount"] >= 1
            and s
        ),
        what="a restart",
    )
    c = st["containerStatuses"][0]
    assert c["lastState"]["terminated"]["exitCode"] == 3
    assert c["lastState"]["terminated"]["reason"] == "Error"
    assert (
        log(cluster, "crash").count("up") >= 2
        or c["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff"
    )


async def test_liveness_failure_restarts_the_container(cluster: TestCluster) -> None:
    # serves /healthz for 2 s, then stops answering
    script = (
        "import http.server, threading, time, os\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "  def do_GET(self):\n"
        "    self.send_response(200 if time.time() - START < 2 else 500); self.end_headers()\n"
        "  def log_message(self, *a): pass\n"
        "START = time.time()\n"
        "print('start', flush=True)\n"
        "http.server.HTTPServer(('', 8080), H).serve_forever()\n"
    )
    probe = {
        "httpGet": {"path": "/healthz", "port": "http"},
        "periodSeconds": 1,
        "failureThreshold": 2,
    }
    create(
        cluster,
        pod(
            "sick",
            script,
            container={"ports": [{"name": "http", "containerPort": 8080}], "livenessProbe": probe},
        ),
    )
    await until(
        lambda: (
            (s := status(cluster, "sick")).get("containerStatuses")
            and s["containerStatuses"][0]["restartCount"] >= 1
        ),
        within=40,
        what="the kubelet restarted the container its liveness probe failed",
    )
    await until(lambda: log(cluster, "sick").count("start") >= 2, what="it started again")


async def test_delete_runs_pre_stop_then_sigterm_then_sigkill_after_grace(
    cluster: TestCluster, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    script = (
        "import signal, time\n"
        f"def term(*a): open({str(marks)!r}, 'a').write('term\\n')\n"
        "signal.signal(signal.SIGTERM, term)\n"
        "print('ready', flush=True)\n"
        "while True: time.sleep(0.1)\n"  # ignores SIGTERM: only SIGKILL ends it
    )
    hook = {"exec": {"command": ["python", "-c", f"open({str(marks)!r}, 'a').write('preStop\\n')"]}}
    create(
        cluster,
        pod(
            "slow",
            script,
            terminationGracePeriodSeconds=2,
            container={"lifecycle": {"preStop": hook}},
        ),
    )
    await until(lambda: "ready" in log(cluster, "slow"), what="the container runs")
    assert cluster.api is not None
    started = time.monotonic()
    cluster.api.delete("pods", "default", "slow")
    terminating = cluster.api.get("pods", "default", "slow")
    assert terminating is not None and terminating["metadata"].get("deletionTimestamp")
    assert terminating["metadata"]["deletionGracePeriodSeconds"] == 2
    await until(lambda: cluster.api.get("pods", "default", "slow") is None, what="the pod is gone")
    took = time.monotonic() - started
    assert marks.read_text().splitlines() == ["preStop", "term"]
    assert took >= 1.5, f"killed after {took:.1f} s, before its grace period of 2 s"


def test_image_map_says_what_an_image_runs(tmp_path: Path) -> None:
    from .node import ImageMap

    images = ImageMap.default()
    argv = images.argv("ghcr.io/knative/helloworld-go:latest", (), ())
    assert argv[0] == sys.executable and argv[1].endswith("examples/helloworld/app.py")
    assert images.argv("zeroserve:0.1.0", ("python", "-m", "activator"), ("--x",)) == [
        sys.executable,
        "-m",
        "activator",
        "--x",
    ]
    with pytest.raises(ValueError, match="no entry in the image map"):
        images.argv("registry.example.com/other:1", (), ())
    extra = tmp_path / "images.yaml"
    extra.write_text('"registry.example.com/other:*": ["python", "app.py"]\n')
    assert images.with_file(extra).argv("registry.example.com/other:1", (), ()) == [
        sys.executable,
        "app.py",
    ]
    extra.write_text("just text\n")
    with pytest.raises(ValueError, match="--image-map"):
        images.with_file(extra)
