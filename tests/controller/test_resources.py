"""The rendered objects and the pod observations, as plain functions (no API)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from controller import ingress, workloads
from controller.config import Settings, default_gateways
from controller.meta import SPEC_HASH_ANNOTATION
from controller.observe import Observation, observe
from zeroserve.api.objects import (
    Container,
    ContainerPort,
    EnvFrom,
    EnvVar,
    FieldRef,
    KeyRef,
    RevisionTemplate,
)
from zeroserve.serving.revisions import DesiredRevision, desired_revision
from zeroserve.serving.state import RevisionRecord
from zeroserve.topology import RevisionKey

from .helpers import crashing_pod, endpoint_slice

REVISION = {
    "apiVersion": "serving.knative.dev/v1",
    "kind": "Revision",
    "metadata": {
        "name": "hello-00002",
        "namespace": "prod",
        "uid": "u-rev",
        "labels": {
            "serving.knative.dev/service": "hello",
            "serving.knative.dev/configuration": "hello",
            "serving.knative.dev/configurationGeneration": "2",
            "serving.knative.dev/revision": "hello-00002",
            "serving.knative.dev/routingState": "active",
            "team": "a",
        },
        "annotations": {"autoscaling.knative.dev/target": "10"},
    },
}


def desired(template: RevisionTemplate | None = None, **container: Any) -> DesiredRevision:
    """The revision ``prod/hello-00002`` of ``template``, or of one container made of the
    defaults below and ``container`` (Container's fields)."""
    if template is None:
        fields: dict[str, Any] = dict(
            name="app",
            image="registry.example.com/hello:2",
            command=("/hello",),
            args=("--v",),
            env=(EnvVar("TARGET", "Knative"),),
            ports=(ContainerPort(8081),),
            readiness_probe={
                "httpGet": {"path": "/ready"},
                "periodSeconds": 2,
                "timeoutSeconds": 3,
            },
            liveness_probe={"tcpSocket": {}, "initialDelaySeconds": 5},
            resources={"limits": {"memory": "128Mi"}},
        )
        fields.update(container)
        template = RevisionTemplate(containers=(Container(**fields),))
    record = RevisionRecord(
        key=RevisionKey("prod", "hello-00002"),
        configuration="hello",
        service="hello",
        generation=2,
        created=0.0,
        template=template,
        container_concurrency=10,
        timeout_seconds=120,
        response_start_timeout_seconds=30,
        idle_timeout_seconds=0,
        container_name=template.container.name or "user-container",
    )
    return desired_revision(record, reachable=True)


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_the_deployment_injects_the_queue_proxy_and_moves_the_readiness_probe() -> None:
    d = workloads.deployment(desired(), REVISION, image="qp:1", replicas=2, progress_deadline=600)
    assert d["metadata"]["name"] == "hello-00002-deployment"
    assert d["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Revision",
            "name": "hello-00002",
            "uid": "u-rev",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    spec = d["spec"]
    assert spec["replicas"] == 2
    assert spec["selector"] == {"matchLabels": {"serving.knative.dev/revision": "hello-00002"}}
    pod = spec["template"]
    # routingState changes with traffic; on the pods it would restart them.
    assert "serving.knative.dev/routingState" not in pod["metadata"]["labels"]
    assert pod["metadata"]["labels"]["team"] == "a"
    assert pod["spec"]["terminationGracePeriodSeconds"] == 120
    user, queue = pod["spec"]["containers"]
    assert "readinessProbe" not in user
    assert user["livenessProbe"] == {"tcpSocket": {"port": 8081}, "initialDelaySeconds": 5}
    assert user["lifecycle"] == {"preStop": {"httpGet": {"port": 8022, "path": "/wait-for-drain"}}}
    assert (user["command"], user["args"], user["image"]) == (
        ["/hello"],
        ["--v"],
        "registry.example.com/hello:2",
    )
    assert env_of(user) == {
        "TARGET": "Knative",
        "PORT": "8081",
        "K_REVISION": "hello-00002",
        "K_CONFIGURATION": "hello",
        "K_SERVICE": "hello",
    }
    assert user["resources"] == {"limits": {"memory": "128Mi"}}
    assert queue["image"] == "qp:1"
    assert queue["command"] == ["python", "-m", "queueproxy"]
    env = env_of(queue)
    assert json.loads(env.pop("SERVING_READINESS_PROBE")) == {
        "httpGet": {"path": "/ready", "port": 8081},
        "periodSeconds": 2,
        "timeoutSeconds": 3,
    }
    assert env == {
        "SERVING_NAMESPACE": "prod",
        "SERVING_SERVICE": "hello",
        "SERVING_CONFIGURATION": "hello",
        "SERVING_REVISION": "hello-00002",
        "SERVING_POD": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
        "SERVING_POD_IP": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}},
        "CONTAINER_CONCURRENCY": "10",
        "QUEUE_SERVING_PORT": "8012",
        "QUEUE_ADMIN_PORT": "8022",
        "QUEUE_METRICS_PORT": "9090",
        "USER_METRICS_PORT": "9091",
        "USER_PORT": "8081",
        "USER_PROTOCOL": "http1",
        "REVISION_TIMEOUT_SECONDS": "120",
        "REVISION_RESPONSE_START_TIMEOUT_SECONDS": "30",
        "REVISION_IDLE_TIMEOUT_SECONDS": "0",
        "DRAIN_QUIET_PERIOD_SECONDS": "30",
    }
    assert {p["name"]: p["containerPort"] for p in queue["ports"]} == {
        "http": 8012,
        "http-queueadm": 8022,
        "http-autometric": 9090,
        "http-usermetric": 9091,
    }
    assert queue["readinessProbe"] == {
        "httpGet": {
            "port": 8012,
            "path": "/",
            "httpHeaders": [{"name": "K-Network-Probe", "value": "queue"}],
        },
        "periodSeconds": 2,
        "timeoutSeconds": 3,
        "successThreshold": 1,
    }
    security = queue["securityContext"]
    assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]


def test_without_a_readiness_probe_the_queue_proxy_probes_tcp_on_the_user_port() -> None:
    d = workloads.deployment(
        desired(readiness_probe=None), REVISION, image="qp", replicas=1, progress_deadline=600
    )
    queue = d["spec"]["template"]["spec"]["containers"][1]
    assert json.loads(env_of(queue)["SERVING_READINESS_PROBE"]) == {
        "tcpSocket": {"port": 8081},
        "successThreshold": 1,
    }
    # Knative's periodSeconds 0 ("aggressive") is the queue-proxy's; the kubelet needs >= 1.
    assert queue["readinessProbe"]["periodSeconds"] == 1


def test_the_hash_covers_the_pod_but_not_the_replicas() -> None:
    def render(**kw: Any) -> dict[str, Any]:
        args: dict[str, Any] = {"image": "qp:1", "replicas": 1, "progress_deadline": 600, **kw}
        return workloads.deployment(desired(), REVISION, **args)

    digest = render()["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
    assert render(replicas=5)["metadata"]["annotations"][SPEC_HASH_ANNOTATION] == digest
    assert render(image="qp:2")["metadata"]["annotations"][SPEC_HASH_ANNOTATION] != digest
    pod = render()["spec"]["template"]["metadata"]
    assert pod["annotations"] == {  # no hash on pods
        "autoscaling.knative.dev/target": "10",
        "traffic.sidecar.istio.io/excludeInboundPorts": "8022",
    }


def test_the_private_service_publishes_the_queue_proxy_ports() -> None:
    svc = workloads.private_service(REVISION)
    assert svc["metadata"]["name"] == "hello-00002-private"
    assert svc["metadata"]["labels"]["serving.knative.dev/revision"] == "hello-00002"
    assert svc["spec"]["selector"] == {"serving.knative.dev/revision": "hello-00002"}
    assert [(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [
        ("http", 80, 8012),
        ("http-autometric", 9090, 9090),
        ("http-usermetric", 9091, 9091),
        ("http-queueadm", 8022, 8022),
    ]


def test_the_virtual_services_send_every_host_to_the_activator_without_retries() -> None:
    route = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Route",
        "metadata": {"name": "hello", "namespace": "prod", "uid": "u-route"},
    }
    settings = Settings(system_namespace="serving", cluster_domain="corp.local")
    split = ingress.Split(
        "", ("hello.prod.example.com",), ("hello.prod.svc.corp.local", "hello.prod.svc")
    )
    vss = ingress.virtual_services(
        route, [split], default_gateways("serving"), settings, tag_header=False
    )
    vs, mesh = vss["hello-ingress"], vss["hello-mesh"]
    assert vs is not None and mesh is not None
    assert vs["spec"]["gateways"] == [
        "serving/knative-ingress-gateway",
        "serving/knative-local-gateway",
    ]
    destination = {
        "destination": {"host": "activator.serving.svc.corp.local", "port": {"number": 80}},
        "weight": 100,
    }
    assert vs["spec"]["http"] == [
        {
            "match": [
                {
                    "gateways": ["serving/knative-ingress-gateway"],
                    "authority": {"prefix": "hello.prod.example.com"},
                }
            ],
            "route": [destination],
            "retries": {"attempts": 0},
        },
        {
            "match": [
                {
                    "gateways": ["serving/knative-local-gateway"],
                    "authority": {"prefix": "hello.prod.svc"},
                }
            ],
            "route": [destination],
            "retries": {"attempts": 0},
        },
    ]
    assert mesh["spec"]["hosts"] == ["hello.prod.svc.corp.local", "hello.prod.svc"]
    assert mesh["spec"]["gateways"] == ["mesh"]
    assert [r["match"][0]["gateways"] for r in mesh["spec"]["http"]] == [["mesh"]]
    svc = ingress.placeholder_service(route, "current-hello", settings)
    assert svc["spec"]["type"] == "ExternalName"
    assert svc["spec"]["externalName"] == "activator.serving.svc.corp.local"


READY_SLICE = endpoint_slice("hello-00001", ("pod-a", "10.0.0.1"), ("pod-b", "10.0.0.2"))
UNREADY_SLICE = endpoint_slice("hello-00001", ("pod-a", "10.0.0.1"), ready=False)
PUBLIC_SLICE = {
    **READY_SLICE,
    "metadata": {
        **READY_SLICE["metadata"],
        "labels": {
            "serving.knative.dev/revision": "hello-00001",
            "kubernetes.io/service-name": "hello-00001",
        },
    },
}
DEPLOYMENT = {"spec": {"replicas": 2}}
STUCK = {
    "spec": {"replicas": 1},
    "status": {
        "conditions": [
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": 'ReplicaSet "x" has timed out progressing.',
            }
        ]
    },
}
PULL = {
    "metadata": {"name": "p"},
    "status": {
        "containerStatuses": [
            {
                "name": "user-container",
                "state": {
                    "waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}
                },
            }
        ]
    },
}
UNSCHEDULABLE = {
    "metadata": {"name": "p"},
    "status": {
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient cpu.",
            }
        ]
    },
}


@pytest.mark.parametrize(
    ("deployment", "slices", "pods", "expected"),
    [
        (None, [], [], Observation(None)),
        (DEPLOYMENT, [READY_SLICE], [], Observation(True, actual_replicas=2, desired_replicas=2)),
        (DEPLOYMENT, [UNREADY_SLICE], [], Observation(None, actual_replicas=0, desired_replicas=2)),
        # The public Service's slices may list activators: never replicas.
        (DEPLOYMENT, [PUBLIC_SLICE], [], Observation(None, actual_replicas=0, desired_replicas=2)),
        (
            DEPLOYMENT,
            [],
            [crashing_pod("hello-00001", "p", exit_code=3, message="boom\n")],
            Observation(False, "ExitCode3", "Container failed with: boom", 0, 2),
        ),
        (
            DEPLOYMENT,
            [READY_SLICE],
            [crashing_pod("hello-00001", "p")],
            Observation(True, actual_replicas=2, desired_replicas=2),
        ),
        (
            DEPLOYMENT,
            [],
            [PULL],
            Observation(False, "ImagePullBackOff", "Back-off pulling image", 0, 2),
        ),
        (
            DEPLOYMENT,
            [],
            [UNSCHEDULABLE],
            Observation(
                False, "Unschedulable", "0/3 nodes are available: 3 Insufficient cpu.", 0, 2
            ),
        ),
        (
            STUCK,
            [],
            [],
            Observation(
                False, "ProgressDeadlineExceeded", 'ReplicaSet "x" has timed out progressing.', 0, 1
            ),
        ),
    ],
    ids=[
        "nothing-yet",
        "ready",
        "not-ready",
        "public-slice",
        "crash-loop",
        "ready-wins",
        "image-pull",
        "unschedulable",
        "progress-deadline",
    ],
)
def test_observe(deployment: Any, slices: Any, pods: Any, expected: Observation) -> None:
    assert observe(deployment, slices, pods, user_container="user-container") == expected


# ----- the pod as written (issue 13) ------------------------------------------------------

KEY_REF = EnvVar("DB_PASSWORD", value_from=KeyRef("Secret", "db", "password"))
FIELD_REF = EnvVar("POD_IP", value_from=FieldRef("status.podIP"))


def pod_of(rev: DesiredRevision) -> dict[str, Any]:
    d = workloads.deployment(rev, REVISION, image="qp:1", replicas=1, progress_deadline=600)
    spec: dict[str, Any] = d["spec"]["template"]["spec"]
    return spec


def test_every_container_and_pod_field_is_kept_as_written() -> None:
    serving = Container(
        name="app",
        image="registry.example.com/app:1",
        image_pull_policy="IfNotPresent",
        command=("/app",),
        working_dir="/srv",
        env=(EnvVar("TARGET", "x"), KEY_REF, FIELD_REF),
        env_from=(EnvFrom("ConfigMap", "settings"), EnvFrom("Secret", "db", prefix="DB_")),
        ports=(ContainerPort(8081),),
        volume_mounts=({"name": "creds", "mountPath": "/etc/creds", "readOnly": True},),
        security_context={"runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
        termination_message_path="/dev/termination",
        termination_message_policy="File",
        resources={"requests": {"cpu": "100m"}},
    )
    pod = {
        "serviceAccountName": "reader",
        "automountServiceAccountToken": False,
        "imagePullSecrets": [{"name": "registry"}],
        "securityContext": {"runAsUser": 1000, "fsGroup": 2000},
        "volumes": [{"name": "creds", "secret": {"secretName": "db"}}],
        "nodeSelector": {"disktype": "ssd"},
        "enableServiceLinks": True,
    }
    spec = pod_of(desired(RevisionTemplate(containers=(serving,), pod=pod)))
    user, queue = spec["containers"]
    assert {k: spec[k] for k in pod} == pod
    assert spec["terminationGracePeriodSeconds"] == 120
    assert user["imagePullPolicy"] == "IfNotPresent"
    assert user["workingDir"] == "/srv"
    assert user["env"] == [
        {"name": "TARGET", "value": "x"},
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "PORT", "value": "8081"},
        {"name": "K_REVISION", "value": "hello-00002"},
        {"name": "K_CONFIGURATION", "value": "hello"},
        {"name": "K_SERVICE", "value": "hello"},
    ]
    assert user["envFrom"] == [
        {"configMapRef": {"name": "settings"}},
        {"prefix": "DB_", "secretRef": {"name": "db"}},
    ]
    assert user["volumeMounts"] == [{"name": "creds", "mountPath": "/etc/creds", "readOnly": True}]
    assert user["securityContext"] == {"runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
    assert (user["terminationMessagePath"], user["terminationMessagePolicy"]) == (
        "/dev/termination",
        "File",
    )
    assert user["ports"] == [{"name": "user-port", "containerPort": 8081, "protocol": "TCP"}]
    assert queue["name"] == "queue-proxy"


def test_an_exec_readiness_probe_stays_with_the_kubelet() -> None:
    exec_probe = {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 4}
    user, queue = pod_of(desired(readiness_probe=exec_probe))["containers"]
    assert user["readinessProbe"] == exec_probe
    # The queue-proxy only checks that the app listens.
    assert json.loads(env_of(queue)["SERVING_READINESS_PROBE"]) == {
        "tcpSocket": {"port": 8081},
        "periodSeconds": 4,
    }
    assert queue["readinessProbe"]["periodSeconds"] == 4


def test_grpc_and_tcp_readiness_probes_go_to_the_queue_proxy() -> None:
    for probe, expected in [
        ({"grpc": {}, "periodSeconds": 1}, {"grpc": {"port": 8081}, "periodSeconds": 1}),
        ({"grpc": {"port": 8081, "service": "hc"}}, {"grpc": {"port": 8081, "service": "hc"}}),
        ({"tcpSocket": {}}, {"tcpSocket": {"port": 8081}}),
    ]:
        user, queue = pod_of(desired(readiness_probe=probe))["containers"]
        assert "readinessProbe" not in user
        assert json.loads(env_of(queue)["SERVING_READINESS_PROBE"]) == expected


def test_liveness_and_startup_probes_stay_aimed_at_the_user_port() -> None:
    user, _ = pod_of(
        desired(
            liveness_probe={"grpc": {}, "periodSeconds": 3},
            startup_probe={"httpGet": {"path": "/started"}, "failureThreshold": 30},
        )
    )["containers"]
    assert user["livenessProbe"] == {"grpc": {"port": 8081}, "periodSeconds": 3}
    assert user["startupProbe"] == {
        "httpGet": {"path": "/started", "port": 8081},
        "failureThreshold": 30,
    }
    written = pod_of(desired(startup_probe={"exec": {"command": ["true"]}}))["containers"][0]
    assert written["startupProbe"] == {"exec": {"command": ["true"]}}


def test_sidecars_and_init_containers() -> None:
    serving = Container(name="app", image="app:1", ports=(ContainerPort(8881),))
    sidecar = Container(
        image="proxy:1",
        env=(EnvVar("PORT", "8882"),),
        readiness_probe={"exec": {"command": ["true"]}},
        termination_message_policy="File",
    )
    init = Container(image="migrate:1", command=("migrate",), env=(KEY_REF,))
    spec = pod_of(
        desired(
            RevisionTemplate(
                containers=(sidecar, serving, Container(image="log:1")), init_containers=(init,)
            )
        )
    )
    names = [c["name"] for c in spec["containers"]]
    # Knative's defaults for unnamed containers: the template name with a counter.
    assert names == ["user-container-0", "app", "user-container-1", "queue-proxy"]
    side, user, _, _ = spec["containers"]
    assert "ports" not in side
    assert side["readinessProbe"] == {"exec": {"command": ["true"]}}
    assert side["terminationMessagePolicy"] == "File"
    assert side["lifecycle"] == user["lifecycle"]
    assert env_of(side) == {
        "PORT": "8882",
        "K_REVISION": "hello-00002",
        "K_CONFIGURATION": "hello",
        "K_SERVICE": "hello",
    }
    assert env_of(user)["PORT"] == "8881"
    assert user["ports"] == [{"name": "user-port", "containerPort": 8881, "protocol": "TCP"}]
    # Init containers are run by the kubelet as written (as Knative: no PORT, no K_*).
    assert spec["initContainers"] == [
        {
            "name": "init-container",
            "image": "migrate:1",
            "command": ["migrate"],
            "env": [
                {
                    "name": "DB_PASSWORD",
                    "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}},
                }
            ],
        }
    ]
    queue = spec["containers"][-1]
    assert env_of(queue)["USER_PORT"] == "8881"


def test_a_long_route_name_gives_a_virtual_service_name_within_63_characters() -> None:
    long = "a" * 63
    name = ingress.virtual_service_name(long)
    assert len(name) == 63 and name.endswith("-ingress")
    assert ingress.virtual_service_name("a" * 62 + "b") != name
    mesh = ingress.mesh_virtual_service_name(long)
    assert len(mesh) == 63 and mesh.endswith("-mesh")
