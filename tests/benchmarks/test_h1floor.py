"""``python -m benchmarks.h1floor``: the bare HTTP/1.1 pass-through that the suite
measures as the floor of a Python hop (target ``floor``). It must really be a proxy,
or its figure means nothing: each request reaches the app and its answer comes back
whole, several on one kept-alive connection and on connections side by side."""

from __future__ import annotations

import concurrent.futures
import http.client
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.processes import free_port

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.process, pytest.mark.timeout(60)]


def _wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert proc.poll() is None, "exited before listening"
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"port {port} not open")


@pytest.fixture
def floor_port() -> Iterator[int]:
    app_port, port = free_port(), free_port()
    env = dict(os.environ, PORT=str(app_port), TARGET="Floor")
    app = subprocess.Popen([sys.executable, "benchmarks/backend.py"], cwd=ROOT, env=env)
    floor = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.h1floor", "--serve", str(port), str(app_port)], cwd=ROOT
    )
    try:
        _wait_port(app_port, app)
        _wait_port(port, floor)
        yield port
    finally:
        for p in (floor, app):
            p.terminate()
            p.wait(10)


def test_requests_on_one_connection_are_each_answered_whole(floor_port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", floor_port, timeout=10)
    for path, want in (("/", b"Hello Floor!\n"), ("/bytes/100000", None), ("/", b"Hello Floor!\n")):
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        assert r.status == 200
        assert body == want if want is not None else len(body) == 100_000
    conn.close()


def test_connections_side_by_side_get_their_own_answers(floor_port: int) -> None:
    def fetch(n: int) -> tuple[int, int]:
        conn = http.client.HTTPConnection("127.0.0.1", floor_port, timeout=10)
        sizes = []
        for _ in range(5):
            conn.request("GET", f"/bytes/{n}")
            sizes.append(len(conn.getresponse().read()))
        conn.close()
        return n, sum(sizes) // 5

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        got = list(pool.map(fetch, range(1000, 9000, 1000)))
    assert got == [(n, n) for n in range(1000, 9000, 1000)]
