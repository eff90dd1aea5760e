"""The activator's mesh mode (docs/activator.md, "Mesh mode"): which address a revision's
requests go to when its pods refuse direct connections, with real sockets on 127.0.0.1.

A "pod" that resets its connections or answers 503 is what an Istio sidecar with STRICT
mTLS does to a plaintext call to a pod IP; the "service" answers the queue-proxy probe
as the private Service's ClusterIP does through the activator's own sidecar."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

import activator.handler as handler_module
from activator.revisions import HEALTHY, MESH_LIKE, NOT_MESH, Revisions, check
from activator.throttler import Budget, Throttler, Tracker
from zeroserve.topology import Endpoint, RevisionInfo, RevisionKey

from .test_activator_e2e import HOST, V1, activator, route

KEY = RevisionKey("default", "hello-00001")
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def answer(status: bytes, body: bytes) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
        writer.close()

    return handle


async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.transport.abort()  # what a STRICT sidecar does to plaintext


QUEUE = answer(b"200 OK", b"queue")
UNAVAILABLE = answer(b"503 Service Unavailable", b"no healthy upstream")
NOT_FOUND = answer(b"404 Not Found", b"not here")


@pytest.fixture
async def listen() -> AsyncIterator[Callable[[Handler], Awaitable[tuple[str, int]]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> tuple[str, int]:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        return "127.0.0.1", server.sockets[0].getsockname()[1]

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def revisions(mode: str, service: tuple[str, int]) -> Revisions:
    revs = Revisions(
        budget=Budget(100),
        queue_depth=10,
        on_granted=lambda rev, granted: None,
        on_removed=lambda key, waiters: None,
        probe_interval=0.01,
        probe_timeout=1.0,
        mesh_mode=mode,
        service_address=lambda key: service,
    )
    revs.put_revision(RevisionInfo(key=KEY, container_concurrency=2))
    return revs


def pods(*addresses: tuple[str, int], ready: bool = True) -> list[Endpoint]:
    return [
        Endpoint(name=f"pod-{port}", host=host, port=port, stats_port=9090, ready=ready)
        for host, port in addresses
    ]


def target(revs: Revisions) -> Tracker | None:
    """Where the next request of the revision would go."""
    rev = revs.get(KEY)
    assert rev is not None
    got = rev.throttler.acquire("request")
    if isinstance(got, Tracker):
        rev.throttler.release(got)
        return got
    rev.throttler.cancel("request")
    return None


async def eventually(condition: Callable[[], bool], what: str, timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)
    assert condition(), what


@pytest.mark.parametrize(
    ("mode", "pod_handler"),
    [("auto", reset), ("auto", UNAVAILABLE), ("enabled", reset), ("enabled", QUEUE)],
    ids=["auto-reset", "auto-503", "enabled-reset", "enabled-even-if-pods-answer"],
)
async def test_requests_go_through_the_private_service(
    listen: Callable[[Handler], Awaitable[tuple[str, int]]], mode: str, pod_handler: Handler
) -> None:
    service = await listen(QUEUE)
    a, b = await listen(pod_handler), await listen(pod_handler)
    revs = revisions(mode, service)
    try:
        # kubelet probes pass behind a sidecar: the pods are announced not ready first
        # (probed), then ready
        revs.set_endpoints(KEY, pods(a, b, ready=False) + pods(ready=True))
        revs.set_endpoints(KEY, pods(a, b, ready=True))
        rev = revs.get(KEY)
        assert rev is not None
        # auto: no direct probe has answered yet, so a pod announced ready is probed
        # before it is used (Knative's probePodIPs in auto): no request goes to a pod
        assert rev.trackers == {}
        await eventually(lambda: rev.via_service and rev.service is not None, "on the Service")
        t = target(revs)
        assert t is not None and t.address == service
        assert rev.trackers == {} and rev.probes == {}
        # the capacity is still that of the ready replicas: 2 x containerConcurrency 2
        assert rev.throttler.capacity == 4
        revs.set_endpoints(KEY, pods(a, ready=True))
        assert rev.throttler.capacity == 2
        revs.set_endpoints(KEY, [])  # scaled to zero: requests wait
        assert target(revs) is None and rev.service is None
    finally:
        revs.close()
        await revs.wait_probes_stopped()


async def test_a_non_mesh_answer_keeps_the_revision_direct(
    listen: Callable[[Handler], Awaitable[tuple[str, int]]],
) -> None:
    service = await listen(QUEUE)
    pod = await listen(NOT_FOUND)
    revs = revisions("auto", service)
    try:
        revs.set_endpoints(KEY, pods(pod, ready=False))
        rev = revs.get(KEY)
        assert rev is not None
        await eventually(lambda: rev.probe_results.get(pod) == NOT_MESH, "probed")
        revs.set_endpoints(KEY, pods(pod, ready=True))
        assert pod not in rev.trackers  # not proven direct: probed, not used
        await asyncio.sleep(0.2)  # several probe rounds
        assert not rev.via_service and rev.service is None and rev.service_probe is None
    finally:
        revs.close()
        await revs.wait_probes_stopped()


async def test_disabled_never_uses_the_service(
    listen: Callable[[Handler], Awaitable[tuple[str, int]]],
) -> None:
    service = await listen(QUEUE)
    pod = await listen(reset)
    revs = revisions("disabled", service)
    try:
        revs.set_endpoints(KEY, pods(pod, ready=False))
        rev = revs.get(KEY)
        assert rev is not None
        await eventually(lambda: rev.probe_results.get(pod) == MESH_LIKE, "probed")
        revs.set_endpoints(KEY, pods(pod, ready=True))
        revs.failed(rev, rev.trackers[pod])
        await asyncio.sleep(0.2)
        assert not rev.via_service and rev.service is None
        assert target(revs) is None  # the pod is being probed again, nothing else
    finally:
        revs.close()
        await revs.wait_probes_stopped()


async def test_a_healthy_pod_keeps_auto_direct(
    listen: Callable[[Handler], Awaitable[tuple[str, int]]],
) -> None:
    service = await listen(QUEUE)
    pod = await listen(QUEUE)
    revs = revisions("auto", service)
    try:
        revs.set_endpoints(KEY, pods(pod, ready=False))
        rev = revs.get(KEY)
        assert rev is not None
        await eventually(lambda: pod in rev.trackers, "probed healthy")
        t = target(revs)
        assert t is not None and t.address == pod and not rev.via_service
    finally:
        revs.close()
        await revs.wait_probes_stopped()


async def test_auto_uses_ready_pods_at_once_once_a_direct_probe_answered(
    listen: Callable[[Handler], Awaitable[tuple[str, int]]],
) -> None:
    """The fast path stays where there is no mesh: after one pod of the revision answered
    a direct probe, the next pods announced ready take requests without a probe."""
    service = await listen(QUEUE)
    first = await listen(QUEUE)
    revs = revisions("auto", service)
    try:
        revs.set_endpoints(KEY, pods(first, ready=True))
        rev = revs.get(KEY)
        assert rev is not None
        assert rev.trackers == {}  # probed first
        await eventually(lambda: first in rev.trackers, "probed healthy")
        later = ("127.0.0.1", 1)  # nothing listens: only a probe-free path could use it
        revs.set_endpoints(KEY, pods(first, later, ready=True))
        assert later in rev.trackers
    finally:
        revs.close()
        await revs.wait_probes_stopped()


async def test_switching_the_mode_live_moves_revisions(
    listen: Callable[[Handler], Awaitable[tuple[str, int]]],
) -> None:
    service = await listen(QUEUE)
    pod = await listen(QUEUE)
    revs = revisions("disabled", service)
    try:
        revs.set_endpoints(KEY, pods(pod, ready=True))
        t = target(revs)
        assert t is not None and t.address == pod
        revs.set_mesh("enabled", lambda key: service)
        rev = revs.get(KEY)
        assert rev is not None
        await eventually(lambda: rev.service is not None, "on the Service")
        t = target(revs)
        assert t is not None and t.address == service
        revs.set_mesh("disabled", lambda key: service)
        t = target(revs)
        assert t is not None and t.address == pod
    finally:
        revs.close()
        await revs.wait_probes_stopped()


@pytest.mark.parametrize(
    ("handler", "want"),
    [(QUEUE, HEALTHY), (UNAVAILABLE, MESH_LIKE), (reset, MESH_LIKE), (NOT_FOUND, NOT_MESH)],
    ids=["queue", "503", "reset", "404"],
)
async def test_probe_results(
    listen: Callable[[Handler], Awaitable[tuple[str, int]]], handler: Handler, want: str
) -> None:
    assert await check(await listen(handler), 1.0) == want


async def test_a_refused_connection_is_mesh_like() -> None:
    server = await asyncio.start_server(reset, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    assert await check(("127.0.0.1", port), 1.0) == MESH_LIKE


@pytest.mark.parametrize(
    ("backends", "index", "count", "want"),
    [(3, -1, 1, 3), (5, 0, 2, 3), (5, 1, 2, 2), (1, 1, 3, 1), (0, 0, 1, 0)],
)
def test_service_capacity_is_this_activators_share_of_the_ready_replicas(
    backends: int, index: int, count: int, want: int
) -> None:
    throttler: Throttler[str] = Throttler(10, 10, Budget(10))
    throttler.set_peers(index, count)
    service = Tracker(("svc", 80), None, 10)
    throttler.set_service(service, backends)
    assert throttler.capacity == 10 * want
    if want:
        assert throttler.acquire("r") is service


@pytest.mark.parametrize("pod_answers", ["refused", "503"])
async def test_a_request_goes_through_the_service_when_the_pods_refuse(
    listen: Callable[[Handler], Awaitable[tuple[str, int]]], pod_answers: str
) -> None:
    """End to end through the activator: the ready pod refuses connections (a STRICT
    sidecar) or is answered 503 (what the activator's own sidecar says of a plaintext
    call to a STRICT pod IP); in auto the held request is sent to the private Service,
    never to the pod."""
    seen: list[bytes] = []

    async def service_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        body = b"queue" if b"k-network-probe: queue" in head.lower() else b"via service"
        if body != b"queue":
            seen.append(head)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    service = await listen(service_handler)
    if pod_answers == "503":
        pod_port = (await listen(UNAVAILABLE))[1]
    else:
        gone = await asyncio.start_server(reset, "127.0.0.1", 0)
        pod_port = gone.sockets[0].getsockname()[1]
        gone.close()
        await gone.wait_closed()  # nothing listens there now: connections are refused
    async with activator() as (act, url):
        act.set_mesh("auto", lambda key: service)
        act.set_routes(route())
        act.put_revision(RevisionInfo(V1))
        act.set_endpoints(V1, [Endpoint("pod-1", "127.0.0.1", pod_port, 9090, ready=True)])
        async with httpx.AsyncClient(timeout=10) as client:
            r = await client.get(url + "/", headers={"Host": HOST})
        assert (r.status_code, r.text) == (200, "via service")
        rev = act.revisions.get(V1)
        assert rev is not None and rev.via_service
        assert b"k-original-host: " + HOST.encode() in seen[0].lower()


async def test_a_slow_cold_start_through_the_service_is_logged_with_its_phases(
    listen: Callable[[Handler], Awaitable[tuple[str, int]]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The first request after a scale to zero waits for a replica; in mesh mode the
    cold start's phases include the private Service's probes, and a slow one is logged
    with them (docs/activator.md, "Cold-start log"): what was still missing is there to
    read when a cold request is slow."""
    monkeypatch.setattr(handler_module, "COLD_LOG_AFTER", 0.0)
    probes: list[bytes] = []

    async def service_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if b"k-network-probe: queue" in head.lower():
            probes.append(head)
            # the first probe meets no ready pod behind the Service yet
            status, body = (
                (b"503 Service Unavailable", b"") if len(probes) == 1 else (b"200 OK", b"queue")
            )
        else:
            status, body = b"200 OK", b"via service"
        writer.write(
            b"HTTP/1.1 " + status + b"\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    service = await listen(service_handler)
    caplog.set_level(logging.INFO, logger="activator.handler")
    async with activator() as (act, url), httpx.AsyncClient(timeout=10) as client:
        act.set_mesh("enabled", lambda key: service)
        act.set_routes(route())
        act.put_revision(RevisionInfo(V1))
        request = asyncio.ensure_future(client.get(url + "/", headers={"Host": HOST}))
        rev = act.revisions.get(V1)
        assert rev is not None
        await eventually(lambda: rev.throttler.queued == 1, "the request is held")
        act.set_endpoints(V1, [Endpoint("pod-1", "127.0.0.1", 1, 9090, ready=False)])
        act.set_endpoints(V1, [Endpoint("pod-1", "127.0.0.1", 1, 9090, ready=True)])
        r = await request
    assert (r.status_code, r.text) == (200, "via service")
    assert len(probes) == 2
    (line,) = [m for m in caplog.messages if "slow cold start" in m]
    phases = [
        "autoscaler poked",
        "replica endpoint seen",
        "replica ready",
        "private Service probe failed",
        "private Service ready",
    ]
    where = [line.index(p + " +") for p in phases]
    assert where == sorted(where), line
    assert "via the private Service (healthy)" in line


async def test_a_request_that_leaves_while_held_says_why_it_was_held(
    listen: Callable[[Handler], Awaitable[tuple[str, int]]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A client that gives up on a held request (the e2e test's curl -m 60) leaves a
    warning with the cold start's state: here a ready replica, and a private Service whose
    probes fail."""
    monkeypatch.setattr(handler_module, "COLD_LOG_AFTER", 0.2)
    service = await listen(UNAVAILABLE)
    caplog.set_level(logging.INFO, logger="activator.handler")
    async with activator() as (act, url):
        act.set_mesh("enabled", lambda key: service)
        act.set_routes(route())
        act.put_revision(RevisionInfo(V1))
        act.set_endpoints(V1, [Endpoint("pod-1", "127.0.0.1", 1, 9090, ready=True)])
        async with httpx.AsyncClient(timeout=0.5) as client:
            with pytest.raises(httpx.TimeoutException):
                await client.get(url + "/", headers={"Host": HOST})
        rev = act.revisions.get(V1)
        assert rev is not None
        await eventually(lambda: rev.throttler.queued == 0, "the request is gone")
    (line,) = [m for m in caplog.messages if "left while waiting for a replica" in m]
    assert "1 endpoints (1 ready)" in line
    assert "via the private Service (not healthy, being probed)" in line
    assert "its last failed probes: mesh-like in" in line
