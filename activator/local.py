"""The activator's sources in local mode: ``zeroserve up``'s control API.

Each new state snapshot is pushed into the activator through its four
control-plane calls, sending only what changed (endpoint lists are compared
per revision), so replicas that come up reach the activator within one
long-poll answer of the runtime seeing them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import aiohttp

from zeroserve.envconfig import ConfigError
from zeroserve.local.protocol import SERVING_VIEW, Snapshot, StateFollower
from zeroserve.observability import ObservabilityConfig
from zeroserve.topology import Endpoint, RevisionInfo, RevisionKey

from .app import Activator
from .routing import RoutingTable

log = logging.getLogger(__name__)


class LocalControlSources:
    def __init__(self, url: str, activator: Activator, session: aiohttp.ClientSession) -> None:
        self.activator = activator
        # The serving view: a new replica count (a scale request while a request is
        # held for a cold start) changes nothing here and is not sent.
        self.follower = StateFollower(
            url, session, self.apply, client=activator.settings.pod_name, view=SERVING_VIEW
        )
        self._revisions: Mapping[RevisionKey, RevisionInfo] = {}
        self._endpoints: dict[RevisionKey, tuple[Endpoint, ...]] = {}
        self._routes: tuple[object, ...] | None = None
        self._observability: tuple[object, ...] | None = None

    def start(self) -> None:
        self.follower.start()

    async def stop(self) -> None:
        await self.follower.stop()

    def apply(self, snap: Snapshot) -> None:
        act = self.activator
        for key in list(self._revisions):
            if key not in snap.revisions:
                act.remove_revision(key)
                self._endpoints.pop(key, None)
        for key, info in snap.revisions.items():
            if self._revisions.get(key) != info:
                act.put_revision(info)
        self._revisions = snap.revisions
        for key in snap.revisions:
            endpoints = snap.endpoints.get(key, ())
            if self._endpoints.get(key) != endpoints:
                self._endpoints[key] = endpoints
                act.set_endpoints(key, endpoints)
        routes = (snap.routes, snap.tag_header_routing)
        if routes != self._routes:
            # One table over every host; the activator splits it into the public and
            # the local gateway listener's tables when it has both (--local-port).
            act.set_routes(RoutingTable(snap.routes, tag_header_routing=snap.tag_header_routing))
            self._routes = routes
        observability = (snap.observability_config, snap.tracing_config)
        if observability != self._observability:
            self._observability = observability
            try:
                act.observability = ObservabilityConfig.from_maps(*observability)
            except ConfigError as e:  # validated when applied; never expected here
                log.error("ignoring config-observability, keeping the settings in force: %s", e)
