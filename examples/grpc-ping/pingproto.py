"""The messages and service of Knative's grpc-ping-go sample (``proto/ping.proto``:
``package ping; service PingService { rpc Ping(Request) returns (Response);
rpc PingStream(...) }``; ``message Request { string msg = 1; }``, ``message Response
{ string msg = 1; }``), for the server (``app.py``) and the client (``client.py``).

Both messages are one string field, so their protobuf encoding is written here by hand
(field 1, wire type 2: the byte 0x0a, the length as a varint, the UTF-8 bytes) instead
of generating code with protoc: the example then needs only grpcio.
"""

from __future__ import annotations

SERVICE = "ping.PingService"
PING = f"/{SERVICE}/Ping"
PING_STREAM = f"/{SERVICE}/PingStream"


def encode(msg: str) -> bytes:
    """``Request``/``Response`` {msg} in protobuf's wire format."""
    data = msg.encode()
    length = len(data)
    varint = bytearray()
    while True:
        byte = length & 0x7F
        length >>= 7
        varint.append(byte | (0x80 if length else 0))
        if not length:
            break
    return (b"\x0a" + bytes(varint) + data) if data else b""


def decode(raw: bytes) -> str:
    """The ``msg`` of an encoded ``Request``/``Response`` (other fields are skipped)."""
    i, msg = 0, ""
    while i < len(raw):
        key = raw[i]
        i += 1
        wire = key & 0x7
        if wire == 0:  # varint
            while raw[i] & 0x80:
                i += 1
            i += 1
            continue
        if wire != 2:
            raise ValueError(f"unexpected wire type {wire}")
        length = shift = 0
        while True:
            byte = raw[i]
            i += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        if key >> 3 == 1:
            msg = raw[i : i + length].decode()
        i += length
    return msg
