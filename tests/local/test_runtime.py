"""The local runtime: real replicas (app + queue-proxy processes) per revision."""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from zeroserve.local.ports import default_allocator
from zeroserve.local.runtime import (
    READY_PUBLISH_DELAY,
    LocalRuntime,
    RevisionRun,
    resolve_command,
)
from zeroserve.topology import RevisionInfo, RevisionKey

ROOT = Path(__file__).resolve().parents[2]
KEY = RevisionKey("default", "hello-00001")


def run(command: list[str], **env: str) -> RevisionRun:
    return RevisionRun(
        info=RevisionInfo(KEY, service="hello", configuration="hello"),
        command=tuple(command),
        env=env,
        working_dir=str(ROOT),
    )


async def until(predicate: Callable[[], bool], within: float = 30.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.02)


@pytest.mark.process
async def test_scale_up_serves_and_scale_down_stops_every_process(tmp_path: Path) -> None:
    changes = []
    held_before = default_allocator().held
    rt = LocalRuntime(on_change=lambda: changes.append(1), log_dir=tmp_path)
    try:
        rt.set_revisions({KEY: run(["python", "examples/helloworld/app.py"], TARGET="runtime")})
        rt.set_scale(KEY, 2)
        await until(lambda: len([e for e in rt.endpoints()[KEY] if e.ready]) == 2)
        app_ports = default_allocator().held - held_before
        assert len(app_ports) == 2  # each app's port is held while it runs
        assert rt.states()[KEY].ready is True
        assert rt.states()[KEY].actual == 2
        async with httpx.AsyncClient() as client:
            for e in rt.endpoints()[KEY]:
                r = await client.get(f"http://{e.host}:{e.port}/")
                assert r.text == "Hello runtime!\n"
        pods = rt.pods()
        assert {p.status for p in pods} == {"Running"}
        for p in pods:  # the start of each replica, step by step
            t = p.times
            assert t["requested"] <= t["spawned"] <= t["listening"] <= t["ready"]
        assert all(p.name.startswith("hello-00001-deployment-") for p in pods)
        rt.set_scale(KEY, 0)
        await until(lambda: rt.pods() == [])
        assert rt.endpoints()[KEY] == []
        assert rt.states()[KEY].ready is True  # scaled to zero, still a ready revision
        assert not default_allocator().held & app_ports  # and given back when it stops
    finally:
        await rt.close()


@pytest.mark.process
async def test_scale_down_removes_the_endpoint_before_the_replica_stops(tmp_path: Path) -> None:
    seen: list[int] = []
    rt: LocalRuntime
    rt = LocalRuntime(
        on_change=lambda: seen.append(len(rt.endpoints().get(KEY, []))), log_dir=tmp_path
    )
    try:
        rt.set_revisions({KEY: run(["python", "examples/helloworld/app.py"])})
        rt.set_scale(KEY, 1)
        await until(lambda: any(e.ready for e in rt.endpoints()[KEY]))
        pod = rt.pods()[0]
        rt.set_scale(KEY, 0)
        # at once, while the processes are still draining, the endpoint is gone
        assert rt.endpoints()[KEY] == []
        assert [p.status for p in rt.pods()] == ["Terminating"]
        await until(lambda: rt.pods() == [])
        assert pod.endpoint is not None
    finally:
        await rt.close()


@pytest.mark.process
async def test_replicas_of_a_revision_start_a_few_at_a_time(tmp_path: Path) -> None:
    # Started all at once on one machine, the replicas of a burst share the CPU and
    # the first is ready only when nearly all are; with a start slot the first is
    # ready within one start time and the others wait as Pending.
    statuses: set[str] = set()
    rt: LocalRuntime
    rt = LocalRuntime(
        on_change=lambda: statuses.update(p.status for p in rt.pods()),
        log_dir=tmp_path,
        max_starting=1,
    )
    try:
        rt.set_revisions({KEY: run(["python", "examples/helloworld/app.py"])})
        rt.set_scale(KEY, 3)
        assert [p.status for p in rt.pods()] == ["Pending"] * 3
        await until(lambda: any(p.status != "Pending" for p in rt.pods()))
        # kubectl's words: the one with the slot is ContainerCreating, then Running (0/2)
        *waiting, first = sorted(rt.pods(), key=lambda p: p.status != "Pending")
        assert [p.status for p in waiting] == ["Pending", "Pending"]
        assert first.status in ("ContainerCreating", "Running") and not first.ready
        await until(lambda: len([e for e in rt.endpoints()[KEY] if e.ready]) == 3)
        starts = sorted((p.times["spawned"], p.times["ready"]) for p in rt.pods())
        for (_, ready), (spawned, _) in itertools.pairwise(starts):
            assert spawned >= ready  # one at a time: the next spawned after the last was ready
        assert {"Pending", "Running"} <= statuses
        # scale-down takes a Pending replica first (it serves nothing)
        rt.set_scale(KEY, 5)
        rt.set_scale(KEY, 4)
        assert sorted(p.status for p in rt.pods()) == [
            "Pending",
            "Running",
            "Running",
            "Running",
            "Terminating",
        ]
    finally:
        await rt.close()


@pytest.mark.process
async def test_a_replica_is_published_ready_after_the_request_that_woke_it_went_first(
    tmp_path: Path,
) -> None:
    # The activator's probe passes when the runtime's does and forwards at once; the
    # runtime publishes the replica ready READY_PUBLISH_DELAY later, with its start
    # slot given back at once (the next replica does not wait for the publish).
    published: dict[str, float] = {}
    rt: LocalRuntime

    def changed() -> None:
        for p in rt.pods():
            if p.ready and p.name not in published:
                published[p.name] = time.time()

    rt = LocalRuntime(on_change=changed, log_dir=tmp_path, max_starting=1)
    try:
        rt.set_revisions({KEY: run(["python", "examples/helloworld/app.py"])})
        rt.set_scale(KEY, 2)
        await until(lambda: len(published) == 2)
        first, second = sorted(rt.pods(), key=lambda p: p.times["ready"])
        assert published[first.name] - first.times["ready"] >= READY_PUBLISH_DELAY * 0.9
        assert second.times["spawned"] < published[first.name]
        assert [e.ready for e in rt.endpoints()[KEY]] == [True, True]
    finally:
        await rt.close()


@pytest.mark.process
async def test_starts_with_their_own_queue_proxy_set_no_expected_time(tmp_path: Path) -> None:
    # A queue-proxy importing its modules slows the app starting next to it: such a
    # start says nothing of when an app is expected (tests/local/test_standby.py).
    rt = LocalRuntime(on_change=lambda: None, log_dir=tmp_path)
    try:
        rt.set_revisions({KEY: run(["python", "examples/helloworld/app.py"])})
        rt.set_scale(KEY, 1)
        await until(lambda: any(e.ready for e in rt.endpoints()[KEY]))
        rt.set_scale(KEY, 2)
        await until(lambda: len([e for e in rt.endpoints()[KEY] if e.ready]) == 2)
        rs = rt.sets[KEY]
        assert rs.fastest_start is None
        for pod in rs.pods:
            assert pod.replica is not None and not pod.replica.took_standby
            assert "QUEUE_APP_EXPECTED_AT" not in pod.replica.queue_proxy_env()
    finally:
        await rt.close()


def test_max_starting_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_starting must be at least 1, not 0"):
        LocalRuntime(on_change=lambda: None, max_starting=0)


@pytest.mark.process
async def test_a_command_that_exits_at_start_fails_the_revision_with_its_output(
    tmp_path: Path,
) -> None:
    rt = LocalRuntime(on_change=lambda: None, log_dir=tmp_path)
    try:
        script = "import sys; print('cannot open the database'); sys.exit(3)"
        rt.set_revisions({KEY: run(["python", "-c", script])})
        rt.set_scale(KEY, 1)
        await until(lambda: rt.states()[KEY].ready is False)
        state = rt.states()[KEY]
        assert state.reason == "ExitCode3"
        assert "cannot open the database" in state.message
        await until(
            lambda: any(p.status == "CrashLoopBackOff" and p.restarts >= 1 for p in rt.pods())
        )
    finally:
        await rt.close()


@pytest.mark.process
async def test_a_crashed_replica_is_restarted(tmp_path: Path) -> None:
    rt = LocalRuntime(on_change=lambda: None, log_dir=tmp_path)
    try:
        rt.set_revisions({KEY: run(["python", "examples/helloworld/app.py"])})
        rt.set_scale(KEY, 1)
        await until(lambda: any(e.ready for e in rt.endpoints()[KEY]))
        pod = rt.set_for(KEY).pods[0]
        assert pod.replica is not None and pod.replica.app is not None
        pod.replica.app.kill()
        await until(lambda: rt.endpoints()[KEY] == [] or not rt.endpoints()[KEY][0].ready)
        await until(lambda: any(e.ready for e in rt.endpoints()[KEY]))
        assert rt.pods()[0].restarts == 1
        assert "exited" in rt.pods()[0].last_exit
    finally:
        await rt.close()


def test_python_means_this_interpreter() -> None:
    assert resolve_command(["python", "app.py"]) == [sys.executable, "app.py"]
    assert resolve_command(["/bin/echo", "x"]) == ["/bin/echo", "x"]
