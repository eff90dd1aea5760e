"""Part 7, gRPC: unary calls of the grpc-ping example through each hop, CPU per call.

Targets: the app directly, the queue-proxy (``USER_PROTOCOL=h2c``), the activator in front
of it (an h2c revision: HTTP/2 on both of its sides) and nginx (``grpc_pass``, one
worker). Load: ``h2load`` (nghttp2) with ``grpc_clients`` connections of
``grpc_streams`` concurrent streams each, every call a unary ``Ping`` (a gRPC frame
posted to ``/ping.PingService/Ping``), pinned to the load CPU; the servers share the
server CPU. CPU per call is read from ``/proc`` around each run, per process; the
ratio to nginx is taken within each repetition (targets interleaved), against the goal
of the queue-proxy at most 2x nginx's CPU per call.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.figures import Spread, columns, fmt, fmt_spread
from benchmarks.loadgen import which
from benchmarks.processes import BenchError
from benchmarks.procfs import CLK_TCK, CpuSnapshot, ticks_between
from benchmarks.servers import (
    ROUTE_HOST,
    Proc,
    start_activator,
    start_grpc_app,
    start_nginx_grpc,
    start_queue_proxy,
)

from .context import Context, Goal, Skipped, at_most

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "grpc-ping"))
from pingproto import PING, encode

GOAL_X_NGINX = 2.0
TARGETS = ("direct", "queue-proxy", "activator", "nginx")
_DONE = re.compile(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed")
_STATUS = re.compile(r"status codes: (\d+) 2xx")


@dataclass
class Call:
    target: str
    rep: int
    calls: int
    succeeded: int
    wall: float
    us: dict[str, float]
    """CPU µs per call of each process in the path (app included)."""
    error: str = ""

    @property
    def proxies_us(self) -> float | None:
        roles = [r for r in self.us if r != "app"]
        return sum(self.us[r] for r in roles) if roles else None

    @property
    def rate(self) -> float:
        return self.succeeded / self.wall if self.wall else 0.0


@dataclass
class GrpcResult:
    runs: list[Call] = field(default_factory=list)
    procs: dict[str, str] = field(default_factory=dict)
    command: str = ""

    def of(self, target: str) -> list[Call]:
        return [r for r in self.runs if r.target == target]

    def spread(self, target: str) -> Spread | None:
        return Spread.of(r.proxies_us for r in self.of(target))

    def x_nginx(self, target: str) -> Spread | None:
        """Per repetition: the target's proxies' µs per call over nginx's."""
        ratios = []
        for rep in sorted({r.rep for r in self.runs}):
            mine = [r for r in self.of(target) if r.rep == rep]
            ref = [r for r in self.of("nginx") if r.rep == rep]
            if mine and ref and mine[0].proxies_us and ref[0].proxies_us:
                ratios.append(mine[0].proxies_us / ref[0].proxies_us)
        return Spread.of(ratios)

    @property
    def failed_calls(self) -> int:
        return sum(r.calls - r.succeeded for r in self.runs)

    def headline(self) -> list[str]:
        x = self.x_nginx("queue-proxy")
        return [
            f"gRPC unary calls: queue-proxy **{fmt_spread(self.spread('queue-proxy'))} µs CPU "
            f"per call**, {fmt_spread(x, 2)}x nginx's grpc_pass; activator + queue-proxy "
            f"{fmt_spread(self.spread('activator'))} µs; {self.failed_calls} calls failed."
        ]

    def goals(self) -> list[Goal]:
        x = self.x_nginx("queue-proxy")
        return [
            Goal(
                "queue-proxy CPU per gRPC call vs nginx grpc_pass",
                f"<= {GOAL_X_NGINX:g}x",
                f"{fmt_spread(x, 2)}x",
                None if x is None else at_most(x.median, GOAL_X_NGINX),
            ),
            Goal("gRPC calls failed", "0", str(self.failed_calls), self.failed_calls == 0),
        ]

    def notes(self) -> list[str]:
        return [
            "gRPC: CPU per call counts every process of the path but the app (the queue-proxy; "
            "the activator and the queue-proxy; nginx's master and worker); each call is one "
            "HTTP/2 stream, and h2load multiplexes streams over few connections, so this is "
            "the per-stream cost, not per connection."
        ]

    def section(self, plot: list[str]) -> list[str]:
        rows = [
            (
                t,
                fmt_spread(Spread.of(r.rate for r in self.of(t)), 0, thousands=True),
                fmt_spread(self.spread(t)) if t != "direct" else "-",
                fmt_spread(Spread.of(r.us.get("app") for r in self.of(t))),
                fmt_spread(self.x_nginx(t), 2) if t not in ("direct", "nginx") else "-",
                str(sum(r.calls - r.succeeded for r in self.of(t))),
            )
            for t in TARGETS
            if self.of(t)
        ]
        table = columns(
            rows,
            [
                ("target", lambda r: r[0]),
                ("calls/s", lambda r: r[1]),
                ("proxies µs/call", lambda r: r[2]),
                ("app µs/call", lambda r: r[3]),
                ("x nginx", lambda r: r[4]),
                ("failed", lambda r: r[5]),
            ],
        )
        procs = "\n".join(f"- {k}: {v}" for k, v in self.procs.items())
        return [
            f"Load: `{self.command}`.",
            "",
            table,
            "",
            procs,
            "",
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "runs": len(self.runs),
            "failed_calls": self.failed_calls,
            "calls": {t: [r.calls for r in self.of(t)] for t in TARGETS},
            "succeeded": {t: [r.succeeded for r in self.of(t)] for t in TARGETS},
            "proxies_us": {t: [r.proxies_us for r in self.of(t)] for t in TARGETS},
            "queue_proxy_x_nginx": None if (x := self.x_nginx("queue-proxy")) is None else x.median,
        }


def _grpc_body(path: Path) -> Path:
    """One gRPC request frame (no compression, 4-byte length, the message)."""
    message = encode("benchmark")
    path.write_bytes(b"\x00" + len(message).to_bytes(4, "big") + message)
    return path


def run(ctx: Context) -> GrpcResult:
    cfg = ctx.cfg
    h2load, nginx = which("h2load"), which("nginx")
    if h2load is None or nginx is None:
        raise Skipped("h2load and nginx are needed (apt-get install -y nghttp2-client nginx)")
    body = _grpc_body(ctx.tmp / "grpc-ping.bin")
    res = GrpcResult()
    app = start_grpc_app(ctx.sup, "grpc-app")
    qp = start_queue_proxy(ctx.sup, "grpc-queue-proxy", app.port, 0, protocol="h2c")
    act_qp = start_queue_proxy(ctx.sup, "grpc-queue-proxy-2", app.port, 0, protocol="h2c")
    act = start_activator(ctx.sup, "grpc-activator", act_qp.port, 0, cold=False, protocol="h2c")
    ngx = start_nginx_grpc(ctx.sup, nginx, ctx.tmp, app.port, "grpc-nginx")
    paths: dict[str, list[Proc]] = {
        "direct": [],
        "queue-proxy": [qp],
        "activator": [act, act_qp],
        "nginx": [ngx],
    }
    ports = {"direct": app.port, "queue-proxy": qp.port, "activator": act.port, "nginx": ngx.port}
    res.procs = {
        "app": app.desc,
        "queue-proxy": qp.desc,
        "activator": act.desc,
        "nginx": ngx.desc,
    }
    argv = [
        h2load,
        "-n",
        str(cfg.grpc_calls),
        "-c",
        str(cfg.grpc_clients),
        "-m",
        str(cfg.grpc_streams),
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
        "-H",
        f":authority: {ROUTE_HOST}",
        "-d",
        str(body),
    ]
    res.command = " ".join([*argv[:-1], "grpc-ping.bin", f"http://127.0.0.1:PORT{PING}"])
    ctx.command(res.command)
    load = ctx.pinning.prefix(ctx.pinning.load_cpu)
    sids = sorted({p.server.pid for ps in paths.values() for p in ps} | {app.server.pid})
    for rep in range(1, cfg.grpc_reps + 1):
        order = TARGETS[rep % len(TARGETS) :] + TARGETS[: rep % len(TARGETS)]
        for target in order:
            url = f"http://127.0.0.1:{ports[target]}{PING}"
            before = CpuSnapshot.take(sids)
            t0 = time.monotonic()
            done = subprocess.run(
                [*load, *argv, url], capture_output=True, text=True, timeout=300, check=False
            )
            wall = time.monotonic() - t0
            after = CpuSnapshot.take(sids)
            m = _DONE.search(done.stdout)
            ok = _STATUS.search(done.stdout)
            succeeded = int(ok.group(1)) if ok else 0
            calls = int(m.group(1)) if m else cfg.grpc_calls
            per_call = 1e6 / CLK_TCK / max(1, succeeded)
            us = {"app": ticks_between(before, after, app.server.pid) * per_call}
            for p in paths[target]:
                us[p.server.name] = ticks_between(before, after, p.server.pid) * per_call
            call = Call(target, rep, calls, succeeded, wall, us)
            if done.returncode != 0 or m is None:
                call.error = (done.stdout + done.stderr)[-300:]
            res.runs.append(call)
            ctx.log(
                f"grpc {rep}/{cfg.grpc_reps} {target}: {succeeded}/{calls} calls, "
                f"{fmt(call.rate, 0)}/s, proxies {fmt(call.proxies_us)} µs/call"
            )
    ctx.stop(ngx, act, act_qp, qp, app)
    if not any(r.succeeded for r in res.runs):
        errors = "; ".join(r.error for r in res.runs if r.error)
        raise BenchError(f"no gRPC call succeeded: {errors[:400]}")
    return res
