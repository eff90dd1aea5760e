"""The values a platform team sets on the three components (README, "Production
checklist"): priority, pod metadata, extra env, placement, security contexts with the IDs
left to OpenShift, sizing, the activators' disruption budget, and the HPA switch in an
upgrade (Helm's three-way merge, run against the fake API server)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.chart.helm import (
    CHART,
    KUBE_VERSION,
    NAMESPACE,
    RELEASE,
    ROOT,
    Obj,
    ToolError,
    one,
    only,
    render,
)
from tests.cluster.kinds import istio_crds, register_extra_types
from tests.fakes.kubeapi.fakeapi import DEFAULT_NAMESPACES, FakeKubeAPI
from tests.fakes.kubeapi.podsecurity import RESTRICTED, violations

pytestmark = pytest.mark.process  # helm runs for every test

COMPONENTS = ("activator", "autoscaler", "controller")
NODE_LOSS = {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}


def _pod(objects: list[Obj], name: str) -> dict[str, Any]:
    return dict(one(objects, "Deployment", name)["spec"]["template"]["spec"])


def _selector(objects: list[Obj], name: str) -> dict[str, str]:
    return dict(one(objects, "Deployment", name)["spec"]["selector"]["matchLabels"])


def _render_values(helm: str, tmp_path: Path, values: dict[str, Any]) -> list[Obj]:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return render(helm, [path])


def _restricted_violations(pod: dict[str, Any]) -> list[str]:
    """What a pod spec breaks of the `restricted` Pod Security Standard, as the test
    cluster's Pod Security admission checks it (tests/fakes/kubeapi/podsecurity.py)."""
    return violations(pod, RESTRICTED)


# ----- every value, on every component ---------------------------------------------------


def _component_values(name: str) -> dict[str, Any]:
    """Values for one component, each naming the component, so a value rendered on the
    wrong component shows."""
    return {
        "priorityClassName": f"{name}-critical",
        "podAnnotations": {"proxy.istio.io/config": f'{{"terminationDrainDuration": "{name}"}}'},
        "podLabels": {"team": f"platform-{name}"},
        "extraEnv": [
            {"name": "GREETING", "value": name},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        ],
        "nodeSelector": {"pool": f"{name}-pool"},
        "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": name, "effect": "NoSchedule"}
        ],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "zone-of", "operator": "In", "values": [name]}
                            ]
                        }
                    ]
                }
            }
        },
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"spread": name}},
            }
        ],
    }


@pytest.fixture(scope="module")
def set_everywhere(helm: str, tmp_path_factory: pytest.TempPathFactory) -> list[Obj]:
    values = {name: _component_values(name) for name in COMPONENTS}
    return _render_values(helm, tmp_path_factory.mktemp("everywhere"), values)


@pytest.mark.parametrize("name", COMPONENTS)
def test_each_value_renders_on_its_component(set_everywhere: list[Obj], name: str) -> None:
    want = _component_values(name)
    template = one(set_everywhere, "Deployment", name)["spec"]["template"]
    pod = template["spec"]
    assert pod["priorityClassName"] == f"{name}-critical"
    assert template["metadata"]["annotations"] == want["podAnnotations"]
    labels = template["metadata"]["labels"]
    assert labels["team"] == f"platform-{name}"
    # The chart's own labels stay: the selector still picks the pods.
    assert _selector(set_everywhere, name).items() <= labels.items()
    [container] = pod["containers"]
    assert container["env"][-2:] == want["extraEnv"]
    assert container["env"][0]["name"] == "POD_NAME"
    assert pod["nodeSelector"] == {"pool": f"{name}-pool"}
    assert want["tolerations"][0] in pod["tolerations"]
    assert pod["affinity"]["nodeAffinity"] == want["affinity"]["nodeAffinity"]
    assert pod["topologySpreadConstraints"] == want["topologySpreadConstraints"]
    # The chart's defaults are kept next to the values given.
    if name == "autoscaler":
        assert {t["key"] for t in pod["tolerations"]} == {"dedicated"} | NODE_LOSS
        assert "podAntiAffinity" not in pod["affinity"]
    else:
        assert pod["tolerations"] == want["tolerations"]
        assert "podAntiAffinity" in pod["affinity"]


def test_the_deployments_with_every_value_are_valid(set_everywhere: list[Obj]) -> None:
    for d in only(set_everywhere, "Deployment"):
        kubernetes_validate.validate(d, KUBE_VERSION.rsplit(".", 1)[0], strict=True)


# ----- the defaults ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["activator", "controller"])
def test_replicas_prefer_distinct_nodes(default_objects: list[Obj], name: str) -> None:
    pod = _pod(default_objects, name)
    assert pod["affinity"] == {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": _selector(default_objects, name)},
                    },
                }
            ]
        }
    }
    assert "tolerations" not in pod and "priorityClassName" not in pod
    assert (
        "annotations"
        not in one(default_objects, "Deployment", name)["spec"]["template"]["metadata"]
    )


def test_anti_affinity_can_be_replaced_or_turned_off(helm: str, tmp_path: Path) -> None:
    required = {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"a": "b"}}}
        ]
    }
    objects = _render_values(
        helm,
        tmp_path,
        {
            "activator": {"affinity": {"podAntiAffinity": required}},
            "controller": {"affinity": {"podAntiAffinity": {}}},
        },
    )
    assert _pod(objects, "activator")["affinity"] == {"podAntiAffinity": required}
    assert not _pod(objects, "controller").get("affinity", {}).get("podAntiAffinity")


def test_the_autoscaler_leaves_a_lost_node_after_30_seconds(
    default_objects: list[Obj], helm: str, tmp_path: Path
) -> None:
    pod = _pod(default_objects, "autoscaler")
    assert sorted(pod["tolerations"], key=lambda t: t["key"]) == [
        {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}
        for key in sorted(NODE_LOSS)
    ]
    assert "affinity" not in pod  # one replica: nothing to spread
    # A toleration of the same taint in the values replaces the chart's.
    mine = {
        "key": "node.kubernetes.io/unreachable",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 120,
    }
    objects = _render_values(helm, tmp_path, {"autoscaler": {"tolerations": [mine]}})
    tolerations = _pod(objects, "autoscaler")["tolerations"]
    assert mine in tolerations
    assert [t["key"] for t in tolerations].count("node.kubernetes.io/unreachable") == 1
    assert {t["key"] for t in tolerations} == NODE_LOSS


def test_the_activators_budget_is_a_count_of_unavailable(
    default_objects: list[Obj], helm: str
) -> None:
    pdb = one(default_objects, "PodDisruptionBudget", "activator")
    assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
    percent = one(
        render(helm, sets=["activator.pdb.maxUnavailable=25%"]), "PodDisruptionBudget", "activator"
    )
    assert percent["spec"]["maxUnavailable"] == "25%"


# From benchmarks/component_memory.py (README, "Production checklist"): request = settled
# RSS at 1,000 revisions rounded up to 64Mi, limit = twice the peak at 10,000 rounded up
# to 256Mi.
@pytest.mark.parametrize(
    ("name", "cpu", "memory_request", "memory_limit"),
    [
        ("activator", "250m", "128Mi", "768Mi"),
        ("autoscaler", "100m", "128Mi", "1Gi"),
        ("controller", "100m", "192Mi", "1792Mi"),
    ],
)
def test_memory_fits_the_caches(
    default_objects: list[Obj],
    helm: str,
    name: str,
    cpu: str,
    memory_request: str,
    memory_limit: str,
) -> None:
    [container] = _pod(default_objects, name)["containers"]
    assert container["resources"] == {
        "requests": {"cpu": cpu, "memory": memory_request},
        "limits": {"cpu": "1", "memory": memory_limit},
    }
    objects = render(helm, sets=[f"{name}.resources.limits.memory=4Gi"])
    [container] = _pod(objects, name)["containers"]
    assert container["resources"]["limits"]["memory"] == "4Gi"


# ----- security contexts -------------------------------------------------------------------


def test_the_defaults_meet_restricted(objects: list[Obj]) -> None:
    for name in COMPONENTS:
        assert _restricted_violations(_pod(objects, name)) == [], name


def test_ids_left_out_for_openshift(helm: str, tmp_path: Path) -> None:
    objects = _render_values(
        helm,
        tmp_path,
        {
            "podSecurityContext": {"runAsUser": "", "runAsGroup": "", "fsGroup": ""},
            "containerSecurityContext": {"runAsUser": "", "runAsGroup": ""},
        },
    )
    for name in COMPONENTS:
        pod = _pod(objects, name)
        assert pod["securityContext"] == {
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        }, name
        [container] = pod["containers"]
        assert not {"runAsUser", "runAsGroup"} & container["securityContext"].keys(), name
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert _restricted_violations(pod) == [], name


def test_one_components_security_context_over_the_chart_wide(helm: str, tmp_path: Path) -> None:
    objects = _render_values(
        helm,
        tmp_path,
        {
            "controller": {
                "podSecurityContext": {"runAsUser": 1000, "fsGroup": ""},
                "containerSecurityContext": {"runAsUser": 1000},
            }
        },
    )
    pod = _pod(objects, "controller")
    assert pod["securityContext"]["runAsUser"] == 1000
    assert "fsGroup" not in pod["securityContext"]
    assert pod["securityContext"]["runAsGroup"] == 65532
    assert pod["containers"][0]["securityContext"]["runAsUser"] == 1000
    for other in ("activator", "autoscaler"):
        assert _pod(objects, other)["securityContext"]["runAsUser"] == 65532
        assert _pod(objects, other)["securityContext"]["fsGroup"] == 65532


# ----- refusals ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sets", "error"),
    [
        (["controller.podAnotations.a=b"], "Additional property podAnotations is not allowed"),
        (["podSecurityContext.runAsUser=root"], "podSecurityContext.runAsUser"),
        (
            ["autoscaler.containerSecurityContext.runAsUser=-1"],
            "autoscaler.containerSecurityContext.runAsUser: Must be greater than or equal to 0",
        ),
        (["activator.podSecurityContext.runAsUsr=1"], "Additional property runAsUsr"),
        (["activator.pdb.minAvailable=1"], "Additional property minAvailable is not allowed"),
        (["activator.pdb.maxUnavailable=0"], "activator.pdb.maxUnavailable"),
        (["controller.affinity.nodeAfinity.x=y"], "Additional property nodeAfinity"),
        (["autoscaler.extraEnv[0].value=x"], "autoscaler.extraEnv.0: name is required"),
        (["activator.priorityClassName=Not_A_Name"], "activator.priorityClassName"),
        (["activator.podLabels.team=1"], "activator.podLabels.team: Invalid type"),
        (
            ["activator.podLabels.app\\.kubernetes\\.io/component=web"],
            "activator.podLabels.app.kubernetes.io/component: the chart sets this label",
        ),
        (
            ["controller.extraEnv[0].name=POD_NAME", "controller.extraEnv[0].value=x"],
            "controller.extraEnv: POD_NAME is set by the chart",
        ),
    ],
    ids=[
        "typo-in-key",
        "id-not-a-number",
        "negative-id",
        "unknown-security-field",
        "min-available-gone",
        "zero-unavailable",
        "affinity-typo",
        "env-without-name",
        "bad-priority-class",
        "labels-must-be-strings",
        "selector-label",
        "reserved-env",
    ],
)
def test_bad_values_are_refused(helm: str, sets: list[str], error: str) -> None:
    with pytest.raises(ToolError) as e:
        render(helm, sets=sets)
    assert error in str(e.value), str(e.value)


# ----- the HPA switch in an upgrade --------------------------------------------------------


async def _helm(helm: str, kubeconfig: Path, *args: str) -> str:
    home = kubeconfig.parent
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "HOME": str(home),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    proc = await asyncio.create_subprocess_exec(
        helm,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 50)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, f"helm {' '.join(args)}: {err.decode()}"
    return out.decode()


async def test_turning_the_hpa_on_keeps_the_activators_count(helm: str, tmp_path: Path) -> None:
    """Helm 3 upgrades with a three-way merge: dropping `replicas` from the manifest would
    delete the field, and the Deployment would fall to 1 activator until the HPA acts.
    The chart writes the live count back instead, so the activators stay as they are."""

    fixed = ["--namespace", NAMESPACE]
    # The test cluster's API server: the kinds the chart installs, Istio's CRDs.
    api = FakeKubeAPI(crds=istio_crds(), namespaces=(*DEFAULT_NAMESPACES, "istio-system"))
    register_extra_types(api)
    async with api:
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        await _helm(helm, kubeconfig, "install", RELEASE, str(CHART), "--create-namespace", *fixed)
        deployment = api.get("deployments", NAMESPACE, "activator")
        assert deployment is not None and deployment["spec"]["replicas"] == 2
        # Load: the count went up (as the HPA, once on, would also do).
        api.patch("deployments", NAMESPACE, "activator", {"spec": {"replicas": 5}})
        await _helm(
            helm, kubeconfig, "upgrade", RELEASE, str(CHART), *fixed,
            "--set", "activator.hpa.enabled=true",
        )  # fmt: skip
        after = api.get("deployments", NAMESPACE, "activator")
        assert after is not None and after["spec"].get("replicas") == 5  # not deleted (-> 1)
        assert api.get("horizontalpodautoscalers", NAMESPACE, "activator")
        # Off again: the chart's count is written. (Said explicitly: an upgrade given no
        # values at all reuses the previous release's.)
        await _helm(
            helm, kubeconfig, "upgrade", RELEASE, str(CHART), *fixed,
            "--set", "activator.hpa.enabled=false",
        )  # fmt: skip
        final = api.get("deployments", NAMESPACE, "activator")
        assert final is not None and final["spec"]["replicas"] == 2


def test_the_readme_checklist_renders(helm: str, tmp_path: Path) -> None:
    """The README's production values and its OpenShift command render as said."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Production checklist\n", 1)[1].split("\n## ", 1)[0]
    values = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "production.yaml"
    path.write_text(values)
    command = section.split("```sh\n", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    sets = [arg for arg in command.split() if "=" in arg and not arg.startswith("-")]
    assert len(sets) == 5
    objects = render(helm, [path], sets=sets)
    pod = _pod(objects, "activator")
    assert pod["priorityClassName"] == "zeroserve-critical"
    assert "replicas" not in one(objects, "Deployment", "activator")["spec"]
    for name in COMPONENTS:
        pod = _pod(objects, name)
        assert "runAsUser" not in pod["securityContext"]
        assert _restricted_violations(pod) == [], name


def test_no_replicas_in_a_render_with_the_hpa_on(helm: str) -> None:
    objects = render(helm, sets=["activator.hpa.enabled=true"])
    assert "replicas" not in one(objects, "Deployment", "activator")["spec"]
    assert only(objects, "HorizontalPodAutoscaler", "activator")
