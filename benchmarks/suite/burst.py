"""Part 3, a burst from zero: ``hey -c 200 -n 20000`` on a cold revision with containerConcurrency 10.

The Service runs the sample app with containerConcurrency 10 and no other
setting (the KPA's defaults: target 100 capped by CC -> 7 per replica at 70 %
utilisation, no max-scale). Before each repetition it is at zero. While hey
runs, a sampler polls ``GET /v1/pods`` and every replica's queue-proxy
Prometheus endpoint every 0.2 s, keeping each replica's last
``zeroserve_queue_requests_total`` and ``zeroserve_queue_app_in_flight_max``:
a replica taken away during the burst drains for at least the runtime's quiet
period (0.5 s) before its listeners close, so its final count is read. Reported:
non-2xx (goal 0), the requests the app saw (the counters summed, goal exactly
``-n``: each request once), the most requests at one replica's app at once
(goal <= 10), the time to drain the burst, and the replicas over time.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any

from benchmarks import metrics
from benchmarks.loadgen import LoadResult, hey_seconds, run_load
from benchmarks.markdown import fmt, fmt_spread, md_table
from benchmarks.stats import Spread

from .context import Context, Goal
from .local import LocalSystem, Sampler, service_manifest

NAME = "burst"
SAMPLE_EVERY = 0.2


def manifest(cc: int) -> str:
    return service_manifest(NAME, env={"TARGET": NAME}, container_concurrency=cc)


@dataclass
class PodCounts:
    requests: float = 0.0
    in_flight_max: float = 0.0


class Counts:
    """The revision's replicas and their queue-proxies' counters, sampled."""

    def __init__(self, system: LocalSystem, revision: str) -> None:
        self.system, self.revision = system, revision
        self.pods: dict[str, PodCounts] = {}
        self.timeline: list[tuple[float, int, int, float]] = []
        """(unix time, replicas, ready replicas, requests counted so far)."""

    def sample(self) -> None:
        now, pods = time.time(), self.system.pods(self.revision)
        for p in pods:
            counts = self.pods.setdefault(p["name"], PodCounts())
            port = self.system.queue_proxy_port(p)
            if port is not None and (text := metrics.scrape(port, timeout=1.0)) is not None:
                n = metrics.total(text, "zeroserve_queue_requests_total") or 0.0
                m = metrics.total(text, "zeroserve_queue_app_in_flight_max") or 0.0
                counts.requests = max(counts.requests, n)
                counts.in_flight_max = max(counts.in_flight_max, m)
        ready = sum(1 for p in pods if p.get("ready"))
        self.timeline.append((now, len(pods), ready, self.counted))

    @property
    def counted(self) -> float:
        return sum(p.requests for p in self.pods.values())


@dataclass
class Burst:
    rep: int
    requests: int
    concurrency: int
    result: LoadResult | None
    error: str | None
    total_s: float | None
    slowest_s: float | None
    counted: float
    in_flight_max: float
    replicas: int
    start: float
    timeline: list[tuple[float, int, int, float]] = field(default_factory=list)
    activator_requests: float | None = None
    waited_for_zero_s: float = 0.0

    @property
    def replicas_peak(self) -> int:
        return max((n for _, n, _, _ in self.timeline), default=0)

    @property
    def first_at_app_s(self) -> float | None:
        """Seconds from the start until the first request reached an app (the cold start
        under the burst: every replica starts on the same CPU)."""
        return next((t - self.start for t, _, _, n in self.timeline if n > 0), None)

    @property
    def non2xx(self) -> int | None:
        return None if self.result is None else self.result.non2xx

    @property
    def errors(self) -> int | None:
        return None if self.result is None else self.result.errors

    @property
    def exactly_once(self) -> bool:
        r = self.result
        return (
            r is not None
            and r.non2xx == r.errors == 0
            and r.requests == self.counted == self.requests
        )


@dataclass
class BurstResult:
    bursts: list[Burst]
    cc: int
    argv: list[str]

    def headline(self) -> list[str]:
        if not self.bursts:
            return []
        drain = Spread.of(b.total_s for b in self.bursts)
        non2xx = sum(b.non2xx or 0 for b in self.bursts)
        errors = sum(b.errors or 0 for b in self.bursts)
        once = sum(b.exactly_once for b in self.bursts)
        flight = max(b.in_flight_max for b in self.bursts)
        n = self.bursts[0].requests
        return [
            f"{len(self.bursts)} x {n:,} requests (hey -c {self.bursts[0].concurrency}) on a "
            f"cold revision with containerConcurrency {self.cc}: **{non2xx} non-2xx, "
            f"{errors} errors**; the app saw each request exactly once in {once} of "
            f"{len(self.bursts)}; at most **{flight:.0f}** at one replica's app at once "
            f"(limit {self.cc}); first request at an app after "
            f"{fmt_spread(Spread.of(b.first_at_app_s for b in self.bursts), 1)} s, all "
            f"drained in {fmt_spread(drain, 2)} s; peak "
            f"{max(b.replicas_peak for b in self.bursts)} replicas"
        ]

    def section(self, plot: list[str]) -> list[str]:
        return [
            f"`{' '.join(self.argv[:-1])} <ingress>/` against the `burst` Service (the sample "
            f"app, containerConcurrency {self.cc}, KPA defaults: 7 in flight per replica at 70 % "
            'utilisation, no max-scale) at zero replicas before each repetition. "app saw" sums '
            "every replica's `zeroserve_queue_requests_total` (read every 0.2 s and once more "
            "after hey is done); it equals the requests sent when each reached the app exactly "
            'once. "max at one app" is the highest `zeroserve_queue_app_in_flight_max` of any '
            "replica. Every replica (two Python processes) starts on the one server CPU, which "
            'the running replicas, the activator and `zeroserve up` share: "first at an app" '
            "is the cold start under that load.",
            "",
            *plot,
            table(self),
            "",
        ]

    def notes(self) -> list[str]:
        return []

    def goals(self) -> list[Goal]:
        return []

    def to_json(self) -> dict[str, Any]:
        return {
            "bursts": len(self.bursts),
            "requests": [b.requests for b in self.bursts],
            "responses": [b.result.requests if b.result else None for b in self.bursts],
            "non2xx": [b.non2xx for b in self.bursts],
            "errors": [b.errors for b in self.bursts],
            "app_saw": [b.counted for b in self.bursts],
            "in_flight_max": [b.in_flight_max for b in self.bursts],
            "exactly_once": [b.exactly_once for b in self.bursts],
        }


def one(ctx: Context, system: LocalSystem, argv: list[str], revision: str, rep: int) -> Burst:
    cfg = ctx.cfg
    waited = system.wait(f"{revision} at zero", functools.partial(system.at_zero, revision), 120)
    act_before = system.activator_metrics()
    counts = Counts(system, revision)
    sampler = Sampler("burst-sampler", counts.sample, SAMPLE_EVERY)
    start = time.time()
    try:
        load = run_load(argv, ctx.pinning.prefix(cfg.load_cpu), 120 + cfg.burst_requests / 50)
    finally:
        # one more round once every response is in: the final counts
        time.sleep(SAMPLE_EVERY)
        sampler.stop()
    counts.sample()
    labels = {"revision_name": revision}
    act = metrics.delta(
        act_before, system.activator_metrics(), "zeroserve_activator_requests_total", labels
    )
    burst = Burst(
        rep,
        cfg.burst_requests,
        cfg.burst_concurrency,
        load.result,
        load.error,
        hey_seconds("Total", load.output),
        hey_seconds("Slowest", load.output),
        counts.counted,
        max((p.in_flight_max for p in counts.pods.values()), default=0.0),
        len(counts.pods),
        start,
        counts.timeline,
        act,
        waited,
    )
    for problem in sampler.errors[:3]:
        ctx.log(f"burst sampler: {problem}")
    ctx.log(
        f"burst {rep}/{cfg.burst_reps}: {load.result.codes if load.result else load.error}, app "
        f"saw {burst.counted:,.0f} of {burst.requests:,}, max {burst.in_flight_max:.0f} at one "
        f"app, drained in {fmt(burst.total_s, 2)} s, {burst.replicas} replicas"
    )
    return burst


def run(ctx: Context, applied: bool) -> BurstResult:
    """``applied``: the Service was applied earlier (with the cold-start ones)."""
    cfg, system = ctx.cfg, ctx.system()
    if not applied:
        system.apply(manifest(cfg.burst_cc), f"{NAME}.yaml")
    host, revision = system.service_url(NAME)
    argv = ["hey", "-n", str(cfg.burst_requests), "-c", str(cfg.burst_concurrency), "-t", "120"]
    argv += ["-host", host, f"{system.ingress}/"]
    ctx.command(argv)
    bursts = [one(ctx, system, argv, revision, rep) for rep in range(1, cfg.burst_reps + 1)]
    system.remove(manifest(cfg.burst_cc), f"{NAME}.yaml")
    return BurstResult(bursts, cfg.burst_cc, argv)


def table(res: BurstResult) -> str:
    def row(b: Burst) -> list[str]:
        r = b.result
        codes = ", ".join(f"{k}: {v:,}" for k, v in sorted(r.codes.items())) if r else "-"
        return [
            str(b.rep),
            codes or "-",
            fmt(b.non2xx, 0),
            fmt(b.errors, 0),
            f"{b.counted:,.0f}",
            "yes" if b.exactly_once else "**no**",
            f"{b.in_flight_max:.0f}",
            fmt(b.first_at_app_s, 1),
            fmt(b.total_s, 2),
            fmt(b.slowest_s, 2),
            fmt(r.p50_ms if r else None, 1),
            fmt(r.p99_ms if r else None, 1),
            str(b.replicas_peak),
            str(b.replicas),
            fmt(b.activator_requests, 0, thousands=True),
        ]

    header = (
        "rep|status codes (hey)|non-2xx|errors|app saw (queue-proxy counters)|each once|"
        f"max at one app (CC {res.cc})|first at an app s|drain s|slowest s|p50 ms|p99 ms|"
        "peak replicas|replicas used|activator counted"
    )
    return md_table(header, [row(b) for b in res.bursts])
