"""The servers the benchmarks start on 127.0.0.1, each under a ``Supervisor``.

Each ``start_*`` returns once the server answers, or raises ``BenchError`` with the
server's output.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from benchmarks.machine import go_binary_version, tool_version
from benchmarks.processes import (
    Server,
    Supervisor,
    answer,
    free_port,
    json_line,
    poll,
    wait_http_ok,
)
from zeroserve import compiled

REPO = Path(__file__).resolve().parent.parent
SAMPLE_APP = "examples/helloworld/app.py"
# The activator runner's one route: this Host -> revision default/hello-00001.
ROUTE_HOST = "hello.default.example.com"


@dataclass
class Proc:
    server: Server
    port: int
    desc: str
    metrics_port: int = 0
    """Its Prometheus endpoint (queue-proxy and activator)."""


def start_app(sup: Supervisor, name: str, script: str, cmd: str | None = None) -> Proc:
    """``cmd`` (a shell command serving ``$PORT``), or else the Python ``script``
    (a path relative to the repository)."""
    port = free_port()
    env = dict(os.environ, PORT=str(port), TARGET="World", HOST="127.0.0.1")
    if cmd:
        server = sup.start(name, ["/bin/sh", "-c", cmd], env, cwd=REPO)
    else:
        server = sup.start(name, [sys.executable, script], env, cwd=REPO)
    wait_http_ok(f"http://127.0.0.1:{port}/", server)
    return Proc(server, port, f"`{cmd}`" if cmd else f"{script} (aiohttp + uvloop, one process)")


GO_BACKEND = REPO / "benchmarks" / "gobackend"


class NoGoBackend(RuntimeError):
    """The Go backend cannot be built here; the message says what to install."""


def build_go_backend(out_dir: Path) -> Path:
    """``go build`` benchmarks/gobackend into ``out_dir`` (half a second once Go's
    standard library is built); raises :class:`NoGoBackend` without a Go toolchain."""
    go = shutil.which("go")
    if go is None:
        raise NoGoBackend("no Go toolchain: apt-get install -y golang-go")
    out = out_dir / "gobackend"
    p = subprocess.run(
        [go, "build", "-o", str(out), "."],
        cwd=GO_BACKEND,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if p.returncode != 0:
        raise NoGoBackend(f"go build in {GO_BACKEND} failed: {p.stderr.strip()[:500]}")
    return out


# Environment variables of the queue-proxy; inherited ones are dropped so that
# the caller's shell cannot change what is measured.
_QP_PREFIXES = ("SERVING_", "QUEUE_", "USER_", "REVISION_", "CONTAINER_", "DRAIN_")


def start_queue_proxy(
    sup: Supervisor,
    name: str,
    app_port: int,
    cc: int,
    protocol: str = "http1",
    env: dict[str, str] | None = None,
) -> Proc:
    """``env``: more variables (``OBSERVABILITY_CONFIG``: benchmarks/observability.py)."""
    extra = env or {}
    env = {k: v for k, v in os.environ.items() if not k.startswith(_QP_PREFIXES)}
    env.update(
        SERVING_NAMESPACE="default",
        SERVING_CONFIGURATION="hello",
        SERVING_REVISION="hello-00001",
        SERVING_POD="hello-pod",
        SERVING_POD_IP="127.0.0.1",
        CONTAINER_CONCURRENCY=str(cc),
        QUEUE_SERVING_PORT="0",
        QUEUE_ADMIN_PORT="0",
        QUEUE_METRICS_PORT="0",
        USER_METRICS_PORT="0",
        USER_PORT=str(app_port),
        REVISION_TIMEOUT_SECONDS="300",
        QUEUE_BIND_ADDRESS="127.0.0.1",
        DRAIN_QUIET_PERIOD_SECONDS="0",
        USER_PROTOCOL=protocol,
    )
    env.update(extra)
    # cwd = the repository, so `-m queueproxy` is the package (never this directory).
    server = sup.start(name, [sys.executable, "-m", "queueproxy"], env, cwd=REPO)
    info = json_line(server, "queue_proxy", "listening")
    port = int(str(info["serving_port"]))
    if protocol == "http1":
        wait_http_ok(f"http://127.0.0.1:{port}/", server)
    desc = f"`python -m queueproxy`, CONTAINER_CONCURRENCY={cc}" + (
        f", USER_PROTOCOL={protocol}" if protocol != "http1" else ""
    )
    desc += f", {hot_path(server.pid, env)}"
    return Proc(server, port, desc, int(str(info["user_metrics_port"])))


def hot_path(pid: int, env: Mapping[str, str]) -> str:
    """What a started hop runs, read off its memory: "compiled" only if it mapped the
    build its environment names (zeroserve/compiled.py)."""
    extensions, _ = compiled.plan(env)
    return "compiled" if compiled.runs_compiled(pid, extensions) else "as Python"


def start_activator(
    sup: Supervisor, name: str, qp_port: int, cc: int, cold: bool, protocol: str = "http1"
) -> Proc:
    """The real activator with one static route to the queue-proxy at ``qp_port``."""
    argv = [sys.executable, "-m", "benchmarks.activator_runner", "--port", "0"]
    argv += ["--host-name", ROUTE_HOST, "--endpoint", f"127.0.0.1:{qp_port}"]
    argv += ["--container-concurrency", str(cc), *(["--cold"] if cold else [])]
    argv += ["--protocol", protocol]
    server = sup.start(name, argv, cwd=REPO)
    info = json_line(server, "activator", "listening")
    port = int(str(info["port"]))
    # A network probe is answered by the activator itself (never held or forwarded).
    probe = {"K-Network-Probe": "activator"}
    poll(
        lambda: answer(f"http://127.0.0.1:{port}/", probe) == (200, b"activator") or None,
        20,
        lambda: f"{name} does not answer its health check:\n{server.log_tail()}",
        [server],
    )
    desc = (
        f"`python -m benchmarks.activator_runner{' --cold' * cold}"
        f"{' --protocol ' + protocol if protocol != 'http1' else ''}` (containerConcurrency "
        f"{cc}, {'no replica until SIGUSR1' if cold else 'one ready replica'}, "
        f"{hot_path(server.pid, os.environ)})"
    )
    return Proc(server, port, desc, int(str(info["metrics_port"])))


NGINX_CONF = """\
# Generated by the zeroserve benchmarks: a minimal {what} to compare with.
worker_processes 1;
daemon off;
master_process on;
{user_line}pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    # nginx closes a client connection after 1000 requests by default; the
    # other proxies never do, and reconnecting would be measured too.
    keepalive_requests 1000000;
    keepalive_timeout 75s;
{http_extra}
    upstream backend {{
        server 127.0.0.1:{backend_port};
        keepalive {keepalive};
        keepalive_requests 1000000;
        keepalive_timeout 75s;
    }}

    server {{
        listen 127.0.0.1:{port}{listen_extra};
        location / {{
{location}
        }}
    }}
}}
"""
HTTP1_LOCATION = """\
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;"""
GRPC_LOCATION = """\
            grpc_pass grpc://backend;"""


def _nginx(
    sup: Supervisor, nginx: str, tmp: Path, name: str, *, grpc: bool, **fields: object
) -> tuple[Server, int]:
    """nginx with one worker in front of the backend: HTTP/1.1 (``proxy_pass``) or gRPC
    (``grpc_pass``, h2c both ways; ``listen ... http2``: Debian's nginx 1.22 predates
    the ``http2`` directive)."""
    ntmp = tmp / name
    ntmp.mkdir()
    port = free_port()
    # Run as the current user: `user` only matters (and is only allowed) for a root master.
    user_line = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""
    conf = ntmp / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            what="gRPC proxy (h2c both ways)" if grpc else "reverse proxy",
            user_line=user_line,
            tmp=ntmp,
            port=port,
            listen_extra=" http2" if grpc else "",
            http_extra="    http2_max_concurrent_streams 1000;\n" if grpc else "",
            keepalive=100 if grpc else 1000,
            location=GRPC_LOCATION if grpc else HTTP1_LOCATION,
            **fields,
        )
    )
    argv = [nginx, "-p", str(ntmp), "-e", str(ntmp / "nginx-error.log"), "-c", str(conf)]
    return sup.start(name, argv), port


def start_nginx(sup: Supervisor, nginx: str, tmp: Path, app_port: int, name: str) -> Proc:
    server, port = _nginx(sup, nginx, tmp, name, grpc=False, backend_port=app_port)
    wait_http_ok(f"http://127.0.0.1:{port}/", server)
    return Proc(server, port, f"{tool_version('nginx')}, 1 worker, keep-alive upstream pool")


def start_floor(sup: Supervisor, app_port: int, name: str, work: bool = False) -> Proc:
    """The bare HTTP/1.1 pass-through of benchmarks/h1floor.py: the floor of a Python hop;
    ``work``: the work floor (that pass-through plus what every queue-proxy request does)."""
    port = free_port()
    argv = [sys.executable, "-m", "benchmarks.h1floor", "--serve", str(port), str(app_port)]
    if work:
        argv.append("--work")
        desc = "`python -m benchmarks.h1floor --work` (the floor + the queue-proxy's work)"
    else:
        desc = "`python -m benchmarks.h1floor` (uvloop + httptools, bytes copied)"
    server = sup.start(name, argv, dict(os.environ), cwd=REPO)
    wait_http_ok(f"http://127.0.0.1:{port}/", server)
    return Proc(server, port, desc)


def start_go_proxy(sup: Supervisor, path: str, app_port: int, name: str) -> Proc:
    """A Go ``httputil.ReverseProxy`` binary configured by ``LISTEN`` and ``UPSTREAM``."""
    port = free_port()
    env = dict(os.environ, LISTEN=f"127.0.0.1:{port}", UPSTREAM=f"127.0.0.1:{app_port}")
    server = sup.start(name, [path], dict(env, GOMAXPROCS="1"))
    wait_http_ok(f"http://127.0.0.1:{port}/", server)
    return Proc(server, port, f"`{path}` ({go_binary_version(path)}), GOMAXPROCS=1")


GRPC_APP = "examples/grpc-ping/app.py"


def wait_tcp(port: int, server: Server, timeout: float = 20.0) -> None:
    """Poll until ``port`` accepts connections; fail early if ``server`` exits."""

    def accepts() -> bool | None:
        with socket.socket() as s:
            s.settimeout(0.5)
            return True if s.connect_ex(("127.0.0.1", port)) == 0 else None

    poll(accepts, timeout, lambda: f"port {port} not open:\n{server.log_tail()}", [server])


def start_grpc_app(sup: Supervisor, name: str) -> Proc:
    """The grpc-ping example (grpcio, h2c) on a free port."""
    port = free_port()
    env = dict(os.environ, PORT=str(port), TARGET="World")
    server = sup.start(name, [sys.executable, GRPC_APP], env, cwd=REPO)
    wait_tcp(port, server)
    return Proc(server, port, f"{GRPC_APP} (grpcio, h2c)")


def start_nginx_grpc(sup: Supervisor, nginx: str, tmp: Path, app_port: int, name: str) -> Proc:
    server, port = _nginx(sup, nginx, tmp, name, grpc=True, backend_port=app_port)
    wait_tcp(port, server)
    return Proc(server, port, f"{tool_version('nginx')}, 1 worker, grpc_pass, keep-alive pool")
