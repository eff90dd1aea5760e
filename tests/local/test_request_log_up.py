"""Request logs through ``zeroserve up`` (README, "Request logs"): applying
config-observability turns them on at once, the queue-proxy's lines land in the
replica's log file and the activator's own answers in its log."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.local.support import EXAMPLES, UpProcess, zeroserve_up

pytestmark = pytest.mark.process


def _logs(up: UpProcess, pattern: str) -> str:
    return "".join(p.read_text(errors="replace") for p in sorted(up.logs.glob(pattern)))


async def _get(up: UpProcess, host: str, path: str = "/") -> int:
    async with httpx.AsyncClient(timeout=30) as c:
        return (await c.get(up.ingress + path, headers={"Host": host})).status_code


async def test_applying_config_observability_logs_the_next_requests(tmp_path: Path) -> None:
    async with zeroserve_up(tmp_path, EXAMPLES / "hello.yaml") as up:
        assert await _get(up, "hello.default.localhost", "/?before") == 200
        await up.acli("apply", "-f", str(EXAMPLES / "config-observability.yaml"))

        async def logged() -> bool:
            # the change reaches the running queue-proxy without a restart
            await _get(up, "hello.default.localhost", "/?after")
            return "GET hello.default.localhost" in _logs(up, "*-queue-proxy.log")

        await up.until(logged, "a request log line in the queue-proxy's log", within=20)
        lines = _logs(up, "*-queue-proxy.log")
        assert "/?before" not in lines  # nothing was written while off
        line = next(x for x in lines.splitlines() if "/?after" in x)
        assert " 200 13B " in line and "rev=hello-00001" in line

        async def answered_by_activator() -> bool:
            assert await _get(up, "nowhere.localhost", "/x") == 404
            return "GET nowhere.localhost/x 404 " in _logs(up, "activator-*.log")

        await up.until(answered_by_activator, "the activator's own 404 in its log", within=20)
