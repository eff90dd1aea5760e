"""A scripted upstream on a real socket and a client that reads responses as a parser
does, for tests that hold two paths of a hop to the same bytes (the fast paths,
docs/http.md "Fast paths"): what the upstream received and what the client got,
compared as an HTTP parser reads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, TypeVar

import httptools
import pytest
from hypothesis import strategies as st

from zeroserve.http.server import ServerConnection

T = TypeVar("T")

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"
QUEUE_PROBE = b"K-Network-Probe: queue\r\n"
"""A request carrying it is the activator's probe of a queue-proxy (activator/revisions.py):
answered as a queue-proxy answers it, and not recorded."""
PROBE_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nqueue"


class _AppConn(asyncio.Protocol):
    def __init__(self, app: ScriptedApp) -> None:
        self.app = app
        self.parser = httptools.HttpRequestParser(self)
        self.received: list[bytes] = []
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.app.connections.append(self)

    def data_received(self, data: bytes) -> None:
        self.received.append(data)
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        raw = b"".join(self.received)
        self.received.clear()
        if QUEUE_PROBE in raw:
            self.transport.write(PROBE_ANSWER)
            self.transport.close()
            return
        self.app.requests.append(raw)
        self.app.tasks.add(asyncio.ensure_future(self.app.answer(self.transport)))


class ScriptedApp:
    """An app (or a queue-proxy) on a real socket that records each request as received and answers with
    ``parts``, written one by one ``pause`` seconds apart (after ``hold`` is set, if one
    is given), then closes if ``close`` says so."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.connections: list[_AppConn] = []
        self.parts: list[bytes] = [OK]
        self.pause = 0.0
        self.hold: asyncio.Event | None = None
        self.close = False
        self.drop = 0
        """Requests to take and then close the connection on, unanswered."""
        self.tasks: set[asyncio.Future[None]] = set()

    async def answer(self, transport: Any) -> None:
        if self.drop:
            self.drop -= 1
            transport.close()
            return
        if self.hold is not None:
            await self.hold.wait()
        for i, part in enumerate(self.parts):
            if i and self.pause:
                await asyncio.sleep(self.pause)
            if not transport.is_closing():
                transport.write(part)
        if self.close:
            transport.close()


@contextlib.asynccontextmanager
async def scripted_app() -> AsyncIterator[tuple[ScriptedApp, int]]:
    app = ScriptedApp()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _AppConn(app), "127.0.0.1", 0)
    try:
        yield app, server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in app.tasks:
            task.cancel()


async def exchange(port: int, *requests: bytes) -> tuple[list[Any], bool]:
    """Send ``requests`` on one connection, each once the previous one's response is in
    (as a kept-alive client does); returns each response as a client reads it (status
    line, fields with their values trimmed, body) and whether the connection closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    messages = Messages()
    parser = httptools.HttpResponseParser(messages)
    closed = False
    try:
        for i, request in enumerate(requests):
            writer.write(request)
            while len(messages.done) <= i:
                try:
                    data = await asyncio.wait_for(reader.read(65536), 5)
                except TimeoutError:
                    return messages.done, closed
                if not data:
                    return messages.done, True
                messages.raw.append(data)
                parser.feed_data(data)
    finally:
        writer.close()
    return messages.done, closed


class Messages:
    """httptools callbacks collecting whole messages (requests or responses) as tuples
    that compare equal when an HTTP parser would read them alike."""

    def __init__(self) -> None:
        self.raw: list[bytes] = []
        self.done: list[Any] = []
        self.fields: list[tuple[bytes, bytes]] = []
        self.body = b""
        self.first = b""

    def on_url(self, url: bytes) -> None:
        self.first += url

    def on_status(self, reason: bytes) -> None:
        self.first += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.fields.append((name.lower(), value.strip()))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.done.append((self.first, self.fields, self.body))
        self.first, self.fields, self.body = b"", [], b""


async def written_apart(
    port: int, writes: list[bytes], answers: int, app: ScriptedApp
) -> tuple[list[Any], list[Any]]:
    """Write ``writes`` on one connection 50 ms apart and read until ``answers`` responses
    (at least one) came; returns them and the requests ``app`` got meanwhile, each as an
    HTTP parser reads them."""
    app.requests.clear()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for data in writes:
            writer.write(data)
            await asyncio.sleep(0.05)
        got = Messages()
        parser = httptools.HttpResponseParser(got)
        while len(got.done) < max(answers, 1):
            data = await asyncio.wait_for(reader.read(65536), 5)
            assert data, "closed before every answer came"
            parser.feed_data(data)
    finally:
        writer.close()
    return got.done, requests_seen(app)


@contextlib.contextmanager
def in_loop_thread(
    start: Callable[[contextlib.AsyncExitStack], Coroutine[Any, Any, T]],
) -> Iterator[tuple[asyncio.AbstractEventLoop, T]]:
    """An event loop in a thread of its own, with what ``start`` entered on its exit
    stack running there until the block ends (for module fixtures that serve many
    hypothesis examples: starting hops per example would take minutes); yields the loop
    (for ``run_coroutine_threadsafe``) and what ``start`` returned."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="in-loop-thread", daemon=True)
    thread.start()
    stack = contextlib.AsyncExitStack()
    try:
        yield loop, asyncio.run_coroutine_threadsafe(start(stack), loop).result(30)
    finally:
        asyncio.run_coroutine_threadsafe(stack.aclose(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def twice_through_each(
    loop: asyncio.AbstractEventLoop,
    app: ScriptedApp,
    parts: list[bytes],
    method: bytes,
    version: bytes,
    headers: list[tuple[bytes, bytes]],
    *ports: int,
) -> list[tuple[Any, Any]]:
    """The request made of ``method``, ``version`` and ``headers``, sent twice on one
    connection to each of ``ports`` in turn (through ``loop``, an ``in_loop_thread``),
    with ``app`` answering ``parts``: per port, what the client got and what ``app`` got,
    as a parser reads them."""
    request = method + b" /p " + version + b"\r\n"
    request += b"".join(name + b": " + value + b"\r\n" for name, value in headers) + b"\r\n"

    async def run(port: int) -> tuple[Any, Any]:
        app.requests.clear()
        app.parts = parts
        app.pause = 0.01
        got = await exchange(port, request, request)
        return got, requests_seen(app)

    return [asyncio.run_coroutine_threadsafe(run(p), loop).result(30) for p in ports]


def requests_seen(app: ScriptedApp) -> list[Any]:
    """The requests the app got, as ``_Messages`` reads them."""
    messages = Messages()
    parser = httptools.HttpRequestParser(messages)
    for raw in app.requests:
        parser.feed_data(raw)
    return messages.done


def spy_take_over(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Each fast connection handed over to the general path (``take_over``'s ``old``),
    from now on (a fixture of the tests that use it)."""
    seen: list[object] = []
    take_over = ServerConnection.take_over.__func__  # type: ignore[attr-defined]

    def spy(cls: type[ServerConnection], old: object, *args: Any, **kwargs: Any) -> Any:
        seen.append(old)
        return take_over(cls, old, *args, **kwargs)

    monkeypatch.setattr(ServerConnection, "take_over", classmethod(spy))
    return seen


RESPONSE_FIELDS = [
    b"Content-Type: text/plain",
    b"Connection: close",
    b"Connection: keep-alive",
    b"Keep-Alive: timeout=5",
    b"Transfer-Encoding: chunked",
    b"Trailer: X",
    b"Upgrade: h2c",
    b"X-App:   spaced  ",
    b"te: x",
]


@st.composite
def responses(draw: st.DrawFn) -> list[bytes]:
    """A response of any shape, whole or over two reads."""
    status, reason = draw(
        st.sampled_from(
            [
                (200, b"OK"),
                (201, b"Created"),
                (404, b"Not Found"),
                (200, b"Fine"),
                (299, b"X"),
                (204, b"No Content"),
                (304, b"Not Modified"),
                (500, b"Internal Server Error"),
            ]
        )
    )
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0"]))
    fields = draw(st.lists(st.sampled_from(RESPONSE_FIELDS), max_size=3, unique=True))
    body = draw(st.sampled_from([b"", b"hello", b"x" * 3000, b"a\r\nConnection: close\r\n"]))
    chunked = b"Transfer-Encoding: chunked" in fields
    head = version + b" %d " % status + reason + b"\r\n"
    head += b"".join(f + b"\r\n" for f in fields)
    if status in (204, 304):
        body = b""
    elif chunked:
        body = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
    else:
        head += b"Content-Length: %d\r\n" % len(body)
    whole = head + b"\r\n" + body
    split = draw(st.integers(0, len(whole) - 1))
    return [whole] if split == 0 else [whole[:split], whole[split:]]
