"""Locally, the autoscaler's own figures go to ``zeroserve up`` after every tick, for its
live page (docs/local-mode.md, "The live page").

``revision_figures`` reads what one tick decided about a revision; ``FigureReporter``
posts every revision's figures to the control API's ``POST /v1/figures``, one request
at a time: a tick whose batch cannot go yet replaces the batch waiting, and a failed
post is logged once per outage and dropped (the page shows a gap; the next tick sends
fresh figures). Nothing here is on the decision path: scaling does not wait for it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp

from zeroserve.local import access
from zeroserve.local.figures import FIGURES_PATH, Figures, encode_batch

from .multiscaler import Multiscaler, RevisionScaler

log = logging.getLogger(__name__)


def revision_figures(rev: RevisionScaler, now: float) -> Figures:
    """What the last decision about ``rev`` saw and wanted, at ``now``."""
    o = rev.collector.observed(now)
    return Figures(
        time=now,
        stable_concurrency=o.stable_concurrency,
        panic_concurrency=o.panic_concurrency,
        stable_rps=o.stable_rps,
        panic_rps=o.panic_rps,
        # the scale step's want (bounds, the scale-to-zero gate): the PodAutoscaler's
        # desired scale, what is applied
        desired=rev.state.desired_scale,
        ready=rev.ready,
        panic=rev.decider.in_panic,
        metric="rps" if rev.spec.scaling_metric == "rps" else "concurrency",
        target=rev.spec.target,
    )


class FigureReporter:
    """Posts each tick's figures of ``multiscaler``'s revisions to the control API at
    ``url`` (with the token ``zeroserve up`` gave this process)."""

    def __init__(
        self,
        multiscaler: Multiscaler,
        session: aiohttp.ClientSession,
        url: str,
        *,
        token: str | None = None,
    ) -> None:
        self.multiscaler = multiscaler
        self.session = session
        self.url = f"{url.rstrip('/')}{FIGURES_PATH}"
        self.headers = access.headers(token or access.child_token())
        self.pending: dict[str, Any] | None = None
        """The batch waiting for the post in flight to finish."""
        self.sent = 0
        """Batches the control API took."""
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        multiscaler.on_tick = self.tick

    def tick(self, now: float) -> None:
        revisions = list(self.multiscaler.revisions.values())
        if not revisions:
            return
        self.pending = encode_batch((rev.key, revision_figures(rev, now)) for rev in revisions)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._send(), name="autoscaler-figures"
            )

    async def _send(self) -> None:
        try:
            while self.pending is not None:
                batch, self.pending = self.pending, None
                await self._post(batch)
        except Exception:
            log.exception("sending the figures for the live page failed unexpectedly")
        finally:
            self._task = None

    async def _post(self, batch: dict[str, Any]) -> None:
        try:
            async with self.session.post(
                self.url, json=batch, headers=self.headers, timeout=aiohttp.ClientTimeout(total=5)
            ) as r:
                if r.status != 200:
                    raise ValueError(f"answered {r.status}: {(await r.text()).strip()[:200]}")
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as e:
            if not self._failing:
                log.warning(
                    "the control API did not take the figures for the live page (%s): %s",
                    self.url,
                    e or type(e).__name__,
                )
            self._failing = True
            return
        if self._failing:
            log.info("the control API takes the figures for the live page again")
        self._failing = False
        self.sent += 1

    async def stop(self) -> None:
        task = self._task
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
