"""The floor of an HTTP/2 hop on the ``h2`` library: a bare pass-through, measured.

``python -m benchmarks.h2floor`` starts the grpc-ping example, this module's own
minimal h2c proxy in front of it (every client stream becomes a stream on one
connection to the app, headers, data and trailers copied, no flow-control
backpressure, no limits, no statistics: nothing but h2 doing its job on both sides,
with the queue-proxy's HPACK cache, zeroserve/http/hpackcache.py), the real
queue-proxy (``USER_PROTOCOL=h2c``) and nginx's ``grpc_pass``; then runs the same
``h2load`` unary calls through each and prints the CPU per call of each proxy. What the bare proxy costs is what any hop built on ``h2`` costs at least
(docs/http.md, "HTTP/2"; the README's gRPC figures).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    DataReceived,
    RequestReceived,
    ResponseReceived,
    StreamEnded,
    TrailersReceived,
)

from benchmarks.loadgen import which
from benchmarks.processes import Pinning, Supervisor, free_port
from benchmarks.procfs import CLK_TCK, CpuSnapshot, ticks_between
from benchmarks.servers import (
    REPO,
    start_grpc_app,
    start_nginx_grpc,
    start_queue_proxy,
    wait_tcp,
)
from zeroserve.http.hpackcache import install as install_hpack_cache

sys.path.insert(0, str(REPO / "examples" / "grpc-ping"))
from pingproto import PING, encode


class _Upstream(asyncio.Protocol):
    def __init__(self) -> None:
        self.h2 = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        install_hpack_cache(self.h2)
        self.transport: Any = None
        self.routes: dict[int, tuple[_Client, int]] = {}

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.h2.initiate_connection()
        transport.write(self.h2.data_to_send())

    def data_received(self, data: bytes) -> None:
        touched: set[_Client] = set()
        for e in self.h2.receive_data(data):
            route = self.routes.get(getattr(e, "stream_id", 0))
            if route is None:
                continue
            client, sid = route
            touched.add(client)
            if isinstance(e, ResponseReceived):
                client.h2.send_headers(sid, e.headers, end_stream=e.stream_ended is not None)
            elif isinstance(e, DataReceived):
                self.h2.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                client.h2.send_data(sid, e.data)
            elif isinstance(e, TrailersReceived):
                client.h2.send_headers(sid, e.headers, end_stream=True)
            elif isinstance(e, StreamEnded):
                self.routes.pop(e.stream_id, None)
        self.transport.write(self.h2.data_to_send())
        for client in touched:
            client.transport.write(client.h2.data_to_send())


class _Client(asyncio.Protocol):
    upstream: _Upstream

    def __init__(self) -> None:
        self.h2 = H2Connection(H2Configuration(client_side=False, header_encoding=None))
        install_hpack_cache(self.h2)
        self.transport: Any = None
        self.sids: dict[int, int] = {}

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.h2.initiate_connection()
        transport.write(self.h2.data_to_send())

    def data_received(self, data: bytes) -> None:
        up = self.upstream
        for e in self.h2.receive_data(data):
            if isinstance(e, RequestReceived):
                sid = up.h2.get_next_available_stream_id()
                self.sids[e.stream_id] = sid
                up.routes[sid] = (self, e.stream_id)
                up.h2.send_headers(sid, e.headers, end_stream=e.stream_ended is not None)
            elif isinstance(e, DataReceived):
                self.h2.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                up.h2.send_data(self.sids[e.stream_id], e.data)
            elif (
                isinstance(e, StreamEnded)
                and (sid := self.sids.pop(e.stream_id, 0))
                and sid in up.h2.streams
                and up.h2.streams[sid].open
            ):
                up.h2.end_stream(sid)
        self.transport.write(self.h2.data_to_send())
        up.transport.write(up.h2.data_to_send())


async def _serve(port: int, app_port: int) -> None:
    loop = asyncio.get_running_loop()
    _, upstream = await loop.create_connection(_Upstream, "127.0.0.1", app_port)

    def make() -> _Client:
        client = _Client()
        client.upstream = upstream
        return client

    server = await loop.create_server(make, "127.0.0.1", port)
    print("listening", flush=True)
    await server.serve_forever()


def serve_main(port: int, app_port: int) -> None:
    import uvloop

    uvloop.run(_serve(port, app_port))


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.h2floor", description=__doc__)
    p.add_argument("--calls", type=int, default=20_000)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--serve", nargs=2, type=int, metavar=("PORT", "APP_PORT"), help="internal")
    args = p.parse_args()
    if args.serve:
        serve_main(*args.serve)
        return 0
    h2load, nginx = which("h2load"), which("nginx")
    if h2load is None or nginx is None:
        print("needs h2load and nginx (apt-get install -y nghttp2-client nginx)", file=sys.stderr)
        return 2
    pinning = Pinning.choose(True, 1, 0)
    pinning.pin_self()
    with tempfile.TemporaryDirectory() as tmp, Supervisor(Path(tmp), pinning) as sup:
        body = Path(tmp) / "call.bin"
        message = encode("benchmark")
        body.write_bytes(b"\x00" + len(message).to_bytes(4, "big") + message)
        app = start_grpc_app(sup, "app")
        floor_port = free_port()
        floor = sup.start(
            "h2floor",
            [sys.executable, "-m", "benchmarks.h2floor", "--serve", str(floor_port), str(app.port)],
            dict(os.environ),
            cwd=REPO,
        )
        wait_tcp(floor_port, floor)
        qp = start_queue_proxy(sup, "queue-proxy", app.port, 0, protocol="h2c")
        ngx = start_nginx_grpc(sup, nginx, Path(tmp), app.port, "nginx")
        targets = {"bare h2 proxy": (floor, floor_port), "queue-proxy": (qp.server, qp.port)}
        targets["nginx"] = (ngx.server, ngx.port)
        argv = [h2load, "-n", str(args.calls), "-c", "4", "-m", "10"]
        argv += ["-H", "content-type: application/grpc", "-H", "te: trailers", "-d", str(body)]
        print(f"h2load -n {args.calls} -c 4 -m 10, unary grpc-ping calls; µs CPU per call")
        results: dict[str, list[float]] = {name: [] for name in targets}
        for _ in range(args.reps):
            for name, (server, port) in targets.items():
                before = CpuSnapshot.take([server.pid])
                done = subprocess.run(
                    [*pinning.prefix(0), *argv, f"http://127.0.0.1:{port}{PING}"],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                after = CpuSnapshot.take([server.pid])
                if "0 failed" not in done.stdout:
                    print(f"{name}: calls failed:\n{done.stdout[-500:]}", file=sys.stderr)
                ticks = ticks_between(before, after, server.pid)
                results[name].append(ticks * 1e6 / CLK_TCK / args.calls)
        nginx_us = sorted(results["nginx"])[len(results["nginx"]) // 2]
        for name, values in results.items():
            med = sorted(values)[len(values) // 2]
            print(f"{name:14s} {med:7.1f} µs/call  {med / nginx_us:5.2f}x nginx  {values}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
