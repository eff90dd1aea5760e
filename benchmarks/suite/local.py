"""``zeroserve up`` as a benchmark subject: the process, its control API, its metrics.

``LocalSystem`` starts ``python -m zeroserve.cli up --port 0 --control-port 0
--logs DIR`` under the benchmark's ``Supervisor`` (pinned to the server CPU:
the activator, the autoscaler and every replica it starts inherit that), reads
the ingress and control URLs from its "zeroserve is up: ..." line, and talks
to the control API the way the CLI does (``POST /v1/apply``, ``GET
/v1/objects/revisions`` = ``zeroserve get revisions -o json``, ``GET
/v1/pods`` with each replica's start timestamps).

The Prometheus ports of the activator and of each replica's queue-proxy are
not published by ``zeroserve up``; they are found from ``/proc``: the
children of the ``zeroserve up`` process (``-m activator``; ``-m queueproxy``
with ``SERVING_POD`` in its environment), their listening sockets (socket
inodes of ``/proc/PID/fd`` in ``/proc/net/tcp``), and the one port whose
``/metrics`` has the component's metric names.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import _common as c

REPO = Path(__file__).resolve().parents[2]
_UP_LINE = re.compile(
    r"zeroserve is up: ingress (http://\S+), control API (http://\S+), logs in (\S+)"
)
NAMESPACE = "default"


def config_autoscaler(data: Mapping[str, str]) -> str:
    """A ``config-autoscaler`` ConfigMap manifest."""
    lines = [
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata:",
        "  name: config-autoscaler",
        "  namespace: knative-serving",
        "data:",
    ]
    lines += [f'  {k}: "{v}"' for k, v in data.items()]
    return "\n".join(lines) + "\n"


def service_manifest(
    name: str,
    command: list[str],
    env: Mapping[str, str] | None = None,
    container_concurrency: int | None = None,
    annotations: Mapping[str, str] | None = None,
) -> str:
    """A ``serving.knative.dev/v1`` Service running ``command`` (paths relative to the repository)."""
    lines = [
        "apiVersion: serving.knative.dev/v1",
        "kind: Service",
        "metadata:",
        f"  name: {name}",
        f"  namespace: {NAMESPACE}",
        "spec:",
        "  template:",
    ]
    if annotations:
        lines += ["    metadata:", "      annotations:"]
        lines += [f'        {k}: "{v}"' for k, v in annotations.items()]
    lines += ["    spec:"]
    if container_concurrency is not None:
        lines += [f"      containerConcurrency: {container_concurrency}"]
    lines += [
        "      containers:",
        "        - image: ghcr.io/zeroserve/bench:latest",
        f"          command: {json.dumps(command)}",
    ]
    if env:
        lines += ["          env:"]
        for k, v in env.items():
            lines += [f"            - name: {k}", f"              value: {json.dumps(v)}"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ /proc


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    return int(text[text.rindex(")") + 2 :].split()[1])


def children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid``."""
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and _ppid(int(e)) == pid]


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def environ(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return {}
    out = {}
    for item in raw.split(b"\0"):
        k, sep, v = item.partition(b"=")
        if sep:
            out[k.decode(errors="replace")] = v.decode(errors="replace")
    return out


def listening_ports(pid: int) -> set[int]:
    """TCP ports ``pid`` listens on (its socket inodes in /proc/net/tcp{,6}, state LISTEN)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(int(link[8:-1]))
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            next(f, None)
            for line in f:
                parts = line.split()
                if len(parts) > 9 and parts[3] == "0A" and int(parts[9]) in inodes:
                    ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports


def scrape(port: int, timeout: float = 2.0) -> str | None:
    """The text of ``http://127.0.0.1:port/metrics``, or None."""
    try:
        status, body = c.http_get(f"http://127.0.0.1:{port}/metrics", timeout=timeout)
    except (OSError, urllib.error.URLError):
        return None
    return body.decode(errors="replace") if status == 200 else None


# ------------------------------------------------------------------ the system


@dataclass
class LocalSystem:
    """A running ``zeroserve up`` and what the benchmarks read from it."""

    server: c.Server
    ingress: str
    control: str
    logs: Path
    argv: list[str]
    _qp_ports: dict[str, int] = field(default_factory=dict)
    _qp_pids: dict[str, int] = field(default_factory=dict)
    _seen: set[int] = field(default_factory=set)
    """Children already looked at (a pid is not reused while zeroserve up runs it)."""
    _activator_metrics: int | None = None

    @property
    def ingress_port(self) -> int:
        return int(self.ingress.rsplit(":", 1)[1])

    @property
    def pid(self) -> int:
        return self.server.pid

    # -- start ---------------------------------------------------------------

    @classmethod
    def start(
        cls,
        sup: c.Supervisor,
        workdir: Path,
        files: list[Path],
        logs: Path | None = None,
        timeout: float = 60.0,
    ) -> LocalSystem:
        logs = logs or workdir / "zeroserve-logs"
        argv = [
            sys.executable,
            "-m",
            "zeroserve.cli",
            "up",
            *map(str, files),
            "--port",
            "0",
            "--control-port",
            "0",
            "--logs",
            str(logs),
        ]
        server = sup.start("zeroserve-up", argv, cwd=REPO)
        deadline = time.monotonic() + timeout
        while True:
            server.ensure_alive()
            with contextlib.suppress(OSError):
                m = _UP_LINE.search(server.stdout_path.read_text(errors="replace"))
                if m:
                    return cls(server, m.group(1), m.group(2), Path(m.group(3)), argv)
            if time.monotonic() > deadline:
                raise c.BenchError(
                    f"zeroserve up printed no 'zeroserve is up' line in "
                    f"{timeout:.0f} s:\n{server.log_tail()}"
                )
            time.sleep(0.05)

    # -- control API ---------------------------------------------------------

    def _call(
        self, method: str, path: str, body: object | None = None, timeout: float = 10.0
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.control + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            text = e.read().decode(errors="replace")
            raise c.BenchError(f"control API {method} {path}: {e.code} {text}") from None
        except (OSError, urllib.error.URLError) as e:
            raise c.BenchError(f"control API {method} {path}: {e}") from None

    def apply(self, manifest: str, file: str = "bench.yaml") -> list[str]:
        data = self._call("POST", "/v1/apply", {"file": file, "yaml": manifest})
        if "errors" in data:
            raise c.BenchError("; ".join(data["errors"]))
        return list(data.get("lines", []))

    def delete(self, manifest: str, file: str = "bench.yaml") -> list[str]:
        return list(
            self._call("POST", "/v1/delete", {"file": file, "yaml": manifest}).get("lines", [])
        )

    def objects(self, kind: str, name: str | None = None) -> list[dict[str, Any]]:
        """What ``zeroserve get KIND [NAME] -o json`` prints (its items)."""
        query = f"?namespace={NAMESPACE}" + (f"&name={name}" if name else "")
        try:
            return list(self._call("GET", f"/v1/objects/{kind}{query}")["items"])
        except c.BenchError as e:
            if ": 404 " in str(e):
                return []
            raise

    def revision(self, name: str) -> dict[str, Any] | None:
        items = self.objects("revisions", name)
        return items[0] if items else None

    def replicas(self, revision: str) -> tuple[int, int]:
        """(desiredReplicas, actualReplicas) of a revision (-1 while unknown)."""
        rev = self.revision(revision)
        status = (rev or {}).get("status", {})
        return int(status.get("desiredReplicas", -1)), int(status.get("actualReplicas", -1))

    def pods(self, revision: str | None = None) -> list[dict[str, Any]]:
        items = list(self._call("GET", "/v1/pods")["items"])
        return [p for p in items if revision is None or p["revision"] == revision]

    def service_url(self, name: str, timeout: float = 30.0) -> tuple[str, str]:
        """(host name, latest created revision) of a Service once it has both."""
        deadline = time.monotonic() + timeout
        while True:
            svc = self.objects("ksvc", name)
            status = svc[0].get("status", {}) if svc else {}
            url, rev = status.get("url"), status.get("latestCreatedRevisionName")
            if url and rev:
                return str(url).split("://", 1)[-1], str(rev)
            if time.monotonic() > deadline:
                raise c.BenchError(f"service {name} has no URL or revision after {timeout:.0f} s")
            self.server.ensure_alive()
            time.sleep(0.1)

    def wait(
        self, what: str, predicate: Callable[[], bool], timeout: float, every: float = 0.2
    ) -> float:
        """Poll ``predicate`` until true; returns the seconds waited. A control API
        call that fails or times out (a busy CPU) counts as "not yet"."""
        t0 = time.monotonic()
        last = ""
        while True:
            try:
                if predicate():
                    return time.monotonic() - t0
            except c.BenchError as e:
                last = f"; last error: {e}"
            if time.monotonic() - t0 > timeout:
                raise c.BenchError(f"not within {timeout:.0f} s: {what}{last} (logs: {self.logs})")
            self.server.ensure_alive()
            time.sleep(every)

    def at_zero(self, revision: str) -> bool:
        """No replica of ``revision`` (not even a terminating one), desired 0, and no
        replica of any revision terminating (the machine is not busy stopping one)."""
        desired, actual = self.replicas(revision)
        if desired != 0 or actual != 0:
            return False
        pods = self.pods()
        return not any(p["revision"] == revision or p["status"] == "Terminating" for p in pods)

    def no_replicas(self) -> bool:
        """No replica of any revision, not even a terminating one."""
        return not self.pods()

    def remove(self, manifest: str, file: str, timeout: float = 120.0) -> None:
        """Delete what ``manifest`` names and wait until every replica is gone, so that
        the next measurement does not share the CPU with replicas shutting down."""
        self.delete(manifest, file)
        self.wait("every replica gone", self.no_replicas, timeout)

    def ready_with(self, revision: str, n: int) -> bool:
        return self.replicas(revision)[1] >= n

    # -- metrics ports ---------------------------------------------------------

    def activator_metrics_port(self) -> int:
        """The activator's Prometheus port (found once, from /proc)."""
        if self._activator_metrics is not None:
            return self._activator_metrics
        for pid in children(self.pid):
            if "activator" not in cmdline(pid)[1:3]:
                continue
            for port in sorted(listening_ports(pid) - {self.ingress_port}):
                text = scrape(port)
                if text is not None and "zeroserve_activator_" in text:
                    self._activator_metrics = port
                    return port
        raise c.BenchError(
            "cannot find the activator's metrics port (no child of zeroserve up "
            "running `-m activator` serves zeroserve_activator_* on /metrics)"
        )

    def activator_metrics(self) -> str:
        text = scrape(self.activator_metrics_port())
        if text is None:
            raise c.BenchError("the activator's /metrics did not answer")
        return text

    def queue_proxy_port(self, pod: dict[str, Any]) -> int | None:
        """The Prometheus port of a replica's queue-proxy, or None (not found yet)."""
        name = pod["name"]
        if name in self._qp_ports:
            return self._qp_ports[name]
        endpoint = pod.get("endpoint") or {}
        if not endpoint:
            return None
        pid = self._qp_pids.get(name)
        if pid is None:
            up_argv = cmdline(self.pid)
            for child in children(self.pid):
                if child in self._seen:
                    continue
                argv = cmdline(child)
                if "queueproxy" in argv[1:3]:
                    pod_name = environ(child).get("SERVING_POD")
                    if not pod_name:
                        continue  # not exec'd yet: look again next time
                    self._qp_pids[pod_name] = child
                if argv and argv != up_argv:
                    self._seen.add(child)  # (a fork not exec'd yet still has our argv)
            pid = self._qp_pids.get(name)
            if pid is None:
                return None
        known = {endpoint.get("port"), endpoint.get("statsPort")}
        for port in sorted(listening_ports(pid) - known):
            text = scrape(port)
            if text is not None and "zeroserve_queue_requests" in text:
                self._qp_ports[name] = port
                return port
        return None
