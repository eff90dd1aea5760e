"""Real processes for tests, always cleaned up: queue-proxies, and any component that
prints one JSON line on stdout once it listens."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

BASE_ENV = {
    "SERVING_NAMESPACE": "default",
    "SERVING_SERVICE": "hello",
    "SERVING_CONFIGURATION": "hello",
    "SERVING_REVISION": "hello-00001",
    "SERVING_POD": "hello-00001-pod",
    "SERVING_POD_IP": "127.0.0.1",
    "CONTAINER_CONCURRENCY": "0",
    "QUEUE_SERVING_PORT": "0",
    "QUEUE_ADMIN_PORT": "0",
    "QUEUE_METRICS_PORT": "0",
    "USER_METRICS_PORT": "0",
    "REVISION_TIMEOUT_SECONDS": "300",
    "QUEUE_BIND_ADDRESS": "127.0.0.1",
    "DRAIN_QUIET_PERIOD_SECONDS": "0",
}


def qp_env(user_port: int, **overrides: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SERVING_", "QUEUE_", "USER_", "REVISION_"))
    }
    env.update(BASE_ENV)
    env["USER_PORT"] = str(user_port)
    env.update(overrides)
    return env


class QueueProxyProcess:
    """A running ``python -m queueproxy`` and the ports it reported."""

    def __init__(self, proc: asyncio.subprocess.Process, ports: dict[str, int], log: Path) -> None:
        self.proc = proc
        self.ports = ports
        self.log = log

    @property
    def port(self) -> int:
        return self.ports["serving_port"]

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def admin_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.ports['admin_port']}{path}"

    def stats_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['metrics_port']}/metrics"

    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['user_metrics_port']}/metrics"

    def terminate(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)

    async def wait(self, timeout: float = 30.0) -> int:
        return await asyncio.wait_for(self.proc.wait(), timeout)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


async def spawn_queue_proxy(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as err:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "queueproxy",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
        )


@asynccontextmanager
async def queue_proxy(
    user_port: int, tmp_path: Path, **overrides: str
) -> AsyncIterator[QueueProxyProcess]:
    """Start a queue-proxy in front of ``user_port``; stop (and reap) it on exit."""
    log = tmp_path / f"queue-proxy-{user_port}-{len(list(tmp_path.iterdir()))}.log"
    proc = await spawn_queue_proxy(qp_env(user_port, **overrides), log)
    try:
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), 15)
        except TimeoutError:
            raise AssertionError(f"queue-proxy did not start: {log.read_text()}") from None
        if not line:
            await proc.wait()
            raise AssertionError(f"queue-proxy exited with {proc.returncode}: {log.read_text()}")
        info = json.loads(line)
        ports = {k: v for k, v in info.items() if k.endswith("_port")}
        yield QueueProxyProcess(proc, ports, log)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def start_listening(
    log: Path, *args: str, cwd: Path | None = None, timeout: float = 30.0
) -> tuple[asyncio.subprocess.Process, dict[str, Any]]:
    """``python ARGS``, returned with the JSON line it prints once it listens. Its stderr goes
    to ``log`` (a pipe nobody reads could fill up and block it); if it exits first, the
    error carries that log."""
    with log.open("ab") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *args, stdout=asyncio.subprocess.PIPE, stderr=err, cwd=cwd
        )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout)
    except TimeoutError:
        await stop_process(proc, grace=0)
        raise AssertionError(
            f"{args[:2]} printed nothing in {timeout:g}s: {log.read_text()}"
        ) from None
    if not line:
        await proc.wait()
        raise AssertionError(f"{args[:2]} exited with {proc.returncode}: {log.read_text()}")
    info: dict[str, Any] = json.loads(line)
    return proc, info


async def stop_process(proc: asyncio.subprocess.Process, grace: float = 20.0) -> int | None:
    """SIGTERM, and its exit code once it is reaped; past ``grace`` seconds SIGKILL, reap,
    and None (a test that expects a clean exit fails on that)."""
    if proc.returncode is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return None


@dataclass
class ActivatorProcess:
    proc: asyncio.subprocess.Process
    info: dict[str, Any]
    log: Path

    @property
    def port(self) -> int:
        return int(self.info["port"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.info['metrics_port']}/metrics"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@asynccontextmanager
async def activator_process(log: Path, *args: str) -> AsyncIterator[ActivatorProcess]:
    """``python -m activator ARGS`` on free loopback ports, not draining, with no autoscaler
    to reach; stopped (SIGTERM, then SIGKILL) and reaped on exit."""
    proc, info = await start_listening(
        log,
        "-m",
        "activator",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--metrics-port",
        "0",
        "--autoscaler-url",
        "ws://127.0.0.1:1/",
        "--drain-seconds",
        "0",
        *args,
        cwd=ROOT,
    )
    try:
        yield ActivatorProcess(proc, info, log)
    finally:
        await stop_process(proc)
