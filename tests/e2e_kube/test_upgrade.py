"""``helm upgrade`` from the released chart (0.1.0, ``fixtures/zeroserve-0.1.0.tgz``) to
the chart in the tree, on the test cluster, with requests flowing through the gateway.

The test cluster runs this checkout's code for every image tag (its image map, see
docs/test-cluster.md), so an upgrade here changes the chart's templates and values (and
the image references they write), not the code: what it proves is that the chart's
upgrade path rolls the components without losing a request and leaves revision pods
alone unless the sidecar image changes (docs/kubernetes.md, "Upgrades").

1. Install 0.1.0 (the values ``conftest.install`` uses), deploy helloworld with
   ``min-scale: 1`` so its revision keeps a pod.
2. Upgrade to the tree's chart with a new component tag (``image.tag=dev2``) and
   ``queueProxy.image`` pinned to the sidecar image the revision already runs, and the
   activator's HPA switched on (the ``lookup`` that keeps its replicas): every component
   rolls, the revision pod stays, every request is answered.
3. Upgrade changing only ``queueProxy.image``: the controller rolls the revision's
   Deployment, its pod is replaced, every request is answered.
"""

from __future__ import annotations

import collections
import http.client
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import PYTESTMARK, SYSTEM, Cluster, install, running_cluster, wait_until
from .test_walkthrough import manifest, revision_pods

PREVIOUS = Path(__file__).parent / "fixtures" / "zeroserve-0.1.0.tgz"
HOST = "helloworld-go.default.example.com"
ANSWER = (200, "Hello World!")
COMPONENTS = ("activator", "autoscaler", "controller")
# conftest's install values, repeated on every upgrade (helm upgrade resets to the chart's
# defaults what is not given again)
VALUES = (
    "--set",
    "image.repository=zeroserve",
    "--set",
    "controller.replicas=2",
    "--set",
    "activator.drainSeconds=5",
)

pytestmark = PYTESTMARK


def pinned_to_min_scale_1() -> str:
    """helloworld with ``autoscaling.knative.dev/min-scale: "1"``: its pod always exists."""
    text = manifest("helloworld.yaml", target="World")
    annotated = text.replace(
        "  template:\n    spec:\n",
        '  template:\n    metadata:\n      annotations:\n        autoscaling.knative.dev/min-scale: "1"\n    spec:\n',
        1,
    )
    assert annotated != text
    return annotated


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster")) as c:
        install(
            c,
            "--set",
            "controller.replicas=2",
            "--set",
            "activator.drainSeconds=5",
            chart=str(PREVIOUS),
        )
        c.kubectl("apply", "-f", "-", stdin=pinned_to_min_scale_1())
        c.kubectl("wait", "ksvc", "helloworld-go", "--for=condition=Ready", "--timeout=90s")
        yield c


class Traffic:
    """Requests through the public gateway from a few threads, one connection each, a
    pause between two, until :meth:`stop` (or a bound in count and time); every answer is
    counted, a connection error or timeout as status 0 with its exception as the body."""

    def __init__(
        self,
        port: int,
        *,
        threads: int = 3,
        pause: float = 0.02,
        limit: int = 20_000,
        within: float = 150,
    ):
        self.port = port
        self.pause = pause
        self.limit = limit
        self.deadline = time.monotonic() + within
        self.results: list[tuple[int, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, name=f"traffic-{i}", daemon=True)
            for i in range(threads)
        ]
        for t in self._threads:
            t.start()

    def _one(self) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request("GET", "/", headers={"Host": HOST})
            response = conn.getresponse()
            return response.status, response.read().decode(errors="replace").removesuffix("\n")
        except (OSError, http.client.HTTPException) as e:
            return 0, repr(e)
        finally:
            conn.close()

    def _run(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self.deadline:
            result = self._one()
            with self._lock:
                if len(self.results) >= self.limit:
                    return
                self.results.append(result)
            self._stop.wait(self.pause)

    def answered(self) -> int:
        with self._lock:
            return len(self.results)

    def stop(self) -> list[tuple[int, str]]:
        self._stop.set()
        for t in self._threads:
            t.join(90)
        return list(self.results)

    def more(self, n: int) -> None:
        """Wait until ``n`` more requests are answered (traffic really flows)."""
        start = self.answered()
        wait_until(
            lambda: self.answered() >= start + n,
            within=30,
            what=f"{n} more answers after {start} "
            f"({collections.Counter(self.results[start:]).most_common(3)})",
        )


def pod_uids(cluster: Cluster) -> dict[str, str]:
    return {
        p["metadata"]["name"]: p["metadata"]["uid"] for p in revision_pods(cluster, "helloworld-go")
    }


def all_pods(cluster: Cluster) -> list[dict]:
    """The revision's pods, terminating ones too."""
    return cluster.get("pods", "-n", "default", "-l", "serving.knative.dev/service=helloworld-go")[
        "items"
    ]


def component_uids(cluster: Cluster) -> set[str]:
    pods = cluster.get("pods", "-n", SYSTEM)["items"]
    return {p["metadata"]["uid"] for p in pods if not p["metadata"].get("deletionTimestamp")}


def rolled_out(cluster: Cluster, name: str, namespace: str = SYSTEM) -> None:
    cluster.kubectl(
        "-n", namespace, "rollout", "status", f"deployment/{name}", "--timeout=90s", timeout=100
    )


def upgrade(cluster: Cluster, *values: str) -> None:
    cluster.helm("upgrade", "zeroserve", "charts/zeroserve", "-n", SYSTEM, *VALUES, *values)


def assert_all_answered(results: list[tuple[int, str]]) -> None:
    failed = [r for r in results if r != ANSWER]
    assert not failed, (
        f"{len(failed)} of {len(results)} requests failed: {collections.Counter(failed).most_common(5)}"
    )


def test_the_previous_release_is_installed(cluster: Cluster) -> None:
    release = cluster.helm("list", "-n", SYSTEM, "-o", "json")
    assert '"chart":"zeroserve-0.1.0"' in release
    assert cluster.curl(HOST) == ANSWER
    assert len(pod_uids(cluster)) == 1


def test_component_upgrade_keeps_revision_pods_and_loses_no_request(cluster: Cluster) -> None:
    before = pod_uids(cluster)
    components_before = component_uids(cluster)
    queue_image = "zeroserve:dev"  # what 0.1.0 wrote: queueProxy.image empty -> image
    traffic = Traffic(cluster.gateway_port)
    try:
        traffic.more(30)
        upgrade(
            cluster,
            "--set",
            "image.tag=dev2",
            "--set",
            f"queueProxy.image={queue_image}",
            "--set",
            "activator.hpa.enabled=true",
        )
        for name in COMPONENTS:
            rolled_out(cluster, name)
        traffic.more(30)
    finally:
        results = traffic.stop()
    assert_all_answered(results)
    assert pod_uids(cluster) == before, "a revision pod was replaced though its sidecar was not"
    restarts = {
        c["name"]: c["restartCount"]
        for p in revision_pods(cluster, "helloworld-go")
        for c in p["status"]["containerStatuses"]
    }
    assert restarts == {"user-container": 0, "queue-proxy": 0}, restarts
    # every component pod is new, and runs the new tag
    assert not component_uids(cluster) & components_before
    for name in COMPONENTS:
        spec = cluster.get("deployment", "-n", SYSTEM, name)["spec"]
        assert spec["template"]["spec"]["containers"][0]["image"] == "zeroserve:dev2"
    # the HPA now owns the activators' count: the chart wrote the live count back
    # (`lookup`) instead of dropping replicas, which would fall to 1
    assert cluster.get("deployment", "-n", SYSTEM, "activator")["spec"].get("replicas") == 2
    assert cluster.get("hpa", "-n", SYSTEM, "activator")["spec"]["minReplicas"] == 2
    assert cluster.get("pdb", "-n", SYSTEM, "activator")["spec"]["maxUnavailable"] == 1
    # the CRDs are templates, so they are upgraded with the release
    crd = cluster.get("crd", "services.serving.knative.dev")
    assert crd["metadata"]["labels"]["helm.sh/chart"] == "zeroserve-0.2.0"
    release = cluster.helm("list", "-n", SYSTEM, "-o", "json")
    assert '"chart":"zeroserve-0.2.0"' in release


def test_sidecar_image_upgrade_rolls_revision_pods_and_loses_no_request(
    cluster: Cluster,
) -> None:
    before = pod_uids(cluster)
    components_before = component_uids(cluster)
    traffic = Traffic(cluster.gateway_port)
    try:
        traffic.more(30)
        upgrade(
            cluster,
            "--set",
            "image.tag=dev2",
            "--set",
            "queueProxy.image=zeroserve:dev2",
            "--set",
            "activator.hpa.enabled=true",
        )

        def replaced() -> bool:
            pods = revision_pods(cluster, "helloworld-go")
            return bool(pods) and all(
                p["metadata"]["uid"] not in before.values()
                and {c["name"]: c["image"] for c in p["spec"]["containers"]}["queue-proxy"]
                == "zeroserve:dev2"
                for p in pods
            )

        wait_until(replaced, within=90, what="the revision's pod replaced with the new sidecar")
        rolled_out(cluster, "helloworld-go-00001-deployment", "default")
        # until the old pod is gone (its queue-proxy drained and stopped), not only
        # terminating: a request sent to it late would be lost then
        wait_until(
            lambda: not set(before) & {p["metadata"]["name"] for p in all_pods(cluster)},
            within=60,
            what=f"the old revision pod {sorted(before)} gone",
        )
        traffic.more(30)
    finally:
        results = traffic.stop()
    assert_all_answered(results)
    after = pod_uids(cluster)
    assert len(after) == 1 and not set(after.values()) & set(before.values())
    # only the sidecar changed: the components were not restarted
    assert component_uids(cluster) == components_before
