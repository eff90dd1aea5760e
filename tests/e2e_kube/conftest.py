"""A test cluster per module: ``python -m tests.cluster up`` as a process, the chart
installed into it with ``helm install``, and the helpers the walkthrough's commands need.

Needs root (the pods run in network namespaces) and helm/kubectl (``make tools``); skips
with the reason otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from zeroserve.local.sandbox.network import sandbox_unavailable

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"
HELM = str(BIN / "helm") if (BIN / "helm").exists() else shutil.which("helm")
KUBECTL = str(BIN / "kubectl") if (BIN / "kubectl").exists() else shutil.which("kubectl")
SYSTEM = "knative-serving"

_why = sandbox_unavailable()
PYTESTMARK = [
    pytest.mark.process,
    pytest.mark.skipif(_why is not None, reason=f"the test cluster runs pods in netns: {_why}"),
    pytest.mark.skipif(HELM is None or KUBECTL is None, reason="helm/kubectl missing (make tools)"),
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl missing (.ci/run installs it)"),
    pytest.mark.timeout(300),
]


@dataclass
class Cluster:
    process: subprocess.Popen[str]
    directory: Path
    kubeconfig: str
    gateway_port: int
    local_gateway_port: int
    denials_expected: bool = False
    """Set once the chart is being uninstalled (its RBAC goes first)."""
    mesh_unavailable: str | None = None
    """Why the cluster's model of Istio's sidecar mTLS is off (docs/test-cluster.md,
    "The mesh"), or None when it is on."""

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": self.kubeconfig}

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 90
    ) -> str:
        return self._run([KUBECTL, *args], stdin, check, timeout)

    def helm(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        return self._run([HELM, *args], None, check, timeout)

    def _run(self, argv: list[Any], stdin: str | None, check: bool, timeout: float) -> str:
        done = subprocess.run(
            [str(a) for a in argv],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            cwd=REPO,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(map(str, argv))} failed ({done.returncode}):\n{done.stdout}{done.stderr}{self.logs()}"
            )
        return done.stdout + (done.stderr if not check else "")

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def forbidden(self) -> list[dict[str, Any]]:
        """Every request the API server refused with 403 so far (RBAC denials)."""
        path = self.directory / "forbidden.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line]

    def logs(self, lines: int = 30) -> str:
        """The last lines of every pod's containers (for a failing assertion)."""
        out = []
        for log in sorted((self.directory / "pods").glob("*/*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {log.parent.name}/{log.name}\n" + "\n".join(text))
        return "\n".join(out)

    def curl(
        self,
        host: str,
        path: str = "/",
        *,
        local: bool = False,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        """``curl -H "Host: ..." http://$INGRESS``: status and body (its last newline off)."""
        port = self.local_gateway_port if local else self.gateway_port
        argv = ["curl", "-sS", "-m", "60", "-o", "-", "-w", "\n%{http_code}", "-H", f"Host: {host}"]
        for k, v in (headers or {}).items():
            argv += ["-H", f"{k}: {v}"]
        done = subprocess.run(
            [*argv, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, timeout=90
        )
        body, _, code = done.stdout.rpartition("\n")
        return int(code or 0), body.removesuffix("\n")


def manifest(name: str, *, target: str | None = None) -> str:
    """``sed '/command:/d' examples/<name>``: the Knative docs' manifest, as the README
    applies it (the image runs, not a local command)."""
    text = (REPO / "examples" / name).read_text()
    text = "\n".join(line for line in text.splitlines() if "command:" not in line) + "\n"
    if target is not None:
        text = re.sub(r'value: "[^"]*"', f'value: "{target}"', text, count=1)
    return text


def wait_until(check: Any, *, within: float, what: str, every: float = 0.5) -> Any:
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within:g} s: {what}")
        time.sleep(every)


@contextlib.contextmanager
def running_cluster(tmp: Path, *extra: str) -> Iterator[Cluster]:
    """``python -m tests.cluster up``; on exit SIGINT, and every netns it made is gone."""
    before = set(_netns())
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.cluster", "up", "--dir", str(tmp), *extra],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=open(tmp.parent / f"{tmp.name}-cluster.log", "w"),  # noqa: SIM115
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            process.wait(10)
            raise AssertionError(
                "python -m tests.cluster up printed nothing:\n"
                + (tmp.parent / f"{tmp.name}-cluster.log").read_text()
            )
        ready = json.loads(line)
        yield Cluster(
            process,
            tmp,
            ready["kubeconfig"],
            ready["gateway_port"],
            ready["local_gateway_port"],
            mesh_unavailable=ready.get("mesh_unavailable"),
        )
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    left = set(_netns()) - before
    assert not left, f"the test cluster left network namespaces: {sorted(left)}"


def _netns() -> list[str]:
    path = Path("/run/netns")
    return [p.name for p in path.iterdir()] if path.exists() else []


def install(cluster: Cluster, *values: str, chart: str = "charts/zeroserve") -> None:
    """The README's install: helm install, then wait for the components. ``chart``: a
    packaged chart instead of the tree's (test_upgrade.py installs the previous release)."""
    cluster.helm(
        "install",
        "zeroserve",
        chart,
        "-n",
        SYSTEM,
        "--create-namespace",
        "--set",
        "image.repository=zeroserve",
        "--set",
        "image.tag=dev",
        *values,
    )
    cluster.kubectl(
        "-n", SYSTEM, "wait", "deployment", "--all", "--for=condition=Available", "--timeout=90s"
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster")) as c:
        # The uninstall at the end waits for the activators' drain: the default 45 s
        # proves nothing there (test_failures.py checks the drain itself).
        install(c, "--set", "controller.replicas=2", "--set", "activator.drainSeconds=5")
        yield c
        assert_no_denials(c)


@pytest.fixture(autouse=True)
def no_denials(request: pytest.FixtureRequest) -> Iterator[None]:
    """Any 403 from RBAC during a test fails it: the chart's RBAC lacks a rule."""
    yield
    if "cluster" in request.fixturenames:
        assert_no_denials(request.getfixturevalue("cluster"))


def assert_no_denials(cluster: Cluster) -> None:
    if cluster.denials_expected:
        return
    denials = cluster.forbidden()
    assert not denials, "RBAC denied requests (the chart lacks a rule):\n" + "\n".join(
        d["message"] for d in denials
    )
