"""The hop's connections fed bytes in memory: requests in from a fake client, responses in
from a fake app, and what each side gets back (docs/http.md, "The request path")."""

from __future__ import annotations

import pytest

from tests.http.wire import Hop

HELLO = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"


def _head_and_body(data: bytes) -> tuple[bytes, bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


async def test_a_request_is_forwarded_and_its_answer_relayed() -> None:
    hop = Hop()
    up, app = hop.upstream()
    conn, client = hop.client()
    conn.data_received(b"GET /hello HTTP/1.1\r\nHost: hello.example\r\nX-Custom: 1\r\n\r\n")
    assert app.take() == (
        b"GET /hello HTTP/1.1\r\nX-Custom: 1\r\nHost: hello.example\r\n"
        b"X-Forwarded-For: 192.0.2.10\r\n\r\n"
    )
    up.data_received(HELLO)
    head, body = _head_and_body(client.take())
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: 5" in head
    assert b"connection:" not in head.lower()  # HTTP/1.1 persists without saying so
    assert body == b"hello"
    assert not client.closed and [r.status for r in hop.handler.finished] == [200]
    assert hop.pool._idle == [up]  # the app connection went back to the pool


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", 400),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", 431),
        (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(300)) + b"\r\n", 431),
        (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 405),
    ],
    ids=[
        "garbage",
        "header-without-colon",
        "nul-in-header",
        "cl-and-te-smuggling",
        "bad-chunk-size",
        "huge-header",
        "huge-url",
        "too-many-headers",
        "connect",
    ],
)
async def test_malformed_requests_get_4xx_and_close(raw: bytes, status: int) -> None:
    hop = Hop()
    hop.upstream()  # a body error can only be seen after the head went to the app
    conn, client = hop.client()
    conn.data_received(raw)
    reply = client.take()
    assert reply.startswith(b"HTTP/1.1 %d " % status), reply[:200]
    assert b"Connection: close" in reply
    assert b"X-Zeroserve-Error: queue-proxy; reason=" in reply
    assert client.closed
    # the hop is unharmed: the next client's request goes through
    up, app = hop.upstream()
    conn, client = hop.client()
    conn.data_received(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    assert app.take().startswith(b"GET /hello HTTP/1.1\r\n")
    up.data_received(HELLO)
    assert client.take().endswith(b"\r\n\r\nhello")


async def test_an_http10_client_gets_a_close_delimited_stream() -> None:
    hop = Hop()
    up, app = hop.upstream()
    conn, client = hop.client()
    conn.data_received(b"GET /download?size=1000&chunked=1 HTTP/1.0\r\n\r\n")
    assert b"Host: 127.0.0.1:8080\r\n" in app.take()  # HTTP/1.0 may omit Host; 1.1 needs one
    up.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    up.data_received(b"3e8\r\n" + b"z" * 1000 + b"\r\n0\r\n\r\n")
    head, body = _head_and_body(client.take())
    assert head.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding" not in head.lower()
    assert b"Connection: close" in head
    assert body == b"z" * 1000
    assert client.closed  # the close ends the body


async def test_an_unknown_length_is_rechunked_for_an_http11_client() -> None:
    hop = Hop()
    up, app = hop.upstream()
    conn, client = hop.client()
    conn.data_received(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    app.take()
    up.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    up.data_received(b"5\r\nfirst\r\n")
    assert client.take().endswith(b"Transfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
    up.data_received(b"6\r\nsecond\r\n0\r\n\r\n")
    assert client.take() == b"6\r\nsecond\r\n0\r\n\r\n"  # each piece flushed as it came
    assert not client.closed


async def test_head_and_no_body_statuses_keep_the_connection_in_sync() -> None:
    hop = Hop()
    up, app = hop.upstream()
    conn, client = hop.client()
    conn.data_received(b"HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    app.take()
    up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
    head, body = _head_and_body(client.take())
    assert b"Content-Length: 5" in head and body == b""
    conn.data_received(b"GET /status/204 HTTP/1.1\r\nHost: x\r\n\r\n")
    app.take()
    up.data_received(b"HTTP/1.1 204 No Content\r\n\r\n")
    head, body = _head_and_body(client.take())
    assert head.startswith(b"HTTP/1.1 204 No Content") and body == b""
    assert b"transfer-encoding" not in head.lower()
    conn.data_received(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    assert app.take().startswith(b"GET /hello ")
    up.data_received(HELLO)
    assert client.take().endswith(b"\r\n\r\nhello")  # same connections, still in sync


async def test_pipelined_requests_are_answered_in_order() -> None:
    hop = Hop()
    up, app = hop.upstream()
    conn, client = hop.client()
    conn.data_received(
        b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody"
    )
    assert app.take().startswith(b"GET /first ")  # the second waits its turn
    assert not client.reading  # and the client is not read meanwhile
    up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
    sent = app.take()
    assert sent.startswith(b"POST /echo ") and sent.endswith(b"\r\n\r\nbody")
    up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody")
    replies = client.take()
    assert replies.index(b"first") < replies.index(b"\r\n\r\nbody")
    assert [r.status for r in hop.handler.finished] == [200, 200]


async def test_the_reason_phrase_is_the_standard_one_whatever_the_app_sent() -> None:
    hop = Hop()
    up, _ = hop.upstream()
    conn, client = hop.client()
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    up.data_received(b"HTTP/1.1 404 Nope\r\nContent-Length: 0\r\n\r\n")
    assert client.take().startswith(b"HTTP/1.1 404 Not Found\r\n")


async def test_a_client_that_goes_away_ends_the_exchange_as_499() -> None:
    hop = Hop()
    up, app = hop.upstream()
    conn, _ = hop.client()
    conn.data_received(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    conn.connection_lost(None)
    assert [r.status for r in hop.handler.finished] == [499]
    assert app.closed and up.client is None  # the app's half-done exchange is not reused


async def test_bytes_after_a_finished_response_neither_repeat_it_nor_stay_in_the_pool() -> None:
    # The parser fails on what follows a "Connection: close" response in the same read,
    # after the response was written to the client and its connection pooled.
    hop = Hop()
    up, app = hop.upstream()
    conn, client = hop.client()
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nokJUNK")
    assert client.take() == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"  # once
    assert not client.closed
    assert [r.status for r in hop.handler.finished] == [200]
    assert app.closed  # the app's connection is not used again
    assert hop.pool._idle == []
