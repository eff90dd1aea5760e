"""What the cluster says about a revision's pods: ready replicas from its private
EndpointSlices, desired replicas from its Deployment, and why it fails, if it does.

Pure: cache contents in, an :class:`Observation` out. The verdict follows upstream's
revision reconciler in spirit: a revision is ready once one of its pods is (its
queue-proxy passed the kubelet's probe, so the app passed its own); it failed when, with
no pod ready, a container crash-loops (reason ``ExitCode<n>``, the message from the
container's termination message, which ``FallbackToLogsOnError`` fills with the log's
tail), an image cannot be pulled, a pod cannot be scheduled, or the Deployment gave up
(``ProgressDeadlineExceeded``). Anything else is "no verdict": the caller keeps the last
one, so a ready revision scaled to zero stays Ready.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from zeroserve.api.objects import Obj
from zeroserve.knative import is_private_slice

_WAITING_FAILURES = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)


@dataclass(frozen=True, slots=True)
class Observation:
    ready: bool | None
    """True: a pod is ready; False: failing (``reason``, ``message``); None: no verdict."""
    reason: str = ""
    message: str = ""
    actual_replicas: int | None = None
    """Ready pods; None before the revision has a Deployment."""
    desired_replicas: int | None = None
    """The Deployment's ``spec.replicas`` (what the autoscaler set)."""


def ready_pods(slices: Iterable[Obj]) -> set[str]:
    """Names (or addresses) of the ready, not terminating endpoints of private slices."""
    found: set[str] = set()
    for endpoint_slice in slices:
        if not is_private_slice(endpoint_slice):
            continue
        for endpoint in endpoint_slice.get("endpoints") or ():
            conditions = endpoint.get("conditions") or {}
            addresses = endpoint.get("addresses") or ()
            if conditions.get("ready") is False or conditions.get("terminating") or not addresses:
                continue
            target = endpoint.get("targetRef") or {}
            found.add(str(target.get("name") or addresses[0]))
    return found


def _container_failure(status: Obj) -> tuple[str, str] | None:
    state = status.get("state") or {}
    waiting = state.get("waiting") or {}
    reason = str(waiting.get("reason") or "")
    if reason in _WAITING_FAILURES:
        return reason, str(waiting.get("message") or reason)
    # Crash-looping: the exit that started the loop is in lastState; a container that
    # has just exited (and will be restarted) shows it in state.
    last = status.get("lastState") or {}
    terminated = (last if reason == "CrashLoopBackOff" else state).get("terminated") or {}
    code = terminated.get("exitCode")
    if code:
        detail = str(terminated.get("message") or terminated.get("reason") or "").strip()
        return (
            f"ExitCode{code}",
            f"Container failed with: {detail}" if detail else "Container failed.",
        )
    if reason == "CrashLoopBackOff":
        return reason, str(waiting.get("message") or "The container keeps crashing.")
    return None


def pod_failure(pod: Obj, user_container: str) -> tuple[str, str] | None:
    """(reason, message) when the pod cannot serve: its user container first, then the
    queue-proxy, then scheduling."""
    status = pod.get("status") or {}
    statuses = sorted(
        status.get("containerStatuses") or (), key=lambda s: s.get("name") != user_container
    )
    for container in statuses:
        failure = _container_failure(container)
        if failure is not None:
            return failure
    for condition in status.get("conditions") or ():
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            return "Unschedulable", str(condition.get("message") or "The pod cannot be scheduled.")
    return None


def deployment_failure(deployment: Obj) -> tuple[str, str] | None:
    for condition in (deployment.get("status") or {}).get("conditions") or ():
        kind, status = condition.get("type"), condition.get("status")
        if (
            kind == "Progressing"
            and status == "False"
            and condition.get("reason") == "ProgressDeadlineExceeded"
        ):
            return "ProgressDeadlineExceeded", str(condition.get("message") or "")
        if kind == "ReplicaFailure" and status == "True":
            # Knative takes the condition's reason and message as they are (FailedCreate,
            # with the apiserver's refusal: k8s_lifecycle.go TransformDeploymentStatus)
            reason = str(condition.get("reason") or "ResourcesUnavailable")
            return reason, str(condition.get("message") or reason)
    return None


def observe(
    deployment: Obj | None, slices: Iterable[Obj], pods: Iterable[Obj], *, user_container: str
) -> Observation:
    """The revision's state from its Deployment, its private EndpointSlices and its Pods."""
    ready = ready_pods(slices)
    desired = None
    if deployment is not None:
        replicas = (deployment.get("spec") or {}).get("replicas")
        desired = 1 if replicas is None else int(replicas)
    actual = len(ready) if deployment is not None or ready else None
    if ready:
        return Observation(True, actual_replicas=actual, desired_replicas=desired)
    failure = None
    for pod in sorted(pods, key=lambda p: (p.get("metadata") or {}).get("name", "")):
        failure = pod_failure(pod, user_container)
        if failure is not None:
            break
    if failure is None and deployment is not None:
        failure = deployment_failure(deployment)
    if failure is None:
        return Observation(None, actual_replicas=actual, desired_replicas=desired)
    return Observation(False, failure[0], failure[1], actual, desired)
