"""Kubernetes Events for the controller: what it did to an object, shown by ``kubectl describe``.

:class:`EventRecorder` writes core/v1 Events (``apiVersion: v1, kind: Event``) the way
client-go's recorder does for Knative's controllers: ``record.EventRecorder`` and its
broadcaster (kubernetes ``staging/src/k8s.io/client-go/tools/record/event.go``) and the
``EventCorrelator`` (``staging/src/k8s.io/client-go/tools/record/events_cache.go``). This
is a re-implementation of that behaviour on :class:`~zeroserve.kube.client.KubeClient`,
not a port of the code.

* :meth:`EventRecorder.event` is synchronous and never blocks: it builds the Event and puts
  it on a bounded queue. When the queue is full the event is dropped and counted
  (:attr:`EventRecorder.dropped`), with one warning per burst of drops. A reconcile loop
  must never wait on, or fail because of, an Event.
* One worker task (:meth:`EventRecorder.start`, :meth:`EventRecorder.stop`) writes the
  queue to the API in order.
* Identical events are aggregated, like client-go's ``eventLogger``: an event with the
  same involved object (apiVersion, kind, namespace, name, uid), type, reason, message and
  source as one already written PATCHes that Event (``count`` + 1, ``lastTimestamp``)
  instead of creating another. The written Events are remembered in an LRU of
  :data:`MAX_LRU_ENTRIES` keys (client-go's ``maxLruCacheEntries``). When the PATCH finds
  no Event (the API expires Events after an hour by default, or someone deleted it), the
  Event is created again under its name with the count carried on, as client-go does.
  client-go's other correlator stages (aggregating *similar* events whose messages
  differ, and the per-object token-bucket spam filter) are not implemented.
* Events are best effort. A write that fails for want of an answer (connection errors,
  timeouts, 429, 5xx) is tried :data:`MAX_ATTEMPTS` times with a short backoff, then
  given up with a warning; nothing is ever raised to the caller. A 403 is logged once as
  a warning naming the missing RBAC permission ("events create" / "events patch"), later
  ones at debug level, so a controller without the permission keeps working quietly.

Field values follow client-go's ``makeEvent``: the Event lives in the object's namespace
(``default`` for cluster-scoped objects), is named ``<object name>.<unix nanoseconds in
hex>``, carries ``source`` {component, host} and the matching ``reportingComponent`` /
``reportingInstance``, ``firstTimestamp``/``lastTimestamp`` in RFC 3339 at seconds
precision, ``count`` and a null ``eventTime`` (the core/v1 shape, not events.k8s.io/v1).

The recorder is not thread-safe: call :meth:`EventRecorder.event` from the event loop's
thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from zeroserve.api.objects import Obj
from zeroserve.kube.errors import AlreadyExists, KubeError, NotFound, Unavailable
from zeroserve.kube.resources import ResourceRef

log = logging.getLogger(__name__)

EVENTS = ResourceRef("", "v1", "events")
"""core/v1 Events (not ``events.k8s.io``): what ``kubectl describe`` lists."""

NORMAL = "Normal"
WARNING = "Warning"
EVENT_TYPES = (NORMAL, WARNING)

MAX_LRU_ENTRIES = 4096
"""Keys of written Events remembered for aggregation (client-go's ``maxLruCacheEntries``)."""
MESSAGE_LIMIT = 1024
"""Longest message written, in characters (events.k8s.io/v1 caps ``note`` at 1 KiB)."""
MAX_ATTEMPTS = 3
"""Tries per write when the API gives no usable answer (connection error, 429, 5xx)."""
DEFAULT_QUEUE_LIMIT = 1000
DEFAULT_STOP_TIMEOUT = 2.0
MAX_NAME_LENGTH = 253
_NAME_SUFFIX_LENGTH = 17  # "." and 16 hex digits

EventKey = tuple[str, ...]
"""What makes two events identical: source, involved object, type, reason, message."""


class EventSink(Protocol):
    """The two calls the recorder makes; :class:`~zeroserve.kube.client.KubeClient` is one."""

    async def create(self, ref: ResourceRef, obj: Obj, namespace: str | None = None) -> Obj: ...

    async def patch(
        self, ref: ResourceRef, namespace: str | None, name: str, patch: Obj
    ) -> Obj: ...


@dataclass(frozen=True)
class _Pending:
    """An event waiting in the queue: the Event to create if it is new, and its key."""

    key: EventKey
    body: Obj
    timestamp: str


@dataclass(frozen=True)
class _Written:
    """What the LRU remembers of an Event in the API."""

    namespace: str
    name: str
    count: int
    first_timestamp: str


def rfc3339(seconds: float) -> str:
    """``2024-05-01T12:00:00Z``: the API's time format at seconds precision."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _event_name(object_name: str, nanos: int) -> str:
    # client-go: name + "." + UnixNano in hex. Kept within a DNS subdomain's 253 characters;
    # a cut name must not end in "-" or "." before the suffix.
    prefix = object_name[: MAX_NAME_LENGTH - _NAME_SUFFIX_LENGTH]
    if len(prefix) < len(object_name):
        prefix = prefix.rstrip("-.")
    return f"{prefix}.{nanos:016x}"


class EventRecorder:
    """Records Events about objects; see the module docstring for the behaviour."""

    def __init__(
        self,
        client: EventSink,
        component: str = "controller",
        host: str = "",
        queue_limit: int = DEFAULT_QUEUE_LIMIT,
        clock: Callable[[], float] = time.time,
        *,
        cache_size: int = MAX_LRU_ENTRIES,
        retry_delay: float = 0.2,
    ) -> None:
        if queue_limit < 1:
            raise ValueError(f"queue_limit must be at least 1, not {queue_limit}")
        if cache_size < 1:
            raise ValueError(f"cache_size must be at least 1, not {cache_size}")
        self._client = client
        self.component = component
        """``source.component`` and ``reportingComponent`` of every Event."""
        self.host = host
        """``source.host`` and ``reportingInstance``: the pod's name."""
        self._clock = clock
        self._cache_size = cache_size
        self._retry_delay = retry_delay
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=queue_limit)
        self._written: OrderedDict[EventKey, _Written] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self._last_nanos = 0
        self._dropping = False
        self._forbidden_warned = False
        self.dropped = 0
        """Events dropped because the queue was full, since the recorder was made."""

    # ----- the caller's side -----------------------------------------------------------

    def event(self, obj: Mapping[str, Any], type: str, reason: str, message: str) -> None:
        """Record an event about ``obj`` (a Kubernetes object as a dict). Never blocks and
        never raises, except ValueError for a ``type`` other than Normal or Warning."""
        if type not in EVENT_TYPES:
            raise ValueError(f"event type must be {NORMAL!r} or {WARNING!r}, not {type!r}")
        meta = obj.get("metadata") or {}
        name = str(meta.get("name") or "")
        if not name:
            # client-go logs "Could not construct reference" and records nothing.
            log.warning(
                "event %s %s not recorded: the object has no metadata.name (%s %s)",
                type,
                reason,
                obj.get("kind", "?"),
                message[:200],
            )
            return
        now = self._clock()
        nanos = max(int(now * 1e9), self._last_nanos + 1)  # unique even on a coarse clock
        self._last_nanos = nanos
        timestamp = rfc3339(now)
        message = message[:MESSAGE_LIMIT]
        involved = {
            "apiVersion": str(obj.get("apiVersion") or ""),
            "kind": str(obj.get("kind") or ""),
            "name": name,
            "namespace": str(meta.get("namespace") or ""),
            "uid": str(meta.get("uid") or ""),
            "resourceVersion": str(meta.get("resourceVersion") or ""),
        }
        namespace = involved["namespace"] or "default"
        body: Obj = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": _event_name(name, nanos), "namespace": namespace},
            # Empty fields are left out, as the API omits them (cluster-scoped: no namespace).
            "involvedObject": {k: v for k, v in involved.items() if v},
            "reason": reason,
            "message": message,
            "type": type,
            "source": {"component": self.component, **({"host": self.host} if self.host else {})},
            "reportingComponent": self.component,
            "reportingInstance": self.host,
            "firstTimestamp": timestamp,
            "lastTimestamp": timestamp,
            "count": 1,
            "eventTime": None,
        }
        key: EventKey = (
            self.component,
            self.host,
            involved["apiVersion"],
            involved["kind"],
            involved["namespace"],
            name,
            involved["uid"],
            type,
            reason,
            message,
        )
        log.debug(
            "event %s %s on %s %s/%s: %s", type, reason, involved["kind"], namespace, name, message
        )
        try:
            self._queue.put_nowait(_Pending(key, body, timestamp))
        except asyncio.QueueFull:
            self.dropped += 1
            if not self._dropping:
                self._dropping = True
                log.warning(
                    "event queue full (%d waiting): dropping events until the writer catches "
                    "up (%d dropped so far)",
                    self._queue.qsize(),
                    self.dropped,
                )
            return
        if self._dropping:
            self._dropping = False
            log.info("event queue accepting events again (%d dropped so far)", self.dropped)

    def normal(self, obj: Mapping[str, Any], reason: str, message: str) -> None:
        """:meth:`event` of type Normal."""
        self.event(obj, NORMAL, reason, message)

    def warning(self, obj: Mapping[str, Any], reason: str, message: str) -> None:
        """:meth:`event` of type Warning."""
        self.event(obj, WARNING, reason, message)

    @property
    def pending(self) -> int:
        """Events queued and not yet written."""
        return self._queue.qsize()

    # ----- the worker ------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start the worker that writes queued events (again after a stop); idempotent."""
        if not self.running:
            self._task = asyncio.create_task(self._run(), name="event-recorder")

    async def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """Write what is queued (for at most ``timeout`` seconds), then stop the worker.
        Events still queued stay queued (a later :meth:`start` writes them)."""
        task, self._task = self._task, None
        if task is None:
            return
        if not task.done():
            try:
                async with asyncio.timeout(timeout):
                    await self._queue.join()
            except TimeoutError:
                log.warning(
                    "event recorder stopping with %d events not written after %gs",
                    self._queue.qsize(),
                    timeout,
                )
        task.cancel()
        # wait() rather than awaiting the task: a cancellation of stop() itself propagates.
        await asyncio.wait([task])

    async def _run(self) -> None:
        while True:
            pending = await self._queue.get()
            try:
                await self._write(pending)
            except Exception:  # events are best effort: the worker must live on
                log.warning("writing an event failed unexpectedly", exc_info=True)
            finally:
                self._queue.task_done()

    async def _write(self, pending: _Pending) -> None:
        body = pending.body
        seen = self._written.get(pending.key)
        if seen is not None:
            self._written.move_to_end(pending.key)
            count = seen.count + 1
            patch: Obj = {"count": count, "lastTimestamp": pending.timestamp}
            try:
                await self._attempts(
                    lambda: self._client.patch(EVENTS, seen.namespace, seen.name, patch)
                )
            except NotFound:
                # Expired or deleted: create it again, its name and count carried on.
                body = {
                    **body,
                    "metadata": {"name": seen.name, "namespace": seen.namespace},
                    "count": count,
                    "firstTimestamp": seen.first_timestamp,
                }
            except KubeError as exc:
                self._failed("patch", seen.namespace, seen.name, exc)
                return
            else:
                self._remember(
                    pending.key, _Written(seen.namespace, seen.name, count, seen.first_timestamp)
                )
                return
        meta = body["metadata"]
        try:
            await self._attempts(lambda: self._client.create(EVENTS, body))
        except KubeError as exc:
            self._written.pop(pending.key, None)
            self._failed("create", meta["namespace"], meta["name"], exc)
            return
        self._remember(
            pending.key,
            _Written(meta["namespace"], meta["name"], int(body["count"]), body["firstTimestamp"]),
        )

    def _remember(self, key: EventKey, written: _Written) -> None:
        self._written[key] = written
        self._written.move_to_end(key)
        while len(self._written) > self._cache_size:
            self._written.popitem(last=False)

    async def _attempts(self, call: Callable[[], Awaitable[Obj]]) -> Obj:
        """``call()``, tried up to :data:`MAX_ATTEMPTS` times while the API gives no usable
        answer; any other error is raised at once."""
        attempt = 1
        while True:
            try:
                return await call()
            except Unavailable as exc:
                if attempt >= MAX_ATTEMPTS:
                    raise
                delay = self._retry_delay * 2 ** (attempt - 1)
                if exc.retry_after is not None:
                    delay = max(delay, min(exc.retry_after, 5.0))
                log.debug("writing an event (attempt %d): %s; again in %gs", attempt, exc, delay)
                await asyncio.sleep(delay)
                attempt += 1

    def _failed(self, verb: str, namespace: str, name: str, exc: KubeError) -> None:
        if exc.status == 403:
            if "being terminated" in str(exc):
                log.debug("event %s/%s not written: %s", namespace, name, exc)
            elif not self._forbidden_warned:
                self._forbidden_warned = True
                log.warning(
                    "event %s/%s not written: %s. The %s component lacks the RBAC permission "
                    '"events %s" (rule: apiGroups [""], resources ["events"], verbs ["create", '
                    '"patch"]); further refusals are logged at debug level',
                    namespace,
                    name,
                    exc,
                    self.component,
                    verb,
                )
            else:
                log.debug("event %s/%s not written (forbidden): %s", namespace, name, exc)
        elif isinstance(exc, AlreadyExists):
            log.debug("event %s/%s not written: %s", namespace, name, exc)
        elif isinstance(exc, Unavailable):
            log.warning(
                "event %s/%s not written after %d attempts: %s", namespace, name, MAX_ATTEMPTS, exc
            )
        else:
            log.warning("event %s/%s not written: %s", namespace, name, exc)
