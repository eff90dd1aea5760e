"""Standby queue-proxies: started ahead, each waiting for the replica it will serve.

A replica's two processes start together on the same CPU, so a cold start used to pay
for the queue-proxy's own start (about 90 ms of CPU importing its modules) on top of
the app's. The runtime therefore keeps ``size`` queue-proxies started ahead with
``python -m queueproxy --standby`` (:mod:`queueproxy.standby`): each has imported
everything, said ``{"queue_proxy": "standby"}`` on stdout and waits for its
assignment on stdin. A replica takes one (:meth:`StandbyPool.take`) and sends it its
environment, log file and network namespace (:func:`assign`); it listens about 4 ms
later. The pool starts a replacement ``refill_after`` seconds after a take
(:data:`REFILL_AFTER`) and, with ``starts``, only once no replica is starting
(:mod:`.starts`), so the replacement's start does not compete with an app's
(docs/local-mode.md, "Standby queue-proxies").

A standby runs in its own process group and dies with this process
(``PR_SET_PDEATHSIG``), as every replica process; closing the pool closes the
standbys' stdin, on which they exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from zeroserve.local.sandbox.enter import EnterPlan, spawn
from zeroserve.local.starts import StartsUnderWay

log = logging.getLogger(__name__)

STANDBY_LINE = {"queue_proxy": "standby"}
"""What a standby prints once it is ready for an assignment."""
REFILL_AFTER = 1.0
"""Seconds after a take that the pool starts replacements (after the app that took one
has mostly started, so the two do not share the CPU)."""
STANDBY_START_TIMEOUT = 30.0
"""A standby that has not said it is ready by then is killed and replaced."""


class StandbyPool:
    """Up to ``size`` standby queue-proxies; see the module docstring."""

    def __init__(
        self,
        size: int = 1,
        *,
        env: Callable[[], Mapping[str, str]],
        plan: EnterPlan | None = None,
        log_dir: Path | None = None,
        refill_after: float = REFILL_AFTER,
        command: list[str] | None = None,
        start_timeout: float = STANDBY_START_TIMEOUT,
        starts: StartsUnderWay | None = None,
    ) -> None:
        if size < 0:
            raise ValueError(f"size must be at least 0, not {size}")
        self.size = size
        self.env = env
        """The environment a standby starts with (its assignment replaces it)."""
        self.plan = plan
        """What a standby does before its command (:func:`.sandbox.enter.spawn`): None
        for nothing."""
        self.log_dir = log_dir
        self.refill_after = refill_after
        self.command = command or [sys.executable, "-m", "queueproxy", "--standby"]
        self.start_timeout = start_timeout
        self.starts = starts if starts is not None else StartsUnderWay()
        """The runtime's replica starts under way: a refill waits until there are none
        (without the runtime's, none ever is: it does not wait)."""
        self.ready: list[asyncio.subprocess.Process] = []
        """Standbys that said they are ready, oldest first."""
        self.starting = 0
        self._spawned: set[asyncio.subprocess.Process] = set()
        """Standbys started and not yet ready (for ``state``)."""
        self.started = 0
        """Standbys started so far (for the log and the tests)."""
        self.taken = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._refill: asyncio.TimerHandle | None = None
        self._refill_waits = False
        """The refill is due and waits until no replica is starting."""
        self._log: IO[bytes] | None = None
        self._closed = False

    def start(self) -> None:
        """Start standbys up to ``size`` (they become ready in the background)."""
        if self._closed:
            return
        missing = self.size - len(self.ready) - self.starting
        for _ in range(max(0, missing)):
            self.starting += 1
            task = asyncio.get_running_loop().create_task(self._start_one(), name="standby")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _stderr(self) -> IO[bytes] | int:
        if self.log_dir is None:
            return asyncio.subprocess.DEVNULL
        if self._log is None:
            self._log = (self.log_dir / "standby-queue-proxy.log").open("ab")
        return self._log

    async def _start_one(self) -> None:
        proc = None
        try:
            stdio: dict[str, Any] = {
                "stdin": asyncio.subprocess.PIPE,
                "stdout": asyncio.subprocess.PIPE,
                "stderr": self._stderr(),
            }
            if self.plan is not None:
                proc = await spawn(
                    self.command,
                    self.plan,
                    env=dict(self.env()),
                    cwd=None,
                    start_new_session=True,
                    **stdio,
                )
            else:
                proc = await asyncio.create_subprocess_exec(
                    *self.command, env=dict(self.env()), start_new_session=True, **stdio
                )
            self.started += 1
            self._spawned.add(proc)
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), self.start_timeout)
            if json.loads(line or b"null") != STANDBY_LINE:
                raise ValueError(f"it said {line[:200]!r}")
        except (OSError, ValueError, TimeoutError) as e:
            log.warning("a standby queue-proxy did not start: %s", e)
            if proc is not None:
                await _kill(proc)
            return
        except asyncio.CancelledError:
            if proc is not None:
                await _kill(proc)
            raise
        finally:
            self.starting -= 1
            if proc is not None:
                self._spawned.discard(proc)
        if self._closed:
            await _kill(proc)
            return
        self.ready.append(proc)

    def state(self) -> dict[str, Any]:
        """``size``, ``ready`` (alive), ``starting``, ``started``, ``taken``, and the pids
        of those ready or starting (``pids``: they belong to no replica yet)."""
        ready = [p.pid for p in self.ready if p.returncode is None]
        return {
            "size": self.size,
            "ready": len(ready),
            "starting": self.starting,
            "started": self.started,
            "taken": self.taken,
            "pids": sorted(ready + [p.pid for p in self._spawned if p.returncode is None]),
        }

    def take(self) -> asyncio.subprocess.Process | None:
        """A ready standby that is still running, or None (then the replica starts its
        own queue-proxy); schedules the pool's refill."""
        while self.ready:
            proc = self.ready.pop(0)
            if proc.returncode is None:
                self.taken += 1
                self._schedule_refill()
                return proc
            log.warning("a standby queue-proxy had exited with code %s", proc.returncode)
        self._schedule_refill()
        return None

    def _schedule_refill(self) -> None:
        if self._closed or self._refill is not None or self._refill_waits or self.size == 0:
            return

        def refill() -> None:
            self._refill = None
            self._refill_waits = True
            self.starts.when_quiet(quiet)

        def quiet() -> None:
            self._refill_waits = False
            self.start()

        self._refill = asyncio.get_running_loop().call_later(self.refill_after, refill)

    async def close(self) -> None:
        """Stop every standby not taken (they exit on the end of their stdin)."""
        self._closed = True
        if self._refill is not None:
            self._refill.cancel()
            self._refill = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        procs, self.ready = self.ready, []
        await asyncio.gather(*(_close(p) for p in procs), return_exceptions=True)
        if self._log is not None:
            self._log.close()
            self._log = None


async def assign(
    proc: asyncio.subprocess.Process,
    env: Mapping[str, str],
    *,
    log_file: Path | None = None,
    netns: str | None = None,
) -> None:
    """Send a standby its assignment (queueproxy/standby.py); it then starts listening
    and prints the ports line, as a queue-proxy started with ``env`` would."""
    assert proc.stdin is not None
    line = json.dumps(
        {"env": dict(env), "log": str(log_file) if log_file else None, "netns": netns}
    )
    proc.stdin.write(line.encode() + b"\n")
    with contextlib.suppress(ConnectionError):
        await proc.stdin.drain()
    proc.stdin.close()


async def _close(proc: asyncio.subprocess.Process) -> None:
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        await asyncio.wait_for(proc.wait(), 2.0)
    except TimeoutError:
        await _kill(proc)


async def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    await proc.wait()
