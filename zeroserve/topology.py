"""What the control plane tells the data plane: revisions, their endpoints, routes.

Shared by the activator, the autoscaler and their sources (Kubernetes watch
caches in ``zeroserve.kube``, the local runtime locally), so it lives in the
core; the interfaces that read them are declared by the components.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple


class RevisionKey(NamedTuple):
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class RevisionInfo:
    """A revision as the data plane sees it."""

    key: RevisionKey
    container_concurrency: int = 0
    """containerConcurrency of the revision (0 = unlimited)."""
    annotations: Mapping[str, str] = field(default_factory=dict)
    """The revision template's annotations (``autoscaling.knative.dev/*``)."""
    reachable: bool = True
    """False when no route sends traffic to it (min-scale is then ignored)."""
    service: str = ""
    configuration: str = ""
    timeout_seconds: float = 300.0
    response_start_timeout_seconds: float = 0.0
    idle_timeout_seconds: float = 0.0
    failure: str = ""
    """Why the revision cannot become ready (its Ready condition's reason and
    message), so requests that wait for it in vain are told."""
    backing_off: bool = False
    """It failed and none of its replicas is starting (each waits out its restart
    back-off): a request would wait in vain, so the activator answers at once with
    ``failure``. Known locally only; on Kubernetes requests are held, as Knative's
    activator holds them (docs/activator.md, "A revision that failed")."""
    protocol: str = "http1"
    """``h2c`` when its container port is named so: the activator then speaks HTTP/2
    to its queue-proxies (trailers, gRPC), as Knative's does."""


@dataclass(frozen=True)
class Endpoint:
    """One replica, addressed through its queue-proxy."""

    name: str
    """Pod (replica) name."""
    host: str
    port: int
    """The queue-proxy's serving port (8012 in a pod)."""
    stats_port: int
    """The queue-proxy's ``QUEUE_METRICS_PORT`` (9090 in a pod)."""
    started_at: float = 0.0
    """Unix time the replica started (scrape sampling prefers old ones)."""
    ready: bool = True


@dataclass(frozen=True)
class Target:
    """A share of a route's traffic."""

    revision: RevisionKey
    percent: int


@dataclass(frozen=True)
class TagRoute:
    """One tag of a route: its own hosts, and the revision they go to."""

    hosts: tuple[str, ...]
    """Public (external) hosts of the tag; empty when the tag or its route is cluster-local."""
    local_hosts: tuple[str, ...]
    """Cluster-local names of the tag (``{tag}-{route}.{ns}.svc.cluster.local``, ``.svc``),
    served only by the local gateway."""
    revision: RevisionKey
    """The tag's revision (the newest one while a rollout splits the tag's traffic)."""
    targets: tuple[Target, ...] = ()
    """The tag's split while a gradual rollout moves it (Knative rolls a tagged
    ``latestRevision`` target with a percent out too); empty: all to ``revision``."""


@dataclass(frozen=True)
class Route:
    """One route as the controller publishes it: its hosts and where they go."""

    namespace: str
    name: str
    hosts: tuple[str, ...]
    """Public (external) hosts of the default (untagged) split; empty for a cluster-local
    route. Served by the public listener (on Kubernetes, the ingress gateway)."""
    targets: tuple[Target, ...]
    tags: Mapping[str, TagRoute] = field(default_factory=dict)
    """tag -> its hosts and revision."""
    local_hosts: tuple[str, ...] = ()
    """Cluster-local names of the default split (``{name}.{ns}.svc.cluster.local``,
    ``{name}.{ns}.svc``): served only by the local gateway."""
