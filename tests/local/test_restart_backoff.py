"""A crash-looping replica backs off as the kubelet's CrashLoopBackOff: the arithmetic
with times passed in, and one real bad command whose revision fails and waits."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from zeroserve.local.replica import log_tail
from zeroserve.local.runtime import (
    RESTART_BACKOFF_MAX,
    RESTART_BACKOFF_START,
    LocalRuntime,
    RestartBackoff,
    RevisionRun,
    failure_condition,
)
from zeroserve.topology import RevisionInfo, RevisionKey

ROOT = Path(__file__).resolve().parents[2]
KEY = RevisionKey("default", "bad-00001")


def test_the_kubelets_constants() -> None:
    assert (RESTART_BACKOFF_START, RESTART_BACKOFF_MAX) == (10.0, 300.0)


def test_first_exit_restarts_at_once_then_10s_doubling_capped_at_5_minutes() -> None:
    b = RestartBackoff()
    now, waits = 1000.0, []
    for _ in range(9):
        wait = b.next_wait(now)
        waits.append(wait)
        now += wait + 1.0  # restarted after the wait, crashed a second later
    assert waits == [0.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0, 300.0]


def test_ten_minutes_of_running_fine_forgets_the_back_off() -> None:
    b = RestartBackoff()
    assert [b.next_wait(t) for t in (0.0, 1.0, 12.0)] == [0.0, 10.0, 20.0]
    # restarted at 32 (12 + 20): running until exactly 10 minutes later is not enough
    assert b.next_wait(32.0 + 600.0) == 40.0
    # restarted at 672; an exit more than 10 minutes after that is a first exit again
    assert b.next_wait(672.0 + 600.5) == 0.0
    assert b.next_wait(672.0 + 601.0) == 10.0


def test_a_command_that_cannot_start_is_exit_code_128_with_the_error() -> None:
    assert failure_condition(
        ("app", 128), "cannot start the app command ['nosuch']: [Errno 2] No such file", "x"
    ) == (
        "ExitCode128",
        "Container failed with: cannot start the app command ['nosuch']: [Errno 2] No such file",
    )


async def _until(predicate, within: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.02)


@pytest.mark.process
async def test_a_bad_command_fails_its_revision_and_backs_off(tmp_path: Path) -> None:
    rt = LocalRuntime(on_change=lambda: None, log_dir=tmp_path)
    try:
        rt.set_revisions(
            {
                KEY: RevisionRun(
                    info=RevisionInfo(KEY, service="bad", configuration="bad"),
                    command=("no-such-command-zeroserve",),
                    working_dir=str(ROOT),
                )
            }
        )
        rt.set_scale(KEY, 1)
        # the first exit restarts at once; the second waits 10 s in CrashLoopBackOff
        await _until(lambda: any(p.status == "CrashLoopBackOff" for p in rt.pods()))
        state = rt.states()[KEY]
        assert (state.ready, state.reason, state.backing_off) == (False, "ExitCode128", True)
        assert "no-such-command-zeroserve" in state.message
        assert state.message.startswith("Container failed with: cannot start the app command")
        (pod,) = rt.pods()
        assert pod.restarts == 2
        # as the kubelet records a command the container runtime could not start
        assert pod.pod is not None
        app = pod.pod.containers[0]
        assert app.state.reason == "CrashLoopBackOff" and app.restart_count == 2
        assert app.last_state is not None
        assert (app.last_state.reason, app.last_state.exit_code) == ("StartError", 128)
        started = time.monotonic()
        await asyncio.sleep(1.0)
        (pod,) = rt.pods()
        assert (pod.status, pod.restarts) == ("CrashLoopBackOff", 2)
        assert time.monotonic() - started < RESTART_BACKOFF_START
    finally:
        await rt.close()


def test_the_last_lines_are_of_the_last_start_only(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"first start\nfailed\n")
    start = log.stat().st_size
    with log.open("ab") as f:
        f.write(b"second start\n\nfailed again\n")
    assert log_tail(log, 5, start) == ["second start", "failed again"]
    assert log_tail(log, 2) == ["second start", "failed again"]
    assert log_tail(log, 5) == ["first start", "failed", "second start", "failed again"]
    assert log_tail(tmp_path / "missing.log") == []


@pytest.mark.process
async def test_the_revisions_message_is_the_output_of_the_last_start(tmp_path: Path) -> None:
    rt = LocalRuntime(on_change=lambda: None, log_dir=tmp_path)
    script = "import sys; print('cannot reach the database', flush=True); sys.exit(3)"
    try:
        rt.set_revisions(
            {
                KEY: RevisionRun(
                    info=RevisionInfo(KEY, service="bad", configuration="bad"),
                    command=("python", "-c", script),
                    working_dir=str(ROOT),
                )
            }
        )
        rt.set_scale(KEY, 1)
        await _until(lambda: any(p.status == "CrashLoopBackOff" for p in rt.pods()))
        (pod,) = rt.pods()
        assert pod.restarts == 2  # two starts wrote to the log
        state = rt.states()[KEY]
        assert (state.reason, state.message) == (
            "ExitCode3",
            "Container failed with: cannot reach the database",
        )
    finally:
        await rt.close()
