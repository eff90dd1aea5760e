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
import asyncio
import collections
import contextlib
import datetime
import os
import shlex
import signal
import socket
import statistics
import struct
import sys
import tempfile
import time
import urllib.error
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import uvloop

from benchmarks import _common as c

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SAMPLE_APP = REPO / "examples" / "helloworld" / "app.py"
HOST = "hello.default.example.com"
KINDS = ("tput", "cpu", "latency")
TARGETS = ("direct", "queue-proxy", "activator")
LABELS = {
    "direct": "direct (app)",
    "queue-proxy": "queue-proxy → app",
    "activator": "activator → queue-proxy → app",
}
PROXIES = ("activator", "queue-proxy")
# Other processes using more CPU than this (in CPUs) during a run "disturbed" it.
DISTURBED_CPU = 0.1
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
    p.add_argument("--reps", type=int, help="warm-path repetitions, interleaved across targets "
                                            "(default 3)")
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
                   help="for a shared machine: before each warm-path run, wait up to SECONDS "
                        "until other processes use under 0.1 CPU, and redo (once) a run they "
                        "disturbed (default 0: off)")
    p.add_argument("--held", type=int, default=10_000, metavar="N",
                   help="requests held at zero replicas, one connection each "
                        "(default 10000; 0 skips this part)")
    p.add_argument("--held-cc", type=int, default=10, metavar="CC",
                   help="containerConcurrency of the held-requests revision, at the activator "
                        "and its queue-proxy (default 10)")
    p.add_argument("--held-parallel", type=int, default=200, metavar="K",
                   help="connection attempts in progress at once while opening the held "
                        "connections (default 200)")
    p.add_argument("--held-timeout", type=float, default=120.0, metavar="SECONDS",
                   help="give up waiting for held requests after this long, both for all "
                        "to be waiting and for all to be answered (default 120)")
    p.add_argument("--no-warm", action="store_true", help="skip the warm-path measurements")
    p.add_argument("--quick", action="store_true",
                   help="smoke run of ~40 s: 1 repetition, 3 s runs, 5000 requests (explicit "
                        "options still win; the held part is unchanged)")
    p.add_argument("--backend-cmd", metavar="CMD",
                   help="shell command of the app instead of the sample app; it must serve "
                        "GET / with 2xx on 127.0.0.1:$PORT")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    p.add_argument("--server-cpu", type=int, default=1,
                   help="CPU of the app, the queue-proxy and the activator (default 1)")
    p.add_argument("--load-cpu", type=int, default=0,
                   help="CPU of the load generators and this script (default 0)")
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
        backend_cmd=a.backend_cmd, warm=not a.no_warm, held=a.held, held_cc=a.held_cc,
        held_parallel=a.held_parallel, held_timeout=a.held_timeout, pin=not a.no_pin,
        server_cpu=a.server_cpu, load_cpu=a.load_cpu, results_dir=a.results_dir,
        write=not a.no_write, quick=a.quick,
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
        problems.append("--held must not be negative; --held-cc, --held-parallel and "
                        "--held-timeout must be positive")
    if not cfg.warm and cfg.held == 0:
        problems.append("--no-warm with --held 0 leaves nothing to measure")
    if problems:
        p.error("; ".join(problems))
    return cfg


# ------------------------------------------------------------------ processes


@dataclass
class Target:
    name: str
    port: int
    procs: dict[str, c.Server]
    """The proxies in the path by role ("activator", "queue-proxy"); empty for direct."""
    detail: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


@dataclass
class QueueProxy:
    server: c.Server
    port: int
    metrics_port: int


def start_backend(cfg: Config, sup: c.Supervisor) -> tuple[c.Server, int, str]:
    port = c.free_port()
    env = dict(os.environ, PORT=str(port))
    if cfg.backend_cmd:
        server = sup.start("app", ["/bin/sh", "-c", cfg.backend_cmd], env, cwd=REPO)
        desc = f"`{cfg.backend_cmd}`"
    else:
        env.update(TARGET="World", HOST="127.0.0.1")
        server = sup.start("app", [sys.executable, str(SAMPLE_APP)], env, cwd=REPO)
        desc = "examples/helloworld/app.py (aiohttp + uvloop, one process)"
    c.wait_http_ok(f"http://127.0.0.1:{port}/", [server])
    return server, port, desc


def start_queue_proxy(sup: c.Supervisor, name: str, backend_port: int, cc: int) -> QueueProxy:
    # cwd = the repository, so `-m queueproxy` is the package (never this directory).
    server = sup.start(name, [sys.executable, "-m", "queueproxy"],
                       c.queue_proxy_env(backend_port, cc), cwd=REPO)
    info = c.wait_json_line(server, "queue_proxy", "listening")
    port = int(str(info["serving_port"]))
    c.wait_http_ok(f"http://127.0.0.1:{port}/", [server])
    return QueueProxy(server, port, int(str(info["user_metrics_port"])))


@dataclass
class ActivatorProc:
    server: c.Server
    port: int
    metrics_port: int


def start_activator(sup: c.Supervisor, name: str, qp_port: int, cc: int, cold: bool) -> ActivatorProc:
    argv = [sys.executable, "-m", "benchmarks.activator_runner", "--port", "0",
            "--host-name", HOST, "--endpoint", f"127.0.0.1:{qp_port}",
            "--container-concurrency", str(cc)]
    if cold:
        argv.append("--cold")
    server = sup.start(name, argv, cwd=REPO)
    info = c.wait_json_line(server, "activator", "listening")
    port, metrics_port = int(str(info["port"])), int(str(info["metrics_port"]))
    # A network probe is answered by the activator itself (never held or forwarded).
    deadline = time.monotonic() + 20
    while True:
        server.ensure_alive()
        try:
            status, body = c.http_get_headers(f"http://127.0.0.1:{port}/",
                                              {"K-Network-Probe": "activator"})
            if status == 200 and body == b"activator":
                break
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            raise c.BenchError(f"{name} does not answer its health check:\n{server.log_tail()}")
        time.sleep(0.05)
    return ActivatorProc(server, port, metrics_port)


# ------------------------------------------------------------------ warm path


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
    ticks: dict[str, int]
    """CPU ticks by role: "app" always, plus the proxies in the target's path."""
    loadgen_cpu: float
    foreign_cpu: float
    attempt: int = 1
    superseded: bool = False

    def us(self, role: str) -> float | None:
        """CPU µs per response of ``role`` (None if not in this target's path)."""
        t = self.ticks.get(role)
        if t is None or self.result is None or self.result.requests == 0:
            return None
        return t * 1e6 / c.CLK_TCK / self.result.requests

    def sum_us(self, roles: Sequence[str]) -> float | None:
        vals = [self.us(r) for r in roles if r in self.ticks]
        if not vals or any(v is None for v in vals):
            return None
        return sum(v for v in vals if v is not None)

    def share(self, role: str) -> float | None:
        t = self.ticks.get(role)
        return None if t is None else t / c.CLK_TCK / self.wall

    @property
    def server_util(self) -> float:
        return sum(self.ticks.values()) / c.CLK_TCK / self.wall

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
class Warm:
    cfg: Config
    pinning: c.Pinning
    app: c.Server
    targets: list[Target]
    tmp: Path
    extra_sids: list[int] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)

    def load_argv(self, kind: str, url: str) -> tuple[list[str], Callable[[str], c.LoadResult],
                                                     float, dict[str, str] | None]:
        cfg = self.cfg
        d = cfg.duration
        if kind == "tput":
            return (["wrk", "-t1", f"-c{cfg.connections}", f"-d{d}s", "--latency",
                     "-H", f"Host: {HOST}", url], c.parse_wrk, d + 30, None)
        if kind == "cpu":
            # bounded: at least 100 req/s, or it is given up
            return (["hey", "-n", str(cfg.requests), "-c", str(cfg.connections), "-t", "30",
                     "-host", HOST, url], c.parse_hey, 30 + cfg.requests / 100, None)
        if cfg.latency_tool == "hey":
            q = cfg.rate / cfg.rate_workers
            return (["hey", "-z", f"{d}s", "-c", str(cfg.rate_workers), "-q", f"{q:g}",
                     "-t", "30", "-host", HOST, url], c.parse_hey, d + 40, None)
        script = self.tmp / "paced.lua"
        if not script.exists():
            script.write_text(c.WRK_PACED_LUA)
        delay_ms = max(1, round(cfg.rate_workers * 1000 / cfg.rate))
        return (["wrk", "-t1", f"-c{cfg.rate_workers}", f"-d{d}s", "--latency", "-s", str(script),
                 "-H", f"Host: {HOST}", url], c.parse_wrk, d + 30,
                dict(os.environ, BENCH_WRK_DELAY_MS=str(delay_ms)))

    def server_sids(self) -> list[int]:
        sids = {self.app.pid, *self.extra_sids}
        for t in self.targets:
            sids.update(s.pid for s in t.procs.values())
        return sorted(sids)

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
        ticks = {"app": c.session_ticks_between(before, after, self.app.pid)}
        for role, srv in target.procs.items():
            ticks[role] = c.session_ticks_between(before, after, srv.pid)
        run = Run(target=target.name, kind=kind, rep=rep, argv=argv, rc=load.rc, wall=load.wall,
                  result=result, error=error, ticks=ticks,
                  loadgen_cpu=after.children_cpu - before.children_cpu,
                  foreign_cpu=c.foreign_cpu_seconds(before, after, all_sids) / load.wall,
                  attempt=attempt)
        self.runs.append(run)
        return run

    def check_servers(self) -> None:
        self.app.ensure_alive()
        for t in self.targets:
            for s in t.procs.values():
                s.ensure_alive()

    def warm_up(self) -> None:
        if self.cfg.warmup <= 0:
            return
        for t in self.targets:
            c.run_load(["wrk", "-t1", f"-c{self.cfg.connections}", f"-d{self.cfg.warmup}s",
                        "-H", f"Host: {HOST}", t.url], self.pinning, 30 + self.cfg.warmup)
        self.check_servers()

    def run_all(self, log: Callable[[str], None]) -> None:
        t0 = time.monotonic()
        for rep in range(1, self.cfg.reps + 1):
            k = (rep - 1) % len(self.targets)
            order = self.targets[k:] + self.targets[:k]
            for kind in KINDS:
                for t in order:
                    attempts = 2 if self.cfg.quiet_wait > 0 else 1
                    tries: list[Run] = []
                    for attempt in range(1, attempts + 1):
                        if self.cfg.quiet_wait > 0:
                            waited, busy = c.wait_for_quiet(self.server_sids(),
                                                            self.cfg.quiet_wait, DISTURBED_CPU)
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
        for role in (*PROXIES, "app"):
            if role in run.ticks:
                s += f"  {role} {c.fmt(run.us(role))} µs/req"
    if run.kind == "tput":
        s += f"  servers {run.server_util:.0%} of a CPU, load generator {run.loadgen_util:.0%}"
    if r.errors or r.non2xx:
        s += f"  ERRORS {r.errors} non-2xx {r.non2xx}"
    if run.disturbed:
        s += f"  (disturbed: other processes used {run.foreign_cpu:.2f} CPU)"
    return s


# ------------------------------------------------------------------ held requests


@dataclass
class Held:
    """What the held-requests part saw."""

    n: int
    cc: int
    nofile: tuple[int, int]
    activator_pid: int = 0
    opened: int = 0
    open_s: float | None = None
    waiting: int = 0
    """The activator's queue length when all requests were sent (max seen)."""
    all_waiting_s: float | None = None
    answered_early: int = 0
    """Responses that arrived before SIGUSR1 (e.g. 503 queue-full)."""
    rss_before_kib: int | None = None
    rss_held_kib: int | None = None
    rss_after_kib: int | None = None
    first_s: float | None = None
    median_s: float | None = None
    all_s: float | None = None
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    bad_body: int = 0
    ids_ok: int = 0
    """Distinct request ids answered 200 with the expected body."""
    qp_count: float | None = None
    """Delta of the queue-proxy's zeroserve_queue_requests_total over the part."""
    act_200: float | None = None
    act_total: float | None = None
    act_queued: float | None = None
    park_us: float | None = None
    """Activator CPU per request while connections were accepted and parked."""
    release_us: dict[str, float] = field(default_factory=dict)
    """CPU per request by role from SIGUSR1 until all were answered."""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def lost(self) -> int:
        return self.n - self.ok

    @property
    def kib_per_held(self) -> float | None:
        if self.rss_before_kib is None or self.rss_held_kib is None or not self.waiting:
            return None
        return (self.rss_held_kib - self.rss_before_kib) / self.waiting


def _scrape(port: int) -> str | None:
    try:
        status, body = c.http_get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    except (OSError, urllib.error.URLError):
        return None
    return body.decode(errors="replace") if status == 200 else None


class HeldClient:
    """``n`` connections, each one ``GET /?id=N``; answers are timed and checked."""

    def __init__(self, port: int, n: int, parallel: int, expect_body: bytes | None) -> None:
        self.port = port
        self.n = n
        self.parallel = parallel
        self.expect_body = expect_body
        self.sent = 0
        self.failed_before_send = 0
        self.all_sent = asyncio.Event()
        self.done_at: list[float] = []
        self.statuses: collections.Counter[int] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.bad_body = 0
        self.ids_ok: set[int] = set()
        self.writers: list[asyncio.StreamWriter] = []

    def _settle(self) -> None:
        if self.sent + self.failed_before_send >= self.n:
            self.all_sent.set()

    async def one(self, i: int, sem: asyncio.Semaphore) -> None:
        sent = False
        try:
            async with sem:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            self.writers.append(writer)
            writer.write(b"GET /?id=%d HTTP/1.1\r\nHost: %s\r\nUser-Agent: zeroserve-bench\r\n"
                         b"Accept: */*\r\n\r\n" % (i, HOST.encode()))
            await writer.drain()
            sent = True
            self.sent += 1
            self._settle()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length: int | None = None
            chunked = False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                lname = name.strip().lower()
                if lname == b"content-length":
                    length = int(value.strip())
                elif lname == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
            if length is not None:
                body = await reader.readexactly(length)
            elif chunked:
                body = await reader.readuntil(b"0\r\n\r\n")
            else:
                body = await reader.read()
            self.done_at.append(time.monotonic())
            self.statuses[status] += 1
            if status == 200:
                if self.expect_body is None or body == self.expect_body:
                    self.ids_ok.add(i)
                else:
                    self.bad_body += 1
        except Exception as e:  # every failure is counted, none stops the others
            self.errors[type(e).__name__] += 1
            if not sent:
                self.failed_before_send += 1
                self._settle()

    def close(self) -> None:
        linger = struct.pack("ii", 1, 0)
        for w in self.writers:
            # SO_LINGER 0, then close: a reset, no TIME_WAIT left behind for 10,000 ports
            sock = w.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            w.transport.abort()


async def _held(cfg: Config, act: ActivatorProc, qp: QueueProxy, app: c.Server,
                expect_body: bytes | None, held: Held, log: Callable[[str], None]) -> None:
    n = cfg.held
    client = HeldClient(act.port, n, cfg.held_parallel, expect_body)
    act_pid = act.server.pid
    sids = [act_pid, qp.server.pid, app.pid]
    qp_before = await asyncio.to_thread(_scrape, qp.metrics_port)
    act_before = await asyncio.to_thread(_scrape, act.metrics_port)
    held.rss_before_kib = c.vm_rss_kib(act_pid)
    ticks0 = c.ticks_by_session([act_pid])
    sem = asyncio.Semaphore(cfg.held_parallel)
    t0 = time.monotonic()
    tasks = [asyncio.ensure_future(client.one(i, sem)) for i in range(n)]
    try:
        try:
            await asyncio.wait_for(client.all_sent.wait(), cfg.held_timeout)
        except TimeoutError:
            held.problems.append(f"only {client.sent} of {n} requests were sent within "
                                 f"{cfg.held_timeout:.0f} s")
        held.opened = client.sent
        held.open_s = time.monotonic() - t0
        log(f"held: {client.sent:,} requests sent on their own connections in "
            f"{held.open_s:.1f} s ({client.failed_before_send} failed); waiting for the "
            "activator to report them all waiting")
        deadline = time.monotonic() + cfg.held_timeout
        while True:
            text = await asyncio.to_thread(_scrape, act.metrics_port)
            q = c.prometheus_sum(text or "", "zeroserve_activator_queue_length")
            if q is not None:
                held.waiting = max(held.waiting, int(q))
            if held.waiting >= client.sent:
                held.all_waiting_s = time.monotonic() - t0
                break
            if time.monotonic() > deadline:
                held.problems.append(f"the activator reported {held.waiting} of {client.sent} "
                                     f"waiting after {cfg.held_timeout:.0f} s")
                break
            await asyncio.sleep(0.1)
        ticks1 = c.ticks_by_session([act_pid])
        held.rss_held_kib = c.vm_rss_kib(act_pid)
        if held.waiting:
            park = sum(ticks1[act_pid].values()) - sum(ticks0[act_pid].values())
            held.park_us = park * 1e6 / c.CLK_TCK / held.waiting
        held.answered_early = len(client.done_at)
        log(f"held: activator reports {held.waiting:,} waiting, VmRSS {held.rss_before_kib} -> "
            f"{held.rss_held_kib} KiB; SIGUSR1 (the replica appears)")
        before = c.CpuSnapshot.take(sids)
        t_sig = time.monotonic()
        os.kill(act_pid, signal.SIGUSR1)
        _, pending = await asyncio.wait(tasks, timeout=cfg.held_timeout)
        after = c.CpuSnapshot.take(sids)
        if pending:
            held.problems.append(f"{len(pending)} requests were still unanswered "
                                 f"{cfg.held_timeout:.0f} s after SIGUSR1")
        late = sorted(t - t_sig for t in client.done_at if t >= t_sig)
        if late:
            held.first_s, held.all_s = late[0], late[-1]
            held.median_s = statistics.median(late)
        answered = len(late)
        if answered:
            for role, sid in (("activator", act_pid), ("queue-proxy", qp.server.pid),
                              ("app", app.pid)):
                held.release_us[role] = (c.session_ticks_between(before, after, sid) * 1e6
                                         / c.CLK_TCK / answered)
        held.rss_after_kib = c.vm_rss_kib(act_pid)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        client.close()
    held.statuses = client.statuses
    held.errors = client.errors
    held.bad_body = client.bad_body
    held.ids_ok = len(client.ids_ok)
    # Counters: after the client is gone, so that nothing is still on its way.
    await asyncio.sleep(0.2)
    qp_after = await asyncio.to_thread(_scrape, qp.metrics_port)
    act_after = await asyncio.to_thread(_scrape, act.metrics_port)

    def delta(b: str | None, a: str | None, name: str, labels: dict[str, str] | None = None
              ) -> float | None:
        if b is None or a is None:
            return None
        return (c.prometheus_sum(a, name, labels) or 0.0) - (c.prometheus_sum(b, name, labels) or 0.0)

    held.qp_count = delta(qp_before, qp_after, "zeroserve_queue_requests_total")
    held.act_total = delta(act_before, act_after, "zeroserve_activator_requests_total")
    held.act_200 = delta(act_before, act_after, "zeroserve_activator_requests_total",
                         {"response_code": "200"})
    held.act_queued = delta(act_before, act_after, "zeroserve_activator_queued_requests_total")


def run_held(cfg: Config, sup: c.Supervisor, app: c.Server, backend_port: int,
             expect_body: bytes | None, nofile: tuple[int, int],
             log: Callable[[str], None]) -> tuple[Held, ActivatorProc, QueueProxy]:
    qp = start_queue_proxy(sup, "held-queue-proxy", backend_port, cfg.held_cc)
    act = start_activator(sup, "held-activator", qp.port, cfg.held_cc, cold=True)
    held = Held(n=cfg.held, cc=cfg.held_cc, nofile=nofile, activator_pid=act.server.pid)
    log(f"held: activator :{act.port} (pid {act.server.pid}, cold, containerConcurrency "
        f"{cfg.held_cc}) -> queue-proxy :{qp.port}; opening {cfg.held:,} connections")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_held(cfg, act, qp, app, expect_body, held, log))
    for s in (act.server, qp.server, app):
        s.ensure_alive()
    log(f"held: {held.ok:,} of {held.n:,} answered 200 in {c.fmt(held.all_s, 2)} s after "
        f"SIGUSR1; queue-proxy counted {c.fmt(held.qp_count, 0)}")
    return held, act, qp


# ------------------------------------------------------------------ report


Metric = Callable[[Run], float | None]


def tput(r: Run) -> float | None:
    return r.result.rps if r.result else None


def p50(r: Run) -> float | None:
    return r.result.p50_ms if r.result else None


def p99(r: Run) -> float | None:
    return r.result.p99_ms if r.result else None


def role_us(role: str) -> Metric:
    return lambda r: r.us(role)


def proxies_us(r: Run) -> float | None:
    return r.sum_us([p for p in PROXIES if p in r.ticks]) if len(r.ticks) > 1 else None


def all_us(r: Run) -> float | None:
    return r.sum_us(list(r.ticks))


def _ms(x: float | None, digits: int) -> str:
    return "-" if x is None else f"{x:+.{digits}f}"


def fmt_delta(s: c.Spread | None, digits: int) -> str:
    if s is None:
        return "-"
    if s.n == 1:
        return _ms(s.median, digits)
    return f"{_ms(s.median, digits)} [{_ms(s.lo, digits)} to {_ms(s.hi, digits)}]"


class Report:
    def __init__(self, cfg: Config, pinning: c.Pinning, warm: Warm | None,
                 held: Held | None) -> None:
        self.cfg = cfg
        self.pinning = pinning
        self.warm = warm
        self.held = held
        self.names = [t.name for t in warm.targets] if warm else []

    def runs(self, target: str, kind: str) -> list[Run]:
        if self.warm is None:
            return []
        return [r for r in self.warm.runs
                if r.target == target and r.kind == kind and not r.bad and not r.superseded]

    def spread(self, target: str, kind: str, metric: Metric) -> c.Spread | None:
        return c.Spread.of(metric(r) for r in self.runs(target, kind))

    def paired(self, target: str, base: str, kind: str, metric: Metric,
               base_metric: Metric | None = None, op: str = "/") -> c.Spread | None:
        """Per repetition: target's figure / (or -) base's figure of the same repetition."""
        bm = base_metric or metric
        theirs = {r.rep: bm(r) for r in self.runs(base, kind)}
        out = []
        for r in self.runs(target, kind):
            v, b = metric(r), theirs.get(r.rep)
            if v is None or b is None:
                continue
            if op == "-":
                out.append(v - b)
            elif b:
                out.append(v / b)
        return c.Spread.of(out)

    # -- the figures the goals are about

    def cpu_ratio(self) -> c.Spread | None:
        """Activator µs/req (activator path) / queue-proxy µs/req (queue-proxy alone)."""
        return self.paired("activator", "queue-proxy", "cpu", role_us("activator"),
                           role_us("queue-proxy"))

    def cpu_ratio_same_run(self) -> c.Spread | None:
        return c.Spread.of(
            (r.us("activator") or 0) / q
            for r in self.runs("activator", "cpu")
            if (q := r.us("queue-proxy")) and r.us("activator") is not None)

    def added_p50(self, base: str = "direct") -> c.Spread | None:
        return self.paired("activator", base, "latency", p50, op="-")

    def goals_table(self) -> str:
        rows = []

        def within(ok: bool | None) -> str:
            return "-" if ok is None else ("yes" if ok else "**no**")

        if self.warm is not None:
            for label, ratio in (
                ("activator CPU per request / queue-proxy's, both in the activator-path run "
                 "(same requests, same rate)", self.cpu_ratio_same_run()),
                ("activator CPU per request / queue-proxy's in the queue-proxy-alone run of the "
                 "same repetition", self.cpu_ratio()),
            ):
                rows.append([label, f"<= {GOAL_CPU_RATIO}x", c.fmt_ratio(ratio),
                             within(None if ratio is None else ratio.median <= GOAL_CPU_RATIO)])
            added = self.added_p50()
            digits = 2 if self.cfg.latency_tool == "hey" else 3
            rows.append([f"added p50 of activator + queue-proxy vs direct at {self.cfg.rate:,} "
                         "req/s", f"<= {GOAL_ADDED_P50_MS} ms", f"{fmt_delta(added, digits)} ms",
                         within(None if added is None else added.median <= GOAL_ADDED_P50_MS)])
        h = self.held
        if h is not None:
            kib = h.kib_per_held
            rows.append(["activator memory per held request (VmRSS growth / held)",
                         f"<= {GOAL_KIB_PER_HELD:g} KiB", f"{c.fmt(kib, 2)} KiB",
                         within(None if kib is None else kib <= GOAL_KIB_PER_HELD)])
            rows.append(["held requests answered 200 after the replica appeared",
                         f"all {h.n:,}, 0 lost",
                         f"{h.ok:,} of {h.n:,}, {h.lost:,} lost",
                         within(h.lost == 0)])
            once = self.exactly_once()
            rows.append(["each held request reached the replica exactly once "
                         "(queue-proxy's request count)", f"{h.n:,}",
                         c.fmt(h.qp_count, 0, thousands=True), within(once)])
            rows.append(["time from the replica's appearance to the last answer", "-",
                         f"{c.fmt(h.all_s, 2)} s", "-"])
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
            rows.append([LABELS[n], c.fmt_spread(self.spread(n, "tput", tput), 0, thousands=True),
                         c.fmt_ratio(self.paired(n, "direct", "tput", tput) if n != "direct"
                                     else None),
                         c.fmt_ratio(self.paired(n, "queue-proxy", "tput", tput)
                                     if n == "activator" else None)])
        return c.md_table(header, rows)

    def cpu_table(self, kind: str = "cpu") -> str:
        header = ["target", "activator µs/req", "queue-proxy µs/req", "app µs/req",
                  "proxies µs/req", "all µs/req"]
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
        header = ["target", "achieved req/s", "p50 ms", "p99 ms", "p50 - direct ms",
                  "p99 - direct ms", "p50 - queue-proxy ms"]
        rows = []
        for n in self.names:
            rate = self.spread(n, "latency", tput)
            rows.append([
                LABELS[n], c.fmt(rate.median if rate else None, 0, thousands=True),
                c.fmt_spread(self.spread(n, "latency", p50), digits),
                c.fmt_spread(self.spread(n, "latency", p99), digits),
                fmt_delta(self.paired(n, "direct", "latency", p50, op="-"), digits)
                if n != "direct" else "-",
                fmt_delta(self.paired(n, "direct", "latency", p99, op="-"), digits)
                if n != "direct" else "-",
                fmt_delta(self.paired(n, "queue-proxy", "latency", p50, op="-"), digits)
                if n == "activator" else "-",
            ])
        return c.md_table(header, rows)

    def held_table(self) -> str:
        h = self.held
        assert h is not None
        kib = h.kib_per_held
        codes = ", ".join(f"{k}: {v:,}" for k, v in sorted(h.statuses.items())) or "none"
        errors = ", ".join(f"{k}: {v:,}" for k, v in sorted(h.errors.items())) or "none"
        rss = [h.rss_before_kib, h.rss_held_kib, h.rss_after_kib]
        rows = [
            ["connections opened, one request each", f"{h.opened:,} of {h.n:,}"],
            ["time to open them and send the requests", f"{c.fmt(h.open_s, 2)} s"],
            ["waiting, as the activator reported (zeroserve_activator_queue_length)",
             f"{h.waiting:,} ({c.fmt(h.all_waiting_s, 2)} s after the first connection)"],
            ["answered before the replica appeared", f"{h.answered_early:,}"],
            ["activator VmRSS before / all held / after all answered",
             " / ".join("-" if x is None else f"{x / 1024:,.1f} MiB" for x in rss)],
            ["activator VmRSS growth per held request",
             f"{c.fmt(kib, 2)} KiB" + ("" if kib is None else
                                       f" ({(h.rss_held_kib or 0) - (h.rss_before_kib or 0):,} "
                                       f"KiB / {h.waiting:,})")],
            ["activator CPU per request while accepting and parking",
             f"{c.fmt(h.park_us)} µs"],
            ["SIGUSR1 to first / median / last answer",
             f"{c.fmt(h.first_s, 3)} / {c.fmt(h.median_s, 3)} / {c.fmt(h.all_s, 3)} s"],
            ["answers per second while releasing",
             c.fmt(h.ok / h.all_s, 0, thousands=True) if h.all_s else "-"],
            ["CPU per request while releasing: activator / queue-proxy / app",
             " / ".join(c.fmt(h.release_us.get(r)) for r in ("activator", "queue-proxy", "app"))
             + " µs"],
            ["status codes received", codes],
            ["client errors", errors],
            ["200 with an unexpected body", f"{h.bad_body:,}"],
            ["distinct ids answered 200", f"{h.ids_ok:,}"],
            ["lost (not answered 200)", f"{h.lost:,}"],
            ["activator: requests (all codes / 200) and queued, counter deltas",
             f"{c.fmt(h.act_total, 0, thousands=True)} / {c.fmt(h.act_200, 0, thousands=True)}"
             f" / {c.fmt(h.act_queued, 0, thousands=True)}"],
            ["queue-proxy: requests served (counter delta)",
             c.fmt(h.qp_count, 0, thousands=True)],
            ["RLIMIT_NOFILE (soft / hard) of the benchmark and its children",
             f"{h.nofile[0]:,} / {h.nofile[1]:,}"],
        ]
        return c.md_table(["held requests", "value"], rows)

    def notes(self) -> list[str]:
        out = []
        if self.pinning.enabled:
            cpus = os.cpu_count() or 0
            out.append(f"The app, the queue-proxy and the activator all run on CPU "
                       f"{self.pinning.server_cpu} (the load generators and this script on CPU "
                       f"{self.pinning.load_cpu}; this machine has {cpus} CPUs). On the "
                       "activator path the three processes share that one CPU, so its "
                       "throughput is bounded by 1 / (all µs/req of the CPU table), and its "
                       "latency includes waiting for the CPU behind the other two.")
        else:
            out.append("Not pinned: servers and load generators compete for all CPUs.")
        w = self.warm
        if w is not None:
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
                    "µs/req in the two rows of the CPU table.")
            hop = self.added_p50("queue-proxy")
            if hop is not None:
                digits = 2 if self.cfg.latency_tool == "hey" else 3
                out.append(f"The activator hop alone (activator path p50 minus queue-proxy p50): "
                           f"{fmt_delta(hop, digits)} ms.")
            for n in self.names:
                runs = self.runs(n, "tput")
                shares = []
                for role in ("app", *PROXIES):
                    s = c.Spread.of(r.share(role) for r in runs)
                    if s is not None:
                        shares.append(f"{s.median:.0%} to the {role}")
                g = c.Spread.of(r.loadgen_util for r in runs)
                if shares and g:
                    line = (f"{n} throughput runs: the servers' CPU went {', '.join(shares)}; wrk "
                            f"used {g.median:.0%} of its CPU")
                    if g.median >= 0.9:
                        line += " (saturated: this throughput is a lower bound)"
                    out.append(line + ".")
            bad = [r for r in w.runs if r.bad]
            if bad:
                out.append(f"{len(bad)} run(s) had errors, non-2xx responses or failed; they are "
                           "left out of the figures above (see every run below).")
            used = [r for r in w.runs if not r.superseded]
            noisy = [r for r in used if r.disturbed]
            redone = sum(r.superseded for r in w.runs)
            if redone:
                out.append(f"{redone} disturbed run(s) were redone (--quiet-wait); the figures use "
                           "the less disturbed attempt of each.")
            if noisy:
                worst = max(noisy, key=lambda r: r.foreign_cpu)
                out.append(f"Other processes on this machine used more than {DISTURBED_CPU} CPU "
                           f"during {len(noisy)} of the {len(used)} warm-path runs in the figures "
                           f"(worst {worst.foreign_cpu:.2f} CPU: {worst.target} {worst.kind} rep "
                           f"{worst.rep}); those figures are less reliable. On a shared machine, "
                           "rerun with --quiet-wait 30 and more --reps.")
            else:
                out.append(f"Other processes on this machine used under {DISTURBED_CPU} CPU "
                           "during every warm-path run in the figures.")
            if self.cfg.latency_tool == "hey":
                line = "hey reports latencies in 0.1 ms steps; use --latency-tool wrk for µs resolution."
                if self.cfg.rate_workers > 1:
                    line += (f" Each of hey's {self.cfg.rate_workers} clients paces itself with "
                             "its own ticker, all started together, so requests arrive in bursts "
                             f"of {self.cfg.rate_workers} every "
                             f"{1000 * self.cfg.rate_workers / self.cfg.rate:g} ms; on the one "
                             "server CPU a burst queues through every process of the path, so "
                             "p50 includes waiting behind other requests of the burst, more so "
                             "the more processes the path has. `--rate-workers 1` (evenly "
                             "spaced; a little under the rate when a response takes longer "
                             "than the interval) shows the latency of a request that does not "
                             "queue; the paced wrk of `--latency-tool wrk` is in between (its "
                             "connections drift apart).")
                out.append(line)
        h = self.held
        if h is not None:
            out.append("Held requests: VmRSS counts the activator's user-space memory only; the "
                       f"kernel's socket buffers for the {h.n:,} connections are not in it. The "
                       "baseline is the fresh cold activator, so one-time allocations of its "
                       "first requests are included (spread over all held requests).")
            for p in h.problems:
                out.append(f"Held requests: {p}.")
        return out

    def every_run(self) -> str:
        header = ["target", "kind", "rep", "try", "req/s", "responses", "p50 ms", "p99 ms",
                  "activator µs/req", "queue-proxy µs/req", "app µs/req", "servers CPU",
                  "wrk/hey CPU", "other CPU", "errors / non-2xx"]
        rows = []
        assert self.warm is not None
        for r in sorted(self.warm.runs, key=lambda r: (KINDS.index(r.kind), r.rep,
                                                       self.names.index(r.target), r.attempt)):
            res = r.result
            tried = f"{r.attempt} (not used)" if r.superseded else str(r.attempt)
            if res is None:
                error = (r.error or "").replace("|", "/").replace("\n", " ")[:200]
                rows.append([r.target, r.kind, str(r.rep), tried] + ["-"] * 10
                            + [f"FAILED: {error}"])
                continue
            rows.append([
                r.target, r.kind, str(r.rep), tried, c.fmt(res.rps, 0, thousands=True),
                str(res.requests), c.fmt(res.p50_ms, 3), c.fmt(res.p99_ms, 3),
                c.fmt(r.us("activator")), c.fmt(r.us("queue-proxy")), c.fmt(r.us("app")),
                f"{r.server_util:.2f}", f"{r.loadgen_util:.2f}", f"{r.foreign_cpu:.2f}",
                f"{res.errors} / {res.non2xx}",
            ])
        return c.md_table(header, rows, left=2)

    def render(self, meta: dict[str, str]) -> str:
        cfg = self.cfg
        d, n, conn = cfg.duration, cfg.requests, cfg.connections
        if cfg.latency_tool == "hey":
            lat_cmd = f"hey -z {d}s -c {cfg.rate_workers} -q {cfg.rate / cfg.rate_workers:g}"
        else:
            lat_cmd = (f"wrk -t1 -c{cfg.rate_workers} -d{d}s --latency, each connection pausing "
                       f"{max(1, round(cfg.rate_workers * 1000 / cfg.rate))} ms between requests")
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
            where_client = (f"pinned to CPU {self.pinning.load_cpu}" if self.pinning.enabled
                            else "not pinned")
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


def describe_meta(cfg: Config, pinning: c.Pinning, tools: dict[str, str], backend_desc: str,
                  app: c.Server, targets: list[Target], held_procs: tuple[ActivatorProc,
                                                                          QueueProxy] | None,
                  started: datetime.datetime, wall: float) -> dict[str, str]:
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
        meta["held requests"] = (f"`python -m benchmarks.activator_runner --cold "
                                 f"--container-concurrency {cfg.held_cc}` (:{act.port}, pid "
                                 f"{act.server.pid}) -> `python -m queueproxy` "
                                 f"CONTAINER_CONCURRENCY={cfg.held_cc} (:{qp.port}, pid "
                                 f"{qp.server.pid}) -> the app")
    meta["settings"] = (f"reps {cfg.reps}, duration {cfg.duration} s, requests {cfg.requests}, "
                        f"connections {cfg.connections}, rate {cfg.rate} req/s with "
                        f"{cfg.rate_workers} clients, warm-up {cfg.warmup} s per target, "
                        f"held {cfg.held}" + ("" if cfg.warm else ", warm path skipped"))
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
        print(f"benchmarks.activator: --held {cfg.held} needs RLIMIT_NOFILE >= {cfg.held + 512}; "
              f"the limit is {nofile[0]} (hard {nofile[1]}). Raise it (ulimit -n) or lower "
              "--held.", file=sys.stderr)
        return 2
    pinning = c.choose_pinning(cfg.pin, cfg.server_cpu, cfg.load_cpu)
    pinning.pin_self()
    log(f"pinning: {pinning.note}; RLIMIT_NOFILE {nofile[0]}/{nofile[1]}")
    c.interrupt_on_signals(signal.SIGTERM, signal.SIGHUP)
    started = datetime.datetime.now()
    t0 = time.monotonic()
    report_md: str | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="bench-activator-") as tmpname, \
                c.Supervisor(Path(tmpname), pinning) as sup:
            tmp = Path(tmpname)
            app, backend_port, backend_desc = start_backend(cfg, sup)
            host_hdr = {"Host": HOST}
            direct_body = c.http_get_headers(f"http://127.0.0.1:{backend_port}/", host_hdr)[1]
            expect_body = None if cfg.backend_cmd else direct_body
            targets: list[Target] = []
            warm: Warm | None = None
            if cfg.warm:
                qp = start_queue_proxy(sup, "queue-proxy", backend_port, 0)
                act = start_activator(sup, "activator", qp.port, 0, cold=False)
                targets = [
                    Target("direct", backend_port, {}, "the app, no proxy"),
                    Target("queue-proxy", qp.port, {"queue-proxy": qp.server},
                           "`python -m queueproxy`, CONTAINER_CONCURRENCY=0"),
                    Target("activator", act.port,
                           {"activator": act.server, "queue-proxy": qp.server},
                           "`python -m benchmarks.activator_runner` (containerConcurrency 0, "
                           "one ready replica) -> the same queue-proxy"),
                ]
                for t in targets[1:]:
                    status, body = c.http_get_headers(t.url, host_hdr)
                    if not 200 <= status < 300 or (expect_body is not None and body != expect_body):
                        raise c.BenchError(f"{t.name} does not reach the app: GET / gave {status} "
                                           f"{body[:80]!r}, direct gave {direct_body[:80]!r}")
                warm = Warm(cfg, pinning, app, targets, tmp)
                log("targets: " + ", ".join(f"{t.name} :{t.port}" for t in targets)
                    + f"; about {estimate_seconds(cfg):.0f} s in all")
                warm.warm_up()
                warm.run_all(log)
            held: Held | None = None
            held_procs: tuple[ActivatorProc, QueueProxy] | None = None
            if cfg.held:
                held, h_act, h_qp = run_held(cfg, sup, app, backend_port, expect_body, nofile, log)
                held_procs = (h_act, h_qp)
            wall = time.monotonic() - t0
            meta = describe_meta(cfg, pinning, tools, backend_desc, app, targets, held_procs,
                                 started, wall)
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
