"""``python -m autoscaler``: the KPA autoscaler as a process.

On Kubernetes it follows the cluster through watch caches and may run for leader
election (``--leader-elect``); with ``--control URL`` it runs in local mode under
``zeroserve up``, following its control API. Either way: parse the flags
(autoscaler/config.py), set up logging and uvloop, check the ``--config`` keys, start
(autoscaler/app.py), print one JSON line with the bound ports, and run until SIGTERM or
SIGINT. Any startup error is one line on stderr and exit code 1.

Losing the leader Lease (another autoscaler took it, or this one could not renew it for
the renew deadline, as when the API server does not answer for a while) stops the
autoscaler's work, its scaling and its listeners, and makes it a standby again in the
same process, with the same identity: when the API answers again and the Lease still
names it, it leads again at the elector's next look (``zeroserve/leader.py``), with fresh
windows. Knative's autoscaler too keeps running and campaigns again when it stops leading
(``cmd/autoscaler/main.go``, knative.dev/pkg's leader elector). Exiting instead cost a
container restart and then a whole lease duration (15 s) before the restarted process,
with a new identity, could take its own predecessor's Lease: half a minute and more
without an autoscaler, during which a revision at zero cannot scale up and the
activator holds its requests (docs/autoscaling.md, "Leader election").
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
from zeroserve.leader import LeaderElector

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


async def run(settings: Settings, stop: asyncio.Event | None = None) -> int:
    """The autoscaler until ``stop`` is set (None: until SIGTERM or SIGINT)."""
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
    if stop is None:
        stop = stop_on_signals()
    elector = leader_elector(client, settings) if settings.leader_elect else None
    try:
        if elector is None:
            return await serve_term(settings, client, stop, None, announce=True)
        return await serve_while_leading(settings, client, elector, stop)
    finally:
        if elector is not None:
            await elector.stop()
        await client.close()


async def serve_while_leading(
    settings: Settings, client: kube.KubeClient, elector: LeaderElector, stop: asyncio.Event
) -> int:
    """One term of leadership after another (module doc): wait to lead, serve until the
    Lease is lost, stop serving, and wait again, until ``stop``."""
    log = logging.getLogger("autoscaler")
    leading, lost = asyncio.Event(), asyncio.Event()

    def changed(now_leading: bool) -> None:
        if now_leading:
            lost.clear()
            leading.set()
        else:
            leading.clear()
            lost.set()

    elector.on_change(changed)
    elector.start()
    announce = True
    while True:
        log.info("waiting to become the leader (%s)", elector)
        await first_of(leading, stop)
        if stop.is_set():
            return 0
        code = await serve_term(settings, client, stop, lost, announce=announce)
        announce = False
        if code != 0 or stop.is_set():
            return code
        log.warning(
            "%s: lost the leadership; stopped scaling and a standby again (it leads again "
            "as soon as it can renew the Lease, if no other autoscaler took it)",
            elector,
        )


async def serve_term(
    settings: Settings,
    client: kube.KubeClient,
    stop: asyncio.Event,
    lost: asyncio.Event | None,
    *,
    announce: bool,
) -> int:
    """A fresh autoscaler serving until ``stop`` (0) or ``lost`` (0, ``stop`` not set);
    1 when it cannot start. ``announce``: print the JSON line with the bound ports."""
    autoscaler = Autoscaler(settings, client)
    try:
        try:
            await autoscaler.start()
        except (kube.KubeError, OSError, TimeoutError) as e:
            print(f"autoscaler: cannot start: {e}", file=sys.stderr)
            return 1
        if announce:
            print(json.dumps({"autoscaler": "listening", **autoscaler.ports}), flush=True)
        await (first_of(stop, lost) if lost is not None else stop.wait())
        if stop.is_set():
            logging.getLogger("autoscaler").info("stopping")
        return 0
    finally:
        await autoscaler.stop()


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
