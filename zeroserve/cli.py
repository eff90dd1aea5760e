"""The ``zeroserve`` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

import uvloop

from .local.replica import Replica, ReplicaError, ReplicaSpec


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zeroserve", description="Knative-Serving-style serverless, locally.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser(
        "replica",
        help="run one command as a replica: the app behind a queue-proxy",
        description="Start CMD with $PORT like a Knative container, put a queue-proxy in front of it, "
        "and serve until Ctrl-C (then drain and stop both, pod-style).",
    )
    r.add_argument("--port", type=int, default=8012, help="queue-proxy serving port (default 8012; 0 = any)")
    r.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    r.add_argument("--concurrency", type=int, default=0, metavar="CC",
                   help="containerConcurrency: requests at once at the app (default 0 = unlimited)")
    r.add_argument("--timeout", type=float, default=300, help="request timeout in seconds (default 300)")
    r.add_argument("--drain", type=float, default=1.0,
                   help="quiet period before stopping, seconds (default 1; Knative's is 30)")
    r.add_argument("--revision", default="helloworld-go-00001", help="revision name reported in stats")
    r.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="environment of the app")
    r.add_argument("--logs", type=Path, help="write app and queue-proxy logs into this directory")
    r.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    return p


async def _run_replica(args: argparse.Namespace) -> int:
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        print("zeroserve replica: give the app command after --", file=sys.stderr)
        return 2
    env = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"zeroserve replica: --env {item!r}: expected NAME=VALUE", file=sys.stderr)
            return 2
        env[name] = value
    if args.logs:
        args.logs.mkdir(parents=True, exist_ok=True)
    spec = ReplicaSpec(
        command=cmd, env=env, container_concurrency=args.concurrency, timeout_seconds=args.timeout,
        drain_quiet_period=args.drain, serving_port=args.port, host=args.host,
        revision=args.revision, configuration=args.revision.rsplit("-", 1)[0],
        service=args.revision.rsplit("-", 1)[0],
    )
    replica = Replica(spec, name=f"{args.revision}-local", log_dir=args.logs)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await replica.start()
        await replica.wait_ready(timeout=60)
    except ReplicaError as e:
        await replica.stop()
        print(f"zeroserve replica: {e}", file=sys.stderr)
        return 1
    url = f"http://{args.host}:{replica.serving_port}"
    print(f"ready: {' '.join(cmd)} behind a queue-proxy at {url}", flush=True)
    print(f"  curl {url}/", flush=True)
    print(f"  stats: curl http://{args.host}:{replica.ports['metrics_port']}/metrics", flush=True)
    print("Ctrl-C to drain and stop.", flush=True)
    app = replica.app
    assert app is not None
    exited = asyncio.ensure_future(app.wait())
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if exited.done():
        print(f"zeroserve replica: the app exited with code {app.returncode}", file=sys.stderr)
        code = 1
    print("stopping: queue-proxy drains, then the app", flush=True)
    await replica.stop()
    for fut in (exited, stopping):
        fut.cancel()
    return code


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="zeroserve %(levelname)s %(message)s")
    if args.command == "replica":
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(_run_replica(args))
    return 2


if __name__ == "__main__":
    sys.exit(main())
