"""``zeroserve controller``: run the in-cluster controller until SIGTERM (see ``app``).

The only place that turns a startup error into an exit code: 1 with one line naming the
cause (no kubeconfig, an unreachable API, caches that did not sync and why)."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys

from zeroserve import kube
from zeroserve.kubecontroller.app import KubeController
from zeroserve.kubecontroller.config import Settings, add_arguments, settings_from

log = logging.getLogger("zeroserve.controller")

__all__ = ["add_arguments", "run", "settings_from"]


async def run(settings: Settings) -> int:
    try:
        client = await kube.connect(settings.kubeconfig)
    except kube.KubeError as exc:
        print(f"zeroserve controller: {exc}", file=sys.stderr)
        return 1
    controller = KubeController(client, settings)
    try:
        try:
            await controller.start()
        except (kube.KubeError, OSError) as exc:
            print(f"zeroserve controller: cannot start: {exc}", file=sys.stderr)
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
