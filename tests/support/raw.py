"""Raw-socket HTTP helpers for tests that need byte-level control."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httptools


@dataclass
class Response:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    complete: bool = False


class _Collector:
    def __init__(self, resp: Response) -> None:
        self.resp = resp
        self.parts: list[bytes] = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.resp.headers[name.decode().lower()] = value.decode()

    def on_body(self, body: bytes) -> None:
        self.parts.append(body)

    def on_message_complete(self) -> None:
        self.resp.body = b"".join(self.parts)
        self.resp.complete = True


async def read_response(reader: asyncio.StreamReader, timeout: float = 10.0) -> Response:
    """Read exactly one response (Content-Length, chunked, or until EOF)."""
    resp = Response()
    collector = _Collector(resp)
    parser = httptools.HttpResponseParser(collector)
    leftover = getattr(reader, "_zs_leftover", b"")
    if leftover:
        reader._zs_leftover = b""  # type: ignore[attr-defined]
        parser.feed_data(leftover)
    while not resp.complete:
        data = await asyncio.wait_for(reader.read(65536), timeout)
        if not data:
            if resp.status == 0 and parser.get_status_code() == 0:
                raise ConnectionError("connection closed before a response")
            resp.status = parser.get_status_code()
            resp.body = b"".join(collector.parts)
            return resp  # close-delimited, or cut short (complete stays False)
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            break
        resp.status = parser.get_status_code()
    resp.status = parser.get_status_code()
    return resp


async def raw_exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data`` and return everything received until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        chunks = []
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), timeout)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        writer.close()
