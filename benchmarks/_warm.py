"""Warm-path measurements shared by the benchmarks: targets, runs, interleaving.

A ``Target`` is a URL and the processes in its path by role ("queue-proxy",
"activator", "nginx", ...; none for direct access); the app behind every
target is the role "app". A ``Step`` is one load-generator invocation
(``wrk`` throughput, ``hey -n`` for CPU per request, ``hey -q`` / paced
``wrk`` at a fixed rate). ``Bench.run_all`` measures every step on every
target, repetition after repetition, interleaved (repetition 1 does every
step on every target, then repetition 2 in a rotated target order), reading
``utime + stime`` of every process from /proc around each run, so that each
``Run`` knows the CPU per response of each role. The reports take medians
over repetitions and ratios within a repetition (``paired``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import _common as c

# Other processes using more CPU than this (in CPUs) during a run "disturbed" it.
DISTURBED_CPU = 0.1


@dataclass
class Target:
    name: str
    port: int
    procs: dict[str, c.Server]
    """The processes in the path by role; empty for direct access."""
    detail: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class Step:
    """One kind of measurement: a load-generator command line without its URL."""

    kind: str
    """Its name in runs and reports, e.g. ``tput`` or ``1mib latency@500``."""
    argv: tuple[str, ...]
    parser: Callable[[str], c.LoadResult]
    timeout: float
    path: str = "/"
    env: Mapping[str, str] | None = None


def _host_args(tool: str, host: str | None) -> list[str]:
    if host is None:
        return []
    return ["-host", host] if tool == "hey" else ["-H", f"Host: {host}"]


def tput_step(
    connections: int, duration: int, host: str | None = None, path: str = "/", kind: str = "tput"
) -> Step:
    """Throughput: ``wrk -t1 -cN -dDs``."""
    return Step(
        kind,
        ("wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", *_host_args("wrk", host)),
        c.parse_wrk,
        duration + 30,
        path,
    )


def cpu_step(
    requests: int, connections: int, host: str | None = None, path: str = "/", kind: str = "cpu"
) -> Step:
    """A fixed number of requests (``hey -n``), for CPU per request; bounded:
    at least 100 req/s, or it is given up."""
    return Step(
        kind,
        ("hey", "-n", str(requests), "-c", str(connections), "-t", "30", *_host_args("hey", host)),
        c.parse_hey,
        30 + requests / 100,
        path,
    )


def latency_step(
    rate: int,
    workers: int,
    duration: int,
    tool: str,
    tmp: Path,
    host: str | None = None,
    path: str = "/",
    kind: str = "latency",
) -> Step:
    """A fixed rate: ``hey -q`` (``workers`` clients of rate/workers each) or
    ``wrk`` with each connection pausing between requests (µs resolution)."""
    if tool == "hey":
        return Step(
            kind,
            (
                "hey",
                "-z",
                f"{duration}s",
                "-c",
                str(workers),
                "-q",
                f"{rate / workers:g}",
                "-t",
                "30",
                *_host_args("hey", host),
            ),
            c.parse_hey,
            duration + 40,
            path,
        )
    script = tmp / "paced.lua"
    if not script.exists():
        script.write_text(c.WRK_PACED_LUA)
    delay_ms = max(1, round(workers * 1000 / rate))
    return Step(
        kind,
        (
            "wrk",
            "-t1",
            f"-c{workers}",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(script),
            *_host_args("wrk", host),
        ),
        c.parse_wrk,
        duration + 30,
        path,
        dict(os.environ, BENCH_WRK_DELAY_MS=str(delay_ms)),
    )


def latency_command(rate: int, workers: int, duration: int, tool: str) -> str:
    """How a latency step's command reads in a report."""
    if tool == "hey":
        return f"hey -z {duration}s -c {workers} -q {rate / workers:g}"
    return (
        f"wrk -t1 -c{workers} -d{duration}s --latency, each connection pausing "
        f"{max(1, round(workers * 1000 / rate))} ms between requests"
    )


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
    """CPU ticks by role: "app" always, plus the roles in the target's path."""
    loadgen_cpu: float
    foreign_cpu: float
    attempt: int = 1
    superseded: bool = False
    """True when another attempt of the same measurement was used instead (--quiet-wait)."""

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

    @property
    def proxy_roles(self) -> list[str]:
        return [r for r in self.ticks if r != "app"]

    @property
    def proxy_ticks(self) -> int | None:
        """All proxies of the path together; None for direct access."""
        roles = self.proxy_roles
        return sum(self.ticks[r] for r in roles) if roles else None

    @property
    def backend_ticks(self) -> int:
        return self.ticks.get("app", 0)

    @property
    def proxy_us(self) -> float | None:
        roles = self.proxy_roles
        return self.sum_us(roles) if roles else None

    @property
    def backend_us(self) -> float | None:
        return self.us("app")

    def share(self, role: str) -> float | None:
        t = self.ticks.get(role)
        return None if t is None else t / c.CLK_TCK / self.wall

    @property
    def server_util(self) -> float:
        """Share of one CPU used by the app and the proxies during the run."""
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
class Bench:
    """Targets in front of one app, and every run measured on them."""

    pinning: c.Pinning
    app: c.Server
    targets: list[Target]
    quiet_wait: float = 0.0
    """Wait up to this long for other load to stop before each run, and redo a
    disturbed run once (0: off)."""
    extra_sids: list[int] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)

    def server_sids(self) -> list[int]:
        sids = {self.app.pid, *self.extra_sids}
        for t in self.targets:
            sids.update(s.pid for s in t.procs.values())
        return sorted(sids)

    def measure(self, target: Target, step: Step, rep: int, attempt: int = 1) -> Run:
        argv = [*step.argv, target.url + step.path]
        all_sids = self.server_sids()
        before = c.CpuSnapshot.take(all_sids)
        load = c.run_load(argv, self.pinning, step.timeout, step.env)
        after = c.CpuSnapshot.take(all_sids)
        result: c.LoadResult | None = None
        error: str | None = None
        if load.rc != 0:
            error = f"exit status {load.rc}: {load.output.strip()[-300:]}"
        else:
            try:
                result = step.parser(load.output)
            except ValueError as e:
                error = f"{e}: {load.output.strip()[-300:]}"
        ticks = {"app": c.session_ticks_between(before, after, self.app.pid)}
        for role, srv in target.procs.items():
            ticks[role] = c.session_ticks_between(before, after, srv.pid)
        run = Run(
            target=target.name,
            kind=step.kind,
            rep=rep,
            argv=argv,
            rc=load.rc,
            wall=load.wall,
            result=result,
            error=error,
            ticks=ticks,
            loadgen_cpu=after.children_cpu - before.children_cpu,
            foreign_cpu=c.foreign_cpu_seconds(before, after, all_sids) / load.wall,
            attempt=attempt,
        )
        self.runs.append(run)
        return run

    def check_servers(self) -> None:
        self.app.ensure_alive()
        for t in self.targets:
            for s in t.procs.values():
                s.ensure_alive()

    def warm_up(
        self, seconds: int, connections: int, host: str | None = None, paths: Sequence[str] = ("/",)
    ) -> None:
        """A few seconds of wrk load on every target and path before measuring."""
        if seconds <= 0:
            return
        for t in self.targets:
            for path in paths:
                c.run_load(
                    [
                        "wrk",
                        "-t1",
                        f"-c{connections}",
                        f"-d{seconds}s",
                        *_host_args("wrk", host),
                        t.url + path,
                    ],
                    self.pinning,
                    30 + seconds,
                )
        self.check_servers()

    def run_all(self, steps: Sequence[Step], reps: int, log: Callable[[str], None]) -> None:
        t0 = time.monotonic()
        width = max(len(s.kind) for s in steps)
        for rep in range(1, reps + 1):
            # Rotate the order each repetition so that no target is always first.
            k = (rep - 1) % len(self.targets)
            order = self.targets[k:] + self.targets[:k]
            for step in steps:
                for t in order:
                    attempts = 2 if self.quiet_wait > 0 else 1
                    tries: list[Run] = []
                    for attempt in range(1, attempts + 1):
                        if self.quiet_wait > 0:
                            waited, busy = c.wait_for_quiet(
                                self.server_sids(), self.quiet_wait, DISTURBED_CPU
                            )
                            if busy >= DISTURBED_CPU:
                                log(
                                    f"machine still busy after {waited:.0f} s (other processes "
                                    f"use {busy:.2f} CPU); measuring anyway"
                                )
                        run = self.measure(t, step, rep, attempt)
                        tries.append(run)
                        log(
                            f"{time.monotonic() - t0:5.0f}s rep {rep}/{reps} "
                            f"{step.kind:>{width}} {t.name:>11}: {brief(run)}"
                        )
                        self.check_servers()
                        time.sleep(0.2)
                        if not run.disturbed:
                            break
                    # Of several attempts, keep the least disturbed one.
                    keep = min(tries, key=lambda r: (r.bad, r.foreign_cpu))
                    for r in tries:
                        r.superseded = r is not keep

    def used(self, target: str, kind: str) -> list[Run]:
        """The runs that count: no errors, not superseded by another attempt."""
        return [
            r
            for r in self.runs
            if r.target == target and r.kind == kind and not r.bad and not r.superseded
        ]


def failure_cell(run: Run) -> str:
    """A failed run's error as one table cell."""
    return "FAILED: " + (run.error or "").replace("|", "/").replace("\n", " ")[:200]


def quality_notes(bench: Bench, what: str, rerun: str) -> list[str]:
    """What a report says about the runs it could not trust: failed ones (left out),
    ones redone for being disturbed, and how many of those used were disturbed.
    ``what`` names the runs ("hop-overhead runs"); ``rerun`` the options that help."""
    out = []
    used = [r for r in bench.runs if not r.superseded]
    bad = sum(1 for r in used if r.bad)
    if bad:
        out.append(
            f"{bad} of the {what} had errors, non-2xx responses or failed; they are left "
            "out of the figures above (see every run below)."
        )
    redone = sum(r.superseded for r in bench.runs)
    if redone:
        out.append(
            f"{redone} disturbed run(s) were redone (--quiet-wait); the figures use the "
            "less disturbed attempt of each."
        )
    noisy = [r for r in used if r.disturbed]
    if noisy:
        worst = max(noisy, key=lambda r: r.foreign_cpu)
        out.append(
            f"Other processes on this machine used more than {DISTURBED_CPU} CPU during "
            f"{len(noisy)} of the {len(used)} {what} in the figures (worst "
            f"{worst.foreign_cpu:.2f} CPU: {worst.target} {worst.kind} rep {worst.rep}); "
            f"those figures are less reliable. On a shared machine, rerun with {rerun}."
        )
    else:
        out.append(
            f"Other processes on this machine used under {DISTURBED_CPU} CPU during "
            f"every one of the {what} in the figures."
        )
    return out


def brief(run: Run) -> str:
    """One progress line's worth of a run."""
    if run.error or run.result is None:
        return f"FAILED {run.error}"
    r = run.result
    s = f"{r.rps:9,.0f} req/s"
    if "latency" in run.kind:
        s += f"  p50 {c.fmt(r.p50_ms, 3)} ms  p99 {c.fmt(r.p99_ms, 3)} ms"
    if "cpu" in run.kind:
        for role in (*run.proxy_roles, "app"):
            s += f"  {role} {c.fmt(run.us(role))} µs/req"
    if "tput" in run.kind:
        s += f"  servers {run.server_util:.0%} of a CPU, load generator {run.loadgen_util:.0%}"
    if r.errors or r.non2xx:
        s += f"  ERRORS {r.errors} non-2xx {r.non2xx}"
    if run.disturbed:
        s += f"  (disturbed: other processes used {run.foreign_cpu:.2f} CPU)"
    return s


# ------------------------------------------------------------------ figures of runs

Metric = Callable[[Run], float | None]


def tput(r: Run) -> float | None:
    return r.result.rps if r.result else None


def p50(r: Run) -> float | None:
    return r.result.p50_ms if r.result else None


def p90(r: Run) -> float | None:
    return r.result.p90_ms if r.result else None


def p99(r: Run) -> float | None:
    return r.result.p99_ms if r.result else None


def role_us(role: str) -> Metric:
    return lambda r: r.us(role)


def proxy_us(r: Run) -> float | None:
    return r.proxy_us


def backend_us(r: Run) -> float | None:
    return r.backend_us


def all_us(r: Run) -> float | None:
    return r.sum_us(list(r.ticks))


def spread(runs: Iterable[Run], metric: Metric) -> c.Spread | None:
    return c.Spread.of(metric(r) for r in runs)


def paired(
    mine: Iterable[Run],
    theirs: Iterable[Run],
    metric: Metric,
    base_metric: Metric | None = None,
    op: str = "/",
) -> c.Spread | None:
    """Per repetition: my figure divided by (``op="/"``) or minus (``"-"``) the
    baseline's figure of the same repetition; their median [min-max]."""
    bm = base_metric or metric
    base = {r.rep: bm(r) for r in theirs}
    out = []
    for r in mine:
        v, b = metric(r), base.get(r.rep)
        if v is None or b is None:
            continue
        if op == "-":
            out.append(v - b)
        elif b:
            out.append(v / b)
    return c.Spread.of(out)
