"""Pod Security Admission in the fake API server (podsecurity.py): the baseline and
restricted checks, the apiserver's message, and the 403 on a pod create."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from .errors import ApiError
from .fakeapi import FakeKubeAPI
from .podsecurity import admit, level_of, violations

QUEUE = {
    "name": "queue-proxy",
    "image": "q",
    "securityContext": {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    },
}


def pod_spec(user: dict[str, Any] | None = None, **pod: Any) -> dict[str, Any]:
    """A revision-like pod: a user container as given next to a restricted queue-proxy."""
    return {"containers": [{"name": "user-container", "image": "u", **(user or {})}, QUEUE], **pod}


def test_a_bare_user_container_breaks_restricted_and_passes_baseline() -> None:
    assert violations(pod_spec(), "baseline") == []
    assert violations(pod_spec(), "privileged") == []
    assert violations(pod_spec(), "restricted") == [
        'allowPrivilegeEscalation != false (container "user-container" must set '
        "securityContext.allowPrivilegeEscalation=false)",
        'unrestricted capabilities (container "user-container" must set '
        'securityContext.capabilities.drop=["ALL"])',
        'runAsNonRoot != true (pod or container "user-container" must set '
        "securityContext.runAsNonRoot=true)",
        'seccompProfile (pod or container "user-container" must set '
        'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")',
    ]


def test_a_restricted_container_passes() -> None:
    secure = copy.deepcopy(QUEUE["securityContext"])
    secure["capabilities"]["add"] = ["NET_BIND_SERVICE"]
    assert violations(pod_spec({"securityContext": secure}), "restricted") == []
    # the pod's own context covers the containers that say nothing
    pod = pod_spec(
        {"securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}},
        securityContext={"runAsNonRoot": True, "seccompProfile": {"type": "Localhost"}},
    )
    assert violations(pod, "restricted") == []


def test_baseline_checks() -> None:
    spec = pod_spec(
        {
            "ports": [{"containerPort": 80, "hostPort": 80}],
            "securityContext": {
                "privileged": True,
                "capabilities": {"add": ["SYS_ADMIN", "NET_ADMIN", "CHOWN"]},
                "seccompProfile": {"type": "Unconfined"},
                "procMount": "Unmasked",
            },
        },
        hostNetwork=True,
        hostPID=True,
        volumes=[{"name": "root", "hostPath": {"path": "/"}}],
    )
    assert violations(spec, "baseline") == [
        'non-default capabilities (container "user-container" must not include '
        '"NET_ADMIN", "SYS_ADMIN" in securityContext.capabilities.add)',
        "host namespaces (hostNetwork=true, hostPID=true)",
        'hostPath volumes (volume "root")',
        'hostPort (container "user-container" uses hostPort 80)',
        'privileged (container "user-container" must not set securityContext.privileged=true)',
        'procMount (container "user-container" must not set securityContext.procMount to '
        '"Unmasked")',
        'seccompProfile (container "user-container" must not set '
        'securityContext.seccompProfile.type to "Unconfined")',
    ]


def test_restricted_specific_checks_name_every_offender() -> None:
    spec = {
        "securityContext": {"runAsNonRoot": False, "runAsUser": 0},
        "initContainers": [{"name": "init", "image": "i"}],
        "containers": [
            {
                "name": "a",
                "image": "a",
                "securityContext": {
                    "allowPrivilegeEscalation": True,
                    "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "NET_BIND_SERVICE"]},
                    "runAsUser": 0,
                },
            },
        ],
        "volumes": [
            {"name": "nfs", "nfs": {"server": "s", "path": "/"}},
            {"name": "e", "emptyDir": {}},
        ],
    }
    assert violations(spec, "restricted") == [
        'allowPrivilegeEscalation != false (containers "init", "a" must set '
        "securityContext.allowPrivilegeEscalation=false)",
        'unrestricted capabilities (container "init" must set '
        'securityContext.capabilities.drop=["ALL"]; container "a" must not include "CHOWN" '
        "in securityContext.capabilities.add)",
        'restricted volume types (volume "nfs" uses restricted volume type "nfs")',
        "runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false)",
        'runAsUser=0 (pod and container "a" must not set runAsUser=0)',
        'seccompProfile (pod or containers "init", "a" must set '
        'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")',
    ]
    # restricted replaces baseline's hostPath check with its volume types
    host = pod_spec(volumes=[{"name": "h", "hostPath": {"path": "/"}}])
    assert 'restricted volume types (volume "h" uses restricted volume type "hostPath")' in (
        violations(host, "restricted")
    )
    assert not any(v.startswith("hostPath volumes") for v in violations(host, "restricted"))


def namespace(**labels: str) -> dict[str, Any]:
    return {"metadata": {"name": "ns", "labels": labels}}


def test_the_namespace_label_picks_the_level_and_the_version_shows() -> None:
    assert level_of(namespace()) is None
    assert level_of(namespace(**{"pod-security.kubernetes.io/enforce": "privileged"})) is None
    labels = {
        "pod-security.kubernetes.io/enforce": "baseline",
        "pod-security.kubernetes.io/enforce-version": "v1.30",
    }
    assert level_of(namespace(**labels)) == ("baseline", "v1.30")
    pod = {"metadata": {"name": "p"}, "spec": pod_spec(hostIPC=True)}
    with pytest.raises(ApiError) as info:
        admit(pod, namespace(**labels))
    assert str(info.value) == (
        'pods "p" is forbidden: violates PodSecurity "baseline:v1.30": '
        "host namespaces (hostIPC=true)"
    )
    admit(pod, namespace())  # nothing enforced


async def test_a_pod_create_is_refused_with_a_403(
    fake_kube: FakeKubeAPI, k8s_client: client.ApiClient
) -> None:
    fake_kube.put(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": "secure",
                "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
            },
        }
    )
    core = client.CoreV1Api(k8s_client)
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}, "spec": pod_spec()}
    with pytest.raises(ApiException) as info:
        await core.create_namespaced_pod("secure", body)
    assert info.value.status == 403
    status = json.loads(info.value.body)
    assert status["reason"] == "Forbidden"
    assert status["details"] == {"name": "web", "kind": "pods"}
    assert status["message"].startswith(
        'pods "web" is forbidden: violates PodSecurity "restricted:latest": '
        'allowPrivilegeEscalation != false (container "user-container" must set '
    )
    assert fake_kube.get("pods", "secure", "web") is None
    # the same pod is fine where nothing is enforced, and a restricted one is fine here
    await core.create_namespaced_pod("default", body)
    secure = pod_spec({"securityContext": QUEUE["securityContext"]})
    await core.create_namespaced_pod("secure", {**body, "spec": secure})
    assert fake_kube.get("pods", "secure", "web") is not None
