"""Knative's metric vocabulary as Prometheus sees it, shared by the components' collectors.

Knative Serving (1.18+) defines its metrics as OpenTelemetry instruments
(``knative/serving pkg/metrics/key.go`` for the attribute keys,
``pkg/queue/request_metric.go``, ``pkg/activator/handler/metrics.go``,
``pkg/autoscaler/scaling/metrics.go``, ``pkg/reconciler/autoscaling/kpa/metrics.go``
for the instruments). Its Prometheus exporter writes an instrument ``kn.a.b`` as
``kn_a_b``, appends ``_seconds`` for the unit ``s`` and ``_total`` to counters,
drops annotation units such as ``{request}``, and writes attribute keys with
underscores (``kn.revision.name`` -> ``kn_revision_name``). The names below are
those Prometheus names; the mapping table is in docs/metrics.md.

Nothing here runs per request: :class:`CodeHistograms` is the one structure the
request paths update (a dict lookup, a bisect and two list increments), and it
is rendered at scrape time.
"""

from __future__ import annotations

import bisect
from typing import Final

# Attribute keys (pkg/metrics/key.go, and OTel semantic conventions), as Prometheus labels.
NAMESPACE: Final = "k8s_namespace_name"
POD: Final = "k8s_pod_name"
SERVICE: Final = "kn_service_name"
CONFIGURATION: Final = "kn_configuration_name"
REVISION: Final = "kn_revision_name"
STATUS_CODE: Final = "http_response_status_code"
PEER: Final = "peer"

REVISION_LABELS: Final = (NAMESPACE, SERVICE, CONFIGURATION, REVISION)
"""The attributes Knative puts on a revision's autoscaling and activator request series."""

# Bucket bounds of kn.serving.invocation.duration (pkg/queue/request_metric.go) and the
# OTel default of http.server.request.duration: the same list.
# (A tuple of float literals declares its type: with the type inferred, mypyc leaves the
# name unset, and the compiled code raises NameError.)
DURATION_BOUNDS: Final[tuple[float, ...]] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)

# Final, as every module-level name of a compiled module: mypyc keeps it in a C static,
# where an imported name is looked up in the module's dict at each call (docs/http.md,
# "Compiling the hot path").
_bisect_left: Final = bisect.bisect_left


class CodeHistograms:
    """A latency histogram per response status code, as plain lists.

    Each list holds one count per bucket (the last is ``+Inf``) and, at the end, the
    sum of the observed seconds.
    """

    __slots__ = ("bounds", "by_code")

    def __init__(self, bounds: tuple[float, ...] = DURATION_BOUNDS) -> None:
        self.bounds = bounds
        self.by_code: dict[int, list[float]] = {}

    def observe(self, status: int, seconds: float) -> None:
        h = self.by_code.get(status)
        if h is None:
            h = self.by_code[status] = [0] * (len(self.bounds) + 2)
        h[_bisect_left(self.bounds, seconds)] += 1
        h[-1] += seconds

    def count(self, status: int) -> int:
        h = self.by_code.get(status)
        return int(sum(h[:-1])) if h is not None else 0

    def samples(self) -> list[tuple[int, list[tuple[str, float]], float]]:
        """``(code, cumulative buckets as prometheus-client wants them, sum)`` per code."""
        out = []
        edges = [repr(b) for b in self.bounds] + ["+Inf"]
        for code, h in sorted(self.by_code.items()):
            cumulative = 0.0
            buckets = []
            for edge, n in zip(edges, h[:-1], strict=True):
                cumulative += n
                buckets.append((edge, cumulative))
            out.append((code, buckets, h[-1]))
        return out
