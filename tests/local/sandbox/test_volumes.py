"""A pod's volumes written as the kubelet writes them."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from zeroserve.api.objects import ConfigMapObject, Container, ObjectMeta, SecretObject
from zeroserve.local.env import Node, PodFacts
from zeroserve.local.sandbox.state import RunState
from zeroserve.local.sandbox.volumes import PodVolumes, VolumeError

from .conftest import root_only


def _secret(name: str, **values: str) -> SecretObject:
    data = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
    return SecretObject(ObjectMeta(name=name, namespace="default"), data=data)


def _configmap(name: str, **values: str) -> ConfigMapObject:
    return ConfigMapObject(ObjectMeta(name=name, namespace="default"), data=values)


class Objects:
    def __init__(self, *objs: SecretObject | ConfigMapObject) -> None:
        self.objs = {(o.kind, o.meta.name): o for o in objs}

    def __call__(self, kind: str, namespace: str, name: str) -> Any:
        return self.objs.get((kind, name)) if namespace == "default" else None


def _volumes(tmp: Path, state: RunState, lookup: Objects, *volumes: dict[str, Any]) -> PodVolumes:
    return PodVolumes(
        tmp / "pod",
        list(volumes),
        namespace="default",
        lookup=lookup,
        pod=PodFacts(
            name="web-00001-deployment-abcde",
            namespace="default",
            uid="uid-1",
            labels={"app": "web", "tier": "front"},
            annotations={"a": "1"},
            service_account="reader",
        ),
        containers={"user-container": Container(resources={"limits": {"memory": "64Mi"}})},
        node=Node.this_host(),
        state=state,
    )


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
    )  # fmt: skip
    vols.setup()
    root = tmp_path / "pod"
    assert (root / "all" / "..data").is_symlink()
    assert os.readlink(root / "all" / "password") == "..data/password"
    assert (root / "all" / "password").read_text() == "s3cret"
    assert stat.S_IMODE((root / "all" / "password").stat().st_mode) == 0o400
    assert (root / "one" / "u" / "name").read_text() == "admin"
    assert not (root / "one" / "password").exists()
    assert stat.S_IMODE((root / "one" / "u" / "name").stat().st_mode) == 0o600
    vols.close()
    assert not root.exists()


def test_missing_objects_and_keys_fail_with_the_kubelets_words_unless_optional(
    tmp_path: Path, run_state: RunState
) -> None:
    objs = Objects(_configmap("cfg", level="debug"))
    cases = [
        ({"secret": {"secretName": "nope"}}, 'MountVolume.SetUp failed for volume "v" : secret "nope" not found'),
        ({"configMap": {"name": "cfg", "items": [{"key": "colour", "path": "c"}]}}, "configmap references non-existent config key: colour"),
        ({"projected": {"sources": [{"configMap": {"name": "gone"}}]}}, 'configmap "gone" not found'),
    ]  # fmt: skip
    for volume, words in cases:
        vols = _volumes(tmp_path, run_state, objs, {"name": "v", **volume})
        with pytest.raises(VolumeError, match=words) as e:
            vols.setup()
        assert e.value.reason == "ContainerCreating"
        assert not (tmp_path / "pod").exists()  # nothing kept
    ok = _volumes(
        tmp_path, run_state, objs, {"name": "v", "secret": {"secretName": "nope", "optional": True}}
    )
    ok.setup()
    assert [p.name for p in (tmp_path / "pod" / "v").iterdir() if not p.name.startswith("..")] == []
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
    objs.objs[("Secret", "db")] = _secret("db", password="new")
    assert vols.refresh() is True
    assert (path / "password").read_text() == "new"
    assert not (path / "user").exists()  # a key gone from the Secret leaves the volume
    assert os.readlink(path / "..data") != before and not (path / before).exists()
    del objs.objs[("Secret", "db")]
    assert vols.refresh() is False
    assert (path / "password").read_text() == "new"
    vols.close()


def test_projected_combines_sources_with_the_downward_api_and_a_token(
    tmp_path: Path, run_state: RunState
) -> None:
    objs = Objects(_secret("db", password="p"), _configmap("cfg", level="debug"))
    projected = {
        "sources": [
            {"secret": {"name": "db"}},
            {"configMap": {"name": "cfg"}},
            {"downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                {"path": "mem", "resourceFieldRef": {"containerName": "user-container", "resource": "limits.memory", "divisor": "1Mi"}},
            ]}},
            {"serviceAccountToken": {"path": "token", "audience": "vault"}},
        ]
    }  # fmt: skip
    vols = _volumes(tmp_path, run_state, objs, {"name": "all", "projected": projected})
    vols.setup()
    d = tmp_path / "pod" / "all"
    assert (d / "password").read_text() == "p" and (d / "level").read_text() == "debug"
    assert (d / "labels").read_text() == 'app="web"\ntier="front"'
    assert (d / "name").read_text() == "web-00001-deployment-abcde"
    assert (d / "mem").read_text() == "64"
    token = (d / "token").read_text()
    assert token.count(".") == 2
    assert stat.S_IMODE((d / "token").stat().st_mode) == 0o600
    vols.close()


def test_mounts_follow_volume_mounts_with_sub_paths(tmp_path: Path, run_state: RunState) -> None:
    objs = Objects(_configmap("cfg", level="debug"))
    vols = _volumes(tmp_path, run_state, objs, {"name": "c", "configMap": {"name": "cfg"}}, {"name": "scratch", "emptyDir": {}})  # fmt: skip
    vols.setup()
    c = Container(
        volume_mounts=(
            {"name": "c", "mountPath": "/etc/cfg", "readOnly": True},
            {"name": "c", "mountPath": "/etc/level", "subPath": "level", "readOnly": True},
            {"name": "scratch", "mountPath": "/tmp/scratch"},
        )
    )
    mounts = vols.mounts(c)
    root = tmp_path / "pod"
    assert [(m.source, m.target, m.read_only) for m in mounts] == [
        (str(root / "c"), "/etc/cfg", True),
        (str((root / "c" / "level").resolve()), "/etc/level", True),
        (str(root / "scratch"), "/tmp/scratch", False),
    ]
    assert ".." in mounts[1].source  # the file itself: a later update does not reach it
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
    mounts = Path("/proc/self/mountinfo").read_text()
    line = next(x for x in mounts.splitlines() if f" {target} " in x)
    assert "tmpfs" in line and "size=8192k" in line, line
    vols.close()
    assert f" {target} " not in Path("/proc/self/mountinfo").read_text()


async def test_host_paths_are_made_when_asked_and_checked_otherwise(
    tmp_path: Path, run_state: RunState
) -> None:
    made = tmp_path / "data" / "cache"
    vols = _volumes(
        tmp_path, run_state, Objects(),
        {"name": "h", "hostPath": {"path": str(made), "type": "DirectoryOrCreate"}},
    )  # fmt: skip
    vols.setup()
    assert made.is_dir()
    assert vols.mounts(Container(volume_mounts=({"name": "h", "mountPath": "/cache"},)))[
        0
    ].source == str(made)
    bad = _volumes(
        tmp_path,
        run_state,
        Objects(),
        {"name": "f", "hostPath": {"path": str(made), "type": "File"}},
    )
    with pytest.raises(VolumeError, match="is not a file"):
        bad.setup()
    vols.close()
    await run_state.undo()
    assert not (tmp_path / "data").exists()  # made for the pod, removed with the run
