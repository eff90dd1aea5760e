"""``python -m activator``: the activator as a process.

On Kubernetes it follows the cluster through watch caches (activator/kubernetes.py);
with ``--control URL`` it runs in local mode under ``zeroserve up``, following its
control API (activator/local.py). Either way: parse the flags (activator/config.py),
set up logging and uvloop, start the sources and wait until the routes and endpoints
are known, listen (activator/app.py), print one JSON line with the bound ports, run
until SIGTERM or SIGINT, then drain and exit 0. Any startup error is one line on stderr
and exit code 1.
"""

from __future__ import annotations

import sys

from zeroserve import compiled

# First: the modules ``make compiled`` built are loaded only if nothing imported their
# sources yet (zeroserve/compiled.py).
compiled.install_or_exit("activator")

import asyncio
import json
import logging
import os
import signal
from collections.abc import Awaitable, Callable

import aiohttp
import uvloop

from zeroserve import kube
from zeroserve.envconfig import LOG_LEVEL_ENV, ConfigError, env_log_level
from zeroserve.tracing import TracingUnavailable

from .app import Activator
from .config import KubeOptions, Settings, parse_args
from .kubernetes import KubeActivatorSources
from .local import LocalControlSources

log = logging.getLogger("activator")


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
            (TimeoutError, OSError, TracingUnavailable),
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
            (kube.KubeError, OSError, TracingUnavailable),
        )
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    settings, options = parse_args(sys.argv[1:] if argv is None else argv, os.environ)
    try:
        level = env_log_level(os.environ, LOG_LEVEL_ENV)
    except ConfigError as e:
        print(f"activator: {e}", file=sys.stderr)
        return 1
    logging.basicConfig(level=level, format="%(asctime)s activator %(levelname)s %(message)s")
    logging.getLogger("activator").debug("hot path: %s", compiled.status())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run(settings, options))


if __name__ == "__main__":
    sys.exit(main())
