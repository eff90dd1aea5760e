"""An OTLP/HTTP trace receiver for tests: what a collector's ``/v1/traces`` (port 4318)
receives from the hops, decoded from ``ExportTraceServiceRequest`` protobuf."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    events: list[tuple[str, int]]
    error: bool
    status_message: str
    resource: dict[str, Any]

    @property
    def service(self) -> str:
        return str(self.resource.get("service.name", ""))


@dataclass
class Receiver:
    url: str
    spans: list[Span] = field(default_factory=list)
    posts: int = 0
    content_types: set[str] = field(default_factory=set)

    def named(self, name: str) -> list[Span]:
        return [s for s in self.spans if s.name == name]

    def one(self, name: str, service: str | None = None) -> Span:
        found = [s for s in self.named(name) if service is None or s.service == service]
        assert len(found) == 1, f"{len(found)} spans named {name!r}: {[s.name for s in self.spans]}"
        return found[0]

    async def wait_for(self, ok: Callable[[list[Span]], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not ok(self.spans):
            assert time.monotonic() < deadline, f"spans so far: {[s.name for s in self.spans]}"
            await asyncio.sleep(0.05)

    def clear(self) -> None:
        self.spans.clear()


@asynccontextmanager
async def otlp_receiver() -> AsyncIterator[Receiver]:
    """Serve ``POST /v1/traces`` on a free loopback port; yields the receiver."""
    receiver = Receiver("")

    async def traces(request: web.Request) -> web.Response:
        receiver.posts += 1
        receiver.content_types.add(request.content_type)
        msg = ExportTraceServiceRequest.FromString(await request.read())
        for rs in msg.resource_spans:
            resource = {a.key: _value(a.value) for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    receiver.spans.append(
                        Span(
                            name=s.name,
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_id=s.parent_span_id.hex(),
                            kind=KINDS.get(s.kind, str(s.kind)),
                            start_ns=s.start_time_unix_nano,
                            end_ns=s.end_time_unix_nano,
                            attributes={a.key: _value(a.value) for a in s.attributes},
                            events=[(e.name, e.time_unix_nano) for e in s.events],
                            error=s.status.code == 2,
                            status_message=s.status.message,
                            resource=resource,
                        )
                    )
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver.url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/traces"
    try:
        yield receiver
    finally:
        await runner.cleanup()
