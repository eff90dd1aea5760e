"""The relay that lets pods reach the host's loopback services (zeroserve/local/hostrelay.py)."""

from __future__ import annotations

import asyncio

import pytest

from zeroserve.local.hostrelay import LoopbackRelay, loopback_port
from zeroserve.observability import ObservabilityConfig


@pytest.mark.parametrize(
    ("url", "port"),
    [
        ("http://127.0.0.1:4318/v1/traces", 4318),
        ("http://localhost:4318/v1/traces", 4318),
        ("http://127.9.9.9:4318/v1/traces", 4318),
        ("http://[::1]:4318/v1/traces", 4318),
        ("http://127.0.0.1/v1/traces", 80),
        ("https://localhost/v1/traces", 443),
        ("http://198.18.0.1:4318/v1/traces", None),
        ("http://collector.observability:4318/v1/traces", None),
        ("http://10.0.0.7:4318/v1/traces", None),
    ],
)
def test_only_loopback_endpoints_need_the_relay(url: str, port: int | None) -> None:
    assert loopback_port(url) == port


async def _echo_server() -> tuple[asyncio.Server, int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()  # until the client's half-close
        writer.write(b"echo:" + data)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_pod_view_sends_a_loopback_endpoint_through_a_relay_that_copies_both_ways() -> None:
    server, target = await _echo_server()
    # the bridge's address in pod mode; any local address serves for the copying
    relay = LoopbackRelay("127.0.0.2")
    try:
        config = ObservabilityConfig(
            tracing_protocol="http/protobuf",
            tracing_endpoint=f"http://127.0.0.1:{target}/v1/traces?x=1",
            tracing_sampling_rate=0.5,
        )
        view = relay.pod_view(config)
        port = relay.port_for(target)
        assert view.tracing_endpoint == f"http://127.0.0.2:{port}/v1/traces?x=1"
        assert view.tracing_sampling_rate == 0.5 and view.tracing_protocol == "http/protobuf"
        assert relay.pod_view(config) == view  # one listener per loopback port
        reader, writer = await asyncio.open_connection("127.0.0.2", port)
        writer.write(b"spans" * 20000)  # more than one read's worth
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 10) == b"echo:" + b"spans" * 20000
        writer.close()
    finally:
        await relay.close()
        server.close()
        await server.wait_closed()


async def test_other_endpoints_and_tracing_off_are_left_as_they_are() -> None:
    relay = LoopbackRelay("127.0.0.2")
    try:
        remote = ObservabilityConfig(
            tracing_protocol="http/protobuf", tracing_endpoint="http://collector:4318/v1/traces"
        )
        assert relay.pod_view(remote) is remote
        off = ObservabilityConfig()
        assert relay.pod_view(off) is off
    finally:
        await relay.close()


async def test_a_relayed_connection_to_nothing_is_closed() -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    free = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    relay = LoopbackRelay("127.0.0.2")
    try:
        port = relay.port_for(free)
        reader, writer = await asyncio.open_connection("127.0.0.2", port)
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
    finally:
        await relay.close()
