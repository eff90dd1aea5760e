"""Replica starts under way, for the work that waits until none is.

What ``zeroserve up`` makes ahead for cold starts (standby queue-proxies, spare pod
networks) is made again after a start took one. Making it costs CPU (a standby is a
Python process importing its modules, about 90 ms; a pod network, ``ip`` commands),
and an app still starting on the same CPU would wait for it. So the refill waits,
after its delay, until no replica is starting: from the moment a replica got its
start slot until it is ready or its start ended (docs/local-mode.md, "Standby
queue-proxies").
"""

from __future__ import annotations

from collections.abc import Callable


class StartsUnderWay:
    """Counts the replica starts under way; calls back when the last one ends."""

    def __init__(self) -> None:
        self.count = 0
        self.begun = 0
        """Starts begun so far: a start that began with ``count`` 1 and ended with
        ``begun`` unchanged had the machine to itself (``alone_since``)."""
        self._waiters: list[Callable[[], None]] = []

    @property
    def quiet(self) -> bool:
        """No replica is starting."""
        return self.count == 0

    def begin(self) -> None:
        """A replica starts (it got its start slot)."""
        self.count += 1
        self.begun += 1

    def alone_since(self) -> int | None:
        """Right after ``begin``: a mark that :meth:`still_alone` checks, or None when
        another start is under way."""
        return self.begun if self.count == 1 else None

    def still_alone(self, mark: int | None) -> bool:
        """No other start was under way since ``alone_since`` gave ``mark``."""
        return mark is not None and self.begun == mark

    def end(self) -> None:
        """A start ended: the replica is ready, or it failed or stopped before."""
        if self.count <= 0:
            raise RuntimeError("a start ended that never began")
        self.count -= 1
        if self.count == 0:
            waiters, self._waiters = self._waiters, []
            for callback in waiters:
                callback()

    def when_quiet(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` now when no replica is starting, else once none is."""
        if self.quiet:
            callback()
        else:
            self._waiters.append(callback)
