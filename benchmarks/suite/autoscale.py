"""Part 4, autoscaling under load: a locust shape against the autoscale sample, and the simulator.

``examples/autoscale.yaml`` (target 10, min-scale 2, max-scale 10) is applied
as it is; once its two replicas are ready, ``benchmarks/locustfile.py`` runs
headless (a step, a spike, a ramp down to idle), each user calling
``/?sleep=100`` back to back. Every second a sampler reads the revision's
desired and ready replicas (``GET /v1/objects/revisions``, what ``zeroserve
get revisions -o json`` prints) and its replicas with their start times
(``GET /v1/pods``); locust writes requests, failures, latency and the mean
concurrency of every second.

The concurrency measured each second is then replayed through the
autoscaler simulator (``python -m autoscaler.simulate``) with the same
annotations, containerConcurrency and config-autoscaler, the replicas
ready at the start, and the replica start time measured in this run (median
``requested -> ready``). Both runs are summarised the same way (the
simulator's ``shortfalls``: how long until ready replicas covered the
needed ones after each load increase; over- and under-provisioning) and drawn
on one plot.
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
from typing import Any

import yaml

from autoscaler.simulate import Second, shortfalls
from benchmarks.loadgen import run_load, which
from benchmarks.markdown import fmt, md_table
from benchmarks.processes import BenchError
from benchmarks.servers import REPO

from .context import Context, Goal
from .local import LocalSystem, Sampler

MANIFEST = REPO / "examples" / "autoscale.yaml"
LOCUSTFILE = REPO / "benchmarks" / "locustfile.py"
PATH = "/?sleep=100"
LOCUST_HINT = ".venv/bin/pip install locust (or pip install -e '.[bench]')"


class Skipped(Exception):
    """The part cannot run here; the message says why and what to install."""


def locust_binary() -> str | None:
    beside = Path(sys.executable).parent / "locust"
    if beside.exists():
        return str(beside)
    return which("locust")


@dataclass
class Sample:
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
        for p in pods:
            self.pod_times[p["name"]] = dict(p["times"])


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
class AutoscaleResult:
    service: str
    revision: str
    annotations: dict[str, str]
    container_concurrency: int
    series: Series
    locust_argv: list[str]
    sim_argv: list[str]
    sim_summary: dict[str, Any] | None
    sim_timeline: list[dict[str, float]]
    measured: dict[str, Any]
    pod_start_s: float = 1.0
    pod_start_from: str = ""
    total_requests: int = 0
    total_failures: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    shape: tuple[int, int] = (0, 0)
    """The locust shape's seconds and peak users."""

    def headline(self) -> list[str]:
        m, s = self.measured, self.sim_summary
        first = _first_increase(m["shortfalls"])
        line = (
            f"locust step/spike/ramp ({len(self.series.users)} s, peak "
            f"{max(self.series.users, default=0)} users): {self.total_requests:,} requests, "
            f"**{self.total_failures} failures**; time to the needed replicas after the "
            f"first load increase {_after(first)}"
        )
        if s is not None:
            line += f" (simulator: {_after(_first_increase(s['shortfalls']))})"
        line += (
            f"; over-provisioned {m['over']['average_pods']:.2f} replicas on average, "
            f"{m['over']['time_pct']:.0f} % of the time"
        )
        if s is not None:
            line += (
                f" (simulator: {s['over_provisioning']['average_pods']:.2f}, "
                f"{s['over_provisioning']['time_pct']:.0f} %)"
            )
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
        details = ["<details><summary>Every second</summary>", "", every_second(self)]
        return out + details + ["", "</details>", ""]

    def notes(self) -> list[str]:
        return []

    def goals(self) -> list[Goal]:
        return []

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
    start = int(data["start"])
    rows = {int(r["t"]): r for r in data["seconds"]}
    users = sorted(data["users"], key=lambda u: u[0])
    out = Series()
    for i in range(seconds):
        sec = start + i
        row = rows.get(sec, {})
        out.rps.append(float(row.get("requests", 0)))
        out.concurrency.append(float(row.get("concurrency", 0.0)))
        out.p50_ms.append(row.get("p50_ms"))
        out.p95_ms.append(row.get("p95_ms"))
        out.failures.append(int(row.get("failures", 0)))
        before = [u for u in users if u[0] < sec + 1]
        out.users.append(int(before[-1][1]) if before else 0)
        # the replica sample nearest the middle of the second
        near = min(samples, key=lambda s: abs(s.t - (sec + 0.5)), default=None)
        out.desired.append(near.desired if near else 0)
        out.ready.append(near.ready if near else 0)
        out.pods.append(near.pods if near else 0)
    return out


def _pod_start(sampler: Replicas, since: float) -> list[float]:
    return [
        t["ready"] - t["requested"]
        for t in sampler.pod_times.values()
        if "ready" in t and t.get("requested", 0) >= since
    ]


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
    trace = ctx.tmp / "autoscale-trace.csv"
    with trace.open("w") as f:
        f.write("time_s,concurrency\n")
        f.writelines(f"{i},{v:.3f}\n" for i, v in enumerate(series.concurrency))
    timeline = ctx.tmp / "autoscale-simulated.csv"
    argv = [
        sys.executable,
        "-m",
        "autoscaler.simulate",
        str(trace),
        "--container-concurrency",
        str(cc),
    ]
    for k, v in annotations.items():
        argv += ["-a", f"{k}={v}"]
    for k, v in ctx.autoscaler_config.items():
        argv += ["-c", f"{k}={v}"]
    argv += [
        "--pod-start-delay",
        f"{pod_start:.2f}",
        "--initial-pods",
        str(series.ready[0] if series.ready else 0),
        "--duration",
        str(len(series.concurrency)),
        "--json",
        "--timeline-csv",
        str(timeline),
    ]
    ctx.command(sim_command(argv))
    r = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
    if r.returncode != 0:
        return argv, None, [], f"the simulator failed ({r.returncode}): {r.stderr.strip()[-300:]}"
    rows = []
    with timeline.open() as f:
        for row in csv.DictReader(f):
            rows.append({k: float(v) for k, v in row.items() if k != "pa"})
    return argv, json.loads(r.stdout), rows, None


def run(ctx: Context) -> AutoscaleResult:
    cfg = ctx.cfg
    locust = locust_binary()
    if locust is None:
        raise Skipped(f"locust is not installed: {LOCUST_HINT}")
    system = ctx.system()
    system.wait("no replica left from earlier parts", system.no_replicas, 120)
    text = MANIFEST.read_text()
    doc = yaml.safe_load(text)
    template = doc["spec"]["template"]
    annotations = {
        k: str(v)
        for k, v in (template.get("metadata", {}).get("annotations") or {}).items()
        if k.startswith("autoscaling.knative.dev/")
    }
    cc = int(template["spec"].get("containerConcurrency", 0))
    name = doc["metadata"]["name"]
    system.apply(text, str(MANIFEST.relative_to(REPO)))
    ctx.command(f"zeroserve apply -f {MANIFEST.relative_to(REPO)}")
    host, revision = system.service_url(name)
    min_scale = int(annotations.get("autoscaling.knative.dev/min-scale", "0") or 0)
    system.wait(
        f"{revision} at min-scale {min_scale}",
        lambda: system.replicas(revision) == (min_scale, min_scale),
        60,
    )
    out = ctx.tmp / "locust.json"
    argv = [
        locust,
        "-f",
        str(LOCUSTFILE.relative_to(REPO)),
        "--headless",
        "--host",
        system.ingress,
        "--only-summary",
        "--loglevel",
        "WARNING",
    ]
    env = dict(
        os.environ,
        BENCH_HOST_HEADER=host,
        BENCH_PATH=PATH,
        BENCH_SECONDS=str(cfg.locust_seconds),
        BENCH_PEAK_USERS=str(cfg.locust_peak_users),
        BENCH_OUT=str(out),
    )
    ctx.command(
        f"BENCH_HOST_HEADER={host} BENCH_SECONDS={cfg.locust_seconds} "
        f"BENCH_PEAK_USERS={cfg.locust_peak_users} BENCH_OUT=... "
        + " ".join(["locust", *argv[1:4], "--host", "<ingress>", *argv[6:]])
    )
    ctx.log(
        f"autoscaling: locust for {cfg.locust_seconds} s (peak {cfg.locust_peak_users} "
        f"users) against {host} {PATH}"
    )
    replicas = Replicas(system, revision)
    sampler = Sampler("replica-sampler", replicas.sample, 1.0)
    since = time.time()
    try:
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
    starts = _pod_start(replicas, since)
    pod_start, source = 1.0, "no replica started in this run: 1 s assumed"
    if starts:
        pod_start = statistics.median(starts)
        source = f"median of {len(starts)} replicas started in this run"
    sim_argv, sim_summary, sim_tl, problem = simulate(ctx, series, annotations, cc, pod_start)
    if problem:
        problems.append(problem)
    target = float(sim_summary["revision"]["target_per_pod"]) if sim_summary else 7.0
    measured = summarize(series, target)
    res = AutoscaleResult(
        name, revision, annotations, cc, series, argv, sim_argv, sim_summary, sim_tl, measured
    )
    res.pod_start_s, res.pod_start_from, res.problems = pod_start, source, problems
    res.total_requests = sum(int(r["requests"]) for r in data["seconds"])
    res.total_failures = sum(int(r["failures"]) for r in data["seconds"])
    res.errors, res.shape = (
        dict(data.get("errors", {})),
        (cfg.locust_seconds, cfg.locust_peak_users),
    )
    system.remove(text, str(MANIFEST.relative_to(REPO)))
    ctx.log(
        f"autoscaling: {res.total_requests:,} requests, {res.total_failures} failures, peak "
        f"{measured['peak_ready']} ready replicas (simulator "
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
    peaks, secs = (
        ("peak_needed", "peak_desired", "peak_ready"),
        ("pod_seconds", "needed_pod_seconds"),
    )
    summary = md_table(
        "|measured|simulator (same trace)",
        [
            ["requests / failures", f"{res.total_requests:,} / {res.total_failures}", "-"],
            ["peak replicas: needed / desired / ready", three(m, *peaks), three(sp, *peaks)],
            ["replica-seconds / needed", three(m, *secs), three(sp, *secs)],
            [
                "over-provisioned (ready above needed)",
                pct(m["over"]),
                pct(s.get("over_provisioning")),
            ],
            [
                "under-provisioned (ready below needed)",
                pct(m["under"]),
                pct(s.get("under_provisioning")),
            ],
            ["panic", "-", panic],
        ],
    )
    sim_falls = list(s.get("shortfalls", []))

    def near(f: dict[str, Any], falls: list[dict[str, Any]]) -> dict[str, Any] | None:
        return next((g for g in falls if abs(g["at_s"] - f["at_s"]) <= 3), None)

    rows = [
        [
            f"{f['at_s']} s",
            f["cause"],
            f"{f['ready']} -> {f['needed']}",
            _after(f),
            _after(g) if (g := near(f, sim_falls)) else "- (not short)",
        ]
        for f in m["shortfalls"]
    ]
    rows += [
        [
            f"{g['at_s']} s",
            g["cause"],
            f"(simulated {g['ready']} -> {g['needed']})",
            "- (not short)",
            _after(g),
        ]
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
