"""``python -m tests.support.hops_off``: an activator and a queue-proxy with tracing off
(the default) serve one request carrying a caller's ``traceparent`` to the test app, in
one fresh process; prints one JSON line: the OpenTelemetry modules that process loaded
and the headers the app saw (tests/core/test_tracing.py)."""

from __future__ import annotations

import asyncio
import json
import sys

import httpx

from activator.app import Activator
from activator.config import Settings as ActivatorSettings
from activator.routing import Route, RoutingTable, Target
from queueproxy.app import QueueProxy
from queueproxy.config import Settings as QueueProxySettings
from tests.support.apps import run_app
from tests.support.procs import qp_env
from zeroserve.topology import Endpoint, RevisionInfo, RevisionKey

REV = RevisionKey("default", "hello-00001")
HOST = "hello.default.example.com"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def main() -> None:
    async with run_app() as (app_port, _state):
        qp = QueueProxy(QueueProxySettings.from_env(qp_env(app_port)))
        qp_port = (await qp.start())["serving_port"]
        act = Activator(ActivatorSettings(host="127.0.0.1", port=0, metrics_port=0))
        port = (await act.start())["port"]
        act.set_routes(
            RoutingTable([Route("default", "hello", (HOST,), (Target(REV, 100),), {}, ())])
        )
        act.put_revision(RevisionInfo(REV))
        act.set_endpoints(REV, [Endpoint(name="pod", host="127.0.0.1", port=qp_port, stats_port=0)])
        async with httpx.AsyncClient(timeout=20) as client:
            for _ in range(3):
                r = await client.get(
                    f"http://127.0.0.1:{port}/headers",
                    headers={"Host": HOST, "traceparent": TRACEPARENT},
                )
        await act.close()
        await qp.shutdown()
    otel = sorted(m for m in sys.modules if m.startswith("opentelemetry") or m == "zeroserve.otel")
    print(json.dumps({"status": r.status_code, "headers": r.json()["headers"], "otel": otel}))


if __name__ == "__main__":
    asyncio.run(main())
