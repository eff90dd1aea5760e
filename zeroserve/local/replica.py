"""One local replica: the user's command plus a queue-proxy process, like a pod.

The app gets ``PORT`` (and ``K_SERVICE``/``K_CONFIGURATION``/``K_REVISION``)
like a Knative container; the queue-proxy gets the env contract of
docs/contracts.md ("Queue-proxy environment") and reports the ports it bound. Every
process runs in its own process group and dies with its parent
(``PR_SET_PDEATHSIG``), so a killed ``zeroserve`` leaves no orphan. Stopping follows
the pod's order: the queue-proxy drains and exits first, then the app (and the
sidecars) get SIGTERM, then SIGKILL after the grace period.

Like a pod, a replica runs its init containers first, in order, each to completion
(a non-zero exit fails the start: :class:`InitContainerError`), then its sidecars
with the app. A sidecar gets ``K_SERVICE``/``K_CONFIGURATION``/``K_REVISION`` but no
``PORT`` unless it sets one; an init container gets none of them (Knative copies init
containers as written). All write to the app's log.

Where it runs (docs/local-mode.md, "Pod sandboxes"): given a
:class:`~zeroserve.local.sandbox.PodSandbox` with its own network namespace, every
process starts inside it, the app's ``PORT`` is its ``containerPort`` and the
queue-proxy listens on Knative's ports (8012, 8022, 9090, 9091) at the pod's IP; each
container gets its volumes mounted and its limits in a cgroup (or under the memory
watchdog). Without one (``process`` mode), everything shares this machine's loopback
with unique ports.

The replica also does the kubelet's probing (:mod:`zeroserve.local.probes`) for its
whole life: the queue-proxy's readiness probe (``K-Network-Probe: queue`` on its
serving port, with the user's readiness timing: Knative's
``pkg/reconciler/revision/resources/queue.go``), the app's and the sidecars' startup
and liveness probes (straight to the container, as Knative leaves them), and exec
readiness probes, which the kubelet runs in the container (the queue-proxy then
probes TCP on the app's port). A startup or liveness probe that fails its
``failureThreshold`` kills that container, which ends this start of the replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from zeroserve.api.objects import Container
from zeroserve.local import access
from zeroserve.local.ports import PortAllocator, default_allocator
from zeroserve.local.probes import ContainerProbes, Prober, ProbeSpec, from_probe, http_get
from zeroserve.local.sandbox.enter import EnterPlan, spawn
from zeroserve.local.standby import StandbyPool, assign
from zeroserve.observability import ENV as OBSERVABILITY_ENV

if TYPE_CHECKING:
    from zeroserve.local.sandbox import ContainerStart, PodSandbox

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1

QUEUE_PROXY = "queue-proxy"
"""The queue-proxy's container name, as Knative's."""
POD_PORTS = {"serving_port": 8012, "admin_port": 8022, "metrics_port": 9090, "user_port": 9091}
"""The queue-proxy's ports in a pod sandbox (Knative's): serving, admin, stats, metrics."""
OOM_EXIT_CODE = 137
"""A process killed by SIGKILL, as a container's exit code (128 + 9)."""


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


_DIE_WITH_PARENT = EnterPlan()
"""A process-mode start: the parent-death signal only (what :func:`_die_with_parent`
does, through the helper where it is built)."""


@dataclass(frozen=True)
class ContainerProcess:
    """A sidecar or an init container as the replica runs it."""

    name: str
    """As defaulted (:func:`zeroserve.serving.revisions.container_names`)."""
    command: list[str]
    """``command`` + ``args``, ``python`` resolved; ``$(VAR)`` expanded at start."""
    env: dict[str, str] = field(default_factory=dict)
    """The container's own variables (``env``/``envFrom`` resolved)."""
    working_dir: str | None = None
    """None: zeroserve's own."""
    container: Container | None = None
    """As written: its limits, volume mounts and probes (exec commands resolved)."""


@dataclass(frozen=True)
class ReplicaSpec:
    """What a replica runs; the queue-proxy part mirrors its env contract."""

    command: list[str]
    namespace: str = "default"
    service: str = ""
    configuration: str = "app"
    revision: str = "app-00001"
    env: dict[str, str] = field(default_factory=dict)
    container_concurrency: int = 0
    timeout_seconds: float = 300.0
    response_start_timeout_seconds: float = 0.0
    idle_timeout_seconds: float = 0.0
    readiness_probe: dict[str, object] | None = None
    """A Kubernetes Probe; default: TCP on the app's port, as Knative."""
    drain_quiet_period: float = 30.0
    serving_port: int = 0
    host: str = "127.0.0.1"
    working_dir: str | None = None
    """The app's working directory (default: zeroserve's own)."""
    exec_probe: dict[str, Any] | None = None
    """An ``exec`` readiness probe (command already resolved) that the replica runs
    itself, with the app's env and working directory; ``readiness_probe`` is then the
    queue-proxy's TCP probe of the app."""
    expand_command: bool = False
    """Expand ``$(VAR)`` in ``command`` from the app's env (``PORT`` included), as the
    kubelet expands a container's command and args."""
    init_containers: tuple[ContainerProcess, ...] = ()
    """Run in order, each to completion, before anything else starts."""
    sidecars: tuple[ContainerProcess, ...] = ()
    """Started with the app; the replica is gone when one exits."""
    container: Container | None = None
    """The serving container as written: its limits, volume mounts, liveness and startup
    probes (exec commands resolved)."""
    container_name: str = "user-container"
    container_port: int = 8080
    """The app's ``PORT`` in a pod sandbox (its ``containerPort``)."""
    user_protocol: str = "http1"
    """``h2c`` when the port is named so: the queue-proxy speaks HTTP/2 to the app."""
    app_expected_after: float = 0.0
    """Seconds after its spawn at which the app is expected to listen (the revision's
    fastest start so far; 0: unknown): the queue-proxy's readiness check probes less
    often until then (``QUEUE_APP_EXPECTED_AT``)."""
    observability: str = ""
    """The queue-proxy's ``OBSERVABILITY_CONFIG`` (config-observability as JSON); empty:
    its defaults. Changes reach a running queue-proxy through its admin port
    (:meth:`Replica.set_observability`)."""


_RUNTIME_ENV = ("PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION")
_PRIVATE_ENV = (access.TOKEN_ENV, access.CLIENT_TOKEN_ENV)
"""The control API's token never reaches a replica's processes."""


def _inherited() -> dict[str, str]:
    """zeroserve's own environment, less the control API's token."""
    return {k: v for k, v in os.environ.items() if k not in _PRIVATE_ENV}


def _base_env() -> dict[str, str]:
    """zeroserve's own environment, less what the runtime sets per container."""
    return {k: v for k, v in _inherited().items() if k not in _RUNTIME_ENV}


def standby_pool(size: int, log_dir: Path | None) -> StandbyPool:
    """The runtime's standby queue-proxies, started with the environment and the
    parent-death signal of a queue-proxy started here."""
    return StandbyPool(size, env=_inherited, plan=_DIE_WITH_PARENT, log_dir=log_dir)


def init_container_env(c: ContainerProcess) -> dict[str, str]:
    """An init container's env: its own variables only (no ``PORT``, no ``K_*``: Knative
    copies init containers as written)."""
    return {**_base_env(), **c.env}


def sidecar_env(spec: ReplicaSpec, c: ContainerProcess) -> dict[str, str]:
    """A sidecar's env: its own variables plus ``K_SERVICE``/``K_CONFIGURATION``/
    ``K_REVISION`` (as Knative gives every container); ``PORT`` only if it sets one."""
    return {
        **_base_env(),
        **c.env,
        "K_SERVICE": spec.service,
        "K_CONFIGURATION": spec.configuration,
        "K_REVISION": spec.revision,
    }


class InitContainerError(RuntimeError):
    """An init container exited non-zero (or could not start: ``code`` None)."""

    def __init__(self, name: str, code: int | None, why: str = "") -> None:
        self.name = name
        self.code = code
        super().__init__(why or f"init container {name} exited with code {code}")


def resolve_command(command: Sequence[str]) -> list[str]:
    """``python``/``python3`` mean this interpreter (the venv zeroserve runs in, with the
    apps' dependencies), for ``zeroserve up``'s containers and ``zeroserve replica``."""
    cmd = list(command)
    if cmd and cmd[0] in ("python", "python3"):
        cmd[0] = sys.executable
    return cmd


def log_tail(path: Path, lines: int = 5, start: int = 0) -> list[str]:
    """The last ``lines`` non-empty lines of a log file from byte ``start`` on (one
    start's output: a replica's log is appended to across its restarts); none when it
    cannot be read."""
    try:
        with path.open("rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    return [line for line in text.strip().splitlines() if line.strip()][-lines:]


class ReplicaError(RuntimeError):
    """The replica could not start; the message says which process and why."""


class StartError(ReplicaError):
    """A container's command could not be started at all (not found, not executable):
    the container runtime's ``StartError``, which the kubelet records as exit code 128
    (and Knative then as ``ExitCode128``)."""

    code = 128

    def __init__(self, what: str, name: str, message: str) -> None:
        self.what = what
        self.name = name
        super().__init__(message)


def exit_code(returncode: int) -> int:
    """A process's exit as a container's ``exitCode``: a signal ``n`` is ``128 + n``."""
    return 128 - returncode if returncode < 0 else returncode


@dataclass
class ContainerRun:
    """One started process of a replica, as a container status needs it."""

    name: str
    """The container's name (``queue-proxy`` for the queue-proxy)."""
    what: str
    """``app``, ``sidecar NAME``, ``queue-proxy`` or ``init container NAME``."""
    proc: asyncio.subprocess.Process
    start: ContainerStart | None = None
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    oom: bool = False
    """Killed for going over its memory limit."""
    memory_limit: str = ""
    """Its ``resources.limits.memory`` as written (empty: none)."""
    killed_by: str = ""
    """Why the replica killed it: ``Liveness probe failed: ...`` / ``Startup probe ...``."""

    @property
    def reason(self) -> str:
        """The terminated state's reason, as the kubelet's: OOMKilled, Completed, Error."""
        if self.oom:
            return "OOMKilled"
        return "Completed" if self.proc.returncode == 0 else "Error"

    @property
    def exit_code(self) -> int | None:
        rc = self.proc.returncode
        return None if rc is None else exit_code(rc)


class Replica:
    """A running replica; ``start``, ``wait_ready``, ``stop``."""

    def __init__(
        self,
        spec: ReplicaSpec,
        name: str,
        log_dir: Path | None = None,
        ports: PortAllocator | None = None,
        pod: PodSandbox | None = None,
        standby: StandbyPool | None = None,
    ) -> None:
        self.spec = spec
        self.name = name
        self.log_dir = log_dir
        self.allocator = ports or default_allocator()
        self.pod = pod
        """Where its processes run; None: plain processes on ``spec.host``."""
        self.standby = standby
        """Where its queue-proxy comes from when one is ready (None: always started)."""
        self.app_port = 0
        self.app_spawned_at: float | None = None
        """When this start's app process was spawned (Unix time)."""
        self.took_standby = False
        """Its queue-proxy was a standby one (not started with the app)."""
        self.ports: dict[str, int] = {}
        self._logs: list[IO[bytes]] = []
        self.log_starts: dict[str, int] = {}
        """Where this start's output begins in each log file (``app``: the containers')."""
        self.runs: dict[str, ContainerRun] = {}
        """The long-running containers by name: the app, the sidecars, the queue-proxy."""
        self.init_runs: list[ContainerRun] = []
        """The init containers started so far, in order."""
        self.ready: dict[str, bool] = {}
        """Each long-running container's readiness, as the kubelet's probes say."""
        self.probes: dict[str, ContainerProbes] = {}
        """Each long-running container's probes (the queue-proxy's are separate)."""
        self.unhealthy: tuple[str, str, str] | None = None
        """(container, ``startup``/``liveness``, the kubelet's message) once one failed."""
        self._probes: list[asyncio.Task[None]] = []
        self._kills: set[asyncio.Task[None]] = set()
        self._first_ready = False
        self.on_readiness: Callable[[bool], None] | None = None
        """Called when the replica's readiness flips after it was first ready."""
        self.on_init: Callable[[int, int], None] | None = None
        """Called with (index, count) as each init container starts, and with (count,
        count) once they all succeeded."""
        self.observability = spec.observability
        """The ``OBSERVABILITY_CONFIG`` its queue-proxy should have."""
        self._given_observability = spec.observability
        self._observability_push: asyncio.Task[None] | None = None
        self._stdout_pump: asyncio.Task[None] | None = None

    # -- the processes -------------------------------------------------------------

    @property
    def host(self) -> str:
        """The replica's address: the pod's IP, or ``spec.host``."""
        return self.pod.ip if self.pod is not None and self.pod.isolated else self.spec.host

    @property
    def app(self) -> asyncio.subprocess.Process | None:
        run = self.runs.get(self.spec.container_name)
        return run.proc if run is not None else None

    @property
    def queue_proxy(self) -> asyncio.subprocess.Process | None:
        run = self.runs.get(QUEUE_PROXY)
        return run.proc if run is not None else None

    @property
    def sidecars(self) -> dict[str, asyncio.subprocess.Process]:
        return {n: r.proc for n, r in self.runs.items() if r.what.startswith("sidecar ")}

    @property
    def init_process(self) -> asyncio.subprocess.Process | None:
        """The init container running now, if any."""
        last = self.init_runs[-1] if self.init_runs else None
        return last.proc if last is not None and last.proc.returncode is None else None

    @property
    def serving_port(self) -> int:
        return self.ports["serving_port"]

    def _log_file(self, what: str) -> IO[bytes] | int:
        if self.log_dir is None:
            return asyncio.subprocess.DEVNULL
        f = (self.log_dir / f"{self.name}-{what}.log").open("ab")
        self._logs.append(f)
        self.log_starts.setdefault(what, f.tell())
        return f

    def queue_proxy_env(self) -> dict[str, str]:
        s = self.spec
        probe = s.readiness_probe or {"tcpSocket": {"port": self.app_port}}
        env = {
            k: v
            for k, v in _inherited().items()
            if not k.startswith(("SERVING_", "QUEUE_", "REVISION_")) and k != OBSERVABILITY_ENV
        }
        if self.pod is not None and self.pod.isolated:
            ports = {k: str(v) for k, v in POD_PORTS.items()}
        else:  # any free ports, as the queue-proxy reports them
            ports = dict.fromkeys(POD_PORTS, "0") | {"serving_port": str(s.serving_port)}
        if s.observability:
            env[OBSERVABILITY_ENV] = s.observability
        env.update(
            SERVING_NAMESPACE=s.namespace,
            SERVING_SERVICE=s.service,
            SERVING_CONFIGURATION=s.configuration,
            SERVING_REVISION=s.revision,
            SERVING_POD=self.name,
            SERVING_POD_IP=self.host,
            CONTAINER_CONCURRENCY=str(s.container_concurrency),
            QUEUE_SERVING_PORT=ports["serving_port"],
            QUEUE_ADMIN_PORT=ports["admin_port"],
            QUEUE_METRICS_PORT=ports["metrics_port"],
            USER_METRICS_PORT=ports["user_port"],
            QUEUE_BIND_ADDRESS=self.host,
            USER_PORT=str(self.app_port),
            USER_PROTOCOL=s.user_protocol,
            REVISION_TIMEOUT_SECONDS=f"{s.timeout_seconds:g}",
            REVISION_RESPONSE_START_TIMEOUT_SECONDS=f"{s.response_start_timeout_seconds:g}",
            REVISION_IDLE_TIMEOUT_SECONDS=f"{s.idle_timeout_seconds:g}",
            SERVING_READINESS_PROBE=json.dumps(probe),
            DRAIN_QUIET_PERIOD_SECONDS=f"{s.drain_quiet_period:g}",
        )
        if s.app_expected_after > 0 and self.app_spawned_at is not None:
            env["QUEUE_APP_EXPECTED_AT"] = f"{self.app_spawned_at + s.app_expected_after:.3f}"
        return env

    def app_env(self) -> dict[str, str]:
        s = self.spec
        env = _inherited()
        env.update(s.env)
        env.update(
            PORT=str(self.app_port),
            K_SERVICE=s.service,
            K_CONFIGURATION=s.configuration,
            K_REVISION=s.revision,
        )
        return env

    async def _spawn(
        self,
        what: str,
        name: str,
        command: list[str],
        env: dict[str, str],
        cwd: str | None,
        container: Container | None,
        *,
        stdout: IO[bytes] | int | None = None,
        stderr: IO[bytes] | int | None = None,
        mounts: bool = True,
    ) -> ContainerRun:
        """Start one container's process, in the pod's sandbox when there is one."""
        from zeroserve.local.env import expand_command

        start = None
        try:
            if self.pod is not None:
                start = self.pod.container(name, container, mounts=mounts)
            # through the zeroserve-enter helper (vfork) where it is built, else with a
            # preexec_fn (zeroserve/local/sandbox/enter.py)
            proc = await spawn(
                expand_command(command, env),
                start.plan if start is not None else _DIE_WITH_PARENT,
                env=env,
                cwd=cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=self._log_file("app") if stdout is None else stdout,
                stderr=stderr
                if stderr is not None
                else (asyncio.subprocess.STDOUT if self.log_dir else asyncio.subprocess.DEVNULL),
                start_new_session=True,
            )
        except (OSError, subprocess.SubprocessError) as e:
            raise StartError(
                what, name, f"cannot start the {what} command {command[:1]}: {e}"
            ) from None
        if start is not None:
            start.started(proc.pid)
        limits = container.resources.get("limits", {}) if container is not None else {}
        return ContainerRun(name, what, proc, start, memory_limit=str(limits.get("memory", "")))

    async def run_init_containers(self) -> None:
        """Run the init containers in order, each to completion; raises
        :class:`InitContainerError` at the first that fails."""
        for i, c in enumerate(self.spec.init_containers):
            if self.on_init is not None:
                self.on_init(i, len(self.spec.init_containers))
            try:
                run = await self._spawn(
                    f"init container {c.name}",
                    c.name,
                    c.command,
                    init_container_env(c),
                    c.working_dir,
                    c.container,
                )
            except ReplicaError as e:
                raise InitContainerError(c.name, None, str(e)) from None
            self.init_runs.append(run)
            code = await run.proc.wait()
            self._reap(run)
            if code != 0:
                raise InitContainerError(c.name, exit_code(code))
        if self.spec.init_containers and self.on_init is not None:
            n = len(self.spec.init_containers)
            self.on_init(n, n)

    async def start(self) -> None:
        """Run the init containers, then start the app, its sidecars and its
        queue-proxy; returns once the proxy listens, with every probe running."""
        await self.run_init_containers()
        s = self.spec
        isolated = self.pod is not None and self.pod.isolated
        self.app_port = s.container_port if isolated else self.allocator.acquire(s.host)
        env = self.app_env()
        command = s.command
        if s.expand_command:
            from zeroserve.local.env import expand_command

            command = expand_command(command, env)
        run = await self._spawn("app", s.container_name, command, env, s.working_dir, s.container)
        self.app_spawned_at = time.time()
        self.runs[s.container_name] = run
        for c in s.sidecars:
            self.runs[c.name] = await self._spawn(
                f"sidecar {c.name}",
                c.name,
                c.command,
                sidecar_env(s, c),
                c.working_dir,
                c.container,
            )
        qp = await self._start_queue_proxy()
        self.runs[QUEUE_PROXY] = qp
        assert qp.proc.stdout is not None
        try:
            line = await asyncio.wait_for(qp.proc.stdout.readline(), 15)
        except TimeoutError:
            line = b""
        if not line:
            await self.stop()
            raise ReplicaError("the queue-proxy did not start (see its log)")
        info = json.loads(line)
        self.ports = {k: int(v) for k, v in info.items() if k.endswith("_port")}
        self._stdout_pump = asyncio.get_running_loop().create_task(
            self._pump_queue_proxy_stdout(qp.proc.stdout), name=f"stdout {self.name}/queue-proxy"
        )
        self._push_observability()  # a change made while it started
        self.ready = dict.fromkeys(self.runs, False)
        self._start_probes(env)

    async def _pump_queue_proxy_stdout(self, stdout: asyncio.StreamReader) -> None:
        """After its ports line the queue-proxy's stdout carries its request log
        (docs/observability.md): appended to its log file, as a container's stdout."""
        out = self._log_file("queue-proxy")
        while chunk := await stdout.read(65536):  # not by line: a line may be long
            if not isinstance(out, int):
                out.write(chunk)
                out.flush()

    # -- observability ----------------------------------------------------------------

    def set_observability(self, value: str) -> None:
        """config-observability changed: its queue-proxy gets ``value`` (an
        ``OBSERVABILITY_CONFIG``) on its admin port, without a restart."""
        self.observability = value
        self._push_observability()

    def _push_observability(self) -> None:
        if "admin_port" not in self.ports or self._observability_push is not None:
            return
        if self.observability == self._given_observability:
            return
        self._observability_push = asyncio.get_running_loop().create_task(
            self._push_observability_loop(), name=f"observability {self.name}"
        )

    async def _push_observability_loop(self) -> None:
        try:
            while (value := self.observability) != self._given_observability:
                qp = self.queue_proxy
                if qp is None or qp.returncode is not None:
                    return
                try:
                    await put_observability(self.host, self.ports["admin_port"], value)
                except (OSError, ValueError) as e:
                    log.warning("replica %s: queue-proxy observability update: %s", self.name, e)
                    return
                self._given_observability = value
        finally:
            self._observability_push = None

    async def _start_queue_proxy(self) -> ContainerRun:
        """The queue-proxy: a standby one given this replica's environment when the pool
        has one ready (zeroserve/local/standby.py), else a process of its own."""
        env = self.queue_proxy_env()
        proc = self.standby.take() if self.standby is not None else None
        if proc is None:
            return await self._spawn(
                QUEUE_PROXY,
                QUEUE_PROXY,
                [sys.executable, "-m", "queueproxy"],
                env,
                None,
                None,
                stdout=asyncio.subprocess.PIPE,
                stderr=self._log_file("queue-proxy"),
            )
        start = self.pod.container(QUEUE_PROXY, None) if self.pod is not None else None
        log_file = self.log_dir / f"{self.name}-queue-proxy.log" if self.log_dir else None
        netns = self.pod.netns_path if self.pod is not None else None
        await assign(proc, env, log_file=log_file, netns=netns)
        self.took_standby = True
        if start is not None:
            start.started(proc.pid)
        return ContainerRun(QUEUE_PROXY, QUEUE_PROXY, proc, start)

    # -- the kubelet's probes ---------------------------------------------------------

    def _start_probes(self, app_env: dict[str, str]) -> None:
        s = self.spec
        loop = asyncio.get_running_loop()
        containers: list[
            tuple[str, Container | None, dict[str, Any] | None, int, dict[str, str], str | None]
        ] = [(s.container_name, s.container, s.exec_probe, self.app_port, app_env, s.working_dir)]
        for c in s.sidecars:
            exec_readiness = None
            if c.container is not None and isinstance(
                (c.container.readiness_probe or {}).get("exec"), Mapping
            ):
                exec_readiness = dict(c.container.readiness_probe or {})
            port = (
                c.container.port.container_port
                if c.container is not None and c.container.ports
                else 0
            )
            containers.append(
                (c.name, c.container, exec_readiness, port, sidecar_env(s, c), c.working_dir)
            )
        for name, container, exec_readiness, port, env, cwd in containers:
            probes = self._container_probes(name, container, exec_readiness, port, env, cwd)
            self.probes[name] = probes
            self._probes.append(loop.create_task(probes.run(), name=f"probes {self.name}/{name}"))

    def _container_probes(
        self,
        name: str,
        container: Container | None,
        exec_readiness: Mapping[str, Any] | None,
        port: int,
        env: dict[str, str],
        cwd: str | None,
    ) -> ContainerProbes:
        """A container's startup and liveness probes as written, and its readiness probe
        when it is an exec probe (the others are the queue-proxy's)."""
        enter = _DIE_WITH_PARENT
        if self.pod is not None:
            # exec probes run in the container's namespaces (not in its cgroup)
            enter = self.pod.container(name, container, limits=False).plan

        def prober(kind: str, probe: Mapping[str, Any] | None) -> Prober | None:
            if not probe:
                return None
            handler = from_probe(probe, host=self.host, port=port, env=env, cwd=cwd, enter=enter)
            return Prober(kind, ProbeSpec.of(probe, kind=kind), handler)

        return ContainerProbes(
            startup=prober("startup", container.startup_probe if container else None),
            liveness=prober("liveness", container.liveness_probe if container else None),
            readiness=prober("readiness", exec_readiness),
            on_ready=lambda ok: self._set_ready(name, ok),
            on_unhealthy=lambda kind, message: self._unhealthy(name, kind, message),
        )

    def _set_ready(self, name: str, ok: bool) -> None:
        before = self.is_ready()
        self.ready[name] = ok
        after = self.is_ready()
        if self._first_ready and before != after and self.on_readiness is not None:
            self.on_readiness(after)

    def is_started(self, name: str) -> bool:
        """The container's startup probe passed (or it has none)."""
        probes = self.probes.get(name)
        return probes.started if probes is not None else name in self.runs

    def is_ready(self) -> bool:
        """Every container ready (the pod's Ready condition)."""
        return bool(self.ready) and all(self.ready.values())

    def _unhealthy(self, name: str, kind: str, message: str) -> None:
        """A startup or liveness probe failed for good: kill the container, as the
        kubelet does (SIGTERM, SIGKILL after the grace period); its exit ends this start."""
        if self.unhealthy is not None:
            return
        self.unhealthy = (name, kind, message)
        run = self.runs.get(name)
        if run is None:
            return
        run.killed_by = message
        log.warning("replica %s: container %s: %s; killing it", self.name, name, message)
        task = asyncio.get_running_loop().create_task(
            _terminate(run.proc, self.spec.timeout_seconds)
        )
        self._kills.add(task)
        task.add_done_callback(self._kills.discard)

    async def _probe_queue_proxy(self) -> None:
        """The queue-proxy container's readiness probe for the replica's life: HTTP GET on
        its serving port with ``K-Network-Probe: queue`` (which runs the user's readiness
        probe), with the user probe's timing."""
        spec = ProbeSpec.of(self.spec.readiness_probe or {})
        handler = http_get(
            self.host,
            self.serving_port,
            headers=[{"name": "K-Network-Probe", "value": "queue"}],
        )
        prober = Prober("readiness", spec, handler)
        prober.result = True  # it just passed (wait_ready)
        while True:
            await asyncio.sleep(spec.period)
            flipped = await prober.step()
            if flipped is not None:
                if not flipped:
                    log.warning(
                        "replica %s: Readiness probe failed: %s", self.name, prober.last_message
                    )
                self._set_ready(QUEUE_PROXY, flipped)

    async def wait_ready(self, timeout: float) -> None:
        """Wait until the queue-proxy's readiness probe of the app passes and every
        container's own probes say ready; then keep probing for the replica's life."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            gone = self.exited()
            if gone is not None:
                what, code = gone
                raise ReplicaError(f"the {what} exited with code {code} before it was ready")
            if self.unhealthy is not None:
                raise ReplicaError(f"{self.unhealthy[0]}: {self.unhealthy[2]}")
            if not self.ready.get(QUEUE_PROXY) and await self.probe():
                self.ready[QUEUE_PROXY] = True
            if self.is_ready():
                self._first_ready = True
                self._probes.append(
                    loop.create_task(self._probe_queue_proxy(), name=f"readiness {self.name}")
                )
                return
            if loop.time() > deadline:
                waiting = [n for n, ok in self.ready.items() if not ok]
                raise ReplicaError(
                    f"the app was not ready after {timeout:g}s (not ready: {', '.join(waiting)})"
                )
            await asyncio.sleep(0.05)

    async def probe(self) -> bool:
        """One health check through the queue-proxy (``K-Network-Probe: queue``)."""
        try:
            reader, writer = await asyncio.open_connection(self.host, self.serving_port)
        except OSError:
            return False
        try:
            writer.write(
                b"GET / HTTP/1.1\r\nHost: probe\r\nK-Network-Probe: queue\r\nConnection: close\r\n\r\n"
            )
            status = await asyncio.wait_for(reader.readline(), 11)
            return status.split(b" ", 2)[1:2] == [b"200"]
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            return False
        finally:
            writer.close()

    # -- exits ------------------------------------------------------------------------

    def _reap(self, run: ContainerRun) -> None:
        """Record a finished process: when, and whether it was OOM-killed (its cgroup is
        removed then)."""
        if run.finished_at is None and run.proc.returncode is not None:
            run.finished_at = time.time()
            if self.pod is not None:
                run.oom = self.pod.exited(run.proc.pid)

    def exited(self) -> tuple[str, int] | None:
        """The first container found gone: (``app``, ``sidecar NAME`` or
        ``queue-proxy``, its exit code); None while all run."""
        run = self.exited_run()
        return None if run is None else (run.what, exit_code(run.proc.returncode or 0))

    def exited_run(self) -> ContainerRun | None:
        """The container whose exit ended this start (see :meth:`exited`)."""
        for run in self.runs.values():
            if run.proc.returncode is not None:
                self._reap(run)
                return run
        return None

    def processes(self) -> list[asyncio.subprocess.Process]:
        """The long-running processes: app, sidecars, queue-proxy."""
        return [r.proc for r in self.runs.values()]

    async def stop(self) -> None:
        """Pod-style stop: queue-proxy drains and exits, then the app and the sidecars
        (SIGTERM, SIGKILL after the grace period); an init container still running is
        stopped the same way."""
        grace = self.spec.timeout_seconds + self.spec.drain_quiet_period
        push = self._observability_push
        for task in (*self._probes, *self._kills, *([push] if push is not None else [])):
            task.cancel()
        await asyncio.gather(
            *self._probes,
            *self._kills,
            *([push] if push is not None else []),
            return_exceptions=True,
        )
        self._probes.clear()
        await _terminate(self.init_process, self.spec.timeout_seconds)
        await _terminate(self.queue_proxy, grace)
        await asyncio.gather(
            *(
                _terminate(r.proc, self.spec.timeout_seconds)
                for r in self.runs.values()
                if r.name != QUEUE_PROXY
            )
        )
        if self._stdout_pump is not None:
            # The queue-proxy exited: its stdout ends; what it wrote last is kept.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._stdout_pump), 2.0)
            self._stdout_pump.cancel()
            await asyncio.gather(self._stdout_pump, return_exceptions=True)
            self._stdout_pump = None
        for run in (*self.init_runs, *self.runs.values()):
            self._reap(run)
        if self.app_port and not (self.pod is not None and self.pod.isolated):
            self.allocator.release(self.app_port)
        for f in self._logs:
            f.close()
        self._logs.clear()


async def put_observability(host: str, port: int, value: str, timeout: float = 5.0) -> None:
    """``PUT /observability`` on a queue-proxy's admin port (queueproxy/app.py); raises
    ``OSError`` when it cannot be reached, ``ValueError`` when it refuses the config."""
    body = value.encode()
    head = (
        f"PUT /observability HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(head + body)
            answer = await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    status_line, _, rest = answer.partition(b"\r\n")
    if not status_line.startswith(b"HTTP/1.1 200"):
        reason = rest.partition(b"\r\n\r\n")[2].decode(errors="replace").strip()
        raise ValueError(f"{status_line.decode(errors='replace')}: {reason}")


async def _terminate(proc: asyncio.subprocess.Process | None, grace: float) -> None:
    if proc is None or proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
