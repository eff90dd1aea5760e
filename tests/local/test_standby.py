"""Standby queue-proxies (zeroserve/local/standby.py): made ahead, taken by the next
replica, made again later, and never left running."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from zeroserve.local.replica import QUEUE_PROXY, standby_pool
from zeroserve.local.runtime import LocalRuntime
from zeroserve.local.standby import StandbyPool
from zeroserve.local.starts import StartsUnderWay
from zeroserve.local.up import Up, UpError, UpOptions

from .test_runtime import KEY, run

pytestmark = pytest.mark.process


async def until(predicate: Callable[[], bool], within: float = 30.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def runtime_with_a_standby(
    tmp_path: Path, refill_after: float
) -> AsyncIterator[tuple[StandbyPool, LocalRuntime]]:
    """A runtime whose pool has one standby ready, made again ``refill_after`` seconds
    after it is taken; the runtime (and with it the pool) is closed after."""
    pool = standby_pool(1, tmp_path)
    pool.refill_after = refill_after
    rt = LocalRuntime(on_change=lambda: None, log_dir=tmp_path, standby=pool)
    pool.start()
    try:
        await until(lambda: pool.state()["ready"] == 1)
        yield pool, rt
    finally:
        await rt.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is not running either
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


async def test_the_pool_fills_hands_out_and_refills_after_a_delay(tmp_path: Path) -> None:
    pool = standby_pool(2, tmp_path)
    pool.refill_after = 0.3
    pool.start()
    try:
        await until(lambda: pool.state()["ready"] == 2)
        first = pool.take()
        assert first is not None and first.returncode is None
        assert pool.state() == {
            "size": 2,
            "ready": 1,
            "starting": 0,
            "started": 2,
            "taken": 1,
            "pids": [pool.ready[0].pid],
        }
        second = pool.take()
        assert second is not None and second.pid != first.pid
        assert pool.take() is None  # none left: the replica starts its own
        # the two taken are made again together, refill_after seconds later
        await asyncio.sleep(0.1)
        assert pool.state()["started"] == 2
        await until(lambda: pool.state()["ready"] == 2)
        assert pool.state()["started"] == 4
        waiting = list(pool.ready)
    finally:
        await pool.close()
        for p in (first, second):
            p.kill()
            await p.wait()
    # closing ends the standbys not taken (they exit at the end of their stdin)
    assert all(p.returncode == 0 for p in waiting)
    assert pool.state()["ready"] == 0


FAKE_STANDBY = [
    sys.executable,
    "-c",
    'import sys; print(\'{"queue_proxy": "standby"}\', flush=True); sys.stdin.readline()',
]
"""Says what a standby says and waits for its stdin, without importing the queue-proxy."""


async def test_the_refill_waits_until_no_replica_is_starting() -> None:
    starts = StartsUnderWay()
    pool = StandbyPool(
        1, env=lambda: dict(os.environ), command=FAKE_STANDBY, refill_after=0.05, starts=starts
    )
    pool.start()
    try:
        await until(lambda: pool.state()["ready"] == 1)
        starts.begin()  # the replica that takes it starts...
        taken = pool.take()
        assert taken is not None
        await asyncio.sleep(0.3)  # ...for longer than refill_after
        assert pool.state()["started"] == 1  # its replacement waits
        starts.end()  # it is ready: the replacement starts now
        assert pool.state()["starting"] == 1
        await until(lambda: pool.state()["ready"] == 1)
        assert pool.state()["started"] == 2
    finally:
        await pool.close()
        taken.kill()
        await taken.wait()


async def test_a_standby_that_died_is_skipped(tmp_path: Path) -> None:
    pool = standby_pool(2, tmp_path)
    pool.start()
    try:
        await until(lambda: pool.state()["ready"] == 2)
        dead, alive = pool.ready
        dead.kill()
        await dead.wait()
        assert pool.state()["ready"] == 1
        assert pool.take() is alive
    finally:
        await pool.close()
        alive.kill()
        await alive.wait()


async def test_one_that_never_says_standby_is_killed_and_not_handed_out(tmp_path: Path) -> None:
    for command in (["sleep", "30"], ["echo", "not a standby"]):
        pool = StandbyPool(1, env=lambda: dict(os.environ), command=command, start_timeout=0.3)
        pool.start()
        await until(lambda p=pool: p.state()["started"] == 1 and p.state()["starting"] == 0)
        assert pool.take() is None
        await pool.close()


async def test_a_replica_takes_a_standby_and_it_is_its_queue_proxy(tmp_path: Path) -> None:
    # refill_after 60: no refill during the test
    async with runtime_with_a_standby(tmp_path, 60) as (pool, rt):
        [standby] = pool.ready
        rt.set_revisions({KEY: run(["python", "examples/helloworld/app.py"], TARGET="standby")})
        rt.set_scale(KEY, 1)
        await until(lambda: any(e.ready for e in rt.endpoints()[KEY]))
        [pod] = rt.sets[KEY].pods
        assert pod.replica is not None
        qp = pod.replica.runs[QUEUE_PROXY].proc
        assert qp is standby and pool.state()["taken"] == 1
        [e] = rt.endpoints()[KEY]
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://{e.host}:{e.port}/")
        assert r.text == "Hello standby!\n"
        # its log is the replica's queue-proxy log, as a queue-proxy started for it
        log = (tmp_path / f"{pod.name}-queue-proxy.log").read_text()
        assert f"revision default/{KEY.name}: serving" in log
        # a second replica finds none ready and starts its own
        rt.set_scale(KEY, 2)
        await until(lambda: len([e for e in rt.endpoints()[KEY] if e.ready]) == 2)
        assert pool.state()["taken"] == 1
        rt.set_scale(KEY, 0)
        await until(lambda: rt.pods() == [])
        await asyncio.wait_for(standby.wait(), 10)  # it stops with its replica
    assert pool.state()["ready"] == 0  # the runtime closes its pool


async def test_a_start_with_a_standby_alone_tells_the_next_when_its_app_should_listen(
    tmp_path: Path,
) -> None:
    # The revision's fastest start so far (its app's spawn to ready), from starts with
    # a standby and no other start under way: the next queue-proxy probes less often
    # until that long after its app's spawn (QUEUE_APP_EXPECTED_AT).
    async with runtime_with_a_standby(tmp_path, 0.05) as (pool, rt):
        rt.set_revisions({KEY: run(["python", "examples/helloworld/app.py"])})
        rs = rt.sets[KEY]
        rt.set_scale(KEY, 1)
        await until(lambda: any(e.ready for e in rt.endpoints()[KEY]))
        [first] = rs.pods
        assert first.replica is not None and first.replica.took_standby
        assert first.replica.app_spawned_at is not None
        assert "QUEUE_APP_EXPECTED_AT" not in first.replica.queue_proxy_env()
        took = first.times["ready"] - first.replica.app_spawned_at
        assert rs.fastest_start == pytest.approx(took)
        await until(lambda: pool.state()["ready"] == 1)  # made again
        rt.set_scale(KEY, 2)
        await until(lambda: len([e for e in rt.endpoints()[KEY] if e.ready]) == 2)
        second = next(p for p in rs.pods if p is not first)
        assert second.replica is not None and second.replica.app_spawned_at is not None
        expected_at = float(second.replica.queue_proxy_env()["QUEUE_APP_EXPECTED_AT"])
        assert expected_at == pytest.approx(second.replica.app_spawned_at + took, abs=0.001)


SLOW_APP = (
    "import runpy, time; time.sleep(1.0); "
    "runpy.run_path('examples/helloworld/app.py', run_name='__main__')"
)
"""The sample app, listening a second after it started."""


async def test_a_replica_s_standby_is_made_again_once_it_is_ready(tmp_path: Path) -> None:
    """Not while its app starts: the refill would take the CPU the app needs."""
    async with runtime_with_a_standby(tmp_path, 0.05) as (pool, rt):
        rt.set_revisions({KEY: run(["python", "-c", SLOW_APP], TARGET="slow")})
        rt.set_scale(KEY, 1)
        await until(lambda: pool.state()["taken"] == 1)
        assert rt.starts.count == 1
        await asyncio.sleep(0.5)  # refill_after passed long ago; the app still starts
        assert not any(e.ready for e in rt.endpoints().get(KEY, ()))
        assert pool.state()["started"] == 1
        await until(lambda: any(e.ready for e in rt.endpoints()[KEY]))
        assert rt.starts.quiet
        await until(lambda: pool.state()["started"] == 2)
        await until(lambda: pool.state()["ready"] == 1)


async def test_standbys_die_with_the_process_that_made_them(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG, as every replica process: a killed zeroserve leaves none."""
    script = (
        "import asyncio, sys\n"
        "from zeroserve.local.replica import standby_pool\n"
        "async def main():\n"
        "    pool = standby_pool(2, None)\n"
        "    pool.start()\n"
        "    while pool.state()['ready'] < 2:\n"
        "        await asyncio.sleep(0.02)\n"
        "    print(' '.join(str(p.pid) for p in pool.ready), flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    pids = [int(p) for p in (await asyncio.wait_for(proc.stdout.readline(), 30)).split()]
    assert len(pids) == 2 and all(_alive(p) for p in pids)
    proc.kill()
    await proc.wait()
    await until(lambda: not any(_alive(p) for p in pids), within=10)


def test_a_negative_standby_count_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(UpError, match="--standby-queue-proxies must be at least 0, not -1"):
        Up(UpOptions(standby_queue_proxies=-1, log_dir=tmp_path))
    standby = Up(UpOptions(standby_queue_proxies=0, log_dir=tmp_path)).runtime.standby
    assert standby is not None and standby.size == 0  # 0: every replica starts its own
