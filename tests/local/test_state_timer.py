"""The StateHub's timer: when the controller says a reconcile is due (a rollout step, a
GC check), the hub calls ``tick`` then and publishes what it changed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from zeroserve.api import load
from zeroserve.local.runtime import LocalRuntime
from zeroserve.local.state import MIN_WAKEUP_DELAY, StateHub
from zeroserve.serving.controller import Controller

CONFIG_MAP = """\
apiVersion: v1
kind: ConfigMap
metadata: {{name: config-autoscaler, namespace: knative-serving}}
data: {{stable-window: {window}s}}
"""


class TimedController(Controller):
    """A controller whose next wakeup the test sets; ``tick`` changes a ConfigMap, so
    that each tick shows in the published snapshot."""

    def __init__(self) -> None:
        super().__init__(0.0)
        self.wakeup: float | None = None
        self.ticks: list[float] = []
        self.asked: list[float] = []

    def next_wakeup(self, now: float) -> float | None:
        self.asked.append(now)
        return self.wakeup

    def tick(self, now: float) -> None:
        self.ticks.append(now)
        self.wakeup = None
        self.apply(load(CONFIG_MAP.format(window=10 + len(self.ticks)), "cm.yaml"), now=now)


async def hub_with(controller: Controller, tmp_path: Path) -> tuple[StateHub, LocalRuntime]:
    hub = StateHub(controller)
    runtime = LocalRuntime(on_change=hub.runtime_changed, log_dir=tmp_path)
    hub.attach(runtime)
    await asyncio.sleep(0)  # the first publish
    return hub, runtime


async def test_the_hub_ticks_when_the_controller_says_and_publishes(tmp_path: Path) -> None:
    c = TimedController()
    c.wakeup = time.time() + 0.3
    due = c.wakeup
    hub, runtime = await hub_with(c, tmp_path)
    try:
        version = hub.snapshot.version
        snap = await hub.wait_past(version, 5)
        assert len(c.ticks) == 1 and c.ticks[0] >= due - 0.01, (c.ticks, due)
        assert c.ticks[0] - due < 1.0
        assert snap.version > version and snap.autoscaler_config == {"stable-window": "11s"}
        await asyncio.sleep(0.3)
        assert len(c.ticks) == 1  # nothing more was due
    finally:
        hub.close()
        await runtime.close()


async def test_no_wakeup_no_tick_and_a_sooner_one_reschedules(tmp_path: Path) -> None:
    c = TimedController()
    hub, runtime = await hub_with(c, tmp_path)
    try:
        await asyncio.sleep(0.2)
        assert c.asked and c.ticks == []
        c.wakeup = time.time() + 30
        hub.controller_changed()  # e.g. an apply started a rollout
        await asyncio.sleep(0.1)
        assert c.ticks == []
        c.wakeup = time.time() + 0.1  # a newer apply wants a step sooner
        hub.controller_changed()
        await asyncio.sleep(0.5)
        assert len(c.ticks) == 1
    finally:
        hub.close()
        await runtime.close()


async def test_a_controller_that_stays_due_does_not_spin_the_loop(tmp_path: Path) -> None:
    class AlwaysDue(TimedController):
        def tick(self, now: float) -> None:
            self.ticks.append(now)  # and stays due

    c = AlwaysDue()
    c.wakeup = 0.0  # long past
    hub, runtime = await hub_with(c, tmp_path)
    try:
        await asyncio.sleep(0.5)
        assert 2 <= len(c.ticks) <= 0.5 / MIN_WAKEUP_DELAY + 2, len(c.ticks)
    finally:
        hub.close()
        await runtime.close()
    n = len(c.ticks)
    await asyncio.sleep(0.2)
    assert len(c.ticks) == n  # closed: no more ticks


async def test_a_controller_without_the_timer_methods_is_left_alone(tmp_path: Path) -> None:
    class Untimed(Controller):
        next_wakeup = None  # type: ignore[assignment]  # as before the controller had one

    hub, runtime = await hub_with(Untimed(0.0), tmp_path)
    try:
        hub.controller_changed()
        await asyncio.sleep(0.05)
        assert hub._timer is None
    finally:
        hub.close()
        await runtime.close()
