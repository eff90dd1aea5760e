"""A workload namespace with Istio sidecars and STRICT mTLS, on the test cluster's model of
the mesh (docs/test-cluster.md, "The mesh"): the chart installed with
``istio.injectSidecar=true`` (the components have sidecars, as Knative's docs ask of
``knative-serving``), the namespace labelled ``istio-injection=enabled`` with a STRICT
PeerAuthentication, and ``config-network``'s ``mesh-compatibility-mode`` left at its
default, ``auto``.

The first test shows the model is in force (plaintext to the revision's pods is refused,
as a sidecar refuses it); the others that the activator and the autoscaler still reach
them, through the private Service (docs/activator.md and docs/autoscaling.md, "Mesh
mode"), and that the kubelet's ``preStop`` call reaches the queue-proxy's admin port,
which the pods exclude from the sidecar (docs/kubernetes.md, "Istio sidecars"). The
tests run in order on one cluster."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import socket
import threading
import time

import pytest

from .conftest import PYTESTMARK, SYSTEM, Cluster, install, running_cluster, wait_until
from .test_walkthrough import manifest

NS = "mesh"
HOST = f"helloworld-go.{NS}.example.com"
LOAD = 60

pytestmark = PYTESTMARK

STRICT = f"""\
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: {NS}
spec:
  mtls:
    mode: STRICT
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with running_cluster(tmp_path_factory.mktemp("cluster")) as c:
        if c.mesh_unavailable:
            pytest.skip(f"the test cluster's mesh model is off: {c.mesh_unavailable}")
        install(c, "--set", "istio.injectSidecar=true", "--set", "activator.drainSeconds=5")
        c.kubectl("create", "namespace", NS)
        c.kubectl("label", "namespace", NS, "istio-injection=enabled")
        c.kubectl("apply", "-f", "-", stdin=STRICT)
        yield c


def pods(cluster: Cluster) -> list[dict]:
    items = cluster.get("pods", "-n", NS, "-l", "serving.knative.dev/service=helloworld-go")
    return [p for p in items["items"] if not p["metadata"].get("deletionTimestamp")]


def connects(host: str, port: int) -> bool:
    """A TCP connection from the node is accepted and kept (not reset or closed)."""
    try:
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            return bool(s.recv(1))
    except OSError:
        return False


def apply_service(cluster: Cluster) -> None:
    """helloworld in the meshed namespace, every request through the activator
    (target-burst-capacity -1), and Ready: the kubelet's probes pass the sidecar (Istio
    rewrites them)."""
    text = manifest("helloworld.yaml", target="Mesh").replace(
        "namespace: default", f"namespace: {NS}"
    )
    text = text.replace(
        "  template:\n    spec:",
        "  template:\n    metadata:\n      annotations:\n"
        '        autoscaling.knative.dev/target-burst-capacity: "-1"\n    spec:',
    )
    assert "target-burst-capacity" in text
    cluster.kubectl("apply", "-f", "-", stdin=text)
    cluster.kubectl(
        "wait", "-n", NS, "ksvc", "helloworld-go", "--for=condition=Ready", "--timeout=90s"
    )


def test_plaintext_to_the_revision_pods_is_refused(cluster: Cluster) -> None:
    apply_service(cluster)
    (pod,) = pods(cluster)
    annotations = pod["metadata"].get("annotations") or {}
    assert annotations.get("traffic.sidecar.istio.io/excludeInboundPorts") == "8022"
    ip = pod["status"]["podIP"]
    # the serving and metrics ports take mTLS only; the admin port bypasses the sidecar
    assert not connects(ip, 8012)
    assert not connects(ip, 9090)
    assert connects(ip, 8022)
    private = cluster.get("service", "-n", NS, "helloworld-go-00001-private")
    assert not connects(private["spec"]["clusterIP"], 80)  # the node has no sidecar


def test_the_activator_reaches_the_strict_pods_through_the_private_service(
    cluster: Cluster,
) -> None:
    def serving() -> bool:
        # the gateway's own answer while no activator is ready (a stalled machine makes
        # their probes fail for a moment) is the only other answer allowed here
        got = cluster.curl(HOST)
        assert got in ((200, "Hello Mesh!"), (503, "no healthy upstream")), got
        return got[0] == 200

    wait_until(serving, within=90, what="the route answered through the activators")
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: cluster.curl(HOST), range(LOAD)))
    failed = [r for r in results if r != (200, "Hello Mesh!")]
    assert not failed, f"{len(failed)} of {LOAD} failed: {failed[:5]}\n{cluster.logs()}"
    logs = "\n".join(
        p.read_text(errors="replace")
        for p in (cluster.directory / "pods").glob(f"{SYSTEM}_*/*.log")
    )
    assert "helloworld-go-00001-private" in logs and "requests go through the Service" in logs


def test_scale_to_zero_and_back_with_the_autoscaler_scraping_through_the_service(
    cluster: Cluster,
) -> None:
    cluster.kubectl("apply", "-f", "examples/config-autoscaler-fast.yaml")
    wait_until(lambda: not pods(cluster), within=90, what="the idle revisions scaled to zero")
    got = cluster.curl(HOST)
    assert got == (200, "Hello Mesh!"), f"{got}\n{cluster.logs(80)}"
    logs = "\n".join(
        p.read_text(errors="replace")
        for p in (cluster.directory / "pods").glob(f"{SYSTEM}_*/*.log")
    )
    assert "scraping through the Service" in logs


@pytest.mark.soak  # 34 s: `make soak`; tests/autoscaler/test_leadership.py keeps the fix in `make test`
def test_a_cold_request_rides_out_a_stalled_api_server(cluster: Cluster) -> None:
    """The cluster process (API server, Services proxy, DNS, gateway and kubelet) stopped
    for longer than the autoscaler's renew deadline just as a request comes for the
    revision at zero, as on a starved or stalled machine: the autoscaler loses its Lease
    and stands by, and leads again as soon as the API answers, so the request is answered
    soon after the stall. It used to exit, and the restarted one waited a whole lease
    duration more before it could scale up (docs/autoscaling.md, "Leader election"): the
    request took the stall and more than 30 s. (``make soak`` runs it alone: it makes its
    Service and the fast scale to zero itself.)"""
    apply_service(cluster)
    cluster.kubectl("apply", "-f", "examples/config-autoscaler-fast.yaml")
    wait_until(lambda: not pods(cluster), within=90, what="the revision back at zero")
    stall = 16.0  # > the renew interval (5 s) + the API client's timeout (10 s)
    started = time.monotonic()
    os.kill(cluster.process.pid, signal.SIGSTOP)
    resume = threading.Timer(stall, os.kill, (cluster.process.pid, signal.SIGCONT))
    resume.start()
    try:
        got = cluster.curl(HOST)  # waits in the stopped gateway's backlog, then the activator
    finally:
        resume.join()
    took = time.monotonic() - started
    assert got == (200, "Hello Mesh!") and took < stall + 20, (
        f"{got} in {took:.1f}s\n{cluster.logs(80)}"
    )
    (autoscaler,) = cluster.get(
        "pods", "-n", SYSTEM, "-l", "app.kubernetes.io/component=autoscaler"
    )["items"]
    log = next((cluster.directory / "pods").glob(f"{SYSTEM}_autoscaler-*/autoscaler.log"))
    assert "lost the leadership" in log.read_text(), "the stall did not cost the Lease"
    assert autoscaler["status"]["containerStatuses"][0]["restartCount"] == 0


def test_the_kubelets_prestop_reaches_the_queue_proxy(cluster: Cluster) -> None:
    """The revision's pods stop in the scale to zero; a preStop refused by the sidecar
    would be a FailedPreStopHook Event (tests/cluster/test_mesh.py shows it is)."""
    wait_until(lambda: not pods(cluster), within=90, what="the revision back at zero")
    stopped = list((cluster.directory / "pods").glob(f"{NS}_helloworld-go-*"))
    assert stopped, "no revision pod ran in the namespace"
    events = cluster.get("events", "-n", NS)["items"]
    failed = [e["message"] for e in events if e["reason"] == "FailedPreStopHook"]
    assert not failed, failed
