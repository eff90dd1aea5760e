"""``python -m benchmarks.h1floor``: the bare HTTP/1.1 pass-through that the suite
measures as the floor of a Python hop (target ``floor``), and with ``--work`` the work
floor (target ``workfloor``). Each must really be a proxy, or its figure means nothing:
each request reaches the app and its answer comes back whole, several on one kept-alive
connection and on connections side by side; the work floor must also do the
queue-proxy's per-request work it stands for."""

from __future__ import annotations

import concurrent.futures
import http.client
import http.server
import os
import subprocess
import sys
import threading
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


@pytest.fixture(params=[False, True], ids=["floor", "workfloor"])
def floor_port(request: pytest.FixtureRequest) -> Iterator[int]:
    app_port, port = free_port(), free_port()
    env = dict(os.environ, PORT=str(app_port), TARGET="Floor")
    app = subprocess.Popen([sys.executable, "benchmarks/backend.py"], cwd=ROOT, env=env)
    argv = [sys.executable, "-m", "benchmarks.h1floor", "--serve", str(port), str(app_port)]
    floor = subprocess.Popen(argv + ["--work"] * request.param, cwd=ROOT)
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


class _EchoHeaders(http.server.BaseHTTPRequestHandler):
    """An app answering each request with the header lines it received."""

    protocol_version = "HTTP/1.1"
    seen: list[str] = []

    def do_GET(self) -> None:
        body = str(self.headers).encode()
        _EchoHeaders.seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def work_floor_and_echo() -> Iterator[int]:
    echo = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoHeaders)
    threading.Thread(target=echo.serve_forever, daemon=True).start()
    _EchoHeaders.seen = []
    port = free_port()
    argv = [sys.executable, "-m", "benchmarks.h1floor", "--serve", str(port)]
    floor = subprocess.Popen([*argv, str(echo.server_address[1]), "--work"], cwd=ROOT)
    try:
        _wait_port(port, floor)
        yield port
    finally:
        floor.terminate()
        floor.wait(10)
        echo.shutdown()
        echo.server_close()


def test_the_work_floor_rewrites_the_head_as_the_queue_proxy_does(work_floor_and_echo: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", work_floor_and_echo, timeout=10)
    headers = {
        "Host": "hello.default.svc",
        "K-Original-Host": "hello.example.com",
        "Knative-Serving-Revision": "hello-00001",
        "Knative-Serving-Namespace": "default",
        "X-Forwarded-For": "203.0.113.7",
        "Connection": "keep-alive",
        "X-Kept": "yes",
    }
    conn.request("GET", "/path?q=1", headers=headers)
    r = conn.getresponse()
    got = {
        k.lower(): v.strip()
        for k, _, v in (line.partition(":") for line in r.read().decode().splitlines() if line)
    }
    assert r.status == 200
    assert got["host"] == "hello.example.com"
    assert got["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    assert got["x-kept"] == "yes"
    for gone in ("k-original-host", "knative-serving-revision", "knative-serving-namespace"):
        assert gone not in got
    assert "connection" not in got
    assert _EchoHeaders.seen == ["/path?q=1"]
    conn.close()


@pytest.mark.parametrize(
    "probe",
    [{"K-Network-Probe": "queue"}, {"K-Kubelet-Probe": "queue"}, {"User-Agent": "kube-probe/1.31"}],
    ids=["network-probe", "kubelet-probe", "kube-probe-agent"],
)
def test_the_work_floor_answers_health_checks_itself(
    work_floor_and_echo: int, probe: dict[str, str]
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", work_floor_and_echo, timeout=10)
    conn.request("GET", "/healthz", headers=probe)
    r = conn.getresponse()
    assert (r.status, r.read()) == (200, b"")
    conn.request("GET", "/after")  # the connection goes on, and the app saw only this one
    assert conn.getresponse().status == 200
    assert _EchoHeaders.seen == ["/after"]
    conn.close()
