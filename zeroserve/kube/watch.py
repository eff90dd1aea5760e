"""Watch caches: the matching objects of one resource, kept current in memory.

The data plane's hot path never calls the API: a :class:`WatchCache` LISTs once, then
WATCHes from the list's resourceVersion and keeps ``objects`` current in memory (an
informer: kubernetes ``staging/src/k8s.io/client-go/tools/cache/reflector.go``). When the
API goes away the cache keeps its last contents and reconnects with backoff; after a 410
it re-lists and reports the differences as events, so consumers converge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncGenerator, Callable, Iterable
from typing import Protocol

from zeroserve.api.objects import Obj
from zeroserve.kube.errors import Expired, KubeError, Unavailable
from zeroserve.kube.resources import (
    ChangeCallback,
    ObjectKey,
    ObjectList,
    ResourceRef,
    describe,
    object_key,
)

log = logging.getLogger(__name__)


class ListerWatcher(Protocol):
    """The two calls a cache makes (client-go's ``ListerWatcher``, kubernetes
    ``staging/src/k8s.io/client-go/tools/cache/listwatch.go``);
    :class:`~zeroserve.kube.client.KubeClient` is the one implementation."""

    async def list(
        self,
        ref: ResourceRef,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> ObjectList:
        """Every matching object, with the list's resourceVersion."""

    def watch(
        self,
        ref: ResourceRef,
        namespace: str | None = None,
        *,
        resource_version: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncGenerator[tuple[str, Obj], None]:
        """(type, object) events after ``resource_version`` until the API ends the stream."""


def not_synced(caches: Iterable[WatchCache], timeout: float) -> KubeError:
    """The error for caches that did not list within ``timeout``: each one and why
    (RBAC, a missing CRD, an unreachable API)."""
    pending = [
        f"{cache}" + (f" ({cache.last_error})" if cache.last_error else "")
        for cache in caches
        if not cache.synced.is_set()
    ]
    return KubeError(f"Kubernetes caches not synced within {timeout:g}s: {'; '.join(pending)}")


class Backoff:
    """Exponential delays with jitter: ``initial`` doubling up to ``cap``, each drawn from
    [50%, 100%] of its step so that many clients do not retry in lockstep."""

    def __init__(
        self,
        initial: float = 0.1,
        cap: float = 10.0,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.initial = initial
        self.cap = cap
        self._rng = rng
        self._attempts = 0

    def next(self) -> float:
        step = min(self.cap, self.initial * 2.0 ** min(self._attempts, 32))
        self._attempts += 1
        return step * (0.5 + 0.5 * self._rng())

    def reset(self) -> None:
        self._attempts = 0


class WatchCache:
    """The matching objects of one resource, kept current in memory (an informer).

    ``start()`` runs one task: LIST, then WATCH from the list's resourceVersion, forever.
    ``objects`` and ``get`` are plain memory reads. ``synced`` is set after the first list
    and stays set: when the API is unreachable the cache keeps serving its last contents
    while it reconnects (backoff 0.1 s doubling to 10 s, jittered) from the last
    resourceVersion; a 410 Expired makes it re-list and emit the differences. Callbacks
    (``on_change``) run synchronously after each change is applied, with (type, object):
    ADDED, MODIFIED or DELETED (the last state seen)."""

    def __init__(
        self,
        client: ListerWatcher,
        ref: ResourceRef,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
        backoff: Backoff | None = None,
    ) -> None:
        self.client = client
        self.ref = ref
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.timeout_seconds = timeout_seconds
        self.objects: dict[ObjectKey, Obj] = {}
        self.synced = asyncio.Event()
        self.resource_version = ""
        self.last_error: KubeError | None = None
        """Why the last list or watch failed; None once one succeeds again."""
        self._backoff = backoff or Backoff()
        self._callbacks: list[ChangeCallback] = []
        self._task: asyncio.Task[None] | None = None

    def __str__(self) -> str:
        where = describe(self.ref, self.namespace)
        return f"{where} [{self.label_selector}]" if self.label_selector else where

    def get(self, namespace: str | None, name: str) -> Obj | None:
        return self.objects.get((namespace or "", name))

    def on_change(self, callback: ChangeCallback) -> None:
        self._callbacks.append(callback)

    # ----- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"watch-cache {self}")

    async def stop(self) -> None:
        """Cancel the watch task and wait for it; the contents stay readable."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # stop() itself was cancelled: let that through

    async def wait_synced(self, timeout: float) -> None:
        """Wait for the first list; a :class:`KubeError` naming the last failure if it
        does not complete within ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                await self.synced.wait()
        except TimeoutError:
            cause = f": {self.last_error}" if self.last_error else ""
            raise KubeError(f"{self}: not synced within {timeout:g}s{cause}") from None

    async def __aenter__(self) -> WatchCache:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ----- the loop ------------------------------------------------------------------------

    async def _run(self) -> None:
        relist = True
        while True:
            listed = False
            try:
                if relist:
                    await self._relist()
                    relist, listed = False, True
                delivered = await self._watch_once()
                if delivered:
                    self._backoff.reset()
                    continue
                # A stream that ended without a single event or bookmark: do not spin on
                # an API that accepts watches and closes them at once.
                await asyncio.sleep(self._backoff.next())
            except Expired as exc:
                relist = True
                if listed:
                    # Even a watch from a fresh list expired: re-listing at once would only
                    # hammer an API (or a proxy) that keeps answering 410.
                    delay = self._backoff.next()
                    log.warning("%s (right after a list); re-listing in %.1fs", exc, delay)
                    await asyncio.sleep(delay)
                else:
                    log.info("%s; re-listing", exc)
            except KubeError as exc:
                self.last_error = exc
                delay = self._backoff.next()
                level = logging.WARNING if isinstance(exc, Unavailable) else logging.ERROR
                log.log(level, "%s; retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
            except Exception:
                # A bug or a malformed object: keep serving what we have, start over clean.
                delay = self._backoff.next()
                log.exception("%s: watch loop failed; re-listing in %.1fs", self, delay)
                relist = True
                await asyncio.sleep(delay)

    async def _relist(self) -> None:
        listing = await self.client.list(
            self.ref,
            self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
        )
        self.last_error = None
        self._backoff.reset()
        fresh = {object_key(obj): obj for obj in listing.items}
        # Everything that changed while we were not watching becomes an event, so that
        # consumers converge exactly as if they had seen the stream.
        for key in [k for k in self.objects if k not in fresh]:
            self._emit("DELETED", self.objects.pop(key))
        for key, obj in fresh.items():
            old = self.objects.get(key)
            self.objects[key] = obj
            if old is None:
                self._emit("ADDED", obj)
            elif _rv(old) != _rv(obj):
                self._emit("MODIFIED", obj)
        self.resource_version = listing.resource_version
        if not self.synced.is_set():
            log.info("%s: synced, %d objects", self, len(self.objects))
        self.synced.set()

    async def _watch_once(self) -> bool:
        """Follow one watch stream to its end; True if it delivered anything."""
        delivered = False
        events = self.client.watch(
            self.ref,
            self.namespace,
            resource_version=self.resource_version,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            timeout_seconds=self.timeout_seconds,
        )
        async with contextlib.aclosing(events):
            async for kind, obj in events:
                if not delivered:
                    delivered = True
                    self.last_error = None
                self._apply(kind, obj)
        return delivered

    def _apply(self, kind: str, obj: Obj) -> None:
        if kind in ("ADDED", "MODIFIED"):
            self.objects[object_key(obj)] = obj
        elif kind == "DELETED":
            self.objects.pop(object_key(obj), None)
        elif kind != "BOOKMARK":
            log.warning("%s: ignoring a watch event of unknown type %r", self, kind)
            return
        # A bookmark only moves the resume point, so a re-watch does not replay old events.
        self.resource_version = _rv(obj) or self.resource_version
        if kind != "BOOKMARK":
            self._emit(kind, obj)

    def _emit(self, kind: str, obj: Obj) -> None:
        for callback in self._callbacks:
            try:
                callback(kind, obj)
            except Exception:
                log.exception("%s: change callback %r failed on %s", self, callback, kind)


def _rv(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")
