"""A small HTTP/2-only app (h2c, prior knowledge) for the engine's tests, on the h2
library: what an app whose port is named ``h2c`` is to a hop.

Paths: ``/hello`` ("hello"), ``/proto`` (the protocol it was spoken to in: always
``HTTP/2``), ``/echo`` (the request body back, streamed as it arrives), ``/sink``
(the body's size), ``/download?size=N``, ``/trailers`` (a body then ``grpc-status: 0``
and ``grpc-message: ok`` as trailers), ``/hold`` (answers once ``state.release`` is set).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RequestReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import H2Error
from h2.settings import SettingCodes, Settings


@dataclass
class H2AppState:
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    connections: int = 0
    headers: list[dict[bytes, bytes]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)


class _Conn(asyncio.Protocol):
    def __init__(self, state: H2AppState, max_streams: int | None = None) -> None:
        self.state = state
        self.h2 = H2Connection(H2Configuration(client_side=False, header_encoding=None))
        if max_streams is not None:  # in the first SETTINGS frame it sends
            self.h2.local_settings = Settings(
                client=False, initial_values={SettingCodes.MAX_CONCURRENT_STREAMS: max_streams}
            )
        self.transport: asyncio.Transport | None = None
        self.paths: dict[int, bytes] = {}
        self.bodies: dict[int, bytearray] = {}
        self.out: dict[int, tuple[bytearray, list[tuple[bytes, bytes]] | None]] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.state.connections += 1
        self.h2.initiate_connection()
        self.flush()

    def flush(self) -> None:
        if self.transport is not None:
            self.transport.write(self.h2.data_to_send())

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except H2Error:
            self.flush()
            if self.transport is not None:
                self.transport.close()
            return
        for event in events:
            if isinstance(event, RequestReceived):
                headers = dict(event.headers or [])
                self.state.requests += 1
                self.state.headers.append(headers)
                self.paths[event.stream_id] = headers.get(b":path", b"/")
                self.bodies[event.stream_id] = bytearray()
                path = urlsplit(self.paths[event.stream_id]).path
                if path == b"/echo":
                    self.h2.send_headers(event.stream_id, [(b":status", b"200")])
            elif isinstance(event, DataReceived):
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                path = urlsplit(self.paths.get(event.stream_id, b"/")).path
                if path == b"/echo":
                    self.send(event.stream_id, event.data, end=False)
                else:
                    self.bodies[event.stream_id] += event.data
            elif isinstance(event, StreamEnded):
                self.answer(event.stream_id)
            elif isinstance(event, WindowUpdated):
                for sid in list(self.out):
                    self.pump(sid)
            elif isinstance(event, StreamReset):
                self.out.pop(event.stream_id, None)
            elif isinstance(event, ConnectionTerminated) and self.transport is not None:
                self.transport.close()
        self.flush()

    def answer(self, sid: int) -> None:
        target = urlsplit(self.paths.get(sid, b"/"))
        path = target.path
        query = parse_qs(target.query.decode())
        if path == b"/echo":
            self.send(sid, b"", end=True)
        elif path == b"/hello":
            self.respond(sid, b"hello")
        elif path == b"/proto":
            self.respond(sid, b"HTTP/2")
        elif path == b"/sink":
            self.respond(sid, b"%d" % len(self.bodies.get(sid, b"")))
        elif path == b"/download":
            self.respond(sid, b"z" * int(query["size"][0]))
        elif path == b"/trailers":
            self.respond(
                sid, b"with trailers", trailers=[(b"grpc-status", b"0"), (b"grpc-message", b"ok")]
            )
        elif path == b"/hold":
            task = asyncio.get_running_loop().create_task(self.hold(sid))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        else:
            self.respond(sid, b"not found", status=404)

    async def hold(self, sid: int) -> None:
        state = self.state
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            await state.release.wait()
        finally:
            state.in_flight -= 1
        self.respond(sid, b"released")
        self.flush()

    def respond(
        self,
        sid: int,
        body: bytes,
        *,
        status: int = 200,
        trailers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        try:
            self.h2.send_headers(
                sid, [(b":status", b"%d" % status), (b"content-type", b"text/plain")]
            )
        except H2Error:
            return
        self.out[sid] = (bytearray(body), trailers or [])
        self.pump(sid)

    def send(self, sid: int, data: bytes, *, end: bool) -> None:
        buffered, _ = self.out.setdefault(sid, (bytearray(), None))
        buffered += data
        if end:
            self.out[sid] = (buffered, [])
        self.pump(sid)

    def pump(self, sid: int) -> None:
        if sid not in self.out:
            return
        buffered, trailers = self.out[sid]
        try:
            while buffered:
                size = min(
                    self.h2.local_flow_control_window(sid),
                    self.h2.max_outbound_frame_size,
                    len(buffered),
                )
                if size <= 0:
                    return
                self.h2.send_data(sid, bytes(buffered[:size]))
                del buffered[:size]
            if trailers is None:
                return  # more to come (/echo)
            if trailers:
                self.h2.send_headers(sid, trailers, end_stream=True)
            else:
                self.h2.end_stream(sid)
        except H2Error:
            pass  # the stream was reset
        self.out.pop(sid, None)


@contextlib.asynccontextmanager
async def run_h2_app(max_streams: int | None = None) -> AsyncIterator[tuple[int, H2AppState]]:
    """The app on a free port; ``max_streams``: its ``SETTINGS_MAX_CONCURRENT_STREAMS``."""
    state = H2AppState()
    conns: list[_Conn] = []

    def make() -> _Conn:
        conn = _Conn(state, max_streams)
        conns.append(conn)
        return conn

    server = await asyncio.get_running_loop().create_server(make, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], state
    finally:
        state.release.set()
        server.close()
        for conn in conns:
            if conn.transport is not None:
                conn.transport.close()
        await server.wait_closed()
