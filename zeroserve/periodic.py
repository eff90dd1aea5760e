"""Running a step every N seconds, on the loop's clock, without drifting or bursting."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def every(interval: float, step: Callable[[], Awaitable[None] | None]) -> None:
    """Call ``step`` every ``interval`` seconds until cancelled.

    Ticks are scheduled from the first one (no drift from the step's own
    run time); if the loop fell more than a tick behind, it skips ahead
    instead of catching up in a burst. A failing step is logged and the next
    tick runs as usual.
    """
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    while True:
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - loop.time()))
        try:
            result = step()
            if result is not None:
                await result
        except Exception:
            log.exception("periodic step %s failed", getattr(step, "__qualname__", step))
        if loop.time() > next_at + interval:
            next_at = loop.time()
