"""The autoscaler's Kubernetes adapters: which revisions exist, their ready pods, replicas.

They implement ``RevisionSource``, ``PodSource`` and ``ReplicaScaler`` (``autoscaler.model``)
on ``zeroserve.kube`` watch caches, so everything the multiscaler reads on a tick is a
memory read; the one API call is the ``/scale`` patch that applies a decision.

Names follow Knative: a revision ``r`` runs as Deployment ``r-deployment``; its pods are
published by the private Service ``r-private``, whose EndpointSlices carry the Service's
``serving.knative.dev/revision`` label; ports are named ``http`` (or ``http2``, h2c) for
the queue-proxy and ``http-autometric`` for its stats. The objects are mapped to
``zeroserve.topology`` values by ``zeroserve.knative``, shared with the activator.

Typical wiring (``python -m autoscaler``)::

    client = await zeroserve.kube.connect(kubeconfig)
    sources = await start_kubernetes_sources(client, sync_timeout=30)
    try:
        run_multiscaler(sources.revisions, sources.endpoints, sources.scaler)
    finally:
        await sources.stop()
        await client.close()
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType

from autoscaler.model import Endpoint, RevisionInfo, RevisionKey, ScaleError
from zeroserve.api.objects import Obj
from zeroserve.knative import (
    CONFIGURATION_LABEL,
    DEFAULT_STATS_PORT,
    REVISION_LABEL,
    ROUTING_STATE_LABEL,
    SERVICE_LABEL,
    SERVING_PORT_NAMES,
    STATS_PORT_NAME,
    deployment_name,
    is_private_slice,
    pod_started_at,
    revision_info,
    revision_key,
    serving_port,
    slice_endpoints,
    slice_revision,
)
from zeroserve.kube import (
    DEPLOYMENTS,
    ENDPOINT_SLICES,
    PODS,
    REVISIONS,
    Conflict,
    KubeClient,
    KubeError,
    NotFound,
    ObjectKey,
    Unavailable,
    WatchCache,
    not_synced,
    object_key,
)

__all__ = [
    "CONFIGURATION_LABEL",
    "DEFAULT_STATS_PORT",
    "REVISION_LABEL",
    "ROUTING_STATE_LABEL",
    "SERVICE_LABEL",
    "SERVING_PORT_NAMES",
    "STATS_PORT_NAME",
    "KubeEndpoints",
    "KubeReplicaScaler",
    "KubeRevisionSource",
    "KubernetesSources",
    "deployment_name",
    "pod_started_at",
    "ready_addresses",
    "revision_info",
    "start_kubernetes_sources",
]

log = logging.getLogger(__name__)


class _CacheOwner:
    """Starts and stops the watch caches an adapter reads."""

    caches: tuple[WatchCache, ...] = ()

    @property
    def synced(self) -> bool:
        return all(cache.synced.is_set() for cache in self.caches)

    def start(self) -> None:
        for cache in self.caches:
            cache.start()

    async def stop(self) -> None:
        for cache in self.caches:
            await cache.stop()


# ----- revisions ---------------------------------------------------------------------------


class KubeRevisionSource(_CacheOwner):
    """``RevisionSource`` from a watch of Revisions (all namespaces unless one is given)."""

    def __init__(self, client: KubeClient, namespace: str | None = None) -> None:
        self.cache = client.watch_cache(REVISIONS, namespace)
        self.caches = (self.cache,)
        # Copy-on-write: revisions change rarely and are read every tick, so readers get
        # an immutable snapshot that no later change can alter under their iteration.
        self._infos: Mapping[RevisionKey, RevisionInfo] = MappingProxyType({})
        self.cache.on_change(self._changed)

    def revisions(self) -> Mapping[RevisionKey, RevisionInfo]:
        return self._infos

    def _changed(self, kind: str, obj: Obj) -> None:
        infos = dict(self._infos)
        key = revision_key(obj)
        if kind == "DELETED":
            infos.pop(key, None)
        else:
            infos[key] = revision_info(obj)
        self._infos = MappingProxyType(infos)


# ----- endpoints ---------------------------------------------------------------------------


def ready_addresses(endpoint_slice: Obj) -> list[Endpoint]:
    """The slice's endpoints that take traffic: ready (the API reads a missing ``ready``
    as ready) and not terminating, on the queue-proxy's serving port. Start times are
    not known here (0): ``KubeEndpoints`` adds them from its Pod cache when read."""
    return [e for e in slice_endpoints(endpoint_slice, {}) if e.ready]


class KubeEndpoints(_CacheOwner):
    """``PodSource`` from watches of the revisions' EndpointSlices and Pods."""

    def __init__(self, client: KubeClient, namespace: str | None = None) -> None:
        self.slices = client.watch_cache(ENDPOINT_SLICES, namespace, label_selector=REVISION_LABEL)
        self.pods = client.watch_cache(PODS, namespace, label_selector=REVISION_LABEL)
        self.caches = (self.slices, self.pods)
        # Slices are parsed once per change, not once per tick: revision -> slice -> ready.
        self._ready: dict[RevisionKey, dict[ObjectKey, list[Endpoint]]] = {}
        self._slice_revision: dict[ObjectKey, RevisionKey] = {}
        self.slices.on_change(self._slice_changed)

    def ready_pods(self, key: RevisionKey) -> list[Endpoint] | None:
        if not self.synced:
            return None
        merged: dict[str, Endpoint] = {}
        for endpoints in self._ready.get(key, {}).values():
            for e in endpoints:
                # During a slice handover the same pod can briefly appear in two slices.
                if e.name not in merged:
                    # Start times are read now: a Pod may reach its cache after its slice.
                    merged[e.name] = replace(
                        e, started_at=pod_started_at(self.pods.get(key.namespace, e.name))
                    )
        return sorted(merged.values(), key=lambda e: e.name)

    def _slice_changed(self, kind: str, obj: Obj) -> None:
        slice_key = object_key(obj)
        previous = self._slice_revision.pop(slice_key, None)
        if previous is not None:
            by_slice = self._ready.get(previous, {})
            by_slice.pop(slice_key, None)
            if not by_slice:
                self._ready.pop(previous, None)
        key = slice_revision(obj)
        # Only the private Service's slices are replicas (the public one's
        # may list activators).
        if kind == "DELETED" or key is None or not is_private_slice(obj):
            return
        if serving_port(obj) is None:
            log.warning(
                "EndpointSlice %s has no port named %s; ignoring it",
                "/".join(slice_key),
                " or ".join(SERVING_PORT_NAMES),
            )
        self._slice_revision[slice_key] = key
        self._ready.setdefault(key, {})[slice_key] = ready_addresses(obj)


# ----- replicas ----------------------------------------------------------------------------


class KubeReplicaScaler(_CacheOwner):
    """``ReplicaScaler`` on the revisions' Deployments: reads from a watch, writes ``/scale``."""

    def __init__(
        self, client: KubeClient, namespace: str | None = None, *, conflict_attempts: int = 3
    ) -> None:
        if conflict_attempts < 1:
            raise ValueError(f"conflict_attempts must be at least 1, not {conflict_attempts}")
        self.client = client
        self.deployments = client.watch_cache(DEPLOYMENTS, namespace, label_selector=REVISION_LABEL)
        self.caches = (self.deployments,)
        self.conflict_attempts = conflict_attempts

    def current_scale(self, key: RevisionKey) -> int | None:
        deployment = self.deployments.get(key.namespace, deployment_name(key.name))
        if deployment is None:
            return None
        replicas = (deployment.get("spec") or {}).get("replicas")
        return 1 if replicas is None else int(replicas)  # the API's default is 1

    async def set_scale(self, key: RevisionKey, replicas: int) -> None:
        name = deployment_name(key.name)
        target = f"cannot scale revision {key} (Deployment {key.namespace}/{name}) to {replicas}"
        last_conflict: Conflict | None = None
        for attempt in range(1, self.conflict_attempts + 1):
            try:
                await self.client.set_scale(key.namespace, name, replicas)
                return
            except Conflict as exc:
                # A merge patch of /scale carries no resourceVersion, so a conflict is the
                # API's own optimistic update losing a race: sending it again is safe.
                log.info(
                    "%s: conflict (attempt %d of %d): %s",
                    target,
                    attempt,
                    self.conflict_attempts,
                    exc,
                )
                last_conflict = exc
            except NotFound as exc:
                raise ScaleError(f"{target}: the Deployment does not exist") from exc
            except Unavailable as exc:
                raise ScaleError(f"{target}: the Kubernetes API is unavailable: {exc}") from exc
            except KubeError as exc:
                raise ScaleError(f"{target}: {exc}") from exc
        raise ScaleError(
            f"{target}: still conflicting after {self.conflict_attempts} attempts"
        ) from last_conflict


# ----- all three ---------------------------------------------------------------------------


class KubernetesSources:
    """The three adapters over one client (one namespace, or all), started together."""

    def __init__(self, client: KubeClient, namespace: str | None = None) -> None:
        self.revisions = KubeRevisionSource(client, namespace)
        self.endpoints = KubeEndpoints(client, namespace)
        self.scaler = KubeReplicaScaler(client, namespace)
        self.caches = (*self.revisions.caches, *self.endpoints.caches, *self.scaler.caches)

    def start(self) -> None:
        for cache in self.caches:
            cache.start()

    async def stop(self) -> None:
        for cache in reversed(self.caches):
            await cache.stop()

    async def wait_synced(self, timeout: float) -> None:
        """Wait for every first list; a ``KubeError`` naming the caches that did not make
        it in ``timeout`` seconds and why (RBAC, a missing CRD, an unreachable API)."""
        try:
            async with asyncio.timeout(timeout):
                for cache in self.caches:
                    await cache.synced.wait()
        except TimeoutError:
            raise not_synced(self.caches, timeout) from None

    async def __aenter__(self) -> KubernetesSources:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def start_kubernetes_sources(
    client: KubeClient, namespace: str | None = None, *, sync_timeout: float = 30.0
) -> KubernetesSources:
    """Start the sources and wait until their caches are synced (stopped again on failure)."""
    sources = KubernetesSources(client, namespace)
    sources.start()
    try:
        await sources.wait_synced(sync_timeout)
    except BaseException:
        await sources.stop()
        raise
    return sources
