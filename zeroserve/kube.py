"""Kubernetes access for zeroserve: one client on plain JSON objects, and watch caches.

This is the only module that imports ``kubernetes_asyncio``; it uses the library for what
it is good at (kubeconfig and in-cluster loading, auth, TLS, the aiohttp session) and
speaks the REST protocol itself on plain dicts, so Deployments, EndpointSlices, Pods,
ConfigMaps, Leases and custom resources all go through the same few calls.

Every failure leaves this module as a :class:`KubeError`; ``ApiException``, aiohttp and
timeout errors are translated here and nowhere else::

    KubeError                 anything the API refused, with .status and .reason
     ├── NotFound             404
     ├── Conflict             409: stale resourceVersion, or a precondition failed
     ├── AlreadyExists        409 with reason AlreadyExists (create of an existing name)
     ├── Invalid              400 / 422: the API will not accept this request as it is
     ├── Expired              410: a resourceVersion or continue token is too old; re-list
     └── Unavailable          connection refused/reset, timeouts, 429, 5xx: try again later

The data plane's hot path never calls the API: a :class:`WatchCache` LISTs once, then
WATCHes from the list's resourceVersion and keeps ``objects`` current in memory. When the
API goes away the cache keeps its last contents and reconnects with backoff; after a 410
it re-lists and reports the differences as events, so consumers converge.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import quote

import aiohttp
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.client.exceptions import ApiException

from zeroserve.api.objects import Obj

log = logging.getLogger(__name__)

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
ObjectKey = tuple[str, str]
"""(namespace, name) of an object; namespace is "" for cluster-scoped ones."""
ChangeCallback = Callable[[str, Obj], None]

DEFAULT_REQUEST_TIMEOUT = 10.0


@dataclass(frozen=True)
class ResourceRef:
    """One REST resource: where its objects live in the API."""

    group: str
    """API group, "" for the core group (pods, services, configmaps)."""
    version: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        """The URL path; without a namespace a namespaced resource is listed cluster-wide."""
        path = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            path += f"/namespaces/{quote(namespace, safe='')}"
        elif self.namespaced and name is not None:
            raise ValueError(f"{self} is namespaced: {name!r} needs a namespace")
        path += f"/{self.plural}"
        if name is not None:
            path += f"/{quote(name, safe='')}"
        if subresource is not None:
            path += f"/{subresource}"
        return path

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


DEPLOYMENTS = ResourceRef("apps", "v1", "deployments")
ENDPOINT_SLICES = ResourceRef("discovery.k8s.io", "v1", "endpointslices")
PODS = ResourceRef("", "v1", "pods")
SERVICES = ResourceRef("", "v1", "services")
CONFIG_MAPS = ResourceRef("", "v1", "configmaps")
LEASES = ResourceRef("coordination.k8s.io", "v1", "leases")
KSERVICES = ResourceRef("serving.knative.dev", "v1", "services")
CONFIGURATIONS = ResourceRef("serving.knative.dev", "v1", "configurations")
REVISIONS = ResourceRef("serving.knative.dev", "v1", "revisions")
ROUTES = ResourceRef("serving.knative.dev", "v1", "routes")
VIRTUAL_SERVICES = ResourceRef("networking.istio.io", "v1beta1", "virtualservices")


# ----- errors ------------------------------------------------------------------------------


class KubeError(Exception):
    """A Kubernetes API call failed; the message names the object and the API's reason."""

    def __init__(self, message: str, *, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        """HTTP status the API answered, None when no answer arrived."""
        self.reason = reason
        """The Status ``reason`` (NotFound, Conflict, ...) or a short cause."""


class NotFound(KubeError):
    """404: the object (or its kind) does not exist."""


class Conflict(KubeError):
    """409 on a write: the object changed since it was read (stale resourceVersion)."""


class AlreadyExists(KubeError):
    """409 on a create: an object of that name exists."""


class Invalid(KubeError):
    """422: the API server refused the object (validation)."""


class Expired(KubeError):
    """410: the resourceVersion of a watch or list is too old; list again."""


class Unavailable(KubeError):
    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        reason: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, reason=reason)
        self.retry_after = retry_after
        """Seconds the API asked us to wait (429/503 Retry-After), if it said."""


def _describe(ref: ResourceRef, namespace: str | None, name: str | None = None) -> str:
    if name is None:
        return f"{ref} in {namespace}" if namespace else f"{ref} (all namespaces)"
    return f"{ref} {namespace}/{name}" if namespace else f"{ref} {name}"


def _status_error(
    code: int,
    body: bytes | str | Mapping[str, Any] | None,
    what: str,
    retry_after: str | None = None,
) -> KubeError:
    """The error for an API answer with a non-2xx code (or a watch ERROR event's Status)."""
    status: Mapping[str, Any] = {}
    text = ""
    if isinstance(body, Mapping):
        status = body
    elif body:
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        with contextlib.suppress(ValueError):
            decoded = json.loads(text)
            if isinstance(decoded, dict):
                status = decoded
    reason = str(status.get("reason") or f"HTTP {code}")
    message = f"{what}: {reason}: {status.get('message') or text.strip()[:200] or 'no details'}"
    if code == 404:
        return NotFound(message, status=code, reason=reason)
    if code == 409:
        cls = AlreadyExists if reason == "AlreadyExists" else Conflict
        return cls(message, status=code, reason=reason)
    if code in (400, 422):
        return Invalid(message, status=code, reason=reason)
    if code == 410:
        return Expired(message, status=code, reason=reason)
    if code == 429 or code >= 500:
        delay = None
        with contextlib.suppress(TypeError, ValueError):
            delay = float(retry_after) if retry_after is not None else None
        return Unavailable(message, status=code, reason=reason, retry_after=delay)
    return KubeError(message, status=code, reason=reason)


def _connection_error(exc: BaseException, what: str, timeout: float) -> Unavailable:
    if isinstance(exc, TimeoutError):
        return Unavailable(f"{what}: no answer from the API within {timeout:g}s", reason="Timeout")
    if isinstance(exc, ApiException):
        # Raised by the library itself only for requests it could not even send.
        return Unavailable(f"{what}: {exc.reason}", status=exc.status or None, reason="ClientError")
    return Unavailable(f"{what}: {type(exc).__name__}: {exc}", reason="ConnectionError")


_CONNECTION_ERRORS = (aiohttp.ClientError, TimeoutError, OSError, ApiException)


class ObjectList(NamedTuple):
    items: list[Obj]
    resource_version: str
    """The list's resourceVersion: watch from here to see every later change."""


def _query(**params: str | int | bool | None) -> dict[str, str]:
    # The apiserver wants "true"/"false"; Python's str(True) is "True".
    return {
        key: ("true" if value else "false") if isinstance(value, bool) else str(value)
        for key, value in params.items()
        if value is not None
    }


# ----- client ------------------------------------------------------------------------------


async def connect(
    kubeconfig: str | None = None,
    *,
    context: str | None = None,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
) -> KubeClient:
    """A client for the cluster in ``kubeconfig`` (default: ``$KUBECONFIG``), or for the
    cluster this pod runs in when neither is set; a :class:`KubeError` says which of these
    was tried and why it failed."""
    configuration = k8s.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG")
    try:
        if path:
            files = [p for p in path.split(os.pathsep) if p]
            missing = [p for p in files if not os.path.exists(os.path.expanduser(p))]
            if missing or not files:
                raise KubeError(f"kubeconfig {path!r}: no such file: {', '.join(missing)}")
            # persist_config=False: refreshed tokens must not be written back to the user's file.
            await k8s_config.load_kube_config(
                config_file=path,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            k8s_config.load_incluster_config(client_configuration=configuration)
        else:
            raise KubeError(
                "no Kubernetes configuration: pass a kubeconfig, set KUBECONFIG, "
                "or run in a pod (KUBERNETES_SERVICE_HOST is not set)"
            )
    except k8s_config.ConfigException as exc:
        source = f"kubeconfig {path!r}" if path else "in-cluster configuration"
        raise KubeError(f"{source}: {exc}") from None
    return KubeClient(k8s.ApiClient(configuration), request_timeout=request_timeout)


class KubeClient:
    """Typed-model-free access to the API; owns (and closes) its ``ApiClient``."""

    def __init__(
        self, api: k8s.ApiClient, *, request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    ) -> None:
        self._api = api
        self._api.user_agent = "zeroserve"
        self.request_timeout = request_timeout
        """Bound on each request (connect to last byte), so an unreachable API fails fast."""

    @property
    def host(self) -> str:
        return str(self._api.configuration.host)

    async def close(self) -> None:
        await self._api.close()

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _send(
        self, method: str, path: str, query: dict[str, str] | None, body: Any, content_type: str
    ) -> aiohttp.ClientResponse:
        """Open a request; the caller reads and releases the response."""
        response: aiohttp.ClientResponse = await self._api.call_api(
            path,
            method,
            query_params=query or None,
            header_params={"Accept": JSON, "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
            _preload_content=False,
        )
        return response

    async def request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        query: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = JSON,
    ) -> Any:
        """One API call; returns the decoded JSON answer or raises a :class:`KubeError`
        whose message starts with ``what`` (the object, as a person would name it)."""
        for attempt in (1, 2):
            try:
                async with asyncio.timeout(self.request_timeout):
                    response = await self._send(method, path, query, body, content_type)
                    try:
                        raw = await response.read()
                    finally:
                        response.release()
                break
            except aiohttp.ServerDisconnectedError as exc:
                # A pooled keep-alive connection the API closed (say, it restarted) fails
                # before any answer; GET and merge-patch are safe to send once more.
                if attempt == 2 or method not in ("GET", "PATCH"):
                    raise _connection_error(exc, what, self.request_timeout) from exc
            except _CONNECTION_ERRORS as exc:
                raise _connection_error(exc, what, self.request_timeout) from exc
        if not 200 <= response.status < 300:
            raise _status_error(response.status, raw, what, response.headers.get("Retry-After"))
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            raise KubeError(f"{what}: the API answered with undecodable JSON") from None

    async def get(self, ref: ResourceRef, namespace: str | None, name: str) -> Obj:
        obj: Obj = await self.request(
            "GET", ref.path(namespace, name), f"get {_describe(ref, namespace, name)}"
        )
        return obj

    async def list(
        self,
        ref: ResourceRef,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
    ) -> ObjectList:
        """Every matching object, fetched in pages (one consistent snapshot)."""
        what = f"list {_describe(ref, namespace)}"
        items: list[Obj] = []
        token: str | None = None
        while True:
            page = await self.request(
                "GET",
                ref.path(namespace),
                what,
                query=_query(
                    labelSelector=label_selector,
                    fieldSelector=field_selector,
                    limit=page_size,
                    **{"continue": token},
                ),
            )
            kind = str(page.get("kind", "")).removesuffix("List")
            for item in page.get("items") or ():
                # List items omit apiVersion/kind; watch events carry them. Make both alike.
                item.setdefault("apiVersion", ref.api_version)
                if kind:
                    item.setdefault("kind", kind)
                items.append(item)
            meta = page.get("metadata") or {}
            token = meta.get("continue") or None
            if token is None:
                return ObjectList(items, str(meta.get("resourceVersion", "")))

    async def create(self, ref: ResourceRef, obj: Obj, namespace: str | None = None) -> Obj:
        """Create ``obj`` in ``namespace`` (default: its ``metadata.namespace``)."""
        meta = obj.get("metadata") or {}
        ns = namespace or meta.get("namespace")
        if ref.namespaced and not ns:
            raise ValueError(f"creating {ref} {meta.get('name')!r} needs a namespace")
        what = f"create {_describe(ref, ns, meta.get('name') or meta.get('generateName', ''))}"
        created: Obj = await self.request("POST", ref.path(ns), what, body=obj)
        return created

    async def replace(self, ref: ResourceRef, obj: Obj) -> Obj:
        """PUT the whole object. With ``metadata.resourceVersion`` set (as read), a write
        that lost a race raises :class:`Conflict`: re-read and try again."""
        meta = obj["metadata"]
        ns, name = meta.get("namespace"), meta["name"]
        replaced: Obj = await self.request(
            "PUT", ref.path(ns, name), f"replace {_describe(ref, ns, name)}", body=obj
        )
        return replaced

    async def patch(self, ref: ResourceRef, namespace: str | None, name: str, patch: Obj) -> Obj:
        """JSON merge patch (RFC 7386): maps merge, ``None`` deletes, lists are replaced.
        (Custom resources reject strategic merge patch, so it is not offered.)"""
        patched: Obj = await self.request(
            "PATCH",
            ref.path(namespace, name),
            f"patch {_describe(ref, namespace, name)}",
            body=patch,
            content_type=MERGE_PATCH,
        )
        return patched

    async def patch_status(
        self, ref: ResourceRef, namespace: str | None, name: str, patch: Obj
    ) -> Obj:
        """Merge-patch the ``/status`` subresource (the main resource ignores status)."""
        patched: Obj = await self.request(
            "PATCH",
            ref.path(namespace, name, "status"),
            f"patch status of {_describe(ref, namespace, name)}",
            body=patch,
            content_type=MERGE_PATCH,
        )
        return patched

    async def delete(
        self,
        ref: ResourceRef,
        namespace: str | None,
        name: str,
        *,
        propagation_policy: str = "Background",
    ) -> None:
        await self.request(
            "DELETE",
            ref.path(namespace, name),
            f"delete {_describe(ref, namespace, name)}",
            query=_query(propagationPolicy=propagation_policy),
        )

    async def get_scale(self, namespace: str, name: str, *, ref: ResourceRef = DEPLOYMENTS) -> int:
        """``spec.replicas`` as the ``/scale`` subresource reports it."""
        scale = await self.request(
            "GET",
            ref.path(namespace, name, "scale"),
            f"get scale of {_describe(ref, namespace, name)}",
        )
        return int((scale.get("spec") or {}).get("replicas") or 0)

    async def set_scale(
        self, namespace: str, name: str, replicas: int, *, ref: ResourceRef = DEPLOYMENTS
    ) -> None:
        """Set ``spec.replicas`` through ``/scale``: the narrowest write, so it cannot
        clobber a concurrent change to the rest of the spec."""
        await self.request(
            "PATCH",
            ref.path(namespace, name, "scale"),
            f"scale {_describe(ref, namespace, name)} to {replicas}",
            body={"spec": {"replicas": replicas}},
            content_type=MERGE_PATCH,
        )

    async def watch(
        self,
        ref: ResourceRef,
        namespace: str | None = None,
        *,
        resource_version: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
        idle_timeout: float = 90.0,
    ) -> AsyncGenerator[tuple[str, Obj], None]:
        """(type, object) events after ``resource_version``, BOOKMARKs included, until the
        API ends the stream. An ERROR event is raised as its error (410: :class:`Expired`).
        A stream silent for ``idle_timeout`` (the apiserver bookmarks about once a minute)
        is taken for a dead connection: :class:`Unavailable`. Close with ``aclosing``."""
        what = f"watch {_describe(ref, namespace)}"
        query = _query(
            watch=True,
            allowWatchBookmarks=True,
            resourceVersion=resource_version,
            timeoutSeconds=timeout_seconds,
            labelSelector=label_selector,
            fieldSelector=field_selector,
        )
        try:
            async with asyncio.timeout(self.request_timeout):
                response = await self._send("GET", ref.path(namespace), query, None, JSON)
        except _CONNECTION_ERRORS as exc:
            raise _connection_error(exc, what, self.request_timeout) from exc
        try:
            if response.status != 200:
                try:
                    async with asyncio.timeout(self.request_timeout):
                        raw = await response.read()
                except _CONNECTION_ERRORS as exc:
                    raise _connection_error(exc, what, self.request_timeout) from exc
                raise _status_error(response.status, raw, what, response.headers.get("Retry-After"))
            pending = bytearray()
            while True:
                try:
                    async with asyncio.timeout(idle_timeout):
                        chunk = await response.content.readany()
                except _CONNECTION_ERRORS as exc:
                    raise _connection_error(exc, what, idle_timeout) from exc
                if not chunk:
                    return  # the API ended the stream (timeoutSeconds, restart, shutdown)
                pending += chunk
                *lines, rest = pending.split(b"\n")
                pending = bytearray(rest)
                for line in lines:
                    if not line.strip():
                        continue
                    try:
                        event = json.loads(line)
                        kind, obj = event["type"], event["object"]
                    except (ValueError, KeyError, TypeError):
                        raise Unavailable(
                            f"{what}: undecodable watch event {bytes(line[:200])!r}",
                            reason="BadEvent",
                        ) from None
                    if kind == "ERROR":
                        raise _status_error(int(obj.get("code") or 500), obj, what)
                    yield kind, obj
        finally:
            response.release()

    def watch_cache(
        self,
        ref: ResourceRef,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> WatchCache:
        """A :class:`WatchCache` of these objects (not started)."""
        return WatchCache(
            self, ref, namespace, label_selector=label_selector, field_selector=field_selector
        )


# ----- watch cache -------------------------------------------------------------------------


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


def object_key(obj: Obj) -> ObjectKey:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "", meta["name"])


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
        client: KubeClient,
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
        where = _describe(self.ref, self.namespace)
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
