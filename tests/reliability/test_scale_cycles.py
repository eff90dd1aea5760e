"""Scale cycles under sustained load: 0 -> N -> 1 -> 0 -> N ..., and not one failed request.

The revision starts at zero (``initial-scale: 0``) and each cycle is driven by a load
phase: many clients (several replicas), a trickle (one replica), silence (zero), then
many clients again from zero. The replica counts are read from the control API's
revision status (``actualReplicas``, as ``zeroserve get revisions -o json`` shows it).
``make test`` runs 2 cycles (about 40 s, inside the CI budget: every transition more than
once, 0 -> N three times, N -> 1 and 1 -> 0 twice); ``make soak`` runs 30. A cycle takes
about 18 s whatever the machine: the stable window (6 s, the shortest allowed) passes
twice, once to come down to one replica and once to reach zero, plus the grace period
and the busy hold.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.local.support import zeroserve_up

from .support import (
    AUTOSCALE_APP,
    Load,
    ReplicaWatch,
    assert_activators_settled,
    autoscaler_config,
    manifest,
    service,
)

pytestmark = pytest.mark.process

NAME = "cycle"
HOST = f"{NAME}.default.localhost"
MAX_SCALE = 3

# With containerConcurrency 0 and target 2, a replica is sized for 1.4 requests in
# flight: 12 clients of 100 ms want 9 replicas (capped at 3), a request every 0.3 s wants 1.
BUSY = (12, "/?sleep=100")
TRICKLE = (1, "/?sleep=0", 0.3)
BUSY_HOLD = 3.0
PHASE_BOUND = 45.0  # liveness bound of one phase, not a speed requirement


def _manifest(tmp_path: Path) -> Path:
    config = autoscaler_config(
        stable_window="6s", scale_to_zero_grace_period="1s", allow_zero_initial_scale="true"
    )
    svc = service(
        NAME,
        AUTOSCALE_APP,
        annotations={
            "target": "2",
            "initial-scale": "0",
            "min-scale": "0",
            "max-scale": str(MAX_SCALE),
        },
    )
    return manifest(tmp_path / "cycle.yaml", config, svc)


async def scale_cycles(tmp_path: Path, cycles: int) -> None:
    async with (
        zeroserve_up(tmp_path, _manifest(tmp_path)) as up,
        ReplicaWatch(up, f"{NAME}-00001") as watch,
        Load(up.ingress, HOST) as load,
    ):
        await watch.until(
            lambda actual, desired: actual == 0 and desired == 0, "starts at zero", PHASE_BOUND
        )
        busy: list[int] = []  # requests answered in each busy phase

        async def busy_phase() -> None:
            before = load.sent
            await load.clients(*BUSY)
            await watch.until(
                lambda actual, _: actual >= 2, "several replicas under load", PHASE_BOUND
            )
            await asyncio.sleep(BUSY_HOLD)  # traffic across the scaled-up revision
            busy.append(load.sent - before)

        for _ in range(cycles):
            await busy_phase()
            await load.clients(*TRICKLE)
            await watch.until(
                lambda actual, desired: actual == desired == 1,
                "one replica for a trickle",
                PHASE_BOUND,
            )
            await load.clients(0)
            await watch.until(
                lambda actual, desired: actual == desired == 0, "zero when silent", PHASE_BOUND
            )
        await busy_phase()
        shown = await up.get("revisions", f"{NAME}-00001")  # the CLI agrees
        assert shown["status"]["actualReplicas"] >= 2
        await load.clients(0)
        await assert_activators_settled(up)

    t0 = watch.times[0]
    print(
        "(s, (actual, desired)):",
        [(round(t - t0, 1), h) for t, h in zip(watch.times, watch.history, strict=True)],
        "statuses:",
        dict(load.statuses),
        "per busy phase:",
        busy,
    )
    assert load.failures == [], load.failures[:20]
    assert set(load.statuses) == {200}, load.statuses
    assert min(busy) > 50, busy
    # The replica counts really went 0 -> N -> 1 -> 0 ... -> N, in that order.
    expected = [0] + [2, 1, 0] * cycles + [2]
    seen = iter(watch.actuals())
    matched = [want for want in expected if any(_matches(want, got) for got in seen)]
    assert matched == expected, f"states {watch.actuals()}, wanted a subsequence like {expected}"
    assert max(watch.actuals()) <= MAX_SCALE


def _matches(want: int, got: int) -> bool:
    return got >= 2 if want == 2 else got == want


@pytest.mark.timeout(600)
async def test_scale_cycles_lose_no_request(tmp_path: Path) -> None:
    await scale_cycles(tmp_path, cycles=2)


@pytest.mark.soak
@pytest.mark.timeout(1800)
async def test_scale_cycles_soak(tmp_path: Path) -> None:
    await scale_cycles(tmp_path, cycles=30)
