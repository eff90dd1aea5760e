"""``config-features``: the flags that widen (or narrow) the pod spec a revision may use.

Knative's flags and defaults (knative/serving ``pkg/apis/config/features.go``):
each value is ``enabled``, ``disabled`` or ``allowed`` (any letter case), but
``secure-pod-defaults`` takes ``Disabled``, ``AllowRootBounded`` or ``Enabled``. For the
pod spec fields, ``allowed`` lets the field through as ``enabled`` does; for
volume kinds and the few behaviours upstream tests with ``== Enabled`` only
``enabled`` counts (:meth:`FeaturesConfig.enabled`). Upstream ignores a value
it cannot read and keeps the default; zeroserve rejects it, naming the key,
because a typo such as ``enable`` would otherwise leave the feature off
without a word. Unknown keys are rejected for the same reason, and so is a
value other than the default for the flags whose behaviour zeroserve does not
have yet (:data:`NOT_YET`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from zeroserve.api.errors import describe
from zeroserve.envconfig import ConfigError

CONFIG_MAP = "config-features"
ENABLED, DISABLED, ALLOWED = "enabled", "disabled", "allowed"
ALLOW_ROOT_BOUNDED = "allowrootbounded"

DEFAULTS: Mapping[str, str] = {
    "multi-container": ENABLED,
    "multi-container-probing": DISABLED,
    "kubernetes.podspec-affinity": DISABLED,
    "kubernetes.podspec-topologyspreadconstraints": DISABLED,
    "kubernetes.podspec-hostaliases": DISABLED,
    "kubernetes.podspec-fieldref": DISABLED,
    "kubernetes.podspec-nodeselector": DISABLED,
    "kubernetes.podspec-runtimeclassname": DISABLED,
    "kubernetes.podspec-securitycontext": DISABLED,
    "kubernetes.podspec-shareprocessnamespace": DISABLED,
    "kubernetes.podspec-hostipc": DISABLED,
    "kubernetes.podspec-hostpid": DISABLED,
    "kubernetes.podspec-hostnetwork": DISABLED,
    "kubernetes.podspec-priorityclassname": DISABLED,
    "kubernetes.podspec-schedulername": DISABLED,
    "kubernetes.containerspec-addcapabilities": DISABLED,
    "kubernetes.podspec-tolerations": DISABLED,
    "kubernetes.podspec-volumes-emptydir": ENABLED,
    "kubernetes.podspec-volumes-hostpath": DISABLED,
    "kubernetes.podspec-volumes-mount-propagation": DISABLED,
    "kubernetes.podspec-volumes-csi": DISABLED,
    "kubernetes.podspec-volumes-ephemeral": DISABLED,
    "kubernetes.podspec-volumes-image": DISABLED,
    "kubernetes.podspec-init-containers": DISABLED,
    "kubernetes.podspec-persistent-volume-claim": DISABLED,
    "kubernetes.podspec-persistent-volume-write": DISABLED,
    "kubernetes.podspec-dnspolicy": DISABLED,
    "kubernetes.podspec-dnsconfig": DISABLED,
    "queueproxy.mount-podinfo": DISABLED,
    "queueproxy.resource-defaults": DISABLED,
    "secure-pod-defaults": DISABLED,
    "tag-header-based-routing": DISABLED,
    "autodetect-http2": DISABLED,
}
"""Every key of upstream's ``config-features`` and its default."""

NOT_YET: Mapping[str, str] = {
    "autodetect-http2": "detecting HTTP/2 apps without a port named h2c",
    "queueproxy.mount-podinfo": "the queue-proxy's pod-info volume",
    "queueproxy.resource-defaults": "the queue-proxy's default resources",
}
"""Flags whose behaviour zeroserve does not have yet: only their default is accepted,
because any other value would do nothing without a word."""
_VALUES = (ENABLED, DISABLED, ALLOWED)
_SECURE_POD_DEFAULTS_VALUES = (ENABLED, DISABLED, ALLOW_ROOT_BOUNDED)


@dataclass(frozen=True, slots=True)
class FeaturesConfig:
    """The flags in force: each key of :data:`DEFAULTS` to ``enabled``/``disabled``/``allowed``."""

    flags: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULTS))

    @classmethod
    def from_mapping(cls, data: Mapping[str, str]) -> FeaturesConfig:
        flags = dict(DEFAULTS)
        for key in sorted(data):
            if key == "_example":
                continue
            if key not in DEFAULTS:
                raise ConfigError(f"{CONFIG_MAP}: {key}: unknown key")
            value = data[key].strip().lower()
            allowed = _SECURE_POD_DEFAULTS_VALUES if key == "secure-pod-defaults" else _VALUES
            if value not in allowed:
                raise ConfigError(
                    f"{CONFIG_MAP}: {key}: must be one of {', '.join(allowed)}, "
                    f"got {describe(data[key])}"
                )
            if key in NOT_YET and value != DEFAULTS[key]:
                raise ConfigError(
                    f"{CONFIG_MAP}: {key}: only {DEFAULTS[key]} is supported by zeroserve so far "
                    f"({NOT_YET[key]} is not implemented), got {describe(data[key])}"
                )
            flags[key] = value
        return cls(flags)

    def secure_pod_defaults(self) -> str:
        """``secure-pod-defaults``: ``disabled``, ``allowrootbounded`` (every restricted
        default but ``runAsNonRoot``) or ``enabled`` (:func:`zeroserve.api.defaults.secure_container`)."""
        return self.flags["secure-pod-defaults"]

    def flag(self, key: str) -> str:
        return self.flags[key]

    def allows(self, key: str) -> bool:
        """The field behind ``key`` may be set (``enabled`` or ``allowed``)."""
        return self.flags[key] != DISABLED

    def enabled(self, key: str) -> bool:
        """Only ``enabled`` (upstream's volume kinds and multi-container checks)."""
        return self.flags[key] == ENABLED
