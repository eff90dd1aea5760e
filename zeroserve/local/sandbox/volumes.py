"""A pod's volumes, written on the host as the kubelet writes them.

Each volume is a directory under the pod's run directory, which the containers
bind-mount at their ``mountPath`` (:mod:`.enter`):

- ``secret``, ``configMap``, ``projected`` (``secret``, ``configMap``, ``downwardAPI``,
  ``serviceAccountToken`` sources) and ``downwardAPI`` (kubernetes ``pkg/volume/secret``,
  ``pkg/volume/configmap``, ``pkg/volume/projected``, ``pkg/volume/downwardapi``): the
  kubelet's atomic layout (kubernetes ``pkg/volume/util/atomic_writer.go``): the files
  in a ``..<time>`` directory, a ``..data`` link to it, and one link per top-level name
  into ``..data``. An update writes a new ``..<time>`` directory and swaps ``..data`` in
  one rename, so a reader sees all old files or all new ones. ``items`` pick and rename
  keys, ``defaultMode`` (0644) and ``mode`` set the files' modes, ``optional`` lets the
  object or key be missing; a missing one otherwise fails with the kubelet's
  ``MountVolume.SetUp failed for volume ...`` (:class:`VolumeError`). These volumes are
  always mounted read-only, as the kubelet mounts them.
- ``emptyDir`` (kubernetes ``pkg/volume/emptydir``): an empty directory, mode 0777;
  ``medium: Memory`` a tmpfs of ``sizeLimit``.
- ``hostPath`` (kubernetes ``pkg/volume/hostpath/host_path.go``): the host's path itself;
  ``DirectoryOrCreate``/``FileOrCreate`` make it, the other types are checked; with no
  type a missing path is made a directory, as containerd does for any bind mount
  (containerd ``pkg/cri/opts/spec_linux.go``, ``WithMounts``).

What this makes outside the pod's directory (a tmpfs mount, hostPath directories and
files, ``subPath`` directories) is journaled in the run's :class:`RunState` first.

A ``subPath`` mount gets the file or directory it names as it is at the container's
start (the kubelet bind-mounts the resolved path), so updates do not reach it.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
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
from .enter import Mount, ensure_mountpoint
from .state import RunState
from .tokens import DEFAULT_EXPIRATION, service_account_token

DEFAULT_MODE = 0o644
DATA = "..data"
_MNT_DETACH = 2
Files = dict[str, tuple[bytes, int]]
"""Relative path -> (content, mode)."""

_API_DATA = ("secret", "configMap", "downwardAPI", "projected")
"""The kinds written by the atomic writer and mounted read-only (the kubelet's
``ReadOnly: true`` mounter attributes for them)."""
_KINDS = (*_API_DATA, "emptyDir", "hostPath")


class VolumeError(Exception):
    """A volume cannot be set up: the pod waits, as for the kubelet's FailedMount."""

    reason = "ContainerCreating"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _failed(volume: str, why: str) -> VolumeError:
    return VolumeError(f'MountVolume.SetUp failed for volume "{volume}" : {why}')


# ----- payloads ----------------------------------------------------------------------------


def _object_files(
    volume: str, kind: str, source: Mapping[str, Any], namespace: str, lookup: Lookup, mode: int
) -> Files:
    """The files of a ``secret``/``configMap`` source, as the plugins' ``MakePayload``:
    empty when the object is missing and ``optional``."""
    # a secret volume names it secretName; a projected secret source, name
    name = str(source.get("secretName") or source.get("name") or "")
    obj = lookup(kind, namespace, name)
    optional = bool(source.get("optional"))
    if not isinstance(obj, SecretObject if kind == "Secret" else ConfigMapObject):
        if optional:
            return {}
        raise _failed(volume, f'{kind.lower()} "{name}" not found')
    values = _values(obj)
    mode = int(source.get("defaultMode", mode))
    items = source.get("items")
    if not items:
        return {k: (v, mode) for k, v in values.items()}
    files: Files = {}
    for item in items:
        key = str(item.get("key", ""))
        if key not in values:
            if optional:
                continue
            if kind == "Secret":
                raise _failed(volume, f"references non-existent secret key: {key}")
            raise _failed(volume, f"configmap references non-existent config key: {key}")
        files[str(item.get("path") or key)] = (values[key], int(item.get("mode", mode)))
    return files


def _values(obj: SecretObject | ConfigMapObject) -> dict[str, bytes]:
    """A Secret's decoded ``data``; a ConfigMap's ``data`` and its decoded ``binaryData``."""
    if isinstance(obj, SecretObject):
        return {k: base64.b64decode(v) for k, v in obj.data.items()}
    values = {k: v.encode() for k, v in obj.data.items()}
    values.update({k: base64.b64decode(v) for k, v in obj.binary_data.items()})
    return values


_GO_ESCAPES = {"\a": r"\a", "\b": r"\b", "\f": r"\f", "\n": r"\n", "\r": r"\r", "\t": r"\t"}
_GO_ESCAPES.update({"\v": r"\v", "\\": "\\\\", '"': '\\"'})


def go_quote(s: str) -> str:
    """``s`` as Go's ``%q`` writes it (``strconv.Quote``): in double quotes, with ``\\``,
    ``"`` and control characters escaped and other printable characters kept."""
    out = []
    for ch in s:
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def format_map(m: Mapping[str, str]) -> str:
    """Labels or annotations as the downward API writes them (kubernetes
    ``pkg/fieldpath/fieldpath.go`` ``FormatMap``): ``key="value"`` lines sorted by key,
    values Go-quoted, no newline at the end."""
    return "\n".join(f"{k}={go_quote(v)}" for k, v in sorted(m.items()))


def _token_fresh(token: bytes, now: float) -> bool:
    """The kubelet keeps a projected token until 80% of its lifetime or 24 hours have
    passed (kubernetes ``pkg/kubelet/token/token_manager.go``, ``requiresRefresh``)."""
    try:
        payload = token.split(b".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
        issued, expires = float(claims["iat"]), float(claims["exp"])
    except (IndexError, KeyError, TypeError, ValueError):
        return False
    return now < expires - 0.2 * (expires - issued) and now - issued < 24 * 3600


def _unsupported(volume: Mapping[str, Any]) -> str:
    kind = next((k for k in volume if k != "name"), "")
    if kind == "":
        return "the volume names no source (secret, configMap, emptyDir, ...)"
    return f"{kind} volumes are not supported locally: they work on Kubernetes"


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
        kind = next((k for k in _KINDS if k in volume), None)
        if kind is None:
            raise _failed(name, _unsupported(volume))
        if kind == "emptyDir":
            self._empty_dir(name, volume["emptyDir"] or {})
        elif kind == "hostPath":
            self._host_path(name, volume["hostPath"] or {})
        else:
            _write_atomically(self.root / name, self._files(name, volume, {}))

    def _files(self, name: str, volume: Mapping[str, Any], current: Files) -> Files:
        """The files of an API-data volume now (``current``: what it holds, for the
        tokens still fresh)."""
        if "secret" in volume:
            return _object_files(
                name, "Secret", volume["secret"], self.namespace, self.lookup, DEFAULT_MODE
            )
        if "configMap" in volume:
            return _object_files(
                name, "ConfigMap", volume["configMap"], self.namespace, self.lookup, DEFAULT_MODE
            )
        if "downwardAPI" in volume:
            d = volume["downwardAPI"] or {}
            mode = int(d.get("defaultMode", DEFAULT_MODE))
            return self._downward(name, d.get("items") or (), mode)
        return self._projected(name, volume["projected"] or {}, current)

    def _projected(self, name: str, projected: Mapping[str, Any], current: Files) -> Files:
        mode = int(projected.get("defaultMode", DEFAULT_MODE))
        files: Files = {}
        for source in projected.get("sources") or ():
            for kind, key in (("Secret", "secret"), ("ConfigMap", "configMap")):
                if key in source:
                    s = source[key] or {}
                    files.update(_object_files(name, kind, s, self.namespace, self.lookup, mode))
            if "downwardAPI" in source:
                items = (source["downwardAPI"] or {}).get("items") or ()
                files.update(self._downward(name, items, mode))
            if "serviceAccountToken" in source:
                path, token = self._token(source["serviceAccountToken"] or {}, current)
                files[path] = (token, 0o600 if mode == DEFAULT_MODE else mode)
        return files

    def _token(self, source: Mapping[str, Any], current: Files) -> tuple[str, bytes]:
        """A ``serviceAccountToken`` source's file: the one written before while it is
        fresh, else a new token signed by the run (:mod:`.tokens`)."""
        path = str(source.get("path") or "token")
        old = current.get(path)
        if old is not None and _token_fresh(old[0], time.time()):
            return path, old[0]
        token = service_account_token(
            key=self._token_key(),
            namespace=self.namespace,
            service_account=self.pod.service_account,
            pod=self.pod.name,
            pod_uid=self.pod.uid,
            audience=str(source.get("audience") or ""),
            expiration_seconds=int(source.get("expirationSeconds") or DEFAULT_EXPIRATION),
        )
        return path, token.encode()

    def _token_key(self) -> bytes:
        """The run's signing key for service account tokens (made once per run)."""
        path = self.state.dir / "serviceaccount.key"
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32))
        return path.read_bytes()

    def _downward(self, name: str, items: Sequence[Mapping[str, Any]], mode: int) -> Files:
        files: Files = {}
        for item in items:
            try:
                value = self._downward_value(item)
            except EnvError as e:
                raise _failed(name, e.message) from None
            if value is not None:
                files[str(item.get("path"))] = (value.encode(), int(item.get("mode", mode)))
        return files

    def _downward_value(self, item: Mapping[str, Any]) -> str | None:
        ref, res = item.get("fieldRef"), item.get("resourceFieldRef")
        if ref is not None:
            path = str(ref.get("fieldPath", ""))
            if path == "metadata.labels":
                return format_map(self.pod.labels)
            if path == "metadata.annotations":
                return format_map(self.pod.annotations)
            return field_value(path, self.pod)
        if res is not None:
            container = self.containers.get(str(res.get("containerName", "")))
            if container is None:
                raise EnvError(f"container {res.get('containerName')!r} not found in the pod")
            return resource_value(
                str(res.get("resource", "")), container, res.get("divisor"), self.node
            )
        return None

    def refresh(self) -> bool:
        """Rewrite the API-data volumes whose content changed, as the kubelet's periodic
        sync does; True if any did. An object that is gone keeps its volume's files (the
        kubelet's SetUp fails and leaves them), unless the volume is ``optional``."""
        changed = False
        for name, volume in self.volumes.items():
            if not any(k in volume for k in _API_DATA):
                continue
            current = _read(self.root / name)
            try:
                files = self._files(name, volume, current)
            except VolumeError:
                continue
            if files != current:
                _write_atomically(self.root / name, files)
                changed = True
        return changed

    # -- emptyDir and hostPath -------------------------------------------------------

    def _empty_dir(self, name: str, empty: Mapping[str, Any]) -> None:
        path = self.root / name
        path.mkdir(mode=0o777, exist_ok=True)
        os.chmod(path, 0o777)  # as the kubelet's: any user of the pod may write
        if empty.get("medium") == "Memory":
            self._mount_tmpfs(name, path, empty.get("sizeLimit"))

    def _mount_tmpfs(self, name: str, path: Path, size: object) -> None:
        limit = int(quantity(size)) if isinstance(size, str | int | float) and size else 0
        options = f"mode=0777,size={limit}" if limit else "mode=0777"
        libc = ctypes.CDLL(None, use_errno=True)
        self.state.record("mount", str(path))
        if libc.mount(b"tmpfs", str(path).encode(), b"tmpfs", 0, options.encode()) != 0:
            errno = ctypes.get_errno()
            self.state.forget("mount", str(path))
            raise _failed(name, f"mount tmpfs on {path}: {os.strerror(errno)}")
        self._tmpfs.append(str(path))

    def _host_path(self, name: str, hp: Mapping[str, Any]) -> None:
        """kubelet ``checkType``: make what ``*OrCreate`` asks for, check the type."""
        path = Path(str(hp.get("path", "")))
        kind = str(hp.get("type") or "")
        exists = path.exists()
        try:
            if kind in ("", "DirectoryOrCreate") and not exists:
                ensure_mountpoint(str(path), is_file=False, state=self.state)
            elif kind == "FileOrCreate" and not exists:
                if not path.parent.is_dir():  # the kubelet makes the file, not its parents
                    raise _failed(name, f"open {path}: no such file or directory")
                ensure_mountpoint(str(path), is_file=True, state=self.state)
        except OSError as e:
            raise _failed(name, f"{e.strerror or e}: {path}") from None
        expected = {
            "": None,
            "DirectoryOrCreate": "Directory",
            "Directory": "Directory",
            "FileOrCreate": "File",
            "File": "File",
            "Socket": "Socket",
            "CharDevice": "CharDevice",
            "BlockDevice": "BlockDevice",
        }
        if kind not in expected:
            raise _failed(name, f"{kind} is an invalid volume type")
        want = expected[kind]
        if want is None:
            return
        if not path.exists():
            raise _failed(name, f"hostPath {path} doesn't exist")
        found = _file_type(path)
        if found != want:
            raise _failed(
                name,
                f"hostPath type check failed: {path} is not a {_DESCRIPTIONS[want]}, "
                f"it's a {found}",
            )

    # -- mounts ------------------------------------------------------------------------

    def source(self, name: str) -> Path:
        """Where volume ``name`` is on the host."""
        volume = self.volumes[name]
        if "hostPath" in volume:
            return Path(str((volume["hostPath"] or {}).get("path", "")))
        return self.root / name

    def mounts(self, container: Container) -> list[Mount]:
        """The container's ``volumeMounts`` as bind mounts: a ``subPath`` resolved now
        (made a directory when missing, as the kubelet does); Secret, ConfigMap,
        downwardAPI and projected volumes read-only whatever ``readOnly`` says."""
        out = []
        for m in container.volume_mounts:
            name = str(m.get("name", ""))
            if name not in self.volumes:
                raise _failed(name, f"volume {name!r} is not in the pod's volumes")
            source = self.source(name)
            sub = str(m.get("subPath") or "")
            if sub:
                source = self._sub_path(name, source, sub)
            read_only = bool(m.get("readOnly")) or any(k in self.volumes[name] for k in _API_DATA)
            out.append(Mount(str(source), str(m.get("mountPath")), read_only))
        return out

    def _sub_path(self, name: str, base: Path, sub: str) -> Path:
        top = base.resolve()
        path = (base / sub).resolve()
        if not path.is_relative_to(top):
            raise _failed(name, f"subPath {sub!r} is outside the volume")
        if not path.exists():
            ensure_mountpoint(str(path), is_file=False, state=self.state)
        return path

    def close(self) -> None:
        """Unmount the tmpfs volumes and remove every file (again: a no-op)."""
        libc = ctypes.CDLL(None, use_errno=True)
        for target in self._tmpfs:
            libc.umount2(target.encode(), _MNT_DETACH)
            self.state.forget("mount", target)
        self._tmpfs.clear()
        shutil.rmtree(self.root, ignore_errors=True)


_DESCRIPTIONS = {
    "Directory": "directory",
    "File": "file",
    "Socket": "socket file",
    "CharDevice": "character device",
    "BlockDevice": "block device",
}


def _file_type(path: Path) -> str:
    """The kubelet's ``GetFileType`` names (``hostutil``)."""
    mode = path.stat().st_mode
    for test, kind in (
        (stat.S_ISDIR, "Directory"),
        (stat.S_ISREG, "File"),
        (stat.S_ISSOCK, "Socket"),
        (stat.S_ISCHR, "CharDevice"),
        (stat.S_ISBLK, "BlockDevice"),
    ):
        if test(mode):
            return kind
    return "unknown file type"


# ----- the atomic writer -------------------------------------------------------------------


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
    by one rename, then the top-level links (new ones made, stale ones removed); the
    old dir is removed last."""
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
        if not entry.name.startswith("..") and entry.is_symlink() and entry.name not in tops:
            entry.unlink()
    if old is not None and old != new.resolve():
        shutil.rmtree(old, ignore_errors=True)
