"""Interleaved repetitions of load-generator runs on several targets, with CPU per process.

Reports take medians over repetitions and ratios or differences within one (``paired``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from benchmarks.figures import Spread, fmt
from benchmarks.loadgen import LoadResult, run_load
from benchmarks.processes import Pinning, Server
from benchmarks.procfs import (
    CLK_TCK,
    CpuSnapshot,
    foreign_cpu_seconds,
    ticks_between,
    ticks_by_session,
)

# Other processes using more CPU than this (in CPUs) during a run "disturbed" it.
DISTURBED_CPU = 0.1
# After a run, the next starts once the servers used no CPU over SETTLE_WINDOW s (they are
# done with the last run's connections), or after SETTLE_MAX s.
SETTLE_WINDOW = 0.05
SETTLE_MAX = 1.0


@dataclass
class Target:
    name: str
    port: int
    procs: dict[str, Server]
    """The processes in the path by role; empty for direct access."""
    detail: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class Step:
    """One kind of measurement: a load-generator command line without its URL."""

    kind: str
    """Its name in runs and reports, e.g. ``tiny cpu`` or ``large latency@200``."""
    argv: tuple[str, ...]
    timeout: float
    path: str = "/"
    env: Mapping[str, str] | None = None


@dataclass
class Run:
    target: str
    kind: str
    rep: int
    wall: float
    result: LoadResult | None
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
        return t * 1e6 / CLK_TCK / self.result.requests

    def sum_us(self, roles: Iterable[str]) -> float | None:
        vals = [self.us(r) for r in roles]
        return None if not vals or None in vals else sum(v or 0.0 for v in vals)

    @property
    def proxies(self) -> list[str]:
        return [r for r in self.ticks if r != "app"]

    def share(self, role: str) -> float | None:
        """Share of one CPU ``role`` used during the run."""
        t = self.ticks.get(role)
        return None if t is None else t / CLK_TCK / self.wall

    @property
    def server_util(self) -> float:
        return sum(self.ticks.values()) / CLK_TCK / self.wall

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

    def brief(self) -> str:
        if self.error or self.result is None:
            return f"FAILED {self.error}"
        r = self.result
        s = f"{r.rps:9,.0f} req/s  p50 {fmt(r.p50_ms, 3)} ms  p99 {fmt(r.p99_ms, 3)} ms"
        s += "".join(f"  {role} {fmt(self.us(role))} µs/req" for role in self.ticks)
        if r.errors or r.non2xx:
            s += f"  ERRORS {r.errors} non-2xx {r.non2xx}"
        if self.disturbed:
            s += f"  (disturbed: other processes used {self.foreign_cpu:.2f} CPU)"
        return s


Metric = Callable[[Run], float | None]


def _result(attr: str) -> Metric:
    return lambda r: None if r.result is None else getattr(r.result, attr)


tput, p50, p90, p99 = (_result(a) for a in ("rps", "p50_ms", "p90_ms", "p99_ms"))


def role_us(role: str) -> Metric:
    return lambda r: r.us(role)


def proxies_us(r: Run) -> float | None:
    return r.sum_us(r.proxies) if r.proxies else None


def all_us(r: Run) -> float | None:
    return r.sum_us(r.ticks)


def paired(
    mine: Iterable[Run],
    theirs: Iterable[Run],
    metric: Metric,
    base: Metric | None = None,
    op: str = "/",
) -> Spread | None:
    """Per repetition: my figure divided by (``op="/"``) or minus (``"-"``) the
    baseline's figure (``base``, default ``metric``) of the same repetition."""
    bases = {r.rep: (base or metric)(r) for r in theirs}
    out = []
    for r in mine:
        v, b = metric(r), bases.get(r.rep)
        if v is not None and b is not None and (op == "-" or b):
            out.append(v - b if op == "-" else v / b)
    return Spread.of(out)


@dataclass
class Bench:
    pinning: Pinning
    app: Server
    targets: list[Target]
    quiet_wait: float = 0.0
    """Wait up to this long for other load to stop before each run, and redo a
    disturbed run once (0: off)."""
    runs: list[Run] = field(default_factory=list)

    def sids(self) -> list[int]:
        return sorted({self.app.pid, *(s.pid for t in self.targets for s in t.procs.values())})

    def measure(self, target: Target, step: Step, rep: int, attempt: int = 1) -> Run:
        sids = self.sids()
        before = CpuSnapshot.take(sids)
        prefix = self.pinning.prefix(self.pinning.load_cpu)
        load = run_load([*step.argv, target.url + step.path], prefix, step.timeout, step.env)
        after = CpuSnapshot.take(sids)
        procs = {"app": self.app, **target.procs}
        run = Run(
            target.name,
            step.kind,
            rep,
            load.wall,
            load.result,
            load.error,
            {role: ticks_between(before, after, s.pid) for role, s in procs.items()},
            after.children_cpu - before.children_cpu,
            foreign_cpu_seconds(before, after, sids) / load.wall,
            attempt,
        )
        self.runs.append(run)
        return run

    def check_servers(self) -> None:
        for s in (self.app, *(s for t in self.targets for s in t.procs.values())):
            s.ensure_alive()

    def settle(self, window: float = SETTLE_WINDOW, most: float = SETTLE_MAX) -> float:
        """Wait until the servers (every process of their sessions) used no CPU tick over
        ``window`` s, at most ``most`` s: what they do after a run (closing its
        connections) is not counted in the next. Returns the seconds waited."""
        t0 = time.monotonic()
        sids = self.sids()
        before = ticks_by_session(sids)
        while time.monotonic() - t0 < most:
            time.sleep(window)
            now = ticks_by_session(sids)
            if now == before:
                break
            before = now
        return time.monotonic() - t0

    def wait_for_quiet(self, log: Callable[[str], None], window: float = 0.5) -> None:
        """Wait until other processes use under DISTURBED_CPU (over ``window`` s), at
        most ``quiet_wait`` s."""
        t0 = time.monotonic()
        while True:
            before = CpuSnapshot.take(self.sids())
            time.sleep(window)
            used = foreign_cpu_seconds(before, CpuSnapshot.take(self.sids()), self.sids()) / window
            if used < DISTURBED_CPU:
                return
            if time.monotonic() - t0 >= self.quiet_wait:
                log(f"machine still busy (other processes use {used:.2f} CPU); measuring anyway")
                return

    def run_all(self, steps: Sequence[Step], reps: int, log: Callable[[str], None]) -> None:
        t0 = time.monotonic()
        width = max(len(s.kind) for s in steps)
        for rep in range(1, reps + 1):
            # Rotate the order each repetition so that no target is always first.
            k = (rep - 1) % len(self.targets)
            for step in steps:
                for t in self.targets[k:] + self.targets[:k]:
                    tries: list[Run] = []
                    for attempt in (1, 2) if self.quiet_wait > 0 else (1,):
                        if self.quiet_wait > 0:
                            self.wait_for_quiet(log)
                        tries.append(run := self.measure(t, step, rep, attempt))
                        log(
                            f"{time.monotonic() - t0:5.0f}s rep {rep}/{reps} "
                            f"{step.kind:>{width}} {t.name:>11}: {run.brief()}"
                        )
                        self.check_servers()
                        self.settle()
                        if not run.disturbed:
                            break
                    # Of several attempts, keep the least disturbed one.
                    keep = min(tries, key=lambda r: (r.bad, r.foreign_cpu))
                    for r in tries:
                        r.superseded = r is not keep

    def used(self, target: str, kind: str) -> list[Run]:
        return [
            r
            for r in self.runs
            if r.target == target and r.kind == kind and not r.bad and not r.superseded
        ]

    def quality_notes(self, rerun: str) -> list[str]:
        out = []
        used = [r for r in self.runs if not r.superseded]
        if bad := sum(1 for r in used if r.bad):
            out.append(
                f"{bad} of the hop-overhead runs had errors, non-2xx responses or failed; they "
                "are left out of the figures above (see every run below)."
            )
        if redone := sum(r.superseded for r in self.runs):
            out.append(
                f"{redone} disturbed run(s) were redone (--quiet-wait); the figures use the "
                "less disturbed attempt of each."
            )
        if noisy := [r for r in used if r.disturbed]:
            worst = max(noisy, key=lambda r: r.foreign_cpu)
            out.append(
                f"Other processes on this machine used more than {DISTURBED_CPU} CPU during "
                f"{len(noisy)} of the {len(used)} hop-overhead runs in the figures (worst "
                f"{worst.foreign_cpu:.2f} CPU: {worst.target} {worst.kind} rep {worst.rep}); "
                f"those figures are less reliable. On a shared machine, rerun with {rerun}."
            )
        else:
            out.append(
                f"Other processes on this machine used under {DISTURBED_CPU} CPU during every "
                "one of the hop-overhead runs in the figures."
            )
        return out
