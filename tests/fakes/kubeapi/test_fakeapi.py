"""The fake API server as kubernetes_asyncio sees it, through a kubeconfig it wrote.

Every test here goes over a real socket on 127.0.0.1 with the unmodified client library,
so what passes here is what the project's components will get from the fake.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.dynamic import DynamicClient

from .fakeapi import FakeKubeAPI

# The generated stubs omit the ``_content_type`` keyword the API methods accept, hence Any.
AS_MERGE_PATCH: Any = {"_content_type": "application/merge-patch+json"}
KSVC = ("serving.knative.dev", "v1", "default", "services")


def status_body(exc: ApiException) -> dict[str, Any]:
    assert exc.body is not None
    body: dict[str, Any] = json.loads(exc.body)
    return body


def deployment(
    name: str, replicas: int = 1, labels: dict[str, str] | None = None
) -> client.V1Deployment:
    selector = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels or selector),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=selector),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=selector),
                spec=client.V1PodSpec(containers=[client.V1Container(name="app", image="img:1")]),
            ),
        ),
    )


def config_map(name: str, labels: dict[str, str] | None = None, **meta: Any) -> client.V1ConfigMap:
    return client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=name, labels=labels, **meta), data={"k": name}
    )


def endpoint_slice(name: str, service: str, ips: list[str]) -> client.V1EndpointSlice:
    return client.V1EndpointSlice(
        metadata=client.V1ObjectMeta(name=name, labels={"kubernetes.io/service-name": service}),
        address_type="IPv4",
        endpoints=[
            client.V1Endpoint(addresses=[ip], conditions=client.V1EndpointConditions(ready=True))
            for ip in ips
        ],
        ports=[client.DiscoveryV1EndpointPort(name="http", port=8012, protocol="TCP")],
    )


def ksvc(name: str, image: str = "img:1") -> dict[str, Any]:
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"template": {"spec": {"containers": [{"image": image}]}}},
        "status": {"observedGeneration": 99},
    }


def owner_ref(owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


# ----- Deployments -----------------------------------------------------------------------


async def test_deployment_create_get_list_update(
    fake_kube: FakeKubeAPI, k8s_client: client.ApiClient
) -> None:
    apps = client.AppsV1Api(k8s_client)
    created = await apps.create_namespaced_deployment("default", deployment("web", replicas=2))
    meta = created.metadata
    assert meta.uid and meta.creation_timestamp is not None
    assert meta.generation == 1
    assert int(meta.resource_version) == fake_kube.resource_version
    assert created.status is not None  # the strategy resets status to {} on create

    got = await apps.read_namespaced_deployment("web", "default")
    assert got.spec.replicas == 2
    assert got.metadata.resource_version == meta.resource_version

    await apps.create_namespaced_deployment("default", deployment("api"))
    listing = await apps.list_namespaced_deployment("default")
    assert [d.metadata.name for d in listing.items] == ["api", "web"]
    assert int(listing.metadata.resource_version) == fake_kube.resource_version

    got.spec.template.spec.containers[0].image = "img:2"
    got.status = client.V1DeploymentStatus(ready_replicas=7)  # ignored: status subresource
    updated = await apps.replace_namespaced_deployment("web", "default", got)
    assert updated.metadata.generation == 2
    assert int(updated.metadata.resource_version) > int(meta.resource_version)
    assert updated.status.ready_replicas is None
    assert updated.spec.template.spec.containers[0].image == "img:2"

    # A write that changes nothing keeps the resourceVersion, as etcd never sees it.
    again = await apps.replace_namespaced_deployment("web", "default", updated)
    assert again.metadata.resource_version == updated.metadata.resource_version

    # Labels are metadata: no generation bump.
    relabelled = await apps.patch_namespaced_deployment(
        "web", "default", {"metadata": {"labels": {"app": "web", "tier": "front"}}}
    )
    assert relabelled.metadata.generation == 2


async def test_deployment_status_subresource(
    fake_kube: FakeKubeAPI, k8s_client: client.ApiClient
) -> None:
    apps = client.AppsV1Api(k8s_client)
    await apps.create_namespaced_deployment("default", deployment("web", replicas=3))
    current = await apps.read_namespaced_deployment_status("web", "default")
    current.status = client.V1DeploymentStatus(replicas=3, ready_replicas=2, observed_generation=1)
    current.spec.replicas = 10  # ignored: /status only writes status
    written = await apps.replace_namespaced_deployment_status("web", "default", current)
    assert written.status.ready_replicas == 2
    assert written.spec.replicas == 3
    assert written.metadata.generation == 1

    patched = await apps.patch_namespaced_deployment_status(
        "web", "default", {"status": {"readyReplicas": 3}}
    )
    assert patched.status.ready_replicas == 3 and patched.status.replicas == 3


async def test_scale_subresource_read_and_patch(
    fake_kube: FakeKubeAPI, k8s_client: client.ApiClient
) -> None:
    apps = client.AppsV1Api(k8s_client)
    await apps.create_namespaced_deployment("default", deployment("web", replicas=1))
    fake_kube.patch("deployments", "default", "web", {"status": {"replicas": 1}})

    scale = await apps.read_namespaced_deployment_scale("web", "default")
    assert scale.kind == "Scale" and scale.api_version == "autoscaling/v1"
    assert scale.spec.replicas == 1
    assert scale.status.replicas == 1
    assert scale.status.selector == "app=web"

    patched = await apps.patch_namespaced_deployment_scale(
        "web", "default", {"spec": {"replicas": 3}}, **AS_MERGE_PATCH
    )
    assert patched.spec.replicas == 3
    scale_patch = fake_kube.requests_matching("PATCH", "/deployments/web/scale")[-1]
    assert scale_patch.content_type == "application/merge-patch+json"
    assert scale_patch.body == {"spec": {"replicas": 3}}

    dep = await apps.read_namespaced_deployment("web", "default")
    assert dep.spec.replicas == 3
    assert dep.metadata.generation == 2
    assert (await apps.read_namespaced_deployment_scale("web", "default")).spec.replicas == 3

    # The client's default for a dict body is a strategic merge patch; a list is a JSON patch.
    await apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 0}})
    assert fake_kube.requests_matching("PATCH", "/scale")[-1].content_type == (
        "application/strategic-merge-patch+json"
    )
    assert fake_kube.get("deployments", "default", "web")["spec"]["replicas"] == 0  # type: ignore[index]
    await apps.patch_namespaced_deployment_scale(
        "web", "default", [{"op": "replace", "path": "/spec/replicas", "value": 5}]
    )
    assert (await apps.read_namespaced_deployment("web", "default")).spec.replicas == 5

    # PUT of a Scale read earlier is refused once the Deployment moved on.
    with pytest.raises(ApiException) as info:
        await apps.replace_namespaced_deployment_scale("web", "default", scale)
    assert info.value.status == 409
    fresh = await apps.read_namespaced_deployment_scale("web", "default")
    fresh.spec.replicas = 4
    assert (
        await apps.replace_namespaced_deployment_scale("web", "default", fresh)
    ).spec.replicas == 4

    with pytest.raises(ApiException) as info:
        await apps.patch_namespaced_deployment_scale(
            "web", "default", {"spec": {"replicas": -1}}, **AS_MERGE_PATCH
        )
    assert info.value.status == 422 and status_body(info.value)["reason"] == "Invalid"


async def test_stale_update_is_a_409_conflict(
    fake_kube: FakeKubeAPI, k8s_client: client.ApiClient
) -> None:
    apps = client.AppsV1Api(k8s_client)
    await apps.create_namespaced_deployment("default", deployment("web"))
    first = await apps.read_namespaced_deployment("web", "default")
    second = await apps.read_namespaced_deployment("web", "default")
    first.spec.replicas = 2
    await apps.replace_namespaced_deployment("web", "default", first)
    second.spec.replicas = 5
    with pytest.raises(ApiException) as info:
        await apps.replace_namespaced_deployment("web", "default", second)
    assert info.value.status == 409
    body = status_body(info.value)
    assert body["kind"] == "Status" and body["apiVersion"] == "v1"
    assert body["status"] == "Failure" and body["reason"] == "Conflict" and body["code"] == 409
    assert body["details"] == {"name": "web", "group": "apps", "kind": "deployments"}
    assert "the object has been modified" in body["message"]
    # A resourceVersion inside a patch is a precondition too.
    with pytest.raises(ApiException) as info:
        await apps.patch_namespaced_deployment(
            "web", "default", {"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 9}}
        )
    assert info.value.status == 409
    assert fake_kube.get("deployments", "default", "web")["spec"]["replicas"] == 2  # type: ignore[index]

    with pytest.raises(ApiException) as info:
        await apps.create_namespaced_deployment("default", deployment("web"))
    assert info.value.status == 409 and status_body(info.value)["reason"] == "AlreadyExists"


async def test_missing_objects_and_routes_are_404(
    fake_kube: FakeKubeAPI, k8s_client: client.ApiClient
) -> None:
    apps = client.AppsV1Api(k8s_client)
    with pytest.raises(ApiException) as info:
        await apps.read_namespaced_deployment("nope", "default")
    assert info.value.status == 404
    body = status_body(info.value)
    assert body["reason"] == "NotFound"
    assert body["message"] == 'deployments.apps "nope" not found'
    assert body["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}

    core = client.CoreV1Api(k8s_client)
    with pytest.raises(ApiException) as info:
        await core.read_namespaced_config_map("nope", "default")
    assert status_body(info.value)["message"] == 'configmaps "nope" not found'
    # Creating into a namespace that does not exist is refused, as NamespaceLifecycle does.
    with pytest.raises(ApiException) as info:
        await core.create_namespaced_config_map("ghost", config_map("c"))
    assert info.value.status == 404
    assert status_body(info.value)["message"] == 'namespaces "ghost" not found'
    with pytest.raises(ApiException) as info:
        await client.CustomObjectsApi(k8s_client).list_namespaced_custom_object(
            "example.com", "v1", "default", "widgets"
        )
    assert info.value.status == 404


async def test_invalid_objects_are_422(
    fake_kube: FakeKubeAPI, k8s_client: client.ApiClient
) -> None:
    apps = client.AppsV1Api(k8s_client)
    broken = deployment("web")
    broken.spec.template.metadata.labels = {"app": "other"}
    with pytest.raises(ApiException) as info:
        await apps.create_namespaced_deployment("default", broken)
    body = status_body(info.value)
    assert info.value.status == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "spec.template.metadata.labels"

    with pytest.raises(ApiException) as info:
        await apps.create_namespaced_deployment("default", deployment("Not_A_Name"))
    assert status_body(info.value)["details"]["causes"][0]["field"] == "metadata.name"

    core = client.CoreV1Api(k8s_client)
    generated = await core.create_namespaced_config_map(
        "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(generate_name="cm-"))
    )
    assert generated.metadata.name.startswith("cm-") and len(generated.metadata.name) == 8


async def test_label_and_field_selectors(
    fake_kube: FakeKubeAPI, k8s_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(k8s_client)
    labels = {
        "a": {"app": "web", "tier": "front"},
        "b": {"app": "web", "tier": "back"},
        "c": {"app": "db"},
        "d": None,
    }
    for name, lab in labels.items():
        await core.create_namespaced_config_map("default", config_map(name, lab))

    async def names(**kwargs: Any) -> list[str]:
        listing = await core.list_namespaced_config_map("default", **kwargs)
        return [cm.metadata.name for cm in listing.items]

    assert await names(label_selector="app=web") == ["a", "b"]
    assert await names(label_selector="app==web,tier=back") == ["b"]
    assert await names(label_selector="app!=web") == ["c", "d"]  # also matches "no label"
    assert await names(label_selector="tier in (front, back)") == ["a", "b"]
    assert await names(label_selector="tier notin (front)") == ["b", "c", "d"]
    assert await names(label_selector="tier") == ["a", "b"]
    assert await names(label_selector="!tier") == ["c", "d"]
    assert await names(label_selector="app in (web,db),!tier") == ["c"]
    assert await names(field_selector="metadata.name=c") == ["c"]
    assert await names(field_selector="metadata.name!=c,metadata.namespace=default") == [
        "a",
        "b",
        "d",
    ]

    with pytest.raises(ApiException) as info:
        await names(label_selector="app in (web")
    assert info.value.status == 400
    with pytest.raises(ApiException) as info:
        await names(field_selector="data.k=a")
    assert status_body(info.value)["message"] == "field label not supported: data.k"


async def test_list_pagination_and_all_namespaces(
    fake_kube: FakeKubeAPI, k8s_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(k8s_client)
    await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="team")))
    for name in ("c1", "c2", "c3", "c4", "c5"):
        await core.create_namespaced_config_map("default", config_map(name))
    names: list[str] = []
    query: dict[str, Any] = {"limit": 2}
    pages = 0
    while True:
        page = await core.list_namespaced_config_map("default", **query)
        pages += 1
        names += [cm.metadata.name for cm in page.items]
        if not page.metadata._continue:
            break
        assert page.metadata.remaining_item_count == 5 - len(names)
        query["_continue"] = page.metadata._continue
    assert names == ["c1", "c2", "c3", "c4", "c5"] and pages == 3

    apps = client.AppsV1Api(k8s_client)
    await apps.create_namespaced_deployment("default", deployment("web"))
    await apps.create_namespaced_deployment("team", deployment("web"))
    everywhere = await apps.list_deployment_for_all_namespaces()
    assert [(d.metadata.namespace, d.metadata.name) for d in everywhere.items] == [
        ("default", "web"),
        ("team", "web"),
    ]
    only_team = await apps.list_deployment_for_all_namespaces(
        field_selector="metadata.namespace=team"
    )
    assert [d.metadata.namespace for d in only_team.items] == ["team"]


# ----- watches ---------------------------------------------------------------------------


async def test_endpointslice_list_then_watch(
    fake_kube: FakeKubeAPI, k8s_client: client.ApiClient
) -> None:
    discovery = client.DiscoveryV1Api(k8s_client)
    await discovery.create_namespaced_endpoint_slice(
        "default", endpoint_slice("hello-a", "hello", ["10.0.0.1"])
    )
    await discovery.create_namespaced_endpoint_slice(
        "default", endpoint_slice("other-a", "other", ["10.0.9.9"])
    )
    listing = await discovery.list_namespaced_endpoint_slice(
        "default", label_selector="kubernetes.io/service-name=hello"
    )
    assert [s.metadata.name for s in listing.items] == ["hello-a"]

    events: list[tuple[str, str, list[str]]] = []

    async def consume() -> None:
        async with watch.Watch() as stream:
            async for event in stream.stream(
                discovery.list_namespaced_endpoint_slice,
                "default",
                label_selector="kubernetes.io/service-name=hello",
                resource_version=listing.metadata.resource_version,
                timeout_seconds=10,
            ):
                obj = event["object"]
                assert isinstance(obj, client.V1EndpointSlice)  # typed by the Watch
                ips = [ip for ep in obj.endpoints or [] for ip in ep.addresses]
                events.append((event["type"], obj.metadata.name, ips))
                if event["type"] == "DELETED":
                    return

    task = asyncio.create_task(consume())
    await fake_kube.wait_for_watches(1)
    await discovery.create_namespaced_endpoint_slice(
        "default", endpoint_slice("hello-b", "hello", ["10.0.0.2"])
    )
    await discovery.patch_namespaced_endpoint_slice(
        "hello-a",
        "default",
        {"endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.3"]}]},
    )
    await discovery.create_namespaced_endpoint_slice(
        "default", endpoint_slice("other-b", "other", ["10.0.9.8"])
    )
    await discovery.delete_namespaced_endpoint_slice("hello-b", "default")
    await asyncio.wait_for(task, 5)
    assert events == [
        ("ADDED", "hello-b", ["10.0.0.2"]),
        ("MODIFIED", "hello-a", ["10.0.0.1", "10.0.0.3"]),
        ("DELETED", "hello-b", ["10.0.0.2"]),
    ]


async def test_watch_without_resource_version_starts_with_current_state(
    fake_kube: FakeKubeAPI, k8s_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(k8s_client)
    await core.create_namespaced_config_map("default", config_map("old", {"keep": "yes"}))
    seen: list[tuple[str, str]] = []
    async with watch.Watch() as stream:
        async for event in stream.stream(
            core.list_namespaced_config_map,
            "default",
            label_selector="keep=yes",
            timeout_seconds=10,
        ):
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == 1:
                await core.patch_namespaced_config_map(
                    "old", "default", {"metadata": {"labels": {"keep": "no"}}}
                )
            else:
                break
    # Leaving the selected set is reported as DELETED to a filtered watch.
    assert seen == [("ADDED", "old"), ("DELETED", "old")]


async def test_watch_ends_cleanly_when_timeout_seconds_elapse(
    fake_kube: FakeKubeAPI, k8s_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(k8s_client)
    await core.create_namespaced_config_map("default", config_map("a"))
    started = time.monotonic()
    seen: list[str] = []
    async with watch.Watch() as stream:
        async for event in stream.stream(
            core.list_namespaced_config_map, "default", timeout_seconds=1
        ):
            seen.append(event["object"].metadata.name)
    assert seen == ["a"]
    assert time.monotonic() - started >= 0.9  # ended by the server's timeout, not earlier
    await fake_kube.wait_for_watches(0)


async def test_watch_from_expired_resource_version_gets_410(
    fake_kube: FakeKubeAPI, k8s_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(k8s_client)
    await core.create_namespaced_config_map("default", config_map("a"))
    old_rv = (await core.list_namespaced_config_map("default")).metadata.resource_version
    await core.create_namespaced_config_map("default", config_map("b"))
    fake_kube.expire_history()

    def watch_requests() -> list[str]:
        return [
            r.query["resourceVersion"]
            for r in fake_kube.requests_matching("GET", "/configmaps")
            if r.is_watch
        ]

    # With timeout_seconds the Watch turns the ERROR event into an ApiException at once.
    with pytest.raises(ApiException) as info:
        async with watch.Watch() as stream:
            async for _ in stream.stream(
                core.list_namespaced_config_map,
                "default",
                resource_version=old_rv,
                timeout_seconds=5,
            ):
                pytest.fail("no event may precede the 410")
    assert info.value.status == 410
    assert info.value.reason is not None and info.value.reason.startswith(
        "Expired: too old resource version"
    )
    assert watch_requests() == [old_rv]

    # Watching "forever" (no timeout_seconds), it re-watches once from the same resourceVersion
    # and then raises the same 410: the caller must re-list.
    with pytest.raises(ApiException) as info:
        async with watch.Watch() as stream:
            async for _ in stream.stream(
                core.list_namespaced_config_map, "default", resource_version=old_rv
            ):
                pytest.fail("no event may precede the 410")
    assert info.value.status == 410
    assert watch_requests() == [old_rv, old_rv, old_rv]

    # The wire format is the apiserver's: HTTP 200 and one ERROR event holding a Status.
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{fake_kube.url}/api/v1/namespaces/default/configmaps",
            params={"watch": "true", "resourceVersion": old_rv},
        ) as resp,
    ):
        assert resp.status == 200
        lines = (await resp.read()).decode().splitlines()
    event = json.loads(lines[0])
    assert len(lines) == 1 and event["type"] == "ERROR"
    assert event["object"]["kind"] == "Status" and event["object"]["code"] == 410
    assert event["object"]["reason"] == "Expired"


async def test_restart_cuts_watches_and_resuming_from_last_rv_loses_nothing(
    fake_kube: FakeKubeAPI, k8s_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(k8s_client)
    port = fake_kube.port
    await core.create_namespaced_config_map("default", config_map("before"))
    seen: list[str] = []
    last_rv = ""
    async with watch.Watch() as stream:
        async for event in stream.stream(
            core.list_namespaced_config_map, "default", timeout_seconds=60
        ):
            seen.append(event["object"].metadata.name)
            last_rv = str(stream.resource_version)
            await fake_kube.restart()  # the loop then ends: the server cut the stream
    assert seen == ["before"]
    assert fake_kube.port == port and fake_kube.active_watches == 0

    # Objects and the resourceVersion counter survived; the pooled client reconnects.
    assert (await core.read_namespaced_config_map("before", "default")).data == {"k": "before"}
    first = await core.create_namespaced_config_map("default", config_map("after-1"))
    assert int(first.metadata.resource_version) > int(last_rv)
    await core.create_namespaced_config_map("default", config_map("after-2"))
    await core.delete_namespaced_config_map("before", "default")

    resumed: list[tuple[str, str]] = []
    async with watch.Watch() as stream:
        async for event in stream.stream(
            core.list_namespaced_config_map, "default", resource_version=last_rv, timeout_seconds=10
        ):
            resumed.append((event["type"], event["object"].metadata.name))
            if len(resumed) == 3:
                break
    assert resumed == [("ADDED", "after-1"), ("ADDED", "after-2"), ("DELETED", "before")]


async def test_watch_forever_reconnects_itself_when_the_stream_is_closed(
    fake_kube: FakeKubeAPI, k8s_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(k8s_client)
    seen: list[str] = []
    first_seen = asyncio.Event()

    async def consume() -> None:
        async with watch.Watch() as stream:
            async for event in stream.stream(core.list_namespaced_config_map, "default"):
                seen.append(event["object"].metadata.name)
                first_seen.set()
                if len(seen) == 3:
                    return

    task = asyncio.create_task(consume())
    await fake_kube.wait_for_watches(1)
    await core.create_namespaced_config_map("default", config_map("one"))
    await asyncio.wait_for(first_seen.wait(), 5)
    assert seen == ["one"]
    # The stream ends cleanly (as on an apiserver's watch timeout); writes land before the
    # client is back, and its automatic re-watch from the last resourceVersion replays them.
    assert fake_kube.close_watches() == 1
    await core.create_namespaced_config_map("default", config_map("two"))
    await core.create_namespaced_config_map("default", config_map("three"))
    await asyncio.wait_for(task, 5)
    assert seen == ["one", "two", "three"]
    rewatch = [r for r in fake_kube.requests_matching("GET", "/configmaps") if r.is_watch][-1]
    assert (
        rewatch.query["resourceVersion"]
        == fake_kube.get("configmaps", "default", "one")[  # type: ignore[index]
            "metadata"
        ]["resourceVersion"]
    )


async def test_abruptly_dropped_watch_surfaces_as_a_client_error(
    fake_kube: FakeKubeAPI, k8s_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(k8s_client)
    await core.create_namespaced_config_map("default", config_map("one"))
    with pytest.raises(aiohttp.ClientPayloadError):
        async with watch.Watch() as stream:
            async for _ in stream.stream(
                core.list_namespaced_config_map, "default", timeout_seconds=30
            ):
                fake_kube.close_watches(abrupt=True)
    await fake_kube.wait_for_watches(0)


async def test_bookmarks(fake_kube: FakeKubeAPI, k8s_client: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s_client)
    await core.create_namespaced_config_map("default", config_map("a"))
    rv = (await core.list_namespaced_config_map("default")).metadata.resource_version
    await core.create_namespaced_config_map("kube-system", config_map("elsewhere"))
    async with watch.Watch() as stream:
        async for event in stream.stream(
            core.list_namespaced_config_map,
            "default",
            resource_version=rv,
            allow_watch_bookmarks=True,
            timeout_seconds=10,
        ):
            assert event["type"] == "BOOKMARK"
            # The bookmark moves the resume point past the unrelated write.
            assert event["raw_object"]["metadata"]["resourceVersion"] == str(
                fake_kube.resource_version
            )
            assert stream.resource_version == str(fake_kube.resource_version)
            break


async def test_send_initial_events_ends_with_a_marked_bookmark(fake_kube: FakeKubeAPI) -> None:
    fake_kube.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
    fake_kube.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "y"}})
    params = {
        "watch": "1",
        "sendInitialEvents": "true",
        "resourceVersionMatch": "NotOlderThan",
        "allowWatchBookmarks": "true",
    }
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{fake_kube.url}/api/v1/namespaces/default/configmaps", params=params) as resp,
    ):
        events = [json.loads(await resp.content.readline()) for _ in range(3)]
    assert [e["type"] for e in events[:3]] == ["ADDED", "ADDED", "BOOKMARK"]
    assert events[2]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


# ----- custom resources ------------------------------------------------------------------


async def test_knative_service_custom_object_and_status(
    fake_kube: FakeKubeAPI, k8s_client: client.ApiClient
) -> None:
    custom = client.CustomObjectsApi(k8s_client)
    created = await custom.create_namespaced_custom_object(*KSVC, ksvc("hello"))
    assert created["metadata"]["generation"] == 1
    assert "status" not in created  # create cannot set status when /status is enabled

    status = await custom.patch_namespaced_custom_object_status(
        *KSVC,
        "hello",
        {"status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]}},
        **AS_MERGE_PATCH,
    )
    assert status["status"]["conditions"][0]["type"] == "Ready"
    assert status["metadata"]["generation"] == 1

    spec_change = await custom.patch_namespaced_custom_object(
        *KSVC,
        "hello",
        {
            "spec": {"template": {"spec": {"containers": [{"image": "img:2"}]}}},
            "status": {"observedGeneration": 42},
        },
        **AS_MERGE_PATCH,
    )
    assert spec_change["metadata"]["generation"] == 2
    assert spec_change["status"]["observedGeneration"] == 1  # main resource ignores status

    # The client's default content type for custom objects is JSON patch, which a dict body
    # is not: the API server refuses it (so must the fake), while a real JSON patch works.
    with pytest.raises(ApiException) as info:
        await custom.patch_namespaced_custom_object(*KSVC, "hello", {"spec": {}})
    assert info.value.status == 400
    replaced = await custom.patch_namespaced_custom_object(
        *KSVC,
        "hello",
        [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "img:3"}],
    )
    assert replaced["spec"]["template"]["spec"]["containers"][0]["image"] == "img:3"
    with pytest.raises(ApiException) as info:
        await custom.patch_namespaced_custom_object(
            *KSVC, "hello", [{"op": "test", "path": "/spec/template", "value": None}]
        )
    assert info.value.status == 422

    # Custom resources demand a resourceVersion on PUT.
    body = dict(replaced)
    del body["metadata"]["resourceVersion"]
    with pytest.raises(ApiException) as info:
        await custom.replace_namespaced_custom_object(*KSVC, "hello", body)
    assert info.value.status == 422

    listed = await custom.list_namespaced_custom_object(*KSVC)
    assert listed["kind"] == "ServiceList"
    assert [item["kind"] for item in listed["items"]] == ["Service"]  # unstructured lists keep kind
    assert fake_kube.get("ksvc", "default", "hello")["status"]["observedGeneration"] == 1  # type: ignore[index]
    assert fake_kube.get("services", "default", "hello") is None  # plain "services" is core/v1


async def test_crd_created_through_apiextensions_is_served(
    fake_kube: FakeKubeAPI, k8s_client: client.ApiClient, tmp_path: Path
) -> None:
    schema = client.V1CustomResourceValidation(
        open_apiv3_schema=client.V1JSONSchemaProps(
            type="object", x_kubernetes_preserve_unknown_fields=True
        )
    )
    crd = client.V1CustomResourceDefinition(
        metadata=client.V1ObjectMeta(name="widgets.example.com"),
        spec=client.V1CustomResourceDefinitionSpec(
            group="example.com",
            scope="Namespaced",
            names=client.V1CustomResourceDefinitionNames(
                kind="Widget", plural="widgets", singular="widget", short_names=["wg"]
            ),
            versions=[
                client.V1CustomResourceDefinitionVersion(
                    name="v1",
                    served=True,
                    storage=True,
                    schema=schema,
                    subresources=client.V1CustomResourceSubresources(status={}),
                ),
                client.V1CustomResourceDefinitionVersion(
                    name="v1alpha1",
                    served=True,
                    storage=False,
                    schema=schema,
                ),
            ],
        ),
    )
    extensions = client.ApiextensionsV1Api(k8s_client)
    created = await extensions.create_custom_resource_definition(crd)
    assert {c.type: c.status for c in created.status.conditions} == {
        "NamesAccepted": "True",
        "Established": "True",
    }

    resources = await client.CustomObjectsApi(k8s_client).get_api_resources("example.com", "v1")
    assert {r.name for r in resources.resources} == {"widgets", "widgets/status"}

    custom = client.CustomObjectsApi(k8s_client)
    widget = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w1"},
        "spec": {"size": 3},
    }
    await custom.create_namespaced_custom_object("example.com", "v1", "default", "widgets", widget)
    as_alpha = await custom.get_namespaced_custom_object(
        "example.com", "v1alpha1", "default", "widgets", "w1"
    )
    assert as_alpha["apiVersion"] == "example.com/v1alpha1" and as_alpha["spec"] == {"size": 3}

    # The dynamic client discovers the new kind like any other.
    dynamic = await DynamicClient(k8s_client, cache_file=str(tmp_path / "discovery.json"))
    widgets = await dynamic.resources.get(api_version="example.com/v1", kind="Widget")
    assert widgets.namespaced and "status" in widgets.subresources
    got = await dynamic.get(widgets, name="w1", namespace="default")
    assert got.spec.size == 3
    # The dynamic client defaults to strategic merge patch, which CRs do not support. Note
    # that kubernetes_asyncio's DynamicClient does not raise on HTTP errors: it hands back
    # the Status object.
    refused = await dynamic.patch(
        widgets, body={"metadata": {"name": "w1"}, "spec": {"size": 4}}, namespace="default"
    )
    assert (refused.kind, refused.code, refused.reason) == ("Status", 415, "UnsupportedMediaType")
    await dynamic.patch(
        widgets,
        body={"metadata": {"name": "w1"}, "spec": {"size": 4}},
        namespace="default",
        content_type="application/merge-patch+json",
    )
    assert fake_kube.get("wg", "default", "w1")["spec"] == {"size": 4}  # type: ignore[index]

    await extensions.delete_custom_resource_definition("widgets.example.com")
    assert fake_kube.get("customresourcedefinitions", None, "widgets.example.com") is None
    with pytest.raises(ApiException) as info:
        await custom.get_namespaced_custom_object("example.com", "v1", "default", "widgets", "w1")
    assert info.value.status == 404
    assert status_body(info.value)["message"] == "the server could not find the requested resource"


async def test_dynamic_client_with_builtin_types(
    fake_kube: FakeKubeAPI, k8s_client: client.ApiClient, tmp_path: Path
) -> None:
    dynamic = await DynamicClient(k8s_client, cache_file=str(tmp_path / "discovery.json"))
    deployments = await dynamic.resources.get(api_version="apps/v1", kind="Deployment")
    assert "scale" in deployments.subresources
    body = k8s_client.sanitize_for_serialization(deployment("web"))
    await dynamic.create(deployments, body=body, namespace="default")
    await dynamic.patch(
        deployments,
        body={"metadata": {"name": "web"}, "spec": {"replicas": 4}},
        namespace="default",
    )
    listing = await dynamic.get(deployments, namespace="default")
    assert [item.spec.replicas for item in listing.items] == [4]
    services = await dynamic.resources.get(api_version="serving.knative.dev/v1", kind="Service")
    assert services.namespaced and services.extra_args["shortNames"] == ["kservice", "ksvc"]


# ----- deletion --------------------------------------------------------------------------


async def test_owner_reference_cascade_delete(
    fake_kube: FakeKubeAPI, k8s_client: client.ApiClient
) -> None:
    custom = client.CustomObjectsApi(k8s_client)
    service = await custom.create_namespaced_custom_object(*KSVC, ksvc("hello"))
    configuration = await custom.create_namespaced_custom_object(
        "serving.knative.dev",
        "v1",
        "default",
        "configurations",
        {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Configuration",
            "metadata": {"name": "hello", "ownerReferences": [owner_ref(service)]},
            "spec": {},
        },
    )
    revision = await custom.create_namespaced_custom_object(
        "serving.knative.dev",
        "v1",
        "default",
        "revisions",
        {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Revision",
            "metadata": {"name": "hello-00001", "ownerReferences": [owner_ref(configuration)]},
            "spec": {},
        },
    )
    owned = deployment("hello-00001-deployment")
    owned.metadata.owner_references = [
        client.V1OwnerReference(
            **{
                "api_version": "serving.knative.dev/v1",
                "kind": "Revision",
                "name": "hello-00001",
                "uid": revision["metadata"]["uid"],
                "controller": True,
            }
        )
    ]
    await client.AppsV1Api(k8s_client).create_namespaced_deployment("default", owned)
    bystander = await client.CoreV1Api(k8s_client).create_namespaced_config_map(
        "default", config_map("unrelated")
    )

    deleted = await custom.delete_namespaced_custom_object(*KSVC, "hello")
    assert deleted["metadata"]["name"] == "hello"  # custom resources answer with the object
    assert fake_kube.get("ksvc", "default", "hello") is None
    assert fake_kube.get("configurations", "default", "hello") is None
    assert fake_kube.get("revisions", "default", "hello-00001") is None
    assert fake_kube.get("deployments", "default", "hello-00001-deployment") is None
    assert fake_kube.get("configmaps", "default", "unrelated") is not None
    assert bystander.metadata.name == "unrelated"


async def test_foreground_and_orphan_propagation(
    fake_kube: FakeKubeAPI, k8s_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(k8s_client)
    parent = fake_kube.put(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "parent"}}
    )
    await core.create_namespaced_config_map(
        "default",
        config_map(
            "child",
            owner_references=[
                client.V1OwnerReference(
                    api_version="v1", kind="ConfigMap", name="parent", uid=parent["metadata"]["uid"]
                )
            ],
            finalizers=["example.com/hold"],
        ),
    )

    # Foreground: the owner waits, terminating, until its dependents are gone.
    waiting = await core.delete_namespaced_config_map(
        "parent", "default", propagation_policy="Foreground"
    )
    assert waiting.details is None and waiting.metadata is not None  # the object, not a Status
    owner = fake_kube.get("configmaps", "default", "parent")
    assert owner is not None and owner["metadata"]["finalizers"] == ["foregroundDeletion"]
    child = fake_kube.get("configmaps", "default", "child")
    assert child is not None and child["metadata"]["deletionTimestamp"]
    await core.patch_namespaced_config_map(
        "child", "default", [{"op": "remove", "path": "/metadata/finalizers"}]
    )
    assert fake_kube.get("configmaps", "default", "child") is None
    assert fake_kube.get("configmaps", "default", "parent") is None

    # Orphan: dependents stay, minus the reference to the deleted owner.
    parent = fake_kube.put(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "parent"}}
    )
    await core.create_namespaced_config_map(
        "default",
        config_map(
            "child",
            owner_references=[
                client.V1OwnerReference(
                    api_version="v1", kind="ConfigMap", name="parent", uid=parent["metadata"]["uid"]
                )
            ],
        ),
    )
    gone = await core.delete_namespaced_config_map(
        "parent", "default", body=client.V1DeleteOptions(propagation_policy="Orphan")
    )
    assert gone.status == "Success"
    child = fake_kube.get("configmaps", "default", "child")
    assert child is not None and "ownerReferences" not in child["metadata"]


async def test_namespace_deletion_removes_its_content(
    fake_kube: FakeKubeAPI, k8s_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(k8s_client)
    await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="doomed")))
    await core.create_namespaced_config_map("doomed", config_map("a"))
    await client.AppsV1Api(k8s_client).create_namespaced_deployment("doomed", deployment("web"))
    await core.delete_namespace("doomed")
    assert fake_kube.list("configmaps", "doomed") == []
    assert fake_kube.list("deployments", "doomed") == []
    assert fake_kube.get("namespaces", None, "doomed") is None


# ----- faults and leases -----------------------------------------------------------------


async def test_injected_faults_reach_the_client(
    fake_kube: FakeKubeAPI, k8s_client: client.ApiClient
) -> None:
    apps = client.AppsV1Api(k8s_client)
    await apps.create_namespaced_deployment("default", deployment("web"))

    fake_kube.fail_next("PATCH", "/deployments/web/scale", 409)
    with pytest.raises(ApiException) as info:
        await apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 2}})
    assert info.value.status == 409 and status_body(info.value)["reason"] == "Conflict"
    assert (
        await apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 2}})
    ).spec.replicas == 2

    fake_kube.fail_next("GET", "/deployments/web", 503, count=2)
    for _ in range(2):
        with pytest.raises(ApiException) as info:
            await apps.read_namespaced_deployment("web", "default")
        assert info.value.status == 503
        assert status_body(info.value)["reason"] == "ServiceUnavailable"
    assert (await apps.read_namespaced_deployment("web", "default")).metadata.name == "web"

    fake_kube.fail_next("*", "deployments", 429, retry_after=3)
    with pytest.raises(ApiException) as info:
        await apps.list_namespaced_deployment("default")
    assert info.value.headers is not None and info.value.headers["Retry-After"] == "3"
    assert status_body(info.value)["details"] == {"retryAfterSeconds": 3}

    fake_kube.fail_next("GET", "watch=true", 500, message="etcd is on fire")
    with pytest.raises(ApiException) as info:
        async with watch.Watch() as stream:
            async for _ in stream.stream(
                apps.list_namespaced_deployment, "default", timeout_seconds=5
            ):
                pytest.fail("the watch request was meant to fail")
    assert info.value.status == 500 and "etcd is on fire" in (info.value.reason or "")

    fake_kube.delay_next("GET", "/deployments/web", 0.3)
    started = time.monotonic()
    await apps.read_namespaced_deployment("web", "default")
    # uvloop's timers count whole milliseconds and may wake up to 1 ms early.
    assert time.monotonic() - started >= 0.29


async def test_leases_create_renew_and_conflict(
    fake_kube: FakeKubeAPI, k8s_client: client.ApiClient
) -> None:
    leases = client.CoordinationV1Api(k8s_client)
    now = datetime.now(UTC).replace(microsecond=123456)
    lease = client.V1Lease(
        metadata=client.V1ObjectMeta(name="autoscaler-leader"),
        spec=client.V1LeaseSpec(
            holder_identity="pod-a",
            lease_duration_seconds=15,
            acquire_time=now,
            renew_time=now,
            lease_transitions=0,
        ),
    )
    await leases.create_namespaced_lease("kube-system", lease)
    raw = fake_kube.get("leases", "kube-system", "autoscaler-leader")
    assert raw is not None and raw["spec"]["renewTime"] == now.strftime("%Y-%m-%dT%H:%M:%S.123456Z")
    with pytest.raises(ApiException) as info:
        await leases.create_namespaced_lease("kube-system", lease)
    assert status_body(info.value)["reason"] == "AlreadyExists"

    as_a = await leases.read_namespaced_lease("autoscaler-leader", "kube-system")
    as_b = await leases.read_namespaced_lease("autoscaler-leader", "kube-system")
    as_a.spec.renew_time = now + timedelta(seconds=5)
    renewed = await leases.replace_namespaced_lease("autoscaler-leader", "kube-system", as_a)
    assert renewed.spec.renew_time == now + timedelta(seconds=5)
    as_b.spec.holder_identity = "pod-b"
    as_b.spec.lease_transitions = 1
    with pytest.raises(ApiException) as info:
        await leases.replace_namespaced_lease("autoscaler-leader", "kube-system", as_b)
    assert info.value.status == 409
    assert (
        fake_kube.get("leases", "kube-system", "autoscaler-leader")["spec"]["holderIdentity"]
        == "pod-a"
    )  # type: ignore[index]

    # A naive datetime serializes without an offset, which a real apiserver cannot parse.
    naive = await leases.read_namespaced_lease("autoscaler-leader", "kube-system")
    naive.spec.renew_time = datetime.now()
    with pytest.raises(ApiException) as info:
        await leases.replace_namespaced_lease("autoscaler-leader", "kube-system", naive)
    assert info.value.status == 400


async def test_discovery_documents(fake_kube: FakeKubeAPI, k8s_client: client.ApiClient) -> None:
    version = await client.VersionApi(k8s_client).get_code()
    assert version.major == "1" and version.git_version.startswith("v1.")
    groups = await client.ApisApi(k8s_client).get_api_versions()
    names = {g.name: g.preferred_version.version for g in groups.groups}
    assert names["apps"] == "v1" and names["serving.knative.dev"] == "v1"
    assert names["networking.istio.io"] == "v1beta1"
    apps = await client.AppsV1Api(k8s_client).get_api_resources()
    by_name = {r.name: r for r in apps.resources}
    assert by_name["deployments"].short_names == ["deploy"]
    assert set(by_name["deployments"].verbs) >= {
        "get",
        "list",
        "watch",
        "create",
        "patch",
        "update",
        "delete",
    }
    scale = by_name["deployments/scale"]
    assert (scale.group, scale.version, scale.kind) == ("autoscaling", "v1", "Scale")
    assert "deployments/status" in by_name
    core = await client.CoreV1Api(k8s_client).get_api_resources()
    namespaces = next(r for r in core.resources if r.name == "namespaces")
    assert namespaces.namespaced is False
    async with aiohttp.ClientSession() as http, http.get(f"{fake_kube.url}/openapi/v2") as resp:
        assert resp.status == 404
