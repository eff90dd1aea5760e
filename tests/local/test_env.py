"""A container's env as the kubelet makes it (``zeroserve.local.env``), over in-memory
Secrets and ConfigMaps; and how the runtime hands an exec readiness probe to itself
and a TCP probe to the queue-proxy."""

from __future__ import annotations

import base64
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from zeroserve.api.objects import (
    ConfigMapObject,
    Container,
    EnvFrom,
    EnvVar,
    FieldRef,
    KeyRef,
    ObjectMeta,
    ResourceFieldRef,
    RevisionTemplate,
    SecretObject,
)
from zeroserve.local.env import (
    CONFIG_ERROR,
    EnvError,
    Node,
    PodFacts,
    expand,
    quantity,
    resolve_env,
)
from zeroserve.local.runtime import LocalRuntime, RevisionRun, RevisionSet, _Pod
from zeroserve.topology import RevisionInfo, RevisionKey


def _b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


OBJECTS: dict[tuple[str, str, str], ConfigMapObject | SecretObject] = {
    ("Secret", "default", "db"): SecretObject(
        ObjectMeta("db"), data={"password": _b64("s3cret"), "user": _b64("app")}
    ),
    ("ConfigMap", "default", "app-settings"): ConfigMapObject(
        ObjectMeta("app-settings"),
        data={"target": "World", "MODE": "fast", "bad key": "x", "1st": "y"},
        binary_data={"blob": _b64("z")},
    ),
    ("ConfigMap", "other", "app-settings"): ConfigMapObject(
        ObjectMeta("app-settings", "other"), data={"target": "elsewhere"}
    ),
}
POD = PodFacts(
    name="hello-00001-deployment-abcde",
    namespace="default",
    uid="6f1c1f0e-0000-4000-8000-000000000001",
    labels={"app": "hello-00001", "team": "a"},
    annotations={"note": "hi"},
    node_name="laptop",
    service_account="runner",
)
NODE = Node(cpu=Fraction(8), memory=Fraction(16 * 2**30))


def lookup(kind: str, namespace: str, name: str) -> ConfigMapObject | SecretObject | None:
    return OBJECTS.get((kind, namespace, name))


def env_of(container: Container, namespace: str = "default") -> dict[str, str]:
    return resolve_env(container, namespace=namespace, lookup=lookup, pod=POD, node=NODE)


def test_key_refs_read_the_objects_of_the_pods_namespace() -> None:
    c = Container(
        env=(
            EnvVar("PASSWORD", value_from=KeyRef("Secret", "db", "password")),
            EnvVar("TARGET", value_from=KeyRef("ConfigMap", "app-settings", "target")),
        )
    )
    assert env_of(c) == {"PASSWORD": "s3cret", "TARGET": "World"}
    with pytest.raises(EnvError):
        env_of(c, "other")  # no Secret db there
    only_cm = Container(env=c.env[1:])
    assert env_of(only_cm, "other") == {"TARGET": "elsewhere"}


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (KeyRef("Secret", "missing", "password"), 'secret "missing" not found'),
        (KeyRef("ConfigMap", "nope", "target"), 'configmap "nope" not found'),
        (KeyRef("Secret", "db", "token"), "couldn't find key token in Secret default/db"),
        (
            KeyRef("ConfigMap", "app-settings", "blob"),
            "couldn't find key blob in ConfigMap default/app-settings",
        ),
    ],
)
def test_a_missing_object_or_key_fails_with_the_kubelets_words_unless_optional(
    ref: KeyRef, message: str
) -> None:
    c = Container(env=(EnvVar("A", "1"), EnvVar("X", value_from=ref)))
    with pytest.raises(EnvError) as info:
        env_of(c)
    assert (info.value.reason, info.value.message) == (CONFIG_ERROR, message)
    optional = KeyRef(ref.kind, ref.name, ref.key, optional=True)
    assert env_of(Container(env=(EnvVar("A", "1"), EnvVar("X", value_from=optional)))) == {"A": "1"}


def test_env_from_imports_every_valid_key_and_env_wins() -> None:
    c = Container(
        env_from=(
            EnvFrom("ConfigMap", "app-settings"),
            EnvFrom("Secret", "db", prefix="DB_"),
            EnvFrom("Secret", "absent", optional=True),
            EnvFrom("ConfigMap", "app-settings", prefix="CFG_"),
        ),
        env=(EnvVar("MODE", "slow"),),
    )
    assert env_of(c) == {
        # keys that are not variable names ("bad key", "1st") are skipped; binaryData too
        "target": "World",
        "MODE": "slow",  # env wins over envFrom
        "DB_password": "s3cret",
        "DB_user": "app",
        "CFG_target": "World",
        "CFG_MODE": "fast",
        "CFG_1st": "y",  # valid with the prefix
    }
    with pytest.raises(EnvError) as info:
        env_of(Container(env_from=(EnvFrom("Secret", "absent"),)))
    assert info.value.message == 'secret "absent" not found'


def test_later_env_from_entries_win() -> None:
    OBJECTS[("ConfigMap", "default", "override")] = ConfigMapObject(
        ObjectMeta("override"), data={"target": "Override"}
    )
    try:
        c = Container(
            env_from=(EnvFrom("ConfigMap", "app-settings"), EnvFrom("ConfigMap", "override"))
        )
        assert env_of(c)["target"] == "Override"
    finally:
        del OBJECTS[("ConfigMap", "default", "override")]


def test_secret_bytes_reach_the_process_unchanged() -> None:
    OBJECTS[("Secret", "default", "raw")] = SecretObject(
        ObjectMeta("raw"), data={"k": _b64(b"caf\xc3\xa9 \xff")}
    )
    try:
        c = Container(env=(EnvVar("K", value_from=KeyRef("Secret", "raw", "k")),))
        value = env_of(c)["K"]
        assert value.encode("utf-8", "surrogateescape") == b"caf\xc3\xa9 \xff"
        assert value.startswith("café ")
    finally:
        del OBJECTS[("Secret", "default", "raw")]


def test_field_refs_are_the_pods() -> None:
    paths = {
        "NAME": "metadata.name",
        "NS": "metadata.namespace",
        "UID": "metadata.uid",
        "TEAM": "metadata.labels['team']",
        "NONE": "metadata.labels['absent']",
        "NOTE": "metadata.annotations['note']",
        "NODE": "spec.nodeName",
        "SA": "spec.serviceAccountName",
        "IP": "status.podIP",
        "IPS": "status.podIPs",
        "HOST": "status.hostIP",
    }
    c = Container(env=tuple(EnvVar(k, value_from=FieldRef(p)) for k, p in paths.items()))
    assert env_of(c) == {
        "NAME": "hello-00001-deployment-abcde",
        "NS": "default",
        "UID": "6f1c1f0e-0000-4000-8000-000000000001",
        "TEAM": "a",
        "NONE": "",
        "NOTE": "hi",
        "NODE": "laptop",
        "SA": "runner",
        "IP": "127.0.0.1",
        "IPS": "127.0.0.1",
        "HOST": "127.0.0.1",
    }


def test_resource_field_refs_round_up_and_fall_back_to_the_node() -> None:
    refs = {
        "CPU": ResourceFieldRef("limits.cpu"),
        "CPU_M": ResourceFieldRef("limits.cpu", divisor="1m"),
        "MEM_MI": ResourceFieldRef("limits.memory", divisor="1Mi"),
        "MEM": ResourceFieldRef("limits.memory"),
        "REQ_CPU": ResourceFieldRef("requests.cpu", divisor="100m"),
        "REQ_MEM": ResourceFieldRef("requests.memory", divisor="1Mi"),
    }
    limited = Container(
        env=tuple(EnvVar(k, value_from=r) for k, r in refs.items()),
        resources={"limits": {"cpu": "250m", "memory": "100M"}, "requests": {"cpu": "0.15"}},
    )
    assert env_of(limited) == {
        "CPU": "1",  # 250m rounds up to one core
        "CPU_M": "250",
        "MEM_MI": "96",  # 100e6 / 2**20 = 95.4, rounded up
        "MEM": "100000000",
        "REQ_CPU": "2",  # 150m / 100m, rounded up
        "REQ_MEM": "96",  # an unset request is the limit (API defaulting)
    }
    unlimited = Container(env=limited.env)
    assert env_of(unlimited) == {
        "CPU": "8",
        "CPU_M": "8000",
        "MEM_MI": str(16 * 1024),
        "MEM": str(16 * 2**30),
        "REQ_CPU": "0",
        "REQ_MEM": "0",
    }


def test_literal_values_expand_earlier_variables_as_the_kubelet() -> None:
    c = Container(
        env_from=(EnvFrom("ConfigMap", "app-settings"),),
        env=(
            EnvVar("HOST", "db.local"),
            EnvVar("URL", "postgres://$(HOST)/$(target)?m=$(LATER)&p=$$(HOST)&c=$5&o=$(x"),
            EnvVar("LATER", "late"),
        ),
    )
    assert env_of(c)["URL"] == "postgres://db.local/World?m=$(LATER)&p=$(HOST)&c=$5&o=$(x"
    assert expand("$(A)$(B)$$", {"A": "1"}) == "1$(B)$"
    assert expand("$", {}) == "$"


def test_quantities() -> None:
    assert quantity("500m") == Fraction(1, 2)
    assert quantity("1Gi") == 2**30
    assert quantity("1e3") == 1000
    assert quantity(2) == 2
    assert quantity("1.5k") == 1500


def _set(
    probe: dict[str, object], tmp_path: Path, template: RevisionTemplate | None = None
) -> RevisionSet:
    info = RevisionInfo(key=RevisionKey("default", "probe-00001"), configuration="probe")
    run = RevisionRun(
        info=info, command=("python", "app.py"), readiness_probe=probe, template=template
    )
    runtime = LocalRuntime(on_change=lambda: None, log_dir=tmp_path, lookup=lookup, node=NODE)
    return RevisionSet(run, runtime)


def test_an_exec_readiness_probe_is_the_runtimes_and_the_queue_proxy_probes_tcp(
    tmp_path: Path,
) -> None:
    probe = {"exec": {"command": ["python", "check.py"]}, "periodSeconds": 2, "failureThreshold": 1}
    spec = _set(probe, tmp_path)._spec(_Pod("probe-00001-deployment-x"))
    assert spec.exec_probe == {
        "exec": {"command": [sys.executable, "check.py"]},
        "periodSeconds": 2,
        "failureThreshold": 1,
    }
    assert spec.readiness_probe == {
        "tcpSocket": {"port": 0},
        "periodSeconds": 2,
        "failureThreshold": 1,
        "timeoutSeconds": 1,
    }
    grpc = {"grpc": {"port": 8080, "service": "app"}, "periodSeconds": 1}
    spec = _set(grpc, tmp_path)._spec(_Pod("probe-00001-deployment-y"))
    assert (spec.exec_probe, spec.readiness_probe) == (None, grpc)


def test_the_runtime_resolves_env_at_each_start_from_the_template(tmp_path: Path) -> None:
    template = RevisionTemplate(
        labels={"team": "a"},
        containers=(
            Container(
                command=("python", "app.py", "--port=$(PORT)"),
                env=(
                    EnvVar("PASSWORD", value_from=KeyRef("Secret", "db", "password")),
                    EnvVar("POD", value_from=FieldRef("metadata.name")),
                    EnvVar(
                        "REV",
                        value_from=FieldRef("metadata.labels['serving.knative.dev/revision']"),
                    ),
                    EnvVar("TEAM", value_from=FieldRef("metadata.labels['team']")),
                ),
            ),
        ),
    )
    rs = _set({}, tmp_path, template)
    pod = _Pod("probe-00001-deployment-z")
    spec = rs._spec(pod)
    assert spec.env == {
        "PASSWORD": "s3cret",
        "POD": "probe-00001-deployment-z",
        "REV": "probe-00001",
        "TEAM": "a",
    }
    assert spec.expand_command
    missing = RevisionTemplate(
        containers=(Container(env=(EnvVar("T", value_from=KeyRef("Secret", "db", "token")),)),)
    )
    with pytest.raises(EnvError) as info:
        _set({}, tmp_path, missing)._spec(pod)
    assert info.value.message == "couldn't find key token in Secret default/db"
