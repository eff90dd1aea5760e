"""Runs a preset's parts in order, and writes the one report, the plots and the JSON figures.

The parts on processes of their own run first, then the parts on one ``zeroserve up``. A
part that fails is reported as failed and the others still run.
"""

from __future__ import annotations

import datetime
import json
import os
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import machine
from benchmarks.figures import kv_table, md_table
from benchmarks.loadgen import missing_tools
from benchmarks.processes import BenchError, Pinning, Supervisor, interrupt_on_signals
from benchmarks.servers import ROUTE_HOST
from zeroserve import compiled

from . import autoscale, burst, coldstart, grpc, held, hops, plots
from .config import PART_TITLES, PARTS, Config, estimate_seconds
from .context import Context, PartResult, Skipped, log

PACKAGES = ("uvloop", "httptools", "aiohttp", "prometheus-client", "locust", "matplotlib")


def run_parts(ctx: Context) -> Results:
    res = Results()
    cfg = ctx.cfg
    # The burst's Service is applied with the cold-start ones, so it scales to zero meanwhile.
    early = (
        {burst.NAME: burst.manifest(cfg.burst_cc, ctx.initial_scale)}
        if {"cold", "burst"} <= set(cfg.parts)
        else {}
    )
    runs: dict[str, Callable[[], PartResult]] = {
        "hops": lambda: hops.run(ctx),
        "hops-go": lambda: hops.run(ctx, go=True),
        "held": lambda: held.run(ctx),
        "cold": lambda: coldstart.run(ctx, early),
        "burst": lambda: burst.run(ctx, applied=bool(early)),
        "autoscale": lambda: autoscale.run(ctx),
        "grpc": lambda: grpc.run(ctx),
    }
    try:
        for name in (n for n in runs if n in cfg.parts):
            t0 = time.monotonic()
            log(f"--- {PART_TITLES[name]}")
            try:
                res.parts[name] = runs[name]()
            except Skipped as e:
                res.skipped[name] = str(e)
            except BenchError as e:
                res.failed[name] = str(e).splitlines()[0][:500]
                log(f"{PART_TITLES[name]} failed: {e}")
            log(f"--- {PART_TITLES[name]}: {time.monotonic() - t0:.0f} s")
    finally:
        ctx.stop_system()
    return res


def draw_plots(cfg: Config, res: Results, stamp: str) -> None:
    if not cfg.write:
        return
    if not plots.available():
        res.skipped["plots"] = f"matplotlib is not installed: {plots.HINT}"
        return
    for part, r in res.parts.items():
        if (draw := plots.DRAW.get(part)) is None:
            continue
        cfg.results_dir.mkdir(parents=True, exist_ok=True)
        path = cfg.results_dir / f"{cfg.report_prefix}-{stamp}-{part}.png"
        try:
            if draw(r, path):
                res.plots[part] = path.name
        except (OSError, ValueError) as e:
            log(f"plot {part}: {e}")


def main(cfg: Config) -> int:
    if problem := missing_tools(["wrk", "hey"]):
        print(f"benchmarks.suite: {problem}", file=sys.stderr)
        return 2
    pinning = Pinning.choose(cfg.pin, cfg.server_cpu, cfg.load_cpu)
    pinning.pin_self()
    interrupt_on_signals(signal.SIGTERM, signal.SIGHUP)
    started = datetime.datetime.now()
    stamp = started.strftime("%Y%m%d-%H%M%S")
    t0 = time.monotonic()
    log(
        f"preset {cfg.preset} ({cfg.scale}), parts {', '.join(cfg.parts)}; about "
        f"{estimate_seconds(cfg) / 60:.0f} min; pinning: {pinning.note}"
    )
    try:
        with (
            tempfile.TemporaryDirectory(prefix="bench-suite-") as tmpname,
            Supervisor(Path(tmpname), pinning) as sup,
        ):
            ctx = Context(cfg, pinning, sup, Path(tmpname))
            res = run_parts(ctx)
    except KeyboardInterrupt as e:
        log(f"interrupted ({str(e) or 'Ctrl-C'}); every started process was stopped")
        return 130
    draw_plots(cfg, res, stamp)
    wall = time.monotonic() - t0
    meta = {
        "date": started.astimezone().isoformat(timespec="seconds"),
        "command": shlex.join(sys.orig_argv),
        "wall": f"{wall:.0f} s",
        **machine.summary(PACKAGES, ("wrk", "hey", "nginx")),
        "pinning": pinning.note,
        # what each hop started by the run decides (zeroserve/compiled.py)
        "hot path": compiled.plan()[1],
        "settings": settings(cfg),
        "Host header": f"`{ROUTE_HOST}` on every request of the hop-overhead and held parts",
    }
    report = render(cfg, res, meta, ctx.commands)
    print(report)
    out: Path | None = None
    if cfg.write:
        cfg.results_dir.mkdir(parents=True, exist_ok=True)
        out = cfg.results_dir / f"{cfg.report_prefix}-{stamp}.md"
        out.write_text(report)
        log(f"wrote {out}" + (f" and {len(res.plots)} plot(s)" if res.plots else ""))
    if cfg.json_path is not None:
        extra = {
            "report": str(out) if out else None,
            "wall_s": round(wall, 1),
            "preset": cfg.preset,
        }
        cfg.json_path.write_text(json.dumps({**res.to_json(), **extra}, indent=2))
    log(f"done in {wall:.0f} s; every started process was stopped")
    return 1 if res.failed else 0


TITLES = {
    "suite": "zeroserve benchmark suite",
    "queueproxy": "queue-proxy benchmark",
    "activator": "activator benchmark",
    "grpc": "gRPC benchmark",
}
PLOT_ALT = {
    "hops": "hop overhead: CPU per request by process, latency",
    "hops-go": "hop overhead behind the Go backend: CPU per request by process, latency",
    "cold": "cold start phases",
    "burst": "burst: replicas and requests over time",
    "autoscale": "autoscaling: load, replicas measured and simulated, latency",
}


@dataclass
class Results:
    parts: dict[str, PartResult] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    """part -> why it did not run (a missing tool, with how to install it)."""
    failed: dict[str, str] = field(default_factory=dict)
    plots: dict[str, str] = field(default_factory=dict)
    """part -> PNG file name (next to the report)."""

    def to_json(self) -> dict[str, Any]:
        parts = {name: r.to_json() for name, r in self.parts.items()}
        return {"parts": parts, "skipped": self.skipped, "failed": self.failed, "plots": self.plots}


def settings(cfg: Config) -> str:
    rates = "/".join(map(str, cfg.hop_rates))
    said = {
        "hops": f"hop overhead {cfg.hop_reps} x {cfg.hop_duration:g} s runs (wrk {cfg.wrk_seconds} s), CPU runs "
        f"{cfg.hop_requests:,}"
        + (f" / {cfg.hop_requests_large:,}" if cfg.large_bytes else "")
        + f" requests at -c {cfg.connections}, rates {rates}"
        + (f" and {'/'.join(map(str, cfg.hop_rates_large))}" if cfg.large_bytes else "")
        + f" req/s with {cfg.rate_workers} clients, warm-up {cfg.warmup} s per target",
        "hops-go": "the same hop-overhead runs behind benchmarks/gobackend",
        "cold": f"{cfg.cold_starts} cold starts over {cfg.cold_services} services",
        "burst": f"{cfg.burst_reps} x burst of {cfg.burst_requests:,} at -c {cfg.burst_concurrency}",
        "autoscale": f"locust {cfg.locust_seconds} s to {cfg.locust_peak_users} users",
        "held": f"{cfg.held_reps} x {cfg.held:,} held (containerConcurrency {cfg.held_cc})",
        "grpc": f"{cfg.grpc_reps} x {cfg.grpc_calls:,} gRPC calls per target "
        f"(h2load -c {cfg.grpc_clients} -m {cfg.grpc_streams})",
    }
    return "; ".join(said[p] for p in cfg.parts)


def goals_table(res: Results) -> list[str]:
    rows = [g for r in res.parts.values() for g in r.goals()]
    if not rows:
        return []
    within = {None: "-", True: "yes", False: "**no**"}
    cells = [[g.what, g.goal, g.measured, within[g.within]] for g in rows]
    return [
        "## Goals",
        "",
        "Figures next to the goals they are read against (nothing is asserted); spreads are "
        "medians with [min-max] over the repetitions of per-repetition ratios or differences.",
        "",
        md_table("goal|target|measured|within", cells),
        "",
    ]


def notes(cfg: Config, res: Results) -> list[str]:
    out = []
    if cfg.pin:
        out.append(
            f"Servers (apps, proxies, `zeroserve up` and everything it starts) run on CPU "
            f"{cfg.server_cpu}, load generators (wrk, hey, locust, the held client) and this "
            f"script on CPU {cfg.load_cpu}, when both exist (this machine has {os.cpu_count()} "
            "CPUs). On one CPU a path's processes take turns: the activator path's throughput "
            "is bounded by the sum of its processes' CPU per request, and its latency includes "
            "waiting for the CPU behind the others."
        )
    else:
        out.append("Not pinned: servers and load generators compete for all CPUs.")
    for r in res.parts.values():
        out += r.notes()
    if {"cold", "burst", "autoscale"} & set(res.parts):
        out.append(
            f"Scale to zero takes the stable window ({cfg.stable_window} s) plus the grace period "
            f"({cfg.grace_period} s) after the last request, plus a replica's drain; the cold "
            "start and the burst wait for it before each measurement (the 'waited for zero' "
            "column)."
        )
    if cfg.zero_start and {"cold", "burst"} & set(res.parts):
        out.append(
            "The cold-start and burst Services were applied at zero (`initial-scale: 0`, "
            "`allow-zero-initial-scale: true`; `--zero-start`, the `--smoke` default): their "
            "first measurement did not wait for a first replica to scale to zero."
        )
    out += [f"{PART_TITLES.get(part, part)} skipped: {why}" for part, why in res.skipped.items()]
    return out


def render(cfg: Config, res: Results, meta: dict[str, str], commands: list[str]) -> str:
    summary = []
    for part in cfg.parts:
        title = PART_TITLES[part]
        if (r := res.parts.get(part)) is not None:
            summary += [f"- {title}: {line}" for line in r.headline()]
        elif part in res.failed:
            summary.append(f"- {title}: **failed**: {res.failed[part]}")
        elif part in res.skipped:
            summary.append(f"- {title}: skipped: {res.skipped[part]}")
    command = {"suite": "make bench", "queueproxy": "make bench-queueproxy"}.get(
        cfg.preset, f"make bench-{cfg.preset}"
    )
    lines = [
        f"# {TITLES[cfg.preset]}, {meta['date']}",
        "",
        f"Preset **{cfg.preset}**, scale **{cfg.scale}**, wall time {meta['wall']}. Command: "
        f"`{meta['command']}`. Everything ran on 127.0.0.1 on this machine; baselines (direct "
        "access, nginx, the app's own start, the autoscaler simulator) were measured in the "
        "same run. Cells are medians with [min-max]; ratios (x) and differences are taken "
        "within each repetition or pair, then summarised. Nothing here is asserted: read the "
        "figures.",
        "",
        "## Summary",
        "",
        *summary,
        "",
        *goals_table(res),
        f"Reproduce: `{command}` (`BENCH_ARGS=--quick` for a short run), or `.venv/bin/python "
        f"-m benchmarks.suite --preset {cfg.preset} --help` for every option.",
        "",
        "## Machine",
        "",
        kv_table([(k, v) for k, v in meta.items() if k not in ("date", "command", "wall")]),
        "",
        "## Commands",
        "",
        "Every external command of the run (`<target>`/`<ingress>`: the port of the process "
        "under test):",
        "",
        *[f"- `{cmd}`" for cmd in commands],
        "",
    ]
    for part in cfg.parts:
        lines += [f"## {PARTS.index(part) + 1}. {PART_TITLES[part]}", ""]
        if (r := res.parts.get(part)) is not None:
            plot = [f"![{PLOT_ALT[part]}]({res.plots[part]})", ""] if part in res.plots else []
            lines += r.section(plot)
        elif part in res.failed:
            lines += [f"**Failed**: {res.failed[part]}", ""]
        elif part in res.skipped:
            lines += [f"Skipped: {res.skipped[part]}", ""]
    lines += ["## Notes", "", *[f"- {n}" for n in notes(cfg, res)], ""]
    return "\n".join(lines)
