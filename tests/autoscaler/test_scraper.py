"""Scraping queue-proxy stats with sampling, against real HTTP servers."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web

from autoscaler.model import Endpoint, RevisionKey
from autoscaler.scraper import ScrapeError, StatsScraper
from zeroserve.stats import Stat


@asynccontextmanager
async def stat_servers(behaviours: list[str]) -> AsyncIterator[tuple[list[Endpoint], list[int]]]:
    """One HTTP server per pod; behaviour "ok", "500", "503", "html", "huge", "junk".
    Yields the pods and a per-pod hit counter."""
    hits = [0] * len(behaviours)
    runners = []
    pods = []
    for i, how in enumerate(behaviours):

        async def handler(request: web.Request, i: int = i, how: str = how) -> web.Response:
            hits[i] += 1
            if how in ("500", "503"):
                return web.Response(status=int(how))
            if how == "html":
                return web.Response(text="<html>", content_type="text/html")
            if how == "huge":
                return web.Response(
                    body=b"{" + b" " * 10000 + b"}", content_type="application/json"
                )
            if how == "junk":
                return web.Response(text="{not json", content_type="application/json")
            stat = Stat(
                pod_name=f"pod-{i}",
                average_concurrent_requests=2.0,
                average_proxied_concurrent_requests=0.5,
                request_count=10.0,
                proxied_request_count=4.0,
                process_uptime=100.0 + i,
            )
            return web.Response(body=stat.to_json(), content_type="application/json")

        app = web.Application()
        app.router.add_get("/metrics", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        pods.append(
            Endpoint(
                name=f"pod-{i}",
                host="127.0.0.1",
                port=0,
                stats_port=runner.addresses[0][1],
                started_at=0.0,
            )
        )
    try:
        yield pods, hits
    finally:
        for r in runners:
            await r.cleanup()


@pytest.fixture
async def scraper() -> AsyncIterator[StatsScraper]:
    async with aiohttp.ClientSession() as session:
        yield StatsScraper(session, rng=random.Random(7), timeout=2.0)


async def test_no_pods_is_nothing_not_an_error(scraper: StatsScraper) -> None:
    assert await scraper.scrape([], now=1000.0, stable_window=60) is None


async def test_few_pods_are_all_scraped_and_summed(scraper: StatsScraper) -> None:
    async with stat_servers(["ok"] * 3) as (pods, hits):
        stat = await scraper.scrape(pods, now=1000.0, stable_window=60)
    assert hits == [1, 1, 1]
    assert stat is not None
    assert stat.pod_name == "service-scraper"
    assert (stat.average_concurrent_requests, stat.average_proxied_concurrent_requests) == (
        6.0,
        1.5,
    )
    assert (stat.request_count, stat.proxied_request_count) == (30.0, 12.0)


async def test_many_pods_are_sampled_and_scaled_to_the_total(scraper: StatsScraper) -> None:
    async with stat_servers(["ok"] * 10) as (pods, hits):
        stat = await scraper.scrape(pods, now=1000.0, stable_window=60)
    assert sum(hits) == 7  # sample_size(10)
    assert stat is not None
    assert stat.average_concurrent_requests == pytest.approx(20.0)  # 7 x 2.0 x 10/7
    assert stat.request_count == pytest.approx(100.0)


async def test_old_pods_are_preferred_young_ones_fill_in(scraper: StatsScraper) -> None:
    async with stat_servers(["ok"] * 10) as (pods, hits):
        now = 1000.0
        # pods 0-7 started long ago, 8-9 just now: the sample of 7 takes only old pods
        aged = [
            Endpoint(p.name, p.host, 0, p.stats_port, started_at=0.0 if i < 8 else now - 1)
            for i, p in enumerate(pods)
        ]
        await scraper.scrape(aged, now=now, stable_window=60)
        assert hits[8:] == [0, 0]
        # only 2 old pods: both are used, young ones fill the other 5
        for i in range(10):
            hits[i] = 0
        aged = [
            Endpoint(p.name, p.host, 0, p.stats_port, started_at=0.0 if i < 2 else now - 1)
            for i, p in enumerate(pods)
        ]
        await scraper.scrape(aged, now=now, stable_window=60)
        assert hits[:2] == [1, 1] and sum(hits) == 7


async def test_a_failing_pod_is_replaced_by_a_spare(scraper: StatsScraper) -> None:
    async with stat_servers(["500"] + ["ok"] * 9) as (pods, _hits):
        stat = await scraper.scrape(pods, now=1000.0, stable_window=60)
    assert stat is not None
    assert stat.average_concurrent_requests == pytest.approx(20.0)


@pytest.mark.parametrize("bad", ["500", "html", "huge", "junk"])
async def test_all_sampled_pods_must_succeed(scraper: StatsScraper, bad: str) -> None:
    async with stat_servers(["ok", bad, "ok"]) as (pods, _):
        with pytest.raises(ScrapeError, match="pod-1"):
            await scraper.scrape(pods, now=1000.0, stable_window=60)


async def test_unreachable_pod_fails_the_scrape(scraper: StatsScraper) -> None:
    async with stat_servers(["ok"]) as (pods, _):
        pass  # servers stopped: the port refuses connections
    with pytest.raises(ScrapeError, match="pod-0"):
        await scraper.scrape(pods, now=1000.0, stable_window=60)


# ----- mesh mode (docs/autoscaling.md, "Mesh mode") -------------------------------------

KEY = RevisionKey("default", "hello-00001")


@asynccontextmanager
async def service_server(pod_names: list[str]) -> AsyncIterator[tuple[str, list[int]]]:
    """A "private Service": each scrape lands on the next pod behind it, round robin."""
    hits = [0]

    async def handler(request: web.Request) -> web.Response:
        name = pod_names[hits[0] % len(pod_names)]
        hits[0] += 1
        stat = Stat(
            pod_name=name,
            average_concurrent_requests=3.0,
            average_proxied_concurrent_requests=0.0,
            request_count=6.0,
            proxied_request_count=0.0,
            process_uptime=100.0,
        )
        return web.Response(body=stat.to_json(), content_type="application/json")

    app = web.Application()
    app.router.add_get("/metrics", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/metrics", hits
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("mode", "pods_do", "via_service"),
    [
        ("auto", "refused", True),
        ("auto", "503", True),
        ("enabled", "refused", True),
        ("enabled", "ok", True),
        ("auto", "ok", False),
        ("auto", "500", False),
        ("disabled", "refused", False),
    ],
    ids=[
        "auto-refused",
        "auto-503",
        "enabled-refused",
        "enabled-even-if-pods-answer",
        "auto-pods-answer",
        "auto-non-mesh-error",
        "disabled",
    ],
)
async def test_mesh_mode_scrapes_through_the_private_service(
    mode: str, pods_do: str, via_service: bool
) -> None:
    behaviour = "ok" if pods_do == "refused" else pods_do
    async with (
        service_server(["a", "b", "c"]) as (url, service_hits),
        stat_servers([behaviour] * 3) as (pods, pod_hits),
        aiohttp.ClientSession() as session,
    ):
        if pods_do == "refused":  # nothing listens on port 1
            pods = [Endpoint(p.name, p.host, p.port, stats_port=1) for p in pods]
        scraper = StatsScraper(
            session, rng=random.Random(7), timeout=2.0, mesh_mode=mode, service_url=lambda k: url
        )
        try:
            stat = await scraper.scrape(pods, now=1000.0, stable_window=60.0, key=KEY)
        except ScrapeError:
            stat = None
        if via_service:
            # three ready pods: all three sampled, each a distinct pod behind the Service
            assert stat is not None and stat.average_concurrent_requests == 9.0
            assert service_hits[0] == 3
            assert (KEY in scraper.via_service) == (mode == "auto")
            if mode == "auto":  # it stays on the Service: the pods are not tried again
                before = sum(pod_hits)
                assert await scraper.scrape(pods, now=1001.0, stable_window=60.0, key=KEY)
                assert sum(pod_hits) == before and service_hits[0] == 6
        else:
            assert service_hits[0] == 0 and KEY not in scraper.via_service
            if pods_do == "ok":
                assert stat is not None and sum(pod_hits) == 3
            else:
                assert stat is None


async def test_the_service_scrape_needs_as_many_distinct_pods_as_the_sample() -> None:
    async with service_server(["a", "b"]) as (url, hits), aiohttp.ClientSession() as session:
        scraper = StatsScraper(session, mesh_mode="enabled", service_url=lambda k: url)
        # 3 ready pods, the Service only ever reaches 2 of them: no estimate
        with pytest.raises(ScrapeError, match="2 of 3 distinct pods"):
            await scraper.scrape_service(url, 3, stable_window=60.0)
        # two workers found a and b at once; the third gave up after SERVICE_TRIES scrapes
        assert hits[0] == 2 + 10
        stat = await scraper.scrape_service(url, 2, stable_window=60.0)
        assert stat is not None and stat.request_count == 12.0
        assert await scraper.scrape_service(url, 0, stable_window=60.0) is None
