"""The drain quiet period, on a fake clock."""

from __future__ import annotations

import asyncio
import time

from queueproxy.drain import Drainer


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_quiet_deadline_is_measured_from_drain_start_or_last_request() -> None:
    clock = FakeClock()
    d = Drainer(30, clock)
    d.touch(90.0)
    asyncio.run(_start(d))
    assert d.quiet_deadline() == 130.0  # the start, not an older request
    d.touch(120.0)
    assert d.quiet_deadline() == 150.0  # a request during the drain restarts it


async def _start(d: Drainer) -> None:
    task = asyncio.create_task(d.drain())
    await asyncio.sleep(0)
    task.cancel()


async def test_drain_returns_after_quiet_period_and_reset_stops_draining() -> None:
    d = Drainer(0.2)
    start = time.monotonic()  # the drainer's clock (uvloop's loop.time() has 1 ms steps)
    await d.drain()
    assert d.draining
    assert time.monotonic() - start >= 0.2
    d.reset()
    assert not d.draining


async def test_requests_during_drain_extend_it() -> None:
    d = Drainer(0.3)
    start = time.monotonic()
    task = asyncio.create_task(d.drain())
    await asyncio.sleep(0.2)
    touched = time.monotonic()  # uvloop's sleep may wake up to 1 ms early: measure from here
    assert touched - start < 0.3, "the touch must land inside the first quiet period"
    d.touch(touched)
    await task
    assert time.monotonic() - touched >= 0.3  # the quiet period restarted at the request
