"""Benchmark: the activator on the warm path, and requests it holds at zero replicas.

In one run on 127.0.0.1 this starts the helloworld sample app (or
``--backend-cmd``), ``python -m queueproxy`` in front of it and an activator
(``python -m benchmarks.activator_runner``: the real ``activator.app.Activator``
with one static route, ``Host: hello.default.example.com`` -> the revision whose
one ready replica is that queue-proxy). Servers are pinned to one CPU and the
load generator (and this script) to another.

1. Warm path. Targets: ``direct`` (the app), ``queue-proxy`` (-> app) and
   ``activator`` (-> queue-proxy -> app); every request carries the Host header.
   In repetitions interleaved across targets it measures throughput
   (``wrk -t1 -c50``), CPU per request of each process from /proc around
   ``hey -n N -c 50`` (the activator and the queue-proxy separately, and the
   app), and p50/p99 at a fixed 1,000 req/s (``hey -q``, or a paced wrk with
   ``--latency-tool wrk``).
2. Held requests. A second queue-proxy (``CONTAINER_CONCURRENCY=10``) and a
   second activator started with ``--cold`` (containerConcurrency 10, no
   replica until it receives SIGUSR1). An asyncio client in this process opens
   ``--held`` (10,000) connections, each sending one ``GET /?id=N``; once the
   activator's ``zeroserve_activator_queue_length`` says all wait, its VmRSS
   gives the memory per held request; then SIGUSR1 announces the replica and
   the client times how long until every request is answered, and counts the
   200s. The queue-proxy's and the activator's Prometheus request counters
   tell whether each request reached the replica exactly once.

It prints (and writes to benchmarks/results/activator-<timestamp>.md) a
Markdown report: medians with [min-max] over the repetitions, the figures
next to their goals (activator CPU <= 1.2x the queue-proxy's, <= 0.5 ms added
p50 for the two hops, <= 10 KiB per held request, every held request answered).

    .venv/bin/python -m benchmarks.activator            # ~2.5 minutes
    .venv/bin/python -m benchmarks.activator --quick    # ~40 s smoke run
    .venv/bin/python -m benchmarks.activator --help

A measurement tool: it asserts nothing about timings.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks import _common as c
from benchmarks import _held as hd
from benchmarks import _servers as sv
from benchmarks import _warm as w

HERE = Path(__file__).resolve().parent
HOST = sv.ROUTE_HOST
KINDS = ("tput", "cpu", "latency")
TARGETS = ("direct", "queue-proxy", "activator")
LABELS = {
    "direct": "direct (app)",
    "queue-proxy": "queue-proxy → app",
    "activator": "activator → queue-proxy → app",
}
PROXIES = ("activator", "queue-proxy")
# The goals the report compares with (read, never asserted).
GOAL_CPU_RATIO = 1.2
GOAL_ADDED_P50_MS = 0.5
GOAL_KIB_PER_HELD = 10.0


# ------------------------------------------------------------------ configuration


@dataclass(frozen=True)
class Config:
    reps: int
    duration: int
    requests: int
    connections: int
    rate: int
    rate_workers: int
    warmup: int
    latency_tool: str
    quiet_wait: float
    backend_cmd: str | None
    warm: bool
    held: int
    held_cc: int
    held_parallel: int
    held_timeout: float
    pin: bool
    server_cpu: int
    load_cpu: int
    results_dir: Path
    write: bool
    quick: bool


QUICK = {"reps": 1, "duration": 3, "requests": 5000, "warmup": 1}
DEFAULT = {"reps": 3, "duration": 5, "requests": 20000, "warmup": 1}


def parse_args(argv: Sequence[str]) -> Config:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.activator",
        description="Measure the activator in one run on 127.0.0.1: its warm path against "
        "the queue-proxy and direct access (throughput, CPU per request of each "
        "proxy, latency at a fixed rate; medians of interleaved repetitions), and "
        "10,000 requests held at zero replicas (memory per held request, time "
        "until all are answered once a replica appears, none lost).",
    )
    p.add_argument(
        "--reps", type=int, help="warm-path repetitions, interleaved across targets (default 3)"
    )
    p.add_argument(
        "--duration", type=int, help="seconds of each throughput and latency run (default 5)"
    )
    p.add_argument(
        "--requests", type=int, help="requests of each fixed-count CPU run, hey -n (default 20000)"
    )
    p.add_argument(
        "--connections",
        type=int,
        default=50,
        help="connections of the throughput and CPU runs (default 50)",
    )
    p.add_argument(
        "--rate", type=int, default=1000, help="total req/s of the latency run (default 1000)"
    )
    p.add_argument(
        "--rate-workers",
        type=int,
        default=10,
        help="concurrent clients of the latency run (default 10)",
    )
    p.add_argument(
        "--warmup", type=int, help="seconds of wrk load per target before measuring (default 1)"
    )
    p.add_argument(
        "--latency-tool",
        choices=("hey", "wrk"),
        default="hey",
        help="hey -q (default; 0.1 ms resolution) or wrk paced by a delay() "
        "script (µs resolution, rate slightly under --rate)",
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="for a shared machine: before each warm-path run, wait up to SECONDS "
        "until other processes use under 0.1 CPU, and redo (once) a run they "
        "disturbed (default 0: off)",
    )
    p.add_argument(
        "--held",
        type=int,
        default=10_000,
        metavar="N",
        help="requests held at zero replicas, one connection each "
        "(default 10000; 0 skips this part)",
    )
    p.add_argument(
        "--held-cc",
        type=int,
        default=10,
        metavar="CC",
        help="containerConcurrency of the held-requests revision, at the activator "
        "and its queue-proxy (default 10)",
    )
    p.add_argument(
        "--held-parallel",
        type=int,
        default=200,
        metavar="K",
        help="connection attempts in progress at once while opening the held "
        "connections (default 200)",
    )
    p.add_argument(
        "--held-timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="give up waiting for held requests after this long, both for all "
        "to be waiting and for all to be answered (default 120)",
    )
    p.add_argument("--no-warm", action="store_true", help="skip the warm-path measurements")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run of ~40 s: 1 repetition, 3 s runs, 5000 requests (explicit "
        "options still win; the held part is unchanged)",
    )
    p.add_argument(
        "--backend-cmd",
        metavar="CMD",
        help="shell command of the app instead of the sample app; it must serve "
        "GET / with 2xx on 127.0.0.1:$PORT",
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    p.add_argument(
        "--server-cpu",
        type=int,
        default=1,
        help="CPU of the app, the queue-proxy and the activator (default 1)",
    )
    p.add_argument(
        "--load-cpu",
        type=int,
        default=0,
        help="CPU of the load generators and this script (default 0)",
    )
    p.add_argument(
        "--results-dir",
        type=Path,
        default=HERE / "results",
        help="where the report is written (default benchmarks/results)",
    )
    p.add_argument("--no-write", action="store_true", help="print the report only")
    a = p.parse_args(argv)
    base = QUICK if a.quick else DEFAULT

    def pick(name: str) -> int:
        v = getattr(a, name)
        return base[name] if v is None else int(v)

    cfg = Config(
        reps=pick("reps"),
        duration=pick("duration"),
        requests=pick("requests"),
        connections=a.connections,
        rate=a.rate,
        rate_workers=a.rate_workers,
        warmup=pick("warmup"),
        latency_tool=a.latency_tool,
        quiet_wait=a.quiet_wait,
        backend_cmd=a.backend_cmd,
        warm=not a.no_warm,
        held=a.held,
        held_cc=a.held_cc,
        held_parallel=a.held_parallel,
        held_timeout=a.held_timeout,
        pin=not a.no_pin,
        server_cpu=a.server_cpu,
        load_cpu=a.load_cpu,
        results_dir=a.results_dir,
        write=not a.no_write,
        quick=a.quick,
    )
    problems = []
    if cfg.reps < 1 or cfg.duration < 1:
        problems.append("--reps and --duration must be at least 1")
    if cfg.requests < cfg.connections or cfg.connections < 1:
        problems.append("--requests must be at least --connections (and that at least 1)")
    if cfg.rate < 1 or cfg.rate_workers < 1:
        problems.append("--rate and --rate-workers must be at least 1")
    if cfg.warmup < 0 or cfg.quiet_wait < 0:
        problems.append("--warmup and --quiet-wait must not be negative")
    if cfg.held < 0 or cfg.held_cc < 1 or cfg.held_parallel < 1 or cfg.held_timeout <= 0:
        problems.append(
            "--held must not be negative; --held-cc, --held-parallel and "
            "--held-timeout must be positive"
        )
    if not cfg.warm and cfg.held == 0:
        problems.append("--no-warm with --held 0 leaves nothing to measure")
    if problems:
        p.error("; ".join(problems))
    return cfg


def steps(cfg: Config, tmp: Path) -> list[w.Step]:
    return [
        w.tput_step(cfg.connections, cfg.duration, HOST),
        w.cpu_step(cfg.requests, cfg.connections, HOST),
        w.latency_step(cfg.rate, cfg.rate_workers, cfg.duration, cfg.latency_tool, tmp, HOST),
    ]


# ------------------------------------------------------------------ report


Metric = w.Metric
tput, p50, p99, role_us, all_us = w.tput, w.p50, w.p99, w.role_us, w.all_us
fmt_delta = c.fmt_delta


def proxies_us(r: w.Run) -> float | None:
    return r.sum_us([p for p in PROXIES if p in r.ticks]) if len(r.ticks) > 1 else None


class Report:
    def __init__(
        self, cfg: Config, pinning: c.Pinning, warm: w.Bench | None, held: hd.Held | None
    ) -> None:
        self.cfg = cfg
        self.pinning = pinning
        self.warm = warm
        self.held = held
        self.names = [t.name for t in warm.targets] if warm else []

    def runs(self, target: str, kind: str) -> list[w.Run]:
        return [] if self.warm is None else self.warm.used(target, kind)

    def spread(self, target: str, kind: str, metric: Metric) -> c.Spread | None:
        return w.spread(self.runs(target, kind), metric)

    def paired(
        self,
        target: str,
        base: str,
        kind: str,
        metric: Metric,
        base_metric: Metric | None = None,
        op: str = "/",
    ) -> c.Spread | None:
        """Per repetition: target's figure / (or -) base's figure of the same repetition."""
        return w.paired(self.runs(target, kind), self.runs(base, kind), metric, base_metric, op)

    # -- the figures the goals are about

    def cpu_ratio(self) -> c.Spread | None:
        """Activator µs/req (activator path) / queue-proxy µs/req (queue-proxy alone)."""
        return self.paired(
            "activator", "queue-proxy", "cpu", role_us("activator"), role_us("queue-proxy")
        )

    def cpu_ratio_same_run(self) -> c.Spread | None:
        return c.Spread.of(
            (r.us("activator") or 0) / q
            for r in self.runs("activator", "cpu")
            if (q := r.us("queue-proxy")) and r.us("activator") is not None
        )

    def added_p50(self, base: str = "direct") -> c.Spread | None:
        return self.paired("activator", base, "latency", p50, op="-")

    def goals_table(self) -> str:
        rows = []

        def within(ok: bool | None) -> str:
            return "-" if ok is None else ("yes" if ok else "**no**")

        if self.warm is not None:
            for label, ratio in (
                (
                    "activator CPU per request / queue-proxy's, both in the activator-path run "
                    "(same requests, same rate)",
                    self.cpu_ratio_same_run(),
                ),
                (
                    "activator CPU per request / queue-proxy's in the queue-proxy-alone run of the "
                    "same repetition",
                    self.cpu_ratio(),
                ),
            ):
                rows.append(
                    [
                        label,
                        f"<= {GOAL_CPU_RATIO}x",
                        c.fmt_ratio(ratio),
                        within(None if ratio is None else ratio.median <= GOAL_CPU_RATIO),
                    ]
                )
            added = self.added_p50()
            digits = 2 if self.cfg.latency_tool == "hey" else 3
            rows.append(
                [
                    f"added p50 of activator + queue-proxy vs direct at {self.cfg.rate:,} req/s",
                    f"<= {GOAL_ADDED_P50_MS} ms",
                    f"{fmt_delta(added, digits)} ms",
                    within(None if added is None else added.median <= GOAL_ADDED_P50_MS),
                ]
            )
        h = self.held
        if h is not None:
            kib = h.kib_per_held
            rows.append(
                [
                    "activator memory per held request (VmRSS growth / held)",
                    f"<= {GOAL_KIB_PER_HELD:g} KiB",
                    f"{c.fmt(kib, 2)} KiB",
                    within(None if kib is None else kib <= GOAL_KIB_PER_HELD),
                ]
            )
            rows.append(
                [
                    "held requests answered 200 after the replica appeared",
                    f"all {h.n:,}, 0 lost",
                    f"{h.ok:,} of {h.n:,}, {h.lost:,} lost",
                    within(h.lost == 0),
                ]
            )
            once = self.exactly_once()
            rows.append(
                [
                    "each held request reached the replica exactly once "
                    "(queue-proxy's request count)",
                    f"{h.n:,}",
                    c.fmt(h.qp_count, 0, thousands=True),
                    within(once),
                ]
            )
            rows.append(
                [
                    "time from the replica's appearance to the last answer",
                    "-",
                    f"{c.fmt(h.all_s, 2)} s",
                    "-",
                ]
            )
        return c.md_table(["goal", "target", "measured", "within"], rows)

    def exactly_once(self) -> bool | None:
        h = self.held
        if h is None or h.qp_count is None:
            return None
        return h.qp_count == h.n and h.ok == h.n

    def throughput_table(self) -> str:
        header = ["target", "req/s median [min-max]", "x direct", "x queue-proxy"]
        rows = []
        for n in self.names:
            rows.append(
                [
                    LABELS[n],
                    c.fmt_spread(self.spread(n, "tput", tput), 0, thousands=True),
                    c.fmt_ratio(self.paired(n, "direct", "tput", tput) if n != "direct" else None),
                    c.fmt_ratio(
                        self.paired(n, "queue-proxy", "tput", tput) if n == "activator" else None
                    ),
                ]
            )
        return c.md_table(header, rows)

    def cpu_table(self, kind: str = "cpu") -> str:
        header = [
            "target",
            "activator µs/req",
            "queue-proxy µs/req",
            "app µs/req",
            "proxies µs/req",
            "all µs/req",
        ]
        if kind == "cpu":
            header.append("max req/s on one CPU")
        rows = []
        for n in self.names:
            total = self.spread(n, kind, all_us)
            row = [
                LABELS[n],
                c.fmt_spread(self.spread(n, kind, role_us("activator"))),
                c.fmt_spread(self.spread(n, kind, role_us("queue-proxy"))),
                c.fmt_spread(self.spread(n, kind, role_us("app"))),
                c.fmt_spread(self.spread(n, kind, proxies_us)),
                c.fmt_spread(total),
            ]
            if kind == "cpu":
                row.append(c.fmt(1e6 / total.median, 0, thousands=True) if total else "-")
            rows.append(row)
        return c.md_table(header, rows)

    def latency_table(self) -> str:
        digits = 2 if self.cfg.latency_tool == "hey" else 3
        header = [
            "target",
            "achieved req/s",
            "p50 ms",
            "p99 ms",
            "p50 - direct ms",
            "p99 - direct ms",
            "p50 - queue-proxy ms",
        ]
        rows = []
        for n in self.names:
            rate = self.spread(n, "latency", tput)
            rows.append(
                [
                    LABELS[n],
                    c.fmt(rate.median if rate else None, 0, thousands=True),
                    c.fmt_spread(self.spread(n, "latency", p50), digits),
                    c.fmt_spread(self.spread(n, "latency", p99), digits),
                    fmt_delta(self.paired(n, "direct", "latency", p50, op="-"), digits)
                    if n != "direct"
                    else "-",
                    fmt_delta(self.paired(n, "direct", "latency", p99, op="-"), digits)
                    if n != "direct"
                    else "-",
                    fmt_delta(self.paired(n, "queue-proxy", "latency", p50, op="-"), digits)
                    if n == "activator"
                    else "-",
                ]
            )
        return c.md_table(header, rows)

    def held_table(self) -> str:
        assert self.held is not None
        return hd.held_table(self.held)

    def notes(self) -> list[str]:
        out = []
        if self.pinning.enabled:
            cpus = os.cpu_count() or 0
            out.append(
                f"The app, the queue-proxy and the activator all run on CPU "
                f"{self.pinning.server_cpu} (the load generators and this script on CPU "
                f"{self.pinning.load_cpu}; this machine has {cpus} CPUs). On the "
                "activator path the three processes share that one CPU, so its "
                "throughput is bounded by 1 / (all µs/req of the CPU table), and its "
                "latency includes waiting for the CPU behind the other two."
            )
        else:
            out.append("Not pinned: servers and load generators compete for all CPUs.")
        bench = self.warm
        if bench is not None:
            ratio, same = self.cpu_ratio(), self.cpu_ratio_same_run()
            rates = self.paired("queue-proxy", "activator", "cpu", tput)
            if ratio is not None and same is not None and rates is not None:
                out.append(
                    f"Activator CPU per request: {same.median:.2f}x the queue-proxy's in the same "
                    f"activator-path run, {ratio.median:.2f}x the queue-proxy's in its own run. "
                    "The first compares two processes handling the same requests at the same "
                    "rate; in the second the queue-proxy runs at "
                    f"{rates.median:.2f}x the activator path's request rate (it shares the CPU "
                    "with the app only), and a busier event loop handles more requests per "
                    "wake-up, so it costs less per request: compare the queue-proxy's own "
                    "µs/req in the two rows of the CPU table."
                )
            hop = self.added_p50("queue-proxy")
            if hop is not None:
                digits = 2 if self.cfg.latency_tool == "hey" else 3
                out.append(
                    f"The activator hop alone (activator path p50 minus queue-proxy p50): "
                    f"{fmt_delta(hop, digits)} ms."
                )
            for n in self.names:
                runs = self.runs(n, "tput")
                shares = []
                for role in ("app", *PROXIES):
                    s = c.Spread.of(r.share(role) for r in runs)
                    if s is not None:
                        shares.append(f"{s.median:.0%} to the {role}")
                g = c.Spread.of(r.loadgen_util for r in runs)
                if shares and g:
                    line = (
                        f"{n} throughput runs: the servers' CPU went {', '.join(shares)}; wrk "
                        f"used {g.median:.0%} of its CPU"
                    )
                    if g.median >= 0.9:
                        line += " (saturated: this throughput is a lower bound)"
                    out.append(line + ".")
            out += w.quality_notes(bench, "warm-path runs", "--quiet-wait 30 and more --reps")
            if self.cfg.latency_tool == "hey":
                line = "hey reports latencies in 0.1 ms steps; use --latency-tool wrk for µs resolution."
                if self.cfg.rate_workers > 1:
                    line += (
                        f" Each of hey's {self.cfg.rate_workers} clients paces itself with "
                        "its own ticker, all started together, so requests arrive in bursts "
                        f"of {self.cfg.rate_workers} every "
                        f"{1000 * self.cfg.rate_workers / self.cfg.rate:g} ms; on the one "
                        "server CPU a burst queues through every process of the path, so "
                        "p50 includes waiting behind other requests of the burst, more so "
                        "the more processes the path has. `--rate-workers 1` (evenly "
                        "spaced; a little under the rate when a response takes longer "
                        "than the interval) shows the latency of a request that does not "
                        "queue; the paced wrk of `--latency-tool wrk` is in between (its "
                        "connections drift apart)."
                    )
                out.append(line)
        h = self.held
        if h is not None:
            out.append(
                "Held requests: VmRSS counts the activator's user-space memory only; the "
                f"kernel's socket buffers for the {h.n:,} connections are not in it. The "
                "baseline is the fresh cold activator, so one-time allocations of its "
                "first requests are included (spread over all held requests)."
            )
            for p in h.problems:
                out.append(f"Held requests: {p}.")
        return out

    def every_run(self) -> str:
        header = [
            "target",
            "kind",
            "rep",
            "try",
            "req/s",
            "responses",
            "p50 ms",
            "p99 ms",
            "activator µs/req",
            "queue-proxy µs/req",
            "app µs/req",
            "servers CPU",
            "wrk/hey CPU",
            "other CPU",
            "errors / non-2xx",
        ]
        rows = []
        assert self.warm is not None
        for r in sorted(
            self.warm.runs,
            key=lambda r: (KINDS.index(r.kind), r.rep, self.names.index(r.target), r.attempt),
        ):
            res = r.result
            tried = f"{r.attempt} (not used)" if r.superseded else str(r.attempt)
            if res is None:
                rows.append(
                    [r.target, r.kind, str(r.rep), tried] + ["-"] * 10 + [w.failure_cell(r)]
                )
                continue
            rows.append(
                [
                    r.target,
                    r.kind,
                    str(r.rep),
                    tried,
                    c.fmt(res.rps, 0, thousands=True),
                    str(res.requests),
                    c.fmt(res.p50_ms, 3),
                    c.fmt(res.p99_ms, 3),
                    c.fmt(r.us("activator")),
                    c.fmt(r.us("queue-proxy")),
                    c.fmt(r.us("app")),
                    f"{r.server_util:.2f}",
                    f"{r.loadgen_util:.2f}",
                    f"{r.foreign_cpu:.2f}",
                    f"{res.errors} / {res.non2xx}",
                ]
            )
        return c.md_table(header, rows, left=2)

    def render(self, meta: dict[str, str]) -> str:
        cfg = self.cfg
        d, n, conn = cfg.duration, cfg.requests, cfg.connections
        if cfg.latency_tool == "hey":
            lat_cmd = f"hey -z {d}s -c {cfg.rate_workers} -q {cfg.rate / cfg.rate_workers:g}"
        else:
            lat_cmd = (
                f"wrk -t1 -c{cfg.rate_workers} -d{d}s --latency, each connection pausing "
                f"{max(1, round(cfg.rate_workers * 1000 / cfg.rate))} ms between requests"
            )
        lines = [
            f"# activator benchmark, {meta['date']}",
            "",
            f"Command: `{meta['command']}`  ",
            f"Wall time: {meta['wall']}.",
            "",
            "| | |",
            "|---|---|",
            *[f"| {k} | {v} |" for k, v in meta.items() if k not in ("date", "command", "wall")],
            "",
            "## Goals",
            "",
            "Figures next to the goals they are read against (nothing is asserted). Warm-path "
            "cells are medians with [min-max] over the repetitions of per-repetition ratios or "
            "differences.",
            "",
            self.goals_table(),
            "",
        ]
        if self.warm is not None:
            lines += [
                f"## Warm path: throughput, `wrk -t1 -c{conn} -d{d}s -H 'Host: {HOST}'`",
                "",
                f"Repetitions: {cfg.reps}, interleaved across targets (order rotated each "
                "repetition). Cells are medians with [min-max]; ratios are taken within each "
                "repetition.",
                "",
                self.throughput_table(),
                "",
                f"## Warm path: CPU per request, `hey -n {n} -c {conn} -host {HOST}`",
                "",
                "utime+stime of each process (/proc/PID/stat, "
                f"{1000 // c.CLK_TCK} ms ticks) over the run, divided by the responses. The "
                "activator path's queue-proxy is the same process as the queue-proxy target's.",
                "",
                self.cpu_table(),
                "",
                f"## Warm path: latency at a fixed {cfg.rate:,} req/s, `{lat_cmd}`",
                "",
                "Differences (target minus baseline) are taken within each repetition.",
                "",
                self.latency_table(),
                "",
                f"CPU per request in these runs (at {cfg.rate:,} req/s the event loops idle "
                "between requests: far less batching of reads, writes and wake-ups than under "
                "load):",
                "",
                self.cpu_table("latency"),
                "",
            ]
        if self.held is not None:
            h = self.held
            where_client = (
                f"pinned to CPU {self.pinning.load_cpu}" if self.pinning.enabled else "not pinned"
            )
            lines += [
                f"## Held requests: {h.n:,} requests at a revision with no replica",
                "",
                f"Cold activator (containerConcurrency {h.cc}, queue depth 20,000) in front of "
                f"a queue-proxy (CONTAINER_CONCURRENCY={h.cc}) and the app, which are ready but "
                f"not announced. An asyncio client (uvloop, in this script: "
                f"{where_client}) opens {h.n:,} HTTP/1.1 connections ({cfg.held_parallel} connection attempts "
                "at a time), each sending `GET /?id=N` with the Host header, and waits for the "
                "full response. SIGUSR1 then announces the replica.",
                "",
                self.held_table(),
                "",
            ]
        lines += ["## Notes", "", *[f"- {x}" for x in self.notes()], ""]
        if self.warm is not None:
            lines += [
                "<details><summary>Every warm-path run (CPU columns: share of one CPU during "
                "the run)</summary>",
                "",
                self.every_run(),
                "",
                "</details>",
                "",
            ]
        return "\n".join(lines)


def describe_meta(
    cfg: Config,
    pinning: c.Pinning,
    tools: dict[str, str],
    backend_desc: str,
    app: c.Server,
    targets: list[w.Target],
    held_procs: tuple[sv.ActivatorProc, sv.QueueProxy] | None,
    started: datetime.datetime,
    wall: float,
) -> dict[str, str]:
    meta = {
        "date": started.astimezone().isoformat(timespec="seconds"),
        "command": shlex.join(sys.orig_argv),
        "wall": f"{wall:.0f} s",
    }
    for k, v in c.machine_summary(["uvloop", "httptools", "aiohttp", "prometheus-client"]):
        meta[k] = v
    meta["load generators"] = f"{c.tool_version('wrk', tools['wrk'])}, {c.tool_version('hey')}"
    meta["pinning"] = pinning.note
    meta["app"] = f"{backend_desc}, pid {app.pid}"
    for t in targets:
        if t.procs:
            pids = ", ".join(f"{role} pid {s.pid}" for role, s in t.procs.items())
            meta[f"target {t.name}"] = f"{t.detail} (:{t.port}, {pids})"
    if held_procs is not None:
        act, qp = held_procs
        meta["held requests"] = (
            f"`python -m benchmarks.activator_runner --cold "
            f"--container-concurrency {cfg.held_cc}` (:{act.port}, pid "
            f"{act.server.pid}) -> `python -m queueproxy` "
            f"CONTAINER_CONCURRENCY={cfg.held_cc} (:{qp.port}, pid "
            f"{qp.server.pid}) -> the app"
        )
    meta["settings"] = (
        f"reps {cfg.reps}, duration {cfg.duration} s, requests {cfg.requests}, "
        f"connections {cfg.connections}, rate {cfg.rate} req/s with "
        f"{cfg.rate_workers} clients, warm-up {cfg.warmup} s per target, "
        f"held {cfg.held}" + ("" if cfg.warm else ", warm path skipped")
    )
    meta["Host header"] = f"`{HOST}` on every request of every target"
    return meta


# ------------------------------------------------------------------ main


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def estimate_seconds(cfg: Config) -> float:
    total = 5.0
    if cfg.warm:
        per_target = 2 * cfg.duration + cfg.requests / 8000 + 1.0
        total += 3 * (cfg.reps * per_target + cfg.warmup)
    if cfg.held:
        total += 5 + cfg.held / 1000
    return total


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        tools = c.require_tools(["wrk", "hey"])
    except c.BenchError as e:
        print(f"benchmarks.activator: {e}", file=sys.stderr)
        return 2
    # Every held request is one socket here and one at the activator (which
    # inherits this limit); aim for twice that, need it once.
    nofile = c.raise_nofile(2 * cfg.held + 1024)
    if cfg.held and nofile[0] < cfg.held + 512:
        print(
            f"benchmarks.activator: --held {cfg.held} needs RLIMIT_NOFILE >= {cfg.held + 512}; "
            f"the limit is {nofile[0]} (hard {nofile[1]}). Raise it (ulimit -n) or lower "
            "--held.",
            file=sys.stderr,
        )
        return 2
    pinning = c.choose_pinning(cfg.pin, cfg.server_cpu, cfg.load_cpu)
    pinning.pin_self()
    log(f"pinning: {pinning.note}; RLIMIT_NOFILE {nofile[0]}/{nofile[1]}")
    c.interrupt_on_signals(signal.SIGTERM, signal.SIGHUP)
    started = datetime.datetime.now()
    t0 = time.monotonic()
    report_md: str | None = None
    try:
        with (
            tempfile.TemporaryDirectory(prefix="bench-activator-") as tmpname,
            c.Supervisor(Path(tmpname), pinning) as sup,
        ):
            tmp = Path(tmpname)
            backend = sv.start_backend(sup, cfg.backend_cmd, name="app")
            app, backend_port = backend.server, backend.port
            host_hdr = {"Host": HOST}
            direct_body = c.http_get_headers(f"http://127.0.0.1:{backend_port}/", host_hdr)[1]
            expect_body = None if cfg.backend_cmd else direct_body
            targets: list[w.Target] = []
            warm: w.Bench | None = None
            if cfg.warm:
                qp = sv.start_queue_proxy(sup, "queue-proxy", backend_port, 0)
                act = sv.start_activator(sup, "activator", qp.port, 0, cold=False)
                targets = [
                    w.Target("direct", backend_port, {}, "the app, no proxy"),
                    w.Target(
                        "queue-proxy",
                        qp.port,
                        {"queue-proxy": qp.server},
                        "`python -m queueproxy`, CONTAINER_CONCURRENCY=0",
                    ),
                    w.Target(
                        "activator",
                        act.port,
                        {"activator": act.server, "queue-proxy": qp.server},
                        "`python -m benchmarks.activator_runner` (containerConcurrency 0, "
                        "one ready replica) -> the same queue-proxy",
                    ),
                ]
                for t in targets[1:]:
                    status, body = c.http_get_headers(t.url + "/", host_hdr)
                    if not 200 <= status < 300 or (expect_body is not None and body != expect_body):
                        raise c.BenchError(
                            f"{t.name} does not reach the app: GET / gave {status} "
                            f"{body[:80]!r}, direct gave {direct_body[:80]!r}"
                        )
                warm = w.Bench(pinning, app, targets, cfg.quiet_wait)
                log(
                    "targets: "
                    + ", ".join(f"{t.name} :{t.port}" for t in targets)
                    + f"; about {estimate_seconds(cfg):.0f} s in all"
                )
                warm.warm_up(cfg.warmup, cfg.connections, HOST)
                warm.run_all(steps(cfg, tmp), cfg.reps, log)
            held: hd.Held | None = None
            held_procs: tuple[sv.ActivatorProc, sv.QueueProxy] | None = None
            if cfg.held:
                settings = hd.HeldSettings(
                    cfg.held, cfg.held_cc, cfg.held_parallel, cfg.held_timeout
                )
                held, h_act, h_qp = hd.run_held(
                    settings, sup, app, backend_port, expect_body, nofile, log
                )
                held_procs = (h_act, h_qp)
            wall = time.monotonic() - t0
            meta = describe_meta(
                cfg, pinning, tools, backend.desc, app, targets, held_procs, started, wall
            )
            report_md = Report(cfg, pinning, warm, held).render(meta)
    except KeyboardInterrupt as e:
        log(f"interrupted ({str(e) or 'Ctrl-C'}); every started process was stopped")
        return 130
    except c.BenchError as e:
        print(f"benchmarks.activator: {e}", file=sys.stderr)
        return 1
    print(report_md)
    if cfg.write:
        cfg.results_dir.mkdir(parents=True, exist_ok=True)
        out = cfg.results_dir / f"activator-{started.strftime('%Y%m%d-%H%M%S')}.md"
        out.write_text(report_md)
        log(f"wrote {out}")
    log(f"done in {time.monotonic() - t0:.0f} s; every started process was stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
