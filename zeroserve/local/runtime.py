"""The local runtime: every revision's replicas as process pairs on this machine.

A ``RevisionSet`` keeps its revision at the replica count the autoscaler last
applied, like a Deployment: it starts replicas (the user's command plus a
queue-proxy), publishes each one's endpoint as soon as its queue-proxy
listens (not ready: the activator probes it and uses it the moment the app
answers) and again once its own readiness check passed (ready: the
autoscaler counts it), restarts crashed ones with a growing back-off
(CrashLoopBackOff), and on scale-down takes the victim out of the endpoints
first, then lets its queue-proxy drain, then stops the app. At most
``max_starting`` replicas of a revision start at once (the others are
Pending): on one machine, thirty replicas started together share the CPU and
the first is ready only when nearly all are, while a few at a time put the
first one to work within one start time. Its revision is
Ready once a replica was ready; a command that exits before any replica was
ready makes it fail with the exit code and the last lines of its output.

A replica's env is made when it starts, as the kubelet makes a container's
(:mod:`zeroserve.local.env`): references to Secrets and ConfigMaps read the
objects as they are then. A missing one (not optional) leaves the replica
waiting in ``CreateContainerConfigError`` (its revision not ready, with the
kubelet's message) and retried with the back-off, at once when objects are
applied (:meth:`LocalRuntime.objects_changed`).

A replica is a pod's containers (docs/local-mode.md, "Init containers and sidecars"):
its init containers run first, in order, each to completion, and one that fails
fails that start (``Init:Error``, then ``Init:CrashLoopBackOff``; before any replica
was ready the revision shows ``ExitCode<n>`` with the init container's name and
output); its sidecars run with the app, and one that exits restarts the whole
replica (a pod would restart only that container).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import string
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from zeroserve.api.objects import Container, RevisionTemplate
from zeroserve.knative import CONFIGURATION_LABEL, REVISION_LABEL, SERVICE_LABEL
from zeroserve.observability import ObservabilityConfig
from zeroserve.serving.revisions import DEFAULT_CONTAINER_NAME, container_names
from zeroserve.topology import Endpoint, RevisionInfo, RevisionKey

from .env import EnvError, Lookup, Node, PodFacts, node_name, resolve_env
from .hostrelay import LoopbackRelay
from .podstatus import ContainerState, ContainerStatus, PodStatus
from .replica import (
    QUEUE_PROXY,
    ContainerProcess,
    ContainerRun,
    InitContainerError,
    Replica,
    ReplicaError,
    ReplicaSpec,
    StartError,
    log_tail,
    resolve_command,
)
from .sandbox import PodSandbox, Sandbox, SandboxError, VolumeError
from .standby import StandbyPool
from .starts import StartsUnderWay

log = logging.getLogger(__name__)

# The kubelet's container restart back-off: 10 s, doubling, capped at 5 minutes, and
# forgotten once a container ran 10 minutes (twice the cap) without exiting
# (pkg/kubelet/kubelet.go backOffPeriod and MaxContainerBackOff; client-go's
# util/flowcontrol/backoff.go hasExpired; the "Container restart policy" of the Pod
# lifecycle docs).
RESTART_BACKOFF_START = 10.0
RESTART_BACKOFF_MAX = 300.0
# A replica waiting for a Secret or ConfigMap (CreateContainerConfigError) is retried
# sooner, and at once when objects are applied: nothing crashed.
CONFIG_RETRY_START = 1.0
CONFIG_RETRY_MAX = 30.0
READY_TIMEOUT = 600.0  # progress deadline: a replica not ready by then is restarted
READY_PUBLISH_DELAY = 0.01
"""Seconds between the runtime's probe seeing a new replica ready and publishing it.
The activator's own probe of that replica passes in the same instant and it forwards
the request it holds at once; publishing is the most CPU a start costs ``zeroserve
up`` (the controller's status, the events, the snapshot for each follower, which the
autoscaler and the activator then read), so it waits until that request had the CPU
(published at once, it delayed a cold start's first byte by 2 ms on one shared CPU:
docs/local-mode.md, "Cold start CPU"). Nothing waits for it: the activator routes by its own probe."""


@dataclass(frozen=True)
class RevisionRun:
    """What to run for a revision (from the controller)."""

    info: RevisionInfo
    command: tuple[str, ...]
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    readiness_probe: Mapping[str, Any] | None = None
    working_dir: str | None = None
    template: RevisionTemplate | None = None
    """The revision's template: when given, the serving container's ``env`` and
    ``envFrom`` are resolved at each replica start (``env`` above is then ignored)."""
    container_name: str = ""
    """The serving container's name as defaulted (``user-container``)."""


class RestartBackoff:
    """When a replica whose container exited starts again, as the kubelet restarts a
    crashed container (CrashLoopBackOff): the first exit restarts it at once, each next
    one after the current delay (10 s, 20 s, 40 s ... 300 s); an exit more than twice the
    cap (10 minutes) after the last restart counts as a first exit again.

    Times are passed in (any monotonic clock), so the arithmetic is decided without
    waiting; ``RevisionSet`` passes ``time.monotonic()``."""

    def __init__(
        self, start: float = RESTART_BACKOFF_START, cap: float = RESTART_BACKOFF_MAX
    ) -> None:
        self.start = start
        self.cap = cap
        self.delay = 0.0
        """The wait before the next restart (0: none yet, the next exit restarts at once)."""
        self.since = 0.0
        """When the back-off last advanced (the kubelet's ``lastUpdate``: a restart)."""

    def next_wait(self, exited_at: float) -> float:
        """Seconds to wait before restarting a container that exited at ``exited_at``;
        the back-off advances as of the restart."""
        if not self.delay or exited_at - self.since > 2 * self.cap:
            self.delay, self.since = self.start, exited_at
            return 0.0
        wait = self.delay
        self.delay = min(self.delay * 2, self.cap)
        self.since = exited_at + wait
        return wait


@dataclass
class PodView:
    """One replica, as ``zeroserve get pods`` shows it."""

    name: str
    revision: RevisionKey
    status: str
    """Pending | Init:i/n | Init:Error | Init:CrashLoopBackOff | Starting | Running |
    Terminating | CrashLoopBackOff | a waiting reason (kubectl's STATUS words)."""
    ready: bool
    restarts: int
    started_at: float
    endpoint: Endpoint | None
    last_exit: str = ""
    times: dict[str, float] = field(default_factory=dict)
    """Unix times of this replica's last start: ``requested`` (the replica
    count asked for it), ``spawned`` (processes started), ``listening`` (its
    queue-proxy listens), ``ready`` (the app answered its readiness probe).
    Cold-start benchmarks split a first request's wait with them."""
    containers: int = 2
    """Its containers as kubectl counts them: the app, the sidecars and the queue-proxy."""
    pod: PodStatus | None = None
    """The pod as the API server would show it (``zeroserve get pods -o yaml``)."""
    metrics_port: int | None = None
    """Its queue-proxy's Prometheus port (at the endpoint's host), once it listens."""


@dataclass
class RevisionState:
    """What the runtime tells the controller about a revision."""

    ready: bool | None = None  # None: not known yet
    reason: str = ""
    message: str = ""
    desired: int | None = None
    actual: int = 0
    backing_off: bool = False
    """It failed (``ready`` False) and every replica of it waits out its restart
    back-off: none is starting, so a request held for it would wait in vain (the
    activator answers such requests at once)."""


class _Pod:
    """One replica slot (restarts keep the slot and its name)."""

    def __init__(self, name: str, backoff: RestartBackoff | None = None) -> None:
        self.name = name
        self.replica: Replica | None = None
        self.endpoint: Endpoint | None = None
        self.ready = False
        self.terminating = False
        self.crashlooping = False
        """Waiting out the restart back-off after its container exited."""
        self.backing_off = False
        """Waiting before its next start: the restart back-off, or a retry of a missing
        Secret or ConfigMap."""
        self.backoff = backoff or RestartBackoff()
        """Its restarts' back-off; kept across restarts, as the kubelet keeps it per
        container."""
        self.pending = True  # waiting for a start slot
        self.restarts = 0
        self.started_at = time.time()
        self.created_at = self.started_at
        """When the slot was made (``creationTimestamp``); restarts keep it."""
        self.last_exit = ""
        self.task: asyncio.Task[None] | None = None
        self.times: dict[str, float] = {"requested": self.started_at}
        self.uid = str(uuid.uuid4())
        """``metadata.uid``: stable for the slot, as a pod's across container restarts."""
        self.waiting = ""
        """A waiting reason such as ``CreateContainerConfigError``; empty otherwise."""
        self.init = ""
        """``Init:i/n`` while init container i runs, ``Init:Error`` or
        ``Init:CrashLoopBackOff`` after one failed; empty once they all succeeded."""
        self.init_failures = 0
        """Init container failures in a row (reset when the replica is ready)."""
        self.exit: tuple[str, int | None] | None = None
        """The container whose exit ended the last start (``app``, ``sidecar NAME``,
        ``init container NAME``, ``queue-proxy``) and its exit code."""
        self.sandbox: PodSandbox | None = None
        """Its network, volumes and cgroups; made at its first start, kept across
        restarts (as a pod's sandbox), removed when it stops."""
        self.out_of_rotation = False
        """Its readiness probe failed after it was ready: out of the endpoints until it
        passes again."""
        self.restart_counts: dict[str, int] = {}
        """Per container: how often its exit ended a start (``restartCount``)."""
        self.last_states: dict[str, ContainerState] = {}
        """Per container: how its last run ended (``lastState.terminated``)."""
        self.oom = False
        """The last start ended with a container killed for its memory limit."""
        self.start_error = ""
        """Why the last start could not even run a container's command (empty: it ran)."""
        self.start_failed = ""
        """The name of that container."""


def default_max_starting() -> int:
    """One replica per CPU this process may use, at least two: the first
    replicas of a burst start nearly as fast as on an idle machine."""
    return max(2, len(os.sched_getaffinity(0)))


def _pod_name(revision: str) -> str:
    suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
    return f"{revision}-deployment-{suffix}"


def init_status(failures: int) -> str:
    """kubectl's STATUS of a pod whose init container failed ``failures`` times in a
    row, while it waits to run it again."""
    return "Init:Error" if failures <= 1 else "Init:CrashLoopBackOff"


def failure_condition(
    exited: tuple[str, int | None] | None, tail: str, last_exit: str, *, oom: bool = False
) -> tuple[str, str]:
    """The revision's (reason, message) when a replica's start failed before any was
    ready: as Knative reports a terminated container, ``ExitCode<n>`` and ``Container
    failed with: <the last lines of its output>``; for an init container the same shape,
    naming it (``Init container NAME failed with: ...``). An exit with no code (the
    queue-proxy's, or a command that could not start) is ``ContainerFailed``. A container
    killed for its memory limit (``oom``) is ``ExitCode137`` with a message that starts
    with the kubelet's reason, ``OOMKilled``, and says which limit."""
    what, code = exited if exited is not None else ("", None)
    reason = f"ExitCode{code}" if code is not None and what != "queue-proxy" else "ContainerFailed"
    if oom:
        tail = f"OOMKilled: {last_exit}" + (f" | {tail}" if tail else "")
    if not tail:
        return reason, last_exit
    if what.startswith("init container "):
        return reason, f"Init container {what.removeprefix('init container ')} failed with: {tail}"
    return reason, f"Container failed with: {tail}"


def _probed(c: Container, *, serving: bool) -> Container:
    """``c`` with its probes as the runtime runs them: ``python`` in an exec probe is this
    interpreter, and for the serving container a probe of its ``containerPort`` means the
    app's port (port 0), as Knative points liveness probes at the user port
    (``pkg/reconciler/revision/resources/deploy.go``, rewriteUserLivenessProbe); without a
    pod sandbox that port is not the containerPort."""

    def fix(probe: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        if not probe:
            return probe
        out = dict(probe)
        if isinstance(out.get("exec"), Mapping):
            out["exec"] = {
                **out["exec"],
                "command": resolve_command(out["exec"].get("command", ())),
            }
        for kind in ("httpGet", "tcpSocket", "grpc"):
            handler = out.get(kind)
            mine = isinstance(handler, Mapping) and handler.get("port") in (
                None,
                0,
                c.port.container_port,
            )
            if serving and mine:
                out[kind] = {**handler, "port": 0}  # type: ignore[dict-item]
        return out

    return replace(
        c,
        liveness_probe=fix(c.liveness_probe),
        startup_probe=fix(c.startup_probe),
        readiness_probe=fix(c.readiness_probe),
    )


class RevisionSet:
    """The replicas of one revision."""

    def __init__(self, run: RevisionRun, runtime: LocalRuntime) -> None:
        self.run = run
        self.runtime = runtime
        self.key = run.info.key
        self.desired: int | None = None  # None until the autoscaler says
        self.pods: list[_Pod] = []
        self.state = RevisionState()
        self.ever_ready = False
        self.fastest_start: float | None = None
        """Seconds from the app's spawn to ready, the fastest start of this revision's
        replicas so far (None before the first): when the next replica's app is expected
        to listen (``ReplicaSpec.app_expected_after``; docs/local-mode.md, "Cold start
        CPU"). Only starts that had the machine to themselves count: no other start
        under way, the queue-proxy a standby (a queue-proxy importing its modules, or
        several apps starting, slow an app down, and a start expected too late is seen
        up to 50 ms late)."""
        self._stopping: set[asyncio.Task[None]] = set()
        self._start_slots = asyncio.Semaphore(runtime.max_starting)
        self._objects_changed = asyncio.Event()

    def objects_changed(self) -> None:
        """Secrets or ConfigMaps changed: replicas waiting for them retry now, and the
        files of Secret and ConfigMap volumes are rewritten where they changed."""
        self._objects_changed.set()
        self._objects_changed = asyncio.Event()
        for pod in self.pods:
            if pod.sandbox is not None and not pod.terminating:
                pod.sandbox.refresh_volumes()

    async def _wait_config(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._objects_changed.wait(), seconds)

    # -- the autoscaler's side -------------------------------------------------

    def set_scale(self, replicas: int) -> None:
        self.desired = replicas
        self.state.desired = replicas
        self._reconcile()

    def endpoints(self) -> list[Endpoint]:
        return [
            p.endpoint
            for p in self.pods
            if p.endpoint is not None and not p.terminating and not p.out_of_rotation
        ]

    # -- reconcile ---------------------------------------------------------------

    def _reconcile(self) -> None:
        """Start or stop replicas to match ``desired``; synchronous, so a victim
        is out of the endpoints before ``set_scale`` returns."""
        if self.desired is None:
            return
        live = [p for p in self.pods if not p.terminating]
        for _ in range(self.desired - len(live)):
            pod = _Pod(_pod_name(self.key.name), RestartBackoff(*self.runtime.restart_backoff))
            self.pods.append(pod)
            pod.task = asyncio.get_running_loop().create_task(
                self._run_pod(pod), name=f"pod {pod.name}"
            )
        if len(live) > self.desired:
            # Victims: not ready first (they serve nothing), then the newest.
            order = sorted(live, key=lambda p: (p.ready, -p.started_at))
            for pod in order[: len(live) - self.desired]:
                self._terminate(pod)
        self._changed()

    def _terminate(self, pod: _Pod) -> None:
        pod.terminating = True
        self._changed()  # out of the endpoints before anything stops
        task = asyncio.get_running_loop().create_task(self._stop_pod(pod), name=f"stop {pod.name}")
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _stop_pod(self, pod: _Pod) -> None:
        if pod.task is not None:
            pod.task.cancel()
            await asyncio.gather(pod.task, return_exceptions=True)
        try:
            if pod.replica is not None:
                await pod.replica.stop()
        finally:
            if pod.sandbox is not None:
                sandbox, pod.sandbox = pod.sandbox, None
                try:
                    await sandbox.close()
                except Exception:  # what is left is in the run's journal, removed at stop
                    log.exception("removing the sandbox of replica %s", pod.name)
        if pod in self.pods:
            self.pods.remove(pod)
        self._changed()

    async def _run_pod(self, pod: _Pod) -> None:
        retry = CONFIG_RETRY_START
        while not pod.terminating:
            pod.started_at = time.time()
            if pod.restarts:
                pod.times = {"requested": pod.started_at}
            try:
                if pod.sandbox is None:
                    pod.sandbox = await self._sandbox(pod)
                spec = self._spec(pod)
            except (EnvError, VolumeError, SandboxError) as e:
                # The kubelet cannot create the container: nothing runs, nothing restarts.
                pod.waiting, pod.last_exit = e.reason, e.message
                if not self.ever_ready:
                    self.state.ready, self.state.reason, self.state.message = (
                        False,
                        e.reason,
                        e.message,
                    )
                self._changed()
                pod.backing_off = True
                self._changed()
                log.warning("replica %s of %s: %s: %s", pod.name, self.key, e.reason, e.message)
                await self._wait_config(retry)
                pod.backing_off = False
                retry = min(CONFIG_RETRY_MAX, retry * 2)
                continue
            pod.waiting = ""
            retry = CONFIG_RETRY_START
            replica = Replica(
                spec,
                pod.name,
                log_dir=self.runtime.log_dir,
                pod=pod.sandbox,
                standby=self.runtime.standby,
            )
            replica.on_readiness = lambda ok, pod=pod: self._readiness(pod, ok)
            replica.on_init = lambda i, n, pod=pod: self._init_step(pod, i, n)
            pod.exit, pod.start_error, pod.start_failed = None, "", ""
            pod.oom = False
            pod.replica = replica
            pod.pending = True
            self._changed()
            await self._start_slots.acquire()
            pod.pending, starting = False, True
            self.runtime.starts.begin()
            alone = self.runtime.starts.alone_since()
            try:
                pod.times["spawned"] = time.time()
                await replica.start()
                pod.init = ""
                pod.times["listening"] = time.time()
                pod.endpoint = Endpoint(
                    name=pod.name,
                    host=replica.host,
                    port=replica.serving_port,
                    stats_port=replica.ports["metrics_port"],
                    started_at=pod.started_at,
                    ready=False,
                )
                self._changed()
                ready = asyncio.ensure_future(replica.wait_ready(READY_TIMEOUT))
                exited = asyncio.ensure_future(self._exit_of(replica))
                try:
                    await asyncio.wait({ready, exited}, return_when=asyncio.FIRST_COMPLETED)
                    if ready.done() and ready.exception() is None:
                        pod.times["ready"] = time.time()
                        if (
                            replica.app_spawned_at is not None
                            and replica.took_standby
                            and self.runtime.starts.still_alone(alone)
                        ):
                            took = pod.times["ready"] - replica.app_spawned_at
                            if self.fastest_start is None or took < self.fastest_start:
                                self.fastest_start = took
                        self._start_slots.release()
                        starting = False
                        self.runtime.starts.end()
                        # the request that woke the replica goes first (READY_PUBLISH_DELAY)
                        await asyncio.wait({exited}, timeout=READY_PUBLISH_DELAY)
                        if not exited.done():
                            pod.ready = True
                            pod.out_of_rotation = False
                            pod.crashlooping = False
                            pod.init_failures = 0
                            pod.endpoint = replace(pod.endpoint, ready=True)
                            self._ready_once()
                            self._changed()
                        await exited
                    elif not exited.done():
                        ready.result()  # raises the readiness error
                finally:
                    for f in (ready, exited):
                        f.cancel()
                    await asyncio.gather(ready, exited, return_exceptions=True)
                self._ended(pod, replica.exited_run())
                pod.last_exit = self._describe_exit(replica)
            except InitContainerError as e:
                pod.exit = (f"init container {e.name}", e.code)
                pod.last_exit = str(e)
                pod.init_failures += 1
                pod.init = init_status(pod.init_failures)
                self._ended(pod, replica.init_runs[-1] if replica.init_runs else None)
            except StartError as e:
                pod.exit, pod.start_error, pod.start_failed = (e.what, e.code), str(e), e.name
                pod.last_exit = str(e)
                self._start_failed(pod, e)
            except ReplicaError as e:
                self._ended(pod, replica.exited_run())
                pod.last_exit = str(e)
            finally:
                if starting:
                    self._start_slots.release()
                    self.runtime.starts.end()
            # the replica is gone (crashed, or never got ready)
            exited_at = time.monotonic()
            was_ready = pod.ready
            pod.ready = False
            pod.endpoint = None
            self._changed()
            await replica.stop()
            if pod.terminating:
                return
            pod.restarts += 1
            if not was_ready and not self.ever_ready:
                self._failed(pod)
            wait = pod.backoff.next_wait(exited_at)
            # kubectl shows CrashLoopBackOff while the kubelet waits to restart
            pod.crashlooping = pod.backing_off = wait > 0
            self._changed()
            log.warning(
                "replica %s of %s exited (%s); restarting in %.0fs",
                pod.name,
                self.key,
                pod.last_exit,
                wait,
            )
            if wait:
                await asyncio.sleep(wait)
            pod.crashlooping = pod.backing_off = False

    async def _sandbox(self, pod: _Pod) -> PodSandbox | None:
        """The pod's sandbox (raises :class:`VolumeError` when a volume cannot be set
        up yet); None when the runtime runs plain processes."""
        rt = self.runtime
        if rt.sandbox is None:
            return None
        t = self.run.template
        volumes = list(t.pod.get("volumes") or ()) if t is not None else []
        containers = self._by_name()
        return await rt.sandbox.pod(
            pod.name,
            volumes=volumes,
            namespace=self.key.namespace,
            lookup=rt.lookup,
            facts=lambda ip: self._facts(pod, ip),
            containers=containers,
            node=rt.node,
        )

    def _ended(self, pod: _Pod, run: ContainerRun | None) -> None:
        """A start ended because ``run`` (a container) exited: its restart count and its
        last state, as the kubelet records them."""
        if run is None or run.proc.returncode is None:
            return
        pod.exit = (run.what, run.exit_code)
        pod.oom = run.oom
        pod.restart_counts[run.name] = pod.restart_counts.get(run.name, 0) + 1
        pod.last_states[run.name] = ContainerState(
            "terminated",
            reason=run.reason,
            message=run.killed_by,
            exit_code=run.exit_code,
            started_at=run.started_at,
            finished_at=run.finished_at or time.time(),
        )

    def _start_failed(self, pod: _Pod, e: StartError) -> None:
        """A container's command could not be started: recorded as the kubelet records
        the runtime's ``StartError`` (terminated, exit code 128, the error as message)."""
        now = time.time()
        pod.restart_counts[e.name] = pod.restart_counts.get(e.name, 0) + 1
        pod.last_states[e.name] = ContainerState(
            "terminated",
            reason="StartError",
            message=str(e),
            exit_code=e.code,
            started_at=now,
            finished_at=now,
        )

    async def _exit_of(self, replica: Replica) -> None:
        waits = [p.wait() for p in replica.processes()]
        _, pending = await asyncio.wait(
            [asyncio.ensure_future(w) for w in waits], return_when=asyncio.FIRST_COMPLETED
        )
        for f in pending:
            f.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def _describe_exit(self, replica: Replica) -> str:
        run = replica.exited_run()
        if run is None:
            return "stopped"
        if run.oom:
            limit = f", memory limit {run.memory_limit}" if run.memory_limit else ""
            return f"the {run.what} was OOMKilled (exit code {run.exit_code}{limit})"
        if run.killed_by:
            return f"the {run.what} was killed: {run.killed_by}"
        return f"the {run.what} exited with code {run.exit_code}"

    def _init_step(self, pod: _Pod, i: int, n: int) -> None:
        """Init container ``i`` of ``n`` starts (``i == n``: they all succeeded)."""
        pod.init = f"Init:{i}/{n}" if i < n else ""
        self._changed()

    def _readiness(self, pod: _Pod, ok: bool) -> None:
        """The replica's readiness flipped after it was first ready (a readiness probe
        failed its ``failureThreshold``, or passed its ``successThreshold`` again): it
        leaves the endpoints, or comes back, as an unready pod leaves a Service's
        endpoints. Requests already sent to it finish."""
        if pod.terminating or pod.endpoint is None or "ready" not in pod.times:
            return
        pod.ready = ok
        pod.out_of_rotation = not ok
        pod.endpoint = replace(pod.endpoint, ready=ok)
        self._changed()

    def _names(self, t: RevisionTemplate) -> tuple[list[str], list[str]]:
        """The defaulted names of ``t.containers`` and ``t.init_containers``, as on the
        cluster."""
        serving = self.run.container_name or t.container.name or DEFAULT_CONTAINER_NAME
        return container_names(t, serving)

    def _env(self, pod: _Pod, container: Container | None = None) -> dict[str, str]:
        """A container's env for this start (raises ``EnvError``); by default the
        serving container's."""
        run, rt = self.run, self.runtime
        t = run.template
        if t is None:
            return dict(run.env)
        containers = self._by_name()
        ip = pod.sandbox.ip if pod.sandbox is not None else rt.host
        facts = self._facts(pod, ip)
        return resolve_env(
            t.container if container is None else container,
            namespace=self.key.namespace,
            lookup=rt.lookup,
            pod=facts,
            node=rt.node,
            containers=containers,
        )

    def _facts(self, pod: _Pod, ip: str) -> PodFacts:
        """What the downward API tells about the pod (its IP once it has one)."""
        run, rt = self.run, self.runtime
        t = run.template
        labels = dict(t.labels) if t is not None else {}
        labels[CONFIGURATION_LABEL] = run.info.configuration
        labels[REVISION_LABEL] = self.key.name
        if run.info.service:
            labels[SERVICE_LABEL] = run.info.service
        labels.setdefault("app", self.key.name)
        sandbox = rt.sandbox
        host_ip = sandbox.network.gateway if sandbox and sandbox.network else rt.host
        return PodFacts(
            name=pod.name,
            namespace=self.key.namespace,
            uid=pod.uid,
            labels=labels,
            annotations=dict(t.annotations) if t is not None else {},
            node_name=node_name(),
            service_account=str(t.pod.get("serviceAccountName") or "default")
            if t is not None
            else "default",
            pod_ip=ip,
            host_ip=host_ip,
        )

    def _processes(
        self, pod: _Pod
    ) -> tuple[tuple[ContainerProcess, ...], tuple[ContainerProcess, ...]]:
        """The init containers and the sidecars, as processes (raises ``EnvError``)."""
        t = self.run.template
        if t is None:
            return (), ()
        names, init_names = self._names(t)

        def process(c: Container, name: str) -> ContainerProcess:
            return ContainerProcess(
                name=name,
                command=[*resolve_command(c.command), *c.args],
                env=self._env(pod, c),
                working_dir=c.working_dir or self.runtime.working_dir,
                container=_probed(c, serving=False),
            )

        inits = tuple(process(c, n) for c, n in zip(t.init_containers, init_names, strict=True))
        sidecars = tuple(
            process(c, n) for c, n in zip(t.containers, names, strict=True) if c is not t.container
        )
        return inits, sidecars

    def _spec(self, pod: _Pod) -> ReplicaSpec:
        run, info = self.run, self.run.info
        rt = self.runtime
        init_containers, sidecars = self._processes(pod)
        env = self._env(pod)
        probe = dict(run.readiness_probe) if run.readiness_probe else None
        exec_probe = None
        if probe is not None and isinstance(probe.get("exec"), Mapping):
            # As Knative on Kubernetes: the kubelet runs an exec probe in the container
            # (here the runtime), and the queue-proxy probes TCP on the app's port.
            exec_probe = {
                **probe,
                "exec": {"command": resolve_command(probe["exec"].get("command", ()))},
            }
            probe = {k: v for k, v in probe.items() if k != "exec"}
            probe["tcpSocket"] = {}
            if probe.get("periodSeconds") and not probe.get("timeoutSeconds"):
                probe["timeoutSeconds"] = 1
        if probe is not None:
            # The container listens on $PORT, which is chosen here: a probe of
            # the containerPort means the app's port (0 = "the user port").
            for kind in ("httpGet", "tcpSocket"):
                if isinstance(probe.get(kind), dict):
                    probe[kind] = {**probe[kind], "port": 0}
        t = run.template
        serving = t.container if t is not None else None
        return ReplicaSpec(
            container=_probed(serving, serving=True) if serving is not None else None,
            container_name=run.container_name
            or (serving.name if serving is not None else "")
            or DEFAULT_CONTAINER_NAME,
            container_port=serving.port.container_port if serving is not None else 8080,
            user_protocol="h2c" if serving is not None and serving.port.name == "h2c" else "http1",
            command=[*resolve_command(run.command), *run.args],
            namespace=info.key.namespace,
            service=info.service,
            configuration=info.configuration,
            revision=info.key.name,
            env=env,
            container_concurrency=info.container_concurrency,
            timeout_seconds=info.timeout_seconds,
            response_start_timeout_seconds=info.response_start_timeout_seconds,
            idle_timeout_seconds=info.idle_timeout_seconds,
            readiness_probe=probe,
            drain_quiet_period=rt.drain_quiet_period,
            host=rt.host,
            working_dir=run.working_dir or rt.working_dir,
            exec_probe=exec_probe,
            expand_command=run.template is not None,
            init_containers=init_containers,
            sidecars=sidecars,
            observability=rt.observability,
            app_expected_after=self.fastest_start or 0.0,
        )

    # -- state ----------------------------------------------------------------

    def _ready_once(self) -> None:
        self.ever_ready = True
        self.state.ready, self.state.reason, self.state.message = True, "", ""

    def _failed(self, pod: _Pod) -> None:
        # a command that never ran has no output of this start: its error stands for it
        start = pod.replica.log_starts.get("app", 0) if pod.replica is not None else 0
        tail = pod.start_error or self.runtime.log_tail(pod.name, start=start)
        self.state.ready = False
        self.state.reason, self.state.message = failure_condition(
            pod.exit, tail, pod.last_exit, oom=pod.oom
        )

    def _changed(self) -> None:
        live = [p for p in self.pods if not p.terminating]
        self.state.actual = sum(1 for p in live if p.ready)
        self.state.backing_off = (
            self.state.ready is False and bool(live) and all(p.backing_off for p in live)
        )
        self.runtime.changed()

    def views(self) -> list[PodView]:
        out = []
        t = self.run.template
        containers = 2 + (len(t.sidecars) if t is not None else 0)
        for p in self.pods:
            pod = self._pod_status(p)
            out.append(
                PodView(
                    p.name,
                    self.key,
                    pod.status_column(),
                    p.ready,
                    p.restarts,
                    p.started_at,
                    p.endpoint,
                    p.last_exit,
                    dict(p.times),
                    containers,
                    pod,
                    p.replica.ports.get("user_metrics_port") if p.replica is not None else None,
                )
            )
        return out

    def _container_names(self) -> tuple[list[str], list[str]]:
        """(the long-running containers: serving, sidecars, queue-proxy; the init
        containers), by their defaulted names."""
        t = self.run.template
        if t is None:
            return [self.run.container_name or DEFAULT_CONTAINER_NAME, QUEUE_PROXY], []
        names, init_names = self._names(t)
        return [*names, QUEUE_PROXY], init_names

    def _pod_status(self, p: _Pod) -> PodStatus:
        """The replica as the API server would show its pod: each container's state from
        the processes of its current start, ``lastState`` and ``restartCount`` from the
        starts before (docs/local-mode.md, "Pods")."""
        names, init_names = self._container_names()
        r = p.replica
        sandbox = p.sandbox
        init_runs = {run.name: run for run in r.init_runs} if r is not None else {}
        images = {n: c.image for n, c in self._by_name().items()}
        inits = []
        for name in init_names:
            run = init_runs.get(name)
            st = self._status_of(p, name, run, images)
            if run is None and not p.waiting:
                st.state = ContainerState("waiting", "PodInitializing")
            inits.append(st)
        initializing = bool(p.init) and p.init.startswith("Init:") and "/" in p.init
        containers = []
        for name in names:
            run = r.runs.get(name) if r is not None else None
            st = self._status_of(p, name, run, images)
            if run is None and p.crashlooping and p.start_failed == name:
                st.state = ContainerState(
                    "waiting",
                    "CrashLoopBackOff",
                    f"back-off restarting failed container {name} in pod {p.name}",
                )
            elif run is not None and run.proc.returncode is None:
                st.ready = bool(r.ready.get(name)) if r is not None else False
                st.started = r.is_started(name) if r is not None else False
            elif p.waiting:
                st.state = ContainerState("waiting", p.waiting, p.last_exit)
            elif initializing or (p.init and init_names):
                st.state = ContainerState("waiting", "PodInitializing")
            containers.append(st)
        t = self.run.template
        spec: dict[str, Any] = {}
        if t is not None:
            spec = {"containers": [{"name": n} for n in names]}
            if init_names:
                spec["initContainers"] = [{"name": n} for n in init_names]
        running = any(c.state.kind == "running" for c in containers)
        unscheduled = p.pending and not p.waiting
        facts = self._facts(p, "")
        return PodStatus(
            name=p.name,
            namespace=self.key.namespace,
            uid=p.uid,
            labels=dict(facts.labels),
            annotations=dict(t.annotations) if t is not None else {},
            created_at=p.created_at,
            pod_ip=sandbox.ip if sandbox is not None else self.runtime.host,
            host_ip=facts.host_ip,
            phase="Running" if running else "Pending",
            terminating=p.terminating,
            # waiting for a start slot is waiting to be scheduled: no container statuses yet
            init_containers=[] if unscheduled else inits,
            containers=[] if unscheduled else containers,
            spec=spec,
        )

    def _by_name(self) -> dict[str, Container]:
        """The template's containers and init containers by their defaulted names."""
        t = self.run.template
        if t is None:
            return {}
        names, init_names = self._names(t)
        out = dict(zip(names, t.containers, strict=True))
        out.update(zip(init_names, t.init_containers, strict=True))
        return out

    def _status_of(
        self, p: _Pod, name: str, run: ContainerRun | None, images: Mapping[str, str]
    ) -> ContainerStatus:
        """A container's status from its process in this start (None: not started)."""
        st = ContainerStatus(
            name,
            restart_count=p.restart_counts.get(name, 0),
            last_state=p.last_states.get(name),
            image=images.get(name, ""),
        )
        if run is None:
            return st
        if run.proc.returncode is None:
            st.state = ContainerState("running", started_at=run.started_at)
            st.started = True
            return st
        culprit = p.exit is not None and p.exit[0] == run.what
        init = run.what.startswith("init container ")
        # The kubelet waits out the back-off in CrashLoopBackOff (an init container only
        # from its second failure on: kubectl's Init:Error, then Init:CrashLoopBackOff).
        if culprit and (p.init_failures > 1 if init else p.crashlooping):
            st.state = ContainerState(
                "waiting",
                "CrashLoopBackOff",
                f"back-off restarting failed container {name} in pod {p.name}",
            )
        else:
            st.state = ContainerState(
                "terminated",
                reason=run.reason,
                message=run.killed_by,
                exit_code=run.exit_code,
                started_at=run.started_at,
                finished_at=run.finished_at,
            )
        return st

    async def close(self) -> None:
        """Stop every replica (pod-style)."""
        for pod in list(self.pods):
            if not pod.terminating:
                self._terminate(pod)
        await asyncio.gather(*list(self._stopping), return_exceptions=True)


class LocalRuntime:
    """All revisions' replicas; ``changed`` is called after every change."""

    def __init__(
        self,
        *,
        on_change: Callable[[], None],
        log_dir: Path | None = None,
        host: str = "127.0.0.1",
        drain_quiet_period: float = 0.5,
        working_dir: str | None = None,
        max_starting: int | None = None,
        lookup: Lookup | None = None,
        node: Node | None = None,
        sandbox: Sandbox | None = None,
        standby: StandbyPool | None = None,
        restart_backoff: tuple[float, float] = (RESTART_BACKOFF_START, RESTART_BACKOFF_MAX),
    ) -> None:
        self.on_change = on_change
        self.log_dir = log_dir
        self.host = host
        # Locally the activator stops sending to a replica the moment it
        # leaves the endpoints, so a short quiet period is enough; the
        # queue-proxy still finishes every request it accepted.
        self.drain_quiet_period = drain_quiet_period
        self.working_dir = working_dir
        if max_starting is not None and max_starting < 1:
            raise ValueError(f"max_starting must be at least 1, not {max_starting}")
        self.max_starting = max_starting or default_max_starting()
        """Replicas of one revision that may be starting at once."""
        self.lookup: Lookup = lookup or (lambda kind, namespace, name: None)
        """The applied Secrets and ConfigMaps, read when a replica starts."""
        self.node = node or Node.this_host()
        """What an unset resource limit means in ``resourceFieldRef``."""
        self.sets: dict[RevisionKey, RevisionSet] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self.sandbox = sandbox
        """Where replicas run (None: plain processes on ``host``, no limits enforced)."""
        self.standby = standby
        """Queue-proxies started ahead (zeroserve/local/standby.py); None: each replica
        starts its own."""
        self.starts = StartsUnderWay()
        """Replica starts under way (from the start slot to ready or failed): the
        standbys and spare pod networks are made again once there are none."""
        if standby is not None:
            standby.starts = self.starts
        if sandbox is not None and sandbox.network is not None:
            sandbox.network.starts = self.starts
        self.restart_backoff = restart_backoff
        """(first delay, cap) of a replica's restart back-off (:class:`RestartBackoff`)."""
        self.observability = ObservabilityConfig().to_env()
        """The queue-proxies' ``OBSERVABILITY_CONFIG`` (config-observability)."""
        self.relay: LoopbackRelay | None = None
        """In pod sandboxes: the host's loopback services (a tracing collector) on the
        bridge's address, for the queue-proxies (zeroserve/local/hostrelay.py); made
        when first needed."""

    def set_observability(self, config: ObservabilityConfig) -> None:
        """config-observability (or config-tracing) changed: new replicas start with it,
        running queue-proxies get it on their admin port, without a restart
        (docs/observability.md); in pod sandboxes, a loopback tracing endpoint through
        :attr:`relay`."""
        network = self.sandbox.network if self.sandbox is not None else None
        if network is not None:
            if self.relay is None:
                self.relay = LoopbackRelay(network.gateway)
            try:
                config = self.relay.pod_view(config)
            except OSError as e:
                log.error("the pods cannot reach %s: %s", config.tracing_endpoint, e)
        value = config.to_env()
        if value == self.observability:
            return
        self.observability = value
        for rs in self.sets.values():
            for pod in rs.pods:
                if pod.replica is not None:
                    pod.replica.set_observability(value)

    def changed(self) -> None:
        self.on_change()

    def set_revisions(self, runs: Mapping[RevisionKey, RevisionRun]) -> None:
        """The revisions that exist now; removed ones are stopped."""
        for key in list(self.sets):
            if key not in runs:
                gone = self.sets.pop(key)
                task = asyncio.get_running_loop().create_task(gone.close(), name=f"remove {key}")
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
        for key, run in runs.items():
            rs = self.sets.get(key)
            if rs is None:
                self.sets[key] = RevisionSet(run, self)
            else:
                rs.run = run  # timeouts/annotations may be re-defaulted; the command is immutable
        self.changed()

    def objects_changed(self) -> None:
        """Secrets or ConfigMaps may have changed: replicas waiting for one retry now."""
        for rs in self.sets.values():
            rs.objects_changed()

    def set_scale(self, key: RevisionKey, replicas: int) -> bool:
        rs = self.sets.get(key)
        if rs is None:
            return False
        rs.set_scale(replicas)
        return True

    def set_for(self, key: RevisionKey) -> RevisionSet:
        return self.sets[key]

    def scale(self, key: RevisionKey) -> int | None:
        rs = self.sets.get(key)
        return None if rs is None else rs.desired

    def endpoints(self) -> dict[RevisionKey, list[Endpoint]]:
        return {key: rs.endpoints() for key, rs in self.sets.items()}

    def states(self) -> dict[RevisionKey, RevisionState]:
        return {key: rs.state for key, rs in self.sets.items()}

    def pods(self) -> list[PodView]:
        return [v for rs in self.sets.values() for v in rs.views()]

    def made_ahead(self) -> dict[str, dict[str, Any]]:
        """What is made ahead for the next replicas: the standby queue-proxies
        (``queueProxies``) and, in pod sandboxes, the spare pod networks
        (``podNetworks``)."""
        out = {}
        if self.standby is not None:
            out["queueProxies"] = self.standby.state()
        if self.sandbox is not None and self.sandbox.network is not None:
            out["podNetworks"] = self.sandbox.network.spare_state()
        return out

    def log_tail(self, pod: str, lines: int = 5, start: int = 0) -> str:
        """A replica's last lines of output (from byte ``start`` of its log), joined."""
        if self.log_dir is None:
            return ""
        return " | ".join(log_tail(self.log_dir / f"{pod}-app.log", lines, start))

    async def close(self) -> None:
        await asyncio.gather(
            *(rs.close() for rs in self.sets.values()), *list(self._closing), return_exceptions=True
        )
        self.sets.clear()
        if self.standby is not None:
            await self.standby.close()
        if self.relay is not None:
            await self.relay.close()
