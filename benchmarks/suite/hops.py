"""Part 1, hop overhead: what each hop costs, against direct access and nginx.

One backend (``benchmarks/backend.py``: the sample app's ``GET /`` plus
``/bytes/N``) and four targets in front of it, as ``benchmarks/activator.py``
and ``benchmarks/queueproxy.py`` start them: ``direct``, ``queue-proxy``
(CONTAINER_CONCURRENCY=0), ``activator`` (the real activator with one static
route -> the same queue-proxy) and ``nginx`` (one worker, keep-alive pool).
Every request carries the activator route's Host header. For a tiny and a
1 MiB response, interleaved repetitions of: throughput (``wrk -c50``), CPU per
request of every process in the path (``hey -n``, /proc), and p50/p90/p99 at
fixed rates (``hey -q``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchmarks import _common as c
from benchmarks import _servers as sv
from benchmarks import _warm as w

from .context import Context

LABELS = {
    "direct": "direct (app)",
    "queue-proxy": "queue-proxy → app",
    "activator": "activator → queue-proxy → app",
    "nginx": "nginx → app",
}
ROLES = ("activator", "queue-proxy", "nginx")


@dataclass(frozen=True)
class Size:
    key: str
    label: str
    path: str
    requests: int
    rates: tuple[int, ...]

    def kind(self, what: str) -> str:
        return f"{self.key} {what}"


def sizes(ctx: Context) -> list[Size]:
    cfg = ctx.cfg
    n = cfg.large_bytes
    large_label = f"{n >> 20} MiB" if n % (1 << 20) == 0 else f"{n:,} bytes"
    return [
        Size("tiny", "tiny (13 bytes)", "/", cfg.hop_requests, cfg.hop_rates),
        Size("large", large_label, f"/bytes/{n}", cfg.hop_requests_large, cfg.hop_rates_large),
    ]


@dataclass
class HopsResult:
    bench: w.Bench
    sizes: list[Size]
    targets: list[w.Target]
    backend_desc: str
    latency_tool: str

    # -- figures

    def runs(self, target: str, kind: str) -> list[w.Run]:
        return self.bench.used(target, kind)

    def spread(self, target: str, kind: str, metric: w.Metric) -> c.Spread | None:
        return w.spread(self.runs(target, kind), metric)

    def ratio(
        self,
        target: str,
        base: str,
        kind: str,
        metric: w.Metric,
        base_metric: w.Metric | None = None,
    ) -> c.Spread | None:
        if target == base:
            return None
        return w.paired(self.runs(target, kind), self.runs(base, kind), metric, base_metric)

    def delta(self, target: str, base: str, kind: str, metric: w.Metric) -> c.Spread | None:
        if target == base:
            return None
        return w.paired(self.runs(target, kind), self.runs(base, kind), metric, op="-")

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.targets]

    @property
    def has_nginx(self) -> bool:
        return "nginx" in self.names

    # -- tables

    def tput_cpu_table(self, size: Size) -> str:
        tput_k, cpu_k = size.kind("tput"), size.kind("cpu")
        header = [
            "target",
            "req/s",
            "x direct",
            "proxies µs/req",
            "x nginx",
            "activator µs/req",
            "queue-proxy µs/req",
            "nginx µs/req",
            "app µs/req",
        ]
        rows = []
        for n in self.names:
            rows.append(
                [
                    LABELS[n],
                    c.fmt_spread(self.spread(n, tput_k, w.tput), 0, thousands=True),
                    c.fmt_ratio(self.ratio(n, "direct", tput_k, w.tput)),
                    c.fmt_spread(self.spread(n, cpu_k, w.proxy_us)),
                    c.fmt_ratio(self.ratio(n, "nginx", cpu_k, w.proxy_us))
                    if self.has_nginx
                    else "-",
                    *[c.fmt_spread(self.spread(n, cpu_k, w.role_us(r))) for r in ROLES],
                    c.fmt_spread(self.spread(n, cpu_k, w.role_us("app"))),
                ]
            )
        return c.md_table(header, rows)

    def latency_table(self, size: Size) -> str:
        digits = 2 if self.latency_tool == "hey" else 3
        header = [
            "target",
            "rate req/s",
            "achieved",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p50 - direct ms",
            "p99 - direct ms",
        ]
        rows = []
        for rate in size.rates:
            k = size.kind(f"latency@{rate}")
            for n in self.names:
                got = self.spread(n, k, w.tput)
                rows.append(
                    [
                        LABELS[n],
                        f"{rate:,}",
                        c.fmt(got.median if got else None, 0, thousands=True),
                        c.fmt_spread(self.spread(n, k, w.p50), digits),
                        c.fmt_spread(self.spread(n, k, w.p90), digits),
                        c.fmt_spread(self.spread(n, k, w.p99), digits),
                        c.fmt_delta(self.delta(n, "direct", k, w.p50), digits),
                        c.fmt_delta(self.delta(n, "direct", k, w.p99), digits),
                    ]
                )
        return c.md_table(header, rows)

    def every_run(self) -> str:
        header = [
            "target",
            "kind",
            "rep",
            "req/s",
            "responses",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            *[f"{r} µs/req" for r in (*ROLES, "app")],
            "other CPU",
            "errors / non-2xx",
        ]
        rows = []
        for r in self.bench.runs:
            res = r.result
            tried = "" if not r.superseded else " (not used)"
            if res is None:
                rows.append([r.target, r.kind + tried, str(r.rep), *["-"] * 10, w.failure_cell(r)])
                continue
            rows.append(
                [
                    r.target,
                    r.kind + tried,
                    str(r.rep),
                    c.fmt(res.rps, 0, thousands=True),
                    str(res.requests),
                    c.fmt(res.p50_ms, 2),
                    c.fmt(res.p90_ms, 2),
                    c.fmt(res.p99_ms, 2),
                    *[c.fmt(r.us(x)) for x in (*ROLES, "app")],
                    f"{r.foreign_cpu:.2f}",
                    f"{res.errors} / {res.non2xx}",
                ]
            )
        return c.md_table(header, rows, left=3)

    # -- for the summary and the tests

    @property
    def bad_runs(self) -> int:
        return sum(1 for r in self.bench.runs if r.bad and not r.superseded)

    @property
    def disturbed_runs(self) -> int:
        return sum(1 for r in self.bench.runs if r.disturbed and not r.superseded)

    def headline(self) -> list[str]:
        out = []
        tiny, large = self.sizes
        top = max(tiny.rates)
        for n in ("queue-proxy", "activator"):
            if n not in self.names:
                continue
            cpu = self.spread(n, tiny.kind("cpu"), w.proxy_us)
            x_nginx = (
                self.ratio(n, "nginx", tiny.kind("cpu"), w.proxy_us) if self.has_nginx else None
            )
            added = self.delta(n, "direct", tiny.kind(f"latency@{top}"), w.p50)
            tput_l = self.ratio(n, "direct", large.kind("tput"), w.tput)
            line = (
                f"**{LABELS[n]}**: {c.fmt_spread(cpu)} µs of proxy CPU per request"
                + (f" ({c.fmt_ratio(x_nginx)} nginx)" if x_nginx else "")
                + f", p50 {c.fmt_delta(added, 2)} ms over direct at {top:,} req/s; "
                f"{large.label} responses at {c.fmt_ratio(tput_l)} direct throughput"
            )
            out.append(line)
        return out

    def to_json(self) -> dict[str, Any]:
        tiny = self.sizes[0]
        return {
            "runs": len(self.bench.runs),
            "bad_runs": self.bad_runs,
            "queue_proxy_us": _median(self.spread("queue-proxy", tiny.kind("cpu"), w.proxy_us)),
            "activator_path_us": _median(self.spread("activator", tiny.kind("cpu"), w.proxy_us)),
            "nginx_us": _median(self.spread("nginx", tiny.kind("cpu"), w.proxy_us)),
        }


def _median(s: c.Spread | None) -> float | None:
    return None if s is None else s.median


def run(ctx: Context) -> HopsResult:
    cfg = ctx.cfg
    nginx = c.which("nginx")
    if nginx is None:
        ctx.log(
            "nginx not found: hop overhead without the nginx reference (apt-get install -y nginx)"
        )
    sup = ctx.sup
    backend = sv.start_backend(sup, name="hops-backend", script=sv.BENCH_BACKEND)
    qp = sv.start_queue_proxy(sup, "hops-queue-proxy", backend.port, 0)
    act = sv.start_activator(sup, "hops-activator", qp.port, 0, cold=False)
    targets = [
        w.Target("direct", backend.port, {}, "the backend, no proxy"),
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
            "`python -m benchmarks.activator_runner` (one ready replica) -> the same queue-proxy",
        ),
    ]
    if nginx:
        server, port = sv.start_nginx(sup, nginx, ctx.tmp, backend.port, name="hops-nginx")
        targets.append(
            w.Target(
                "nginx",
                port,
                {"nginx": server},
                f"{c.tool_version('nginx', nginx)}, 1 worker, keep-alive pool",
            )
        )
    host = {"Host": sv.ROUTE_HOST}
    the_sizes = sizes(ctx)
    for size in the_sizes:
        direct = c.http_get_headers(targets[0].url + size.path, host)
        for t in targets[1:]:
            got = c.http_get_headers(t.url + size.path, host)
            if got != direct:
                raise c.BenchError(
                    f"{t.name} does not pass {size.path} through: {got[0]} "
                    f"{len(got[1])} bytes, direct {direct[0]} {len(direct[1])} bytes"
                )
    steps: list[w.Step] = []
    for size in the_sizes:
        steps.append(
            w.tput_step(
                cfg.connections, cfg.hop_duration, sv.ROUTE_HOST, size.path, size.kind("tput")
            )
        )
        steps.append(
            w.cpu_step(size.requests, cfg.connections, sv.ROUTE_HOST, size.path, size.kind("cpu"))
        )
        for rate in size.rates:
            steps.append(
                w.latency_step(
                    rate,
                    cfg.rate_workers,
                    cfg.hop_duration,
                    cfg.latency_tool,
                    ctx.tmp,
                    sv.ROUTE_HOST,
                    size.path,
                    size.kind(f"latency@{rate}"),
                )
            )
    for s in steps:
        ctx.command([*s.argv, "http://127.0.0.1:<target>" + s.path])
    bench = w.Bench(ctx.pinning, backend.server, targets, cfg.quiet_wait)
    ctx.log("hop overhead: " + ", ".join(f"{t.name} :{t.port}" for t in targets))
    bench.warm_up(cfg.warmup, cfg.connections, sv.ROUTE_HOST, [s.path for s in the_sizes])
    bench.run_all(steps, cfg.hop_reps, ctx.log)
    for t in targets:
        for proc in t.procs.values():
            if proc.alive():
                ctx.sup.stop(proc)
    ctx.sup.stop(backend.server)
    return HopsResult(bench, the_sizes, targets, backend.desc, cfg.latency_tool)
