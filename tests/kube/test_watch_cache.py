"""WatchCache against the fake API server: sync, events, 410 re-lists, outages, restarts."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.kubeapi.fakeapi import FakeKubeAPI
from zeroserve.kube import CONFIG_MAPS, KubeClient, KubeError, Unavailable, WatchCache

from .helpers import Recorder, config_map, eventually


def names(cache: WatchCache) -> set[str]:
    return {name for _, name in cache.objects}


async def test_lists_then_follows_changes(kube: KubeClient, fake_kube: FakeKubeAPI) -> None:
    fake_kube.put(config_map("a"))
    cache = kube.watch_cache(CONFIG_MAPS, "default")
    recorder = Recorder(cache)
    # Callbacks run after the change is applied: the cache already shows it.
    applied: list[bool] = []
    cache.on_change(
        lambda kind, obj: applied.append(
            (cache.get("default", obj["metadata"]["name"]) is None) == (kind == "DELETED")
        )
    )
    async with cache:
        await cache.wait_synced(5)
        assert names(cache) == {"a"}
        assert recorder.events == [("ADDED", "a")]
        await fake_kube.wait_for_watches(1)
        watch = next(r for r in fake_kube.requests_matching("GET", "/configmaps") if r.is_watch)
        assert watch.query["allowWatchBookmarks"] == "true"
        assert watch.query["resourceVersion"] == cache.resource_version
        assert watch.query["timeoutSeconds"] == "300"

        await kube.create(CONFIG_MAPS, config_map("b"))
        await kube.patch(CONFIG_MAPS, "default", "a", {"data": {"k": "changed"}})
        await kube.delete(CONFIG_MAPS, "default", "b")
        await recorder.wait_for(("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b"))
        assert recorder.events == [
            ("ADDED", "a"),
            ("ADDED", "b"),
            ("MODIFIED", "a"),
            ("DELETED", "b"),
        ]
        assert names(cache) == {"a"}
        a = cache.get("default", "a")
        assert a is not None and a["data"] == {"k": "changed"}
        assert all(applied) and len(applied) == 4
    await fake_kube.wait_for_watches(0)
    assert names(cache) == {"a"}  # stopping keeps the last contents readable


async def test_objects_leaving_the_selector_are_deleted(
    kube: KubeClient, fake_kube: FakeKubeAPI
) -> None:
    fake_kube.put(config_map("web", app="web"))
    async with kube.watch_cache(CONFIG_MAPS, "default", label_selector="app=web") as cache:
        recorder = Recorder(cache)
        await cache.wait_synced(5)
        await fake_kube.wait_for_watches(1)
        await kube.patch(CONFIG_MAPS, "default", "web", {"metadata": {"labels": {"app": "db"}}})
        await recorder.wait_for(("DELETED", "web"))
        assert names(cache) == set()


async def test_expired_watch_relists_and_emits_what_changed_meanwhile(
    kube: KubeClient, fake_kube: FakeKubeAPI
) -> None:
    for name in ("keep", "change", "remove"):
        fake_kube.put(config_map(name))
    async with kube.watch_cache(CONFIG_MAPS, "default") as cache:
        recorder = Recorder(cache)
        await cache.wait_synced(5)
        await fake_kube.wait_for_watches(1)
        assert sorted(recorder.events) == [
            ("ADDED", "change"),
            ("ADDED", "keep"),
            ("ADDED", "remove"),
        ]
        recorder.events.clear()
        lists_before = sum(
            1 for r in fake_kube.requests_matching("GET", "/configmaps") if not r.is_watch
        )

        # Cut the stream, change things while nobody watches, then compact the history:
        # no await in between, so the cache resumes from a resourceVersion that is gone.
        assert fake_kube.close_watches() == 1
        fake_kube.delete("configmaps", "default", "remove")
        fake_kube.patch("configmaps", "default", "change", {"data": {"k": "new"}})
        fake_kube.put(config_map("added"))
        fake_kube.expire_history()

        await recorder.wait_for(("DELETED", "remove"), ("MODIFIED", "change"), ("ADDED", "added"))
        assert sorted(recorder.events) == [
            ("ADDED", "added"),
            ("DELETED", "remove"),
            ("MODIFIED", "change"),
        ]
        assert names(cache) == {"keep", "change", "added"}
        lists_after = sum(
            1 for r in fake_kube.requests_matching("GET", "/configmaps") if not r.is_watch
        )
        assert lists_after == lists_before + 1
        # ...and it watches again from the new list.
        await kube.create(CONFIG_MAPS, config_map("later"))
        await recorder.wait_for(("ADDED", "later"))


async def test_outage_keeps_the_cache_and_resumes_from_the_last_version(
    kube: KubeClient, fake_kube: FakeKubeAPI
) -> None:
    fake_kube.put(config_map("a"))
    async with kube.watch_cache(CONFIG_MAPS, "default") as cache:
        recorder = Recorder(cache)
        await cache.wait_synced(5)
        await fake_kube.wait_for_watches(1)

        await fake_kube.stop()
        await eventually(
            lambda: isinstance(cache.last_error, Unavailable), "the cache notices the API is gone"
        )
        # The data plane keeps serving the last known state.
        assert cache.synced.is_set() and names(cache) == {"a"}
        fake_kube.put(config_map("b"))  # written while the cache cannot see it

        await fake_kube.start()
        await recorder.wait_for(("ADDED", "b"))
        assert names(cache) == {"a", "b"}
        assert cache.last_error is None
        # A resumed watch, not a re-list: the missed write was replayed from the history.
        assert (
            sum(1 for r in fake_kube.requests_matching("GET", "/configmaps") if not r.is_watch) == 1
        )


async def test_api_restart_mid_watch(kube: KubeClient, fake_kube: FakeKubeAPI) -> None:
    fake_kube.put(config_map("a"))
    async with kube.watch_cache(CONFIG_MAPS, "default") as cache:
        recorder = Recorder(cache)
        await cache.wait_synced(5)
        await fake_kube.wait_for_watches(1)
        await fake_kube.restart()
        assert names(cache) == {"a"}
        await fake_kube.wait_for_watches(1)  # reconnected
        await kube.create(CONFIG_MAPS, config_map("after"))
        await recorder.wait_for(("ADDED", "after"))
        assert names(cache) == {"a", "after"}


async def test_dropped_connection_reconnects(kube: KubeClient, fake_kube: FakeKubeAPI) -> None:
    async with kube.watch_cache(CONFIG_MAPS, "default") as cache:
        recorder = Recorder(cache)
        await cache.wait_synced(5)
        await fake_kube.wait_for_watches(1)
        assert fake_kube.close_watches(abrupt=True) == 1
        await kube.create(CONFIG_MAPS, config_map("after-drop"))
        await recorder.wait_for(("ADDED", "after-drop"))


async def test_a_failing_callback_does_not_stop_the_others(
    kube: KubeClient, fake_kube: FakeKubeAPI, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(kind: str, obj: dict[str, Any]) -> None:
        raise RuntimeError("consumer bug")

    async with kube.watch_cache(CONFIG_MAPS, "default") as cache:
        cache.on_change(broken)
        recorder = Recorder(cache)
        await cache.wait_synced(5)
        await kube.create(CONFIG_MAPS, config_map("one"))
        await kube.create(CONFIG_MAPS, config_map("two"))
        await recorder.wait_for(("ADDED", "one"), ("ADDED", "two"))
    assert "change callback" in caplog.text and "consumer bug" in caplog.text


async def test_failed_list_is_retried(kube: KubeClient, fake_kube: FakeKubeAPI) -> None:
    fake_kube.put(config_map("a"))
    fake_kube.fail_next("GET", "/configmaps", 403, count=2)
    async with kube.watch_cache(CONFIG_MAPS, "default") as cache:
        await cache.wait_synced(5)
        assert names(cache) == {"a"}


async def test_wait_synced_names_the_failure(kube: KubeClient, fake_kube: FakeKubeAPI) -> None:
    await fake_kube.stop()
    async with kube.watch_cache(CONFIG_MAPS, "default") as cache:
        with pytest.raises(KubeError, match=r"not synced within 0.5s: list configmaps in default"):
            await cache.wait_synced(0.5)
        assert not cache.synced.is_set()
