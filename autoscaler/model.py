"""What the autoscaler needs from the world, as small interfaces.

The multiscaler reads which revisions exist (``RevisionSource``), which pods
each one has (``PodSource``), and changes replica counts (``ReplicaScaler``).
On Kubernetes these are backed by watch caches and the Deployment ``/scale``
subresource (``zeroserve.kube``); locally by the local runtime; in tests by
``autoscaler.local.InMemoryCluster``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from zeroserve.topology import Endpoint, RevisionInfo, RevisionKey

__all__ = [
    "Endpoint",
    "PodSource",
    "ReplicaScaler",
    "RevisionInfo",
    "RevisionKey",
    "RevisionSource",
    "ScaleError",
]


class RevisionSource(Protocol):
    def revisions(self) -> Mapping[RevisionKey, RevisionInfo]:
        """Every revision that exists now (a memory read: no I/O)."""


class PodSource(Protocol):
    def ready_pods(self, key: RevisionKey) -> list[Endpoint] | None:
        """The revision's ready pods, or None when unknown (source not synced
        or failing). A memory read: no I/O."""


class ReplicaScaler(Protocol):
    def current_scale(self, key: RevisionKey) -> int | None:
        """The revision's replica count as last applied (None: no such
        workload yet). A memory read: no I/O."""

    async def set_scale(self, key: RevisionKey, replicas: int) -> None:
        """Apply a replica count; raises ``ScaleError`` when it could not."""


class ScaleError(RuntimeError):
    """Applying a replica count failed (API unreachable, conflict, not found)."""
