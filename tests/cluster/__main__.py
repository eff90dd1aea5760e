"""``python -m tests.cluster up``: run the test cluster until SIGINT (docs/test-cluster.md).

Prints one JSON line when ready: ``kubeconfig``, ``gateway_port``, ``local_gateway_port``
(and ``api``, ``logs``); removes everything it made on SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
from pathlib import Path

from zeroserve import forksafe

from .cluster import DEFAULT_POD_CIDR, TestCluster
from .node import ImageMap


def main(argv: list[str] | None = None) -> int:
    forksafe.install()  # the node agent forks every container's process
    parser = argparse.ArgumentParser(prog="python -m tests.cluster")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the test cluster until SIGINT")
    up.add_argument(
        "--dir", type=Path, help="kubeconfig, certificates, pod logs (default: a temp dir)"
    )
    up.add_argument(
        "--image-map",
        type=Path,
        help="YAML {image glob: [command...]} for images without a command",
    )
    up.add_argument(
        "--pod-cidr", default=DEFAULT_POD_CIDR, help="pods and ClusterIPs (inside 198.18.0.0/15)"
    )
    up.add_argument(
        "--gateway-port", type=int, default=0, help="the public gateway's port (0: any)"
    )
    up.add_argument(
        "--local-gateway-port", type=int, default=0, help="the cluster-local gateway's port"
    )
    up.add_argument(
        "--no-authorization",
        action="store_true",
        help="let every request through (no tokens checked, no RBAC)",
    )
    args = parser.parse_args(argv)
    images = ImageMap.default()
    if args.image_map is not None:
        try:
            images = images.with_file(args.image_map)
        except (OSError, ValueError) as e:
            parser.error(str(e))
    directory = args.dir or Path(tempfile.mkdtemp(prefix="zeroserve-cluster-"))
    cluster = TestCluster(
        directory,
        images=images,
        pod_cidr=args.pod_cidr,
        gateway_ports=(args.gateway_port, args.local_gateway_port),
        authorization=not args.no_authorization,
    )
    return asyncio.run(_run(cluster))


async def _run(cluster: TestCluster) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await cluster.start()
    except Exception as e:  # a clear line, not a traceback
        print(f"python -m tests.cluster up: {e}", file=sys.stderr)
        return 1
    print(cluster.ready_line(), flush=True)
    try:
        await stop.wait()
    finally:
        await cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
