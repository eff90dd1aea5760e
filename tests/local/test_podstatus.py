"""kubectl's view of a local replica: READY, STATUS, RESTARTS and the Pod object."""

from __future__ import annotations

import pytest
import yaml

from zeroserve.local.podstatus import (
    ContainerState,
    ContainerStatus,
    PodStatus,
    human_duration,
)

RUNNING = ContainerState("running", started_at=0)


def _pod(
    *containers: ContainerStatus, inits: tuple[ContainerStatus, ...] = (), **kw: object
) -> PodStatus:
    return PodStatus(
        "p", "default", "u", {}, {}, 0.0, init_containers=list(inits), containers=list(containers),
        spec={"containers": [{"name": "user-container"}, {"name": "queue-proxy"}]}, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def _c(state: ContainerState, ready: bool = False, restarts: int = 0) -> ContainerStatus:
    return ContainerStatus("c", ready=ready, restart_count=restarts, state=state)


DONE = ContainerState("terminated", "Completed", exit_code=0)
FAILED = ContainerState("terminated", "Error", exit_code=1)
WAIT_INIT = ContainerState("waiting", "PodInitializing")


@pytest.mark.parametrize(
    ("pod", "status"),
    [
        (_pod(phase="Pending"), "Pending"),
        (_pod(_c(WAIT_INIT), inits=(_c(RUNNING), _c(WAIT_INIT))), "Init:0/2"),
        (_pod(_c(WAIT_INIT), inits=(_c(DONE), _c(RUNNING))), "Init:1/2"),
        (_pod(_c(WAIT_INIT), inits=(_c(FAILED),)), "Init:Error"),
        (_pod(_c(WAIT_INIT), inits=(_c(ContainerState("waiting", "CrashLoopBackOff")),)), "Init:CrashLoopBackOff"),
        (_pod(_c(WAIT_INIT), inits=(_c(DONE),)), "PodInitializing"),
        (_pod(_c(ContainerState("waiting", "ContainerCreating"))), "ContainerCreating"),
        (_pod(_c(ContainerState("waiting", "CreateContainerConfigError"))), "CreateContainerConfigError"),
        (_pod(_c(RUNNING, ready=True), _c(RUNNING, ready=True), phase="Running"), "Running"),
        (_pod(_c(RUNNING), _c(RUNNING), phase="Running"), "Running"),  # 0/2, still Running
        (_pod(_c(ContainerState("terminated", "OOMKilled", exit_code=137)), _c(RUNNING)), "OOMKilled"),
        (_pod(_c(FAILED)), "Error"),
        (_pod(_c(ContainerState("terminated", exit_code=2))), "ExitCode:2"),
        (_pod(_c(ContainerState("terminated", signal=9))), "Signal:9"),
        (_pod(_c(ContainerState("waiting", "CrashLoopBackOff")), _c(RUNNING)), "CrashLoopBackOff"),
        (_pod(_c(RUNNING, ready=True), phase="Running", terminating=True), "Terminating"),
    ],
)  # fmt: skip
def test_status_column_follows_kubectl(pod: PodStatus, status: str) -> None:
    assert pod.status_column() == status


def test_ready_and_restarts_columns() -> None:
    finished = ContainerState("terminated", "Error", exit_code=1, finished_at=100.0)
    app = ContainerStatus(
        "user-container", ready=True, restart_count=2, state=RUNNING, last_state=finished
    )
    qp = ContainerStatus("queue-proxy", ready=False, state=RUNNING)
    pod = _pod(app, qp, phase="Running")
    assert pod.ready_column() == "1/2"
    assert pod.restarts_column(now=105.0) == "2 (5s ago)"
    assert pod.restarts_column(now=100.0 + 3 * 60 + 10) == "2 (3m10s ago)"
    assert _pod(phase="Pending").ready_column() == "0/2"  # no statuses yet: the spec counts
    assert _pod(qp).restarts_column(now=1.0) == "0"
    ages = (5, 119, 600, 7200, 5 * 3600 + 1800, 20 * 3600, 76 * 3600, 30 * 86400)
    assert [human_duration(s) for s in ages] == [
        "5s", "119s", "10m", "120m", "5h30m", "20h", "3d4h", "30d"
    ]  # fmt: skip


def test_the_pod_object_is_a_v1_pod_with_container_statuses() -> None:
    oom = ContainerState(
        "terminated", "OOMKilled", exit_code=137, started_at=10.0, finished_at=12.0
    )
    app = ContainerStatus("user-container", restart_count=1, state=ContainerState("waiting", "CrashLoopBackOff", "back-off"), last_state=oom)  # fmt: skip
    qp = ContainerStatus("queue-proxy", ready=True, started=True, state=RUNNING)
    pod = _pod(app, qp, phase="Running", pod_ip="198.18.0.2", host_ip="198.18.0.1")
    obj = yaml.safe_load(yaml.safe_dump(pod.to_object()))
    assert (obj["apiVersion"], obj["kind"]) == ("v1", "Pod")
    status = obj["status"]
    assert status["podIP"] == "198.18.0.2" and status["podIPs"] == [{"ip": "198.18.0.2"}]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert (
        conditions["Ready"]["status"] == "False"
        and conditions["Ready"]["reason"] == "ContainersNotReady"
    )
    assert conditions["PodScheduled"]["status"] == "True"
    a = status["containerStatuses"][0]
    assert a["state"] == {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}
    assert a["lastState"]["terminated"] == {
        "exitCode": 137, "reason": "OOMKilled",
        "startedAt": "1970-01-01T00:00:10Z", "finishedAt": "1970-01-01T00:00:12Z",
    }  # fmt: skip
    assert status["containerStatuses"][1]["lastState"] == {}
    assert "deletionTimestamp" not in obj["metadata"]
