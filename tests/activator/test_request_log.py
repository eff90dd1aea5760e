"""The activator's request log (docs/observability.md, "Request logs"): a line for each
response it makes itself (no route, overload, activation timeout), none for what it
relays (the queue-proxy logs those) nor for health checks. Real sockets."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from activator.app import Activator
from activator.handler import ActivatorHandler
from tests.support.apps import run_app
from tests.support.procs import queue_proxy
from zeroserve.observability import ObservabilityConfig
from zeroserve.topology import RevisionInfo

from .test_activator_e2e import HOST, V1, activator, endpoint, route

TEMPLATE = (
    "{{.Request.Method}} {{.Request.Host}}{{.Request.URL}} {{.Response.Code}} "
    "{{.Revision.Namespace}}/{{.Revision.Name}} {{.Revision.Service}}"
)
ON = ObservabilityConfig(enable_request_log=True, request_log_template=TEMPLATE)


def _capture(act: Activator) -> list[bytes]:
    """Request logging on, its lines into a list instead of stdout."""
    lines: list[bytes] = []
    act.observability = ON
    for srv in act.servers:
        handler = srv.handler
        assert isinstance(handler, ActivatorHandler) and handler.request_log is not None
        handler.request_log.write = lines.append
    return lines


async def test_own_answers_are_logged_with_their_revision() -> None:
    async with activator(activation_timeout=0.3, queue_depth=1) as (act, url):
        lines = _capture(act)
        act.set_routes(route())
        async with httpx.AsyncClient(timeout=10) as client:
            r = await client.get(url + "/x?y=1", headers={"Host": "nowhere.example"})
            assert r.status_code == 404
            assert lines == [b"GET nowhere.example/x?y=1 404 / \n"]
            act.put_revision(RevisionInfo(V1, service="hello"))  # no replica: held, then 503
            r = await client.get(url + "/held", headers={"Host": HOST})
            assert r.status_code == 503
            assert lines[1] == f"GET {HOST}/held 503 default/hello-00001 hello\n".encode()
            r = await client.get(url + "/", headers={"K-Network-Probe": "queue"})
            assert r.status_code == 200 and len(lines) == 2  # health checks: never
            act.observability = ObservabilityConfig()  # off, live
            await client.get(url + "/", headers={"Host": "nowhere.example"})
            assert len(lines) == 2


@pytest.mark.process
async def test_relayed_responses_are_the_queue_proxys_to_log(tmp_path: Path) -> None:
    async with (
        run_app() as (port, _),
        queue_proxy(port, tmp_path) as qp,
        activator() as (act, url),
    ):
        lines = _capture(act)
        act.set_routes(route())
        act.put_revision(RevisionInfo(V1))
        act.set_endpoints(V1, [endpoint(qp)])
        async with httpx.AsyncClient(timeout=10) as client:
            r = await client.get(url + "/hello", headers={"Host": HOST})
            assert r.status_code == 200
            r = await client.get(url + "/missing", headers={"Host": HOST})
            assert r.status_code == 404  # the app's 404, relayed
        assert lines == []
