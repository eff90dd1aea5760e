"""The suite's Markdown report: a summary first, then the machine, the commands and each part.

Cells are medians with [min-max] over repetitions; ratios and differences to
a baseline are taken within each repetition (or pair), then summarised.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from benchmarks import _common as c
from benchmarks import _held as hd
from benchmarks import _warm as w

from . import autoscale, burst, coldstart, held
from .autoscale import AutoscaleResult
from .burst import BurstResult
from .coldstart import ColdResult
from .config import PART_TITLES, Config
from .held import HeldResult
from .hops import HopsResult


@dataclass
class Results:
    hops: HopsResult | None = None
    cold: ColdResult | None = None
    burst: BurstResult | None = None
    autoscale: AutoscaleResult | None = None
    held: HeldResult | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    """part -> why it did not run (a missing tool, with how to install it)."""
    failed: dict[str, str] = field(default_factory=dict)
    plots: dict[str, str] = field(default_factory=dict)
    """part -> PNG file name (next to the report)."""

    def to_json(self) -> dict[str, Any]:
        parts: dict[str, Any] = {}
        for name in ("hops", "cold", "burst", "autoscale", "held"):
            r = getattr(self, name)
            if r is not None:
                parts[name] = r.to_json()
        return {
            "parts": parts,
            "skipped": self.skipped,
            "failed": self.failed,
            "plots": dict(self.plots),
        }


def _img(res: Results, part: str, alt: str) -> list[str]:
    name = res.plots.get(part)
    return [f"![{alt}]({name})", ""] if name else []


def _summary(cfg: Config, res: Results) -> list[str]:
    out = []
    for part, r in (
        ("hops", res.hops),
        ("cold", res.cold),
        ("burst", res.burst),
        ("autoscale", res.autoscale),
        ("held", res.held),
    ):
        if r is not None:
            out += [f"- {PART_TITLES[part]}: {line}" for line in r.headline()]
        elif part in res.failed:
            out.append(f"- {PART_TITLES[part]}: **failed**: {res.failed[part]}")
        elif part in res.skipped:
            out.append(f"- {PART_TITLES[part]}: skipped: {res.skipped[part]}")
    if res.hops is not None:
        used = [r for r in res.hops.bench.runs if not r.superseded]
        out.append(
            f"- Machine noise: other processes used more than {w.DISTURBED_CPU} CPU "
            f"during {res.hops.disturbed_runs} of the {len(used)} hop-overhead runs "
            "(see the notes)."
        )
    return out


def render(cfg: Config, res: Results, meta: dict[str, str], commands: list[str]) -> str:
    lines = [
        f"# zeroserve benchmark suite, {meta['date']}",
        "",
        f"Preset **{cfg.preset}**, wall time {meta['wall']}. Command: `{meta['command']}`. "
        "Everything ran on 127.0.0.1 on this machine; baselines (direct access, nginx, the "
        "app's own start, the autoscaler simulator) were measured in the same run. Cells are "
        "medians with [min-max]; ratios (x) and differences are taken within each repetition "
        "or pair, then summarised. Nothing here is asserted: read the figures.",
        "",
        "## Summary",
        "",
        *_summary(cfg, res),
        "",
        "Reproduce: `make bench` (full, about 15 minutes), `make bench BENCH_ARGS=--quick` "
        "(about 3-5), or `.venv/bin/python -m benchmarks.suite --help` for every option; "
        "`--parts cold,burst` runs some parts only.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in meta.items() if k not in ("date", "command", "wall")],
        "",
        "## Commands",
        "",
        "Every external command of the run (`<target>`/`<ingress>`: the port of the process "
        "under test):",
        "",
        *[f"- `{cmd}`" for cmd in commands],
        "",
    ]
    lines += _hops(cfg, res)
    lines += _cold(cfg, res)
    lines += _burst(cfg, res)
    lines += _autoscale(cfg, res)
    lines += _held(cfg, res)
    lines += ["## Notes", "", *[f"- {n}" for n in notes(cfg, res)], ""]
    return "\n".join(lines)


def _missing(res: Results, part: str) -> list[str]:
    if part in res.failed:
        return [f"**Failed**: {res.failed[part]}", ""]
    if part in res.skipped:
        return [f"Skipped: {res.skipped[part]}", ""]
    return ["Not run (`--parts`).", ""]


def _hops(cfg: Config, res: Results) -> list[str]:
    out = ["## 1. Hop overhead", ""]
    h = res.hops
    if h is None:
        return out + _missing(res, "hops")
    out += [
        f"Backend: {h.backend_desc}. Targets: "
        + "; ".join(f"**{t.name}**: {t.detail}" for t in h.targets)
        + ". Every request carries "
        "`Host: hello.default.example.com` (the activator's route). "
        f"{cfg.hop_reps} repetition(s), interleaved across targets; throughput "
        f"`wrk -t1 -c{cfg.connections} -d{cfg.hop_duration}s`; CPU per request from "
        f"`/proc/PID/stat` around `hey -n N -c {cfg.connections}` (all of a process's "
        f"threads, {1000 // c.CLK_TCK} ms ticks); latency at each fixed rate R: "
        + (
            f"`hey -z {cfg.hop_duration}s -c {cfg.rate_workers} -q R/{cfg.rate_workers}`."
            if cfg.latency_tool == "hey"
            else f"`wrk -t1 -c{cfg.rate_workers} -d{cfg.hop_duration}s` with each connection pausing "
            "between requests."
        ),
        "",
        *_img(res, "hops", "hop overhead: CPU per request by process, latency"),
    ]
    for size in h.sizes:
        out += [
            f"### {size.label}: throughput and CPU per request",
            "",
            f"CPU runs: `hey -n {size.requests} -c {cfg.connections}`. "
            '"proxies µs/req" sums the proxies in the path; "x nginx" compares it with '
            "nginx's in the same repetition.",
            "",
            h.tput_cpu_table(size),
            "",
            f"### {size.label}: latency at fixed rates",
            "",
            h.latency_table(size),
            "",
        ]
    out += [
        "<details><summary>Every hop-overhead run</summary>",
        "",
        h.every_run(),
        "",
        "</details>",
        "",
    ]
    return out


def _cold(cfg: Config, res: Results) -> list[str]:
    out = ["## 2. Cold start", ""]
    r = res.cold
    if r is None:
        return out + _missing(res, "cold")
    out += [
        f"{len(r.starts)} cold starts of {r.services} helloworld Services taken in turn "
        f"(`python examples/helloworld/app.py`, containerConcurrency 0), each once it was at "
        f"zero: config-autoscaler stable-window {cfg.stable_window}s, "
        f"scale-to-zero-grace-period {cfg.grace_period}s. One `GET /` on a fresh connection "
        "through the ingress; phases from `GET /v1/pods` `times` and the activator's "
        "Prometheus histograms (deltas per request). Right after each, the same app started "
        "alone (same command, `PORT` set, same CPU) and polled every 5 ms: the baseline of "
        "its pair.",
        "",
        *_img(res, "cold", "cold start phases"),
        coldstart.table(r),
        "",
        '"app ready" ends at the earlier of the runtime\'s readiness check and the '
        "activator forwarding the request (the activator probes the new replica itself, every "
        "few ms, and may forward before the runtime's 50 ms readiness poll sees it). The "
        "replica's queue-proxy and app start together on the same CPU, so \"replica process "
        'start" and "app ready" overlap with the app\'s own start.',
        "",
    ]
    if r.failures:
        out += [f"Failures: {'; '.join(r.failures)}", ""]
    out += [
        "<details><summary>Every cold start (ms)</summary>",
        "",
        coldstart.every_start(r),
        "",
        "</details>",
        "",
    ]
    return out


def _burst(cfg: Config, res: Results) -> list[str]:
    out = ["## 3. Burst from zero", ""]
    r = res.burst
    if r is None:
        return out + _missing(res, "burst")
    out += [
        f"`{' '.join(r.argv[:-1])} <ingress>/` against the `burst` Service (the sample app, "
        f"containerConcurrency {r.cc}, KPA defaults: 7 in flight per replica at 70 % "
        'utilisation, no max-scale) at zero replicas before each repetition. "app saw" sums '
        "every replica's `zeroserve_queue_requests_total` (read every 0.2 s and once more "
        "after hey is done); it equals the requests sent when each reached the app exactly "
        'once. "max at one app" is the highest `zeroserve_queue_app_in_flight_max` of any '
        "replica. Every replica (two Python processes) starts on the one server CPU, which "
        'the running replicas, the activator and `zeroserve up` share: "first at an app" '
        "is the cold start under that load.",
        "",
        *_img(res, "burst", "burst: replicas and requests over time"),
        burst.table(r),
        "",
    ]
    return out


def _autoscale(cfg: Config, res: Results) -> list[str]:
    out = ["## 4. Autoscaling under load", ""]
    r = res.autoscale
    if r is None:
        return out + _missing(res, "autoscale")
    ann = ", ".join(f"`{k}: {v}`" for k, v in r.annotations.items())
    summary, falls = autoscale.tables(r)
    out += [
        f"`examples/autoscale.yaml` ({ann}; containerConcurrency {r.container_concurrency}), "
        f"revision `{r.revision}`, under `benchmarks/locustfile.py` "
        f"({cfg.locust_seconds} s: a trickle, a step, a spike to {cfg.locust_peak_users} "
        f"users, back, a ramp down, idle; each user calls `{autoscale.PATH}` back to back). "
        "Replicas sampled every second from the control API; concurrency is each second's "
        "mean requests in flight measured by locust. The simulator replayed that concurrency "
        f"with the same settings and a replica start time of {r.pod_start_s:.2f} s "
        f"({r.pod_start_from}):",
        "",
        f"`{autoscale.sim_command(r.sim_argv)}` (trace.csv: the concurrency column of "
        '"Every second" below)',
        "",
        *_img(res, "autoscale", "autoscaling: load, replicas measured and simulated, latency"),
        summary,
        "",
        "Time until enough replicas were ready after each shortfall (needed = "
        "ceil(concurrency / per-replica target)):",
        "",
        falls,
        "",
    ]
    if r.errors:
        out += ["Failures by error: " + "; ".join(f"{k}: {v}" for k, v in r.errors.items()), ""]
    if r.problems:
        out += ["Problems: " + "; ".join(r.problems), ""]
    out += [
        "<details><summary>Every second</summary>",
        "",
        autoscale.every_second(r),
        "",
        "</details>",
        "",
    ]
    return out


def _held(cfg: Config, res: Results) -> list[str]:
    out = ["## 5. Held requests", ""]
    r = res.held
    if r is None:
        return out + _missing(res, "held")
    out += [
        f"`benchmarks/activator.py`'s held phase, {len(r.runs)} time(s): a cold activator "
        f"(containerConcurrency {held.CC}) in front of a queue-proxy and the sample app, ready "
        f"but not announced; {cfg.held:,} connections each send one `GET /?id=N`; once the "
        "activator reports them all waiting its VmRSS growth per request is read; SIGUSR1 then "
        "announces the replica. RLIMIT_NOFILE "
        f"{r.nofile[0]:,}/{r.nofile[1]:,}.",
        "",
        held.table(r),
        "",
    ]
    if r.runs:
        out += [
            "<details><summary>Last repetition in detail</summary>",
            "",
            hd.held_table(r.runs[-1]),
            "",
            "</details>",
            "",
        ]
    return out


def notes(cfg: Config, res: Results) -> list[str]:
    out = []
    if cfg.pin:
        out.append(
            f"Servers (backends, proxies, `zeroserve up` and everything it starts) run "
            f"on CPU {cfg.server_cpu}, load generators (wrk, hey, locust, the held "
            f"client) and this script on CPU {cfg.load_cpu}, when both exist "
            f"(this machine has {os.cpu_count()} CPUs). On one CPU a path's processes "
            "take turns: the activator path's throughput is bounded by the sum of its "
            "processes' CPU per request, and its latency includes waiting for the CPU."
        )
    h = res.hops
    if h is not None:
        out += w.quality_notes(
            h.bench, "hop-overhead runs", "`--quiet-wait 30` and more `--hop-reps`"
        )
        if cfg.latency_tool == "hey":
            out.append(
                "hey reports latencies in 0.1 ms steps, and its clients tick together "
                f"(bursts of {cfg.rate_workers} requests); `--latency-tool wrk` paces "
                "wrk connections instead (µs resolution)."
            )
        if "nginx" not in h.names:
            out.append(
                "nginx was not found, so the nginx reference is missing: apt-get install -y nginx."
            )
    if res.autoscale is not None or res.burst is not None or res.cold is not None:
        out.append(
            f"Scale to zero takes the stable window ({cfg.stable_window} s) plus the "
            f"grace period ({cfg.grace_period} s) after the last request, plus a "
            "replica's drain; parts 2 and 3 wait for it before each measurement (the "
            "'waited for zero' column)."
        )
    for part, why in res.skipped.items():
        out.append(f"{PART_TITLES[part]} skipped: {why}")
    return out
