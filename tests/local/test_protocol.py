"""The local control protocol: snapshots, the long-poll follower, and the components' local sources."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import aiohttp
import pytest
from aiohttp import web

from activator.app import Activator
from activator.config import Settings
from activator.local import LocalControlSources
from autoscaler.local import ControlPlaneCluster
from autoscaler.model import ScaleError
from zeroserve.local.protocol import Snapshot, StateFollower
from zeroserve.local.state import StateHub
from zeroserve.serving.controller import Controller
from zeroserve.topology import Endpoint, RevisionInfo, RevisionKey, Route, TagRoute, Target

KEY = RevisionKey("default", "hello-00001")
EP = Endpoint(
    name="pod-a", host="127.0.0.1", port=18000, stats_port=18001, started_at=5.0, ready=True
)


def snapshot(version: int, *, ready: bool = True) -> Snapshot:
    return Snapshot(
        version=version,
        revisions={
            KEY: RevisionInfo(
                KEY,
                container_concurrency=10,
                annotations={"a": "b"},
                service="hello",
                configuration="hello",
                timeout_seconds=60,
                protocol="h2c",
            )
        },
        routes=(
            Route(
                "default",
                "hello",
                ("hello.default.localhost",),
                (Target(KEY, 100),),
                {
                    "v1": TagRoute(
                        ("v1-hello.default.localhost",),
                        ("v1-hello.default.svc.cluster.local", "v1-hello.default.svc"),
                        KEY,
                        (Target(KEY, 0),),
                    )
                },
                local_hosts=("hello.default.svc.cluster.local", "hello.default.svc"),
            ),
        ),
        tag_header_routing=True,
        endpoints={KEY: (Endpoint(**{**EP.__dict__, "ready": ready}),)},
        replicas={KEY: 1},
        autoscaler_config={"stable-window": "6s"},
    )


def test_snapshot_json_round_trip() -> None:
    s = snapshot(7)
    assert Snapshot.from_json(json.loads(json.dumps(s.to_json()))) == s


def test_a_failed_revision_backing_off_survives_the_round_trip() -> None:
    s = snapshot(7)
    info = replace(
        s.revisions[KEY], failure="ExitCode3: Container failed with: x", backing_off=True
    )
    failed = replace(s, revisions={KEY: info})
    back = Snapshot.from_json(json.loads(json.dumps(failed.to_json())))
    assert back.revisions[KEY].backing_off is True
    assert back.revisions[KEY].failure == "ExitCode3: Container failed with: x"


@pytest.mark.parametrize(
    "bad",
    [{}, {"version": 1, "revisions": [{}]}, {"version": "x"}, []],
    ids=["empty", "revision-without-fields", "bad-version", "not-an-object"],
)
def test_malformed_snapshots_are_value_errors(bad: object) -> None:
    with pytest.raises(ValueError, match="malformed state snapshot"):
        Snapshot.from_json(bad)  # type: ignore[arg-type]


class FakeControl:
    """A control API serving snapshots (long-poll) and recording scale requests."""

    def __init__(self) -> None:
        self.snap = snapshot(1)
        self.changed = asyncio.Event()
        self.scales: list[dict] = []  # type: ignore[type-arg]
        self.fail_scale = False
        self.polls: list[tuple[str, str]] = []
        """(since, client) of every state poll."""
        self.views: list[str] = []
        """The view every state poll asked for ("": the whole snapshot)."""

    def publish(self, snap: Snapshot) -> None:
        self.snap = snap
        self.changed.set()
        self.changed = asyncio.Event()

    async def state(self, request: web.Request) -> web.Response:
        self.polls.append((request.query["since"], request.query.get("client", "")))
        self.views.append(request.query.get("view", ""))
        since = int(request.query["since"])
        if self.snap.version == since:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), float(request.query["wait"]))
        return web.json_response(self.snap.to_json())

    async def scale(self, request: web.Request) -> web.Response:
        if self.fail_scale:
            return web.Response(status=404, text="no such revision")
        self.scales.append(await request.json())
        return web.json_response({"ok": True})


@asynccontextmanager
async def control() -> AsyncIterator[tuple[FakeControl, str]]:
    fake = FakeControl()
    app = web.Application()
    app.router.add_get("/v1/state", fake.state)
    app.router.add_post("/v1/scale", fake.scale)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield fake, f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        fake.publish(fake.snap)  # release waiting long-polls
        await runner.cleanup()


async def test_follower_gets_new_states_at_once_and_survives_an_outage() -> None:
    seen: list[int] = []
    async with control() as (fake, url), aiohttp.ClientSession() as session:
        f = StateFollower(url, session, lambda s: seen.append(s.version))
        f.start()
        try:
            await asyncio.wait_for(f.synced.wait(), 5)
            fake.publish(snapshot(2))
            async with asyncio.timeout(5):
                while seen[-1] != 2:
                    await asyncio.sleep(0.01)
        finally:
            await f.stop()
    assert seen == [1, 2]


async def test_a_named_follower_tells_which_version_it_applied() -> None:
    async with control() as (fake, url), aiohttp.ClientSession() as session:
        f = StateFollower(url, session, lambda s: None, client="activator-0")
        f.start()
        try:
            await asyncio.wait_for(f.synced.wait(), 5)
            async with asyncio.timeout(5):
                while ("1", "activator-0") not in fake.polls:
                    await asyncio.sleep(0.01)
        finally:
            await f.stop()
    assert fake.polls[0] == ("-1", "activator-0")


async def test_the_hub_waits_until_named_clients_applied_the_current_state() -> None:
    hub = StateHub(Controller(now=0.0))
    hub.snapshot = Snapshot(version=3)
    waiting = asyncio.create_task(hub.wait_applied(["activator-0", "activator-1"], 5))
    await hub.wait_past(3, 0, client="activator-0")
    await hub.wait_past(2, 0, client="activator-1")  # still one behind
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await hub.wait_past(3, 0, client="activator-1")
    assert await waiting is True
    assert await hub.wait_applied(["activator-2"], 0.05) is False


async def test_autoscaler_sources_over_the_control_api() -> None:
    async with control() as (fake, url), aiohttp.ClientSession() as session:
        cluster = ControlPlaneCluster(url, session)
        cluster.start()
        try:
            await asyncio.wait_for(cluster.follower.synced.wait(), 5)
            assert cluster.revisions()[KEY].container_concurrency == 10
            assert cluster.ready_pods(KEY) == [EP]
            assert cluster.ready_pods(RevisionKey("default", "nope")) is None
            assert cluster.current_scale(KEY) == 1
            await cluster.set_scale(KEY, 4)
            assert fake.scales == [
                {"namespace": "default", "revision": "hello-00001", "replicas": 4}
            ]
            assert cluster.current_scale(KEY) == 4  # before the next snapshot says so
            fake.fail_scale = True
            with pytest.raises(ScaleError, match="404"):
                await cluster.set_scale(KEY, 5)
            fake.publish(snapshot(2, ready=False))
            async with asyncio.timeout(5):
                while cluster.snapshot.version != 2:
                    await asyncio.sleep(0.01)
            assert cluster.ready_pods(KEY) == []  # not-ready replicas are not counted
            assert cluster.current_scale(KEY) == 1
            # it reads ready endpoints only, so it follows the ready view
            assert set(fake.views) == {"ready"}
        finally:
            await cluster.stop()


async def test_activator_sources_push_routes_revisions_and_endpoints() -> None:
    async with control() as (fake, url), aiohttp.ClientSession() as session:
        act = Activator(Settings(host="127.0.0.1", port=0, metrics_port=0, drain_seconds=0))
        sources = LocalControlSources(url, act, session)
        sources.start()
        try:
            await asyncio.wait_for(sources.follower.synced.wait(), 5)
            rev = act.revisions.get(KEY)
            assert rev is not None and rev.info.timeout_seconds == 60
            assert set(rev.endpoints) == {("127.0.0.1", 18000)}
            assert act.routes.lookup(b"v1-hello.default.localhost") is not None
            fake.publish(Snapshot(version=3))  # everything deleted
            async with asyncio.timeout(5):
                while act.revisions.get(KEY) is not None:
                    await asyncio.sleep(0.01)
            assert act.routes.lookup(b"hello.default.localhost") is None
            # replica counts are not its business: it follows the serving view
            assert set(fake.views) == {"serving"}
        finally:
            await sources.stop()
            await act.close()
