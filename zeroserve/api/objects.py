"""The manifests zeroserve accepts, as frozen values: Knative's ``serving.knative.dev/v1``
Service, Configuration and Route, and ``v1`` ConfigMaps and Secrets (the
``knative-serving`` ConfigMaps are settings; the others feed revisions' env).

Only the fields zeroserve understands exist here; :mod:`zeroserve.api.parse`
rejects every other field with its path, so nothing a user writes is dropped
on the way. ``to_dict`` turns a value back into the Kubernetes shape (camelCase,
empty fields left out) for ``get`` and for comparing what was applied.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

Obj = dict[str, Any]
"""An object in Kubernetes' JSON shape (a manifest, an API object, what ``to_dict`` returns)."""

SERVING_API_VERSION = "serving.knative.dev/v1"
SERVING_V1BETA1 = "serving.knative.dev/v1beta1"
CORE_API_VERSION = "v1"
SYSTEM_NAMESPACE = "knative-serving"
DEFAULT_NAMESPACE = "default"
CONFIG_MAP_NAMES = (
    "config-autoscaler",
    "config-defaults",
    "config-deployment",
    "config-domain",
    "config-features",
    "config-gc",
    "config-network",
    "config-observability",
    "config-tracing",
)
"""The ConfigMaps zeroserve reads as settings, all in ``knative-serving`` as upstream."""
DEFAULT_PORT = 8080
"""The container port when a container declares none (Knative's default, ``$PORT``)."""


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    # Kubernetes' omitempty: leave out unset fields so a round trip looks like the input.
    if value is None or value == () or value == [] or value == {} or value == "":
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
    generate_name: str = ""
    """``metadata.generateName``: when ``name`` is empty, the server makes one from this
    prefix and five random characters at creation (as ``kubectl create`` does)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if not self.name:
            del out["name"]
            _put(out, "generateName", self.generate_name)
        _put(out, "labels", dict(self.labels))
        _put(out, "annotations", dict(self.annotations))
        return out


@dataclass(frozen=True, slots=True)
class KeyRef:
    """``valueFrom.secretKeyRef`` / ``configMapKeyRef``: one key of a Secret or ConfigMap
    in the revision's namespace."""

    kind: str
    """``Secret`` or ``ConfigMap``."""
    name: str
    key: str
    optional: bool | None = None
    """True: a missing object or key leaves the variable unset instead of failing."""

    @property
    def field(self) -> str:
        return "secretKeyRef" if self.kind == "Secret" else "configMapKeyRef"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "key": self.key}
        if self.optional is not None:
            out["optional"] = self.optional
        return {self.field: out}


@dataclass(frozen=True, slots=True)
class FieldRef:
    """``valueFrom.fieldRef``: a field of the pod (``metadata.name``, ``status.podIP``...)."""

    field_path: str
    api_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"fieldPath": self.field_path}
        _put(out, "apiVersion", self.api_version)
        return {"fieldRef": out}


@dataclass(frozen=True, slots=True)
class ResourceFieldRef:
    """``valueFrom.resourceFieldRef``: a container's resource limit or request."""

    resource: str
    container_name: str = ""
    divisor: str | int | float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"resource": self.resource}
        _put(out, "containerName", self.container_name)
        if self.divisor is not None:
            out["divisor"] = self.divisor
        return {"resourceFieldRef": out}


EnvSource = KeyRef | FieldRef | ResourceFieldRef


@dataclass(frozen=True, slots=True)
class EnvVar:
    """One ``env`` entry: a literal ``value`` or a ``value_from`` reference."""

    name: str
    """The variable's name; ``PORT`` and ``K_*`` are reserved for the runtime."""
    value: str = ""
    """Always a string in the manifest (an unquoted number is rejected)."""
    value_from: EnvSource | None = None
    """Resolved when a replica starts (locally by the runtime, on Kubernetes by the kubelet)."""

    def to_dict(self) -> dict[str, Any]:
        if self.value_from is not None:
            out: dict[str, Any] = {"name": self.name}
            _put(out, "value", self.value)
            out["valueFrom"] = self.value_from.to_dict()
            return out
        return {"name": self.name, "value": self.value}


@dataclass(frozen=True, slots=True)
class EnvFrom:
    """One ``envFrom`` entry: every key of a Secret or ConfigMap, as variables."""

    kind: str
    """``Secret`` (``secretRef``) or ``ConfigMap`` (``configMapRef``)."""
    name: str
    prefix: str = ""
    optional: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        ref: dict[str, Any] = {"name": self.name}
        if self.optional is not None:
            ref["optional"] = self.optional
        out: dict[str, Any] = {}
        _put(out, "prefix", self.prefix)
        out["secretRef" if self.kind == "Secret" else "configMapRef"] = ref
        return out


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
    """A container of the revision's pod (the serving one, a sidecar or an init
    container). Locally ``command``/``args`` run as a process (the image is not pulled);
    ``resources``, ``security_context`` and ``image_pull_policy`` are recorded and shown
    but not enforced locally."""

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
    env_from: tuple[EnvFrom, ...] = ()
    """In manifest order; ``env`` wins over a key of the same name (as the kubelet)."""
    ports: tuple[ContainerPort, ...] = ()
    """At most one across the pod (validated); none means 8080, HTTP/1.1."""
    readiness_probe: Mapping[str, Any] | None = None
    """A Kubernetes Probe (one of ``httpGet``, ``tcpSocket``, ``exec``, ``grpc`` plus
    timing), as written; a handler ``port`` 0 is left out (it means the container's port)."""
    liveness_probe: Mapping[str, Any] | None = None
    """Same shape as the readiness probe."""
    startup_probe: Mapping[str, Any] | None = None
    """Same shape as the readiness probe; liveness and readiness wait until it passes."""
    working_dir: str = ""
    """The process's working directory; empty: the runtime's default."""
    resources: Mapping[str, Mapping[str, str | int | float]] = field(default_factory=dict)
    """``limits``/``requests``; recorded, not enforced locally."""
    volume_mounts: tuple[Mapping[str, Any], ...] = ()
    """``volumeMounts`` as written (``name``, ``mountPath``, ``readOnly``, ``subPath``...)."""
    image_pull_policy: str = ""
    """``Always``, ``IfNotPresent`` or ``Never``; recorded (locally nothing is pulled)."""
    security_context: Mapping[str, Any] = field(default_factory=dict)
    """Knative's allowed container ``securityContext`` fields, as written."""
    termination_message_path: str = ""
    termination_message_policy: str = ""

    @property
    def port(self) -> ContainerPort:
        """The declared port, or Knative's default (8080, HTTP/1.1)."""
        return self.ports[0] if self.ports else ContainerPort()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        _put(out, "name", self.name)
        _put(out, "image", self.image)
        _put(out, "imagePullPolicy", self.image_pull_policy)
        _put(out, "command", list(self.command))
        _put(out, "args", list(self.args))
        _put(out, "workingDir", self.working_dir)
        _put(out, "env", [e.to_dict() for e in self.env])
        _put(out, "envFrom", [e.to_dict() for e in self.env_from])
        _put(out, "ports", [p.to_dict() for p in self.ports])
        _put(out, "readinessProbe", _plain(self.readiness_probe))
        _put(out, "livenessProbe", _plain(self.liveness_probe))
        _put(out, "startupProbe", _plain(self.startup_probe))
        _put(out, "resources", _plain(self.resources))
        _put(out, "volumeMounts", _plain(self.volume_mounts))
        _put(out, "securityContext", _plain(self.security_context))
        _put(out, "terminationMessagePath", self.termination_message_path)
        _put(out, "terminationMessagePolicy", self.termination_message_policy)
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
    """At least one; exactly one has a port or is alone (the serving container, which the
    queue-proxy routes to); the others are sidecars (validated)."""
    init_containers: tuple[Container, ...] = ()
    """Run to completion, in order, before the containers start (feature flag)."""
    pod: Mapping[str, Any] = field(default_factory=dict)
    """The other pod spec fields Knative allows, as written (``volumes``,
    ``serviceAccountName``, ``securityContext``, ``imagePullSecrets``, and those behind
    ``config-features`` flags such as ``nodeSelector``)."""
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
        """The serving container: the one with a port, or the only one."""
        for c in self.containers:
            if c.ports:
                return c
        return self.containers[0] if self.containers else Container()

    @property
    def sidecars(self) -> tuple[Container, ...]:
        """The containers other than the serving one."""
        serving = self.container
        return tuple(c for c in self.containers if c is not serving)

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
        out.update(_plain(self.pod))
        out["containers"] = [c.to_dict() for c in self.containers]
        _put(out, "initContainers", [c.to_dict() for c in self.init_containers])
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
    """A ConfigMap. In ``knative-serving``, the ones named in
    :data:`CONFIG_MAP_NAMES` are zeroserve's settings (validated as
    such); any other feeds revisions' ``env`` (``configMapKeyRef``, ``envFrom``)."""

    kind: ClassVar[str] = "ConfigMap"
    api_version: ClassVar[str] = CORE_API_VERSION
    meta: ObjectMeta
    data: Mapping[str, str] = field(default_factory=dict)
    """Strings (the settings, or what env references read)."""
    binary_data: Mapping[str, str] = field(default_factory=dict)
    """``binaryData``: base64 text, as written (checked to decode)."""
    immutable: bool | None = None
    """True: later applies may not change ``data`` (as the API server)."""
    source: str = field(default="", compare=False)
    """The file it was loaded from, for error messages."""

    @property
    def label(self) -> str:
        return f"{self.kind} {self.meta.namespace}/{self.meta.name}"

    @property
    def is_setting(self) -> bool:
        """One of the ``knative-serving`` ConfigMaps zeroserve reads as its settings."""
        return self.meta.namespace == SYSTEM_NAMESPACE and self.meta.name in CONFIG_MAP_NAMES

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "metadata": self.meta.to_dict(),
        }
        _put(out, "data", dict(self.data))
        _put(out, "binaryData", dict(self.binary_data))
        if self.immutable is not None:
            out["immutable"] = self.immutable
        return out


@dataclass(frozen=True, slots=True)
class SecretObject:
    """A Secret. ``data`` holds every key base64-encoded, as the API server stores it
    (``stringData`` is merged into it at parse time). Views never show the values."""

    kind: ClassVar[str] = "Secret"
    api_version: ClassVar[str] = CORE_API_VERSION
    meta: ObjectMeta
    data: Mapping[str, str] = field(default_factory=dict)
    """key -> base64 of the value."""
    type: str = "Opaque"
    immutable: bool | None = None
    source: str = field(default="", compare=False)

    @property
    def label(self) -> str:
        return f"{self.kind} {self.meta.namespace}/{self.meta.name}"

    def value(self, key: str) -> bytes | None:
        """The decoded value of ``key`` (None when absent)."""
        encoded = self.data.get(key)
        return None if encoded is None else base64.b64decode(encoded)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "metadata": self.meta.to_dict(),
            "type": self.type,
        }
        _put(out, "data", dict(self.data))
        if self.immutable is not None:
            out["immutable"] = self.immutable
        return out


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """A DomainMapping's ``spec.ref`` (Knative's ``KReference``)."""

    api_version: str
    kind: str
    name: str
    namespace: str = ""
    """Empty: the DomainMapping's own namespace (the only one allowed)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"apiVersion": self.api_version, "kind": self.kind, "name": self.name}
        _put(out, "namespace", self.namespace)
        return out


@dataclass(frozen=True, slots=True)
class DomainMapping:
    """A ``serving.knative.dev/v1beta1`` DomainMapping: the domain ``metadata.name``
    served by the object ``ref`` names (a Knative Service or Route) in the same
    namespace."""

    kind: ClassVar[str] = "DomainMapping"
    api_version: ClassVar[str] = SERVING_V1BETA1
    meta: ObjectMeta
    """``name`` is the domain (a fully qualified DNS name)."""
    ref: ObjectRef
    source: str = field(default="", compare=False)

    @property
    def label(self) -> str:
        return f"{self.kind} {self.meta.namespace}/{self.meta.name}"

    def spec_dict(self) -> dict[str, Any]:
        return {"ref": self.ref.to_dict()}


Object = Service | Configuration | Route | ConfigMapObject | SecretObject | DomainMapping
"""Anything ``load`` returns."""


def _plain(value: Any) -> Any:
    """A deep copy made of dicts and lists, so callers can never mutate a stored value."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
