"""Run an activator with a static topology, for benchmarks (no control plane).

    python -m benchmarks.activator_runner --port 19010 --host-name hello.default.example.com \\
        --endpoint 127.0.0.1:19001 [--container-concurrency 0] [--cold]

One route (``--host-name`` -> revision ``default/hello-00001``); ``--endpoint``
replicas (ready). With ``--cold`` the revision starts with no replica and
gets them when the process receives SIGUSR1 (to measure held requests).
Prints one JSON line with the bound ports; SIGTERM stops it. Like ``python -m
activator`` it runs the compiled hot path when ``make compiled`` built it
(``ZEROSERVE_PURE_PYTHON=1``: the sources).
"""

from __future__ import annotations

import sys

from zeroserve import compiled

# First, as ``python -m activator`` does: the modules ``make compiled`` built are loaded
# only if nothing imported their sources yet (zeroserve/compiled.py), so the benchmarks
# measure the activator that ``zeroserve up`` runs.
compiled.install_or_exit("activator_runner")

import argparse
import asyncio
import json
import signal

import uvloop

from activator.app import Activator, Settings
from activator.routing import Route, RoutingTable, Target
from zeroserve.topology import Endpoint, RevisionInfo, RevisionKey

KEY = RevisionKey("default", "hello-00001")


async def run(args: argparse.Namespace) -> int:
    act = Activator(
        Settings(
            host="127.0.0.1",
            port=args.port,
            metrics_port=0,
            drain_seconds=0,
            activation_timeout=600,
            queue_depth=args.queue_depth,
            budget=args.queue_depth,
        )
    )
    act.set_routes(
        RoutingTable([Route("default", "hello", (args.host_name,), (Target(KEY, 100),))])
    )
    act.put_revision(
        RevisionInfo(KEY, container_concurrency=args.container_concurrency, protocol=args.protocol)
    )
    endpoints = [
        Endpoint(f"replica-{i}", host, int(port), stats_port=0, ready=True)
        for i, (host, _, port) in enumerate(e.rpartition(":") for e in args.endpoint)
    ]
    loop = asyncio.get_running_loop()
    if args.cold:
        loop.add_signal_handler(signal.SIGUSR1, lambda: act.set_endpoints(KEY, endpoints))
    else:
        act.set_endpoints(KEY, endpoints)
    ports = await act.start()
    print(json.dumps({"activator": "listening", **ports}), flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await act.shutdown(drain_seconds=0)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.activator_runner")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--host-name", default="hello.default.example.com")
    p.add_argument("--endpoint", action="append", default=[], metavar="HOST:PORT")
    p.add_argument("--container-concurrency", type=int, default=0)
    p.add_argument("--queue-depth", type=int, default=20_000)
    p.add_argument("--cold", action="store_true")
    p.add_argument("--protocol", choices=("http1", "h2c"), default="http1")
    args = p.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
