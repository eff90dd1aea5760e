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
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence

from zeroserve.http.h2upstream import H2Pool
from zeroserve.http.server import ServerConnection
from zeroserve.http.upstream import Pool, UpstreamPool
from zeroserve.topology import Endpoint, RevisionInfo, RevisionKey

from .stats import RevisionStats
from .throttler import Budget, Throttler, Tracker

log = logging.getLogger(__name__)

Address = tuple[str, int]
Granted = list[tuple[ServerConnection, Tracker]]

# Cold-start phases, as a held request sees them (its ``held`` span's events when tracing).
POKED = "autoscaler poked"
"""The first request for a revision with no replica told the autoscaler."""
ENDPOINT_SEEN = "replica endpoint seen"
"""The control plane announced a replica (not ready yet: the activator probes it)."""
REPLICA_READY = "replica ready"
"""A replica answered the activator's probe (or was announced ready): capacity."""

PROBE_REQUEST = (
    b"GET / HTTP/1.1\r\nHost: activator-probe\r\nUser-Agent: Knative-Activator-Probe\r\n"
    b"K-Network-Probe: queue\r\nConnection: close\r\n\r\n"
)


class RevisionState:
    """One revision at this activator."""

    __slots__ = (
        "cold_phases",
        "cold_since",
        "endpoints",
        "info",
        "key",
        "pools",
        "probes",
        "stats",
        "throttler",
        "trackers",
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
            if endpoint.ready:
                self._healthy(rev, address, grant=False)
                changed = True
            elif known is None or address not in rev.probes:
                self._probe(rev, address)
        if changed:
            self._grant(rev, rev.throttler.set_trackers(list(rev.trackers.values())))

    def failed(self, rev: RevisionState, tracker: Tracker) -> Granted:
        """Connecting to ``tracker`` failed: take it out and probe it again."""
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
        task = rev.probes.pop(address, None)
        if task is not None:
            task.cancel()
        pool = rev.pools.pop(address, None)
        if pool is not None:
            pool.close()  # idle connections now; busy ones when their exchange ends

    def _healthy(self, rev: RevisionState, address: Address, *, grant: bool = True) -> None:
        if address not in rev.endpoints or address in rev.trackers:
            return
        pool = rev.pools.get(address)
        if pool is None:
            cc = rev.info.container_concurrency
            if rev.info.protocol == "h2c":
                # HTTP/2 to the queue-proxy, as Knative's activator for h2c revisions:
                # the response's trailers (gRPC) need it
                pool = H2Pool(address[0], address[1])
            else:
                pool = UpstreamPool(address[0], address[1], max_idle=cc or 100)
            rev.pools[address] = pool
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
            if await probe(address, self.probe_timeout):
                self._healthy(rev, address)
                return
            await asyncio.sleep(self.probe_interval)

    def close(self) -> None:
        for rev in self.revisions.values():
            for task in rev.probes.values():
                task.cancel()
            for pool in rev.pools.values():
                pool.close()

    async def wait_probes_stopped(self) -> None:
        tasks = [t for rev in self.revisions.values() for t in rev.probes.values()]
        await asyncio.gather(*tasks, return_exceptions=True)


async def probe(address: Address, timeout: float) -> bool:
    """One health check of a replica's queue-proxy: ``200`` with body ``queue``."""
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
        return False
    return response.startswith(b"HTTP/1.1 200 ") and response.endswith(b"\r\n\r\nqueue")
