"""Part 4, a burst from zero: ``hey -c 200 -n 20000`` on a cold revision with containerConcurrency 10.

The sampler keeps each replica's last counters: a replica taken away during the burst
drains for at least the runtime's quiet period (0.5 s) before its listeners close, so its
final count is read.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks import metrics
from benchmarks.figures import Spread, columns, fmt, fmt_spread
from benchmarks.loadgen import LoadResult, LoadRun, hey_seconds, run_load

from .context import Context, PartResult
from .local import LocalSystem, Sampler, service_manifest

NAME = "burst"
SAMPLE_EVERY = 0.2


def manifest(cc: int, annotations: dict[str, str] | None = None) -> str:
    return service_manifest(
        NAME, env={"TARGET": NAME}, container_concurrency=cc, annotations=annotations
    )


@dataclass
class PodCounts:
    requests: float = 0.0
    in_flight_max: float = 0.0


@dataclass
class Burst:
    """One burst: hey's run, and the revision's replicas and their counters, sampled."""

    rep: int
    requests: int
    concurrency: int
    waited_for_zero_s: float
    start: float = field(default_factory=time.time)
    load: LoadRun | None = None
    pods: dict[str, PodCounts] = field(default_factory=dict)
    timeline: list[tuple[float, int, int, float]] = field(default_factory=list)
    """(unix time, replicas, ready replicas, requests counted so far)."""
    activator_requests: float | None = None

    def sample(self, system: LocalSystem, revision: str) -> None:
        now, pods = time.time(), system.pods(revision)
        for p in pods:
            counts = self.pods.setdefault(p["name"], PodCounts())
            where = system.queue_proxy_metrics(p)
            if where is not None and (text := metrics.scrape(where[1], 1.0, where[0])) is not None:
                n = metrics.total(text, "kn_serving_invocation_duration_seconds_count") or 0.0
                m = metrics.total(text, "zeroserve_queue_app_in_flight_max") or 0.0
                counts.requests = max(counts.requests, n)
                counts.in_flight_max = max(counts.in_flight_max, m)
        ready = sum(1 for p in pods if p.get("ready"))
        self.timeline.append((now, len(pods), ready, self.counted))

    @property
    def counted(self) -> float:
        return sum(p.requests for p in self.pods.values())

    @property
    def in_flight_max(self) -> float:
        return max((p.in_flight_max for p in self.pods.values()), default=0.0)

    @property
    def result(self) -> LoadResult | None:
        return None if self.load is None else self.load.result

    def hey_s(self, label: str) -> float | None:
        """hey's ``Total`` (the time to drain the burst) or ``Slowest``, in seconds."""
        return None if self.load is None else hey_seconds(label, self.load.output)

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
class BurstResult(PartResult):
    bursts: list[Burst]
    cc: int
    argv: list[str]

    def headline(self) -> list[str]:
        if not self.bursts:
            return []
        drain = Spread.of(b.hey_s("Total") for b in self.bursts)
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
            "every replica's `kn_serving_invocation_duration_seconds_count` (read every 0.2 s and "
            "once more after hey is done); it equals the requests sent when each reached the app exactly "
            'once. "max at one app" is the highest `zeroserve_queue_app_in_flight_max` of any '
            "replica. Every replica (two Python processes) starts on the one server CPU, which "
            'the running replicas, the activator and `zeroserve up` share: "first at an app" '
            "is the cold start under that load.",
            "",
            *plot,
            table(self),
            "",
        ]

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
    burst = Burst(rep, cfg.burst_requests, cfg.burst_concurrency, waited)
    sample = functools.partial(burst.sample, system, revision)
    sampler = Sampler("burst-sampler", sample, SAMPLE_EVERY)
    try:
        burst.load = run_load(argv, ctx.pinning.prefix(cfg.load_cpu), 120 + cfg.burst_requests / 50)
    finally:
        # one more round once every response is in: the final counts
        time.sleep(SAMPLE_EVERY)
        sampler.stop()
    sample()
    burst.activator_requests = metrics.delta(
        act_before,
        system.activator_metrics(),
        "http_server_request_duration_seconds_count",
        {"kn_revision_name": revision},
    )
    for problem in sampler.errors[:3]:
        ctx.log(f"burst sampler: {problem}")
    r = burst.result
    ctx.log(
        f"burst {rep}/{cfg.burst_reps}: {r.codes if r else burst.load.error}, app "
        f"saw {burst.counted:,.0f} of {burst.requests:,}, max {burst.in_flight_max:.0f} at one "
        f"app, drained in {fmt(burst.hey_s('Total'), 2)} s, {len(burst.pods)} replicas"
    )
    return burst


def run(ctx: Context, applied: bool) -> BurstResult:
    """``applied``: the Service was applied earlier (with the cold-start ones)."""
    cfg, system = ctx.cfg, ctx.system()
    text = manifest(cfg.burst_cc, ctx.initial_scale)
    if not applied:
        system.apply(text, f"{NAME}.yaml")
    host, revision = system.service_url(NAME)
    argv = ["hey", "-n", str(cfg.burst_requests), "-c", str(cfg.burst_concurrency), "-t", "120"]
    argv += ["-host", host, f"{system.ingress}/"]
    ctx.command(argv)
    bursts = [one(ctx, system, argv, revision, rep) for rep in range(1, cfg.burst_reps + 1)]
    system.remove({f"{NAME}.yaml": text})
    return BurstResult(bursts, cfg.burst_cc, argv)


def table(res: BurstResult) -> str:
    def codes(b: Burst) -> str:
        counts = b.result.codes if b.result else {}
        return ", ".join(f"{k}: {v:,}" for k, v in sorted(counts.items())) or "-"

    def result(get: Callable[[LoadResult], float | None]) -> Callable[[Burst], str]:
        return lambda b: fmt(None if b.result is None else get(b.result), 1)

    return columns(
        res.bursts,
        [
            ("rep", lambda b: str(b.rep)),
            ("status codes (hey)", codes),
            ("non-2xx", lambda b: fmt(b.non2xx, 0)),
            ("errors", lambda b: fmt(b.errors, 0)),
            ("app saw (queue-proxy counters)", lambda b: f"{b.counted:,.0f}"),
            ("each once", lambda b: "yes" if b.exactly_once else "**no**"),
            (f"max at one app (CC {res.cc})", lambda b: f"{b.in_flight_max:.0f}"),
            ("first at an app s", lambda b: fmt(b.first_at_app_s, 1)),
            ("drain s", lambda b: fmt(b.hey_s("Total"), 2)),
            ("slowest s", lambda b: fmt(b.hey_s("Slowest"), 2)),
            ("p50 ms", result(lambda r: r.p50_ms)),
            ("p99 ms", result(lambda r: r.p99_ms)),
            ("peak replicas", lambda b: str(b.replicas_peak)),
            ("replicas used", lambda b: str(len(b.pods))),
            ("activator counted", lambda b: fmt(b.activator_requests, 0, thousands=True)),
        ],
    )
