"""Loading manifests: the docs' examples, multi-document files, and shape errors with
their exact lines (file, object, field path, rule)."""

from __future__ import annotations

import pytest

from tests.api.manifests import (
    AUTOSCALED,
    CONFIG_DOMAIN_SELECTORS,
    CONTAINER,
    DELETE,
    HELLO_V2,
    HELLOWORLD_GO,
    doc,
    dump,
    edit,
)
from zeroserve.api import (
    ConfigMapObject,
    Container,
    EnvVar,
    ManifestError,
    ManifestErrors,
    Route,
    Service,
    TrafficTarget,
    load,
)


def errors_of(text: str, file: str = "bad.yaml") -> list[str]:
    with pytest.raises(ManifestErrors) as info:
        load(text, file)
    return [str(e) for e in info.value.errors]


def test_helloworld_go_loads_as_written() -> None:
    [svc] = load(HELLOWORLD_GO, "helloworld.yaml")
    assert isinstance(svc, Service)
    assert (svc.meta.name, svc.meta.namespace, svc.source) == (
        "helloworld-go",
        "default",
        "helloworld.yaml",
    )
    assert svc.template.containers == (
        Container(
            image="ghcr.io/knative/helloworld-go:latest",
            command=("python", "examples/helloworld/app.py"),
            env=(EnvVar("TARGET", "Go Sample v1"),),
        ),
    )
    assert svc.traffic == ()


def test_traffic_split_targets_keep_what_was_written() -> None:
    [svc] = load(HELLO_V2, "v2.yaml")
    assert isinstance(svc, Service)
    assert svc.traffic == (
        TrafficTarget(latest_revision=True, percent=80),
        TrafficTarget(revision_name="hello-00001", percent=20, tag="current"),
        TrafficTarget(latest_revision=True, tag="latest"),
    )
    assert [t.is_latest for t in svc.traffic] == [True, False, True]


def test_autoscaling_annotations_are_kept_as_strings() -> None:
    [svc] = load(AUTOSCALED, "a.yaml")
    assert isinstance(svc, Service)
    assert svc.template.annotations == {
        "autoscaling.knative.dev/target": "10",
        "autoscaling.knative.dev/min-scale": "1",
        "autoscaling.knative.dev/max-scale": "5",
    }


def test_multi_document_file_skips_empty_documents() -> None:
    text = "---\n" + CONFIG_DOMAIN_SELECTORS + "---\n\n---\n" + HELLOWORLD_GO + "---\n"
    objects = load(text, "all.yaml")
    assert [type(o) for o in objects] == [ConfigMapObject, Service]
    cm = objects[0]
    assert isinstance(cm, ConfigMapObject)
    assert cm.data["example.org"] == "selector:\n  app: nonprofit\n"


def test_standalone_route_and_every_supported_container_field() -> None:
    full = edit(
        doc(),
        CONTAINER,
        {
            "name": "app",
            "image": "img",
            "command": ["python"],
            "args": ["app.py", "--x"],
            "workingDir": "/srv",
            "env": [{"name": "A", "value": "1"}, {"name": "B"}],
            "ports": [{"containerPort": 9000, "name": "h2c", "protocol": "TCP"}],
            "readinessProbe": {
                "httpGet": {
                    "path": "/ready",
                    "port": 9000,
                    "httpHeaders": [{"name": "X", "value": "y"}],
                },
                "periodSeconds": 0,
                "successThreshold": 1,
            },
            "livenessProbe": {"tcpSocket": {}, "initialDelaySeconds": 3},
            "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": 0.25}},
        },
    )
    route = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Route",
        "metadata": {"name": "r", "namespace": "ns"},
        "spec": {"traffic": [{"configurationName": "hello", "percent": 100}]},
    }
    svc, rt = load(dump(full, route), "f.yaml")
    assert isinstance(svc, Service) and isinstance(rt, Route)
    c = svc.template.container
    assert (c.name, c.args, c.working_dir, c.port.container_port, c.port.name) == (
        "app",
        ("app.py", "--x"),
        "/srv",
        9000,
        "h2c",
    )
    assert c.env == (EnvVar("A", "1"), EnvVar("B", ""))
    assert c.readiness_probe == {
        "periodSeconds": 0,
        "successThreshold": 1,
        "httpGet": {"path": "/ready", "port": 9000, "httpHeaders": [{"name": "X", "value": "y"}]},
    }
    assert c.liveness_probe == {"initialDelaySeconds": 3, "tcpSocket": {}}
    assert c.resources == {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": 0.25}}
    assert rt.traffic == (TrafficTarget(configuration_name="hello", percent=100),)
    assert svc.template.to_dict()["spec"]["containers"][0]["ports"] == [
        {"containerPort": 9000, "name": "h2c", "protocol": "TCP"}
    ]


SVC = "bad.yaml: Service default/hello"
C = f"{SVC}: spec.template.spec.containers[0]"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            dump(edit(doc(), ("spec", "template", "spec", "containerConcurrency"), "ten")),
            [f"{SVC}: spec.template.spec.containerConcurrency: must be an integer, got 'ten'"],
            id="integer-as-string",
        ),
        pytest.param(
            dump(edit(doc(), ("spec", "template", "spec", "timeoutSeconds"), 1.5)),
            [f"{SVC}: spec.template.spec.timeoutSeconds: must be an integer, got 1.5"],
            id="float-for-integer",
        ),
        pytest.param(
            dump(edit(doc(), (*CONTAINER, "imagee"), "x")),
            [f"{C}.imagee: unknown field (did you mean 'image'?)"],
            id="typo-field",
        ),
        pytest.param(
            dump(edit(doc(), ("spec", "template", "spec", "restartPolicy"), "Never")),
            [f"{SVC}: spec.template.spec.restartPolicy: must not set the field(s)"],
            id="pod-field-not-in-knative",
        ),
        pytest.param(
            dump(edit(doc(), (*CONTAINER, "env", 0, "value"), 8080)),
            [f"{C}.env[0].value: must be a string (quote it), got 8080"],
            id="unquoted-env-value",
        ),
        pytest.param(
            dump(edit(doc(), (*CONTAINER, "command"), "python app.py")),
            [f"{C}.command: must be a list, got 'python app.py'"],
            id="command-as-string",
        ),
        pytest.param(
            dump(edit(doc(), (*CONTAINER, "args"), [1, "ok", None])),
            [f"{C}.args[0]: must be a string, got 1", f"{C}.args[2]: must be a string, got null"],
            id="args-with-junk",
        ),
        pytest.param(
            dump(
                edit(
                    doc(),
                    ("spec", "template", "metadata"),
                    {"annotations": {"autoscaling.knative.dev/min-scale": 1}},
                )
            ),
            [
                f"{SVC}: spec.template.metadata.annotations.autoscaling.knative.dev/min-scale: "
                "must be a string (quote it), got 1"
            ],
            id="unquoted-annotation",
        ),
        pytest.param(
            dump(edit(doc(), ("status",), {})),
            [f"{SVC}: status: must not be set: status is written by the controller"],
            id="status",
        ),
        pytest.param(
            dump(edit(doc(), ("metadata", "uid"), "abc")),
            [f"{SVC}: metadata.uid: is set by the server; remove it from the manifest"],
            id="server-field",
        ),
        pytest.param(
            dump(edit(doc(), ("spec", "traffic"), [{"percent": 100, "url": "http://x"}])),
            [f"{SVC}: spec.traffic[0].url: must not be set in spec: a target's URL is status only"],
            id="url-in-spec",
        ),
        pytest.param(
            dump(edit(doc(), (*CONTAINER, "livenessProbe"), {"exec": {"command": []}})),
            [f"{C}.livenessProbe.exec.command: missing required field"],
            id="exec-probe-without-command",
        ),
        pytest.param(
            dump(edit(doc(), (*CONTAINER, "env", 0), {"name": "A", "valueFrom": {}})),
            [
                f"{C}.env[0].valueFrom: expected exactly one, got neither: secretKeyRef, "
                "configMapKeyRef, fieldRef, resourceFieldRef"
            ],
            id="env-value-from-empty",
        ),
        pytest.param(
            dump(edit(doc(), (*CONTAINER, "resources"), {"limits": {"memory": "lots"}})),
            [f"{C}.resources.limits.memory: must be a quantity like 500m or 128Mi, got 'lots'"],
            id="bad-quantity",
        ),
        pytest.param(
            dump(edit(doc(), ("spec",), DELETE)),
            [f"{SVC}: spec: missing required field"],
            id="no-spec",
        ),
        pytest.param(
            dump(edit(doc(), ("metadata", "name"), DELETE)),
            ["bad.yaml:1: document 1: metadata.name: missing required field"],
            id="no-name",
        ),
        pytest.param(
            dump(edit(doc(), ("apiVersion",), "serving.knative.dev/v1alpha1")),
            [
                "bad.yaml:1: document 1: apiVersion: must be serving.knative.dev/v1 for a Service, "
                "got 'serving.knative.dev/v1alpha1'"
            ],
            id="old-api-version",
        ),
        pytest.param(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n",
            [
                "bad.yaml:1: document 1: kind: must be Service, Configuration or Route (apiVersion "
                "serving.knative.dev/v1), DomainMapping (apiVersion serving.knative.dev/v1beta1) "
                "or ConfigMap or Secret (apiVersion v1), got 'Deployment'"
            ],
            id="other-kind",
        ),
        pytest.param(
            "apiVersion: v1\nkind: ConfigMap\n"
            "metadata: {name: config-istio, namespace: knative-serving}\ndata: {a: b}\n",
            [
                "bad.yaml: ConfigMap knative-serving/config-istio: metadata.name: is not a "
                "setting zeroserve reads: the ConfigMaps of knative-serving it reads are "
                "config-autoscaler, config-defaults, config-deployment, config-domain, "
                "config-features, config-gc, config-network, config-observability, "
                "config-tracing, got 'config-istio'",
            ],
            id="unknown-setting-configmap",
        ),
        pytest.param(
            "- a\n- b\n---\n42\n",
            [
                "bad.yaml:1: document 1: must be a mapping (a Kubernetes object), got a list",
                "bad.yaml:4: document 2: must be a mapping (a Kubernetes object), got 42",
            ],
            id="non-mapping-documents",
        ),
        pytest.param(
            "kind: Service\nmetadata:\n  name: x\n  name: y\n",
            ["bad.yaml:4: invalid YAML: duplicate key 'name' (first at line 3)"],
            id="duplicate-key",
        ),
        pytest.param(
            "kind: Service\nmetadata: {name: [\n",
            [
                "bad.yaml:3: invalid YAML: while parsing a flow node: expected the node content, "
                "but found '<stream end>'"
            ],
            id="syntax-error",
        ),
        pytest.param(
            "a: !!python/object:os.system {}\n",
            [
                "bad.yaml:1: invalid YAML: could not determine a constructor for the tag "
                "'tag:yaml.org,2002:python/object:os.system'"
            ],
            id="python-tag-refused",
        ),
        pytest.param(
            "a: 2024-01-01\n",
            [
                "bad.yaml:1: document 1: apiVersion: missing required field",
                "bad.yaml:1: document 1: kind: missing required field",
            ],
            id="no-kind",
        ),
    ],
)
def test_shape_errors(text: str, expected: list[str]) -> None:
    assert errors_of(text) == expected


def test_every_error_of_a_file_is_reported_and_syntax_errors_come_last() -> None:
    good = doc()
    text = dump(edit(good, (*CONTAINER, "image"), 1), edit(good, ("spec", "bogus"), 1)) + "---\n[\n"
    assert errors_of(text) == [
        f"{C}.image: must be a string (quote it), got 1",
        f"{SVC}: spec.bogus: unknown field",
        # The stream ends on the line after the last newline.
        f"bad.yaml:{text.count(chr(10)) + 1}: invalid YAML: while parsing a flow node: expected "
        "the node content, but found '<stream end>'",
    ]


def test_a_date_value_is_named_as_a_date() -> None:
    text = dump(edit(doc(), (*CONTAINER, "env", 0, "value"), "X")).replace(
        "value: X", "value: 2024-01-01"
    )
    assert errors_of(text) == [
        f"{C}.env[0].value: must be a string, got the date 2024-01-01 (quote it to make it a string)"
    ]


def test_huge_values_are_clipped_in_messages() -> None:
    text = dump(edit(doc(), ("spec", "template", "spec", "containerConcurrency"), "x" * 10_000))
    [line] = errors_of(text)
    # 60 characters at most: the quote, 56 x's, and "..."
    assert line.endswith("must be an integer, got '" + "x" * 56 + "...")
    assert len(line) < 200


def test_integer_beyond_python_limits_is_a_yaml_error() -> None:
    [line] = errors_of("a: " + "9" * 5000 + "\n")
    assert line.startswith("bad.yaml: invalid YAML: ValueError: Exceeds the limit")


def test_manifest_error_format() -> None:
    assert str(
        ManifestError(
            "hello.yaml",
            "Service default/hello",
            "spec.traffic",
            "percents must add up to 100, got 90",
        )
    ) == ("hello.yaml: Service default/hello: spec.traffic: percents must add up to 100, got 90")
    assert (
        str(ManifestError("f.yaml", "", "", "invalid YAML: x", line=3))
        == "f.yaml:3: invalid YAML: x"
    )
    errors = ManifestErrors([ManifestError("a", "b", "c", "d"), ManifestError("e", "f", "", "g")])
    assert str(errors) == "a: b: c: d\ne: f: g"
