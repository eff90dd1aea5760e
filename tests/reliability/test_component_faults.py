"""Components of ``zeroserve up`` that die or go away under traffic: the autoscaler, an
activator, a revision deleted while requests wait for it.

``zeroserve up`` supervises its components as Kubernetes restarts pods: the autoscaler
comes back on the same port, an activator on the shared ingress port (SO_REUSEPORT).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.local.support import UpProcess, zeroserve_up
from tests.support.raw import read_response

from .procfs import alive, components, connection_owner, kill
from .support import (
    AUTOSCALE_APP,
    FAST_CONFIG,
    Load,
    ReplicaWatch,
    assert_activators_settled,
    autoscaler_config,
    manifest,
    pod_rows,
    reason,
    service,
    until,
)

pytestmark = pytest.mark.process

STABLE_WINDOW = 6.0
GRACE = 1.0


def _new_component(up_pid: int, module: str, old: set[int], count: int = 1) -> set[int] | None:
    """The ``module`` processes once ``count`` of them run and none of ``old`` is among them."""
    now = set(components(up_pid, module))
    return now if len(now) == count and not now & old else None


@pytest.mark.timeout(120)
async def test_autoscaler_killed_traffic_flows_nothing_scales_to_zero_and_decisions_resume(
    tmp_path: Path,
) -> None:
    config = autoscaler_config(
        stable_window="6s", scale_to_zero_grace_period="1s", allow_zero_initial_scale="true"
    )
    svc = service(
        "steady", AUTOSCALE_APP, annotations={"target": "2", "initial-scale": "0", "max-scale": "3"}
    )
    host = "steady.default.localhost"
    async with (
        zeroserve_up(tmp_path, manifest(tmp_path / "steady.yaml", config, svc)) as up,
        ReplicaWatch(up, "steady-00001") as watch,
        Load(up.ingress, host) as load,
    ):
        await watch.until(lambda actual, desired: actual == desired == 0, "at zero", 30)

        # 1. Killed while the revision is at zero: requests that arrive meanwhile are held,
        # and the restarted autoscaler scales the revision up for them (its first stats
        # from the activator poke it; nothing remembered the old decisions).
        (old,) = components(up.proc.pid, "autoscaler")
        kill(old)
        async with httpx.AsyncClient(timeout=60) as client:
            cold = await asyncio.gather(
                *(client.get(up.ingress + "/?sleep=0", headers={"Host": host}) for _ in range(3))
            )
        assert [r.status_code for r in cold] == [200, 200, 200], [r.text for r in cold]
        first = await until(
            lambda: _new_component(up.proc.pid, "autoscaler", {old}), "autoscaler restarted", 30
        )

        # 2. Killed with warm traffic: it keeps flowing, and the restarted autoscaler, which
        # has no metrics yet, never takes the revision to zero (nor anywhere else) for them.
        await load.clients(1, "/?sleep=0", 0.2)
        await watch.until(
            lambda actual, desired: actual == desired == 1, "one replica for a trickle", 30
        )
        (old,) = first
        kill(old)
        await until(
            lambda: _new_component(up.proc.pid, "autoscaler", {old}),
            "autoscaler restarted again",
            30,
        )
        mark = len(watch.history)
        sent = load.sent
        await asyncio.sleep(
            STABLE_WINDOW + GRACE + 3
        )  # longer than it takes an idle revision to reach zero
        assert load.sent - sent > 20
        after_restart = watch.history[mark - 1 :]
        assert all(actual >= 1 and desired != 0 for actual, desired in after_restart), after_restart

        # 3. Decisions resume: more load scales it up.
        await load.clients(12, "/?sleep=100")
        await watch.until(lambda actual, _: actual >= 2, "scale-up by the restarted autoscaler", 45)
        await load.clients(0)
        await assert_activators_settled(up)
    assert load.failures == [], load.failures[:20]
    assert set(load.statuses) == {200}


@pytest.mark.timeout(120)
async def test_activator_killed_only_its_requests_fail_and_its_replacement_serves(
    tmp_path: Path,
) -> None:
    svc = service("long", AUTOSCALE_APP, annotations={"min-scale": "1"})
    request = b"GET /?sleep=3000 HTTP/1.1\r\nHost: long.default.localhost\r\n\r\n"
    quick = b"GET /?sleep=0 HTTP/1.1\r\nHost: long.default.localhost\r\n\r\n"
    async with zeroserve_up(
        tmp_path, manifest(tmp_path / "long.yaml", FAST_CONFIG, svc), args=("--activators", "2")
    ) as up:
        port = up.ingress_port
        async with httpx.AsyncClient(timeout=30) as client:
            r = await client.get(
                up.ingress + "/?sleep=0", headers={"Host": "long.default.localhost"}
            )
            assert r.status_code == 200
        activators = set(components(up.proc.pid, "activator"))
        assert len(activators) == 2

        # Many connections with a 3 s request each; the kernel spreads them over both.
        conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(40)]
        try:
            for _, writer in conns:
                writer.write(request)

            def accepted() -> list[int | None] | None:
                found = [
                    connection_owner(w.get_extra_info("sockname")[1], port, activators)
                    for _, w in conns
                ]
                return found if None not in found else None

            owners = await until(accepted, "every connection accepted by an activator", 10)
            victim = max(activators, key=owners.count)
            await asyncio.sleep(0.5)  # forwarded to the replica by now
            kill(victim)
            # New connections go to the survivor meanwhile (the kernel drops the dead listener).
            async with httpx.AsyncClient(timeout=30) as client:
                during = [
                    await client.get(
                        up.ingress + "/?sleep=0",
                        headers={"Host": "long.default.localhost", "Connection": "close"},
                    )
                    for _ in range(10)
                ]
            results = await asyncio.gather(
                *(read_response(reader, timeout=30) for reader, _ in conns), return_exceptions=True
            )
        finally:
            for _, writer in conns:
                writer.close()
        ok = [not isinstance(x, BaseException) and x.status == 200 and x.complete for x in results]
        on_victim = [owner == victim for owner in owners]
        print(
            f"{on_victim.count(True)} of {len(owners)} requests on the killed activator, {ok.count(False)} failed"
        )
        # Every request the surviving activator accepted completed; only the killed one's failed.
        assert all(good for good, killed in zip(ok, on_victim, strict=True) if not killed), results
        assert ok.count(False) <= on_victim.count(True), (results, owners)
        assert [r.status_code for r in during] == [200] * 10

        # The replacement listens on the same port and rebuilt its routes from the control API.
        def replaced() -> set[int] | None:
            now = set(components(up.proc.pid, "activator"))
            return now - activators if len(now) == 2 and victim not in now else None

        (replacement,) = await until(replaced, "activator replaced", 30)
        through_new = 0
        async with asyncio.timeout(30):
            while through_new < 3:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                try:
                    writer.write(quick)
                    resp = await read_response(reader)
                    assert (resp.status, resp.body) == (200, b"ok\n"), resp
                    owner = connection_owner(
                        writer.get_extra_info("sockname")[1], port, {replacement}
                    )
                    through_new += owner == replacement
                finally:
                    writer.close()
        assert alive(replacement)
        await assert_activators_settled(up)


@pytest.mark.timeout(90)
async def test_deleting_a_revision_with_queued_requests_fails_them_at_once_and_unroutes_it(
    tmp_path: Path,
) -> None:
    # Never listens: its replica never gets ready, so requests wait in the activator.
    svc = service("never", ["python", "-c", "import time; time.sleep(30)"])
    host = {"Host": "never.default.localhost"}
    async with (
        zeroserve_up(
            tmp_path,
            manifest(tmp_path / "never.yaml", FAST_CONFIG, svc),
            args=("--activation-timeout", "60"),
        ) as up,
        httpx.AsyncClient(timeout=30) as client,
    ):
        queued = [asyncio.create_task(client.get(up.ingress + "/", headers=host)) for _ in range(5)]
        await asyncio.sleep(1.5)
        assert not any(t.done() for t in queued), [t.result().text for t in queued if t.done()]
        deleted_at = time.monotonic()
        out = (await up.acli("delete", "ksvc", "never")).stdout
        assert 'service.serving.knative.dev "never" deleted' in out
        rs = await asyncio.gather(*queued)
        waited = time.monotonic() - deleted_at
        for r in rs:
            assert (r.status_code, reason(r)) == (503, "activator; reason=revision-deleted"), r.text
            assert r.text == "revision default/never-00001 was deleted\n"
            assert r.headers["retry-after"] == "1"
        # the activation timeout is 60 s: being answered well before it means they were told
        assert waited < 20, waited
        # The host routes nowhere now: a new request is 404 at once, never held.
        for _ in range(5):
            r = await client.get(up.ingress + "/", headers=host)
            assert (r.status_code, reason(r)) == (404, "activator; reason=no-route"), r.text
        await until(lambda: _no_pods(up), "the replica stopped", 30, every=0.3)
        await assert_activators_settled(up)


async def _no_pods(up: UpProcess) -> bool:
    return await pod_rows(up) == []
