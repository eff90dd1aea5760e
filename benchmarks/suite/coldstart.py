"""Part 3, cold start: from the first request to its response, for a revision at zero.

``cold_services`` Services are taken in turn, so one scales to zero while another is
measured. The phases come from the components' own clocks (unix time on this machine).
"""

from __future__ import annotations

import functools
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from benchmarks import metrics, procfs
from benchmarks.figures import Spread, details, fmt_ratio, md_table, p90
from benchmarks.processes import free_port, wait_http_ok
from benchmarks.servers import REPO, SAMPLE_APP

from .context import Context, Goal, PartResult
from .local import LocalSystem, service_manifest

PHASES = (
    ("held", "held in the activator before the scale request"),
    ("schedule", "scale request -> processes spawned"),
    ("process", "replica process start (spawned -> queue-proxy listening)"),
    ("app", "app ready (listening -> ready)"),
    ("respond", "ready -> first byte"),
)


@dataclass
class ColdStart:
    index: int
    service: str
    revision: str
    send: float
    first_byte: float
    done: float
    status: int
    times: dict[str, float] = field(default_factory=dict)
    """The replica's ``times`` from ``GET /v1/pods``."""
    activator_cold_s: float | None = None
    activator_wait_s: float | None = None
    app_alone_s: float | None = None
    waited_for_zero_s: float = 0.0
    cpu_ms: dict[str, float] = field(default_factory=dict)
    """CPU each role's processes used from the send to the end of the response
    (:func:`cpu_by_role`), ``app alone`` that of the baseline's app."""
    waited_for_standby_s: float = 0.0
    """Waiting for ``zeroserve up`` to make its standby queue-proxies and spare pod
    networks again (before the start, and before its baseline)."""

    @property
    def total(self) -> float:
        return self.first_byte - self.send

    @property
    def forwarded(self) -> float | None:
        return None if self.activator_cold_s is None else self.send + self.activator_cold_s

    @property
    def ready_at(self) -> float | None:
        """When the app was ready: the earlier of the runtime's readiness and the forward."""
        cands = [t for t in (self.times.get("ready"), self.forwarded) if t is not None]
        return min(cands) if cands else None

    def phases(self) -> dict[str, float] | None:
        t = self.times
        ready = self.ready_at
        if ready is None or not all(k in t for k in ("requested", "spawned", "listening")):
            return None
        return {
            "held": t["requested"] - self.send,
            "schedule": t["spawned"] - t["requested"],
            "process": t["listening"] - t["spawned"],
            "app": ready - t["listening"],
            "respond": self.first_byte - ready,
        }

    @property
    def added(self) -> float | None:
        return None if self.app_alone_s is None else self.total - self.app_alone_s

    @property
    def own_steps(self) -> float | None:
        """The platform's own steps: held before the scale request, scheduling, and
        ready -> first byte (the process and app starts are the rest)."""
        p = self.phases()
        return None if p is None else p["held"] + p["schedule"] + p["respond"]

    @property
    def platform_cpu_s(self) -> float | None:
        """CPU seconds every process but the app used during the start."""
        if not self.cpu_ms:
            return None
        return sum(v for k, v in self.cpu_ms.items() if k not in ("app", "app alone")) / 1000

    @property
    def runtime_ready_s(self) -> float | None:
        t = self.times
        return t["ready"] - t["listening"] if "ready" in t and "listening" in t else None


GOAL_ADDED_MS = 20
"""The platform adds at most this to the app's own start (paired runs)."""


@dataclass
class ColdResult(PartResult):
    starts: list[ColdStart]
    failures: list[str]
    services: int
    autoscaler: str = ""

    @property
    def ok(self) -> list[ColdStart]:
        return [s for s in self.starts if s.status == 200]

    def spread(self, attr: str) -> Spread | None:
        return Spread.of(getattr(s, attr) for s in self.ok)

    def ratio(self) -> Spread | None:
        return Spread.of(s.total / s.app_alone_s for s in self.ok if s.app_alone_s)

    def headline(self) -> list[str]:
        tot, alone, added = self.spread("total"), self.spread("app_alone_s"), self.spread("added")
        if tot is None:
            return ["no cold start succeeded"]
        own = self.spread("own_steps")
        return [
            f"**{_ms(tot.median)} ms** from the first request to its first byte (median of "
            f"{tot.n}; {_ms(tot.lo)} to {_ms(tot.hi)}); the app alone starts in "
            f"{_ms(alone.median if alone else None)} ms, so the platform adds "
            f"**{_ms(added.median if added else None)} ms** "
            f"({_ms(added.lo if added else None)} to {_ms(added.hi if added else None)}, "
            f"paired per run; {fmt_ratio(self.ratio())} the app's own start); its own "
            f"steps (hold, scale request, forward) take {_ms_spread(own)} ms; meanwhile the "
            f"platform's processes used {_ms_spread(self.spread('platform_cpu_s'))} ms of CPU on the "
            "app's CPU"
        ]

    def section(self, plot: list[str]) -> list[str]:
        out = [
            f"{len(self.starts)} cold starts of {self.services} helloworld Services taken in turn "
            f"(`python {SAMPLE_APP}`, containerConcurrency 0), each once it was at zero: "
            f"config-autoscaler {self.autoscaler}. One `GET /` on a fresh connection through the "
            "ingress; phases from `GET /v1/pods` `times` and the activator's Prometheus "
            "histograms (deltas per request). Right after each, the same app started alone "
            "(same command, `PORT` set, same CPU) and polled every 5 ms: the baseline of its pair. "
            "Before each start and before each baseline, the run waits until `zeroserve up` has "
            "made its standby queue-proxies and spare pod networks again (`GET /v1/standby`; "
            "about a second after a start takes one), so each start takes a standby, as one "
            "that comes a second or more after the previous start does, and the baseline does "
            "not share the CPU with their making (`zeroserve up --standby-queue-proxies 0`: "
            "every replica starts its own queue-proxy).",
            "",
            *plot,
            table(self),
            "",
            '"app ready" ends at the earlier of the runtime\'s readiness check and the activator '
            "forwarding the request (the activator's probe waits in the queue-proxy, which checks "
            "the app every 5 ms, and may forward before the runtime's 50 ms readiness poll sees "
            "it). The replica's queue-proxy and app start together on the same CPU, so \"replica "
            'process start" and "app ready" overlap with the app\'s own start. The CPU rows '
            "are each process's run time (`/proc/PID/schedstat`) from just before the request to "
            "the end of its response, by role, for `zeroserve up` and every process below it; "
            "the app's servers share one CPU, so the platform's CPU in that time is time the "
            "app's start waited for.",
            "",
        ]
        if self.failures:
            out += [f"Failures: {'; '.join(self.failures)}", ""]
        return out + details("Every cold start (ms)", every_start(self))

    def goals(self) -> list[Goal]:
        added = self.spread("added")
        return [
            Goal(
                "cold start: what the platform adds to the app's own start (first request to "
                "first byte, minus the app started alone right after; median of the pairs)",
                f"<= {GOAL_ADDED_MS} ms",
                f"{_ms_spread(added)} ms",
                None if added is None else added.median * 1000 <= GOAL_ADDED_MS,
            )
        ]

    def to_json(self) -> dict[str, Any]:
        tot, added = self.spread("total"), self.spread("added")
        return {
            "starts": len(self.starts),
            "ok": len(self.ok),
            "failures": self.failures,
            "median_s": tot.median if tot else None,
            "added_median_s": added.median if added else None,
        }


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1000:,.0f}"


def _ms_spread(s: Spread | None) -> str:
    if s is None:
        return "-"
    if s.n == 1:
        return _ms(s.median)
    return f"{_ms(s.median)} [{_ms(s.lo)} to {_ms(s.hi)}]"


def timed_get(port: int, host: str, timeout: float = 120.0) -> tuple[int, float, float, float]:
    """(status, send, first byte, end) of ``GET /`` on a fresh connection (unix times)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request = (
            f"GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: zeroserve-bench\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        send = time.time()
        s.sendall(request)
        first = s.recv(65536)
        first_byte = time.time()
        data = bytearray(first)
        while chunk := s.recv(65536):
            data += chunk
        end = time.time()
    try:
        status = int(bytes(data).split(b" ", 2)[1])
    except (IndexError, ValueError):
        status = 0
    return status, send, first_byte, end


def app_alone(ctx: Context, index: int, timeout: float = 30.0) -> tuple[float, float | None]:
    """Seconds from starting the sample app to its first answered GET (polled every 5 ms),
    and the CPU milliseconds it used until then."""
    port = free_port()
    env = dict(os.environ, PORT=str(port), TARGET=f"alone-{index}", HOST="127.0.0.1")
    t0 = time.time()
    server = ctx.sup.start(f"app-alone-{index}", [sys.executable, SAMPLE_APP], env, cwd=REPO)
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/", server, timeout, every=0.005)
        seconds = time.time() - t0
        ns = procfs.cpu_ns(server.pid)
        return seconds, None if ns is None else ns / 1e6
    finally:
        ctx.sup.stop(server)


ROLES = ("zeroserve up", "activator", "autoscaler", "queue-proxy", "app")
"""Whose CPU a cold start is split into (:func:`cpu_by_role`)."""


def _role(pid: int, root: int) -> str:
    if pid == root:
        return "zeroserve up"
    argv = " ".join(procfs.cmdline(pid)[1:4])
    for role, mark in (("activator", "-m activator"), ("autoscaler", "-m autoscaler")):
        if mark in argv:
            return role
    return "queue-proxy" if "-m queueproxy" in argv else "app" if SAMPLE_APP in argv else "other"


def cpu_snapshot(root: int) -> dict[int, tuple[str, int]]:
    """{pid: (role, CPU ns)} of ``zeroserve up`` (pid ``root``) and every process below it."""
    out = {}
    for pid in (root, *procfs.descendants(root)):
        ns = procfs.cpu_ns(pid)
        if ns is not None:
            out[pid] = (_role(pid, root), ns)
    return out


def cpu_by_role(
    before: dict[int, tuple[str, int]], after: dict[int, tuple[str, int]]
) -> dict[str, float]:
    """CPU milliseconds each role used between two snapshots (a process that appeared in
    between counts from zero; one that ended in between is not counted)."""
    out: dict[str, float] = {}
    for pid, (role, ns) in after.items():
        was = before.get(pid)
        used = ns - (was[1] if was is not None else 0)
        out[role] = out.get(role, 0.0) + used / 1e6
    return out


def _one_observation(before: str, after: str, name: str, revision: str) -> float | None:
    """The one value a histogram observed between two scrapes, or None."""
    labels = {"kn_revision_name": revision}
    if metrics.delta(before, after, f"{name}_count", labels) != 1:
        return None
    return metrics.delta(before, after, f"{name}_sum", labels)


def manifest(name: str, annotations: dict[str, str] | None = None) -> str:
    return service_manifest(name, env={"TARGET": name}, annotations=annotations)


def _times(system: LocalSystem, revision: str, since: float) -> dict[str, float]:
    """The ``times`` of the replica that this request asked for (the newest one)."""
    pods = [p for p in system.pods(revision) if p["times"].get("requested", 0) >= since - 1]
    return dict(max(pods, key=lambda p: p["times"]["requested"])["times"]) if pods else {}


def run(ctx: Context, extra: dict[str, str] | None = None) -> ColdResult:
    """``extra``: more manifests to apply now ({name: yaml}), e.g. the burst's
    Service, so that it scales to zero meanwhile."""
    cfg = ctx.cfg
    system = ctx.system()
    names = [f"cold-{i + 1}" for i in range(cfg.cold_services)]
    texts = {n: manifest(n, ctx.initial_scale) for n in names}
    for name, text in {**(extra or {}), **texts}.items():
        system.apply(text, f"{name}.yaml")
    services = {name: system.service_url(name) for name in names}
    ctx.log(
        f"cold start: {len(names)} services; each measured once at zero "
        f"(stable window {cfg.stable_window} s + grace {cfg.grace_period} s)"
    )
    config = ", ".join(f"{k} {v}" for k, v in ctx.autoscaler_config.items())
    result = ColdResult([], [], len(names), config)
    for i in range(cfg.cold_starts):
        name = names[i % len(names)]
        host, revision = services[name]
        waited = system.wait(
            f"{revision} at zero", functools.partial(system.at_zero, revision), 120
        )
        # what zeroserve up makes ahead is made again a second after a start takes it
        waited_ahead = system.wait("standby queue-proxies", system.made_ahead, 60)
        before = system.activator_metrics()
        cpu_before = cpu_snapshot(system.server.pid)
        status, send, fb, end = timed_get(system.ingress_port, host)
        cpu_after = cpu_snapshot(system.server.pid)
        after = system.activator_metrics()
        start = ColdStart(i + 1, name, revision, send, fb, end, status, waited_for_zero_s=waited)
        start.activator_cold_s = _one_observation(
            before, after, "zeroserve_activator_cold_start_seconds", revision
        )
        start.activator_wait_s = _one_observation(
            before, after, "zeroserve_activator_queue_wait_seconds", revision
        )
        start.times = _times(system, revision, send)
        if "ready" not in start.times:
            # the runtime may see the replica ready a moment after the activator did
            time.sleep(0.2)
            start.times = _times(system, revision, send)
        if status != 200:
            result.failures.append(f"cold start {i + 1} ({name}): status {status}")
        # and the baseline does not share the CPU with that
        waited_ahead += system.wait("standby queue-proxies", system.made_ahead, 60)
        start.waited_for_standby_s = waited_ahead
        start.cpu_ms = cpu_by_role(cpu_before, cpu_after)
        start.app_alone_s, alone_cpu = app_alone(ctx, i + 1)
        if alone_cpu is not None:
            start.cpu_ms["app alone"] = alone_cpu
        result.starts.append(start)
        ctx.log(
            f"cold start {i + 1}/{cfg.cold_starts} {name}: {status} first byte after "
            f"{_ms(start.total)} ms (app alone {_ms(start.app_alone_s)} ms; waited "
            f"{waited:.1f} s for zero)"
        )
    system.remove({f"{name}.yaml": texts[name] for name in names})
    return result


def cpu_rows(ok: list[ColdStart]) -> list[tuple[str, list[float | None]]]:
    """Where the CPU went during each start (seconds, like the phases): every role's
    processes, the platform's together, and the app against its baseline."""

    def used(s: ColdStart, role: str) -> float | None:
        ms = s.cpu_ms.get(role)
        return None if ms is None else ms / 1000

    def app_extra(s: ColdStart) -> float | None:
        app, alone = used(s, "app"), used(s, "app alone")
        return None if app is None or alone is None else app - alone

    rows: list[tuple[str, list[float | None]]] = [
        (f"CPU from send to response: {role}", [used(s, role) for s in ok]) for role in ROLES
    ]
    return [
        *rows,
        ("CPU: the app started alone (baseline)", [used(s, "app alone") for s in ok]),
        ("**CPU: the platform (all but the app)**", [s.platform_cpu_s for s in ok]),
        ("CPU: the app in the replica - the app alone (per pair)", [app_extra(s) for s in ok]),
    ]


def table(res: ColdResult) -> str:
    ok = res.ok
    rows: list[tuple[str, list[float | None]]] = [
        *((label, [(s.phases() or {}).get(key) for s in ok]) for key, label in PHASES),
        ("**total: send -> first byte**", [s.total for s in ok]),
        ("app alone: start -> first answer (baseline)", [s.app_alone_s for s in ok]),
        ("**platform added (total - app alone, per pair)**", [s.added for s in ok]),
        ("total / app alone (per pair)", []),
        (
            "platform's own steps (held + scale request -> spawned + ready -> first byte)",
            [s.own_steps for s in ok],
        ),
        ("runtime readiness (listening -> runtime saw ready)", [s.runtime_ready_s for s in ok]),
        ("activator: zeroserve_activator_cold_start_seconds", [s.activator_cold_s for s in ok]),
        ("activator: zeroserve_activator_queue_wait_seconds", [s.activator_wait_s for s in ok]),
        ("first byte -> end of response", [s.done - s.first_byte for s in ok]),
        *cpu_rows(ok),
    ]
    cells = [
        [label, _ms_spread(Spread.of(vs)), _ms(p90(vs))]
        if vs
        else [label, fmt_ratio(res.ratio()), "-"]
        for label, vs in rows
    ]
    return md_table("phase|ms median [min-max]|p90 ms", cells)


def every_start(res: ColdResult) -> str:
    header = ["#", "service", "status", "total ms", *(k for k, _ in PHASES)]
    header += ["app alone ms", "added ms", "activator cold ms", "waited for zero s"]
    header += ["waited for standby s"]
    rows = [
        [str(s.index), s.service, str(s.status), _ms(s.total)]
        + [_ms((s.phases() or {}).get(k)) for k, _ in PHASES]
        + [_ms(s.app_alone_s), _ms(s.added), _ms(s.activator_cold_s), f"{s.waited_for_zero_s:.1f}"]
        + [f"{s.waited_for_standby_s:.1f}"]
        for s in res.starts
    ]
    return md_table(header, rows, left=2)
