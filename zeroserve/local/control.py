"""The control API of ``zeroserve up``: on loopback (``--control-host`` to choose), and
every call but ``/healthz`` carries the owner's token (``zeroserve.local.access``);
without it, or with another one, the answer is 401 and nothing changes.

It is the local stand-in for the Kubernetes API server: the CLI applies,
reads and deletes objects here; the activator and the autoscaler (separate
processes, as in a cluster) follow the data-plane state with long-polls and
apply replica counts (``zeroserve.local.protocol``).

| method | path | what |
| --- | --- | --- |
| GET | /v1/state?since=N&wait=S[&client=C][&view=V] | data-plane snapshot once its version passes N (client C has applied N); view V ready or serving: StateHub.wait_past |
| POST | /v1/scale | ``{"namespace", "revision", "replicas"}`` (the autoscaler) |
| POST | /v1/apply | ``{"file", "yaml"}`` -> ``{"lines", "objects"}`` once the activators route by it (at most 2 s), or 422 ``{"errors"}`` |
| POST | /v1/delete | ``{"file", "yaml"}`` -> ``{"lines", "errors"}``: delete what the manifest names |
| DELETE | /v1/objects/{kind}/{namespace}/{name} | delete one object |
| GET | /v1/objects/{kind}?namespace=&name= | Kubernetes-shaped objects (no namespace: all) |
| GET | /v1/table/{kind}?namespace=&name=&wide= | kubectl-style columns (no namespace: all, NAMESPACE first) |
| GET | /v1/synced?within=S | once every activator has applied the current state (``{"synced"}``) |
| GET | /v1/tree/{namespace}/{name} | a Service's object tree |
| GET | /v1/pods | every replica with its status and start timestamps (JSON) |
| GET | /healthz | ok (without the token) |

The live page (``/``, ``/v1/overview``, ``/v1/figures``) is ``zeroserve.local.page``.
``/v1/logs``, ``/v1/events`` and ``/v1/watch`` (``zeroserve logs``, ``get events``,
``describe``, ``get -w``) are in ``zeroserve.local.observe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from zeroserve.api import ManifestErrors, load
from zeroserve.local.access import os_user
from zeroserve.serving.controller import Controller
from zeroserve.serving.kinds import ControllerError, NotFound

from . import access
from .observe import ObserveRoutes
from .page import OPEN_PATHS as PAGE_PATHS
from .page import LivePage
from .protocol import LONG_POLL, READY_VIEW, SCALE_PATH, SERVING_VIEW, STATE_PATH, Snapshot
from .runtime import LocalRuntime
from .state import StateHub

log = logging.getLogger(__name__)

MAX_MANIFEST = 4 << 20
APPLY_SYNC_SECONDS = 2.0
"""How long ``POST /v1/apply`` waits for the activators to apply the new state before it
answers: they follow it by long-poll within milliseconds; the bound is for one that is
restarting."""


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data, indent=None), status=status, content_type="application/json"
    )


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


POD_NAMES = frozenset({"pods", "pod", "po"})
"""kubectl's names of the pods resource (the replicas, served by the hub)."""


def ready_message(obj: dict[str, Any]) -> str:
    """The message of an object's Ready condition when it is not True (kubectl ``-o
    wide``'s MESSAGE); empty when Ready or without one."""
    for c in obj.get("status", {}).get("conditions", ()):
        if c.get("type") == "Ready" and c.get("status") != "True":
            # one table line: the app's last lines run together
            return " ".join(str(c.get("message", "")).split())
    return ""


OPEN_PATHS = frozenset({"/healthz", *PAGE_PATHS})
"""Paths answered without the token (the live page's data checks its own)."""


def unauthorized_message(token_file: str | None) -> str:
    where = (
        f"the token is in {token_file}, readable only by the user who ran `zeroserve up`"
        if token_file
        else "the token is in the file `zeroserve up` printed"
    )
    return (
        "unauthorized: the control API needs 'Authorization: Bearer <token>'; "
        f"{where}; the zeroserve client reads it by itself "
        f"(or give --token, or set {access.CLIENT_TOKEN_ENV})"
    )


def _auth_middleware(token: str, token_file: Callable[[], str | None]) -> Any:
    @web.middleware
    async def check(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path not in OPEN_PATHS and not access.authorized(
            request.headers.get("Authorization"), token
        ):
            response = _error(401, unauthorized_message(token_file()))
            response.headers["WWW-Authenticate"] = 'Bearer realm="zeroserve"'
            return response
        return await handler(request)

    return check


class ControlAPI:
    def __init__(
        self, hub: StateHub, controller: Controller, runtime: LocalRuntime, *, token: str
    ) -> None:
        if not token:
            raise ValueError("the control API needs a token")
        self.hub = hub
        self.controller = controller
        self.runtime = runtime
        self.token = token
        self.token_file: str | None = None
        """Where ``zeroserve up`` wrote the token (named in 401 answers)."""
        self.user = os_user()
        """Who applies: only the user running ``zeroserve up`` holds the token."""
        app = web.Application(
            client_max_size=MAX_MANIFEST,
            middlewares=[_auth_middleware(token, lambda: self.token_file)],
        )
        r = app.router
        r.add_get(STATE_PATH, self.state)
        r.add_post(SCALE_PATH, self.scale)
        r.add_post("/v1/apply", self.apply)
        r.add_post("/v1/delete", self.delete_manifest)
        r.add_delete("/v1/objects/{kind}/{namespace}/{name}", self.delete_object)
        r.add_get("/v1/objects/{kind}", self.objects)
        r.add_get("/v1/table/{kind}", self.table)
        r.add_get("/v1/tree/{namespace}/{name}", self.tree)
        r.add_get("/v1/synced", self.synced)
        r.add_get("/v1/pods", self.pods)
        r.add_get("/v1/standby", self.standby)
        r.add_get("/healthz", self.healthz)
        self.page = LivePage(
            controller=controller,
            pods=lambda: ((p.revision.namespace, p.revision.name, p.ready) for p in runtime.pods()),
            token=token,
            clock=hub.clock,
        )
        self.page.add_routes(r)
        self.observe = ObserveRoutes(hub, controller, runtime, clock=hub.clock)
        """Logs, events and watching (their routes: ``zeroserve.local.observe``)."""
        self.observe.install(app)
        self.app = app

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    # -- data plane ----------------------------------------------------------

    async def state(self, request: web.Request) -> web.Response:
        try:
            since = int(request.query.get("since", "-1"))
            wait = min(float(request.query.get("wait", "0")), LONG_POLL)
        except ValueError:
            return _error(400, "since must be an integer and wait a number")
        client = request.query.get("client", "")
        view = request.query.get("view", "")
        if view not in ("", READY_VIEW, SERVING_VIEW):
            return _error(400, f"view must be {READY_VIEW!r}, {SERVING_VIEW!r} or absent")
        snap: Snapshot = await self.hub.wait_past(since, wait, client=client, view=view)
        return web.Response(text=self.hub.encoded(snap), content_type="application/json")

    async def scale(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            ns, rev, replicas = body["namespace"], body["revision"], body["replicas"]
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise ValueError("replicas must be an integer >= 0")
        except (ValueError, KeyError, TypeError) as e:
            return _error(400, f"bad scale request: {e}")
        from zeroserve.topology import RevisionKey

        if not self.runtime.set_scale(RevisionKey(ns, rev), replicas):
            return _error(404, f"no such revision: {ns}/{rev}")
        return _json({"namespace": ns, "revision": rev, "replicas": replicas})

    # -- objects -------------------------------------------------------------

    async def _manifest(self, request: web.Request) -> tuple[str, str]:
        body = await request.json()
        if not isinstance(body, dict) or not isinstance(body.get("yaml"), str):
            raise ValueError('expected {"file": ..., "yaml": ...}')
        return str(body.get("file") or "-"), body["yaml"]

    async def apply(self, request: web.Request) -> web.Response:
        try:
            file, text = await self._manifest(request)
        except ValueError as e:
            return _error(400, str(e))
        try:
            objects = load(text, file)
            lines = self.controller.apply(objects, now=self.hub.clock(), user=self.user)
        except ManifestErrors as e:
            return _json({"errors": [str(x) for x in e.errors]}, 422)
        self.hub.controller_changed()
        # Answer once the activators route by what was applied (or after a bound, if one
        # is restarting): a request sent right after ``zeroserve apply`` returns must find
        # a new Service's route and be held for its first revision, not get a 404 from an
        # activator a long-poll behind (the README's "request right after apply").
        await self.hub.wait_synced(APPLY_SYNC_SECONDS)
        # What was applied, for ``apply --wait``: the name from each line (one per object,
        # in order), since a ``generateName`` gets its name only here.
        applied = [
            {
                "kind": o.kind,
                "namespace": o.meta.namespace,
                "name": line.split()[0].split("/", 1)[1],
            }
            for o, line in zip(objects, lines, strict=True)
        ]
        return _json({"lines": lines, "objects": applied})

    async def delete_manifest(self, request: web.Request) -> web.Response:
        try:
            file, text = await self._manifest(request)
            objects = load(text, file)
        except ValueError as e:
            return _error(400, str(e))
        except ManifestErrors as e:
            return _json({"errors": [str(x) for x in e.errors]}, 422)
        # As kubectl: each object that is gone is an error of its own (the client prints it
        # on stderr and exits non-zero); the others are deleted all the same.
        lines, errors = [], []
        for obj in objects:
            try:
                lines.append(self.controller.delete(obj.kind, obj.meta.namespace, obj.meta.name))
            except NotFound as e:
                errors.append(str(e))
        self.hub.controller_changed()
        return _json({"lines": lines, "errors": errors})

    async def delete_object(self, request: web.Request) -> web.Response:
        m = request.match_info
        try:
            line = self.controller.delete(m["kind"], m["namespace"], m["name"])
        except NotFound as e:
            return _error(404, str(e))
        except ControllerError as e:
            return _error(400, str(e))
        self.hub.controller_changed()
        return _json({"lines": [line]})

    async def objects(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        ns, name = request.query.get("namespace"), request.query.get("name")
        try:
            if kind.lower() in POD_NAMES:
                items = self.hub.pod_objects(ns, name)
            else:
                items = self.controller.get(kind, ns, name)
        except NotFound as e:
            return _error(404, str(e))
        except ControllerError as e:
            return _error(400, str(e))
        return _json({"items": items})

    async def table(self, request: web.Request) -> web.Response:
        """kubectl's table: a NAMESPACE column first when no namespace is given (``-A``,
        as kubectl prints it even if every row is in one namespace); ``wide`` adds
        kubectl's ``-o wide`` columns: a pod's IP, and the Ready condition's MESSAGE of
        the kinds that have one (what the REASON column abbreviates)."""
        kind = request.match_info["kind"]
        ns, name = request.query.get("namespace"), request.query.get("name")
        wide = request.query.get("wide", "") in ("1", "true")
        try:
            if kind.lower() in POD_NAMES:
                headers, rows = self.hub.pods_table(ns, name, all_namespaces=ns is None, wide=wide)
            else:
                headers, rows = self.controller.table(
                    kind, ns, name, all_namespaces=ns is None, now=self.hub.clock()
                )
                if wide and "REASON" in headers:
                    headers = [*headers, "MESSAGE"]
                    objects = self.controller.get(kind, ns, name)
                    rows = [[*r, ready_message(o)] for r, o in zip(rows, objects, strict=True)]
        except NotFound as e:
            return _error(404, str(e))
        except ControllerError as e:
            return _error(400, str(e))
        return _json({"headers": headers, "rows": rows})

    async def synced(self, request: web.Request) -> web.Response:
        """Answers once every activator has applied the current state (or after
        ``within`` seconds, ``{"synced": false}``): ``zeroserve wait`` asks this after a
        condition is met, so a request sent next finds the new revision routed."""
        try:
            within = min(float(request.query.get("within", "10")), LONG_POLL)
        except ValueError:
            return _error(400, "within must be a number of seconds")
        return _json({"synced": await self.hub.wait_synced(within)})

    async def standby(self, request: web.Request) -> web.Response:
        """What is made ahead for the next replicas (``LocalRuntime.made_ahead``)."""
        return _json(self.runtime.made_ahead())

    async def pods(self, request: web.Request) -> web.Response:
        items = []
        for p in self.runtime.pods():
            e = p.endpoint
            items.append(
                {
                    "name": p.name,
                    "namespace": p.revision.namespace,
                    "revision": p.revision.name,
                    "status": p.status,
                    "ready": p.ready,
                    "restarts": p.restarts,
                    "startedAt": p.started_at,
                    "lastExit": p.last_exit,
                    "times": p.times,
                    "endpoint": None
                    if e is None
                    else {
                        "host": e.host,
                        "port": e.port,
                        "statsPort": e.stats_port,
                        "metricsPort": p.metrics_port,
                    },
                }
            )
        return _json({"items": items})

    async def tree(self, request: web.Request) -> web.Response:
        try:
            data = self.controller.tree(request.match_info["namespace"], request.match_info["name"])
        except NotFound as e:
            return _error(404, str(e))
        return _json(self.hub.tree_with_pods(data))


async def serve(api: ControlAPI, host: str, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(api.app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner, int(runner.addresses[0][1])


async def stop(runner: web.AppRunner) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(runner.cleanup(), 5)
