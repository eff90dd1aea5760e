"""gRPC through ``zeroserve up``: the grpc-ping example (a port named h2c) answers unary
and server-streaming calls through the ingress, from zero too (the first call is held
while the revision wakes), and a call for no route is gRPC's UNIMPLEMENTED."""

from __future__ import annotations

import sys
from pathlib import Path

import grpc
import pytest

from .support import EXAMPLES, UpProcess, zeroserve_up

sys.path.insert(0, str(EXAMPLES / "grpc-ping"))
from pingproto import PING, PING_STREAM, decode, encode

FAST = EXAMPLES / "config-autoscaler-fast.yaml"
HOST = "grpc-ping.default.localhost"

pytestmark = [pytest.mark.process, pytest.mark.timeout(180)]


def channel(up: UpProcess, authority: str = HOST) -> grpc.aio.Channel:
    address = up.ingress.removeprefix("http://")
    return grpc.aio.insecure_channel(address, options=[("grpc.default_authority", authority)])


async def test_grpc_ping_unary_and_streaming_from_zero_and_back(tmp_path: Path) -> None:
    async with zeroserve_up(tmp_path, FAST, EXAMPLES / "grpc-ping.yaml") as up:
        async with channel(up) as ch:
            ping = ch.unary_unary(PING, request_serializer=encode, response_deserializer=decode)
            assert await ping("hello", timeout=60) == "pong from grpc-ping: hello"
            stream = ch.unary_stream(
                PING_STREAM, request_serializer=encode, response_deserializer=decode
            )
            answers = [a async for a in stream("4", timeout=60)]
            assert answers == [f"pong {i}/4 from grpc-ping" for i in range(1, 5)]

        async def no_pods() -> bool:
            out = (await up.acli("get", "pods")).stdout.strip()
            return out == "No resources found in default namespace."

        await up.until(no_pods, "scaled to zero", within=90)
        async with channel(up) as ch:
            ping = ch.unary_unary(PING, request_serializer=encode, response_deserializer=decode)
            # held while the revision wakes, then answered
            assert await ping("again", timeout=60) == "pong from grpc-ping: again"
        async with channel(up, "nothing.default.localhost") as ch:
            ping = ch.unary_unary(PING, request_serializer=encode, response_deserializer=decode)
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await ping("x", timeout=10)
            assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
