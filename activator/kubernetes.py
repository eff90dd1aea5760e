"""The activator's Kubernetes sources: what watch caches of the cluster tell the activator.

``KubeActivatorSources`` keeps five ``zeroserve.kube`` watch caches and turns their
changes into the activator's control-plane calls (``activator.app``):

- Revisions -> ``put_revision`` / ``remove_revision``;
- Routes -> one ``RoutingTable`` from every route's ``status.traffic`` -> ``set_routes``;
- the EndpointSlices of the revisions' private Services, plus their Pods (start times)
  -> ``set_endpoints(revision, replicas)``, not-ready replicas included: the activator
  probes those and uses each the moment its queue-proxy answers (docs/activator.md);
- the EndpointSlices of the activator's own Service in the system namespace ->
  ``set_peers(index, count)``, so that each activator takes its share of the replicas of
  a revision with a concurrency limit (docs/activator.md, "The activator's share");
- the ConfigMaps ``config-observability`` and ``config-tracing`` of the system namespace
  -> ``observability`` (request logs, tracing; docs/observability.md), applied live; a
  version that does not parse is logged and the settings in force stay;
- the ConfigMap ``config-network`` of the system namespace -> ``set_mesh`` (its
  ``mesh-compatibility-mode``, with the revisions' private Service addresses
  ``<revision>-private.<namespace>.svc.<cluster domain>:80``; docs/activator.md, "Mesh
  mode"), applied live in the same way.

Nothing is pushed while the caches fill: once all of them have listed, the whole state is
applied in one go (peers, then revisions with their endpoints, then routes, so that a
host never points at a revision the activator does not know yet). From then on every
watch event pushes only what it changed, and a push that would change nothing is not
made (Pods report status churn all the time). Endpoints are only announced for revisions
that exist, so nothing is left behind for a deleted revision. When the API goes away the
caches keep their contents, so the activator keeps serving on the last known state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Protocol

from zeroserve.api.network import NETWORK, parse_mesh_mode
from zeroserve.api.objects import Obj
from zeroserve.envconfig import ConfigError
from zeroserve.knative import (
    CLUSTER_DOMAIN,
    REVISION_LABEL,
    SERVICE_NAME_LABEL,
    SERVING_PORT_NAMES,
    activator_peers,
    is_private_slice,
    private_service_name,
    revision_info,
    revision_key,
    route_from_status,
    serving_port,
    slice_endpoints,
    slice_revision,
)
from zeroserve.kube import (
    CONFIG_MAPS,
    ENDPOINT_SLICES,
    PODS,
    REVISIONS,
    ROUTES,
    KubeClient,
    ObjectKey,
    WatchCache,
    not_synced,
    object_key,
)
from zeroserve.observability import CONFIG_MAP as OBSERVABILITY
from zeroserve.observability import TRACING_CONFIG_MAP as TRACING
from zeroserve.observability import ObservabilityConfig
from zeroserve.topology import Endpoint, RevisionInfo, RevisionKey, Route

from .routing import RoutingTable

log = logging.getLogger(__name__)


class ActivatorSink(Protocol):
    """The control-plane calls of ``activator.app.Activator`` that the sources make."""

    def set_routes(self, table: RoutingTable) -> None: ...

    def put_revision(self, info: RevisionInfo) -> None: ...

    def remove_revision(self, key: RevisionKey) -> None: ...

    def set_endpoints(self, key: RevisionKey, endpoints: Sequence[Endpoint]) -> None: ...

    def set_peers(self, index: int, count: int) -> None: ...

    def set_mesh(
        self, mode: str, service_address: Callable[[RevisionKey], tuple[str, int]]
    ) -> None: ...

    observability: ObservabilityConfig


class _PodsIn(Mapping[str, Obj]):
    """The Pods of one namespace in the Pod cache, by name, read in place (no copy: a
    revision's endpoints are recomputed on every change of one of its Pods)."""

    def __init__(self, cache: WatchCache, namespace: str) -> None:
        self._cache = cache
        self._namespace = namespace

    def __getitem__(self, name: str) -> Obj:
        pod = self._cache.get(self._namespace, name)
        if pod is None:
            raise KeyError(name)
        return pod

    def __iter__(self) -> Iterator[str]:
        return (name for namespace, name in self._cache.objects if namespace == self._namespace)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class KubeActivatorSources:
    """Watch caches of Revisions, Routes, EndpointSlices, Pods and the activator's own
    Service endpoints, pushed into ``activator`` (see the module docstring).

    ``namespace`` limits the Knative objects to one namespace (default: all);
    ``system_namespace`` and ``activator_service`` name the activator's own Service;
    ``pod_ip`` is this activator's address among its endpoints (None: not known, so this
    activator takes no share and uses every replica)."""

    def __init__(
        self,
        client: KubeClient,
        activator: ActivatorSink,
        *,
        namespace: str | None = None,
        system_namespace: str = "knative-serving",
        pod_ip: str | None = None,
        activator_service: str = "activator",
        cluster_domain: str = CLUSTER_DOMAIN,
    ) -> None:
        self.activator = activator
        self.pod_ip = pod_ip
        self.cluster_domain = cluster_domain
        self.revisions = client.watch_cache(REVISIONS, namespace)
        self.routes = client.watch_cache(ROUTES, namespace)
        self.slices = client.watch_cache(ENDPOINT_SLICES, namespace, label_selector=REVISION_LABEL)
        self.pods = client.watch_cache(PODS, namespace, label_selector=REVISION_LABEL)
        self.peers = client.watch_cache(
            ENDPOINT_SLICES,
            system_namespace,
            label_selector=f"{SERVICE_NAME_LABEL}={activator_service}",
        )
        self.system_namespace = system_namespace
        self.config_maps = client.watch_cache(CONFIG_MAPS, system_namespace)
        self.caches = (
            self.revisions,
            self.routes,
            self.slices,
            self.pods,
            self.peers,
            self.config_maps,
        )
        self.live = False
        """True once the initial state is applied; changes are pushed as they arrive."""

        # Derived state, kept current by the callbacks from the first list on.
        self._routes: dict[ObjectKey, Route] = {}
        self._revision_slices: dict[RevisionKey, set[ObjectKey]] = {}
        self._slice_revision: dict[ObjectKey, RevisionKey] = {}
        # What the activator was told, so that a push that changes nothing is skipped.
        self._known: set[RevisionKey] = set()
        self._pushed_endpoints: dict[RevisionKey, tuple[Endpoint, ...]] = {}
        self._pushed_routes: tuple[Route, ...] | None = None
        self._pushed_peers: tuple[int, int] | None = None
        self._observability_data: tuple[dict[str, str], dict[str, str]] | None = None
        self._mesh_mode: str | None = None
        self._task: asyncio.Task[None] | None = None

        self.revisions.on_change(self._revision_changed)
        self.routes.on_change(self._route_changed)
        self.slices.on_change(self._slice_changed)
        self.pods.on_change(self._pod_changed)
        self.peers.on_change(self._peers_changed)
        self.config_maps.on_change(self._config_map_changed)

    # ----- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the caches, and the task that applies the initial state once they all
        have listed."""
        for cache in self.caches:
            cache.start()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._go_live(), name="activator-sources initial state"
            )
            self._task.add_done_callback(self._initial_done)

    async def stop(self) -> None:
        """Stop the caches; the activator keeps the state it was given."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # stop() itself was cancelled: let that through
            except Exception:
                pass  # already logged by _initial_done
        for cache in reversed(self.caches):
            await cache.stop()

    async def wait_synced(self, timeout: float) -> None:
        """Wait until every cache has listed and the initial state is applied; a
        ``KubeError`` naming the caches that did not list in ``timeout`` seconds and why
        (RBAC, a missing CRD, an unreachable API)."""
        if self._task is None:
            raise RuntimeError("KubeActivatorSources.wait_synced() before start()")
        try:
            async with asyncio.timeout(timeout):
                # shield: giving up waiting must not cancel the task; it goes on in the
                # background and the state is applied whenever the API answers.
                await asyncio.shield(self._task)
        except TimeoutError:
            raise not_synced(self.caches, timeout) from None

    async def __aenter__(self) -> KubeActivatorSources:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _go_live(self) -> None:
        for cache in self.caches:
            await cache.synced.wait()
        self._push_peers()
        self._push_observability()
        self._push_mesh()
        for obj in self.revisions.objects.values():
            self._put_revision(obj)
        self._push_routes()
        self.live = True
        log.info(
            "initial state applied: %d revisions, %d routes, activator %d of %d",
            len(self._known),
            len(self._routes),
            *(self._pushed_peers or (-1, 0)),
        )

    def _initial_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("applying the initial state failed", exc_info=task.exception())

    # ----- revisions -----------------------------------------------------------------------

    def _revision_changed(self, kind: str, obj: Obj) -> None:
        if not self.live:
            return  # the initial state is applied in one go once every cache has listed
        if kind == "DELETED":
            key = revision_key(obj)
            self._known.discard(key)
            self._pushed_endpoints.pop(key, None)
            self.activator.remove_revision(key)
        else:
            self._put_revision(obj)

    def _put_revision(self, obj: Obj) -> None:
        info = revision_info(obj)
        self.activator.put_revision(info)
        if info.key not in self._known:
            # Its endpoints may have arrived first: they were held back until now.
            self._known.add(info.key)
            self._push_endpoints(info.key)

    # ----- routes --------------------------------------------------------------------------

    def _route_changed(self, kind: str, obj: Obj) -> None:
        key = object_key(obj)
        if kind == "DELETED":
            self._routes.pop(key, None)
        else:
            try:
                route = route_from_status(obj, cluster_domain=self.cluster_domain)
            except ValueError as exc:
                # A controller bug; the route keeps the traffic it had rather than lose it.
                log.warning("%s; keeping its previous traffic", exc)
                return
            if route is None:
                self._routes.pop(key, None)  # no resolved traffic yet
            else:
                self._routes[key] = route
        if self.live:
            self._push_routes()

    def _push_routes(self) -> None:
        routes = tuple(self._routes[key] for key in sorted(self._routes))
        if routes != self._pushed_routes:
            self._pushed_routes = routes
            self.activator.set_routes(RoutingTable(routes))

    # ----- endpoints -----------------------------------------------------------------------

    def _slice_changed(self, kind: str, obj: Obj) -> None:
        slice_key = object_key(obj)
        previous = self._slice_revision.pop(slice_key, None)
        if previous is not None:
            others = self._revision_slices.get(previous, set())
            others.discard(slice_key)
            if not others:
                self._revision_slices.pop(previous, None)
        current = slice_revision(obj) if is_private_slice(obj) else None
        if kind != "DELETED" and current is not None:
            if serving_port(obj) is None:
                log.warning(
                    "EndpointSlice %s has no port named %s; ignoring it",
                    "/".join(slice_key),
                    " or ".join(SERVING_PORT_NAMES),
                )
            self._slice_revision[slice_key] = current
            self._revision_slices.setdefault(current, set()).add(slice_key)
        if self.live:
            for key in {k for k in (previous, current) if k is not None}:
                self._push_endpoints(key)

    def _pod_changed(self, kind: str, obj: Obj) -> None:
        if not self.live:
            return
        revision = ((obj.get("metadata") or {}).get("labels") or {}).get(REVISION_LABEL)
        if revision:
            key = RevisionKey(object_key(obj)[0], revision)
            if key in self._revision_slices:
                self._push_endpoints(key)

    def endpoints(self, key: RevisionKey) -> tuple[Endpoint, ...]:
        """The revision's replicas over all its slices, by address."""
        pods = _PodsIn(self.pods, key.namespace)
        merged: dict[tuple[str, int], Endpoint] = {}
        for slice_key in self._revision_slices.get(key, ()):
            obj = self.slices.objects.get(slice_key)
            if obj is None:
                continue
            for endpoint in slice_endpoints(obj, pods):
                address = (endpoint.host, endpoint.port)
                seen = merged.get(address)
                # During a slice handover a replica can sit in two slices for a moment;
                # it is ready if either says so.
                if seen is None or (endpoint.ready and not seen.ready):
                    merged[address] = endpoint
        return tuple(sorted(merged.values(), key=lambda e: (e.name, e.host, e.port)))

    def _push_endpoints(self, key: RevisionKey) -> None:
        if key not in self._known:
            return  # announced with the revision, if it ever comes
        endpoints = self.endpoints(key)
        # A revision the activator just learned has no endpoints there yet.
        if endpoints != self._pushed_endpoints.get(key, ()):
            self._pushed_endpoints[key] = endpoints
            log.debug(
                "revision %s: %d endpoints (%d ready)",
                key,
                len(endpoints),
                sum(e.ready for e in endpoints),
            )
            self.activator.set_endpoints(key, list(endpoints))

    # ----- peers ---------------------------------------------------------------------------

    def _peers_changed(self, kind: str, obj: Obj) -> None:
        if self.live:
            self._push_peers()

    def _push_peers(self) -> None:
        peers = activator_peers(self.peers.objects.values(), self.pod_ip)
        if peers != self._pushed_peers:
            self._pushed_peers = peers
            log.info("activator %d of %d", *peers)
            self.activator.set_peers(*peers)

    # ----- config-observability ------------------------------------------------------------

    def _config_map_changed(self, kind: str, obj: Obj) -> None:
        name = (obj.get("metadata") or {}).get("name")
        if self.live and name in (OBSERVABILITY, TRACING):
            self._push_observability()
        if self.live and name == NETWORK:
            self._push_mesh()

    # ----- config-network ------------------------------------------------------------------

    def service_address(self, key: RevisionKey) -> tuple[str, int]:
        """The revision's private Service: its ``http`` port 80 forwards to the
        queue-proxy's 8012 (controller/workloads.py)."""
        name = private_service_name(key.name)
        return f"{name}.{key.namespace}.svc.{self.cluster_domain}", 80

    def _push_mesh(self) -> None:
        obj = self.config_maps.get(self.system_namespace, NETWORK) or {}
        try:
            mode = parse_mesh_mode((obj.get("data") or {}).get("mesh-compatibility-mode"))
        except ConfigError as e:
            log.error(
                "ignoring ConfigMap %s/%s, keeping the settings in force: %s",
                self.system_namespace,
                NETWORK,
                e,
            )
            return
        if mode != self._mesh_mode:
            self._mesh_mode = mode
            log.info("%s: mesh-compatibility-mode %s", NETWORK, mode)
            self.activator.set_mesh(mode, self.service_address)

    def _push_observability(self) -> None:
        maps = self.config_maps.objects
        ns = self.system_namespace
        observability, tracing = (
            {str(k): str(v) for k, v in ((maps.get((ns, name)) or {}).get("data") or {}).items()}
            for name in (OBSERVABILITY, TRACING)
        )
        data = (observability, tracing)
        if data == self._observability_data:
            return
        self._observability_data = data
        try:
            config = ObservabilityConfig.from_maps(observability, tracing)
        except ConfigError as e:
            log.error(
                "ignoring ConfigMap %s/%s, keeping the settings in force: %s", ns, OBSERVABILITY, e
            )
            return
        self.activator.observability = config
