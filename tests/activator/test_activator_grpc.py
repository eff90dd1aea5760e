"""gRPC's four kinds of call through the activator and a real queue-proxy to a grpcio
server (h2c): unary, client-streaming, server-streaming and bidirectional, with
trailers (status and metadata) and deadlines, and an app error passed as it is."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from tests.support.procs import queue_proxy
from zeroserve.local.ports import kernel_port

from .test_activator_e2e import HOST, activator
from .test_activator_h2c import route_h2c

pytestmark = pytest.mark.process

SERVICE = "test.Calls"


def _text(b: bytes) -> str:
    return b.decode()


def _bytes(s: str) -> bytes:
    return s.encode()


def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
    if request == b"fail":
        context.set_trailing_metadata((("why", "asked"),))
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, "the app says no")
    return b"echo " + request


def client_stream(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
    return b"+".join(requests)


def server_stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    for i in range(int(request)):
        yield b"%d" % i


def slow(request: bytes, context: grpc.ServicerContext) -> bytes:
    time.sleep(float(request))
    return b"late"


def bidi(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
    for r in requests:
        yield r.upper()


@pytest.fixture
def grpc_app() -> Iterator[int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
        "Slow": grpc.unary_unary_rpc_method_handler(slow),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(grace=None)


async def test_every_kind_of_call_passes_both_hops(grpc_app: int, tmp_path: Path) -> None:
    async with (
        queue_proxy(grpc_app, tmp_path, USER_PROTOCOL="h2c") as qp,
        activator() as (act, url),
    ):
        address = f"127.0.0.1:{route_h2c(act, url, qp)}"
        async with grpc.aio.insecure_channel(
            address, options=[("grpc.default_authority", HOST)]
        ) as ch:
            call = ch.unary_unary(f"/{SERVICE}/Unary", _bytes, _text)
            assert await call("hi", timeout=20) == "echo hi"

            async def parts() -> AsyncIterator[str]:
                for p in ("a", "b", "c"):
                    yield p
                    await asyncio.sleep(0.05)  # the request body streams

            upload = ch.stream_unary(f"/{SERVICE}/ClientStream", _bytes, _text)
            assert await upload(parts(), timeout=20) == "a+b+c"

            download = ch.unary_stream(f"/{SERVICE}/ServerStream", _bytes, _text)
            assert [m async for m in download("5", timeout=20)] == ["0", "1", "2", "3", "4"]

            # bidirectional: each answer arrives before the next message is sent
            chat = ch.stream_stream(f"/{SERVICE}/Bidi", _bytes, _text)(timeout=20)
            for word in ("one", "two", "three"):
                await chat.write(word)
                assert await chat.read() == word.upper()
            await chat.done_writing()
            assert await chat.read() == grpc.aio.EOF

            # the app's own error, with its trailing metadata, passes as it is
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await call("fail", timeout=20)
            assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert e.value.details() == "the app says no"
            assert ("why", "asked") in tuple(e.value.trailing_metadata() or ())


async def test_an_unreachable_app_is_unavailable_to_a_grpc_client(tmp_path: Path) -> None:
    port = kernel_port()  # nothing listens there
    async with (
        queue_proxy(port, tmp_path, USER_PROTOCOL="h2c") as qp,
        activator() as (act, url),
    ):
        address = f"127.0.0.1:{route_h2c(act, url, qp)}"
        async with grpc.aio.insecure_channel(
            address, options=[("grpc.default_authority", HOST)]
        ) as ch:
            call = ch.unary_unary(f"/{SERVICE}/Unary", _bytes, _text)
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await call("hi", timeout=20)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_the_revision_timeout_is_deadline_exceeded(grpc_app: int, tmp_path: Path) -> None:
    async with queue_proxy(
        grpc_app, tmp_path, USER_PROTOCOL="h2c", REVISION_TIMEOUT_SECONDS="0.5"
    ) as qp:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{qp.port}") as ch:
            call = ch.unary_unary(f"/{SERVICE}/Slow", _bytes, _text)
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await call("2", timeout=20)  # the client would wait; the revision does not
            assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert e.value.details() == "request timeout"
