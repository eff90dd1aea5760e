"""The events the local control plane keeps: derived from state changes with the
reasons and messages their writers use on Kubernetes, bounded, and counted when they
repeat (zeroserve/local/events.py)."""

from __future__ import annotations

from typing import Any

import pytest

from zeroserve.local.events import (
    NORMAL,
    WARNING,
    EventLog,
    EventWatcher,
    object_events,
    pod_events,
    scale_events,
)


def obj(
    kind: str, name: str, ready: str | None = None, owner: str | None = None, **status: Any
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "default"}
    if owner:
        okind, oname = owner.split("/")
        meta["ownerReferences"] = [{"kind": okind, "name": oname, "controller": True}]
    if ready is not None:
        status["conditions"] = [
            {"type": "Ready", "status": ready, "reason": "ExitCode3", "message": "boom"}
        ]
    return {"kind": kind, "metadata": meta, "status": status}


def reasons(derived: list[Any]) -> list[tuple[str, str, str]]:
    return [(d[0][0] + "/" + d[0][2], d[1], d[2]) for d in derived]


def test_a_new_child_is_created_on_its_owner() -> None:
    new = obj("Configuration", "hello", owner="Service/hello")
    (d,) = object_events("Configuration", None, new)
    assert d == (
        ("Service", "default", "hello"),
        NORMAL,
        "Created",
        'Created Configuration "hello"',
        "service-controller",
    )
    assert object_events("Configuration", new, new) == []  # not new any more


@pytest.mark.parametrize(
    ("before", "after", "want"),
    [
        (None, "True", [("Revision/r", NORMAL, "RevisionReady")]),
        ("Unknown", "True", [("Revision/r", NORMAL, "RevisionReady")]),
        ("True", "True", []),
        ("True", "False", [("Revision/r", WARNING, "ExitCode3")]),
        ("False", "False", []),
    ],
    ids=["ready-at-once", "becomes-ready", "stays-ready", "fails", "stays-failed"],
)
def test_revision_readiness(
    before: str | None, after: str, want: list[tuple[str, str, str]]
) -> None:
    old = obj("Revision", "r", before) if before else None
    assert reasons(object_events("Revision", old, obj("Revision", "r", after))) == want


def test_a_configuration_reports_its_ready_revision_moving_and_failing() -> None:
    first = obj(
        "Configuration",
        "c",
        "True",
        latestReadyRevisionName="c-00001",
        latestCreatedRevisionName="c-00001",
    )
    got = object_events("Configuration", obj("Configuration", "c", "Unknown"), first)
    assert [d[2] for d in got] == ["ConfigurationReady", "LatestReadyUpdate"]
    assert got[1][3] == 'LatestReadyRevisionName updated to "c-00001"'
    failed = obj(
        "Configuration",
        "c",
        "False",
        latestReadyRevisionName="c-00001",
        latestCreatedRevisionName="c-00002",
    )
    (d,) = object_events("Configuration", first, failed)
    assert (d[1], d[2], d[3]) == (
        WARNING,
        "LatestCreatedFailed",
        'Latest created revision "c-00002" has failed',
    )


def pod(state: dict[str, Any], ready: bool = True, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "p", "namespace": "default", "uid": "u1"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "kind": "Pod",
        "metadata": meta,
        "status": {
            "containerStatuses": [{"name": "user-container", "ready": ready, "state": state}]
        },
    }


RUN1 = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
RUN2 = {"running": {"startedAt": "2026-01-01T00:00:09Z"}}
BACKOFF = {"waiting": {"reason": "CrashLoopBackOff"}}


@pytest.mark.parametrize(
    ("old", "new", "want"),
    [
        (None, pod({"waiting": {"reason": "ContainerCreating"}}, False), []),
        (pod({"waiting": {"reason": "ContainerCreating"}}, False), pod(RUN1, False), ["Started"]),
        (pod(RUN1), pod(RUN1), []),
        (pod(RUN1), pod(RUN2), ["Started"]),  # restarted
        (pod(RUN1), pod(BACKOFF, False), ["BackOff"]),
        (pod(BACKOFF, False), pod(BACKOFF, False), []),
        (pod(RUN1), pod(RUN1, False), ["Unhealthy"]),
        (pod(RUN1), pod(RUN1, False, deleting=True), ["Killing"]),
    ],
    ids=[
        "created",
        "started",
        "unchanged",
        "restarted",
        "backoff",
        "still-backoff",
        "unhealthy",
        "killing",
    ],
)
def test_the_kubelets_pod_events(old: Any, new: Any, want: list[str]) -> None:
    assert [d[2] for d in pod_events(old, new)] == want


def test_backoff_says_which_container_in_which_pod_as_the_kubelet() -> None:
    (d,) = pod_events(pod(RUN1), pod(BACKOFF, False))
    assert d[3] == "Back-off restarting failed container user-container in pod p_default(u1)"


def test_replica_count_changes_scale_the_revisions_deployment() -> None:
    got = scale_events({("default", "r"): 1}, {("default", "r"): 3, ("default", "s"): 1})
    assert [(d[0], d[3]) for d in got] == [
        (
            ("Deployment", "default", "r-deployment"),
            "Scaled up replica set r-deployment to 3 from 1",
        ),
        (
            ("Deployment", "default", "s-deployment"),
            "Scaled up replica set s-deployment to 1 from 0",
        ),
    ]
    (down,) = scale_events({("default", "r"): 3}, {("default", "r"): 0})
    assert down[3] == "Scaled down replica set r-deployment to 0 from 3"


def test_a_repeat_is_counted_not_kept_twice() -> None:
    log = EventLog()
    ref = ("Pod", "default", "p")
    log.record(ref, WARNING, "BackOff", "m", "kubelet", now=10.0)
    log.record(ref, NORMAL, "Started", "s", "kubelet", now=11.0)
    log.record(ref, WARNING, "BackOff", "m", "kubelet", now=20.0)
    events = log.list("default")
    assert [(e.reason, e.count, e.first, e.last) for e in events] == [
        ("Started", 1, 11.0, 11.0),
        ("BackOff", 2, 10.0, 20.0),
    ]
    assert events[1].to_object()["count"] == 2
    # events of one moment keep the order they were recorded in, whatever their object
    log.record(("Service", "default", "s"), NORMAL, "Created", "1", "c", now=30.0)
    log.record(("Configuration", "default", "c"), NORMAL, "Created", "2", "c", now=30.0)
    log.record(("Service", "default", "s"), NORMAL, "Created", "3", "c", now=30.0)
    assert [e.message for e in log.list() if e.last == 30.0] == ["1", "2", "3"]
    assert events[1].to_object()["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "namespace": "default",
        "name": "p",
    }


def test_events_are_bounded_per_object_by_objects_and_by_age() -> None:
    log = EventLog(per_object=3, max_objects=2, ttl=100.0)
    for i in range(5):
        log.record(("Pod", "default", "a"), NORMAL, "R", f"m{i}", "kubelet", now=float(i))
    assert [e.message for e in log.list()] == ["m2", "m3", "m4"]
    log.record(("Pod", "default", "b"), NORMAL, "R", "b", "kubelet", now=5.0)
    log.record(("Pod", "default", "c"), NORMAL, "R", "c", "kubelet", now=6.0)
    assert {e.name for e in log.list()} == {"b", "c"}  # a's last event was the oldest
    assert log.list(now=106.0 + 1) == []  # past the TTL
    assert [e.name for e in log.list(refs=[("Pod", "c")])] == ["c"]
    assert log.list("other") == []


def test_the_watcher_records_each_change_once() -> None:
    log = EventLog()
    w = EventWatcher(log)
    rev = obj("Revision", "r", "Unknown", owner="Configuration/c")
    w.observe({"Revision": [rev]}, {("default", "r"): 1}, now=1.0)
    assert [e.reason for e in log.list()] == ["Created", "ScalingReplicaSet"]
    w.observe(
        {"Revision": [obj("Revision", "r", "True", owner="Configuration/c")]},
        {("default", "r"): 1},
        now=2.0,
    )
    w.observe(
        {"Revision": [obj("Revision", "r", "True", owner="Configuration/c")]},
        {("default", "r"): 1},
        now=3.0,
    )
    assert [e.reason for e in log.list()] == ["Created", "ScalingReplicaSet", "RevisionReady"]
