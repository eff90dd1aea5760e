"""The three components as rendered: commands that the real programs accept, probes,
security, replicas and disruption budget, Services, the Istio Gateway, ServiceMonitors."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import pytest

from activator.config import parse_args as activator_args
from autoscaler.config import parse_args as autoscaler_args
from controller.config import add_arguments, settings_from
from tests.chart.helm import NAMESPACE, Obj, find_tool, one, only, render, run

pytestmark = pytest.mark.process  # every test here runs a component, helm or kubectl

COMPONENTS = ("activator", "autoscaler", "controller")


def _pod(deployment: Obj) -> dict[str, Any]:
    return dict(deployment["spec"]["template"]["spec"])


def _container(objects: list[Obj], name: str) -> dict[str, Any]:
    [container] = _pod(one(objects, "Deployment", name))["containers"]
    return dict(container)


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", ())}


# ----- security ---------------------------------------------------------------------------


def test_every_pod_runs_restricted(objects: list[Obj]) -> None:
    deployments = only(objects, "Deployment")
    assert {d["metadata"]["name"] for d in deployments} == set(COMPONENTS)
    for d in deployments:
        pod = _pod(d)
        assert pod["securityContext"] == {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "fsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        assert pod["serviceAccountName"] == d["metadata"]["name"]
        assert "hostNetwork" not in pod and "hostPID" not in pod
        for c in pod["containers"] + pod.get("initContainers", []):
            assert c["securityContext"] == {
                "runAsNonRoot": True,
                "runAsUser": 65532,
                "runAsGroup": 65532,
                "readOnlyRootFilesystem": True,
                "allowPrivilegeEscalation": False,
                "privileged": False,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            }, c["name"]
            # The read-only root gets a writable /tmp.
            assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
        assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]


def test_every_container_has_resources_and_probes(objects: list[Obj]) -> None:
    for d in only(objects, "Deployment"):
        for c in _pod(d)["containers"]:
            for kind in ("requests", "limits"):
                assert set(c["resources"][kind]) == {"cpu", "memory"}, (c["name"], kind)
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                handler = c[probe].get("httpGet") or c[probe]["tcpSocket"]
                assert handler["port"] in ports, (c["name"], probe)  # a named port of the container


def test_the_image(default_objects: list[Obj], custom_objects: list[Obj]) -> None:
    for name in COMPONENTS:
        assert _container(default_objects, name)["image"] == "zeroserve:0.1.0"
        assert _container(default_objects, name)["imagePullPolicy"] == "IfNotPresent"
        custom = _container(custom_objects, name)
        assert custom["image"] == (
            "registry.example.com/platform/zeroserve@sha256:"
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        )
        assert custom["imagePullPolicy"] == "Always"
        assert _pod(one(custom_objects, "Deployment", name))["imagePullSecrets"] == [
            {"name": "registry-credentials"}
        ]


# ----- the commands, parsed by the programs themselves ----------------------------------------


def test_the_activator_command(default_objects: list[Obj]) -> None:
    c = _container(default_objects, "activator")
    assert c["command"] == ["python", "-m", "activator"]
    assert c["args"] == [
        "--port",
        "8012",
        "--metrics-port",
        "9090",
        "--autoscaler-url",
        "ws://autoscaler.knative-serving.svc.cluster.local:8080/",
        "--system-namespace",
        "knative-serving",
        "--activator-service",
        "activator",
        "--drain-seconds",
        "45",
        "--cluster-domain",
        "cluster.local",
    ]
    env = _env(c)
    assert env == {
        "POD_NAME": {"fieldRef": {"fieldPath": "metadata.name"}},
        "POD_IP": {"fieldRef": {"fieldPath": "status.podIP"}},
        "LOG_LEVEL": "info",
    }
    settings, options = activator_args(
        c["args"], {"POD_NAME": "activator-7d9f-abcde", "POD_IP": "10.1.2.3"}
    )
    assert (settings.port, settings.metrics_port, settings.drain_seconds) == (8012, 9090, 45)
    assert settings.autoscaler_url == "ws://autoscaler.knative-serving.svc.cluster.local:8080/"
    assert settings.pod_name == "activator-7d9f-abcde"
    assert (options.system_namespace, options.activator_service, options.pod_ip) == (
        "knative-serving",
        "activator",
        "10.1.2.3",
    )
    assert options.namespace is None and options.control is None  # every namespace, Kubernetes mode
    assert options.cluster_domain == "cluster.local"


def test_the_activator_command_follows_the_values(custom_objects: list[Obj]) -> None:
    args = _container(custom_objects, "activator")["args"]
    settings, options = activator_args(args, {"POD_NAME": "a", "POD_IP": "10.0.0.1"})
    assert settings.autoscaler_url == "ws://autoscaler.knative-serving.svc.corp.internal:8080/"
    assert options.cluster_domain == "corp.internal"
    assert (settings.drain_seconds, settings.activation_timeout) == (30, 60)


def test_the_autoscaler_command(objects: list[Obj]) -> None:
    c = _container(objects, "autoscaler")
    assert c["command"] == ["python", "-m", "autoscaler"]
    settings = autoscaler_args(c["args"])
    assert (settings.port, settings.metrics_port, settings.system_namespace) == (
        8080,
        9090,
        NAMESPACE,
    )
    assert settings.leader_elect is True
    assert settings.namespace is None and settings.control is None
    assert _env(c) == {
        "POD_NAME": {"fieldRef": {"fieldPath": "metadata.name"}},
        "LOG_LEVEL": "info",
    }


def test_the_controller_command(objects: list[Obj]) -> None:
    c = _container(objects, "controller")
    assert c["command"] == ["python", "-m", "controller"]
    p = argparse.ArgumentParser()
    add_arguments(p)
    settings = settings_from(p.parse_args(c["args"]))
    assert settings.system_namespace == NAMESPACE
    assert settings.queue_proxy_image == c["image"]  # the sidecar is the same image
    assert settings.metrics_port == 9090 and settings.leader_elect is True
    assert settings.activator_host == f"activator.{NAMESPACE}.svc.{settings.cluster_domain}"
    assert settings.ingress_gateway == f"{NAMESPACE}/knative-ingress-gateway"
    assert _env(c) == {
        "POD_NAME": {"fieldRef": {"fieldPath": "metadata.name"}},
        "POD_NAMESPACE": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        "LOG_LEVEL": "info",
    }


def test_the_controller_runs_as_a_module_and_as_a_zeroserve_alias() -> None:
    """`python -m controller --help` (what the chart runs) and the console script's alias
    `zeroserve controller --help` both show the controller's options (no cluster needed)."""
    zeroserve = find_tool("zeroserve")
    assert zeroserve is not None
    module_help = run(sys.executable, "-m", "controller", "--help")
    assert "--queue-proxy-image" in module_help
    assert run(zeroserve, "controller", "--help") == module_help


def test_the_cluster_domain_reaches_every_component(custom_objects: list[Obj]) -> None:
    p = argparse.ArgumentParser()
    add_arguments(p)
    assert (
        settings_from(p.parse_args(_container(custom_objects, "controller")["args"])).cluster_domain
        == "corp.internal"
    )
    assert (
        "ws://autoscaler.knative-serving.svc.corp.internal:8080/"
        in _container(custom_objects, "activator")["args"]
    )


# ----- the activator on every request's path ------------------------------------------------


def test_activator_replicas_and_budget(default_objects: list[Obj], helm: str) -> None:
    d = one(default_objects, "Deployment", "activator")
    assert d["spec"]["replicas"] == 2
    assert d["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pdb = one(default_objects, "PodDisruptionBudget", "activator")
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": pdb["spec"]["selector"]}
    assert pdb["spec"]["selector"]["matchLabels"] == d["spec"]["selector"]["matchLabels"]
    assert not only(default_objects, "HorizontalPodAutoscaler")
    three = render(helm, sets=["activator.replicas=3"])
    assert one(three, "Deployment", "activator")["spec"]["replicas"] == 3
    assert not only(render(helm, sets=["activator.pdb.enabled=false"]), "PodDisruptionBudget")


def test_activator_hpa(custom_objects: list[Obj]) -> None:
    d = one(custom_objects, "Deployment", "activator")
    assert "replicas" not in d["spec"]  # the HPA owns the count; an upgrade must not reset it
    hpa = one(custom_objects, "HorizontalPodAutoscaler", "activator")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "activator",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80},
            },
        }
    ]
    assert _pod(d)["nodeSelector"] == {"node-role.example.org/edge": "true"}


def test_activator_drains_within_its_grace_period(objects: list[Obj]) -> None:
    d = one(objects, "Deployment", "activator")
    args = _container(objects, "activator")["args"]
    drain = float(args[args.index("--drain-seconds") + 1])
    assert _pod(d)["terminationGracePeriodSeconds"] == 600
    # The drain, then in-flight requests up to the longest revision timeout (600 s) minus the drain.
    assert _pod(d)["terminationGracePeriodSeconds"] > drain


def test_activator_probes_ask_the_activator(default_objects: list[Obj]) -> None:
    c = _container(default_objects, "activator")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {
            "path": "/",
            "port": "http",
            "httpHeaders": [{"name": "K-Network-Probe", "value": "activator"}],
        }
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {
        "http": 8012,
        "http-metrics": 9090,
    }
    # Spread over nodes unless the values say otherwise.
    [spread] = _pod(one(default_objects, "Deployment", "activator"))["topologySpreadConstraints"]
    assert (
        spread["topologyKey"] == "kubernetes.io/hostname"
        and spread["whenUnsatisfiable"] == "ScheduleAnyway"
    )


def test_autoscaler_is_one_replica_replaced_not_rolled(objects: list[Obj]) -> None:
    d = one(objects, "Deployment", "autoscaler")
    assert d["spec"]["replicas"] == 1
    assert d["spec"]["strategy"] == {"type": "Recreate"}
    c = _container(objects, "autoscaler")
    assert c["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


def test_controller_replicas_and_probes(
    default_objects: list[Obj], custom_objects: list[Obj]
) -> None:
    assert one(default_objects, "Deployment", "controller")["spec"]["replicas"] == 1
    assert one(custom_objects, "Deployment", "controller")["spec"]["replicas"] == 2
    c = _container(default_objects, "controller")
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-metrics"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-metrics"}


def test_components_stay_out_of_the_mesh(objects: list[Obj], helm: str) -> None:
    for d in only(objects, "Deployment"):
        assert d["spec"]["template"]["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"
    for d in only(render(helm, sets=["istio.injectSidecar=true"]), "Deployment"):
        assert d["spec"]["template"]["metadata"]["labels"]["sidecar.istio.io/inject"] == "true"


# ----- Services, Gateway, ServiceMonitors ----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "ports"),
    [
        ("activator", [("http", 80, 8012), ("http2", 81, 8012), ("http-metrics", 9090, 9090)]),
        ("autoscaler", [("http-websocket", 8080, 8080), ("http-metrics", 9090, 9090)]),
        ("controller", [("http-metrics", 9090, 9090)]),
    ],
)
def test_services(objects: list[Obj], name: str, ports: list[tuple[str, int, int]]) -> None:
    svc = one(objects, "Service", name, NAMESPACE)
    assert [(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == ports
    d = one(objects, "Deployment", name)
    pod_labels = d["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"] == d["spec"]["selector"]["matchLabels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    container_ports = {p["containerPort"] for p in _container(objects, name)["ports"]}
    assert {p["targetPort"] for p in svc["spec"]["ports"]} <= container_ports


def test_the_gateway(default_objects: list[Obj], custom_objects: list[Obj], helm: str) -> None:
    gw = one(default_objects, "Gateway", "knative-ingress-gateway", NAMESPACE)
    assert gw["spec"] == {
        "selector": {"istio": "ingressgateway"},
        "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}],
    }
    custom = one(custom_objects, "Gateway", "knative-ingress-gateway", NAMESPACE)
    assert custom["spec"]["selector"] == {"istio": "public-gateway"}
    assert [
        g["metadata"]["name"]
        for g in only(render(helm, sets=["istio.gateway.create=false"]), "Gateway")
    ] == ["knative-local-gateway"]
    # The controller creates the VirtualServices; the chart renders none.
    assert not only(default_objects, "VirtualService") and not only(
        custom_objects, "VirtualService"
    )


def test_the_local_gateway_is_net_istios(default_objects: list[Obj], helm: str) -> None:
    """``knative-local-gateway``: port 8081 of the ingress gateway pods, and its Service
    (80 -> 8081) beside those pods in istio-system, as Knative's net-istio installs it."""
    gw = one(default_objects, "Gateway", "knative-local-gateway", NAMESPACE)
    assert gw["spec"] == {
        "selector": {"istio": "ingressgateway"},
        "servers": [{"port": {"number": 8081, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}],
    }
    svc = one(default_objects, "Service", "knative-local-gateway", "istio-system")
    assert svc["spec"] == {
        "type": "ClusterIP",
        "selector": {"istio": "ingressgateway"},
        "ports": [{"name": "http2", "port": 80, "targetPort": 8081, "protocol": "TCP"}],
    }
    without = render(helm, sets=["istio.localGateway.create=false"])
    assert not only(without, "Gateway", "knative-local-gateway")
    assert not only(without, "Service", "knative-local-gateway")


def test_service_monitors(custom_objects: list[Obj], default_objects: list[Obj]) -> None:
    assert not only(default_objects, "ServiceMonitor")
    for name in COMPONENTS:
        sm = one(custom_objects, "ServiceMonitor", name, NAMESPACE)
        svc = one(custom_objects, "Service", name, NAMESPACE)
        assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
        assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
        assert sm["spec"]["endpoints"] == [
            {"port": "http-metrics", "path": "/metrics", "interval": "15s"}
        ]
        assert "http-metrics" in {p["name"] for p in svc["spec"]["ports"]}
        # Each selects its own Service only.
        others = [s for s in only(custom_objects, "Service", namespace=NAMESPACE) if s is not svc]
        assert not any(
            sm["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
            for s in others
        )
