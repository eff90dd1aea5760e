"""The pod spec Knative accepts (issue 13): the docs' manifests, one refusal per
``config-features`` flag, Knative's rules for containers, volumes, env references and
security contexts, Secrets and ConfigMaps, generated and long names."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from tests.api.knative_docs import BY_ID, MANIFESTS, DocManifest
from tests.api.manifests import CONTAINER, doc, dump, edit
from zeroserve.api import Configs, ManifestErrors, load, validate, validate_objects
from zeroserve.api.features import DEFAULTS, FeaturesConfig
from zeroserve.api.names import MAX_LABEL, child_name
from zeroserve.api.objects import (
    ConfigMapObject,
    EnvFrom,
    FieldRef,
    KeyRef,
    ResourceFieldRef,
    SecretObject,
    Service,
)
from zeroserve.envconfig import ConfigError

POD = ("spec", "template", "spec")
SVC = "f.yaml: Service default/hello"
S = f"{SVC}: spec.template.spec"
C = f"{S}.containers[0]"


def configs(**flags: str) -> Configs:
    return Configs().with_config_map("config-features", flags)


def problems(
    document: dict[str, Any], cfg: Configs | None = None, *, local: bool = False
) -> list[str]:
    """What ``zeroserve apply`` would say: shape errors from loading, else the rules."""
    try:
        [obj] = load(dump(document), "f.yaml")
    except ManifestErrors as e:
        return [str(x) for x in e.errors]
    return [str(e) for e in validate(obj, cfg or Configs(), local=local)]


def features_of(m: DocManifest) -> Configs:
    return Configs().with_config_map("config-features", m.features)


# ----- the Knative docs' manifests ------------------------------------------------------------


@pytest.mark.parametrize("m", MANIFESTS, ids=[m.id for m in MANIFESTS])
def test_docs_manifest_is_accepted_on_kubernetes_and_kept_as_written(m: DocManifest) -> None:
    [svc] = load(m.yaml, f"{m.id}.yaml")
    assert isinstance(svc, Service)
    _, errors = validate_objects([svc], features_of(m), local=False)
    assert [str(e) for e in errors] == []
    written = yaml.safe_load(m.yaml)["spec"]["template"]["spec"]
    # What was written comes back, but for what means "unset" (port 0, empty maps).
    expected = _without_unset(written)
    assert svc.template.spec_dict() == expected


def _without_unset(value: Any) -> Any:
    if isinstance(value, dict):
        out = {k: _without_unset(v) for k, v in value.items() if v not in ({}, [], None, "")}
        if out.get("port") == 0:
            del out["port"]
        return {k: v for k, v in out.items() if v != {} or k in ("emptyDir",)}
    if isinstance(value, list):
        return [_without_unset(v) for v in value]
    return value


@pytest.mark.parametrize("m", MANIFESTS, ids=[m.id for m in MANIFESTS])
def test_docs_manifest_locally(m: DocManifest) -> None:
    [svc] = load(m.yaml, f"{m.id}.yaml")
    _, errors = validate_objects([svc], features_of(m), local=True)
    if m.local:
        assert [str(e) for e in errors] == []
    else:
        assert [e.path for e in errors] == ["spec.template.spec.volumes"]
        assert "--sandbox pod" in errors[0].rule
        assert "work on Kubernetes" in errors[0].rule


@pytest.mark.parametrize("m", MANIFESTS, ids=[m.id for m in MANIFESTS])
def test_docs_manifest_in_a_pod_sandbox(m: DocManifest) -> None:
    """In pod sandboxes the volumes a sandbox mounts are accepted; the kinds that need a
    cluster's storage are refused when applied, naming the volume's field."""
    [svc] = load(m.yaml, f"{m.id}.yaml")
    _, errors = validate_objects([svc], features_of(m), local=True, sandbox=True)
    cluster_only = [
        k
        for v in svc.template.pod.get("volumes") or ()
        for k in v
        if k in ("persistentVolumeClaim", "csi", "ephemeral", "image")
    ]
    if cluster_only:
        assert [e.path for e in errors] == [f"spec.template.spec.volumes[0].{cluster_only[0]}"]
        assert "work on Kubernetes" in errors[0].rule
    else:
        assert [str(e) for e in errors] == []


@pytest.mark.parametrize("m", [m for m in MANIFESTS if m.features], ids=lambda m: m.id)
def test_docs_manifest_needing_a_flag_is_refused_without_it_naming_the_flag(
    m: DocManifest,
) -> None:
    [svc] = load(m.yaml, f"{m.id}.yaml")
    _, errors = validate_objects([svc], Configs(), local=False)
    assert errors
    text = " ".join(str(e) for e in errors)
    for flag in m.features:
        assert f"{flag}: enabled in config-features" in text, flag


def test_env_references_are_typed() -> None:
    [svc] = load(BY_ID["env-secret-key-ref"].yaml, "f.yaml")
    assert isinstance(svc, Service)
    env = svc.template.container.env
    assert env[0].value_from == KeyRef("Secret", "db", "password")
    assert env[1].value_from == KeyRef("Secret", "tokens", "api", optional=True)
    [svc] = load(BY_ID["env-from"].yaml, "f.yaml")
    assert isinstance(svc, Service)
    assert svc.template.container.env_from == (
        EnvFrom("ConfigMap", "app-settings"),
        EnvFrom("Secret", "db", prefix="DB_", optional=False),
    )
    [svc] = load(BY_ID["env-field-ref"].yaml, "f.yaml")
    assert isinstance(svc, Service)
    assert [e.value_from for e in svc.template.container.env] == [
        FieldRef("metadata.name"),
        FieldRef("status.podIP"),
        ResourceFieldRef("limits.memory"),
    ]


def test_serving_container_is_the_one_with_the_port() -> None:
    [svc] = load(BY_ID["multi-container"].yaml, "f.yaml")
    assert isinstance(svc, Service)
    assert svc.template.container.name == "first-container"
    assert [c.name for c in svc.template.sidecars] == ["second-container"]


# ----- one refusal per flag -------------------------------------------------------------------

FLAG_CASES: list[tuple[str, tuple[str, ...], Any, str]] = [
    (flag, (*POD, key), value, f"{S}.{key}")
    for flag, key, value in (
        ("kubernetes.podspec-affinity", "affinity", {"podAntiAffinity": {}}),
        ("kubernetes.podspec-topologyspreadconstraints", "topologySpreadConstraints", [{}]),
        ("kubernetes.podspec-hostaliases", "hostAliases", [{"ip": "198.18.0.1"}]),
        ("kubernetes.podspec-nodeselector", "nodeSelector", {"a": "b"}),
        ("kubernetes.podspec-runtimeclassname", "runtimeClassName", "gvisor"),
        ("kubernetes.podspec-tolerations", "tolerations", [{"operator": "Exists"}]),
        ("kubernetes.podspec-shareprocessnamespace", "shareProcessNamespace", True),
        ("kubernetes.podspec-priorityclassname", "priorityClassName", "high"),
        ("kubernetes.podspec-schedulername", "schedulerName", "mine"),
        ("kubernetes.podspec-dnspolicy", "dnsPolicy", "None"),
        ("kubernetes.podspec-dnsconfig", "dnsConfig", {"nameservers": ["198.18.0.2"]}),
        ("kubernetes.podspec-hostipc", "hostIPC", True),
        ("kubernetes.podspec-hostpid", "hostPID", True),
        ("kubernetes.podspec-hostnetwork", "hostNetwork", True),
    )
]


def sidecar(document: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    containers = [*document["spec"]["template"]["spec"]["containers"], container]
    return edit(document, (*POD, "containers"), containers)


def _with_volume(source: dict[str, Any], mount: dict[str, Any] | None = None) -> dict[str, Any]:
    d = edit(doc(), (*POD, "volumes"), [{"name": "v", **source}])
    return edit(
        d, (*CONTAINER, "volumeMounts"), [{"name": "v", "mountPath": "/v", **(mount or {})}]
    )


OTHER_FLAG_CASES: list[tuple[str, dict[str, Any], str]] = [
    (
        "kubernetes.podspec-fieldref",
        edit(
            doc(),
            (*CONTAINER, "env"),
            [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        ),
        f"{C}.env[0].valueFrom.fieldRef: must not set the field(s) (it needs "
        "kubernetes.podspec-fieldref: enabled in config-features)",
    ),
    (
        "kubernetes.podspec-securitycontext",
        edit(doc(), (*POD, "securityContext"), {"runAsUser": 1000}),
        f"{S}.securityContext.runAsUser: must not set the field(s) (it needs "
        "kubernetes.podspec-securitycontext: enabled in config-features)",
    ),
    (
        "kubernetes.containerspec-addcapabilities",
        edit(doc(), (*CONTAINER, "securityContext"), {"capabilities": {"add": ["NET_ADMIN"]}}),
        f"{C}.securityContext.capabilities.add: must not set the field(s) (it needs "
        "kubernetes.containerspec-addcapabilities: enabled in config-features)",
    ),
    (
        "kubernetes.podspec-init-containers",
        edit(doc(), (*POD, "initContainers"), [{"name": "init", "image": "x"}]),
        f"{S}.initContainers: pod spec support for init-containers is off, but found 1 init "
        "containers (it needs kubernetes.podspec-init-containers: enabled in config-features)",
    ),
    (
        "kubernetes.podspec-volumes-emptydir",
        _with_volume({"emptyDir": {}}),
        f"{S}.volumes[0].emptyDir: EmptyDir volume support is disabled, but found EmptyDir "
        "volume v (it needs kubernetes.podspec-volumes-emptydir: enabled in config-features)",
    ),
    (
        "kubernetes.podspec-volumes-hostpath",
        _with_volume({"hostPath": {"path": "/srv"}}, {"readOnly": True}),
        f"{S}.volumes[0].hostPath: HostPath volume support is disabled, but found HostPath "
        "volume v (it needs kubernetes.podspec-volumes-hostpath: enabled in config-features)",
    ),
    (
        "kubernetes.podspec-volumes-csi",
        _with_volume({"csi": {"driver": "x"}}, {"readOnly": True}),
        f"{S}.volumes[0].csi: CSI volume support is disabled, but found CSI volume v (it needs "
        "kubernetes.podspec-volumes-csi: enabled in config-features)",
    ),
    (
        "kubernetes.podspec-volumes-ephemeral",
        _with_volume({"ephemeral": {"volumeClaimTemplate": {}}}),
        f"{S}.volumes[0].ephemeral: Ephemeral volume support is disabled, but found Ephemeral "
        "volume v (it needs kubernetes.podspec-volumes-ephemeral: enabled in config-features)",
    ),
    (
        "kubernetes.podspec-volumes-image",
        _with_volume({"image": {"reference": "ghcr.io/x/y:1"}}, {"readOnly": True}),
        f"{S}.volumes[0].image: Image volume support is disabled, but found Image volume v "
        "(it needs kubernetes.podspec-volumes-image: enabled in config-features)",
    ),
    (
        "kubernetes.podspec-persistent-volume-claim",
        _with_volume(
            {"persistentVolumeClaim": {"claimName": "c", "readOnly": True}}, {"readOnly": True}
        ),
        f"{S}.volumes[0].persistentVolumeClaim: Persistent volume claim support is disabled, "
        "but found persistent volume claim c (it needs kubernetes.podspec-persistent-volume-claim"
        ": enabled in config-features)",
    ),
    (
        "kubernetes.podspec-volumes-mount-propagation",
        _with_volume({"emptyDir": {}}, {"mountPropagation": "HostToContainer"}),
        f"{C}.volumeMounts[0].mountPropagation: Volume Mount Propagation support is disabled, "
        "but found volume mount v with mount propagation (it needs "
        "kubernetes.podspec-volumes-mount-propagation: enabled in config-features)",
    ),
    (
        "multi-container-probing",
        sidecar(
            doc(), {"name": "side", "image": "x", "readinessProbe": {"tcpSocket": {"port": 9000}}}
        ),
        f"{S}.containers[1].readinessProbe.tcpSocket: must not set the field(s) (it needs "
        "multi-container-probing: enabled in config-features)",
    ),
]


@pytest.mark.parametrize(
    ("flag", "path", "value", "where"), FLAG_CASES, ids=[c[0] for c in FLAG_CASES]
)
def test_pod_field_behind_a_flag(flag: str, path: tuple[str, ...], value: Any, where: str) -> None:
    document = edit(doc(), path, value)
    assert problems(document) == [
        f"{where}: must not set the field(s) (it needs {flag}: enabled in config-features)"
    ]
    assert problems(document, configs(**{flag: "enabled"})) == []
    assert problems(document, configs(**{flag: "Allowed"})) == []


@pytest.mark.parametrize(
    ("flag", "document", "expected"), OTHER_FLAG_CASES, ids=[c[0] for c in OTHER_FLAG_CASES]
)
def test_other_feature_behind_a_flag(flag: str, document: dict[str, Any], expected: str) -> None:
    cfg = configs(**{"kubernetes.podspec-volumes-emptydir": "disabled"})
    if flag != "kubernetes.podspec-volumes-emptydir":
        cfg = configs()
    assert expected in problems(document, cfg)
    on = {flag: "enabled"}
    if flag == "kubernetes.podspec-volumes-mount-propagation":
        on["kubernetes.podspec-volumes-emptydir"] = "enabled"
    assert problems(document, configs(**on)) == []


def test_every_flag_has_a_refusal_case() -> None:
    covered = {c[0] for c in FLAG_CASES} | {c[0] for c in OTHER_FLAG_CASES}
    # Not pod spec flags: read by routing, the queue-proxy or defaulting, which do not refuse.
    elsewhere = {
        "multi-container",
        "kubernetes.podspec-persistent-volume-write",
        "queueproxy.mount-podinfo",
        "queueproxy.resource-defaults",
        "secure-pod-defaults",
        "tag-header-based-routing",
        "autodetect-http2",
    }
    assert set(DEFAULTS) - covered == elsewhere


def test_multi_container_flag_and_persistent_volume_write() -> None:
    two = sidecar(doc(), {"name": "side", "image": "x"})
    assert problems(two) == []
    assert problems(two, configs(**{"multi-container": "disabled"})) == [
        f"{S}.containers: multi-container is off, but found 2 containers"
    ]
    claim = _with_volume({"persistentVolumeClaim": {"claimName": "c"}})
    cfg = configs(**{"kubernetes.podspec-persistent-volume-claim": "enabled"})
    assert problems(claim, cfg) == [
        f"{S}.volumes[0].persistentVolumeClaim: Persistent volume write support is disabled, but "
        "found persistent volume claim c that is not read-only (it needs "
        "kubernetes.podspec-persistent-volume-write: enabled in config-features)"
    ]


# ----- Knative's rules --------------------------------------------------------------------------

RULES: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "volume-not-mounted",
        edit(doc(), (*POD, "volumes"), [{"name": "v", "emptyDir": {}}]),
        [f"{S}.volumes[0].name: volume with name 'v' not mounted"],
    ),
    (
        "mount-without-volume",
        edit(doc(), (*CONTAINER, "volumeMounts"), [{"name": "x", "mountPath": "/x"}]),
        [f"{C}.volumeMounts[0].name: volumeMount has no matching volume"],
    ),
    (
        "secret-mount-not-read-only",
        _with_volume({"secret": {"secretName": "s"}}),
        [f"{C}.volumeMounts[0].readOnly: volume mount should be readOnly for this type of volume"],
    ),
    (
        "reserved-mount-path",
        _with_volume({"emptyDir": {}}, {"mountPath": "/dev/"}),
        [f"{C}.volumeMounts[0].mountPath: mountPath '/dev' is a reserved path"],
    ),
    (
        "relative-mount-path",
        _with_volume({"emptyDir": {}}, {"mountPath": "data"}),
        [f"{C}.volumeMounts[0].mountPath: invalid value: data (must be an absolute path)"],
    ),
    (
        "two-volume-sources",
        _with_volume({"emptyDir": {}, "secret": {"secretName": "s"}}, {"readOnly": True}),
        [f"{S}.volumes[0]: expected exactly one, got both: secret, emptyDir"],
    ),
    (
        "volume-kind-not-in-knative",
        _with_volume({"nfs": {"server": "x", "path": "/"}}),
        [
            f"{S}.volumes[0].nfs: must not set the field(s)",
            f"{S}.volumes[0]: expected exactly one, got neither: secret, configMap, projected, "
            "emptyDir, persistentVolumeClaim, hostPath, csi, ephemeral, image",
        ],
    ),
    (
        "duplicate-container-name",
        sidecar(edit(doc(), (*CONTAINER, "name"), "app"), {"name": "app", "image": "x"}),
        [
            f"{S}.containers[1].name: duplicate container name 'app' (also {S[len(SVC) + 2 :]}.containers[0])"
        ],
    ),
    (
        "queue-proxy-name",
        edit(doc(), (*CONTAINER, "name"), "queue-proxy"),
        [f"{C}.name: 'queue-proxy' is a reserved container name"],
    ),
    (
        "sidecars-need-a-serving-port",
        sidecar(edit(doc(), (*CONTAINER, "ports"), []), {"name": "side", "image": "x"}),
        [
            f"{S}.containers[*].ports: missing required field: with several containers, the "
            "serving one declares the port"
        ],
    ),
    (
        "sidecar-reserved-env",
        sidecar(
            doc(), {"name": "side", "image": "x", "env": [{"name": "K_SERVICE", "value": "x"}]}
        ),
        [
            f"{S}.containers[1].env[0].name: 'K_SERVICE' is a reserved environment variable "
            "(K_SERVICE, K_CONFIGURATION, K_REVISION)"
        ],
    ),
    (
        "value-and-value-from",
        edit(
            doc(),
            (*CONTAINER, "env"),
            [{"name": "A", "value": "x", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
        ),
        [f"{C}.env[0].valueFrom: may not be specified when `value` is not empty"],
    ),
    (
        "env-from-both",
        edit(
            doc(),
            (*CONTAINER, "envFrom"),
            [{"secretRef": {"name": "s"}, "configMapRef": {"name": "c"}}],
        ),
        [f"{C}.envFrom[0]: expected exactly one, got both: configMapRef, secretRef"],
    ),
    (
        "automount-token-true",
        edit(doc(), (*POD, "automountServiceAccountToken"), True),
        [f"{S}.automountServiceAccountToken: must not set the field(s) (only false is allowed)"],
    ),
    (
        "privileged",
        edit(doc(), (*CONTAINER, "securityContext"), {"privileged": True}),
        [f"{C}.securityContext.privileged: must not set the field(s) (only false is allowed)"],
    ),
    (
        "security-context-field-not-in-knative",
        edit(doc(), (*CONTAINER, "securityContext"), {"procMount": "Unmasked"}),
        [f"{C}.securityContext.procMount: must not set the field(s)"],
    ),
    (
        "run-as-user-bounds",
        edit(doc(), (*CONTAINER, "securityContext"), {"runAsUser": -1}),
        [f"{C}.securityContext.runAsUser: expected 0 <= -1 <= 2147483647"],
    ),
    (
        "container-field-not-in-knative",
        edit(doc(), (*CONTAINER, "lifecycle"), {"preStop": {"exec": {"command": ["x"]}}}),
        [f"{C}.lifecycle: must not set the field(s)"],
    ),
    (
        "pull-policy",
        edit(doc(), (*CONTAINER, "imagePullPolicy"), "Sometimes"),
        [f"{C}.imagePullPolicy: must be one of Always, IfNotPresent, Never, got 'Sometimes'"],
    ),
    (
        "probe-with-two-handlers",
        edit(
            doc(),
            (*CONTAINER, "livenessProbe"),
            {"tcpSocket": {}, "exec": {"command": ["true"]}},
        ),
        [f"{C}.livenessProbe: expected exactly one, got both: tcpSocket, exec"],
    ),
    (
        "liveness-probe-without-handler",
        edit(doc(), (*CONTAINER, "livenessProbe"), {"periodSeconds": 3}),
        [f"{C}.livenessProbe: expected exactly one, got neither: httpGet, tcpSocket, exec, grpc"],
    ),
    (
        "init-container-probe",
        edit(
            doc(),
            (*POD, "initContainers"),
            [{"name": "i", "image": "x", "readinessProbe": {"tcpSocket": {}}}],
        ),
        [f"{S}.initContainers[0].readinessProbe: field not allowed in an init container"],
    ),
    (
        "field-path",
        edit(
            doc(),
            (*CONTAINER, "env"),
            [
                {"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels"}}},
                {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "C", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}},
            ],
        ),
        [
            f"{C}.env[0].valueFrom.fieldRef.fieldPath: Unsupported value: 'metadata.labels': "
            "supported values: metadata.name, metadata.namespace, metadata.uid, spec.nodeName, "
            "spec.serviceAccountName, status.hostIP, status.hostIPs, status.podIP, status.podIPs, "
            "metadata.labels['<key>'], metadata.annotations['<key>']",
            f"{C}.env[2].valueFrom.resourceFieldRef.resource: Unsupported value: 'limits.gpu': "
            "supported values: limits.cpu, limits.memory, limits.ephemeral-storage, requests.cpu, "
            "requests.memory, requests.ephemeral-storage",
        ],
    ),
    (
        "service-account-name",
        edit(doc(), (*POD, "serviceAccountName"), "Not_Valid"),
        [
            f"{S}.serviceAccountName: must be a lower-case DNS name like example.com, got 'Not_Valid'"
        ],
    ),
]


@pytest.mark.parametrize(
    ("document", "expected"), [c[1:] for c in RULES], ids=[c[0] for c in RULES]
)
def test_knative_rule(document: dict[str, Any], expected: list[str]) -> None:
    cfg = configs(
        **{
            "kubernetes.podspec-init-containers": "enabled",
            "kubernetes.podspec-fieldref": "enabled",
        }
    )
    assert problems(document, cfg) == expected


def test_probe_port_zero_means_the_container_port() -> None:
    document = edit(doc(), (*CONTAINER, "readinessProbe"), {"httpGet": {"path": "/", "port": 0}})
    [svc] = load(dump(document), "f.yaml")
    assert isinstance(svc, Service)
    assert svc.template.container.readiness_probe == {"httpGet": {"path": "/"}}
    assert validate(svc, Configs(), local=True) == []


def test_sidecar_may_set_port_and_runs_without_a_port() -> None:
    [svc] = load(BY_ID["multi-container"].yaml, "f.yaml")
    assert validate(svc, Configs(), local=True) == []


# ----- metadata: creationTimestamp, generateName, long names -----------------------------------


def test_creation_timestamp_null_and_generate_name() -> None:
    [svc] = load(BY_ID["generated-name"].yaml, "f.yaml")
    assert isinstance(svc, Service)
    assert (svc.meta.name, svc.meta.generate_name) == ("", "hello-")
    assert validate(svc, Configs(), local=True) == []
    document = yaml.safe_load(BY_ID["generated-name"].yaml)
    document["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    with pytest.raises(ManifestErrors) as info:
        load(dump(document), "f.yaml")
    assert [e.rule for e in info.value.errors] == [
        "is set by the server; remove it from the manifest"
    ]


@pytest.mark.parametrize(
    ("prefix", "rule"),
    [
        (
            "Hello-",
            "not a DNS 1035 label prefix: lower-case letters, digits and '-', starting "
            "with a letter, got 'Hello-'",
        ),
        ("h" * 59, f"must be at most 58 characters, got 59 ('{'h' * 56}...)"),
    ],
)
def test_bad_generate_name(prefix: str, rule: str) -> None:
    document = edit(doc(), ("metadata", "name"), None)
    document["metadata"]["generateName"] = prefix
    del document["metadata"]["name"]
    [svc] = load(dump(document), "f.yaml")
    assert [(e.path, e.rule) for e in validate(svc, Configs())] == [("metadata.generateName", rule)]


def test_revision_name_with_generated_parent_is_refused() -> None:
    document = yaml.safe_load(BY_ID["generated-name"].yaml)
    document["spec"]["template"]["metadata"] = {"name": "hello-v1"}
    [svc] = load(dump(document), "f.yaml")
    assert [e.path for e in validate(svc, Configs())] == ["spec.template.metadata.name"]


def test_names_up_to_63_characters_and_child_names_within_a_label() -> None:
    [svc] = load(BY_ID["long-name"].yaml, "f.yaml")
    assert validate(svc, Configs(), local=True) == []
    long = svc.meta.name
    assert len(long) == MAX_LABEL
    for suffix in ("-00001", "-deployment", "-private", "-" + "x" * 70):
        name = child_name(long, suffix)
        assert len(name) <= MAX_LABEL
        assert name.endswith(suffix) or len(suffix) > 32
    assert child_name(long, "-00001") != child_name(long[:-1] + "e", "-00001")
    assert child_name("hello", "-00001") == "hello-00001"


# ----- config-features ------------------------------------------------------------------------


def test_features_config_parsing() -> None:
    f = FeaturesConfig.from_mapping(
        {"kubernetes.podspec-affinity": "Enabled", "multi-container": "disabled", "_example": "x"}
    )
    assert f.allows("kubernetes.podspec-affinity") and f.enabled("kubernetes.podspec-affinity")
    assert not f.enabled("multi-container")
    allowed = FeaturesConfig.from_mapping({"kubernetes.podspec-affinity": "allowed"})
    assert allowed.allows("kubernetes.podspec-affinity")
    assert not allowed.enabled("kubernetes.podspec-affinity")
    with pytest.raises(ConfigError, match="config-features: multi-container: must be one of"):
        FeaturesConfig.from_mapping({"multi-container": "enable"})
    with pytest.raises(
        ConfigError,
        match="config-features: autodetect-http2: only disabled is supported by zeroserve so far",
    ):
        FeaturesConfig.from_mapping({"autodetect-http2": "enabled"})
    assert (
        FeaturesConfig.from_mapping({"secure-pod-defaults": "Disabled"}).flag("secure-pod-defaults")
        == "disabled"
    )
    with pytest.raises(ConfigError, match=r"config-features: kubernetes\.podspec-afinity: unknown"):
        FeaturesConfig.from_mapping({"kubernetes.podspec-afinity": "enabled"})


def test_config_features_in_the_same_batch_applies_to_the_services_in_it() -> None:
    text = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config-features, namespace: "
        "knative-serving}\ndata: {kubernetes.podspec-nodeselector: enabled}\n---\n"
        + dump(edit(doc(), (*POD, "nodeSelector"), {"a": "b"}))
    )
    objects = load(text, "f.yaml")
    cfg, errors = validate_objects(objects, Configs())
    assert errors == []
    assert cfg.features.enabled("kubernetes.podspec-nodeselector")


# ----- Secrets and ConfigMaps -----------------------------------------------------------------


def test_secret_merges_string_data_and_config_map_lives_in_any_namespace() -> None:
    text = """\
apiVersion: v1
kind: Secret
metadata: {name: db, namespace: shop}
type: Opaque
data:
  user: YWRtaW4=
  password: b2xk
stringData:
  password: s3cr3t
---
apiVersion: v1
kind: ConfigMap
metadata: {name: app-settings}
data: {target: World}
binaryData: {logo.png: iVBORw0K}
"""
    secret, cm = load(text, "f.yaml")
    assert isinstance(secret, SecretObject) and isinstance(cm, ConfigMapObject)
    assert secret.value("user") == b"admin"
    assert secret.value("password") == b"s3cr3t"
    assert secret.data["password"] == base64.b64encode(b"s3cr3t").decode()
    assert (cm.meta.namespace, cm.is_setting, dict(cm.data)) == (
        "default",
        False,
        {"target": "World"},
    )
    _, errors = validate_objects([secret, cm], Configs())
    assert errors == []


def test_bad_secret_data() -> None:
    text = """\
apiVersion: v1
kind: Secret
metadata: {name: db}
data: {password: "not base64!", "bad key": eA==}
"""
    with pytest.raises(ManifestErrors) as info:
        load(text, "f.yaml")
    assert [str(e) for e in info.value.errors] == [
        "f.yaml: Secret default/db: data.password: must be base64-encoded (use stringData for "
        "plain text)",
        "f.yaml: Secret default/db: data['bad key']: a key must consist of letters, digits, '-', "
        "'_' or '.' (at most 253), got 'bad key'",
    ]
