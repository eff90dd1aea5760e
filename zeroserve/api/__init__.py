"""Knative manifests: load YAML into frozen objects, validate them, report every problem.

``load(text, file)`` parses (shape, types, unknown fields); ``validate(obj, configs)``
checks the rules that depend on the cluster's settings; both report
``ManifestError`` lines naming file, object, field path and rule.
"""

from zeroserve.api.configs import Configs, DefaultsConfig, DomainConfig
from zeroserve.api.errors import ManifestError, ManifestErrors
from zeroserve.api.objects import (
    ConfigMapObject,
    Configuration,
    Container,
    ContainerPort,
    EnvVar,
    Object,
    ObjectMeta,
    RevisionTemplate,
    Route,
    Service,
    TrafficTarget,
)
from zeroserve.api.parse import load
from zeroserve.api.validate import validate, validate_objects

__all__ = [
    "ConfigMapObject",
    "Configs",
    "Configuration",
    "Container",
    "ContainerPort",
    "DefaultsConfig",
    "DomainConfig",
    "EnvVar",
    "ManifestError",
    "ManifestErrors",
    "Object",
    "ObjectMeta",
    "RevisionTemplate",
    "Route",
    "Service",
    "TrafficTarget",
    "load",
    "validate",
    "validate_objects",
]
