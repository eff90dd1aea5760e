"""``python -m controller``: the controller on Kubernetes, until SIGTERM (see ``app``).

Reconciles ``serving.knative.dev/v1`` Services, Configurations, Routes and Revisions:
Revisions, Deployments with the queue-proxy sidecar, private Services, Istio
VirtualServices and Knative status. (Locally, ``zeroserve up`` runs the same Knative
semantics, ``zeroserve/serving``, in its own process.) ``zeroserve controller`` is an
alias. The only place that turns a startup error into an exit code: 1 with one line
naming the cause (no kubeconfig, an unreachable API, caches that did not sync and why)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys

import uvloop

from zeroserve import kube
from zeroserve.envconfig import LOG_LEVEL_ENV, ConfigError, env_log_level

from .app import KubeController
from .config import Settings, add_arguments, settings_from

log = logging.getLogger("controller")


async def run(settings: Settings) -> int:
    try:
        client = await kube.connect(settings.kubeconfig)
    except kube.KubeError as exc:
        print(f"controller: {exc}", file=sys.stderr)
        return 1
    controller = KubeController(client, settings)
    try:
        try:
            await controller.start()
        except (kube.KubeError, OSError) as exc:
            print(f"controller: cannot start: {exc}", file=sys.stderr)
            return 1
        print(
            json.dumps(
                {
                    "controller": "running",
                    "metrics_port": controller.metrics_port,
                    "leader_elect": settings.leader_elect,
                }
            ),
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("stopping")
        return 0
    finally:
        await controller.stop()
        await client.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m controller",
        description="Reconcile serving.knative.dev/v1 Services, Configurations, Routes and "
        "Revisions in a cluster: Revisions, Deployments with the queue-proxy sidecar, private "
        "Services, Istio VirtualServices and Knative status. Runs until SIGTERM.",
    )
    add_arguments(p)
    settings = settings_from(p.parse_args(sys.argv[1:] if argv is None else argv))
    try:
        level = env_log_level(os.environ, LOG_LEVEL_ENV)
    except ConfigError as e:
        print(f"controller: {e}", file=sys.stderr)
        return 1
    logging.basicConfig(level=level, format="%(asctime)s controller %(levelname)s %(message)s")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run(settings))


if __name__ == "__main__":
    sys.exit(main())
