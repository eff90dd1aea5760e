"""The live page with a real ``zeroserve up``: the printed URL, the autoscaler's figures
reaching ``/v1/overview``, and headless Chromium drawing them while a load runs
(docs/local-mode.md, "The live page")."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.browser import chromium, chromium_path
from zeroserve.local import access

from .support import EXAMPLES, UpProcess, zeroserve_up

# short windows so the figures move within seconds; a panic window of 3 s (30 %)
FAST = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: config-autoscaler, namespace: knative-serving}
data: {stable-window: "10s", panic-window-percentage: "30"}
"""
_PAGE_LINE = re.compile(r"^live page: (http://\S+/)#token=([\w-]+)$")

# What the page drew, per chart and series: the count of points, their largest and last
# value (data-* attributes of each series' <g>), and the points of its polylines.
SERIES_JS = """JSON.stringify([...document.querySelectorAll('svg[data-chart] g[data-series]')].map(g => ({
  revision: g.closest('svg').dataset.revision, chart: g.closest('svg').dataset.chart,
  series: g.dataset.series, count: +g.dataset.count, max: +g.dataset.max,
  last: g.dataset.last === '' ? null : +g.dataset.last,
  lines: [...g.querySelectorAll('polyline')].map(p => p.getAttribute('points')).join(' '),
})))"""


async def page_line(up: UpProcess) -> tuple[str, str]:
    async def printed() -> re.Match[str] | None:
        return next((m for line in up.output if (m := _PAGE_LINE.match(line.strip()))), None)

    m = await up.until(printed, "the 'live page:' line", within=10, every=0.05)
    return m.group(1), m.group(2)


@pytest.mark.process
@pytest.mark.timeout(90)
async def test_up_prints_the_page_and_the_autoscalers_figures_reach_it(tmp_path: Path) -> None:
    config = tmp_path / "fast.yaml"
    config.write_text(FAST)
    async with zeroserve_up(tmp_path, config, EXAMPLES / "helloworld.yaml") as up:
        url, token = await page_line(up)
        assert url == f"{up.control}/" and token != up.token
        async with httpx.AsyncClient(timeout=10) as c:
            page = await c.get(url)
            assert page.status_code == 200 and "/page/app.js" in page.text
            read = access.headers(token)
            assert (await c.get(f"{url}v1/overview")).status_code == 401
            # the page token reads, and only that
            assert (await c.get(f"{url}v1/objects/ksvc", headers=read)).status_code == 401

            async def figures() -> dict[str, Any] | None:
                data = (await c.get(f"{url}v1/overview?since=0", headers=read)).json()
                return data if data["figures"] and len(data["figures"][0]["points"]) >= 2 else None

            # the autoscaler posts after every 2 s tick
            data = await up.until(figures, "two ticks' figures from the autoscaler", within=20)
            [svc] = data["services"]
            assert (svc["name"], svc["url"]) == (
                "helloworld-go",
                "http://helloworld-go.default.localhost",
            )
            [rev] = svc["revisions"]
            assert (rev["name"], rev["percent"], rev["ready"]) == (
                "helloworld-go-00001",
                100,
                "True",
            )
            [entry] = data["figures"]
            assert entry["revision"] == "helloworld-go-00001"
            first, second = entry["points"][:2]
            assert second["seq"] > first["seq"] and 1.5 < second["time"] - first["time"] < 2.5
            assert first["metric"] == "concurrency" and first["target"] == 70.0  # 100 x 0.7
            # since= returns only what is new
            newer = (await c.get(f"{url}v1/overview?since={data['seq']}", headers=read)).json()
            assert all(p["seq"] > data["seq"] for f in newer["figures"] for p in f["points"])


async def load(ingress: str, host: str, until: float, clients: int = 16) -> int:
    """``clients`` loops of requests that take 200 ms each; returns how many were answered 200."""
    ok = 0
    async with httpx.AsyncClient(timeout=30, headers={"Host": host}) as c:

        async def loop() -> None:
            nonlocal ok
            while time.monotonic() < until:
                r = await c.get(f"{ingress}/?sleep=200")
                ok += r.status_code == 200

        await asyncio.gather(*(loop() for _ in range(clients)))
    return ok


def by_series(drawn: list[dict[str, Any]], revision: str) -> dict[str, dict[str, Any]]:
    return {d["series"]: d for d in drawn if d["revision"] == revision}


@pytest.mark.process
@pytest.mark.timeout(120)
async def test_chromium_draws_the_plots_moving_under_load(tmp_path: Path) -> None:
    chromium_path()  # skips, naming the install line, when absent
    config = tmp_path / "fast.yaml"
    config.write_text(FAST)
    async with (
        zeroserve_up(tmp_path, config, EXAMPLES / "autoscale.yaml") as up,
        chromium(tmp_path) as browser,
    ):
        url, token = await page_line(up)
        revision = "default/autoscale-go-00001"
        async with browser.open(f"{url}#token={token}") as page:

            async def drawn(min_count: int) -> dict[str, dict[str, Any]] | None:
                import json

                series = by_series(json.loads(await page.evaluate(SERIES_JS)), revision)
                ok = series and series["stable_concurrency"]["count"] >= min_count
                return series if ok else None

            before = await up.until(lambda: drawn(1), "the page's first plot points", within=30)
            assert before["stable_concurrency"]["max"] == 0  # no load yet
            assert before["desired"]["last"] == 2 and before["ready"]["last"] == 2  # min-scale
            text = await page.evaluate("document.body.innerText")
            assert "autoscale-go" in text and "http://autoscale-go.default.localhost" in text
            assert "100%" in text

            loading = asyncio.create_task(
                load(up.ingress, "autoscale-go.default.localhost", time.monotonic() + 12)
            )
            try:

                async def busy() -> dict[str, dict[str, Any]] | None:
                    s = await drawn(1)
                    if (
                        s
                        and (s["stable_concurrency"]["last"] or 0) > 5
                        and (s["desired"]["last"] or 0) >= 3
                    ):
                        return s
                    return None

                # 16 in flight on a target of 7 per pod: 3 pods
                during = await up.until(busy, "the plots moving under load", within=30, every=0.5)
                await page.screenshot(tmp_path / "live-page.png")
            finally:
                answered = await loading
            assert answered > 100
            assert during["stable_concurrency"]["count"] > before["stable_concurrency"]["count"]
            assert during["stable_rps"]["max"] > 20 and during["stable_concurrency"]["max"] > 5
            assert during["stable_concurrency"]["lines"] != before["stable_concurrency"]["lines"]
            assert during["panic_concurrency"]["max"] > 0
            shot = (tmp_path / "live-page.png").read_bytes()
            assert shot.startswith(b"\x89PNG") and len(shot) > 20_000
