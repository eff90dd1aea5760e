"""The test cluster's node agent: a kubelet stand-in that runs the cluster's pods for real.

Every pod the API server holds is bound to this one node and run in a pod sandbox
(``zeroserve.local.sandbox``, docs/local-mode.md "Pod sandboxes"): its own network
namespace and IP on the run's bridge, each container a process from the pod spec's
``command``/``args`` (or the image map's entrypoint), with the kubelet's environment
(``env``/``envFrom``, the downward API, the ``KUBERNETES_SERVICE_*`` variables), its
volumes mounted (Secrets, ConfigMaps, projected service-account tokens signed with the
API server's key, so kubernetes-asyncio's in-cluster config works), a kubelet-managed
``/etc/hosts`` naming the cluster's Services (the DNS stand-in, see
:mod:`.services`), its probes, and on deletion its ``preStop`` hooks, SIGTERM and SIGKILL
after the grace period.

The image map (:class:`ImageMap`) says what an image without a ``command`` runs: by
default zeroserve's image runs this checkout's Python and the helloworld-go images its
Python twin (``examples/helloworld/app.py``); a leading ``python`` in any command is this
checkout's interpreter, as in local mode.

What differs from a kubelet: a container that exits or fails its liveness probe restarts
after 1 s doubling to 30 s (the kubelet: 10 s to 5 min); the pod holds a finalizer
(``test-cluster.zeroserve.dev/node``) while its processes run, which is how the agent
sees a deletion and finishes it after the grace period (the real API server keeps a
terminating pod without one); init containers run in order and must exit 0; security
contexts, resource requests (scheduling) and image pulls are ignored; pod and container
logs go to files under the cluster's log directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fnmatch
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes.kubeapi.fakeapi import FakeKubeAPI
from tests.fakes.kubeapi.storage import Event, now
from zeroserve.api.objects import ConfigMapObject, Container, ObjectMeta, SecretObject
from zeroserve.api.template import _container
from zeroserve.local.env import EnvError, Node, PodFacts, expand_command, resolve_env
from zeroserve.local.probes import ContainerProbes, Prober, ProbeSpec, from_probe, http_get
from zeroserve.local.sandbox import PodSandbox, Sandbox, SandboxError, VolumeError
from zeroserve.local.sandbox.enter import EnterPlan, Mount, ensure_mountpoint, spawn

from .mesh import Mesh, mesh_probe
from .resync import resync_forever
from .services import ServiceProxy

log = logging.getLogger(__name__)

FINALIZER = "test-cluster.zeroserve.dev/node"
NODE_NAME = "zeroserve-node"
REPO = Path(__file__).resolve().parents[2]
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RESTART_BACKOFF = (1.0, 30.0)


@dataclass(frozen=True)
class ImageMap:
    """Image glob -> the entrypoint an image without ``command`` runs (first match wins)."""

    entries: tuple[tuple[str, tuple[str, ...]], ...]

    @classmethod
    def default(cls, zeroserve_image: str = "zeroserve*") -> ImageMap:
        twin = (sys.executable, str(REPO / "examples" / "helloworld" / "app.py"))
        return cls(
            (
                ("ghcr.io/knative/helloworld-go*", twin),
                ("*/knative-sample/helloworld-go*", twin),
                (zeroserve_image, (sys.executable,)),
            )
        )

    def with_file(self, path: Path) -> ImageMap:
        """``--image-map FILE``: YAML or JSON ``{image glob: [command...]}``, checked first."""
        import yaml

        data = yaml.safe_load(path.read_text())
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and v and all(isinstance(a, str) for a in v)
            for k, v in data.items()
        ):
            raise ValueError(
                f"--image-map {path}: must map image globs to non-empty lists of strings, "
                'e.g. {"registry.example.com/app:*": ["python", "app.py"]}'
            )
        return ImageMap(tuple((k, tuple(v)) for k, v in data.items()) + self.entries)

    def argv(self, image: str, command: Sequence[str], args: Sequence[str]) -> list[str]:
        """What a container runs: its ``command`` or the image's entrypoint, then ``args``;
        a leading ``python`` is this checkout's interpreter. ValueError when neither
        says what to run."""
        if not command:
            for pattern, entry in self.entries:
                if fnmatch.fnmatchcase(image, pattern):
                    command = entry
                    break
            else:
                raise ValueError(
                    f"image {image!r} has no command and no entry in the image map "
                    "(--image-map FILE adds one: image glob -> command)"
                )
        argv = [*command, *args]
        if argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        return argv


def _secret(obj: dict[str, Any]) -> SecretObject:
    meta = obj["metadata"]
    return SecretObject(
        meta=ObjectMeta(meta["name"], meta.get("namespace", "default")),
        data=dict(obj.get("data") or {}),
        type=str(obj.get("type") or "Opaque"),
    )


def _config_map(obj: dict[str, Any]) -> ConfigMapObject:
    meta = obj["metadata"]
    return ConfigMapObject(
        meta=ObjectMeta(meta["name"], meta.get("namespace", "default")),
        data=dict(obj.get("data") or {}),
        binary_data=dict(obj.get("binaryData") or {}),
    )


@dataclass
class _Container:
    spec: dict[str, Any]
    parsed: Container
    process: asyncio.subprocess.Process | None = None
    ready: bool = False
    started: bool = False
    restarts: int = 0
    state: dict[str, Any] = field(
        default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}}
    )
    last_state: dict[str, Any] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None


class PodRun:
    """One pod on the node: its sandbox, its containers, its status."""

    def __init__(self, agent: NodeAgent, pod: dict[str, Any]) -> None:
        self.agent = agent
        self.namespace = pod["metadata"]["namespace"]
        self.name = pod["metadata"]["name"]
        self.uid = pod["metadata"]["uid"]
        self.pod = pod
        self.sandbox: PodSandbox | None = None
        self.containers: dict[str, _Container] = {}
        self.stopping = False
        self.task: asyncio.Task[None] | None = None
        self.log_dir = agent.log_dir / f"{self.namespace}_{self.name}"
        self.message = ""
        self.reason = ""

    # ----- status ------------------------------------------------------------------------------

    def _publish(self) -> None:
        """Write the pod's status as the kubelet's status manager would."""
        current = self.agent.api.get("pods", self.namespace, self.name)
        if current is None or current["metadata"]["uid"] != self.uid:
            return
        status = dict(current.get("status") or {})
        statuses = []
        for name, c in self.containers.items():
            statuses.append(
                {
                    "name": name,
                    "image": c.spec.get("image", ""),
                    "imageID": "",
                    "ready": c.ready,
                    "started": c.started,
                    "restartCount": c.restarts,
                    "state": c.state,
                    "lastState": c.last_state,
                    **({"containerID": f"zeroserve://{c.process.pid}"} if c.process else {}),
                }
            )
        ready = bool(self.containers) and all(c.ready for c in self.containers.values())
        running = any("running" in c.state for c in self.containers.values())
        stamp = now()
        old = {c["type"]: c for c in status.get("conditions") or ()}

        def cond(kind: str, ok: bool) -> dict[str, Any]:
            value = "True" if ok else "False"
            before = old.get(kind)
            if before is not None and before.get("status") == value:
                return before
            return {"type": kind, "status": value, "lastTransitionTime": stamp}

        status.update(
            {
                "phase": "Running" if running or ready else "Pending",
                "hostIP": self.agent.host_ip,
                "startTime": status.get("startTime") or stamp,
                "containerStatuses": statuses,
                "conditions": [
                    cond("PodReadyToStartContainers", self.sandbox is not None),
                    cond("Initialized", True),
                    cond("Ready", ready and not self.stopping),
                    cond("ContainersReady", ready),
                    cond("PodScheduled", True),
                ],
            }
        )
        if self.sandbox is not None:
            status["podIP"] = self.sandbox.ip
            status["podIPs"] = [{"ip": self.sandbox.ip}]
        if self.message:
            status["message"] = self.message
            status["reason"] = self.reason
        if status != current.get("status"):
            current["status"] = status
            self.agent.api.put(current)

    # ----- start -------------------------------------------------------------------------------

    async def run(self) -> None:
        spec = self.pod["spec"]
        problems: list[Any] = []
        for i, c in enumerate(spec.get("containers") or ()):
            self.containers[c["name"]] = _Container(
                c, _container(f"spec.containers[{i}]", c, problems)
            )
        parsed = {n: c.parsed for n, c in self.containers.items()}
        self.log_dir.mkdir(parents=True, exist_ok=True)
        while self.sandbox is None and not self.stopping:
            try:
                self.sandbox = await self.agent.sandbox.pod(
                    f"{self.namespace}.{self.name}",
                    volumes=spec.get("volumes") or (),
                    namespace=self.namespace,
                    lookup=self.agent.lookup,
                    facts=self._facts,
                    containers=parsed,
                    node=self.agent.node,
                )
            except (SandboxError, VolumeError) as e:
                self.reason, self.message = "ContainerCreating", str(e)
                for c in self.containers.values():
                    c.state = {"waiting": {"reason": "ContainerCreating", "message": str(e)}}
                self._publish()
                await asyncio.sleep(1.0)
        if self.stopping:
            return
        self.reason = self.message = ""
        await self._mesh_started()
        self._write_hosts()
        for i, init in enumerate(spec.get("initContainers") or ()):
            if not await self._run_init(i, init, problems):
                return
        for name in self.containers:
            self.containers[name].task = asyncio.ensure_future(self._keep_running(name))
        self._publish()
        await asyncio.gather(*(c.task for c in self.containers.values() if c.task))

    async def _mesh_started(self) -> None:
        """The sidecar's inbound rules (tests/cluster/mesh.py), before any container runs."""
        mesh, network = self.agent.mesh, self.sandbox.network if self.sandbox else None
        if mesh is None or network is None:
            return
        try:
            await mesh.pod_started(self.uid, self.namespace, self.name, network.ip, network.netns)
        except Exception:
            log.exception("pod %s/%s: the mesh's rules", self.namespace, self.name)

    def _facts(self, ip: str) -> PodFacts:
        meta = self.pod["metadata"]
        return PodFacts(
            name=self.name,
            namespace=self.namespace,
            uid=self.uid,
            labels=meta.get("labels") or {},
            annotations=meta.get("annotations") or {},
            node_name=NODE_NAME,
            service_account=self.pod["spec"].get("serviceAccountName") or "default",
            pod_ip=ip,
            host_ip=self.agent.host_ip,
        )

    @property
    def hosts_file(self) -> Path:
        return self.log_dir / "etc-hosts"

    @property
    def resolv_file(self) -> Path:
        return self.log_dir / "etc-resolv.conf"

    def _write_hosts(self) -> None:
        """The kubelet-managed ``/etc/hosts``, with the cluster's Service names."""
        assert self.sandbox is not None
        lines = [
            "# Kubernetes-managed hosts file (the test cluster's node agent).",
            "127.0.0.1\tlocalhost",
            "::1\tlocalhost ip6-localhost ip6-loopback",
            f"{self.sandbox.ip}\t{self.name}",
        ]
        for alias in self.pod["spec"].get("hostAliases") or ():
            lines.append(f"{alias['ip']}\t{' '.join(alias.get('hostnames') or ())}")
        _write_in_place(self.hosts_file, "\n".join(lines) + "\n")
        _write_in_place(self.resolv_file, self.agent.services.resolv_conf(self.namespace))

    def _env(self, c: _Container) -> dict[str, str]:
        assert self.sandbox is not None
        env = {"PATH": PATH, "HOSTNAME": self.name, "HOME": "/root"}
        env.update(self.agent.services.env(self.namespace, self.pod["spec"]))
        env.update(
            resolve_env(
                c.parsed,
                namespace=self.namespace,
                lookup=self.agent.lookup,
                pod=self._facts(self.sandbox.ip),
                node=self.agent.node,
                containers={n: x.parsed for n, x in self.containers.items()},
            )
        )
        return env

    def _start_plan(self, name: str, parsed: Container) -> tuple[EnterPlan, Any]:
        """What the container's process does before its command (started through
        ``enter.spawn``) and its sandbox start (cgroup), with
        ``/etc/hosts`` and, where a volume would hide it, this checkout mounted too."""
        assert self.sandbox is not None
        start = self.sandbox.container(name, parsed)
        plan: list[Mount] = []
        for target, source in (
            ("/etc/hosts", self.hosts_file),
            ("/etc/resolv.conf", self.resolv_file),
        ):
            ensure_mountpoint(target, is_file=True, state=self.agent.sandbox.state)
            plan.append(Mount(str(source), target, True))
        plan += self.sandbox.volumes.mounts(parsed) if self.sandbox.volumes else []
        for m in list(plan):
            # the image's own files (this checkout and its venv) stay visible under a
            # volume mounted over a parent of them (an emptyDir on /tmp)
            for keep in sorted({REPO, Path(sys.prefix)}):
                if keep.is_relative_to(m.target) and keep != Path(m.target):
                    (Path(m.source) / keep.relative_to(m.target)).mkdir(parents=True, exist_ok=True)
                    plan.append(Mount(str(keep), str(keep), True))
        network = self.sandbox.network
        enter = EnterPlan(
            netns_path=network.netns_path if network is not None else None,
            mounts=tuple(plan),
            cgroup_procs=tuple(start.cgroup.procs_files) if start.cgroup is not None else (),
            hostname=self.pod["spec"].get("hostname") or self.name,
        )
        return enter, dataclasses.replace(start, plan=enter)

    async def _spawn(self, name: str, c: _Container) -> asyncio.subprocess.Process:
        env = self._env(c)
        argv = expand_command(
            self.agent.images.argv(c.spec.get("image", ""), c.parsed.command, c.parsed.args), env
        )
        enter, start = self._start_plan(name, c.parsed)
        out = os.open(self.log_dir / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            proc = await spawn(
                argv,
                enter,
                env=env,
                cwd=c.parsed.working_dir or str(REPO),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        finally:
            os.close(out)
        start.started(proc.pid)
        return proc

    async def _run_init(self, i: int, spec: dict[str, Any], problems: list[Any]) -> bool:
        c = _Container(spec, _container(f"spec.initContainers[{i}]", spec, problems))
        while not self.stopping:
            proc = await self._spawn(spec["name"], c)
            code = await proc.wait()
            if self.sandbox is not None:
                self.sandbox.exited(proc.pid)
            if code == 0:
                return True
            self.reason, self.message = "Init:Error", f"init container {spec['name']} exited {code}"
            self._publish()
            await asyncio.sleep(RESTART_BACKOFF[0])
        return False

    async def _keep_running(self, name: str) -> None:
        c = self.containers[name]
        delay = RESTART_BACKOFF[0]
        while not self.stopping:
            try:
                proc = await self._spawn(name, c)
            except (EnvError, ValueError) as e:
                reason = getattr(e, "reason", "CreateContainerConfigError")
                c.state = {"waiting": {"reason": reason, "message": str(e)}}
                self._publish()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RESTART_BACKOFF[1])
                continue
            except Exception as e:  # the kubelet's StartError: the runtime could not start it
                log.warning("pod %s/%s container %s: %r", self.namespace, self.name, name, e)
                reason = "RunContainerError"
                c.state = {"waiting": {"reason": reason, "message": str(e)}}
                self._publish()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RESTART_BACKOFF[1])
                continue
            c.process = proc
            started_at = time.time()
            c.state = {"running": {"startedAt": now()}}
            c.ready = False
            c.started = False
            self._publish()
            unhealthy = asyncio.Event()
            probes = self._probes(name, c, unhealthy)
            probe_task = asyncio.ensure_future(probes.run())
            wait_task = asyncio.ensure_future(proc.wait())
            unhealthy_task = asyncio.ensure_future(unhealthy.wait())
            await asyncio.wait({unhealthy_task, wait_task}, return_when=asyncio.FIRST_COMPLETED)
            unhealthy_task.cancel()
            if not wait_task.done() and not self.stopping:
                # liveness or startup failed: the kubelet kills the container
                await self._kill(proc, self._grace())
            code = await wait_task
            probe_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe_task
            oom = self.sandbox.exited(proc.pid) if self.sandbox is not None else False
            c.ready = False
            finished = {
                "exitCode": code if code >= 0 else 128 - code,
                "reason": "OOMKilled" if oom else ("Completed" if code == 0 else "Error"),
                "startedAt": c.state.get("running", {}).get("startedAt", now()),
                "finishedAt": now(),
            }
            if self.stopping:
                c.state = {"terminated": finished}
                self._publish()
                return
            c.last_state = {"terminated": finished}
            c.restarts += 1
            if time.time() - started_at > 60:
                delay = RESTART_BACKOFF[0]
            c.state = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {delay:g}s restarting failed container={name} "
                    f"pod={self.name}_{self.namespace}({self.uid})",
                }
            }
            self._publish()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_BACKOFF[1])

    def _probes(self, name: str, c: _Container, unhealthy: asyncio.Event) -> ContainerProbes:
        assert self.sandbox is not None
        ports = {
            str(p.get("name")): int(p["containerPort"])
            for p in c.spec.get("ports") or ()
            if p.get("name")
        }
        first_port = next((int(p["containerPort"]) for p in c.spec.get("ports") or ()), 0)

        def resolved(probe: Mapping[str, Any]) -> dict[str, Any]:
            out = dict(probe)
            for kind in ("httpGet", "tcpSocket", "grpc"):
                handler = out.get(kind)
                if isinstance(handler, Mapping) and isinstance(handler.get("port"), str):
                    port = handler["port"]
                    out[kind] = {**handler, "port": int(port) if port.isdigit() else ports[port]}
            return out

        def prober(key: str, kind: str) -> Prober | None:
            probe = c.spec.get(key)
            if not probe:
                return None
            host = self.sandbox.ip if self.sandbox else "127.0.0.1"
            mesh = self.agent.mesh
            handler = (
                mesh_probe(resolved(probe), host=host, port=first_port, source=mesh.address)
                if mesh is not None and mesh.meshed(self.pod)
                else None
            ) or from_probe(
                resolved(probe),
                host=host,
                port=first_port,
                env={},
                cwd=str(REPO),
                enter=self._start_plan(name, c.parsed)[0],
            )
            return Prober(kind, ProbeSpec.of(probe, kind=kind), handler)

        def on_ready(ok: bool) -> None:
            c.ready = ok
            c.started = True
            self._publish()

        def on_unhealthy(kind: str, message: str) -> None:
            log.info("pod %s/%s container %s: %s", self.namespace, self.name, name, message)
            unhealthy.set()

        probes = ContainerProbes(
            startup=prober("startupProbe", "startup"),
            liveness=prober("livenessProbe", "liveness"),
            readiness=prober("readinessProbe", "readiness"),
            on_ready=on_ready,
            on_unhealthy=on_unhealthy,
        )
        return probes

    # ----- stop --------------------------------------------------------------------------------

    def _grace(self) -> float:
        current = self.agent.api.get("pods", self.namespace, self.name) or self.pod
        grace = current["metadata"].get("deletionGracePeriodSeconds")
        if grace is None:
            grace = current["spec"].get("terminationGracePeriodSeconds", 30)
        return float(grace)

    async def _pre_stop(self, name: str, c: _Container, deadline: float) -> None:
        hook = ((c.spec.get("lifecycle") or {}).get("preStop")) or {}
        assert self.sandbox is not None
        timeout = max(deadline - time.monotonic(), 0.1)
        if "httpGet" in hook:
            h = hook["httpGet"]
            port = h.get("port")
            if isinstance(port, str) and not port.isdigit():
                port = next(
                    int(p["containerPort"])
                    for p in c.spec.get("ports") or ()
                    if p.get("name") == port
                )
            check = http_get(
                str(h.get("host") or self.sandbox.ip),
                int(port),
                str(h.get("path") or "/"),
                scheme=str(h.get("scheme") or "HTTP"),
                headers=h.get("httpHeaders") or (),
            )
            ok, message = await check(timeout)
            if not ok and message.startswith("Get "):
                # the kubelet's runHTTPHandler fails on a transport error only
                self._event(
                    "FailedPreStopHook",
                    f"HTTP lifecycle hook ({h.get('path') or '/'}) for Container {name!r} in "
                    f"Pod {self.name}_{self.namespace}({self.uid}) failed - error: {message}",
                    container=name,
                )
        elif "exec" in hook:
            command = list(hook["exec"].get("command") or ())
            if command:
                proc = await spawn(
                    self.agent.images.argv("", command, ()),
                    self._start_plan(name, c.parsed)[0],
                    env=self._env(c),
                    cwd=None,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                    start_new_session=False,
                )
                try:
                    await asyncio.wait_for(proc.wait(), timeout)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
        elif "sleep" in hook:
            await asyncio.sleep(min(float(hook["sleep"].get("seconds", 0)), timeout))

    def _event(self, reason: str, message: str, *, container: str) -> None:
        """A Warning Event on the pod, as the kubelet's recorder writes one."""
        stamp = now()
        self.agent.api.put(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {
                    "name": f"{self.name}.{os.urandom(8).hex()}",
                    "namespace": self.namespace,
                },
                "involvedObject": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "namespace": self.namespace,
                    "name": self.name,
                    "uid": self.uid,
                    "fieldPath": f"spec.containers{{{container}}}",
                },
                "reason": reason,
                "message": message,
                "type": "Warning",
                "source": {"component": "kubelet", "host": NODE_NAME},
                "reportingComponent": "kubelet",
                "reportingInstance": NODE_NAME,
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "count": 1,
            }
        )

    async def _kill(self, proc: asyncio.subprocess.Process, grace: float) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), max(grace, 0.0))
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()

    async def stop(self, grace: float | None = None) -> None:
        """The kubelet's ``killPod``: preStop hooks (within the grace period), SIGTERM, and
        SIGKILL when the grace period is over; then the sandbox goes."""
        if not self.stopping:
            self.stopping = True
            grace = self._grace() if grace is None else grace
            deadline = time.monotonic() + grace
            self._publish()

            async def one(name: str, c: _Container) -> None:
                if c.process is None or c.process.returncode is not None:
                    return
                if grace > 0:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(
                            self._pre_stop(name, c, deadline),
                            max(deadline - time.monotonic(), 0.1),
                        )
                await self._kill(c.process, max(deadline - time.monotonic(), 2.0 if grace else 0))

            await asyncio.gather(*(one(n, c) for n, c in self.containers.items()))
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        for c in self.containers.values():
            if c.process is not None and c.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(c.process.pid, signal.SIGKILL)
                await c.process.wait()
        if self.agent.mesh is not None:
            self.agent.mesh.pod_stopped(self.uid)
        if self.sandbox is not None:
            sandbox, self.sandbox = self.sandbox, None
            await sandbox.close()


def _write_in_place(path: Path, text: str) -> None:
    """Rewrite a file the pods' containers bind-mount: in place, so they see the change
    through the same inode (a rename would leave them the old file)."""
    if path.exists() and path.read_text() == text:
        return
    with open(path, "a+") as f:
        f.seek(0)
        f.truncate()
        f.write(text)


class NodeAgent:
    """Binds every pod to the node and runs it (module doc)."""

    def __init__(
        self,
        api: FakeKubeAPI,
        sandbox: Sandbox,
        *,
        log_dir: Path,
        images: ImageMap,
        services: ServiceProxy,
        mesh: Mesh | None = None,
    ) -> None:
        self.api = api
        self.mesh = mesh
        self.sandbox = sandbox
        self.log_dir = log_dir
        self.images = images
        self.services = services
        self.node = Node.this_host()
        self.host_ip = sandbox.network.gateway if sandbox.network is not None else "127.0.0.1"
        self.pods: dict[str, PodRun] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._finishing: set[asyncio.Future[None]] = set()

    def lookup(self, kind: str, namespace: str, name: str) -> SecretObject | ConfigMapObject | None:
        obj = self.api.get("secrets" if kind == "Secret" else "configmaps", namespace, name)
        if obj is None:
            return None
        return _secret(obj) if kind == "Secret" else _config_map(obj)

    async def start(self) -> None:
        self.api.put(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": NODE_NAME, "labels": {"kubernetes.io/hostname": NODE_NAME}},
                "status": {
                    "addresses": [{"type": "InternalIP", "address": self.host_ip}],
                    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                },
            }
        ) if _has(self.api, "nodes") else None
        self.api.store.add_listener(self._on_event)
        self._wake.set()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="node agent")

    def _on_event(self, event: Event) -> None:
        if event.key in ("pods", "secrets", "configmaps", "services"):
            self._wake.set()

    async def _loop(self) -> None:
        await resync_forever(self._wake, self.sync, "node agent")

    async def sync(self) -> None:
        seen = set()
        for pod in self.api.list("pods"):
            meta = pod["metadata"]
            uid = meta["uid"]
            seen.add(uid)
            run = self.pods.get(uid)
            if meta.get("deletionTimestamp"):
                if run is None:
                    self._release(pod)
                elif not run.stopping:
                    self._spawn_finish(run)
                continue
            if run is None:
                pod = self._bind(pod)
                run = self.pods[uid] = PodRun(self, pod)
                run.task = asyncio.ensure_future(run.run())
            elif run.sandbox is not None:
                run._write_hosts()
                run.sandbox.refresh_volumes()
        for uid, run in list(self.pods.items()):
            if uid not in seen and not run.stopping:
                self._spawn_finish(run, grace=0)

    def _spawn_finish(self, run: PodRun, grace: float | None = None) -> None:
        task = asyncio.ensure_future(self._finish(run, grace))
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    def _bind(self, pod: dict[str, Any]) -> dict[str, Any]:
        pod["spec"]["nodeName"] = NODE_NAME
        finalizers = pod["metadata"].setdefault("finalizers", [])
        if FINALIZER not in finalizers:
            finalizers.append(FINALIZER)
        status = pod.setdefault("status", {})
        status["phase"] = "Pending"
        status["conditions"] = [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now()}
        ]
        return self.api.put(pod)

    async def _finish(self, run: PodRun, grace: float | None = None) -> None:
        await run.stop(grace)
        self.pods.pop(run.uid, None)
        current = self.api.get("pods", run.namespace, run.name)
        if current is not None and current["metadata"]["uid"] == run.uid:
            self._release(current)

    def _release(self, pod: dict[str, Any]) -> None:
        finalizers = pod["metadata"].get("finalizers") or []
        if FINALIZER in finalizers:
            pod["metadata"]["finalizers"] = [f for f in finalizers if f != FINALIZER]
            self.api.put(pod)

    async def stop(self) -> None:
        self.api.store.remove_listener(self._on_event)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.gather(*(self._finish(run, grace=2) for run in list(self.pods.values())))


def _has(api: FakeKubeAPI, resource: str) -> bool:
    try:
        api.resource(resource)
    except Exception:
        return False
    return True
