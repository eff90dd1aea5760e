"""The activator's durable websocket to the autoscaler (docs/contracts.md, "Stats protocol").

Batches go out as JSON text frames. While the link is down, batches are
dropped (the next ones carry the load again) and the socket reconnects with
jittered backoff; traffic never waits for it. The autoscaler closing with
1012 ("service restart") just means: reconnect.
"""

from __future__ import annotations

import asyncio
import logging
import random

import aiohttp

log = logging.getLogger(__name__)

MAX_PENDING = 64


class AutoscalerLink:
    def __init__(
        self, url: str, session: aiohttp.ClientSession, *, max_backoff: float = 5.0
    ) -> None:
        self.url = url
        self.session = session
        self.max_backoff = max_backoff
        self.connected = asyncio.Event()
        self.sent = 0
        self.dropped = 0
        self.errors = 0
        """Connections that failed or broke (kn_activator_stats_conn_errors_total)."""
        self._queue: asyncio.Queue[str] = asyncio.Queue(MAX_PENDING)
        self._task: asyncio.Task[None] | None = None

    def send(self, batch: str) -> None:
        if not self.connected.is_set():
            self.dropped += 1
            return
        try:
            self._queue.put_nowait(batch)
        except asyncio.QueueFull:
            self.dropped += 1

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="autoscaler-link")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        delay = 0.05
        while True:
            try:
                async with self.session.ws_connect(
                    self.url,
                    heartbeat=10.0,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0),
                ) as ws:
                    log.info("connected to the autoscaler at %s", self.url)
                    delay = 0.05
                    self.connected.set()
                    reader = asyncio.ensure_future(ws.receive())  # notices a close
                    getter: asyncio.Future[str] | None = None
                    try:
                        while True:
                            getter = asyncio.ensure_future(self._queue.get())
                            done, _ = await asyncio.wait(
                                {getter, reader}, return_when=asyncio.FIRST_COMPLETED
                            )
                            if reader in done:
                                self.errors += 1  # the autoscaler closed it
                                break
                            await ws.send_str(getter.result())
                            self.sent += 1
                    finally:
                        for fut in (reader, getter):
                            if fut is not None and not fut.done():
                                fut.cancel()
                        await asyncio.gather(
                            reader, *([getter] if getter else []), return_exceptions=True
                        )
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, OSError, TimeoutError) as e:
                self.errors += 1
                log.warning("autoscaler link to %s down: %s", self.url, e or type(e).__name__)
            except Exception:
                self.errors += 1
                log.exception("autoscaler link failed")
            finally:
                self.connected.clear()
                while not self._queue.empty():
                    self._queue.get_nowait()
                    self.dropped += 1
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(self.max_backoff, delay * 2)
