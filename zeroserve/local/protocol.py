"""The local control API's data-plane protocol: state snapshots and scale requests.

Locally, ``zeroserve up`` plays the Kubernetes API server: the activator and
the autoscaler run as their own processes and follow the control plane by
long-polling ``GET /v1/state?since=N`` (the answer comes as soon as the state
version passes N, or after ``wait`` seconds with the same version), and the
autoscaler applies replica counts with ``POST /v1/scale``. A snapshot is the
whole state the data plane needs; it is small, and whole snapshots make every
reader converge whatever it missed.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from zeroserve.local import access
from zeroserve.topology import Endpoint, RevisionInfo, RevisionKey, Route, TagRoute, Target

log = logging.getLogger(__name__)

STATE_PATH = "/v1/state"
SCALE_PATH = "/v1/scale"
LONG_POLL = 25.0
READY_VIEW = "ready"
"""``GET /v1/state?view=ready``: the snapshot with only the ready endpoints, versioned
on its own (``StateHub.wait_past``), for a follower that reads no other endpoint."""
SERVING_VIEW = "serving"
"""``GET /v1/state?view=serving``: the whole snapshot, answered only when what a request
is routed by changed (revisions, routes, endpoints, observability and tracing config),
not for replica counts or the autoscaler's config (``StateHub.wait_past``)."""


@dataclass(frozen=True)
class Snapshot:
    """Everything the data plane needs, at one version."""

    version: int
    revisions: Mapping[RevisionKey, RevisionInfo] = field(default_factory=dict)
    routes: tuple[Route, ...] = ()
    endpoints: Mapping[RevisionKey, tuple[Endpoint, ...]] = field(default_factory=dict)
    """Every replica that has a queue-proxy listening, ready or not."""
    replicas: Mapping[RevisionKey, int] = field(default_factory=dict)
    """The replica count last applied per revision."""
    autoscaler_config: Mapping[str, str] = field(default_factory=dict)
    """config-autoscaler data."""
    deployment_config: Mapping[str, str] = field(default_factory=dict)
    """config-deployment data."""
    observability_config: Mapping[str, str] = field(default_factory=dict)
    """config-observability data (``ObservabilityConfig.from_maps`` with ``tracing_config``)."""
    tracing_config: Mapping[str, str] = field(default_factory=dict)
    """config-tracing data (Knative 1.14's map, folded into the observability config)."""
    tag_header_routing: bool = False
    """config-features ``tag-header-based-routing`` is enabled (the activator routes
    ``Knative-Serving-Tag``)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "revisions": [_revision_json(r) for r in self.revisions.values()],
            "routes": [_route_json(r) for r in self.routes],
            "endpoints": [
                {
                    "namespace": k.namespace,
                    "revision": k.name,
                    "endpoints": [_endpoint_json(e) for e in eps],
                }
                for k, eps in self.endpoints.items()
            ],
            "replicas": [
                {"namespace": k.namespace, "revision": k.name, "replicas": n}
                for k, n in self.replicas.items()
            ],
            "autoscaler_config": dict(self.autoscaler_config),
            "deployment_config": dict(self.deployment_config),
            "observability_config": dict(self.observability_config),
            "tracing_config": dict(self.tracing_config),
            "tag_header_routing": self.tag_header_routing,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Snapshot:
        """Decode; raises ``ValueError`` on a malformed snapshot."""
        try:
            revisions = {}
            for r in data["revisions"]:
                info = RevisionInfo(
                    key=RevisionKey(r["namespace"], r["name"]),
                    container_concurrency=int(r["container_concurrency"]),
                    annotations=dict(r["annotations"]),
                    reachable=bool(r["reachable"]),
                    service=r["service"],
                    configuration=r["configuration"],
                    timeout_seconds=float(r["timeout_seconds"]),
                    response_start_timeout_seconds=float(r["response_start_timeout_seconds"]),
                    idle_timeout_seconds=float(r["idle_timeout_seconds"]),
                    failure=str(r.get("failure", "")),
                    backing_off=bool(r.get("backing_off", False)),
                    protocol=str(r.get("protocol", "http1")),
                )
                revisions[info.key] = info
            routes = tuple(_route_from_json(r) for r in data["routes"])
            endpoints = {
                RevisionKey(e["namespace"], e["revision"]): tuple(
                    Endpoint(
                        name=x["name"],
                        host=x["host"],
                        port=int(x["port"]),
                        stats_port=int(x["stats_port"]),
                        started_at=float(x["started_at"]),
                        ready=bool(x["ready"]),
                    )
                    for x in e["endpoints"]
                )
                for e in data["endpoints"]
            }
            replicas = {
                RevisionKey(r["namespace"], r["revision"]): int(r["replicas"])
                for r in data["replicas"]
            }
            return cls(
                version=int(data["version"]),
                revisions=revisions,
                routes=routes,
                endpoints=endpoints,
                replicas=replicas,
                autoscaler_config=dict(data.get("autoscaler_config", {})),
                deployment_config=dict(data.get("deployment_config", {})),
                observability_config=dict(data.get("observability_config", {})),
                tracing_config=dict(data.get("tracing_config", {})),
                tag_header_routing=bool(data.get("tag_header_routing", False)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ValueError(f"malformed state snapshot: {e!r}") from None


def _revision_json(r: RevisionInfo) -> dict[str, Any]:
    return {
        "namespace": r.key.namespace,
        "name": r.key.name,
        "container_concurrency": r.container_concurrency,
        "annotations": dict(r.annotations),
        "reachable": r.reachable,
        "service": r.service,
        "configuration": r.configuration,
        "timeout_seconds": r.timeout_seconds,
        "response_start_timeout_seconds": r.response_start_timeout_seconds,
        "idle_timeout_seconds": r.idle_timeout_seconds,
        "failure": r.failure,
        "backing_off": r.backing_off,
        "protocol": r.protocol,
    }


def _target_json(t: Target) -> dict[str, Any]:
    return {"namespace": t.revision.namespace, "revision": t.revision.name, "percent": t.percent}


def _target_from_json(t: Mapping[str, Any]) -> Target:
    return Target(RevisionKey(t["namespace"], t["revision"]), int(t["percent"]))


def _route_json(r: Route) -> dict[str, Any]:
    return {
        "namespace": r.namespace,
        "name": r.name,
        "hosts": list(r.hosts),
        "local_hosts": list(r.local_hosts),
        "targets": [_target_json(t) for t in r.targets],
        "tags": [
            {
                "tag": tag,
                "hosts": list(t.hosts),
                "local_hosts": list(t.local_hosts),
                "namespace": t.revision.namespace,
                "revision": t.revision.name,
                "targets": [_target_json(x) for x in t.targets],
            }
            for tag, t in r.tags.items()
        ],
    }


def _route_from_json(r: Mapping[str, Any]) -> Route:
    return Route(
        namespace=r["namespace"],
        name=r["name"],
        hosts=tuple(r["hosts"]),
        targets=tuple(_target_from_json(t) for t in r["targets"]),
        tags={
            t["tag"]: TagRoute(
                hosts=tuple(t["hosts"]),
                local_hosts=tuple(t["local_hosts"]),
                revision=RevisionKey(t["namespace"], t["revision"]),
                targets=tuple(_target_from_json(x) for x in t["targets"]),
            )
            for t in r["tags"]
        },
        local_hosts=tuple(r["local_hosts"]),
    )


def _endpoint_json(e: Endpoint) -> dict[str, Any]:
    return {
        "name": e.name,
        "host": e.host,
        "port": e.port,
        "stats_port": e.stats_port,
        "started_at": e.started_at,
        "ready": e.ready,
    }


class StateFollower:
    """Long-polls the control API and calls ``on_snapshot`` with every new state.

    Survives the control API going away (reconnects with backoff); the last
    snapshot stays in force meanwhile, so the data plane keeps serving. Every poll
    carries the control API's token: ``token``, else ``$ZEROSERVE_CONTROL_TOKEN``
    (how ``zeroserve up`` gives it to its children).
    """

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession,
        on_snapshot: Callable[[Snapshot], None],
        *,
        client: str = "",
        token: str | None = None,
        view: str = "",
    ) -> None:
        self.url = url.rstrip("/")
        self.headers = access.headers(token or access.child_token())
        self.client = client
        """Named in every poll (``client=``): the control API then knows which version
        this follower has applied (``zeroserve up`` waits for its activators)."""
        self.view = view
        """``READY_VIEW``: follow the ready view (only ready endpoints, woken by nothing
        else); empty: the whole snapshot."""
        self.session = session
        self.on_snapshot = on_snapshot
        self.snapshot: Snapshot | None = None
        self.synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name="control-state-follower"
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        delay = 0.05
        since = -1
        while True:
            try:
                async with self.session.get(
                    f"{self.url}{STATE_PATH}",
                    params={
                        "since": str(since),
                        "wait": str(LONG_POLL),
                        **({"client": self.client} if self.client else {}),
                        **({"view": self.view} if self.view else {}),
                    },
                    headers=self.headers,
                    timeout=aiohttp.ClientTimeout(total=LONG_POLL + 10),
                ) as r:
                    if r.status == 401:
                        raise ValueError(
                            f"the control API refused this process's token (401; "
                            f"${access.TOKEN_ENV} {'is not set' if not self.headers else 'is wrong'})"
                        )
                    if r.status != 200:
                        raise aiohttp.ClientResponseError(
                            r.request_info, (), status=r.status, message=r.reason or ""
                        )
                    data = await r.json()
                snapshot = Snapshot.from_json(data)
                delay = 0.05
                if snapshot.version != since:
                    since = snapshot.version
                    self.snapshot = snapshot
                    try:
                        self.on_snapshot(snapshot)
                    except Exception:
                        log.exception("applying control-plane state %d failed", snapshot.version)
                    self.synced.set()
                continue
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as e:
                log.warning(
                    "control API %s unreachable (keeping the last state): %s",
                    self.url,
                    e or type(e).__name__,
                )
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(2.0, delay * 2)


async def post_scale(
    session: aiohttp.ClientSession,
    url: str,
    key: RevisionKey,
    replicas: int,
    *,
    token: str | None = None,
) -> None:
    """Ask the control plane to run ``replicas`` replicas; raises ``ScaleRequestError``.
    Carries ``token`` (else ``$ZEROSERVE_CONTROL_TOKEN``), as ``StateFollower`` does."""
    try:
        async with session.post(
            f"{url.rstrip('/')}{SCALE_PATH}",
            json={"namespace": key.namespace, "revision": key.name, "replicas": replicas},
            headers=access.headers(token or access.child_token()),
            timeout=aiohttp.ClientTimeout(total=10),
        ) as r:
            if r.status != 200:
                raise ScaleRequestError(
                    f"{key}: control API answered {r.status}: {(await r.text()).strip()}"
                )
    except (aiohttp.ClientError, OSError, TimeoutError) as e:
        raise ScaleRequestError(
            f"{key}: control API unreachable: {e or type(e).__name__}"
        ) from None


class ScaleRequestError(RuntimeError):
    """The control API refused or did not take a scale request."""
