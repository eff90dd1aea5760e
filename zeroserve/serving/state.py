"""The controller's desired and observed state, as plain records.

Everything lives in one ``State`` so that an apply can work on a deep copy and
either swap it in or throw it away: that is how a failed apply leaves nothing
half-done. Records are mutable (the reconcile steps update them in place on the
copy); the values inside them (manifests, conditions) are frozen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zeroserve.api.configs import Configs
from zeroserve.api.objects import (
    ConfigMapObject,
    Configuration,
    DomainMapping,
    ObjectMeta,
    RevisionTemplate,
    Route,
    SecretObject,
    Service,
    TrafficTarget,
)
from zeroserve.serving.rollout import Rollout
from zeroserve.topology import RevisionKey

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"

Key = tuple[str, str]
"""(namespace, name) of a Service, Configuration or Route."""


@dataclass(frozen=True, slots=True)
class Condition:
    """One Knative status condition."""

    type: str
    """``Ready``, ``ContainerHealthy``, ``AllTrafficAssigned``..."""
    status: str
    """``True``, ``False`` or ``Unknown``."""
    reason: str = ""
    """A Knative reason (CamelCase, e.g. ``RevisionMissing``); empty when True."""
    message: str = ""
    """Human-readable detail."""
    since: float = 0.0
    """When ``status`` last changed (``lastTransitionTime``)."""


Conditions = dict[str, Condition]


@dataclass(slots=True)
class Observed:
    """What the runtime last reported about a revision."""

    ready: bool | None = None
    """True: ready; False: failed (``reason``/``message`` say why); None: not known yet."""
    reason: str = ""
    """Why it failed (a Knative reason); empty otherwise."""
    message: str = ""
    """The runtime's words about the failure."""
    desired_replicas: int | None = None
    """Replicas the autoscaler wants; None when not reported."""
    actual_replicas: int | None = None
    """Replicas running; None when not reported."""


@dataclass(slots=True)
class RevisionRecord:
    """One revision: an immutable snapshot of its configuration's template, defaulted."""

    key: RevisionKey
    """Namespace and name."""
    configuration: str
    """The configuration that created it."""
    service: str
    """The owning Service's name; empty under a standalone Configuration."""
    generation: int
    """The configuration generation that created it."""
    created: float
    """Creation time (``creationTimestamp``)."""
    template: RevisionTemplate
    """The template as written (compared to detect a changed template under the same name)."""
    container_concurrency: int
    """Defaulted from ``config-defaults`` at creation."""
    timeout_seconds: int
    """Defaulted at creation from config-defaults, like the two timeouts below."""
    response_start_timeout_seconds: int
    idle_timeout_seconds: int
    container_name: str
    """The container's name, defaulted from ``container-name-template``."""
    observed: Observed = field(default_factory=Observed)
    """The runtime's last report."""
    conditions: Conditions = field(default_factory=dict)
    """Computed by :func:`zeroserve.serving.status.refresh`."""
    routing_state: str = ""
    """Knative's ``serving.knative.dev/routingState`` (``active``, ``pending``,
    ``reserve``) as of the last reconcile; empty before the first."""
    routing_state_modified: float | None = None
    """When ``routing_state`` last changed (Knative's
    ``serving.knative.dev/routingStateModified``): the creation time, or when the
    revision joined or left the routes. Garbage collection counts "last active" from it."""


@dataclass(slots=True)
class ConfigurationRecord:
    """A Configuration, standalone or owned by a Service of the same name."""

    namespace: str
    name: str
    meta: ObjectMeta
    """Labels and annotations shown by ``get`` (a Service's, plus its service label)."""
    template: RevisionTemplate
    """The current template; its changes count generations."""
    service: str
    """The owning Service's name; empty when standalone."""
    created: float
    """Creation time."""
    generation: int = 0
    """Counts template changes; numbers generated revision names."""
    applied: Configuration | None = None
    """The manifest of a standalone Configuration (None when owned)."""
    revisions: list[str] = field(default_factory=list)
    """Its revisions' names, oldest first."""
    latest_created: str = ""
    """The revision of the current template."""
    latest_ready: str = ""
    """The newest revision that became ready (what ``latestRevision`` targets get)."""
    conditions: Conditions = field(default_factory=dict)
    """Computed by :func:`zeroserve.serving.status.refresh`."""


@dataclass(frozen=True, slots=True)
class ResolvedTarget:
    """A traffic target with its revision found."""

    revision: str
    """The revision's name (same namespace as the route)."""
    percent: int
    """Share of the default split; 0 for a tag-only target."""
    tag: str = ""
    """The target's tag, if any."""
    latest_revision: bool = False
    """Whether the target follows its configuration's latest ready revision."""
    configuration: str = ""
    """The configuration a ``latestRevision`` target follows."""


@dataclass(slots=True)
class RouteRecord:
    """A Route, standalone or owned by a Service of the same name."""

    namespace: str
    name: str
    meta: ObjectMeta
    """Labels (matched by ``config-domain``) and annotations."""
    traffic: tuple[TrafficTarget, ...]
    """Defaulted: every ``latestRevision`` target names its configuration."""
    service: str
    """The owning Service's name; empty when standalone."""
    created: float
    """Creation time."""
    generation: int = 1
    """Counts traffic changes."""
    applied: Route | None = None
    """The manifest of a standalone Route (None when owned)."""
    programmed: tuple[ResolvedTarget, ...] | None = None
    """What the data plane serves: the last traffic that resolved completely, or the
    provisional programming below; None when there is nothing to serve."""
    provisional: bool = False
    """``programmed`` names revisions that are not ready yet (a route that was never
    ready), so the activator holds the first requests instead of answering 404."""
    assignment: Condition = field(default_factory=lambda: Condition("AllTrafficAssigned", UNKNOWN))
    """The outcome of the last resolution (``AllTrafficAssigned``)."""
    conditions: Conditions = field(default_factory=dict)
    """Computed by :func:`zeroserve.serving.status.refresh`."""
    rollout: Rollout | None = None
    """The gradual rollout in effect (:mod:`zeroserve.serving.rollout`); None until the
    route's traffic first resolved."""
    cluster_local_tags: frozenset[str] = frozenset()
    """Tags that are cluster-local by themselves (Knative: the visibility label on the
    tag's placeholder Service; set by the in-cluster controller)."""


@dataclass(slots=True)
class ServiceRecord:
    """A Service: its manifest and status; its Configuration and Route are separate records."""

    applied: Service
    """The manifest as last applied."""
    created: float
    """Creation time."""
    generation: int = 1
    """Counts spec changes (template or traffic), not metadata changes."""
    conditions: Conditions = field(default_factory=dict)
    """Computed by :func:`zeroserve.serving.status.refresh`."""


@dataclass(slots=True)
class DomainMappingRecord:
    """A DomainMapping (``serving.knative.dev/v1beta1``): the domain ``name`` served by
    the Knative Service or Route ``applied.ref`` names in the same namespace."""

    applied: DomainMapping
    """The manifest as last applied."""
    created: float
    """Creation time."""
    generation: int = 1
    """Counts spec (``ref``) changes."""
    conditions: Conditions = field(default_factory=dict)
    """Computed by :func:`zeroserve.serving.domainmapping.refresh`."""


@dataclass(slots=True)
class State:
    """Everything the controller knows."""

    configs: Configs
    """The settings in force, from ``config_maps`` over the defaults."""
    services: dict[Key, ServiceRecord] = field(default_factory=dict)
    configurations: dict[Key, ConfigurationRecord] = field(default_factory=dict)
    revisions: dict[RevisionKey, RevisionRecord] = field(default_factory=dict)
    routes: dict[Key, RouteRecord] = field(default_factory=dict)
    config_maps: dict[Key, ConfigMapObject] = field(default_factory=dict)
    """Every applied ConfigMap: the ``knative-serving`` settings (``is_setting``) and the
    data maps revisions' env reads."""
    secrets: dict[Key, SecretObject] = field(default_factory=dict)
    """Every applied Secret (values base64, as the API server stores them)."""
    created: dict[tuple[str, str, str], float] = field(default_factory=dict)
    """(kind, namespace, name) -> creation time of each ConfigMap and Secret."""
    domain_mappings: dict[Key, DomainMappingRecord] = field(default_factory=dict)
    """(namespace, domain) -> the DomainMapping."""
    domain_claims: dict[str, str] = field(default_factory=dict)
    """domain -> the namespace that claimed it (locally, what Knative's
    ClusterDomainClaims hold): the first DomainMapping of a domain claims it; the
    claim is released when that mapping is deleted."""

    def settings_maps(self) -> list[ConfigMapObject]:
        """The applied ConfigMaps zeroserve reads as settings."""
        return [cm for cm in self.config_maps.values() if cm.is_setting]

    def configuration_revisions(self, cfg: ConfigurationRecord) -> list[RevisionRecord]:
        return [self.revisions[RevisionKey(cfg.namespace, name)] for name in cfg.revisions]
