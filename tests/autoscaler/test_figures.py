"""The autoscaler's figures for the live page: both metrics observed whatever the
revision scales on (``MetricCollector.observed``), the tick's figures per revision
(``revision_figures``), and their way to the control API (``FigureReporter``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from autoscaler.collector import MetricCollector, Observed
from autoscaler.figures import FigureReporter, revision_figures
from zeroserve.local import access
from zeroserve.local.figures import FIGURES_PATH, decode_batch
from zeroserve.stats import Stat

from .test_multiscaler import KEY, activator_stat, make, settle

TOKEN = "tok"


@pytest.mark.parametrize("metric", ["concurrency", "rps"])
def test_the_collector_observes_both_metrics_whatever_it_scales_on(metric: str) -> None:
    c = MetricCollector(metric=metric, stable_window=4, panic_window=2)
    assert c.observed(100) == Observed(0.0, 0.0, 0.0, 0.0)
    # a queue-proxy's stat: 6 in flight (2 through the activator), 30 rps (10 proxied)
    stat = Stat(
        pod_name="p",
        average_concurrent_requests=6,
        average_proxied_concurrent_requests=2,
        request_count=30,
        proxied_request_count=10,
    )
    for t in (100, 101, 102, 103):
        c.record(t, stat)
    assert c.observed(103) == Observed(4.0, 4.0, 20.0, 20.0)
    # what the decider reads is the metric it scales on
    assert c.values(103) == ((20.0, 20.0) if metric == "rps" else (4.0, 4.0))


async def test_a_ticks_figures_are_what_the_decider_saw_and_the_step_wanted() -> None:
    ms, _cluster, clock = make(cc=10, replicas=1, ready=1)
    for _ in range(6):
        ms.record(KEY, activator_stat(70.0, rps=140.0))
        clock.now += 1
    ms.tick(clock())
    await settle()
    f = revision_figures(ms.revisions[KEY], clock())
    assert (f.time, f.stable_concurrency, f.stable_rps) == (clock(), 70.0, 140.0)
    assert f.panic_concurrency == 70.0 and f.panic_rps == 140.0
    # 70 / 7 per pod on 1 ready: 10 wanted, in panic
    assert (f.desired, f.ready, f.panic, f.metric, f.target) == (10, 1, True, "concurrency", 7.0)


async def test_a_failing_tick_observer_does_not_stop_the_tick(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ms, cluster, clock = make(replicas=0, ready=0)
    seen: list[float] = []

    def observer(now: float) -> None:
        seen.append(now)
        raise RuntimeError("boom")

    ms.on_tick = observer
    ms.record(KEY, activator_stat(1.0))
    clock.now += 2
    with caplog.at_level(logging.ERROR):
        ms.tick(clock())
    await settle()
    assert seen == [clock()] and cluster.replicas(KEY) == 1
    assert "reporting the tick's figures failed" in caplog.text


@asynccontextmanager
async def control_stub(status: list[int]) -> AsyncIterator[tuple[str, list[Any], asyncio.Event]]:
    """A stand-in for the control API's ``POST /v1/figures`` on a real socket: records
    the batches, answers with ``status[0]`` (changeable), and holds each answer until
    ``release`` is set."""
    got: list[Any] = []
    release = asyncio.Event()
    release.set()

    async def figures(request: web.Request) -> web.Response:
        assert access.authorized(request.headers.get("Authorization"), TOKEN)
        got.append(decode_batch(await request.json()))
        await release.wait()
        return web.json_response({"taken": 1}, status=status[0])

    app = web.Application()
    app.router.add_post(FIGURES_PATH, figures)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", got, release
    finally:
        await runner.cleanup()


async def until(predicate: Any, within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_the_reporter_posts_each_tick_and_sends_only_the_latest_when_behind() -> None:
    ms, _cluster, clock = make(cc=10, replicas=1, ready=1)
    async with control_stub([200]) as (url, got, release), aiohttp.ClientSession() as session:
        reporter = FigureReporter(ms, session, url, token=TOKEN)
        assert ms.on_tick == reporter.tick
        ms.record(KEY, activator_stat(14.0))
        clock.now += 2
        ms.tick(clock())
        await until(lambda: reporter.sent == 1)
        [[(key, first)]] = got
        assert key == KEY and first.time == clock() and first.stable_concurrency == 14.0
        # the control API is slow: ticks meanwhile coalesce into the latest one
        release.clear()
        clock.now += 2
        ms.tick(clock())
        await until(lambda: len(got) == 2)  # in flight, held
        for _ in range(2):
            clock.now += 2
            ms.tick(clock())
        release.set()
        await until(lambda: reporter.sent == 3)
        assert [batch[0][1].time for batch in got] == [
            clock() - 6,
            clock() - 4,  # in flight when the others came
            clock(),  # the newest; the one between was replaced
        ]
        await reporter.stop()


async def test_a_refused_post_is_logged_once_per_outage(caplog: pytest.LogCaptureFixture) -> None:
    ms, _cluster, clock = make(replicas=1, ready=1)
    status = [503]
    async with control_stub(status) as (url, got, _), aiohttp.ClientSession() as session:
        reporter = FigureReporter(ms, session, url, token=TOKEN)
        with caplog.at_level(logging.INFO, logger="autoscaler.figures"):
            for i in range(3):
                clock.now += 2
                ms.tick(clock())
                await until(lambda i=i: len(got) > i and reporter._task is None)
            status[0] = 200
            clock.now += 2
            ms.tick(clock())
            await until(lambda: reporter.sent == 1)
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "answered 503" in warnings[0].getMessage()
        assert "takes the figures for the live page again" in caplog.text
        await reporter.stop()
