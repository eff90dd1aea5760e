"""Local sources of the multiscaler: in memory (tests, the simulator) and ``zeroserve up``.

``InMemoryCluster`` implements the three sources the multiscaler reads
(``RevisionSource``, ``PodSource``, ``ReplicaScaler``) with no I/O; tests and
the simulator use it, and ``on_scale`` lets its owner react to a new replica
count. ``ControlPlaneCluster`` implements them over ``zeroserve up``'s control
API: state snapshots in (long-poll), replica counts out (``POST /v1/scale``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import aiohttp

from zeroserve.local.protocol import (
    READY_VIEW,
    ScaleRequestError,
    Snapshot,
    StateFollower,
    post_scale,
)

from .model import Endpoint, RevisionInfo, RevisionKey, ScaleError


class InMemoryCluster:
    def __init__(self, on_scale: Callable[[RevisionKey, int], None] | None = None) -> None:
        self._revisions: dict[RevisionKey, RevisionInfo] = {}
        self._pods: dict[RevisionKey, list[Endpoint]] = {}
        self._replicas: dict[RevisionKey, int] = {}
        self.on_scale = on_scale
        self.scale_calls: list[tuple[RevisionKey, int]] = []
        self.fail_scales = 0
        """Fail this many coming ``set_scale`` calls (an API outage)."""

    # -- the owner's side ---------------------------------------------------

    def put_revision(self, info: RevisionInfo, replicas: int | None = None) -> None:
        self._revisions[info.key] = info
        self._pods.setdefault(info.key, [])
        if replicas is not None:
            self._replicas[info.key] = replicas

    def remove_revision(self, key: RevisionKey) -> None:
        self._revisions.pop(key, None)
        self._pods.pop(key, None)
        self._replicas.pop(key, None)

    def set_pods(self, key: RevisionKey, pods: list[Endpoint]) -> None:
        self._pods[key] = list(pods)

    def replicas(self, key: RevisionKey) -> int | None:
        return self._replicas.get(key)

    # -- RevisionSource / PodSource / ReplicaScaler --------------------------

    def revisions(self) -> Mapping[RevisionKey, RevisionInfo]:
        return self._revisions

    def ready_pods(self, key: RevisionKey) -> list[Endpoint] | None:
        pods = self._pods.get(key)
        return None if pods is None else [p for p in pods if p.ready]

    def current_scale(self, key: RevisionKey) -> int | None:
        return self._replicas.get(key)

    async def set_scale(self, key: RevisionKey, replicas: int) -> None:
        if self.fail_scales > 0:
            self.fail_scales -= 1
            raise ScaleError(f"{key}: injected failure")
        if key not in self._revisions:
            raise ScaleError(f"{key}: no such revision")
        self.scale_calls.append((key, replicas))
        self._replicas[key] = replicas
        if self.on_scale is not None:
            self.on_scale(key, replicas)


class ControlPlaneCluster:
    """The multiscaler's sources in local mode (see the module docstring)."""

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession,
        on_snapshot: Callable[[Snapshot], None] | None = None,
    ) -> None:
        self.url = url
        self.session = session
        self.snapshot = Snapshot(version=-1)
        self._on_snapshot = on_snapshot
        # Only ready endpoints count here: the ready view does not wake this process
        # when a replica starts listening, during the cold start it is part of.
        self.follower = StateFollower(url, session, self._apply, view=READY_VIEW)
        self._scaled: dict[RevisionKey, int] = {}

    def _apply(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self._scaled.clear()
        if self._on_snapshot is not None:
            self._on_snapshot(snapshot)

    def start(self) -> None:
        self.follower.start()

    async def stop(self) -> None:
        await self.follower.stop()

    def revisions(self) -> Mapping[RevisionKey, RevisionInfo]:
        return self.snapshot.revisions

    def ready_pods(self, key: RevisionKey) -> list[Endpoint] | None:
        if key not in self.snapshot.revisions:
            return None
        return [e for e in self.snapshot.endpoints.get(key, ()) if e.ready]

    def current_scale(self, key: RevisionKey) -> int | None:
        # A count this process applied is in force before the next snapshot says so.
        scaled = self._scaled.get(key)
        return scaled if scaled is not None else self.snapshot.replicas.get(key)

    async def set_scale(self, key: RevisionKey, replicas: int) -> None:
        try:
            await post_scale(self.session, self.url, key, replicas)
        except ScaleRequestError as e:
            raise ScaleError(str(e)) from None
        self._scaled[key] = replicas
