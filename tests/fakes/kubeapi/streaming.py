"""Watch streams of the fake API server: chunked responses of newline-delimited JSON events.

A stream starts with the events :meth:`.storage.ObjectStorage.watch` queued (synthetic ADDED
events, or a replay from the history), then follows live writes. It sends BOOKMARK events
when asked to, ends cleanly at ``timeoutSeconds`` or when the server stops, and can be cut
gracefully or abruptly by tests. A resourceVersion older than the history gets what the
apiserver's watch cache sends: HTTP 200 and a single ERROR event holding a 410 Status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import web

from . import errors
from .query import parse_bool, parse_int
from .resources import ResourceType
from .storage import Predicate, Watcher
from .store import Store
from .tables import to_table

_JSON = "application/json"


def _event(kind: str, obj: Any) -> bytes:
    return json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode() + b"\n"


class WatchStreams:
    """The open watch streams of one server, and the code that serves them."""

    def __init__(self, store: Store, bookmark_interval: float) -> None:
        self.store = store
        self.bookmark_interval = bookmark_interval
        self._open: dict[Watcher, web.BaseRequest] = {}
        self._changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._open)

    async def wait_for_count(self, count: int, within: float) -> None:
        try:
            async with asyncio.timeout(within):
                while len(self._open) != count:
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(
                f"expected {count} open watch streams, have {len(self._open)}"
            ) from None

    def close_all(self, *, abrupt: bool) -> int:
        streams = list(self._open.items())
        for watcher, request in streams:
            if abrupt and request.transport is not None:
                # Dropping the connection mid-chunk is what a crashed server looks like.
                request.transport.close()
            watcher.close("aborted" if abrupt else "closed")
        return len(streams)

    async def serve(
        self,
        request: web.Request,
        rt: ResourceType,
        namespace: str | None,
        predicate: Predicate,
        table: bool,
    ) -> web.StreamResponse:
        query = request.query
        bookmarks = parse_bool(query.get("allowWatchBookmarks"))
        send_initial = parse_bool(query.get("sendInitialEvents"))
        timeout = parse_int(query.get("timeoutSeconds"), "timeoutSeconds")
        if send_initial and (query.get("resourceVersionMatch") != "NotOlderThan" or not bookmarks):
            raise errors.invalid(
                "ListOptions",
                "meta.k8s.io",
                "",
                [
                    (
                        "resourceVersionMatch",
                        "FieldValueForbidden",
                        "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan "
                        "and allowWatchBookmarks to true",
                    )
                ],
            )
        response = web.StreamResponse(
            status=200, headers={"Content-Type": _JSON, "Cache-Control": "no-cache, private"}
        )
        response.enable_chunked_encoding()
        try:
            watcher = self.store.watch(
                rt,
                namespace,
                predicate,
                query.get("resourceVersion"),
                send_initial_events=send_initial,
            )
        except errors.ApiError as exc:
            if exc.code != 410:
                raise
            # Like the apiserver's watch cache: a 200 stream carrying one ERROR event.
            await response.prepare(request)
            await response.write(_event("ERROR", exc.status()))
            await response.write_eof()
            return response
        # Taken before any await: exactly the events queued so far are the initial ones.
        initial_count = watcher.queue.qsize() if send_initial else 0
        initial_rv = self.store.rv
        self._open[watcher] = request
        self._changed.set()
        try:
            await response.prepare(request)
            if send_initial and initial_count == 0:
                await self._send_bookmark(response, rt, initial_rv, initial_end=True)
            loop = asyncio.get_running_loop()
            await self._pump(
                request,
                response,
                watcher,
                rt,
                table,
                # timeoutSeconds=0 means "not set" to the apiserver, not "end now".
                loop.time() + timeout if timeout else None,
                bookmarks,
                initial_count,
                initial_rv,
            )
        except ConnectionResetError:
            return response  # the client went away
        finally:
            self.store.unwatch(watcher)
            self._open.pop(watcher, None)
            self._changed.set()
        if watcher.close_reason != "aborted":
            with contextlib.suppress(ConnectionResetError):
                await response.write_eof()
        return response

    async def _send_bookmark(
        self, response: web.StreamResponse, rt: ResourceType, rv: int, *, initial_end: bool
    ) -> None:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        bookmark = {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}
        await response.write(_event("BOOKMARK", bookmark))

    async def _pump(
        self,
        request: web.Request,
        response: web.StreamResponse,
        watcher: Watcher,
        rt: ResourceType,
        table: bool,
        deadline: float | None,
        bookmarks: bool,
        initial_count: int,
        initial_rv: int,
    ) -> None:
        loop = asyncio.get_running_loop()
        next_bookmark = loop.time() + self.bookmark_interval if bookmarks else None
        sent = 0
        while True:
            now = loop.time()
            if deadline is not None and now >= deadline:
                return
            # Wake at least once a second to notice a client that went away silently.
            waits = [1.0]
            if deadline is not None:
                waits.append(deadline - now)
            if next_bookmark is not None:
                waits.append(max(next_bookmark - now, 0.0))
            wait = min(waits)
            try:
                item = await asyncio.wait_for(watcher.queue.get(), wait)
            except TimeoutError:
                if next_bookmark is not None and loop.time() >= next_bookmark:
                    # Queue drained: the client has seen everything up to the current rv.
                    if watcher.queue.empty():
                        await self._send_bookmark(response, rt, self.store.rv, initial_end=False)
                    next_bookmark = loop.time() + self.bookmark_interval
                if request.transport is None or request.transport.is_closing():
                    return
                continue
            if item is None:
                return
            kind, obj = item
            shown = self.store.present(rt, obj)
            payload: Any = (
                to_table([shown], str(self.store.rv), request.query.get("includeObject"))
                if table
                else shown
            )
            await response.write(_event(kind, payload))
            sent += 1
            if initial_count and sent == initial_count:
                await self._send_bookmark(response, rt, initial_rv, initial_end=True)
