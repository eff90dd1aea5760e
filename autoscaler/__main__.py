"""``python -m autoscaler``: the KPA autoscaler on Kubernetes (see autoscaler/app.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys

import uvloop

from zeroserve import kube
from zeroserve.autoscaling.config import AutoscalerConfig
from zeroserve.envconfig import ConfigError

from .app import Autoscaler, LocalAutoscaler, Settings, leader_elector


def parse_args(argv: list[str]) -> Settings:
    p = argparse.ArgumentParser(prog="python -m autoscaler", description=__doc__)
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
    p.add_argument("--host", default="0.0.0.0")
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
        host=args.host,
        port=args.port,
        metrics_port=args.metrics_port,
        overrides=overrides,
        sync_timeout=args.sync_timeout,
        leader_elect=args.leader_elect,
    )


async def run_local(settings: Settings) -> int:
    assert settings.control is not None
    autoscaler = LocalAutoscaler(settings, settings.control)
    try:
        try:
            await autoscaler.start()
        except (OSError, TimeoutError, ConfigError) as e:
            print(
                f"autoscaler: cannot start: {e or 'the control API did not answer in time'}",
                file=sys.stderr,
            )
            return 1
        return await serve_until_signal(autoscaler.ports)
    finally:
        await autoscaler.stop()


async def serve_until_signal(ports: dict[str, int]) -> int:
    print(json.dumps({"autoscaler": "listening", **ports}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logging.getLogger("autoscaler").info("stopping")
    return 0


def stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def first_of(*events: asyncio.Event) -> None:
    """Wait until one of ``events`` is set."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


async def run(settings: Settings) -> int:
    if settings.control:
        try:
            AutoscalerConfig.from_mapping(dict(settings.overrides))
        except ConfigError as e:
            print(f"autoscaler: {e}", file=sys.stderr)
            return 1
        return await run_local(settings)
    try:
        AutoscalerConfig.from_mapping(dict(settings.overrides))  # fail fast on a bad --config
        client = await kube.connect(settings.kubeconfig)
    except (ConfigError, kube.KubeError) as e:
        print(f"autoscaler: {e}", file=sys.stderr)
        return 1
    autoscaler = Autoscaler(settings, client)
    elector = leader_elector(client, settings) if settings.leader_elect else None
    lost = asyncio.Event()
    try:
        stop = stop_on_signals()
        if elector is not None:
            leading = asyncio.Event()
            elector.on_change(lambda now_leading: (leading if now_leading else lost).set())
            elector.start()
            logging.getLogger("autoscaler").info("waiting to become the leader (%s)", elector)
            await first_of(leading, stop)
            if stop.is_set():
                return 0
        try:
            await autoscaler.start()
        except (kube.KubeError, OSError, TimeoutError) as e:
            print(f"autoscaler: cannot start: {e}", file=sys.stderr)
            return 1
        print(json.dumps({"autoscaler": "listening", **autoscaler.ports}), flush=True)
        await first_of(stop, lost)
        if lost.is_set() and not stop.is_set():
            # Exit rather than linger: the pod restarts as a standby with fresh windows.
            print(
                "autoscaler: lost the leader Lease; exiting so that one autoscaler decides",
                file=sys.stderr,
            )
            return 1
        logging.getLogger("autoscaler").info("stopping")
        return 0
    finally:
        await autoscaler.stop()
        if elector is not None:
            await elector.stop()
        await client.close()


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s autoscaler %(levelname)s %(message)s"
    )
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run(settings))


if __name__ == "__main__":
    sys.exit(main())
