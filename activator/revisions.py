"""The revisions this activator serves: their replicas, probing, and throttlers.

The control plane says which revisions exist and which endpoints (replicas)
each has. A replica announced ready is used at once; one not yet ready is
probed directly (``K-Network-Probe: queue``, healthy = ``200 queue``) and used
the moment a probe passes, without waiting for the endpoint list to settle.
The queue-proxy answers such a probe only once its own readiness probe of the
app passes (retrying every 50 ms), so one probe request returns as soon as the
app is up. A replica that goes away gets no new requests; one the proxy could
not connect to is taken out and probed again (docs/activator.md, "Backends and
probing"). A revision that failed and is backing off (``RevisionInfo.backing_off``,
local mode) has its waiting requests handed back at once to be answered with why
(docs/activator.md, "A revision that failed").

Mesh mode (``config-network`` ``mesh-compatibility-mode``, docs/activator.md "Mesh
mode"), after Knative's ``pkg/activator/net/revision_backends.go``: with ``enabled``
a revision's requests go to its private Service (``service_address``) once that
answers the probe, never to pod addresses; with ``auto`` the pods are probed as
above, and when no pod is healthy, every pod's last probe failed as a sidecar with
STRICT mTLS makes it fail (a connection error, a timeout, or ``502``/``503``) and
the private Service answers the probe, the revision moves to the Service for good
(an answer such as ``404`` means no mesh: it stays direct); with ``disabled`` the
Service is never used. The throttler's capacity still comes from the ready replicas.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Final, TypeAlias

from zeroserve.api.network import MESH_AUTO, MESH_DISABLED, MESH_ENABLED
from zeroserve.http.h2upstream import H2Pool
from zeroserve.http.server import ServerConnection
from zeroserve.http.upstream import Pool, UpstreamPool
from zeroserve.topology import Endpoint, RevisionInfo, RevisionKey

from .stats import RevisionStats
from .throttler import Budget, Throttler, Tracker

log = logging.getLogger(__name__)

Address: TypeAlias = tuple[str, int]
Granted: TypeAlias = list[tuple[ServerConnection, Tracker]]

# Cold-start phases, as a held request sees them (its ``held`` span's events when tracing).
POKED: Final = "autoscaler poked"
"""The first request for a revision with no replica told the autoscaler."""
ENDPOINT_SEEN: Final = "replica endpoint seen"
"""The control plane announced a replica (not ready yet: the activator probes it)."""
REPLICA_READY: Final = "replica ready"
"""A replica answered the activator's probe (or was announced ready): capacity."""
SERVICE_READY: Final = "private Service ready"
"""Mesh mode: the revision's private Service answered the probe: capacity."""
SERVICE_PROBE_FAILED: Final = "private Service probe failed"
"""Mesh mode: a probe of the private Service failed (the cold-start log says how often)."""

# What one probe of a queue-proxy found.
HEALTHY: Final = "healthy"
MESH_LIKE: Final = "mesh-like"
"""Failed as a sidecar refusing plaintext makes it fail: a connection error, a
timeout, ``502`` or ``503`` (Knative's ``IsPotentialMeshErrorResponse``)."""
NOT_MESH: Final = "not mesh"
"""Failed with an answer no mesh gives (``404``, a body that is not ``queue``...)."""

PROBE_REQUEST: Final = (
    b"GET / HTTP/1.1\r\nHost: activator-probe\r\nUser-Agent: Knative-Activator-Probe\r\n"
    b"K-Network-Probe: queue\r\nConnection: close\r\n\r\n"
)


class RevisionState:
    """One revision at this activator."""

    __slots__ = (
        "cold_phases",
        "cold_since",
        "direct_seen",
        "endpoints",
        "info",
        "key",
        "pools",
        "probe_results",
        "probes",
        "service",
        "service_probe",
        "service_probes_failed",
        "stats",
        "throttler",
        "trackers",
        "via_service",
    )

    def __init__(self, info: RevisionInfo, throttler: Throttler[ServerConnection]) -> None:
        self.key = info.key
        self.info = info
        self.throttler = throttler
        self.stats: RevisionStats | None = None
        self.endpoints: dict[Address, Endpoint] = {}
        self.trackers: dict[Address, Tracker] = {}  # healthy replicas
        self.pools: dict[Address, Pool] = {}
        self.probes: dict[Address, asyncio.Task[None]] = {}
        self.probe_results: dict[Address, str] = {}  # last failed probe of each pod
        self.via_service = False
        """Mesh mode: requests go to the private Service, not to pod addresses."""
        self.direct_seen = False
        """``auto``: a direct probe of one of the revision's pods has answered, so there
        is no mesh in the way and a pod announced ready is used without a probe."""
        self.service: Tracker | None = None  # the Service, once it answered the probe
        self.service_probe: asyncio.Task[None] | None = None
        self.service_probes_failed: list[tuple[str, float]] = []
        """Mesh mode: the failed probes of the Service since it was last healthy (result,
        seconds the probe took), for the cold-start log (docs/activator.md)."""
        self.cold_since = 0.0  # when a request started waiting with no replica; 0 = not cold
        self.cold_phases: list[tuple[str, float]] = []
        """The last cold start's phases (name, monotonic time); the activator's handler
        starts the list with ``POKED`` when the revision goes cold."""


class Revisions:
    """Registry of ``RevisionState``; replicas in, granted requests out."""

    def __init__(
        self,
        *,
        budget: Budget,
        queue_depth: int,
        on_granted: Callable[[RevisionState, Granted], None],
        on_removed: Callable[[RevisionKey, list[ServerConnection]], None],
        on_failed: Callable[[RevisionState, list[ServerConnection]], None] | None = None,
        probe_interval: float = 0.05,
        probe_timeout: float = 10.0,
        rng: random.Random | None = None,
        mesh_mode: str = MESH_DISABLED,
        service_address: Callable[[RevisionKey], Address] | None = None,
    ) -> None:
        self.budget = budget
        self.queue_depth = queue_depth
        self.on_granted = on_granted
        self.on_removed = on_removed
        self.on_failed = on_failed
        self.probe_interval = probe_interval
        self.probe_timeout = probe_timeout
        self.rng = rng or random.Random()
        self.revisions: dict[RevisionKey, RevisionState] = {}
        self._pending_endpoints: dict[RevisionKey, list[Endpoint]] = {}
        self.peers = (-1, 1)
        self.mesh_mode = mesh_mode if service_address is not None else MESH_DISABLED
        """``config-network`` ``mesh-compatibility-mode`` (``disabled`` without a
        ``service_address``: local mode has no Services)."""
        self.service_address = service_address
        """A revision's private Service (``<revision>-private.<namespace>.svc...:80``)."""

    def set_mesh(self, mode: str, service_address: Callable[[RevisionKey], Address]) -> None:
        """A new ``mesh-compatibility-mode``: every revision starts over in it (its
        pods or its Service probed anew; requests in flight finish where they are)."""
        if (mode, service_address) == (self.mesh_mode, self.service_address):
            return
        self.mesh_mode, self.service_address = mode, service_address
        for rev in list(self.revisions.values()):
            endpoints = list(rev.endpoints.values())
            for address in list(rev.endpoints):
                self._forget(rev, address)
            self._drop_service(rev)
            rev.via_service = mode == MESH_ENABLED
            rev.direct_seen = False
            rev.throttler.set_trackers([])
            self.set_endpoints(rev.key, endpoints)

    def get(self, key: RevisionKey) -> RevisionState | None:
        return self.revisions.get(key)

    # -- revisions ---------------------------------------------------------

    def put_revision(self, info: RevisionInfo) -> None:
        rev = self.revisions.get(info.key)
        if rev is not None:
            rev.info = info  # a revision's spec is immutable; timeouts may be defaulted anew
            self._fail_if_backing_off(rev)
            return
        throttler: Throttler[ServerConnection] = Throttler(
            info.container_concurrency, self.queue_depth, self.budget, self.rng
        )
        throttler.set_peers(*self.peers)
        rev = RevisionState(info, throttler)
        rev.via_service = self.mesh_mode == MESH_ENABLED
        self.revisions[info.key] = rev
        pending = self._pending_endpoints.pop(info.key, None)
        if pending is not None:
            self.set_endpoints(info.key, pending)

    def _fail_if_backing_off(self, rev: RevisionState) -> None:
        """The revision failed and no replica of it is starting: the requests waiting
        for it would wait in vain until the activation timeout."""
        if not rev.info.backing_off or rev.trackers or self.on_failed is None:
            return
        waiters = rev.throttler.take_waiters()
        if waiters:
            self.on_failed(rev, waiters)

    def remove_revision(self, key: RevisionKey) -> None:
        rev = self.revisions.pop(key, None)
        self._pending_endpoints.pop(key, None)
        if rev is None:
            return
        for task in rev.probes.values():
            task.cancel()
        for pool in rev.pools.values():
            pool.close()
        self._drop_service(rev)
        waiters = rev.throttler.take_waiters()
        if waiters:
            self.on_removed(key, waiters)

    def set_peers(self, index: int, count: int) -> None:
        """This activator is ``index`` of ``count`` (each uses its share of replicas)."""
        self.peers = (index, count)
        for rev in self.revisions.values():
            self._grant(rev, rev.throttler.set_peers(index, count))

    # -- endpoints ---------------------------------------------------------

    def set_endpoints(self, key: RevisionKey, endpoints: Sequence[Endpoint]) -> None:
        """The revision's replicas now (ready or not)."""
        rev = self.revisions.get(key)
        if rev is None:
            # Endpoints can be announced before the revision itself.
            self._pending_endpoints[key] = list(endpoints)
            return
        new = {(e.host, e.port): e for e in endpoints}
        if rev.via_service:
            if rev.cold_since:
                now = time.monotonic()
                rev.cold_phases += [(ENDPOINT_SEEN, now) for a in new if a not in rev.endpoints]
                if any(e.ready for e in new.values()) and not any(
                    e.ready for e in rev.endpoints.values()
                ):
                    rev.cold_phases.append((REPLICA_READY, now))
            rev.endpoints = new
            self._service_update(rev)
            return
        changed = False
        for address in list(rev.endpoints):
            if address not in new:
                self._forget(rev, address)
                changed = True
        for address, endpoint in new.items():
            known = rev.endpoints.get(address)
            rev.endpoints[address] = endpoint
            if address in rev.trackers:
                continue
            if rev.cold_since and known is None:
                rev.cold_phases.append((ENDPOINT_SEEN, time.monotonic()))
            if endpoint.ready and (self.mesh_mode != MESH_AUTO or rev.direct_seen):
                self._healthy(rev, address, grant=False)
                changed = True
            elif known is None or address not in rev.probes:
                self._probe(rev, address)
        if changed:
            self._grant(rev, rev.throttler.set_trackers(list(rev.trackers.values())))

    def failed(self, rev: RevisionState, tracker: Tracker) -> Granted:
        """Connecting to ``tracker`` failed: take it out and probe it again."""
        if tracker is rev.service:
            self._drop_service(rev)
            granted = rev.throttler.set_service(None, 0)
            self._service_update(rev)
            return granted
        address = tracker.address
        if rev.trackers.pop(address, None) is None:
            return []
        granted = rev.throttler.set_trackers(list(rev.trackers.values()))
        if address in rev.endpoints:
            self._probe(rev, address)
        return granted

    def _forget(self, rev: RevisionState, address: Address) -> None:
        rev.endpoints.pop(address, None)
        rev.trackers.pop(address, None)
        rev.probe_results.pop(address, None)
        task = rev.probes.pop(address, None)
        if task is not None:
            task.cancel()
        pool = rev.pools.pop(address, None)
        if pool is not None:
            pool.close()  # idle connections now; busy ones when their exchange ends

    def _healthy(self, rev: RevisionState, address: Address, *, grant: bool = True) -> None:
        if address not in rev.endpoints or address in rev.trackers:
            return
        rev.probe_results.pop(address, None)
        pool = rev.pools.get(address)
        if pool is None:
            pool = rev.pools[address] = _pool(rev, address)
        rev.trackers[address] = Tracker(address, pool, rev.info.container_concurrency)
        if rev.cold_since:
            rev.cold_phases.append((REPLICA_READY, time.monotonic()))
        if grant:
            self._grant(rev, rev.throttler.set_trackers(list(rev.trackers.values())))

    def _grant(self, rev: RevisionState, granted: Granted) -> None:
        if granted:
            self.on_granted(rev, granted)

    # -- probing -----------------------------------------------------------

    def _probe(self, rev: RevisionState, address: Address) -> None:
        if address in rev.probes:
            return
        task = asyncio.get_running_loop().create_task(
            self._probe_until_healthy(rev, address),
            name=f"probe {rev.key} {address[0]}:{address[1]}",
        )
        rev.probes[address] = task
        task.add_done_callback(lambda t: self._probe_done(rev, address, t))

    def _probe_done(self, rev: RevisionState, address: Address, task: asyncio.Task[None]) -> None:
        if rev.probes.get(address) is task:
            del rev.probes[address]
        if not task.cancelled() and task.exception() is not None:
            log.error("probing %s %s failed", rev.key, address, exc_info=task.exception())

    async def _probe_until_healthy(self, rev: RevisionState, address: Address) -> None:
        while address in rev.endpoints and self.revisions.get(rev.key) is rev:
            result = await check(address, self.probe_timeout)
            if rev.via_service:
                return  # the revision moved to its Service meanwhile
            if result == HEALTHY:
                rev.direct_seen = True
                self._healthy(rev, address)
                return
            if address in rev.endpoints:
                rev.probe_results[address] = result
                self._check_mesh(rev)
            await asyncio.sleep(self.probe_interval)

    # -- mesh mode ---------------------------------------------------------

    def _check_mesh(self, rev: RevisionState) -> None:
        """``auto``: try the Service when no pod is healthy and every pod's last probe
        failed as a mesh makes it fail (Knative's ``checkDests``)."""
        if (
            self.mesh_mode != MESH_AUTO
            or rev.trackers
            or rev.service_probe is not None
            or not any(e.ready for e in rev.endpoints.values())
            or any(rev.probe_results.get(a) != MESH_LIKE for a in rev.endpoints)
        ):
            return
        self._probe_service(rev, switch=True)

    def _service_update(self, rev: RevisionState) -> None:
        """Mesh mode: the Service gets the capacity of the ready replicas; with none it
        is forgotten (probed again when replicas come back, as Knative)."""
        ready = sum(e.ready for e in rev.endpoints.values())
        if ready == 0:
            self._drop_service(rev)
            self._grant(rev, rev.throttler.set_service(None, 0))
        elif rev.service is not None:
            self._grant(rev, rev.throttler.set_service(rev.service, ready))
        else:
            self._probe_service(rev, switch=False)

    def _probe_service(self, rev: RevisionState, *, switch: bool) -> None:
        if rev.service_probe is not None or self.service_address is None:
            return
        address = self.service_address(rev.key)
        task = asyncio.get_running_loop().create_task(
            self._probe_service_until_healthy(rev, address, switch=switch),
            name=f"probe {rev.key} service {address[0]}:{address[1]}",
        )
        rev.service_probe = task
        task.add_done_callback(lambda t: self._service_probe_done(rev, t))

    def _service_probe_done(self, rev: RevisionState, task: asyncio.Task[None]) -> None:
        if rev.service_probe is task:
            rev.service_probe = None
        if not task.cancelled() and task.exception() is not None:
            log.error("probing %s's private Service failed", rev.key, exc_info=task.exception())

    async def _probe_service_until_healthy(
        self, rev: RevisionState, address: Address, *, switch: bool
    ) -> None:
        """``switch`` (auto): one probe decides; else probe until the Service answers
        while the revision has ready replicas."""
        while self.revisions.get(rev.key) is rev:
            if switch and (rev.trackers or rev.via_service):
                return
            started = time.monotonic()
            result = await check(address, self.probe_timeout)
            if result == HEALTHY:
                if self.revisions.get(rev.key) is not rev:
                    return
                if switch:
                    if rev.trackers or rev.via_service:
                        return  # a pod answered meanwhile: stay direct
                    log.info(
                        "revision %s: its pods cannot be probed directly (a mesh) and its "
                        "private Service %s:%d answers: requests go through the Service",
                        rev.key,
                        *address,
                    )
                    self._move_to_service(rev)
                rev.service = Tracker(address, _pool(rev, address), rev.info.container_concurrency)
                rev.service_probe = None
                rev.service_probes_failed = []
                if rev.cold_since:
                    rev.cold_phases.append((SERVICE_READY, time.monotonic()))
                self._service_update(rev)
                return
            now = time.monotonic()
            rev.service_probes_failed = [*rev.service_probes_failed[-9:], (result, now - started)]
            # one phase for a run of failures (the cold-start log lists the last ones)
            last = rev.cold_phases[-1][0] if rev.cold_phases else ""
            if rev.cold_since and not switch and last != SERVICE_PROBE_FAILED:
                rev.cold_phases.append((SERVICE_PROBE_FAILED, now))
            if switch or not any(e.ready for e in rev.endpoints.values()):
                return
            await asyncio.sleep(self.probe_interval)

    def _move_to_service(self, rev: RevisionState) -> None:
        rev.via_service = True
        for task in rev.probes.values():
            task.cancel()
        rev.probes.clear()
        rev.probe_results.clear()
        for pool in rev.pools.values():
            pool.close()
        rev.pools.clear()
        rev.trackers.clear()

    def _drop_service(self, rev: RevisionState) -> None:
        task, rev.service_probe = rev.service_probe, None
        if task is not None:
            task.cancel()
        service, rev.service = rev.service, None
        if service is not None:
            service.target.close()

    def close(self) -> None:
        for rev in self.revisions.values():
            for task in rev.probes.values():
                task.cancel()
            for pool in rev.pools.values():
                pool.close()
            self._drop_service(rev)

    async def wait_probes_stopped(self) -> None:
        tasks = [t for rev in self.revisions.values() for t in rev.probes.values()]
        tasks += [r.service_probe for r in self.revisions.values() if r.service_probe]
        await asyncio.gather(*tasks, return_exceptions=True)


def cold_report(rev: RevisionState, now: float) -> str:
    """Why a request for ``rev`` waited (or still waits) since ``rev.cold_since``: the
    cold-start phases so far, the replicas, and in mesh mode the private Service's state
    and its last failed probes (docs/activator.md, "Cold-start log")."""
    since = rev.cold_since
    phases = ", ".join(f"{name} +{at - since:.1f}s" for name, at in rev.cold_phases) or "none"
    ready = sum(e.ready for e in rev.endpoints.values())
    text = (
        f"revision {rev.key}: held {now - since:.1f}s; phases: {phases}; "
        f"{len(rev.endpoints)} endpoints ({ready} ready), {len(rev.trackers)} healthy; "
        f"capacity {rev.throttler.capacity}, {rev.throttler.queued} waiting"
    )
    if rev.via_service:
        state = "healthy" if rev.service is not None else "not healthy"
        if rev.service is None and rev.service_probe is not None:
            state += ", being probed"
        text += f"; via the private Service ({state})"
        if rev.service_probes_failed:
            failed = ", ".join(f"{r} in {took:.1f}s" for r, took in rev.service_probes_failed)
            text += f"; its last failed probes: {failed}"
    return text


def _pool(rev: RevisionState, address: Address) -> Pool:
    if rev.info.protocol == "h2c":
        # HTTP/2 to the queue-proxy, as Knative's activator for h2c revisions:
        # the response's trailers (gRPC) need it
        return H2Pool(address[0], address[1])
    return UpstreamPool(address[0], address[1], max_idle=rev.info.container_concurrency or 100)


async def probe(address: Address, timeout: float) -> bool:
    """One health check of a replica's queue-proxy: ``200`` with body ``queue``."""
    return await check(address, timeout) == HEALTHY


async def check(address: Address, timeout: float) -> str:
    """One probe of a queue-proxy: :data:`HEALTHY` (``200`` with body ``queue``),
    :data:`MESH_LIKE` or :data:`NOT_MESH`."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(address[0], address[1])
            try:
                writer.write(PROBE_REQUEST)
                response = await reader.read(4096)
                while not response.endswith(b"\r\n\r\nqueue") and len(response) < 4096:
                    more = await reader.read(4096)
                    if not more:
                        break
                    response += more
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return MESH_LIKE
    if response.startswith(b"HTTP/1.1 200 ") and response.endswith(b"\r\n\r\nqueue"):
        return HEALTHY
    if not response or response.startswith((b"HTTP/1.1 502 ", b"HTTP/1.1 503 ")):
        return MESH_LIKE  # an empty answer: the connection was closed at once
    return NOT_MESH
