"""Replicas that die under load: SIGKILL of a replica's app, or of its queue-proxy; a
revision whose command crash-loops; an app that never answers.

Two replicas serve a steady load; one process of one replica is killed. Only the
requests that were inside that replica may fail, so the failures are bounded by its
containerConcurrency (the activator never has more than CC requests on a replica),
and the replica is replaced (its slot restarts and is Running again). The control
plane is paused for a second after the kill (``zeroserve up`` gets SIGSTOP): in a
cluster the endpoints change seconds after a container dies, and the data plane
must not depend on hearing about it sooner.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from activator.app import Activator
from activator.config import Settings
from activator.routing import RoutingTable
from tests.local.support import zeroserve_up
from tests.support.apps import run_app
from tests.support.procs import queue_proxy
from zeroserve.topology import Endpoint, RevisionInfo, RevisionKey, Route, Target

from .procfs import pid_writing
from .support import (
    AUTOSCALE_APP,
    FAST_CONFIG,
    Load,
    assert_activators_settled,
    manifest,
    pod_rows,
    reason,
    service,
    until,
)

pytestmark = pytest.mark.process

NAME = "victim"
HOST = f"{NAME}.default.localhost"
CC = 4
UNNOTICED = 1.0  # seconds the control plane does not see the death


class BeyondItsRequests(AssertionError):
    """More requests failed than were inside the killed replica."""


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    "process",
    [
        "app",
        "queue-proxy",
    ],
)
async def test_killing_one_replica_process_fails_at_most_its_requests(
    tmp_path: Path, process: str
) -> None:
    svc = service(
        NAME,
        AUTOSCALE_APP,
        container_concurrency=CC,
        annotations={"min-scale": "2", "max-scale": "2"},
    )
    async with zeroserve_up(tmp_path, manifest(tmp_path / "svc.yaml", FAST_CONFIG, svc)) as up:

        async def running() -> dict[str, int]:
            """Running pods -> restarts."""
            return {
                r[0]: int(r[3]) for r in await pod_rows(up) if r[2] == "Running" and r[1] == "2/2"
            }

        before = await until(lambda: _at_least(running, 2), "two Running replicas", 60)
        async with Load(up.ingress, HOST) as load:
            await load.clients(2 * CC, "/?sleep=50")  # every replica full: CC requests inside each
            await until(lambda: load.sent > 50, "traffic flows", 30)
            victim = sorted(before)[0]
            pid = pid_writing(up.proc.pid, f"{victim}-{process}.log")
            sent_at_kill = load.sent
            up.proc.send_signal(signal.SIGSTOP)
            try:
                os.kill(pid, signal.SIGKILL)
                await asyncio.sleep(UNNOTICED)
            finally:
                up.proc.send_signal(signal.SIGCONT)
            failed_unnoticed = sum(n for code, n in load.statuses.items() if code != 200)

            async def replaced() -> bool:
                now = await running()
                return len(now) == 2 and (
                    now.get(victim, 0) > before[victim] or set(now) != set(before)
                )

            await until(replaced, f"the replica with the killed {process} replaced", 60, every=0.3)
            failed_replaced = sum(n for code, n in load.statuses.items() if code != 200)
            served = load.sent
            await until(lambda: load.sent > served + 50, "traffic after the replacement", 30)
            await load.clients(0)
        await assert_activators_settled(up)
        failed = sum(n for code, n in load.statuses.items() if code != 200)
        print(
            f"killed the {process} of {victim}: {dict(load.statuses)}; failed while unnoticed "
            f"{failed_unnoticed}, until replaced {failed_replaced}; {load.failures[:6]}"
        )
        assert load.sent - sent_at_kill > 100
        assert failed == failed_replaced, "failures after the replacement"
        if failed > CC:
            raise BeyondItsRequests(
                f"{failed} failed, at most {CC} were inside the replica: {load.failures[:10]}"
            )


async def test_request_for_a_replica_whose_app_died_goes_to_a_live_one(tmp_path: Path) -> None:
    """The kill above without the timing: a replica whose app is dead is still announced
    (the control plane has not noticed yet) next to one that is fine."""
    key = RevisionKey("default", "hello-00001")
    async with AsyncExitStack() as stack:
        apps = [AsyncExitStack() for _ in range(2)]  # each app can be stopped on its own
        for a in apps:
            stack.push_async_callback(a.aclose)
        started = [await a.enter_async_context(run_app()) for a in apps]
        qps = [
            await stack.enter_async_context(queue_proxy(port, tmp_path, CONTAINER_CONCURRENCY="1"))
            for port, _ in started
        ]
        act = Activator(Settings(host="127.0.0.1", port=0, metrics_port=0, drain_seconds=0))
        url = f"http://127.0.0.1:{(await act.start())['port']}"
        stack.push_async_callback(act.close)
        act.set_routes(
            RoutingTable(
                [Route("default", "hello", ("hello.default.example.com",), (Target(key, 100),))]
            )
        )
        act.put_revision(RevisionInfo(key, container_concurrency=1))
        act.set_endpoints(
            key,
            [Endpoint(f"pod-{q.port}", "127.0.0.1", q.port, q.ports["metrics_port"]) for q in qps],
        )
        # containerConcurrency 1 takes the first free replica in address order: its app dies
        dead = min(range(2), key=lambda i: qps[i].port)
        await apps[dead].aclose()
        async with httpx.AsyncClient(timeout=10) as client:
            rs = [
                await client.get(url + "/hello", headers={"Host": "hello.default.example.com"})
                for _ in range(5)
            ]
        assert [(r.status_code, r.text) for r in rs] == [(200, "hello")] * 5, [
            (r.status_code, reason(r)) for r in rs
        ]
        assert started[1 - dead][1].requests == 5


async def _at_least(
    running: Callable[[], Awaitable[dict[str, int]]], n: int
) -> dict[str, int] | None:
    pods = await running()
    return pods if len(pods) >= n else None


CRASH = [
    "python",
    "-c",
    "import sys; print('cannot reach the database at db:5432', flush=True); sys.exit(3)",
]


@pytest.mark.timeout(90)
async def test_crash_looping_revision_answers_503_naming_the_failure(tmp_path: Path) -> None:
    svc = service("crash", CRASH)
    host = {"Host": "crash.default.localhost"}
    async with (
        zeroserve_up(
            tmp_path,
            manifest(tmp_path / "crash.yaml", FAST_CONFIG, svc),
            args=("--activation-timeout", "60"),
        ) as up,
        httpx.AsyncClient(timeout=30) as client,
    ):
        # Sent at once: held for the first replica, which crashes. The client timeout is
        # only a liveness bound: the activator must answer by itself.
        waiting = await asyncio.gather(
            *(client.get(up.ingress + "/", headers=host) for _ in range(5))
        )

        async def failed() -> str:
            table = (await up.acli("get", "ksvc")).stdout
            return table if "RevisionFailed" in table else ""

        table = await until(failed, "RevisionFailed in get ksvc", 30, every=0.3)
        assert "crash-00001" in table and "False" in table, table
        assert "CrashLoopBackOff" in (await up.acli("get", "pods")).stdout
        # Once the revision failed, its provisional route is withdrawn (as upstream never
        # programs a route to a failed revision): a new request is answered at once.
        later = await client.get(up.ingress + "/", headers=host)
    for r in waiting:
        assert r.status_code == 503, r.text
        # answered once the retry failed too and the replica backs off, not at the
        # activation timeout
        assert reason(r).startswith("activator; reason=revision-failed; detail="), reason(r)
        assert "ExitCode3" in reason(r)
        assert r.headers["retry-after"] == "1"
        # the body says why: the exit code and the app's last output
        assert r.text.startswith("revision default/crash-00001 failed: ExitCode3: "), r.text
        assert "cannot reach the database at db:5432" in r.text, r.text
    assert (later.status_code, reason(later)) == (404, "activator; reason=no-route"), later.text


@pytest.mark.timeout(90)
async def test_hanging_requests_time_out_and_give_their_slot_back(tmp_path: Path) -> None:
    svc = service(
        "hang",
        AUTOSCALE_APP,
        container_concurrency=1,
        timeout_seconds=2,
        annotations={"min-scale": "1", "max-scale": "1"},
    )
    host = {"Host": "hang.default.localhost"}
    async with (
        zeroserve_up(tmp_path, manifest(tmp_path / "hang.yaml", FAST_CONFIG, svc)) as up,
        httpx.AsyncClient(timeout=30) as client,
    ):
        assert (await client.get(up.ingress + "/?sleep=0", headers=host)).status_code == 200
        hung = await client.get(up.ingress + "/?sleep=60000", headers=host)
        assert hung.status_code == 504, hung.text
        assert reason(hung).endswith("; reason=timeout"), hung.headers
        # The only slot of the only replica is free again, at the activator and at the queue-proxy.
        r = await client.get(up.ingress + "/?sleep=0", headers=host)
        assert (r.status_code, r.text) == (200, "ok\n")
        # Two at once on containerConcurrency 1: the second waits for the slot, within the
        # same revision timeout; both end, and the slot still comes back.
        both = await asyncio.gather(
            *(client.get(up.ingress + "/?sleep=60000", headers=host) for _ in range(2))
        )
        assert [x.status_code for x in both] == [504, 504], [x.text for x in both]
        for _ in range(3):
            r = await client.get(up.ingress + "/?sleep=0", headers=host)
            assert (r.status_code, r.text) == (200, "ok\n")
        await assert_activators_settled(up)
