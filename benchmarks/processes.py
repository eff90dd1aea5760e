"""The processes a benchmark starts, and the machine they run on.

Every server runs in its own session, so that its process group is exactly the server and
whatever it forks, and ``Supervisor`` can stop each group by its id.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from benchmarks import procfs
from benchmarks.loadgen import which

T = TypeVar("T")


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """A setup or run failure, reported to the user as one clear message."""


def interrupt_on_signals(*signums: int) -> None:
    """Turn ``signums`` (e.g. SIGTERM, SIGHUP) into KeyboardInterrupt, so that
    the same ``finally`` blocks that handle Ctrl-C also run for them."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    for s in signums:
        signal.signal(s, handler)


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Pinning:
    """Where servers and the load generators run; ``enabled=False``: anywhere."""

    enabled: bool
    server_cpu: int
    load_cpu: int
    note: str

    def prefix(self, cpu: int) -> list[str]:
        # taskset execs the command: the PID we get is the program's own.
        return ["taskset", "-c", str(cpu)] if self.enabled else []

    def pin_self(self) -> None:
        """Keep this orchestrating process (and the held client) off the servers' CPU."""
        if self.enabled:
            os.sched_setaffinity(0, {self.load_cpu})

    @classmethod
    def choose(cls, want: bool, server_cpu: int, load_cpu: int) -> Pinning:
        """Pin when asked and possible; otherwise say why not."""
        allowed = sorted(os.sched_getaffinity(0))
        why_not = (
            "--no-pin"
            if not want
            else "taskset not found (apt-get install -y util-linux)"
            if which("taskset") is None
            else f"server and load CPU are both {server_cpu}"
            if server_cpu == load_cpu
            else f"CPUs {server_cpu} and {load_cpu} are not both in this process's set {allowed}"
            if not {server_cpu, load_cpu} <= set(allowed)
            else None
        )
        if why_not:
            return cls(False, server_cpu, load_cpu, f"not pinned: {why_not}")
        note = (
            f"servers (backends, proxies, `zeroserve up` and all it starts) on CPU {server_cpu}, "
            f"load generators and this script on CPU {load_cpu} (taskset)"
        )
        return cls(True, server_cpu, load_cpu, note)


@dataclass
class Server:
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
                if text := p.read_text(errors="replace").rstrip():
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

    Use as a context manager; stopping signals each server's process group by
    its id (never by name): SIGTERM (or ``sig``), a grace period, then SIGKILL.
    """

    def __init__(self, workdir: Path, pinning: Pinning) -> None:
        self.workdir = workdir
        self.pinning = pinning
        self.servers: list[Server] = []

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        # A second Ctrl-C must not cut the cleanup short: hold signals until done.
        held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
        old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
        try:
            self.stop(*self.servers)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Server:
        """Start ``argv`` pinned to the server CPU; output goes to files in the workdir."""
        out, log = self.workdir / f"{name}.stdout", self.workdir / f"{name}.log"
        with out.open("wb") as fo, log.open("wb") as fe:
            popen = subprocess.Popen(
                [*self.pinning.prefix(self.pinning.server_cpu), *argv],
                stdin=subprocess.DEVNULL,
                stdout=fo,
                stderr=fe,
                env=None if env is None else dict(env),
                cwd=cwd or self.workdir,
                start_new_session=True,
            )
        self.servers.append(Server(name, popen, out, log))
        return self.servers[-1]

    def stop(self, *servers: Server, grace: float = 10.0, sig: int = signal.SIGTERM) -> None:
        """Stop these servers' groups, newest first (a proxy before the server behind it)."""
        self.servers = [s for s in self.servers if s not in servers]
        ordered = list(reversed(servers))
        for s in ordered:
            _signal_group(s.pid, sig)
        deadline = time.monotonic() + grace
        for s in ordered:
            try:
                s.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(f"{s.name} (pid {s.pid}) ignored {signal.Signals(sig).name}; SIGKILL")
                _signal_group(s.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    s.popen.wait(timeout=5)
            # Children that outlived their leader (same group) get SIGKILL too.
            if procfs.group_members(s.pid):
                _signal_group(s.pid, signal.SIGKILL)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def poll(
    check: Callable[[], T | None],
    timeout: float,
    failure: Callable[[], str],
    servers: Sequence[Server] = (),
    every: float = 0.05,
) -> T:
    """Call ``check`` until it returns something; fail early if one of ``servers``
    exits, and with ``failure()`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        for s in servers:
            s.ensure_alive()
        if (got := check()) is not None:
            return got
        if time.monotonic() > deadline:
            raise BenchError(failure())
        time.sleep(every)


def http_get(
    url: str, headers: Mapping[str, str] | None = None, timeout: float = 2.0
) -> tuple[int, bytes]:
    """(status, body) of a GET; raises OSError/URLError when nothing answers."""
    try:
        req = urllib.request.Request(url, headers=dict(headers or {}))
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return int(r.status), r.read()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read()


def answer(url: str, headers: Mapping[str, str] | None = None) -> tuple[int, bytes] | None:
    """``http_get``, or None when nothing answers (yet)."""
    try:
        return http_get(url, headers)
    except (OSError, urllib.error.URLError):
        return None


def wait_http_ok(url: str, server: Server, timeout: float = 20.0, every: float = 0.05) -> None:
    """Poll ``url`` until it answers 2xx; fail early if ``server`` exits."""
    poll(
        lambda: True if (a := answer(url)) is not None and 200 <= a[0] < 300 else None,
        timeout,
        lambda: f"{url} not ready after {timeout:.0f} s:\n{server.log_tail()}",
        [server],
        every,
    )


def json_line(server: Server, key: str, value: str, timeout: float = 20.0) -> dict[str, object]:
    """The first JSON object line of ``server``'s stdout with ``{key: value}``
    (how the queue-proxy and the activator runner report their bound ports)."""

    def find() -> dict[str, object] | None:
        with contextlib.suppress(OSError):
            for line in server.stdout_path.read_text(errors="replace").splitlines():
                with contextlib.suppress(json.JSONDecodeError):
                    info = json.loads(line)
                    if isinstance(info, dict) and info.get(key) == value:
                        return info
        return None

    return poll(
        find,
        timeout,
        lambda: (
            f"{server.name} printed no {{{key!r}: {value!r}}} line in {timeout:.0f} s:\n"
            + server.log_tail()
        ),
        [server],
    )


def raise_nofile(need: int) -> tuple[int, int]:
    """Raise RLIMIT_NOFILE's soft limit to the hard one (children inherit it);
    when the hard limit is under ``need`` and we may (root), raise it to
    ``need`` (at most fs.nr_open). Returns the (soft, hard) limits now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        with contextlib.suppress(OSError, ValueError):
            need = min(need, int(Path("/proc/sys/fs/nr_open").read_text()))
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, hard
