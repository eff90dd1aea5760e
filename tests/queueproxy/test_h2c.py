"""HTTP/2 through a real queue-proxy process: h2c from clients, HTTP/2 to an app whose
port is named h2c (USER_PROTOCOL=h2c) whatever the client spoke, and the breaker
counting streams, not connections."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.support.apps import run_app
from tests.support.h2app import run_h2_app
from tests.support.procs import queue_proxy

pytestmark = pytest.mark.process  # every test here runs a queue-proxy process


async def _until(predicate, within: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_an_http11_client_reaches_an_h2c_app_in_http2(tmp_path: Path) -> None:
    """What Knative's protocol conformance test checks: the app gets HTTP/2."""
    async with (
        run_h2_app() as (app, state),
        queue_proxy(app, tmp_path, USER_PROTOCOL="h2c") as qp,
        httpx.AsyncClient(timeout=20) as client,
    ):
        r = await client.get(qp.url("/proto"))
        assert (r.http_version, r.text) == ("HTTP/1.1", "HTTP/2")
        assert state.requests == 1
        async with httpx.AsyncClient(http1=False, http2=True, timeout=20) as h2:
            r = await h2.get(qp.url("/proto"))
            assert (r.http_version, r.text) == ("HTTP/2", "HTTP/2")


async def test_an_http2_client_reaches_an_http11_app(tmp_path: Path) -> None:
    async with (
        run_app() as (app, _state),
        queue_proxy(app, tmp_path) as qp,
        httpx.AsyncClient(http1=False, http2=True, timeout=20) as client,
    ):
        r = await client.get(qp.url("/hello"))
        assert (r.http_version, r.text) == ("HTTP/2", "hello")


async def test_cc1_with_ten_streams_on_one_connection_never_has_two_at_the_app(
    tmp_path: Path,
) -> None:
    async with (
        run_h2_app() as (app, state),
        queue_proxy(app, tmp_path, USER_PROTOCOL="h2c", CONTAINER_CONCURRENCY="1") as qp,
        httpx.AsyncClient(http1=False, http2=True, timeout=30) as client,
    ):
        state.release.clear()
        calls = [asyncio.create_task(client.get(qp.url("/hold"))) for _ in range(10)]
        await _until(lambda: state.in_flight == 1)
        await asyncio.sleep(0.3)  # time for a wrongly admitted second one to arrive
        assert state.in_flight == 1 and state.requests == 1
        state.release.set()
        replies = await asyncio.gather(*calls)
        assert [r.text for r in replies] == ["released"] * 10
        assert state.max_in_flight == 1 and state.requests == 10


async def test_sigterm_lets_streams_in_flight_finish_then_goaway(tmp_path: Path) -> None:
    from h2.events import DataReceived, StreamEnded

    from tests.http.test_http2 import RawClient

    async with (
        run_h2_app() as (app, state),
        queue_proxy(app, tmp_path, USER_PROTOCOL="h2c") as qp,
    ):
        state.release.clear()
        reader, writer = await asyncio.open_connection("127.0.0.1", qp.port)
        client = RawClient(reader, writer)
        client.h2.initiate_connection()
        client.flush()
        held = client.request("/hold")
        await _until(lambda: state.in_flight == 1)
        qp.terminate()
        await client.read_until(lambda: client.goaway is not None, within=20)
        state.release.set()
        await client.read_until(lambda: client.of(StreamEnded, held), within=20)
        assert b"".join(e.data for e in client.of(DataReceived, held)) == b"released"
        assert await qp.wait() == 0, qp.log_text()
        writer.close()
