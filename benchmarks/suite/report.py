"""The one report writer: a summary and the goals first, then the machine, the commands, each part.

Every preset writes the same kind of report; a part that did not run has no
section. Cells are medians with [min-max] over repetitions; ratios and
differences to a baseline are taken within each repetition (or pair), then
summarised.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Protocol

from benchmarks.markdown import kv_table, md_table

from .config import PART_TITLES, PARTS, Config
from .context import Goal

TITLES = {
    "suite": "zeroserve benchmark suite",
    "queueproxy": "queue-proxy benchmark",
    "activator": "activator benchmark",
}
PLOT_ALT = {
    "hops": "hop overhead: CPU per request by process, latency",
    "cold": "cold start phases",
    "burst": "burst: replicas and requests over time",
    "autoscale": "autoscaling: load, replicas measured and simulated, latency",
}


class PartResult(Protocol):
    """What every part's result gives the report."""

    def headline(self) -> list[str]: ...

    def goals(self) -> list[Goal]: ...

    def section(self, plot: list[str]) -> list[str]: ...

    def notes(self) -> list[str]: ...

    def to_json(self) -> dict[str, Any]: ...


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
    """The sizes of this run, part by part."""
    rates = "/".join(map(str, cfg.hop_rates))
    said = {
        "hops": f"hop overhead {cfg.hop_reps} x {cfg.hop_duration} s runs, CPU runs "
        f"{cfg.hop_requests:,}"
        + (f" / {cfg.hop_requests_large:,}" if cfg.large_bytes else "")
        + f" requests at -c {cfg.connections}, rates {rates}"
        + (f" and {'/'.join(map(str, cfg.hop_rates_large))}" if cfg.large_bytes else "")
        + f" req/s with {cfg.rate_workers} clients, warm-up {cfg.warmup} s per target",
        "cold": f"{cfg.cold_starts} cold starts over {cfg.cold_services} services",
        "burst": f"{cfg.burst_reps} x burst of {cfg.burst_requests:,} at -c {cfg.burst_concurrency}",
        "autoscale": f"locust {cfg.locust_seconds} s to {cfg.locust_peak_users} users",
        "held": f"{cfg.held_reps} x {cfg.held:,} held (containerConcurrency {cfg.held_cc})",
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
