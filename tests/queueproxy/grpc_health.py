"""A gRPC app for the readiness tests: a grpcio aio server on 127.0.0.1 whose
``grpc.health.v1.Health/Check`` answers from a table the test changes as it goes.

The messages are decoded and encoded here by hand, independently of
``queueproxy/readiness.py``, so a test checks its wire format against this copy
rather than against itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import grpc

UNKNOWN, SERVING, NOT_SERVING = 0, 1, 2


@dataclass
class HealthState:
    """What Check answers: ``statuses[service]``, NOT_FOUND for a service not in it
    (as grpc's own health servicer does); and what it was asked."""

    statuses: dict[str, int] = field(default_factory=lambda: {"": SERVING})
    delay: float = 0.0
    asked: list[str] = field(default_factory=list)
    user_agents: list[str] = field(default_factory=list)


def _service_of(request: bytes) -> str:
    # HealthCheckRequest: only field 1 (tag 0x0a), a string; a short test name fits
    # a one-byte length.
    if not request:
        return ""
    assert request[0] == 0x0A and request[1] < 0x80 and len(request) == 2 + request[1], request
    return request[2:].decode()


def _status_message(status: int) -> bytes:
    # HealthCheckResponse: field 1 (tag 0x08), the enum as a varint; an unknown field
    # (9, a string) after it, which a reader must skip.
    return b"\x08" + bytes([status]) + b"\x4a\x02hi"


def _health_handler(state: HealthState) -> grpc.GenericRpcHandler:
    async def check(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        service = _service_of(request)
        state.asked.append(service)
        state.user_agents += [v for k, v in context.invocation_metadata() if k == "user-agent"]
        if state.delay:
            await asyncio.sleep(state.delay)
        if service not in state.statuses:
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return _status_message(state.statuses[service])

    return grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health", {"Check": grpc.unary_unary_rpc_method_handler(check)}
    )


def _echo_handler() -> grpc.GenericRpcHandler:
    async def say(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return request

    return grpc.method_handlers_generic_handler(
        "test.Echo", {"Say": grpc.unary_unary_rpc_method_handler(say)}
    )


@asynccontextmanager
async def grpc_app(
    state: HealthState | None = None, *, port: int = 0, health: bool = True
) -> AsyncIterator[int]:
    """Serve on 127.0.0.1:``port`` (0: a free one), yielding the port. Without
    ``health`` the server has only an unrelated service, so Check is UNIMPLEMENTED."""
    server = grpc.aio.server()
    handler = _health_handler(state or HealthState()) if health else _echo_handler()
    server.add_generic_rpc_handlers((handler,))
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    assert bound, f"could not listen on 127.0.0.1:{port}"
    await server.start()
    try:
        yield bound
    finally:
        await server.stop(None)
