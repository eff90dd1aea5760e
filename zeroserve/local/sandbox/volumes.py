"""A pod's volumes, written on the host as the kubelet writes them.

Each volume is a directory under the pod's run directory, which the containers
bind-mount at their ``mountPath`` (:mod:`.enter`):

- ``secret``, ``configMap``, ``projected`` (``secret``, ``configMap``, ``downwardAPI``,
  ``serviceAccountToken`` sources) and ``downwardAPI``: the kubelet's atomic layout
  (kubernetes ``pkg/volume/util/atomic_writer.go``): the files in a ``..<time>``
  directory, a ``..data`` link to it, and one link per top-level name into
  ``..data``. An update writes a new ``..<time>`` directory and swaps ``..data`` in one
  rename, so a reader sees all old files or all new ones. ``items`` pick and rename
  keys, ``defaultMode`` (0644) and ``mode`` set the files' modes, ``optional`` lets the
  object or key be missing; a missing one otherwise fails with the kubelet's
  ``MountVolume.SetUp failed for volume ...`` (:class:`VolumeError`).
- ``emptyDir``: an empty directory; ``medium: Memory`` a tmpfs of ``sizeLimit``.
- ``hostPath``: the host's path itself (``DirectoryOrCreate``/``FileOrCreate`` make it,
  the other types are checked).

A ``subPath`` mount gets the file or directory it names as it is at the container's
start (the kubelet bind-mounts the resolved path), so updates do not reach it.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import os
import secrets
import shutil
import stat
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from zeroserve.api.objects import ConfigMapObject, Container, SecretObject

from ..env import EnvError, Lookup, Node, PodFacts, field_value, quantity, resource_value
from .enter import Mount
from .state import RunState
from .tokens import DEFAULT_EXPIRATION, service_account_token

DEFAULT_MODE = 0o644
DATA = "..data"
Files = dict[str, tuple[bytes, int]]
"""Relative path -> (content, mode)."""


class VolumeError(Exception):
    """A volume cannot be set up: the pod waits, as for the kubelet's FailedMount."""

    reason = "ContainerCreating"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _failed(volume: str, why: str) -> VolumeError:
    return VolumeError(f'MountVolume.SetUp failed for volume "{volume}" : {why}')


def _object_files(
    volume: str,
    kind: str,
    source: Mapping[str, Any],
    namespace: str,
    lookup: Lookup,
    default_mode: int,
) -> Files | None:
    """The files of a ``secret``/``configMap`` source; None when it is missing and
    optional."""
    name = source.get("secretName" if kind == "Secret" and "secretName" in source else "name", "")
    obj = lookup(kind, namespace, name)
    wanted = SecretObject if kind == "Secret" else ConfigMapObject
    optional = bool(source.get("optional"))
    if not isinstance(obj, wanted):
        if optional:
            return None
        raise _failed(volume, f'{kind.lower()} "{name}" not found')
    values: dict[str, bytes] = {}
    if isinstance(obj, SecretObject):
        values = {k: base64.b64decode(v) for k, v in obj.data.items()}
    else:
        values = {k: v.encode() for k, v in obj.data.items()}
        values.update({k: base64.b64decode(v) for k, v in obj.binary_data.items()})
    mode = int(source.get("defaultMode", default_mode))
    items = source.get("items")
    if not items:
        return {k: (v, mode) for k, v in values.items()}
    files: Files = {}
    for item in items:
        key = item.get("key", "")
        if key not in values:
            if optional:
                continue
            what = "secret" if kind == "Secret" else "configmap"
            raise _failed(volume, f"{what} references non-existent {_key_word(kind)} key: {key}")
        files[item.get("path") or key] = (values[key], int(item.get("mode", mode)))
    return files


def _key_word(kind: str) -> str:
    return "secret" if kind == "Secret" else "config"


def _format_map(m: Mapping[str, str]) -> str:
    """Labels or annotations as the kubelet writes them: ``key="value"`` lines, sorted."""
    return "\n".join(f'{k}="{v}"' for k, v in sorted(m.items()))


class PodVolumes:
    """A pod's volumes under ``root``: ``setup`` once, ``refresh`` on object changes,
    ``mounts`` per container, ``close`` when the pod goes."""

    def __init__(
        self,
        root: Path,
        volumes: Sequence[Mapping[str, Any]],
        *,
        namespace: str,
        lookup: Lookup,
        pod: PodFacts,
        containers: Mapping[str, Container],
        node: Node,
        state: RunState,
    ) -> None:
        self.root = root
        self.volumes = {str(v.get("name")): v for v in volumes}
        self.namespace = namespace
        self.lookup = lookup
        self.pod = pod
        self.containers = containers
        self.node = node
        self.state = state
        self._tmpfs: list[str] = []

    # -- setup and refresh ------------------------------------------------------------

    def setup(self) -> None:
        """Write every volume; raises :class:`VolumeError` (nothing kept) when one
        cannot be set up."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o755)
        try:
            for name, volume in self.volumes.items():
                self._setup(name, volume)
        except BaseException:
            self.close()
            raise

    def _setup(self, name: str, volume: Mapping[str, Any]) -> None:
        path = self.root / name
        if "emptyDir" in volume:
            path.mkdir(mode=0o777, exist_ok=True)
            os.chmod(path, 0o777)  # as the kubelet's: any user of the pod may write
            empty = volume["emptyDir"] or {}
            if empty.get("medium") == "Memory":
                self._mount_tmpfs(path, empty.get("sizeLimit"))
            return
        if "hostPath" in volume:
            self._host_path(name, volume["hostPath"])
            return
        files = self._files(name, volume)
        if files is None:
            raise VolumeError(
                f'MountVolume.SetUp failed for volume "{name}" : this kind of volume is not '
                "supported locally: it works on Kubernetes"
            )
        _write_atomically(path, files)

    def _files(self, name: str, volume: Mapping[str, Any]) -> Files | None:
        """The files of an object-backed volume (None: not such a volume)."""
        if "secret" in volume:
            return (
                _object_files(
                    name, "Secret", volume["secret"], self.namespace, self.lookup, DEFAULT_MODE
                )
                or {}
            )
        if "configMap" in volume:
            return (
                _object_files(
                    name,
                    "ConfigMap",
                    volume["configMap"],
                    self.namespace,
                    self.lookup,
                    DEFAULT_MODE,
                )
                or {}
            )
        if "downwardAPI" in volume:
            d = volume["downwardAPI"]
            return self._downward(
                name, d.get("items") or (), int(d.get("defaultMode", DEFAULT_MODE))
            )
        if "projected" in volume:
            return self._projected(name, volume["projected"])
        return None

    def _projected(self, name: str, projected: Mapping[str, Any]) -> Files:
        mode = int(projected.get("defaultMode", DEFAULT_MODE))
        files: Files = {}
        for source in projected.get("sources") or ():
            if "secret" in source:
                s = {**source["secret"], "defaultMode": mode}
                files.update(
                    _object_files(name, "Secret", s, self.namespace, self.lookup, mode) or {}
                )
            elif "configMap" in source:
                c = {**source["configMap"], "defaultMode": mode}
                files.update(
                    _object_files(name, "ConfigMap", c, self.namespace, self.lookup, mode) or {}
                )
            elif "downwardAPI" in source:
                files.update(self._downward(name, source["downwardAPI"].get("items") or (), mode))
            elif "serviceAccountToken" in source:
                t = source["serviceAccountToken"]
                token = service_account_token(
                    key=self._token_key(),
                    namespace=self.namespace,
                    service_account=self.pod.service_account,
                    pod=self.pod.name,
                    pod_uid=self.pod.uid,
                    audience=str(t.get("audience") or ""),
                    expiration_seconds=int(t.get("expirationSeconds") or DEFAULT_EXPIRATION),
                )
                files[str(t.get("path") or "token")] = (
                    token.encode(),
                    0o600 if mode == DEFAULT_MODE else mode,
                )
        return files

    def _token_key(self) -> bytes:
        """The run's signing key for service account tokens (made once per run)."""
        path = self.state.dir / "serviceaccount.key"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32))
        return path.read_bytes()

    def _downward(self, name: str, items: Sequence[Mapping[str, Any]], mode: int) -> Files:
        files: Files = {}
        for item in items:
            ref = item.get("fieldRef")
            res = item.get("resourceFieldRef")
            try:
                if ref is not None:
                    path = ref.get("fieldPath", "")
                    if path in ("metadata.labels", "metadata.annotations"):
                        m = self.pod.labels if path == "metadata.labels" else self.pod.annotations
                        value = _format_map(m)
                    else:
                        value = field_value(path, self.pod)
                elif res is not None:
                    container = self.containers.get(res.get("containerName", ""))
                    if container is None:
                        raise EnvError(f"container {res.get('containerName')!r} not found")
                    value = resource_value(
                        res.get("resource", ""), container, res.get("divisor"), self.node
                    )
                else:
                    continue
            except EnvError as e:
                raise _failed(name, e.message) from None
            files[str(item.get("path"))] = (value.encode(), int(item.get("mode", mode)))
        return files

    def refresh(self) -> bool:
        """Rewrite the object-backed volumes whose content changed (an object that
        disappeared keeps its files, as the kubelet keeps the last content); True if any
        did."""
        changed = False
        for name, volume in self.volumes.items():
            if "emptyDir" in volume or "hostPath" in volume:
                continue
            try:
                files = self._files(name, volume)
            except VolumeError:
                continue
            if files is not None and files != _read(self.root / name):
                _write_atomically(self.root / name, files)
                changed = True
        return changed

    # -- emptyDir and hostPath -------------------------------------------------------

    def _mount_tmpfs(self, path: Path, size: object) -> None:
        limit = int(quantity(size)) if isinstance(size, str | int | float) and size else 0
        options = f"mode=0777,size={limit}" if limit else "mode=0777"
        libc = ctypes.CDLL(None, use_errno=True)
        self.state.record("mount", str(path))
        if libc.mount(b"tmpfs", str(path).encode(), b"tmpfs", 0, options.encode()) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"mount tmpfs on {path}: {os.strerror(errno)}")
        self._tmpfs.append(str(path))

    def _host_path(self, name: str, hp: Mapping[str, Any]) -> None:
        path = Path(str(hp.get("path", "")))
        kind = hp.get("type", "")
        if kind == "DirectoryOrCreate" and not path.exists():
            from .enter import ensure_mountpoint

            ensure_mountpoint(str(path), is_file=False, state=self.state)
        elif kind == "FileOrCreate" and not path.exists():
            from .enter import ensure_mountpoint

            ensure_mountpoint(str(path), is_file=True, state=self.state)
        checks = {
            "Directory": (stat.S_ISDIR, "a directory"),
            "File": (stat.S_ISREG, "a file"),
            "Socket": (stat.S_ISSOCK, "a socket"),
            "CharDevice": (stat.S_ISCHR, "a character device"),
            "BlockDevice": (stat.S_ISBLK, "a block device"),
        }
        if kind in checks:
            test, what = checks[kind]
            try:
                ok = test(path.stat().st_mode)
            except OSError:
                ok = False
            if not ok:
                raise _failed(name, f"hostPath type check failed: {path} is not {what}")
        elif not path.exists():
            raise _failed(name, f"hostPath {path} does not exist")

    # -- mounts ------------------------------------------------------------------------

    def source(self, name: str) -> Path:
        volume = self.volumes[name]
        if "hostPath" in volume:
            return Path(str(volume["hostPath"].get("path", "")))
        return self.root / name

    def mounts(self, container: Container) -> list[Mount]:
        """The container's ``volumeMounts`` as bind mounts (a ``subPath`` resolved now)."""
        out = []
        for m in container.volume_mounts:
            name = str(m.get("name", ""))
            if name not in self.volumes:
                continue
            source = self.source(name)
            sub = str(m.get("subPath") or "")
            if sub:
                source = (source / sub).resolve()
                if not str(source).startswith(str(self.source(name).resolve())):
                    raise _failed(name, f"subPath {sub!r} leaves the volume")
                if not source.exists():
                    source.mkdir(parents=True, exist_ok=True)
            out.append(Mount(str(source), str(m.get("mountPath")), bool(m.get("readOnly"))))
        return out

    def close(self) -> None:
        """Unmount the tmpfs volumes and remove every file."""
        libc = ctypes.CDLL(None, use_errno=True)
        for target in self._tmpfs:
            libc.umount2(target.encode(), 2)
            self.state.forget("mount", target)
        self._tmpfs.clear()
        shutil.rmtree(self.root, ignore_errors=True)


def _read(path: Path) -> Files:
    """What ``path`` holds now (through ``..data``), as ``Files``."""
    data = path / DATA
    out: Files = {}
    if not data.exists():
        return out
    base = data.resolve()
    for f in base.rglob("*"):
        if f.is_file():
            out[str(f.relative_to(base))] = (f.read_bytes(), stat.S_IMODE(f.stat().st_mode))
    return out


def _write_atomically(path: Path, files: Files) -> None:
    """The kubelet's atomic writer: a new ``..<time>`` dir, then ``..data`` swapped to it
    by one rename, then the top-level links; the old dir is removed."""
    path.mkdir(parents=True, exist_ok=True, mode=0o755)
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()) + secrets.token_hex(4)
    new = path / stamp
    new.mkdir(mode=0o755)
    for rel, (content, mode) in files.items():
        f = new / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(content)
        os.chmod(f, mode)
    old = (path / DATA).resolve() if (path / DATA).is_symlink() else None
    tmp = path / "..data_tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(stamp)
    os.rename(tmp, path / DATA)
    tops = {rel.split("/", 1)[0] for rel in files}
    for top in tops:
        link = path / top
        if not link.is_symlink():
            link.symlink_to(f"{DATA}/{top}")
    for entry in path.iterdir():
        if entry.name.startswith(".."):
            continue
        if entry.is_symlink() and entry.name not in tops:
            entry.unlink()
    if old is not None and old != new.resolve():
        shutil.rmtree(old, ignore_errors=True)
