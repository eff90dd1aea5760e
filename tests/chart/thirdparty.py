"""JSON Schemas for the chart's objects whose kinds are third-party CRDs.

kubernetes-validate only knows Kubernetes' own kinds. The chart renders two others, and
each is checked here against the fields of its published API that the chart may use,
closed (an unknown or misspelt field fails): Istio's ``Gateway``
(networking.istio.io/v1beta1) and the Prometheus Operator's ``ServiceMonitor``
(monitoring.coreos.com/v1). Any other kind without a Kubernetes schema fails the test
instead of being skipped.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

_STRING_MAP: Schema = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA: Schema = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 253},
        "namespace": {"type": "string"},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
    },
    "additionalProperties": False,
}


def _object(api_version: str, kind: str, spec: Schema) -> Schema:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": _METADATA,
            "spec": spec,
        },
        "additionalProperties": False,
    }


GATEWAY = _object(
    "networking.istio.io/v1beta1",
    "Gateway",
    {
        "type": "object",
        "required": ["servers"],
        "properties": {
            "selector": {**_STRING_MAP, "minProperties": 1},
            "servers": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["port", "hosts"],
                    "properties": {
                        "port": {
                            "type": "object",
                            "required": ["number", "protocol", "name"],
                            "properties": {
                                "number": {"type": "integer", "minimum": 1, "maximum": 65535},
                                "protocol": {
                                    "enum": [
                                        "HTTP",
                                        "HTTPS",
                                        "GRPC",
                                        "HTTP2",
                                        "MONGO",
                                        "TCP",
                                        "TLS",
                                    ]
                                },
                                "name": {"type": "string", "minLength": 1},
                                "targetPort": {"type": "integer"},
                            },
                            "additionalProperties": False,
                        },
                        "hosts": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"type": "string", "minLength": 1},
                        },
                        "tls": {"type": "object"},
                        "name": {"type": "string"},
                        "bind": {"type": "string"},
                        "defaultEndpoint": {"type": "string"},
                    },
                    "additionalProperties": False,
                },
            },
        },
        "additionalProperties": False,
    },
)

_LABEL_SELECTOR: Schema = {
    "type": "object",
    "properties": {
        "matchLabels": _STRING_MAP,
        "matchExpressions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["key", "operator"],
                "properties": {
                    "key": {"type": "string"},
                    "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                    "values": {"type": "array", "items": {"type": "string"}},
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}

SERVICE_MONITOR = _object(
    "monitoring.coreos.com/v1",
    "ServiceMonitor",
    {
        "type": "object",
        "required": ["selector", "endpoints"],
        "properties": {
            "selector": _LABEL_SELECTOR,
            "namespaceSelector": {
                "type": "object",
                "properties": {
                    "any": {"type": "boolean"},
                    "matchNames": {"type": "array", "items": {"type": "string"}},
                },
                "additionalProperties": False,
            },
            "jobLabel": {"type": "string"},
            "endpoints": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {
                        "port": {"type": "string"},
                        "targetPort": {"type": ["integer", "string"]},
                        "path": {"type": "string", "pattern": "^/"},
                        "scheme": {"enum": ["http", "https"]},
                        # Prometheus durations: 30s, 1m, 1m30s.
                        "interval": {"type": "string", "pattern": "^(([0-9]+)(ms|s|m|h|d|w|y))+$"},
                        "scrapeTimeout": {
                            "type": "string",
                            "pattern": "^(([0-9]+)(ms|s|m|h|d|w|y))+$",
                        },
                        "honorLabels": {"type": "boolean"},
                    },
                    "additionalProperties": False,
                },
            },
        },
        "additionalProperties": False,
    },
)

SCHEMAS: dict[tuple[str, str], Schema] = {
    ("networking.istio.io/v1beta1", "Gateway"): GATEWAY,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR,
}
"""(apiVersion, kind) -> schema, for the kinds kubernetes-validate does not ship."""
