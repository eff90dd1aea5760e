"""One simulation run: the revision's settings in, a per-second timeline out.

:func:`simulate` builds the world (autoscaler/simulate/world.py) around the
real :class:`~autoscaler.multiscaler.Multiscaler` and moves the fake clock one
second at a time: pods whose start delay has passed become ready, the
activator reports and pokes, the queue-proxies are scraped, and every 2 s
(``TICK_INTERVAL``) the multiscaler syncs and ticks (decider and scale step).
What each second ends with is a :class:`Second`.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field

import aiohttp

from zeroserve.autoscaling.annotations import RevisionAutoscaling
from zeroserve.autoscaling.config import TICK_INTERVAL, AutoscalerConfig

from ..decider import DeciderSpec
from ..local import InMemoryCluster
from ..model import RevisionInfo
from ..multiscaler import Multiscaler, RevisionScaler
from ..spec import decider_spec
from ..traces import CONCURRENCY, RPS, Trace
from .world import EPOCH, KEY, ActivatorModel, SimClock, SimulatedPods, SimulatedQueueProxies

# Margin after the stable window, grace period and scale-down delay in the
# default duration: room for halving pod counts tick by tick down to zero.
_SETTLE_MARGIN = 60.0
# Event-loop turns allowed for the multiscaler's scale task to apply a count;
# it needs one or two (InMemoryCluster.set_scale never really waits).
_SETTLE_ROUNDS = 20
_TICK = int(TICK_INTERVAL)


class SimulationError(Exception):
    """The simulation cannot run as asked; the message says why."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    """The revision and the world it runs in."""

    annotations: dict[str, str] = field(default_factory=dict)
    """The revision's ``autoscaling.knative.dev/*`` annotations."""
    container_concurrency: int = 0
    """containerConcurrency; 0 = unlimited."""
    config: AutoscalerConfig = field(default_factory=AutoscalerConfig)
    """The ``config-autoscaler`` settings."""
    pod_start_delay: float = 2.0
    """Seconds from a replica count being applied to the new pods being ready."""
    initial_pods: int = 0
    """Ready pods at second 0 (0: the revision starts scaled to zero)."""
    request_duration: float = 0.1
    """Seconds one request takes; converts rps into concurrency and back."""
    duration: int | None = None
    """Seconds to simulate; None = the trace plus time to settle (:func:`default_duration`)."""
    scrape: bool = True
    """Scrape queue-proxies; False leaves the windows to the activator's stats alone
    (upstream's mode with target-burst-capacity -1)."""

    def autoscaling(self) -> RevisionAutoscaling:
        """The revision's settings, validated as the webhook would; raises ``ConfigError``."""
        return RevisionAutoscaling.parse(
            self.annotations, self.config, container_concurrency=self.container_concurrency
        )


def default_duration(trace: Trace, revision: RevisionAutoscaling, config: AutoscalerConfig) -> int:
    """A generated day's length, or the last change plus the time to settle after it.

    Settling: the stable window has to forget the load, the scale-to-zero gate
    holds the last pod for the grace period (or the retention), and a
    scale-down delay holds every count that long.
    """
    if trace.length is not None:
        return math.ceil(trace.length)
    settle = (
        revision.stable_window
        + max(config.scale_to_zero_grace_period, revision.scale_to_zero_pod_retention)
        + revision.scale_down_delay
        + _SETTLE_MARGIN
    )
    return math.ceil(trace.last_change + settle)


@dataclass(frozen=True, slots=True)
class Second:
    """The state at the end of one simulated second (a timeline row)."""

    t: int
    concurrency: float
    rps: float
    load: float
    """The load in the decider's metric (concurrency or rps)."""
    needed: int
    """ceil(load / the decider's per-pod target)."""
    desired: int
    """The replica count the autoscaler applied."""
    decided: int
    """The decider's last valid desired scale (-1 = none yet)."""
    ready: int
    starting: int
    capacity: float
    """Ready pods x the per-pod target."""
    stable: float
    panic: float
    """Window averages at the last decision."""
    in_panic: bool
    pa: str
    """The PodAutoscaler's Active condition."""


@dataclass(frozen=True, slots=True)
class Run:
    """A finished simulation: its inputs and the per-second timeline."""

    trace: Trace
    settings: Settings
    revision: RevisionAutoscaling
    spec: DeciderSpec
    timeline: list[Second]
    scale_events: list[tuple[float, int, int]]
    """(trace second, from, to) for every replica change applied."""


def simulate(trace: Trace, settings: Settings) -> Run:
    """Run the trace through the autoscaler; raises ``ConfigError`` for bad settings."""
    return asyncio.run(simulate_async(trace, settings))


async def simulate_async(trace: Trace, settings: Settings) -> Run:
    revision = settings.autoscaling()
    spec = decider_spec(revision, settings.config, reachable=True)
    seconds = settings.duration or default_duration(trace, revision, settings.config)
    concurrency, rps = _both_units(trace, seconds, settings.request_duration)
    # The decider's own metric; "needed" must mean what its target means.
    load = rps if spec.scaling_metric == RPS else concurrency

    clock = SimClock(EPOCH)
    cluster = InMemoryCluster()
    pods = SimulatedPods(cluster, clock, settings.pod_start_delay)
    cluster.on_scale = pods.on_scale
    cluster.put_revision(
        RevisionInfo(
            KEY,
            container_concurrency=settings.container_concurrency,
            annotations=settings.annotations,
        ),
        replicas=settings.initial_pods,
    )
    activator = ActivatorModel()
    timeline: list[Second] = []
    async with aiohttp.ClientSession() as session:
        qps = SimulatedQueueProxies(session, clock)
        ms = Multiscaler(
            config=settings.config,
            revisions=cluster,
            pods=cluster,
            scaler=cluster,
            scraper=qps if settings.scrape else None,
            clock=clock,
        )
        # Created before its pods exist, as a new revision's PodAutoscaler is:
        # a decider built over running pods would start in panic (that is its
        # autoscaler-restart behaviour, not what a trace means to show).
        ms.sync(clock())
        pods.start(settings.initial_pods, ready_at=clock() - 1)
        try:
            for s in range(seconds):
                clock.now = now = EPOCH + s
                pods.advance(now)
                prev_c, prev_r = (concurrency[s - 1], rps[s - 1]) if s else (0.0, 0.0)
                for stat in (
                    activator.close_interval(prev_c, prev_r),
                    *activator.pokes(concurrency[s], pods.ready),
                ):
                    if stat is not None:
                        ms.record(KEY, stat)  # a poke applies a count at once
                        await _settle(ms)
                qps.pods, qps.concurrency, qps.rps = pods.ready, prev_c, prev_r
                await ms.scrape(now)
                if s % _TICK == 0:
                    ms.sync(now)
                    ms.tick(now)
                    await _settle(ms)
                timeline.append(
                    _second(
                        s,
                        concurrency[s],
                        rps[s],
                        load[s],
                        ms.revisions[KEY],
                        pods,
                        cluster,
                        spec.target,
                    )
                )
        finally:
            await ms.stop()
    events = [(t - EPOCH, a, b) for t, a, b in pods.events]
    return Run(trace, settings, revision, spec, timeline, events)


def _both_units(
    trace: Trace, seconds: int, request_duration: float
) -> tuple[list[float], list[float]]:
    per_second = trace.per_second(seconds)
    if trace.unit == CONCURRENCY:
        return per_second, [c / request_duration for c in per_second]
    return [r * request_duration for r in per_second], per_second


async def _settle(ms: Multiscaler) -> None:
    """Let the multiscaler's scale tasks apply what was decided."""
    for _ in range(_SETTLE_ROUNDS):
        if all(rev.applying is None for rev in ms.revisions.values()):
            return
        await asyncio.sleep(0)
    raise SimulationError("the autoscaler's scale task did not finish applying a replica count")


def _second(
    s: int,
    concurrency: float,
    rps: float,
    load: float,
    rev: RevisionScaler,
    pods: SimulatedPods,
    cluster: InMemoryCluster,
    target: float,
) -> Second:
    ready = pods.ready
    return Second(
        t=s,
        concurrency=concurrency,
        rps=rps,
        load=load,
        # Rounded first: rps derived from concurrency (c / 0.1) can land a hair
        # above a multiple of the target, which is not one more pod.
        needed=math.ceil(round(load / target, 9)),
        desired=cluster.replicas(KEY) or 0,
        decided=rev.desired,
        ready=ready,
        starting=len(pods.pods) - ready,
        capacity=ready * target,
        stable=rev.last_stable,
        panic=rev.last_panic,
        in_panic=rev.decider.in_panic,
        pa=rev.state.condition.status.value,
    )
