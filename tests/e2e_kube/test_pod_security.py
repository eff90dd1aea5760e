"""Revision pods in a namespace that enforces the ``restricted`` Pod Security Standard
(``pod-security.kubernetes.io/enforce=restricted``; the test cluster's API server
enforces it as kube-apiserver's PodSecurity admission does): with ``config-features``
``secure-pod-defaults: Enabled`` (the chart's ``config.features``) helloworld becomes
Ready there and answers through the gateway; with ``Disabled`` its pods are refused and
the revision says why."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from .conftest import PYTESTMARK, SYSTEM, Cluster, install, running_cluster, wait_until
from .test_walkthrough import manifest

pytestmark = PYTESTMARK

NS = "secure"


def helloworld(name: str) -> str:
    text = manifest("helloworld.yaml", target="Secure")
    return text.replace("name: helloworld-go", f"name: {name}").replace(
        "namespace: default", f"namespace: {NS}"
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster")) as c:
        install(
            c,
            "--set",
            "config.features.secure-pod-defaults=Enabled",
            "--set",
            "activator.drainSeconds=5",
        )
        c.kubectl("create", "namespace", NS)
        c.kubectl("label", "namespace", NS, "pod-security.kubernetes.io/enforce=restricted")
        yield c


def test_secure_pod_defaults_make_a_restricted_namespace_work(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=helloworld("helloworld-go"))
    cluster.kubectl(
        "wait", "-n", NS, "ksvc", "helloworld-go", "--for=condition=Ready", "--timeout=90s"
    )
    assert cluster.curl(f"helloworld-go.{NS}.example.com") == (200, "Hello Secure!")
    service = cluster.get("ksvc", "-n", NS, "helloworld-go")
    context = service["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    assert context == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def test_without_secure_pod_defaults_the_revision_reports_the_refusal(cluster: Cluster) -> None:
    cluster.kubectl(
        "patch",
        "configmap",
        "config-features",
        "-n",
        SYSTEM,
        "--type=merge",
        "-p",
        json.dumps({"data": {"secure-pod-defaults": "Disabled"}}),
    )
    plain = helloworld("helloworld-plain")

    def defaults_off() -> bool:
        dry = cluster.kubectl("apply", "--dry-run=server", "-o", "json", "-f", "-", stdin=plain)
        return "securityContext" not in json.loads(dry)["spec"]["template"]["spec"]["containers"][0]

    wait_until(defaults_off, within=30, what="the webhook follows secure-pod-defaults: Disabled")
    cluster.kubectl("apply", "-f", "-", stdin=plain)

    def refused() -> dict | None:
        out = cluster.kubectl(
            "get",
            "revision",
            "-n",
            NS,
            "helloworld-plain-00001",
            "-o",
            "json",
            "--ignore-not-found",
        )
        revision = json.loads(out) if out.strip() else {}
        conditions = {c["type"]: c for c in (revision.get("status") or {}).get("conditions", [])}
        resources = conditions.get("ResourcesAvailable") or {}
        return conditions if resources.get("status") == "False" else None

    conditions = wait_until(refused, within=60, what="the revision reports the refused pods")
    for kind in ("ResourcesAvailable", "Ready"):
        assert conditions[kind]["status"] == "False"
        assert conditions[kind]["reason"] == "FailedCreate"
        message = conditions[kind]["message"]
        assert 'is forbidden: violates PodSecurity "restricted:latest": ' in message
        assert 'container "user-container" must set securityContext.runAsNonRoot=true' in message
    pods = cluster.get("pods", "-n", NS, "-l", "serving.knative.dev/service=helloworld-plain")
    assert pods["items"] == []
