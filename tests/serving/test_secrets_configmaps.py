"""Secrets and ConfigMaps in any namespace: apply, immutability, get (values never
shown), delete; ``generateName``; the ``knative-serving`` settings maps unchanged."""

from __future__ import annotations

import random
import re

import pytest

from tests.api.manifests import HELLO_V1, doc, dump, edit, snapshot
from zeroserve.api import ManifestErrors, load
from zeroserve.serving import kinds
from zeroserve.serving.controller import GENERATE_ALPHABET, Controller
from zeroserve.serving.kinds import NotFound

SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "db", "namespace": "shop"},
    "type": "Opaque",
    "stringData": {"password": "s3cret!", "user": "app"},
}
SETTINGS = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "app-settings"},
    "data": {"target": "World", "mode": "fast"},
    "binaryData": {"logo": "iVBORw=="},
}


def test_secrets_and_configmaps_apply_like_kubectl() -> None:
    c = Controller(0.0)
    text = dump(SECRET, SETTINGS)
    assert c.apply(load(text, "data.yaml"), now=1.0) == [
        "secret/db created",
        "configmap/app-settings created",
    ]
    assert c.apply(load(text, "data.yaml"), now=2.0) == [
        "secret/db unchanged",
        "configmap/app-settings unchanged",
    ]
    changed = edit(SECRET, ("stringData", "password"), "rotated")
    assert c.apply(load(dump(changed), "s.yaml"), now=3.0) == ["secret/db configured"]
    secret = c.lookup("Secret", "shop", "db")
    assert secret is not None and secret.value("password") == b"rotated"
    cm = c.lookup("ConfigMap", "default", "app-settings")
    assert cm is not None and cm.data["target"] == "World"
    # a data map is not a setting: the settings stay the defaults
    assert c.config_data("app-settings") == {}
    assert c.lookup("Secret", "default", "db") is None


def test_get_secrets_shows_kubectls_columns_and_never_a_value() -> None:
    c = Controller(0.0)
    c.apply(load(dump(SECRET, SETTINGS), "data.yaml"), now=10.0)
    assert c.table("secrets", "shop", now=100.0) == (
        ["NAME", "TYPE", "DATA", "AGE"],
        [["db", "Opaque", "2", "90s"]],
    )
    assert c.table("cm", "default", now=400.0) == (
        ["NAME", "DATA", "AGE"],
        [["app-settings", "3", "6m30s"]],
    )
    [obj] = c.get("secret", "shop", "db")
    assert obj == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "db",
            "namespace": "shop",
            "creationTimestamp": "1970-01-01T00:00:10Z",
        },
        "type": "Opaque",
        "data": {"password": "<redacted: 7 bytes>", "user": "<redacted: 3 bytes>"},
    }
    assert "s3cret" not in repr(c.get("secrets")) and "czNjcmV0" not in repr(c.get("secrets"))
    [cm] = c.get("configmaps", "default", "app-settings")
    assert cm["data"] == SETTINGS["data"] and cm["binaryData"] == SETTINGS["binaryData"]


@pytest.mark.parametrize(
    ("alias", "kind"),
    [
        ("secret", kinds.SECRET),
        ("secrets", kinds.SECRET),
        ("Secrets", kinds.SECRET),
        ("cm", kinds.CONFIG_MAP),
        ("configmap", kinds.CONFIG_MAP),
        ("configmaps", kinds.CONFIG_MAP),
    ],
)
def test_kind_names(alias: str, kind: kinds.Kind) -> None:
    assert kinds.resolve_kind(alias) is kind


def test_delete_secrets_and_configmaps_in_their_namespace() -> None:
    c = Controller(0.0)
    c.apply(load(dump(SECRET, SETTINGS), "data.yaml"), now=1.0)
    with pytest.raises(NotFound) as info:
        c.delete("secret", "default", "db")
    assert str(info.value) == 'secrets "db" not found in namespace default'
    assert c.delete("secret", "shop", "db") == 'secret "db" deleted'
    assert c.delete("cm", "default", "app-settings") == 'configmap "app-settings" deleted'
    assert c.get("secrets") == [] and c.get("cm") == []
    assert c.lookup("Secret", "shop", "db") is None
    # applied again, it is new (a new creation time)
    assert c.apply(load(dump(SECRET), "s.yaml"), now=5.0) == ["secret/db created"]
    assert c.get("secret", "shop", "db")[0]["metadata"]["creationTimestamp"].endswith(":05Z")


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        pytest.param(
            ("stringData", "password"),
            ["s.yaml: Secret shop/db: data: field is immutable when `immutable` is set"],
            id="data",
        ),
        pytest.param(
            ("immutable",),
            [
                "s.yaml: Secret shop/db: immutable: field is immutable when `immutable` is set",
            ],
            id="immutable",
        ),
        pytest.param(
            ("type",),
            ["s.yaml: Secret shop/db: type: field is immutable"],
            id="type",
        ),
    ],
)
def test_an_immutable_secret_refuses_changes_and_the_batch_applies_nothing(
    change: tuple[str, ...], errors: list[str]
) -> None:
    c = Controller(0.0)
    immutable = {**SECRET, "immutable": True}
    c.apply(load(dump(immutable), "s.yaml"), now=1.0)
    values = {("stringData", "password"): "new", ("immutable",): False, ("type",): "Other"}
    changed = edit(immutable, change, values[change])
    before = (snapshot(c), c.get("secrets"))
    with pytest.raises(ManifestErrors) as info:
        c.apply(load(dump(doc(HELLO_V1), changed), "s.yaml"), now=2.0)
    assert [str(e) for e in info.value.errors] == errors
    assert (snapshot(c), c.get("secrets")) == before
    # labels may still change; the same data is "unchanged"
    assert c.apply(load(dump(immutable), "s.yaml"), now=3.0) == ["secret/db unchanged"]
    relabelled = edit(immutable, ("metadata", "labels"), {"team": "a"})
    assert c.apply(load(dump(relabelled), "s.yaml"), now=4.0) == ["secret/db configured"]


def test_an_immutable_configmap_refuses_a_data_change() -> None:
    c = Controller(0.0)
    immutable = {**SETTINGS, "immutable": True}
    c.apply(load(dump(immutable), "c.yaml"), now=1.0)
    changed = edit(immutable, ("data", "target"), "Knative")
    with pytest.raises(ManifestErrors) as info:
        c.apply(load(dump(changed), "c.yaml"), now=2.0)
    assert [str(e) for e in info.value.errors] == [
        "c.yaml: ConfigMap default/app-settings: data: field is immutable when `immutable` is set"
    ]
    cm = c.lookup("ConfigMap", "default", "app-settings")
    assert cm is not None and cm.data["target"] == "World"


def test_settings_maps_still_configure_and_namesakes_elsewhere_do_not() -> None:
    c = Controller(0.0)
    domain = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "config-domain", "namespace": "knative-serving"},
        "data": {"example.com": ""},
    }
    namesake = {**domain, "metadata": {"name": "config-domain", "namespace": "default"}}
    c.apply(load(dump(doc(HELLO_V1), namesake), "f.yaml"), now=1.0)
    assert c.get("ksvc", "default", "hello")[0]["status"]["url"] == "http://hello.default.localhost"
    c.apply(load(dump(domain), "d.yaml"), now=2.0)
    assert c.config_data("config-domain") == {"example.com": ""}
    assert (
        c.get("ksvc", "default", "hello")[0]["status"]["url"] == "http://hello.default.example.com"
    )
    # deleting the namesake in default changes nothing; deleting the setting restores the default
    c.delete("cm", "default", "config-domain")
    assert (
        c.get("ksvc", "default", "hello")[0]["status"]["url"] == "http://hello.default.example.com"
    )
    c.delete("cm", "knative-serving", "config-domain")
    assert c.get("ksvc", "default", "hello")[0]["status"]["url"] == "http://hello.default.localhost"


def test_generate_name_makes_a_new_service_at_each_apply() -> None:
    c = Controller(0.0, rng=random.Random(7))
    svc = edit(doc(HELLO_V1), ("metadata",), {"generateName": "hello-"})
    first = c.apply(load(dump(svc), "g.yaml"), now=1.0)
    second = c.apply(load(dump(svc), "g.yaml"), now=2.0)
    pattern = re.compile(
        rf"service\.serving\.knative\.dev/(hello-[{GENERATE_ALPHABET}]{{5}}) created"
    )
    names = [m.group(1) for line in (*first, *second) if (m := pattern.fullmatch(line))]
    assert len(names) == 2 and names[0] != names[1]
    assert sorted(o["metadata"]["name"] for o in c.get("ksvc")) == sorted(names)
    assert {o["metadata"]["name"] for o in c.get("rev")} == {f"{n}-00001" for n in names}
