"""Components failing on the test cluster: an activator pod deleted under load loses no
request; the controller's leader pod deleted, the other replica takes over; the
autoscaler restarted (a rolling restart of its Deployment), scaling still works."""

from __future__ import annotations

import concurrent.futures
import threading

import pytest

from .conftest import PYTESTMARK, SYSTEM, Cluster, install, running_cluster, wait_until
from .test_walkthrough import manifest, revision_pods

HOST = "helloworld-go.default.example.com"
LOAD_REQUESTS = 400

pytestmark = PYTESTMARK


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with running_cluster(tmp_path_factory.mktemp("cluster")) as c:
        # a short activator drain keeps the deleted pod's shutdown inside the test's time
        install(c, "--set", "controller.replicas=2", "--set", "activator.drainSeconds=5")
        c.kubectl("apply", "-f", "-", stdin=manifest("helloworld.yaml", target="World"))
        c.kubectl("wait", "ksvc", "helloworld-go", "--for=condition=Ready", "--timeout=90s")
        yield c


def activator_pods(cluster: Cluster) -> list[str]:
    pods = cluster.get("pods", "-n", SYSTEM, "-l", "app.kubernetes.io/component=activator")
    return [
        p["metadata"]["name"] for p in pods["items"] if not p["metadata"].get("deletionTimestamp")
    ]


def test_activator_pod_deleted_under_load_loses_no_request(cluster: Cluster) -> None:
    assert cluster.curl(HOST) == (200, "Hello World!")
    victim = activator_pods(cluster)[0]
    results: list[tuple[int, str]] = []
    lock = threading.Lock()
    half = threading.Event()

    def one(_: int) -> None:
        result = cluster.curl(HOST)
        with lock:
            results.append(result)
            if len(results) == LOAD_REQUESTS // 4:
                half.set()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(one, i) for i in range(LOAD_REQUESTS)]
        half.wait(120)
        cluster.kubectl("delete", "pod", "-n", SYSTEM, victim, "--wait=false")
        for f in futures:
            f.result()
    failed = [r for r in results if r != (200, "Hello World!")]
    assert not failed, f"{len(failed)} of {len(results)} requests failed: {failed[:5]}"
    wait_until(
        lambda: victim not in activator_pods(cluster) and len(activator_pods(cluster)) == 2,
        within=90,
        what="the ReplicaSet replaced the deleted activator",
    )


def test_controller_leader_deleted_the_other_takes_over(cluster: Cluster) -> None:
    lease = cluster.get("lease", "-n", SYSTEM, "zeroserve-controller")
    leader = lease["spec"]["holderIdentity"].split("_")[0]
    cluster.kubectl("delete", "pod", "-n", SYSTEM, leader, "--wait=false")

    def holder() -> str:
        lease = cluster.get("lease", "-n", SYSTEM, "zeroserve-controller")
        return str(lease["spec"].get("holderIdentity") or "").split("_")[0]

    # the deleted leader gives the lease up (holderIdentity empty), the other takes it
    wait_until(
        lambda: holder() not in ("", leader), within=90, what="another controller holds the lease"
    )
    # and it reconciles: a new Service becomes ready
    cluster.kubectl("apply", "-f", "-", stdin=manifest("hello.yaml"))
    cluster.kubectl("wait", "ksvc", "hello", "--for=condition=Ready", "--timeout=90s")
    assert cluster.curl("hello.default.example.com") == (200, "Hello World!")


def test_autoscaler_restarted_scaling_still_works(cluster: Cluster) -> None:
    cluster.kubectl("-n", SYSTEM, "rollout", "restart", "deployment/autoscaler")
    cluster.kubectl("-n", SYSTEM, "rollout", "status", "deployment/autoscaler", "--timeout=90s")
    cluster.kubectl("apply", "-f", "examples/config-autoscaler-fast.yaml")
    wait_until(
        lambda: not revision_pods(cluster, "helloworld-go"),
        within=90,
        what="the new autoscaler scaled the idle revision to zero",
    )
    assert cluster.curl(HOST) == (200, "Hello World!")
