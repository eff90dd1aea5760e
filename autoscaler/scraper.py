"""Scraping queue-proxies' stats with upstream's sampling (docs/autoscaling.md, "Scraping").

For a revision with N ready pods, n = ``sample_size(N)`` of them are scraped
(``GET http://<pod>:<stats port>/metrics``, JSON ``Stat``); the n stats are
summed and scaled by N/n into an estimate of the revision total. Pods that
have run for at least a stable window are preferred (their figures are
settled); young pods fill in when there are not enough old ones. Each of n
workers takes the next pod until it has one success; if the pods run out
before all n succeeded, the whole scrape fails and nothing is recorded.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import aiohttp

from zeroserve.stats import Stat

from .model import Endpoint
from .sampling import sample_size

SCRAPER_POD_NAME = "service-scraper"
SCRAPE_TIMEOUT = 3.0
# A JSON Stat is ~250 bytes; anything much larger is not a queue-proxy.
MAX_STAT_BYTES = 4096


class ScrapeError(Exception):
    """The sample could not be completed; the message says why."""


class StatsScraper:
    """Scrapes one revision's pods at a time; share one instance."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        rng: random.Random | None = None,
        timeout: float = SCRAPE_TIMEOUT,
    ) -> None:
        self.session = session
        self.rng = rng or random.Random()
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def scrape(
        self, pods: Sequence[Endpoint], *, now: float, stable_window: float
    ) -> Stat | None:
        """The revision-total estimate, None with no pods; raises ``ScrapeError``."""
        total = len(pods)
        if total == 0:
            return None
        n = sample_size(total)
        old = [p for p in pods if now - p.started_at >= stable_window]
        if len(old) >= n:
            self.rng.shuffle(old)
            candidates = old
        else:
            young = [p for p in pods if now - p.started_at < stable_window]
            self.rng.shuffle(young)
            candidates = old + young
        queue = iter(candidates)
        errors: list[str] = []

        async def worker() -> Stat:
            for pod in queue:
                try:
                    return await self.fetch(pod)
                except ScrapeError as e:
                    errors.append(str(e))
            raise ScrapeError(f"{len(errors)} of {total} pods failed: {'; '.join(errors[:3])}")

        results = await asyncio.gather(*(worker() for _ in range(n)), return_exceptions=True)
        stats: list[Stat] = []
        for r in results:
            if isinstance(r, BaseException):
                if isinstance(r, ScrapeError):
                    raise r
                raise ScrapeError(f"scrape failed: {r!r}") from r
            stats.append(r)
        factor = total / n
        return Stat(
            pod_name=SCRAPER_POD_NAME,
            average_concurrent_requests=factor * sum(s.average_concurrent_requests for s in stats),
            average_proxied_concurrent_requests=factor
            * sum(s.average_proxied_concurrent_requests for s in stats),
            request_count=factor * sum(s.request_count for s in stats),
            proxied_request_count=factor * sum(s.proxied_request_count for s in stats),
            process_uptime=max(s.process_uptime for s in stats),
        )

    async def fetch(self, pod: Endpoint) -> Stat:
        url = f"http://{pod.host}:{pod.stats_port}/metrics"
        try:
            async with self.session.get(
                url, timeout=self.timeout, headers={"Accept": "application/json"}
            ) as r:
                if not 200 <= r.status < 300:
                    raise ScrapeError(f"{pod.name}: {url} answered {r.status}")
                if r.content_type != "application/json":
                    raise ScrapeError(
                        f"{pod.name}: {url} answered {r.content_type}, not application/json"
                    )
                body = await r.content.read(MAX_STAT_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise ScrapeError(f"{pod.name}: {url}: {e or type(e).__name__}") from None
        if len(body) > MAX_STAT_BYTES:
            raise ScrapeError(f"{pod.name}: stat larger than {MAX_STAT_BYTES} bytes")
        try:
            return Stat.from_json(body)
        except ValueError as e:
            raise ScrapeError(f"{pod.name}: {e}") from None
