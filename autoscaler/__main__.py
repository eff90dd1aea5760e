"""``python -m autoscaler``: the KPA autoscaler as a process.

On Kubernetes it follows the cluster through watch caches and may run for leader
election (``--leader-elect``); with ``--control URL`` it runs in local mode under
``zeroserve up``, following its control API. Either way: parse the flags
(autoscaler/config.py), set up logging and uvloop, check the ``--config`` keys, start
(autoscaler/app.py), print one JSON line with the bound ports, and run until SIGTERM or
SIGINT. Any startup error is one line on stderr and exit code 1; so is losing the
leader Lease.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys

import uvloop

from zeroserve import kube
from zeroserve.envconfig import LOG_LEVEL_ENV, ConfigError, env_log_level

from .app import Autoscaler, LocalAutoscaler, leader_elector
from .config import Settings, parse_args


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
            settings.autoscaler_config()
        except ConfigError as e:
            print(f"autoscaler: {e}", file=sys.stderr)
            return 1
        return await run_local(settings)
    try:
        settings.autoscaler_config()  # fail fast on a bad --config
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
    try:
        level = env_log_level(os.environ, LOG_LEVEL_ENV)
    except ConfigError as e:
        print(f"autoscaler: {e}", file=sys.stderr)
        return 1
    logging.basicConfig(level=level, format="%(asctime)s autoscaler %(levelname)s %(message)s")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run(settings))


if __name__ == "__main__":
    sys.exit(main())
