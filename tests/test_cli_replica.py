"""``zeroserve replica``: the sample app behind a queue-proxy, with no control plane."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from zeroserve.local.ports import kernel_port

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parent.parent
APP = [sys.executable, str(ROOT / "examples" / "helloworld" / "app.py")]


async def _start(
    port: int, *extra: str, app: Sequence[str] = APP, **kwargs: Any
) -> asyncio.subprocess.Process:
    """``zeroserve replica --port PORT EXTRA... -- APP...`` (``kwargs``: cwd, env)."""
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
        *app,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        **kwargs,
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


async def test_python_is_the_interpreter_zeroserve_runs_in(tmp_path: Path) -> None:
    """As ``zeroserve up`` runs a container's ``python``: a ``python`` first on PATH
    without the app's dependencies (here one that only fails) is not the one used."""
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'the system python' >&2\nexit 1\n")
    fake.chmod(0o755)
    port = kernel_port()
    proc = await _start(
        port,
        app=["python", "examples/helloworld/app.py"],
        cwd=ROOT,
        env={**os.environ, "PATH": f"{tmp_path}:{os.environ.get('PATH', '')}"},
    )
    try:
        line = await _ready_line(proc)
        assert (
            line
            == f"ready: python examples/helloworld/app.py behind a queue-proxy at http://127.0.0.1:{port}\n"
        )
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{port}/")
        assert r.text == "Hello World!\n"
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _fails(*cmd: str) -> tuple[int | None, str]:
    proc = await _start(0, app=cmd)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, err.decode()


async def test_an_app_that_fails_at_start_shows_its_last_output() -> None:
    lines = "; ".join(f"print('line {i}')" for i in range(12))
    code, err = await _fails("python", "-c", f"import sys; {lines}; sys.exit(3)")
    assert code == 1
    assert err == (
        "zeroserve replica: the app exited with code 3 before it was ready\n"
        "the app's last output:\n" + "".join(f"  line {i}\n" for i in range(2, 12))
    )


async def test_an_app_that_prints_nothing_says_so_and_a_missing_command_says_why() -> None:
    code, err = await _fails("python", "-c", "import sys; sys.exit(4)")
    assert (code, err) == (
        1,
        "zeroserve replica: the app exited with code 4 before it was ready\n"
        "the app printed nothing\n",
    )
    code, err = await _fails("no-such-command-zeroserve")
    assert code == 1
    assert err.startswith(
        "zeroserve replica: cannot start the app command ['no-such-command-zeroserve']: "
        "[Errno 2] No such file or directory"
    ), err
    assert err.count("\n") == 1
