"""The queue-proxy as a proxy: real app, real queue-proxy process, real sockets."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import aiohttp
import httpx
import pytest

from tests.support.apps import run_app
from tests.support.procs import queue_proxy
from tests.support.raw import read_response

pytestmark = pytest.mark.process  # every test here runs a queue-proxy process


async def test_get_passes_through_and_reuses_app_connections(tmp_path: Path) -> None:
    async with run_app() as (port, state), queue_proxy(port, tmp_path) as qp:
        async with httpx.AsyncClient() as client:
            for _ in range(20):
                r = await client.get(qp.url("/hello"))
                assert r.status_code == 200
                assert r.text == "hello"
        assert state.requests == 20
        # sequential requests share one pooled keep-alive connection to the app
        assert len(state.peers) == 1


async def test_headers_are_rewritten_as_upstream(tmp_path: Path) -> None:
    async with run_app() as (port, _state), queue_proxy(port, tmp_path) as qp:
        async with httpx.AsyncClient() as client:
            r = await client.get(
                qp.url("/headers"),
                headers={
                    "Host": "internal.example",
                    "K-Original-Host": "hello.default.example.com",
                    "Knative-Serving-Revision": "hello-00001",
                    "Knative-Serving-Namespace": "default",
                    "K-Proxy-Request": "activator",
                    "X-Forwarded-For": "203.0.113.7, 10.0.0.1",
                    "X-Forwarded-Proto": "https",
                    "X-Forwarded-Host": "hello.example.com",
                    "Connection": "keep-alive, X-Hop",
                    "X-Hop": "must not pass",
                    "Keep-Alive": "timeout=5",
                    "Proxy-Authorization": "Basic Zm9vOmJhcg==",
                    "TE": "trailers",
                    "X-Custom": "kept",
                },
            )
        seen = r.json()
        h = seen["headers"]
        assert seen["host"] == "hello.default.example.com"  # restored from K-Original-Host
        for gone in (
            "k-original-host",
            "knative-serving-revision",
            "knative-serving-namespace",
            "x-hop",
            "keep-alive",
            "proxy-authorization",
            "te",
        ):
            assert gone not in h, gone
        assert h["x-custom"] == "kept"
        assert h["k-proxy-request"] == "activator"
        assert h["x-forwarded-for"] == "203.0.113.7, 10.0.0.1, 127.0.0.1"
        assert h["forwarded"] == "for=203.0.113.7;host=hello.example.com;proto=https, for=10.0.0.1"


async def test_existing_forwarded_header_is_kept(tmp_path: Path) -> None:
    async with run_app() as (port, _), queue_proxy(port, tmp_path) as qp:
        async with httpx.AsyncClient() as client:
            r = await client.get(
                qp.url("/headers"),
                headers={"Forwarded": "for=192.0.2.1", "X-Forwarded-For": "198.51.100.2"},
            )
        assert r.json()["headers"]["forwarded"] == "for=192.0.2.1"


async def test_large_upload_and_download_stream_in_bounded_memory(tmp_path: Path) -> None:
    size = 1 << 30  # 1 GiB each way
    block = b"\x5a" * (1 << 20)
    expected = hashlib.sha256()
    for _ in range(size // len(block)):
        expected.update(block)

    async def body():  # type: ignore[no-untyped-def]
        for _ in range(size // len(block)):
            yield block

    async with run_app() as (port, _), queue_proxy(port, tmp_path) as qp:
        async with httpx.AsyncClient(timeout=120) as client:
            r = await client.post(qp.url("/sink"), content=body())
            assert r.json() == {"bytes": size, "sha256": expected.hexdigest()}
            got = 0
            async with client.stream("GET", qp.url(f"/download?size={size}")) as resp:
                assert resp.headers["content-length"] == str(size)
                async for chunk in resp.aiter_raw():
                    got += len(chunk)
            assert got == size
        peak_kib = _peak_rss_kib(qp.proc.pid)
    # The proxy's own footprint is ~30 MiB; streaming must not add the body.
    assert peak_kib < 120 * 1024, f"queue-proxy peak RSS {peak_kib} KiB"


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


async def test_chunked_upload_and_chunked_response(tmp_path: Path) -> None:
    pieces = [b"alpha-", b"beta-", b"gamma"]

    async def body():  # type: ignore[no-untyped-def]
        for p in pieces:
            yield p
            await asyncio.sleep(0.01)

    async with run_app() as (port, _), queue_proxy(port, tmp_path) as qp:
        async with httpx.AsyncClient() as client:
            r = await client.post(qp.url("/echo"), content=body())
        assert r.content == b"".join(pieces)
        assert r.headers["transfer-encoding"] == "chunked"


async def test_server_sent_events_are_flushed_as_they_come(tmp_path: Path) -> None:
    async with run_app() as (port, _), queue_proxy(port, tmp_path) as qp:
        loop = asyncio.get_running_loop()
        async with httpx.AsyncClient() as client:
            async with client.stream("GET", qp.url("/sse?n=3&interval=0.6")) as resp:
                start = loop.time()
                arrivals = []
                async for line in resp.aiter_lines():
                    if line.startswith("data:"):
                        arrivals.append(loop.time() - start)
        assert len(arrivals) == 3
        # the first event is not held back until the stream ends (~1.2 s)
        assert arrivals[0] < 0.4
        assert arrivals[2] > 1.0


async def test_websocket_passes_through(tmp_path: Path) -> None:
    async with run_app() as (port, _), queue_proxy(port, tmp_path) as qp:
        async with aiohttp.ClientSession() as session, session.ws_connect(qp.url("/ws")) as ws:
            await ws.send_str("ping")
            assert (await ws.receive(timeout=5)).data == "echo: ping"
            payload = bytes(range(256)) * 1000
            await ws.send_bytes(payload)
            assert (await ws.receive(timeout=5)).data == payload


async def test_head_and_no_body_statuses_keep_the_connection_usable(tmp_path: Path) -> None:
    async with run_app() as (port, _), queue_proxy(port, tmp_path) as qp:
        async with httpx.AsyncClient() as client:
            r = await client.head(qp.url("/hello"))
            assert r.status_code == 200 and r.content == b""
            assert r.headers["content-length"] == "5"
            r = await client.get(qp.url("/status/204"))
            assert r.status_code == 204
            r = await client.get(qp.url("/status/404"))
            assert r.status_code == 404 and r.text == "status 404"
            r = await client.get(qp.url("/hello"))  # same connection still in sync
            assert r.text == "hello"


async def test_pipelined_requests_are_answered_in_order(tmp_path: Path) -> None:
    async with run_app() as (port, _), queue_proxy(port, tmp_path) as qp:
        reader, writer = await asyncio.open_connection("127.0.0.1", qp.port)
        writer.write(
            b"GET /sleep?s=0.2 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody"
        )
        first = await read_response(reader)
        second = await read_response(reader)
        third = await read_response(reader)
        writer.close()
        assert (first.status, first.body) == (200, b"slept")
        assert (second.status, second.body) == (200, b"hello")
        assert (third.status, third.body) == (200, b"body")


async def test_expect_continue_is_answered_by_the_proxy(tmp_path: Path) -> None:
    async with run_app() as (port, _), queue_proxy(port, tmp_path) as qp:
        reader, writer = await asyncio.open_connection("127.0.0.1", qp.port)
        writer.write(
            b"POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        writer.write(b"12345")
        resp = await read_response(reader)
        writer.close()
        assert json.loads(resp.body)["bytes"] == 5


@pytest.mark.parametrize("cc", [0, 20], ids=["unlimited", "cc20"])
async def test_many_concurrent_requests_all_succeed(tmp_path: Path, cc: int) -> None:
    async with (
        run_app() as (port, state),
        queue_proxy(port, tmp_path, CONTAINER_CONCURRENCY=str(cc)) as qp,
    ):
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            rs = await asyncio.gather(*(client.get(qp.url("/sleep?s=0.05")) for _ in range(200)))
        assert [r.status_code for r in rs] == [200] * 200
        assert state.requests == 200
        if cc:
            assert state.max_in_flight <= cc
