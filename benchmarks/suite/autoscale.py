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
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from autoscaler.simulate import Second, shortfalls
from benchmarks import _common as c

from .context import Context
from .local import LocalSystem

REPO = Path(__file__).resolve().parents[2]
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
    return c.which("locust")


@dataclass
class Sample:
    t: float
    desired: int
    ready: int
    pods: int


class ReplicaSampler:
    """Every second: the revision's desired/ready replicas, and every replica's start times."""

    def __init__(self, system: LocalSystem, revision: str) -> None:
        self.system = system
        self.revision = revision
        self.samples: list[Sample] = []
        self.pod_times: dict[str, dict[str, float]] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="replica-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                desired, ready = self.system.replicas(self.revision)
                pods = self.system.pods(self.revision)
                now = time.time()
                self.samples.append(Sample(now, desired, ready, len(pods)))
                for p in pods:
                    self.pod_times[p["name"]] = dict(p["times"])
            except c.BenchError as e:
                self.errors.append(str(e))
            self._stop.wait(max(0.0, 1.0 - (time.monotonic() - t0)))


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
    pod_start_s: float
    pod_start_from: str
    total_requests: int
    total_failures: int
    errors: dict[str, int]
    problems: list[str]

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
    """The simulator's definition (``autoscaler.simulate._provisioning``)."""
    n = len(gaps)
    return {
        "peak_pods": max(gaps, default=0),
        "average_pods": round(sum(gaps) / n, 3) if n else 0.0,
        "time_pct": round(100 * sum(1 for g in gaps if g) / n, 2) if n else 0.0,
    }


def summarize(series: Series, target: float) -> dict[str, Any]:
    """The measured run summarised like the simulator summarises its own."""
    tl = []
    for i, conc in enumerate(series.concurrency):
        ready = series.ready[i]
        tl.append(
            Second(
                t=i,
                concurrency=conc,
                rps=series.rps[i],
                load=conc,
                needed=math.ceil(round(conc / target, 9)),
                desired=series.desired[i],
                decided=-1,
                ready=ready,
                starting=max(0, series.pods[i] - ready),
                capacity=ready * target,
                stable=0.0,
                panic=0.0,
                in_panic=False,
                pa="",
            )
        )
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


def _pod_start(sampler: ReplicaSampler, since: float) -> list[float]:
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
    sampler = ReplicaSampler(system, revision)
    sampler.start()
    since = time.time()
    try:
        load = c.run_load(argv, ctx.pinning, cfg.locust_seconds + 90, env)
    finally:
        sampler.stop()
    problems = [f"sampler: {e}" for e in sampler.errors[:3]]
    if load.rc not in (0, 1) or not out.exists():
        raise c.BenchError(f"locust failed (exit status {load.rc}): {load.output.strip()[-800:]}")
    data = json.loads(out.read_text())
    if data.get("start") is None:
        raise c.BenchError("locust wrote no start time (the shape never ticked)")
    series = _build_series(data, sampler.samples, cfg.locust_seconds)
    starts = _pod_start(sampler, since)
    if starts:
        pod_start, source = (
            statistics.median(starts),
            f"median of {len(starts)} replicas started in this run",
        )
    else:
        pod_start, source = 1.0, "no replica started in this run: 1 s assumed"
    sim_argv, sim_summary, sim_tl, problem = simulate(ctx, series, annotations, cc, pod_start)
    if problem:
        problems.append(problem)
    target = float(sim_summary["revision"]["target_per_pod"]) if sim_summary else 7.0
    measured = summarize(series, target)
    res = AutoscaleResult(
        service=name,
        revision=revision,
        annotations=annotations,
        container_concurrency=cc,
        series=series,
        locust_argv=argv,
        sim_argv=sim_argv,
        sim_summary=sim_summary,
        sim_timeline=sim_tl,
        measured=measured,
        pod_start_s=pod_start,
        pod_start_from=source,
        total_requests=sum(int(r["requests"]) for r in data["seconds"]),
        total_failures=sum(int(r["failures"]) for r in data["seconds"]),
        errors=dict(data.get("errors", {})),
        problems=problems,
    )
    system.remove(text, str(MANIFEST.relative_to(REPO)))
    ctx.log(
        f"autoscaling: {res.total_requests:,} requests, {res.total_failures} failures, peak "
        f"{measured['peak_ready']} ready replicas (simulator "
        f"{sim_summary['pods']['peak_ready'] if sim_summary else '-'})"
    )
    return res


def tables(res: AutoscaleResult) -> list[str]:
    m, s = res.measured, res.sim_summary
    sp = s["pods"] if s else {}
    so, su = (s["over_provisioning"], s["under_provisioning"]) if s else ({}, {})

    def pct(d: dict[str, Any]) -> str:
        return (
            "-"
            if not d
            else (
                f"peak {d['peak_pods']}, average {d['average_pods']:.2f}, "
                f"{d['time_pct']:.0f} % of the time"
            )
        )

    summary = c.md_table(
        ["", "measured", "simulator (same trace)"],
        [
            ["requests / failures", f"{res.total_requests:,} / {res.total_failures}", "-"],
            [
                "peak replicas: needed / desired / ready",
                f"{m['peak_needed']} / {m['peak_desired']} / {m['peak_ready']}",
                f"{sp.get('peak_needed', '-')} / {sp.get('peak_desired', '-')} / {sp.get('peak_ready', '-')}",
            ],
            [
                "replica-seconds (needed)",
                f"{m['pod_seconds']} ({m['needed_pod_seconds']})",
                f"{sp.get('pod_seconds', '-')} ({sp.get('needed_pod_seconds', '-')})",
            ],
            ["over-provisioned (ready above needed)", pct(m["over"]), pct(so)],
            ["under-provisioned (ready below needed)", pct(m["under"]), pct(su)],
            [
                "panic",
                "-",
                "-"
                if not s
                else f"{s['panic']['seconds']} s in {s['panic']['episodes']} episode(s)",
            ],
        ],
        left=1,
    )
    rows = []
    sim_falls = list(s["shortfalls"]) if s else []
    for f in m["shortfalls"]:
        match = next((g for g in sim_falls if abs(g["at_s"] - f["at_s"]) <= 3), None)
        rows.append(
            [
                f"{f['at_s']} s",
                f["cause"],
                f"{f['ready']} -> {f['needed']}",
                _after(f),
                _after(match) if match else "- (not short)",
            ]
        )
    for g in sim_falls:
        if not any(abs(g["at_s"] - f["at_s"]) <= 3 for f in m["shortfalls"]):
            rows.append(
                [
                    f"{g['at_s']} s",
                    g["cause"],
                    f"(simulated {g['ready']} -> {g['needed']})",
                    "- (not short)",
                    _after(g),
                ]
            )
    falls = (
        c.md_table(
            ["at", "cause", "ready -> needed", "measured: enough ready after", "simulator"],
            rows,
            left=3,
        )
        if rows
        else "No second with fewer ready replicas than needed."
    )
    return [summary, falls]


def every_second(res: AutoscaleResult) -> str:
    s = res.series
    sim = {int(r["t"]): r for r in res.sim_timeline}
    rows = []
    for i in range(len(s.users)):
        r = sim.get(i, {})
        rows.append(
            [
                str(i),
                str(s.users[i]),
                f"{s.rps[i]:.0f}",
                f"{s.concurrency[i]:.1f}",
                c.fmt(s.p50_ms[i], 0),
                c.fmt(s.p95_ms[i], 0),
                str(s.failures[i]),
                str(s.desired[i]),
                str(s.ready[i]),
                str(int(r["desired"])) if r else "-",
                str(int(r["ready"])) if r else "-",
            ]
        )
    return c.md_table(
        [
            "s",
            "users",
            "req/s",
            "concurrency",
            "p50 ms",
            "p95 ms",
            "failures",
            "desired",
            "ready",
            "sim desired",
            "sim ready",
        ],
        rows,
    )
