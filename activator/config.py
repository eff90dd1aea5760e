"""The activator's settings: what ``python -m activator`` is told on its command line.

:class:`Settings` is what the activator itself runs with (listeners, queues, timeouts,
its stats); :class:`KubeOptions` is where its view of the routes and replicas comes
from (the Kubernetes API, or ``zeroserve up``'s control API with ``--control URL``).
:func:`parse_args` reads both from the flags, with ``AUTOSCALER_URL``, ``POD_NAME`` and
``POD_IP`` from the environment as defaults, and checks every value at start: a bad one
is one line on stderr naming the flag and the value, and exit code 1.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NoReturn
from urllib.parse import urlsplit

from zeroserve.http.exchange import Limits

DEFAULT_AUTOSCALER_URL = "ws://autoscaler.knative-serving.svc.cluster.local:8080/"


@dataclass(frozen=True)
class Settings:
    """The activator's settings; all but ``probe_interval`` and ``limits.body_buffer`` are
    command-line options of ``python -m activator``."""

    host: str = "0.0.0.0"
    """Address of every listener."""
    port: int = 8012
    """Traffic from the ingress (0 = any free port)."""
    local_port: int | None = None
    """The cluster-local gateway's listener: it serves the routes' cluster-local names
    (and the main port then serves only their public hosts, 404 for any cluster-local
    one). None: the main port serves every host (Kubernetes: Istio's two gateways keep
    them apart)."""
    ingress: bool = False
    """This activator is the ingress (``zeroserve up``): it sets ``X-Forwarded-Proto`` as
    Knative's ingress does. Behind Istio the gateway sets it."""
    trusted_port: int | None = None
    """A second listener on which ``Knative-Serving-Revision/-Namespace`` are trusted."""
    trusted_cidrs: tuple[str, ...] = ()
    """Peers whose ``Knative-Serving-*`` headers are trusted on the main listener."""
    metrics_port: int = 9090
    metrics_host: str | None = None
    """Address of the Prometheus listener; None: ``host``. ``zeroserve up --host 0.0.0.0``
    keeps it on loopback: only the ingress listeners leave it."""
    """Prometheus ``/metrics`` (0 = any free port)."""
    autoscaler_url: str | None = None
    """``ws://<autoscaler>:8080/``; None: stats are not sent."""
    pod_name: str = "activator"
    """This activator's name in the stats it sends."""

    @property
    def tracing_resource(self) -> dict[str, str]:
        """The OpenTelemetry resource of its spans: ``service.name`` is the component, as
        Knative's activator (knative/serving ``pkg/observability/otel/otel.go``)."""
        return {
            "service.name": "activator",
            "service.instance.id": self.pod_name,
            "k8s.pod.name": self.pod_name,
            "k8s.container.name": "activator",
        }

    activation_timeout: float = 120.0
    """Longest wait for a replica; then 503 + Retry-After (config ``activation-timeout``)."""
    queue_depth: int = 10_000
    """Requests that may wait per revision (upstream's breaker queue depth)."""
    budget: int = 10_000
    """Requests that may wait across all revisions."""
    drain_seconds: float = 45.0
    """After SIGTERM: how long health checks fail before the listeners close."""
    reuse_port: bool = False
    """Share the traffic port with other activators (SO_REUSEPORT; local mode)."""
    probe_interval: float = 0.05
    """Seconds between health probes of a replica not yet seen healthy."""
    limits: Limits = field(default_factory=lambda: Limits(body_buffer=4096))
    """A waiting request's body is read ahead at most ``body_buffer`` bytes."""


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


DESCRIPTION = """\
``python -m activator``: the activator, on Kubernetes (activator/kubernetes.py) or, with
``--control URL``, in local mode under ``zeroserve up`` (activator/local.py).

Parses and checks the flags, connects to the cluster (or the control API), waits until
the routes and endpoints are known (so the first request already sees every route),
listens, prints one JSON line with the bound ports, and runs until SIGTERM or SIGINT;
then drains (``--drain-seconds`` of failing health checks, then in-flight requests
finish) and exits 0. Any startup error is one line on stderr and exit code 1.
"""


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
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default=d.host, help=f"listen address (default {d.host})")
    p.add_argument(
        "--port", type=_port, default=d.port, help=f"traffic from the ingress (default {d.port})"
    )
    p.add_argument(
        "--local-port",
        type=_port,
        default=None,
        help="a listener for cluster-local hosts (the local gateway); --port then serves "
        "only public hosts (default: none, --port serves every host)",
    )
    p.add_argument(
        "--ingress",
        action="store_true",
        help="act as the ingress: set X-Forwarded-Proto on what is forwarded (zeroserve up "
        "passes it; behind Istio the gateway sets it)",
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
        "--metrics-host",
        default=None,
        help="address of the metrics listener (default: --host)",
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
        local_port=args.local_port,
        ingress=args.ingress,
        trusted_port=args.trusted_port,
        trusted_cidrs=tuple(args.trusted_cidr),
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
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
