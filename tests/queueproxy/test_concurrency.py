"""containerConcurrency: the breaker in a real queue-proxy process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.support.apps import run_app
from tests.support.procs import queue_proxy

pytestmark = pytest.mark.process  # every test here runs a queue-proxy process


async def _wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def test_cc2_never_lets_a_third_request_reach_the_app(tmp_path: Path) -> None:
    async with (
        run_app() as (port, state),
        queue_proxy(port, tmp_path, CONTAINER_CONCURRENCY="2") as qp,
    ):
        async with httpx.AsyncClient(timeout=30) as client:
            tasks = [asyncio.create_task(client.get(qp.url("/hold"))) for _ in range(6)]
            await _wait_for(lambda: state.in_flight == 2)
            await asyncio.sleep(0.3)  # time for a wrongly admitted third one to arrive
            assert state.in_flight == 2
            assert state.requests == 2
            state.release.set()
            rs = await asyncio.gather(*tasks)
            text = (await client.get(qp.prometheus_url())).text
        assert [r.status_code for r in rs] == [200] * 6
        assert state.max_in_flight == 2
        assert state.requests == 6
        assert any(
            line.startswith("zeroserve_queue_app_in_flight_max{") and line.endswith(" 2.0")
            for line in text.splitlines()
        )


async def test_overflow_beyond_11x_cc_gets_503_while_admitted_complete(tmp_path: Path) -> None:
    cc = 1
    async with (
        run_app() as (port, state),
        queue_proxy(port, tmp_path, CONTAINER_CONCURRENCY=str(cc)) as qp,
    ):
        async with httpx.AsyncClient(
            timeout=30, limits=httpx.Limits(max_connections=100)
        ) as client:
            admitted = [asyncio.create_task(client.get(qp.url("/hold"))) for _ in range(11 * cc)]
            await _wait_for(lambda: state.in_flight == cc)
            # the queue fills: 1 at the app + 10 waiting; wait until the proxy holds all 11
            await _wait_for(lambda: _in_flight(qp) >= 11 * cc)
            overflow = await asyncio.gather(*(client.get(qp.url("/hold")) for _ in range(4)))
            for r in overflow:
                assert r.status_code == 503
                assert r.headers["retry-after"] == "1"
                assert r.headers["x-zeroserve-error"] == "queue-proxy; reason=queue-full"
                assert "queue full" in r.text
            state.release.set()
            rs = await asyncio.gather(*admitted)
        assert [r.status_code for r in rs] == [200] * 11
        assert state.requests == 11  # rejected ones never reached the app


def _in_flight(qp) -> int:  # type: ignore[no-untyped-def]
    text = httpx.get(qp.prometheus_url()).text
    for line in text.splitlines():
        if line.startswith("zeroserve_queue_requests_in_flight{"):
            return int(float(line.rsplit(" ", 1)[1]))
    raise AssertionError("in-flight gauge missing")


async def test_queued_requests_are_served_in_arrival_order(tmp_path: Path) -> None:
    async with (
        run_app() as (port, state),
        queue_proxy(port, tmp_path, CONTAINER_CONCURRENCY="1") as qp,
    ):
        async with httpx.AsyncClient(timeout=30) as client:
            first = asyncio.create_task(client.get(qp.url("/hold")))
            await _wait_for(lambda: state.in_flight == 1)
            rest = []
            for i in range(5):
                rest.append(asyncio.create_task(client.get(qp.url(f"/hello?n={i}"))))
                await _wait_for(lambda i=i: _in_flight(qp) == i + 2)
            state.release.set()
            await asyncio.gather(first, *rest)
        assert state.paths[1:] == [f"/hello?n={i}" for i in range(5)]


async def test_a_client_leaving_the_queue_frees_its_place(tmp_path: Path) -> None:
    async with (
        run_app() as (port, state),
        queue_proxy(port, tmp_path, CONTAINER_CONCURRENCY="1") as qp,
    ):
        async with httpx.AsyncClient(timeout=30) as client:
            holder = asyncio.create_task(client.get(qp.url("/hold")))
            await _wait_for(lambda: state.in_flight == 1)
            quitter = asyncio.create_task(client.get(qp.url("/hello?quitter")))
            await _wait_for(lambda: _in_flight(qp) == 2)
            quitter.cancel()
            await _wait_for(lambda: _in_flight(qp) == 1)
            state.release.set()
            assert (await holder).status_code == 200
            assert (await client.get(qp.url("/hello"))).status_code == 200
        assert "/hello?quitter" not in state.paths
