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
import getpass
import json
import os
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import _common as c

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SAMPLE_APP = REPO / "examples" / "helloworld" / "app.py"
KINDS = ("tput", "cpu", "latency")
BASELINES = ("direct", "nginx", "goproxy")
# Environment variables of the queue-proxy; inherited ones are dropped so that
# the caller's shell cannot change what is measured.
# Other processes using more CPU than this (in CPUs) during a run "disturbed" it.
DISTURBED_CPU = 0.1
QP_ENV_PREFIXES = ("SERVING_", "QUEUE_", "USER_", "REVISION_", "CONTAINER_", "DRAIN_")


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
    p.add_argument("--duration", type=int,
                   help="seconds of each throughput and latency run (default 5)")
    p.add_argument("--requests", type=int,
                   help="requests of each fixed-count CPU run, hey -n (default 20000)")
    p.add_argument("--connections", type=int, default=50,
                   help="connections of the throughput and CPU runs (default 50)")
    p.add_argument("--rate", type=int, default=1000,
                   help="total req/s of the latency run (default 1000)")
    p.add_argument("--rate-workers", type=int, default=10,
                   help="concurrent clients of the latency run (default 10)")
    p.add_argument("--warmup", type=int,
                   help="seconds of wrk load per target before measuring (default 1)")
    p.add_argument("--latency-tool", choices=("hey", "wrk"), default="hey",
                   help="hey -q (default; 0.1 ms resolution) or wrk paced by a delay() "
                        "script (µs resolution, rate slightly under --rate)")
    p.add_argument("--quiet-wait", type=float, default=0.0, metavar="SECONDS",
                   help="for a shared machine: before each run, wait up to SECONDS until "
                        "other processes use under 0.1 CPU, and redo (once) a run they "
                        "disturbed; adds at most about 2*SECONDS + one run per run "
                        "(default 0: off)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run of ~30 s: 1 repetition, 3 s runs, 5000 requests "
                        "(explicit options still win)")
    p.add_argument("--backend-cmd", metavar="CMD",
                   help="shell command of the backend instead of the sample app; it must "
                        "serve GET / with 2xx on 127.0.0.1:$PORT")
    p.add_argument("--with-go-proxy", metavar="PATH", dest="go_proxy",
                   help="also measure this Go ReverseProxy binary (env LISTEN=host:port, "
                        "UPSTREAM=host:port; run with GOMAXPROCS=1)")
    p.add_argument("--no-nginx", action="store_true", help="skip the nginx reference")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    p.add_argument("--server-cpu", type=int, default=1,
                   help="CPU of the backend and proxies (default 1)")
    p.add_argument("--load-cpu", type=int, default=0,
                   help="CPU of the load generator (default 0)")
    p.add_argument("--results-dir", type=Path, default=HERE / "results",
                   help="where the report is written (default benchmarks/results)")
    p.add_argument("--no-write", action="store_true", help="print the report only")
    a = p.parse_args(argv)
    base = QUICK if a.quick else DEFAULT

    def pick(name: str) -> int:
        v = getattr(a, name)
        return base[name] if v is None else int(v)

    cfg = Config(
        reps=pick("reps"), duration=pick("duration"), requests=pick("requests"),
        connections=a.connections, rate=a.rate, rate_workers=a.rate_workers,
        warmup=pick("warmup"), latency_tool=a.latency_tool, quiet_wait=a.quiet_wait,
        backend_cmd=a.backend_cmd,
        go_proxy=a.go_proxy, nginx=not a.no_nginx, pin=not a.no_pin, server_cpu=a.server_cpu,
        load_cpu=a.load_cpu, results_dir=a.results_dir, write=not a.no_write, quick=a.quick,
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


@dataclass
class Target:
    name: str
    port: int
    proxy: c.Server | None
    """None for direct: no proxy in the path."""
    detail: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


def start_backend(cfg: Config, sup: c.Supervisor) -> tuple[c.Server, int, str]:
    port = c.free_port()
    env = dict(os.environ, PORT=str(port))
    if cfg.backend_cmd:
        server = sup.start("backend", ["/bin/sh", "-c", cfg.backend_cmd], env, cwd=REPO)
        desc = f"`{cfg.backend_cmd}`"
    else:
        env.update(TARGET="World", HOST="127.0.0.1")
        server = sup.start("backend", [sys.executable, str(SAMPLE_APP)], env, cwd=REPO)
        desc = "examples/helloworld/app.py (aiohttp + uvloop, one process)"
    c.wait_http_ok(f"http://127.0.0.1:{port}/", [server])
    return server, port, desc


def start_queue_proxy(sup: c.Supervisor, backend_port: int) -> Target:
    env = {k: v for k, v in os.environ.items() if not k.startswith(QP_ENV_PREFIXES)}
    env.update({
        "SERVING_NAMESPACE": "default", "SERVING_CONFIGURATION": "hello",
        "SERVING_REVISION": "hello-00001", "SERVING_POD": "hello-pod",
        "SERVING_POD_IP": "127.0.0.1", "CONTAINER_CONCURRENCY": "0",
        # port 0: the queue-proxy binds a free port itself and reports it
        "QUEUE_SERVING_PORT": "0", "QUEUE_ADMIN_PORT": "0", "QUEUE_METRICS_PORT": "0",
        "USER_METRICS_PORT": "0", "USER_PORT": str(backend_port),
        "REVISION_TIMEOUT_SECONDS": "300", "QUEUE_BIND_ADDRESS": "127.0.0.1",
        "DRAIN_QUIET_PERIOD_SECONDS": "0",
    })
    # cwd = the repository, so `-m queueproxy` is the package (never this script).
    server = sup.start("queue-proxy", [sys.executable, "-m", "queueproxy"], env, cwd=REPO)
    deadline = time.monotonic() + 20
    while True:
        server.ensure_alive()
        for line in server.stdout_path.read_text(errors="replace").splitlines():
            try:
                info = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(info, dict) and info.get("queue_proxy") == "listening":
                port = int(info["serving_port"])
                c.wait_http_ok(f"http://127.0.0.1:{port}/", [server])
                return Target("queue-proxy", port, server,
                              "`python -m queueproxy`, CONTAINER_CONCURRENCY=0")
        if time.monotonic() > deadline:
            raise c.BenchError(f"queue-proxy printed no 'listening' line in 20 s:\n{server.log_tail()}")
        time.sleep(0.05)


NGINX_CONF = """\
# Generated by benchmarks/queueproxy.py: a minimal reverse proxy to compare with.
worker_processes 1;
daemon off;
master_process on;
{user_line}pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    # nginx closes a client connection after 1000 requests by default; the
    # other proxies never do, and reconnecting would be measured too.
    keepalive_requests 1000000;
    keepalive_timeout 75s;

    upstream backend {{
        server 127.0.0.1:{backend_port};
        keepalive 1000;
        keepalive_requests 1000000;
        keepalive_timeout 75s;
    }}

    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
        }}
    }}
}}
"""


def start_nginx(sup: c.Supervisor, nginx: str, tmp: Path, backend_port: int) -> Target:
    ntmp = tmp / "nginx"
    ntmp.mkdir()
    port = c.free_port()
    # Run as the current user: `user` only matters (and is only allowed) for a root master.
    user_line = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""
    conf = ntmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(user_line=user_line, tmp=ntmp, port=port,
                                      backend_port=backend_port))
    server = sup.start("nginx", [nginx, "-p", str(ntmp), "-e", str(ntmp / "nginx-error.log"),
                                 "-c", str(conf)])
    c.wait_http_ok(f"http://127.0.0.1:{port}/", [server])
    return Target("nginx", port, server,
                  f"{c.tool_version('nginx', nginx)}, 1 worker, keepalive upstream pool")


def start_go_proxy(sup: c.Supervisor, path: str, backend_port: int) -> Target:
    port = c.free_port()
    env = dict(os.environ, LISTEN=f"127.0.0.1:{port}", UPSTREAM=f"127.0.0.1:{backend_port}",
               GOMAXPROCS="1")
    server = sup.start("goproxy", [path], env)
    c.wait_http_ok(f"http://127.0.0.1:{port}/", [server])
    return Target("goproxy", port, server,
                  f"`{path}` ({c.go_binary_version(path)}), GOMAXPROCS=1")


# ------------------------------------------------------------------ measuring


@dataclass
class Run:
    """One measurement of one target in one repetition."""

    target: str
    kind: str
    rep: int
    argv: list[str]
    rc: int
    wall: float
    result: c.LoadResult | None
    error: str | None
    proxy_ticks: int | None
    backend_ticks: int
    loadgen_cpu: float
    foreign_cpu: float
    attempt: int = 1
    superseded: bool = False
    """True when another attempt of the same measurement was used instead (--quiet-wait)."""

    def _per_req_us(self, ticks: int | None) -> float | None:
        if ticks is None or self.result is None or self.result.requests == 0:
            return None
        return ticks * 1e6 / c.CLK_TCK / self.result.requests

    @property
    def proxy_us(self) -> float | None:
        return self._per_req_us(self.proxy_ticks)

    @property
    def backend_us(self) -> float | None:
        return self._per_req_us(self.backend_ticks)

    @property
    def server_util(self) -> float:
        """Share of one CPU used by backend + proxy during the run."""
        return ((self.proxy_ticks or 0) + self.backend_ticks) / c.CLK_TCK / self.wall

    @property
    def loadgen_util(self) -> float:
        return self.loadgen_cpu / self.wall

    @property
    def disturbed(self) -> bool:
        return self.foreign_cpu > DISTURBED_CPU

    @property
    def bad(self) -> bool:
        r = self.result
        return self.error is not None or r is None or r.errors > 0 or r.non2xx > 0


@dataclass
class Bench:
    cfg: Config
    pinning: c.Pinning
    backend: c.Server
    targets: list[Target]
    tmp: Path
    runs: list[Run] = field(default_factory=list)

    def load_argv(self, kind: str, url: str) -> tuple[list[str], Callable[[str], c.LoadResult],
                                                     float, dict[str, str] | None]:
        cfg = self.cfg
        d = cfg.duration
        if kind == "tput":
            return (["wrk", "-t1", f"-c{cfg.connections}", f"-d{d}s", "--latency", url],
                    c.parse_wrk, d + 30, None)
        if kind == "cpu":
            # bounded: at least 100 req/s, or it is given up
            return (["hey", "-n", str(cfg.requests), "-c", str(cfg.connections), "-t", "30", url],
                    c.parse_hey, 30 + cfg.requests / 100, None)
        if cfg.latency_tool == "hey":
            q = cfg.rate / cfg.rate_workers
            return (["hey", "-z", f"{d}s", "-c", str(cfg.rate_workers), "-q", f"{q:g}",
                     "-t", "30", url], c.parse_hey, d + 40, None)
        script = self.tmp / "paced.lua"
        if not script.exists():
            script.write_text(c.WRK_PACED_LUA)
        delay_ms = max(1, round(cfg.rate_workers * 1000 / cfg.rate))
        return (["wrk", "-t1", f"-c{cfg.rate_workers}", f"-d{d}s", "--latency", "-s", str(script),
                 url], c.parse_wrk, d + 30, dict(os.environ, BENCH_WRK_DELAY_MS=str(delay_ms)))

    def server_sids(self) -> list[int]:
        return [self.backend.pid] + [t.proxy.pid for t in self.targets if t.proxy]

    def measure(self, target: Target, kind: str, rep: int, attempt: int = 1) -> Run:
        argv, parser, timeout, env = self.load_argv(kind, target.url)
        all_sids = self.server_sids()
        before = c.CpuSnapshot.take(all_sids)
        load = c.run_load(argv, self.pinning, timeout, env)
        after = c.CpuSnapshot.take(all_sids)
        result: c.LoadResult | None = None
        error: str | None = None
        if load.rc != 0:
            error = f"exit status {load.rc}: {load.output.strip()[-300:]}"
        else:
            try:
                result = parser(load.output)
            except ValueError as e:
                error = f"{e}: {load.output.strip()[-300:]}"
        run = Run(
            target=target.name, kind=kind, rep=rep, argv=argv, rc=load.rc, wall=load.wall,
            result=result, error=error,
            proxy_ticks=(c.session_ticks_between(before, after, target.proxy.pid)
                         if target.proxy else None),
            backend_ticks=c.session_ticks_between(before, after, self.backend.pid),
            loadgen_cpu=after.children_cpu - before.children_cpu,
            foreign_cpu=c.foreign_cpu_seconds(before, after, all_sids) / load.wall,
            attempt=attempt,
        )
        self.runs.append(run)
        return run

    def check_servers(self) -> None:
        self.backend.ensure_alive()
        for t in self.targets:
            if t.proxy:
                t.proxy.ensure_alive()

    def warm_up(self) -> None:
        if self.cfg.warmup <= 0:
            return
        for t in self.targets:
            c.run_load(["wrk", "-t1", f"-c{self.cfg.connections}", f"-d{self.cfg.warmup}s", t.url],
                       self.pinning, 30 + self.cfg.warmup)
        self.check_servers()

    def run_all(self, log: Callable[[str], None]) -> None:
        t0 = time.monotonic()
        for rep in range(1, self.cfg.reps + 1):
            # Rotate the order each repetition so that no target is always first.
            k = (rep - 1) % len(self.targets)
            order = self.targets[k:] + self.targets[:k]
            for kind in KINDS:
                for t in order:
                    attempts = 2 if self.cfg.quiet_wait > 0 else 1
                    tries: list[Run] = []
                    for attempt in range(1, attempts + 1):
                        if self.cfg.quiet_wait > 0:
                            waited, busy = c.wait_for_quiet(self.server_sids(), self.cfg.quiet_wait,
                                                            DISTURBED_CPU)
                            if busy >= DISTURBED_CPU:
                                log(f"machine still busy after {waited:.0f} s (other processes "
                                    f"use {busy:.2f} CPU); measuring anyway")
                        run = self.measure(t, kind, rep, attempt)
                        tries.append(run)
                        log(f"{time.monotonic() - t0:5.0f}s rep {rep}/{self.cfg.reps} "
                            f"{kind:>7} {t.name:>11}: {brief(run)}")
                        self.check_servers()
                        time.sleep(0.2)
                        if not run.disturbed:
                            break
                    # Of several attempts, keep the least disturbed one.
                    keep = min(tries, key=lambda r: (r.bad, r.foreign_cpu))
                    for r in tries:
                        r.superseded = r is not keep


def brief(run: Run) -> str:
    if run.error or run.result is None:
        return f"FAILED {run.error}"
    r = run.result
    s = f"{r.rps:9,.0f} req/s"
    if run.kind == "latency":
        s += f"  p50 {c.fmt(r.p50_ms, 3)} ms  p99 {c.fmt(r.p99_ms, 3)} ms"
    if run.kind == "cpu":
        if run.proxy_us is not None:
            s += f"  proxy {run.proxy_us:6.1f} µs/req"
        s += f"  backend {c.fmt(run.backend_us)} µs/req"
    if run.kind == "tput":
        s += f"  servers {run.server_util:.0%} of a CPU, load generator {run.loadgen_util:.0%}"
    if r.errors or r.non2xx:
        s += f"  ERRORS {r.errors} non-2xx {r.non2xx}"
    if run.disturbed:
        s += f"  (disturbed: other processes used {run.foreign_cpu:.2f} CPU)"
    return s


# ------------------------------------------------------------------ report


Metric = Callable[[Run], float | None]


def tput(r: Run) -> float | None:
    return r.result.rps if r.result else None


def proxy_us(r: Run) -> float | None:
    return r.proxy_us


def backend_us(r: Run) -> float | None:
    return r.backend_us


def total_us(r: Run) -> float | None:
    if r.backend_us is None:
        return None
    return r.backend_us + (r.proxy_us or 0.0)


def p50(r: Run) -> float | None:
    return r.result.p50_ms if r.result else None


def p99(r: Run) -> float | None:
    return r.result.p99_ms if r.result else None


class Report:
    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.names = [t.name for t in bench.targets]
        self.baselines = [b for b in BASELINES if b in self.names]

    def runs(self, target: str, kind: str) -> list[Run]:
        return [r for r in self.bench.runs
                if r.target == target and r.kind == kind and not r.bad and not r.superseded]

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
        header = (["target", "proxy µs/req"] + [f"x {b}" for b in proxies]
                  + ["x backend", "backend µs/req", "proxy + backend µs/req",
                     "max req/s on one CPU"])
        rows = []
        for n in self.names:
            total = self.spread(n, "cpu", total_us)
            own = [r for r in self.runs(n, "cpu") if r.proxy_us is not None and r.backend_us]
            x_backend = c.Spread.of((r.proxy_us or 0) / (r.backend_us or 1) for r in own)
            row = [n, c.fmt_spread(self.spread(n, "cpu", proxy_us))]
            row += [c.fmt_ratio(self.ratio(n, b, "cpu", proxy_us)) for b in proxies]
            row += [c.fmt_ratio(x_backend), c.fmt_spread(self.spread(n, "cpu", backend_us)),
                    c.fmt_spread(total),
                    c.fmt(1e6 / total.median, 0, thousands=True) if total else "-"]
            rows.append(row)
        return c.md_table(header, rows)

    def latency_table(self) -> str:
        header = ["target", "achieved req/s", "p50 ms", "p99 ms"]
        for b in self.baselines:
            header += [f"p50 x {b}", f"p99 x {b}"]
        rows = []
        digits = 2 if self.bench.cfg.latency_tool == "hey" else 3
        for n in self.names:
            rate = self.spread(n, "latency", tput)
            row = [n, c.fmt(rate.median if rate else None, 0, thousands=True),
                   c.fmt_spread(self.spread(n, "latency", p50), digits),
                   c.fmt_spread(self.spread(n, "latency", p99), digits)]
            for b in self.baselines:
                row += [c.fmt_ratio(self.ratio(n, b, "latency", p50)),
                        c.fmt_ratio(self.ratio(n, b, "latency", p99))]
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
                who = (f"no CPU of ours; other processes competed for the CPUs "
                       f"({other.median:.2f} CPU)")
            else:
                who = "no CPU (round trips on loopback)"
            out.append(f"Direct throughput runs: the backend used {util.median:.0%} of its CPU "
                       f"and wrk {gen.median:.0%} of its CPU, so direct throughput is bounded "
                       f"by {who}.")
        for n in self.names:
            runs = [r for r in self.runs(n, "tput") if r.proxy_ticks is not None]
            if not runs:
                continue
            p_share = c.Spread.of((r.proxy_ticks or 0) / c.CLK_TCK / r.wall for r in runs)
            b_share = c.Spread.of(r.backend_ticks / c.CLK_TCK / r.wall for r in runs)
            g_share = c.Spread.of(r.loadgen_util for r in runs)
            if p_share and b_share and g_share:
                line = (f"{n} throughput runs: the servers' CPU went {b_share.median:.0%} to the "
                        f"backend and {p_share.median:.0%} to {n}; wrk used "
                        f"{g_share.median:.0%} of its CPU")
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
                "µs/req and its x nginx ratio do not.")
        bad = [r for r in bench.runs if r.bad]
        if bad:
            out.append(f"{len(bad)} run(s) had errors, non-2xx responses or failed; they are left "
                       "out of the figures above (see every run below).")
        used = [r for r in bench.runs if not r.superseded]
        noisy = [r for r in used if r.disturbed]
        redone = sum(r.superseded for r in bench.runs)
        if redone:
            out.append(f"{redone} disturbed run(s) were redone (--quiet-wait); the figures use "
                       "the less disturbed attempt of each.")
        if noisy:
            worst = max(noisy, key=lambda r: r.foreign_cpu)
            out.append(f"Other processes on this machine used more than {DISTURBED_CPU} CPU during "
                       f"{len(noisy)} of the {len(used)} runs in the figures (worst "
                       f"{worst.foreign_cpu:.2f} CPU: {worst.target} {worst.kind} rep "
                       f"{worst.rep}); those figures are less reliable. On a shared machine, "
                       "rerun with --quiet-wait 30 and more --reps.")
        else:
            out.append(f"Other processes on this machine used under {DISTURBED_CPU} CPU during "
                       "every run in the figures.")
        if bench.cfg.latency_tool == "hey":
            out.append("hey reports latencies in 0.1 ms steps; use --latency-tool wrk for µs "
                       "resolution.")
        return out

    def every_run(self) -> str:
        header = ["target", "kind", "rep", "try", "req/s", "responses", "p50 ms", "p99 ms",
                  "proxy µs/req", "backend µs/req", "servers CPU", "wrk/hey CPU", "other CPU",
                  "errors / non-2xx"]
        rows = []
        for r in sorted(self.bench.runs, key=lambda r: (KINDS.index(r.kind), r.rep,
                                                        self.names.index(r.target), r.attempt)):
            res = r.result
            tried = f"{r.attempt} (not used)" if r.superseded else str(r.attempt)
            if res is None:
                error = (r.error or "").replace("|", "/").replace("\n", " ")[:200]
                rows.append([r.target, r.kind, str(r.rep), tried] + ["-"] * 9
                            + [f"FAILED: {error}"])
                continue
            rows.append([
                r.target, r.kind, str(r.rep), tried, c.fmt(res.rps, 0, thousands=True),
                str(res.requests), c.fmt(res.p50_ms, 3), c.fmt(res.p99_ms, 3),
                c.fmt(r.proxy_us), c.fmt(r.backend_us), f"{r.server_util:.2f}",
                f"{r.loadgen_util:.2f}", f"{r.foreign_cpu:.2f}", f"{res.errors} / {res.non2xx}",
            ])
        return c.md_table(header, rows, left=2)

    def render(self, meta: dict[str, str]) -> str:
        cfg = self.bench.cfg
        d, n, conn = cfg.duration, cfg.requests, cfg.connections
        if cfg.latency_tool == "hey":
            lat_cmd = (f"hey -z {d}s -c {cfg.rate_workers} -q {cfg.rate / cfg.rate_workers:g}")
        else:
            lat_cmd = (f"wrk -t1 -c{cfg.rate_workers} -d{d}s --latency, each connection pausing "
                       f"{max(1, round(cfg.rate_workers * 1000 / cfg.rate))} ms between requests")
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
            ("Backend and proxy share one CPU: this is bounded by their combined CPU cost."
             if self.bench.pinning.enabled else
             "Not pinned: backend, proxy and load generator compete for all CPUs."),
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


def describe_meta(cfg: Config, bench: Bench, tools: dict[str, str], backend_desc: str,
                  started: datetime.datetime, wall: float) -> dict[str, str]:
    meta = {
        "date": started.astimezone().isoformat(timespec="seconds"),
        "command": shlex.join(sys.orig_argv),
        "wall": f"{wall:.0f} s",
    }
    for k, v in c.machine_summary(["uvloop", "httptools", "aiohttp"]):
        meta[k] = v
    meta["load generators"] = f"{c.tool_version('wrk', tools['wrk'])}, {c.tool_version('hey')}"
    meta["pinning"] = bench.pinning.note
    meta["backend"] = f"{backend_desc}, pid {bench.backend.pid}"
    for t in bench.targets:
        where = f":{t.port}"
        if t.proxy:
            where += f", pid {t.proxy.pid}"
        meta[f"target {t.name}"] = f"{t.detail} ({where.lstrip(', ')})"
    meta["settings"] = (f"reps {cfg.reps}, duration {cfg.duration} s, requests {cfg.requests}, "
                        f"connections {cfg.connections}, rate {cfg.rate} req/s with "
                        f"{cfg.rate_workers} clients, warm-up {cfg.warmup} s per target")
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
        with tempfile.TemporaryDirectory(prefix="bench-queueproxy-") as tmpname, \
                c.Supervisor(Path(tmpname), pinning) as sup:
            tmp = Path(tmpname)
            backend, backend_port, backend_desc = start_backend(cfg, sup)
            direct_body = c.http_get(f"http://127.0.0.1:{backend_port}/")[1]
            targets = [Target("direct", backend_port, None, "the backend, no proxy")]
            targets.append(start_queue_proxy(sup, backend_port))
            if nginx:
                targets.append(start_nginx(sup, nginx, tmp, backend_port))
            if cfg.go_proxy:
                targets.append(start_go_proxy(sup, cfg.go_proxy, backend_port))
            for t in targets[1:]:
                status, body = c.http_get(t.url)
                if not 200 <= status < 300 or (cfg.backend_cmd is None and body != direct_body):
                    raise c.BenchError(f"{t.name} does not proxy to the backend: GET / gave "
                                       f"{status} {body[:80]!r}, direct gave {direct_body[:80]!r}")
            bench = Bench(cfg, pinning, backend, targets, tmp)
            log("targets: " + ", ".join(f"{t.name} :{t.port}" for t in targets)
                + f"; about {estimate_seconds(cfg, len(targets)):.0f} s")
            bench.warm_up()
            bench.run_all(log)
            wall = time.monotonic() - t0
            meta = describe_meta(cfg, bench, tools, backend_desc, started, wall)
            report_md = Report(bench).render(meta)
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
