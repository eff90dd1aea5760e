"""Autoscaler stats (``:9090``, JSON Stat) and Prometheus metrics (``:9091``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.support.apps import run_app
from tests.support.procs import queue_proxy
from zeroserve.stats import Stat

pytestmark = pytest.mark.process  # every test here runs a queue-proxy process


async def _stats(client: httpx.AsyncClient, qp) -> Stat:  # type: ignore[no-untyped-def]
    r = await client.get(qp.stats_url())
    assert r.headers["content-type"] == "application/json"
    return Stat.from_json(r.content)


async def _next_stat(client: httpx.AsyncClient, qp, after: Stat) -> Stat:  # type: ignore[no-untyped-def]
    """The first stat published after ``after`` (the reporter ticks every second)."""
    for _ in range(40):
        s = await _stats(client, qp)
        if s.process_uptime > after.process_uptime:
            return s
        await asyncio.sleep(0.1)
    raise AssertionError("no new stat within 4 s")


async def test_four_requests_held_give_average_concurrency_four(tmp_path: Path) -> None:
    async with run_app() as (port, _), queue_proxy(port, tmp_path) as qp:
        async with httpx.AsyncClient(timeout=30) as client:
            s0 = await _stats(client, qp)
            assert s0.pod_name == "hello-00001-pod"
            held = [asyncio.create_task(client.get(qp.url("/sleep?s=3.5"))) for _ in range(4)]
            # skip the interval in which they arrived; the next one is fully covered
            s1 = await _next_stat(client, qp, s0)
            s2 = await _next_stat(client, qp, s1)
            s3 = await _next_stat(client, qp, s2)
            await asyncio.gather(*held)
        assert abs(s3.average_concurrent_requests - 4.0) < 0.05, s3
        assert s3.request_count == 0  # arrivals were counted in an earlier interval
        assert s1.request_count + s2.request_count > 0
        assert s3.average_proxied_concurrent_requests == 0


async def test_proxied_requests_are_counted_apart(tmp_path: Path) -> None:
    async with run_app() as (port, _), queue_proxy(port, tmp_path) as qp:
        async with httpx.AsyncClient(timeout=30) as client:
            s0 = await _stats(client, qp)
            s0 = await _next_stat(client, qp, s0)  # start at an interval boundary
            await asyncio.gather(
                *(
                    client.get(qp.url("/sleep?s=0.3"), headers={"K-Proxy-Request": "activator"})
                    for _ in range(3)
                ),
                *(client.get(qp.url("/sleep?s=0.3")) for _ in range(2)),
            )
            s1 = await _next_stat(client, qp, s0)
        total_rc = s1.request_count * 1  # per second over a ~1 s interval
        assert 4 <= total_rc <= 6, s1
        assert s1.proxied_request_count / s1.request_count == pytest.approx(3 / 5)
        # each request held ~0.3 s: the proxied share of the concurrency is 3/5 too
        assert (
            s1.average_proxied_concurrent_requests / s1.average_concurrent_requests
            == pytest.approx(3 / 5, abs=0.05)
        )


async def test_probes_are_not_counted(tmp_path: Path) -> None:
    async with run_app() as (port, state), queue_proxy(port, tmp_path) as qp:
        async with httpx.AsyncClient(timeout=30) as client:
            s0 = await _next_stat(client, qp, await _stats(client, qp))
            for _ in range(20):
                r = await client.get(qp.url("/"), headers={"K-Network-Probe": "queue"})
                assert r.status_code == 200
                r = await client.get(qp.url("/"), headers={"User-Agent": "kube-probe/1.31"})
                assert r.status_code == 200
            s1 = await _next_stat(client, qp, s0)
        assert s1.request_count == 0
        assert s1.average_concurrent_requests == 0
        assert state.requests == 0  # probes never reach the app as requests


async def test_prometheus_metrics_count_codes_latency_and_queue(tmp_path: Path) -> None:
    async with run_app() as (port, _), queue_proxy(port, tmp_path, CONTAINER_CONCURRENCY="1") as qp:
        async with httpx.AsyncClient(timeout=30) as client:
            for _ in range(3):
                await client.get(qp.url("/hello"))
            await client.get(qp.url("/status/404"))
            text = (await client.get(qp.prometheus_url())).text
        labels = (
            'http_response_status_code="200",k8s_namespace_name="default",'
            'k8s_pod_name="hello-00001-pod",kn_configuration_name="hello",'
            'kn_revision_name="hello-00001",kn_service_name="hello"'
        )
        assert f"kn_serving_invocation_duration_seconds_count{{{labels}}} 3.0" in text
        assert 'http_response_status_code="404"' in text
        assert "kn_serving_invocation_duration_seconds_bucket{" in text and 'le="+Inf"' in text
        assert "kn_serving_queue_depth{" in text
        assert "zeroserve_queue_depth{" in text
        assert "zeroserve_queue_capacity{" in text and "} 1.0" in text
