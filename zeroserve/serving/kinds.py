"""The resource kinds the controller serves, their kubectl names, and lookup errors.

``resolve_kind`` accepts what kubectl accepts for Knative's CRDs: the plural,
the singular, the short names (``ksvc``, ``kservice``, ``config``, ``cfg``,
``rev``, ``rt``, ``dm``) and the group-qualified forms (``services.serving.knative.dev``),
case-insensitively, and the core ``configmaps`` (``cm``) and ``secrets``. Plain
``service``/``services`` mean Knative Services here, since zeroserve has no core Services.
"""

from __future__ import annotations

from dataclasses import dataclass


class ControllerError(ValueError):
    """A request the controller refuses; the message is the one line to show."""


class UnknownKind(ControllerError):
    """The kind names no resource the controller serves."""


class NotFound(ControllerError, LookupError):
    """The named object does not exist (kubectl: ``Error from server (NotFound)``)."""


class NotAllowed(ControllerError):
    """The operation is not possible on this object (e.g. deleting an owned Route)."""


@dataclass(frozen=True, slots=True)
class Kind:
    """One resource kind."""

    name: str
    """The ``kind`` field: ``Service``."""
    plural: str
    """The resource name: ``services``."""
    group: str
    """API group; empty for the core group (ConfigMaps)."""
    short_names: tuple[str, ...] = ()
    version: str = "v1"
    """The API version served (``v1beta1`` for DomainMappings)."""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.name.lower()

    @property
    def qualified(self) -> str:
        """How kubectl names one object after apply: ``service.serving.knative.dev``."""
        return f"{self.singular}.{self.group}" if self.group else self.singular

    @property
    def qualified_plural(self) -> str:
        """How kubectl names the resource in errors: ``services.serving.knative.dev``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def not_found(self, namespace: str, name: str) -> NotFound:
        return NotFound(f'{self.qualified_plural} "{name}" not found in namespace {namespace}')


_SERVING = "serving.knative.dev"
SERVICE = Kind("Service", "services", _SERVING, ("ksvc", "kservice", "kservices"))
CONFIGURATION = Kind("Configuration", "configurations", _SERVING, ("config", "cfg"))
REVISION = Kind("Revision", "revisions", _SERVING, ("rev",))
ROUTE = Kind("Route", "routes", _SERVING, ("rt",))
CONFIG_MAP = Kind("ConfigMap", "configmaps", "", ("cm",))
SECRET = Kind("Secret", "secrets", "")
DOMAIN_MAPPING = Kind("DomainMapping", "domainmappings", _SERVING, ("dm",), "v1beta1")
KINDS = (SERVICE, CONFIGURATION, REVISION, ROUTE, DOMAIN_MAPPING, CONFIG_MAP, SECRET)

_BY_NAME: dict[str, Kind] = {}
for _kind in KINDS:
    for _alias in (_kind.plural, _kind.singular, *_kind.short_names):
        _BY_NAME[_alias] = _kind
        if _kind.group:
            _BY_NAME[f"{_alias}.{_kind.group}"] = _kind


def resolve_kind(text: str) -> Kind:
    """The kind ``text`` names; raises ``UnknownKind`` listing the valid names."""
    kind = _BY_NAME.get(text.strip().lower())
    if kind is None:
        names = ", ".join(
            f"{k.plural} ({'/'.join(k.short_names)})" if k.short_names else k.plural for k in KINDS
        )
        raise UnknownKind(f'the server doesn\'t have a resource type "{text}" (known: {names})')
    return kind


def kind_of(kind_name: str) -> Kind:
    """The kind whose ``kind`` field is ``kind_name`` (``Service`` -> SERVICE)."""
    for kind in KINDS:
        if kind.name == kind_name:
            return kind
    raise UnknownKind(f"no resource of kind {kind_name!r}")
