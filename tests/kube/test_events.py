"""EventRecorder against the fake API server: the Events it creates, aggregation of repeats
into a PATCH of count/lastTimestamp, the bounded queue, best-effort writes (403, 5xx, 404 on
a patch) and draining on stop."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.fakes.kubeapi.fakeapi import FakeKubeAPI
from zeroserve.kube import KubeClient
from zeroserve.kube.events import (
    EVENTS,
    MESSAGE_LIMIT,
    NORMAL,
    WARNING,
    EventRecorder,
    rfc3339,
)

from .helpers import config_map, eventually

T0 = 1_700_000_000.25  # 2023-11-14T22:13:20Z
LOGGER = "zeroserve.kube.events"


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def recorder(kube: KubeClient, clock: Clock) -> AsyncIterator[EventRecorder]:
    rec = EventRecorder(
        kube, component="zeroserve-controller", host="controller-0", clock=clock, retry_delay=0.01
    )
    await rec.start()
    try:
        yield rec
    finally:
        await rec.stop()


def stored(api: FakeKubeAPI, obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` as created in the fake, with uid and resourceVersion."""
    return api.put(obj)


def events(api: FakeKubeAPI, namespace: str | None = "default") -> list[dict[str, Any]]:
    return sorted(api.list("events", namespace), key=lambda e: e["metadata"]["name"])


async def written(api: FakeKubeAPI, count: int, namespace: str | None = "default") -> list[Any]:
    await eventually(lambda: len(events(api, namespace)) == count, f"{count} events")
    return events(api, namespace)


async def settled(rec: EventRecorder) -> None:
    """Everything queued has been through the worker."""
    await asyncio.wait_for(rec._queue.join(), 5.0)


def test_events_resource_is_core_v1() -> None:
    assert EVENTS.api_version == "v1"
    assert EVENTS.path("ns", "x.1") == "/api/v1/namespaces/ns/events/x.1"


def test_rfc3339_is_utc_at_seconds_precision() -> None:
    assert rfc3339(T0) == "2023-11-14T22:13:20Z"


async def test_first_event_creates_an_event_with_the_fields_client_go_writes(
    recorder: EventRecorder, fake_kube: FakeKubeAPI
) -> None:
    cm = stored(fake_kube, config_map("web"))
    recorder.event(cm, NORMAL, "Created", "created the web config")
    [event] = await written(fake_kube, 1)

    assert re.fullmatch(r"web\.[0-9a-f]{16}", event["metadata"]["name"])
    assert int(event["metadata"]["name"].split(".")[1], 16) == int(T0 * 1e9)
    assert event["metadata"]["namespace"] == "default"
    assert event["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "web",
        "namespace": "default",
        "uid": cm["metadata"]["uid"],
        "resourceVersion": cm["metadata"]["resourceVersion"],
    }
    assert event["reason"] == "Created"
    assert event["message"] == "created the web config"
    assert event["type"] == "Normal"
    assert event["source"] == {"component": "zeroserve-controller", "host": "controller-0"}
    assert event["reportingComponent"] == "zeroserve-controller"
    assert event["reportingInstance"] == "controller-0"
    assert event["firstTimestamp"] == event["lastTimestamp"] == "2023-11-14T22:13:20Z"
    assert event["count"] == 1
    assert event.get("eventTime") is None
    [post] = fake_kube.requests_matching("POST", "/events")
    assert post.path == "/api/v1/namespaces/default/events"
    assert post.body["apiVersion"] == "v1" and post.body["kind"] == "Event"
    assert "eventTime" in post.body and post.body["eventTime"] is None


async def test_a_repeat_patches_count_and_last_timestamp_of_the_same_event(
    recorder: EventRecorder, fake_kube: FakeKubeAPI, clock: Clock
) -> None:
    cm = stored(fake_kube, config_map("web"))
    recorder.event(cm, WARNING, "Failed", "image pull failed")
    [first] = await written(fake_kube, 1)
    clock.now += 90
    recorder.event(cm, WARNING, "Failed", "image pull failed")
    await settled(recorder)

    [event] = events(fake_kube)
    assert event["metadata"]["name"] == first["metadata"]["name"]
    assert event["count"] == 2
    assert event["firstTimestamp"] == "2023-11-14T22:13:20Z"
    assert event["lastTimestamp"] == "2023-11-14T22:14:50Z"
    [patch] = fake_kube.requests_matching("PATCH", "/events")
    assert patch.path.endswith(f"/events/{first['metadata']['name']}")
    assert patch.content_type.startswith("application/merge-patch+json")
    assert patch.body == {"count": 2, "lastTimestamp": "2023-11-14T22:14:50Z"}
    assert len(fake_kube.requests_matching("POST", "/events")) == 1

    clock.now += 1
    recorder.event(cm, WARNING, "Failed", "image pull failed")
    await settled(recorder)
    [event] = events(fake_kube)
    assert event["count"] == 3


async def test_a_different_message_reason_type_or_object_creates_another_event(
    recorder: EventRecorder, fake_kube: FakeKubeAPI
) -> None:
    web = stored(fake_kube, config_map("web"))
    api = stored(fake_kube, config_map("api"))
    # The clock stands still: the names must still differ.
    recorder.event(web, NORMAL, "Updated", "one")
    recorder.event(web, NORMAL, "Updated", "two")
    recorder.event(web, NORMAL, "Synced", "two")
    recorder.event(web, WARNING, "Synced", "two")
    recorder.event(api, WARNING, "Synced", "two")
    found = await written(fake_kube, 5)
    await settled(recorder)

    assert len({e["metadata"]["name"] for e in found}) == 5
    assert all(e["count"] == 1 for e in found)
    assert sorted(
        (e["involvedObject"]["name"], e["type"], e["reason"], e["message"]) for e in found
    ) == [
        ("api", "Warning", "Synced", "two"),
        ("web", "Normal", "Synced", "two"),
        ("web", "Normal", "Updated", "one"),
        ("web", "Normal", "Updated", "two"),
        ("web", "Warning", "Synced", "two"),
    ]
    assert fake_kube.requests_matching("PATCH", "/events") == []


async def test_a_recreated_object_with_a_new_uid_gets_its_own_event(
    recorder: EventRecorder, fake_kube: FakeKubeAPI
) -> None:
    first = stored(fake_kube, config_map("web"))
    recorder.event(first, NORMAL, "Created", "created")
    await written(fake_kube, 1)
    fake_kube.delete("configmaps", "default", "web")
    second = stored(fake_kube, config_map("web"))
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    recorder.event(second, NORMAL, "Created", "created")
    found = await written(fake_kube, 2)
    assert {e["involvedObject"]["uid"] for e in found} == {
        first["metadata"]["uid"],
        second["metadata"]["uid"],
    }


async def test_events_go_to_the_objects_namespace_and_default_for_cluster_scoped(
    recorder: EventRecorder, fake_kube: FakeKubeAPI
) -> None:
    fake_kube.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    namespace = fake_kube.get("namespaces", None, "team")
    assert namespace is not None
    recorder.event(namespace, NORMAL, "Labelled", "namespace labelled")
    cm = config_map("web")
    cm["metadata"]["namespace"] = "team"
    recorder.event(stored(fake_kube, cm), NORMAL, "Created", "in team")

    [cluster_scoped] = await written(fake_kube, 1, "default")
    assert cluster_scoped["involvedObject"]["kind"] == "Namespace"
    assert "namespace" not in cluster_scoped["involvedObject"]
    [in_team] = await written(fake_kube, 1, "team")
    assert in_team["involvedObject"]["namespace"] == "team"
    assert in_team["message"] == "in team"


async def test_long_messages_are_cut_and_long_names_kept_valid(
    recorder: EventRecorder, fake_kube: FakeKubeAPI
) -> None:
    name = "a" * 235 + "-b" + "c" * 16  # 253 characters: the longest object name
    obj = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
    }
    recorder.event(obj, WARNING, "TooLong", "x" * (MESSAGE_LIMIT + 500))
    [event] = await written(fake_kube, 1)
    assert event["message"] == "x" * MESSAGE_LIMIT
    event_name = event["metadata"]["name"]
    assert len(event_name) <= 253
    assert re.fullmatch(r"a{235}\.[0-9a-f]{16}", event_name)  # the trailing "-" is cut off
    assert event["involvedObject"]["name"] == name


def test_the_event_type_must_be_normal_or_warning(kube: KubeClient) -> None:
    recorder = EventRecorder(kube)
    with pytest.raises(ValueError, match="Normal"):
        recorder.event(config_map("web"), "Error", "Oops", "not a type")
    assert recorder.pending == 0


def test_an_object_without_a_name_is_logged_not_raised(
    kube: KubeClient, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = EventRecorder(kube)
    with caplog.at_level(logging.WARNING, LOGGER):
        recorder.event({"kind": "ConfigMap", "metadata": {}}, NORMAL, "Created", "x")
    assert recorder.pending == 0
    assert "no metadata.name" in caplog.text


async def test_a_full_queue_drops_and_counts_with_one_warning_per_burst(
    kube: KubeClient, fake_kube: FakeKubeAPI, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = EventRecorder(kube, queue_limit=2)
    cm = stored(fake_kube, config_map("web"))
    with caplog.at_level(logging.WARNING, LOGGER):
        for i in range(5):
            recorder.event(cm, NORMAL, "Tick", f"tick {i}")  # never blocks: nothing drains
        assert recorder.pending == 2
        assert recorder.dropped == 3
        drops = [r for r in caplog.records if "queue full" in r.getMessage()]
        assert len(drops) == 1 and drops[0].levelno == logging.WARNING

        await recorder.start()
        found = await written(fake_kube, 2)
        assert [e["message"] for e in found] == sorted(["tick 0", "tick 1"])
        await recorder.stop()

        for i in range(5, 9):
            recorder.event(cm, NORMAL, "Tick", f"tick {i}")
    assert recorder.dropped == 5
    assert len([r for r in caplog.records if "queue full" in r.getMessage()]) == 2


async def test_a_403_is_not_raised_warns_once_and_later_events_go_through(
    recorder: EventRecorder, fake_kube: FakeKubeAPI, caplog: pytest.LogCaptureFixture
) -> None:
    cm = stored(fake_kube, config_map("web"))
    fake_kube.fail_next("POST", "/events", 403, count=2, reason="Forbidden")
    with caplog.at_level(logging.DEBUG, LOGGER):
        recorder.event(cm, NORMAL, "Created", "refused")
        recorder.event(cm, NORMAL, "Created", "refused too")
        recorder.event(cm, NORMAL, "Created", "accepted")
        [event] = await written(fake_kube, 1)
        await settled(recorder)
    assert event["message"] == "accepted"
    assert recorder.running
    forbidden = [r for r in caplog.records if "Forbidden" in r.getMessage()]
    assert [r.levelno for r in forbidden] == [logging.WARNING, logging.DEBUG]
    assert '"events create"' in forbidden[0].getMessage()
    assert len(fake_kube.requests_matching("POST", "/events")) == 3  # a 403 is not retried

    # The refused event was not remembered: recorded again, it is created, not patched.
    recorder.event(cm, NORMAL, "Created", "refused")
    found = await written(fake_kube, 2)
    assert {e["message"] for e in found} == {"accepted", "refused"}
    assert fake_kube.requests_matching("PATCH", "/events") == []


async def test_unavailable_api_is_retried_then_given_up(
    recorder: EventRecorder, fake_kube: FakeKubeAPI, caplog: pytest.LogCaptureFixture
) -> None:
    cm = stored(fake_kube, config_map("web"))
    fake_kube.fail_next("POST", "/events", 503, count=2)
    recorder.event(cm, NORMAL, "Created", "third time lucky")
    [event] = await written(fake_kube, 1)
    assert event["message"] == "third time lucky"
    assert len(fake_kube.requests_matching("POST", "/events")) == 3

    fake_kube.fail_next("POST", "/events", 500, count=3)
    with caplog.at_level(logging.WARNING, LOGGER):
        recorder.event(cm, NORMAL, "Created", "never written")
        await settled(recorder)
    assert len(events(fake_kube)) == 1
    assert len(fake_kube.requests_matching("POST", "/events")) == 6
    assert "not written after 3 attempts" in caplog.text
    assert recorder.running


async def test_a_patch_of_an_expired_event_creates_it_again(
    recorder: EventRecorder, fake_kube: FakeKubeAPI
) -> None:
    cm = stored(fake_kube, config_map("web"))
    recorder.event(cm, WARNING, "Failed", "again and again")
    [first] = await written(fake_kube, 1)
    name = first["metadata"]["name"]
    fake_kube.delete("events", "default", name)  # the API's event TTL ran out
    await written(fake_kube, 0)

    recorder.event(cm, WARNING, "Failed", "again and again")
    [event] = await written(fake_kube, 1)
    assert event["metadata"]["name"] == name
    assert event["count"] == 2
    assert event["firstTimestamp"] == first["firstTimestamp"]
    assert len(fake_kube.requests_matching("PATCH", "/events")) == 1
    assert len(fake_kube.requests_matching("POST", "/events")) == 2

    recorder.event(cm, WARNING, "Failed", "again and again")
    await settled(recorder)
    [event] = events(fake_kube)
    assert event["count"] == 3


async def test_the_lru_forgets_the_least_recently_written_event(
    kube: KubeClient, fake_kube: FakeKubeAPI
) -> None:
    recorder = EventRecorder(kube, cache_size=2)
    await recorder.start()
    try:
        cm = stored(fake_kube, config_map("web"))
        for message in ("a", "b", "a", "c", "a", "b"):
            recorder.event(cm, NORMAL, "Step", message)
        await settled(recorder)
    finally:
        await recorder.stop()
    # a, b created; a patched (a most recent); c created, evicting b; a patched; b created anew.
    found = events(fake_kube)
    assert sorted((e["message"], e["count"]) for e in found) == [
        ("a", 3),
        ("b", 1),
        ("b", 1),
        ("c", 1),
    ]


async def test_stop_drains_queued_events(kube: KubeClient, fake_kube: FakeKubeAPI) -> None:
    recorder = EventRecorder(kube)
    cm = stored(fake_kube, config_map("web"))
    for i in range(20):
        recorder.event(cm, NORMAL, "Tick", f"tick {i:02}")
    await recorder.start()
    await recorder.stop()
    assert not recorder.running
    assert recorder.pending == 0
    assert sorted(e["message"] for e in events(fake_kube)) == [f"tick {i:02}" for i in range(20)]
    await recorder.stop()  # a second stop is harmless


async def test_stop_gives_up_after_its_timeout(
    kube: KubeClient, fake_kube: FakeKubeAPI, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = EventRecorder(kube)
    cm = stored(fake_kube, config_map("web"))
    fake_kube.delay_next("POST", "/events", 5.0)
    recorder.event(cm, NORMAL, "Slow", "held by the API")
    recorder.event(cm, NORMAL, "Slow", "still queued")
    await recorder.start()
    with caplog.at_level(logging.WARNING, LOGGER):
        await asyncio.wait_for(recorder.stop(timeout=0.2), 2.0)
    assert not recorder.running
    assert recorder.pending == 1
    assert "not written after 0.2s" in caplog.text


async def test_event_never_blocks_the_caller_while_the_api_is_slow(
    kube: KubeClient, fake_kube: FakeKubeAPI
) -> None:
    recorder = EventRecorder(kube, queue_limit=10)
    cm = stored(fake_kube, config_map("web"))
    fake_kube.delay_next("POST", "/events", 1.0)
    await recorder.start()
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        for i in range(50):
            recorder.event(cm, NORMAL, "Tick", f"{i}")
        assert loop.time() - started < 0.5
        assert recorder.dropped > 0
    finally:
        await recorder.stop(timeout=0.1)
