"""Resident memory of the controller, the autoscaler and the activator, by cluster size.

``python -m benchmarks.component_memory --revisions 0,1000,10000`` measures what the
chart's memory requests and limits rest on (charts/zeroserve/values.yaml, the README's
"Production checklist"):

1. **A template.** The in-repo fake API server (tests/fakes/kubeapi) and the real
   controller (``python -m controller``) reconcile one Knative Service; a Pod and the
   EndpointSlice the kubelet and the EndpointSlice controller would report are added and
   the Service becomes Ready (the running snapshot); then the pod goes, the endpoint
   empties, the Deployment drops to 0 and the controller writes the Revision's status
   (the scaled-to-zero snapshot). Everything in the namespace (Service, Configuration,
   Route, Revision, the Revision's Deployment and Services, its EndpointSlice, the
   route's VirtualServices, the NetworkPolicy) is the template: the objects exactly as
   the controller writes them in a steady state.
2. **A cluster of N revisions.** For each N, a fresh fake API server gets N copies of the
   template (one Service, one Revision each), written straight into its store: names,
   namespace (``--per-namespace`` Services to one), uids and pod IPs their own, and the
   ``zeroserve.dev/spec-hash`` annotations recomputed (controller/meta.py), so that the
   controller finds its own steady state and rewrites nothing. A fraction
   (``--running-fraction``) is the running snapshot, the others the scaled-to-zero one.
3. **Each component, alone, as its real process** with the chart's flags (leader
   election, NetworkPolicies, the system namespace; the controller without its admission
   webhook, whose certificate needs a cluster): from its start until it reports it has
   listed everything (its JSON line), then until idle for ``--settle`` seconds (the
   controller: no reconcile pass or write in its /metrics for that long; it passes over
   everything it read at start). Its memory is sampled every ``--interval`` seconds:
   VmRSS and VmHWM (the kernel's own peak) of /proc/PID/status, Pss and USS
   (Private_Clean + Private_Dirty) of /proc/PID/smaps_rollup. Every process is stopped
   (SIGTERM, then SIGKILL to its group) and reaped.

The report (Markdown, printed and written to ``benchmarks/results/memory-<timestamp>.md``,
``--json FILE`` for the figures) gives, per component and N: the time to sync, the peak
(VmHWM) and settled RSS (the median of the samples of the last half of the idle
period), Pss and USS settled, the growth per revision over N=0 and the controller's
writes at start. Nothing is asserted: the figures are read.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import importlib
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.servers import REPO
from controller.meta import SPEC_HASH_ANNOTATION, spec_hash

Obj = dict[str, Any]
# The fake API server lives under tests/, which mypy does not check (pyproject.toml's
# files): imported by name, so that checking benchmarks/ does not follow it there.
FakeKubeAPI: Any = importlib.import_module("tests.fakes.kubeapi.fakeapi").FakeKubeAPI

SYSTEM_NAMESPACE = "knative-serving"
TOKEN = "zsmemtmpl"
"""The template Service's name: every name derived from it carries it, so a copy is the
template's JSON with this token replaced."""
TEMPLATE_NAMESPACE = "zsmemns"
"""The template's namespace: a token too, replaced in names, hosts and env values."""
COMPONENTS = ("controller", "autoscaler", "activator")
IMAGE = "zeroserve:bench"
RESULTS = REPO / "benchmarks" / "results"

TEMPLATE_SERVICE: Obj = {
    "apiVersion": "serving.knative.dev/v1",
    "kind": "Service",
    "metadata": {"name": TOKEN, "namespace": TEMPLATE_NAMESPACE},
    "spec": {
        "template": {
            "metadata": {"annotations": {"autoscaling.knative.dev/target": "10"}},
            "spec": {
                "containers": [
                    {
                        "image": "ghcr.io/knative/helloworld-go:latest",
                        "ports": [{"containerPort": 8080}],
                        "env": [{"name": "TARGET", "value": "Go Sample v1"}],
                    }
                ]
            },
        }
    },
}

# What a real API server serves built in and the fake serves as custom resources (as the
# controller's tests add them: tests/fakes/kubeapi/resources.py).
EXTRA_CRDS: Any = importlib.import_module("tests.fakes.kubeapi.resources").CONTROLLER_EXTRA_CRDS
SKIPPED_KINDS = {"Event", "Lease"}


def log(msg: str) -> None:
    print(f"[memory] {msg}", file=sys.stderr, flush=True)


# ----- memory of a process -------------------------------------------------------------


def _kib_fields(path: str, names: tuple[str, ...]) -> dict[str, int]:
    found: dict[str, int] = {}
    with contextlib.suppress(OSError), open(path) as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in names:
                found[key] = int(rest.split()[0])
    return found


@dataclass
class Sample:
    t: float  # seconds since the process started
    rss_kib: int
    hwm_kib: int
    pss_kib: int | None
    uss_kib: int | None


def sample(pid: int, t: float) -> Sample | None:
    status = _kib_fields(f"/proc/{pid}/status", ("VmRSS", "VmHWM"))
    if "VmRSS" not in status:
        return None
    rollup = _kib_fields(f"/proc/{pid}/smaps_rollup", ("Pss", "Private_Clean", "Private_Dirty"))
    uss = (
        rollup["Private_Clean"] + rollup["Private_Dirty"]
        if "Private_Clean" in rollup and "Private_Dirty" in rollup
        else None
    )
    return Sample(t, status["VmRSS"], status.get("VmHWM", 0), rollup.get("Pss"), uss)


# ----- the template ----------------------------------------------------------------------


def new_fake(namespaces: list[str]) -> Any:
    api = FakeKubeAPI(namespaces=("default", "kube-system", SYSTEM_NAMESPACE, *namespaces))
    for crd in EXTRA_CRDS:
        api.put(crd)
    return api


def namespaced_objects(api: Any, namespace: str) -> list[Obj]:
    seen: set[tuple[str, str]] = set()
    objects: list[Obj] = []
    for rt in api.registry.types():
        if not rt.namespaced or (rt.group, rt.plural) in seen or rt.kind in SKIPPED_KINDS:
            continue
        seen.add((rt.group, rt.plural))
        objects.extend(api.list(f"{rt.plural}.{rt.group}" if rt.group else rt.plural, namespace))
    return objects


def pod_ip(index: int) -> str:
    return f"10.{100 + ((index >> 16) & 127)}.{(index >> 8) & 255}.{index & 255}"


TEMPLATE_POD = 1_000_000
"""The template pod's index: its IP (10.115.66.64) is replaced by each copy's own."""


def pod_for(deployment: Obj, index: int) -> Obj:
    """The running Pod the kubelet would report for ``deployment``'s template."""
    template = deployment["spec"]["template"]
    name = f"{deployment['metadata']['name']}-5d8f7c9b4-{index:05x}"[-63:]
    containers = template["spec"]["containers"]
    ip = pod_ip(index)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": deployment["metadata"]["namespace"],
            "labels": {**template["metadata"].get("labels", {}), "pod-template-hash": "5d8f7c9b4"},
            "annotations": dict(template["metadata"].get("annotations", {})),
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": f"{deployment['metadata']['name']}-5d8f7c9b4",
                    "uid": str(uuid.uuid5(uuid.NAMESPACE_OID, name)),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {**copy.deepcopy(template["spec"]), "nodeName": "node-1"},
        "status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "hostIP": "192.168.0.10",
            "startTime": "2026-01-01T00:00:00Z",
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
                for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
            "containerStatuses": [
                {
                    "name": c["name"],
                    "image": c["image"],
                    "imageID": f"{c['image']}@sha256:{'0' * 64}",
                    "containerID": f"containerd://{index:064x}",
                    "ready": True,
                    "restartCount": 0,
                    "started": True,
                    "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
                }
                for c in containers
            ],
        },
    }


def endpoint_slice_for(service: Obj, pod: Obj | None) -> Obj:
    """The EndpointSlice of a revision's private Service, with ``pod`` ready or empty."""
    name = service["metadata"]["name"]
    ports = [
        {"name": p.get("name", ""), "port": p["targetPort"], "protocol": p.get("protocol", "TCP")}
        for p in service["spec"].get("ports", [])
        if isinstance(p.get("targetPort"), int)
    ]
    endpoints = []
    if pod is not None:
        endpoints.append(
            {
                "addresses": [pod["status"]["podIP"]],
                "conditions": {"ready": True, "serving": True, "terminating": False},
                "nodeName": "node-1",
                "targetRef": {
                    "kind": "Pod",
                    "name": pod["metadata"]["name"],
                    "namespace": pod["metadata"]["namespace"],
                    "uid": pod["metadata"]["uid"],
                },
            }
        )
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{name}-x7k2p",
            "namespace": service["metadata"]["namespace"],
            "labels": {
                **service["metadata"].get("labels", {}),
                "kubernetes.io/service-name": name,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
            },
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "name": name,
                    "uid": service["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    }


def is_ready(obj: Obj | None) -> bool:
    conditions = (obj or {}).get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


async def make_template(work: Path, timeout: float) -> Template:
    """What the controller writes for one Service (and the kubelet reports), once Ready."""
    api = new_fake([TEMPLATE_NAMESPACE])
    async with api:
        kubeconfig = api.write_kubeconfig(work / "kubeconfig-template")
        api.put(TEMPLATE_SERVICE)
        proc = await Component.spawn("controller", kubeconfig, work, timeout)
        try:
            revision = f"{TOKEN}-00001"
            deployment = await api.wait_for(
                "deployments", TEMPLATE_NAMESPACE, f"{revision}-deployment", within=timeout
            )
            assert deployment is not None
            pod = api.put(pod_for(deployment, TEMPLATE_POD))
            private = await api.wait_for(
                "services", TEMPLATE_NAMESPACE, f"{revision}-private", within=timeout
            )
            assert private is not None
            api.put(endpoint_slice_for(private, pod))
            api.patch(
                "deployments",
                TEMPLATE_NAMESPACE,
                deployment["metadata"]["name"],
                {
                    "status": {
                        "observedGeneration": deployment["metadata"].get("generation", 1),
                        "replicas": 1,
                        "updatedReplicas": 1,
                        "readyReplicas": 1,
                        "availableReplicas": 1,
                    }
                },
            )
            await api.wait_for("ksvc", TEMPLATE_NAMESPACE, TOKEN, is_ready, within=timeout)
            await asyncio.sleep(1.0)  # the last status writes
            running = namespaced_objects(api, TEMPLATE_NAMESPACE)
            # Scaled to zero, as the autoscaler and the kubelet leave it: no pod, no
            # endpoint, the Deployment at 0; the controller writes the Revision's status.
            api.delete("pods", TEMPLATE_NAMESPACE, pod["metadata"]["name"])
            api.put(endpoint_slice_for(private, None))
            api.patch(
                "deployments",
                TEMPLATE_NAMESPACE,
                deployment["metadata"]["name"],
                {
                    "spec": {"replicas": 0},
                    "status": {
                        "replicas": 0,
                        "updatedReplicas": 0,
                        "readyReplicas": 0,
                        "availableReplicas": 0,
                    },
                },
            )
            await api.wait_for(
                "revisions",
                TEMPLATE_NAMESPACE,
                revision,
                lambda r: (
                    r is not None
                    and any(
                        c.get("type") == "Active" and c.get("status") != "True"
                        for c in r.get("status", {}).get("conditions", [])
                    )
                ),
                within=timeout,
            )
            await asyncio.sleep(1.0)
            zero = namespaced_objects(api, TEMPLATE_NAMESPACE)
        finally:
            await proc.stop()
    for objects in (running, zero):
        for obj in objects:
            check_hash(obj)
    log(f"template: {', '.join(sorted(o['kind'] for o in running))}")
    return Template(running, zero)


@dataclass
class Template:
    """One Service's objects running (one ready pod) and scaled to zero."""

    running: list[Obj]
    zero: list[Obj]


def rendered(obj: Obj) -> Obj:
    """What the controller rendered and hashed for a generated object it wrote (see
    controller/meta.py): the object without system metadata, status, the hash itself and
    (for a Deployment) the replicas, which are set after hashing."""
    meta = obj["metadata"]
    body = {k: copy.deepcopy(v) for k, v in obj.items() if k not in ("metadata", "status")}
    body["metadata"] = {k: meta[k] for k in ("name", "namespace", "labels") if k in meta}
    annotations = {
        k: v for k, v in (meta.get("annotations") or {}).items() if k != SPEC_HASH_ANNOTATION
    }
    if annotations:
        body["metadata"]["annotations"] = annotations
    if "ownerReferences" in meta:
        body["metadata"]["ownerReferences"] = meta["ownerReferences"]
    if obj["kind"] == "Deployment":
        body["spec"].pop("replicas", None)
    return body


def check_hash(obj: Obj) -> None:
    """The template's spec-hashes must come out of :func:`rendered`, or the copies' hashes
    (recomputed for their own names and uids) would make the controller rewrite them all."""
    annotations = obj["metadata"].get("annotations") or {}
    if SPEC_HASH_ANNOTATION in annotations and annotations[SPEC_HASH_ANNOTATION] != spec_hash(
        rendered(obj)
    ):
        raise RuntimeError(
            f"the spec-hash of {obj['kind']} {obj['metadata']['name']} is not the hash of its "
            "rendered part: controller/meta.py changed what it hashes; update rendered()"
        )


def rehash(obj: Obj) -> None:
    annotations = obj["metadata"].get("annotations") or {}
    if SPEC_HASH_ANNOTATION in annotations:
        annotations[SPEC_HASH_ANNOTATION] = spec_hash(rendered(obj))


# ----- the cluster of N revisions ---------------------------------------------------------


def _copyable(objects: list[Obj]) -> str:
    base = []
    for obj in objects:
        obj = copy.deepcopy(obj)
        for key in ("resourceVersion", "managedFields", "selfLink"):
            obj["metadata"].pop(key, None)
        base.append(obj)
    return json.dumps(base, separators=(",", ":"))


def clones(
    template: Template, n: int, per_namespace: int, running_fraction: float
) -> Iterator[Obj]:
    """``n`` copies of the template, each its own name, namespace, uids and spec-hashes;
    ``running_fraction`` of them running (spread evenly), the others scaled to zero."""
    texts = {True: _copyable(template.running), False: _copyable(template.zero)}
    uids = sorted(
        {o["metadata"]["uid"] for o in template.running + template.zero if o["metadata"].get("uid")}
    )
    every = round(1 / running_fraction) if running_fraction > 0 else 0
    for i in range(n):
        name = f"svc{i:05d}"
        namespace = f"bench-{i // per_namespace:03d}"
        running = bool(every) and i % every == 0
        text = (
            texts[running]
            .replace(TEMPLATE_NAMESPACE, namespace)
            .replace(TOKEN, name)
            .replace(f'"{pod_ip(TEMPLATE_POD)}"', f'"{pod_ip(i)}"')
        )
        for uid in uids:
            text = text.replace(uid, str(uuid.uuid5(uuid.NAMESPACE_OID, f"{uid}/{i}")))
        for obj in json.loads(text):
            rehash(obj)
            yield obj


def load(api: Any, template: Template, n: int, per_namespace: int, fraction: float) -> int:
    count = 0
    for obj in clones(template, n, per_namespace, fraction):
        api.put(obj)
        count += 1
    return count


def namespaces_for(n: int, per_namespace: int) -> list[str]:
    return [f"bench-{k:03d}" for k in range((n + per_namespace - 1) // per_namespace)]


# ----- the components -------------------------------------------------------------------


def component_args(name: str, kubeconfig: Path, sync_timeout: float) -> list[str]:
    """The chart's flags (charts/zeroserve/templates/*/deployment.yaml), on free ports."""
    common = [
        "--kubeconfig",
        str(kubeconfig),
        "--system-namespace",
        SYSTEM_NAMESPACE,
        "--metrics-port",
        "0",
        "--sync-timeout",
        f"{sync_timeout:g}",
    ]
    if name == "controller":
        return [
            "-m",
            "controller",
            *common,
            "--host",
            "127.0.0.1",
            "--queue-proxy-image",
            IMAGE,
            "--cluster-domain",
            "cluster.local",
            "--leader-elect",
            "--network-policies",
            "--network-policy-name",
            "zeroserve-revisions",
            "--release-name",
            "zeroserve",
        ]
    if name == "autoscaler":
        return ["-m", "autoscaler", *common, "--host", "127.0.0.1", "--port", "0", "--leader-elect"]
    return [
        "-m",
        "activator",
        *common,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--metrics-host",
        "127.0.0.1",
        # Nothing listens there: the activator keeps retrying, as while an autoscaler restarts.
        "--autoscaler-url",
        "ws://127.0.0.1:1/",
        "--activator-service",
        "activator",
        "--drain-seconds",
        "0",
        "--cluster-domain",
        "cluster.local",
        "--pod-name",
        "activator-0",
        "--pod-ip",
        "127.0.0.1",
    ]


@dataclass
class Component:
    name: str
    proc: asyncio.subprocess.Process
    started: float
    log: Path
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    async def spawn(
        cls,
        name: str,
        kubeconfig: Path,
        work: Path,
        timeout: float,
        samples: list[Sample] | None = None,
    ) -> Component:
        """Start ``name``; return once it printed its JSON line (its caches are synced),
        sampling its memory meanwhile into ``samples``."""
        log_path = work / f"{name}.log"
        env = {**os.environ, "POD_NAME": f"{name}-0", "POD_NAMESPACE": SYSTEM_NAMESPACE}
        env.setdefault("LOG_LEVEL", "info")
        with log_path.open("ab") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *component_args(name, kubeconfig, timeout),
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                cwd=REPO,
                env=env,
                start_new_session=True,
            )
        c = cls(name, proc, time.monotonic(), log_path)
        assert proc.stdout is not None
        line_task = asyncio.ensure_future(proc.stdout.readline())
        try:
            async with asyncio.timeout(timeout):
                while not line_task.done():
                    if samples is not None and (s := sample(proc.pid, c.elapsed())) is not None:
                        samples.append(s)
                    await asyncio.wait([line_task], timeout=0.25)
        except TimeoutError:
            line_task.cancel()
            await c.stop()
            raise RuntimeError(f"{name} did not sync in {timeout:g}s: {tail(log_path)}") from None
        line = line_task.result()
        if not line:
            await c.stop()
            raise RuntimeError(f"{name} exited with {proc.returncode}: {tail(log_path)}")
        c.info = json.loads(line)
        return c

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    async def stop(self, grace: float = 20.0) -> int | None:
        proc = self.proc
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything it left in its group
        return proc.returncode


def tail(path: Path, chars: int = 2000) -> str:
    return path.read_text(errors="replace")[-chars:]


@dataclass
class Measurement:
    component: str
    revisions: int
    objects: int
    sync_seconds: float
    peak_rss_kib: int
    settled_rss_kib: int
    settled_pss_kib: int | None
    settled_uss_kib: int | None
    samples: int
    settle_seconds: float = 0.0  # from the sync to the end of the sampling
    quiet: bool = True  # the controller stopped reconciling within --sync-timeout
    writes: int | None = None
    writes_by_resource: dict[str, int] = field(default_factory=dict)


async def controller_counts(port: int) -> dict[str, int] | None:
    """The controller's reconcile passes and writes, by series, from its /metrics; None if
    it did not answer within 5 s (busy)."""
    counts: dict[str, int] = {}
    try:
        async with asyncio.timeout(5.0):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            await writer.drain()
            body = (await reader.read()).decode(errors="replace")
            writer.close()
    except (OSError, TimeoutError):
        return None
    for line in body.splitlines():
        if line.startswith(
            ("zeroserve_controller_writes_total{", "zeroserve_controller_reconciles_total{")
        ):
            series, _, value = line.rpartition(" ")
            counts[series] = int(float(value))
    return counts


def writes_of(counts: dict[str, int]) -> dict[str, int]:
    """``{"create deployments.apps": 3, ...}`` from the writes series."""
    found: dict[str, int] = {}
    for series, value in counts.items():
        if series.startswith("zeroserve_controller_writes_total{") and value:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', series))
            found[f"{labels.get('verb')} {labels.get('resource')}"] = value
    return found


async def measure(
    name: str,
    api: Any,
    kubeconfig: Path,
    work: Path,
    n: int,
    objects: int,
    args: argparse.Namespace,
) -> Measurement:
    """Sample ``name`` from its start until ``--settle`` seconds after it synced; the
    controller until its reconcile passes and writes have not moved for ``--settle``
    seconds (at most ``--sync-timeout``): it reconciles everything it read first."""
    samples: list[Sample] = []
    c = await Component.spawn(name, kubeconfig, work, args.sync_timeout, samples)
    synced = c.elapsed()
    counts: dict[str, int] = {}
    quiet = True
    try:
        port = int(c.info["metrics_port"]) if name == "controller" else 0
        quiet_since = time.monotonic()
        give_up = quiet_since + args.sync_timeout
        next_read = quiet_since
        while time.monotonic() - quiet_since < args.settle:
            if (s := sample(c.proc.pid, c.elapsed())) is not None:
                samples.append(s)
            if c.proc.returncode is not None:
                raise RuntimeError(f"{name} exited with {c.proc.returncode}: {tail(c.log)}")
            if port and time.monotonic() >= next_read:
                now = await controller_counts(port)
                if now is None or now != counts:  # busy, or it reconciled or wrote
                    counts, quiet_since = now or counts, time.monotonic()
                next_read = time.monotonic() + 1.0
            if time.monotonic() > give_up:
                quiet = False
                log(f"{name} still reconciling after {args.sync_timeout:g}s")
                break
            await asyncio.sleep(args.interval)
        busy = c.elapsed() - synced
    finally:
        code = await c.stop()
    if code not in (0, None):
        log(f"{name} exited with {code} at stop: {tail(c.log, 500)}")
    end = samples[-1].t
    last = [s for s in samples if s.t >= end - args.settle / 2] or samples[-1:]
    pss = [s.pss_kib for s in last if s.pss_kib is not None]
    uss = [s.uss_kib for s in last if s.uss_kib is not None]
    writes = writes_of(counts)
    return Measurement(
        component=name,
        revisions=n,
        objects=objects,
        sync_seconds=round(synced, 2),
        peak_rss_kib=max(max(s.hwm_kib for s in samples), max(s.rss_kib for s in samples)),
        settled_rss_kib=int(statistics.median(s.rss_kib for s in last)),
        settled_pss_kib=int(statistics.median(pss)) if pss else None,
        settled_uss_kib=int(statistics.median(uss)) if uss else None,
        samples=len(samples),
        settle_seconds=round(busy, 1),
        quiet=quiet,
        writes=sum(writes.values()) if name == "controller" else None,
        writes_by_resource=writes,
    )


async def run(args: argparse.Namespace, work: Path) -> list[Measurement]:
    template = await make_template(work, args.sync_timeout)
    results: list[Measurement] = []
    for n in args.revisions:
        api = new_fake(namespaces_for(n, args.per_namespace))
        began = time.monotonic()
        objects = load(api, template, n, args.per_namespace, args.running_fraction)
        log(f"N={n}: {objects} objects loaded in {time.monotonic() - began:.1f}s")
        async with api:
            kubeconfig = api.write_kubeconfig(work / f"kubeconfig-{n}")
            for name in args.components:
                m = await measure(name, api, kubeconfig, work, n, objects, args)
                log(
                    f"N={n} {name}: synced in {m.sync_seconds:.1f}s, peak {mib(m.peak_rss_kib)} MiB, "
                    f"settled {mib(m.settled_rss_kib)} MiB"
                )
                results.append(m)
    return results


# ----- the report -------------------------------------------------------------------------


def mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.0f}"


def report(results: list[Measurement], args: argparse.Namespace, command: str) -> str:
    base = {m.component: m for m in results if m.revisions == 0}
    lines = [
        "# Component memory by cluster size",
        "",
        f"Command: `{command}`",
        "",
        f"Each revision: its Service, Configuration, Route, Revision, Deployment, Services, "
        f"EndpointSlice and VirtualServices as the controller writes them; "
        f"{args.running_fraction:.0%} of the revisions also have a running Pod and a ready "
        f"endpoint, the others are scaled to zero; {args.per_namespace} Services to a namespace. "
        f"Sync: from the start to the component's JSON line (everything listed). Sampled: "
        f"after the sync, until {args.settle:g} s idle (the controller: {args.settle:g} s "
        f"without a reconcile pass or a write). Settled: the median of the samples of the "
        f"last {args.settle / 2:g} s; peak: VmHWM, the kernel's peak RSS.",
        "",
        "| component | revisions | objects | sync s | sampled s | peak RSS MiB "
        "| settled RSS MiB | settled PSS MiB | settled USS MiB "
        "| KiB per revision (settled RSS over N=0) | controller writes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in results:
        b = base.get(m.component)
        per = (
            f"{(m.settled_rss_kib - b.settled_rss_kib) / m.revisions:.1f}"
            if b is not None and m.revisions
            else "-"
        )
        writes = "-" if m.writes is None else f"{m.writes:,}"
        if not m.quiet:
            writes += " (still reconciling)"
        lines.append(
            f"| {m.component} | {m.revisions:,} | {m.objects:,} | {m.sync_seconds:.1f} "
            f"| {m.settle_seconds:.1f} | {mib(m.peak_rss_kib)} | {mib(m.settled_rss_kib)} | {mib(m.settled_pss_kib)} "
            f"| {mib(m.settled_uss_kib)} | {per} | {writes} |"
        )
    written = [m for m in results if m.writes_by_resource]
    if written:
        lines += ["", "Controller writes at start, by verb and resource:", ""]
        for m in written:
            parts = ", ".join(f"{k} {v:,}" for k, v in sorted(m.writes_by_resource.items()))
            lines.append(f"- {m.revisions:,} revisions: {parts}")
    return "\n".join(lines) + "\n"


def parse_counts(text: str) -> list[int]:
    try:
        counts = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--revisions: {text!r} is not a comma-separated list of counts"
        ) from None
    if not counts or any(c < 0 for c in counts):
        raise argparse.ArgumentTypeError(f"--revisions: {text!r} needs counts >= 0")
    return counts


def parse_components(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    unknown = [x for x in names if x not in COMPONENTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"--components: {', '.join(unknown) or repr(text)} is not one of {', '.join(COMPONENTS)}"
        )
    return names


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.component_memory",
        description="Resident memory of the controller, autoscaler and activator against the "
        "fake API server loaded with N revisions' objects.",
    )
    p.add_argument(
        "--revisions",
        type=parse_counts,
        default=parse_counts("0,1000,10000"),
        help="comma-separated revision counts (default 0,1000,10000); 0 is the baseline",
    )
    p.add_argument(
        "--components",
        type=parse_components,
        default=list(COMPONENTS),
        help=f"comma-separated, of {', '.join(COMPONENTS)} (default all)",
    )
    p.add_argument(
        "--per-namespace",
        type=int,
        default=100,
        help="Knative Services to a namespace (default 100)",
    )
    p.add_argument(
        "--running-fraction",
        type=float,
        default=0.1,
        help="share of revisions with a running Pod and a ready endpoint (default 0.1)",
    )
    p.add_argument(
        "--settle",
        type=float,
        default=15.0,
        help="seconds each component is sampled after it synced (default 15)",
    )
    p.add_argument("--interval", type=float, default=0.5, help="sampling period, s (default 0.5)")
    p.add_argument(
        "--sync-timeout",
        type=float,
        default=600.0,
        help="seconds a component may take to list everything (default 600)",
    )
    p.add_argument(
        "--out", type=Path, help="the report (default benchmarks/results/memory-<timestamp>.md)"
    )
    p.add_argument("--logs", type=Path, help="keep the components' logs in this directory")
    p.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = p.parse_args(argv)
    if args.per_namespace < 1:
        p.error("--per-namespace: needs at least 1")
    if not 0 <= args.running_fraction <= 1:
        p.error("--running-fraction: needs a number from 0 to 1")
    if args.settle <= 0 or args.interval <= 0:
        p.error("--settle and --interval: need positive seconds")
    command = "python -m benchmarks.component_memory " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    with tempfile.TemporaryDirectory(prefix="zs-memory-") as tmp:
        work = Path(tmp)
        if args.logs:
            work = args.logs
            work.mkdir(parents=True, exist_ok=True)
        try:
            results = asyncio.run(run(args, work))
        except (RuntimeError, AssertionError) as e:
            log(f"failed: {e}")
            return 1
    text = report(results, args, command.strip())
    out = args.out or RESULTS / f"memory-{time.strftime('%Y%m%d-%H%M%S')}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps([asdict(m) for m in results], indent=2) + "\n")
    print(text)
    log(f"report: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
