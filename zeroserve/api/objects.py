"""The manifests zeroserve accepts, as frozen values: Knative's ``serving.knative.dev/v1``
Service, Configuration and Route, and the ``knative-serving`` ConfigMaps.

Only the fields zeroserve understands exist here; :mod:`zeroserve.api.parse`
rejects every other field with its path, so nothing a user writes is dropped
on the way. ``to_dict`` turns a value back into the Kubernetes shape (camelCase,
empty fields left out) for ``get`` and for comparing what was applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

Obj = dict[str, Any]
"""An object in Kubernetes' JSON shape (a manifest, an API object, what ``to_dict`` returns)."""

SERVING_API_VERSION = "serving.knative.dev/v1"
CORE_API_VERSION = "v1"
SYSTEM_NAMESPACE = "knative-serving"
DEFAULT_NAMESPACE = "default"
DEFAULT_PORT = 8080
"""The container port when a container declares none (Knative's default, ``$PORT``)."""


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    # Kubernetes' omitempty: leave out unset fields so a round trip looks like the input.
    if value is None or value == () or value == {} or value == "":
        return
    out[key] = value


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    """The user-settable part of ``metadata``."""

    name: str
    """A DNS-1035 label; it becomes part of host names."""
    namespace: str = DEFAULT_NAMESPACE
    """``default`` when the manifest names none (kubectl's default namespace)."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Matched by ``config-domain`` selectors; copied to a Service's Configuration and Route."""
    annotations: Mapping[str, str] = field(default_factory=dict)
    """Free-form strings; ``autoscaling.knative.dev/*`` belong on the template instead."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        _put(out, "labels", dict(self.labels))
        _put(out, "annotations", dict(self.annotations))
        return out


@dataclass(frozen=True, slots=True)
class EnvVar:
    """One ``env`` entry; only literal values (``valueFrom`` needs a cluster)."""

    name: str
    """The variable's name; ``PORT`` and ``K_*`` are reserved for the runtime."""
    value: str = ""
    """Always a string in the manifest (an unquoted number is rejected)."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value}


@dataclass(frozen=True, slots=True)
class ContainerPort:
    """The one port a Knative container may declare."""

    container_port: int = DEFAULT_PORT
    """The port the app listens on (``$PORT``); locally the runtime picks a free one instead."""
    name: str = ""
    """``http1``, ``h2c`` or empty (HTTP/1.1)."""
    protocol: str = ""
    """Only ``TCP`` (or empty)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"containerPort": self.container_port}
        _put(out, "name", self.name)
        _put(out, "protocol", self.protocol)
        return out


@dataclass(frozen=True, slots=True)
class Container:
    """The user container. Locally ``command``/``args`` run as a process (the image is
    not pulled); ``resources`` are recorded and shown but not enforced locally."""

    image: str = ""
    """Recorded; pulled only on Kubernetes."""
    name: str = ""
    """Empty: ``config-defaults`` ``container-name-template`` (``user-container``)."""
    command: tuple[str, ...] = ()
    """The program to run. Locally a leading ``python`` means zeroserve's own interpreter
    (the runtime resolves it), so ``["python", "app.py"]`` works in any venv."""
    args: tuple[str, ...] = ()
    """Appended to ``command``."""
    env: tuple[EnvVar, ...] = ()
    """In manifest order."""
    ports: tuple[ContainerPort, ...] = ()
    """At most one (validated); none means 8080, HTTP/1.1."""
    readiness_probe: Mapping[str, Any] | None = None
    """A Kubernetes Probe (``httpGet`` or ``tcpSocket`` plus timing), as written."""
    liveness_probe: Mapping[str, Any] | None = None
    """Same shape as the readiness probe; recorded for the runtime."""
    working_dir: str = ""
    """The process's working directory; empty: the runtime's default."""
    resources: Mapping[str, Mapping[str, str | int | float]] = field(default_factory=dict)
    """``limits``/``requests``; recorded, not enforced locally."""

    @property
    def port(self) -> ContainerPort:
        """The declared port, or Knative's default (8080, HTTP/1.1)."""
        return self.ports[0] if self.ports else ContainerPort()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        _put(out, "name", self.name)
        _put(out, "image", self.image)
        _put(out, "command", list(self.command))
        _put(out, "args", list(self.args))
        _put(out, "workingDir", self.working_dir)
        _put(out, "env", [e.to_dict() for e in self.env])
        _put(out, "ports", [p.to_dict() for p in self.ports])
        _put(out, "readinessProbe", _plain(self.readiness_probe))
        _put(out, "livenessProbe", _plain(self.liveness_probe))
        _put(out, "resources", _plain(self.resources))
        return out


@dataclass(frozen=True, slots=True)
class RevisionTemplate:
    """``spec.template``: everything a revision is made of. Any change makes a new revision."""

    name: str = ""
    """The revision's name if the user picks it; must start with ``{configuration}-``."""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    """Carries the ``autoscaling.knative.dev/*`` settings of the revision."""
    containers: tuple[Container, ...] = ()
    """Exactly one (validated): zeroserve runs one user container per replica."""
    container_concurrency: int | None = None
    """None: the ``config-defaults`` value at creation (0 = unlimited)."""
    timeout_seconds: int | None = None
    """Total request timeout; None or 0: ``revision-timeout-seconds``."""
    response_start_timeout_seconds: int | None = None
    """Time to the first response byte; None: defaulted (``zeroserve.serving.revisions``)."""
    idle_timeout_seconds: int | None = None
    """Longest gap between response writes; None: defaulted (``zeroserve.serving.revisions``)."""

    @property
    def container(self) -> Container:
        """The one container (validation guarantees exactly one before anything runs)."""
        return self.containers[0] if self.containers else Container()

    def metadata_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        _put(out, "name", self.name)
        _put(out, "labels", dict(self.labels))
        _put(out, "annotations", dict(self.annotations))
        return out

    def spec_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.container_concurrency is not None:
            out["containerConcurrency"] = self.container_concurrency
        for key, value in (
            ("timeoutSeconds", self.timeout_seconds),
            ("responseStartTimeoutSeconds", self.response_start_timeout_seconds),
            ("idleTimeoutSeconds", self.idle_timeout_seconds),
        ):
            if value is not None:
                out[key] = value
        out["containers"] = [c.to_dict() for c in self.containers]
        return out

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        _put(out, "metadata", self.metadata_dict())
        out["spec"] = self.spec_dict()
        return out


@dataclass(frozen=True, slots=True)
class TrafficTarget:
    """One ``spec.traffic`` entry. ``None`` means "not written": defaults depend on context."""

    revision_name: str = ""
    """A fixed revision; empty for a target that follows the latest ready one."""
    configuration_name: str = ""
    """The configuration a latest-revision target follows (standalone Routes only)."""
    latest_revision: bool | None = None
    """Defaults to ``revision_name == ""``."""
    percent: int | None = None
    """Missing counts as 0."""
    tag: str = ""
    """Gives the target its own host ``{tag}-{route}.{namespace}.{domain}``."""

    @property
    def is_latest(self) -> bool:
        return self.latest_revision if self.latest_revision is not None else not self.revision_name

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        _put(out, "tag", self.tag)
        _put(out, "revisionName", self.revision_name)
        _put(out, "configurationName", self.configuration_name)
        if self.latest_revision is not None:
            out["latestRevision"] = self.latest_revision
        if self.percent is not None:
            out["percent"] = self.percent
        return out


@dataclass(frozen=True, slots=True)
class Service:
    """A Knative Service: a Configuration and a Route of the same name, managed together."""

    kind: ClassVar[str] = "Service"
    api_version: ClassVar[str] = SERVING_API_VERSION
    meta: ObjectMeta
    """Name, namespace, labels (also given to its Configuration and Route), annotations."""
    template: RevisionTemplate
    """Every change makes a new revision."""
    traffic: tuple[TrafficTarget, ...] = ()
    """Empty means 100 % to the latest ready revision."""
    source: str = field(default="", compare=False)
    """The file it was loaded from, for error messages."""

    @property
    def label(self) -> str:
        return f"{self.kind} {self.meta.namespace}/{self.meta.name}"

    def spec_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"template": self.template.to_dict()}
        _put(out, "traffic", [t.to_dict() for t in self.traffic])
        return out


@dataclass(frozen=True, slots=True)
class Configuration:
    """A standalone Configuration: a template that stamps out revisions."""

    kind: ClassVar[str] = "Configuration"
    api_version: ClassVar[str] = SERVING_API_VERSION
    meta: ObjectMeta
    """Name, namespace, labels, annotations."""
    template: RevisionTemplate
    """Every change makes a new revision."""
    source: str = field(default="", compare=False)
    """The file it was loaded from, for error messages."""

    @property
    def label(self) -> str:
        return f"{self.kind} {self.meta.namespace}/{self.meta.name}"

    def spec_dict(self) -> dict[str, Any]:
        return {"template": self.template.to_dict()}


@dataclass(frozen=True, slots=True)
class Route:
    """A standalone Route: named hosts that split traffic over revisions and configurations."""

    kind: ClassVar[str] = "Route"
    api_version: ClassVar[str] = SERVING_API_VERSION
    meta: ObjectMeta
    """Name, namespace, labels (matched by ``config-domain``), annotations."""
    traffic: tuple[TrafficTarget, ...] = ()
    """Percents add up to 100 (validated)."""
    source: str = field(default="", compare=False)
    """The file it was loaded from, for error messages."""

    @property
    def label(self) -> str:
        return f"{self.kind} {self.meta.namespace}/{self.meta.name}"

    def spec_dict(self) -> dict[str, Any]:
        return {"traffic": [t.to_dict() for t in self.traffic]}


@dataclass(frozen=True, slots=True)
class ConfigMapObject:
    """One of the ``knative-serving`` ConfigMaps zeroserve reads (``config-autoscaler``,
    ``config-domain``, ``config-defaults``, ``config-deployment``)."""

    kind: ClassVar[str] = "ConfigMap"
    api_version: ClassVar[str] = CORE_API_VERSION
    meta: ObjectMeta
    """Always in ``knative-serving`` (validated)."""
    data: Mapping[str, str] = field(default_factory=dict)
    """The settings, as strings (parsed by :class:`zeroserve.api.configs.Configs`)."""
    source: str = field(default="", compare=False)
    """The file it was loaded from, for error messages."""

    @property
    def label(self) -> str:
        return f"{self.kind} {self.meta.namespace}/{self.meta.name}"


Object = Service | Configuration | Route | ConfigMapObject
"""Anything ``load`` returns."""


def _plain(value: Any) -> Any:
    """A deep copy made of dicts and lists, so callers can never mutate a stored value."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
