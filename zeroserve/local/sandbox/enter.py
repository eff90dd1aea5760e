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

A failure raises ``OSError`` naming the step and path; ``subprocess`` reports it in the
parent and no process runs.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

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
    libc = ctypes.CDLL(None, use_errno=True)
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
