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
containers as written). All write to the app's log. Locally every container shares
the machine's loopback, as a pod's containers share its network namespace.

An ``exec`` readiness probe is not the queue-proxy's (on Kubernetes the kubelet
runs it in the container): the replica runs it itself (:class:`ExecProbe`) with
the app's env and working directory, and the queue-proxy probes TCP on the app's
port instead, as Knative arranges it; the replica is ready when both pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from zeroserve.local import access
from zeroserve.local.ports import PortAllocator, default_allocator

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


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


_RUNTIME_ENV = ("PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION")
_PRIVATE_ENV = (access.TOKEN_ENV, access.CLIENT_TOKEN_ENV)
"""The control API's token never reaches a replica's processes."""


def _inherited() -> dict[str, str]:
    """zeroserve's own environment, less the control API's token."""
    return {k: v for k, v in os.environ.items() if k not in _PRIVATE_ENV}


def _base_env() -> dict[str, str]:
    """zeroserve's own environment, less what the runtime sets per container."""
    return {k: v for k, v in _inherited().items() if k not in _RUNTIME_ENV}


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


class ExecProbe:
    """An exec readiness probe run as the kubelet runs one: after
    ``initialDelaySeconds``, every ``periodSeconds`` (default 10), each run killed after
    ``timeoutSeconds`` (default 1) and failing then; ready after ``successThreshold``
    (default 1) successes in a row, unready again after ``failureThreshold`` (default
    3) failures in a row. Exit code 0 is success."""

    def __init__(
        self,
        probe: Mapping[str, Any],
        env: Mapping[str, str],
        cwd: str | None,
        on_change: Callable[[bool], None],
    ) -> None:
        self.command = [str(a) for a in probe["exec"].get("command", ())]
        self.env = dict(env)
        self.cwd = cwd
        self.on_change = on_change
        self.initial_delay = float(probe.get("initialDelaySeconds") or 0)
        self.period = float(probe.get("periodSeconds") or 10)
        self.timeout = float(probe.get("timeoutSeconds") or 1)
        self.success_threshold = int(probe.get("successThreshold") or 1)
        self.failure_threshold = int(probe.get("failureThreshold") or 3)
        self.ready = False
        self.last_failure = ""

    async def run_once(self) -> bool:
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command,
                env=self.env,
                cwd=self.cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except OSError as e:
            self.last_failure = f"cannot run {self.command[:1]}: {e}"
            return False
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), self.timeout)
        except TimeoutError:
            self.last_failure = f"command timed out after {self.timeout:g}s"
            return False
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        if proc.returncode != 0:
            text = out.decode(errors="replace").strip()[-200:]
            self.last_failure = f"exit code {proc.returncode}" + (f": {text}" if text else "")
            return False
        return True

    async def run(self) -> None:
        """Probe until cancelled, calling ``on_change`` whenever readiness flips."""
        await asyncio.sleep(self.initial_delay)
        successes = failures = 0
        while True:
            if await self.run_once():
                successes, failures = successes + 1, 0
            else:
                successes, failures = 0, failures + 1
            if not self.ready and successes >= self.success_threshold:
                self.ready = True
                self.on_change(True)
            elif self.ready and failures >= self.failure_threshold:
                self.ready = False
                self.on_change(False)
            await asyncio.sleep(self.period)


class ReplicaError(RuntimeError):
    """The replica could not start; the message says which process and why."""


class Replica:
    """A running replica; ``start``, ``wait_ready``, ``stop``."""

    def __init__(
        self,
        spec: ReplicaSpec,
        name: str,
        log_dir: Path | None = None,
        ports: PortAllocator | None = None,
    ) -> None:
        self.spec = spec
        self.name = name
        self.log_dir = log_dir
        self.allocator = ports or default_allocator()
        self.app: asyncio.subprocess.Process | None = None
        self.queue_proxy: asyncio.subprocess.Process | None = None
        self.app_port = 0
        self.ports: dict[str, int] = {}
        self._logs: list[IO[bytes]] = []
        self.exec_probe: ExecProbe | None = None
        self._exec_task: asyncio.Task[None] | None = None
        self.on_readiness: Callable[[bool], None] | None = None
        """Called when the exec probe's verdict flips."""
        self.sidecars: dict[str, asyncio.subprocess.Process] = {}
        self.init_process: asyncio.subprocess.Process | None = None
        """The init container running now, if any."""
        self.on_init: Callable[[int, int], None] | None = None
        """Called with (index, count) as each init container starts, and with (count,
        count) once they all succeeded."""

    @property
    def serving_port(self) -> int:
        return self.ports["serving_port"]

    def _log_file(self, what: str) -> IO[bytes] | int:
        if self.log_dir is None:
            return asyncio.subprocess.DEVNULL
        f = (self.log_dir / f"{self.name}-{what}.log").open("ab")
        self._logs.append(f)
        return f

    def queue_proxy_env(self) -> dict[str, str]:
        s = self.spec
        probe = s.readiness_probe or {"tcpSocket": {"port": self.app_port}}
        env = {
            k: v
            for k, v in _inherited().items()
            if not k.startswith(("SERVING_", "QUEUE_", "REVISION_"))
        }
        env.update(
            SERVING_NAMESPACE=s.namespace,
            SERVING_SERVICE=s.service,
            SERVING_CONFIGURATION=s.configuration,
            SERVING_REVISION=s.revision,
            SERVING_POD=self.name,
            SERVING_POD_IP=s.host,
            CONTAINER_CONCURRENCY=str(s.container_concurrency),
            QUEUE_SERVING_PORT=str(s.serving_port),
            QUEUE_ADMIN_PORT="0",
            QUEUE_METRICS_PORT="0",
            USER_METRICS_PORT="0",
            QUEUE_BIND_ADDRESS=s.host,
            USER_PORT=str(self.app_port),
            REVISION_TIMEOUT_SECONDS=f"{s.timeout_seconds:g}",
            REVISION_RESPONSE_START_TIMEOUT_SECONDS=f"{s.response_start_timeout_seconds:g}",
            REVISION_IDLE_TIMEOUT_SECONDS=f"{s.idle_timeout_seconds:g}",
            SERVING_READINESS_PROBE=json.dumps(probe),
            DRAIN_QUIET_PERIOD_SECONDS=f"{s.drain_quiet_period:g}",
        )
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

    def _exec_flipped(self, ready: bool) -> None:
        if self.on_readiness is not None:
            self.on_readiness(ready)

    def _output(self) -> IO[bytes] | int:
        """Where a container's output goes: the app's log, unprefixed."""
        return self._log_file("app")

    async def _spawn(
        self, what: str, command: list[str], env: dict[str, str], cwd: str | None
    ) -> asyncio.subprocess.Process:
        from zeroserve.local.env import expand_command

        try:
            return await asyncio.create_subprocess_exec(
                *expand_command(command, env),
                env=env,
                cwd=cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=self._output(),
                stderr=asyncio.subprocess.STDOUT if self.log_dir else asyncio.subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except OSError as e:
            raise ReplicaError(f"cannot start the {what} command {command[:1]}: {e}") from None

    async def run_init_containers(self) -> None:
        """Run the init containers in order, each to completion; raises
        :class:`InitContainerError` at the first that fails."""
        for i, c in enumerate(self.spec.init_containers):
            if self.on_init is not None:
                self.on_init(i, len(self.spec.init_containers))
            try:
                proc = await self._spawn(
                    f"init container {c.name}",
                    c.command,
                    init_container_env(c),
                    c.working_dir,
                )
            except ReplicaError as e:
                raise InitContainerError(c.name, None, str(e)) from None
            self.init_process = proc
            code = await proc.wait()
            self.init_process = None
            if code != 0:
                raise InitContainerError(c.name, code)
        if self.spec.init_containers and self.on_init is not None:
            n = len(self.spec.init_containers)
            self.on_init(n, n)

    async def start(self) -> None:
        """Run the init containers, then start the app, its sidecars and its
        queue-proxy; returns once the proxy listens."""
        await self.run_init_containers()
        self.app_port = self.allocator.acquire(self.spec.host)
        env = self.app_env()
        command = self.spec.command
        if self.spec.expand_command:
            from zeroserve.local.env import expand_command

            command = expand_command(command, env)
        try:
            self.app = await asyncio.create_subprocess_exec(
                *command,
                env=env,
                cwd=self.spec.working_dir,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=self._log_file("app"),
                stderr=asyncio.subprocess.STDOUT if self.log_dir else asyncio.subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except OSError as e:
            raise ReplicaError(
                f"cannot start the app command {self.spec.command[0]!r}: {e}"
            ) from None
        for c in self.spec.sidecars:
            self.sidecars[c.name] = await self._spawn(
                f"sidecar {c.name}",
                c.command,
                sidecar_env(self.spec, c),
                c.working_dir,
            )
        self.queue_proxy = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "queueproxy",
            env=self.queue_proxy_env(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log_file("queue-proxy"),
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        assert self.queue_proxy.stdout is not None
        try:
            line = await asyncio.wait_for(self.queue_proxy.stdout.readline(), 15)
        except TimeoutError:
            line = b""
        if not line:
            await self.stop()
            raise ReplicaError("the queue-proxy did not start (see its log)")
        info = json.loads(line)
        self.ports = {k: int(v) for k, v in info.items() if k.endswith("_port")}
        if self.spec.exec_probe is not None:
            self.exec_probe = ExecProbe(
                self.spec.exec_probe, env, self.spec.working_dir, self._exec_flipped
            )
            self._exec_task = asyncio.get_running_loop().create_task(
                self.exec_probe.run(), name=f"exec probe {self.name}"
            )

    async def wait_ready(self, timeout: float) -> None:
        """Wait until the queue-proxy's readiness probe of the app passes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self.app is not None and self.app.returncode is not None:
                raise ReplicaError(
                    f"the app exited with code {self.app.returncode} before it was ready"
                )
            if (self.exec_probe is None or self.exec_probe.ready) and await self.probe():
                return
            if loop.time() > deadline:
                why = ""
                if self.exec_probe is not None and not self.exec_probe.ready:
                    why = f" (readiness probe failed: {self.exec_probe.last_failure})"
                raise ReplicaError(f"the app was not ready after {timeout:g}s{why}")
            await asyncio.sleep(0.05)

    async def probe(self) -> bool:
        """One health check through the queue-proxy (``K-Network-Probe: queue``)."""
        try:
            reader, writer = await asyncio.open_connection(self.spec.host, self.serving_port)
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

    def exited(self) -> tuple[str, int] | None:
        """The first container found gone: (``app``, ``sidecar NAME`` or
        ``queue-proxy``, its exit code); None while all run."""
        for what, proc in (
            ("app", self.app),
            *((f"sidecar {n}", p) for n, p in self.sidecars.items()),
            ("queue-proxy", self.queue_proxy),
        ):
            if proc is not None and proc.returncode is not None:
                return what, proc.returncode
        return None

    def processes(self) -> list[asyncio.subprocess.Process]:
        """The long-running processes: app, sidecars, queue-proxy."""
        procs = [self.app, *self.sidecars.values(), self.queue_proxy]
        return [p for p in procs if p is not None]

    async def stop(self) -> None:
        """Pod-style stop: queue-proxy drains and exits, then the app and the sidecars
        (SIGTERM, SIGKILL after the grace period); an init container still running is
        stopped the same way."""
        grace = self.spec.timeout_seconds + self.spec.drain_quiet_period
        if self._exec_task is not None:
            self._exec_task.cancel()
            await asyncio.gather(self._exec_task, return_exceptions=True)
        await _terminate(self.init_process, self.spec.timeout_seconds)
        await _terminate(self.queue_proxy, grace)
        await asyncio.gather(
            *(_terminate(p, self.spec.timeout_seconds) for p in (self.app, *self.sidecars.values()))
        )
        if self.app_port:
            self.allocator.release(self.app_port)
        for f in self._logs:
            f.close()
        self._logs.clear()


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
