"""Pod sandboxes: what makes a local replica a pod (docs/local-mode.md, "Pod sandboxes").

A reusable piece: a pod's name, its volumes and its containers in; a running place for
them with an IP out. ``zeroserve up`` uses it for every replica, and the test cluster
of docs/kubernetes.md runs its pods in it too.

Two modes, chosen once per run (:func:`choose_mode`):

- ``pod`` (root on Linux): each pod gets its own network namespace with its own IP on a
  bridge the run makes (:mod:`.network`), so every pod has the ports of a pod (the app's
  ``PORT`` is its ``containerPort``, the queue-proxy's are Knative's); each container its
  own mount namespace with its volumes at their ``mountPath`` (:mod:`.volumes`,
  :mod:`.enter`); each container's limits in a cgroup (:mod:`.cgroups`) when the
  machine's cgroups are writable, else a watchdog on its memory.
- ``process`` (anything else, or ``--sandbox process``): plain processes on loopback with
  unique ports, no volumes, memory limits by the watchdog, CPU limits recorded only.

Everything a ``pod``-mode run makes is journaled in its state dir (:mod:`.state`) before
it is made, removed when the run stops, and removed by the next run when this one was
killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zeroserve.api.objects import Container

from ..env import Lookup, Node, PodFacts
from .cgroups import Cgroups, ContainerCgroup, Limits, MemoryWatchdog
from .enter import EnterPlan, Mount, ensure_mountpoint
from .network import DEFAULT_POD_CIDR, Network, NetworkError, PodNetwork, sandbox_unavailable
from .state import STATE_ROOT, RunState, clean_stale
from .volumes import PodVolumes, VolumeError

__all__ = [
    "DEFAULT_POD_CIDR",
    "MODES",
    "ContainerCgroup",
    "EnterPlan",
    "Limits",
    "Mount",
    "NetworkError",
    "PodSandbox",
    "Sandbox",
    "SandboxError",
    "VolumeError",
    "choose_mode",
]

MODES = ("auto", "pod", "process")
"""``--sandbox``: ``auto`` is ``pod`` where it can be made, else ``process``."""

LOOPBACK = "127.0.0.1"


class SandboxError(RuntimeError):
    """A pod sandbox cannot be made; the message says why. When a replica's cannot, it
    waits in ``ContainerCreating`` (the kubelet's ``FailedCreatePodSandBox``) and is
    retried with the back-off."""

    reason = "ContainerCreating"

    @property
    def message(self) -> str:
        return str(self)


def choose_mode(asked: str) -> tuple[str, str]:
    """(``pod`` | ``process``, why) for ``--sandbox asked``. ``pod`` asked where it cannot
    be made raises :class:`SandboxError` naming the flag and the reason."""
    if asked not in MODES:
        raise SandboxError(f"--sandbox must be one of {', '.join(MODES)}, not {asked!r}")
    if asked == "process":
        return "process", "--sandbox process"
    why = sandbox_unavailable()
    if why is None:
        return "pod", "root on Linux"
    if asked == "pod":
        raise SandboxError(f"--sandbox pod: cannot make pod sandboxes here: {why}")
    return "process", why


@dataclass
class _Watched:
    oom: bool = False


class PodSandbox:
    """One pod's place to run: its IP, its volumes, its containers' cgroups."""

    def __init__(
        self,
        sandbox: Sandbox,
        name: str,
        network: PodNetwork | None,
        volumes: PodVolumes | None,
    ) -> None:
        self.sandbox = sandbox
        self.name = name
        self.network = network
        self.volumes = volumes
        self._cgroups: dict[int, ContainerCgroup] = {}
        self._watched: dict[int, _Watched] = {}
        self._starts = 0

    @property
    def ip(self) -> str:
        """The pod's IP (loopback in ``process`` mode)."""
        return self.network.ip if self.network is not None else LOOPBACK

    @property
    def isolated(self) -> bool:
        """Its own network namespace: fixed ports, ``PORT`` = the containerPort."""
        return self.network is not None

    @property
    def netns_path(self) -> str | None:
        """Its network namespace's path (``/run/netns/...``), None when it has none."""
        return self.network.netns_path if self.network is not None else None

    def container(
        self, name: str, container: Container | None, *, mounts: bool = True, limits: bool = True
    ) -> ContainerStart:
        """How to start one of the container's processes now: in the pod's network
        namespace, with the container's volume mounts (``mounts``) and in a cgroup with its
        limits (``limits``; made fresh for each start, so an OOM kill is told apart from an
        earlier start's). An exec probe runs with ``limits=False``."""
        sb = self.sandbox
        wanted = Limits.of(container) if limits and container is not None else Limits()
        cgroup = None
        if wanted and sb.cgroups is not None:
            self._starts += 1
            cgroup = sb.cgroups.create(f"{self.name}.{name}.{self._starts}", wanted)
        plan: list[Mount] = []
        if mounts and container is not None and self.volumes is not None:
            plan = self.volumes.mounts(container)
            for m in plan:
                ensure_mountpoint(m.target, is_file=os.path.isfile(m.source), state=sb.state)
        enter = EnterPlan(
            netns_path=self.netns_path,
            mounts=tuple(plan),
            cgroup_procs=tuple(cgroup.procs_files) if cgroup is not None else (),
        )
        watch = wanted.memory if cgroup is None and wanted.memory else None
        return ContainerStart(self, name, enter, cgroup, watch)

    def _started(self, start: ContainerStart, pid: int) -> None:
        if start.cgroup is not None:
            self._cgroups[pid] = start.cgroup
        elif start.watch_memory:
            watched = _Watched()
            self._watched[pid] = watched
            self.sandbox.watchdog.watch(pid, start.watch_memory, lambda: _mark(watched))

    def exited(self, pid: int) -> bool:
        """The process ``pid`` started here is gone: True if it was killed for going over
        its memory limit (the kernel's OOM killer in its cgroup, or the watchdog). Its
        cgroup is removed."""
        cgroup = self._cgroups.pop(pid, None)
        if cgroup is not None:
            oom = cgroup.oom_killed()
            cgroup.remove()
            return oom
        watched = self._watched.pop(pid, None)
        if watched is not None:
            self.sandbox.watchdog.unwatch(pid)
            return watched.oom
        return False

    def refresh_volumes(self) -> bool:
        """Secrets and ConfigMaps changed: rewrite the files that changed (as the kubelet
        does every sync); True if any did."""
        return self.volumes.refresh() if self.volumes is not None else False

    async def close(self) -> None:
        """Remove what this pod made (after its processes are gone)."""
        for pid in list(self._cgroups):
            self.exited(pid)
        for pid in list(self._watched):
            self.exited(pid)
        if self.volumes is not None:
            self.volumes.close()
        if self.network is not None and self.sandbox.network is not None:
            await self.sandbox.network.remove_pod(self.network)


def _mark(watched: _Watched) -> None:
    watched.oom = True


@dataclass
class ContainerStart:
    """One container start: start the process with ``plan`` (:func:`.enter.spawn`: the
    ``zeroserve-enter`` helper, or ``plan.preexec()`` as its ``preexec_fn``), then
    ``started(pid)``."""

    pod: PodSandbox
    name: str
    plan: EnterPlan
    cgroup: ContainerCgroup | None
    watch_memory: int | None

    def started(self, pid: int) -> None:
        self.pod._started(self, pid)


class Sandbox:
    """One run's sandboxes: its state dir, its bridge (``pod`` mode), its cgroups."""

    def __init__(
        self,
        mode: str,
        state: RunState,
        network: Network | None,
        cgroups: Cgroups | None,
        why: str = "",
    ) -> None:
        self.mode = mode
        self.state = state
        self.network = network
        self.cgroups = cgroups
        self.why = why
        self.watchdog = MemoryWatchdog()
        self._watchdog_task: asyncio.Task[None] | None = None
        self.cleaned: list[str] = []
        """What a crashed earlier run had left and this one removed at start."""

    @classmethod
    async def start(
        cls,
        asked: str = "auto",
        *,
        pod_cidr: str = DEFAULT_POD_CIDR,
        state_root: Path | None = None,
        spares: int = 0,
    ) -> Sandbox:
        """Choose the mode, remove what a killed earlier run left, make the bridge (and
        keep ``spares`` pod networks made ahead: ``Network``)."""
        mode, why = choose_mode(asked)
        root = state_root or _state_root(mode)
        cleaned = await clean_stale(root)
        state = RunState.create(root)
        network = cgroups = None
        try:
            if mode == "pod":
                network = await Network.create(state, pod_cidr, spares=spares)
                cgroups = Cgroups.detect(state)
        except BaseException:
            await state.undo()
            raise
        sb = cls(mode, state, network, cgroups, why)
        sb.cleaned = cleaned
        sb._watchdog_task = asyncio.get_running_loop().create_task(
            sb.watchdog.run(), name="memory watchdog"
        )
        return sb

    def describe(self) -> str:
        """The one line ``zeroserve up`` prints at start."""
        if self.network is not None:
            limits = (
                f"limits by {self.cgroups.describe()}"
                if self.cgroups is not None
                else "memory limits by a watchdog (no writable cgroups), cpu limits not enforced"
            )
            return (
                f"replicas run in pod sandboxes ({self.why}): a network namespace each on "
                f"bridge {self.network.bridge} {self.network.subnet} (--pod-cidr), volumes "
                f"mounted, {limits}"
            )
        return (
            f"replicas run as plain processes ({self.why}): unique ports on {LOOPBACK}, no "
            "volumes, memory limits by a watchdog, cpu limits not enforced "
            "(--sandbox pod, as root on Linux, makes pod sandboxes)"
        )

    async def pod(
        self,
        name: str,
        *,
        volumes: Sequence[Mapping[str, Any]] = (),
        namespace: str = "default",
        lookup: Lookup | None = None,
        facts: Callable[[str], PodFacts] | None = None,
        containers: Mapping[str, Container] | None = None,
        node: Node | None = None,
    ) -> PodSandbox:
        """Make a pod's sandbox: its network (``pod`` mode), then its volumes (raises
        :class:`VolumeError`, with nothing left behind, when one cannot be set up).
        ``facts(ip)`` gives the pod's downward-API facts once its IP is known."""
        try:
            network = await self.network.add_pod(name) if self.network is not None else None
        except (NetworkError, OSError) as e:
            raise SandboxError(f"Failed to create pod sandbox: {e}") from None
        pod_volumes = None
        try:
            if volumes and self.network is not None:
                ip = network.ip if network is not None else LOOPBACK
                pod_volumes = PodVolumes(
                    self.state.dir / "pods" / name,
                    volumes,
                    namespace=namespace,
                    lookup=lookup or (lambda kind, ns, n: None),
                    pod=facts(ip) if facts is not None else PodFacts(name, namespace),
                    containers=containers or {},
                    node=node or Node.this_host(),
                    state=self.state,
                )
                pod_volumes.setup()
        except BaseException:
            if pod_volumes is not None:
                pod_volumes.close()
            if network is not None and self.network is not None:
                await self.network.remove_pod(network)
            raise
        return PodSandbox(self, name, network, pod_volumes)

    async def close(self) -> None:
        """Remove everything this run made."""
        if self._watchdog_task is not None:
            self._watchdog_task.cancel()
            await asyncio.gather(self._watchdog_task, return_exceptions=True)
        with contextlib.suppress(NetworkError):
            if self.network is not None:
                await self.network.close()
        await self.state.undo()


def _state_root(mode: str) -> Path:
    """Where runs keep their journals: /run/zeroserve as root, else the user's runtime
    dir (nothing is journaled in ``process`` mode but the run's own dir)."""
    if os.geteuid() == 0:
        return STATE_ROOT
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) if runtime else Path.home() / ".zeroserve"
    return base / "zeroserve" / "runs"
