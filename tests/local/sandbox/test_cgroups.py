"""Container limits: cgroups where writable, else the memory watchdog."""

from __future__ import annotations

import asyncio
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from zeroserve.api.objects import Container
from zeroserve.local.sandbox.cgroups import Cgroups, Limits, MemoryWatchdog, tree_rss
from zeroserve.local.sandbox.enter import preexec
from zeroserve.local.sandbox.state import RunState

from .conftest import root_only

HOG = (
    "import sys,time\n"
    "b=bytearray(int(sys.argv[1])*1024*1024)\n"
    "for i in range(0,len(b),4096): b[i]=1\n"
    "print('holding',flush=True)\n"
    "time.sleep(60)"
)


def test_limits_read_kubernetes_quantities() -> None:
    c = Container(resources={"limits": {"memory": "350Mi", "cpu": "500m"}})
    assert Limits.of(c) == Limits(350 * 1024 * 1024, Fraction(1, 2))
    assert Limits.of(Container(resources={"limits": {"cpu": 1}})) == Limits(None, Fraction(1))
    assert not Limits.of(Container())


async def _start(mb: int, fn: object) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOG, str(mb),
        stdout=asyncio.subprocess.PIPE, start_new_session=True, preexec_fn=fn,
    )  # type: ignore[arg-type]  # fmt: skip


@root_only
@pytest.mark.process
async def test_a_cgroup_oom_kills_a_process_over_its_limit_and_tells(run_state: RunState) -> None:
    cgroups = Cgroups.detect(run_state)
    if cgroups is None:
        pytest.skip("no writable cgroups on this machine")
    small = cgroups.create("hog", Limits(memory=100 * 1024 * 1024, cpu=Fraction(1, 4)))
    fine = cgroups.create("fine", Limits(memory=200 * 1024 * 1024))
    over = await _start(300, preexec(cgroup_procs=small.procs_files))
    under = await _start(50, preexec(cgroup_procs=fine.procs_files))
    try:
        assert await asyncio.wait_for(over.wait(), 30) == -9
        assert small.oom_killed()
        assert under.stdout is not None
        assert await asyncio.wait_for(under.stdout.readline(), 30) == b"holding\n"
        assert under.returncode is None and not fine.oom_killed()
        if cgroups.kind == "v1" and "cpu" in cgroups.roots:
            cpu = Path(cgroups.roots["cpu"], "zeroserve", run_state.run_id, "hog")
            assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "25000"
    finally:
        under.kill()
        await under.wait()
    dirs = [d for cg in (small, fine) for d in cg.dirs.values()]
    small.remove()
    fine.remove()
    assert not any(d.exists() for d in dirs)


@pytest.mark.process
async def test_the_watchdog_kills_a_process_tree_over_its_limit() -> None:
    # a parent holding 20 MiB whose child holds 150 MiB: the tree is what counts
    tree = (
        "import subprocess,sys,time\n"
        f"subprocess.Popen([sys.executable,'-c',{HOG!r},'150'])\n"
        "b=bytearray(20*1024*1024)\n"
        "for i in range(0,len(b),4096): b[i]=1\n"
        "time.sleep(60)"
    )
    over = await asyncio.create_subprocess_exec(
        sys.executable, "-c", tree, stdout=asyncio.subprocess.DEVNULL, start_new_session=True
    )
    under = await _start(20, None)
    killed: list[str] = []
    dog = MemoryWatchdog(interval=0.05)
    dog.watch(over.pid, 120 * 1024 * 1024, lambda: killed.append("over"))
    dog.watch(under.pid, 200 * 1024 * 1024, lambda: killed.append("under"))
    task = asyncio.create_task(dog.run())
    try:
        assert await asyncio.wait_for(over.wait(), 30) == -9
        assert killed == ["over"]
        assert under.returncode is None and tree_rss(under.pid) > 10 * 1024 * 1024
    finally:
        task.cancel()
        under.kill()
        await under.wait()
