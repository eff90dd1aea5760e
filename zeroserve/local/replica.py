"""One local replica: the user's command plus a queue-proxy process, like a pod.

The app gets ``PORT`` (and ``K_SERVICE``/``K_CONFIGURATION``/``K_REVISION``)
like a Knative container; the queue-proxy gets the env contract of
docs/contracts.md ("Queue-proxy environment") and reports the ports it bound. Both run in their own
process group and die with their parent (``PR_SET_PDEATHSIG``), so a killed
``zeroserve`` leaves no orphan. Stopping follows the pod's order: the
queue-proxy drains and exits first, then the app gets SIGTERM, then SIGKILL
after the grace period.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from zeroserve.local.ports import PortAllocator, default_allocator

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


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
            for k, v in os.environ.items()
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
        env = dict(os.environ)
        env.update(s.env)
        env.update(
            PORT=str(self.app_port),
            K_SERVICE=s.service,
            K_CONFIGURATION=s.configuration,
            K_REVISION=s.revision,
        )
        return env

    async def start(self) -> None:
        """Start the app and its queue-proxy; returns once the proxy listens."""
        self.app_port = self.allocator.acquire(self.spec.host)
        try:
            self.app = await asyncio.create_subprocess_exec(
                *self.spec.command,
                env=self.app_env(),
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

    async def wait_ready(self, timeout: float) -> None:
        """Wait until the queue-proxy's readiness probe of the app passes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self.app is not None and self.app.returncode is not None:
                raise ReplicaError(
                    f"the app exited with code {self.app.returncode} before it was ready"
                )
            if await self.probe():
                return
            if loop.time() > deadline:
                raise ReplicaError(f"the app was not ready after {timeout:g}s")
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

    async def stop(self) -> None:
        """Pod-style stop: queue-proxy drains and exits, then the app."""
        grace = self.spec.timeout_seconds + self.spec.drain_quiet_period
        await _terminate(self.queue_proxy, grace)
        await _terminate(self.app, self.spec.timeout_seconds)
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
