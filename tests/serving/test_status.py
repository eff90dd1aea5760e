"""Ready conditions and their reasons as the runtime reports revisions, like Knative:
Deploying -> Ready, RevisionFailed with the runtime's message, RevisionMissing for
traffic that cannot be resolved, and what each object's status says meanwhile."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.manifests import HELLO_V1, doc, dump, edit
from zeroserve.api import load
from zeroserve.serving.controller import Controller
from zeroserve.topology import RevisionKey, Target

V1 = RevisionKey("default", "hello-00001")
CRASH = "container exited with code 1: ModuleNotFoundError: No module named 'flask'"


def conditions(c: Controller, kind: str, name: str = "hello") -> dict[str, tuple[str, str, str]]:
    [obj] = c.get(kind, "default", name)
    return {
        x["type"]: (x["status"], x.get("reason", ""), x.get("message", ""))
        for x in obj["status"]["conditions"]
    }


def ready_of(c: Controller, kind: str, name: str = "hello") -> tuple[str, str, str]:
    return conditions(c, kind, name)["Ready"]


@pytest.fixture
def c() -> Controller:
    c = Controller(0.0)
    c.apply(load(HELLO_V1, "v1.yaml"), now=1.0)
    return c


def test_while_deploying_everything_is_unknown(c: Controller) -> None:
    assert conditions(c, "rev", "hello-00001") == {
        "Active": ("Unknown", "Deploying", ""),
        "ContainerHealthy": ("Unknown", "Deploying", ""),
        "ResourcesAvailable": ("Unknown", "Deploying", ""),
        "Ready": ("Unknown", "Deploying", ""),
    }
    assert ready_of(c, "config") == ("Unknown", "", "")
    waiting = 'Configuration "hello" is waiting for a Revision to become ready.'
    # Programmed provisionally (the activator holds requests meanwhile), still not Ready.
    assert conditions(c, "route") == {
        "AllTrafficAssigned": ("Unknown", "RevisionMissing", waiting),
        "IngressReady": ("True", "", ""),
        "Ready": ("Unknown", "RevisionMissing", waiting),
    }
    # kubectl shows a new ksvc as "Unknown RevisionMissing", as upstream.
    assert c.table("ksvc", "default")[1] == [
        ["hello", "http://hello.default.localhost", "hello-00001", "", "Unknown", "RevisionMissing"]
    ]


def test_command_exiting_at_start_fails_with_the_runtimes_message(c: Controller) -> None:
    c.set_revision_state(V1, ready=False, reason="ExitCode1", message=CRASH, now=2.0)
    assert conditions(c, "rev", "hello-00001")["ContainerHealthy"] == ("False", "ExitCode1", CRASH)
    assert ready_of(c, "rev", "hello-00001") == ("False", "ExitCode1", CRASH)
    failed = ("False", "RevisionFailed", f'Revision "hello-00001" failed with message: {CRASH}.')
    assert ready_of(c, "config") == failed
    assert ready_of(c, "route") == (
        "False",
        "RevisionMissing",
        'Configuration "hello" does not have any ready Revision.',
    )
    assert conditions(c, "ksvc") == {
        "ConfigurationsReady": failed,
        "RoutesReady": (
            "False",
            "RevisionMissing",
            'Configuration "hello" does not have any ready Revision.',
        ),
        "Ready": failed,
    }
    assert c.table("ksvc", "default")[1][0][-2:] == ["False", "RevisionFailed"]
    # Without a reason from the runtime, the revision's own reason is RevisionFailed too.
    c.set_revision_state(V1, ready=False, message="exited", now=3.0)
    assert ready_of(c, "rev", "hello-00001") == ("False", "RevisionFailed", "exited")


def test_recovery_makes_everything_ready(c: Controller) -> None:
    c.set_revision_state(V1, ready=False, reason="ExitCode1", message=CRASH, now=2.0)
    c.set_revision_state(V1, ready=True, actual_replicas=1, desired_replicas=1, now=3.0)
    for kind in ("rev", "config", "route", "ksvc"):
        name = "hello-00001" if kind == "rev" else "hello"
        assert ready_of(c, kind, name) == ("True", "", ""), kind
    assert c.table("ksvc", "default")[1][0][-2:] == ["True", ""]


def test_progress_deadline_is_a_resources_failure(c: Controller) -> None:
    c.set_revision_state(
        V1,
        ready=False,
        reason="ProgressDeadlineExceeded",
        message="did not become ready in 600s",
        now=2.0,
    )
    cond = conditions(c, "rev", "hello-00001")
    assert cond["ResourcesAvailable"] == (
        "False",
        "ProgressDeadlineExceeded",
        "did not become ready in 600s",
    )
    assert cond["ContainerHealthy"] == ("Unknown", "Deploying", "")
    assert cond["Ready"][:2] == ("False", "ProgressDeadlineExceeded")


@pytest.mark.parametrize(
    ("actual", "desired", "active"),
    [
        pytest.param(None, None, ("Unknown", "Deploying", ""), id="unknown"),
        pytest.param(1, 1, ("True", "", ""), id="up"),
        pytest.param(
            0,
            0,
            ("False", "NoTraffic", "The target is not receiving traffic."),
            id="scaled-to-zero",
        ),
        pytest.param(0, 2, ("Unknown", "Activating", "Scaling from 0 to 2."), id="activating"),
    ],
)
def test_active_follows_replicas_and_does_not_affect_ready(
    c: Controller, actual: int | None, desired: int | None, active: tuple[str, str, str]
) -> None:
    c.set_revision_state(V1, ready=True, actual_replicas=actual, desired_replicas=desired, now=2.0)
    assert conditions(c, "rev", "hello-00001")["Active"] == active
    assert ready_of(c, "rev", "hello-00001") == ("True", "", "")
    status = c.get("rev", "default", "hello-00001")[0]["status"]
    assert (status.get("actualReplicas"), status.get("desiredReplicas")) == (actual, desired)


def pin(c: Controller, *targets: dict[str, Any], now: float) -> None:
    c.apply(
        load(dump(edit(doc(HELLO_V1), ("spec", "traffic"), list(targets))), "pin.yaml"), now=now
    )


def test_named_revision_that_does_not_exist_keeps_the_previous_programming(c: Controller) -> None:
    c.set_revision_state(V1, ready=True, now=2.0)
    pin(c, {"revisionName": "hello-00009", "percent": 100}, now=3.0)
    missing = (
        "False",
        "RevisionMissing",
        'Revision "hello-00009" referenced in traffic not found.',
    )
    assert ready_of(c, "route") == missing
    assert conditions(c, "ksvc")["RoutesReady"] == missing
    assert ready_of(c, "ksvc") == missing
    # The data plane keeps serving what worked, and status.traffic says so.
    assert c.routing_table()[0].targets == (Target(V1, 100),)
    assert c.get("ksvc")[0]["status"]["traffic"] == [
        {"revisionName": "hello-00001", "latestRevision": True, "percent": 100}
    ]


def test_named_revision_of_another_service_is_refused(c: Controller) -> None:
    other = edit(doc(HELLO_V1), ("metadata", "name"), "other")
    c.apply(load(dump(other), "o.yaml"), now=2.0)
    c.set_revision_state(RevisionKey("default", "other-00001"), ready=True, now=3.0)
    pin(c, {"revisionName": "other-00001", "percent": 100}, now=4.0)
    assert ready_of(c, "route") == (
        "False",
        "RevisionMissing",
        'Revision "other-00001" belongs to Configuration "other", not to Service "hello".',
    )


def test_named_revision_not_ready_yet_is_unknown(c: Controller) -> None:
    pin(c, {"revisionName": "hello-00001", "percent": 100}, now=2.0)
    assert ready_of(c, "route") == (
        "Unknown",
        "RevisionMissing",
        'Revision "hello-00001" referenced in traffic is not ready yet.',
    )


def test_standalone_route_to_a_missing_configuration() -> None:
    c = Controller(0.0)
    route = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Route",
        "metadata": {"name": "r"},
        "spec": {"traffic": [{"configurationName": "nope", "percent": 100}]},
    }
    c.apply(load(dump(route), "r.yaml"), now=1.0)
    assert conditions(c, "route", "r") == {
        "AllTrafficAssigned": (
            "False",
            "ConfigurationMissing",
            'Configuration "nope" referenced in traffic not found.',
        ),
        "IngressReady": ("Unknown", "IngressNotConfigured", "Ingress has not yet been reconciled."),
        "Ready": (
            "False",
            "ConfigurationMissing",
            'Configuration "nope" referenced in traffic not found.',
        ),
    }
    assert c.routing_table() == []


def test_last_transition_time_moves_only_when_the_status_changes(c: Controller) -> None:
    def since() -> str:
        [rev] = c.get("rev", "default", "hello-00001")
        return next(
            x["lastTransitionTime"] for x in rev["status"]["conditions"] if x["type"] == "Ready"
        )

    assert since() == "1970-01-01T00:00:01Z"
    c.set_revision_state(V1, ready=None, actual_replicas=0, desired_replicas=1, now=5.0)
    assert since() == "1970-01-01T00:00:01Z"
    c.set_revision_state(V1, ready=True, now=7.0)
    assert since() == "1970-01-01T00:00:07Z"
    c.set_revision_state(V1, ready=True, actual_replicas=0, desired_replicas=0, now=9.0)
    assert since() == "1970-01-01T00:00:07Z"
    c.set_revision_state(V1, ready=False, message="crashed", now=11.0)
    assert since() == "1970-01-01T00:00:11Z"


def test_no_verdict_keeps_the_last_one(c: Controller) -> None:
    c.set_revision_state(V1, ready=True, actual_replicas=1, desired_replicas=1, now=2.0)
    # Scaled to zero, the runtime has no replica to ask: the revision stays Ready.
    c.set_revision_state(V1, ready=None, actual_replicas=0, desired_replicas=0, now=3.0)
    assert ready_of(c, "rev", "hello-00001") == ("True", "", "")
    assert conditions(c, "rev", "hello-00001")["Active"][:2] == ("False", "NoTraffic")
    assert ready_of(c, "ksvc") == ("True", "", "")
    c.set_revision_state(V1, ready=False, reason="ExitCode1", message=CRASH, now=4.0)
    c.set_revision_state(V1, ready=None, now=5.0)
    assert ready_of(c, "rev", "hello-00001") == ("False", "ExitCode1", CRASH)


def test_unknown_revision_reports_are_ignored(c: Controller) -> None:
    version = c.version
    assert c.set_revision_state(RevisionKey("default", "gone-00001"), ready=True, now=2.0) is False
    assert c.version == version


def test_the_same_report_again_changes_nothing(c: Controller) -> None:
    # The local runtime reports every revision at each change of any one; a report
    # that says nothing new leaves every object as it was (and is not reconciled).
    c.set_revision_state(V1, ready=True, actual_replicas=1, desired_replicas=1, now=2.0)
    before = {kind: c.get(kind, "default") for kind in ("ksvc", "config", "rev", "route")}
    assert c.set_revision_state(V1, ready=True, actual_replicas=1, desired_replicas=1, now=9.0)
    assert {kind: c.get(kind, "default") for kind in before} == before
    # a report of no verdict is the last verdict again
    assert c.set_revision_state(V1, ready=None, actual_replicas=1, desired_replicas=1, now=10.0)
    assert {kind: c.get(kind, "default") for kind in before} == before
