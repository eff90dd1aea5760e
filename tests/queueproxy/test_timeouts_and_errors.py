"""Timeouts (docs/http.md, "Limits and timeouts"), upstream failures and hostile input."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.apps import run_app
from tests.support.procs import queue_proxy
from tests.support.raw import read_response

pytestmark = pytest.mark.process  # every test here runs a queue-proxy process


async def test_total_timeout_gives_504_and_frees_the_slot(tmp_path: Path) -> None:
    async with (
        run_app() as (port, _state),
        queue_proxy(
            port, tmp_path, REVISION_TIMEOUT_SECONDS="0.5", CONTAINER_CONCURRENCY="1"
        ) as qp,
        httpx.AsyncClient(timeout=30) as client,
    ):
        r = await client.get(qp.url("/sleep?s=5"))
        assert r.status_code == 504
        assert r.headers["x-zeroserve-error"] == "queue-proxy; reason=timeout"
        assert r.text == "request timeout\n"
        # the breaker slot came back: the next request is served at once
        r = await client.get(qp.url("/hello"))
        assert r.status_code == 200


async def test_queued_request_times_out_with_504(tmp_path: Path) -> None:
    async with (
        run_app() as (port, _state),
        queue_proxy(port, tmp_path, REVISION_TIMEOUT_SECONDS="1", CONTAINER_CONCURRENCY="1") as qp,
        httpx.AsyncClient(timeout=30) as client,
    ):
        holder = asyncio.create_task(client.get(qp.url("/sleep?s=0.9")))
        await asyncio.sleep(0.2)
        r = await client.get(qp.url("/sleep?s=0.9"))  # waits 0.7 s, then runs past 1 s
        assert r.status_code == 504
        assert (await holder).status_code == 200


async def test_response_start_timeout(tmp_path: Path) -> None:
    async with (
        run_app() as (port, _),
        queue_proxy(port, tmp_path, REVISION_RESPONSE_START_TIMEOUT_SECONDS="0.5") as qp,
        httpx.AsyncClient(timeout=30) as client,
    ):
        r = await client.get(qp.url("/sleep?s=3"))
        assert r.status_code == 504
        # a response that started in time may take longer than that
        async with client.stream("GET", qp.url("/sse?n=2&interval=1")) as resp:
            body = b"".join([c async for c in resp.aiter_raw()])
        assert resp.status_code == 200 and body.count(b"data:") == 2


async def test_idle_timeout_ends_a_started_response(tmp_path: Path) -> None:
    async with (
        run_app() as (port, _),
        queue_proxy(port, tmp_path, REVISION_IDLE_TIMEOUT_SECONDS="0.5") as qp,
    ):
        async with httpx.AsyncClient(timeout=30) as client:
            loop = asyncio.get_running_loop()
            start = loop.time()
            r = await client.get(qp.url("/stall?s=5"))
            # the status was out (200); the stream is ended with the timeout text
            assert r.status_code == 200
            assert r.content == b"first bytes\nrequest timeout"
            assert loop.time() - start < 3


async def test_total_timeout_after_the_response_started_ends_it(tmp_path: Path) -> None:
    async with (
        run_app() as (port, _),
        queue_proxy(port, tmp_path, REVISION_TIMEOUT_SECONDS="0.7") as qp,
    ):
        async with httpx.AsyncClient(timeout=30) as client:
            r = await client.get(qp.url("/stall?s=5"))
            assert r.status_code == 200
            assert r.content.endswith(b"request timeout")


async def test_app_crash_mid_response_cuts_the_client_connection(tmp_path: Path) -> None:
    from aiohttp import web

    async def half(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_length = 1000
        await resp.prepare(request)
        await resp.write(b"x" * 100)
        assert request.transport is not None
        request.transport.abort()
        return resp

    app = web.Application()
    app.router.add_get("/half", half)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        async with queue_proxy(port, tmp_path) as qp:
            reader, writer = await asyncio.open_connection("127.0.0.1", qp.port)
            writer.write(b"GET /half HTTP/1.1\r\nHost: x\r\n\r\n")
            resp = await read_response(reader)
            writer.close()
            assert resp.status == 200
            assert not resp.complete and len(resp.body) == 100  # cut, not padded
    finally:
        await runner.cleanup()


async def test_reused_connection_closed_by_the_app_is_retried_transparently(tmp_path: Path) -> None:
    # The app closes idle keep-alive connections after 50 ms; a request sent
    # as it does so must not fail.
    async with run_app(keepalive_timeout=0.05) as (port, state), queue_proxy(port, tmp_path) as qp:
        async with httpx.AsyncClient() as client:
            for i in range(15):
                r = await client.get(qp.url("/hello"))
                assert r.status_code == 200, r.text
                await asyncio.sleep(0.045 + 0.001 * i)
        assert state.requests == 15


_token = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"),
    min_size=1,
    max_size=20,
)
_junk = st.binary(max_size=200)
_request = st.one_of(
    _junk,
    st.builds(
        lambda m, u, v: m + b" " + u + b" " + v + b"\r\n\r\n",
        st.sampled_from([b"GET", b"POST", b"G ET", b"", b"\x00"]),
        _junk,
        st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/9.9", b"HTTP/1.1\x00", b""]),
    ),
    st.builds(
        lambda names, values: (
            b"GET / HTTP/1.1\r\n"
            + b"".join(
                n.encode() + b": " + v + b"\r\n" for n, v in zip(names, values, strict=False)
            )
            + b"\r\n"
        ),
        st.lists(_token, max_size=8),
        st.lists(_junk, max_size=8),
    ),
)


async def test_fuzzed_request_heads_never_crash_the_proxy(tmp_path: Path) -> None:
    async with (
        run_app() as (port, _),
        queue_proxy(port, tmp_path, REVISION_TIMEOUT_SECONDS="2") as qp,
    ):
        # Hypothesis drives synchronously: draw the examples, then send them
        # through the event loop, 25 connections at a time.
        examples: list[bytes] = []

        @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
        @given(_request)
        def collect(data: bytes) -> None:
            examples.append(data)

        collect()
        for i in range(0, len(examples), 25):
            await asyncio.gather(*(_send_and_close(qp.port, d) for d in examples[i : i + 25]))
        assert qp.proc.returncode is None
        async with httpx.AsyncClient() as client:
            assert (await client.get(qp.url("/hello"))).status_code == 200
        assert "Traceback" not in qp.log_text()


async def _send_and_close(port: int, data: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        # an incomplete head gets no answer: the proxy waits for more, as it should
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reader.read(65536), 0.3)
    finally:
        writer.close()
