"""A run's journal of what it made, so that nothing outlives it.

Each ``zeroserve up`` run in ``pod`` mode makes network namespaces, links, mounts,
cgroups and mount points. Before making one it appends a line to
``<root>/<run_id>/created.jsonl`` (flushed and fsynced), so that a crash between the
journal line and the thing never leaks it. The run removes everything, newest first,
when it stops (:meth:`RunState.undo`); a run that was killed cannot, so the next one
does (:func:`clean_stale`): a run dir whose owner (pid and start time in
``owner.json``, so a reused pid does not count) is gone is undone the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import secrets
import shutil
import signal
import time
from pathlib import Path

log = logging.getLogger(__name__)

STATE_ROOT = Path("/run/zeroserve")
"""Where root's runs keep their journals (a tmpfs on most systems: gone at reboot, as
everything it lists is)."""

KINDS = ("netns", "link", "mount", "mkdir", "mkfile", "cgroup")
_MNT_DETACH = 2


def _starttime(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), or
    None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


class RunState:
    """One run's state dir ``<root>/<run_id>/``: ``owner.json`` and the journal."""

    def __init__(self, run_id: str, dir: Path) -> None:
        self.run_id = run_id
        self.dir = dir
        self._forgotten: set[tuple[str, str]] = set()

    @classmethod
    def create(cls, root: Path = STATE_ROOT) -> RunState:
        """A new run dir owned by this process (a fresh 6-hex-digit id)."""
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        while True:
            run_id = secrets.token_hex(3)
            d = root / run_id
            try:
                d.mkdir(mode=0o700)
                break
            except FileExistsError:
                continue
        owner = {"pid": os.getpid(), "starttime": _starttime(os.getpid()), "at": time.time()}
        (d / "owner.json").write_text(json.dumps(owner))
        return cls(run_id, d)

    @property
    def journal(self) -> Path:
        return self.dir / "created.jsonl"

    def record(self, kind: str, value: str) -> None:
        """Note that ``kind`` ``value`` is about to be made (before making it)."""
        if kind not in KINDS:
            raise ValueError(f"unknown journal kind {kind!r} (one of {', '.join(KINDS)})")
        with self.journal.open("a") as f:
            f.write(json.dumps({"kind": kind, "value": value}) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def forget(self, kind: str, value: str) -> None:
        """``kind`` ``value`` was removed normally: :meth:`undo` leaves it alone."""
        self._forgotten.add((kind, value))
        self.record_forget(kind, value)

    def record_forget(self, kind: str, value: str) -> None:
        with self.journal.open("a") as f:
            f.write(json.dumps({"kind": kind, "value": value, "gone": True}) + "\n")

    def entries(self) -> list[tuple[str, str]]:
        """What the journal lists as made and not yet removed, oldest first."""
        return _entries(self.journal)

    async def undo(self) -> list[str]:
        """Remove everything still listed, newest first, then the run dir."""
        done = await _undo(_entries(self.journal))
        shutil.rmtree(self.dir, ignore_errors=True)
        return done


def _entries(journal: Path) -> list[tuple[str, str]]:
    live: dict[tuple[str, str], None] = {}
    try:
        lines = journal.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            e = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash: what it was about to make was not made
        key = (str(e.get("kind")), str(e.get("value")))
        if e.get("gone"):
            live.pop(key, None)
        else:
            live[key] = None
    return list(live)


async def _undo(entries: list[tuple[str, str]]) -> list[str]:
    done = []
    for kind, value in reversed(entries):
        try:
            if await _remove(kind, value):
                done.append(f"{kind} {value}")
        except OSError as e:
            log.warning("could not remove %s %s: %s", kind, value, e)
    return done


async def _ip(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "ip",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace")


async def _remove(kind: str, value: str) -> bool:
    """Remove one thing; False when it was already gone."""
    if kind == "mount":
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.umount2(value.encode(), _MNT_DETACH) == 0)
    if kind == "netns":
        if not Path("/run/netns", value).exists():
            return False
        _, pids = await _ip("netns", "pids", value)
        for pid in pids.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        code, out = await _ip("netns", "delete", value)
        if code != 0:
            raise OSError(out.strip())
        return True
    if kind == "link":
        code, _ = await _ip("link", "delete", value)
        return code == 0
    if kind == "cgroup":
        return await remove_cgroup(Path(value))
    if kind == "mkfile":
        p = Path(value)
        if p.is_file() and p.stat().st_size == 0:
            p.unlink()
            return True
        return False
    if kind == "mkdir":
        try:
            os.rmdir(value)
        except FileNotFoundError:
            return False
        except OSError:
            return False  # not empty: something else put things there; leave it
        return True
    raise ValueError(f"unknown journal kind {kind!r}")


def kill_members(cgroup: Path) -> None:
    """SIGKILL every process in ``cgroup`` (its ``cgroup.procs``; none if it is gone)."""
    with contextlib.suppress(OSError):
        for pid in (cgroup / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)


async def remove_cgroup(path: Path) -> bool:
    """SIGKILL what is still in a cgroup (and its children), then remove it, deepest
    first. False when it was already gone."""
    if not path.is_dir():
        return False
    for child in sorted((p for p in path.rglob("*") if p.is_dir()), reverse=True):
        await remove_cgroup(child)
    for _ in range(50):
        kill_members(path)
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return False
        except OSError:
            await asyncio.sleep(0.02)  # the killed processes are still exiting
    os.rmdir(path)
    return True


def _owner_alive(run_dir: Path) -> bool:
    try:
        owner = json.loads((run_dir / "owner.json").read_text())
    except (OSError, ValueError):
        # no owner yet: a run being created right now, or one killed before it wrote it
        return time.time() - run_dir.stat().st_mtime < 60
    pid = int(owner.get("pid", 0))
    return pid > 0 and _starttime(pid) == owner.get("starttime")


async def clean_stale(root: Path = STATE_ROOT) -> list[str]:
    """Undo every run under ``root`` whose owner is gone; returns what was removed."""
    if not root.is_dir():
        return []
    removed = []
    for run_dir in sorted(root.iterdir()):
        if not run_dir.is_dir() or _owner_alive(run_dir):
            continue
        removed += await _undo(_entries(run_dir / "created.jsonl"))
        shutil.rmtree(run_dir, ignore_errors=True)
    return removed
