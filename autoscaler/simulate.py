"""Replay a load trace through the real autoscaler on a simulated clock.

``python -m autoscaler.simulate TRACE [options]`` answers "what would the
autoscaler do with this traffic?" before it meets production: how long a load
increase waits for pods, how much is over- or under-provisioned, what it
costs in pod-seconds, how often it panics, scales to zero and cold-starts.

Nothing here re-implements the autoscaler. One revision runs through the
real :class:`~autoscaler.multiscaler.Multiscaler` (windows, KPA decider,
scale step with bounds and the scale-to-zero gate) over an
:class:`~autoscaler.local.InMemoryCluster`; only the world around it is
simulated, second by second, on a fake clock (a 1-hour trace takes about a
second of wall time):

- **pods** (:class:`SimulatedPods`): a new replica count starts pods that
  become ready after ``--pod-start-delay``; a lower one removes pods at once,
  starting ones first, as a ReplicaSet does;
- **the activator** (:class:`ActivatorModel`, reference 5.3, with zeroserve's burst pokes): on the first
  request for an idle revision it pushes a stat of concurrency 1 at once (the
  poke path of ``Multiscaler.record``), then every second the time-weighted
  average of the second just ended (less the 1 already reported), and it
  forgets the revision after a second without load, so an idle revision at
  zero gets no stats at all;
- **queue-proxies** (:class:`SimulatedQueueProxies`): scraped every second
  through the real ``Multiscaler.scrape`` and sampling code. Our activator is
  always in the request path, so everything they see is proxied and nets out
  to 0 in the windows; what the scrape contributes is those zero samples while
  pods are ready, which is what lets an idle revision's averages decay to 0;
- **ticks**: ``sync`` and ``tick`` every 2 s, on even trace seconds.

``--no-scrape`` drops the queue-proxy scrape, as upstream does when the
activator is always in the path: a what-if for wiring the autoscaler that way.

The load of each second is the trace's average over it; ``rps`` and
``concurrency`` are converted into each other with ``--request-duration``
(Little's law). Not modelled: queueing feedback (requests waiting for a pod
would raise the measured concurrency of an rps trace), pod failures, and
more than one activator (their stats would add up to the same totals).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import random
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from zeroserve.autoscaling.annotations import RevisionAutoscaling
from zeroserve.autoscaling.config import TICK_INTERVAL, AutoscalerConfig, ConfigError
from zeroserve.configmap import parse_duration, parse_int32
from zeroserve.stats import Stat

from .decider import DeciderSpec
from .local import InMemoryCluster
from .model import Endpoint, RevisionInfo, RevisionKey
from .multiscaler import Multiscaler, RevisionScaler
from .scraper import StatsScraper
from .spec import decider_spec
from .traces import CONCURRENCY, GENERATOR_HELP, RPS, Trace, TraceError, generate, read_csv

# Simulated Unix time of trace second 0. Even, so the 2 s ticks fall on even
# trace seconds and a step at an odd second shows the poke apart from a tick.
EPOCH = 1_700_000_000
KEY = RevisionKey("default", "simulated-00001")
ANNOTATION_PREFIX = "autoscaling.knative.dev/"
PLOT_HINT = "pip install 'zeroserve[plot]'"
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


# -- the simulated world ------------------------------------------------------------


class SimClock:
    """The multiscaler's clock: Unix seconds that move only when told to."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass(slots=True)
class _Pod:
    endpoint: Endpoint
    ready_at: float


class SimulatedPods:
    """The revision's pods: the ``on_scale`` hook of the in-memory cluster."""

    def __init__(self, cluster: InMemoryCluster, clock: SimClock, start_delay: float) -> None:
        self.cluster = cluster
        self.clock = clock
        self.start_delay = start_delay
        self.pods: list[_Pod] = []
        self.events: list[tuple[float, int, int]] = []
        """Applied replica changes: (time, from, to)."""
        self._serial = 0

    def start(self, count: int, *, ready_at: float) -> None:
        """Start ``count`` pods that become ready at ``ready_at``."""
        now = self.clock()
        for _ in range(count):
            self._serial += 1
            endpoint = Endpoint(
                name=f"pod-{self._serial}",
                host="127.0.0.1",
                port=8012,
                stats_port=9090,
                started_at=now,
                ready=ready_at <= now,
            )
            self.pods.append(_Pod(endpoint, ready_at))
        self._publish()

    def on_scale(self, key: RevisionKey, replicas: int) -> None:
        have = len(self.pods)
        if replicas == have:
            return  # the same count applied again: nothing to start or stop
        self.events.append((self.clock(), have, replicas))
        if replicas > have:
            self.start(replicas - have, ready_at=self.clock() + self.start_delay)
            return
        # A ReplicaSet deletes not-ready pods before ready ones, and among ready
        # ones the most recently ready: keep the oldest ready pods.
        self.pods.sort(key=lambda p: (p.endpoint.ready, -p.ready_at), reverse=True)
        del self.pods[replicas:]
        self._publish()

    def advance(self, now: float) -> None:
        """Mark the pods whose start delay has passed ready."""
        if any(not p.endpoint.ready and p.ready_at <= now for p in self.pods):
            for p in self.pods:
                if not p.endpoint.ready and p.ready_at <= now:
                    p.endpoint = replace(p.endpoint, ready=True)
            self._publish()

    @property
    def ready(self) -> int:
        return sum(1 for p in self.pods if p.endpoint.ready)

    def _publish(self) -> None:
        self.cluster.set_pods(KEY, [p.endpoint for p in self.pods])


class SimulatedQueueProxies(StatsScraper):
    """The scraper with ``fetch`` answered from the simulation instead of HTTP.

    Sampling, extrapolation and the skip at zero ready pods are the real
    scraper's; each pod reports an even share of the last second's load, all
    of it proxied (the activator is always in the path).
    """

    def __init__(self, session: aiohttp.ClientSession, clock: SimClock) -> None:
        # Seeded: which pods are sampled must not make two runs differ.
        super().__init__(session, rng=random.Random(0))
        self.clock = clock
        self.pods = 1
        self.concurrency = 0.0
        self.rps = 0.0

    async def fetch(self, pod: Endpoint) -> Stat:
        share = 1 / max(1, self.pods)
        c, r = self.concurrency * share, self.rps * share
        return Stat(
            pod_name=pod.name,
            average_concurrent_requests=c,
            average_proxied_concurrent_requests=c,
            request_count=r,
            proxied_request_count=r,
            process_uptime=self.clock() - pod.started_at,
        )


class ActivatorModel:
    """What one zeroserve activator pushes for the revision (reference 5.3, plus burst pokes).

    The first request for a revision it has no entry for is reported at once
    as concurrency 1 and one request. While the revision has no ready replica,
    more requests arriving are reported at once too (zeroserve's burst poke:
    the in-flight count beyond what was already said). What the pokes said is
    taken off the first full interval. The entry is dropped after an interval
    with no load, so the next request is reported at once again.
    """

    NAME = "activator-sim"

    def __init__(self) -> None:
        self.tracking = False
        self._reported = 0.0

    def pokes(self, concurrency: float, ready: int) -> list[Stat]:
        """The immediate stats for this second's arrivals."""
        out: list[Stat] = []
        if concurrency <= 0:
            return out
        if not self.tracking:
            self.tracking = True
            self._reported = 1.0
            out.append(Stat(pod_name=self.NAME, average_concurrent_requests=1.0, request_count=1.0))
        if ready == 0 and concurrency > self._reported:
            out.append(
                Stat(pod_name=self.NAME, average_concurrent_requests=concurrency - self._reported)
            )
            self._reported = concurrency
        return out

    def close_interval(self, concurrency: float, rps: float) -> Stat | None:
        """The per-second report of the interval just ended, if the revision is tracked."""
        if not self.tracking:
            return None
        reported, count = concurrency, rps
        if self._reported:
            reported, count = (
                max(0.0, concurrency - self._reported),
                rps - 1,
            )  # the count is not floored
            self._reported = 0.0
        if concurrency == 0:
            self.tracking = False  # idle, nothing in flight: the entry is deleted
        return Stat(pod_name=self.NAME, average_concurrent_requests=reported, request_count=count)


# -- running -------------------------------------------------------------------------


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


# -- the summary --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShortFall:
    """A stretch with fewer ready pods than needed."""

    at_s: int
    cause: str
    """``load increase`` or ``pods removed``."""
    ready: int
    """Ready pods when it began."""
    needed: int
    """The most pods needed during it."""
    reached_after_s: int | None
    """Seconds until ready pods were enough again; None if never within the run."""
    caught_up: bool
    """False when it ended only because the load fell back below the ready capacity."""


@dataclass(frozen=True, slots=True)
class ColdStart:
    """Load arriving while no pod was ready."""

    at_s: int
    wait_s: int | None
    """Seconds until the first pod was ready; None if none was within the run."""
    requests: float
    """Requests that arrived meanwhile (they wait in the activator)."""


def summarize(run: Run) -> dict[str, Any]:
    """The run's figures as a JSON-ready mapping (what ``--json`` prints)."""
    tl = run.timeline
    n = len(tl)
    over = [max(0, s.ready - s.needed) for s in tl]
    under = [max(0, s.needed - s.ready) for s in tl]
    panic_starts = sum(
        1 for i, s in enumerate(tl) if s.in_panic and (i == 0 or not tl[i - 1].in_panic)
    )
    ups = sum(1 for _, a, b in run.scale_events if b > a)
    spec, rev, cfg = run.spec, run.revision, run.settings.config
    return {
        "trace": {"source": run.trace.source, "unit": run.trace.unit, "seconds": n},
        "revision": {
            "metric": spec.scaling_metric,
            "target_per_pod": spec.target,
            "total_per_pod": spec.total_value,
            "stable_window_s": rev.stable_window,
            "panic_window_s": rev.panic_window,
            "panic_threshold_pct": rev.panic_threshold_percentage,
            "max_scale_up_rate": spec.max_scale_up_rate,
            "max_scale_down_rate": spec.max_scale_down_rate,
            "min_scale": rev.min_scale,
            "max_scale": rev.max_scale,
            "activation_scale": rev.activation_scale,
            "scale_down_delay_s": rev.scale_down_delay,
            "scale_to_zero_grace_s": cfg.scale_to_zero_grace_period,
            "enable_scale_to_zero": cfg.enable_scale_to_zero,
            "pod_start_delay_s": run.settings.pod_start_delay,
            "initial_pods": run.settings.initial_pods,
            "scrape": run.settings.scrape,
            "request_duration_s": run.settings.request_duration,
        },
        "pods": {
            "peak_needed": max((s.needed for s in tl), default=0),
            "peak_desired": max((s.desired for s in tl), default=0),
            "peak_ready": max((s.ready for s in tl), default=0),
            "pod_seconds": sum(s.ready + s.starting for s in tl),
            "needed_pod_seconds": sum(s.needed for s in tl),
        },
        "over_provisioning": _provisioning(over, n),
        "under_provisioning": _provisioning(under, n),
        "shortfalls": [asdict(f) for f in shortfalls(tl)],
        "scale_events": {
            "total": len(run.scale_events),
            "up": ups,
            "down": len(run.scale_events) - ups,
        },
        "scale_to_zero_events": sum(1 for _, a, b in run.scale_events if b == 0 and a > 0),
        "panic": {"seconds": sum(1 for s in tl if s.in_panic), "episodes": panic_starts},
        "cold_starts": [asdict(c) for c in cold_starts(tl)],
    }


def _provisioning(gaps: list[int], n: int) -> dict[str, float]:
    return {
        "peak_pods": max(gaps, default=0),
        "average_pods": round(sum(gaps) / n, 3) if n else 0.0,
        "time_pct": round(100 * sum(1 for g in gaps if g) / n, 2) if n else 0.0,
    }


def shortfalls(tl: Sequence[Second]) -> list[ShortFall]:
    """Every stretch with fewer ready pods than needed, and how long it took to catch up."""
    out: list[ShortFall] = []
    i = 0
    while i < len(tl):
        s = tl[i]
        if s.ready >= s.needed:
            i += 1
            continue
        grew = i == 0 or s.needed > tl[i - 1].needed
        start, peak = i, s.needed
        while i < len(tl) and tl[i].ready < tl[i].needed:
            peak = max(peak, tl[i].needed)
            i += 1
        ended = i < len(tl)
        out.append(
            ShortFall(
                s.t,
                "load increase" if grew else "pods removed",
                s.ready,
                peak,
                i - start if ended else None,
                ended and tl[i].ready >= peak,
            )
        )
    return out


def cold_starts(tl: Sequence[Second]) -> list[ColdStart]:
    """Every stretch of load with no ready pod, and how long the first pod took."""
    out: list[ColdStart] = []
    i = 0
    while i < len(tl):
        if not (tl[i].load > 0 and tl[i].ready == 0):
            i += 1
            continue
        start, requests = i, 0.0
        # Until a pod is ready, whether or not the load stays (waiting requests do).
        while i < len(tl) and tl[i].ready == 0:
            requests += tl[i].rps
            i += 1
        out.append(ColdStart(tl[start].t, i - start if i < len(tl) else None, round(requests, 3)))
    return out


def format_table(summary: dict[str, Any], *, limit: int = 10) -> str:
    """The summary as aligned text for a terminal."""
    tr, rv, pods = summary["trace"], summary["revision"], summary["pods"]
    over, under = summary["over_provisioning"], summary["under_provisioning"]
    unit = "rps" if rv["metric"] == RPS else "concurrent"
    rows = [
        ("trace", f"{tr['source']} ({tr['unit']}, {tr['seconds']} s)"),
        (
            "per-pod target",
            f"{rv['target_per_pod']:g} {unit} "
            f"(total {rv['total_per_pod']:g}, metric {rv['metric']})",
        ),
        (
            "windows",
            f"stable {rv['stable_window_s']:g} s, panic {rv['panic_window_s']:g} s "
            f"at {rv['panic_threshold_pct']:g} %",
        ),
        ("pods start in", f"{rv['pod_start_delay_s']:g} s (initial pods {rv['initial_pods']})"),
        ("", ""),
        (
            "peak pods",
            f"needed {pods['peak_needed']}, desired {pods['peak_desired']}, "
            f"ready {pods['peak_ready']}",
        ),
        (
            "pod-seconds (cost)",
            f"{pods['pod_seconds']} (needed {pods['needed_pod_seconds']}"
            + _ratio(pods["pod_seconds"], pods["needed_pod_seconds"])
            + ")",
        ),
        (
            "over-provisioned",
            f"peak {over['peak_pods']} pods, average {over['average_pods']:g}, "
            f"{over['time_pct']:g} % of the time",
        ),
        (
            "under-provisioned",
            f"peak {under['peak_pods']} pods, average {under['average_pods']:g}, "
            f"{under['time_pct']:g} % of the time",
        ),
        (
            "scale events",
            f"{summary['scale_events']['total']} ({summary['scale_events']['up']} up, "
            f"{summary['scale_events']['down']} down), "
            f"{summary['scale_to_zero_events']} to zero",
        ),
        ("panic", f"{summary['panic']['seconds']} s in {summary['panic']['episodes']} episode(s)"),
        ("cold starts", str(len(summary["cold_starts"]))),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}".rstrip() for k, v in rows]
    falls = summary["shortfalls"]
    if falls:
        lines += ["", "time to needed pods   at      cause           ready -> needed   after"]
        lines += [
            f"{'':20}  {f['at_s']:>5} s  {f['cause']:<14}  {f['ready']:>5} -> {f['needed']:<6}   "
            + _after(f["reached_after_s"])
            + ("" if f["caught_up"] or f["reached_after_s"] is None else " (the load fell first)")
            for f in falls[:limit]
        ]
        if len(falls) > limit:
            lines.append(f"{'':20}  ... {len(falls) - limit} more (see --json)")
    colds = summary["cold_starts"]
    if colds:
        lines += ["", "cold starts           at      first pod ready   requests waiting"]
        lines += [
            f"{'':20}  {c['at_s']:>5} s  {_after(c['wait_s']):<16}  {c['requests']:g}"
            for c in colds[:limit]
        ]
        if len(colds) > limit:
            lines.append(f"{'':20}  ... {len(colds) - limit} more (see --json)")
    return "\n".join(lines) + "\n"


def _ratio(actual: int, needed: int) -> str:
    return f", +{100 * (actual - needed) / needed:.0f} %" if needed else ""


def _after(seconds: int | None) -> str:
    return "not within the run" if seconds is None else f"after {seconds} s"


# -- files -----------------------------------------------------------------------------

TIMELINE_COLUMNS = (
    "t",
    "concurrency",
    "rps",
    "load",
    "needed",
    "desired",
    "decided",
    "ready",
    "starting",
    "capacity",
    "stable",
    "panic",
    "in_panic",
    "pa",
)


def write_timeline(run: Run, path: str | Path) -> None:
    """One CSV row per simulated second (columns: :data:`TIMELINE_COLUMNS`)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(TIMELINE_COLUMNS)
        for s in run.timeline:
            row = asdict(s)
            row["in_panic"] = int(s.in_panic)
            w.writerow([_cell(row[c]) for c in TIMELINE_COLUMNS])


def _cell(value: object) -> object:
    return f"{value:.6g}" if isinstance(value, float) else value


def require_matplotlib() -> None:
    """Fail early, before a long run, when ``--plot`` cannot work."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SimulationError(f"--plot needs matplotlib: {PLOT_HINT}") from None


def plot(run: Run, path: str | Path) -> None:
    """Draw load and capacity above, pods below, panic shaded, into a PNG."""
    require_matplotlib()
    # The object API with the Agg canvas: no pyplot global state, no display.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    tl = run.timeline
    t = [s.t for s in tl]
    fig = Figure(figsize=(10, 6.5), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(1, 1.3))
    unit = run.spec.scaling_metric if run.spec.scaling_metric == RPS else "concurrency"
    top.fill_between(
        t, [s.load for s in tl], step="post", alpha=0.35, color="tab:gray", label=f"load ({unit})"
    )
    top.step(
        t,
        [s.capacity for s in tl],
        where="post",
        color="tab:blue",
        label=f"capacity (ready x {run.spec.target:g})",
    )
    top.set_ylabel(unit)
    bottom.step(
        t, [s.needed for s in tl], where="post", color="black", linestyle="--", label="needed"
    )
    # Desired drawn wide under ready: it shows as an orange rim where they agree
    # and on its own while pods are starting.
    bottom.step(
        t, [s.desired for s in tl], where="post", color="tab:orange", linewidth=3, label="desired"
    )
    bottom.step(
        t, [s.ready for s in tl], where="post", color="tab:blue", linewidth=1.5, label="ready"
    )
    bottom.set_ylabel("pods")
    bottom.set_xlabel("seconds")
    bottom.yaxis.set_major_locator(MaxNLocator(integer=True))
    for k, (start, end) in enumerate(_stretches([s.in_panic for s in tl])):
        for ax in (top, bottom):
            ax.axvspan(
                t[start],
                t[end - 1] + 1,
                color="tab:red",
                alpha=0.12,
                linewidth=0,
                label="panic" if k == 0 else None,
            )
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize="small")
        ax.set_xlim(0, len(tl))
        ax.set_ylim(bottom=0)
    rv = run.revision
    fig.suptitle(
        f"{run.trace.source}: target {run.spec.target:g}/pod, stable window "
        f"{rv.stable_window:g} s, panic window {rv.panic_window:g} s, "
        f"pod start {run.settings.pod_start_delay:g} s",
        fontsize="medium",
    )
    fig.savefig(path, format="png")


def _stretches(flags: Sequence[bool]) -> list[tuple[int, int]]:
    """``[start, end)`` index ranges where ``flags`` is true."""
    out: list[tuple[int, int]] = []
    start: int | None = None
    for i, flag in enumerate((*flags, False)):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            out.append((start, i))
            start = None
    return out


# -- the command line ------------------------------------------------------------------


def _seconds(text: str) -> float:
    """A duration as a plain number of seconds (``90``) or Go syntax (``1m30s``)."""
    try:
        value = float(text) if text.replace(".", "", 1).isdigit() else parse_duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected seconds (90) or a duration (1m30s), got {text!r}"
        ) from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = parse_int32(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def _pair(text: str) -> tuple[str, str]:
    key, eq, value = text.partition("=")
    if not eq or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


_DESCRIPTION = """\
Replay a load trace through the real KPA autoscaler (multiscaler, windows,
decider, scale step) on a simulated clock, and report what it would do:
time to the needed pods after each load increase, over- and
under-provisioning, pod-seconds, scale events, panic, scale to zero and cold
starts. Needed pods = ceil(load / the decider's per-pod target); a 1-hour
trace runs in about a second."""

_EPILOG = """\
trace files: CSV with the header 'time_s,concurrency' or 'time_s,rps'; each
row's load holds until the next row (0 before the first row); lines starting
with '#' are comments.
"""

_EXAMPLES = """
examples:
  python -m autoscaler.simulate examples/traces/step.csv
  python -m autoscaler.simulate examples/traces/spike.csv --container-concurrency 10 \\
      --plot spike.png --timeline-csv spike-timeline.csv
  python -m autoscaler.simulate --generate diurnal:max=300,noise=0.2 -a target=20 --json
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m autoscaler.simulate",
        description=_DESCRIPTION,
        epilog=_EPILOG + "\n" + GENERATOR_HELP + _EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_argument_group("load")
    src.add_argument("trace", nargs="?", metavar="TRACE", help="CSV trace file")
    src.add_argument(
        "--generate", metavar="SPEC", help="a built-in trace instead of a file (see below)"
    )
    src.add_argument(
        "--duration",
        type=_seconds,
        metavar="SECONDS",
        help="seconds to simulate (90 or 1m30s); default: a generated day's length, else "
        "the last row plus stable window + grace period + scale-down delay + 60 s",
    )
    src.add_argument(
        "--request-duration",
        type=_seconds,
        default=0.1,
        metavar="SECONDS",
        help="seconds per request, to turn rps into concurrency and back (default 0.1)",
    )
    rev = p.add_argument_group("revision")
    rev.add_argument(
        "--annotation",
        "-a",
        type=_pair,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"revision annotation, repeatable; a KEY without '/' gets the {ANNOTATION_PREFIX} "
        "prefix (e.g. target=10, window=30s, metric=rps, min-scale=1)",
    )
    rev.add_argument(
        "--container-concurrency",
        type=_count,
        default=0,
        metavar="N",
        help="containerConcurrency (default 0: unlimited)",
    )
    rev.add_argument(
        "--config",
        "-c",
        type=_pair,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config-autoscaler key, repeatable; overrides --config-file "
        "(e.g. stable-window=30s, scale-to-zero-grace-period=10s)",
    )
    rev.add_argument(
        "--config-file",
        metavar="FILE",
        help="config-autoscaler ConfigMap YAML (its data), or a plain key: value mapping",
    )
    world = p.add_argument_group("pods")
    world.add_argument(
        "--pod-start-delay",
        type=_seconds,
        default=2.0,
        metavar="SECONDS",
        help="from a new replica count to the pod being ready (default 2)",
    )
    world.add_argument(
        "--initial-pods",
        type=_count,
        default=0,
        metavar="N",
        help="ready pods at second 0 (default 0: scaled to zero)",
    )
    world.add_argument(
        "--no-scrape",
        action="store_true",
        help="do not scrape queue-proxies: only the activator's stats reach the "
        "windows (upstream's mode with target-burst-capacity -1)",
    )
    out = p.add_argument_group("output")
    out.add_argument(
        "--json", action="store_true", help="print the summary as JSON instead of a table"
    )
    out.add_argument(
        "--timeline-csv", metavar="FILE", help="write one CSV row per simulated second"
    )
    out.add_argument("--plot", metavar="FILE", help=f"draw a PNG (needs matplotlib: {PLOT_HINT})")
    return p


def load_configmap(path: str) -> dict[str, str]:
    """The data of a config-autoscaler ConfigMap file, values as strings."""
    try:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
    except (OSError, yaml.YAMLError) as e:
        raise SimulationError(f"{path}: cannot read the ConfigMap: {e}") from None
    # Knative ships several ConfigMaps per file; pick config-autoscaler's.
    maps = [d for d in docs if isinstance(d, dict) and d.get("kind") == "ConfigMap"]
    if maps:
        named = [d for d in maps if (d.get("metadata") or {}).get("name") == "config-autoscaler"]
        doc = (named or maps)[0]
        data = doc.get("data") or {}
    elif len(docs) == 1:
        data = docs[0]
    else:
        raise SimulationError(f"{path}: expected a ConfigMap or one key: value mapping")
    if not isinstance(data, dict):
        raise SimulationError(f"{path}: the ConfigMap data must be a mapping")
    # ConfigMap values are strings; YAML reads 1000 or true unquoted as others.
    return {str(k): (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in data.items()}


def _settings(args: argparse.Namespace) -> Settings:
    data = load_configmap(args.config_file) if args.config_file else {}
    data.update(dict(args.config))
    unknown = AutoscalerConfig.unknown_keys(data)
    if unknown:
        print(
            f"warning: ignoring unknown config-autoscaler keys: {', '.join(unknown)}",
            file=sys.stderr,
        )
    annotations = {(k if "/" in k else ANNOTATION_PREFIX + k): v for k, v in args.annotation}
    if args.request_duration <= 0:
        raise SimulationError("--request-duration must be > 0")
    duration = None if args.duration is None else math.ceil(args.duration)
    if duration == 0:
        raise SimulationError("--duration must be at least 1 s")
    return Settings(
        annotations=annotations,
        container_concurrency=args.container_concurrency,
        config=AutoscalerConfig.from_mapping(data),
        pod_start_delay=args.pod_start_delay,
        initial_pods=args.initial_pods,
        request_duration=args.request_duration,
        duration=duration,
        scrape=not args.no_scrape,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if (args.trace is None) == (args.generate is None):
        parser.error("give either a TRACE file or --generate SPEC")
    try:
        if args.plot:
            require_matplotlib()
        trace = generate(args.generate) if args.generate else read_csv(args.trace)
        run = simulate(trace, _settings(args))
    except (TraceError, SimulationError, ConfigError) as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    summary = summarize(run)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        sys.stdout.write(format_table(summary))
    if args.timeline_csv:
        write_timeline(run, args.timeline_csv)
    if args.plot:
        plot(run, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
