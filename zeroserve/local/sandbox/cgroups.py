"""Container limits: a cgroup per container start, or a watchdog on its memory.

As the kubelet (through the container runtime) gives each container a cgroup with its
limits (kubernetes ``pkg/kubelet/cm``): ``limits.memory`` becomes ``memory.max`` (v1:
``memory.limit_in_bytes``, with ``memory.memsw.limit_in_bytes`` equal, so no swap
beyond it), ``limits.cpu`` ``cpu.max`` ``<quota> 100000`` (v1:
``cpu.cfs_quota_us``/``cpu.cfs_period_us``). The kernel kills a container over its
memory limit; the cgroup's ``oom_kill`` count (v2 ``memory.events``, v1
``memory.oom_control``) tells the runtime it was that (``OOMKilled``).

Cgroups are used when this machine's are writable: v2 when ``/sys/fs/cgroup`` is a
cgroup2 mount whose root can enable the ``memory`` controller for its children, else v1
when the ``memory`` hierarchy (and, for CPU limits, the ``cpu`` one) is writable.
Without them, :class:`MemoryWatchdog` polls each container's process tree's resident
memory and kills the tree over its limit.

A run's cgroups live in ``<hierarchy>/zeroserve/<run_id>/<container start>``. The run
dir and the per-start dirs are journaled in the run's :class:`RunState` before they are
made; the shared ``zeroserve`` parent is not (like the kubelet's ``kubepods`` it stays,
empty): undoing a journal removes a cgroup with everything under it, which for the
shared parent would be other runs' containers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from zeroserve.api.objects import Container

from ..env import quantity
from .state import RunState, kill_members

CGROUP_ROOT = Path("/sys/fs/cgroup")
CPU_PERIOD = 100_000
"""Microseconds, as the kubelet's CFS period."""


@dataclass(frozen=True)
class Limits:
    memory: int | None = None
    """Bytes."""
    cpu: Fraction | None = None
    """Cores."""

    @classmethod
    def of(cls, container: Container) -> Limits:
        """``resources.limits`` of ``container`` (quantities as Kubernetes reads them)."""
        limits = container.resources.get("limits", {}) if container.resources else {}
        memory = limits.get("memory")
        cpu = limits.get("cpu")
        return cls(
            int(quantity(memory)) if memory is not None else None,
            quantity(cpu) if cpu is not None else None,
        )

    def __bool__(self) -> bool:
        return self.memory is not None or self.cpu is not None


def _writable(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK)


def _is_cgroup2(path: Path) -> bool:
    return (path / "cgroup.controllers").exists()


class ContainerCgroup:
    """One container start's cgroup(s): one dir (v2), or one per v1 hierarchy."""

    def __init__(self, kind: str, dirs: dict[str, Path], state: RunState) -> None:
        self.kind = kind
        self.dirs = dirs
        self.state = state
        self.procs_files = tuple(str(d / "cgroup.procs") for d in dirs.values())

    def oom_killed(self) -> bool:
        """The kernel's OOM killer killed a process in it."""
        memory = self.dirs.get("memory")
        if memory is None:
            return False
        name = "memory.events" if self.kind == "v2" else "memory.oom_control"
        try:
            lines = (memory / name).read_text().splitlines()
        except OSError:
            return False
        for line in lines:
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value) > 0
        return False

    def remove(self) -> None:
        """Kill what is left in it and remove it (what cannot be removed stays in the
        journal, for the run's undo)."""
        for d in self.dirs.values():
            if _remove_now(d):
                self.state.forget("cgroup", str(d))


def _remove_now(path: Path) -> bool:
    """Synchronously: kill the processes left (the container's own are gone), rmdir;
    True once it is gone."""
    for _ in range(100):
        kill_members(path)
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            time.sleep(0.01)  # the killed processes are still exiting
    return False


class Cgroups:
    """This run's cgroups: ``<root>/zeroserve/<run_id>/<name>``."""

    def __init__(self, kind: str, roots: dict[str, Path], state: RunState) -> None:
        self.kind = kind
        self.roots = roots
        """Controller ("memory", "cpu") -> the hierarchy's root (one for v2)."""
        self.state = state

    @classmethod
    def detect(cls, state: RunState, root: Path = CGROUP_ROOT) -> Cgroups | None:
        """v2, else v1, else None (not writable, or absent)."""
        if _is_cgroup2(root) and _writable(root):
            wanted = [c for c in ("memory", "cpu") if c in _controllers(root)]
            if "memory" in wanted and _enable(root, wanted):
                return cls("v2", dict.fromkeys(wanted, root), state)
        memory, cpu = root / "memory", root / "cpu"
        if _writable(memory) and not _is_cgroup2(memory):
            roots = {"memory": memory}
            if _writable(cpu) and (cpu / "cpu.cfs_quota_us").exists():
                roots["cpu"] = cpu
            return cls("v1", roots, state)
        return None

    def describe(self) -> str:
        return f"cgroup {self.kind} ({', '.join(sorted(self.roots))})"

    def _dir(self, root: Path, name: str) -> Path:
        """``root/zeroserve/<run>/<name>``, making what is missing (journaled, but for the
        shared ``zeroserve``); on v2 each parent enables the controllers for its
        children."""
        path = root
        for part in ("zeroserve", self.state.run_id, name):
            if self.kind == "v2":
                _enable(path, [c for c in self.roots if c in _controllers(path)])
            path = path / part
            if not path.exists():
                if part != "zeroserve":
                    self.state.record("cgroup", str(path))
                path.mkdir(exist_ok=True)
        return path

    def create(self, name: str, limits: Limits) -> ContainerCgroup:
        """A cgroup for one container start, with its limits."""
        if self.kind == "v2":
            d = self._dir(self.roots["memory"], name)
            if limits.memory is not None:
                (d / "memory.max").write_text(str(limits.memory))
                with contextlib.suppress(OSError):
                    (d / "memory.swap.max").write_text("0")
            if limits.cpu is not None and "cpu" in self.roots:
                (d / "cpu.max").write_text(f"{_quota(limits.cpu)} {CPU_PERIOD}")
            return ContainerCgroup("v2", {"memory": d}, self.state)
        dirs = {"memory": self._dir(self.roots["memory"], name)}
        if limits.memory is not None:
            m = dirs["memory"]
            (m / "memory.limit_in_bytes").write_text(str(limits.memory))
            with contextlib.suppress(OSError):
                (m / "memory.memsw.limit_in_bytes").write_text(str(limits.memory))
        if limits.cpu is not None and "cpu" in self.roots:
            c = dirs["cpu"] = self._dir(self.roots["cpu"], name)
            (c / "cpu.cfs_period_us").write_text(str(CPU_PERIOD))
            (c / "cpu.cfs_quota_us").write_text(str(_quota(limits.cpu)))
        return ContainerCgroup("v1", dirs, self.state)


def _controllers(path: Path) -> list[str]:
    """The v2 controllers ``path`` has (those its children may be given)."""
    try:
        return (path / "cgroup.controllers").read_text().split()
    except OSError:
        return []


def _enable(path: Path, controllers: Sequence[str]) -> bool:
    """Enable ``controllers`` for the children of v2 cgroup ``path``; False when the
    kernel refuses (e.g. ``path`` is not the root and has processes of its own)."""
    try:
        enabled = (path / "cgroup.subtree_control").read_text().split()
    except OSError:
        enabled = []
    missing = [c for c in controllers if c not in enabled]
    if not missing:
        return True
    try:
        (path / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in missing))
    except OSError:
        return False
    return True


def _quota(cpu: Fraction) -> int:
    """CFS quota in microseconds per period for ``cpu`` cores (at least 1 ms, as the
    kubelet's minimum)."""
    return max(1000, int(cpu * CPU_PERIOD))


# ----- the watchdog ------------------------------------------------------------------------

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _children() -> dict[int, list[int]]:
    """ppid -> pids, for every process now."""
    out: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        out.setdefault(ppid, []).append(int(entry.name))
    return out


def tree(pid: int, children: dict[int, list[int]] | None = None) -> list[int]:
    """``pid`` and all its descendants (by parent pid, now)."""
    children = _children() if children is None else children
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def tree_rss(pid: int, children: dict[int, list[int]] | None = None) -> int:
    """Resident bytes of ``pid`` and all its descendants."""
    total = 0
    for p in tree(pid, children):
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            continue
    return total


@dataclass
class _Watch:
    limit: int
    on_oom: Callable[[], None]


class MemoryWatchdog:
    """Fallback when no cgroups: polls each watched process tree's RSS every
    ``interval`` s; over the limit -> SIGKILL the process group and every process of
    the tree (one that made a group of its own too), and ``on_oom()``. A burst between
    two polls can pass (a cgroup limit cannot be passed)."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self._watched: dict[int, _Watch] = {}

    def watch(self, pid: int, limit: int, on_oom: Callable[[], None]) -> None:
        self._watched[pid] = _Watch(limit, on_oom)

    def unwatch(self, pid: int) -> None:
        self._watched.pop(pid, None)

    def check(self) -> list[int]:
        """One poll: kill every tree over its limit; returns their pids."""
        if not self._watched:
            return []
        children = _children()
        killed = []
        for pid, w in list(self._watched.items()):
            if tree_rss(pid, children) > w.limit:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
                for p in tree(pid, children):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(p, signal.SIGKILL)
                self._watched.pop(pid, None)
                w.on_oom()
                killed.append(pid)
        return killed

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            self.check()
            await asyncio.sleep(self.interval)


__all__ = ["Cgroups", "ContainerCgroup", "Limits", "MemoryWatchdog", "tree", "tree_rss"]
