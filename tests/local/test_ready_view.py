"""The state's ``ready`` view (``GET /v1/state?view=ready``): the snapshot with only the
ready endpoints, versioned on its own, so that the autoscaler is not woken when a
replica starts listening (docs/local-mode.md, "Cold start CPU")."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import aiohttp
import httpx
import pytest

from autoscaler.local import ControlPlaneCluster
from zeroserve.api import load
from zeroserve.local import access
from zeroserve.local.protocol import READY_VIEW, SERVING_VIEW, Snapshot
from zeroserve.local.runtime import LocalRuntime
from zeroserve.local.state import StateHub
from zeroserve.serving.controller import Controller
from zeroserve.topology import Endpoint, RevisionKey

from .test_access import TOKEN, control_api

SERVICE = (Path(__file__).resolve().parents[2] / "examples" / "helloworld.yaml").read_text()


class FakeRuntime:
    """What ``StateHub`` reads of a runtime; the test sets the endpoints."""

    def __init__(self) -> None:
        self.eps: dict[RevisionKey, list[Endpoint]] = {}

    def set_revisions(self, runs: Any) -> None:
        pass

    def objects_changed(self) -> None:
        pass

    def set_scale(self, key: RevisionKey, n: int) -> None:
        pass

    def set_observability(self, config: Any) -> None:
        pass

    def states(self) -> dict[RevisionKey, Any]:
        return {}

    def endpoints(self) -> dict[RevisionKey, list[Endpoint]]:
        return self.eps

    replicas = 1

    def scale(self, key: RevisionKey) -> int:
        return self.replicas


def endpoint(ready: bool) -> Endpoint:
    return Endpoint(name="pod-a", host="127.0.0.1", port=18000, stats_port=18001, ready=ready)


async def hub_with_a_revision() -> tuple[StateHub, FakeRuntime, RevisionKey]:
    controller = Controller(0.0)
    controller.apply(load(SERVICE, "svc.yaml"), now=0.0)
    hub = StateHub(controller)
    runtime = FakeRuntime()
    hub.attach(cast(LocalRuntime, runtime))
    await asyncio.sleep(0)  # the first publish
    (key,) = controller.revisions()
    return hub, runtime, key


async def test_a_replica_listening_wakes_the_whole_view_but_not_the_ready_one() -> None:
    hub, runtime, key = await hub_with_a_revision()
    # the runtime names every revision it runs, without endpoints at first
    runtime.eps = {key: []}
    hub.runtime_changed()
    await asyncio.sleep(0)
    full, ready = hub.snapshot.version, hub.ready_snapshot.version
    assert ready >= 1 and hub.ready_snapshot.revisions.keys() == {key}
    ready_poll = asyncio.create_task(hub.wait_past(ready, 5, view=READY_VIEW))
    full_poll = asyncio.create_task(hub.wait_past(full, 5))

    runtime.eps = {key: [endpoint(ready=False)]}  # the replica listens
    hub.runtime_changed()
    snap = await asyncio.wait_for(full_poll, 1)
    assert snap.version == full + 1 and snap.endpoints[key] == (endpoint(ready=False),)
    await asyncio.sleep(0.05)
    assert not ready_poll.done()
    assert hub.ready_snapshot.version == ready and key not in hub.ready_snapshot.endpoints

    runtime.eps = {key: [endpoint(ready=True)]}  # ... and is ready
    hub.runtime_changed()
    got = await asyncio.wait_for(ready_poll, 1)
    assert got.version == ready + 1 and got.endpoints[key] == (endpoint(ready=True),)
    assert hub.snapshot.version == full + 2
    # each view is encoded as itself, and once
    text = hub.encoded(got)
    assert hub.encoded(got) is text
    assert Snapshot.from_json(json.loads(text)) == got
    assert Snapshot.from_json(json.loads(hub.encoded(hub.snapshot))) == hub.snapshot
    hub.close()


async def test_a_new_replica_count_alone_does_not_answer_the_serving_view() -> None:
    hub, runtime, key = await hub_with_a_revision()
    full = hub.snapshot.version
    poll = asyncio.create_task(hub.wait_past(full, 5, client="activator-0", view=SERVING_VIEW))
    await asyncio.sleep(0)
    runtime.replicas = 2  # the autoscaler's scale request
    hub.runtime_changed()
    await asyncio.sleep(0.05)
    assert hub.snapshot.version == full + 1 and hub.snapshot.replicas[key] == 2
    assert not poll.done()
    # ... and the activator counts as having applied it (nothing of its view changed)
    assert await hub.wait_applied(["activator-0"], 1) is True
    assert await hub.wait_applied(["activator-1"], 0.05) is False

    runtime.eps = {key: [endpoint(ready=False)]}  # what it reads: a new endpoint
    hub.runtime_changed()
    snap = await asyncio.wait_for(poll, 1)
    assert snap is hub.snapshot and snap.version == full + 2
    assert snap.endpoints[key] == (endpoint(ready=False),)
    # not applied until it polls past that version
    assert await hub.wait_applied(["activator-0"], 0.05) is False
    # a version it cannot know (from before a restart) is answered at once, as the whole
    # view answers it
    got = await asyncio.wait_for(hub.wait_past(full + 10, 5, view=SERVING_VIEW), 1)
    assert got.version == full + 2
    # the whole view is answered by a new replica count
    whole = asyncio.create_task(hub.wait_past(full + 2, 5))
    runtime.replicas = 3
    hub.runtime_changed()
    assert (await asyncio.wait_for(whole, 1)).version == full + 3
    hub.close()


async def test_the_ready_view_over_the_control_api_and_the_autoscaler_follows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(access.TOKEN_ENV, TOKEN)
    async with control_api(tmp_path) as (api, url):
        hub = api.hub
        auth = {"Authorization": f"Bearer {TOKEN}"}
        await asyncio.sleep(0)  # the first publish
        # the two views apart: the ready one at version 7
        hub.ready_snapshot = replace(hub.ready_snapshot, version=7)
        assert hub.snapshot.version != 7
        async with httpx.AsyncClient() as client:
            r = await client.get(f"{url}/v1/state?since=-1&wait=0&view=ready", headers=auth)
            assert r.status_code == 200 and r.json()["version"] == 7
            r = await client.get(f"{url}/v1/state?since=-1&wait=0", headers=auth)
            assert r.status_code == 200 and r.json()["version"] == hub.snapshot.version
            r = await client.get(f"{url}/v1/state?since=-1&wait=0&view=serving", headers=auth)
            assert r.status_code == 200 and r.json()["version"] == hub.snapshot.version
            r = await client.get(f"{url}/v1/state?since=-1&wait=0&view=nope", headers=auth)
            assert r.status_code == 400 and "view" in r.json()["error"]
        async with aiohttp.ClientSession() as session:
            cluster = ControlPlaneCluster(url, session)
            cluster.start()
            try:
                await asyncio.wait_for(cluster.follower.synced.wait(), 5)
                assert cluster.snapshot.version == 7  # the autoscaler follows the ready view
            finally:
                await cluster.stop()
