"""Per-revision admission and load balancing, with bounded queues (docs/activator.md).

A ``Throttler`` holds one ``Tracker`` per healthy replica of a revision and a
``Breaker`` whose capacity is the sum of the replicas' capacity that this
activator may use (containerConcurrency x assigned replicas; unlimited with
containerConcurrency 0 as long as any replica is healthy; 0 with none, which
is what holds requests while a revision is at zero). A request that gets a
breaker slot is given a replica by the policy upstream uses for its
containerConcurrency; one that does not waits in the breaker's FIFO, which is
bounded per revision and by a ``Budget`` shared by all revisions, so one cold
revision cannot take every place.

When several activators serve a revision, each uses its share of the replicas
(``assign``), as upstream assigns them.

In mesh mode (``set_service``) the one tracker is the revision's private Service:
every request goes there and the capacity is still containerConcurrency x this
activator's share of the ready replicas, as upstream gives its cluster-IP target the
whole capacity (docs/activator.md, "Mesh mode").

Pure: no I/O, no asyncio. The caller resumes the waiters this returns.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence
from typing import Any, Final, Generic, TypeVar

from zeroserve.breaker import Breaker

W = TypeVar("W", bound=Hashable)

UNLIMITED: Final = 2**31 - 1

# acquire() outcomes other than a Tracker
QUEUED: Final = 1
QUEUE_FULL: Final = 2
BUDGET_FULL: Final = 3


class Tracker:
    """One healthy replica as this activator sees it."""

    __slots__ = ("address", "capacity", "in_flight", "target")

    def __init__(self, address: tuple[str, int], target: Any, capacity: int) -> None:
        self.address = address
        self.target = target  # what the caller forwards to (a connection pool)
        self.capacity = capacity  # containerConcurrency; 0 = unlimited
        self.in_flight = 0

    def __repr__(self) -> str:
        return f"Tracker({self.address[0]}:{self.address[1]}, {self.in_flight}/{self.capacity or 'inf'})"


class Budget:
    """Places in all revisions' queues together."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self) -> bool:
        if self.used >= self.limit:
            return False
        self.used += 1
        return True

    def give(self) -> None:
        self.used -= 1


def assign(trackers: Sequence[Tracker], index: int, count: int) -> list[Tracker]:
    """This activator's share of ``trackers`` (sorted by address), as upstream:
    everything when alone (or not in the activator list, index -1); one replica
    when there are more activators than replicas; else an equal slice each, the
    remainder handed out one per activator from the end."""
    n = len(trackers)
    if index < 0 or count <= 1 or n <= 1:
        return list(trackers)
    if count > n:
        return [trackers[index % n]]
    size = n // count
    share = list(trackers[index * size : index * size + size])
    remainder = n % count
    if index < remainder:
        share.append(trackers[n - remainder + index])
    return share


def _share(backends: int, index: int, count: int) -> int:
    """How many of ``backends`` replicas :func:`assign` gives activator ``index``."""
    if index < 0 or count <= 1 or backends <= 1:
        return backends
    if count > backends:
        return 1
    return backends // count + (1 if index < backends % count else 0)


class Throttler(Generic[W]):
    """One revision's replicas, breaker and queue; see the module docstring."""

    __slots__ = (
        "_rr",
        "assigned",
        "backends",
        "breaker",
        "budget",
        "cc",
        "count",
        "index",
        "rng",
        "service",
        "trackers",
    )

    def __init__(
        self, cc: int, queue_depth: int, budget: Budget, rng: random.Random | None = None
    ) -> None:
        self.cc = cc
        self.breaker: Breaker[W] = Breaker(0, queue_depth)
        self.budget = budget
        self.rng = rng or random.Random()
        self.trackers: list[Tracker] = []
        self.assigned: list[Tracker] = []
        self.index = -1
        self.count = 1
        self._rr = 0
        self.service: Tracker | None = None
        """Mesh mode: the private Service every request goes to (None: the replicas)."""
        self.backends = 0
        """Mesh mode: the revision's ready replicas behind :attr:`service`."""

    # -- replicas ----------------------------------------------------------

    def set_trackers(self, trackers: Sequence[Tracker]) -> list[tuple[W, Tracker]]:
        """The healthy replicas changed; returns the waiters that now get one."""
        self.service, self.backends = None, 0
        self.trackers = sorted(trackers, key=lambda t: t.address)
        return self._reassign()

    def set_service(self, service: Tracker | None, backends: int) -> list[tuple[W, Tracker]]:
        """Mesh mode: every request goes to ``service`` (None: not reachable yet), with
        the capacity of ``backends`` ready replicas; returns the waiters that now go."""
        self.trackers = []
        self.service = service
        self.backends = backends if service is not None else 0
        return self._reassign()

    def set_peers(self, index: int, count: int) -> list[tuple[W, Tracker]]:
        """This activator is ``index`` of ``count`` serving the revision."""
        self.index, self.count = index, count
        return self._reassign()

    def _reassign(self) -> list[tuple[W, Tracker]]:
        if self.service is not None:
            self.assigned = [self.service]
            share = _share(self.backends, self.index, self.count)
        else:
            self.assigned = assign(self.trackers, self.index, self.count)
            share = len(self.assigned)
        capacity = (UNLIMITED if share else 0) if self.cc == 0 else self.cc * share
        return self._grant(self.breaker.set_capacity(capacity))

    @property
    def capacity(self) -> int:
        return self.breaker.capacity

    # -- requests ----------------------------------------------------------

    def acquire(self, waiter: W) -> Tracker | int:
        """A replica for the request now, or QUEUED / QUEUE_FULL / BUDGET_FULL."""
        tracker = self.acquire_now()
        if tracker is not None:
            return tracker
        breaker = self.breaker
        if not self.budget.take():
            return BUDGET_FULL
        if not breaker.enqueue(waiter):
            self.budget.give()
            return QUEUE_FULL
        return QUEUED

    def acquire_now(self) -> Tracker | None:
        """A replica for the request now, or None with no slot taken (it would wait)."""
        breaker = self.breaker
        if breaker.try_acquire():
            tracker = self._pick()
            if tracker is not None:
                tracker.in_flight += 1
                return tracker
            breaker.undo_acquire()  # capacity and replicas disagree for a moment
        return None

    def release(self, tracker: Tracker) -> tuple[W, Tracker] | None:
        """A request on ``tracker`` ended; returns the waiter that takes its place."""
        tracker.in_flight -= 1
        waiter = self.breaker.release()
        if waiter is None:
            return None
        granted = self._grant([waiter])
        return granted[0] if granted else None

    def requeue_front(self, waiter: W) -> bool:
        """Park a request that lost its replica (connect error) ahead of all others;
        False when the global budget has no place left (the caller fails it)."""
        if not self.budget.take():  # given back when it is granted or cancelled
            return False
        self.breaker.enqueue(waiter, front=True)
        return True

    def cancel(self, waiter: W) -> bool:
        """Take a waiting request out (client gone, timed out)."""
        if self.breaker.cancel(waiter):
            self.budget.give()
            return True
        return False

    def take_waiters(self) -> list[W]:
        """Every waiting request, removed (the revision went away)."""
        waiters = self.breaker.take_waiters()
        self.budget.used -= len(waiters)
        return waiters

    @property
    def queued(self) -> int:
        return self.breaker.queued

    @property
    def in_flight(self) -> int:
        return self.breaker.in_flight

    def _grant(self, waiters: list[W]) -> list[tuple[W, Tracker]]:
        out = []
        for i, waiter in enumerate(waiters):
            tracker = self._pick()
            if tracker is None:
                # No replica has room after all: hand the slots back and keep
                # these requests at the head of the queue, in order (they
                # still count against the budget).
                for w in reversed(waiters[i:]):
                    self.breaker.undo_acquire()
                    self.breaker.enqueue(w, front=True)
                break
            self.budget.give()
            tracker.in_flight += 1
            out.append((waiter, tracker))
        return out

    def _pick(self) -> Tracker | None:
        if self.service is not None:
            return self.service  # the breaker bounds what goes through the Service
        trackers = self.assigned
        n = len(trackers)
        if n == 0:
            return None
        cc = self.cc
        if cc == 0:
            # power of two random choices on in-flight requests
            if n == 1:
                return trackers[0]
            a, b = self.rng.sample(trackers, 2) if n > 2 else trackers
            if a.in_flight == b.in_flight:
                return a if self.rng.random() < 0.5 else b
            return a if a.in_flight < b.in_flight else b
        if cc <= 3:
            # first available, in address order: small capacities fill up one
            # replica at a time, which keeps the others free for bursts
            for t in trackers:
                if t.in_flight < cc:
                    return t
            return None
        # round robin from after the last pick, skipping full replicas
        start = self._rr
        for i in range(n):
            t = trackers[(start + i) % n]
            if t.in_flight < cc:
                self._rr = (start + i + 1) % n
                return t
        return None
