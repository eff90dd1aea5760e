"""What a container's process does between fork and exec: join its pod.

:func:`preexec` builds the ``preexec_fn`` a replica's processes start with. In the
child, in order (each step a system call through libc, see the man pages named):

1. ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: die with ``zeroserve`` (prctl(2));
2. write its pid into its cgroups' ``cgroup.procs`` (so its memory is counted from
   its first page; cgroups(7));
3. ``setns(fd, CLONE_NEWNET)``: join the pod's network namespace (setns(2));
4. with mounts: ``unshare(CLONE_NEWNS)`` for a mount namespace of its own, make ``/``
   recursively private (so nothing it mounts reaches the host: mount_namespaces(7)),
   then bind-mount each volume at its target, remounting read-only where asked
   (mount(2): a bind mount takes ``MS_RDONLY`` only on a remount).

(With ``hostname``, between 3 and 4: ``unshare(CLONE_NEWUTS)`` and ``sethostname``.)
A failure raises ``OSError`` naming the step and path in the child; the parent's start
raises (uvloop's as ``SubprocessError("Exception occurred in preexec_fn.")``, with
only the errno kept) and no process runs.

:func:`spawn` starts a container's process with these steps done by ``zeroserve-enter``
(``enter.c`` here, built by ``make`` into ``build/``) instead: the helper is started
with no ``preexec_fn`` through ``subprocess.Popen`` (uvloop's own ``subprocess_exec``,
libuv's, forks with or without one), which then uses ``vfork`` (the
large ``zeroserve`` process is not copied: no page tables to build in the parent, no
copy-on-write faults in the child, no Python run between fork and exec), does the
steps above in C and execs the command. A failed step is written, as ``errno``, step
and path, to a close-on-exec pipe the parent reads to its end right after the start
(nothing: the command was exec'd); the parent then reaps the helper and raises the same
``OSError``. Where the helper is missing or older than ``enter.c`` (no C compiler),
:func:`spawn` logs that once and starts the process with :func:`preexec` as before.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
from asyncio.unix_events import _UnixSubprocessTransport  # type: ignore[attr-defined]
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO, Any

from .state import RunState

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
CLONE_NEWUTS = 0x04000000
MS_RDONLY = 0x1
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
_PR_SET_PDEATHSIG = 1

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("enter.c")
HELPER = Path(__file__).resolve().parents[3] / "build" / "zeroserve-enter"
"""Where ``make`` builds the helper (``build/`` of the checkout)."""


@dataclass(frozen=True)
class Mount:
    source: str
    """A host path (a directory, or a file for a ``subPath`` of one)."""
    target: str
    """The absolute path the container sees it at."""
    read_only: bool = False


def ensure_mountpoint(target: str, *, is_file: bool, state: RunState) -> None:
    """Make what is missing of ``target`` on the host (directories 0755, or an empty
    file), journaling each path before it is made; existing paths are left as they
    are. A pod shares the host's root file system, so a mount point must exist there."""
    path = Path(target)
    missing = []
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for m in reversed(missing):
        leaf = m == path
        if leaf and is_file:
            state.record("mkfile", str(m))
            m.touch(mode=0o644, exist_ok=True)
        else:
            state.record("mkdir", str(m))
            m.mkdir(mode=0o755, exist_ok=True)


@cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str, path: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what} {path}: {os.strerror(errno)}")


def preexec(
    *,
    netns_path: str | None = None,
    mounts: Sequence[Mount] = (),
    cgroup_procs: Sequence[str] = (),
    hostname: str | None = None,
) -> Callable[[], None]:
    """The ``preexec_fn`` that puts a new process into its pod (see the module doc);
    with ``hostname``, in its own UTS namespace with that host name (a pod's is its name)."""
    name = hostname.encode()[:63] if hostname else b""
    libc = _libc()
    plan = [(m.source.encode(), m.target.encode(), m.read_only) for m in mounts]
    procs = list(cgroup_procs)

    def enter() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        pid = str(os.getpid()).encode()
        for f in procs:
            fd = os.open(f, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)
        if netns_path is not None:
            fd = os.open(netns_path, os.O_RDONLY)
            try:
                _check(libc.setns(fd, CLONE_NEWNET), "setns", netns_path)
            finally:
                os.close(fd)
        if name:
            _check(libc.unshare(CLONE_NEWUTS), "unshare(CLONE_NEWUTS)", "")
            _check(libc.sethostname(name, len(name)), "sethostname", hostname or "")
        if plan:
            _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)", "")
            _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make-rprivate", "/")
            # Every source is opened before the first mount: a later mount over a parent
            # of another's source (an emptyDir on /tmp) does not hide it.
            fds = [os.open(source, os.O_PATH | os.O_CLOEXEC) for source, _, _ in plan]
            for fd, (_, target, read_only) in zip(fds, plan, strict=True):
                _check(
                    libc.mount(
                        f"/proc/self/fd/{fd}".encode(), target, None, MS_BIND | MS_REC, None
                    ),
                    "bind mount",
                    target.decode(),
                )
                if read_only:
                    flags = MS_BIND | MS_REMOUNT | MS_RDONLY
                    _check(
                        libc.mount(b"none", target, None, flags, None),
                        "remount ro",
                        target.decode(),
                    )
            for fd in fds:
                os.close(fd)

    return enter


@dataclass(frozen=True)
class EnterPlan:
    """What a new process does before its command: the arguments of :func:`preexec`,
    for the helper or for the ``preexec_fn``."""

    netns_path: str | None = None
    mounts: tuple[Mount, ...] = ()
    cgroup_procs: tuple[str, ...] = ()
    hostname: str | None = None

    def preexec(self) -> Callable[[], None]:
        return preexec(
            netns_path=self.netns_path,
            mounts=self.mounts,
            cgroup_procs=self.cgroup_procs,
            hostname=self.hostname,
        )

    def helper_argv(self, helper: str, err_fd: int, command: Sequence[str]) -> list[str]:
        """The helper's command line for this plan, then ``--`` and ``command``."""
        argv = [helper, "--err", str(err_fd), "--ppid", str(os.getpid())]
        for f in self.cgroup_procs:
            argv += ["--cgroup", f]
        if self.netns_path is not None:
            argv += ["--netns", self.netns_path]
        if self.hostname:
            argv += ["--hostname", self.hostname.encode()[:63].decode(errors="ignore")]
        for m in self.mounts:
            argv += ["--mount", m.source, m.target, "ro" if m.read_only else "rw"]
        return [*argv, "--", *command]


_helper_checked: dict[Path, str | None] = {}


def helper() -> str | None:
    """The helper's path, or None (logged once) when it is missing or older than
    ``enter.c``: then :func:`spawn` uses the ``preexec_fn``."""
    path = HELPER
    if path in _helper_checked:
        return _helper_checked[path]
    why = None
    try:
        built = path.stat().st_mtime
        if not os.access(path, os.X_OK):
            why = "not executable"
        elif SOURCE.exists() and SOURCE.stat().st_mtime > built:
            why = f"older than {SOURCE.name}"
    except FileNotFoundError:
        why = "not built"
    if why is not None:
        log.info(
            "%s is %s (`make` builds it with a C compiler): processes start through a "
            "Python preexec_fn (fork) instead of the helper (vfork)",
            path,
            why,
        )
    found = None if why is not None else str(path)
    _helper_checked[path] = found
    return found


Stdio = IO[Any] | int | None


async def spawn(
    command: Sequence[str],
    plan: EnterPlan,
    *,
    env: Mapping[str, str] | None,
    cwd: str | None,
    stdin: Stdio = None,
    stdout: Stdio = None,
    stderr: Stdio = None,
    start_new_session: bool = True,
) -> asyncio.subprocess.Process:
    """Start ``command`` after ``plan``, through the helper when it is built (see the
    module doc), else with :func:`preexec` as ``preexec_fn``. Raises ``OSError`` (the
    step and path) when the command cannot be started; no process is left then."""
    path = helper()
    how: dict[str, Any] = dict(
        env=env,
        cwd=cwd,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        start_new_session=start_new_session,
    )
    if path is None:
        return await asyncio.create_subprocess_exec(*command, **how, preexec_fn=plan.preexec())
    read_fd, write_fd = os.pipe()
    try:
        try:
            proc = await _vfork_exec(
                plan.helper_argv(path, write_fd, command), **how, pass_fds=(write_fd,)
            )
        finally:
            os.close(write_fd)
        try:
            report = await _read_to_end(read_fd)
        except BaseException:
            # Cancelled (a replica stopped while it started) or failed while the helper
            # set up: the process is started but no one will own it, so it goes now,
            # as asyncio's own start kills its child when cancelled.
            proc._transport.close()  # type: ignore[attr-defined]
            await proc._transport._wait()  # type: ignore[attr-defined]
            raise
    finally:
        os.close(read_fd)
    if report:
        await proc.wait()
        proc._transport.close()  # type: ignore[attr-defined]
        raise _error(report)
    return proc


def _error(report: bytes) -> OSError:
    """The helper's "errno\nstep\npath" as the ``OSError`` :func:`preexec` raises (a
    failed exec as ``subprocess``'s: errno, strerror, the command)."""
    code, step, path = [*report.decode(errors="replace").split("\n", 2), "", ""][:3]
    errno = int(code) if code.isdigit() else 0
    if step == "exec":
        return OSError(errno, os.strerror(errno), path)
    return OSError(errno, f"{step} {path}: {os.strerror(errno)}")


async def _read_to_end(fd: int) -> bytes:
    """All of ``fd`` up to its end, without blocking the loop."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    chunks: list[bytes] = []
    done: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        try:
            while chunk := os.read(fd, 4096):
                chunks.append(chunk)
        except BlockingIOError:
            return
        if not done.done():
            done.set_result(None)

    readable()
    if not done.done():
        loop.add_reader(fd, readable)
        try:
            await done
        finally:
            loop.remove_reader(fd)
    return b"".join(chunks)


async def _vfork_exec(argv: list[str], **kwargs: Any) -> asyncio.subprocess.Process:
    """``asyncio.create_subprocess_exec`` through ``subprocess.Popen`` (vfork when there
    is no ``preexec_fn``) on any loop: uvloop's own ``subprocess_exec`` always forks. The
    exit is watched through a pidfd (pidfd_open(2)) instead of a child watcher."""
    loop = asyncio.get_running_loop()
    protocol = asyncio.subprocess.SubprocessStreamProtocol(limit=2**16, loop=loop)
    waiter = loop.create_future()
    stdio = {k: kwargs.pop(k) for k in ("stdin", "stdout", "stderr")}
    transport = _UnixSubprocessTransport(
        loop, protocol, argv, False, **stdio, bufsize=0, waiter=waiter, **kwargs
    )
    _watch_exit(loop, transport)
    try:
        await waiter
    except BaseException:
        transport.close()
        await transport._wait()
        raise
    return asyncio.subprocess.Process(transport, protocol, loop)


def _watch_exit(loop: asyncio.AbstractEventLoop, transport: Any) -> None:
    pid = transport.get_pid()
    pidfd = os.pidfd_open(pid)

    def exited() -> None:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # reaped by the Popen (its poll(), as in send_signal)
            code = transport._proc.returncode
            code = 255 if code is None else code
        else:
            if done == 0:
                return
            code = os.waitstatus_to_exitcode(status)
        loop.remove_reader(pidfd)
        os.close(pidfd)
        if transport._returncode is None:
            transport._process_exited(code)

    loop.add_reader(pidfd, exited)
