"""HTTP/2 through the activator and real queue-proxies to h2c apps: each stream of one
client connection is balanced on its own, trailers pass both hops, and an HTTP/1.1
client's request reaches an h2c app as HTTP/2."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from h2.events import DataReceived, StreamEnded, TrailersReceived

from activator.app import Activator
from tests.http.test_http2 import RawClient
from tests.support.h2app import run_h2_app
from tests.support.procs import QueueProxyProcess, queue_proxy
from zeroserve.topology import RevisionInfo

from .test_activator_e2e import HOST, V1, activator, endpoint, route

pytestmark = pytest.mark.process

H2C = RevisionInfo(V1, protocol="h2c")


def route_h2c(act: Activator, url: str, *qps: QueueProxyProcess) -> int:
    """The activator routes ``HOST`` to an h2c revision on ``qps``; its port."""
    act.set_routes(route())
    act.put_revision(H2C)
    act.set_endpoints(V1, [endpoint(qp) for qp in qps])
    port = urlsplit(url).port
    assert port is not None
    return port


async def test_one_client_connection_is_balanced_per_stream(tmp_path: Path) -> None:
    async with (
        run_h2_app() as (app1, state1),
        run_h2_app() as (app2, state2),
        queue_proxy(app1, tmp_path, USER_PROTOCOL="h2c") as qp1,
        queue_proxy(app2, tmp_path, USER_PROTOCOL="h2c") as qp2,
        activator() as (act, url),
    ):
        route_h2c(act, url, qp1, qp2)
        async with httpx.AsyncClient(http1=False, http2=True, timeout=20) as client:
            replies = await asyncio.gather(
                *(client.get(url + "/proto", headers={"Host": HOST}) for _ in range(40))
            )
        assert {(r.http_version, r.text) for r in replies} == {("HTTP/2", "HTTP/2")}
        # one client connection, both replicas served it
        assert state1.requests > 0 and state2.requests > 0
        assert state1.requests + state2.requests == 40


async def test_trailers_pass_the_activator_and_the_queue_proxy(tmp_path: Path) -> None:
    async with (
        run_h2_app() as (app, _state),
        queue_proxy(app, tmp_path, USER_PROTOCOL="h2c") as qp,
        activator() as (act, url),
    ):
        port = route_h2c(act, url, qp)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = RawClient(reader, writer)
        client.h2.initiate_connection()
        client.flush()
        sid = client.request("/trailers", authority=HOST)
        await client.read_until(lambda: client.of(StreamEnded, sid))
        assert b"".join(e.data for e in client.of(DataReceived, sid)) == b"with trailers"
        [trailers] = client.of(TrailersReceived, sid)
        assert dict(trailers.headers)[b"grpc-status"] == b"0"
        writer.close()
        # and an HTTP/1.1 client's request reaches the app in HTTP/2
        async with httpx.AsyncClient(timeout=20) as h1:
            r = await h1.get(url + "/proto", headers={"Host": HOST})
            assert (r.http_version, r.text) == ("HTTP/1.1", "HTTP/2")


async def test_upgrade_h2c_through_the_activator_and_the_queue_proxy(tmp_path: Path) -> None:
    async with (
        run_h2_app() as (app, _state),
        queue_proxy(app, tmp_path, USER_PROTOCOL="h2c") as qp,
        activator() as (act, url),
    ):
        port = route_h2c(act, url, qp)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = RawClient(reader, writer)
        settings = client.h2.initiate_upgrade_connection()
        writer.write(
            b"GET /proto HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n"
            b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
            b"HTTP2-Settings: " + settings + b"\r\n\r\n"
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        client.flush()
        await client.read_until(lambda: client.of(StreamEnded, 1))
        assert b"".join(e.data for e in client.of(DataReceived, 1)) == b"HTTP/2"
        writer.close()
