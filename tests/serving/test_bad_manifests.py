"""Bad manifests, each with its exact error line(s) -- file, object, field path, rule --
and the proof that the controller changed nothing: same version, same objects, same
routing table, same revisions, same settings."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.manifests import CONTAINER, HELLO_V1, HELLO_V2, doc, dump, edit, snapshot
from zeroserve.api import ManifestErrors, load
from zeroserve.serving.controller import Controller
from zeroserve.topology import RevisionKey

SVC = "bad.yaml: Service default/hello"
C = f"{SVC}: spec.template.spec.containers[0]"
ANN = f"{SVC}: spec.template.metadata.annotations.autoscaling.knative.dev"
TEMPLATE = ("spec", "template")
POD = ("spec", "template", "spec")
V2 = doc(HELLO_V2)


def annotated(**annotations: str) -> dict[str, Any]:
    return edit(
        doc(),
        (*TEMPLATE, "metadata", "annotations"),
        {f"autoscaling.knative.dev/{k.replace('_', '-')}": v for k, v in annotations.items()},
    )


def traffic(*targets: dict[str, Any]) -> dict[str, Any]:
    return edit(doc(), ("spec", "traffic"), list(targets))


def config_map(name: str, **data: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "knative-serving"},
        "data": {k.replace("_", "-"): v for k, v in data.items()},
    }


CASES: list[Any] = [
    # ----- types and fields -----
    pytest.param(
        dump(edit(doc(), (*POD, "containerConcurrency"), "ten")),
        [f"{SVC}: spec.template.spec.containerConcurrency: must be an integer, got 'ten'"],
        id="cc-not-integer",
    ),
    pytest.param(
        dump(edit(doc(), (*CONTAINER, "imagee"), "x")),
        [f"{C}.imagee: unknown field (did you mean 'image'?)"],
        id="unknown-field",
    ),
    pytest.param(
        dump(edit(doc(), (*POD, "nodeSelector"), {"disktype": "ssd"})),
        [
            f"{SVC}: spec.template.spec.nodeSelector: must not set the field(s) (it needs "
            "kubernetes.podspec-nodeselector: enabled in config-features)"
        ],
        id="feature-flag-off",
    ),
    pytest.param(
        dump(edit(doc(), ("status",), {"url": "x"})),
        [f"{SVC}: status: must not be set: status is written by the controller"],
        id="status",
    ),
    pytest.param(
        dump(edit(doc(), (*CONTAINER, "env", 0, "value"), 1)),
        [f"{C}.env[0].value: must be a string (quote it), got 1"],
        id="env-value-int",
    ),
    pytest.param(
        "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: hello\n",
        [
            "bad.yaml:4: invalid YAML: while parsing a flow mapping: expected ',' or '}', but got "
            "'<stream end>'"
        ],
        id="yaml-syntax",
    ),
    pytest.param(
        "[1, 2]\n",
        ["bad.yaml:1: document 1: must be a mapping (a Kubernetes object), got a list"],
        id="non-mapping",
    ),
    # ----- names -----
    pytest.param(
        dump(edit(doc(), ("metadata", "name"), "Hello_World")),
        [
            "bad.yaml: Service default/Hello_World: metadata.name: must be a DNS-1035 label "
            "(lower-case letters, digits and '-', starting with a letter and ending with a letter "
            "or digit), got 'Hello_World'"
        ],
        id="name-not-dns",
    ),
    pytest.param(
        dump(edit(doc(), ("metadata", "name"), "h" * 64)),
        [
            f"bad.yaml: Service default/{'h' * 64}: metadata.name: must be at most 63 characters, "
            f"got 64 ('{'h' * 56}...)"
        ],
        id="name-too-long",
    ),
    pytest.param(
        dump(edit(doc(), ("metadata", "namespace"), "Prod")),
        [
            "bad.yaml: Service Prod/hello: metadata.namespace: must be a DNS-1123 label (lower-case "
            "letters, digits and '-', starting and ending with a letter or digit), got 'Prod'"
        ],
        id="namespace-not-dns",
    ),
    pytest.param(
        dump(edit(doc(), (*TEMPLATE, "metadata", "name"), "world-1")),
        [
            f"{SVC}: spec.template.metadata.name: must start with 'hello-' (the configuration's "
            "name), got 'world-1'"
        ],
        id="template-name-prefix",
    ),
    # ----- traffic (knative/serving pkg/apis/serving/v1/route_validation.go) -----
    pytest.param(
        dump(
            traffic(
                {"latestRevision": True, "percent": 80},
                {"revisionName": "hello-00001", "percent": 10},
            )
        ),
        [f"{SVC}: spec.traffic: percents must add up to 100, got 90"],
        id="percent-sum",
    ),
    pytest.param(
        dump(traffic({"latestRevision": True, "percent": 101})),
        [f"{SVC}: spec.traffic[0].percent: must be between 0 and 100, got 101"],
        id="percent-range",
    ),
    pytest.param(
        dump(traffic({"percent": 100, "tag": "a"}, {"revisionName": "hello-00001", "tag": "a"})),
        [f"{SVC}: spec.traffic[1].tag: 'a' is used twice (also spec.traffic[0].tag)"],
        id="duplicate-tag",
    ),
    pytest.param(
        dump(traffic({"percent": 100, "tag": "Current"})),
        [
            f"{SVC}: spec.traffic[0].tag: must be a DNS-1035 label (lower-case letters, digits and "
            "'-', starting with a letter and ending with a letter or digit), got 'Current'"
        ],
        id="tag-not-dns",
    ),
    pytest.param(
        dump(traffic({"percent": 100, "tag": "t" * 58})),
        [
            f"{SVC}: spec.traffic[0].tag: {'t' * 58}-hello (the tag's host name label) must be at "
            "most 63 characters"
        ],
        id="tag-host-too-long",
    ),
    pytest.param(
        dump(traffic({"revisionName": "hello-00001", "latestRevision": True, "percent": 100})),
        [
            f"{SVC}: spec.traffic[0].latestRevision: must be false (or unset) when revisionName is "
            "set"
        ],
        id="latest-with-name",
    ),
    pytest.param(
        dump(traffic({"latestRevision": False, "percent": 100})),
        [
            f"{SVC}: spec.traffic[0].latestRevision: must be true (or unset) when revisionName is "
            "not set"
        ],
        id="not-latest-without-name",
    ),
    pytest.param(
        dump(traffic({"configurationName": "hello", "percent": 100})),
        [
            f"{SVC}: spec.traffic[0].configurationName: not allowed in a Service (its own "
            "configuration is implied)"
        ],
        id="configuration-in-service",
    ),
    pytest.param(
        dump(
            {
                "apiVersion": "serving.knative.dev/v1",
                "kind": "Route",
                "metadata": {"name": "r"},
                "spec": {
                    "traffic": [{"revisionName": "a-1", "configurationName": "a", "percent": 100}]
                },
            }
        ),
        [
            "bad.yaml: Route default/r: spec.traffic[0]: expected exactly one of revisionName or "
            "configurationName, got both"
        ],
        id="route-both-targets",
    ),
    # ----- the container -----
    pytest.param(
        dump(edit(doc(), (*CONTAINER, "command"), [])),
        [
            f"{C}.command: required locally: the image is not pulled, so the container needs a "
            'command: to run, e.g. command: ["python", "app.py"]'
        ],
        id="no-command",
    ),
    pytest.param(
        dump(
            edit(doc(), (*POD, "containers"), doc()["spec"]["template"]["spec"]["containers"] * 2)
        ),
        [
            f"{SVC}: spec.template.spec.containers[*].ports: more than one container port is "
            "set: only a single port is allowed across all containers"
        ],
        id="two-containers-with-ports",
    ),
    pytest.param(
        dump(
            edit(doc(), (*CONTAINER, "ports"), [{"containerPort": 8080}, {"containerPort": 8081}])
        ),
        [
            f"{SVC}: spec.template.spec.containers[*].ports: more than one container port is "
            "set: only a single port is allowed across all containers"
        ],
        id="two-ports",
    ),
    pytest.param(
        dump(edit(doc(), (*CONTAINER, "ports", 0, "name"), "grpc")),
        [
            f"{C}.ports[0].name: Port name grpc is not allowed: name must be empty, or one of: "
            "'h2c', 'http1'"
        ],
        id="port-name",
    ),
    pytest.param(
        dump(edit(doc(), (*CONTAINER, "ports", 0, "containerPort"), 9090)),
        [
            f"{C}.ports[0].containerPort: 9090 is a reserved port, please use a different value "
            "(8012, 8013, 8022, 8112, 9090, 9091 belong to the queue-proxy)"
        ],
        id="reserved-port",
    ),
    pytest.param(
        dump(edit(doc(), (*CONTAINER, "env", 0, "name"), "1TARGET")),
        [
            f"{C}.env[0].name: must be a valid environment variable name (letters, digits, '_', "
            "'-' and '.', not starting with a digit), got '1TARGET'"
        ],
        id="env-name",
    ),
    pytest.param(
        dump(edit(doc(), (*CONTAINER, "env", 0, "name"), "PORT")),
        [
            f"{C}.env[0].name: 'PORT' is a reserved environment variable (PORT, K_SERVICE, "
            "K_CONFIGURATION, K_REVISION)"
        ],
        id="env-reserved",
    ),
    pytest.param(
        dump(edit(doc(), (*CONTAINER, "readinessProbe"), {"tcpSocket": {"port": 9000}})),
        [
            f"{C}.readinessProbe.tcpSocket.port: Probe port must match container port: 8080 (or "
            "unset), got 9000"
        ],
        id="probe-port",
    ),
    pytest.param(
        dump(edit(doc(), (*POD, "timeoutSeconds"), 3600)),
        [
            f"{SVC}: spec.template.spec.timeoutSeconds: must be between 0 and 600 (config-defaults "
            "max-revision-timeout-seconds), got 3600"
        ],
        id="timeout-over-max",
    ),
    pytest.param(
        dump(edit(doc(), (*POD, "containerConcurrency"), 1001)),
        [
            f"{SVC}: spec.template.spec.containerConcurrency: must be between 0 and 1000 "
            "(config-defaults container-concurrency-max-limit), got 1001"
        ],
        id="cc-over-limit",
    ),
    # ----- autoscaling annotations (docs/autoscaling.md, "Annotations"): key, value, range -----
    pytest.param(
        dump(annotated(min_scale="-1")),
        [f"{ANN}/min-scale: must be an integer >= 0, got '-1'"],
        id="min-scale-negative",
    ),
    pytest.param(
        dump(annotated(min_scale="3", max_scale="2")),
        [f"{ANN}/max-scale: must be 0 or an integer >= min-scale (3), got '2'"],
        id="max-below-min",
    ),
    pytest.param(
        dump(annotated(target="0")),
        [f"{ANN}/target: must be a number >= 0.01, got '0'"],
        id="target-zero",
    ),
    pytest.param(
        dump(annotated(window="3s")),
        [f"{ANN}/window: must be between 6s and 1h in whole seconds, got '3s'"],
        id="window-short",
    ),
    pytest.param(
        dump(annotated(metric="cpu")),
        [f"{ANN}/metric: must be concurrency or rps, got 'cpu'"],
        id="metric-cpu",
    ),
    pytest.param(
        dump(annotated(minscale="1")),
        [f"{ANN}/minscale: unknown autoscaling annotation"],
        id="annotation-typo",
    ),
    pytest.param(
        dump(edit(doc(), ("metadata", "annotations"), {"autoscaling.knative.dev/min-scale": "1"})),
        [
            f"{SVC}: metadata.annotations.autoscaling.knative.dev/min-scale: autoscaling annotations "
            "belong in spec.template.metadata.annotations (they would have no effect here)"
        ],
        id="annotation-on-service",
    ),
    pytest.param(
        dump(annotated(**{"class": "hpa.autoscaling.knative.dev"})),
        [
            f"{ANN}/class: only kpa.autoscaling.knative.dev is supported by zeroserve, got "
            "'hpa.autoscaling.knative.dev'"
        ],
        id="hpa-class",
    ),
    # ----- ConfigMaps -----
    pytest.param(
        dump(config_map("config-autoscaler", stable_window="3s")),
        [
            "bad.yaml: ConfigMap knative-serving/config-autoscaler: data.stable-window: must be "
            "between 6s and 1h in whole seconds, got '3s'"
        ],
        id="config-autoscaler",
    ),
    pytest.param(
        dump(config_map("config-autoscaler", enable_scale_to_zero=False)),
        [
            "bad.yaml: ConfigMap knative-serving/config-autoscaler: data.enable-scale-to-zero: must "
            "be a string (quote it), got false"
        ],
        id="config-unquoted-bool",
    ),
    pytest.param(
        dump(config_map("config-domain", **{"example.com": "selector: nope"})),
        [
            "bad.yaml: ConfigMap knative-serving/config-domain: data.example.com: selector: must "
            "map label names to string values, got 'selector: nope'"
        ],
        id="config-domain",
    ),
    # ----- against the current state -----
    pytest.param(
        dump(edit(V2, ("spec", "template", "metadata", "name"), "hello-00001")),
        [
            f"{SVC}: spec.template.metadata.name: 'hello-00001' already names a revision with a "
            "different template; a revision cannot change, so give the changed template a new name"
        ],
        id="changed-template-same-name",
    ),
    pytest.param(
        dump(
            {
                "apiVersion": "serving.knative.dev/v1",
                "kind": "Route",
                "metadata": {"name": "hello"},
                "spec": {"traffic": [{"revisionName": "hello-00001", "percent": 100}]},
            }
        ),
        [
            "bad.yaml: Route default/hello: metadata.name: Route default/hello is owned by Service "
            "default/hello; change the Service instead"
        ],
        id="owned-route",
    ),
    pytest.param(dump(doc(), doc()), [f"{SVC}: given twice in one apply"], id="same-object-twice"),
]


@pytest.fixture
def controller() -> Controller:
    """hello v1 applied and ready, as a user would have it before a bad apply."""
    c = Controller(0.0)
    c.apply(load(HELLO_V1, "v1.yaml"), now=1.0)
    c.set_revision_state(
        RevisionKey("default", "hello-00001"),
        ready=True,
        actual_replicas=1,
        desired_replicas=1,
        now=2.0,
    )
    return c


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_bad_manifest_is_rejected_and_changes_nothing(
    controller: Controller, text: str, expected: list[str]
) -> None:
    before = snapshot(controller)
    with pytest.raises(ManifestErrors) as info:
        controller.apply(load(text, "bad.yaml"), now=10.0)
    assert [str(e) for e in info.value.errors] == expected
    assert snapshot(controller) == before


def test_there_are_at_least_25_cases() -> None:
    assert len(CASES) >= 25


def test_one_bad_object_stops_the_whole_batch(controller: Controller) -> None:
    before = snapshot(controller)
    good_config = config_map("config-domain", **{"example.com": ""})
    good_service = edit(doc(HELLO_V1), ("metadata", "name"), "other")
    bad = edit(V2, ("spec", "traffic", 0, "percent"), 70)
    with pytest.raises(ManifestErrors) as info:
        controller.apply(load(dump(good_config, good_service, bad), "bad.yaml"), now=10.0)
    assert [str(e) for e in info.value.errors] == [
        f"{SVC}: spec.traffic: percents must add up to 100, got 90"
    ]
    assert snapshot(controller) == before
    assert (
        controller.get("ksvc", "default", "hello")[0]["status"]["url"]
        == "http://hello.default.localhost"
    )


def test_all_errors_of_a_batch_are_reported_in_document_order(controller: Controller) -> None:
    first = edit(doc(HELLO_V1), ("metadata", "name"), "a")
    first = edit(first, (*POD, "containerConcurrency"), -1)
    second = config_map("config-defaults", revision_timeout_seconds="0")
    with pytest.raises(ManifestErrors) as info:
        controller.apply(load(dump(first, second), "bad.yaml"), now=10.0)
    assert [str(e) for e in info.value.errors] == [
        "bad.yaml: Service default/a: spec.template.spec.containerConcurrency: must be between 0 and "
        "1000 (config-defaults container-concurrency-max-limit), got -1",
        "bad.yaml: ConfigMap knative-serving/config-defaults: data.revision-timeout-seconds: must be an "
        "integer between 1 and max-revision-timeout-seconds (600), got '0'",
    ]
