"""One decider per revision, ticked every 2 s, poked on the first request at zero.

The ``Multiscaler`` keeps, per revision, the metric windows, the KPA decider
and the PodAutoscaler state of the scale step, and drives them:

- every 1 s it scrapes each revision's queue-proxies (sampled) into the windows;
- stats pushed by activators go into the same windows as they arrive, and a
  stat with load for a revision whose desired scale is 0 (or not yet known),
  or that has no ready replica, is decided at once instead of at the next
  tick (the poke);
- every 2 s it decides every revision and runs the scale step, which applies
  bounds and the scale-to-zero gate and says what replica count to apply.

Invalid decisions (no data, pods unknown) change nothing: the last valid
desired scale stays in force, so missing metrics never scale anything to
zero. Applying a replica count is asynchronous, one at a time per revision,
with backoff after failures; the next decision simply asks again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import replace

from zeroserve.autoscaling.annotations import RevisionAutoscaling
from zeroserve.autoscaling.config import (
    SCRAPE_INTERVAL,
    TICK_INTERVAL,
    AutoscalerConfig,
    DeploymentConfig,
)
from zeroserve.periodic import every
from zeroserve.stats import Stat

from .collector import MetricCollector
from .decider import Decider, DeciderSpec
from .model import PodSource, ReplicaScaler, RevisionInfo, RevisionKey, RevisionSource, ScaleError
from .scaler import PodAutoscalerState, ScaleDecision, scale_step
from .scraper import ScrapeError, StatsScraper
from .spec import decider_spec

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0
SCRAPE_CONCURRENCY = 200


class RevisionScaler:
    """Everything the multiscaler keeps for one revision."""

    __slots__ = (
        "applying",
        "autoscaling",
        "collector",
        "decider",
        "desired",
        "excess",
        "failures",
        "info",
        "key",
        "last_panic",
        "last_stable",
        "next_attempt",
        "ready",
        "spec",
        "state",
        "wanted",
    )

    def __init__(
        self,
        info: RevisionInfo,
        autoscaling: RevisionAutoscaling,
        spec: DeciderSpec,
        ready: int,
        now: float,
    ) -> None:
        self.key = info.key
        self.info = info
        self.autoscaling = autoscaling
        self.spec = spec
        self.decider = Decider(spec, ready_pods=ready, now=now)
        self.collector = _collector(autoscaling)
        self.state = PodAutoscalerState.new(now, reachable=info.reachable)
        self.desired = -1  # last valid decision; -1 = not known yet
        self.excess = 0
        self.ready = ready
        self.last_stable = 0.0
        self.last_panic = 0.0
        self.applying: asyncio.Task[None] | None = None
        self.wanted: int | None = None  # replica count waiting to be applied
        self.failures = 0
        self.next_attempt = 0.0


def _collector(a: RevisionAutoscaling) -> MetricCollector:
    return MetricCollector(
        metric=a.metric,
        stable_window=a.stable_window,
        panic_window=a.panic_window,
        algorithm=a.metric_aggregation_algorithm,
    )


class Multiscaler:
    """See the module docstring. ``clock`` returns Unix seconds."""

    def __init__(
        self,
        *,
        config: AutoscalerConfig,
        revisions: RevisionSource,
        pods: PodSource,
        scaler: ReplicaScaler,
        scraper: StatsScraper | None = None,
        deployment: DeploymentConfig | None = None,
        clock: Callable[[], float] = time.time,
        on_tick: Callable[[float], None] | None = None,
    ) -> None:
        self.config = config
        self.deployment = deployment or DeploymentConfig()
        self.revision_source = revisions
        self.pods = pods
        self.scaler = scaler
        self.scraper = scraper
        self.clock = clock
        self.on_tick = on_tick
        """Called after every tick with its time, once every revision is decided (locally:
        the figures reported to the live page, ``autoscaler.figures``)."""
        self.revisions: dict[RevisionKey, RevisionScaler] = {}
        self.unknown_stats = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []

    # -- revisions ----------------------------------------------------------

    def sync(self, now: float) -> None:
        """Follow the revision source: create, update and forget revisions."""
        current = self.revision_source.revisions()
        for key in list(self.revisions):
            if key not in current:
                gone = self.revisions.pop(key)
                if gone.applying is not None:
                    gone.applying.cancel()
                if self.scraper is not None:
                    self.scraper.forget(key)
        for key, info in current.items():
            rev = self.revisions.get(key)
            if rev is None:
                self._create(info, now)
            elif rev.info != info:
                self._update(rev, info)

    def _autoscaling(self, info: RevisionInfo) -> RevisionAutoscaling:
        # The reconciler's lenient reading: a bad annotation counts as absent
        # (validation rejected it before it got here).
        return RevisionAutoscaling.read(
            info.annotations,
            self.config,
            container_concurrency=info.container_concurrency,
            deployment=self.deployment,
        )

    def _create(self, info: RevisionInfo, now: float) -> RevisionScaler:
        a = self._autoscaling(info)
        pods = self.pods.ready_pods(info.key)
        ready = len(pods) if pods is not None else 0
        rev = RevisionScaler(
            info, a, decider_spec(a, self.config, reachable=info.reachable), ready, now
        )
        self.revisions[info.key] = rev
        return rev

    def _update(self, rev: RevisionScaler, info: RevisionInfo) -> None:
        a = self._autoscaling(info)
        rev.info = info
        if (a.metric, a.stable_window, a.panic_window, a.metric_aggregation_algorithm) != (
            rev.autoscaling.metric,
            rev.autoscaling.stable_window,
            rev.autoscaling.panic_window,
            rev.autoscaling.metric_aggregation_algorithm,
        ):
            rev.collector = _collector(a)  # other windows: the old data does not fit them
        rev.autoscaling = a
        rev.spec = decider_spec(a, self.config, reachable=info.reachable)
        rev.decider.update(rev.spec)
        if rev.state.reachable != info.reachable:
            rev.state = replace(rev.state, reachable=info.reachable)

    def update_config(
        self, config: AutoscalerConfig, deployment: DeploymentConfig | None = None
    ) -> None:
        """A new config-autoscaler (or config-deployment): re-derive every spec."""
        self.config = config
        if deployment is not None:
            self.deployment = deployment
        for rev in list(self.revisions.values()):
            info = rev.info
            rev.info = RevisionInfo(key=info.key)  # force _update to treat it as changed
            self._update(rev, info)

    # -- metrics in -----------------------------------------------------------

    def record(self, key: RevisionKey, stat: Stat) -> None:
        """A stat from an activator (stamped now); pokes a revision at zero."""
        rev = self.revisions.get(key)
        if rev is None:
            # The activator may learn of a revision before the source does.
            self.sync(self.clock())
            rev = self.revisions.get(key)
            if rev is None:
                self.unknown_stats += 1
                return
        now = self.clock()
        rev.collector.record(math.floor(now), stat)
        # Upstream pokes only at a desired scale of 0. Zeroserve also decides
        # at once at "not known yet" (-1, e.g. after an autoscaler restart at
        # zero) and while no replica is ready, so the activator's later pokes
        # for a burst that keeps arriving at a cold revision size it at once.
        if stat.average_concurrent_requests > 0 and (rev.desired <= 0 or rev.ready == 0):
            self.reconcile(rev, now)

    async def scrape(self, now: float) -> None:
        """Scrape every revision's queue-proxies once."""
        scraper = self.scraper
        if scraper is None:
            return
        sem = asyncio.Semaphore(SCRAPE_CONCURRENCY)

        async def one(rev: RevisionScaler) -> None:
            pods = self.pods.ready_pods(rev.key)
            if not pods:
                return
            async with sem:
                try:
                    stat = await scraper.scrape(
                        pods, now=now, stable_window=rev.autoscaling.stable_window, key=rev.key
                    )
                except ScrapeError as e:
                    log.debug("scrape of %s failed: %s", rev.key, e)
                    return
            if stat is not None and self.revisions.get(rev.key) is rev:
                rev.collector.record(math.floor(now), stat)

        await asyncio.gather(*(one(rev) for rev in list(self.revisions.values())))

    # -- decisions ---------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Decide and reconcile every revision."""
        for rev in list(self.revisions.values()):
            self.reconcile(rev, now)
        if self.on_tick is not None:
            try:
                self.on_tick(now)
            except Exception:
                log.exception("reporting the tick's figures failed")

    def decide(self, rev: RevisionScaler, now: float) -> None:
        """Run the decider; a valid result becomes the revision's desired scale."""
        pods = self.pods.ready_pods(rev.key)
        ready = len(pods) if pods is not None else None
        if ready is not None:
            rev.ready = ready
        values = rev.collector.values(now)
        stable, panic = values if values is not None else (None, None)
        result = rev.decider.scale(now, ready_pods=ready, stable=stable, panic=panic)
        if result.valid:
            rev.desired = result.desired_pods
            rev.excess = result.excess_burst_capacity
            rev.last_stable = stable or 0.0
            rev.last_panic = panic or 0.0

    def reconcile(self, rev: RevisionScaler, now: float) -> ScaleDecision:
        """Decide, run the scale step, and start applying its replica count."""
        self.decide(rev, now)
        d = scale_step(
            rev.state,
            now,
            desired=rev.desired,
            ready=rev.ready,
            replicas=self.scaler.current_scale(rev.key),
            revision=rev.autoscaling,
            config=self.config,
        )
        rev.state = d.state
        if d.replicas is not None:
            self._apply(rev, d.replicas, now)
        return d

    def _apply(self, rev: RevisionScaler, replicas: int, now: float) -> None:
        rev.wanted = replicas
        if rev.applying is not None or now < rev.next_attempt:
            return  # the running task applies the latest; or backing off
        task = asyncio.get_running_loop().create_task(self._applier(rev), name=f"scale {rev.key}")
        rev.applying = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _applier(self, rev: RevisionScaler) -> None:
        try:
            while rev.wanted is not None:
                replicas, rev.wanted = rev.wanted, None
                try:
                    await self.scaler.set_scale(rev.key, replicas)
                except ScaleError as e:
                    rev.failures += 1
                    delay = min(MAX_BACKOFF, TICK_INTERVAL * 2 ** (rev.failures - 1))
                    rev.next_attempt = self.clock() + delay
                    log.warning(
                        "scaling %s to %d failed (retry in %.0fs): %s", rev.key, replicas, delay, e
                    )
                    return
                rev.failures = 0
                rev.next_attempt = 0.0
                log.info("scaled %s to %d", rev.key, replicas)
        except Exception:
            log.exception("scaling %s failed unexpectedly", rev.key)
        finally:
            rev.applying = None

    # -- running -----------------------------------------------------------------

    async def start(self) -> None:
        self.sync(self.clock())
        loop = asyncio.get_running_loop()
        self._loops = [
            loop.create_task(every(SCRAPE_INTERVAL, self._scrape_once), name="autoscaler-scrape"),
            loop.create_task(every(TICK_INTERVAL, self._tick_once), name="autoscaler-tick"),
        ]

    async def _scrape_once(self) -> None:
        await self.scrape(self.clock())

    def _tick_once(self) -> None:
        now = self.clock()
        self.sync(now)
        self.tick(now)

    async def stop(self) -> None:
        for t in self._loops:
            t.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops = []
        pending = list(self._tasks)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
