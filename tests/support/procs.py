"""Real queue-proxy processes for tests, always cleaned up."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

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
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SERVING_", "QUEUE_", "USER_", "REVISION_"))}
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
            sys.executable, "-m", "queueproxy",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=err,
        )


@asynccontextmanager
async def queue_proxy(user_port: int, tmp_path: Path, **overrides: str) -> AsyncIterator[QueueProxyProcess]:
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
