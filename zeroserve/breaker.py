"""Concurrency breaker: at most ``capacity`` holders, a bounded FIFO of waiters.

This is the arithmetic of Knative's queue-proxy breaker (knative/serving pkg/queue/breaker.go)
with no I/O and no asyncio: the proxies call it from their event loop and it
tells them what to do.

- ``try_acquire()`` takes a slot if one is free now. It is the hot path: two
  attribute reads and an increment, no allocation.
- ``enqueue(waiter)`` parks a waiter when no slot is free; it is refused once
  ``queue_depth`` waiters are parked, so at most ``capacity + queue_depth``
  requests are ever admitted (11 x CC for the queue-proxy).
- ``release()`` frees a slot. If a waiter is parked, the slot is handed to it
  directly (it is never observable as free, so a newcomer cannot overtake the
  queue) and the waiter is returned for the caller to resume.
- ``cancel(waiter)`` removes a parked waiter (client gone, timeout) in O(1).

The waiter is any hashable object; the breaker never calls it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

W = TypeVar("W")


class Breaker(Generic[W]):
    """A capacity limit with a bounded FIFO queue; see the module docstring."""

    __slots__ = ("_waiters", "capacity", "in_flight", "queue_depth")

    def __init__(self, capacity: int, queue_depth: int) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        if queue_depth < 0:
            raise ValueError(f"queue_depth must be >= 0, got {queue_depth}")
        self.capacity = capacity
        self.queue_depth = queue_depth
        self.in_flight = 0
        # OrderedDict as an ordered set: O(1) append, pop-first and removal of
        # an arbitrary waiter (a cancelled one), which a deque cannot do.
        self._waiters: OrderedDict[W, None] = OrderedDict()

    @property
    def queued(self) -> int:
        """Waiters parked for a slot."""
        return len(self._waiters)

    @property
    def admitted(self) -> int:
        """Requests holding or waiting for a slot."""
        return self.in_flight + len(self._waiters)

    def try_acquire(self) -> bool:
        """Take a free slot now; False when none is free (nothing changes)."""
        if self.in_flight < self.capacity:
            self.in_flight += 1
            return True
        return False

    def enqueue(self, waiter: W, *, front: bool = False) -> bool:
        """Park ``waiter`` until a slot is handed to it; False when the queue is full.

        ``front``: go first, past the depth limit (a request that already held
        a slot and must wait again, e.g. after its replica failed)."""
        if front:
            self._waiters[waiter] = None
            self._waiters.move_to_end(waiter, last=False)
            return True
        if len(self._waiters) >= self.queue_depth:
            return False
        self._waiters[waiter] = None
        return True

    def undo_acquire(self) -> None:
        """Give back a slot just taken with ``try_acquire`` without handing it
        to a waiter (the caller found it could not use it)."""
        self.in_flight -= 1

    def cancel(self, waiter: W) -> bool:
        """Remove a parked waiter; False if it was not parked (already granted)."""
        return self._waiters.pop(waiter, 0) is None

    def release(self) -> W | None:
        """Free one slot. Returns the waiter the slot was handed to, if any."""
        if self._waiters and self.in_flight <= self.capacity:
            waiter, _ = self._waiters.popitem(last=False)
            return waiter
        self.in_flight -= 1
        return None

    def take_waiters(self) -> list[W]:
        """Remove and return every parked waiter (their target went away)."""
        waiters = list(self._waiters)
        self._waiters.clear()
        return waiters

    def set_capacity(self, capacity: int) -> list[W]:
        """Change the capacity. Running holders are never interrupted; when the
        capacity grows, parked waiters get the new slots and are returned in
        FIFO order for the caller to resume."""
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        granted: list[W] = []
        while self._waiters and self.in_flight < capacity:
            waiter, _ = self._waiters.popitem(last=False)
            self.in_flight += 1
            granted.append(waiter)
        return granted
