"""Benchmark: the queue-proxy against no proxy and against nginx (and a Go ReverseProxy).

In one run on 127.0.0.1 this starts a backend (the helloworld sample app, or
``--backend-cmd``), ``python -m queueproxy`` in front of it, nginx in front of
the same backend (when installed) and, with ``--with-go-proxy PATH``, a Go
``httputil.ReverseProxy`` binary (env LISTEN / UPSTREAM). Servers are pinned to
one CPU and the load generator to another. For every target it measures,
in repetitions interleaved across targets:

- throughput: ``wrk -t1 -c50 -d<duration>s``;
- CPU per request: utime+stime from /proc/<pid>/stat of the proxy's processes
  (and of the backend's) around ``hey -n <requests> -c 50``, divided by the
  number of responses;
- latency at a fixed rate: p50/p99 of ``hey -z <duration>s -c 10 -q 100``
  (1,000 req/s in total), or a paced wrk with ``--latency-tool wrk``;

and prints (and writes to benchmarks/results/queueproxy-<timestamp>.md) a
Markdown report: medians with [min-max] over the repetitions, and ratios to
direct, nginx and the Go proxy taken within each repetition.

    .venv/bin/python -m benchmarks.queueproxy            # ~2 minutes
    .venv/bin/python -m benchmarks.queueproxy --quick    # ~30 s smoke run
    .venv/bin/python -m benchmarks.queueproxy --help

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
from benchmarks import _servers as sv
from benchmarks import _warm as w

HERE = Path(__file__).resolve().parent
KINDS = ("tput", "cpu", "latency")
BASELINES = ("direct", "nginx", "goproxy")
DISTURBED_CPU = w.DISTURBED_CPU


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
    go_proxy: str | None
    nginx: bool
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
        prog="python -m benchmarks.queueproxy",
        description="Measure the queue-proxy against direct access and nginx (and a Go "
        "ReverseProxy) in one run on 127.0.0.1: throughput, CPU per request, "
        "latency at a fixed rate. Medians of interleaved repetitions.",
    )
    p.add_argument("--reps", type=int, help="repetitions, interleaved across targets (default 3)")
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
        help="for a shared machine: before each run, wait up to SECONDS until "
        "other processes use under 0.1 CPU, and redo (once) a run they "
        "disturbed; adds at most about 2*SECONDS + one run per run "
        "(default 0: off)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run of ~30 s: 1 repetition, 3 s runs, 5000 requests "
        "(explicit options still win)",
    )
    p.add_argument(
        "--backend-cmd",
        metavar="CMD",
        help="shell command of the backend instead of the sample app; it must "
        "serve GET / with 2xx on 127.0.0.1:$PORT",
    )
    p.add_argument(
        "--with-go-proxy",
        metavar="PATH",
        dest="go_proxy",
        help="also measure this Go ReverseProxy binary (env LISTEN=host:port, "
        "UPSTREAM=host:port; run with GOMAXPROCS=1)",
    )
    p.add_argument("--no-nginx", action="store_true", help="skip the nginx reference")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    p.add_argument(
        "--server-cpu", type=int, default=1, help="CPU of the backend and proxies (default 1)"
    )
    p.add_argument("--load-cpu", type=int, default=0, help="CPU of the load generator (default 0)")
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
        go_proxy=a.go_proxy,
        nginx=not a.no_nginx,
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
    if cfg.go_proxy is not None and not os.access(cfg.go_proxy, os.X_OK):
        problems.append(f"--with-go-proxy: {cfg.go_proxy} is not an executable file")
    if problems:
        p.error("; ".join(problems))
    return cfg


# ------------------------------------------------------------------ targets


def start_targets(
    cfg: Config, sup: c.Supervisor, tmp: Path, nginx: str | None
) -> tuple[sv.Backend, list[w.Target]]:
    backend = sv.start_backend(sup, cfg.backend_cmd)
    targets = [w.Target("direct", backend.port, {}, "the backend, no proxy")]
    qp = sv.start_queue_proxy(sup, "queue-proxy", backend.port, 0)
    targets.append(
        w.Target(
            "queue-proxy",
            qp.port,
            {"queue-proxy": qp.server},
            "`python -m queueproxy`, CONTAINER_CONCURRENCY=0",
        )
    )
    if nginx:
        server, port = sv.start_nginx(sup, nginx, tmp, backend.port)
        targets.append(
            w.Target(
                "nginx",
                port,
                {"nginx": server},
                f"{c.tool_version('nginx', nginx)}, 1 worker, keepalive upstream pool",
            )
        )
    if cfg.go_proxy:
        server, port = sv.start_go_proxy(sup, cfg.go_proxy, backend.port)
        targets.append(
            w.Target(
                "goproxy",
                port,
                {"goproxy": server},
                f"`{cfg.go_proxy}` ({c.go_binary_version(cfg.go_proxy)}), GOMAXPROCS=1",
            )
        )
    return backend, targets


def steps(cfg: Config, tmp: Path) -> list[w.Step]:
    return [
        w.tput_step(cfg.connections, cfg.duration),
        w.cpu_step(cfg.requests, cfg.connections),
        w.latency_step(cfg.rate, cfg.rate_workers, cfg.duration, cfg.latency_tool, tmp),
    ]


# ------------------------------------------------------------------ report


Metric = w.Metric
tput, proxy_us, backend_us, p50, p99 = w.tput, w.proxy_us, w.backend_us, w.p50, w.p99


def total_us(r: w.Run) -> float | None:
    if r.backend_us is None:
        return None
    return r.backend_us + (r.proxy_us or 0.0)


class Report:
    def __init__(self, cfg: Config, bench: w.Bench) -> None:
        self.cfg = cfg
        self.bench = bench
        self.names = [t.name for t in bench.targets]
        self.baselines = [b for b in BASELINES if b in self.names]

    def runs(self, target: str, kind: str) -> list[w.Run]:
        return self.bench.used(target, kind)

    def spread(self, target: str, kind: str, metric: Metric) -> c.Spread | None:
        return c.Spread.of(metric(r) for r in self.runs(target, kind))

    def ratio(self, target: str, base: str, kind: str, metric: Metric) -> c.Spread | None:
        """Per-repetition ratio target/base (same repetition: slow drift cancels out)."""
        if target == base:
            return None
        mine = {r.rep: metric(r) for r in self.runs(target, kind)}
        theirs = {r.rep: metric(r) for r in self.runs(base, kind)}
        ratios = []
        for rep, v in mine.items():
            b = theirs.get(rep)
            if v is not None and b:
                ratios.append(v / b)
        return c.Spread.of(ratios)

    def throughput_table(self) -> str:
        header = ["target", "req/s median [min-max]"] + [f"x {b}" for b in self.baselines]
        rows = []
        for n in self.names:
            row = [n, c.fmt_spread(self.spread(n, "tput", tput), 0, thousands=True)]
            row += [c.fmt_ratio(self.ratio(n, b, "tput", tput)) for b in self.baselines]
            rows.append(row)
        return c.md_table(header, rows)

    def cpu_table(self) -> str:
        proxies = [b for b in self.baselines if b != "direct"]
        header = (
            ["target", "proxy µs/req"]
            + [f"x {b}" for b in proxies]
            + ["x backend", "backend µs/req", "proxy + backend µs/req", "max req/s on one CPU"]
        )
        rows = []
        for n in self.names:
            total = self.spread(n, "cpu", total_us)
            own = [r for r in self.runs(n, "cpu") if r.proxy_us is not None and r.backend_us]
            x_backend = c.Spread.of((r.proxy_us or 0) / (r.backend_us or 1) for r in own)
            row = [n, c.fmt_spread(self.spread(n, "cpu", proxy_us))]
            row += [c.fmt_ratio(self.ratio(n, b, "cpu", proxy_us)) for b in proxies]
            row += [
                c.fmt_ratio(x_backend),
                c.fmt_spread(self.spread(n, "cpu", backend_us)),
                c.fmt_spread(total),
                c.fmt(1e6 / total.median, 0, thousands=True) if total else "-",
            ]
            rows.append(row)
        return c.md_table(header, rows)

    def latency_table(self) -> str:
        header = ["target", "achieved req/s", "p50 ms", "p99 ms"]
        for b in self.baselines:
            header += [f"p50 x {b}", f"p99 x {b}"]
        rows = []
        digits = 2 if self.cfg.latency_tool == "hey" else 3
        for n in self.names:
            rate = self.spread(n, "latency", tput)
            row = [
                n,
                c.fmt(rate.median if rate else None, 0, thousands=True),
                c.fmt_spread(self.spread(n, "latency", p50), digits),
                c.fmt_spread(self.spread(n, "latency", p99), digits),
            ]
            for b in self.baselines:
                row += [
                    c.fmt_ratio(self.ratio(n, b, "latency", p50)),
                    c.fmt_ratio(self.ratio(n, b, "latency", p99)),
                ]
            rows.append(row)
        return c.md_table(header, rows)

    def notes(self) -> list[str]:
        out = []
        bench = self.bench
        direct = self.runs("direct", "tput")
        util = c.Spread.of(r.server_util for r in direct)
        gen = c.Spread.of(r.loadgen_util for r in direct)
        other = c.Spread.of(r.foreign_cpu for r in direct)
        if util and gen and other:
            if util.median >= 0.9:
                who = "the backend's CPU: the backend is the bottleneck"
            elif gen.median >= 0.9:
                who = "the load generator's CPU: direct figures are a lower bound"
            elif other.median >= DISTURBED_CPU:
                who = (
                    f"no CPU of ours; other processes competed for the CPUs "
                    f"({other.median:.2f} CPU)"
                )
            else:
                who = "no CPU (round trips on loopback)"
            out.append(
                f"Direct throughput runs: the backend used {util.median:.0%} of its CPU "
                f"and wrk {gen.median:.0%} of its CPU, so direct throughput is bounded "
                f"by {who}."
            )
        for n in self.names:
            runs = [r for r in self.runs(n, "tput") if r.proxy_ticks is not None]
            if not runs:
                continue
            p_share = c.Spread.of((r.proxy_ticks or 0) / c.CLK_TCK / r.wall for r in runs)
            b_share = c.Spread.of(r.backend_ticks / c.CLK_TCK / r.wall for r in runs)
            g_share = c.Spread.of(r.loadgen_util for r in runs)
            if p_share and b_share and g_share:
                line = (
                    f"{n} throughput runs: the servers' CPU went {b_share.median:.0%} to the "
                    f"backend and {p_share.median:.0%} to {n}; wrk used "
                    f"{g_share.median:.0%} of its CPU"
                )
                if g_share.median >= 0.9:
                    line += " (saturated: this throughput is a lower bound)"
                out.append(line + ".")
        b_us = self.spread("direct", "cpu", backend_us)
        if b_us and bench.pinning.enabled:
            out.append(
                f"The backend alone costs {b_us.median:.1f} µs of CPU per request. Backend and "
                "proxy share one CPU, so a proxied target's throughput is bounded by "
                "1 / (proxy + backend µs/req) (last column of the CPU table): the x direct "
                "ratio depends on the backend's cost as much as on the proxy's, while proxy "
                "µs/req and its x nginx ratio do not."
            )
        out += w.quality_notes(bench, "runs", "--quiet-wait 30 and more --reps")
        if self.cfg.latency_tool == "hey":
            out.append(
                "hey reports latencies in 0.1 ms steps; use --latency-tool wrk for µs resolution."
            )
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
            "proxy µs/req",
            "backend µs/req",
            "servers CPU",
            "wrk/hey CPU",
            "other CPU",
            "errors / non-2xx",
        ]
        rows = []
        for r in sorted(
            self.bench.runs,
            key=lambda r: (KINDS.index(r.kind), r.rep, self.names.index(r.target), r.attempt),
        ):
            res = r.result
            tried = f"{r.attempt} (not used)" if r.superseded else str(r.attempt)
            if res is None:
                rows.append([r.target, r.kind, str(r.rep), tried] + ["-"] * 9 + [w.failure_cell(r)])
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
                    c.fmt(r.proxy_us),
                    c.fmt(r.backend_us),
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
            f"# queue-proxy benchmark, {meta['date']}",
            "",
            f"Command: `{meta['command']}`  ",
            f"Wall time: {meta['wall']}. Repetitions: {cfg.reps}, interleaved across targets "
            "(order rotated each repetition). Cells are medians with [min-max] over the "
            "repetitions; ratios (x) are taken within each repetition, then their median "
            "[min-max] is shown.",
            "",
            "| | |",
            "|---|---|",
            *[f"| {k} | {v} |" for k, v in meta.items() if k not in ("date", "command", "wall")],
            "",
            f"## Throughput: `wrk -t1 -c{conn} -d{d}s`",
            "",
            (
                "Backend and proxy share one CPU: this is bounded by their combined CPU cost."
                if self.bench.pinning.enabled
                else "Not pinned: backend, proxy and load generator compete for all CPUs."
            ),
            "",
            self.throughput_table(),
            "",
            f"## CPU per request: `hey -n {n} -c {conn}`",
            "",
            "utime+stime of all the proxy's processes (/proc/PID/stat, "
            f"{1000 // c.CLK_TCK} ms ticks) over the run, divided by the responses. "
            "x backend: proxy cost relative to the backend's own cost in the same run.",
            "",
            self.cpu_table(),
            "",
            f"## Latency at a fixed {cfg.rate:,} req/s: `{lat_cmd}`",
            "",
            self.latency_table(),
            "",
            "## Notes",
            "",
            *[f"- {x}" for x in self.notes()],
            "",
            "<details><summary>Every run (CPU columns: share of one CPU during the run)</summary>",
            "",
            self.every_run(),
            "",
            "</details>",
            "",
        ]
        return "\n".join(lines)


def describe_meta(
    cfg: Config,
    bench: w.Bench,
    tools: dict[str, str],
    backend_desc: str,
    started: datetime.datetime,
    wall: float,
) -> dict[str, str]:
    meta = {
        "date": started.astimezone().isoformat(timespec="seconds"),
        "command": shlex.join(sys.orig_argv),
        "wall": f"{wall:.0f} s",
    }
    for k, v in c.machine_summary(["uvloop", "httptools", "aiohttp"]):
        meta[k] = v
    meta["load generators"] = f"{c.tool_version('wrk', tools['wrk'])}, {c.tool_version('hey')}"
    meta["pinning"] = bench.pinning.note
    meta["backend"] = f"{backend_desc}, pid {bench.app.pid}"
    for t in bench.targets:
        where = f":{t.port}" + "".join(f", pid {s.pid}" for s in t.procs.values())
        meta[f"target {t.name}"] = f"{t.detail} ({where})"
    meta["settings"] = (
        f"reps {cfg.reps}, duration {cfg.duration} s, requests {cfg.requests}, "
        f"connections {cfg.connections}, rate {cfg.rate} req/s with "
        f"{cfg.rate_workers} clients, warm-up {cfg.warmup} s per target"
    )
    return meta


# ------------------------------------------------------------------ main


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def estimate_seconds(cfg: Config, targets: int) -> float:
    per_target = 2 * cfg.duration + cfg.requests / 10000 + 1.0
    return targets * (cfg.reps * per_target + cfg.warmup) + 5


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        tools = c.require_tools(["wrk", "hey"])
    except c.BenchError as e:
        print(f"benchmarks.queueproxy: {e}", file=sys.stderr)
        return 2
    nginx = c.which("nginx") if cfg.nginx else None
    if cfg.nginx and nginx is None:
        log(f"nginx not found: measuring without the nginx reference ({c.APT_HINT})")
    pinning = c.choose_pinning(cfg.pin, cfg.server_cpu, cfg.load_cpu)
    pinning.pin_self()
    log(f"pinning: {pinning.note}")
    c.interrupt_on_signals(signal.SIGTERM, signal.SIGHUP)
    started = datetime.datetime.now()
    t0 = time.monotonic()
    report_md: str | None = None
    try:
        with (
            tempfile.TemporaryDirectory(prefix="bench-queueproxy-") as tmpname,
            c.Supervisor(Path(tmpname), pinning) as sup,
        ):
            tmp = Path(tmpname)
            backend, targets = start_targets(cfg, sup, tmp, nginx)
            direct_body = c.http_get(f"http://127.0.0.1:{backend.port}/")[1]
            for t in targets[1:]:
                status, body = c.http_get(t.url + "/")
                if not 200 <= status < 300 or (cfg.backend_cmd is None and body != direct_body):
                    raise c.BenchError(
                        f"{t.name} does not proxy to the backend: GET / gave "
                        f"{status} {body[:80]!r}, direct gave {direct_body[:80]!r}"
                    )
            bench = w.Bench(pinning, backend.server, targets, cfg.quiet_wait)
            log(
                "targets: "
                + ", ".join(f"{t.name} :{t.port}" for t in targets)
                + f"; about {estimate_seconds(cfg, len(targets)):.0f} s"
            )
            bench.warm_up(cfg.warmup, cfg.connections)
            bench.run_all(steps(cfg, tmp), cfg.reps, log)
            wall = time.monotonic() - t0
            meta = describe_meta(cfg, bench, tools, backend.desc, started, wall)
            report_md = Report(cfg, bench).render(meta)
    except KeyboardInterrupt as e:
        log(f"interrupted ({str(e) or 'Ctrl-C'}); every started process was stopped")
        return 130
    except c.BenchError as e:
        print(f"benchmarks.queueproxy: {e}", file=sys.stderr)
        return 1
    print(report_md)
    if cfg.write:
        cfg.results_dir.mkdir(parents=True, exist_ok=True)
        out = cfg.results_dir / f"queueproxy-{started.strftime('%Y%m%d-%H%M%S')}.md"
        out.write_text(report_md)
        log(f"wrote {out}")
    log(f"done in {time.monotonic() - t0:.0f} s; every started process was stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
