"""KubeClient against the fake API server: connecting, CRUD on plain dicts, /scale, and
every API failure arriving as the right KubeError."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.kubeapi.fakeapi import FakeKubeAPI
from zeroserve.kube import (
    CONFIG_MAPS,
    DEPLOYMENTS,
    KSERVICES,
    LEASES,
    PODS,
    REVISIONS,
    AlreadyExists,
    Backoff,
    Conflict,
    Expired,
    Invalid,
    KubeClient,
    KubeError,
    NotFound,
    ResourceRef,
    Unavailable,
    connect,
)

from .helpers import config_map, deployment


@pytest.mark.parametrize(
    ("ref", "namespace", "name", "subresource", "path"),
    [
        (PODS, None, None, None, "/api/v1/pods"),
        (CONFIG_MAPS, "default", None, None, "/api/v1/namespaces/default/configmaps"),
        (DEPLOYMENTS, "ns", "web", "scale", "/apis/apps/v1/namespaces/ns/deployments/web/scale"),
        (REVISIONS, "ns", "r-1", None, "/apis/serving.knative.dev/v1/namespaces/ns/revisions/r-1"),
        (
            ResourceRef("", "v1", "namespaces", namespaced=False),
            None,
            "ns",
            "status",
            "/api/v1/namespaces/ns/status",
        ),
    ],
    ids=["core-all-namespaces", "core-collection", "scale-subresource", "custom", "cluster-scoped"],
)
def test_resource_paths(
    ref: ResourceRef, namespace: str | None, name: str | None, subresource: str | None, path: str
) -> None:
    assert ref.path(namespace, name, subresource) == path


def test_named_namespaced_object_needs_a_namespace() -> None:
    with pytest.raises(ValueError, match="needs a namespace"):
        PODS.path(None, "web")


def test_backoff_doubles_to_the_cap_with_jitter_below_each_step() -> None:
    top = Backoff(initial=0.1, cap=10.0, rng=lambda: 1.0)
    assert [round(top.next(), 3) for _ in range(9)] == [
        0.1,
        0.2,
        0.4,
        0.8,
        1.6,
        3.2,
        6.4,
        10.0,
        10.0,
    ]
    top.reset()
    assert top.next() == pytest.approx(0.1)
    bottom = Backoff(initial=0.1, cap=10.0, rng=lambda: 0.0)
    assert [bottom.next() for _ in range(2)] == pytest.approx([0.05, 0.1])


async def test_connect_reads_kubeconfig_from_the_environment(
    kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    async with await connect() as client:
        namespace = await client.get(
            ResourceRef("", "v1", "namespaces", namespaced=False), None, "default"
        )
    assert namespace["metadata"]["name"] == "default"


async def test_connect_without_any_configuration_says_what_it_tried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(KubeError, match="set KUBECONFIG, or run in a pod"):
        await connect()


async def test_connect_names_a_missing_kubeconfig(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(KubeError, match="no such file") as info:
        await connect(str(missing))
    assert str(missing) in str(info.value)


async def test_connect_translates_an_unknown_context(kubeconfig: Path) -> None:
    with pytest.raises(KubeError, match="kubeconfig") as info:
        await connect(str(kubeconfig), context="no-such-context")
    assert type(info.value) is KubeError


async def test_config_map_round_trip(kube: KubeClient, fake_kube: FakeKubeAPI) -> None:
    created = await kube.create(CONFIG_MAPS, config_map("settings", app="web"))
    await kube.create(CONFIG_MAPS, config_map("other", app="db"))
    assert created["metadata"]["uid"]

    fetched = await kube.get(CONFIG_MAPS, "default", "settings")
    assert fetched["data"] == {"k": "settings"}

    listing = await kube.list(CONFIG_MAPS, "default", label_selector="app=web")
    assert [i["metadata"]["name"] for i in listing.items] == ["settings"]
    # List items come back with apiVersion/kind, like watch events, so consumers need not care.
    assert (listing.items[0]["apiVersion"], listing.items[0]["kind"]) == ("v1", "ConfigMap")
    assert int(listing.resource_version) == fake_kube.resource_version
    by_field = await kube.list(CONFIG_MAPS, "default", field_selector="metadata.name=other")
    assert [i["metadata"]["name"] for i in by_field.items] == ["other"]

    fetched["data"] = {"k": "v2"}
    replaced = await kube.replace(CONFIG_MAPS, fetched)
    assert replaced["data"] == {"k": "v2"}
    # The read we started from is stale now: optimistic concurrency refuses it.
    fetched["data"] = {"k": "v3"}
    with pytest.raises(Conflict, match="configmaps default/settings: Conflict"):
        await kube.replace(CONFIG_MAPS, fetched)

    patched = await kube.patch(
        CONFIG_MAPS, "default", "settings", {"data": {"k": None, "extra": "1"}}
    )
    assert patched["data"] == {"extra": "1"}

    await kube.delete(CONFIG_MAPS, "default", "settings")
    assert fake_kube.requests_matching("DELETE", "/configmaps/settings")[-1].query == {
        "propagationPolicy": "Background"
    }
    with pytest.raises(NotFound, match='configmaps "settings" not found'):
        await kube.get(CONFIG_MAPS, "default", "settings")


async def test_list_follows_continue_tokens(kube: KubeClient, fake_kube: FakeKubeAPI) -> None:
    for i in range(5):
        fake_kube.put(config_map(f"cm-{i}"))
    listing = await kube.list(CONFIG_MAPS, "default", page_size=2)
    assert sorted(i["metadata"]["name"] for i in listing.items) == [f"cm-{i}" for i in range(5)]
    pages = fake_kube.requests_matching("GET", "/namespaces/default/configmaps")
    assert len(pages) == 3 and all(p.query["limit"] == "2" for p in pages)


async def test_custom_resources_take_merge_patches_and_status(
    kube: KubeClient, fake_kube: FakeKubeAPI
) -> None:
    ksvc = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": "hello", "namespace": "default"},
        "spec": {"template": {"spec": {"containers": [{"image": "img:1"}]}}},
    }
    await kube.create(KSERVICES, ksvc)
    # A typed client would send a strategic merge patch, which custom resources refuse.
    await kube.patch(KSERVICES, "default", "hello", {"metadata": {"labels": {"team": "a"}}})
    await kube.patch_status(KSERVICES, "default", "hello", {"status": {"url": "http://hello"}})
    stored = fake_kube.get("ksvc", "default", "hello")
    assert stored is not None
    assert stored["metadata"]["labels"] == {"team": "a"}
    assert stored["status"] == {"url": "http://hello"}
    everywhere = await kube.list(KSERVICES)
    assert [(i["kind"], i["metadata"]["name"]) for i in everywhere.items] == [("Service", "hello")]


async def test_creating_an_existing_object_is_already_exists(kube: KubeClient) -> None:
    await kube.create(CONFIG_MAPS, config_map("once"))
    with pytest.raises(AlreadyExists, match="create configmaps default/once: AlreadyExists"):
        await kube.create(CONFIG_MAPS, config_map("once"))


async def test_leases_replace_with_optimistic_concurrency(kube: KubeClient) -> None:
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "autoscaler", "namespace": "default"},
        "spec": {"holderIdentity": "a", "renewTime": "2024-01-01T00:00:00.000000Z"},
    }
    await kube.create(LEASES, lease)
    current = await kube.get(LEASES, "default", "autoscaler")
    current["spec"]["holderIdentity"] = "b"
    assert (await kube.replace(LEASES, current))["spec"]["holderIdentity"] == "b"


@pytest.mark.parametrize(
    ("status", "reason", "error"),
    [
        (404, None, NotFound),
        (409, None, Conflict),
        (409, "AlreadyExists", AlreadyExists),
        (410, None, Expired),
        (400, None, Invalid),
        (422, None, Invalid),
        (429, None, Unavailable),
        (500, None, Unavailable),
        (503, None, Unavailable),
        (403, None, KubeError),
    ],
    ids=lambda v: str(v) if not isinstance(v, type) else v.__name__,
)
async def test_api_failures_become_named_errors(
    kube: KubeClient,
    fake_kube: FakeKubeAPI,
    status: int,
    reason: str | None,
    error: type[KubeError],
) -> None:
    fake_kube.put(config_map("target"))
    fake_kube.fail_next("GET", "/configmaps/target", status, reason=reason)
    with pytest.raises(KubeError) as info:
        await kube.get(CONFIG_MAPS, "default", "target")
    assert type(info.value) is error
    assert info.value.status == status
    # The message names the call, the object and the API's reason.
    assert str(info.value).startswith(f"get configmaps default/target: {info.value.reason}: ")


async def test_retry_after_is_kept(kube: KubeClient, fake_kube: FakeKubeAPI) -> None:
    fake_kube.fail_next("GET", "/configmaps", 429, retry_after=3)
    with pytest.raises(Unavailable) as info:
        await kube.list(CONFIG_MAPS, "default")
    assert info.value.retry_after == 3.0


async def test_stopped_api_is_unavailable(kube: KubeClient, fake_kube: FakeKubeAPI) -> None:
    await kube.list(CONFIG_MAPS, "default")  # leaves a pooled connection behind
    await fake_kube.stop()
    with pytest.raises(Unavailable, match="get configmaps default/x") as info:
        await kube.get(CONFIG_MAPS, "default", "x")
    # Refused at once, not timed out: nothing listens on the port any more.
    assert info.value.status is None and info.value.reason == "ConnectionError"


async def test_an_api_that_does_not_answer_times_out_as_unavailable(
    kubeconfig: Path, fake_kube: FakeKubeAPI
) -> None:
    fake_kube.put(config_map("slow"))
    fake_kube.delay_next("GET", "/configmaps/slow", 3.0)
    async with await connect(str(kubeconfig), request_timeout=0.2) as client:
        with pytest.raises(Unavailable, match=r"no answer from the API within 0\.2s") as info:
            await client.get(CONFIG_MAPS, "default", "slow")
    assert info.value.reason == "Timeout"


async def test_scale_subresource(kube: KubeClient, fake_kube: FakeKubeAPI) -> None:
    fake_kube.put(deployment("hello-00001", replicas=1))
    assert await kube.get_scale("default", "hello-00001-deployment") == 1
    await kube.set_scale("default", "hello-00001-deployment", 4)
    stored = fake_kube.get("deployments", "default", "hello-00001-deployment")
    assert stored is not None and stored["spec"]["replicas"] == 4
    request = fake_kube.requests_matching("PATCH", "/scale")[-1]
    assert request.content_type == "application/merge-patch+json"
    assert request.body == {"spec": {"replicas": 4}}
    with pytest.raises(NotFound, match=r"scale deployments\.apps default/missing to 2: NotFound"):
        await kube.set_scale("default", "missing", 2)
