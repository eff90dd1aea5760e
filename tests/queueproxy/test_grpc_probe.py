"""gRPC readiness probes (docs/queue-proxy.md, "Health checks"): the queue-proxy's
``ReadinessProber`` calls ``grpc.health.v1.Health/Check`` on a real grpcio server
listening on 127.0.0.1, started by the test in this process."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from queueproxy.readiness import (
    ReadinessProber,
    decode_health_status,
    encode_health_request,
    parse_probe,
)
from tests.queueproxy.grpc_health import NOT_SERVING, SERVING, HealthState, grpc_app
from zeroserve.local.ports import kernel_port


@asynccontextmanager
async def prober(port: int, **probe: object) -> AsyncIterator[ReadinessProber]:
    """A prober for ``{"grpc": {"port": port, ...}}`` plus ``probe``'s timing fields;
    ``service`` goes into the grpc section."""
    grpc_section: dict[str, object] = {"port": port}
    if "service" in probe:
        grpc_section["service"] = probe.pop("service")
    spec = parse_probe(json.dumps({"grpc": grpc_section, **probe}), user_port=1)
    assert spec is not None and spec.kind == "grpc"
    p = ReadinessProber(spec)
    try:
        yield p
    finally:
        await p.aclose()


ONE_SHOT = {"periodSeconds": 1, "timeoutSeconds": 1}


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        ("", b""),  # the default value: an empty message
        ("web", b"\x0a\x03web"),
        ("é", b"\x0a\x02\xc3\xa9"),  # length in UTF-8 bytes
        ("s" * 200, b"\x0a\xc8\x01" + b"s" * 200),  # a two-byte varint length
    ],
    ids=["empty", "ascii", "utf8", "long"],
)
def test_health_check_request_encoding(service: str, expected: bytes) -> None:
    assert encode_health_request(service) == expected


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"", 0),  # status UNKNOWN is the default, sent as nothing
        (b"\x08\x01", 1),
        (b"\x08\x02", 2),
        (b"\x4a\x02hi\x08\x01", 1),  # an unknown string field first is skipped
        (b"\x10\x05\x08\x03", 3),  # an unknown varint field too
        (b"\x08\x02\x08\x01", 1),  # the last one wins
    ],
    ids=["empty", "serving", "not-serving", "skip-string", "skip-varint", "last-wins"],
)
def test_health_check_response_decoding(data: bytes, status: int) -> None:
    assert decode_health_status(data) == status


@pytest.mark.parametrize(
    "data", [b"\x08", b"\x0a\x05ab", b"\x0f"], ids=["cut-varint", "cut", "wt7"]
)
def test_a_malformed_response_is_an_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode_health_status(data)


async def test_serving_passes() -> None:
    state = HealthState()
    async with grpc_app(state) as port, prober(port, **ONE_SHOT) as p:
        assert await p.check() is True
        assert p.last_result is True
    assert state.asked == [""]
    assert state.user_agents and state.user_agents[0].startswith("kube-probe/")


async def test_not_serving_fails() -> None:
    state = HealthState(statuses={"": NOT_SERVING})
    async with grpc_app(state) as port, prober(port, **ONE_SHOT) as p:
        assert await p.check() is False
        state.statuses[""] = SERVING  # the same channel sees the change
        assert await p.check() is True
    assert state.asked == ["", ""]


async def test_the_named_service_is_asked() -> None:
    state = HealthState(statuses={"": NOT_SERVING, "shop.Cart": SERVING})
    async with grpc_app(state) as port:
        async with prober(port, service="shop.Cart", **ONE_SHOT) as p:
            assert await p.check() is True
        async with prober(port, service="shop.Orders", **ONE_SHOT) as p:
            assert await p.check() is False  # NOT_FOUND from the server
    assert state.asked == ["shop.Cart", "shop.Orders"]


async def test_a_server_without_the_health_service_is_not_ready() -> None:
    async with grpc_app(health=False) as port, prober(port, **ONE_SHOT) as p:
        assert await p.check() is False  # UNIMPLEMENTED


async def test_no_server_is_not_ready_within_the_timeout() -> None:
    loop = asyncio.get_running_loop()
    async with prober(kernel_port(), **ONE_SHOT) as p:
        start = loop.time()
        assert await p.check() is False
        assert loop.time() - start < 1.5


async def test_a_server_that_does_not_answer_fails_at_the_timeout() -> None:
    loop = asyncio.get_running_loop()
    state = HealthState(delay=5)
    async with grpc_app(state) as port, prober(port, periodSeconds=1, timeoutSeconds=0.3) as p:
        start = loop.time()
        assert await p.check() is False
        assert 0.25 <= loop.time() - start < 1.0  # DEADLINE_EXCEEDED, no hang


async def test_aggressive_mode_waits_until_the_app_answers_serving() -> None:
    loop = asyncio.get_running_loop()
    port = kernel_port()  # nothing listens there yet
    state = HealthState(statuses={"": NOT_SERVING})
    async with prober(port, periodSeconds=0) as p:
        pending = asyncio.create_task(p.check())
        await asyncio.sleep(1.5)
        assert not pending.done()  # retrying every 50 ms, not failing at once
        async with grpc_app(state, port=port):
            started = loop.time()
            while not state.asked:  # the server is up: answering NOT_SERVING
                await asyncio.sleep(0.02)
            # reached within a few retries: the channel is not in gRPC's default reconnect
            # backoff (1 s, then 1.6 s, ...), which would leave the app unprobed for a second
            assert loop.time() - started < 0.5
            await asyncio.sleep(0.3)
            assert not pending.done()
            serving_since = loop.time()
            state.statuses[""] = SERVING
            assert await asyncio.wait_for(pending, 5) is True
            assert loop.time() - serving_since < 0.5  # the next 50 ms retry


async def test_aggressive_mode_counts_success_threshold_in_a_row() -> None:
    state = HealthState()
    async with grpc_app(state) as port, prober(port, periodSeconds=0, successThreshold=3) as p:
        assert await p.check() is True
    assert len(state.asked) == 3


async def test_checks_share_the_probe_in_flight() -> None:
    state = HealthState(delay=0.2)
    async with grpc_app(state) as port, prober(port, **ONE_SHOT) as p:
        results = await asyncio.gather(*(p.check() for _ in range(5)))
    assert results == [True] * 5
    assert len(state.asked) == 1


async def test_close_ends_a_probe_in_flight() -> None:
    state = HealthState(delay=5)
    async with grpc_app(state) as port:
        async with prober(port, **ONE_SHOT) as p:
            pending = asyncio.create_task(p.check())
            while not state.asked:
                await asyncio.sleep(0.02)
        # aclose() cancelled the probe and closed the channel
        with pytest.raises(asyncio.CancelledError):
            await pending
