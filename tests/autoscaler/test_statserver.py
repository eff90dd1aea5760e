"""The activators' stats websocket, with a real websocket client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from autoscaler.model import RevisionKey
from autoscaler.statserver import StatServer, parse_batch
from zeroserve.stats import Stat


@pytest.fixture
async def server() -> AsyncIterator[tuple[StatServer, list[tuple[RevisionKey, Stat]], str]]:
    got: list[tuple[RevisionKey, Stat]] = []
    srv = StatServer(lambda key, stat: got.append((key, stat)))
    runner = web.AppRunner(srv.app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield srv, got, f"http://127.0.0.1:{runner.addresses[0][1]}/"
    finally:
        await runner.cleanup()


async def _until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_batches_are_recorded_and_bad_ones_dropped_without_closing(server) -> None:  # type: ignore[no-untyped-def]
    srv, got, url = server
    async with aiohttp.ClientSession() as s, s.ws_connect(url) as ws:
        await ws.send_str(
            json.dumps(
                [
                    {
                        "namespace": "default",
                        "revision": "hello-00001",
                        "stat": {
                            "pod_name": "activator-1",
                            "average_concurrent_requests": 3,
                            "request_count": 5,
                        },
                    },
                    {
                        "namespace": "prod",
                        "revision": "api-00002",
                        "stat": {"pod_name": "activator-1"},
                    },
                ]
            )
        )
        await ws.send_str("not json")
        await ws.send_str(
            json.dumps(
                [
                    {
                        "namespace": "default",
                        "revision": "hello-00001",
                        "stat": {"pod_name": "activator-1", "average_concurrent_requests": 1},
                    }
                ]
            )
        )
        await _until(lambda: len(got) == 3)
        assert not ws.closed
    assert got[0] == (
        RevisionKey("default", "hello-00001"),
        Stat(pod_name="activator-1", average_concurrent_requests=3.0, request_count=5.0),
    )
    assert got[1][0] == RevisionKey("prod", "api-00002")
    assert (srv.frames, srv.bad_frames) == (2, 1)


async def test_clients_are_told_to_reconnect_on_shutdown() -> None:
    srv = StatServer(lambda key, stat: None)
    runner = web.AppRunner(srv.app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
    async with aiohttp.ClientSession() as s, s.ws_connect(url) as ws:
        await runner.cleanup()
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE
        assert msg.data == aiohttp.WSCloseCode.SERVICE_RESTART


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ("{}", "batch must be a JSON array"),
        ("[1]", r"batch\[0\] must be an object"),
        (
            '[{"namespace": "", "revision": "r", "stat": {}}]',
            r"batch\[0\] needs non-empty string namespace",
        ),
        (
            '[{"namespace": "n", "revision": "r", "stat": {"request_count": "x"}}]',
            r"batch\[0\]\.stat field request_count",
        ),
        ('[{"namespace": "n", "revision": "r"}]', r"batch\[0\]\.stat must be a JSON object"),
    ],
    ids=["not-array", "not-object", "empty-namespace", "bad-field", "missing-stat"],
)
def test_parse_batch_errors_say_what_is_wrong(frame: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_batch(frame)
