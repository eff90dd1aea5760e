"""``zeroserve up`` refuses a ``--port`` or ``--local-port`` that something already
serves (another ``zeroserve up`` above all: its activators' SO_REUSEPORT would let a
second run join the port and take half of its requests), naming the flag."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.local.support import ROOT, read_until_up, up_env
from zeroserve.local.ports import PortInUse, check_listen_free, kernel_port
from zeroserve.local.up import UpError, UpOptions, check_ingress_ports


def listener(host: str = "127.0.0.1", *, reuse_port: bool = False) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind((host, 0))
    s.listen()
    return s


@pytest.mark.parametrize("reuse_port", [False, True], ids=["plain", "reuse-port"])
@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_a_listening_port_is_in_use_whoever_holds_it(host: str, reuse_port: bool) -> None:
    with listener(host, reuse_port=reuse_port) as s:
        port = s.getsockname()[1]
        for mine in ("127.0.0.1", "0.0.0.0"):
            with pytest.raises(PortInUse):
                check_listen_free(mine, port)
    check_listen_free("127.0.0.1", port)  # closed: free again


def test_a_port_with_only_time_wait_connections_is_free() -> None:
    with listener() as s:
        port = s.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = s.accept()
        accepted.close()  # the server side closes first: its end goes to TIME_WAIT
        client.close()
    check_listen_free("127.0.0.1", port)


def test_the_error_names_the_flag_and_the_address() -> None:
    with listener() as s:
        port = s.getsockname()[1]
        with pytest.raises(UpError) as info:
            check_ingress_ports(UpOptions(port=port, local_port=0))
        assert str(info.value) == (
            f"--port {port}: 127.0.0.1:{port} is already in use (another zeroserve up?)"
        )
        with pytest.raises(UpError) as info:
            check_ingress_ports(UpOptions(port=0, local_port=port))
        assert str(info.value).startswith(f"--local-port {port}: 127.0.0.1:{port} is already")
    # an address this machine does not have: the reason, still naming the flag
    with pytest.raises(UpError, match=r"^--port 8080: cannot listen on 192\.0\.2\.1:8080: "):
        check_ingress_ports(UpOptions(host="192.0.2.1", port=8080, local_port=0))


def _up(tmp_path: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of a ``zeroserve up`` whose token file and
    default logs stay under ``tmp_path``."""
    env = {**up_env(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state")}
    return [sys.executable, "-m", "zeroserve.cli", "up", "--control-port", "0", *args], env


@pytest.mark.process
@pytest.mark.parametrize("flag", ["--port", "--local-port"])
def test_up_refuses_a_port_in_use_and_leaves_nothing_running(tmp_path: Path, flag: str) -> None:
    with listener() as s:
        port = s.getsockname()[1]
        other = "--local-port" if flag == "--port" else "--port"
        argv, env = _up(tmp_path, flag, str(port), other, "0")
        p = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p
    assert p.stderr == (
        f"zeroserve up: {flag} {port}: 127.0.0.1:{port} is already in use (another zeroserve up?)\n"
    )
    assert p.stdout == ""
    # nothing started: no token file of a control API left behind
    assert list((tmp_path / "run").rglob("control-*.json")) == []


@pytest.mark.process
async def test_a_second_up_on_the_same_ingress_port_is_refused(tmp_path: Path) -> None:
    first = tmp_path / "first"
    first.mkdir()
    argv, env = _up(first, "--port", "0", "--local-port", "0")
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        output: list[str] = []
        m = await read_until_up(proc, output, 60)
        ingress = m.group(1)
        port = int(ingress.rsplit(":", 1)[1])
        # the default log directory: one per run under $XDG_STATE_HOME
        logs = Path(m.group(3))
        assert logs.parent == first / "state" / "zeroserve" / "logs"
        assert (logs / "activator-0.log").is_file()

        second = tmp_path / "second"
        second.mkdir()
        argv2, env2 = _up(second, "--port", str(port), "--local-port", str(kernel_port()))
        p = await asyncio.to_thread(
            subprocess.run, argv2, env=env2, cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert p.returncode == 1, p
        assert p.stderr == (
            f"zeroserve up: --port {port}: 127.0.0.1:{port} is already in use "
            "(another zeroserve up?)\n"
        )
        # the first one is unharmed: its activator still answers
        async with httpx.AsyncClient() as client:
            r = await client.get(ingress, headers={"Host": "nosuch.default.localhost"})
        assert r.status_code == 404
    finally:
        proc.send_signal(2)
        try:
            await asyncio.wait_for(proc.wait(), 60)
        except TimeoutError:
            proc.kill()
            await proc.wait()
