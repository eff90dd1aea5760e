"""The loop the node agent, the Services proxy and the mesh model share: wait to be woken,
bring everything in line with the API server (``sync``), and on a failure log it and try
again shortly, so one bad object never stops the piece."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def resync_forever(
    wake: asyncio.Event, sync: Callable[[], Awaitable[None]], what: str
) -> None:
    while True:
        await wake.wait()
        wake.clear()
        try:
            await sync()
        except Exception:
            log.exception("%s sync", what)
            await asyncio.sleep(0.5)
            wake.set()
