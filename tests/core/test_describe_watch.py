"""``zeroserve describe``'s layout (zeroserve/describe.py) and ``get -w``'s rows
(zeroserve/watch.py), on plain objects and a fake change count."""

from __future__ import annotations

import io
from typing import Any

from zeroserve.describe import describe_pod, describe_revision, describe_service, events, parse_time
from zeroserve.watch import changed_rows, watch_table

NOW = parse_time("2026-01-01T00:10:00Z") or 0.0


def test_service_fields_are_aligned_and_lists_continue_under_the_first() -> None:
    svc = {
        "kind": "Service",
        "metadata": {
            "name": "hello",
            "namespace": "default",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "annotations": {"a": "1", "b": "2"},
        },
        "status": {
            "url": "http://hello.default.localhost",
            "latestCreatedRevisionName": "hello-00002",
            "latestReadyRevisionName": "hello-00001",
            "traffic": [
                {"revisionName": "hello-00001", "percent": 90},
                {
                    "revisionName": "hello-00002",
                    "percent": 10,
                    "tag": "v2",
                    "url": "http://v2-hello.default.localhost",
                },
            ],
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "RevisionFailed",
                    "message": "Container failed\n with: boom",
                    "lastTransitionTime": "2026-01-01T00:09:00Z",
                }
            ],
        },
    }
    lines = describe_service(svc, [], NOW).splitlines()
    assert lines[:6] == [
        "Name:                     hello",
        "Namespace:                default",
        "Labels:                   <none>",
        "Annotations:              a: 1",
        "                          b: 2",
        "Age:                      10m",
    ]
    traffic = lines.index("Traffic:")
    assert lines[traffic + 1].split() == ["Percent", "Revision", "Tag", "URL"]
    assert lines[traffic + 3].split() == ["90%", "hello-00001"]
    assert lines[traffic + 4].split() == [
        "10%",
        "hello-00002",
        "v2",
        "http://v2-hello.default.localhost",
    ]
    ready = lines[lines.index("Conditions:") + 3]
    assert ready.split() == [
        "Ready",
        "False",
        "RevisionFailed",
        "60s",
        "Container",
        "failed",
        "with:",
        "boom",
    ]
    assert lines[-1] == "Events:  <none>"


def test_repeated_events_show_how_often_over_how_long() -> None:
    evt = {
        "type": "Warning",
        "reason": "BackOff",
        "message": "Back-off restarting failed container",
        "source": {"component": "kubelet"},
        "count": 4,
        "firstTimestamp": "2026-01-01T00:05:00Z",
        "lastTimestamp": "2026-01-01T00:09:30Z",
    }
    assert events([evt], NOW) == [
        "Events:",
        "  Type     Reason   Age               From     Message",
        "  ----     ------   ---               ----     -------",
        "  Warning  BackOff  30s (x4 over 5m)  kubelet  Back-off restarting failed container",
    ]


def test_a_revision_shows_replicas_containers_and_pods() -> None:
    rev = {
        "kind": "Revision",
        "metadata": {
            "name": "r-00001",
            "namespace": "default",
            "labels": {"serving.knative.dev/service": "r"},
        },
        "spec": {
            "containerConcurrency": 10,
            "timeoutSeconds": 300,
            "containers": [
                {
                    "name": "user-container",
                    "image": "img",
                    "command": ["python", "app.py"],
                    "env": [
                        {"name": "A", "value": "1"},
                        {"name": "S", "valueFrom": {"secretKeyRef": {}}},
                    ],
                }
            ],
        },
        "status": {"desiredReplicas": 2, "actualReplicas": 1},
    }
    pod = {
        "metadata": {"name": "r-00001-deployment-abcde"},
        "status": {
            "phase": "Running",
            "containerStatuses": [{"ready": True, "restartCount": 2}, {"ready": False}],
        },
    }
    text = describe_revision(rev, [pod], [], NOW)
    assert "Replicas:               2 desired | 1 ready" in text
    assert "Container Concurrency:  10\n" in text
    assert "    Command:      python\n                  app.py" in text
    assert "A: 1" in text and "S: <from secretKeyRef>" in text
    assert "  r-00001-deployment-abcde  1/2    Running  2" in text


def test_a_pod_shows_each_containers_state_and_last_state() -> None:
    p = {
        "metadata": {
            "name": "p",
            "namespace": "default",
            "labels": {"serving.knative.dev/revision": "r"},
        },
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.2",
            "containerStatuses": [
                {
                    "name": "user-container",
                    "image": "img",
                    "ready": False,
                    "restartCount": 3,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 3, "reason": "Error"}},
                }
            ],
        },
    }
    text = describe_pod(p, [], NOW)
    assert "Controlled By:  Revision/r" in text and "IP:             10.0.0.2" in text
    assert (
        "    State:          Waiting\n"
        "      Reason:       CrashLoopBackOff\n"
        "    Last State:     Terminated\n"
        "      Reason:       Error\n"
        "      Exit Code:    3\n"
        "    Ready:          False\n"
        "    Restart Count:  3"
    ) in text


def test_watch_rows_change_on_the_object_not_on_its_age() -> None:
    headers = ["NAME", "READY", "AGE"]
    last: dict[tuple[str, ...], tuple[str, ...]] = {}
    assert changed_rows(headers, [["a", "True", "1s"], ["b", "False", "1s"]], last) == [
        ["a", "True", "1s"],
        ["b", "False", "1s"],
    ]
    assert changed_rows(headers, [["a", "True", "9s"], ["b", "True", "9s"]], last) == [
        ["b", "True", "9s"]
    ]
    # a pod's restart count is compared, not how long ago the last restart was
    headers = ["NAME", "RESTARTS", "AGE"]
    last = {}
    changed_rows(headers, [["p", "1 (5s ago)", "1m"]], last)
    assert changed_rows(headers, [["p", "1 (9s ago)", "1m"]], last) == []
    assert changed_rows(headers, [["p", "2 (1s ago)", "1m"]], last) == [["p", "2 (1s ago)", "1m"]]
    # under -A the namespace is part of the object's key
    last = {}
    rows = [["ns1", "a", "x"], ["ns2", "a", "x"]]
    assert len(changed_rows(["NAMESPACE", "NAME", "X"], rows, last)) == 2


def test_watch_prints_the_table_then_changed_rows_until_its_timeout() -> None:
    tables: list[dict[str, Any]] = [
        {"headers": ["NAME", "READY"], "rows": [["a", "Unknown"]]},
        {"headers": ["NAME", "READY"], "rows": [["a", "True"], ["bb-long-name", "Unknown"]]},
        {"headers": ["NAME", "READY"], "rows": [["a", "True"], ["bb-long-name", "Unknown"]]},
    ]
    versions = iter([1, 2, 3, 3])
    now = [0.0]

    def wait_change(since: int, wait: float) -> int:
        now[0] += 1.0
        return next(versions, since)

    out = io.StringIO()
    code = watch_table(
        lambda: tables.pop(0),
        wait_change,
        out=out,
        namespace="default",
        timeout=5.0,
        clock=lambda: now[0],
    )
    assert code == 0
    assert out.getvalue().splitlines() == [
        "NAME   READY",
        "a      Unknown",
        "a              True",  # the widths grow with the rows, as one tabwriter's
        "bb-long-name   Unknown",
    ]


def test_watch_only_prints_nothing_until_a_change_then_the_header() -> None:
    out = io.StringIO()
    versions = iter([1, 2])
    tables = [{"headers": ["NAME"], "rows": [["a"]]}, {"headers": ["NAME"], "rows": [["a"], ["b"]]}]
    now = [0.0]

    def wait_change(since: int, wait: float) -> int:
        now[0] += 1.0
        return next(versions, since)

    watch_table(
        lambda: tables.pop(0),
        wait_change,
        out=out,
        namespace=None,
        watch_only=True,
        timeout=3.0,
        clock=lambda: now[0],
    )
    assert out.getvalue().splitlines() == ["NAME", "b"]
