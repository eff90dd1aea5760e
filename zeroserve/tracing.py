"""The tracing switch of a hop: off costs nothing, on is OpenTelemetry (docs/observability.md,
"Tracing").

A hop (the activator, the queue-proxy) owns one :class:`Tracing`. Its ``tracer`` is None
while ``tracing-protocol`` is ``none`` (the default): the request path checks that one
attribute and does nothing else, and no OpenTelemetry module is imported. With
``http/protobuf`` it is a :class:`zeroserve.otel.OtelTracer` (imported here, only then):
spans sampled by ``ParentBased(TraceIdRatioBased(tracing-sampling-rate))``, batched and
exported by OTLP over HTTP to ``tracing-endpoint``, the caller's context read from W3C
``traceparent``/``tracestate`` or B3 (single ``b3`` or ``X-B3-*`` headers) and written on
the forwarded request as both W3C and B3 multi-header.

:meth:`Tracing.configure` applies a new config-observability live: a new tracer
provider replaces the old one, which is flushed and shut down off the event loop once
the requests it traced have had time to finish (``RETIRE_GRACE``).

The OpenTelemetry packages are the ``tracing`` extra (``pip install 'zeroserve[tracing]'``):
without them a hop started with tracing on stops with :class:`TracingUnavailable`
naming the extra; a live change to tracing on logs that error and keeps tracing off.

Imports nothing beyond the standard library: the queue-proxy loads it at start.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .otel import OtelTracer

log = logging.getLogger(__name__)

NONE = "none"
HTTP_PROTOBUF = "http/protobuf"
EXTRA_HINT = "pip install 'zeroserve[tracing]'"
"""How to install what tracing needs (the ``tracing`` extra in pyproject.toml)."""
RETIRE_GRACE = 5.0
"""Seconds a replaced tracer provider keeps taking the spans of requests it started
before it is flushed and shut down."""


class TracingSettings(Protocol):
    """The tracing keys of config-observability (``zeroserve.observability.ObservabilityConfig``)."""

    @property
    def tracing_protocol(self) -> str: ...
    @property
    def tracing_endpoint(self) -> str: ...
    @property
    def tracing_sampling_rate(self) -> float: ...


class TracingUnavailable(Exception):
    """Tracing is on but the OpenTelemetry packages are not installed."""


class Tracing:
    """One hop's tracing: ``tracer`` is None when off (see the module docstring).

    ``resource``: the OpenTelemetry resource attributes of this process (``service.name``
    and the Kubernetes and Knative names); ``scope``: the instrumentation scope name.
    """

    def __init__(self, resource: Mapping[str, str], scope: str) -> None:
        self.resource = dict(resource)
        self.scope = scope
        self.tracer: OtelTracer | None = None
        self._key: tuple[str, str, float] = (NONE, "", 0.0)
        self._retiring: list[OtelTracer] = []
        self._lock = threading.Lock()

    @property
    def on(self) -> bool:
        return self.tracer is not None

    def start(self, settings: TracingSettings) -> None:
        """Apply the config at start: raises ``TracingUnavailable`` when tracing is on and
        the ``tracing`` extra is missing (the component then refuses to start)."""
        self._apply(settings)

    def configure(self, settings: TracingSettings) -> None:
        """Apply a config that changed while running; a missing extra is logged and
        tracing stays off."""
        try:
            self._apply(settings)
        except TracingUnavailable as e:
            log.error("%s; tracing stays off", e)

    def _apply(self, settings: TracingSettings) -> None:
        key = (
            settings.tracing_protocol,
            settings.tracing_endpoint,
            float(settings.tracing_sampling_rate),
        )
        if key == self._key:
            return
        protocol, endpoint, rate = key
        new: OtelTracer | None = None
        if protocol == HTTP_PROTOBUF:
            try:
                from .otel import OtelTracer
            except ImportError as e:
                # off; the same config applied again tries again
                self._retire(self.tracer)
                self.tracer = None
                self._key = (NONE, "", 0.0)
                raise TracingUnavailable(
                    f"tracing-protocol {HTTP_PROTOBUF} needs the OpenTelemetry packages "
                    f"(the tracing extra: {EXTRA_HINT}); {e}"
                ) from None
            new = OtelTracer(endpoint, rate, self.resource, self.scope)
            log.info("tracing on: OTLP/HTTP to %s, sampling rate %g", endpoint, rate)
        elif protocol != NONE:
            raise ValueError(f"tracing-protocol: must be none or {HTTP_PROTOBUF}, got {protocol!r}")
        else:
            log.info("tracing off")
        old = self.tracer
        self.tracer = new
        self._key = key
        self._retire(old)

    def _retire(self, old: OtelTracer | None) -> None:
        """Shut ``old`` down after ``RETIRE_GRACE``, in a thread: its exporter's last
        batch is an HTTP request, which must not block the event loop."""
        if old is None:
            return
        with self._lock:
            self._retiring.append(old)

        def later() -> None:
            time.sleep(RETIRE_GRACE)
            self._shutdown(old)

        threading.Thread(target=later, name="tracing-retire", daemon=True).start()

    def _shutdown(self, tracer: OtelTracer) -> None:
        with self._lock:
            if tracer not in self._retiring:
                return
            self._retiring.remove(tracer)
        tracer.shutdown()

    def close(self) -> None:
        """Flush and shut down every provider (blocking: run it off the event loop)."""
        current, self.tracer = self.tracer, None
        self._key = (NONE, "", 0.0)
        with self._lock:
            retiring, self._retiring = self._retiring, []
        for tracer in [*retiring, *([current] if current is not None else [])]:
            tracer.shutdown()
