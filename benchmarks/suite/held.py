"""Part 6, held requests: ``held`` requests waiting in a cold activator, then one replica.

The client runs in this process (uvloop, on the load CPU), one connection per request.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import socket
import statistics
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import uvloop

from benchmarks import metrics
from benchmarks.figures import Spread, columns, details, fmt, fmt_spread, kv_table
from benchmarks.processes import BenchError, http_get, raise_nofile
from benchmarks.procfs import CLK_TCK, CpuSnapshot, ticks_between, ticks_by_session, vm_rss_kib
from benchmarks.servers import (
    ROUTE_HOST,
    SAMPLE_APP,
    Proc,
    start_activator,
    start_app,
    start_queue_proxy,
)

from .context import Context, Goal, at_most

GOAL_KIB_PER_HELD = 10.0


@dataclass
class Held:
    rep: int
    n: int
    opened: int = 0
    open_s: float | None = None
    waiting: int = 0
    """The activator's queue length when all requests were sent (max seen)."""
    all_waiting_s: float | None = None
    answered_early: int = 0
    """Responses that arrived before SIGUSR1 (e.g. 503 queue-full)."""
    rss_kib: list[int | None] = field(default_factory=list)
    """The activator's VmRSS before, with all held, after all answered."""
    first_s: float | None = None
    median_s: float | None = None
    all_s: float | None = None
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    bad_body: int = 0
    ids_ok: set[int] = field(default_factory=set)
    """Distinct request ids answered 200 with the expected body."""
    counters: dict[str, float | None] = field(default_factory=dict)
    """Counter deltas over the repetition: queue-proxy requests, activator requests (all,
    200) and queued requests."""
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
    def qp_count(self) -> float | None:
        return self.counters.get("qp")

    @property
    def exactly_once(self) -> bool:
        return self.qp_count == self.n and self.ok == self.n

    @property
    def kib_per_held(self) -> float | None:
        before, at = [*self.rss_kib, None, None][:2]
        return (
            None
            if before is None or at is None or not self.waiting
            else (at - before) / self.waiting
        )


class HeldClient:
    """``h.n`` connections, each one ``GET /?id=N``; answers are timed, checked and counted in ``h``."""

    def __init__(self, port: int, h: Held, expect_body: bytes) -> None:
        self.port, self.h, self.n, self.expect_body = port, h, h.n, expect_body
        self.sent = self.failed_before_send = 0
        self.all_sent = asyncio.Event()
        self.done_at: list[float] = []
        self.writers: list[asyncio.StreamWriter] = []

    def _count(self, sent: bool) -> None:
        self.sent += sent
        self.failed_before_send += not sent
        if self.sent + self.failed_before_send >= self.n:
            self.all_sent.set()

    async def one(self, i: int, sem: asyncio.Semaphore) -> None:
        sent = False
        try:
            async with sem:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            self.writers.append(writer)
            writer.write(
                b"GET /?id=%d HTTP/1.1\r\nHost: %s\r\nUser-Agent: zeroserve-bench\r\n"
                b"Accept: */*\r\n\r\n" % (i, ROUTE_HOST.encode())
            )
            await writer.drain()
            sent = True
            self._count(True)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            fields = dict(line.partition(b":")[::2] for line in head.split(b"\r\n")[1:])
            fields = {k.strip().lower(): v.strip().lower() for k, v in fields.items()}
            if b"content-length" in fields:
                body = await reader.readexactly(int(fields[b"content-length"]))
            elif b"chunked" in fields.get(b"transfer-encoding", b""):
                body = await reader.readuntil(b"0\r\n\r\n")
            else:
                body = await reader.read()
            self.done_at.append(time.monotonic())
            self.h.statuses[status] += 1
            if status == 200 and body == self.expect_body:
                self.h.ids_ok.add(i)
            elif status == 200:
                self.h.bad_body += 1
        except Exception as e:  # every failure is counted, none stops the others
            self.h.errors[type(e).__name__] += 1
            if not sent:
                self._count(False)

    def close(self) -> None:
        linger = struct.pack("ii", 1, 0)
        for w in self.writers:
            # SO_LINGER 0, then close: a reset, no TIME_WAIT left behind for 10,000 ports
            if (sock := w.get_extra_info("socket")) is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            w.transport.abort()


async def _scrape(port: int) -> str | None:
    return await asyncio.to_thread(metrics.scrape, port, 5)


async def hold(ctx: Context, act: Proc, qp: Proc, app: Proc, expect: bytes, h: Held) -> None:
    cfg, n, pid = ctx.cfg, h.n, act.server.pid
    client = HeldClient(act.port, h, expect)
    sids = [pid, qp.server.pid, app.server.pid]
    before = [await _scrape(qp.metrics_port), await _scrape(act.metrics_port)]
    h.rss_kib.append(vm_rss_kib(pid))
    ticks0 = sum(ticks_by_session([pid])[pid].values())
    sem = asyncio.Semaphore(cfg.held_parallel)
    t0 = time.monotonic()
    tasks = [asyncio.ensure_future(client.one(i, sem)) for i in range(n)]
    try:
        try:
            await asyncio.wait_for(client.all_sent.wait(), cfg.held_timeout)
        except TimeoutError:
            h.problems.append(f"only {client.sent} of {n} requests were sent in time")
        h.opened, h.open_s = client.sent, time.monotonic() - t0
        ctx.log(
            f"held: {client.sent:,} requests sent on their own connections in {h.open_s:.1f} s "
            f"({client.failed_before_send} failed); waiting for the activator to report them"
        )
        deadline = time.monotonic() + cfg.held_timeout
        while h.waiting < client.sent:
            queue = metrics.total(
                await _scrape(act.metrics_port) or "", "kn_revision_request_queued"
            )
            h.waiting = max(h.waiting, int(queue or 0))
            if time.monotonic() > deadline:
                h.problems.append(f"the activator reported {h.waiting} of {client.sent} waiting")
                break
            await asyncio.sleep(0.1)
        else:
            h.all_waiting_s = time.monotonic() - t0
        h.rss_kib.append(vm_rss_kib(pid))
        if h.waiting:
            parked = sum(ticks_by_session([pid])[pid].values()) - ticks0
            h.park_us = parked * 1e6 / CLK_TCK / h.waiting
        h.answered_early = len(client.done_at)
        ctx.log(
            f"held: {h.waiting:,} waiting, VmRSS {h.rss_kib} KiB; SIGUSR1 (the replica appears)"
        )
        cpu0, t_sig = CpuSnapshot.take(sids), time.monotonic()
        os.kill(pid, signal.SIGUSR1)
        _, pending = await asyncio.wait(tasks, timeout=cfg.held_timeout)
        cpu1 = CpuSnapshot.take(sids)
        if pending:
            h.problems.append(f"{len(pending)} requests were still unanswered after SIGUSR1")
        if late := sorted(t - t_sig for t in client.done_at if t >= t_sig):
            h.first_s, h.median_s, h.all_s = late[0], statistics.median(late), late[-1]
            for role, sid in zip(("activator", "queue-proxy", "app"), sids, strict=True):
                h.release_us[role] = ticks_between(cpu0, cpu1, sid) * 1e6 / CLK_TCK / len(late)
        h.rss_kib.append(vm_rss_kib(pid))
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        client.close()
    # Counters: after the client is gone, so that nothing is still on its way.
    await asyncio.sleep(0.2)
    after = [await _scrape(qp.metrics_port), await _scrape(act.metrics_port)]
    requests = "http_server_request_duration_seconds_count"
    h.counters = {
        "qp": metrics.delta(before[0], after[0], "kn_serving_invocation_duration_seconds_count"),
        "act": metrics.delta(before[1], after[1], requests),
        "act_200": metrics.delta(
            before[1], after[1], requests, {"http_response_status_code": "200"}
        ),
        "queued": metrics.delta(before[1], after[1], "zeroserve_activator_queued_requests_total"),
    }


@dataclass
class HeldResult:
    runs: list[Held]
    nofile: tuple[int, int]
    procs: str
    """The processes of the last repetition, for the report."""
    cc: int
    parallel: int
    client_cpu: str

    def kib(self) -> Spread | None:
        return Spread.of(h.kib_per_held for h in self.runs)

    def all_s(self) -> Spread | None:
        return Spread.of(h.all_s for h in self.runs)

    @property
    def lost(self) -> int:
        return sum(h.lost for h in self.runs)

    @property
    def once(self) -> int:
        return sum(h.exactly_once for h in self.runs)

    def headline(self) -> list[str]:
        if not self.runs:
            return []
        return [
            f"{len(self.runs)} x {self.runs[0].n:,} requests held by a cold activator: "
            f"**{fmt_spread(self.kib(), 2)} KiB of activator memory per held request**; "
            f"{self.lost} lost, each answered exactly once in {self.once} of {len(self.runs)}, "
            f"all answered {fmt_spread(self.all_s(), 2)} s after the replica appeared"
        ]

    def goals(self) -> list[Goal]:
        total, ok, reps = sum(h.n for h in self.runs), sum(h.ok for h in self.runs), len(self.runs)
        counted = sum(h.qp_count or 0 for h in self.runs)
        kib = self.kib()
        return [
            Goal(
                "activator memory per held request (VmRSS growth / held)",
                f"<= {GOAL_KIB_PER_HELD:g} KiB",
                f"{fmt_spread(kib, 2)} KiB",
                None if kib is None else at_most(kib.median, GOAL_KIB_PER_HELD),
            ),
            Goal(
                "held requests answered 200 after the replica appeared",
                f"all {total:,}, 0 lost",
                f"{ok:,} of {total:,}, {self.lost:,} lost",
                self.lost == 0,
            ),
            Goal(
                "each held request reached the replica exactly once (queue-proxy's request count)",
                f"{total:,}",
                f"{counted:,.0f} (exactly once in {self.once} of {reps} repetition(s))",
                self.once == reps,
            ),
            Goal(
                "time from the replica's appearance to the last answer",
                "-",
                f"{fmt_spread(self.all_s(), 2)} s",
                None,
            ),
        ]

    def notes(self) -> list[str]:
        n = self.runs[0].n if self.runs else 0
        return [
            "Held requests: VmRSS counts the activator's user-space memory only; the kernel's "
            f"socket buffers for the {n:,} connections are not in it. The baseline is the fresh "
            "cold activator, so one-time allocations of its first requests are included (spread "
            "over all held requests).",
            *(f"Held requests, repetition {h.rep}: {p}." for h in self.runs for p in h.problems),
        ]

    def section(self, plot: list[str]) -> list[str]:
        n = self.runs[0].n if self.runs else 0
        table = columns(
            self.runs,
            [
                ("rep", lambda h: str(h.rep)),
                ("held", lambda h: f"{h.n:,}"),
                ("waiting (activator)", lambda h: f"{h.waiting:,}"),
                ("KiB per held request", lambda h: fmt(h.kib_per_held, 2)),
                ("status codes", lambda h: _codes(h.statuses)),
                ("lost", lambda h: f"{h.lost:,}"),
                ("queue-proxy counted", lambda h: fmt(h.qp_count, 0, thousands=True)),
                ("each once", lambda h: "yes" if h.exactly_once else "**no**"),
                ("open + send s", lambda h: fmt(h.open_s, 2)),
                ("first answer s", lambda h: fmt(h.first_s, 3)),
                ("all answered s", lambda h: fmt(h.all_s, 3)),
            ],
        )
        return [
            f"{len(self.runs)} time(s), each with a fresh cold activator (containerConcurrency "
            f"{self.cc}, queue depth 20,000) in front of a queue-proxy (CONTAINER_CONCURRENCY="
            f"{self.cc}) and the sample app, which are ready but not announced: {self.procs}. An "
            f"asyncio client (uvloop, in this script: {self.client_cpu}) opens {n:,} HTTP/1.1 "
            f"connections ({self.parallel} connection attempts at a time), each sending `GET "
            "/?id=N` with the Host header, and waits for the full response; once the activator "
            "reports them all waiting its VmRSS growth per request is read; SIGUSR1 then "
            f"announces the replica. RLIMIT_NOFILE {self.nofile[0]:,}/{self.nofile[1]:,}.",
            "",
            *plot,
            table,
            "",
            *details(
                "Last repetition in detail", detail(self.runs[-1], self.nofile) if self.runs else ""
            ),
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "runs": len(self.runs),
            "n": [h.n for h in self.runs],
            "ok": [h.ok for h in self.runs],
            "lost": self.lost,
            "queue_proxy_counted": [h.qp_count for h in self.runs],
            "kib_per_held": [h.kib_per_held for h in self.runs],
        }


def _codes(counts: collections.Counter[Any]) -> str:
    return ", ".join(f"{k}: {v:,}" for k, v in sorted(counts.items())) or "none"


def detail(h: Held, nofile: tuple[int, int]) -> str:
    kib, rss, c = h.kib_per_held, h.rss_kib, h.counters
    grew = f" ({(rss[1] or 0) - (rss[0] or 0):,} KiB / {h.waiting:,})" if kib is not None else ""
    acts = " / ".join(fmt(c.get(k), 0, thousands=True) for k in ("act", "act_200", "queued"))
    return kv_table(
        [
            ("connections opened, one request each", f"{h.opened:,} of {h.n:,}"),
            ("time to open them and send the requests", f"{fmt(h.open_s, 2)} s"),
            (
                "waiting, as the activator reported (kn_revision_request_queued)",
                f"{h.waiting:,} ({fmt(h.all_waiting_s, 2)} s after the first connection)",
            ),
            ("answered before the replica appeared", f"{h.answered_early:,}"),
            (
                "activator VmRSS before / all held / after all answered",
                " / ".join("-" if x is None else f"{x / 1024:,.1f} MiB" for x in rss),
            ),
            ("activator VmRSS growth per held request", f"{fmt(kib, 2)} KiB{grew}"),
            ("activator CPU per request while accepting and parking", f"{fmt(h.park_us)} µs"),
            (
                "SIGUSR1 to first / median / last answer",
                f"{fmt(h.first_s, 3)} / {fmt(h.median_s, 3)} / {fmt(h.all_s, 3)} s",
            ),
            (
                "answers per second while releasing",
                fmt(h.ok / h.all_s, 0, thousands=True) if h.all_s else "-",
            ),
            (
                "CPU per request while releasing: activator / queue-proxy / app",
                " / ".join(fmt(h.release_us.get(r)) for r in ("activator", "queue-proxy", "app"))
                + " µs",
            ),
            ("status codes received", _codes(h.statuses)),
            ("client errors", _codes(h.errors)),
            ("200 with an unexpected body", f"{h.bad_body:,}"),
            ("distinct ids answered 200", f"{len(h.ids_ok):,}"),
            ("lost (not answered 200)", f"{h.lost:,}"),
            ("activator: requests (all codes / 200) and queued, counter deltas", acts),
            ("queue-proxy: requests served (counter delta)", fmt(h.qp_count, 0, thousands=True)),
            (
                "RLIMIT_NOFILE (soft / hard) of the benchmark and its children",
                f"{nofile[0]:,} / {nofile[1]:,}",
            ),
        ],
        "held requests|value",
    )


def run(ctx: Context) -> HeldResult:
    cfg = ctx.cfg
    # Every held request is one socket here and one at the activator (which
    # inherits this limit); aim for twice that, need it once.
    nofile = raise_nofile(2 * cfg.held + 1024)
    if nofile[0] < cfg.held + 512:
        raise BenchError(
            f"{cfg.held:,} held requests need RLIMIT_NOFILE >= {cfg.held + 512}; the limit is "
            f"{nofile[0]} (hard {nofile[1]}). Raise it (ulimit -n) or lower --held."
        )
    app = start_app(ctx.sup, "held-app", SAMPLE_APP)
    expect = http_get(f"http://127.0.0.1:{app.port}/")[1]
    runs, procs = [], ""
    for rep in range(1, cfg.held_reps + 1):
        qp = start_queue_proxy(ctx.sup, f"held-queue-proxy-{rep}", app.port, cfg.held_cc)
        act = start_activator(ctx.sup, f"held-activator-{rep}", qp.port, cfg.held_cc, cold=True)
        procs = f"{act.desc} (:{act.port}, pid {act.server.pid}) -> {qp.desc} (:{qp.port}, pid {qp.server.pid})"
        ctx.log(f"held {rep}/{cfg.held_reps}: {procs}; opening {cfg.held:,} connections")
        runs.append(h := Held(rep, cfg.held))
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(hold(ctx, act, qp, app, expect, h))
        for s in (act.server, qp.server, app.server):
            s.ensure_alive()
        ctx.log(f"held: {h.ok:,} of {h.n:,} answered 200 in {fmt(h.all_s, 2)} s after SIGUSR1")
        ctx.stop(qp, act)
    ctx.stop(app)
    ctx.command(
        f"(in this script) {cfg.held:,} connections, one `GET /?id=N` each, to the cold activator"
    )
    where = f"pinned to CPU {cfg.load_cpu}" if ctx.pinning.enabled else "not pinned"
    return HeldResult(runs, nofile, procs, cfg.held_cc, cfg.held_parallel, where)
