"""An in-process cluster: revisions, pods and replica counts held in memory.

It implements the three sources the multiscaler reads (``RevisionSource``,
``PodSource``, ``ReplicaScaler``) with no I/O. Tests use it directly; the
local runtime keeps its own state and can wrap or replace it. ``on_scale``
lets the owner react to a new replica count (start or stop replicas).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

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
