"""``python -m queueproxy --standby``: a queue-proxy started ahead of its replica.

The local runtime keeps one or more of these waiting (docs/local-mode.md, "Standby
queue-proxies"), so that a cold start does not pay for the queue-proxy's start
(about 90 ms of CPU, nearly all of it importing modules) while the app starts on the
same CPU. Started this way the process imports everything the queue-proxy runs with,
prints one line, ``{"queue_proxy": "standby"}``, and blocks reading one line from
stdin: its assignment, a JSON object with

- ``env``: the whole environment of a queue-proxy (docs/contracts.md, "Queue-proxy
  environment"), which replaces the one it was started with;
- ``log`` (optional): a file its stderr is appended to from then on (the replica's
  queue-proxy log);
- ``netns`` (optional): the path of a network namespace to join before listening (a
  pod sandbox's, ``/run/netns/...``; needs ``CAP_SYS_ADMIN``, as the sandbox does).

Then it runs exactly as ``python -m queueproxy`` would have with that environment,
printing the ports line on stdout. End of input before an assignment (the runtime
closed the pool) ends it with status 0; an assignment it cannot apply ends it with
status 1 and a line on stderr naming what was wrong.
"""

from __future__ import annotations

import ctypes
import encodings.idna  # noqa: F401  (asyncio needs it for the first bind; imported here, ahead)
import json
import os
import sys
from collections.abc import Callable
from typing import Any

CLONE_NEWNET = 0x40000000
"""setns(2)'s namespace type for a network namespace."""


class AssignmentError(ValueError):
    """An assignment line that cannot be applied; the message names the field."""


def parse_assignment(line: str) -> tuple[dict[str, str], str | None, str | None]:
    """``(env, log, netns)`` from an assignment line; raises :class:`AssignmentError`."""
    try:
        obj: Any = json.loads(line)
    except ValueError as e:
        raise AssignmentError(f"not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise AssignmentError("not a JSON object")
    env = obj.get("env")
    if not isinstance(env, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise AssignmentError("env: must be an object of strings")
    found: list[str | None] = []
    for key in ("log", "netns"):
        value = obj.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise AssignmentError(f"{key}: must be a non-empty string")
        found.append(value)
    unknown = sorted(set(obj) - {"env", "log", "netns"})
    if unknown:
        raise AssignmentError(f"unknown field {unknown[0]!r}")
    return env, found[0], found[1]


def join_network_namespace(path: str) -> None:
    """setns(2) into the network namespace at ``path``; raises OSError naming it."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns {path}: {os.strerror(errno)}")
    finally:
        os.close(fd)


def replace_environment(env: dict[str, str]) -> None:
    """Make ``os.environ`` exactly ``env``, touching only the variables that differ: the
    standby's environment and its assignment share most of theirs, and each variable
    set or unset is a putenv(3) call while the app starts on the same CPU."""
    for key in [k for k in os.environ if k not in env]:
        del os.environ[key]
    for key, value in env.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def wait_and_apply(run: Callable[[], int]) -> int:
    """Say "standby", read the assignment, apply it, then ``run()`` (the queue-proxy's
    ``main``); see the module docstring."""
    print(json.dumps({"queue_proxy": "standby"}), flush=True)
    line = sys.stdin.readline()
    if not line:
        return 0
    try:
        env, log, netns = parse_assignment(line)
    except AssignmentError as e:
        print(f"queue-proxy: --standby: the assignment on stdin: {e}", file=sys.stderr)
        return 1
    if log is not None:
        try:
            fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            print(f"queue-proxy: --standby: log {log}: {e.strerror}", file=sys.stderr)
            return 1
        sys.stderr.flush()
        os.dup2(fd, 2)
        os.close(fd)
    # nothing more comes on stdin: the queue-proxy runs with it at /dev/null, as started
    fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(fd, 0)
    os.close(fd)
    replace_environment(env)
    if netns is not None:
        try:
            join_network_namespace(netns)
        except OSError as e:
            print(f"queue-proxy: --standby: netns: {e.strerror}", file=sys.stderr)
            return 1
    return run()
