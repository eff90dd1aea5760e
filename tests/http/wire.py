"""The HTTP engine in memory: fake transports on both sides, no sockets, no processes.

As uvicorn tests its protocols (bytes fed to ``data_received``, writes read back from a
fake transport), a :class:`Hop` wires a ``ServerConnection`` to a client-side
:class:`FakeTransport` and gives its ``UpstreamPool`` idle connections whose transports
are fakes too, so a test plays both the client and the app byte by byte.
"""

from __future__ import annotations

from typing import Any

from zeroserve.http.exchange import Limits, Request, Timeouts
from zeroserve.http.server import Handler, Server, ServerConnection
from zeroserve.http.upstream import UpstreamConnection, UpstreamPool


class FakeTransport:
    """Records what a protocol writes; reading can be paused and resumed."""

    def __init__(self, peer: tuple[str, int] = ("192.0.2.10", 40000)) -> None:
        self.peer = peer
        self.written: list[bytes] = []
        self.closed = False
        self.reading = True
        self.eof_written = False

    # -- what the engine calls ---------------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.peer if name == "peername" else default

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.written.append(bytes(data))

    def writelines(self, lines: list[bytes] | tuple[bytes, ...]) -> None:
        for line in lines:
            self.write(line)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True

    # -- what tests read ------------------------------------------------------------------

    def take(self) -> bytes:
        """Everything written since the last ``take``."""
        data = b"".join(self.written)
        self.written.clear()
        return data


class Forward(Handler):
    """Forwards every request to one pool (what the queue-proxy does, minus its policy)."""

    hop = b"queue-proxy"

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.finished: list[Request] = []

    def on_request(self, conn: ServerConnection, req: Request) -> None:
        conn.forward(self.pool)

    def on_finish(self, conn: ServerConnection, req: Request) -> None:
        self.finished.append(req)


class Hop:
    """One server, its handler and pool, and the fake transports of both sides."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.pool = UpstreamPool("127.0.0.1", 8080, max_idle=4)
        self.handler = Forward(self.pool)
        self.server = Server(self.handler, timeouts=Timeouts(), limits=limits or Limits())
        self.upstreams: list[tuple[UpstreamConnection, FakeTransport]] = []

    def client(self) -> tuple[ServerConnection, FakeTransport]:
        """A new client connection."""
        conn = ServerConnection(self.server)
        transport = FakeTransport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        return conn, transport

    def upstream(self) -> tuple[UpstreamConnection, FakeTransport]:
        """An open, idle connection to the app, taken by the next forwarded request."""
        up = UpstreamConnection(self.pool)
        transport = FakeTransport(("127.0.0.1", 8080))
        up.connection_made(transport)  # type: ignore[arg-type]
        self.pool.release(up)
        self.upstreams.append((up, transport))
        return up, transport
