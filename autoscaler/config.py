"""The autoscaler's settings: what ``python -m autoscaler`` is told on its command line.

:class:`Settings` holds where revisions, pods and config come from (the Kubernetes API,
or ``zeroserve up``'s control API with ``--control URL``), the listeners, the
``config-autoscaler`` keys given with ``--config`` and leader election.
:func:`parse_args` reads them from the flags; a malformed flag is argparse's usage
message and exit code 2. The ``--config`` values themselves are checked at start by
:meth:`Settings.autoscaler_config`, before anything connects.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field

from zeroserve.autoscaling.config import AutoscalerConfig


@dataclass(frozen=True)
class Settings:
    """Command-line settings (see ``python -m autoscaler --help``)."""

    control: str | None = None
    """Local mode: ``zeroserve up``'s control API instead of Kubernetes."""
    kubeconfig: str | None = None
    """kubeconfig file; None: ``$KUBECONFIG``, else the in-cluster configuration."""
    namespace: str | None = None
    """Watch only this namespace (default: all)."""
    system_namespace: str = "knative-serving"
    """Where config-autoscaler and config-deployment live."""
    host: str = "0.0.0.0"
    """Address of both listeners (in local mode, ``--control``, loopback unless given)."""
    port: int = 8080
    """The activators' stats websocket."""
    metrics_port: int = 9090
    """Prometheus ``/metrics``."""
    overrides: Mapping[str, str] = field(default_factory=dict)
    """config-autoscaler keys given on the command line; they win over the ConfigMap."""
    sync_timeout: float = 60.0
    """Seconds to wait at start for the caches (or the control API's first snapshot)."""
    leader_elect: bool = False
    """Act only while holding the Lease ``zeroserve-autoscaler`` in the system namespace
    (a standby waits for it without listening); off in local mode."""

    def autoscaler_config(self) -> AutoscalerConfig:
        """The ``--config`` keys over the defaults; a bad one raises ``ConfigError`` naming
        the key and the value."""
        return AutoscalerConfig.from_mapping(dict(self.overrides))


DESCRIPTION = """\
``python -m autoscaler``: the KPA autoscaler, on Kubernetes or, with --control URL, in
local mode under zeroserve up (see autoscaler/app.py)."""


def parse_args(argv: list[str]) -> Settings:
    """Settings from the command line; a malformed flag exits 2 with argparse's usage message,
    as does ``--leader-elect`` together with ``--control``."""
    p = argparse.ArgumentParser(prog="python -m autoscaler", description=DESCRIPTION)
    p.add_argument(
        "--control",
        metavar="URL",
        help="local mode: follow zeroserve up's control API at URL instead of Kubernetes",
    )
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, else in-cluster)")
    p.add_argument("--namespace", help="watch only this namespace (default: all)")
    p.add_argument(
        "--system-namespace",
        default="knative-serving",
        help="namespace of config-autoscaler and config-deployment (default knative-serving)",
    )
    p.add_argument(
        "--host",
        help="address of the stats websocket and the metrics (default 0.0.0.0; with "
        "--control, 127.0.0.1: locally only the activators call them)",
    )
    p.add_argument(
        "--port", type=int, default=8080, help="activator stats websocket (default 8080)"
    )
    p.add_argument(
        "--metrics-port", type=int, default=9090, help="Prometheus metrics (default 9090)"
    )
    p.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config-autoscaler key, overriding the ConfigMap (repeatable)",
    )
    p.add_argument(
        "--sync-timeout", type=float, default=60.0, help="seconds to wait for the caches at start"
    )
    p.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="act only while holding the Lease zeroserve-autoscaler in the system "
        "namespace; a standby waits without listening (default off; not in local mode)",
    )
    args = p.parse_args(argv)
    if args.control and args.leader_elect:
        p.error("--leader-elect needs Kubernetes: local mode (--control) runs one autoscaler")
    overrides = {}
    for item in args.config:
        key, sep, value = item.partition("=")
        if not sep or not key:
            p.error(f"--config {item!r}: expected KEY=VALUE")
        overrides[key] = value
    return Settings(
        control=args.control,
        kubeconfig=args.kubeconfig,
        namespace=args.namespace,
        system_namespace=args.system_namespace,
        host=args.host or ("127.0.0.1" if args.control else "0.0.0.0"),
        port=args.port,
        metrics_port=args.metrics_port,
        overrides=overrides,
        sync_timeout=args.sync_timeout,
        leader_elect=args.leader_elect,
    )
