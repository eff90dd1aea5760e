"""Manifests (the Knative docs' helloworld-go and traffic-splitting samples, as a cluster
takes them: no ``command``), builders for what the kubelet would report (EndpointSlices,
crash-looping Pods), and an in-process controller against the fake API server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import yaml

from controller.app import KubeController
from controller.config import Settings
from tests.fakes.kubeapi.fakeapi import FakeKubeAPI
from zeroserve.api.objects import Obj
from zeroserve.kube import connect
from zeroserve.leader import LeaderElector

REVISION_LABEL = "serving.knative.dev/revision"

HELLOWORLD_GO = """\
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: helloworld-go
  namespace: default
spec:
  template:
    spec:
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
          ports:
            - containerPort: 8080
          env:
            - name: TARGET
              value: "Go Sample v1"
"""

HELLO_V1 = """\
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
  namespace: default
spec:
  template:
    spec:
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
          ports:
            - containerPort: 8080
          env:
            - name: TARGET
              value: "World"
"""

# The second revision: 20 % stays on the first (tag "current"), 80 % and the tag "latest"
# follow the newest ready revision.
HELLO_V2 = (
    HELLO_V1.replace('value: "World"', 'value: "Knative"')
    + """\
  traffic:
    - latestRevision: true
      percent: 80
    - revisionName: hello-00001
      percent: 20
      tag: current
    - latestRevision: true
      tag: latest
"""
)


def manifest(text: str) -> Obj:
    obj: Obj = yaml.safe_load(text)
    return obj


def namespace(name: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name},
        "status": {"phase": "Active"},
    }


def config_map(name: str, data: dict[str, str]) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "knative-serving"},
        "data": data,
    }


def endpoint_slice(
    revision: str, *pods: tuple[str, str], ready: bool = True, namespace: str = "default"
) -> Obj:
    """What the EndpointSlice controller publishes for ``<revision>-private`` once the
    kubelet reports the pods (name, IP) ready (or not)."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{revision}-private-abcde",
            "namespace": namespace,
            "labels": {
                REVISION_LABEL: revision,
                "kubernetes.io/service-name": f"{revision}-private",
            },
        },
        "addressType": "IPv4",
        "endpoints": [
            {
                "addresses": [ip],
                "conditions": {"ready": ready},
                "targetRef": {"kind": "Pod", "namespace": namespace, "name": pod},
            }
            for pod, ip in pods
        ],
        "ports": [
            {"name": "http", "port": 8012, "protocol": "TCP"},
            {"name": "http-autometric", "port": 9090, "protocol": "TCP"},
        ],
    }


def crashing_pod(
    revision: str, name: str, *, exit_code: int = 1, message: str = "", namespace: str = "default"
) -> Obj:
    """A pod whose user container crash-loops, as the kubelet reports it."""
    terminated = {"exitCode": exit_code, "reason": "Error"}
    if message:
        terminated["message"] = message
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {REVISION_LABEL: revision}},
        "spec": {"containers": [{"name": "user-container", "image": "img"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "user-container",
                    "ready": False,
                    "restartCount": 3,
                    "state": {
                        "waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": "back-off 40s restarting failed container",
                        }
                    },
                    "lastState": {"terminated": terminated},
                },
                {
                    "name": "queue-proxy",
                    "ready": False,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
                },
            ],
        },
    }


def condition(obj: Obj | None, kind: str = "Ready") -> Obj:
    for c in ((obj or {}).get("status") or {}).get("conditions") or ():
        if c["type"] == kind:
            return dict(c)
    return {}


def is_ready(obj: Obj | None) -> bool:
    return condition(obj).get("status") == "True"


def has_status(key: str, value: Any) -> Callable[[Obj | None], bool]:
    return lambda obj: obj is not None and (obj.get("status") or {}).get(key) == value


async def eventually(check: Callable[[], bool], what: str, within: float = 5.0) -> None:
    try:
        async with asyncio.timeout(within):
            while not check():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"not within {within}s: {what}") from None


async def settled(ctl: KubeController, quiet: float = 0.3, within: float = 10.0) -> None:
    """Wait until the controller has run no pass for ``quiet`` seconds (it converged)."""
    async with asyncio.timeout(within):
        while True:
            seen = ctl.passes
            await asyncio.sleep(quiet)
            if ctl.passes == seen:
                return


def fast_elector(ctl_client: Any, identity: str) -> LeaderElector:
    return LeaderElector(
        ctl_client,
        "knative-serving",
        "zeroserve-controller",
        identity=identity,
        lease_duration=2.0,
        renew_interval=0.3,
        retry_interval=0.1,
        renew_deadline=1.2,
    )


@contextlib.asynccontextmanager
async def running(
    kubeconfig: Path, *, identity: str | None = None, **settings: Any
) -> AsyncIterator[KubeController]:
    """An in-process controller (no leader election unless ``identity`` is given: then a
    fast one, 2 s leases), stopped on exit."""
    client = await connect(str(kubeconfig), request_timeout=2.0)
    options: dict[str, Any] = {
        "host": "127.0.0.1",
        "metrics_port": 0,
        "leader_elect": False,
        "sync_timeout": 10.0,
        **settings,
    }
    elector = fast_elector(client, identity) if identity else None
    ctl = KubeController(client, Settings(**options), elector=elector)
    try:
        await ctl.start()
        yield ctl
    finally:
        await ctl.stop()
        await client.close()


def put_manifest(api: FakeKubeAPI, text: str) -> Obj:
    """Create the manifest's object, or replace its spec as ``kubectl apply`` would (the
    API bumps ``metadata.generation``; status and identity stay)."""
    obj = manifest(text)
    m = obj["metadata"]
    resource = "ksvc" if obj["kind"] == "Service" else f"{obj['kind'].lower()}s.serving.knative.dev"
    current = api.get(resource, m.get("namespace", "default"), m["name"])
    if current is None:
        return api.put(obj)
    return api.put({**current, "spec": obj["spec"]})
