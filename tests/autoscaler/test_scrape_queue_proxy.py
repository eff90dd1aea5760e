"""The multiscaler scraping a real queue-proxy process under real load."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import httpx
import pytest

from autoscaler.local import InMemoryCluster
from autoscaler.model import Endpoint, RevisionInfo, RevisionKey
from autoscaler.multiscaler import Multiscaler
from autoscaler.scraper import StatsScraper
from tests.support.apps import run_app
from tests.support.procs import queue_proxy
from zeroserve.autoscaling.config import AutoscalerConfig

pytestmark = pytest.mark.process

KEY = RevisionKey("default", "hello-00001")


async def test_scraped_direct_load_drives_the_decision(tmp_path: Path) -> None:
    async with (
        run_app() as (port, _),
        queue_proxy(port, tmp_path) as qp,
        aiohttp.ClientSession() as session,
    ):
        cluster = InMemoryCluster()
        cluster.put_revision(RevisionInfo(KEY, container_concurrency=2), replicas=1)
        cluster.set_pods(
            KEY,
            [
                Endpoint(
                    "pod-0", "127.0.0.1", qp.port, qp.ports["metrics_port"], started_at=time.time()
                )
            ],
        )
        ms = Multiscaler(
            config=AutoscalerConfig.from_mapping({"stable-window": "6s"}),
            revisions=cluster,
            pods=cluster,
            scaler=cluster,
            scraper=StatsScraper(session),
        )
        ms.sync(time.time())
        async with httpx.AsyncClient(timeout=30) as client:
            # 8 requests held ~3 s straight at the pod (not via an activator)
            load = [asyncio.create_task(client.get(qp.url("/sleep?s=3.2"))) for _ in range(8)]
            await asyncio.sleep(2.2)  # the queue-proxy publishes a full 1 s interval of it
            now = time.time()
            await ms.scrape(now)
            values = ms.revisions[KEY].collector.values(now)
            assert values is not None
            _, panic = values
            assert 7 <= panic <= 8.5  # CC 2 at the app, the rest queued in the proxy: all count
            ms.tick(now)
            await asyncio.gather(*load)
        for _ in range(5):
            await asyncio.sleep(0)
        # target 0.7 x 2 = 1.4 per pod; 8 in flight -> ceil(8 / 1.4) = 6 pods
        assert cluster.replicas(KEY) == 6
        await ms.stop()


async def test_proxied_load_is_left_to_the_activator(tmp_path: Path) -> None:
    async with (
        run_app() as (port, _),
        queue_proxy(port, tmp_path) as qp,
        aiohttp.ClientSession() as session,
    ):
        cluster = InMemoryCluster()
        cluster.put_revision(RevisionInfo(KEY), replicas=1)
        cluster.set_pods(KEY, [Endpoint("pod-0", "127.0.0.1", qp.port, qp.ports["metrics_port"])])
        ms = Multiscaler(
            config=AutoscalerConfig(),
            revisions=cluster,
            pods=cluster,
            scaler=cluster,
            scraper=StatsScraper(session),
        )
        ms.sync(time.time())
        async with httpx.AsyncClient(timeout=30) as client:
            load = [
                asyncio.create_task(
                    client.get(qp.url("/sleep?s=2.5"), headers={"K-Proxy-Request": "activator"})
                )
                for _ in range(5)
            ]
            await asyncio.sleep(2.2)
            now = time.time()
            await ms.scrape(now)
            await asyncio.gather(*load)
        values = ms.revisions[KEY].collector.values(now)
        assert values is not None  # scraped: there is data ...
        assert (
            values[1] == 0.0
        )  # ... but the activator reports these; counting them here would double them
        await ms.stop()
