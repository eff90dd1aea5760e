"""The queue-proxy's request log (docs/observability.md, "Request logs"): one line on
stdout per request while config-observability turns it on, probes only with
``logging.enable-probe-request-log``, nothing at all while off; switched live."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.support.apps import run_app
from tests.support.procs import QueueProxyProcess, queue_proxy
from zeroserve.observability import ENV, ObservabilityConfig

pytestmark = pytest.mark.process

TEMPLATE = (
    "{{.Request.Method}} {{.Request.URL}} {{.Response.Code}} {{.Response.Size}} "
    "{{.Revision.Namespace}}/{{.Revision.Name}} {{.Revision.PodName}} "
    '{{.Request.Header.Get "X-Mark"}} {{js .Request.UserAgent}}'
)
ON = ObservabilityConfig(enable_request_log=True, request_log_template=TEMPLATE)
PROBES = ObservabilityConfig(
    enable_request_log=True, request_log_template=TEMPLATE, enable_probe_request_log=True
)
PROBE = {"K-Network-Probe": "queue"}


async def _line(qp: QueueProxyProcess) -> str:
    assert qp.proc.stdout is not None
    line = await asyncio.wait_for(qp.proc.stdout.readline(), 10)
    return line.decode()


async def _configure(
    client: httpx.AsyncClient, qp: QueueProxyProcess, c: ObservabilityConfig
) -> None:
    r = await client.put(qp.admin_url("/observability"), content=c.to_env())
    assert r.status_code == 200, r.text


async def test_each_request_gets_its_line_and_probes_only_when_asked(tmp_path: Path) -> None:
    async with (
        run_app() as (app_port, _),
        queue_proxy(app_port, tmp_path, **{ENV: ON.to_env()}) as qp,
    ):
        async with httpx.AsyncClient() as client:
            r = await client.get(
                qp.url("/hello?x=1"), headers={"X-Mark": "m1", "User-Agent": 'a"b'}
            )
            assert r.status_code == 200
            assert await _line(qp) == (
                f"GET /hello?x=1 200 {len(r.content)} default/hello-00001 hello-00001-pod "
                'm1 a\\"b\n'
            )
            r = await client.get(qp.url("/nope"), headers={"X-Mark": "m2"})
            assert await _line(qp) == (
                f"GET /nope 404 {len(r.content)} default/hello-00001 hello-00001-pod m2 "
                f"python-httpx/{httpx.__version__}\n"
            )
            # a health check: no line (the next line is the next request's)
            assert (await client.get(qp.url("/"), headers=PROBE)).text == "queue"
            await client.get(qp.url("/hello"), headers={"X-Mark": "m3"})
            assert " m3 " in await _line(qp)
            await _configure(client, qp, PROBES)
            await client.get(qp.url("/"), headers=PROBE)
            assert (await _line(qp)).startswith("GET / 200 5 default/hello-00001")


async def test_nothing_is_written_while_off(tmp_path: Path) -> None:
    async with run_app() as (app_port, _), queue_proxy(app_port, tmp_path) as qp:
        async with httpx.AsyncClient() as client:
            for _ in range(3):
                await client.get(qp.url("/hello"), headers={"X-Mark": "off"})
                await client.get(qp.url("/"), headers=PROBE)
            await _configure(client, qp, PROBES)  # on, live: no restart
            await client.get(qp.url("/hello"), headers={"X-Mark": "on"})
            # the first line on stdout is the first request made while on
            assert " on " in await _line(qp)
            await _configure(client, qp, ObservabilityConfig())  # and off again
            await client.get(qp.url("/hello"), headers={"X-Mark": "off-again"})
            await _configure(client, qp, ON)
            await client.get(qp.url("/hello"), headers={"X-Mark": "back"})
            assert " back " in await _line(qp)


async def test_an_http2_stream_gets_its_line(tmp_path: Path) -> None:
    template = "{{.Request.Proto}} {{.Request.Method}} {{.Request.URL}} {{.Response.Code}} " + (
        "{{.Response.Size}} {{.Request.RemoteAddr}}"
    )
    config = ObservabilityConfig(enable_request_log=True, request_log_template=template)
    async with (
        run_app() as (app_port, _),
        queue_proxy(app_port, tmp_path, **{ENV: config.to_env()}) as qp,
        httpx.AsyncClient(http1=False, http2=True, timeout=20) as h2,
    ):
        r = await h2.post(qp.url("/echo"), content=b"x" * 1000)
        assert r.status_code == 200 and r.http_version == "HTTP/2"
        line = await _line(qp)
        proto, rest = line.split(" ", 1)
        assert proto == "HTTP/2.0"
        assert rest.startswith(f"POST /echo 200 {len(r.content)} 127.0.0.1:")
