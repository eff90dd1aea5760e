"""Drain: wait for a quiet period with no new request before shutting down.

While draining, health checks answer 503 so the activator and the kubelet stop
sending; every regular request that still arrives restarts the quiet period
(docs/queue-proxy.md, "Drain and shutdown").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class Drainer:
    """The quiet-period timer. ``touch`` is on the hot path: one attribute write."""

    __slots__ = ("_clock", "_since", "draining", "last_request", "quiet_period")

    def __init__(self, quiet_period: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.quiet_period = quiet_period
        self._clock = clock
        self.draining = False
        self.last_request = 0.0
        self._since = 0.0

    def touch(self, now: float) -> None:
        """A regular request arrived at ``now``."""
        self.last_request = now

    def quiet_deadline(self) -> float:
        """When the drain completes if no request arrives before then."""
        return max(self._since, self.last_request) + self.quiet_period

    async def drain(self) -> None:
        """Start draining (idempotent) and return once the quiet period passed."""
        if not self.draining:
            self.draining = True
            self._since = self._clock()
        while True:
            remaining = self.quiet_deadline() - self._clock()
            if remaining <= 0:
                return
            await asyncio.sleep(remaining)

    def reset(self) -> None:
        """Stop draining: probes pass again (the pod recovers)."""
        self.draining = False
