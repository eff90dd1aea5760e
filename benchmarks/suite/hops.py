"""Parts 1 and 2, hop overhead: what each hop costs, against direct access and nginx,
behind the Python sample app (part 1) and behind benchmarks/gobackend (part 2; see the README).

The optional Go ``httputil.ReverseProxy`` (``--go-proxy``) is the core of Knative's
queue-proxy (``pkg/queue/sharedmain``). Every request carries the activator route's Host
header, so that every target sees the same request.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import servers
from benchmarks.figures import (
    Spread,
    columns,
    details,
    fmt,
    fmt_delta,
    fmt_ratio,
    fmt_spread,
    median,
)
from benchmarks.loadgen import WRK_PACED_LUA, run_load, which
from benchmarks.processes import BenchError, http_get
from benchmarks.procfs import CLK_TCK
from benchmarks.servers import ROUTE_HOST, Proc

from . import runs
from .config import Config
from .context import Context, Goal, Skipped, at_least, at_most
from .runs import Bench, Metric, Run, Step, Target

LABELS = {
    "direct": "direct (app)",
    "queue-proxy": "queue-proxy → app",
    "activator": "activator → queue-proxy → app",
    "nginx": "nginx → app",
    "floor": "bare pass-through → app",
    "workfloor": "work floor → app",
    "workfloors": "work floor → work floor → app",
    "goproxy": "goproxy → app",
}
PROXIES = ("activator", "queue-proxy", "nginx", "floor", "workfloors", "workfloor", "goproxy")
BASELINES = ("direct", "queue-proxy", "nginx", "floor", "workfloor", "workfloors", "goproxy")
# The goals the report compares with (read, never asserted).
GOAL_CPU_RATIO = 1.2
GOAL_ADDED_P50_MS = 0.5
# Against nginx, behind the Go backend (part hops-go): each hop at nginx's cost.
GO_GOALS = {
    "queue-proxy": {"cpu": 1.25, "tput": 0.8, "p50_ms": 0.3},
    "activator": {"cpu": 2.2, "p50_ms": 0.6},
}


def _proxies_times(hops: int) -> Metric:
    """A run's proxies' CPU per request, ``hops`` times: as many floors as a path has
    hops."""

    def metric(r: Run) -> float | None:
        v = runs.proxies_us(r)
        return None if v is None else v * hops

    return metric


@dataclass(frozen=True)
class Size:
    key: str
    label: str
    path: str
    requests: int
    rates: tuple[int, ...]

    def kind(self, what: str) -> str:
        return f"{self.key} {what}"


def sizes(cfg: Config) -> list[Size]:
    out = [Size("tiny", "tiny (13 bytes)", "/", cfg.hop_requests, cfg.hop_rates)]
    if n := cfg.large_bytes:
        label = f"{n >> 20} MiB" if n % (1 << 20) == 0 else f"{n:,} bytes"
        out.append(Size("large", label, f"/bytes/{n}", cfg.hop_requests_large, cfg.hop_rates_large))
    return out


def steps(cfg: Config, size: Size, tmp: Path) -> list[Step]:
    c, d, w, path = cfg.connections, cfg.hop_duration, cfg.rate_workers, size.path
    wrk = ("wrk", "-t1", f"-c{c}", f"-d{cfg.wrk_seconds}s", "--latency")
    out = [
        Step(size.kind("tput"), (*wrk, "-H", f"Host: {ROUTE_HOST}"), d + 30, path),
        Step(
            size.kind("cpu"),
            ("hey", "-n", str(size.requests), "-c", str(c), "-t", "30", "-host", ROUTE_HOST),
            30 + size.requests / 100,  # at least 100 req/s, or it is given up
            path,
        ),
    ]
    for rate in size.rates:
        kind = size.kind(f"latency@{rate}")
        if cfg.latency_tool == "hey":
            argv = ("hey", "-z", f"{d:g}s", "-c", str(w), "-q", f"{rate / w:g}", "-t", "30")
            out.append(Step(kind, (*argv, "-host", ROUTE_HOST), d + 40, path))
        else:
            (script := tmp / "paced.lua").write_text(WRK_PACED_LUA)
            paced = (
                "wrk",
                "-t1",
                f"-c{w}",
                f"-d{cfg.wrk_seconds}s",
                "--latency",
                "-s",
                str(script),
            )
            env = dict(os.environ, BENCH_WRK_DELAY_MS=str(max(1, round(w * 1000 / rate))))
            out.append(Step(kind, (*paced, "-H", f"Host: {ROUTE_HOST}"), d + 30, path, env))
    return out


Cell = Callable[[Any], str]


@dataclass
class HopsResult:
    bench: Bench
    sizes: list[Size]
    app_desc: str
    cfg: Config
    go: bool = False
    """Behind the Go backend: the goals are each hop's cost against nginx's."""

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.bench.targets]

    @property
    def roles(self) -> list[str]:
        have = {r for t in self.bench.targets for r in t.procs}
        return [*(r for r in PROXIES if r in have), "app"]

    def spread(self, target: str, kind: str, metric: Metric) -> Spread | None:
        return Spread.of(metric(r) for r in self.bench.used(target, kind))

    def vs(self, target: str, base: str, kind: str, metric: Metric, op: str = "/") -> Spread | None:
        """``target``'s figure / (or -) ``base``'s, within each repetition."""
        if target == base or base not in self.names:
            return None
        return runs.paired(
            self.bench.used(target, kind), self.bench.used(base, kind), metric, op=op
        )

    # -- tables

    def throughput_table(self, size: Size) -> str:
        k = size.kind("tput")
        cols: list[tuple[str, Cell]] = [
            ("target", lambda n: LABELS[n]),
            ("req/s", lambda n: fmt_spread(self.spread(n, k, runs.tput), 0, thousands=True)),
        ]
        cols += [(f"x {b}", _ratio(self, k, runs.tput, b)) for b in BASELINES if b in self.names]
        return columns(self.names, cols)

    def cpu_table(self, size: Size, kind: str) -> str:
        def per_app(n: str) -> str:
            return fmt_ratio(
                Spread.of(
                    (p or 0) / a
                    for r in self.bench.used(n, kind)
                    if (p := runs.proxies_us(r)) is not None and (a := r.us("app"))
                )
            )

        def most(n: str) -> str:
            total = self.spread(n, kind, runs.all_us)
            # a smoke run can use less CPU than one clock tick: no rate to show then
            return fmt(1e6 / total.median, 0, thousands=True) if total and total.median else "-"

        cols: list[tuple[str, Cell]] = [("target", lambda n: LABELS[n])]
        cols += [(f"{r} µs/req", _spread(self, kind, runs.role_us(r))) for r in self.roles]
        cols += [("proxies µs/req", _spread(self, kind, runs.proxies_us))]
        cols += [
            (f"x {b}", _ratio(self, kind, runs.proxies_us, b))
            for b in PROXIES[2:]
            if b in self.names
        ]
        cols += [("x app", per_app), ("all µs/req", _spread(self, kind, runs.all_us))]
        if kind.endswith("cpu"):
            cols.append(("max req/s on one CPU", most))
        return columns(self.names, cols)

    def latency_table(self, size: Size) -> str:
        digits = 2 if self.cfg.latency_tool == "hey" else 3

        def get(metric: Metric, fn: Callable[[Spread | None], str]) -> Cell:
            return lambda row: fn(self.spread(row[1], size.kind(f"latency@{row[0]}"), metric))

        def against(metric: Metric, base: str) -> Cell:
            def cell(row: tuple[int, str]) -> str:
                kind = size.kind(f"latency@{row[0]}")
                delta = self.vs(row[1], base, kind, metric, "-")
                ratio = self.vs(row[1], base, kind, metric)
                return "-" if delta is None else f"{fmt_delta(delta, digits)} / {fmt_ratio(ratio)}"

            return cell

        cols: list[tuple[str, Cell]] = [
            ("target", lambda row: LABELS[row[1]]),
            ("rate req/s", lambda row: f"{row[0]:,}"),
            ("achieved", get(runs.tput, lambda s: fmt(median(s), 0, thousands=True))),
            ("p50 ms", get(runs.p50, lambda s: fmt_spread(s, digits))),
            ("p90 ms", get(runs.p90, lambda s: fmt_spread(s, digits))),
            ("p99 ms", get(runs.p99, lambda s: fmt_spread(s, digits))),
        ]
        for b in (b for b in BASELINES if b in self.names):
            cols += [(f"p50 vs {b}", against(runs.p50, b)), (f"p99 vs {b}", against(runs.p99, b))]
        return columns([(rate, n) for rate in size.rates for n in self.names], cols)

    def every_run(self) -> str:
        def res(get: Callable[[Any], str]) -> Cell:
            return lambda r: "-" if r.result is None else get(r.result)

        cols: list[tuple[str, Cell]] = [
            ("target", lambda r: r.target),
            ("kind", lambda r: r.kind),
            ("rep", lambda r: str(r.rep)),
            ("try", lambda r: f"{r.attempt}{' (not used)' * r.superseded}"),
            ("req/s", res(lambda x: fmt(x.rps, 0, thousands=True))),
            ("responses", res(lambda x: str(x.requests))),
            ("p50 ms", res(lambda x: fmt(x.p50_ms, 3))),
            ("p90 ms", res(lambda x: fmt(x.p90_ms, 3))),
            ("p99 ms", res(lambda x: fmt(x.p99_ms, 3))),
            *[(f"{role} µs/req", lambda r, role=role: fmt(r.us(role))) for role in self.roles],
            ("servers CPU", lambda r: f"{r.server_util:.2f}"),
            ("wrk/hey CPU", lambda r: f"{r.loadgen_util:.2f}"),
            ("other CPU", lambda r: f"{r.foreign_cpu:.2f}"),
            ("errors / non-2xx", lambda r: _outcome(r)),
        ]
        return columns(self.bench.runs, cols, left=2)

    # -- the activator's goals, the summary, the notes

    def cpu_ratios(self) -> tuple[Spread | None, Spread | None]:
        """Activator µs/req over the queue-proxy's: both in the activator-path run, and
        against the queue-proxy-alone run of the same repetition."""
        if not {"activator", "queue-proxy"} <= set(self.names):
            return None, None
        k = self.sizes[0].kind("cpu")
        act = self.bench.used("activator", k)
        same = Spread.of((r.us("activator") or 0) / q for r in act if (q := r.us("queue-proxy")))
        qp = self.bench.used("queue-proxy", k)
        return same, runs.paired(act, qp, runs.role_us("activator"), runs.role_us("queue-proxy"))

    def added_p50(self, target: str = "activator", base: str = "direct") -> Spread | None:
        tiny = self.sizes[0]
        return self.vs(target, base, tiny.kind(f"latency@{max(tiny.rates)}"), runs.p50, "-")

    def go_goals(self) -> list[Goal]:
        """Each hop against one nginx hop, behind a backend cheaper than nginx."""
        if "nginx" not in self.names:
            return []
        out = []
        for n in (n for n in GO_GOALS if n in self.names):
            out += self._goal_rows(n, n, LABELS[n], f"{LABELS[n]}: proxies'")
        return out + self.floor_rows()

    def floor_rows(self) -> list[Goal]:
        """The floor next to the goals (a reference, no goal of its own): the bare
        pass-through of benchmarks/h1floor.py against nginx, and each path's CPU above
        as many floors as it has hops, all within each repetition."""
        if "floor" not in self.names:
            return self.work_floor_rows()
        k = self.sizes[0].kind("cpu")
        x = self.vs("floor", "nginx", k, runs.proxies_us)
        out = [
            Goal(
                "the floor: a bare uvloop + httptools pass-through's CPU per request / "
                "nginx's (Go backend)",
                "-",
                fmt_ratio(x),
                None,
            )
        ]
        for n, hops in (("queue-proxy", 1), ("activator", 2)):
            if n not in self.names:
                continue
            above = runs.paired(
                self.bench.used(n, k),
                self.bench.used("floor", k),
                runs.proxies_us,
                _proxies_times(hops),
                "-",
            )
            out.append(
                Goal(
                    f"{LABELS[n]}: proxies' CPU per request above {hops} floor"
                    f"{'s' * (hops > 1)} (Go backend)",
                    "-",
                    f"{fmt_delta(above, 1)} µs",
                    None,
                )
            )
        return out + self.work_floor_rows()

    def work_floor_rows(self) -> list[Goal]:
        """The work floor (benchmarks/h1floor.py ``--work``: the floor plus what every
        queue-proxy request must do, each the cheapest way in Python) against nginx and
        direct, with the queue-proxy's goals; two of them chained (target ``workfloors``)
        with the activator path's. Where a floor stands tells whether Python can meet the
        goal at all, and a path above its floor is what its own design costs."""
        out: list[Goal] = []
        if "workfloor" in self.names:
            out += self._goal_rows(
                "workfloor",
                "queue-proxy",
                "the work floor",
                "the work floor: the floor + the queue-proxy's per-request work,",
            )
            out += self._above("queue-proxy", "workfloor", "the work floor")
        if {"activator", "workfloors"} <= set(self.names):
            what = "two work floors chained (the activator path's floor),"
            out += self._goal_rows("workfloors", "activator", "two work floors chained", what)
            out += self._above("activator", "workfloors", "two work floors chained")
        return out

    def _goal_rows(self, target: str, path: str, name: str, what: str) -> list[Goal]:
        """``target`` (``name``; ``what`` in its CPU row) measured against the goals of
        ``path`` (GO_GOALS: a path's own, or a floor's against its path's), each within the
        repetitions of its baseline: CPU and throughput against nginx, p50 against direct."""
        tiny, goal = self.sizes[0], GO_GOALS[path]
        out = []
        x = self.vs(target, "nginx", tiny.kind("cpu"), runs.proxies_us)
        out.append(
            Goal(
                f"{what} CPU per request / nginx's (Go backend)",
                f"<= {goal['cpu']}x",
                fmt_ratio(x),
                None if x is None else at_most(x.median, goal["cpu"]),
            )
        )
        if "tput" in goal:
            t = self.vs(target, "nginx", tiny.kind("tput"), runs.tput)
            out.append(
                Goal(
                    f"{name}: throughput on one CPU / nginx's (Go backend)",
                    f">= {goal['tput']}x",
                    fmt_ratio(t),
                    None if t is None else at_least(t.median, goal["tput"]),
                )
            )
        added = self.added_p50(target)
        out.append(
            Goal(
                f"{name}: added p50 vs direct at {max(tiny.rates):,} req/s (Go backend)",
                f"<= +{goal['p50_ms']} ms",
                f"{fmt_delta(added, 2)} ms",
                None if added is None else at_most(added.median, goal["p50_ms"]),
            )
        )
        return out

    def _above(self, path: str, floor: str, what: str) -> list[Goal]:
        """How far ``path`` lies above ``floor`` (no goal of its own): proxies' CPU per
        request and p50 at the highest rate, each within a repetition."""
        if path not in self.names:
            return []
        tiny = self.sizes[0]
        cpu = self.vs(path, floor, tiny.kind("cpu"), runs.proxies_us, "-")
        p50 = self.added_p50(path, floor)
        return [
            Goal(
                f"{LABELS[path]}: proxies' CPU per request above {what} (Go backend)",
                "-",
                f"{fmt_delta(cpu, 1)} µs",
                None,
            ),
            Goal(
                f"{LABELS[path]}: p50 above {what} at {max(tiny.rates):,} req/s (Go backend)",
                "-",
                f"{fmt_delta(p50, 2)} ms",
                None,
            ),
        ]

    def goals(self) -> list[Goal]:
        if self.go:
            return self.go_goals()
        if "activator" not in self.names:
            return []
        same, cross = self.cpu_ratios()
        added, rate = self.added_p50(), max(self.sizes[0].rates)
        digits = 2 if self.cfg.latency_tool == "hey" else 3
        cpu = f"<= {GOAL_CPU_RATIO}x"
        return [
            Goal(
                "activator CPU per request / queue-proxy's, both in the activator-path run "
                "(same requests, same rate)",
                cpu,
                fmt_ratio(same),
                None if same is None else at_most(same.median, GOAL_CPU_RATIO),
            ),
            Goal(
                "activator CPU per request / queue-proxy's in the queue-proxy-alone run of the "
                "same repetition",
                cpu,
                fmt_ratio(cross),
                None if cross is None else at_most(cross.median, GOAL_CPU_RATIO),
            ),
            Goal(
                f"added p50 of activator + queue-proxy vs direct at {rate:,} req/s",
                f"<= {GOAL_ADDED_P50_MS} ms",
                f"{fmt_delta(added, digits)} ms",
                None if added is None else at_most(added.median, GOAL_ADDED_P50_MS),
            ),
        ]

    def headline(self) -> list[str]:
        out = []
        tiny, large = self.sizes[0], self.sizes[-1]
        top, k = max(tiny.rates), tiny.kind("cpu")
        for n in (n for n in ("queue-proxy", "activator") if n in self.names):
            x_nginx = self.vs(n, "nginx", k, runs.proxies_us)
            line = (
                f"**{LABELS[n]}**: {fmt_spread(self.spread(n, k, runs.proxies_us))} µs of proxy CPU "
                f"per request{f' ({fmt_ratio(x_nginx)} nginx)' if x_nginx else ''}, p50 "
                f"{fmt_delta(self.added_p50(n), 2)} ms over direct at {top:,} req/s"
            )
            if large is not tiny:
                x = fmt_ratio(self.vs(n, "direct", large.kind("tput"), runs.tput))
                line += f"; {large.label} responses at {x} direct throughput"
            out.append(line)
        used = [r for r in self.bench.runs if not r.superseded]
        noisy = sum(r.disturbed for r in used)
        return [
            *out,
            f"machine noise: other processes used more than {runs.DISTURBED_CPU} CPU during {noisy} "
            f"of the {len(used)} hop-overhead runs (see the notes)",
        ]

    def notes(self) -> list[str]:
        out = []
        cfg, tiny = self.cfg, self.sizes[0]
        direct = self.bench.used("direct", tiny.kind("tput"))
        util, gen, other = (
            Spread.of(f(r) for r in direct)
            for f in (lambda r: r.server_util, lambda r: r.loadgen_util, lambda r: r.foreign_cpu)
        )
        if util and gen and other:
            who = (
                "the app's CPU: the app is the bottleneck"
                if util.median >= 0.9
                else "the load generator's CPU: direct figures are a lower bound"
                if gen.median >= 0.9
                else f"no CPU of ours; other processes competed for the CPUs ({other.median:.2f} CPU)"
                if other.median >= 0.1
                else "no CPU (round trips on loopback)"
            )
            out.append(
                f"Direct throughput runs: the app used {util.median:.0%} of its CPU and wrk "
                f"{gen.median:.0%} of its CPU, so direct throughput is bounded by {who}."
            )
        for n in self.names:
            tput_runs = self.bench.used(n, tiny.kind("tput"))
            shares = [
                f"{s.median:.0%} to the {role}"
                for role in ("app", *PROXIES)
                if (s := Spread.of(r.share(role) for r in tput_runs))
            ]
            if (g := Spread.of(r.loadgen_util for r in tput_runs)) and shares:
                out.append(
                    f"{n} throughput runs: the servers' CPU went {', '.join(shares)}; wrk used "
                    f"{g.median:.0%} of its CPU"
                    + (
                        " (saturated: this throughput is a lower bound)."
                        if g.median >= 0.9
                        else "."
                    )
                )
        if (app := self.spread("direct", tiny.kind("cpu"), runs.role_us("app"))) and cfg.pin:
            out.append(
                f"The app alone costs {app.median:.1f} µs of CPU per request. The app and the "
                "proxies share one CPU, so a proxied target's throughput is bounded by 1 / (all "
                "µs/req) (the CPU table's last column): the x direct ratio depends on the app's "
                "cost as much as on the proxies', while proxies µs/req and its x nginx ratio do "
                "not (a Go helloworld app costs ~15-25 µs/req)."
            )
        same, cross = self.cpu_ratios()
        rates = self.vs("queue-proxy", "activator", tiny.kind("cpu"), runs.tput)
        if same and cross and rates:
            out.append(
                f"Activator CPU per request: {same.median:.2f}x the queue-proxy's in the same "
                f"activator-path run, {cross.median:.2f}x the queue-proxy's in its own run. The "
                "first compares two processes handling the same requests at the same rate; in "
                f"the second the queue-proxy runs at {rates.median:.2f}x the activator path's "
                "request rate (it shares the CPU with the app only), and a busier event loop "
                "handles more requests per wake-up, so it costs less per request. The queue-proxy "
                "also does more per request behind the activator (three more headers to parse, "
                "a `Forwarded` header from the activator's `X-Forwarded-For`)."
            )
        if hop := self.added_p50("activator", "queue-proxy"):
            out.append(
                "The activator hop alone (activator path p50 minus queue-proxy p50): "
                f"{fmt_delta(hop, 2)} ms."
            )
        out += self.bench.quality_notes("`--quiet-wait 30` and more `--hop-reps`")
        if cfg.latency_tool == "hey":
            line = (
                "hey reports latencies in 0.1 ms steps; `--latency-tool wrk` gives µs resolution."
            )
            if (w := cfg.rate_workers) > 1:
                line += (
                    f" Each of hey's {w} clients paces itself with its own ticker, all started "
                    f"together, so requests arrive in bursts of {w} (every {1000 * w / max(tiny.rates):g} "
                    "ms at the highest rate); on the one server CPU a burst queues through every "
                    "process of the path, so p50 includes waiting behind other requests of the "
                    "burst, more so the more processes the path has. `--rate-workers 1` (evenly "
                    "spaced) shows the latency of a request that does not queue; the paced wrk "
                    "of `--latency-tool wrk` is in between (its connections drift apart)."
                )
            out.append(line)
        if "nginx" in cfg.hop_targets and "nginx" not in self.names:
            out.append(
                "nginx was not found, so its reference is missing: apt-get install -y nginx."
            )
        return out

    def section(self, plot: list[str]) -> list[str]:
        cfg, c, d = self.cfg, self.cfg.connections, self.cfg.wrk_seconds
        w = cfg.rate_workers
        targets = "; ".join(
            f"**{t.name}** (:{t.port}{''.join(f', {r} pid {s.pid}' for r, s in t.procs.items())})"
            f": {t.detail}"
            for t in self.bench.targets
        )
        lat = (
            f"`hey -z {cfg.hop_duration:g}s -c {w} -q R/{w}`"
            if cfg.latency_tool == "hey"
            else f"`wrk -t1 -c{w} -d{d}s` with each connection pausing {w * 1000}/R ms between requests"
        )
        out = [
            f"App: {self.app_desc}, pid {self.bench.app.pid}. Targets: {targets}. Every request "
            f"carries `Host: {ROUTE_HOST}` (the activator's route). {cfg.hop_reps} "
            "repetition(s), interleaved across targets (order rotated each repetition); "
            f"throughput `wrk -t1 -c{c} -d{d}s`; CPU per request: utime+stime of all of each "
            f"process's threads (`/proc/PID/stat`, {1000 // CLK_TCK} ms ticks) around "
            f"`hey -n N -c {c}`, divided by the responses; latency at each fixed rate R: {lat}. "
            + (
                "The app and the proxies share one CPU, so throughput is bounded by their "
                "combined CPU cost."
                if cfg.pin
                else "Not pinned: the app, the proxies and the load generators compete for all CPUs."
            ),
            "",
            *plot,
        ]
        for size in self.sizes:
            top = max(size.rates)
            out += [
                f"### {size.label}: throughput, `wrk -t1 -c{c} -d{d}s`",
                "",
                self.throughput_table(size),
                "",
                f"### {size.label}: CPU per request, `hey -n {size.requests} -c {c}`",
                "",
                '"proxies" sums the proxies in the path; "x nginx" compares it with nginx\'s in '
                'the same repetition; "x app" with the app\'s own cost in the same run ("the '
                "proxies cost N times the app they front\"). The activator path's queue-proxy is "
                "the same process as the queue-proxy target's.",
                "",
                self.cpu_table(size, size.kind("cpu")),
                "",
                f"### {size.label}: latency at fixed rates",
                "",
                '"vs B": the difference to target B in ms / the ratio to it, both taken within '
                "each repetition.",
                "",
                self.latency_table(size),
                "",
                f"CPU per request in the runs at {top:,} req/s (the event loops idle between "
                "requests: far less batching of reads, writes and wake-ups than under load):",
                "",
                self.cpu_table(size, size.kind(f"latency@{top}")),
                "",
            ]
        return out + details(
            "Every hop-overhead run (CPU columns: share of one CPU during the run)",
            self.every_run(),
        )

    def to_json(self) -> dict[str, Any]:
        k = self.sizes[0].kind("cpu")
        return {
            "runs": len(self.bench.runs),
            "bad_runs": sum(1 for r in self.bench.runs if r.bad and not r.superseded),
            "targets": self.names,
            **{f"{n}_us": median(self.spread(n, k, runs.proxies_us)) for n in self.names[1:]},
        }


def _spread(res: HopsResult, kind: str, metric: Metric) -> Cell:
    return lambda n: fmt_spread(res.spread(n, kind, metric))


def _ratio(res: HopsResult, kind: str, metric: Metric, base: str) -> Cell:
    return lambda n: fmt_ratio(res.vs(n, base, kind, metric))


def _outcome(r: Run) -> str:
    if r.result is None:
        return "FAILED: " + (r.error or "").replace("|", "/").replace("\n", " ")[:200]
    return f"{r.result.errors} / {r.result.non2xx}"


def run(ctx: Context, go: bool = False) -> HopsResult:
    """The hop-overhead part; with ``go``, behind the Go backend (benchmarks/gobackend)."""
    cfg, sup, want = ctx.cfg, ctx.sup, ctx.cfg.hop_targets
    backend_cmd = cfg.backend_cmd
    if go:
        try:
            backend_cmd = shlex.quote(str(servers.build_go_backend(ctx.tmp)))
        except servers.NoGoBackend as e:
            raise Skipped(str(e)) from None
    part = "hops-go" if go else "hops"  # (process names, and nginx's directory)
    app = servers.start_app(sup, f"{part}-app", cfg.hop_app, backend_cmd)
    started: list[Proc] = [app]
    targets = [Target("direct", app.port, {}, "the app, no proxy")]

    def add(name: str, proc: Proc, procs: dict[str, Proc], detail: str = "") -> None:
        by_role = {role: p.server for role, p in procs.items()}
        targets.append(Target(name, proc.port, by_role, proc.desc + detail))

    if {"queue-proxy", "activator"} & set(want):
        started.append(qp := servers.start_queue_proxy(sup, f"{part}-queue-proxy", app.port, 0))
        if "queue-proxy" in want:
            add("queue-proxy", qp, {"queue-proxy": qp})
        if "activator" in want:
            started.append(
                act := servers.start_activator(sup, f"{part}-activator", qp.port, 0, cold=False)
            )
            add("activator", act, {"activator": act, "queue-proxy": qp}, " -> the same queue-proxy")
    if "nginx" in want and (nginx := which("nginx")) is None:
        ctx.log("nginx not found: hop overhead without the nginx reference (apt-get install nginx)")
    elif "nginx" in want and nginx is not None:
        started.append(ng := servers.start_nginx(sup, nginx, ctx.tmp, app.port, f"{part}-nginx"))
        add("nginx", ng, {"nginx": ng})
    if "floor" in want:
        started.append(fl := servers.start_floor(sup, app.port, f"{part}-floor"))
        add("floor", fl, {"floor": fl})
    if "workfloor" in want or (go and "workfloors" in want):
        started.append(wf := servers.start_floor(sup, app.port, f"{part}-workfloor", work=True))
        if "workfloor" in want:
            add("workfloor", wf, {"workfloor": wf})
        if go and "workfloors" in want:
            # The activator path's floor, measured: a work floor in front of that one, as
            # the activator is in front of the queue-proxy (its goals are behind Go only).
            started.append(
                front := servers.start_floor(sup, wf.port, f"{part}-workfloors", work=True)
            )
            add(
                "workfloors",
                front,
                {"workfloors": front, "workfloor": wf},
                " -> the same work floor",
            )
    if cfg.go_proxy:
        started.append(gp := servers.start_go_proxy(sup, cfg.go_proxy, app.port, f"{part}-goproxy"))
        add("goproxy", gp, {"goproxy": gp})
    the_sizes = sizes(cfg)
    host = {"Host": ROUTE_HOST}
    for size in the_sizes:
        direct = http_get(targets[0].url + size.path, host)
        for t in targets[1:]:
            got = http_get(t.url + size.path, host)
            if got[0] != direct[0] or (backend_cmd is None and got != direct):
                raise BenchError(
                    f"{t.name} does not pass {size.path} through: {got[0]} {got[1][:80]!r}, "
                    f"direct {direct[0]} {direct[1][:80]!r}"
                )
    all_steps = [s for size in the_sizes for s in steps(cfg, size, ctx.tmp)]
    for s in all_steps:
        ctx.command([*s.argv, "http://127.0.0.1:<target>" + s.path])
    bench = Bench(ctx.pinning, app.server, targets, cfg.quiet_wait)
    ctx.log("hop overhead: " + ", ".join(f"{t.name} :{t.port}" for t in targets))
    if cfg.warmup > 0:
        wrk = ["wrk", "-t1", f"-c{cfg.connections}", f"-d{cfg.warmup}s", "-H"]
        prefix = ctx.pinning.prefix(ctx.pinning.load_cpu)
        for t in targets:
            for size in the_sizes:
                argv = [*wrk, f"Host: {ROUTE_HOST}", t.url + size.path]
                run_load(argv, prefix, 30 + cfg.warmup)
        bench.check_servers()
    bench.run_all(all_steps, cfg.hop_reps, ctx.log)
    ctx.stop(*started)
    desc = "benchmarks/gobackend (Go net/http, one process)" if go else app.desc
    return HopsResult(bench, the_sizes, desc, cfg, go=go)
