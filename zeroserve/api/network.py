"""``config-network`` (host templates, external scheme, rollout duration, domain claims)
and ``config-gc`` (revision garbage collection), parsed as Knative does.

``config-network`` follows knative/networking ``pkg/config/config.go``: the
camelCase legacy keys are read too, the new spelling winning. Knative's TLS
settings are accepted at their defaults and refused otherwise (zeroserve has
no TLS yet); the keys that only tune an ingress or mesh implementation are
checked for their type and otherwise have no effect here, except
``mesh-compatibility-mode`` (:data:`MESH_MODES`), which the activator and the
autoscaler follow: whether they reach a revision's pods directly or through its
private Service (docs/activator.md and docs/autoscaling.md, "Mesh mode").

Host templates are Go templates in Knative; zeroserve evaluates the subset
they are written with -- ``{{.Name}}``, ``{{.Namespace}}``, ``{{.Domain}}``,
``{{.Tag}}``, ``{{index .Annotations "key"}}``, ``{{index .Labels "key"}}``,
with optional spaces and ``-`` trimming marks -- and refuses anything else
by name rather than misreading it.

``config-gc`` follows knative/serving ``pkg/gc/config.go``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from zeroserve.api.errors import describe
from zeroserve.configmap import parse_bool, parse_duration_nanos
from zeroserve.envconfig import ConfigError

NETWORK = "config-network"
GC = "config-gc"
DEFAULT_DOMAIN_TEMPLATE = "{{.Name}}.{{.Namespace}}.{{.Domain}}"
DEFAULT_TAG_TEMPLATE = "{{.Tag}}-{{.Name}}"
ISTIO_INGRESS_CLASS = "istio.ingress.networking.knative.dev"
DISABLED = -1
"""``config-gc``'s value for a bound that is switched off."""

_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)
_FIELD = re.compile(r"\.(Name|Namespace|Domain|Tag)")
_INDEX = re.compile(r'index\s+\.(Annotations|Labels)\s+"([^"\\]*)"')
_TLS_KEYS = {
    "auto-tls": "disabled",
    "autoTLS": "disabled",
    "external-domain-tls": "disabled",
    "cluster-local-domain-tls": "disabled",
    "system-internal-tls": "disabled",
    "internal-encryption": "false",
}
_LEGACY = {
    "domainTemplate": "domain-template",
    "tagTemplate": "tag-template",
    "rolloutDuration": "rollout-duration",
    "autocreateClusterDomainClaims": "autocreate-cluster-domain-claims",
    "defaultExternalScheme": "default-external-scheme",
    "ingress.class": "ingress-class",
    "certificate.class": "certificate-class",
    "httpProtocol": "http-protocol",
}
_NO_EFFECT = frozenset(
    {
        "certificate-class",
        "namespace-wildcard-cert-selector",
        "enable-mesh-pod-addressability",
    }
)
"""Keys that tune TLS certificates or a service mesh: read for their type, no effect."""
NETWORK_KEYS = frozenset(
    {
        "domain-template",
        "tag-template",
        "default-external-scheme",
        "rollout-duration",
        "autocreate-cluster-domain-claims",
        "ingress-class",
        "http-protocol",
        *_TLS_KEYS,
        *_LEGACY,
        *_NO_EFFECT,
        "mesh-compatibility-mode",
    }
)
MESH_AUTO = "auto"
MESH_ENABLED = "enabled"
MESH_DISABLED = "disabled"
MESH_MODES = (MESH_AUTO, MESH_ENABLED, MESH_DISABLED)
"""``mesh-compatibility-mode``: ``auto`` (Knative's default) reaches pods directly and
moves a revision to its private Service once direct probes fail as a mesh makes them
fail; ``enabled`` always goes through the private Service; ``disabled`` never does."""


def parse_mesh_mode(text: str | None) -> str:
    """``config-network``'s ``mesh-compatibility-mode``, case-insensitive; empty or absent
    is ``auto``."""
    mode = (text or "").strip().lower() or MESH_AUTO
    if mode not in MESH_MODES:
        raise ConfigError(
            f"{NETWORK}: mesh-compatibility-mode: must be enabled, disabled or auto, "
            f"got {describe(text or '')}"
        )
    return mode


@dataclass(frozen=True, slots=True)
class HostTemplate:
    """A parsed ``domain-template`` or ``tag-template``: text and actions, in order."""

    source: str
    parts: tuple[tuple[str, str, str], ...]
    """(literal, kind, key): kind is ``field`` (key Name/Namespace/Domain/Tag),
    ``Annotations``/``Labels`` (key the map key), or empty (no action)."""

    @classmethod
    def parse(cls, text: str, *, what: str, fields: tuple[str, ...]) -> HostTemplate:
        parts: list[tuple[str, str, str]] = []
        pos = 0
        for m in _ACTION.finditer(text):
            literal = text[pos : m.start()]
            if m.group(0).startswith("{{-"):
                literal = literal.rstrip()
            action = m.group(1)
            if (f := _FIELD.fullmatch(action)) is not None and f.group(1) in fields:
                parts.append((literal, "field", f.group(1)))
            elif (i := _INDEX.fullmatch(action)) is not None:
                parts.append((literal, i.group(1), i.group(2)))
            else:
                raise ConfigError(
                    f"{NETWORK}: {what}: {{{{{action}}}}} is not supported by zeroserve (it "
                    f"takes {', '.join('.' + f for f in fields)} and index .Annotations/.Labels "
                    f'"key"), got {describe(text)}'
                )
            pos = m.end()
            if m.group(0).endswith("-}}"):
                rest = text[pos:]
                pos += len(rest) - len(rest.lstrip())
        if "{{" in text[pos:] or "}}" in text[pos:]:
            raise ConfigError(f"{NETWORK}: {what}: unbalanced {{{{ }}}} in {describe(text)}")
        parts.append((text[pos:], "", ""))
        return cls(text, tuple(parts))

    def render(
        self,
        values: Mapping[str, str],
        annotations: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> str:
        out = []
        maps = {"Annotations": annotations or {}, "Labels": labels or {}}
        for literal, kind, key in self.parts:
            out.append(literal)
            if kind == "field":
                out.append(values.get(key, ""))
            elif kind:
                out.append(maps[kind].get(key, ""))
        return "".join(out)


DEFAULT_DOMAIN = HostTemplate.parse(
    DEFAULT_DOMAIN_TEMPLATE, what="domain-template", fields=("Name", "Namespace", "Domain")
)
DEFAULT_TAG = HostTemplate.parse(DEFAULT_TAG_TEMPLATE, what="tag-template", fields=("Name", "Tag"))


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """``config-network``: what zeroserve honours of it."""

    domain_template: HostTemplate = DEFAULT_DOMAIN
    """A route's external host: ``{{.Name}}.{{.Namespace}}.{{.Domain}}``."""
    tag_template: HostTemplate = DEFAULT_TAG
    """The ``Name`` a tag's host is made with: ``{{.Tag}}-{{.Name}}``."""
    default_external_scheme: str = "http"
    """The scheme of external URLs in status (``http`` or ``https``)."""
    rollout_duration: int = 0
    """Seconds over which a new revision takes over its traffic (0: at once)."""
    autocreate_cluster_domain_claims: bool = False
    """Whether a DomainMapping claims its domain by itself (on Kubernetes)."""
    mesh_compatibility_mode: str = MESH_AUTO
    """How the activator and the autoscaler reach revision pods (:data:`MESH_MODES`)."""

    @classmethod
    def from_mapping(cls, data: Mapping[str, str]) -> NetworkConfig:
        for key in sorted(data):
            if key != "_example" and key not in NETWORK_KEYS:
                raise ConfigError(f"{NETWORK}: {key}: unknown key")
        # The new spelling of a key wins over its legacy one.
        values = {_LEGACY.get(k, k): v for k, v in data.items() if k in _LEGACY}
        values.update({k: v for k, v in data.items() if k not in _LEGACY})
        for key, default in _TLS_KEYS.items():
            value = values.get(key)
            if value is not None and value.strip().lower() not in (default, ""):
                raise ConfigError(
                    f"{NETWORK}: {key}: only {default} is supported: zeroserve has no TLS yet, "
                    f"got {describe(value)}"
                )
        protocol = values.get("http-protocol", "")
        if protocol.lower() not in ("", "enabled"):
            raise ConfigError(
                f"{NETWORK}: http-protocol: only enabled is supported (redirecting or "
                f"disabling HTTP needs TLS, which zeroserve has not yet), got {describe(protocol)}"
            )
        ingress = values.get("ingress-class", "")
        if ingress not in ("", ISTIO_INGRESS_CLASS):
            raise ConfigError(
                f"{NETWORK}: ingress-class: zeroserve programs Istio only "
                f"({ISTIO_INGRESS_CLASS}), got {describe(ingress)}"
            )
        for key in ("enable-mesh-pod-addressability",):
            if key in values:
                _bool(key, values[key])
        mesh = parse_mesh_mode(values.get("mesh-compatibility-mode"))
        domain = HostTemplate.parse(
            values.get("domain-template", DEFAULT_DOMAIN_TEMPLATE),
            what="domain-template",
            fields=("Name", "Namespace", "Domain"),
        )
        _check_host(
            domain, "domain-template", {"Name": "foo", "Namespace": "bar", "Domain": "baz.com"}
        )
        tag = HostTemplate.parse(
            values.get("tag-template", DEFAULT_TAG_TEMPLATE),
            what="tag-template",
            fields=("Name", "Tag"),
        )
        _check_host(tag, "tag-template", {"Name": "foo", "Tag": "v2"})
        scheme = values.get("default-external-scheme", "http")
        if scheme not in ("http", "https"):
            raise ConfigError(
                f"{NETWORK}: default-external-scheme: must be http or https, got {describe(scheme)}"
            )
        rollout = values.get("rollout-duration", "0")
        if not re.fullmatch(r"[-+]?[0-9]+", rollout) or int(rollout) < 0:
            raise ConfigError(
                f"{NETWORK}: rollout-duration: must be a whole number of seconds >= 0, "
                f"got {describe(rollout)}"
            )
        claims = values.get("autocreate-cluster-domain-claims")
        return cls(
            domain_template=domain,
            tag_template=tag,
            default_external_scheme=scheme,
            rollout_duration=int(rollout),
            autocreate_cluster_domain_claims=False
            if claims is None
            else _bool("autocreate-cluster-domain-claims", claims),
            mesh_compatibility_mode=mesh,
        )


def _bool(key: str, text: str) -> bool:
    try:
        return parse_bool(text)
    except ValueError:
        raise ConfigError(
            f"{NETWORK}: {key}: must be true or false, got {describe(text)}"
        ) from None


def _check_host(template: HostTemplate, what: str, values: Mapping[str, str]) -> None:
    """Knative's check: a trial render (maps empty) must be a host name without a path."""
    host = template.render(values)
    if not host or any(c in host for c in "/?#@ \t\n") or not host.isprintable():
        raise ConfigError(
            f"{NETWORK}: {what}: {describe(template.source)} does not make a host name "
            f"(with {', '.join(f'{k}={v}' for k, v in values.items())} it gives "
            f"{describe(host)})"
        )


@dataclass(frozen=True, slots=True)
class GCConfig:
    """``config-gc``: when a revision no route names may be deleted. Durations in
    seconds; :data:`DISABLED` (-1) switches a bound off."""

    retain_since_create_time: float = 48 * 3600.0
    retain_since_last_active_time: float = 15 * 3600.0
    min_non_active_revisions: int = 20
    max_non_active_revisions: int = 1000

    @classmethod
    def from_mapping(cls, data: Mapping[str, str]) -> GCConfig:
        known = (
            "retain-since-create-time",
            "retain-since-last-active-time",
            "min-non-active-revisions",
            "max-non-active-revisions",
        )
        for key in sorted(data):
            if key != "_example" and key not in known:
                raise ConfigError(f"{GC}: {key}: unknown key")
        d = cls()
        create = _disabled_or_duration("retain-since-create-time", data, d.retain_since_create_time)
        active = _disabled_or_duration(
            "retain-since-last-active-time", data, d.retain_since_last_active_time
        )
        low_text = data.get("min-non-active-revisions", "")
        if low_text and not re.fullmatch(r"[-+]?[0-9]+", low_text):
            raise ConfigError(
                f"{GC}: min-non-active-revisions: must be an integer, got {describe(low_text)}"
            )
        low = int(low_text) if low_text else d.min_non_active_revisions
        if low < 0:
            raise ConfigError(f"{GC}: min-non-active-revisions: must be non-negative, got {low}")
        high_text = data.get("max-non-active-revisions", "")
        if not high_text:
            high = d.max_non_active_revisions
        elif high_text.lower() == "disabled":
            high = DISABLED
        elif re.fullmatch(r"[0-9]+", high_text):
            high = int(high_text)
        else:
            raise ConfigError(
                f"{GC}: max-non-active-revisions: must be a non-negative integer or disabled, "
                f"got {describe(high_text)}"
            )
        if high >= 0 and low > high:
            raise ConfigError(
                f"{GC}: min-non-active-revisions({low}) must be <= max-non-active-revisions({high})"
            )
        return cls(create, active, low, high)


def _disabled_or_duration(key: str, data: Mapping[str, str], default: float) -> float:
    text = data.get(key, "")
    if not text:
        return default
    if text.lower() == "disabled":
        return DISABLED
    try:
        nanos = parse_duration_nanos(text)
    except ValueError:
        raise ConfigError(
            f"{GC}: {key}: must be a duration like 48h or disabled, got {describe(text)}"
        ) from None
    if nanos < 0:
        raise ConfigError(f"{GC}: {key}: must be non-negative, got {describe(text)}")
    return nanos / 1e9
