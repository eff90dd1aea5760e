"""On the test cluster: is a revision pod's queue-proxy ready no later than its app?

``python -m benchmarks.kubeready`` starts the test cluster (docs/test-cluster.md; root
on Linux, ``make tools``), installs the chart, applies helloworld with the fast
autoscaler config, and then, for each round, waits until the revision is at zero and
sends one request through the gateway. While the new pod starts, this script (on the
node) watches the pod through ``kubectl get -w`` and, from the moment it has an
address, tries a TCP connect to the app's port (8080) and to the queue-proxy's serving
port (8012) every 2 ms, and a health check through the queue-proxy
(``K-Network-Probe: queue``, which the queue-proxy answers 200 once its own probe of the
app passes). It prints, per round and as medians, when each port first accepted and
when the queue-proxy first said ready, in ms after the pod first had an address, and
the margin: the app's first accept minus the queue-proxy's (positive: the queue-proxy
was listening before its app). The cold request's status and time are printed too.
Figures are read, never asserted (issue 18's goal: "on the test cluster, a pod's
queue-proxy is ready no later than its app"; the README's Performance section).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tests.e2e_kube.conftest import KUBECTL, Cluster, install, manifest, running_cluster

SERVICE = "helloworld-go"
HOST = f"{SERVICE}.default.example.com"
APP_PORT = 8080
QUEUE_PORT = 8012
POLL = 0.002
CLONE_NEWNET = 0x40000000


def _netns_of(ip: str) -> str:
    """The network namespace (``/run/netns/...``) whose pod has address ``ip``: the app
    listens on the pod's loopback, so it is polled from inside."""
    for ns in sorted(Path("/run/netns").glob("zs-*")):
        addrs = subprocess.run(
            ["ip", "-n", ns.name, "-4", "-o", "addr"], capture_output=True, text=True, check=False
        ).stdout
        if f" {ip}/" in addrs:
            return str(ns)
    raise RuntimeError(f"no network namespace has {ip}")


def _enter(netns: str) -> None:
    """Move the calling thread into ``netns`` (setns(2) acts on one thread)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(netns, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {netns}")
    finally:
        os.close(fd)


def _accepts(ip: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.05)
        return s.connect_ex((ip, port)) == 0


def _queue_ready(ip: str) -> bool:
    """The queue-proxy's answer to the kubelet's kind of health check: 200 once the app
    passed its readiness probe."""
    try:
        with socket.create_connection((ip, QUEUE_PORT), timeout=0.5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: probe\r\nK-Network-Probe: queue\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def _new_pod_ip(
    cluster: Cluster, service: str, seen: set[str], timeout: float
) -> tuple[str, float]:
    """The address of the first pod of ``service`` (in ``default``) not in ``seen`` to get
    one, and when it was seen."""
    argv = [str(KUBECTL), "get", "pods", "-n", "default", "-w", "--no-headers"]
    argv += ["-l", f"serving.knative.dev/service={service}"]
    argv += ["-o", "custom-columns=NAME:.metadata.name,IP:.status.podIP"]
    watch = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=cluster.env)
    timer = threading.Timer(timeout, watch.kill)
    timer.start()
    try:
        assert watch.stdout is not None
        for line in watch.stdout:
            name, ip = [*line.split(), "<none>", "<none>"][:2]
            if name not in seen and ip != "<none>":
                seen.add(name)
                return ip, time.monotonic()
        raise RuntimeError(f"no new pod of {service} got an address within {timeout:g} s")
    finally:
        timer.cancel()
        watch.kill()
        watch.wait()


def cold_round(
    cluster: Cluster, seen: set[str], *, service: str = SERVICE, host: str = HOST
) -> dict[str, Any]:
    """One cold start of ``service`` (in ``default``, at zero; ``seen``: its pods so far,
    the new one is added): the ms after the new pod's address was seen at which each
    thing happened, the cold request's time, status and body. The walkthrough's scale
    from zero runs through it (tests/e2e_kube/test_walkthrough.py)."""
    result: dict[str, Any] = {}
    sent = time.monotonic()

    def request() -> None:
        result["status"], result["body"] = cluster.curl(host)
        result["request_ms"] = (time.monotonic() - sent) * 1e3

    sender = threading.Thread(target=request)
    sender.start()
    ip, t0 = _new_pod_ip(cluster, service, seen, 60)
    result["address_ms"] = (t0 - sent) * 1e3
    checks = {
        "queue_listening_ms": lambda: _accepts(ip, QUEUE_PORT),
        "app_listening_ms": lambda: _accepts("127.0.0.1", APP_PORT),
        "queue_ready_ms": lambda: _queue_ready(ip),
    }

    def poll() -> None:  # in a thread of its own: it enters the pod's network namespace
        _enter(_netns_of(ip))
        deadline = t0 + 30
        while checks and time.monotonic() < deadline:
            for key, check in list(checks.items()):
                if check():
                    result[key] = (time.monotonic() - t0) * 1e3
                    del checks[key]
            time.sleep(POLL)

    poller = threading.Thread(target=poll)
    poller.start()
    poller.join(40)
    sender.join(90)
    if checks:
        raise RuntimeError(f"pod {ip}: not within 30 s: {', '.join(checks)}")
    result["margin_ms"] = result["app_listening_ms"] - result["queue_listening_ms"]
    return result


def _pods(cluster: Cluster) -> list[dict[str, object]]:
    items = cluster.get("pods", "-n", "default", "-l", f"serving.knative.dev/service={SERVICE}")
    return list(items["items"])


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.kubeready", description=__doc__)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, running_cluster(Path(tmp) / "cluster") as cluster:
        install(cluster, "--set", "activator.drainSeconds=5")
        cluster.kubectl("apply", "-f", "examples/config-autoscaler-fast.yaml")
        cluster.kubectl("apply", "-f", "-", stdin=manifest("helloworld.yaml"))
        cluster.kubectl("wait", "ksvc", SERVICE, "--for=condition=Ready", "--timeout=90s")
        seen = {str(p["metadata"]["name"]) for p in _pods(cluster)}  # type: ignore[index]
        for n in range(args.rounds):
            deadline = time.monotonic() + 120
            while _pods(cluster):
                if time.monotonic() > deadline:
                    raise RuntimeError("the revision did not scale to zero within 120 s")
                time.sleep(0.5)
            try:
                row = cold_round(cluster, seen)
            except RuntimeError as e:
                raise RuntimeError(f"round {n + 1}: {e}\n{cluster.logs(60)}") from None
            rows.append(row)
            print(
                f"round {n + 1}: status {row['status']:.0f}, request {row['request_ms']:.0f} ms, "
                f"the pod had an address {row['address_ms']:.0f} ms after it was sent; "
                f"after the pod's address: queue-proxy listening {row['queue_listening_ms']:.0f}"
                f" ms, app listening {row['app_listening_ms']:.0f} ms, queue-proxy ready "
                f"{row['queue_ready_ms']:.0f} ms; margin {row['margin_ms']:+.0f} ms",
                flush=True,
            )
    keys = (
        "request_ms",
        "address_ms",
        "queue_listening_ms",
        "app_listening_ms",
        "queue_ready_ms",
        "margin_ms",
    )
    print(f"medians of {len(rows)} rounds (ms):")
    for key in keys:
        values = [r[key] for r in rows]
        print(
            f"  {key}: {statistics.median(values):+.0f} [{min(values):+.0f} to {max(values):+.0f}]"
        )
    before = sum(r["margin_ms"] >= 0 for r in rows)
    print(f"the queue-proxy was listening no later than its app in {before} of {len(rows)} rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
