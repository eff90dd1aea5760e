"""A pod's volumes written as the kubelet writes them."""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import time
import types
from pathlib import Path
from typing import Any

import pytest

from zeroserve.api.objects import ConfigMapObject, Container, ObjectMeta, SecretObject
from zeroserve.local.env import Node, PodFacts
from zeroserve.local.sandbox import tokens
from zeroserve.local.sandbox.state import RunState
from zeroserve.local.sandbox.volumes import PodVolumes, VolumeError, format_map, go_quote

from .conftest import root_only


def _secret(name: str, **values: str) -> SecretObject:
    data = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
    return SecretObject(ObjectMeta(name=name, namespace="default"), data=data)


def _configmap(name: str, binary: dict[str, bytes] | None = None, **values: str) -> ConfigMapObject:
    encoded = {k: base64.b64encode(v).decode() for k, v in (binary or {}).items()}
    return ConfigMapObject(
        ObjectMeta(name=name, namespace="default"), data=values, binary_data=encoded
    )


class Objects:
    """An in-memory ``Lookup``: the namespace ``default`` holds ``objs``."""

    def __init__(self, *objs: SecretObject | ConfigMapObject) -> None:
        self.objs = {(o.kind, o.meta.name): o for o in objs}

    def __call__(self, kind: str, namespace: str, name: str) -> Any:
        return self.objs.get((kind, name)) if namespace == "default" else None


POD = PodFacts(
    name="web-00001-deployment-abcde",
    namespace="default",
    uid="uid-1",
    labels={"tier": "front", "app": "web"},
    annotations={"note": 'say "hi"\nbye', "a": "1"},
    service_account="reader",
)


def _volumes(tmp: Path, state: RunState, lookup: Objects, *volumes: dict[str, Any]) -> PodVolumes:
    return PodVolumes(
        tmp / "pod",
        list(volumes),
        namespace="default",
        lookup=lookup,
        pod=POD,
        containers={"user-container": Container(resources={"limits": {"memory": "64Mi"}})},
        node=Node.this_host(),
        state=state,
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _visible(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if not p.name.startswith(".."))


def test_a_secret_volume_has_the_kubelets_layout_modes_and_items(
    tmp_path: Path, run_state: RunState
) -> None:
    objs = Objects(_secret("db", password="s3cret", user="admin"))
    vols = _volumes(
        tmp_path,
        run_state,
        objs,
        {"name": "all", "secret": {"secretName": "db", "defaultMode": 0o400}},
        {"name": "one", "secret": {"secretName": "db", "items": [{"key": "user", "path": "u/name", "mode": 0o600}]}},
        {"name": "plain", "secret": {"secretName": "db"}},
    )  # fmt: skip
    vols.setup()
    root = tmp_path / "pod"
    data = os.readlink(root / "all" / "..data")
    assert data.startswith("..") and (root / "all" / data).is_dir()
    assert os.readlink(root / "all" / "password") == "..data/password"
    assert (root / "all" / "password").read_text() == "s3cret"
    assert _mode(root / "all" / "password") == 0o400
    assert _visible(root / "one") == ["u"]  # only the item, under its path
    assert os.readlink(root / "one" / "u") == "..data/u"
    assert (root / "one" / "u" / "name").read_text() == "admin"
    assert _mode(root / "one" / "u" / "name") == 0o600
    assert _mode(root / "plain" / "user") == 0o644  # defaultMode's default
    vols.close()
    assert not root.exists()
    vols.close()  # a second close is harmless


def test_a_configmap_volume_has_its_data_and_binary_data(
    tmp_path: Path, run_state: RunState
) -> None:
    objs = Objects(_configmap("cfg", binary={"blob": b"\x00\xff"}, level="debug"))
    vols = _volumes(tmp_path, run_state, objs, {"name": "c", "configMap": {"name": "cfg"}})
    vols.setup()
    d = tmp_path / "pod" / "c"
    assert _visible(d) == ["blob", "level"]
    assert (d / "blob").read_bytes() == b"\x00\xff" and (d / "level").read_text() == "debug"
    vols.close()


def test_missing_objects_and_keys_fail_with_the_kubelets_words_unless_optional(
    tmp_path: Path, run_state: RunState
) -> None:
    objs = Objects(_configmap("cfg", level="debug"), _secret("db", user="admin"))
    cases = [
        ({"secret": {"secretName": "nope"}}, 'MountVolume.SetUp failed for volume "v" : secret "nope" not found'),
        ({"configMap": {"name": "nope"}}, 'MountVolume.SetUp failed for volume "v" : configmap "nope" not found'),
        ({"configMap": {"name": "cfg", "items": [{"key": "colour", "path": "c"}]}}, 'MountVolume.SetUp failed for volume "v" : configmap references non-existent config key: colour'),
        ({"secret": {"secretName": "db", "items": [{"key": "password", "path": "p"}]}}, 'MountVolume.SetUp failed for volume "v" : references non-existent secret key: password'),
        ({"projected": {"sources": [{"configMap": {"name": "gone"}}]}}, 'MountVolume.SetUp failed for volume "v" : configmap "gone" not found'),
    ]  # fmt: skip
    for volume, words in cases:
        vols = _volumes(tmp_path, run_state, objs, {"name": "v", **volume})
        with pytest.raises(VolumeError) as e:
            vols.setup()
        assert e.value.message == words
        assert e.value.reason == "ContainerCreating"
        assert not (tmp_path / "pod").exists()  # nothing kept
    ok = _volumes(
        tmp_path,
        run_state,
        objs,
        {"name": "gone", "secret": {"secretName": "nope", "optional": True}},
        {"name": "key", "configMap": {"name": "cfg", "optional": True, "items": [{"key": "colour", "path": "c"}, {"key": "level", "path": "l"}]}},
    )  # fmt: skip
    ok.setup()
    assert _visible(tmp_path / "pod" / "gone") == []
    assert _visible(tmp_path / "pod" / "key") == ["l"]
    ok.close()


def test_refresh_swaps_every_file_at_once_and_keeps_them_when_the_object_goes(
    tmp_path: Path, run_state: RunState
) -> None:
    objs = Objects(_secret("db", password="old", user="admin"))
    vols = _volumes(tmp_path, run_state, objs, {"name": "s", "secret": {"secretName": "db"}})
    vols.setup()
    path = tmp_path / "pod" / "s"
    before = os.readlink(path / "..data")
    assert vols.refresh() is False  # nothing changed
    assert os.readlink(path / "..data") == before
    objs.objs[("Secret", "db")] = _secret("db", password="new")
    with (path / "password").open() as reader:
        assert (path / "password").read_text() == "old"  # until the kubelet's next sync
        assert vols.refresh() is True
        assert reader.read() == "old"  # a reader that opened the old file keeps it
    assert (path / "password").read_text() == "new"  # the same path, the new content
    assert _visible(path) == ["password"]  # a key gone from the Secret leaves the volume
    assert os.readlink(path / "..data") != before and not (path / before).exists()
    del objs.objs[("Secret", "db")]
    assert vols.refresh() is False  # SetUp fails: the files stay as they were
    assert (path / "password").read_text() == "new"
    vols.close()


def test_refresh_empties_an_optional_volume_whose_object_went(
    tmp_path: Path, run_state: RunState
) -> None:
    objs = Objects(_configmap("cfg", level="debug"))
    vols = _volumes(
        tmp_path, run_state, objs, {"name": "c", "configMap": {"name": "cfg", "optional": True}}
    )
    vols.setup()
    del objs.objs[("ConfigMap", "cfg")]
    assert vols.refresh() is True
    assert _visible(tmp_path / "pod" / "c") == []
    vols.close()


def test_projected_combines_sources_with_the_downward_api_and_a_token(
    tmp_path: Path, run_state: RunState
) -> None:
    objs = Objects(_secret("db", password="p"), _configmap("cfg", level="debug"))
    projected = {
        "defaultMode": 0o440,
        "sources": [
            {"secret": {"name": "db"}},
            {"configMap": {"name": "cfg", "items": [{"key": "level", "path": "conf/level"}]}},
            {"downwardAPI": {"items": [
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                {"path": "mem", "resourceFieldRef": {"containerName": "user-container", "resource": "limits.memory", "divisor": "1Mi"}, "mode": 0o400},
            ]}},
            {"serviceAccountToken": {"path": "token", "audience": "vault"}},
        ],
    }  # fmt: skip
    vols = _volumes(tmp_path, run_state, objs, {"name": "all", "projected": projected})
    vols.setup()
    d = tmp_path / "pod" / "all"
    assert _visible(d) == ["conf", "mem", "name", "password", "token"]
    assert (d / "password").read_text() == "p" and (d / "conf" / "level").read_text() == "debug"
    assert _mode(d / "password") == 0o440 and _mode(d / "mem") == 0o400
    assert (d / "name").read_text() == "web-00001-deployment-abcde"
    assert (d / "mem").read_text() == "64"
    payload = (d / "token").read_text().split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["aud"] == ["vault"]
    assert claims["sub"] == "system:serviceaccount:default:reader"
    assert claims["kubernetes.io"]["pod"] == {"name": POD.name, "uid": "uid-1"}
    vols.close()


def test_a_projected_token_is_kept_until_80_percent_of_its_life(
    tmp_path: Path, run_state: RunState, monkeypatch: pytest.MonkeyPatch
) -> None:
    def issued(ago: float) -> None:
        clock = types.SimpleNamespace(time=lambda: time.time() - ago)
        monkeypatch.setattr(tokens, "time", clock)

    source = {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}
    vols = _volumes(tmp_path, run_state, Objects(), {"name": "t", "projected": {"sources": [source]}})  # fmt: skip
    issued(1000)  # 1000 s of 3600: fresh
    vols.setup()
    token = tmp_path / "pod" / "t" / "token"
    first = token.read_text()
    assert _mode(token) == 0o600
    issued(0)
    assert vols.refresh() is False and token.read_text() == first
    issued(3000)  # a token issued 3000 s ago is past 80% of its hour
    vols.setup()
    issued(0)
    old = token.read_text()
    assert vols.refresh() is True and token.read_text() not in (old, first)
    vols.close()


def test_a_downward_api_volume_writes_labels_and_annotations_as_the_kubelet(
    tmp_path: Path, run_state: RunState
) -> None:
    items = [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
        {"path": "app", "fieldRef": {"fieldPath": "metadata.labels['app']"}},
        {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}},
    ]
    vols = _volumes(tmp_path, run_state, Objects(), {"name": "d", "downwardAPI": {"items": items}})
    vols.setup()
    d = tmp_path / "pod" / "d"
    assert (d / "labels").read_text() == 'app="web"\ntier="front"'
    assert (d / "annotations").read_text() == 'a="1"\nnote="say \\"hi\\"\\nbye"'
    assert (d / "app").read_text() == "web" and (d / "ns").read_text() == "default"
    vols.close()
    bad = _volumes(
        tmp_path,
        run_state,
        Objects(),
        {"name": "d", "downwardAPI": {"items": [{"path": "x", "fieldRef": {"fieldPath": "spec.nope"}}]}},
    )  # fmt: skip
    with pytest.raises(VolumeError, match=re.escape('"d" : unsupported fieldPath: spec.nope')):
        bad.setup()


def test_go_quote_escapes_as_go_does() -> None:
    assert go_quote('a"b\\c') == '"a\\"b\\\\c"'
    assert go_quote("tab\tnl\n\x1b\x7f") == '"tab\\tnl\\n\\x1b\\x7f"'
    assert go_quote("é ü\u00a0") == '"é ü\\u00a0"'
    assert format_map({"b": "2", "a": "1"}) == 'a="1"\nb="2"' and format_map({}) == ""


def test_unsupported_kinds_say_so(tmp_path: Path, run_state: RunState) -> None:
    for volume, words in [
        ({"nfs": {"server": "x", "path": "/"}}, "nfs volumes are not supported locally: they work on Kubernetes"),
        ({"persistentVolumeClaim": {"claimName": "c"}}, "persistentVolumeClaim volumes are not supported locally"),
        ({}, "the volume names no source"),
    ]:  # fmt: skip
        vols = _volumes(tmp_path, run_state, Objects(), {"name": "v", **volume})
        with pytest.raises(VolumeError, match=words):
            vols.setup()


def test_an_empty_dir_is_a_directory_anyone_may_write(tmp_path: Path, run_state: RunState) -> None:
    vols = _volumes(tmp_path, run_state, Objects(), {"name": "scratch", "emptyDir": {}})
    vols.setup()
    d = tmp_path / "pod" / "scratch"
    assert d.is_dir() and not d.is_symlink() and _mode(d) == 0o777 and _visible(d) == []
    vols.close()


def test_mounts_follow_volume_mounts_with_sub_paths_and_read_only(
    tmp_path: Path, run_state: RunState
) -> None:
    objs = Objects(_configmap("cfg", level="debug"))
    vols = _volumes(tmp_path, run_state, objs, {"name": "c", "configMap": {"name": "cfg"}}, {"name": "scratch", "emptyDir": {}})  # fmt: skip
    vols.setup()
    c = Container(
        volume_mounts=(
            {"name": "c", "mountPath": "/etc/cfg"},
            {"name": "c", "mountPath": "/etc/level", "subPath": "level"},
            {"name": "scratch", "mountPath": "/tmp/scratch"},
            {"name": "scratch", "mountPath": "/var/cache", "subPath": "cache/a", "readOnly": True},
        )
    )
    mounts = vols.mounts(c)
    root = tmp_path / "pod"
    assert [(m.source, m.target, m.read_only) for m in mounts] == [
        (str(root / "c"), "/etc/cfg", True),  # API data is always read-only
        (str((root / "c" / "level").resolve()), "/etc/level", True),
        (str(root / "scratch"), "/tmp/scratch", False),
        (str(root / "scratch" / "cache" / "a"), "/var/cache", True),
    ]
    assert "/..20" in mounts[1].source  # the file itself: a later update does not reach it
    assert (root / "scratch" / "cache" / "a").is_dir()  # a missing subPath is made
    escape = Container(volume_mounts=({"name": "scratch", "mountPath": "/x", "subPath": "../c"},))
    with pytest.raises(VolumeError, match=re.escape("subPath '../c' is outside the volume")):
        vols.mounts(escape)
    vols.close()


@root_only
def test_an_in_memory_empty_dir_is_a_tmpfs_of_its_size_limit(
    tmp_path: Path, run_state: RunState
) -> None:
    vols = _volumes(
        tmp_path, run_state, Objects(), {"name": "m", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}}
    )  # fmt: skip
    vols.setup()
    target = str(tmp_path / "pod" / "m")
    try:
        mounts = Path("/proc/self/mountinfo").read_text()
        line = next(x for x in mounts.splitlines() if f" {target} " in x)
        assert " - tmpfs " in line and "size=8192k" in line, line
        assert ("mount", target) in run_state.entries()  # journaled: a crash leaks nothing
    finally:
        vols.close()
    assert f" {target} " not in Path("/proc/self/mountinfo").read_text()
    assert ("mount", target) not in run_state.entries()


async def test_host_paths_are_made_when_asked_and_checked_otherwise(
    tmp_path: Path, run_state: RunState
) -> None:
    made = tmp_path / "data" / "cache"
    untyped = tmp_path / "untyped"
    file = tmp_path / "data" / "f.txt"
    vols = _volumes(
        tmp_path, run_state, Objects(),
        {"name": "h", "hostPath": {"path": str(made), "type": "DirectoryOrCreate"}},
        {"name": "u", "hostPath": {"path": str(untyped)}},
        {"name": "f", "hostPath": {"path": str(file), "type": "FileOrCreate"}},
    )  # fmt: skip
    vols.setup()
    assert made.is_dir() and untyped.is_dir()  # no type: made as containerd does
    assert file.is_file() and file.read_bytes() == b""
    m = vols.mounts(Container(volume_mounts=({"name": "h", "mountPath": "/cache"},)))
    assert [(x.source, x.read_only) for x in m] == [(str(made), False)]
    (made / "kept").write_text("x")  # a hostPath is the host's: close leaves it
    vols.close()
    assert (made / "kept").exists()
    (made / "kept").unlink()
    for volume, words in [
        ({"path": str(made), "type": "File"}, f"hostPath type check failed: {made} is not a file, it's a Directory"),
        ({"path": str(file), "type": "Directory"}, f"hostPath type check failed: {file} is not a directory, it's a File"),
        ({"path": str(made), "type": "Socket"}, f"hostPath type check failed: {made} is not a socket file, it's a Directory"),
        ({"path": str(tmp_path / "none"), "type": "Directory"}, f"hostPath {tmp_path / 'none'} doesn't exist"),
        ({"path": str(tmp_path / "no" / "f"), "type": "FileOrCreate"}, f"open {tmp_path / 'no' / 'f'}: no such file or directory"),
        ({"path": str(made), "type": "Nope"}, "Nope is an invalid volume type"),
    ]:  # fmt: skip
        bad = _volumes(tmp_path, run_state, Objects(), {"name": "x", "hostPath": volume})
        with pytest.raises(VolumeError) as e:
            bad.setup()
        assert e.value.message == f'MountVolume.SetUp failed for volume "x" : {words}'
    assert not (tmp_path / "no").exists()
    await run_state.undo()
    assert not (tmp_path / "data").exists() and not untyped.exists()  # made for the run
