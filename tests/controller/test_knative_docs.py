"""The Knative docs' pod spec manifests (tests/api/knative_docs.py) as the controller
runs them: the Deployment of each revision carries every field as written, and on the
fake API server a Service with a secret env and a volume, or a 63-character name, gets
a Deployment (and Services) Kubernetes accepts."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import yaml

from controller import workloads
from controller.app import KubeController
from tests.api.knative_docs import BY_ID, MANIFESTS
from tests.fakes.kubeapi.fakeapi import FakeKubeAPI
from zeroserve.api.objects import Obj, RevisionTemplate, Service
from zeroserve.api.parse import load

from .helpers import condition, config_map, manifest, put_manifest, settled
from .test_resources import REVISION, desired, env_of

REPRESENTATIVE = (
    "env-secret-key-ref",
    "env-from",
    "service-account",
    "security-context",
    "probes",
    "exec-probe",
    "grpc-probe",
    "multi-container",
    "init-containers",
    "volumes",
    "persistent-volume-claim",
    "scheduling",
)
_CONTAINER_FIELDS = {"containers", "initContainers"}
_REVISION_FIELDS = {
    "containerConcurrency",
    "timeoutSeconds",
    "responseStartTimeoutSeconds",
    "idleTimeoutSeconds",
}


def template_of(doc_id: str) -> RevisionTemplate:
    """The manifest's template, as ``zeroserve.api.load`` parses it."""
    [svc] = load(BY_ID[doc_id].yaml, f"{doc_id}.yaml")
    assert isinstance(svc, Service)
    return svc.template


def written_spec(doc_id: str) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(BY_ID[doc_id].yaml)["spec"]["template"]["spec"]
    return spec


def rendered_pod(doc_id: str) -> dict[str, Any]:
    d = workloads.deployment(
        desired(template_of(doc_id)), REVISION, image="qp:1", replicas=1, progress_deadline=600
    )
    pod: dict[str, Any] = d["spec"]["template"]["spec"]
    return pod


# Fields the controller sets or rewrites on a container (tested one by one below).
_INJECTED = {"env", "ports", "readinessProbe", "livenessProbe", "startupProbe", "lifecycle"}
_INJECTED |= {"name", "terminationMessagePolicy"}


@pytest.mark.parametrize("doc_id", REPRESENTATIVE)
def test_the_deployment_carries_every_field_as_written(doc_id: str) -> None:
    written = written_spec(doc_id)
    pod = rendered_pod(doc_id)
    # Every pod-level field, as written.
    for key, value in written.items():
        if key not in _CONTAINER_FIELDS | _REVISION_FIELDS:
            assert pod[key] == value, key
    if "enableServiceLinks" not in written:
        assert pod["enableServiceLinks"] is False
    *containers, queue = pod["containers"]
    assert queue["name"] == "queue-proxy"
    assert len(containers) == len(written["containers"])
    for want, got in zip(written["containers"], containers, strict=True):
        for key, value in want.items():
            if key not in _INJECTED:
                assert got[key] == value, (got["name"], key)
        if "name" in want:
            assert got["name"] == want["name"]
        # Variables as written, in order, then the runtime's.
        want_env = want.get("env", [])
        assert got["env"][: len(want_env)] == want_env
        assert [e["name"] for e in got["env"]][-3:] == [
            "K_REVISION",
            "K_CONFIGURATION",
            "K_SERVICE",
        ]
        assert got["lifecycle"]["preStop"]["httpGet"]["path"] == "/wait-for-drain"
        assert got["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert pod.get("initContainers", []) == [
        {"name": c.get("name", "init-container"), **c} for c in written.get("initContainers", ())
    ]


def _serving(pod: dict[str, Any]) -> dict[str, Any]:
    [serving] = [c for c in pod["containers"] if "ports" in c and c["name"] != "queue-proxy"]
    return serving


def test_probes_as_knative_splits_them() -> None:
    pod = rendered_pod("probes")
    user = _serving(pod)
    assert "readinessProbe" not in user
    assert user["livenessProbe"] == {"tcpSocket": {"port": 8080}, "initialDelaySeconds": 3}
    assert user["startupProbe"] == {
        "httpGet": {"path": "/healthz/started", "port": 8080},
        "failureThreshold": 30,
        "periodSeconds": 1,
    }
    queue = pod["containers"][-1]
    assert json.loads(env_of(queue)["SERVING_READINESS_PROBE"]) == {
        "httpGet": {"path": "/healthz/ready", "port": 8080},
        "periodSeconds": 1,
        "timeoutSeconds": 1,
        "failureThreshold": 3,
    }


def test_an_exec_probe_stays_on_the_container() -> None:
    pod = rendered_pod("exec-probe")
    user = _serving(pod)
    assert user["readinessProbe"] == written_spec("exec-probe")["containers"][0]["readinessProbe"]
    assert json.loads(env_of(pod["containers"][-1])["SERVING_READINESS_PROBE"]) == {
        "tcpSocket": {"port": 8080},
        "periodSeconds": 1,
    }


def test_a_grpc_probe_goes_to_the_queue_proxy() -> None:
    pod = rendered_pod("grpc-probe")
    user = _serving(pod)
    assert "readinessProbe" not in user
    assert user["ports"] == [{"name": "h2c", "containerPort": 8080, "protocol": "TCP"}]
    assert env_of(pod["containers"][-1])["USER_PROTOCOL"] == "h2c"  # HTTP/2 to the app
    assert json.loads(env_of(pod["containers"][-1])["SERVING_READINESS_PROBE"]) == {
        "grpc": {"port": 8080},
        "periodSeconds": 1,
    }


def test_the_serving_container_of_several_gets_the_port() -> None:
    pod = rendered_pod("multi-container")
    first, second, queue = pod["containers"]
    assert first["ports"] == [{"name": "user-port", "containerPort": 8881, "protocol": "TCP"}]
    assert env_of(first)["PORT"] == "8881"
    assert "ports" not in second
    assert env_of(second)["PORT"] == "8882"  # the sidecar's own, as written
    assert env_of(queue)["USER_PORT"] == "8881"


# ----- against the fake API server --------------------------------------------------------

SECRET_AND_VOLUME = """\
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: with-secret
  namespace: default
spec:
  template:
    spec:
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
          env:
            - name: DB_PASSWORD
              valueFrom:
                secretKeyRef:
                  name: db
                  key: password
          volumeMounts:
            - name: settings
              mountPath: /etc/settings
              readOnly: true
      volumes:
        - name: settings
          configMap:
            name: app-settings
"""


async def test_a_secret_env_and_a_volume_reach_the_deployment(
    cluster: FakeKubeAPI, controller: KubeController
) -> None:
    put_manifest(cluster, SECRET_AND_VOLUME)
    deployment = await cluster.wait_for(
        "deployments", "default", "with-secret-00001-deployment", within=5
    )
    assert deployment is not None, condition(cluster.get("ksvc", "default", "with-secret")).get(
        "message"
    )
    pod = deployment["spec"]["template"]["spec"]
    assert pod["volumes"] == [{"name": "settings", "configMap": {"name": "app-settings"}}]
    user = pod["containers"][0]
    assert user["env"][0] == {
        "name": "DB_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}},
    }
    assert user["volumeMounts"] == [
        {"name": "settings", "mountPath": "/etc/settings", "readOnly": True}
    ]


async def test_a_63_character_service_name_gives_names_kubernetes_accepts(
    cluster: FakeKubeAPI, controller: KubeController
) -> None:
    name = yaml.safe_load(BY_ID["long-name"].yaml)["metadata"]["name"]
    assert len(name) == 63
    put_manifest(cluster, BY_ID["long-name"].yaml)

    def created(resource: str) -> list[dict[str, Any]]:
        return [
            o for o in cluster.list(resource, "default") if o["metadata"].get("ownerReferences")
        ]

    async def wait(resource: str) -> list[dict[str, Any]]:
        async with asyncio.timeout(5):
            while not created(resource):
                await asyncio.sleep(0.02)
        return created(resource)

    [revision] = await wait("revisions.serving.knative.dev")
    [deployment] = await wait("deployments")
    await wait("virtualservices")
    rev_name = revision["metadata"]["name"]
    assert len(rev_name) <= 63 and rev_name.endswith("-00001")
    assert deployment["spec"]["selector"]["matchLabels"]["serving.knative.dev/revision"] == rev_name
    names = {
        resource: sorted(o["metadata"]["name"] for o in created(resource))
        for resource in ("deployments", "services", "virtualservices")
    }
    too_long = {r: [n for n in ns if len(n) > 63] for r, ns in names.items()}
    assert too_long == {"deployments": [], "services": [], "virtualservices": []}, names
    assert deployment["metadata"]["name"].endswith("-deployment")
    for obj in (deployment, revision):
        for value in obj["metadata"]["labels"].values():
            assert len(value) <= 63


async def test_every_docs_manifest_becomes_a_deployment_on_the_fake_api_server(
    cluster: FakeKubeAPI, controller: KubeController
) -> None:
    """The whole table through the running controller: config-features from its
    ConfigMap, each Service (a generated name too) admitted and rendered, its pod
    carrying the template's pod fields and one container per container plus the
    queue-proxy."""
    flags: dict[str, str] = {}
    for m in MANIFESTS:
        flags.update(m.features)
    cluster.put(config_map("config-features", flags))
    await settled(controller)
    for m in MANIFESTS:
        obj = manifest(m.yaml)
        meta = obj["metadata"]
        if not meta.get("name"):
            meta["name"] = meta["generateName"] + "x7k2p"  # what the API server's create does
        cluster.put(obj)

    def deployments() -> dict[str, Obj]:
        out = {}
        for d in cluster.list("deployments", "default"):
            service = d["metadata"]["labels"].get("serving.knative.dev/service", "")
            out[service] = d
        return out

    async with asyncio.timeout(10):
        while len(deployments()) < len(MANIFESTS):
            await asyncio.sleep(0.05)
    by_service = deployments()
    for m in MANIFESTS:
        written = yaml.safe_load(m.yaml)
        name = written["metadata"].get("name") or written["metadata"]["generateName"] + "x7k2p"
        pod = by_service[name]["spec"]["template"]["spec"]
        spec = written["spec"]["template"]["spec"]
        names = [c["name"] for c in pod["containers"]]
        assert len(names) == len(spec["containers"]) + 1 and names[-1] == "queue-proxy", m.id
        assert len(pod.get("initContainers", ())) == len(spec.get("initContainers", ())), m.id
        for key, value in spec.items():
            if key not in ("containers", "initContainers"):
                assert pod[key] == value, (m.id, key)
