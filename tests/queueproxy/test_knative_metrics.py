"""The queue-proxy's Prometheus series under Knative's names and attribute keys
(docs/metrics.md), moving with traffic; probes are not counted."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.support.apps import run_app
from tests.support.procs import queue_proxy
from tests.support.prom import label_sets, series, value
from zeroserve.observability import ENV, ObservabilityConfig

pytestmark = pytest.mark.process  # a queue-proxy process

REVISION = {
    "k8s_namespace_name": "default",
    "kn_service_name": "hello",
    "kn_configuration_name": "hello",
    "kn_revision_name": "hello-00001",
    "k8s_pod_name": "hello-00001-pod",
}
DURATION = "kn_serving_invocation_duration_seconds"


async def test_invocation_duration_counts_by_status_code_with_knative_attributes(
    tmp_path: Path,
) -> None:
    async with run_app() as (port, _), queue_proxy(port, tmp_path) as qp:
        async with httpx.AsyncClient(timeout=30) as client:
            before = (await client.get(qp.prometheus_url())).text
            for _ in range(2):
                assert (await client.get(qp.url("/hello"))).status_code == 200
            assert (await client.get(qp.url("/status/503"))).status_code == 503
            probe = await client.get(qp.url("/"), headers={"User-Agent": "kube-probe/1.31"})
            assert probe.status_code == 200
            after = (await client.get(qp.prometheus_url())).text
    assert value(before, f"{DURATION}_count") is None  # nothing served yet
    assert value(after, f"{DURATION}_count", http_response_status_code="200") == 2
    assert value(after, f"{DURATION}_count", http_response_status_code="503") == 1
    assert value(after, f"{DURATION}_count") == 3  # the probe is not a request
    assert value(after, f"{DURATION}_bucket", http_response_status_code="200", le="+Inf") == 2
    assert value(after, f"{DURATION}_bucket", http_response_status_code="200", le="10.0") == 2
    assert 0 < value(after, f"{DURATION}_sum", http_response_status_code="200") < 10  # type: ignore[operator]
    for labels in label_sets(after, f"{DURATION}_count"):
        assert labels.keys() == {*REVISION, "http_response_status_code"}
        assert REVISION.items() <= labels.items()


async def test_queue_depth_counts_requests_in_the_breaker_waiting_ones_included(
    tmp_path: Path,
) -> None:
    async with (
        run_app() as (port, _),
        queue_proxy(port, tmp_path, CONTAINER_CONCURRENCY="1") as qp,
        httpx.AsyncClient(timeout=30) as client,
    ):
        idle = (await client.get(qp.prometheus_url())).text
        held = [asyncio.create_task(client.get(qp.url("/sleep?s=1.5"))) for _ in range(3)]
        for _ in range(50):
            busy = (await client.get(qp.prometheus_url())).text
            if value(busy, "kn_serving_queue_depth") == 3:
                break
            await asyncio.sleep(0.05)
        await asyncio.gather(*held)
        done = (await client.get(qp.prometheus_url())).text
    assert value(idle, "kn_serving_queue_depth", **REVISION) == 0
    assert value(busy, "kn_serving_queue_depth", **REVISION) == 3  # 1 at the app, 2 waiting
    assert value(busy, "zeroserve_queue_depth") == 2
    assert value(done, "kn_serving_queue_depth") == 0


async def test_no_queue_depth_without_a_breaker(tmp_path: Path) -> None:
    async with run_app() as (port, _), queue_proxy(port, tmp_path) as qp:
        async with httpx.AsyncClient(timeout=30) as client:
            text = (await client.get(qp.prometheus_url())).text
    assert "kn_serving_queue_depth" not in text  # as Knative: recorded only with a breaker
    assert value(text, "zeroserve_queue_requests_in_flight", **REVISION) == 0


async def test_request_metrics_protocol_none_hides_the_knative_series_live(
    tmp_path: Path,
) -> None:
    none = ObservabilityConfig(request_metrics_protocol="none")
    async with (
        run_app() as (port, _),
        queue_proxy(port, tmp_path, CONTAINER_CONCURRENCY="1", **{ENV: none.to_env()}) as qp,
        httpx.AsyncClient(timeout=30) as client,
    ):
        assert (await client.get(qp.url("/hello"))).status_code == 200
        off = (await client.get(qp.prometheus_url())).text
        put = await client.put(
            qp.admin_url("/observability"), content=ObservabilityConfig().to_env()
        )
        assert put.status_code == 200
        on = (await client.get(qp.prometheus_url())).text
    assert not [n for n in series(off) if n.startswith("kn_")]
    assert value(off, "zeroserve_queue_capacity", **REVISION) == 1  # zeroserve's own stay
    assert value(on, f"{DURATION}_count", http_response_status_code="200") == 1  # still counted
    assert value(on, "kn_serving_queue_depth", **REVISION) == 0
