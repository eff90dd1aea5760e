"""Revision pods and Pod Security: a template the defaulting webhook gave
``secure-pod-defaults`` makes a pod that meets ``restricted`` (the test cluster's
admission decides, tests/fakes/kubeapi/podsecurity.py), and a pod create the apiserver
refuses reaches the revision as Knative shows it (``ResourcesAvailable`` and ``Ready``
False, reason ``FailedCreate``, the apiserver's message)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from controller import workloads
from controller.observe import Observation, observe
from controller.webhook import defaulted
from tests.fakes.kubeapi.podsecurity import violations
from zeroserve.api import load
from zeroserve.api.configs import Configs
from zeroserve.serving.revisions import desired_revision
from zeroserve.serving.state import Observed, RevisionRecord
from zeroserve.serving.status import revision_conditions
from zeroserve.topology import RevisionKey

SERVICE = """
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: hello, namespace: secure}
spec:
  template:
    spec:
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
          ports: [{containerPort: 80}]
      initContainers:
        - image: busybox
          command: [sh, -c, "true"]
"""


def revision_pod(flag: str) -> dict[str, Any]:
    configs = Configs().with_config_map(
        "config-features",
        {"secure-pod-defaults": flag, "kubernetes.podspec-init-containers": "enabled"},
        default_domain="example.com",
    )
    obj = defaulted(yaml.safe_load(SERVICE), None, "alice", configs)
    [service] = load(json.dumps(obj), "hello.yaml")
    template = service.template  # type: ignore[union-attr]
    record = RevisionRecord(
        key=RevisionKey("secure", "hello-00001"),
        configuration="hello",
        service="hello",
        generation=1,
        created=0.0,
        template=template,
        container_concurrency=0,
        timeout_seconds=300,
        response_start_timeout_seconds=0,
        idle_timeout_seconds=0,
        container_name="user-container",
    )
    return workloads.pod_spec(desired_revision(record, reachable=True), "zeroserve:test")


def test_enabled_makes_a_restricted_pod() -> None:
    spec = revision_pod("Enabled")
    assert violations(spec, "restricted") == []
    user = spec["containers"][0]
    assert user["securityContext"]["capabilities"] == {
        "drop": ["ALL"],
        "add": ["NET_BIND_SERVICE"],
    }


def test_allow_root_bounded_misses_only_run_as_non_root() -> None:
    spec = revision_pod("AllowRootBounded")
    assert violations(spec, "baseline") == []
    assert violations(spec, "restricted") == [
        'runAsNonRoot != true (pod or containers "init-container", "user-container" must '
        "set securityContext.runAsNonRoot=true)"
    ]


def test_disabled_leaves_the_user_containers_unrestricted() -> None:
    found = violations(revision_pod("Disabled"), "restricted")
    assert [v.split(" (")[0] for v in found] == [
        "allowPrivilegeEscalation != false",
        "unrestricted capabilities",
        "runAsNonRoot != true",
        "seccompProfile",
    ]
    assert all('"queue-proxy"' not in v for v in found)


REFUSAL = (
    'pods "hello-00001-deployment-5d9c8-x2kqp" is forbidden: violates PodSecurity '
    '"restricted:latest": runAsNonRoot != true (pod or container "user-container" must set '
    "securityContext.runAsNonRoot=true)"
)


@pytest.mark.parametrize("reason", ["FailedCreate", ""])
def test_a_refused_pod_create_fails_the_revision(reason: str) -> None:
    deployment = {
        "spec": {"replicas": 1},
        "status": {
            "conditions": [
                {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"},
                {"type": "ReplicaFailure", "status": "True", "reason": reason, "message": REFUSAL},
            ]
        },
    }
    seen = observe(deployment, [], [], user_container="user-container")
    expected_reason = reason or "ResourcesUnavailable"
    assert seen == Observation(False, expected_reason, REFUSAL, 0, 1)
    record = RevisionRecord(
        key=RevisionKey("secure", "hello-00001"),
        configuration="hello",
        service="hello",
        generation=1,
        created=0.0,
        template=load(SERVICE, "s.yaml")[0].template,  # type: ignore[union-attr]
        container_concurrency=0,
        timeout_seconds=300,
        response_start_timeout_seconds=0,
        idle_timeout_seconds=0,
        container_name="user-container",
        observed=Observed(False, seen.reason, seen.message, 1, 0),
    )
    conditions = {c.type: c for c in revision_conditions(record)}
    for kind in ("ResourcesAvailable", "Ready"):
        assert (conditions[kind].status, conditions[kind].reason) == ("False", expected_reason)
        assert conditions[kind].message == REFUSAL
    assert conditions["ContainerHealthy"].status == "Unknown"
