"""``zeroserve up`` with init containers and sidecars, end to end: the init container
runs first and its file is served, the app talks to its sidecar on the sidecar's own
port through the activator, a sidecar's exit restarts the replica, a failing init
container keeps the revision not ready, and a deleted Service leaves no process."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.reliability.procfs import argv, components, descendants

from .support import EXAMPLES, UpProcess, zeroserve_up

FAST = EXAMPLES / "config-autoscaler-fast.yaml"

pytestmark = pytest.mark.timeout(120)

FEATURES = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "config-features", "namespace": "knative-serving"},
    "data": {"kubernetes.podspec-init-containers": "enabled"},
}

INIT = """\
import os
with open("init.txt", "w") as f:  # relative: the init container's workingDir
    f.write(f"{os.environ['GREETING']} (K_REVISION={os.environ.get('K_REVISION')}, "
            f"PORT={os.environ.get('PORT')})")
"""

SIDECAR = """\
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"sidecar of {os.environ['K_REVISION']} on {os.environ['PORT']}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""

APP = """\
import os, time, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GREETING = open(os.environ["INIT_FILE"]).read()  # the init container ran before
SIDECAR = f"http://127.0.0.1:{os.environ['SIDECAR_PORT']}/"

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        for _ in range(200):  # the sidecar starts with the app
            try:
                with urllib.request.urlopen(SIDECAR, timeout=5) as r:
                    side = r.read().decode()
                break
            except OSError:
                time.sleep(0.05)
        body = f"{GREETING} | {side}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _service(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "metadata": {"annotations": {"autoscaling.knative.dev/min-scale": "1"}},
                "spec": spec,
            }
        },
    }


def _write(path: Path, *docs: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


async def _ready(up: UpProcess, revision: str) -> dict[str, Any]:
    rev = await up.get("revisions", revision)
    return next(c for c in rev["status"]["conditions"] if c["type"] == "Ready")


async def _pods(up: UpProcess) -> list[list[str]]:
    return [line.split() for line in (await up.acli("get", "pods")).stdout.splitlines()[1:]]


@pytest.mark.process
async def test_init_container_then_app_and_sidecar_and_nothing_left_after_delete(
    tmp_path: Path,
) -> None:
    for name, text in (("init.py", INIT), ("sidecar.py", SIDECAR), ("app.py", APP)):
        (tmp_path / name).write_text(text)
    work = tmp_path / "work"
    work.mkdir()
    side_port = _free_port()
    features = _write(tmp_path / "features.yaml", FEATURES)
    manifest = _write(
        tmp_path / "multi.yaml",
        _service(
            "multi",
            {
                "initContainers": [
                    {
                        "command": ["python", str(tmp_path / "init.py")],
                        "workingDir": str(work),
                        "env": [{"name": "GREETING", "value": "written before the app"}],
                    }
                ],
                "containers": [
                    {
                        "command": ["python", str(tmp_path / "app.py")],
                        "ports": [{"containerPort": 8080}],
                        "env": [
                            {"name": "INIT_FILE", "value": str(work / "init.txt")},
                            {"name": "SIDECAR_PORT", "value": str(side_port)},
                        ],
                    },
                    {
                        # as the Knative docs' multi-container example: PORT of its own
                        "command": ["python", str(tmp_path / "sidecar.py")],
                        "env": [{"name": "PORT", "value": str(side_port)}],
                    },
                ],
            },
        ),
    )
    async with zeroserve_up(tmp_path, FAST, features, manifest) as up:
        async with httpx.AsyncClient(timeout=60) as client:
            r = await client.get(up.ingress, headers={"Host": "multi.default.localhost"})
        assert (r.status_code, r.text) == (
            200,
            "written before the app (K_REVISION=None, PORT=None)"
            f" | sidecar of multi-00001 on {side_port}",
        )
        rows = await _pods(up)
        assert [row[1:3] for row in rows] == [["3/3", "Running"]]  # app, sidecar, queue-proxy

        # a sidecar that exits takes the whole replica down; it comes back
        family = descendants(up.proc.pid)
        (sidecar,) = [pid for pid in family if str(tmp_path / "sidecar.py") in argv(pid)]
        (app,) = [pid for pid in family if str(tmp_path / "app.py") in argv(pid)]
        os.kill(sidecar, signal.SIGKILL)

        async def restarted() -> bool:
            rows = await _pods(up)
            return [row[1:4] for row in rows] == [["3/3", "Running", "1"]]

        await up.until(restarted, "the replica restarted after its sidecar exited", within=30)
        assert app not in descendants(up.proc.pid)  # the app was restarted with it
        async with httpx.AsyncClient(timeout=60) as client:
            r = await client.get(up.ingress, headers={"Host": "multi.default.localhost"})
        assert r.status_code == 200 and "sidecar of multi-00001" in r.text

        # deleting the Service stops every process of the replica
        async with httpx.AsyncClient(timeout=10) as client:
            ahead = await client.get(f"{up.control}/v1/standby", headers=up.headers)
        standbys = set(ahead.json()["queueProxies"]["pids"])  # no replica's yet
        keep = set(components(up.proc.pid, "activator")) | set(
            components(up.proc.pid, "autoscaler")
        )
        keep |= standbys
        replica = descendants(up.proc.pid) - keep
        assert len(replica) >= 3  # app, sidecar, queue-proxy
        await up.acli("delete", "ksvc", "multi")

        async def gone() -> bool:
            # a standby the pool started after the snapshot above (its refill, 1 s after
            # the restart took one) is no replica's: it is listed as a standby now
            async with httpx.AsyncClient(timeout=10) as client:
                now = await client.get(f"{up.control}/v1/standby", headers=up.headers)
            standby = set(now.json()["queueProxies"]["pids"])
            return not (descendants(up.proc.pid) & replica) - standby

        try:
            await up.until(gone, "no process of the replica left", within=30)
        except AssertionError as e:
            left = descendants(up.proc.pid) & replica
            raise AssertionError(f"{e}; left: {[(pid, argv(pid)) for pid in left]}") from None
        assert "No resources found" in (await up.acli("get", "pods")).stdout


@pytest.mark.process
async def test_a_failing_init_container_keeps_the_revision_not_ready(tmp_path: Path) -> None:
    features = _write(tmp_path / "features.yaml", FEATURES)
    fail = "import sys; print('the schema migration failed'); sys.exit(1)"
    manifest = _write(
        tmp_path / "broken.yaml",
        _service(
            "broken",
            {
                "initContainers": [{"name": "migrate", "command": ["python", "-c", fail]}],
                "containers": [{"command": ["python", "examples/helloworld/app.py"]}],
            },
        ),
    )
    async with zeroserve_up(tmp_path, FAST, features, manifest) as up:
        seen: set[str] = set()
        async with httpx.AsyncClient(timeout=10) as client:

            async def looping() -> bool:
                items = (await client.get(f"{up.control}/v1/pods", headers=up.headers)).json()[
                    "items"
                ]
                seen.update(p["status"] for p in items)
                return "Init:CrashLoopBackOff" in seen

            await up.until(looping, "Init:CrashLoopBackOff", within=30, every=0.05)
        # the first failure restarts at once (the kubelet's back-off), so Init:Error is
        # shown only for a moment (init_status in tests/local/test_containers.py); the
        # second waits 10 s in Init:CrashLoopBackOff

        ready = await _ready(up, "broken-00001")
        assert (ready["status"], ready["reason"]) == ("False", "ExitCode1")
        assert ready["message"].startswith("Init container migrate failed with: ")
        assert "the schema migration failed" in ready["message"]

        async def shown() -> bool:
            rows = await _pods(up)
            return bool(rows) and rows[0][1:3] == ["0/2", "Init:CrashLoopBackOff"]

        await up.until(shown, "get pods shows Init:CrashLoopBackOff", within=30)
        # the app is not started while its init container fails
        assert not any("examples/helloworld/app.py" in argv(p) for p in descendants(up.proc.pid))
