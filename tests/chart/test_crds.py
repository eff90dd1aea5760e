"""The serving.knative.dev/v1 CRDs: names, printer columns, structural schemas, and what
they accept.

Accepted: the repository's examples, the Knative docs' manifests, and every object
zeroserve's controller writes (spec and status), so nothing it writes is pruned.
Refused: fields zeroserve does not support and out-of-range values. The printer
columns are evaluated with kubectl's own JSONPath on the controller's objects and must
show what ``zeroserve get`` shows.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.api.knative_docs import MANIFESTS, DocManifest
from tests.chart.crdschema import structural_problems, to_json_schema
from tests.chart.helm import ROOT, Obj, load_yaml_file, render, run
from zeroserve.api import load
from zeroserve.api.features import DEFAULTS
from zeroserve.serving.controller import Controller
from zeroserve.serving.views import COLUMNS, row

KINDS = ("Service", "Configuration", "Revision", "Route")


def _schema(crd: Obj) -> dict[str, Any]:
    [version] = crd["spec"]["versions"]
    return dict(version["schema"]["openAPIV3Schema"])


@pytest.fixture(scope="module")
def validators(crds: dict[str, Obj]) -> dict[str, jsonschema.Draft202012Validator]:
    return {
        kind: jsonschema.Draft202012Validator(to_json_schema(_schema(crd)))
        for kind, crd in crds.items()
    }


def _errors(validators: dict[str, jsonschema.Draft202012Validator], obj: Obj) -> list[str]:
    return [
        f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validators[obj["kind"]].iter_errors(obj)
    ]


# ----- the definitions ------------------------------------------------------------------


@pytest.mark.process
@pytest.mark.parametrize(
    ("kind", "plural", "short_names"),
    [
        ("Service", "services", ["ksvc", "kservice"]),
        ("Configuration", "configurations", ["config", "cfg"]),
        ("Revision", "revisions", ["rev"]),
        ("Route", "routes", ["rt"]),
    ],
)
def test_names(crds: dict[str, Obj], kind: str, plural: str, short_names: list[str]) -> None:
    crd = crds[kind]
    assert crd["metadata"]["name"] == f"{plural}.serving.knative.dev"
    spec = crd["spec"]
    assert spec["group"] == "serving.knative.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": kind,
        "plural": plural,
        "singular": kind.lower(),
        "listKind": f"{kind}List",
        "shortNames": short_names,
        "categories": ["all", "knative", "serving"],
    }
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1", True, True)
    assert version["subresources"] == {"status": {}}


@pytest.mark.process
def test_the_domain_mapping_crds(crds: dict[str, Obj]) -> None:
    """Knative's DomainMapping (v1beta1, columns URL, Ready, Reason) and the cluster-scoped
    ClusterDomainClaim (spec.namespace), with structural schemas."""
    dm = crds["DomainMapping"]
    assert dm["metadata"]["name"] == "domainmappings.serving.knative.dev"
    assert dm["spec"]["scope"] == "Namespaced"
    assert dm["spec"]["names"]["shortNames"] == ["dm"]
    [version] = dm["spec"]["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1beta1", True, True)
    assert version["subresources"] == {"status": {}}
    assert [(c["name"], c["jsonPath"]) for c in version["additionalPrinterColumns"]] == [
        ("URL", ".status.url"),
        *_READY,
    ]
    if "DomainMapping" in COLUMNS:  # zeroserve get domainmappings shows the same columns
        names = [c["name"].upper() for c in version["additionalPrinterColumns"]]
        assert ["NAME", *names] == list(COLUMNS["DomainMapping"])
    assert structural_problems(_schema(dm)) == []
    accepts = jsonschema.Draft202012Validator(to_json_schema(_schema(dm)))
    good = {
        "apiVersion": "serving.knative.dev/v1beta1",
        "kind": "DomainMapping",
        "metadata": {"name": "shop.example.org", "namespace": "default"},
        "spec": {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "a"}},
        "status": {
            "url": "http://shop.example.org",
            "address": {"url": "http://shop.example.org"},
            "observedGeneration": 1,
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    assert list(accepts.iter_errors(good)) == []
    assert list(accepts.iter_errors({**good, "spec": {}}))  # ref is required

    claim = crds["ClusterDomainClaim"]
    assert claim["metadata"]["name"] == "clusterdomainclaims.networking.internal.knative.dev"
    assert claim["spec"]["scope"] == "Cluster"
    [version] = claim["spec"]["versions"]
    assert version["name"] == "v1alpha1"
    schema = _schema(claim)
    assert schema["properties"]["spec"]["required"] == ["namespace"]
    assert structural_problems(schema) == []


@pytest.mark.process
def test_crds_survive_uninstall_and_can_be_left_out(helm: str, crds: dict[str, Obj]) -> None:
    assert set(crds) == {*KINDS, "DomainMapping", "ClusterDomainClaim"}
    for crd in crds.values():
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    without_keep = render(helm, sets=["crds.keep=false"])
    assert all(
        "annotations" not in o["metadata"]
        for o in without_keep
        if o["kind"] == "CustomResourceDefinition"
    )
    assert not [
        o
        for o in render(helm, sets=["crds.install=false"])
        if o["kind"] == "CustomResourceDefinition"
    ]


@pytest.mark.process
@pytest.mark.parametrize("kind", KINDS)
def test_schema_is_structural(crds: dict[str, Obj], kind: str) -> None:
    assert structural_problems(_schema(crds[kind])) == []


def _paths(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from _paths(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _paths(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _paths(node["additionalProperties"], f"{path}.*")


FLAGGED = {
    "affinity": "kubernetes.podspec-affinity",
    "tolerations[]": "kubernetes.podspec-tolerations",
    "topologySpreadConstraints[]": "kubernetes.podspec-topologyspreadconstraints",
    "hostAliases[]": "kubernetes.podspec-hostaliases",
    "dnsConfig": "kubernetes.podspec-dnsconfig",
    "securityContext": "kubernetes.podspec-securitycontext",
    "volumes[].emptyDir": "kubernetes.podspec-volumes-emptydir",
    "volumes[].persistentVolumeClaim": "kubernetes.podspec-persistent-volume-claim",
    "volumes[].csi": "kubernetes.podspec-volumes-csi",
    "volumes[].ephemeral": "kubernetes.podspec-volumes-ephemeral",
    "volumes[].hostPath": "kubernetes.podspec-volumes-hostpath",
    "volumes[].image": "kubernetes.podspec-volumes-image",
}
"""Where the revision spec keeps unknown fields, as Knative's CRDs do: whole Kubernetes
types behind a ``config-features`` flag (the controller checks them against the flags)."""


@pytest.mark.process
@pytest.mark.parametrize("kind", KINDS)
def test_unknown_fields_are_kept_only_behind_feature_flags(crds: dict[str, Obj], kind: str) -> None:
    kept = {
        p: node.get("description", "")
        for p, node in _paths(_schema(crds[kind]))
        if node.get("x-kubernetes-preserve-unknown-fields")
    }
    spec = ".spec" if kind == "Revision" else ".spec.template.spec"
    expected = {f"{spec}.{p}": flag for p, flag in FLAGGED.items()}
    for containers in ("containers[]", "initContainers[]"):
        for ref in ("fieldRef", "resourceFieldRef"):
            expected[f"{spec}.{containers}.env[].valueFrom.{ref}"] = "kubernetes.podspec-fieldref"
    if kind == "Route":
        expected = {}
    assert kept.keys() == expected.keys()
    for path, flag in expected.items():
        # Each names its flag, which is one of Knative's.
        assert kept[path].endswith(f"feature flag - {flag}"), path
        assert flag in DEFAULTS


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({"type": "object", "properties": {"a": {}}}, "a: no type"),
        (
            {"type": "object", "properties": {"a": {"type": "array"}}},
            "a: an array needs exactly one items schema",
        ),
        (
            {"type": "object", "properties": {"a": {"$ref": "#/x", "type": "string"}}},
            "keyword '$ref'",
        ),
        (
            {
                "type": "object",
                "properties": {
                    "a": {
                        "type": "object",
                        "properties": {},
                        "additionalProperties": {"type": "string"},
                    }
                },
            },
            "mutually exclusive",
        ),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "string", "x-kubernetes-int-or-string": True}},
            },
            "must not have a type",
        ),
        (
            {
                "type": "object",
                "properties": {
                    "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}
                },
            },
            "only name and generateName",
        ),
        ({"type": "object", "required": ["spec"]}, "required field 'spec' is not declared"),
        (
            {
                "type": "object",
                "properties": {
                    "env": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                    }
                },
            },
            "must be required or defaulted",
        ),
    ],
    ids=[
        "untyped",
        "array-without-items",
        "ref",
        "props-and-additional",
        "typed-int-or-string",
        "metadata-labels",
        "undeclared-required",
        "list-map-key-optional",
    ],
)
def test_the_structural_check_finds_problems(schema: dict[str, Any], problem: str) -> None:
    assert any(problem in p for p in structural_problems(schema)), structural_problems(schema)


_READY = [
    ("Ready", '.status.conditions[?(@.type=="Ready")].status'),
    ("Reason", '.status.conditions[?(@.type=="Ready")].reason'),
]
_LATEST = [
    ("LatestCreated", ".status.latestCreatedRevisionName"),
    ("LatestReady", ".status.latestReadyRevisionName"),
]


@pytest.mark.process
@pytest.mark.parametrize(
    ("kind", "columns"),
    [
        ("Service", [("URL", ".status.url"), *_LATEST, *_READY]),
        ("Configuration", [*_LATEST, *_READY]),
        (
            "Revision",
            [
                ("Config Name", ".metadata.labels['serving\\.knative\\.dev/configuration']"),
                (
                    "Generation",
                    ".metadata.labels['serving\\.knative\\.dev/configurationGeneration']",
                ),
                *_READY,
                ("Actual Replicas", ".status.actualReplicas"),
                ("Desired Replicas", ".status.desiredReplicas"),
            ],
        ),
        ("Route", [("URL", ".status.url"), *_READY]),
    ],
)
def test_printer_columns(crds: dict[str, Obj], kind: str, columns: list[tuple[str, str]]) -> None:
    [version] = crds[kind]["spec"]["versions"]
    got = version["additionalPrinterColumns"]
    assert [(c["name"], c["jsonPath"]) for c in got] == columns
    # kubectl shows the names upper-cased: exactly zeroserve's own table headers.
    assert ["NAME", *(c["name"].upper() for c in got)] == list(COLUMNS[kind])
    assert all(c["type"] == ("integer" if "Replicas" in c["name"] else "string") for c in got)


# ----- what the schemas accept ------------------------------------------------------------


def _examples() -> list[tuple[str, Obj]]:
    found = []
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        for i, doc in enumerate(load_yaml_file(path)):
            found.append((f"{path.name}#{i}", doc))
    return found


EXAMPLES = _examples()


@pytest.mark.process
@pytest.mark.parametrize(("name", "obj"), EXAMPLES, ids=[n for n, _ in EXAMPLES])
def test_the_examples_are_valid(
    validators: dict[str, jsonschema.Draft202012Validator], name: str, obj: Obj
) -> None:
    if obj["kind"] in ("ConfigMap", "Secret"):
        kubernetes_validate.validate(obj, "1.31", strict=True)
    else:
        version = "v1beta1" if obj["kind"] == "DomainMapping" else "v1"
        assert obj["apiVersion"] == f"serving.knative.dev/{version}"
        assert _errors(validators, obj) == []


def test_every_example_kind_is_covered() -> None:
    assert {o["kind"] for _, o in EXAMPLES} <= {"Service", "ConfigMap", "Secret", "DomainMapping"}


DOCS_MANIFESTS = """
# The Knative docs' first Service, as it is applied on a cluster.
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: helloworld-go
  namespace: default
spec:
  template:
    spec:
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
          ports:
            - containerPort: 8080
          env:
            - name: TARGET
              value: "World"
---
# The docs' traffic split between two named revisions.
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
spec:
  template:
    metadata:
      name: hello-world
    spec:
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
          ports:
            - containerPort: 8080
          env:
            - name: TARGET
              value: "World"
  traffic:
    - latestRevision: true
      percent: 50
    - revisionName: hello-00001
      percent: 50
      tag: blue
---
# Autoscaling and limits on the template, probes and resources on the container.
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: autoscale-go
  namespace: default
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/target: "10"
        autoscaling.knative.dev/metric: concurrency
      labels:
        team: search
    spec:
      containerConcurrency: 50
      timeoutSeconds: 120
      responseStartTimeoutSeconds: 30
      idleTimeoutSeconds: 10
      containers:
        - name: app
          image: ghcr.io/knative/autoscale-go:latest
          workingDir: /srv
          command: ["/ko-app/autoscale"]
          args: ["--verbose"]
          ports:
            - name: h2c
              containerPort: 8080
          readinessProbe:
            httpGet:
              path: /healthz
              port: 8080
              httpHeaders:
                - name: X-Probe
                  value: "1"
            periodSeconds: 0
            successThreshold: 1
          livenessProbe:
            tcpSocket:
              port: http
            initialDelaySeconds: 3
          resources:
            requests:
              cpu: 100m
              memory: 64Mi
            limits:
              cpu: 1
              memory: 128Mi
---
# A standalone Configuration and a Route over it.
apiVersion: serving.knative.dev/v1
kind: Configuration
metadata:
  name: blue
  namespace: default
spec:
  template:
    spec:
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
---
apiVersion: serving.knative.dev/v1
kind: Route
metadata:
  name: shop
  namespace: default
spec:
  traffic:
    - configurationName: blue
      percent: 90
    - revisionName: blue-00001
      percent: 10
      tag: canary
"""


@pytest.mark.process
def test_the_docs_manifests_are_valid(
    validators: dict[str, jsonschema.Draft202012Validator],
) -> None:
    objects = [o for o in yaml.safe_load_all(DOCS_MANIFESTS) if o]
    assert len(objects) == 5
    errors = {o["metadata"]["name"]: _errors(validators, o) for o in objects}
    assert list(errors) == ["helloworld-go", "hello", "autoscale-go", "blue", "shop"]
    assert {name: e for name, e in errors.items() if e} == {}


_BASE = yaml.safe_load(DOCS_MANIFESTS.split("---")[0])


def _with(path: str, value: Any) -> Obj:
    obj = copy.deepcopy(_BASE)
    *parents, last = path.split(".")
    node: Any = obj
    for p in parents:
        node = node[int(p)] if p.isdigit() else node[p]
    node[int(last) if last.isdigit() else last] = value
    return obj


@pytest.mark.process
@pytest.mark.parametrize(
    ("obj", "where"),
    [
        (
            _with("spec.template.spec.volumes", [{"name": "v", "nfs": {"server": "x"}}]),
            "spec.template.spec.volumes.0",
        ),
        (_with("spec.template.spec.hostUsers", False), "spec.template.spec"),
        (
            _with("spec.template.spec.containers.0.envFrom", [{"vaultRef": {"name": "x"}}]),
            "spec.template.spec.containers.0.envFrom.0",
        ),
        (
            _with("spec.template.spec.containers.0.env.0", {"name": "A", "valueFrom": {"x": {}}}),
            "spec.template.spec.containers.0.env.0.valueFrom",
        ),
        (
            _with("spec.template.spec.containers.0.imagePullPolicy", "Sometimes"),
            "spec.template.spec.containers.0.imagePullPolicy",
        ),
        (_with("spec.template.spec.containers.0.stdin", True), "spec.template.spec.containers.0"),
        (
            _with("spec.template.spec.containers.0.lifecycle", {}),
            "spec.template.spec.containers.0",
        ),
        (
            _with("spec.template.spec.containers.0.readinessProbe", {"sleep": {"seconds": 1}}),
            "spec.template.spec.containers.0.readinessProbe",
        ),
        (
            _with("spec.template.spec.containers.0.resources", {"claims": [{"name": "gpu"}]}),
            "spec.template.spec.containers.0.resources",
        ),
        (
            _with("spec.template.spec.containers.0.securityContext", {"procMount": "Unmasked"}),
            "spec.template.spec.containers.0.securityContext",
        ),
        (
            _with("spec.template.spec.containers.0.volumeMounts", [{"name": "v"}]),
            "spec.template.spec.containers.0.volumeMounts.0",
        ),
        (_with("metadata.name", "a" * 64), "metadata.name"),
        (
            _with("spec.template.spec.containers.0.image", ""),
            "spec.template.spec.containers.0.image",
        ),
        (_with("spec.template.spec.containers", []), "spec.template.spec.containers"),
        (
            _with("spec.template.spec.containerConcurrency", -1),
            "spec.template.spec.containerConcurrency",
        ),
        (_with("spec.template.spec.timeoutSeconds", "300"), "spec.template.spec.timeoutSeconds"),
        (
            _with("spec.template.spec.containers.0.ports.0.containerPort", 70000),
            "spec.template.spec.containers.0.ports.0.containerPort",
        ),
        (_with("spec.template.metadata", {"namespace": "other"}), "spec.template.metadata"),
        (
            _with("spec.traffic", [{"latestRevision": True, "percent": 101}]),
            "spec.traffic.0.percent",
        ),
        (
            _with("spec.traffic", [{"latestRevision": True, "percent": 100, "tag": "Blue"}]),
            "spec.traffic.0.tag",
        ),
        (
            _with("spec.traffic", [{"latestRevision": True, "percent": 100, "url": "http://x"}]),
            "spec.traffic.0",
        ),
        (_with("metadata.name", "Hello_World"), "metadata.name"),
        (
            _with("spec.template.spec.containers.0.readinessProbe", {"httpGet": {"port": 1.5}}),
            "spec.template.spec.containers.0.readinessProbe.httpGet.port",
        ),
        (
            _with("spec.template.spec.containers.0.resources", {"limits": {"cpu": True}}),
            "spec.template.spec.containers.0.resources.limits.cpu",
        ),
        (_with("status", {"url": 5}), "status.url"),
    ],
    ids=[
        "nfs-volume",
        "hostUsers",
        "envFrom-source",
        "valueFrom-source",
        "imagePullPolicy",
        "stdin",
        "lifecycle",
        "sleep-probe",
        "resource-claims",
        "procMount",
        "mount-without-path",
        "64-character-name",
        "empty-image",
        "no-container",
        "negative-cc",
        "string-timeout",
        "port-range",
        "template-namespace",
        "percent-101",
        "tag-uppercase",
        "url-in-spec",
        "bad-name",
        "float-probe-port",
        "bool-quantity",
        "status-url-type",
    ],
)
def test_unsupported_fields_and_bad_values_are_refused(
    validators: dict[str, jsonschema.Draft202012Validator], obj: Obj, where: str
) -> None:
    errors = _errors(validators, obj)
    assert any(e.startswith(where + ":") for e in errors), errors


@pytest.mark.process
def test_flagged_fields_reach_the_controller_whole(
    validators: dict[str, jsonschema.Draft202012Validator],
) -> None:
    """A field behind a config-features flag is not pruned, whatever is inside: it reaches
    the controller, which refuses it by name when its flag is off (a field silently
    dropped would change the revision)."""
    affinity = _with(
        "spec.template.spec.affinity", {"podAntiAffinity": {"anything": [{"new": True}]}}
    )
    host_path = _with("spec.template.spec.volumes", [{"name": "h", "hostPath": {"path": "/x"}}])
    assert _errors(validators, affinity) == []
    assert _errors(validators, host_path) == []


@pytest.mark.process
@pytest.mark.parametrize("doc", MANIFESTS, ids=[m.id for m in MANIFESTS])
def test_the_knative_docs_pod_spec_manifests_are_valid(
    validators: dict[str, jsonschema.Draft202012Validator], doc: DocManifest
) -> None:
    """Every manifest in the shape of Knative's docs (env from secrets, volumes, probes,
    several containers, init containers, scheduling fields, generated and long names):
    the Service, and its template as a Revision's spec."""
    obj = yaml.safe_load(doc.yaml)
    assert _errors(validators, obj) == []
    template = obj["spec"]["template"]
    revision = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Revision",
        "metadata": {"name": "rev-00001", "namespace": "default"},
        "spec": template["spec"],
    }
    assert _errors(validators, revision) == []


# ----- what the controller writes --------------------------------------------------------


@pytest.fixture(scope="module")
def controller_objects() -> list[Obj]:
    """Every object zeroserve's controller shows after the README's story: the examples
    applied, revisions ready, the traffic split, and one failed revision."""
    c = Controller(0.0, local=False, default_domain="example.com")
    for name in ("helloworld.yaml", "hello.yaml", "autoscale.yaml"):
        c.apply(load((ROOT / "examples" / name).read_text(), name), now=1.0)
    for rev in c.revisions():
        c.set_revision_state(rev, ready=True, desired_replicas=1, actual_replicas=1, now=2.0)
    c.apply(
        load((ROOT / "examples" / "traffic-split.yaml").read_text(), "traffic-split.yaml"), now=3.0
    )
    standalone = yaml.safe_dump_all(
        [o for o in yaml.safe_load_all(DOCS_MANIFESTS) if o and o["kind"] != "Service"]
    )
    c.apply(load(standalone, "standalone.yaml"), now=3.5)
    for rev in c.revisions():
        if rev.name == "blue-00001":
            c.set_revision_state(
                rev,
                ready=False,
                reason="ExitCode1",
                message="exit code 1",
                desired_replicas=1,
                actual_replicas=0,
                now=4.0,
            )
        else:
            c.set_revision_state(rev, ready=True, desired_replicas=2, actual_replicas=2, now=4.0)
    objects = [o for kind in ("ksvc", "configurations", "revisions", "routes") for o in c.get(kind)]
    assert {o["kind"] for o in objects} == set(KINDS)
    return objects


@pytest.mark.process
def test_the_controllers_objects_are_valid(
    validators: dict[str, jsonschema.Draft202012Validator], controller_objects: list[Obj]
) -> None:
    """Spec and status as the controller writes them: nothing of it would be pruned."""
    problems = {
        f"{o['kind']}/{o['metadata']['name']}": _errors(validators, o) for o in controller_objects
    }
    assert {name: e for name, e in problems.items() if e} == {}


@pytest.mark.process
def test_kubectl_shows_the_columns_zeroserve_shows(
    crds: dict[str, Obj], kubectl: str, controller_objects: list[Obj]
) -> None:
    """The printer columns, evaluated by kubectl's JSONPath on each object, give the cells
    of ``zeroserve get`` (the API server uses the same JSONPath for its tables)."""
    failed_seen = False
    for obj in controller_objects:
        [version] = crds[obj["kind"]]["spec"]["versions"]
        template = '{"\\t"}'.join(
            "{" + c["jsonPath"] + "}" for c in version["additionalPrinterColumns"]
        )
        # --local: no API server is asked; KUBECONFIG points nowhere to be sure.
        out = run(
            kubectl,
            "annotate",
            "--local",
            "-f",
            "-",
            "zeroserve.test/x=y",
            "-o",
            f"jsonpath={template}",
            stdin=json.dumps(obj),
            env={"KUBECONFIG": "/dev/null"},
        )
        assert out.split("\t") == row(obj)[1:], obj["metadata"]["name"]
        failed_seen |= "ExitCode1" in out
    assert failed_seen  # the REASON column was exercised with a value


@pytest.mark.process
@pytest.mark.parametrize(
    "name", ["helloworld.yaml", "hello.yaml", "traffic-split.yaml", "autoscale.yaml"]
)
def test_the_examples_without_their_local_command_are_the_docs_manifests(
    validators: dict[str, jsonschema.Draft202012Validator], name: str
) -> None:
    """On a cluster the container runs its image; the examples' `command:` line is the
    local-mode addition, and `sed '/command:/d'` (README, Kubernetes section) leaves the
    docs' manifest, still valid."""
    text = (ROOT / "examples" / name).read_text()
    [obj] = [
        o
        for o in yaml.safe_load_all(
            "\n".join(line for line in text.splitlines() if "command:" not in line)
        )
        if o
    ]
    [container] = obj["spec"]["template"]["spec"]["containers"]
    assert "command" not in container and container["image"].startswith("ghcr.io/knative/")
    assert _errors(validators, obj) == []
