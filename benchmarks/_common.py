"""Shared helpers for the benchmarks in this directory (stdlib only).

- process control: every server runs in its own session (so its process group
  is exactly the server and whatever it forks), optionally pinned to a CPU with
  ``taskset``; ``Supervisor.stop_all`` (``stop`` for one) ends each group by its
  id, TERM then KILL;
- free loopback ports (bind port 0 and read what the kernel picked);
- CPU time from ``/proc``: per process ``utime + stime`` (all threads), summed
  over a server's session; machine-wide busy time for spotting other load;
- ``wrk`` / ``hey`` runners and parsers;
- statistics (median, min-max) and Markdown rendering;
- machine information for the report header.

Benchmarks here are measurement tools: nothing in this module asserts timings.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
APT_HINT = "apt-get install -y wrk hey nginx"
# Servers such as nginx live in sbin, which a non-root PATH often lacks.
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


class BenchError(Exception):
    """A setup or run failure, reported to the user as one clear message."""


def interrupt_on_signals(*signums: int) -> None:
    """Turn ``signums`` (e.g. SIGTERM, SIGHUP) into KeyboardInterrupt, so that
    the same ``finally`` blocks that handle Ctrl-C also run for them."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    for s in signums:
        signal.signal(s, handler)


# ------------------------------------------------------------------ tools


def which(name: str) -> str | None:
    """``shutil.which`` that also looks in the sbin directories."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN])
    return shutil.which(name, path=path)


def require_tools(names: Sequence[str]) -> dict[str, str]:
    """Absolute paths of ``names``; one clear error naming all missing ones."""
    found = {n: which(n) for n in names}
    missing = [n for n, p in found.items() if p is None]
    if missing:
        raise BenchError(
            f"required tool(s) not found: {', '.join(missing)}. Install them with: {APT_HINT}"
        )
    return {n: p for n, p in found.items() if p is not None}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# ------------------------------------------------------------------ pinning


@dataclass(frozen=True)
class Pinning:
    """Where servers and the load generator run; ``enabled=False`` = no pinning."""

    enabled: bool
    server_cpu: int
    load_cpu: int
    taskset: str | None
    note: str

    def prefix(self, cpu: int) -> list[str]:
        if not self.enabled or self.taskset is None:
            return []
        # taskset execs the command: the PID we get is the program's own.
        return [self.taskset, "-c", str(cpu)]

    def server_prefix(self) -> list[str]:
        return self.prefix(self.server_cpu)

    def load_prefix(self) -> list[str]:
        return self.prefix(self.load_cpu)

    def pin_self(self) -> None:
        """Keep this orchestrating process off the servers' CPU."""
        if self.enabled:
            os.sched_setaffinity(0, {self.load_cpu})


def choose_pinning(want: bool, server_cpu: int, load_cpu: int) -> Pinning:
    """Pin when asked and possible; otherwise say why not."""
    taskset = which("taskset")
    if not want:
        return Pinning(False, server_cpu, load_cpu, taskset, "not pinned (--no-pin)")
    if taskset is None:
        return Pinning(
            False,
            server_cpu,
            load_cpu,
            None,
            "not pinned: taskset not found (apt-get install -y util-linux)",
        )
    allowed = os.sched_getaffinity(0)
    if server_cpu == load_cpu:
        return Pinning(
            False,
            server_cpu,
            load_cpu,
            taskset,
            f"not pinned: server and load CPU are both {server_cpu}",
        )
    if server_cpu not in allowed or load_cpu not in allowed:
        return Pinning(
            False,
            server_cpu,
            load_cpu,
            taskset,
            f"not pinned: CPUs {server_cpu} and {load_cpu} are not both in this "
            f"process's CPU set {sorted(allowed)}",
        )
    return Pinning(
        True,
        server_cpu,
        load_cpu,
        taskset,
        f"servers (backend and proxies) on CPU {server_cpu}, load generator and "
        f"this script on CPU {load_cpu} (taskset)",
    )


# ------------------------------------------------------------------ /proc


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/PID/stat (after the command name), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


# Offsets into _stat_fields(): field N of proc(5) is at index N - 3.
_SESSION = 6 - 3
_PGRP = 5 - 3
_UTIME = 14 - 3
_STIME = 15 - 3


def ticks_by_session(sids: Iterable[int]) -> dict[int, dict[int, int]]:
    """{session id: {pid: utime+stime ticks}} for every live process of those sessions.

    utime/stime of /proc/PID/stat cover all threads of the process, including
    threads that have already exited.
    """
    want = set(sids)
    out: dict[int, dict[int, int]] = {s: {} for s in want}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is None:
            continue
        sid = int(fields[_SESSION])
        if sid in want:
            out[sid][int(entry)] = int(fields[_UTIME]) + int(fields[_STIME])
    return out


def group_members(pgid: int) -> list[int]:
    """Live processes whose process group is ``pgid``."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None and int(fields[_PGRP]) == pgid:
                pids.append(int(entry))
    return pids


def system_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all CPUs), from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def own_cpu_seconds() -> tuple[float, float]:
    """(this process, its waited-for children) user+system CPU seconds."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU counters at one instant, for deltas around a load run."""

    sessions: dict[int, dict[int, int]]
    system_busy: float
    self_cpu: float
    children_cpu: float

    @classmethod
    def take(cls, sids: Iterable[int]) -> CpuSnapshot:
        me, kids = own_cpu_seconds()
        return cls(ticks_by_session(sids), system_busy_seconds(), me, kids)


def session_ticks_between(before: CpuSnapshot, after: CpuSnapshot, sid: int) -> int:
    """Ticks the session's processes used between two snapshots (new processes: all of theirs)."""
    b = before.sessions.get(sid, {})
    return sum(t - b.get(pid, 0) for pid, t in after.sessions.get(sid, {}).items())


def foreign_cpu_seconds(
    before: CpuSnapshot, after: CpuSnapshot, server_sids: Iterable[int]
) -> float:
    """CPU seconds used by processes that are none of ours (other users of the machine).

    Machine busy time minus this script, its waited-for children (the load
    generator) and the servers. Tick-sampled: expect ~0.02 s of noise.
    """
    ours = (after.self_cpu - before.self_cpu) + (after.children_cpu - before.children_cpu)
    ours += sum(session_ticks_between(before, after, s) for s in server_sids) / CLK_TCK
    return max(0.0, after.system_busy - before.system_busy - ours)


def wait_for_quiet(
    server_sids: Sequence[int], max_wait: float, threshold: float = 0.1, window: float = 0.5
) -> tuple[float, float]:
    """Wait until other processes use under ``threshold`` CPUs (over ``window`` s),
    at most ``max_wait`` s. Returns (seconds waited, last foreign CPU figure)."""
    t0 = time.monotonic()
    while True:
        before = CpuSnapshot.take(server_sids)
        time.sleep(window)
        after = CpuSnapshot.take(server_sids)
        used = foreign_cpu_seconds(before, after, server_sids) / window
        waited = time.monotonic() - t0
        if used < threshold or waited >= max_wait:
            return waited, used


# ------------------------------------------------------------------ processes


@dataclass
class Server:
    """A process started by ``Supervisor``; it leads its own session and group."""

    name: str
    popen: subprocess.Popen[bytes]
    stdout_path: Path
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        parts = []
        for p in (self.stdout_path, self.log_path):
            with contextlib.suppress(OSError):
                text = p.read_text(errors="replace").rstrip()
                if text:
                    parts.append("\n".join(text.splitlines()[-lines:]))
        return "\n".join(parts) or "(no output)"

    def ensure_alive(self) -> None:
        if not self.alive():
            raise BenchError(
                f"{self.name} (pid {self.pid}) exited with status {self.popen.returncode}; "
                f"its output:\n{self.log_tail()}"
            )


class Supervisor:
    """Starts servers (each in a new session) and always stops all of them.

    Use as a context manager; ``stop_all`` signals each server's process group
    by its id (never by name): SIGTERM, a grace period, then SIGKILL.
    """

    def __init__(self, workdir: Path, pinning: Pinning) -> None:
        self.workdir = workdir
        self.pinning = pinning
        self.servers: list[Server] = []

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        pin: bool = True,
    ) -> Server:
        full = [*(self.pinning.server_prefix() if pin else []), *argv]
        out = self.workdir / f"{name}.stdout"
        log = self.workdir / f"{name}.log"
        with out.open("wb") as fo, log.open("wb") as fe:
            popen = subprocess.Popen(
                full,
                stdin=subprocess.DEVNULL,
                stdout=fo,
                stderr=fe,
                env=dict(env) if env is not None else None,
                cwd=cwd or self.workdir,
                start_new_session=True,
            )
        server = Server(name, popen, out, log)
        self.servers.append(server)
        return server

    def stop_all(self, grace: float = 10.0) -> None:
        # A second Ctrl-C must not cut the cleanup short: hold signals until done.
        held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
        old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
        try:
            self._stop(list(self.servers), grace)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def stop(self, server: Server, grace: float = 10.0, sig: int = signal.SIGTERM) -> None:
        """Stop one server's group now (``sig``, then SIGKILL after ``grace``)."""
        self._stop([server], grace, sig)

    def _stop(self, servers: list[Server], grace: float, sig: int = signal.SIGTERM) -> None:
        # Newest first: a proxy stops before the server behind it.
        gone = {id(s) for s in servers}
        self.servers = [s for s in self.servers if id(s) not in gone]
        servers = list(reversed(servers))
        for s in servers:
            _signal_group(s.pid, sig)
        deadline = time.monotonic() + grace
        for s in servers:
            try:
                s.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(
                    f"[bench] {s.name} (pid {s.pid}) ignored {signal.Signals(sig).name}; "
                    "sending SIGKILL",
                    file=sys.stderr,
                    flush=True,
                )
                _signal_group(s.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    s.popen.wait(timeout=5)
            # Children that outlived their leader (same group) get SIGKILL too.
            if group_members(s.pid):
                _signal_group(s.pid, signal.SIGKILL)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """(status, body) of a GET; raises OSError/URLError when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return int(r.status), r.read()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read()


def wait_http_ok(url: str, servers: Sequence[Server], timeout: float = 20.0) -> bytes:
    """Poll ``url`` until it answers 2xx; fail early if one of ``servers`` exits."""
    deadline = time.monotonic() + timeout
    last = "no attempt"
    while time.monotonic() < deadline:
        for s in servers:
            s.ensure_alive()
        try:
            status, body = http_get(url)
            if 200 <= status < 300:
                return body
            last = f"status {status}"
        except (OSError, urllib.error.URLError) as e:
            last = repr(e)
        time.sleep(0.05)
    logs = "\n".join(f"--- {s.name}:\n{s.log_tail()}" for s in servers)
    raise BenchError(f"{url} not ready after {timeout:.0f}s (last: {last})\n{logs}")


# ------------------------------------------------------------------ load generators


@dataclass(frozen=True)
class LoadRun:
    """One run of a load generator."""

    argv: list[str]
    rc: int
    output: str
    wall: float


def run_load(
    argv: Sequence[str], pinning: Pinning, timeout: float, env: Mapping[str, str] | None = None
) -> LoadRun:
    """Run a load generator to completion (pinned to the load CPU); bounded by ``timeout``."""
    full = [*pinning.load_prefix(), which(argv[0]) or argv[0], *argv[1:]]
    t0 = time.monotonic()
    try:
        r = subprocess.run(
            full,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        return LoadRun(
            list(argv), 124, f"{out}\n(timed out after {timeout:.0f}s)", time.monotonic() - t0
        )
    output = r.stdout + (f"\n--- stderr ---\n{r.stderr}" if r.stderr.strip() else "")
    return LoadRun(list(argv), r.returncode, output, time.monotonic() - t0)


@dataclass(frozen=True)
class LoadResult:
    """What a load generator reported."""

    rps: float
    requests: int
    p50_ms: float | None
    p99_ms: float | None
    errors: int
    non2xx: int
    p90_ms: float | None = None


_WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _wrk_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(f"unrecognised wrk latency {text!r}")
    return float(m.group(1)) * _WRK_UNITS[m.group(2)]


def parse_wrk(text: str) -> LoadResult:
    """Parse ``wrk --latency`` output (µs resolution latencies)."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    total = re.search(r"^\s*(\d+) requests in ", text, re.M)
    if not rps or not total:
        raise ValueError("no 'Requests/sec' / 'N requests in' line in wrk output")
    pct = {p: _wrk_ms(v) for p, v in re.findall(r"^\s+(\d+)%\s+(\S+)\s*$", text, re.M)}
    errors = 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if sock:
        errors = sum(int(x) for x in sock.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return LoadResult(
        rps=float(rps.group(1)),
        requests=int(total.group(1)),
        p50_ms=pct.get("50"),
        p99_ms=pct.get("99"),
        errors=errors,
        non2xx=int(non2xx.group(1)) if non2xx else 0,
        p90_ms=pct.get("90"),
    )


def parse_hey(text: str) -> LoadResult:
    """Parse hey's default summary (latencies in 0.1 ms steps)."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not rps:
        raise ValueError("no 'Requests/sec' line in hey output")
    pct = {p: float(s) * 1e3 for p, s in re.findall(r"^\s+(\d+)%+ in ([\d.]+) secs", text, re.M)}
    codes = {
        int(c): int(n) for c, n in re.findall(r"^\s+\[(\d{3})\]\s+(\d+) responses", text, re.M)
    }
    errors = 0
    if "Error distribution:" in text:
        tail = text.split("Error distribution:", 1)[1]
        errors = sum(int(n) for n in re.findall(r"^\s+\[(\d+)\]\s", tail, re.M))
    return LoadResult(
        rps=float(rps.group(1)),
        requests=sum(codes.values()),
        p50_ms=pct.get("50"),
        p99_ms=pct.get("99"),
        errors=errors,
        non2xx=sum(n for c, n in codes.items() if not 200 <= c < 300),
        p90_ms=pct.get("90"),
    )


# A wrk script that turns each connection into a paced client: after every
# response it waits delay() ms, so rate ~= connections / (delay + latency).
WRK_PACED_LUA = """\
local delay_ms = tonumber(os.getenv("BENCH_WRK_DELAY_MS") or "0") or 0
function delay()
  return delay_ms
end
"""


# ------------------------------------------------------------------ statistics


@dataclass(frozen=True)
class Spread:
    """Median and range of repeated measurements."""

    median: float
    lo: float
    hi: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Spread | None:
        vs = [v for v in values if v is not None]
        if not vs:
            return None
        return cls(statistics.median(vs), min(vs), max(vs), len(vs))


def fmt(x: float | None, digits: int = 1, thousands: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:,.{digits}f}" if thousands else f"{x:.{digits}f}"


def fmt_spread(s: Spread | None, digits: int = 1, thousands: bool = False) -> str:
    """``median [min-max]`` (just the median for a single value)."""
    if s is None:
        return "-"
    med = fmt(s.median, digits, thousands)
    if s.n == 1:
        return med
    return f"{med} [{fmt(s.lo, digits, thousands)}-{fmt(s.hi, digits, thousands)}]"


def _signed(x: float | None, digits: int) -> str:
    return "-" if x is None else f"{x:+.{digits}f}"


def fmt_delta(s: Spread | None, digits: int) -> str:
    """A signed difference: ``+median [+min to +max]``."""
    if s is None:
        return "-"
    if s.n == 1:
        return _signed(s.median, digits)
    return f"{_signed(s.median, digits)} [{_signed(s.lo, digits)} to {_signed(s.hi, digits)}]"


def fmt_ratio(s: Spread | None) -> str:
    if s is None:
        return "-"
    if s.n == 1:
        return f"{s.median:.2f}x"
    return f"{s.median:.2f}x [{s.lo:.2f}-{s.hi:.2f}]"


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """A Markdown table; the first ``left`` columns are left-aligned, the rest right-aligned."""
    align = ["---" if i < left else "--:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# ------------------------------------------------------------------ machine


def _first_line(argv: Sequence[str]) -> str | None:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (r.stdout + r.stderr).strip().splitlines()
    return lines[0].strip() if lines else None


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def virtualized() -> bool:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return " hypervisor" in line
    return False


def tool_version(tool: str, path: str | None = None) -> str:
    """A one-line version string for wrk, hey, nginx (or '?')."""
    exe = path or which(tool) or tool
    if tool == "nginx":
        line = _first_line([exe, "-v"])
        return line.replace("nginx version: ", "") if line else "?"
    if tool == "wrk":
        line = _first_line([exe, "-v"])
        m = re.search(r"wrk (\S+)", line or "")
        return f"wrk {m.group(1)}" if m else "wrk ?"
    # hey has no version flag: ask the package manager
    line = _first_line(["dpkg-query", "-W", "-f=${Version}", tool])
    return f"{tool} {line}" if line and "no packages" not in line else f"{tool} ?"


def go_binary_version(path: str) -> str:
    line = _first_line(["go", "version", path])
    if line and ":" in line:
        return line.rsplit(":", 1)[1].strip()
    return "?"


def _online_cpus() -> str:
    try:
        return Path("/sys/devices/system/cpu/online").read_text().strip()
    except OSError:
        return "?"


def machine_summary(packages: Sequence[str]) -> list[tuple[str, str]]:
    """(label, value) pairs: CPU, cores, kernel, Python and package versions."""
    virt = " (virtual machine)" if virtualized() else ""
    return [
        ("CPU", f"{cpu_model()}{virt}"),
        ("cores", f"{os.cpu_count()} (online: {_online_cpus()})"),
        ("kernel", f"{platform.system()} {platform.release()}"),
        (
            "python",
            f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})",
        ),
        ("packages", ", ".join(f"{p} {package_version(p)}" for p in packages)),
    ]


# ------------------------------------------------------------------ zeroserve processes
# (used by _servers.py, _held.py and the suite; nothing above depends on them)


# Environment variables of the queue-proxy; inherited ones are dropped so that
# the caller's shell cannot change what is measured.
QUEUE_PROXY_ENV_PREFIXES = ("SERVING_", "QUEUE_", "USER_", "REVISION_", "CONTAINER_", "DRAIN_")


def queue_proxy_env(
    backend_port: int, container_concurrency: int = 0, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of ``python -m queueproxy`` in front of ``backend_port``:
    every port of its own is 0 (it binds free ones and prints them)."""
    src = os.environ if base is None else base
    env = {k: v for k, v in src.items() if not k.startswith(QUEUE_PROXY_ENV_PREFIXES)}
    env.update(
        {
            "SERVING_NAMESPACE": "default",
            "SERVING_CONFIGURATION": "hello",
            "SERVING_REVISION": "hello-00001",
            "SERVING_POD": "hello-pod",
            "SERVING_POD_IP": "127.0.0.1",
            "CONTAINER_CONCURRENCY": str(container_concurrency),
            "QUEUE_SERVING_PORT": "0",
            "QUEUE_ADMIN_PORT": "0",
            "QUEUE_METRICS_PORT": "0",
            "USER_METRICS_PORT": "0",
            "USER_PORT": str(backend_port),
            "REVISION_TIMEOUT_SECONDS": "300",
            "QUEUE_BIND_ADDRESS": "127.0.0.1",
            "DRAIN_QUIET_PERIOD_SECONDS": "0",
        }
    )
    return env


def wait_json_line(
    server: Server, key: str, value: str, timeout: float = 20.0
) -> dict[str, object]:
    """The first JSON object line of ``server``'s stdout with ``{key: value}``
    (how the queue-proxy and the activator runner report their bound ports)."""
    deadline = time.monotonic() + timeout
    while True:
        server.ensure_alive()
        with contextlib.suppress(OSError):
            for line in server.stdout_path.read_text(errors="replace").splitlines():
                try:
                    info = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(info, dict) and info.get(key) == value:
                    return info
        if time.monotonic() > deadline:
            raise BenchError(
                f"{server.name} printed no {{{key!r}: {value!r}}} line in "
                f"{timeout:.0f} s:\n{server.log_tail()}"
            )
        time.sleep(0.05)


def http_get_headers(
    url: str, headers: Mapping[str, str], timeout: float = 2.0
) -> tuple[int, bytes]:
    """``http_get`` with request headers (e.g. ``Host``)."""
    req = urllib.request.Request(url, headers=dict(headers))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return int(r.status), r.read()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read()


_PROM_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)")
_PROM_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def prometheus_sum(text: str, name: str, labels: Mapping[str, str] | None = None) -> float | None:
    """Sum of the samples named exactly ``name`` (Prometheus text format) whose
    labels include ``labels``; None when there is no such sample."""
    total: float | None = None
    for line in text.splitlines():
        m = _PROM_LINE.match(line)
        if not m or m.group(1) != name:
            continue
        if labels:
            have = dict(_PROM_LABEL.findall(m.group(2) or ""))
            if any(have.get(k) != v for k, v in labels.items()):
                continue
        total = (total or 0.0) + float(m.group(3))
    return total


def vm_rss_kib(pid: int) -> int | None:
    """Resident memory of a process (VmRSS of /proc/PID/status), KiB; None if gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def raise_nofile(need: int) -> tuple[int, int]:
    """Raise RLIMIT_NOFILE's soft limit to the hard one (children inherit it);
    when the hard limit is under ``need`` and we may (root), raise it to
    ``need`` (at most fs.nr_open). Returns the (soft, hard) limits now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        nr_open = need
        with contextlib.suppress(OSError, ValueError):
            nr_open = int(Path("/proc/sys/fs/nr_open").read_text())
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, nr_open), min(need, nr_open)))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, hard
