"""``zeroserve replica``: the sample app behind a queue-proxy, with no control plane."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest

from zeroserve.local.ports import kernel_port

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parent.parent
APP = [sys.executable, str(ROOT / "examples" / "helloworld" / "app.py")]


async def _start(port: int, *extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "zeroserve.cli",
        "replica",
        "--port",
        str(port),
        "--drain",
        "0.2",
        *extra,
        "--",
        *APP,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _ready_line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line.startswith(b"ready:"), line
    return line.decode()


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid and stat[0] != b"Z":
                found.add(int(entry))
    return found


async def test_replica_serves_the_sample_app_and_stops_cleanly_on_ctrl_c() -> None:
    port = kernel_port()
    proc = await _start(port, "--env", "TARGET=zeroserve")
    try:
        await _ready_line(proc)
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{port}/")
        assert r.text == "Hello zeroserve!\n"
        children = _descendants(proc.pid)
        assert len(children) == 2  # the app and its queue-proxy
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        for pid in children:
            assert (
                not Path(f"/proc/{pid}").exists()
                or b"Z" in Path(f"/proc/{pid}/stat").read_bytes()[:80]
            )
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_children_die_when_zeroserve_is_killed() -> None:
    port = kernel_port()
    proc = await _start(port)
    try:
        await _ready_line(proc)
        children = _descendants(proc.pid)
        assert len(children) == 2
        proc.kill()  # SIGKILL: no chance to clean up; the kernel's parent-death signal does
        await proc.wait()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while any(Path(f"/proc/{pid}").exists() for pid in children):
            assert loop.time() < deadline, "orphaned replica processes"
            await asyncio.sleep(0.05)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_missing_command_is_a_usage_error() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "zeroserve.cli", "replica", stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    assert proc.returncode == 2
    assert b"give the app command after --" in err
