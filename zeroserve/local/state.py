"""Where the controller, the local runtime and the data plane's view meet.

The controller says which revisions exist and how traffic goes; the runtime
runs replicas and says how they are doing; the data plane (activator and
autoscaler processes) reads one ``Snapshot`` of both. ``StateHub`` moves
changes between them: new revisions go to the runtime (started at their
initial scale), replica states go back into the controller's status, and
every change publishes a new snapshot version to the long-polls waiting for
one (coalesced per event-loop turn).

Some changes are due at a time rather than on an event: a gradual rollout's next
step, a revision becoming old enough to collect. After every publish the hub asks
the controller when it next wants to run (``next_wakeup(now)``) and, at that time,
calls ``tick(now)`` and publishes what changed, as the in-cluster controller
re-queues a key with a delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from zeroserve.autoscaling.annotations import RevisionAutoscaling
from zeroserve.autoscaling.config import AutoscalerConfig
from zeroserve.serving.controller import Controller
from zeroserve.serving.kinds import NotFound
from zeroserve.topology import RevisionKey

from .protocol import READY_VIEW, SERVING_VIEW, Snapshot
from .runtime import LocalRuntime, PodView, RevisionRun

MIN_WAKEUP_DELAY = 0.05
"""Seconds between two ticks at least, should the controller keep saying one is due now."""


class _Timed(Protocol):
    def next_wakeup(self, now: float) -> float | None: ...

    def tick(self, now: float) -> None: ...


def _age(seconds: float) -> str:
    s = int(max(0, seconds))
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    return f"{s // 3600}h"


class StateHub:
    def __init__(self, controller: Controller, clock: Callable[[], float] = time.time) -> None:
        self.controller = controller
        self.clock = clock
        self.runtime: LocalRuntime | None = None
        self.snapshot = Snapshot(version=0)
        self._seen: dict[str, int] = {}
        """client -> the latest snapshot version it has applied (from its polls)."""
        self._seen_changed = asyncio.Event()
        self._changed = asyncio.Event()
        self._scheduled = False
        self._known: set[RevisionKey] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        """The clock time the timer is set for."""
        self._closed = False
        self._last_tick = float("-inf")
        self.observers: list[Callable[[], None]] = []
        """Called after every change is published (the events' watcher)."""
        self.changes = 0
        """Counts every change of objects or replicas (``zeroserve get -w`` follows it;
        the snapshot's version moves only when the data plane's view does)."""
        self._any_change = asyncio.Event()
        self._encoded: dict[str, tuple[Snapshot, str]] = {}
        """view -> (the latest snapshot of it served, its JSON)."""
        self.ready_snapshot = Snapshot(version=0)
        """The ``ready`` view: the snapshot with only the ready endpoints (a revision with
        none has no entry), its own version moving only when that view changes
        (``wait_past(view=READY_VIEW)``)."""
        self._ready_changed = asyncio.Event()
        self._serving_at = 0
        """The version at which the ``serving`` view last changed."""
        self._serving_key: tuple[object, ...] | None = None
        self._serving_changed = asyncio.Event()
        self._views: dict[str, str] = {}
        """client -> the view it follows."""

    def attach(self, runtime: LocalRuntime) -> None:
        self.runtime = runtime
        self.controller_changed()

    # -- changes in -----------------------------------------------------------

    def controller_changed(self) -> None:
        """Objects were applied or deleted: run what exists, publish."""
        rt = self.runtime
        if rt is None:
            return
        desired = self.controller.revisions()
        runs = {}
        for key, d in desired.items():
            c = d.container
            runs[key] = RevisionRun(
                info=d.info,
                command=tuple(c.command),
                args=tuple(c.args),
                readiness_probe=c.readiness_probe,
                working_dir=c.working_dir or None,
                # env and envFrom are resolved at each replica start, from the objects
                # applied then (``controller.lookup``), as the kubelet does.
                template=d.template,
                container_name=c.name,
            )
        rt.set_revisions(runs)
        rt.objects_changed()
        config = self._autoscaler_config()
        for key in runs.keys() - self._known:
            # A new revision starts at its initial scale, as its Deployment is
            # created; the autoscaler takes over from there.
            info = runs[key].info
            a = RevisionAutoscaling.read(
                info.annotations, config, container_concurrency=info.container_concurrency
            )
            rt.set_scale(key, max(a.initial_scale, a.min_scale if info.reachable else 0))
        self._known = set(runs)
        self._publish()

    def runtime_changed(self) -> None:
        """A replica started, got ready, crashed or stopped."""
        self._publish()

    def _autoscaler_config(self) -> AutoscalerConfig:
        try:
            return AutoscalerConfig.from_mapping(self.controller.config_data("config-autoscaler"))
        except ValueError:
            return AutoscalerConfig()  # validated at apply; never expected here

    # -- publishing -----------------------------------------------------------

    def _publish(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._build)

    def _build(self) -> None:
        self._scheduled = False
        rt = self.runtime
        if rt is None:
            return
        rt.set_observability(self.controller.configs.observability)
        now = self.clock()
        for key, st in rt.states().items():
            self.controller.set_revision_state(
                key,
                ready=st.ready,
                reason=st.reason,
                message=st.message,
                desired_replicas=st.desired,
                actual_replicas=st.actual,
                now=now,
            )
        desired = self.controller.revisions()
        states = rt.states()
        infos = {}
        for k, d in desired.items():
            state = states.get(k)
            if state is not None and state.ready is False:
                # the activator tells requests that wait in vain why
                failure = ": ".join(x for x in (state.reason, state.message) if x)
                infos[k] = replace(d.info, failure=failure, backing_off=state.backing_off)
            else:
                infos[k] = d.info
        snap = Snapshot(
            version=self.snapshot.version,
            revisions=infos,
            routes=tuple(self.controller.routing_table()),
            endpoints={k: tuple(v) for k, v in rt.endpoints().items() if k in desired},
            replicas={k: n for k in desired if (n := rt.scale(k)) is not None},
            autoscaler_config=self.controller.config_data("config-autoscaler"),
            deployment_config=self.controller.config_data("config-deployment"),
            observability_config=self.controller.config_data("config-observability"),
            tracing_config=self.controller.config_data("config-tracing"),
            tag_header_routing=self.controller.configs.features.enabled("tag-header-based-routing"),
        )
        if snap != self.snapshot:
            self.snapshot = Snapshot(**{**snap.__dict__, "version": self.snapshot.version + 1})
            self._changed.set()
            self._changed = asyncio.Event()
            serving = (
                snap.revisions,
                snap.routes,
                snap.endpoints,
                snap.tag_header_routing,
                snap.observability_config,
                snap.tracing_config,
            )
            if serving != self._serving_key:
                self._serving_key = serving
                self._serving_at = self.snapshot.version
                self._serving_changed.set()
                self._serving_changed = asyncio.Event()
            ready = Snapshot(
                **{
                    **snap.__dict__,
                    "version": self.ready_snapshot.version,
                    # a revision without a ready endpoint has none here
                    "endpoints": {
                        k: ready_eps
                        for k, eps in snap.endpoints.items()
                        if (ready_eps := tuple(e for e in eps if e.ready))
                    },
                }
            )
            if ready != self.ready_snapshot:
                self.ready_snapshot = replace(ready, version=ready.version + 1)
                self._ready_changed.set()
                self._ready_changed = asyncio.Event()
        self.changes += 1
        self._any_change.set()
        self._any_change = asyncio.Event()
        for observe in self.observers:
            observe()
        self._schedule_wakeup(now)

    # -- timed reconciles -------------------------------------------------------

    def _timed(self) -> _Timed | None:
        c = self.controller
        if callable(getattr(c, "next_wakeup", None)) and callable(getattr(c, "tick", None)):
            return c
        return None

    def _schedule_wakeup(self, now: float) -> None:
        """(Re)set the timer to the controller's next wakeup (none: no timer)."""
        timed = self._timed()
        if timed is None or self._closed:
            return
        at = timed.next_wakeup(now)
        if at == self._timer_at and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at is None:
            return
        loop = asyncio.get_running_loop()
        # Should the controller keep saying "now" after a tick, do not spin.
        delay = max(at - now, self._last_tick + MIN_WAKEUP_DELAY - loop.time(), 0.0)
        self._timer = loop.call_later(delay, self._wake)

    def _wake(self) -> None:
        self._timer = None
        self._timer_at = None
        timed = self._timed()
        if timed is None or self._closed:
            return
        self._last_tick = asyncio.get_running_loop().time()
        now = self.clock()
        timed.tick(now)
        # tick may have created or removed revisions (a rollout step changes only the
        # traffic; GC deletes): run what exists and publish, as after an apply.
        self.controller_changed()
        self._schedule_wakeup(now)

    def encoded(self, snap: Snapshot) -> str:
        """``snap`` as the JSON text the control API serves, encoded once for every
        activator and autoscaler that polls for it (each view's latest kept)."""
        view = READY_VIEW if snap is self.ready_snapshot else ""
        cached = self._encoded.get(view)
        if cached is None or cached[0] is not snap:
            cached = (snap, json.dumps(snap.to_json()))
            self._encoded[view] = cached
        return cached[1]

    async def wait_past(
        self, since: int, wait: float, *, client: str = "", view: str = ""
    ) -> Snapshot:
        """The snapshot as soon as its version is not ``since`` (or after ``wait``).
        A named ``client`` polling with ``since`` has applied that version.

        ``view`` ``ready`` (``READY_VIEW``): the ``ready_snapshot`` instead, with its own
        versions: a poller that reads only ready endpoints (the autoscaler) is not woken
        when a replica starts listening, only when it is ready (docs/local-mode.md, "Cold
        start CPU"). ``serving`` (``SERVING_VIEW``): the whole snapshot, but a poll waits
        on while nothing the activator reads changed since ``since`` (a new replica
        count alone does not answer it); such a client has applied the versions it was
        not sent (``wait_applied``)."""
        if view == READY_VIEW:
            if self.ready_snapshot.version == since and wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._ready_changed.wait(), wait)
            return self.ready_snapshot
        if view not in ("", SERVING_VIEW):
            raise ValueError(
                f"view must be {READY_VIEW!r}, {SERVING_VIEW!r} or empty, not {view!r}"
            )
        if client:
            self._views[client] = view
        if client and since >= 0:
            self._seen[client] = max(since, self._seen.get(client, -1))
            self._seen_changed.set()
            self._seen_changed = asyncio.Event()
        if view == SERVING_VIEW:
            # nothing of this view changed since ``since`` (a version from elsewhere,
            # such as before a restart, is answered at once, as in the whole view)
            if self._serving_at <= since <= self.snapshot.version and wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._serving_changed.wait(), wait)
        elif self.snapshot.version == since and wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), wait)
        return self.snapshot

    def _applied(self, client: str, target: int) -> bool:
        """Whether ``client`` has applied version ``target`` or what equals it in its
        view (a ``serving`` follower is not sent versions that change nothing of it)."""
        seen = self._seen.get(client, -1)
        if seen >= target:
            return True
        return self._views.get(client) == SERVING_VIEW and self._serving_at <= seen

    async def wait_change(self, since: int, wait: float) -> int:
        """The change count as soon as it is not ``since`` (or after ``wait``)."""
        if self.changes == since and wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._any_change.wait(), wait)
        return self.changes

    async def wait_applied(self, clients: list[str], within: float) -> bool:
        """Wait until every client in ``clients`` has applied the current snapshot (or a
        later one); False after ``within`` seconds. Publishing is coalesced to the next
        loop turn, so changes made just before count."""
        await asyncio.sleep(0)
        target = self.snapshot.version
        try:
            async with asyncio.timeout(within):
                while not all(self._applied(c, target) for c in clients):
                    await self._seen_changed.wait()
        except TimeoutError:
            return False
        return True

    async def wait_synced(self, within: float) -> bool:
        """``wait_applied`` for every client that has polled so far (the activators)."""
        return await self.wait_applied(list(self._seen), within)

    def release_waiters(self) -> None:
        self._changed.set()
        self._ready_changed.set()
        self._serving_changed.set()
        self._any_change.set()

    def close(self) -> None:
        """No more timed reconciles; long-polls return."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.release_waiters()

    # -- views ------------------------------------------------------------------

    def _pods(self, namespace: str | None, name: str | None) -> list[PodView]:
        """The replicas in ``namespace`` (None: all), ``name`` naming one or a revision;
        a ``name`` that names none raises ``NotFound`` (``Error from server (NotFound):
        pods "x" not found``, as kubectl)."""
        rt = self.runtime
        found = [
            p
            for p in (rt.pods() if rt is not None else [])
            if p.pod is not None
            and not (namespace and p.revision.namespace != namespace)
            and not (name and p.name != name and p.revision.name != name)
        ]
        if name and not found:
            raise NotFound(f'pods "{name}" not found in namespace {namespace or "default"}')
        # in the API server's order (by namespace, then name), as kubectl lists them
        return sorted(found, key=lambda p: (p.revision.namespace, p.name))

    def pods_table(
        self,
        namespace: str | None,
        name: str | None,
        *,
        all_namespaces: bool = False,
        wide: bool = False,
    ) -> tuple[list[str], list[list[str]]]:
        """``kubectl get pods``: READY counts the app, the sidecars and the queue-proxy;
        STATUS and RESTARTS follow kubectl's rules (``zeroserve.local.podstatus``).
        ``all_namespaces`` (``-A``) puts a NAMESPACE column first; ``wide`` adds the
        pod's IP, as ``-o wide`` does."""
        now = self.clock()
        headers = ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        rows = []
        for p in self._pods(namespace, name):
            assert p.pod is not None
            row = [
                p.name,
                p.pod.ready_column(),
                p.status,
                p.pod.restarts_column(now),
                _age(now - p.started_at),
            ]
            if wide:
                row.append(p.pod.pod_ip or "<none>")
            if all_namespaces:
                row.insert(0, p.revision.namespace)
            rows.append(row)
        if wide:
            headers.append("IP")
        if all_namespaces:
            headers.insert(0, "NAMESPACE")
        return headers, rows

    def pod_objects(self, namespace: str | None, name: str | None) -> list[dict[str, Any]]:
        """The replicas as Pod objects (``zeroserve get pods -o yaml``)."""
        return [p.pod.to_object() for p in self._pods(namespace, name) if p.pod is not None]

    def tree_with_pods(self, tree: dict[str, Any]) -> dict[str, Any]:
        """Adds the replicas under each revision of a controller tree."""
        rt = self.runtime
        pods = rt.pods() if rt is not None else []
        for rev in tree.get("revisions", []):
            key = RevisionKey(rev.get("namespace", ""), rev.get("name", ""))
            rev["pods"] = [
                {"name": p.name, "status": p.status, "ready": p.ready}
                for p in pods
                if p.revision == key
            ]
        return tree
