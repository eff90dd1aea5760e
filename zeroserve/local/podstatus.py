"""A local replica as the API server and kubectl show a pod.

:class:`PodStatus` holds what the kubelet would report (each container's state, last
state, readiness and restart count); ``to_object`` is ``kubectl get pod -o yaml``'s
Pod, and the ``*_column`` methods are ``kubectl get pods``' READY, STATUS and RESTARTS,
following kubectl's printer (kubernetes ``pkg/printers/internalversion/printers.go``,
``printPod``): the pod's phase, overridden by the init containers' progress, then by
the containers' states (a waiting or terminated reason), then ``Terminating``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


def rfc3339(t: float) -> str:
    """``2026-12-05T01:02:03Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def human_duration(seconds: float) -> str:
    """kubectl's short ages (apimachinery ``duration.HumanDuration``): 5s, 3m10s, 120m,
    5h30m, 20h, 3d4h, 30d."""
    s = int(max(0, seconds))
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = s // 3600
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    if h < 24 * 8:
        return f"{h // 24}d{h % 24}h" if h % 24 else f"{h // 24}d"
    return f"{h // 24}d"


@dataclass
class ContainerState:
    kind: str
    """``waiting`` | ``running`` | ``terminated``."""
    reason: str = ""
    message: str = ""
    exit_code: int | None = None
    signal: int | None = None
    started_at: float | None = None
    finished_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.kind == "terminated":
            body["exitCode"] = self.exit_code if self.exit_code is not None else 0
            if self.signal:
                body["signal"] = self.signal
        if self.reason:
            body["reason"] = self.reason
        if self.message:
            body["message"] = self.message
        if self.started_at is not None:
            body["startedAt"] = rfc3339(self.started_at)
        if self.kind == "terminated" and self.finished_at is not None:
            body["finishedAt"] = rfc3339(self.finished_at)
        return {self.kind: body}


def _creating() -> ContainerState:
    return ContainerState("waiting", "ContainerCreating")


@dataclass
class ContainerStatus:
    name: str
    ready: bool = False
    started: bool = False
    restart_count: int = 0
    state: ContainerState = field(default_factory=_creating)
    last_state: ContainerState | None = None
    image: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "image": self.image,
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": self.state.to_dict(),
            "lastState": self.last_state.to_dict() if self.last_state is not None else {},
        }


@dataclass
class PodStatus:
    name: str
    namespace: str
    uid: str
    labels: dict[str, str]
    annotations: dict[str, str]
    created_at: float
    pod_ip: str = ""
    host_ip: str = ""
    phase: str = "Pending"
    terminating: bool = False
    deleted_at: float | None = None
    init_containers: list[ContainerStatus] = field(default_factory=list)
    containers: list[ContainerStatus] = field(default_factory=list)
    spec: dict[str, Any] = field(default_factory=dict)

    # -- kubectl get pods ---------------------------------------------------------

    def _count(self) -> int:
        return len(self.containers) or len(self.spec.get("containers", ()))

    def ready_column(self) -> str:
        ready = sum(1 for c in self.containers if c.ready)
        return f"{ready}/{self._count()}"

    def status_column(self) -> str:
        """kubectl's STATUS: the phase; then the first init container not done
        (``Init:Error``, ``Init:CrashLoopBackOff``, ``Init:i/n``); then, the first
        container winning, a waiting reason or a terminated reason (``Signal:n`` /
        ``ExitCode:n`` when it has none); a pod with a running container and not
        ready shows ``NotReady`` only when its Ready condition says so at the
        ``Completed`` step, else ``Running``; ``Terminating`` when being deleted."""
        reason = self.phase
        initializing = False
        for i, c in enumerate(self.init_containers):
            st = c.state
            if st.kind == "terminated" and st.exit_code == 0:
                continue
            if st.kind == "terminated":
                if st.reason:
                    reason = f"Init:{st.reason}"
                elif st.signal:
                    reason = f"Init:Signal:{st.signal}"
                else:
                    reason = f"Init:ExitCode:{st.exit_code}"
            elif st.kind == "waiting" and st.reason and st.reason != "PodInitializing":
                reason = f"Init:{st.reason}"
            else:
                reason = f"Init:{i}/{len(self.init_containers)}"
            initializing = True
            break
        if not initializing:
            has_running = False
            for c in reversed(self.containers):
                st = c.state
                if (st.kind == "waiting" and st.reason) or (st.kind == "terminated" and st.reason):
                    reason = st.reason
                elif st.kind == "terminated":
                    reason = f"Signal:{st.signal}" if st.signal else f"ExitCode:{st.exit_code}"
                elif st.kind == "running" and c.ready:
                    has_running = True
                    reason = "Running"
                elif st.kind == "running":
                    has_running = True
            if reason == "Completed" and has_running:
                reason = "Running" if self.ready() else "NotReady"
        if self.terminating:
            reason = "Terminating"
        return reason

    def restarts_column(self, now: float) -> str:
        """Restarts of every container, with ``(5s ago)`` for the latest termination."""
        statuses = [*self.init_containers, *self.containers]
        restarts = sum(c.restart_count for c in statuses)
        finished = [
            c.last_state.finished_at
            for c in statuses
            if c.last_state is not None and c.last_state.finished_at is not None
        ]
        if restarts and finished:
            return f"{restarts} ({human_duration(now - max(finished))} ago)"
        return str(restarts)

    def ready(self) -> bool:
        return bool(self.containers) and all(c.ready for c in self.containers)

    # -- kubectl get pod -o yaml --------------------------------------------------

    def _conditions(self) -> list[dict[str, Any]]:
        inits_done = all(
            c.state.kind == "terminated" and c.state.exit_code == 0 for c in self.init_containers
        )
        ready = self.ready()
        t = rfc3339(self.created_at)

        def cond(kind: str, ok: bool, reason: str) -> dict[str, Any]:
            out: dict[str, Any] = {"type": kind, "status": "True" if ok else "False"}
            out["lastTransitionTime"] = t
            if not ok and reason:
                out["reason"] = reason
            return out

        return [
            cond("PodScheduled", True, ""),
            cond("Initialized", inits_done, "ContainersNotInitialized"),
            cond("ContainersReady", ready, "ContainersNotReady"),
            cond("Ready", ready, "ContainersNotReady"),
        ]

    def to_object(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "uid": self.uid,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "creationTimestamp": rfc3339(self.created_at),
        }
        if self.terminating:
            meta["deletionTimestamp"] = rfc3339(self.deleted_at or time.time())
        status: dict[str, Any] = {
            "phase": self.phase,
            "conditions": self._conditions(),
            "hostIP": self.host_ip,
            "podIP": self.pod_ip,
            "podIPs": [{"ip": self.pod_ip}] if self.pod_ip else [],
            "startTime": rfc3339(self.created_at),
            "containerStatuses": [c.to_dict() for c in self.containers],
        }
        if self.init_containers:
            status["initContainerStatuses"] = [c.to_dict() for c in self.init_containers]
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": meta,
            "spec": dict(self.spec),
            "status": status,
        }
