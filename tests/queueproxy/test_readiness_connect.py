"""A readiness check's attempts at an app still starting (queueproxy/readiness.py,
``connect_now``; docs/queue-proxy.md, "Health checks"): a refused connect is settled
within the call, and the connection made at once is the one the probe then uses."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from queueproxy.app import QueueProxy
from queueproxy.config import Settings
from queueproxy.readiness import REFUSED, ProbeSpec, ReadinessProber, connect_now
from tests.support.procs import qp_env


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_port_nothing_listens_on_is_refused_within_the_call() -> None:
    assert connect_now("127.0.0.1", closed_port()) == REFUSED


def test_a_listening_port_gives_the_connection_already_made() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        got = connect_now("127.0.0.1", port)
        assert isinstance(got, socket.socket)
        with got:
            assert got.getpeername() == ("127.0.0.1", port)
            conn, _ = server.accept()
            conn.close()


class CountingApp:
    """An HTTP app on loopback that counts the connections it accepts."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(head)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    async def start(self, port: int) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.mark.parametrize("kind", ["http", "tcp"])
async def test_a_check_waits_for_the_app_and_probes_it_over_one_connection(kind: str) -> None:
    port = closed_port()
    app = CountingApp()
    prober = ReadinessProber(ProbeSpec(kind=kind, host="127.0.0.1", port=port, path="/ready"))
    check = asyncio.create_task(prober.check())
    try:
        await asyncio.sleep(0.05)  # about ten attempts refused
        assert not check.done()
        await app.start(port)
        assert await asyncio.wait_for(check, 5)
        await asyncio.sleep(0.02)
        # the connection connect_now made is the probe's: the app saw one
        assert app.connections == 1
        if kind == "http":
            assert app.requests[0].startswith(b"GET /ready HTTP/1.1\r\n")
            assert b"User-Agent: kube-probe/" in app.requests[0]
    finally:
        await prober.aclose()
        await app.close()


async def test_a_probe_of_a_host_name_is_checked_the_ordinary_way() -> None:
    port = closed_port()
    app = CountingApp()
    prober = ReadinessProber(ProbeSpec(kind="http", host="localhost", port=port))
    check = asyncio.create_task(prober.check())
    try:
        await asyncio.sleep(0.03)
        await app.start(port)
        assert await asyncio.wait_for(check, 5)
    finally:
        await prober.aclose()
        await app.close()


class NotReadyYet:
    """An HTTP app that answers 503 until ``ready``, counting the requests."""

    def __init__(self) -> None:
        self.requests = 0
        self.ready = False
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        self.requests += 1
        status = b"200 OK" if self.ready else b"503 Service Unavailable"
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])


async def test_a_check_probes_less_often_until_the_app_is_expected() -> None:
    # expected_at (QUEUE_APP_EXPECTED_AT) 0.4 s ahead: attempts an eighth of the time
    # left apart (50 ms at most), then every 5 ms; an app answering 503 counts them.
    app = NotReadyYet()
    port = await app.start()
    prober = ReadinessProber(
        ProbeSpec(kind="http", host="127.0.0.1", port=port), expected_at=time.monotonic() + 0.4
    )
    check = asyncio.create_task(prober.check())
    try:
        await asyncio.sleep(0.15)
        early = app.requests
        assert 2 <= early <= 7  # 4 or 5; every 5 ms would be about 30
        await asyncio.sleep(0.55)  # 0.3 s past the expected time
        assert app.requests - early >= 15
        assert not check.done()
        app.ready = True
        assert await asyncio.wait_for(check, 5)
    finally:
        await prober.aclose()
        if app.server is not None:
            app.server.close()
            await app.server.wait_closed()


def test_the_queue_proxy_reads_the_expected_time_as_a_unix_time() -> None:
    qp = QueueProxy(Settings.from_env(qp_env(1, QUEUE_APP_EXPECTED_AT=f"{time.time() + 0.25}")))
    assert qp.prober.expected_at - time.monotonic() == pytest.approx(0.25, abs=0.05)
    assert QueueProxy(Settings.from_env(qp_env(1))).prober.expected_at == 0.0
