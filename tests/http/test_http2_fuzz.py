"""Hostile HTTP/2 input (hypothesis over frame sequences) never crashes the hop's HTTP/2
connection, and whatever it did, every stream it started is ended and forgotten once the
connection goes: in memory, a fake transport, no sockets."""

from __future__ import annotations

import asyncio
from typing import Any

from hpack import Encoder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zeroserve.http.exchange import H2_PREFACE, Request
from zeroserve.http.http2 import H2ServerConnection
from zeroserve.http.server import Handler, Server, ServerConnection


class Answering(Handler):
    """Answers ``/hold`` never (the stream stays open), everything else at once."""

    hop = b"fuzz"

    def __init__(self) -> None:
        self.started = 0
        self.finished = 0

    def on_request(self, conn: ServerConnection, req: Request) -> None:
        self.started += 1
        if req.target != b"/hold":
            conn.respond(200, b"x" * 100_000 if req.target == b"/big" else b"ok")

    def on_finish(self, conn: ServerConnection, req: Request) -> None:
        self.finished += 1


class FakeTransport:
    def __init__(self) -> None:
        self.protocol: Any = None
        self.written = 0
        self.closed = False

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.protocol.connection_lost(None)

    abort = close


def _headers_block(path: str, valid: bool) -> bytes:
    if not valid:
        return b"\xff\xfe\x00garbage"
    return Encoder().encode(
        [(":method", "GET"), (":path", path), (":scheme", "http"), (":authority", "x")]
    )


stream_ids = st.sampled_from([0, 1, 3, 5, 7, 2, 2**31 - 1])

# frame types (RFC 9113 section 6) and their flags
DATA, HEADERS, PRIORITY, RST, SETTINGS, PING, GOAWAY, WINDOW, CONTINUATION = (
    0,
    1,
    2,
    3,
    4,
    6,
    7,
    8,
    9,
)
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1


def frame(kind: int, flags: int, sid: int, payload: bytes) -> bytes:
    """A frame as bytes, whatever its fields say (hyperframe would refuse bad ones)."""
    return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + sid.to_bytes(4, "big") + payload


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    kind = draw(
        st.sampled_from(
            [DATA, HEADERS, PRIORITY, RST, SETTINGS, PING, GOAWAY, WINDOW, CONTINUATION, -1]
        )
    )
    sid = draw(stream_ids)
    if kind in (HEADERS, CONTINUATION):
        path = draw(st.sampled_from(["/", "/hold", "/big"]))
        flags = draw(st.sampled_from([0, END_STREAM, END_HEADERS, END_STREAM | END_HEADERS]))
        return frame(kind, flags, sid, _headers_block(path, draw(st.booleans())))
    if kind == DATA:
        return frame(
            DATA, draw(st.sampled_from([0, END_STREAM])), sid, draw(st.binary(max_size=300))
        )
    if kind == RST:
        return frame(RST, 0, sid, draw(st.integers(0, 20)).to_bytes(4, "big"))
    if kind == SETTINGS:
        pairs = draw(st.lists(st.tuples(st.integers(1, 8), st.integers(0, 2**32 - 1)), max_size=3))
        payload = b"".join(k.to_bytes(2, "big") + v.to_bytes(4, "big") for k, v in pairs)
        return frame(
            SETTINGS, draw(st.sampled_from([0, ACK])), draw(st.sampled_from([0, 1])), payload
        )
    if kind == PING:
        return frame(
            PING, draw(st.sampled_from([0, ACK])), 0, draw(st.binary(min_size=0, max_size=9))
        )
    if kind == WINDOW:
        return frame(WINDOW, 0, sid, draw(st.integers(0, 2**31 - 1)).to_bytes(4, "big"))
    if kind == PRIORITY:
        return frame(PRIORITY, 0, sid, draw(stream_ids).to_bytes(4, "big") + b"\x10")
    if kind == GOAWAY:
        return frame(GOAWAY, 0, 0, draw(stream_ids).to_bytes(4, "big") + b"\x00\x00\x00\x00")
    return draw(st.binary(min_size=1, max_size=40))


def feed(sequence: list[bytes], split: int) -> Answering:
    """The client preface and ``sequence`` into a fresh connection, ``split`` bytes at a
    time; then the connection goes. Asserts nothing is left of it."""

    async def run() -> Answering:
        handler = Answering()
        server = Server(handler)
        transport = FakeTransport()
        conn = H2ServerConnection(server, b"192.0.2.1")
        wire = H2_PREFACE + frame(SETTINGS, 0, 0, b"") + b"".join(sequence)
        conn.start(transport, b"")  # type: ignore[arg-type]
        for i in range(0, len(wire), split):  # in pieces, as a network delivers them
            if transport.closed:
                break
            conn.data_received(wire[i : i + split])
        if not transport.closed:
            transport.close()
        assert handler.finished == handler.started
        assert not server.active and not server.conns
        assert not conn.streams and not conn.sending
        return handler

    return asyncio.run(run())


def test_the_harness_serves_a_valid_request() -> None:
    get = frame(HEADERS, END_STREAM | END_HEADERS, 1, _headers_block("/", True))
    held = frame(HEADERS, END_STREAM | END_HEADERS, 3, _headers_block("/hold", True))
    handler = feed([get, held], 7)
    assert handler.started == 2  # and both ended when the connection went


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames(), max_size=30), st.integers(1, 64))
def test_any_frame_sequence_is_survived_and_cleaned_up(sequence: list[bytes], split: int) -> None:
    feed(sequence, split)
