"""Requests held by a cold activator: memory per held request, all answered once.

A cold activator (``python -m benchmarks.activator_runner --cold``: one route,
a revision with no replica) in front of a queue-proxy and the app, which are
ready but not announced. An asyncio client (uvloop) opens ``n`` HTTP/1.1
connections, each sending ``GET /?id=N``; once the activator's
``zeroserve_activator_queue_length`` says all of them wait, its VmRSS growth
divided by the held requests is the memory per held request; then SIGUSR1
announces the replica and the client times the answers and checks each one
(status, body, id). The queue-proxy's and the activator's Prometheus request
counters tell whether each request reached the replica exactly once.

Used by ``benchmarks/activator.py`` and the suite (``benchmarks/suite``).
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
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass, field

import uvloop

from benchmarks import _common as c
from benchmarks import _servers as sv


@dataclass(frozen=True)
class HeldSettings:
    n: int
    """Requests held, one connection each."""
    cc: int
    """containerConcurrency of the revision, at the activator and its queue-proxy."""
    parallel: int = 200
    """Connection attempts in progress at once while opening the connections."""
    timeout: float = 120.0
    """How long to wait for all to be waiting, and for all to be answered."""


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
            writer.write(
                b"GET /?id=%d HTTP/1.1\r\nHost: %s\r\nUser-Agent: zeroserve-bench\r\n"
                b"Accept: */*\r\n\r\n" % (i, sv.ROUTE_HOST.encode())
            )
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


async def _held(
    cfg: HeldSettings,
    act: sv.ActivatorProc,
    qp: sv.QueueProxy,
    app: c.Server,
    expect_body: bytes | None,
    held: Held,
    log: Callable[[str], None],
) -> None:
    n = cfg.n
    client = HeldClient(act.port, n, cfg.parallel, expect_body)
    act_pid = act.server.pid
    sids = [act_pid, qp.server.pid, app.pid]
    qp_before = await asyncio.to_thread(_scrape, qp.metrics_port)
    act_before = await asyncio.to_thread(_scrape, act.metrics_port)
    held.rss_before_kib = c.vm_rss_kib(act_pid)
    ticks0 = c.ticks_by_session([act_pid])
    sem = asyncio.Semaphore(cfg.parallel)
    t0 = time.monotonic()
    tasks = [asyncio.ensure_future(client.one(i, sem)) for i in range(n)]
    try:
        try:
            await asyncio.wait_for(client.all_sent.wait(), cfg.timeout)
        except TimeoutError:
            held.problems.append(
                f"only {client.sent} of {n} requests were sent within {cfg.timeout:.0f} s"
            )
        held.opened = client.sent
        held.open_s = time.monotonic() - t0
        log(
            f"held: {client.sent:,} requests sent on their own connections in "
            f"{held.open_s:.1f} s ({client.failed_before_send} failed); waiting for the "
            "activator to report them all waiting"
        )
        deadline = time.monotonic() + cfg.timeout
        while True:
            text = await asyncio.to_thread(_scrape, act.metrics_port)
            q = c.prometheus_sum(text or "", "zeroserve_activator_queue_length")
            if q is not None:
                held.waiting = max(held.waiting, int(q))
            if held.waiting >= client.sent:
                held.all_waiting_s = time.monotonic() - t0
                break
            if time.monotonic() > deadline:
                held.problems.append(
                    f"the activator reported {held.waiting} of {client.sent} "
                    f"waiting after {cfg.timeout:.0f} s"
                )
                break
            await asyncio.sleep(0.1)
        ticks1 = c.ticks_by_session([act_pid])
        held.rss_held_kib = c.vm_rss_kib(act_pid)
        if held.waiting:
            park = sum(ticks1[act_pid].values()) - sum(ticks0[act_pid].values())
            held.park_us = park * 1e6 / c.CLK_TCK / held.waiting
        held.answered_early = len(client.done_at)
        log(
            f"held: activator reports {held.waiting:,} waiting, VmRSS {held.rss_before_kib} -> "
            f"{held.rss_held_kib} KiB; SIGUSR1 (the replica appears)"
        )
        before = c.CpuSnapshot.take(sids)
        t_sig = time.monotonic()
        os.kill(act_pid, signal.SIGUSR1)
        _, pending = await asyncio.wait(tasks, timeout=cfg.timeout)
        after = c.CpuSnapshot.take(sids)
        if pending:
            held.problems.append(
                f"{len(pending)} requests were still unanswered {cfg.timeout:.0f} s after SIGUSR1"
            )
        late = sorted(t - t_sig for t in client.done_at if t >= t_sig)
        if late:
            held.first_s, held.all_s = late[0], late[-1]
            held.median_s = statistics.median(late)
        answered = len(late)
        if answered:
            for role, sid in (
                ("activator", act_pid),
                ("queue-proxy", qp.server.pid),
                ("app", app.pid),
            ):
                held.release_us[role] = (
                    c.session_ticks_between(before, after, sid) * 1e6 / c.CLK_TCK / answered
                )
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

    def delta(
        b: str | None, a: str | None, name: str, labels: dict[str, str] | None = None
    ) -> float | None:
        if b is None or a is None:
            return None
        return (c.prometheus_sum(a, name, labels) or 0.0) - (
            c.prometheus_sum(b, name, labels) or 0.0
        )

    held.qp_count = delta(qp_before, qp_after, "zeroserve_queue_requests_total")
    held.act_total = delta(act_before, act_after, "zeroserve_activator_requests_total")
    held.act_200 = delta(
        act_before, act_after, "zeroserve_activator_requests_total", {"response_code": "200"}
    )
    held.act_queued = delta(act_before, act_after, "zeroserve_activator_queued_requests_total")


def run_held(
    cfg: HeldSettings,
    sup: c.Supervisor,
    app: c.Server,
    backend_port: int,
    expect_body: bytes | None,
    nofile: tuple[int, int],
    log: Callable[[str], None],
    suffix: str = "",
) -> tuple[Held, sv.ActivatorProc, sv.QueueProxy]:
    """Start a cold activator and its queue-proxy (named ``held-*{suffix}``) in
    front of ``app``, hold ``cfg.n`` requests, release them, and say what happened."""
    qp = sv.start_queue_proxy(sup, f"held-queue-proxy{suffix}", backend_port, cfg.cc)
    act = sv.start_activator(sup, f"held-activator{suffix}", qp.port, cfg.cc, cold=True)
    held = Held(n=cfg.n, cc=cfg.cc, nofile=nofile, activator_pid=act.server.pid)
    log(
        f"held: activator :{act.port} (pid {act.server.pid}, cold, containerConcurrency "
        f"{cfg.cc}) -> queue-proxy :{qp.port}; opening {cfg.n:,} connections"
    )
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_held(cfg, act, qp, app, expect_body, held, log))
    for s in (act.server, qp.server, app):
        s.ensure_alive()
    log(
        f"held: {held.ok:,} of {held.n:,} answered 200 in {c.fmt(held.all_s, 2)} s after "
        f"SIGUSR1; queue-proxy counted {c.fmt(held.qp_count, 0)}"
    )
    return held, act, qp


def held_table(h: Held) -> str:
    """Everything the held-requests part saw, as a two-column Markdown table."""
    kib = h.kib_per_held
    codes = ", ".join(f"{k}: {v:,}" for k, v in sorted(h.statuses.items())) or "none"
    errors = ", ".join(f"{k}: {v:,}" for k, v in sorted(h.errors.items())) or "none"
    rss = [h.rss_before_kib, h.rss_held_kib, h.rss_after_kib]
    rows = [
        ["connections opened, one request each", f"{h.opened:,} of {h.n:,}"],
        ["time to open them and send the requests", f"{c.fmt(h.open_s, 2)} s"],
        [
            "waiting, as the activator reported (zeroserve_activator_queue_length)",
            f"{h.waiting:,} ({c.fmt(h.all_waiting_s, 2)} s after the first connection)",
        ],
        ["answered before the replica appeared", f"{h.answered_early:,}"],
        [
            "activator VmRSS before / all held / after all answered",
            " / ".join("-" if x is None else f"{x / 1024:,.1f} MiB" for x in rss),
        ],
        [
            "activator VmRSS growth per held request",
            f"{c.fmt(kib, 2)} KiB"
            + (
                ""
                if kib is None
                else f" ({(h.rss_held_kib or 0) - (h.rss_before_kib or 0):,} KiB / {h.waiting:,})"
            ),
        ],
        ["activator CPU per request while accepting and parking", f"{c.fmt(h.park_us)} µs"],
        [
            "SIGUSR1 to first / median / last answer",
            f"{c.fmt(h.first_s, 3)} / {c.fmt(h.median_s, 3)} / {c.fmt(h.all_s, 3)} s",
        ],
        [
            "answers per second while releasing",
            c.fmt(h.ok / h.all_s, 0, thousands=True) if h.all_s else "-",
        ],
        [
            "CPU per request while releasing: activator / queue-proxy / app",
            " / ".join(c.fmt(h.release_us.get(r)) for r in ("activator", "queue-proxy", "app"))
            + " µs",
        ],
        ["status codes received", codes],
        ["client errors", errors],
        ["200 with an unexpected body", f"{h.bad_body:,}"],
        ["distinct ids answered 200", f"{h.ids_ok:,}"],
        ["lost (not answered 200)", f"{h.lost:,}"],
        [
            "activator: requests (all codes / 200) and queued, counter deltas",
            f"{c.fmt(h.act_total, 0, thousands=True)} / {c.fmt(h.act_200, 0, thousands=True)}"
            f" / {c.fmt(h.act_queued, 0, thousands=True)}",
        ],
        ["queue-proxy: requests served (counter delta)", c.fmt(h.qp_count, 0, thousands=True)],
        [
            "RLIMIT_NOFILE (soft / hard) of the benchmark and its children",
            f"{h.nofile[0]:,} / {h.nofile[1]:,}",
        ],
    ]
    return c.md_table(["held requests", "value"], rows)
