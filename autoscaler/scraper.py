"""Scraping queue-proxies' stats with upstream's sampling (docs/autoscaling.md, "Scraping").

For a revision with N ready pods, n = ``sample_size(N)`` of them are scraped
(``GET http://<pod>:<stats port>/metrics``, JSON ``Stat``); the n stats are
summed and scaled by N/n into an estimate of the revision total. Pods that
have run for at least a stable window are preferred (their figures are
settled); young pods fill in when there are not enough old ones. Each of n
workers takes the next pod until it has one success; if the pods run out
before all n succeeded, the whole scrape fails and nothing is recorded.

Mesh mode (``config-network`` ``mesh-compatibility-mode``; docs/autoscaling.md, "Mesh
mode"), after Knative's ``pkg/autoscaler/metrics/stats_scraper.go``: with ``enabled``
the stats are scraped through the revision's private Service (its ``http-autometric``
port 9090), where each scrape lands on some pod: the n workers scrape until they hold
n stats of distinct pods (each worker at most ``SERVICE_TRIES`` times), old pods'
stats preferred over young ones' (``process_uptime`` against the stable window); with
``auto`` the pods are scraped directly, and when not one of them could be scraped and
every failure was one a mesh makes (a connection error, a timeout, ``502``/``503``),
the Service is scraped instead and, once that works, used for that revision from then
on; with ``disabled`` only the pods are scraped.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence

import aiohttp

from zeroserve.api.network import MESH_AUTO, MESH_DISABLED, MESH_ENABLED
from zeroserve.stats import Stat

from .model import Endpoint, RevisionKey
from .sampling import sample_size

log = logging.getLogger(__name__)

SCRAPER_POD_NAME = "service-scraper"
SCRAPE_TIMEOUT = 3.0
# A JSON Stat is ~250 bytes; anything much larger is not a queue-proxy.
MAX_STAT_BYTES = 4096
QUEUE_METRICS_PORT = 9090
"""The private Service's ``http-autometric`` port (controller/workloads.py)."""
SERVICE_TRIES = 10
"""Scrapes one worker makes through the Service for one stat of a pod not seen yet."""


class ScrapeError(Exception):
    """The sample could not be completed; the message says why. ``mesh_like``: every
    failure was one a sidecar with STRICT mTLS causes (no answer, ``502``, ``503``)."""

    def __init__(self, message: str, *, mesh_like: bool = False) -> None:
        super().__init__(message)
        self.mesh_like = mesh_like


class StatsScraper:
    """Scrapes one revision's pods at a time; share one instance."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        rng: random.Random | None = None,
        timeout: float = SCRAPE_TIMEOUT,
        mesh_mode: str = MESH_DISABLED,
        service_url: Callable[[RevisionKey], str] | None = None,
    ) -> None:
        self.session = session
        self.rng = rng or random.Random()
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.mesh_mode = mesh_mode if service_url is not None else MESH_DISABLED
        """``config-network`` ``mesh-compatibility-mode`` (``disabled`` without a
        ``service_url``: local mode has no Services)."""
        self.service_url = service_url
        """A revision's stats through its private Service
        (``http://<revision>-private.<namespace>.svc...:9090/metrics``)."""
        self.via_service: set[RevisionKey] = set()
        """``auto``: the revisions whose pods could not be scraped directly."""

    def set_mesh(self, mode: str, service_url: Callable[[RevisionKey], str]) -> None:
        """A new ``mesh-compatibility-mode``: every revision is scraped directly again
        first (unless ``enabled``)."""
        self.mesh_mode, self.service_url = mode, service_url
        self.via_service.clear()

    def forget(self, key: RevisionKey) -> None:
        self.via_service.discard(key)

    async def scrape(
        self,
        pods: Sequence[Endpoint],
        *,
        now: float,
        stable_window: float,
        key: RevisionKey | None = None,
    ) -> Stat | None:
        """The revision-total estimate, None with no pods; raises ``ScrapeError``.
        ``key`` names the revision for mesh mode (None: its pods, directly)."""
        if key is None or self.service_url is None or self.mesh_mode == MESH_DISABLED:
            return await self.scrape_pods(pods, now=now, stable_window=stable_window)
        url = self.service_url(key)
        if self.mesh_mode == MESH_ENABLED or key in self.via_service:
            return await self.scrape_service(url, len(pods), stable_window=stable_window)
        assert self.mesh_mode == MESH_AUTO
        try:
            return await self.scrape_pods(pods, now=now, stable_window=stable_window)
        except ScrapeError as e:
            if not e.mesh_like:
                raise
            direct = e
        try:
            stat = await self.scrape_service(url, len(pods), stable_window=stable_window)
        except ScrapeError as e:
            raise ScrapeError(f"{direct}; through {url}: {e}") from None
        log.info(
            "revision %s: its pods cannot be scraped directly (a mesh) and %s answers: "
            "scraping through the Service",
            key,
            url,
        )
        self.via_service.add(key)
        return stat

    async def scrape_service(self, url: str, ready: int, *, stable_window: float) -> Stat | None:
        """The estimate from stats of distinct pods, scraped through the Service."""
        if ready == 0:
            return None
        n = sample_size(ready)
        seen: set[str] = set()
        old: list[Stat] = []
        young: list[Stat] = []
        errors: list[str] = []
        service = Endpoint(name="service", host="", port=0, stats_port=0)

        async def worker() -> None:
            for _ in range(SERVICE_TRIES):
                if len(old) >= n:
                    return
                try:
                    stat = await self._get(service, url)
                except ScrapeError as e:
                    errors.append(str(e))
                    continue
                if stat.pod_name in seen:
                    continue  # the Service sent this scrape to a pod already counted
                seen.add(stat.pod_name)
                if stat.process_uptime >= stable_window:
                    old.append(stat)
                    return
                young.append(stat)
                if len(young) >= n:
                    return  # enough to fill the sample if no old pod turns up

        await asyncio.gather(*(worker() for _ in range(n)))
        stats = (old + young)[:n]
        if len(stats) < n:
            raise ScrapeError(
                f"{len(stats)} of {n} distinct pods through {url}"
                + (f": {'; '.join(errors[:3])}" if errors else "")
            )
        return _estimate(stats, ready, n)

    async def scrape_pods(
        self, pods: Sequence[Endpoint], *, now: float, stable_window: float
    ) -> Stat | None:
        """The estimate from stats of ``pods`` scraped directly."""
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
        errors: list[ScrapeError] = []

        async def worker() -> Stat:
            for pod in queue:
                try:
                    return await self.fetch(pod)
                except ScrapeError as e:
                    errors.append(e)
            raise ScrapeError("pods exhausted")

        results = await asyncio.gather(*(worker() for _ in range(n)), return_exceptions=True)
        stats = [r for r in results if isinstance(r, Stat)]
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, ScrapeError):
                raise ScrapeError(f"scrape failed: {r!r}") from r
        if len(stats) < n:
            raise ScrapeError(
                f"{len(errors)} of {total} pods failed: {'; '.join(map(str, errors[:3]))}",
                # Knative's errDirectScrapingNotAvailable: not one pod answered, and
                # nothing said there is no mesh
                mesh_like=not stats and all(e.mesh_like for e in errors),
            )
        return _estimate(stats, total, n)

    async def fetch(self, pod: Endpoint) -> Stat:
        return await self._get(pod, f"http://{pod.host}:{pod.stats_port}/metrics")

    async def _get(self, pod: Endpoint, url: str) -> Stat:
        try:
            async with self.session.get(
                url, timeout=self.timeout, headers={"Accept": "application/json"}
            ) as r:
                if not 200 <= r.status < 300:
                    raise ScrapeError(
                        f"{pod.name}: {url} answered {r.status}", mesh_like=r.status in (502, 503)
                    )
                if r.content_type != "application/json":
                    raise ScrapeError(
                        f"{pod.name}: {url} answered {r.content_type}, not application/json"
                    )
                body = await r.content.read(MAX_STAT_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise ScrapeError(
                f"{pod.name}: {url}: {e or type(e).__name__}", mesh_like=True
            ) from None
        if len(body) > MAX_STAT_BYTES:
            raise ScrapeError(f"{pod.name}: stat larger than {MAX_STAT_BYTES} bytes")
        try:
            return Stat.from_json(body)
        except ValueError as e:
            raise ScrapeError(f"{pod.name}: {e}") from None


def _estimate(stats: Sequence[Stat], total: int, n: int) -> Stat:
    """The revision total from ``n`` sampled stats of ``total`` pods."""
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
