"""The controller's Events (controller/events.py): which writes report what, and the
Events a real reconcile leaves in the API (fake API server, in-process controller)."""

from __future__ import annotations

from typing import Any

from controller.app import KubeController
from controller.events import NORMAL, WARNING, on_failure, on_success
from controller.writes import Write, status_patch
from tests.fakes.kubeapi.fakeapi import FakeKubeAPI
from zeroserve.kube import CONFIGURATIONS, DEPLOYMENTS, REVISIONS, ROUTES

from .helpers import HELLOWORLD_GO, crashing_pod, endpoint_slice, eventually, put_manifest

REV = "helloworld-go-00001"


def obj(name: str, status: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", **meta},
        "status": status or {},
    }


def ready(value: str, reason: str = "", message: str = "") -> dict[str, Any]:
    return {
        "conditions": [{"type": "Ready", "status": value, "reason": reason, "message": message}]
    }


OWNED = {
    "ownerReferences": [
        {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Configuration",
            "name": "hello",
            "uid": "uid-hello",
            "controller": True,
        }
    ]
}


def test_a_created_child_is_reported_on_its_owner() -> None:
    write = Write("create", REVISIONS, "default", "hello-00001", body=obj("hello-00001", **OWNED))
    [event] = on_success(write)
    assert event.involved["kind"] == "Configuration"
    assert event.involved["metadata"] == {
        "name": "hello",
        "namespace": "default",
        "uid": "uid-hello",
    }
    assert (event.type, event.reason, event.message) == (
        NORMAL,
        "Created",
        'Created Revision "hello-00001"',
    )
    # an object without an owner (a user's) has nobody to tell
    assert on_success(Write("create", ROUTES, "default", "r", body=obj("r"))) == []


def test_a_revision_becoming_ready_or_failing() -> None:
    became = status_patch(REVISIONS, obj("r1", ready("Unknown")), ready("True"))
    assert became is not None
    [event] = on_success(became)
    assert (event.reason, event.involved["kind"]) == ("RevisionReady", "Revision")
    failed = status_patch(
        REVISIONS, obj("r1", ready("True")), ready("False", "ExitCode1", "Container failed")
    )
    assert failed is not None
    [event] = on_success(failed)
    assert (event.type, event.reason, event.message) == (WARNING, "ExitCode1", "Container failed")
    # a status write that keeps Ready as it was says nothing
    same = status_patch(REVISIONS, obj("r1", ready("True")), {**ready("True"), "x": 1})
    assert same is not None and on_success(same) == []


def test_a_configuration_gets_its_first_and_later_ready_revisions() -> None:
    first = status_patch(
        CONFIGURATIONS, obj("c"), {**ready("True"), "latestReadyRevisionName": "c-00001"}
    )
    assert first is not None
    assert [e.reason for e in on_success(first)] == ["ConfigurationReady", "LatestReadyUpdate"]
    later = status_patch(
        CONFIGURATIONS,
        obj("c", {**ready("True"), "latestReadyRevisionName": "c-00001"}),
        {**ready("True"), "latestReadyRevisionName": "c-00002"},
    )
    assert later is not None
    [event] = on_success(later)
    assert event.message == 'LatestReadyRevisionName updated to "c-00002"'
    failed = status_patch(
        CONFIGURATIONS,
        obj("c", {**ready("True"), "latestReadyRevisionName": "c-00002"}),
        {
            **ready("False"),
            "latestReadyRevisionName": "c-00002",
            "latestCreatedRevisionName": "c-00003",
        },
    )
    assert failed is not None
    [event] = on_success(failed)
    assert (event.type, event.reason) == (WARNING, "LatestCreatedFailed")


def test_refused_writes_are_warnings() -> None:
    create = Write("create", DEPLOYMENTS, "default", "d", body=obj("d", **OWNED))
    [event] = on_failure(create, "quota exceeded")
    assert (event.type, event.reason, event.involved["kind"]) == (
        WARNING,
        "CreationFailed",
        "Configuration",
    )
    assert event.message == 'Failed to create Deployment "d": quota exceeded'
    status = status_patch(ROUTES, obj("r"), ready("True"))
    assert status is not None
    [event] = on_failure(status, "boom")
    assert (event.reason, event.message) == (
        "UpdateFailed",
        'Failed to update status for "r": boom',
    )
    assert on_failure(Write("delete", ROUTES, "default", "r"), "x") == []


def events_of(api: FakeKubeAPI, kind: str, name: str) -> list[tuple[str, str, str]]:
    return [
        (e["type"], e["reason"], e["message"])
        for e in api.list("events", "default")
        if (e["involvedObject"]["kind"], e["involvedObject"]["name"]) == (kind, name)
    ]


async def test_a_reconcile_leaves_knatives_events(
    cluster: FakeKubeAPI, controller: KubeController
) -> None:
    put_manifest(cluster, HELLOWORLD_GO)
    await cluster.wait_for("deployments", "default", f"{REV}-deployment", within=5)
    cluster.put(endpoint_slice(REV, (f"{REV}-pod", "10.0.0.9")))
    await eventually(
        lambda: (
            ("Normal", "RevisionReady", "Revision becomes ready upon all resources being ready")
            in events_of(cluster, "Revision", REV)
        ),
        "RevisionReady on the revision: "
        + repr(cluster.get("revisions.serving.knative.dev", "default", REV)),
    )
    assert ("Normal", "Created", 'Created Configuration "helloworld-go"') in events_of(
        cluster, "Service", "helloworld-go"
    )
    assert ("Normal", "Created", 'Created Revision "helloworld-go-00001"') in events_of(
        cluster, "Configuration", "helloworld-go"
    )
    await eventually(
        lambda: (
            ("Normal", "ConfigurationReady", "Configuration becomes ready")
            in events_of(cluster, "Configuration", "helloworld-go")
        ),
        "ConfigurationReady",
    )
    [event] = [e for e in cluster.list("events", "default") if e["reason"] == "RevisionReady"]
    assert event["source"]["component"] == "controller" and event["count"] == 1


async def test_a_crashing_revision_is_a_warning(
    cluster: FakeKubeAPI, controller: KubeController
) -> None:
    put_manifest(cluster, HELLOWORLD_GO)
    await cluster.wait_for("deployments", "default", f"{REV}-deployment", within=5)
    cluster.put(crashing_pod(REV, f"{REV}-pod"))
    await eventually(
        lambda: any(t == "Warning" for t, _, _ in events_of(cluster, "Revision", REV)),
        "a Warning on the crashing revision",
    )
