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
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from benchmarks import _common as c

from .context import Context
from .local import LocalSystem, scrape, service_manifest

NAME = "burst"
APP = ["python", "examples/helloworld/app.py"]
SAMPLE_EVERY = 0.2


def manifest(cc: int) -> str:
    return service_manifest(NAME, APP, env={"TARGET": NAME}, container_concurrency=cc)


@dataclass
class PodCounts:
    requests: float = 0.0
    in_flight_max: float = 0.0
    scrapes: int = 0
    first_seen: float = 0.0
    ready_at: float | None = None


class Sampler:
    """Polls the revision's replicas and their queue-proxies in a thread until stopped."""

    def __init__(self, system: LocalSystem, revision: str) -> None:
        self.system = system
        self.revision = revision
        self.pods: dict[str, PodCounts] = {}
        self.timeline: list[tuple[float, int, int, float]] = []
        """(unix time, replicas, ready replicas, requests counted so far)."""
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="burst-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def sample(self) -> None:
        now = time.time()
        try:
            pods = self.system.pods(self.revision)
        except c.BenchError as e:
            self.errors.append(str(e))
            return
        for p in pods:
            counts = self.pods.setdefault(p["name"], PodCounts(first_seen=now))
            if p.get("ready") and counts.ready_at is None:
                counts.ready_at = p["times"].get("ready", now)
            port = self.system.queue_proxy_port(p)
            if port is None:
                continue
            text = scrape(port, timeout=1.0)
            if text is None:
                continue
            n = c.prometheus_sum(text, "zeroserve_queue_requests_total")
            m = c.prometheus_sum(text, "zeroserve_queue_app_in_flight_max")
            counts.requests = max(counts.requests, n or 0.0)
            counts.in_flight_max = max(counts.in_flight_max, m or 0.0)
            counts.scrapes += 1
        ready = sum(1 for p in pods if p.get("ready"))
        self.timeline.append((now, len(pods), ready, self.counted))

    @property
    def counted(self) -> float:
        return sum(p.requests for p in self.pods.values())

    def _loop(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            self.sample()
            self._stop.wait(max(0.0, SAMPLE_EVERY - (time.monotonic() - t0)))


@dataclass
class Burst:
    rep: int
    requests: int
    concurrency: int
    result: c.LoadResult | None
    error: str | None
    total_s: float | None
    slowest_s: float | None
    counted: float
    in_flight_max: float
    replicas_peak: int
    replicas: int
    start: float
    timeline: list[tuple[float, int, int, float]] = field(default_factory=list)
    activator_requests: float | None = None
    waited_for_zero_s: float = 0.0
    status_codes: dict[int, int] = field(default_factory=dict)

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
            and r.non2xx == 0
            and r.errors == 0
            and r.requests == self.requests
            and self.counted == self.requests
        )


@dataclass
class BurstResult:
    bursts: list[Burst]
    cc: int
    argv: list[str]

    def headline(self) -> list[str]:
        if not self.bursts:
            return []
        drain = c.Spread.of(b.total_s for b in self.bursts)
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
            f"{c.fmt_spread(c.Spread.of(b.first_at_app_s for b in self.bursts), 1)} s, all "
            f"drained in {c.fmt_spread(drain, 2)} s; peak "
            f"{max(b.replicas_peak for b in self.bursts)} replicas"
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


def _secs(pattern: str, text: str) -> float | None:
    m = re.search(pattern, text)
    return float(m.group(1)) if m else None


def one(ctx: Context, system: LocalSystem, host: str, revision: str, rep: int) -> Burst:
    cfg = ctx.cfg
    waited = system.wait(f"{revision} at zero", functools.partial(system.at_zero, revision), 120)
    argv = [
        "hey",
        "-n",
        str(cfg.burst_requests),
        "-c",
        str(cfg.burst_concurrency),
        "-t",
        "120",
        "-host",
        host,
        f"{system.ingress}/",
    ]
    ctx.command(argv)
    act_before = system.activator_metrics()
    sampler = Sampler(system, revision)
    sampler.start()
    start = time.time()
    try:
        load = c.run_load(argv, ctx.pinning, 120 + cfg.burst_requests / 50)
    finally:
        # one more round once every response is in: the final counts
        time.sleep(SAMPLE_EVERY)
        sampler.stop()
    sampler.sample()
    act_after = system.activator_metrics()
    result: c.LoadResult | None = None
    error = None
    if load.rc != 0:
        error = f"hey exit status {load.rc}: {load.output.strip()[-300:]}"
    else:
        try:
            result = c.parse_hey(load.output)
        except ValueError as e:
            error = f"{e}: {load.output.strip()[-300:]}"
    codes = {
        int(k): int(v)
        for k, v in re.findall(r"^\s+\[(\d{3})\]\s+(\d+) responses", load.output, re.M)
    }
    labels = {"revision_name": revision}
    act = (c.prometheus_sum(act_after, "zeroserve_activator_requests_total", labels) or 0.0) - (
        c.prometheus_sum(act_before, "zeroserve_activator_requests_total", labels) or 0.0
    )
    peak = max((n for _, n, _, _ in sampler.timeline), default=0)
    burst = Burst(
        rep=rep,
        requests=cfg.burst_requests,
        concurrency=cfg.burst_concurrency,
        result=result,
        error=error,
        total_s=_secs(r"Total:\s+([\d.]+) secs", load.output),
        slowest_s=_secs(r"Slowest:\s+([\d.]+) secs", load.output),
        counted=sampler.counted,
        in_flight_max=max((p.in_flight_max for p in sampler.pods.values()), default=0.0),
        replicas_peak=peak,
        replicas=len(sampler.pods),
        start=start,
        timeline=sampler.timeline,
        activator_requests=act,
        waited_for_zero_s=waited,
        status_codes=codes,
    )
    for problem in sampler.errors[:3]:
        ctx.log(f"burst sampler: {problem}")
    ctx.log(
        f"burst {rep}/{cfg.burst_reps}: {codes or error}, app saw {burst.counted:,.0f} of "
        f"{burst.requests:,}, max {burst.in_flight_max:.0f} at one app, drained in "
        f"{c.fmt(burst.total_s, 2)} s, {burst.replicas} replicas"
    )
    return burst


def run(ctx: Context, applied: bool) -> BurstResult:
    """``applied``: the Service was applied earlier (with the cold-start ones)."""
    system = ctx.system()
    if not applied:
        system.apply(manifest(ctx.cfg.burst_cc), f"{NAME}.yaml")
    host, revision = system.service_url(NAME)
    bursts = [one(ctx, system, host, revision, rep) for rep in range(1, ctx.cfg.burst_reps + 1)]
    system.remove(manifest(ctx.cfg.burst_cc), f"{NAME}.yaml")
    argv = [
        "hey",
        "-n",
        str(ctx.cfg.burst_requests),
        "-c",
        str(ctx.cfg.burst_concurrency),
        "-t",
        "120",
        "-host",
        host,
        f"{system.ingress}/",
    ]
    return BurstResult(bursts, ctx.cfg.burst_cc, argv)


def table(res: BurstResult) -> str:
    rows = []
    for b in res.bursts:
        r = b.result
        codes = ", ".join(f"{k}: {v:,}" for k, v in sorted(b.status_codes.items())) or "-"
        rows.append(
            [
                str(b.rep),
                codes,
                str(b.non2xx if b.non2xx is not None else "-"),
                str(b.errors if b.errors is not None else "-"),
                f"{b.counted:,.0f}",
                "yes" if b.exactly_once else "**no**",
                f"{b.in_flight_max:.0f}",
                c.fmt(b.first_at_app_s, 1),
                c.fmt(b.total_s, 2),
                c.fmt(b.slowest_s, 2),
                c.fmt(r.p50_ms, 1) if r else "-",
                c.fmt(r.p99_ms, 1) if r else "-",
                str(b.replicas_peak),
                str(b.replicas),
                c.fmt(b.activator_requests, 0, thousands=True),
            ]
        )
    header = [
        "rep",
        "status codes (hey)",
        "non-2xx",
        "errors",
        "app saw (queue-proxy counters)",
        "each once",
        f"max at one app (CC {res.cc})",
        "first at an app s",
        "drain s",
        "slowest s",
        "p50 ms",
        "p99 ms",
        "peak replicas",
        "replicas used",
        "activator counted",
    ]
    return c.md_table(header, rows)
