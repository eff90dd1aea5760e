"""The Kubernetes API client: one set of calls on plain JSON objects for every resource.

``kubernetes_asyncio`` does what it is good at (kubeconfig and in-cluster loading, auth,
TLS, the aiohttp session); :class:`KubeClient` speaks the REST protocol itself on plain
dicts, so Deployments, EndpointSlices, Pods, ConfigMaps, Leases and custom resources all
go through the same few calls. Every failure is raised as a
:class:`~zeroserve.kube.errors.KubeError`.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config

from zeroserve.api.objects import Obj
from zeroserve.kube.errors import (
    CONNECTION_ERRORS,
    KubeError,
    Unavailable,
    connection_error,
    status_error,
)
from zeroserve.kube.resources import (
    DEPLOYMENTS,
    JSON,
    MERGE_PATCH,
    ObjectList,
    ResourceRef,
    describe,
)
from zeroserve.kube.watch import WatchCache

DEFAULT_REQUEST_TIMEOUT = 10.0


def _query(**params: str | int | bool | None) -> dict[str, str]:
    # The apiserver wants "true"/"false"; Python's str(True) is "True".
    return {
        key: ("true" if value else "false") if isinstance(value, bool) else str(value)
        for key, value in params.items()
        if value is not None
    }


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
                    raise connection_error(exc, what, self.request_timeout) from exc
            except CONNECTION_ERRORS as exc:
                raise connection_error(exc, what, self.request_timeout) from exc
        if not 200 <= response.status < 300:
            raise status_error(response.status, raw, what, response.headers.get("Retry-After"))
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            raise KubeError(f"{what}: the API answered with undecodable JSON") from None

    async def get(self, ref: ResourceRef, namespace: str | None, name: str) -> Obj:
        obj: Obj = await self.request(
            "GET", ref.path(namespace, name), f"get {describe(ref, namespace, name)}"
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
        what = f"list {describe(ref, namespace)}"
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
        what = f"create {describe(ref, ns, meta.get('name') or meta.get('generateName', ''))}"
        created: Obj = await self.request("POST", ref.path(ns), what, body=obj)
        return created

    async def replace(self, ref: ResourceRef, obj: Obj) -> Obj:
        """PUT the whole object. With ``metadata.resourceVersion`` set (as read), a write
        that lost a race raises :class:`Conflict`: re-read and try again."""
        meta = obj["metadata"]
        ns, name = meta.get("namespace"), meta["name"]
        replaced: Obj = await self.request(
            "PUT", ref.path(ns, name), f"replace {describe(ref, ns, name)}", body=obj
        )
        return replaced

    async def patch(self, ref: ResourceRef, namespace: str | None, name: str, patch: Obj) -> Obj:
        """JSON merge patch (RFC 7386): maps merge, ``None`` deletes, lists are replaced.
        (Custom resources reject strategic merge patch, so it is not offered.)"""
        patched: Obj = await self.request(
            "PATCH",
            ref.path(namespace, name),
            f"patch {describe(ref, namespace, name)}",
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
            f"patch status of {describe(ref, namespace, name)}",
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
            f"delete {describe(ref, namespace, name)}",
            query=_query(propagationPolicy=propagation_policy),
        )

    async def get_scale(self, namespace: str, name: str, *, ref: ResourceRef = DEPLOYMENTS) -> int:
        """``spec.replicas`` as the ``/scale`` subresource reports it."""
        scale = await self.request(
            "GET",
            ref.path(namespace, name, "scale"),
            f"get scale of {describe(ref, namespace, name)}",
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
            f"scale {describe(ref, namespace, name)} to {replicas}",
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
        what = f"watch {describe(ref, namespace)}"
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
        except CONNECTION_ERRORS as exc:
            raise connection_error(exc, what, self.request_timeout) from exc
        try:
            if response.status != 200:
                try:
                    async with asyncio.timeout(self.request_timeout):
                        raw = await response.read()
                except CONNECTION_ERRORS as exc:
                    raise connection_error(exc, what, self.request_timeout) from exc
                raise status_error(response.status, raw, what, response.headers.get("Retry-After"))
            pending = bytearray()
            while True:
                try:
                    async with asyncio.timeout(idle_timeout):
                        chunk = await response.content.readany()
                except CONNECTION_ERRORS as exc:
                    raise connection_error(exc, what, idle_timeout) from exc
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
                        raise status_error(int(obj.get("code") or 500), obj, what)
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
