"""The OpenTelemetry side of :mod:`zeroserve.tracing`: imported only while tracing is on.

One :class:`OtelTracer` is one tracer provider: a ``ParentBased(TraceIdRatioBased(rate))``
sampler (a caller's sampling decision is kept; a trace the hop starts is sampled at
``tracing-sampling-rate``), a ``BatchSpanProcessor`` (its ``OTEL_BSP_*`` environment
variables apply) and the OTLP/HTTP protobuf exporter to ``tracing-endpoint``. The
hops' handlers make their spans through it (docs/observability.md, "Tracing", lists
them); span names follow Knative's where it has them (knative/serving
``pkg/activator/handler/handler.go``: ``throttler_try``, ``activator_proxy``;
``pkg/queue/handler.go``: ``kn.queueproxy.wait``, ``kn.queueproxy.proxy``; the server
spans ``handle`` and ``queue`` of ``cmd/activator/main.go`` and
``pkg/queue/sharedmain/handlers.go``), attributes follow the OpenTelemetry HTTP semantic
conventions.

A hop's clock is ``time.monotonic``; spans are stamped in Unix nanoseconds:
:func:`wall_ns` converts, so a span can be made after the fact with the times it had
(the activator's ``held`` span and its cold-start events are made when the wait ends).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.propagators.b3 import B3MultiFormat
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .http.exchange import Request
from .http.headers import PROPAGATION_HEADERS

SERVER = SpanKind.SERVER
CLIENT = SpanKind.CLIENT
INTERNAL = SpanKind.INTERNAL


def wall_ns(monotonic: float) -> int:
    """The Unix time in nanoseconds of a ``time.monotonic()`` reading."""
    return time.time_ns() - int((time.monotonic() - monotonic) * 1e9)


class RequestTrace:
    """The spans of one request at one hop (``Request.trace``)."""

    __slots__ = (
        "attempt",
        "attempts",
        "cold",
        "context",
        "held",
        "proxy",
        "recording",
        "server",
        "tracer",
        "why",
    )

    def __init__(self, tracer: OtelTracer, server: Span) -> None:
        self.tracer = tracer
        """The tracer that started it: a live change of config leaves it to finish here."""
        self.server = server
        self.recording = server.is_recording()
        """Sampled: only then are the hop's other spans made (an unsampled request's
        children would be unsampled too; its context still goes along)."""
        self.context = trace.set_span_in_context(server)
        """The server span's context: the parent of the hop's other spans."""
        self.held = 0.0  # when it started waiting for capacity (monotonic); 0: it did not
        self.cold = False  # it waited for a revision with no replica
        self.why = ""  # why it never got capacity (a throttler's refusal, a timeout)
        self.proxy: Span | None = None  # from the first forward to the end
        self.attempt: Span | None = None  # the forward in progress (a client span)
        self.attempts = 0


def _path(req: Request) -> str:
    return req.target.split(b"?", 1)[0].decode("latin-1") or "/"


class OtelTracer:
    """A tracer provider with its exporter, and the span helpers the hops use."""

    def __init__(self, endpoint: str, rate: float, resource: Mapping[str, str], scope: str):
        self.provider = TracerProvider(
            resource=Resource.create(dict(resource)),
            sampler=ParentBased(TraceIdRatioBased(rate)),
        )
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        self.tracer = self.provider.get_tracer(scope)
        # W3C wins when a request carries both: it is extracted last
        self.propagator = CompositePropagator([B3MultiFormat(), TraceContextTextMapPropagator()])

    # -- spans --------------------------------------------------------------------

    def server(self, req: Request, name: str, scheme: str = "http") -> RequestTrace:
        """The request's server span, parented to the caller's context (W3C or B3)."""
        carrier = {}
        for lname, line in req.lines:
            if lname in PROPAGATION_HEADERS:
                carrier[lname.decode("latin-1")] = line.split(b":", 1)[1].strip().decode("latin-1")
        parent = self.propagator.extract(carrier) if carrier else None
        span = self.tracer.start_span(
            name,
            context=parent,
            kind=SERVER,
            start_time=wall_ns(req.started) if req.started else None,
        )
        rt = RequestTrace(self, span)
        if not rt.recording:
            return rt
        h = req.h
        attributes: dict[str, Any] = {
            "http.request.method": req.method.decode("latin-1"),
            "url.path": _path(req),
            "url.scheme": scheme,
            "network.protocol.version": req.version,
        }
        host = h.get(b"host")
        if host:
            name_, _, port = host.decode("latin-1").rpartition(":")
            if name_ and port.isdigit():
                attributes["server.address"] = name_
                attributes["server.port"] = int(port)
            else:
                attributes["server.address"] = host.decode("latin-1")
        ua = h.get(b"user-agent")
        if ua:
            attributes["user_agent.original"] = ua.decode("latin-1")
        span.set_attributes(attributes)
        return rt

    def span(
        self,
        rt: RequestTrace,
        name: str,
        *,
        start: float,
        end: float | None = None,
        kind: SpanKind = INTERNAL,
        parent: Span | None = None,
        attributes: Mapping[str, Any] | None = None,
        events: Sequence[tuple[str, float]] = (),
        error: str = "",
    ) -> Span:
        """A span under ``parent`` (default: the server span) from ``start`` (monotonic),
        ended at ``end`` when given, with ``events`` (name, monotonic time) and an error
        status when ``error`` says why. Nothing (an invalid span) when not sampled."""
        if not rt.recording:
            return trace.INVALID_SPAN
        ctx: Context = rt.context if parent is None else trace.set_span_in_context(parent)
        span = self.tracer.start_span(
            name, context=ctx, kind=kind, attributes=attributes, start_time=wall_ns(start)
        )
        for event, at in events:
            span.add_event(event, timestamp=wall_ns(at))
        if error:
            span.set_status(Status(StatusCode.ERROR, error))
        if end is not None:
            span.end(end_time=wall_ns(end))
        return span

    def end(self, span: Span, at: float) -> None:
        """End ``span`` at ``at`` (monotonic)."""
        span.end(end_time=wall_ns(at))

    def client(
        self, rt: RequestTrace, req: Request, name: str, authority: bytes, parent: Span | None
    ) -> bytes:
        """Start a forward attempt's client span (``rt.attempt``); returns the header lines
        that carry its context to the next hop (W3C and B3 multi-header). Not sampled:
        no span, the server span's context goes along."""
        carrier: dict[str, str] = {}
        if not rt.recording:
            rt.attempts += 1
            self.propagator.inject(carrier, context=rt.context)
            return b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in carrier.items())
        host, _, port = authority.decode("latin-1").rpartition(":")
        attributes: dict[str, Any] = {
            "http.request.method": req.method.decode("latin-1"),
            "server.address": host or authority.decode("latin-1"),
            "url.full": "http://" + authority.decode("latin-1") + req.target.decode("latin-1"),
        }
        if port.isdigit():
            attributes["server.port"] = int(port)
        if rt.attempts:
            attributes["http.request.resend_count"] = rt.attempts
        rt.attempts += 1
        ctx = trace.set_span_in_context(parent) if parent is not None else rt.context
        span = self.tracer.start_span(name, context=ctx, kind=CLIENT, attributes=attributes)
        rt.attempt = span
        self.propagator.inject(carrier, context=trace.set_span_in_context(span))
        return b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in carrier.items())

    def attempt_failed(self, rt: RequestTrace, error: Exception) -> None:
        """The forward in progress failed before a response: its span ends with the error
        (``error.type``: the exception's class, as the semantic conventions ask)."""
        span = rt.attempt
        if span is not None:
            rt.attempt = None
            span.set_attribute("error.type", type(error).__name__)
            span.set_status(Status(StatusCode.ERROR, str(error) or type(error).__name__))
            span.end()

    def finish(self, rt: RequestTrace, status: int, attributes: Mapping[str, Any] = {}) -> None:
        """The exchange ended with ``status`` (499: the client went away): end whatever is
        open, the server span last. 5xx is an error on the server span, 4xx and 5xx on a
        client span (the HTTP semantic conventions)."""
        now = time.time_ns()
        for span, error_from in ((rt.attempt, 400), (rt.proxy, 500)):
            if span is not None:
                span.set_attribute("http.response.status_code", status)
                if status >= error_from:
                    span.set_status(Status(StatusCode.ERROR))
                span.end(end_time=now)
        rt.attempt = rt.proxy = None
        server = rt.server
        server.set_attribute("http.response.status_code", status)
        if attributes:
            server.set_attributes(dict(attributes))
        if status >= 500:
            server.set_status(Status(StatusCode.ERROR))
        server.end(end_time=now)

    def shutdown(self) -> None:
        """Flush the spans still batched and stop the exporter (blocking)."""
        self.provider.shutdown()
