"""``zeroserve up`` as a benchmark subject: the process, its control API, its metrics.

``zeroserve up`` does not publish the Prometheus ports of the activator and of each
replica's queue-proxy: they are found from ``/proc``.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks import procfs
from benchmarks.metrics import scrape
from benchmarks.processes import BenchError, Server, Supervisor, poll
from benchmarks.servers import REPO
from zeroserve.local import access

_UP_LINE = re.compile(
    r"zeroserve is up: ingress (http://\S+), control API (http://\S+), logs in (\S+)"
)
NAMESPACE = "default"
APP = ["python", "examples/helloworld/app.py"]


def config_autoscaler(data: Mapping[str, str]) -> str:
    meta = {"name": "config-autoscaler", "namespace": "knative-serving"}
    return yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data})


def service_manifest(
    name: str,
    env: Mapping[str, str] | None = None,
    container_concurrency: int | None = None,
    annotations: Mapping[str, str] | None = None,
) -> str:
    container: dict[str, Any] = {"image": "ghcr.io/zeroserve/bench:latest", "command": APP}
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    spec: dict[str, Any] = {"containers": [container]}
    if container_concurrency is not None:
        spec["containerConcurrency"] = container_concurrency
    template: dict[str, Any] = {"spec": spec}
    if annotations:
        template["metadata"] = {"annotations": dict(annotations)}
    doc = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"template": template},
    }
    return yaml.safe_dump(doc, sort_keys=False)


class Sampler:
    """Calls ``sample`` every ``every`` seconds in a thread until stopped; a
    ``BenchError`` of one sample is kept in ``errors`` and sampling goes on."""

    def __init__(self, name: str, sample: Callable[[], None], every: float) -> None:
        self.sample, self.every = sample, every
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                self.sample()
            except BenchError as e:
                self.errors.append(str(e))
            self._stop.wait(max(0.0, self.every - (time.monotonic() - t0)))


@dataclass
class LocalSystem:
    server: Server
    ingress: str
    control: str
    logs: Path
    """Children already looked at (a pid is not reused while zeroserve up runs it)."""
    _activator_metrics: int | None = None

    @property
    def ingress_port(self) -> int:
        return int(self.ingress.rsplit(":", 1)[1])

    @classmethod
    def start(cls, sup: Supervisor, files: list[Path], logs: Path) -> LocalSystem:
        argv = [sys.executable, "-m", "zeroserve.cli", "up", *map(str, files)]
        argv += ["--port", "0", "--local-port", "0", "--control-port", "0", "--logs", str(logs)]
        server = sup.start("zeroserve-up", argv, cwd=REPO)

        def up_line() -> re.Match[str] | None:
            with contextlib.suppress(OSError):
                return _UP_LINE.search(server.stdout_path.read_text(errors="replace"))
            return None

        m = poll(up_line, 60, lambda: f"no 'zeroserve is up' line:\n{server.log_tail()}", [server])
        return cls(server, m.group(1), m.group(2), Path(m.group(3)))

    # -- control API ---------------------------------------------------------

    def _call(self, method: str, path: str, body: object | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {
            "Content-Type": "application/json",
            **access.headers(access.find_token(self.control)),
        }
        req = urllib.request.Request(self.control + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            text = e.read().decode(errors="replace")
            raise BenchError(f"control API {method} {path}: {e.code} {text}") from None
        except (OSError, urllib.error.URLError) as e:
            raise BenchError(f"control API {method} {path}: {e}") from None

    def apply(self, manifest: str, file: str) -> None:
        data = self._call("POST", "/v1/apply", {"file": file, "yaml": manifest})
        if "errors" in data:
            raise BenchError("; ".join(data["errors"]))

    def objects(self, kind: str, name: str) -> list[dict[str, Any]]:
        """What ``zeroserve get KIND NAME -o json`` prints (its items)."""
        try:
            got = self._call("GET", f"/v1/objects/{kind}?namespace={NAMESPACE}&name={name}")
            return list(got["items"])
        except BenchError as e:
            if ": 404 " in str(e):
                return []
            raise

    def replicas(self, revision: str) -> tuple[int, int]:
        """(desiredReplicas, actualReplicas) of a revision (-1 while unknown)."""
        items = self.objects("revisions", revision)
        status = items[0].get("status", {}) if items else {}
        return int(status.get("desiredReplicas", -1)), int(status.get("actualReplicas", -1))

    def pods(self, revision: str | None = None) -> list[dict[str, Any]]:
        items = list(self._call("GET", "/v1/pods")["items"])
        return [p for p in items if revision is None or p["revision"] == revision]

    def service_url(self, name: str) -> tuple[str, str]:
        """(host name, latest created revision) of a Service once it has both."""

        def both() -> tuple[str, str] | None:
            svc = self.objects("ksvc", name)
            status = svc[0].get("status", {}) if svc else {}
            url, rev = status.get("url"), status.get("latestCreatedRevisionName")
            return (str(url).split("://", 1)[-1], str(rev)) if url and rev else None

        return poll(both, 30, lambda: f"service {name} has no URL or revision", [self.server], 0.1)

    def wait(self, what: str, predicate: Callable[[], bool], timeout: float) -> float:
        """Poll ``predicate`` until true; returns the seconds waited. A control API
        call that fails or times out (a busy CPU) counts as "not yet"."""
        t0 = time.monotonic()
        last: list[str] = [""]

        def check() -> bool | None:
            try:
                return predicate() or None
            except BenchError as e:
                last[0] = f"; last error: {e}"
                return None

        failure = f"not within {timeout:.0f} s: {what}{{}} (logs: {self.logs})"
        poll(check, timeout, lambda: failure.format(last[0]), [self.server], 0.2)
        return time.monotonic() - t0

    def made_ahead(self) -> bool:
        """Every standby queue-proxy and spare pod network ``zeroserve up`` keeps made
        ahead is ready (``GET /v1/standby``): a cold start then takes one."""
        state = self._call("GET", "/v1/standby")
        qp, net = state.get("queueProxies", {}), state.get("podNetworks", {})
        return bool(
            qp.get("ready", 0) >= qp.get("size", 0) and net.get("ready", 0) >= net.get("spares", 0)
        )

    def at_zero(self, revision: str) -> bool:
        """No replica of ``revision`` (not even a terminating one), desired 0, and no
        replica of any revision terminating (the machine is not busy stopping one)."""
        if self.replicas(revision) != (0, 0):
            return False
        return not any(
            p["revision"] == revision or p["status"] == "Terminating" for p in self.pods()
        )

    def no_replicas(self) -> bool:
        return not self.pods()

    def remove(self, manifests: Mapping[str, str]) -> None:
        """Delete what each manifest ({file: yaml}) names, then wait until every replica is
        gone, so that the next measurement does not share the CPU with replicas shutting
        down. All are deleted before the one wait: waiting after each would wait for the
        replicas of the ones not yet deleted to scale to zero on their own."""
        for file, manifest in manifests.items():
            self._call("POST", "/v1/delete", {"file": file, "yaml": manifest})
        self.wait("every replica gone", self.no_replicas, 120)

    # -- metrics ports ---------------------------------------------------------

    def activator_metrics(self) -> str:
        """The activator's Prometheus text (its port found once, from /proc)."""
        if self._activator_metrics is None:
            for pid in procfs.children(self.server.pid):
                if "activator" in procfs.cmdline(pid)[1:3]:
                    for port in sorted(procfs.listening_ports(pid) - {self.ingress_port}):
                        if "zeroserve_activator_" in (scrape(port) or ""):
                            self._activator_metrics = port
        if self._activator_metrics is None:
            raise BenchError(
                "cannot find the activator's metrics port (no child of zeroserve up "
                "running `-m activator` serves zeroserve_activator_* on /metrics)"
            )
        if (text := scrape(self._activator_metrics)) is None:
            raise BenchError("the activator's /metrics did not answer")
        return text

    def queue_proxy_metrics(self, pod: dict[str, Any]) -> tuple[str, int] | None:
        """(address, port) of a replica's queue-proxy Prometheus listener, as the control
        API lists it (the pod's IP in a pod sandbox); None before it listens."""
        endpoint = pod.get("endpoint") or {}
        port = endpoint.get("metricsPort")
        return (endpoint["host"], int(port)) if port else None
