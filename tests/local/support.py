"""A real ``zeroserve up`` process for end-to-end tests, and its CLI."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zeroserve.local import access

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
_UP_LINE = re.compile(
    r"zeroserve is up: ingress (http://\S+), control API (http://\S+), logs in (\S+)"
    r"(?: \(local gateway (http://\S+)\))?"
)


@dataclass
class UpProcess:
    proc: asyncio.subprocess.Process
    ingress: str
    control: str
    logs: Path
    output: list[str]
    local_gateway: str | None = None
    env: dict[str, str] | None = None
    """The environment ``zeroserve up`` and the CLI run with (its own token directory)."""
    stderr: str = ""
    """What ``zeroserve up`` wrote on stderr (once it has exited)."""

    @property
    def ingress_port(self) -> int:
        return int(self.ingress.rsplit(":", 1)[1])

    @property
    def control_port(self) -> int:
        return int(self.control.rsplit(":", 1)[1])

    @property
    def token(self) -> str:
        """The control API's token, from the file ``zeroserve up`` wrote."""
        token = access.read_token_file(self.control_port, self.env)
        assert token, f"no token file for port {self.control_port}"
        return token

    @property
    def headers(self) -> dict[str, str]:
        """``Authorization`` for a direct call of the control API."""
        return access.headers(self.token)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``zeroserve ARGS --server <control>`` (a blocking call: use ``acli`` in async tests)."""
        p = subprocess.run(
            [sys.executable, "-m", "zeroserve.cli", *args, "--server", self.control],
            env=self.env,
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
        if check and p.returncode != 0:
            raise AssertionError(f"zeroserve {' '.join(args)} failed ({p.returncode}): {p.stderr}")
        return p

    async def acli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(self.cli, *args, check=check)

    async def get(self, kind: str, name: str | None = None) -> Any:
        args = ["get", kind, *([name] if name else []), "-o", "json"]
        return json.loads((await self.acli(*args)).stdout)

    async def until(
        self, predicate: Callable[[], Any], what: str, within: float = 60.0, every: float = 0.2
    ) -> Any:
        """Poll an async ``predicate`` until it returns something truthy."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        last = None
        while loop.time() < deadline:
            last = await predicate()
            if last:
                return last
            await asyncio.sleep(every)
        raise AssertionError(f"not within {within}s: {what} (last: {last!r}); logs in {self.logs}")


async def read_until_up(
    proc: asyncio.subprocess.Process, output: list[str], within: float
) -> re.Match[str]:
    assert proc.stdout is not None
    async with asyncio.timeout(within):
        while True:
            line = (await proc.stdout.readline()).decode()
            if not line:
                err = (await proc.stderr.read()).decode() if proc.stderr else ""
                raise AssertionError(f"zeroserve up exited: {''.join(output)} {err}")
            output.append(line)
            m = _UP_LINE.search(line)
            if m:
                return m


def up_env(tmp_path: Path) -> dict[str, str]:
    """This environment with the token directory under ``tmp_path`` (no test's token
    file lands in the user's own ``$XDG_RUNTIME_DIR`` or home)."""
    run = tmp_path / "run"
    run.mkdir(mode=0o700, exist_ok=True)
    return {**os.environ, "XDG_RUNTIME_DIR": str(run)}


@asynccontextmanager
async def zeroserve_up(
    tmp_path: Path, *files: Path | str, args: tuple[str, ...] = ()
) -> AsyncIterator[UpProcess]:
    logs = tmp_path / "logs"
    env = up_env(tmp_path)
    if "--local-port" not in args:
        args = ("--local-port", "0", *args)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "zeroserve.cli",
        "up",
        *[str(f) for f in files],
        "--port",
        "0",
        "--control-port",
        "0",
        "--logs",
        str(logs),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    output: list[str] = []
    drain: asyncio.Task[None] | None = None
    up: UpProcess | None = None
    try:
        m = await read_until_up(proc, output, 60)
        up = UpProcess(proc, m.group(1), m.group(2), Path(m.group(3)), output, m.group(4), env)

        async def keep_reading() -> None:
            assert proc.stdout is not None
            while line := await proc.stdout.readline():
                output.append(line.decode())

        drain = asyncio.create_task(keep_reading(), name="zeroserve-up-output")
        yield up
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 60)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if drain is not None:
            drain.cancel()
            await asyncio.gather(drain, return_exceptions=True)
        if proc.stderr is not None:
            err = (await proc.stderr.read()).decode(errors="replace")
            if up is not None:
                up.stderr = err
