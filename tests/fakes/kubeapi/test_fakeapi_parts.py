"""The fake API server's parts on their own: selectors, patches, name resolution, history
bounds, and protocol details that are easiest to check with raw HTTP."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from . import errors
from .fakeapi import FakeKubeAPI
from .patches import json_patch, merge_patch, strategic_merge_patch
from .resources import version_priority
from .selection import (
    format_label_selector,
    labels_match,
    parse_field_selector,
    parse_label_selector,
    selector_predicate,
)


def labelled(**labels: str) -> dict[str, Any]:
    return {"metadata": {"name": "x", "namespace": "ns", "labels": labels}}


# ----- selectors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("", {}, True),
        ("a=1", {"a": "1"}, True),
        ("a=", {"a": ""}, True),
        ("a=", {"a": "1"}, False),
        ("a!=1", {}, True),
        ("a in (1, 2),b", {"a": "2", "b": "x"}, True),
        ("a notin (1,2)", {"a": "3"}, True),
        ("a notin (1,2)", {}, True),
        ("!a", {"a": "1"}, False),
        ("a>3", {"a": "4"}, True),
        ("a<3", {"a": "4"}, False),
        ("a>3", {"a": "x"}, False),
        ("app.kubernetes.io/name=web", {"app.kubernetes.io/name": "web"}, True),
        ("  a = 1 ,  b  ", {"a": "1", "b": ""}, True),
    ],
)
def test_label_selector_semantics(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert labels_match(parse_label_selector(selector), labelled(**labels)) is expected


@pytest.mark.parametrize(
    "selector", ["a in (1", "a in ()", "=x", "a b", "a>x", "a,,b", "!", "a in 1"]
)
def test_malformed_label_selectors_are_400(selector: str) -> None:
    with pytest.raises(errors.ApiError) as info:
        parse_label_selector(selector)
    assert info.value.code == 400 and info.value.reason == "BadRequest"


def test_field_selectors_escape_and_refuse_unknown_fields() -> None:
    terms = parse_field_selector(
        r"metadata.name=a\,b,metadata.namespace!=x", ["metadata.name", "metadata.namespace"]
    )
    assert [(t.field, t.value, t.negate) for t in terms] == [
        ("metadata.name", "a,b", False),
        ("metadata.namespace", "x", True),
    ]
    with pytest.raises(errors.ApiError):
        parse_field_selector("spec.replicas=1", ["metadata.name"])
    matches = selector_predicate("", "status.phase=Running", ["status.phase"])
    assert matches({"metadata": {}, "status": {"phase": "Running"}})
    assert not matches({"metadata": {}})


def test_label_selector_objects_render_as_strings() -> None:
    selector = {
        "matchLabels": {"b": "2", "a": "1"},
        "matchExpressions": [
            {"key": "c", "operator": "In", "values": ["y", "x"]},
            {"key": "d", "operator": "NotIn", "values": ["z"]},
            {"key": "e", "operator": "Exists"},
            {"key": "f", "operator": "DoesNotExist"},
        ],
    }
    rendered = format_label_selector(selector)
    assert rendered == "a=1,b=2,c in (x,y),d notin (z),e,!f"
    assert labels_match(parse_label_selector(rendered), labelled(a="1", b="2", c="x", e=""))


# ----- patches ---------------------------------------------------------------------------


def test_merge_patch_follows_rfc7386() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}
    patch = {"a": "z", "c": {"f": None}, "l": [3], "n": {"x": None}}
    assert merge_patch(target, patch) == {"a": "z", "c": {"d": "e"}, "l": [3], "n": {}}
    assert target["c"] == {"d": "e", "f": "g"}  # inputs are not modified


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner, max_size=3)
    ),
    max_leaves=10,
)
json_objects = st.dictionaries(st.text(max_size=2), json_values, max_size=4)


@given(json_objects, json_objects)
def test_merge_patch_is_idempotent(target: dict[str, Any], patch: dict[str, Any]) -> None:
    once = merge_patch(target, patch)
    assert merge_patch(once, patch) == once


def test_json_patch_operations() -> None:
    doc = {"a": {"b": [1, 2]}, "x/y": 1, "t~": 2}
    ops = [
        {"op": "add", "path": "/a/b/-", "value": 3},
        {"op": "add", "path": "/a/b/0", "value": 0},
        {"op": "replace", "path": "/x~1y", "value": 5},
        {"op": "remove", "path": "/t~0"},
        {"op": "copy", "from": "/a/b", "path": "/c"},
        {"op": "move", "from": "/a", "path": "/m"},
        {"op": "test", "path": "/m/b/3", "value": 3},
    ]
    assert json_patch(doc, ops) == {"m": {"b": [0, 1, 2, 3]}, "x/y": 5, "c": [0, 1, 2, 3]}
    assert doc["a"] == {"b": [1, 2]}


@pytest.mark.parametrize(
    ("ops", "code"),
    [
        ({"op": "add"}, 400),  # not a list
        ([{"op": "frobnicate", "path": "/a"}], 400),
        ([{"op": "remove", "path": "/missing"}], 422),
        ([{"op": "replace", "path": "/missing", "value": 1}], 422),
        ([{"op": "test", "path": "/a", "value": 2}], 422),
        ([{"op": "add", "path": "/l/7", "value": 1}], 422),
        ([{"op": "add", "path": "no-slash", "value": 1}], 400),
    ],
)
def test_json_patch_errors(ops: Any, code: int) -> None:
    with pytest.raises(errors.ApiError) as info:
        json_patch({"a": 1, "l": []}, ops)
    assert info.value.code == code


def test_strategic_merge_patch_merges_known_lists_by_key() -> None:
    pod_spec = {
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "a:1",
                    "env": [{"name": "X", "value": "1"}],
                    "ports": [{"containerPort": 80, "name": "http"}],
                },
                {"name": "sidecar", "image": "s:1"},
            ],
            "tolerations": [{"key": "a"}],
        },
        "metadata": {"finalizers": ["one"], "ownerReferences": [{"uid": "u1", "name": "o"}]},
        "status": {"conditions": [{"type": "Ready", "status": "False"}]},
    }
    patch = {
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "env": [{"name": "Y", "value": "2"}],
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                },
                {"name": "sidecar", "$patch": "delete"},
                {"name": "new", "image": "n:1"},
            ],
            "tolerations": [{"key": "b"}],  # no merge strategy upstream: replaced
        },
        "metadata": {"finalizers": ["two", "one"], "$deleteFromPrimitiveList/finalizers": ["one"]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    merged = strategic_merge_patch(pod_spec, patch)
    app, new = merged["spec"]["containers"]
    assert app == {
        "name": "app",
        "image": "a:1",
        "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}],
        "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}],
    }
    assert new == {"name": "new", "image": "n:1"}
    assert merged["spec"]["tolerations"] == [{"key": "b"}]
    assert merged["metadata"]["finalizers"] == ["two"]
    assert merged["status"]["conditions"] == [{"type": "Ready", "status": "True"}]


def test_strategic_merge_patch_directives() -> None:
    target = {"spec": {"a": 1, "b": {"c": 2}, "containers": [{"name": "x"}, {"name": "y"}]}}
    assert strategic_merge_patch(target, {"spec": {"b": {"$patch": "replace", "d": 3}}})["spec"][
        "b"
    ] == {"d": 3}
    assert "b" not in strategic_merge_patch(target, {"spec": {"b": {"$patch": "delete"}}})["spec"]
    replaced = strategic_merge_patch(
        target, {"spec": {"containers": [{"name": "z"}, {"$patch": "replace"}]}}
    )
    assert replaced["spec"]["containers"] == [{"name": "z"}]
    retained = strategic_merge_patch(target, {"spec": {"$retainKeys": ["a"], "a": 5}})
    assert retained["spec"] == {"a": 5}
    ordered = strategic_merge_patch(
        target, {"spec": {"$setElementOrder/containers": [{"name": "y"}, {"name": "x"}]}}
    )
    assert [c["name"] for c in ordered["spec"]["containers"]] == ["y", "x"]


# ----- types, names and history ----------------------------------------------------------


def test_version_priority_orders_like_kubernetes() -> None:
    versions = ["v1alpha1", "v1", "foo", "v2beta1", "v1beta2", "v2", "v1beta1", "v10"]
    assert sorted(versions, key=version_priority) == [
        "v10",
        "v2",
        "v1",
        "v2beta1",
        "v1beta2",
        "v1beta1",
        "v1alpha1",
        "foo",
    ]


@pytest.mark.parametrize(
    ("name", "group", "kind"),
    [
        ("services", "", "Service"),
        ("svc", "", "Service"),
        ("ksvc", "serving.knative.dev", "Service"),
        ("services.serving.knative.dev", "serving.knative.dev", "Service"),
        ("Service.v1.serving.knative.dev", "serving.knative.dev", "Service"),
        ("deploy", "apps", "Deployment"),
        ("Deployment", "apps", "Deployment"),
        ("vs", "networking.istio.io", "VirtualService"),
        ("rev", "serving.knative.dev", "Revision"),
        ("endpointslice", "discovery.k8s.io", "EndpointSlice"),
    ],
)
def test_resource_names_resolve_like_kubectl(name: str, group: str, kind: str) -> None:
    rt = FakeKubeAPI().resource(name)
    assert (rt.group, rt.kind) == (group, kind)


def test_unknown_resource_names_raise() -> None:
    with pytest.raises(KeyError):
        FakeKubeAPI().resource("widgets")


def test_history_is_bounded_and_old_watches_expire() -> None:
    api = FakeKubeAPI(history_limit=5)
    rt = api.resource("configmaps")
    start = api.resource_version
    for i in range(10):
        api.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}"}})
    assert api.store.history_length == 5
    with pytest.raises(errors.ApiError) as info:
        api.store.watch(rt, "default", lambda _: True, str(start))
    assert info.value.code == 410 and info.value.reason == "Expired"
    recent = api.store.watch(rt, "default", lambda _: True, str(api.resource_version - 2))
    assert [item[1]["metadata"]["name"] for item in _drain(recent)] == ["c8", "c9"]


def test_slow_watchers_are_cut_off() -> None:
    api = FakeKubeAPI(watch_queue_limit=2)
    rt = api.resource("configmaps")
    watcher = api.store.watch(rt, "default", lambda _: True, str(api.resource_version))
    for i in range(3):
        api.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}"}})
    assert watcher.close_reason == "overflow"
    queued = _drain(watcher)
    assert [obj["metadata"]["name"] for _, obj in queued[:-1]] == ["c0", "c1"]
    assert queued[-1] is None  # the end-of-stream marker: the handler closes the response


def _drain(watcher: Any) -> list[Any]:
    return [watcher.queue.get_nowait() for _ in range(watcher.queue.qsize())]


def test_direct_helpers() -> None:
    api = FakeKubeAPI()
    created = api.put(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["x/y"]},
            "spec": {"replicas": 1},
            "status": {"readyReplicas": 1},
        }
    )
    assert created["metadata"]["generation"] == 1 and created["status"] == {"readyReplicas": 1}
    bumped = api.patch("deploy", "default", "web", {"spec": {"replicas": 2}})
    assert bumped["metadata"]["generation"] == 2
    assert [d["metadata"]["name"] for d in api.list("deployments", label_selector="app=web")] == [
        "web"
    ]
    assert api.list("deployments", "other") == []
    terminating = api.delete("deployments", "default", "web")
    assert terminating is not None and terminating["metadata"]["deletionTimestamp"]
    api.patch("deployments", "default", "web", {"metadata": {"finalizers": None}})
    assert api.get("deployments", "default", "web") is None
    assert api.delete("deployments", "default", "web") is None


def _chain(api: FakeKubeAPI, api_version: str, kind: str, namespace: str) -> None:
    """root <- a <- b by ownerReferences, stored root first: a teardown loop over a snapshot
    meets a and b after the cascade from root has already removed them."""
    root = api.put(
        {
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {"name": "root", "namespace": namespace},
        }
    )
    a = api.put(
        {
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {
                "name": "a",
                "namespace": namespace,
                "ownerReferences": [{"uid": root["metadata"]["uid"]}],
            },
        }
    )
    api.put(
        {
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {
                "name": "b",
                "namespace": namespace,
                "ownerReferences": [{"uid": a["metadata"]["uid"]}],
            },
        }
    )


def _deletions(api: FakeKubeAPI) -> list[str]:
    deleted: list[str] = []
    api.store.add_listener(
        lambda e: deleted.append(e.obj["metadata"]["name"]) if e.type == "DELETED" else None
    )
    return deleted


def test_crd_and_namespace_teardown_delete_each_object_exactly_once() -> None:
    api = FakeKubeAPI()
    _chain(api, "serving.knative.dev/v1", "Service", "default")
    deleted = _deletions(api)
    api.delete("crd", None, "services.serving.knative.dev")
    assert sorted(deleted) == ["a", "b", "root", "services.serving.knative.dev"]

    api.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}})
    _chain(api, "v1", "ConfigMap", "doomed")
    deleted.clear()
    api.delete("namespaces", None, "doomed")
    assert sorted(deleted) == ["a", "b", "doomed", "root"]


async def test_wait_for_sees_changes_and_times_out() -> None:
    api = FakeKubeAPI()
    api.put(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"v": "1"}}
    )
    api.patch("configmaps", "default", "c", {"data": {"v": "2"}})
    seen = await api.wait_for(
        "configmaps", "default", "c", lambda o: o is not None and o["data"]["v"] == "2"
    )
    assert seen is not None and seen["data"] == {"v": "2"}
    with pytest.raises(TimeoutError, match="did not reach"):
        await api.wait_for("configmaps", "default", "c", lambda o: o is None, within=0.05)


# ----- protocol details over raw HTTP ----------------------------------------------------


async def test_tables_for_kubectl(fake_kube: FakeKubeAPI) -> None:
    fake_kube.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}})
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    async with aiohttp.ClientSession(headers={"Accept": accept}) as http:
        async with http.get(f"{fake_kube.url}/api/v1/namespaces/default/configmaps") as resp:
            table = await resp.json()
        async with http.get(
            f"{fake_kube.url}/api/v1/namespaces/default/configmaps/cm",
            params={"includeObject": "Object"},
        ) as resp:
            single = await resp.json()
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age"]
    assert table["rows"][0]["cells"][0] == "cm"
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert single["rows"][0]["object"]["kind"] == "ConfigMap"


async def test_write_options_and_refusals(fake_kube: FakeKubeAPI) -> None:
    base = f"{fake_kube.url}/api/v1/namespaces/default/configmaps"
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "dry", "labels": {"n": "1"}},
    }
    async with aiohttp.ClientSession() as http:
        async with http.post(base, params={"dryRun": "All"}, json=cm) as resp:
            assert resp.status == 201 and (await resp.json())["metadata"]["name"] == "dry"
        assert fake_kube.get("configmaps", "default", "dry") is None

        async with http.post(base, json={**cm, "kind": "Secret"}) as resp:
            assert resp.status == 400
        async with http.post(
            base, json={**cm, "metadata": {"name": "x", "resourceVersion": "5"}}
        ) as resp:
            assert resp.status == 500  # as etcd3's store refuses it
        async with http.post(
            base, json={**cm, "metadata": {"name": "x", "labels": {"n": 1}}}
        ) as resp:
            assert resp.status == 400  # label values must be strings
        async with http.post(
            base, data="{nope", headers={"Content-Type": "application/json"}
        ) as resp:
            assert resp.status == 400

        fake_kube.put(cm)
        fake_kube.put({**cm, "metadata": {"name": "other", "labels": {"n": "2"}}})
        async with http.patch(
            f"{base}/dry",
            data=b'{"metadata":{}}',
            headers={"Content-Type": "application/apply-patch+yaml"},
        ) as resp:
            assert resp.status == 415  # server-side apply is not served
        async with http.put(f"{base}/dry", json={**cm, "metadata": {"name": "renamed"}}) as resp:
            assert resp.status == 400
        async with http.post(f"{fake_kube.url}/api/v1/configmaps", json=cm) as resp:
            assert resp.status == 405
        async with http.get(
            f"{fake_kube.url}/apis/apps/v1/namespaces/default/deployments/x/exec"
        ) as resp:
            assert resp.status == 404 and (await resp.json())["kind"] == "Status"

        async with http.delete(base, params={"labelSelector": "n=1"}) as resp:
            deleted = await resp.json()
        assert [i["metadata"]["name"] for i in deleted["items"]] == ["dry"]
        assert [o["metadata"]["name"] for o in fake_kube.list("configmaps", "default")] == ["other"]

        async with http.get(f"{fake_kube.url}/api/v1/namespaces/default/configmaps/other") as resp:
            rv = (await resp.json())["metadata"]["resourceVersion"]
        async with http.delete(
            f"{base}/other", json={"preconditions": {"resourceVersion": "1"}}
        ) as resp:
            assert resp.status == 409
        async with http.delete(
            f"{base}/other", json={"preconditions": {"resourceVersion": rv}}
        ) as resp:
            assert resp.status == 200 and (await resp.json())["status"] == "Success"


async def test_namespace_subresource_and_watch_path(fake_kube: FakeKubeAPI) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{fake_kube.url}/api/v1/namespaces/default/status") as resp:
            assert (await resp.json())["status"] == {"phase": "Active"}
        fake_kube.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w"}})
        async with http.get(
            f"{fake_kube.url}/api/v1/watch/namespaces/default/configmaps/w"
        ) as resp:
            event = json.loads(await resp.content.readline())
    assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "w")
