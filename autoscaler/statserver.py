"""The websocket endpoint activators push their stats to (docs/contracts.md, "Stats protocol").

One durable websocket per activator at ``ws://<autoscaler>:8080/``; each text
frame is a JSON batch ``[{"namespace": ..., "revision": ..., "stat": {...}}]``.
Stats carry no trustworthy time: the receiver stamps them. A malformed batch
is logged and dropped; the socket stays open. On shutdown every client is told
to reconnect (close code 1012, "service restart").
"""

from __future__ import annotations

import json
import logging
import weakref
from collections.abc import Callable

from aiohttp import WSCloseCode, WSMsgType, web

from zeroserve.stats import Stat

from .model import RevisionKey

log = logging.getLogger(__name__)

StatSink = Callable[[RevisionKey, Stat], None]
MAX_BATCH_BYTES = 4 << 20


def parse_batch(text: str | bytes) -> list[tuple[RevisionKey, Stat]]:
    """Decode one frame; raises ``ValueError`` naming what is wrong."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"batch is not valid JSON: {e}") from None
    if not isinstance(data, list):
        raise ValueError("batch must be a JSON array")
    out = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise ValueError(f"batch[{i}] must be an object")
        ns, rev = item.get("namespace"), item.get("revision")
        if not isinstance(ns, str) or not ns or not isinstance(rev, str) or not rev:
            raise ValueError(f"batch[{i}] needs non-empty string namespace and revision")
        try:
            stat = Stat.from_mapping(item.get("stat"))
        except ValueError as e:
            raise ValueError(f"batch[{i}].{e}") from None
        out.append((RevisionKey(ns, rev), stat))
    return out


class StatServer:
    """aiohttp app with the websocket at ``/`` and a ``/healthz``."""

    def __init__(self, sink: StatSink) -> None:
        self.sink = sink
        self.sockets: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()
        self.frames = 0
        self.bad_frames = 0
        self.app = web.Application()
        self.app.router.add_get("/", self._ws)
        self.app.router.add_get("/healthz", self._healthz)
        self.app.on_shutdown.append(self._close_all)

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=10.0, max_msg_size=MAX_BATCH_BYTES)
        if not ws.can_prepare(request).ok:
            return web.Response(status=400, text="expected a websocket upgrade")
        await ws.prepare(request)
        self.sockets.add(ws)
        peer = request.remote
        async for msg in ws:
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                continue
            try:
                batch = parse_batch(msg.data)
            except ValueError as e:
                self.bad_frames += 1
                log.warning("dropped a stats batch from %s: %s", peer, e)
                continue
            self.frames += 1
            for key, stat in batch:
                try:
                    self.sink(key, stat)
                except Exception:
                    log.exception("recording a stat for %s failed", key)
        return ws

    async def _close_all(self, app: web.Application) -> None:
        for ws in list(self.sockets):
            await ws.close(code=WSCloseCode.SERVICE_RESTART, message=b"autoscaler restarting")
