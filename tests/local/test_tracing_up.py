"""Tracing through ``zeroserve up``: config-observability from a file turns it on in the
activator and the replicas' queue-proxies it starts, and one request is one trace
(docs/observability.md, "Tracing")."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.otlp import otlp_receiver

from .support import EXAMPLES, zeroserve_up

TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER = "b7ad6b7169203331"


@pytest.mark.process
@pytest.mark.parametrize(
    "sandbox",
    [
        pytest.param(
            "pod",
            marks=pytest.mark.skipif(
                os.geteuid() != 0, reason="pod sandboxes need root (CI runs as root)"
            ),
        ),
        "process",
    ],
)
async def test_a_request_through_zeroserve_up_is_one_trace_over_both_hops(
    tmp_path: Path, sandbox: str
) -> None:
    """In pod sandboxes the queue-proxy reaches the receiver on the host's loopback
    through the runtime's relay on the bridge (zeroserve/local/hostrelay.py)."""
    example = yaml.safe_load((EXAMPLES / "config-observability-tracing.yaml").read_text())
    async with otlp_receiver() as rx:
        example["data"]["tracing-endpoint"] = rx.url
        config = tmp_path / "config-observability.yaml"
        config.write_text(yaml.safe_dump(example))
        files = (EXAMPLES / "helloworld.yaml", config)
        async with zeroserve_up(tmp_path, *files, args=("--sandbox", sandbox)) as up:
            async with httpx.AsyncClient(timeout=60) as client:
                r = await client.get(
                    up.ingress,
                    headers={
                        "Host": "helloworld-go.default.localhost",
                        "traceparent": f"00-{TRACE}-{CALLER}-01",
                    },
                )
            assert r.status_code == 200
            # the batch processors' default delay is 5 s
            await rx.wait_for(lambda s: {"handle", "queue"} <= {x.name for x in s}, 20)
    spans = {s.name: s for s in rx.spans if s.trace_id == TRACE}
    handle, queue = spans["handle"], spans["queue"]
    assert handle.parent_id == CALLER and handle.service == "activator"
    assert handle.attributes["kn.service.name"] == "helloworld-go"
    attempt = spans["GET /"]
    assert queue.parent_id == attempt.span_id
    assert queue.service == "helloworld-go"
    assert queue.resource["kn.revision.name"] == "helloworld-go-00001"
    assert spans["kn.queueproxy.proxy"].parent_id == queue.span_id
