"""Hostile input against the activator, the first hop of every request.

The queue-proxy's table of malformed requests (tests/queueproxy/test_timeouts_and_errors.py),
mirrored for the activator; a fuzz of request heads against the ``python -m activator``
process; Host spellings that must route correctly or 404, never forward elsewhere; and
``Knative-Serving-*`` headers spoofed by an untrusted peer.

The in-process activator forwards straight to two test apps: ``hello`` (the routed
revision) and ``secret`` (a revision no host routes to; it must never see a request),
whose counters show where anything went.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activator.app import Activator
from activator.config import Settings
from activator.routing import RoutingTable
from tests.support.apps import AppState, run_app
from tests.support.procs import activator_process
from tests.support.raw import raw_exchange, read_response
from zeroserve.topology import Endpoint, RevisionInfo, RevisionKey, Route, Target

from .support import FakeControl, snapshot

HOST = "hello.default.example.com"
HELLO = RevisionKey("default", "hello-00001")
SECRET = RevisionKey("default", "secret-00001")


@dataclass
class Setup:
    act: Activator
    port: int
    hello: AppState
    secret: AppState
    secret_port: int


def _endpoint(name: str, port: int) -> Endpoint:
    return Endpoint(name=name, host="127.0.0.1", port=port, stats_port=1, ready=True)


@contextlib.asynccontextmanager
async def routed_activator() -> AsyncIterator[Setup]:
    async with run_app() as (hello_port, hello), run_app() as (secret_port, secret):
        act = Activator(Settings(host="127.0.0.1", port=0, metrics_port=0, drain_seconds=0))
        ports = await act.start()
        try:
            act.set_routes(
                RoutingTable([Route("default", "hello", (HOST,), (Target(HELLO, 100),))])
            )
            for key, port in ((HELLO, hello_port), (SECRET, secret_port)):
                act.put_revision(RevisionInfo(key))
                act.set_endpoints(key, [_endpoint(key.name, port)])
            yield Setup(act, ports["port"], hello, secret, secret_port)
        finally:
            await act.close()


async def _get(port: int, host: bytes, path: bytes = b"/hello") -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
        resp = await read_response(reader)
        return resp.status, resp.body
    finally:
        writer.close()


# -- malformed requests ----------------------------------------------------------------------

H = HOST.encode()


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: " + H + b"\r\nBad Header\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: " + H + b"\r\nX: a\x00b\r\n\r\n", 400),
        (
            b"POST /hello HTTP/1.1\r\nHost: "
            + H
            + b"\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: " + H + b"\r\n\r\n",
            400,
        ),
        (
            b"POST /hello HTTP/1.1\r\nHost: " + H + b"\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n",
            400,
        ),
        (b"GET / HTTP/1.1\r\nHost: " + H + b"\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", 431),
        (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: " + H + b"\r\n\r\n", 431),
        (
            b"GET / HTTP/1.1\r\nHost: "
            + H
            + b"\r\n"
            + b"".join(b"X-%d: 1\r\n" % i for i in range(300))
            + b"\r\n",
            431,
        ),
        (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 405),
        (b"CONNECT " + H + b":80 HTTP/1.1\r\nHost: " + H + b"\r\n\r\n", 405),
    ],
    ids=[
        "garbage",
        "header-without-colon",
        "nul-in-header",
        "cl-and-te-smuggling",
        "bad-chunk-size",
        "huge-header",
        "huge-url",
        "too-many-headers",
        "connect",
        "connect-to-a-routed-host",
    ],
)
async def test_malformed_requests_get_4xx_close_and_leave_other_connections_alone(
    raw: bytes, status: int
) -> None:
    async with routed_activator() as s:
        # a kept-alive connection opened before the bad one, and used after it
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
        try:
            writer.write(b"GET /hello HTTP/1.1\r\nHost: " + H + b"\r\n\r\n")
            assert (await read_response(reader)).status == 200
            # raw_exchange returns once the activator closes: a connection left open fails it
            reply = await raw_exchange(s.port, raw)
            assert reply.startswith(b"HTTP/1.1 %d " % status), reply[:200]
            assert b"Connection: close" in reply
            assert b"X-Zeroserve-Error: activator; reason=" in reply
            writer.write(b"GET /hello HTTP/1.1\r\nHost: " + H + b"\r\n\r\n")
            resp = await read_response(reader)
            assert (resp.status, resp.body) == (200, b"hello")
        finally:
            writer.close()
        # nothing smuggled through, nothing sent to the unrouted revision (a bad body can
        # only be noticed after its head went out, as at the queue-proxy)
        assert "/smuggled" not in s.hello.paths and not any(
            p.startswith("/a") for p in s.hello.paths
        )
        assert s.secret.requests == 0
        assert s.act.budget.used == 0


# -- Host spellings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "routed"),
    [
        (b"hello.default.example.com", True),
        (b"hello.default.example.com:8080", True),
        (b"hello.default.example.com.", True),
        (b"HeLLo.Default.EXAMPLE.com.:80", True),
        (b" hello.default.example.com ", True),
        (b"127.0.0.1", False),
        (b"127.0.0.1:{secret}", False),
        (b"[::1]:{secret}", False),
        (b"localhost", False),
        (b"localhost:{secret}", False),
        (b"secret-00001.default.example.com", False),
        (b"hello.default.example.com.evil.com", False),
        (b"evil.com/hello.default.example.com", False),
        (b"hello.default.example.com@127.0.0.1:{secret}", False),
        (b"", False),
    ],
    ids=[
        "exact",
        "with-port",
        "trailing-dot",
        "mixed-case-dot-port",
        "padded",
        "ip",
        "ip-and-port",
        "ipv6-and-port",
        "localhost",
        "localhost-and-port",
        "revision-name",
        "suffix",
        "path-like",
        "userinfo",
        "empty",
    ],
)
async def test_host_routes_to_its_revision_or_404_never_elsewhere(
    host: bytes, routed: bool
) -> None:
    async with routed_activator() as s:
        host = host.replace(b"{secret}", b"%d" % s.secret_port)
        status, body = await _get(s.port, host)
        if routed:
            assert (status, body) == (200, b"hello")
            assert s.hello.requests == 1
        else:
            assert status == 404, body
            assert s.hello.requests == 0
        assert s.secret.requests == 0


async def test_absolute_form_target_missing_or_double_host_never_pick_the_upstream() -> None:
    async with routed_activator() as s:
        secret = b"127.0.0.1:%d" % s.secret_port
        # The request target names the unrouted app; the Host decides (and is unknown).
        reply = await raw_exchange(
            s.port,
            b"GET http://"
            + secret
            + b"/hello HTTP/1.1\r\nHost: "
            + secret
            + b"\r\nConnection: close\r\n\r\n",
        )
        assert reply.startswith(b"HTTP/1.1 404 "), reply[:200]
        # An HTTP/1.0 request without any Host.
        reply = await raw_exchange(s.port, b"GET http://" + secret + b"/hello HTTP/1.0\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 404 "), reply[:200]
        # Two Host headers: neither is trusted, nothing is routed.
        reply = await raw_exchange(
            s.port,
            b"GET /hello HTTP/1.1\r\nHost: "
            + H
            + b"\r\nHost: "
            + secret
            + b"\r\nConnection: close\r\n\r\n",
        )
        assert reply.startswith(b"HTTP/1.1 404 "), reply[:200]
        # Host routed, absolute target elsewhere: goes to the routed revision only.
        reply = await raw_exchange(
            s.port,
            b"GET http://"
            + secret
            + b"/hello HTTP/1.1\r\nHost: "
            + H
            + b"\r\nConnection: close\r\n\r\n",
        )
        assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
        assert s.secret.requests == 0


# -- spoofed Knative-Serving-* headers ------------------------------------------------------------


async def test_spoofed_revision_headers_from_an_untrusted_peer_are_ignored_and_dropped() -> None:
    async with routed_activator() as s, httpx.AsyncClient(timeout=10) as client:
        url = f"http://127.0.0.1:{s.port}"
        spoof = {"Knative-Serving-Revision": "secret-00001", "Knative-Serving-Namespace": "default"}
        # routed by Host; the headers naming another revision change nothing and are not forwarded
        r = await client.get(url + "/headers", headers={"Host": HOST, **spoof})
        assert r.status_code == 200
        seen = r.json()["headers"]
        assert "knative-serving-revision" not in seen and "knative-serving-namespace" not in seen
        assert seen["k-proxy-request"] == "activator"
        # without a routed Host they open nothing: 404, for any spelling of the names
        for headers in (
            spoof,
            {k.upper(): v for k, v in spoof.items()},
            {k.lower(): v for k, v in spoof.items()},
        ):
            r = await client.get(url + "/hello", headers={"Host": "unknown.example.com", **headers})
            assert r.status_code == 404, r.text
        # a spoofed K-Proxy-Request is replaced, not doubled
        r = await client.get(url + "/headers", headers={"Host": HOST, "K-Proxy-Request": "evil"})
        assert r.json()["headers"]["k-proxy-request"] == "activator"
        assert s.secret.requests == 0
        assert s.hello.requests == 2


# -- fuzzed heads against the process --------------------------------------------------------------

_token = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"),
    min_size=1,
    max_size=20,
)
_junk = st.binary(max_size=200)
_host = st.sampled_from(
    [H, H + b":80", H.upper() + b".", b"", b"127.0.0.1", b"\x00", b"a" * 300, b"[::1"]
)
_request = st.one_of(
    _junk,
    st.builds(
        lambda m, u, v: m + b" " + u + b" " + v + b"\r\n\r\n",
        st.sampled_from([b"GET", b"POST", b"G ET", b"", b"\x00", b"CONNECT", b"PRI"]),
        _junk,
        st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/9.9", b"HTTP/1.1\x00", b""]),
    ),
    st.builds(
        lambda host, names, values: (
            b"GET /hello HTTP/1.1\r\nHost: "
            + host
            + b"\r\n"
            + b"".join(
                n.encode() + b": " + v + b"\r\n" for n, v in zip(names, values, strict=False)
            )
            + b"\r\n"
        ),
        _host,
        st.lists(_token, max_size=8),
        st.lists(_junk, max_size=8),
    ),
    st.builds(
        lambda host, te, body: (
            b"POST /hello HTTP/1.1\r\nHost: " + host + b"\r\n" + te + b"\r\n" + body
        ),
        _host,
        st.sampled_from(
            [
                b"Transfer-Encoding: chunked\r\n",
                b"Content-Length: 5\r\n",
                b"Content-Length: -1\r\n",
                b"Content-Length: 1\r\nContent-Length: 2\r\n",
                b"Transfer-Encoding: gzip, chunked\r\n",
            ]
        ),
        _junk,
    ),
)


@pytest.mark.process
@pytest.mark.timeout(120)
async def test_fuzzed_request_heads_never_crash_the_activator_process(tmp_path: Path) -> None:
    async with run_app() as (port, _):
        control = FakeControl(snapshot(1, {HOST: HELLO}, {HELLO: [_endpoint("hello-pod", port)]}))
        async with (
            control,
            activator_process(tmp_path / "activator.log", "--control", control.url) as act,
        ):
            examples: list[bytes] = []

            @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
            @given(_request)
            def collect(data: bytes) -> None:
                examples.append(data)

            collect()  # hypothesis drives synchronously: draw first, then send, 25 at a time
            for i in range(0, len(examples), 25):
                await asyncio.gather(*(_send_and_close(act.port, d) for d in examples[i : i + 25]))
            assert act.proc.returncode is None
            async with httpx.AsyncClient(timeout=10) as client:
                r = await client.get(act.url + "/hello", headers={"Host": HOST})
                assert (r.status_code, r.text) == (200, "hello")
            assert "Traceback" not in act.log_text(), act.log_text()[-3000:]


async def _send_and_close(port: int, data: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        # an incomplete head gets no answer: the activator waits for more, as it should
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(reader.read(65536), 0.3)
    finally:
        writer.close()
