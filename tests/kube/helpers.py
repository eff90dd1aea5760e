"""Builders for the objects the adapters read, and a recorder of watch-cache events."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from zeroserve.kube import WatchCache

REVISION_LABEL = "serving.knative.dev/revision"


async def eventually(check: Callable[[], bool], what: str, within: float = 5.0) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``within`` seconds."""
    try:
        async with asyncio.timeout(within):
            while not check():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"not within {within}s: {what}") from None


class Recorder:
    """Collects (event type, object name) pairs a cache reports through on_change."""

    def __init__(self, cache: WatchCache) -> None:
        self.events: list[tuple[str, str]] = []
        self.objects: list[dict[str, Any]] = []
        cache.on_change(self)

    def __call__(self, kind: str, obj: dict[str, Any]) -> None:
        self.events.append((kind, obj["metadata"]["name"]))
        self.objects.append(obj)

    async def wait_for(self, *events: tuple[str, str]) -> None:
        await eventually(
            lambda: all(e in self.events for e in events), f"events {events}; seen {self.events}"
        )


def config_map(name: str, data: dict[str, str] | None = None, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "data": data or {"k": name},
    }


def deployment(revision: str, replicas: int = 1, namespace: str = "default") -> dict[str, Any]:
    labels = {REVISION_LABEL: revision}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"{revision}-deployment", "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "user-container", "image": "img:1"}]},
            },
        },
    }


def endpoint(
    pod: str, ip: str, *, ready: bool | None = True, terminating: bool = False
) -> dict[str, Any]:
    conditions: dict[str, Any] = {"terminating": terminating}
    if ready is not None:
        conditions["ready"] = ready
    return {
        "addresses": [ip],
        "conditions": conditions,
        "targetRef": {"kind": "Pod", "namespace": "default", "name": pod},
    }


def endpoint_slice(
    name: str,
    revision: str,
    endpoints: list[dict[str, Any]],
    ports: dict[str, int] | None = None,
) -> dict[str, Any]:
    ports = (
        {"http": 8012, "http-autometric": 9090, "http-queueadm": 8022} if ports is None else ports
    )
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": {
                REVISION_LABEL: revision,
                "kubernetes.io/service-name": f"{revision}-private",
            },
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports.items()],
    }


def pod(name: str, revision: str, start_time: str | None, created: str) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": {REVISION_LABEL: revision},
            "creationTimestamp": created,
        },
        "spec": {"containers": [{"name": "user-container", "image": "img:1"}]},
    }
    if start_time is not None:
        obj["status"] = {"phase": "Running", "startTime": start_time}
    return obj


def revision(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Revision",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": {
                "serving.knative.dev/service": "hello",
                "serving.knative.dev/configuration": "hello",
                "serving.knative.dev/routingState": "active",
            },
            "annotations": {"autoscaling.knative.dev/target": "10"},
        },
        "spec": {"containers": [{"image": "img:1"}], **spec},
    }
