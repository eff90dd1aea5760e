"""What the benchmarks read from ``/proc`` (see proc(5)); Linux only.

A process that is gone reads as nothing (None, empty), never as an error.
"""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

CLK_TCK = os.sysconf("SC_CLK_TCK")
# Field N of /proc/PID/stat (proc(5)) is at index N - 3 of stat_fields().
_PPID, _PGRP, _SESSION, _UTIME, _STIME = 1, 2, 3, 11, 12


def stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/PID/stat (after the command name), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _every_process() -> Iterator[tuple[int, list[str]]]:
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := stat_fields(int(entry))) is not None:
            yield int(entry), fields


def ticks_by_session(sids: Iterable[int]) -> dict[int, dict[int, int]]:
    """{session id: {pid: utime+stime ticks}} for every live process of those sessions."""
    out: dict[int, dict[int, int]] = {s: {} for s in sids}
    for pid, f in _every_process():
        if (sid := int(f[_SESSION])) in out:
            out[sid][pid] = int(f[_UTIME]) + int(f[_STIME])
    return out


def user_system_ticks(pid: int) -> tuple[int, int]:
    """Clock ticks ``pid`` has run in user and in system mode, all its threads (0, 0 if
    gone)."""
    f = stat_fields(pid)
    return (0, 0) if f is None else (int(f[_UTIME]), int(f[_STIME]))


def group_members(pgid: int) -> list[int]:
    return [pid for pid, f in _every_process() if int(f[_PGRP]) == pgid]


def children(pid: int) -> list[int]:
    return [p for p, f in _every_process() if int(f[_PPID]) == pid]


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, their children, ...)."""
    by_parent: dict[int, list[int]] = {}
    for p, f in _every_process():
        by_parent.setdefault(int(f[_PPID]), []).append(p)
    out, todo = [], [pid]
    while todo:
        kids = by_parent.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def cpu_ns(pid: int) -> int | None:
    """Nanoseconds ``pid`` has run on a CPU, all its threads (``/proc/PID/schedstat``,
    sched(7)), or None if gone: finer than the 10 ms ticks of ``stat``."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def system_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all CPUs), from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


@dataclass(frozen=True)
class CpuSnapshot:
    sessions: dict[int, dict[int, int]]
    system_busy: float
    self_cpu: float
    """This process (the orchestrating script)."""
    children_cpu: float
    """Its waited-for children: the load generators."""

    @classmethod
    def take(cls, sids: Iterable[int]) -> CpuSnapshot:
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return cls(
            ticks_by_session(sids),
            system_busy_seconds(),
            me.ru_utime + me.ru_stime,
            kids.ru_utime + kids.ru_stime,
        )


def ticks_between(before: CpuSnapshot, after: CpuSnapshot, sid: int) -> int:
    """Ticks the session's processes used between two snapshots (new processes: all of theirs)."""
    b = before.sessions.get(sid, {})
    return sum(t - b.get(pid, 0) for pid, t in after.sessions.get(sid, {}).items())


def foreign_cpu_seconds(before: CpuSnapshot, after: CpuSnapshot, sids: Iterable[int]) -> float:
    """CPU seconds used by processes that are none of ours (other users of the machine):
    machine busy time minus this script, the load generator and the servers'
    sessions. Tick-sampled: expect ~0.02 s of noise."""
    ours = (after.self_cpu - before.self_cpu) + (after.children_cpu - before.children_cpu)
    ours += sum(ticks_between(before, after, s) for s in sids) / CLK_TCK
    return max(0.0, after.system_busy - before.system_busy - ours)


def vm_rss_kib(pid: int) -> int | None:
    """Resident memory of a process (VmRSS of /proc/PID/status), KiB; None if gone."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def environ(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            items = [i.partition(b"=") for i in f.read().split(b"\0")]
    except OSError:
        return {}
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, sep, v in items if sep}


def listening_ports(pid: int) -> set[int]:
    """TCP ports ``pid`` listens on (its socket inodes in /proc/net/tcp{,6}, state LISTEN)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(int(link[8:-1]))
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            next(f, None)
            for line in f:
                parts = line.split()
                if len(parts) > 9 and parts[3] == "0A" and int(parts[9]) in inodes:
                    ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports
