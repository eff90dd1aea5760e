"""helm lint, helm template, and every rendered object against a schema.

Kubernetes' own kinds are validated with kubernetes-validate's schemas for Kubernetes
1.31 in strict mode (unknown fields fail); the two third-party kinds against the schemas
in ``thirdparty``. A kind with neither fails, so nothing is skipped silently.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml

from tests.chart.helm import (
    CHART,
    CUSTOM_VALUES,
    KUBE_VERSION,
    NAMESPACE,
    Obj,
    ToolError,
    key,
    render,
    run,
)
from tests.chart.thirdparty import SCHEMAS

VALIDATE_VERSION = KUBE_VERSION.rsplit(".", 1)[0]


def test_kubernetes_validate_ships_the_version() -> None:
    # It falls back to an older version's schemas; make sure 1.31's are really there.
    assert VALIDATE_VERSION in {
        v.rsplit(".", 1)[0] for v in kubernetes_validate.utils.all_versions()
    }


@pytest.mark.process
@pytest.mark.parametrize("values", [[], [CUSTOM_VALUES]], ids=["default", "custom"])
def test_helm_lint_is_clean(helm: str, values: list[Path]) -> None:
    args = [
        "lint",
        str(CHART),
        "--strict",
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
    ]
    for v in values:
        args += ["--values", str(v)]
    out = run(helm, *args)
    assert "1 chart(s) linted, 0 chart(s) failed" in out
    # --strict turns warnings into failures; the one INFO left is the missing icon.
    assert "[WARNING]" not in out and "[ERROR]" not in out


@pytest.mark.process
def test_every_object_is_named_once(objects: list[Obj]) -> None:
    counts = Counter(key(o) for o in objects)
    assert [k for k, n in counts.items() if n > 1] == []


@pytest.mark.process
def test_namespaced_objects_are_in_the_release_namespace(objects: list[Obj]) -> None:
    cluster_scoped = {
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    }
    for o in objects:
        ns = o["metadata"].get("namespace")
        if o["kind"] in cluster_scoped:
            assert ns is None, key(o)
        elif o["kind"] == "NetworkPolicy" and o["metadata"]["name"].endswith("-revisions"):
            assert ns != NAMESPACE, key(o)  # the one kind that goes to the workload namespaces
        elif o["kind"] == "Service" and o["metadata"]["name"] == "knative-local-gateway":
            assert ns == "istio-system", key(o)  # beside the Istio gateway pods it selects
        elif o["kind"] == "ConfigMap" and "grafana_dashboard" in o["metadata"]["labels"]:
            assert ns == "monitoring", key(o)  # dashboards.namespace in values-custom.yaml
        else:
            assert ns == NAMESPACE, key(o)


@pytest.mark.process
def test_every_object_is_valid_against_its_schema(objects: list[Obj]) -> None:
    problems = []
    for o in objects:
        third_party = SCHEMAS.get((o["apiVersion"], o["kind"]))
        try:
            if third_party is not None:
                jsonschema.validate(o, third_party)
            else:
                kubernetes_validate.validate(o, VALIDATE_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(
                f"{key(o)}: no schema for {o['apiVersion']} {o['kind']}; add one to thirdparty.py"
            )
        except jsonschema.ValidationError as e:
            problems.append(f"{key(o)}: {'.'.join(map(str, e.absolute_path))}: {e.message}")
    assert problems == []


@pytest.mark.process
def test_the_custom_render_has_every_optional_kind(custom_objects: list[Obj]) -> None:
    kinds = Counter(o["kind"] for o in custom_objects)
    assert kinds["ServiceMonitor"] == 3
    assert kinds["HorizontalPodAutoscaler"] == 1
    assert kinds["CustomResourceDefinition"] == 0  # crds.install: false
    assert kinds["Gateway"] == 2


@pytest.mark.process
def test_the_default_render(default_objects: list[Obj]) -> None:
    kinds = Counter(o["kind"] for o in default_objects)
    assert kinds == {
        "CustomResourceDefinition": 6,  # Knative's four, DomainMapping, ClusterDomainClaim
        "Deployment": 3,
        "Service": 5,  # the components' three, the webhook and knative-local-gateway
        "Secret": 1,  # webhook-certs, filled by the controller
        "MutatingWebhookConfiguration": 1,
        "ValidatingWebhookConfiguration": 1,
        "ServiceAccount": 3,
        "ClusterRole": 6,  # the components' three, and admin, edit, view for namespace users
        "ClusterRoleBinding": 3,
        "Role": 3,
        "RoleBinding": 3,
        "ConfigMap": 10,
        "PodDisruptionBudget": 1,
        "Gateway": 2,
        "NetworkPolicy": 4,  # activator, autoscaler, controller, and the revisions in "default"
    }


def test_schema_validation_catches_a_bad_object() -> None:
    """The validators are not vacuous: a misspelt field and a wrong type both fail."""
    bad_deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {"replica": 2, "selector": {}, "template": {}},
    }
    with pytest.raises(jsonschema.ValidationError):
        kubernetes_validate.validate(bad_deployment, VALIDATE_VERSION, strict=True)
    bad_gateway = {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "Gateway",
        "metadata": {"name": "g", "namespace": "n"},
        "spec": {
            "servers": [
                {"port": {"number": "80", "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}
            ]
        },
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad_gateway, SCHEMAS[("networking.istio.io/v1beta1", "Gateway")])


@pytest.mark.process
@pytest.mark.parametrize(
    ("sets", "error"),
    [
        (["activator.replicas=1"], "activator.replicas: Must be greater than or equal to 2"),
        (
            ["activator.hpa.enabled=true", "activator.hpa.minReplicas=1"],
            "activator.hpa.minReplicas: Must be greater than or equal to 2",
        ),
        (
            [
                "activator.hpa.enabled=true",
                "activator.hpa.maxReplicas=2",
                "activator.hpa.minReplicas=3",
            ],
            "maxReplicas must be at least",
        ),
        (["activator.drainSeconds=700"], "must exceed activator.drainSeconds"),
        (["activator.replica=3"], "Additional property replica is not allowed"),
        (
            ["config.autoscaler.stable-window[0]=30s"],
            "config.autoscaler.stable-window: Invalid type",
        ),
        (["image.digest=latest"], "image.digest: Does not match pattern"),
    ],
    ids=[
        "one-activator",
        "hpa-min-1",
        "hpa-max-below-min",
        "grace-below-drain",
        "typo",
        "number-in-configmap",
        "bad-digest",
    ],
)
def test_bad_values_are_refused(helm: str, sets: list[str], error: str) -> None:
    with pytest.raises(ToolError) as e:
        render(helm, sets=sets)
    assert error in str(e.value)


def _notes(helm: str, tmp_path: Path, values: list[Path]) -> str:
    """NOTES.txt as helm would print it after an install (helm template leaves it out,
    so a copy of the chart renders it inside a manifest)."""
    chart = tmp_path / "zeroserve"
    shutil.copytree(CHART, chart)
    source = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "zz-notes.yaml").write_text(
        '{{- define "test.notes" -}}\n'
        + source
        + '{{- end -}}\nnotes: {{ include "test.notes" . | toJson }}\n'
    )
    [doc] = [o for o in render(helm, values, chart=chart) if "notes" in o]
    return str(doc["notes"])


@pytest.mark.process
def test_notes_tell_the_next_steps(helm: str, tmp_path: Path) -> None:
    notes = _notes(helm, tmp_path, [])
    assert "kubectl -n knative-serving wait deployment --all --for=condition=Available" in notes
    assert "image: ghcr.io/knative/helloworld-go:latest" in notes
    assert 'curl -H "Host: helloworld-go.default.example.com" "http://$INGRESS"' in notes
    assert "kubectl edit cm config-domain -n knative-serving" in notes
    # The manifest in the notes is a valid Knative Service.
    manifest = notes.split("<<'YAML'\n", 1)[1].split("     YAML", 1)[0]
    svc = yaml.safe_load("\n".join(line[5:] for line in manifest.splitlines()))
    assert svc["kind"] == "Service" and svc["spec"]["template"]["spec"]["containers"][0]["image"]


@pytest.mark.process
def test_notes_follow_the_values(helm: str, tmp_path: Path) -> None:
    notes = _notes(helm, tmp_path, [CUSTOM_VALUES])
    assert "helloworld-go.default.apps.example.org" in notes
    assert "crds.install is false" in notes
    assert "default, shop, payments" in notes
