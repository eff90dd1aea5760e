"""Container limits: cgroups where writable, else the memory watchdog."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from fractions import Fraction
from pathlib import Path

import pytest

from zeroserve.api.objects import Container
from zeroserve.local.sandbox.cgroups import (
    Cgroups,
    ContainerCgroup,
    Limits,
    MemoryWatchdog,
    tree,
    tree_rss,
)
from zeroserve.local.sandbox.enter import preexec
from zeroserve.local.sandbox.state import RunState

from .conftest import root_only

MiB = 1024 * 1024
HOG = (
    "import sys,time\n"
    "b=bytearray(int(sys.argv[1])*1024*1024)\n"
    "for i in range(0,len(b),4096): b[i]=1\n"
    "print('holding',flush=True)\n"
    "time.sleep(60)"
)


def test_limits_read_kubernetes_quantities() -> None:
    c = Container(resources={"limits": {"memory": "350Mi", "cpu": "500m"}})
    assert Limits.of(c) == Limits(350 * MiB, Fraction(1, 2))
    assert Limits.of(Container(resources={"limits": {"cpu": "1"}})) == Limits(None, Fraction(1))
    assert Limits.of(Container(resources={"limits": {"memory": 1000}})) == Limits(1000, None)
    only_requests = Container(resources={"requests": {"memory": "1Gi"}})
    assert not Limits.of(Container()) and not Limits.of(only_requests)
    assert Limits(memory=1) and Limits(cpu=Fraction(1))


# ----- detection and limit files, on a fake cgroup tree (any user) ------------------------


@pytest.fixture
async def fake_state(tmp_path: Path) -> AsyncIterator[RunState]:
    """A run state for fake cgroup trees: its cgroup entries are plain dirs in tmp_path
    (with plain files in them, which a cgroup's rmdir would not meet), so they are
    forgotten before the rest is undone."""
    state = RunState.create(tmp_path / "fake-runs")
    try:
        yield state
    finally:
        for kind, value in state.entries():
            if kind == "cgroup":
                state.forget(kind, value)
        await state.undo()


def _v1_tree(root: Path, cpu: bool = True) -> Path:
    (root / "memory").mkdir(parents=True)
    if cpu:
        (root / "cpu").mkdir()
        (root / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    return root


def _v2_tree(root: Path, controllers: str = "cpuset cpu io memory pids") -> Path:
    root.mkdir(parents=True)
    (root / "cgroup.controllers").write_text(controllers + "\n")
    (root / "cgroup.subtree_control").write_text("\n")
    return root


def test_detect_prefers_v2_then_v1_then_none(tmp_path: Path, fake_state: RunState) -> None:
    v2 = Cgroups.detect(fake_state, _v2_tree(tmp_path / "v2"))
    assert v2 is not None and v2.describe() == "cgroup v2 (cpu, memory)"
    assert (tmp_path / "v2" / "cgroup.subtree_control").read_text() == "+memory +cpu"
    v1 = Cgroups.detect(fake_state, _v1_tree(tmp_path / "v1"))
    assert v1 is not None and v1.describe() == "cgroup v1 (cpu, memory)"
    memory_only = Cgroups.detect(fake_state, _v1_tree(tmp_path / "m", cpu=False))
    assert memory_only is not None and memory_only.describe() == "cgroup v1 (memory)"
    assert Cgroups.detect(fake_state, tmp_path / "absent") is None
    no_memory = _v2_tree(tmp_path / "nomem", "cpu pids")
    assert Cgroups.detect(fake_state, no_memory) is None
    refused = _v2_tree(tmp_path / "refused")  # the kernel refuses to enable memory
    (refused / "cgroup.subtree_control").unlink()
    (refused / "cgroup.subtree_control").mkdir()
    assert Cgroups.detect(fake_state, refused) is None


def test_v2_limits_go_to_memory_max_swap_max_and_cpu_max(
    tmp_path: Path, fake_state: RunState
) -> None:
    root = _v2_tree(tmp_path / "cg")
    cgroups = Cgroups.detect(fake_state, root)
    assert cgroups is not None
    cg = cgroups.create("web.user-container.1", Limits(350 * MiB, Fraction(1, 2)))
    d = root / "zeroserve" / fake_state.run_id / "web.user-container.1"
    assert cg.procs_files == (str(d / "cgroup.procs"),)
    assert (d / "memory.max").read_text() == str(350 * MiB)
    assert (d / "memory.swap.max").read_text() == "0"
    assert (d / "cpu.max").read_text() == "50000 100000"
    # the run's dirs are journaled before they are made; the shared parent is not
    cgroup_entries = [v for k, v in fake_state.entries() if k == "cgroup"]
    assert cgroup_entries == [str(d.parent), str(d)]


def test_v1_limits_go_to_each_hierarchy(tmp_path: Path, fake_state: RunState) -> None:
    root = _v1_tree(tmp_path / "cg")
    cgroups = Cgroups.detect(fake_state, root)
    assert cgroups is not None
    cg = cgroups.create("c", Limits(100 * MiB, Fraction(1, 1000)))
    mem = root / "memory" / "zeroserve" / fake_state.run_id / "c"
    cpu = root / "cpu" / "zeroserve" / fake_state.run_id / "c"
    assert cg.procs_files == (str(mem / "cgroup.procs"), str(cpu / "cgroup.procs"))
    assert (mem / "memory.limit_in_bytes").read_text() == str(100 * MiB)
    assert (mem / "memory.memsw.limit_in_bytes").read_text() == str(100 * MiB)
    assert (cpu / "cpu.cfs_period_us").read_text() == "100000"
    assert (cpu / "cpu.cfs_quota_us").read_text() == "1000"  # the kubelet's 1 ms minimum
    memory_only = cgroups.create("m", Limits(memory=MiB))
    assert list(memory_only.dirs) == ["memory"]


def test_oom_killed_reads_the_kernels_oom_kill_count(tmp_path: Path, fake_state: RunState) -> None:
    files = {
        "v1": ("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill {n}\n"),
        "v2": ("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill {n}\noom_group_kill 0\n"),
    }
    for kind, (name, text) in files.items():
        d = tmp_path / kind
        d.mkdir()
        cg = ContainerCgroup(kind, {"memory": d}, fake_state)
        assert cg.oom_killed() is False  # no file (yet): not OOM-killed
        (d / name).write_text(text.format(n=0))
        assert cg.oom_killed() is False
        (d / name).write_text(text.format(n=2))
        assert cg.oom_killed() is True


# ----- real cgroups (root) --------------------------------------------------------------


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
    small = cgroups.create("hog", Limits(memory=100 * MiB, cpu=Fraction(1, 4)))
    fine = cgroups.create("fine", Limits(memory=200 * MiB))
    dirs = [d for cg in (small, fine) for d in cg.dirs.values()]
    assert all(("cgroup", str(d)) in run_state.entries() for d in dirs)
    try:
        over = await _start(300, preexec(cgroup_procs=small.procs_files))
        under = await _start(50, preexec(cgroup_procs=fine.procs_files))
        try:
            assert await asyncio.wait_for(over.wait(), 30) == -9
            assert small.oom_killed()
            assert under.stdout is not None
            assert await asyncio.wait_for(under.stdout.readline(), 30) == b"holding\n"
            assert under.returncode is None and not fine.oom_killed()
            assert str(under.pid) in Path(fine.procs_files[0]).read_text().split()
            if cgroups.kind == "v1" and "cpu" in cgroups.roots:
                cpu = Path(cgroups.roots["cpu"], "zeroserve", run_state.run_id, "hog")
                assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "25000"
            elif "cpu" in cgroups.roots:
                assert (small.dirs["memory"] / "cpu.max").read_text().split() == ["25000", "100000"]
        finally:
            under.kill()
            await under.wait()
    finally:
        small.remove()
        fine.remove()
    assert not any(d.exists() for d in dirs)
    assert not any(("cgroup", str(d)) in run_state.entries() for d in dirs)


@root_only
@pytest.mark.process
async def test_remove_kills_what_is_left_in_the_cgroup(run_state: RunState) -> None:
    cgroups = Cgroups.detect(run_state)
    if cgroups is None:
        pytest.skip("no writable cgroups on this machine")
    cg = cgroups.create("left", Limits(memory=64 * MiB))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time; time.sleep(60)",
        preexec_fn=preexec(cgroup_procs=cg.procs_files),
    )  # type: ignore[arg-type]  # fmt: skip
    try:
        cg.remove()
        assert await asyncio.wait_for(proc.wait(), 10) == -9
        assert not any(d.exists() for d in cg.dirs.values())
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


# ----- the watchdog -------------------------------------------------------------------------


def _dead(pid: int) -> bool:
    """Gone, or a zombie waiting for its parent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


async def _until(check: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.02)
    return False


@pytest.mark.process
async def test_the_watchdog_kills_a_process_tree_over_its_limit() -> None:
    # parent (20 MiB) -> child (idle) -> grandchild (150 MiB, a session of its own, so
    # killing the parent's process group does not reach it): the tree is what counts
    grandchild = f"subprocess.Popen([sys.executable,'-c',{HOG!r},'150'],start_new_session=True)"
    child = f"import subprocess,sys,time\n{grandchild}\ntime.sleep(60)"
    parent = (
        "import subprocess,sys,time\n"
        f"subprocess.Popen([sys.executable,'-c',{child!r}])\n"
        "b=bytearray(20*1024*1024)\n"
        "for i in range(0,len(b),4096): b[i]=1\n"
        "time.sleep(60)"
    )
    over = await asyncio.create_subprocess_exec(
        sys.executable, "-c", parent, stdout=asyncio.subprocess.DEVNULL, start_new_session=True
    )
    under = await _start(20, None)
    killed: list[str] = []
    dog = MemoryWatchdog(interval=0.05)
    task = asyncio.create_task(dog.run())
    members: list[int] = []
    try:
        # all three running, the grandchild holding its memory, before the dog watches
        assert await _until(lambda: len(tree(over.pid)) == 3 and tree_rss(over.pid) > 150 * MiB)
        members = tree(over.pid)
        dog.watch(over.pid, 120 * MiB, lambda: killed.append("over"))
        dog.watch(under.pid, 200 * MiB, lambda: killed.append("under"))
        assert await asyncio.wait_for(over.wait(), 30) == -9
        assert await _until(lambda: all(_dead(p) for p in members)), members
        assert killed == ["over"]
        await asyncio.sleep(0.2)  # a few more polls: the one under its limit lives
        assert killed == ["over"]
        assert under.returncode is None and tree_rss(under.pid) > 10 * MiB
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for p in members:
            if not _dead(p):
                os.kill(p, signal.SIGKILL)
        for proc in (over, under):
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
