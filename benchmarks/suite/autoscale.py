"""Part 5, autoscaling under load: a locust shape against the autoscale sample, and the simulator.

The simulator replays the concurrency locust measured with the same annotations and the
replica start time measured in this run, so that both runs are summarised the same way.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from autoscaler.simulate import Second, shortfalls
from benchmarks.figures import details, fmt, md_table
from benchmarks.loadgen import run_load, which
from benchmarks.processes import BenchError
from benchmarks.servers import REPO

from .context import Context, PartResult, Skipped
from .local import LocalSystem, Sampler

MANIFEST = REPO / "examples" / "autoscale.yaml"
LOCUSTFILE = REPO / "benchmarks" / "locustfile.py"
PATH = "/?sleep=100"
LOCUST_HINT = ".venv/bin/pip install locust (or pip install -e '.[bench]')"


class Sample(NamedTuple):
    t: float
    desired: int
    ready: int
    pods: int


class Replicas:
    """Every second: the revision's desired/ready replicas, and every replica's start times."""

    def __init__(self, system: LocalSystem, revision: str) -> None:
        self.system, self.revision = system, revision
        self.samples: list[Sample] = []
        self.pod_times: dict[str, dict[str, float]] = {}

    def sample(self) -> None:
        desired, ready = self.system.replicas(self.revision)
        pods = self.system.pods(self.revision)
        self.samples.append(Sample(time.time(), desired, ready, len(pods)))
        self.pod_times.update((p["name"], dict(p["times"])) for p in pods)


@dataclass
class Series:
    """One row per second of the shape (index = seconds since locust started)."""

    users: list[int] = field(default_factory=list)
    rps: list[float] = field(default_factory=list)
    concurrency: list[float] = field(default_factory=list)
    p50_ms: list[float | None] = field(default_factory=list)
    p95_ms: list[float | None] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)
    desired: list[int] = field(default_factory=list)
    ready: list[int] = field(default_factory=list)
    pods: list[int] = field(default_factory=list)


@dataclass
class AutoscaleResult(PartResult):
    service: str
    revision: str
    annotations: dict[str, str]
    container_concurrency: int
    series: Series
    sim_argv: list[str]
    sim_summary: dict[str, Any] | None
    sim_timeline: list[dict[str, float]]
    measured: dict[str, Any]
    pod_start_s: float
    pod_start_from: str
    total_requests: int
    total_failures: int
    errors: dict[str, int]
    problems: list[str]
    shape: tuple[int, int]
    """The locust shape's seconds and peak users."""

    def headline(self) -> list[str]:
        m, s = self.measured, self.sim_summary
        line = (
            f"locust step/spike/ramp ({len(self.series.users)} s, peak "
            f"{max(self.series.users, default=0)} users): {self.total_requests:,} requests, "
            f"**{self.total_failures} failures**; time to the needed replicas after the "
            f"first load increase {_after(_first_increase(m['shortfalls']))}"
        )
        if s is not None:
            line += f" (simulator: {_after(_first_increase(s['shortfalls']))})"
        line += (
            f"; over-provisioned {m['over']['average_pods']:.2f} replicas on average, "
            f"{m['over']['time_pct']:.0f} % of the time"
        )
        if s is not None:
            over = s["over_provisioning"]
            line += f" (simulator: {over['average_pods']:.2f}, {over['time_pct']:.0f} %)"
        return [line]

    def section(self, plot: list[str]) -> list[str]:
        ann = ", ".join(f"`{k}: {v}`" for k, v in self.annotations.items())
        summary, falls = tables(self)
        out = [
            f"`{MANIFEST.relative_to(REPO)}` ({ann}; containerConcurrency "
            f"{self.container_concurrency}), revision `{self.revision}`, under "
            f"`benchmarks/locustfile.py` ({self.shape[0]} s: a trickle, a step, a spike to "
            f"{self.shape[1]} users, back, a ramp down, idle; each user calls `{PATH}` back to "
            "back). Replicas sampled every second from the control API; concurrency is each "
            "second's mean requests in flight measured by locust. The simulator replayed that "
            "concurrency with the same settings and a replica start time of "
            f"{self.pod_start_s:.2f} s ({self.pod_start_from}):",
            "",
            f"`{sim_command(self.sim_argv)}` (trace.csv: the concurrency column of "
            '"Every second" below)',
            "",
            *plot,
            summary,
            "",
            "Time until enough replicas were ready after each shortfall (needed = "
            "ceil(concurrency / per-replica target)):",
            "",
            falls,
            "",
        ]
        if self.errors:
            out += ["Failures by error: " + "; ".join(f"{k}: {v}" for k, v in self.errors.items())]
        if self.problems:
            out += ["Problems: " + "; ".join(self.problems), ""]
        return out + details("Every second", every_second(self))

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.total_requests,
            "failures": self.total_failures,
            "seconds": len(self.series.users),
            "simulated": self.sim_summary is not None,
            "problems": self.problems,
        }


def _first_increase(falls: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((f for f in falls if f["cause"] == "load increase"), None)


def _after(fall: dict[str, Any] | None) -> str:
    if fall is None:
        return "- (never short of replicas)"
    after = fall["reached_after_s"]
    return f"{after} s" if after is not None else "not within the run"


def _provisioning(gaps: list[int]) -> dict[str, float]:
    """The simulator's definition (``autoscaler.simulate.summary._provisioning``)."""
    n = len(gaps)
    return {
        "peak_pods": max(gaps, default=0),
        "average_pods": round(sum(gaps) / n, 3) if n else 0.0,
        "time_pct": round(100 * sum(1 for g in gaps if g) / n, 2) if n else 0.0,
    }


def summarize(series: Series, target: float) -> dict[str, Any]:
    """The measured run summarised like the simulator summarises its own."""
    tl = []
    for i, (conc, ready) in enumerate(zip(series.concurrency, series.ready, strict=True)):
        needed, starting = math.ceil(round(conc / target, 9)), max(0, series.pods[i] - ready)
        # the simulator's own per-second row: t, concurrency, rps, load, needed, desired,
        # decided, ready, starting, capacity, stable, panic, in_panic, pa
        row = (i, conc, series.rps[i], conc, needed, series.desired[i], -1, ready, starting)
        tl.append(Second(*row, ready * target, 0.0, 0.0, False, ""))
    return {
        "shortfalls": [asdict(f) for f in shortfalls(tl)],
        "over": _provisioning([max(0, s.ready - s.needed) for s in tl]),
        "under": _provisioning([max(0, s.needed - s.ready) for s in tl]),
        "peak_needed": max((s.needed for s in tl), default=0),
        "peak_desired": max((s.desired for s in tl), default=0),
        "peak_ready": max((s.ready for s in tl), default=0),
        "pod_seconds": sum(s.ready + s.starting for s in tl),
        "needed_pod_seconds": sum(s.needed for s in tl),
    }


def _build_series(data: dict[str, Any], samples: list[Sample], seconds: int) -> Series:
    rows = {int(r["t"]): r for r in data["seconds"]}
    users = sorted(data["users"], key=lambda u: u[0])
    out = Series()
    for sec in range(int(data["start"]), int(data["start"]) + seconds):
        row = rows.get(sec, {})
        out.rps.append(float(row.get("requests", 0)))
        out.concurrency.append(float(row.get("concurrency", 0.0)))
        out.p50_ms.append(row.get("p50_ms"))
        out.p95_ms.append(row.get("p95_ms"))
        out.failures.append(int(row.get("failures", 0)))
        before = [u for u in users if u[0] < sec + 1]
        out.users.append(int(before[-1][1]) if before else 0)
        # the replica sample nearest the middle of the second
        near = min(samples, key=lambda s: abs(s.t - (sec + 0.5)), default=Sample(0, 0, 0, 0))
        out.desired.append(near.desired)
        out.ready.append(near.ready)
        out.pods.append(near.pods)
    return out


def sim_command(argv: list[str]) -> str:
    """The simulator's command line as the report shows it: ``trace.csv`` is the
    concurrency column of the report's "every second" table."""
    shown = ["python", *argv[1:3], "trace.csv"]
    for i, arg in enumerate(argv[4:], 4):
        shown.append("timeline.csv" if argv[i - 1] == "--timeline-csv" else arg)
    return shlex.join(shown)


def simulate(
    ctx: Context, series: Series, annotations: dict[str, str], cc: int, pod_start: float
) -> tuple[list[str], dict[str, Any] | None, list[dict[str, float]], str | None]:
    """Replay the measured concurrency through ``python -m autoscaler.simulate``."""
    trace, timeline = ctx.tmp / "autoscale-trace.csv", ctx.tmp / "autoscale-simulated.csv"
    trace.write_text(
        "time_s,concurrency\n" + "".join(f"{i},{v:.3f}\n" for i, v in enumerate(series.concurrency))
    )
    argv = [sys.executable, "-m", "autoscaler.simulate", str(trace)]
    argv += ["--container-concurrency", str(cc)]
    argv += [a for k, v in annotations.items() for a in ("-a", f"{k}={v}")]
    argv += [a for k, v in ctx.autoscaler_config.items() for a in ("-c", f"{k}={v}")]
    argv += ["--pod-start-delay", f"{pod_start:.2f}"]
    argv += ["--initial-pods", str(series.ready[0] if series.ready else 0)]
    argv += ["--duration", str(len(series.concurrency)), "--json", "--timeline-csv", str(timeline)]
    ctx.command(sim_command(argv))
    r = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
    if r.returncode != 0:
        return argv, None, [], f"the simulator failed ({r.returncode}): {r.stderr.strip()[-300:]}"
    with timeline.open() as f:
        rows = [{k: float(v) for k, v in row.items() if k != "pa"} for row in csv.DictReader(f)]
    return argv, json.loads(r.stdout), rows, None


def run(ctx: Context) -> AutoscaleResult:
    cfg = ctx.cfg
    beside = Path(sys.executable).parent / "locust"
    if (locust := str(beside) if beside.exists() else which("locust")) is None:
        raise Skipped(f"locust is not installed: {LOCUST_HINT}")
    system = ctx.system()
    system.wait("no replica left from earlier parts", system.no_replicas, 120)
    text, file = MANIFEST.read_text(), str(MANIFEST.relative_to(REPO))
    doc = yaml.safe_load(text)
    template = doc["spec"]["template"]
    annotations = {
        k: str(v)
        for k, v in (template.get("metadata", {}).get("annotations") or {}).items()
        if k.startswith("autoscaling.knative.dev/")
    }
    cc = int(template["spec"].get("containerConcurrency", 0))
    name = doc["metadata"]["name"]
    system.apply(text, file)
    ctx.command(f"zeroserve apply -f {file}")
    host, revision = system.service_url(name)
    min_scale = int(annotations.get("autoscaling.knative.dev/min-scale", "0") or 0)
    at_min = (min_scale, min_scale)
    system.wait(
        f"{revision} at min-scale {min_scale}", lambda: system.replicas(revision) == at_min, 60
    )
    out = ctx.tmp / "locust.json"
    flags = ["-f", str(LOCUSTFILE.relative_to(REPO)), "--headless"]
    more = ["--only-summary", "--loglevel", "WARNING"]
    bench = {
        "BENCH_HOST_HEADER": host,
        "BENCH_SECONDS": str(cfg.locust_seconds),
        "BENCH_PEAK_USERS": str(cfg.locust_peak_users),
    }
    shown = " ".join(f"{k}={v}" for k, v in bench.items())
    ctx.command(
        f"{shown} BENCH_OUT=... " + " ".join(["locust", *flags, "--host", "<ingress>", *more])
    )
    ctx.log(
        f"autoscaling: locust for {cfg.locust_seconds} s (peak {cfg.locust_peak_users} "
        f"users) against {host} {PATH}"
    )
    replicas = Replicas(system, revision)
    sampler = Sampler("replica-sampler", replicas.sample, 1.0)
    since = time.time()
    env = dict(os.environ, **bench, BENCH_PATH=PATH, BENCH_OUT=str(out))
    try:
        argv = [locust, *flags, "--host", system.ingress, *more]
        load = run_load(argv, ctx.pinning.prefix(cfg.load_cpu), cfg.locust_seconds + 90, env)
    finally:
        sampler.stop()
    problems = [f"sampler: {e}" for e in sampler.errors[:3]]
    if load.rc not in (0, 1) or not out.exists():
        raise BenchError(f"locust failed (exit status {load.rc}): {load.output.strip()[-800:]}")
    data = json.loads(out.read_text())
    if data.get("start") is None:
        raise BenchError("locust wrote no start time (the shape never ticked)")
    series = _build_series(data, replicas.samples, cfg.locust_seconds)
    starts = [
        t["ready"] - t["requested"]
        for t in replicas.pod_times.values()
        if "ready" in t and t.get("requested", 0) >= since
    ]
    pod_start, source = 1.0, "no replica started in this run: 1 s assumed"
    if starts:
        pod_start = statistics.median(starts)
        source = f"median of {len(starts)} replicas started in this run"
    sim_argv, sim_summary, sim_tl, problem = simulate(ctx, series, annotations, cc, pod_start)
    problems += [problem] if problem else []
    target = float(sim_summary["revision"]["target_per_pod"]) if sim_summary else 7.0
    res = AutoscaleResult(
        name,
        revision,
        annotations,
        cc,
        series,
        sim_argv,
        sim_summary,
        sim_tl,
        summarize(series, target),
        pod_start,
        source,
        sum(int(r["requests"]) for r in data["seconds"]),
        sum(int(r["failures"]) for r in data["seconds"]),
        dict(data.get("errors", {})),
        problems,
        (cfg.locust_seconds, cfg.locust_peak_users),
    )
    system.remove({file: text})
    ctx.log(
        f"autoscaling: {res.total_requests:,} requests, {res.total_failures} failures, peak "
        f"{res.measured['peak_ready']} ready replicas (simulator "
        f"{sim_summary['pods']['peak_ready'] if sim_summary else '-'})"
    )
    return res


def tables(res: AutoscaleResult) -> list[str]:
    m, s = res.measured, res.sim_summary or {}
    sp = s.get("pods", {})

    def pct(d: dict[str, Any] | None) -> str:
        if not d:
            return "-"
        return f"peak {d['peak_pods']}, average {d['average_pods']:.2f}, {d['time_pct']:.0f} % of the time"

    def three(d: dict[str, Any], *keys: str) -> str:
        return " / ".join(str(d.get(k, "-")) for k in keys)

    panic = f"{s['panic']['seconds']} s in {s['panic']['episodes']} episode(s)" if s else "-"
    peaks = ("peak_needed", "peak_desired", "peak_ready")
    secs = ("pod_seconds", "needed_pod_seconds")
    over, under = "over-provisioned (ready above needed)", "under-provisioned (ready below needed)"
    summary = md_table(
        "|measured|simulator (same trace)",
        [
            ["requests / failures", f"{res.total_requests:,} / {res.total_failures}", "-"],
            ["peak replicas: needed / desired / ready", three(m, *peaks), three(sp, *peaks)],
            ["replica-seconds / needed", three(m, *secs), three(sp, *secs)],
            [over, pct(m["over"]), pct(s.get("over_provisioning"))],
            [under, pct(m["under"]), pct(s.get("under_provisioning"))],
            ["panic", "-", panic],
        ],
    )
    sim_falls = list(s.get("shortfalls", []))

    def near(f: dict[str, Any], falls: list[dict[str, Any]]) -> dict[str, Any] | None:
        return next((g for g in falls if abs(g["at_s"] - f["at_s"]) <= 3), None)

    def row(f: dict[str, Any], ready: str, measured: str, sim: str) -> list[str]:
        return [f"{f['at_s']} s", f["cause"], ready.format(**f), measured, sim]

    rows = [
        row(
            f,
            "{ready} -> {needed}",
            _after(f),
            _after(g) if (g := near(f, sim_falls)) else "- (not short)",
        )
        for f in m["shortfalls"]
    ]
    rows += [
        row(g, "(simulated {ready} -> {needed})", "- (not short)", _after(g))
        for g in sim_falls
        if near(g, m["shortfalls"]) is None
    ]
    header = "at|cause|ready -> needed|measured: enough ready after|simulator"
    falls = (
        md_table(header, rows, left=3)
        if rows
        else "No second with fewer ready replicas than needed."
    )
    return [summary, falls]


def every_second(res: AutoscaleResult) -> str:
    s = res.series
    sim = {int(r["t"]): r for r in res.sim_timeline}
    rows = [
        [
            str(i),
            str(s.users[i]),
            f"{s.rps[i]:.0f}",
            f"{s.concurrency[i]:.1f}",
            fmt(s.p50_ms[i], 0),
            fmt(s.p95_ms[i], 0),
            str(s.failures[i]),
            str(s.desired[i]),
            str(s.ready[i]),
            *(str(int(sim[i][k])) if i in sim else "-" for k in ("desired", "ready")),
        ]
        for i in range(len(s.users))
    ]
    header = "s|users|req/s|concurrency|p50 ms|p95 ms|failures|desired|ready|sim desired|sim ready"
    return md_table(header, rows)
