"""Processes and sockets as /proc shows them: a process tree, a component by its
``python -m`` module, the process writing a replica's log, RSS, listening sockets, and
which process accepted a given loopback connection (no ``ps``/``ss`` needed)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


def descendants(root: int) -> set[int]:
    """Every live process below ``root``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if stat[0] != b"Z":
                children.setdefault(int(stat[1]), []).append(int(entry))
    out: set[int] = set()
    todo = [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


def argv(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def components(root: int, module: str) -> dict[int, list[str]]:
    """``python -m MODULE ...`` processes under ``root``: pid -> argv."""
    out = {}
    for pid in descendants(root):
        args = argv(pid)
        if any(args[i : i + 2] == ["-m", module] for i in range(len(args))):
            out[pid] = args
    return out


def pid_writing(root: int, log_suffix: str) -> int:
    """The process under ``root`` whose stdout or stderr is ``...<log_suffix>`` (a replica's
    app writes ``<pod>-app.log``, its queue-proxy ``<pod>-queue-proxy.log``)."""
    for pid in descendants(root):
        for fd in (1, 2):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}").endswith(log_suffix):
                    return pid
    raise AssertionError(f"no process writes {log_suffix}")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state != b"Z"


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


@dataclass(frozen=True)
class TcpSocket:
    local: tuple[str, int]
    remote: tuple[str, int]
    listening: bool
    inode: int


def _address(text: str) -> tuple[str, int]:
    host, port = text.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        ip = socket.inet_ntop(socket.AF_INET, raw[::-1])
    else:  # four little-endian 32-bit words
        ip = socket.inet_ntop(
            socket.AF_INET6, b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
        )
    return ip, int(port, 16)


def tcp_sockets(pid: int | str = "self") -> list[TcpSocket]:
    """Every TCP socket of ``pid``'s network namespace (this process's by default; a
    replica in a pod sandbox has its own): /proc/PID/net/tcp and tcp6."""
    out = []
    for table in (f"/proc/{pid}/net/tcp", f"/proc/{pid}/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                f = line.split()
                out.append(TcpSocket(_address(f[1]), _address(f[2]), f[3] == "0A", int(f[9])))
    return out


def socket_inodes(pid: int) -> set[int]:
    out = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                m = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(f"/proc/{pid}/fd/{fd}"))
                if m:
                    out.add(int(m.group(1)))
    return out


def listening(pid: int) -> list[tuple[str, int]]:
    """The (address, port) of every listening TCP socket ``pid`` holds."""
    inodes = socket_inodes(pid)
    return sorted(s.local for s in tcp_sockets(pid) if s.listening and s.inode in inodes)


def connection_owner(client_port: int, server_port: int, pids: Iterable[int]) -> int | None:
    """Which of ``pids`` accepted the loopback connection from ``client_port``."""
    peers = {
        s.inode
        for s in tcp_sockets()
        if s.remote[1] == client_port and s.local[1] == server_port and not s.listening
    }
    for pid in pids:
        if socket_inodes(pid) & peers:
            return pid
    return None


def kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
