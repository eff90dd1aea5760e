"""What the reliability tests share: manifests, closed-loop load, the replica-count
watcher, the activators' metrics, a fake control API and an activator process.

Everything here owns what it starts: tasks are cancelled and awaited, processes are
stopped and reaped, listeners are closed, whatever way the test ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from aiohttp import web

from tests.local.support import UpProcess
from zeroserve.local.protocol import Snapshot
from zeroserve.topology import Endpoint, RevisionInfo, RevisionKey, Route, Target

from .procfs import components, listening

AUTOSCALE_APP = ["python", "examples/autoscale/app.py"]  # GET /?sleep=MS
HELLO_APP = ["python", "examples/helloworld/app.py"]

# -- manifests ----------------------------------------------------------------------------


def service(
    name: str,
    command: list[str],
    *,
    annotations: dict[str, str] | None = None,
    container_concurrency: int | None = None,
    timeout_seconds: int | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A ``serving.knative.dev/v1`` Service running ``command`` locally."""
    container: dict[str, Any] = {"image": f"example.com/{name}:latest", "command": command}
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    spec: dict[str, Any] = {"containers": [container]}
    if container_concurrency is not None:
        spec["containerConcurrency"] = container_concurrency
    if timeout_seconds is not None:
        spec["timeoutSeconds"] = timeout_seconds
    template: dict[str, Any] = {"spec": spec}
    if annotations:
        template["metadata"] = {
            "annotations": {f"autoscaling.knative.dev/{k}": v for k, v in annotations.items()}
        }
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"template": template},
    }


def autoscaler_config(**data: str) -> dict[str, Any]:
    """``config-autoscaler``; keys with dashes are given with underscores."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "config-autoscaler", "namespace": "knative-serving"},
        "data": {k.replace("_", "-"): v for k, v in data.items()},
    }


# Scale decisions on 6 s of history (the shortest window allowed), zero 1 s after that.
FAST_CONFIG = autoscaler_config(stable_window="6s", scale_to_zero_grace_period="1s")


def manifest(path: Path, *docs: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


# -- requests ------------------------------------------------------------------------------


def reason(r: httpx.Response) -> str:
    """``X-Zeroserve-Error`` of a generated error, e.g. ``activator; reason=queue-full``."""
    return r.headers.get("x-zeroserve-error", "")


@dataclass
class Load:
    """Closed-loop clients against the ingress: each sends a request, waits for the answer,
    pauses, repeats. The number of clients changes with ``clients``; a client that is
    told to stop finishes its request first, so nothing is cut off by the test itself."""

    url: str
    host: str
    path: str = "/"
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    _workers: list[tuple[asyncio.Task[None], asyncio.Event]] = field(default_factory=list)
    _client: httpx.AsyncClient | None = None

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())

    async def __aenter__(self) -> Load:
        self._client = httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=200))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.clients(0)
        if self._client is not None:
            await self._client.aclose()

    async def clients(self, n: int, path: str | None = None, pause: float = 0.0) -> None:
        """Run ``n`` clients sending ``path`` from now on; the current ones finish their
        request and stop first."""
        for _, stop in self._workers:
            stop.set()
        await asyncio.gather(*(task for task, _ in self._workers))
        self._workers.clear()
        for i in range(n):
            stop = asyncio.Event()
            task = asyncio.create_task(
                self._run(stop, pause, path or self.path), name=f"load client {i}"
            )
            self._workers.append((task, stop))

    async def _run(self, stop: asyncio.Event, pause: float, path: str) -> None:
        assert self._client is not None
        while not stop.is_set():
            try:
                r = await self._client.get(self.url + path, headers={"Host": self.host})
            except httpx.HTTPError as e:
                self.statuses[0] += 1
                self.failures.append(f"{type(e).__name__}: {e}")
            else:
                self.statuses[r.status_code] += 1
                if r.status_code != 200:
                    self.failures.append(f"{r.status_code} {reason(r)}: {r.text[:200]}")
            if pause:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)


# -- the control API's view of replicas (what `zeroserve get revisions -o json` prints) ---


class ReplicaWatch:
    """Polls ``/v1/objects/revisions`` (the endpoint behind ``zeroserve get revisions -o
    json``) and records every change of a revision's (actualReplicas, desiredReplicas).

    Polling the API directly instead of running the CLI every 100 ms keeps a 2-core
    machine free for the system under test; tests still check the CLI's output."""

    def __init__(self, up: UpProcess, revision: str, every: float = 0.1) -> None:
        self.up = up
        self.revision = revision
        self.every = every
        self.history: list[tuple[int, int]] = []
        self.times: list[float] = []  # when each history entry was seen (loop time)
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    @property
    def actual(self) -> int:
        return self.history[-1][0] if self.history else -1

    def actuals(self) -> list[int]:
        """The actualReplicas values seen, consecutive duplicates removed."""
        out: list[int] = []
        for a, _ in self.history:
            if not out or out[-1] != a:
                out.append(a)
        return out

    async def __aenter__(self) -> ReplicaWatch:
        self._task = asyncio.create_task(self._run(), name=f"watch {self.revision}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            while True:
                try:
                    r = await client.get(
                        self.up.control + "/v1/objects/revisions",
                        params={"namespace": "default", "name": self.revision},
                        headers=self.up.headers,
                    )
                    items = r.json()["items"]
                except (httpx.HTTPError, ValueError, KeyError):
                    items = []
                if items:
                    status = items[0].get("status", {})
                    now = (
                        int(status.get("actualReplicas", 0)),
                        int(status.get("desiredReplicas", -1)),
                    )
                    if not self.history or self.history[-1] != now:
                        self.history.append(now)
                        self.times.append(asyncio.get_running_loop().time())
                        self._changed.set()
                        self._changed = asyncio.Event()
                await asyncio.sleep(self.every)

    async def until(self, check: Callable[[int, int], bool], what: str, within: float) -> None:
        """Wait until ``check(actual, desired)`` holds for the latest state."""
        try:
            async with asyncio.timeout(within):
                while not (self.history and check(*self.history[-1])):
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"not within {within}s: {what}; (actual, desired) seen: {self.history}; "
                f"logs in {self.up.logs}"
            ) from None


async def pod_rows(up: UpProcess) -> list[list[str]]:
    """``zeroserve get pods`` rows (NAME READY STATUS RESTARTS AGE), header dropped."""
    out = (await up.acli("get", "pods")).stdout.strip().splitlines()
    return [line.split() for line in out[1:]] if out and out[0].startswith("NAME") else []


async def until(check: Callable[[], Any], what: str, within: float, every: float = 0.05) -> Any:
    """Poll a sync or async ``check`` until it returns something truthy."""
    last = None
    try:
        async with asyncio.timeout(within):
            while True:
                last = check()
                if asyncio.iscoroutine(last):
                    last = await last
                if last:
                    return last
                await asyncio.sleep(every)
    except TimeoutError:
        raise AssertionError(f"not within {within}s: {what} (last: {last!r})") from None


# -- Prometheus text ------------------------------------------------------------------------


def samples(text: str, name: str, **labels: str) -> list[float]:
    """Values of ``name`` whose labels include ``labels``."""
    out = []
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, value = line.rsplit(" ", 1)
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            out.append(float(value))
    return out


async def activator_metrics(up: UpProcess) -> dict[int, str]:
    """Prometheus text of every activator of ``up``, by pid (its metrics port is its
    listener other than the ingress that answers ``/metrics``: the local gateway
    listener answers it 404)."""
    out = {}
    async with httpx.AsyncClient(timeout=10) as client:
        for pid in components(up.proc.pid, "activator"):
            for _, port in listening(pid):
                if port != up.ingress_port:
                    r = await client.get(f"http://127.0.0.1:{port}/metrics")
                    if r.status_code == 200:
                        out[pid] = r.text
    return out


async def assert_activators_settled(up: UpProcess) -> None:
    """With no traffic: nothing waits, nothing is in flight, the budget is all free
    (faults leaked no slot or place). Waits briefly for answers still on their way."""

    def settled(text: str) -> bool:
        return (
            samples(text, "zeroserve_activator_budget", kind="used") == [0.0]
            and not any(samples(text, "kn_revision_request_active"))
            and not any(samples(text, "kn_revision_request_queued"))
        )

    texts: dict[int, str] = {}
    try:
        async with asyncio.timeout(10):
            while True:
                texts = await activator_metrics(up)
                if texts and all(settled(t) for t in texts.values()):
                    return
                await asyncio.sleep(0.2)
    except TimeoutError:
        lines = [
            line
            for t in texts.values()
            for line in t.splitlines()
            if line.startswith(
                (
                    "zeroserve_activator_budget",
                    "kn_revision_request_active",
                    "kn_revision_request_queued",
                )
            )
        ]
        raise AssertionError(f"the activators did not settle: {lines}") from None


# -- a fake control API and an activator that follows it -------------------------------------


def snapshot(
    version: int,
    routes: dict[str, RevisionKey],
    endpoints: dict[RevisionKey, list[Endpoint]] | None = None,
    revisions: Iterable[RevisionInfo] = (),
) -> Snapshot:
    """Routes by host; every routed revision exists (defaults), with the given endpoints."""
    infos = {r.key: r for r in revisions}
    for key in routes.values():
        infos.setdefault(key, RevisionInfo(key, service=key.name.rsplit("-", 1)[0]))
    return Snapshot(
        version=version,
        revisions=infos,
        routes=tuple(
            Route(key.namespace, f"route-{i}", (host,), (Target(key, 100),))
            for i, (host, key) in enumerate(routes.items())
        ),
        endpoints={k: tuple(v) for k, v in (endpoints or {}).items()},
        replicas={k: len((endpoints or {}).get(k, [])) for k in infos},
    )


class FakeControl:
    """``GET /v1/state?since=N&wait=S`` as ``zeroserve up`` answers it (long-poll on the
    version), serving whatever snapshot the test publishes; ``stop`` takes it away (the
    control plane is down) and ``start`` brings it back on the same port."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        self.polls = 0
        self.port = 0
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def publish(self, snap: Snapshot) -> None:
        self.snap = snap
        self._changed.set()
        self._changed = asyncio.Event()

    async def _state(self, request: web.Request) -> web.Response:
        self.polls += 1
        if self.snap.version == int(request.query.get("since", "-1")):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), float(request.query.get("wait", "0")))
        return web.json_response(self.snap.to_json())

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v1/state", self._state)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True).start()
        self.port = int(runner.addresses[0][1])
        self._runner = runner

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            self.publish(self.snap)  # answer the waiting long-polls
            await runner.cleanup()

    async def __aenter__(self) -> FakeControl:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
