"""The Python work of one exchange through a hop, in memory: no sockets, no kernel.

``python -m benchmarks.hoppython`` drives the queue-proxy (``queueproxy.app.QueueProxy``,
as a replica builds it from its environment: its fast path, queueproxy/fastpath.py, and
its general path alone, as before the fast path), the work floor and the floor
(benchmarks/h1floor.py) with the same request and response bytes written straight into
their protocol objects, whose transports only record what they are given. Each figure
is the median over repetitions of the wall time of many exchanges on one CPU, divided
by their number: the interpreter's share of a hop's CPU per request, which ``perf``
(``python -m benchmarks.hopprofile``) also sees, here without the kernel's and the
event loop's share and without their noise.

It then measures the general path again with parts of its work taken away, one at a
time and then all together (``ABLATIONS``), so that the difference to the whole
general path is what each part costs: what the fast path was built to leave out.
Nothing is asserted; the README's Performance section quotes the table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from unittest import mock

from benchmarks import h1floor

# What hey sends, and what the Go backend answers (benchmarks/gobackend).
REQUEST = (
    b"GET / HTTP/1.1\r\nHost: hello.default.example.com\r\nUser-Agent: hey/0.0.1\r\n"
    b"Content-Type: text/html\r\nAccept-Encoding: gzip\r\n\r\n"
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nDate: Sun, 06 Dec 2026 05:00:00 GMT\r\nContent-Length: 13\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nHello World!\n"
)
# What the activator (benchmarks/activator_runner.py, as here) forwards of REQUEST to a
# queue-proxy: the queue-proxy's request in "activator + queue-proxy".
BEHIND_ACTIVATOR = (
    b"GET / HTTP/1.1\r\nUser-Agent: hey/0.0.1\r\nContent-Type: text/html\r\n"
    b"Accept-Encoding: gzip\r\nHost: 127.0.0.1:9\r\nX-Forwarded-For: 127.0.0.1\r\n"
    b"K-Proxy-Request: activator\r\nK-Original-Host: hello.default.example.com\r\n\r\n"
)
QP_ENV = {
    "SERVING_NAMESPACE": "default",
    "SERVING_CONFIGURATION": "hello",
    "SERVING_REVISION": "hello-00001",
    "SERVING_POD": "hello-pod",
    "SERVING_POD_IP": "127.0.0.1",
    "CONTAINER_CONCURRENCY": "0",
    "QUEUE_SERVING_PORT": "0",
    "QUEUE_ADMIN_PORT": "0",
    "QUEUE_METRICS_PORT": "0",
    "USER_PORT": "9",
    "REVISION_TIMEOUT_SECONDS": "300",
}


class Sink:
    """A transport that keeps only the count of what it is given."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data: bytes) -> None:
        self.bytes += len(data)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.bytes += len(line)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        raise AssertionError("the hop closed a connection: the exchange is not as measured")

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


Exchange = Callable[[], None]
GENERAL = "queue-proxy's general path"


def queue_proxy(general: bool = False, request: bytes = REQUEST) -> tuple[Exchange, Sink]:
    """One exchange through the queue-proxy: the client's request in, the app's answer
    back, on one kept-alive connection each (``general``: through the general path, as
    a connection handed over by the fast path is served)."""
    from queueproxy.app import QueueProxy
    from queueproxy.config import Settings
    from zeroserve.http.server import ServerConnection
    from zeroserve.http.upstream import UpstreamConnection, UpstreamPool

    qp = QueueProxy(Settings.from_env(QP_ENV))
    # The fast path's hand-over would call the Sink's missing ``set_protocol``: a run
    # that left the fast path fails instead of measuring the general path under its name.
    client = ServerConnection(qp.serving) if general else qp.serving.connection(qp.serving)
    client_t = Sink()
    client.connection_made(client_t)  # type: ignore[arg-type]
    pool = qp.pool
    assert isinstance(pool, UpstreamPool)
    app = UpstreamConnection(pool)
    app.connection_made(Sink())  # type: ignore[arg-type]
    pool.release(app)

    def exchange() -> None:
        client.data_received(request)
        app.data_received(RESPONSE)

    return exchange, client_t


def activator(general: bool = False) -> tuple[Exchange, Sink]:
    """One exchange through the activator (``activator.app.Activator``, one route to a
    revision with one ready replica, as benchmarks/activator_runner.py builds it): the
    client's request in, the queue-proxy's answer back (``general``: the general path)."""
    from activator.app import Activator, Settings
    from activator.routing import Route, RoutingTable, Target
    from zeroserve.http.server import ServerConnection
    from zeroserve.http.upstream import UpstreamConnection, UpstreamPool
    from zeroserve.topology import Endpoint, RevisionInfo, RevisionKey

    key = RevisionKey("default", "hello-00001")
    act = Activator(Settings(host="127.0.0.1", port=0, metrics_port=0))
    act.set_routes(
        RoutingTable(
            [Route("default", "hello", ("hello.default.example.com",), (Target(key, 100),))]
        )
    )
    act.put_revision(RevisionInfo(key))
    act.set_endpoints(key, [Endpoint("replica-0", "127.0.0.1", 9, stats_port=0, ready=True)])
    rev = act.revisions.get(key)
    assert rev is not None and len(rev.trackers) == 1, "the replica was not taken as ready"
    server = act.servers[0]
    client = ServerConnection(server) if general else server.connection(server)
    client_t = Sink()
    client.connection_made(client_t)  # type: ignore[arg-type]
    (tracker,) = rev.trackers.values()
    pool = tracker.target
    assert isinstance(pool, UpstreamPool)
    qp = UpstreamConnection(pool)
    qp.connection_made(Sink())  # type: ignore[arg-type]
    pool.release(qp)

    def exchange() -> None:
        client.data_received(REQUEST)
        qp.data_received(RESPONSE)

    return exchange, client_t


def general_path() -> tuple[Exchange, Sink]:
    """One exchange through the queue-proxy's general path."""
    return queue_proxy(general=True)


def floor(work: bool) -> tuple[Exchange, Sink]:
    """One exchange through benchmarks/h1floor.py's pass-through (``work``: the work floor)."""
    pool: list[h1floor._App] = []
    client: h1floor._Client
    if work:
        client = h1floor._WorkClient(pool, 9, h1floor._Work())
        app: h1floor._App = h1floor._WorkApp(pool)
    else:
        client = h1floor._Client(pool, 9)
        app = h1floor._App(pool)
    client_t = Sink()
    client.connection_made(client_t)
    app.connection_made(Sink())
    pool.append(app)

    def exchange() -> None:
        client.data_received(REQUEST)
        app.data_received(RESPONSE)

    return exchange, client_t


def _no_handler_work() -> Iterator[Any]:
    """The handler forwards and nothing else: no health-check test, statistics, drain
    clock, breaker, tracing test, Forwarded synthesis, metrics or request log."""
    from queueproxy.handler import _DROP, QueueProxyHandler

    def on_request(self: Any, conn: Any, req: Any) -> None:
        req.ctx = False
        conn.forward(self.pool, drop=_DROP, host=req.h.get(b"k-original-host"))

    yield mock.patch.object(QueueProxyHandler, "on_request", on_request)
    yield mock.patch.object(QueueProxyHandler, "on_finish", lambda self, conn, req: None)


def _no_timers() -> Iterator[Any]:
    """No per-request timeouts armed (the request's deadlines stay unset)."""
    from zeroserve.http.clientside import ClientSide

    def arm(self: Any, req: Any) -> None:
        req.started = 1.0

    yield mock.patch.object(ClientSide, "arm", arm)


def _no_response_headers() -> Iterator[Any]:
    """The app's response head is not taken apart: no callback per response header (the
    parser is made without one), the lines it would have kept given ready-made."""
    from zeroserve.http.upstream import UpstreamConnection

    lines = [
        line + b"\r\n"
        for line in RESPONSE.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]
        if not line.lower().startswith((b"connection:", b"transfer-encoding:"))
    ]
    attach = UpstreamConnection.attach

    def ready_made(self: Any, client: Any, head_request: bool) -> None:
        attach(self, client, head_request)
        self.lines = list(lines)
        self.has_length = True

    yield mock.patch.object(UpstreamConnection, "on_header", None)
    yield mock.patch.object(UpstreamConnection, "attach", ready_made)


def _no_request_headers() -> Iterator[Any]:
    """The client's header lines are not kept one by one (only those the hop reads)."""
    from zeroserve.http.server import ServerConnection

    def on_header(self: Any, name: bytes, value: bytes) -> None:
        lname = name.lower()
        if lname in self.capture:
            self.reading.h[lname] = value

    yield mock.patch.object(ServerConnection, "on_header", on_header)


ABLATIONS: dict[str, Callable[[], Iterator[Any]]] = {
    "the handler's work (probes, stats, drain, breaker, metrics)": _no_handler_work,
    "timers armed per request": _no_timers,
    "a callback per response header": _no_response_headers,
    "the request's header lines kept": _no_request_headers,
}


@contextmanager
def ablated(names: list[str]) -> Iterator[None]:
    with ExitStack() as stack:
        for name in names:
            for patch in ABLATIONS[name]():
                stack.enter_context(patch)
        yield


def measure(make: Callable[[], tuple[Exchange, Sink]], n: int, reps: int) -> float:
    """Median µs per exchange over ``reps`` runs of ``n`` exchanges (a fresh hop each)."""
    out = []
    for _ in range(reps):
        exchange, sink = make()
        for _ in range(200):  # warm-up
            exchange()
        before = sink.bytes
        t0 = time.perf_counter()
        for _ in range(n):
            exchange()
        out.append((time.perf_counter() - t0) / n * 1e6)
        if sink.bytes - before != n * len(RESPONSE):
            raise AssertionError(
                f"{make.__name__}: the client got {sink.bytes - before} bytes for {n} "
                f"responses of {len(RESPONSE)}"
            )
    return statistics.median(out)


# The hops' fast paths and the work floor they are held against, by row name
# (benchmarks/compiled.py measures these too).
FAST_ROWS: dict[str, Callable[[], tuple[Exchange, Sink]]] = {
    "work floor": lambda: floor(True),
    "queue-proxy": queue_proxy,
    "queue-proxy behind the activator": lambda: queue_proxy(request=BEHIND_ACTIVATOR),
    "activator": activator,
}


async def run(n: int, reps: int) -> list[tuple[str, float]]:
    rows = [("floor", measure(lambda: floor(False), n, reps))]
    rows += [(name, measure(make, n, reps)) for name, make in FAST_ROWS.items()]
    rows.append(("activator's general path", measure(lambda: activator(general=True), n, reps)))
    rows.append((GENERAL, measure(general_path, n, reps)))
    for name in ABLATIONS:
        with ablated([name]):
            rows.append((f"{GENERAL} without {name}", measure(general_path, n, reps)))
    with ablated(list(ABLATIONS)):
        rows.append((f"{GENERAL} without all of these", measure(general_path, n, reps)))
    return rows


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.hoppython", description=__doc__)
    p.add_argument("--exchanges", type=int, default=50_000, help="per repetition")
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()
    import uvloop

    rows = uvloop.run(run(args.exchanges, args.reps))
    full = dict(rows)[GENERAL]
    print(f"| hop, in memory | Python µs per exchange | vs the {GENERAL} |")
    print("| --- | --: | --: |")
    for name, us in rows:
        print(f"| {name} | {us:.2f} | {us - full:+.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
