"""The control API's routes for ``zeroserve logs``, ``get events``, ``describe`` and
``get -w`` (docs/local-mode.md, "Logs and events"), token-protected like the others:

| method | path | what |
| --- | --- | --- |
| GET | /v1/logs/{namespace}/{pod}?container=&sinceSeconds=&tailLines=&follow= | a container's output, as the pod log API's query (text; streamed with ``follow``) |
| GET | /v1/events?namespace=&object=KIND/NAME | the events kept (``object`` repeatable; none: all) |
| GET | /v1/watch?since=N&wait=S | the change count once it is not N (``{"version"}``) |

It also owns the two things behind them: the :class:`~zeroserve.local.podlogs.LogClock`
that stamps the replicas' log files every second, and the
:class:`~zeroserve.local.events.EventWatcher` that turns each published change into
events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from zeroserve.serving.controller import Controller

from . import podlogs
from .events import EventLog, EventWatcher
from .protocol import LONG_POLL
from .replica import QUEUE_PROXY
from .runtime import LocalRuntime, PodView
from .state import StateHub

log = logging.getLogger(__name__)

EVENT_KINDS = ("Service", "Configuration", "Revision", "Route")
"""The kinds whose changes make events (besides pods and replica counts)."""


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


def pod_containers(p: PodView) -> tuple[list[str], list[str]]:
    """(the pod's containers in its spec's order, the queue-proxy last; its init
    containers)."""
    spec = p.pod.spec if p.pod is not None else {}
    names = [str(c["name"]) for c in spec.get("containers", ())]
    inits = [str(c["name"]) for c in spec.get("initContainers", ())]
    if not names and p.pod is not None:
        names = [c.name for c in p.pod.containers]
        inits = [c.name for c in p.pod.init_containers]
    if QUEUE_PROXY not in names:
        names.append(QUEUE_PROXY)
    return names, inits


class ObserveRoutes:
    def __init__(
        self,
        hub: StateHub,
        controller: Controller,
        runtime: LocalRuntime,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.hub = hub
        self.controller = controller
        self.runtime = runtime
        self.clock = clock
        self.log_clock = podlogs.LogClock()
        self.events = EventLog()
        self.watcher = EventWatcher(self.events)
        self._objects: dict[str, list[dict[str, Any]]] = {}
        self._objects_at = -1
        """The controller's objects of ``EVENT_KINDS`` and the commit they are of."""
        hub.observers.append(self.observe)

    def install(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/v1/logs/{namespace}/{pod}", self.logs)
        r.add_get("/v1/events", self.list_events)
        r.add_get("/v1/watch", self.watch)
        app.cleanup_ctx.append(self._sampling)

    # -- events ----------------------------------------------------------------------

    def observe(self) -> None:
        """After each published change: record the events it makes."""
        try:
            # Most changes during a cold start are the replica's alone: the controller's
            # objects are rendered again only when its state changed.
            if self._objects_at != self.controller.commits:
                self._objects = {k: self.controller.get(k, None, None) for k in EVENT_KINDS}
                self._objects_at = self.controller.commits
            objects = dict(self._objects)
            objects["Pod"] = self.hub.pod_objects(None, None)
            scales = {(k.namespace, k.name): n for k, n in self.hub.snapshot.replicas.items()}
            self.watcher.observe(objects, scales, self.clock())
        except Exception:  # an event lost must not stop the publishing it rides on
            log.exception("recording events failed")

    async def list_events(self, request: web.Request) -> web.Response:
        refs = []
        for ref in request.query.getall("object", []):
            kind, sep, name = ref.partition("/")
            if not sep or not kind or not name:
                return _error(
                    400, f"object={ref!r}: expected KIND/NAME (e.g. Revision/hello-00001)"
                )
            refs.append((kind, name))
        items = self.events.list(
            request.query.get("namespace") or None, refs or None, now=self.clock()
        )
        return _json({"items": [e.to_object() for e in items]})

    # -- watch -----------------------------------------------------------------------

    async def watch(self, request: web.Request) -> web.Response:
        try:
            since = int(request.query.get("since", "-1"))
            wait = min(float(request.query.get("wait", "0")), LONG_POLL)
        except ValueError:
            return _error(400, "since must be an integer and wait a number of seconds")
        return _json({"version": await self.hub.wait_change(since, wait)})

    # -- logs ------------------------------------------------------------------------

    def _log_paths(self) -> list[Path]:
        d = self.runtime.log_dir
        if d is None:
            return []
        return [
            d / f"{p.name}-{what}.log" for p in self.runtime.pods() for what in ("app", QUEUE_PROXY)
        ]

    async def _sampling(self, app: web.Application) -> AsyncIterator[None]:
        """Stamp the log files every second while the API serves."""

        async def run() -> None:
            while True:
                self.log_clock.sample(self._log_paths(), self.clock())
                await asyncio.sleep(podlogs.SAMPLE_SECONDS)

        task = asyncio.create_task(run(), name="log-clock")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def _pod(self, namespace: str, name: str) -> PodView | None:
        return next(
            (
                p
                for p in self.runtime.pods()
                if p.name == name and p.revision.namespace == namespace
            ),
            None,
        )

    async def logs(self, request: web.Request) -> web.StreamResponse:
        ns, name = request.match_info["namespace"], request.match_info["pod"]
        q = request.query
        try:
            since = float(q["sinceSeconds"]) if q.get("sinceSeconds") else None
            tail = int(q["tailLines"]) if q.get("tailLines") else None
        except ValueError:
            return _error(400, "sinceSeconds must be a number and tailLines an integer")
        follow = q.get("follow", "") in ("1", "true")
        pod = self._pod(ns, name)
        if pod is None:
            return _error(404, f'pods "{name}" not found')
        names, inits = pod_containers(pod)
        container = q.get("container") or names[0]
        if container not in names and container not in inits:
            return _error(
                400,
                f"container {container} is not valid for pod {name}; choose one of: "
                f"[{' '.join(names)}] or one of the init containers: [{' '.join(inits)}]"
                if inits
                else f"container {container} is not valid for pod {name}; "
                f"choose one of: [{' '.join(names)}]",
            )
        if self.runtime.log_dir is None:
            return _error(400, "this zeroserve up keeps no logs")
        what = QUEUE_PROXY if container == QUEUE_PROXY else "app"
        path = self.runtime.log_dir / f"{name}-{what}.log"
        if not path.exists():
            if pod.status == "Running":
                return web.Response(text="", content_type="text/plain")
            return _error(
                400, f'container "{container}" in pod "{name}" is waiting to start: {pod.status}'
            )
        shared = [n for n in [*inits, *names] if n != QUEUE_PROXY] if what == "app" else []
        self.log_clock.sample(self._log_paths(), self.clock())
        start = podlogs.start_offset(
            path,
            self.log_clock,
            since=None if since is None else self.clock() - since,
            tail=tail,
        )
        response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        if len(shared) > 1:
            # locally they write one file (docs/local-mode.md, "Logs and events")
            response.headers["X-Zeroserve-Shared-Log"] = ",".join(shared)
        await response.prepare(request)
        data, offset = podlogs.read_from(path, start, partial=not follow)
        try:
            await response.write(data)
            while follow and self._pod(ns, name) is not None:
                transport = request.transport
                if transport is None or transport.is_closing():
                    return response  # the client went away (Ctrl-C)
                await asyncio.sleep(podlogs.FOLLOW_POLL_SECONDS)
                data, offset = await asyncio.to_thread(
                    podlogs.read_from, path, offset, partial=False
                )
                if data:
                    await response.write(data)
            await response.write_eof()
        except ConnectionError:
            pass  # the client went away between two writes
        return response
