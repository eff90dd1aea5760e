"""``python -m activator``: the activator on Kubernetes (activator/app.py, activator/kubernetes.py).

Parses and checks the flags, connects to the cluster, waits until the watch caches
have listed (so the first request already sees every route), listens, prints one JSON
line with the bound ports, and runs until SIGTERM or SIGINT; then drains
(``--drain-seconds`` of failing health checks, then in-flight requests finish) and
exits 0. Any startup error is one line on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import math
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import urlsplit

import aiohttp
import uvloop

from zeroserve import kube
from zeroserve.http.exchange import Limits

from .app import Activator, Settings
from .kubernetes import KubeActivatorSources
from .local import LocalControlSources

log = logging.getLogger("activator")

DEFAULT_AUTOSCALER_URL = "ws://autoscaler.knative-serving.svc.cluster.local:8080/"


@dataclass(frozen=True)
class KubeOptions:
    """Where the activator's view of the cluster comes from."""

    kubeconfig: str | None = None
    """kubeconfig file; None: ``$KUBECONFIG``, else the in-cluster configuration."""
    namespace: str | None = None
    """Watch Knative objects in this namespace only (None: all)."""
    system_namespace: str = "knative-serving"
    """Namespace of the activator's own Service (for its peers)."""
    activator_service: str = "activator"
    """The activator's own Service: its ready endpoints are this activator's peers."""
    pod_ip: str | None = None
    """This activator's address among the Service's endpoints (None: not known; then this
    activator takes every replica rather than its share)."""
    sync_timeout: float = 60.0
    """Seconds to wait at start for every watch cache to list."""
    control: str | None = None
    """Local mode: ``zeroserve up``'s control API instead of Kubernetes."""
    cluster_domain: str = "cluster.local"
    """The cluster's DNS domain: cluster-local hosts are ``{route}.{ns}.svc.<this>``."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line and exit 1, like every other startup error of this process (argparse
        # would print the whole usage and exit 2).
        self.exit(1, f"activator: {message}\n")


def _number(kind: type[int] | type[float], minimum: float, what: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not math.isfinite(value) or value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value

    return parse


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port in 0..65535 (0: any free port)")
    return port


def _cidr(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an IP network (like 10.0.0.0/8)"
        ) from None


def _ip(text: str) -> str | None:
    if not text:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IP address") from None


def _ws_url(text: str) -> str | None:
    if not text:
        return None  # explicitly empty: send no stats
    parts = urlsplit(text)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{text!r} is not a ws:// or wss:// URL")
    return text


def parse_args(argv: list[str], env: Mapping[str, str]) -> tuple[Settings, KubeOptions]:
    """Settings from the command line (and ``AUTOSCALER_URL``, ``POD_NAME``, ``POD_IP``
    from ``env`` as defaults); a bad value exits 1 naming the flag and the value."""
    d = Settings()
    p = _Parser(
        prog="python -m activator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default=d.host, help=f"listen address (default {d.host})")
    p.add_argument(
        "--port", type=_port, default=d.port, help=f"traffic from the ingress (default {d.port})"
    )
    p.add_argument(
        "--trusted-port",
        type=_port,
        default=None,
        help="a second listener on which Knative-Serving-Revision/-Namespace are trusted",
    )
    p.add_argument(
        "--trusted-cidr",
        type=_cidr,
        action="append",
        default=[],
        metavar="CIDR",
        help="peers whose Knative-Serving-* headers are trusted on --port (repeatable)",
    )
    p.add_argument(
        "--metrics-port",
        type=_port,
        default=d.metrics_port,
        help=f"Prometheus metrics (default {d.metrics_port})",
    )
    p.add_argument(
        "--autoscaler-url",
        type=_ws_url,
        default=env.get("AUTOSCALER_URL", DEFAULT_AUTOSCALER_URL),
        help="the autoscaler's stats websocket; empty: send no stats "
        f"(default $AUTOSCALER_URL, else {DEFAULT_AUTOSCALER_URL})",
    )
    p.add_argument(
        "--pod-name",
        default=env.get("POD_NAME") or d.pod_name,
        help=f"this activator in its stats (default $POD_NAME, else {d.pod_name})",
    )
    p.add_argument(
        "--pod-ip",
        type=_ip,
        default=env.get("POD_IP", ""),
        help="this activator's address among the activator Service's endpoints, "
        "to take its share of replicas (default $POD_IP; none: use all)",
    )
    p.add_argument(
        "--activation-timeout",
        type=_number(float, 1e-3, "a positive number of seconds"),
        default=d.activation_timeout,
        help=f"longest wait for a replica, then 503 (default {d.activation_timeout:g})",
    )
    p.add_argument(
        "--queue-depth",
        type=_number(int, 1, "a positive integer"),
        default=d.queue_depth,
        help=f"requests that may wait per revision (default {d.queue_depth})",
    )
    p.add_argument(
        "--budget",
        type=_number(int, 1, "a positive integer"),
        default=d.budget,
        help=f"requests that may wait across all revisions (default {d.budget})",
    )
    p.add_argument(
        "--max-body-bytes",
        type=_number(int, 0, "an integer >= 0"),
        default=0,
        help="largest request body accepted, else 413 (default 0: no limit)",
    )
    p.add_argument(
        "--reuse-port",
        action="store_true",
        help="share --port with other activators (SO_REUSEPORT); zeroserve up uses it",
    )
    p.add_argument(
        "--drain-seconds",
        type=_number(float, 0, "a number of seconds >= 0"),
        default=d.drain_seconds,
        help=f"after SIGTERM, how long health checks fail before the listeners "
        f"close (default {d.drain_seconds:g})",
    )
    o = KubeOptions()
    p.add_argument(
        "--cluster-domain",
        default="cluster.local",
        help="the cluster's DNS domain, for cluster-local hosts (default cluster.local)",
    )
    p.add_argument(
        "--control",
        metavar="URL",
        help="local mode: follow zeroserve up's control API at URL instead of Kubernetes",
    )
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, else in-cluster)")
    p.add_argument(
        "--namespace", help="watch Knative objects in this namespace only (default: all)"
    )
    p.add_argument(
        "--system-namespace",
        default=o.system_namespace,
        help=f"namespace of the activator Service (default {o.system_namespace})",
    )
    p.add_argument(
        "--activator-service",
        default=o.activator_service,
        help=f"the activator Service, whose endpoints are the peers (default {o.activator_service})",
    )
    p.add_argument(
        "--sync-timeout",
        type=_number(float, 1e-3, "a positive number of seconds"),
        default=o.sync_timeout,
        help=f"seconds to wait for the watch caches at start (default {o.sync_timeout:g})",
    )
    args = p.parse_args(argv)
    settings = Settings(
        host=args.host,
        port=args.port,
        trusted_port=args.trusted_port,
        trusted_cidrs=tuple(args.trusted_cidr),
        metrics_port=args.metrics_port,
        autoscaler_url=args.autoscaler_url,
        pod_name=args.pod_name,
        activation_timeout=args.activation_timeout,
        queue_depth=int(args.queue_depth),
        budget=int(args.budget),
        drain_seconds=args.drain_seconds,
        reuse_port=args.reuse_port,
        limits=Limits(body_buffer=4096, max_body_bytes=int(args.max_body_bytes)),
    )
    options = KubeOptions(
        kubeconfig=args.kubeconfig,
        namespace=args.namespace,
        system_namespace=args.system_namespace,
        activator_service=args.activator_service,
        pod_ip=args.pod_ip,
        sync_timeout=args.sync_timeout,
        control=args.control,
        cluster_domain=args.cluster_domain,
    )
    return settings, options


async def serve_until_signal(activator: Activator, settings: Settings) -> None:
    """Print the bound ports, wait for SIGTERM/SIGINT, drain."""
    print(
        json.dumps({"activator": "listening", **activator.ports, "pod": settings.pod_name}),
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping: draining for %gs", settings.drain_seconds)
    # The sources keep running while draining: requests still waiting for a replica
    # need endpoint updates to get one.
    await activator.shutdown()


async def serve(
    activator: Activator,
    settings: Settings,
    sources: LocalControlSources | KubeActivatorSources,
    synced: Callable[[], Awaitable[object]],
    errors: tuple[type[Exception], ...],
) -> int:
    """Start the sources, wait until ``synced`` (the routes and endpoints are known),
    listen, serve until a signal, drain; exit 1 naming the cause if it cannot start."""
    drained = False
    try:
        sources.start()
        try:
            await synced()
            await activator.start()
        except errors as e:
            print(
                f"activator: cannot start: {e or 'the control plane did not answer in time'}",
                file=sys.stderr,
            )
            return 1
        await serve_until_signal(activator, settings)
        drained = True
        return 0
    finally:
        if not drained:
            await activator.close()
        await sources.stop()


async def run_local(settings: Settings, options: KubeOptions) -> int:
    assert options.control is not None
    activator = Activator(settings)
    async with aiohttp.ClientSession() as session:
        sources = LocalControlSources(options.control, activator, session)
        return await serve(
            activator,
            settings,
            sources,
            lambda: asyncio.wait_for(sources.follower.synced.wait(), options.sync_timeout),
            (TimeoutError, OSError),
        )


async def run(settings: Settings, options: KubeOptions) -> int:
    if options.control:
        return await run_local(settings, options)
    try:
        client = await kube.connect(options.kubeconfig)
    except kube.KubeError as e:
        print(f"activator: {e}", file=sys.stderr)
        return 1
    activator = Activator(settings)
    sources = KubeActivatorSources(
        client,
        activator,
        namespace=options.namespace,
        system_namespace=options.system_namespace,
        pod_ip=options.pod_ip,
        activator_service=options.activator_service,
        cluster_domain=options.cluster_domain,
    )
    try:
        return await serve(
            activator,
            settings,
            sources,
            lambda: sources.wait_synced(options.sync_timeout),
            (kube.KubeError, OSError),
        )
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    settings, options = parse_args(sys.argv[1:] if argv is None else argv, os.environ)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s activator %(levelname)s %(message)s"
    )
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run(settings, options))


if __name__ == "__main__":
    sys.exit(main())
