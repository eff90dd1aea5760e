"""Table tests of the hop's HTTP/1.1 decisions (zeroserve/http/framing.py)."""

from __future__ import annotations

import pytest

from zeroserve.http.framing import (
    CHUNKED,
    CLOSE,
    LENGTH,
    persistence,
    request_head,
    response_framing,
)
from zeroserve.http.server import FORWARD_DROP


def _lines(*raw: bytes) -> list[tuple[bytes, bytes]]:
    return [(line.split(b":", 1)[0].lower(), line + b"\r\n") for line in raw]


def _head(**overrides: object) -> bytes:
    args: dict[str, object] = {
        "drop": FORWARD_DROP,
        "host": b"app.example",
        "client_ip": b"192.0.2.10",
        "forwarded_for": None,
        "connection": None,
        "transfer_encoding": None,
        "upgrade": None,
    }
    args.update(overrides)
    lines = args.pop("lines", _lines(b"Accept: */*"))
    return request_head(b"GET", b"/path?q=1", lines, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {},
            b"GET /path?q=1 HTTP/1.1\r\nAccept: */*\r\nHost: app.example\r\n"
            b"X-Forwarded-For: 192.0.2.10\r\n\r\n",
        ),
        (
            {"forwarded_for": b"203.0.113.7, 10.0.0.1"},
            b"GET /path?q=1 HTTP/1.1\r\nAccept: */*\r\nHost: app.example\r\n"
            b"X-Forwarded-For: 203.0.113.7, 10.0.0.1, 192.0.2.10\r\n\r\n",
        ),
        (
            {
                "lines": _lines(
                    b"Host: client.example",
                    b"Connection: keep-alive, X-Hop",
                    b"X-Hop: secret",
                    b"Keep-Alive: timeout=5",
                    b"TE: trailers",
                    b"Proxy-Authorization: Basic eA==",
                    b"X-Forwarded-For: 198.51.100.2",
                    b"Expect: 100-continue",
                    b"X-Custom: kept",
                ),
                "connection": b"keep-alive, X-Hop",
            },
            b"GET /path?q=1 HTTP/1.1\r\nX-Custom: kept\r\nHost: app.example\r\n"
            b"X-Forwarded-For: 192.0.2.10\r\n\r\n",
        ),
        (
            {
                "lines": _lines(b"Transfer-Encoding: chunked"),
                "transfer_encoding": b"chunked",
            },
            b"GET /path?q=1 HTTP/1.1\r\nHost: app.example\r\nX-Forwarded-For: 192.0.2.10\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n",
        ),
        (
            {
                "lines": _lines(b"Connection: Upgrade", b"Upgrade: websocket"),
                "connection": b"Upgrade",
                "upgrade": b"websocket",
            },
            b"GET /path?q=1 HTTP/1.1\r\nHost: app.example\r\nX-Forwarded-For: 192.0.2.10\r\n"
            b"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        ),
        (
            {"extra": b"K-Proxy-Request: activator\r\n"},
            b"GET /path?q=1 HTTP/1.1\r\nAccept: */*\r\nHost: app.example\r\n"
            b"X-Forwarded-For: 192.0.2.10\r\nK-Proxy-Request: activator\r\n\r\n",
        ),
        (
            {"drop": FORWARD_DROP | {b"accept"}},
            b"GET /path?q=1 HTTP/1.1\r\nHost: app.example\r\nX-Forwarded-For: 192.0.2.10\r\n\r\n",
        ),
    ],
    ids=[
        "plain",
        "forwarded-for-appended",
        "hop-by-hop-and-connection-listed-dropped",
        "chunked-kept",
        "upgrade-asked-again",
        "extra-lines",
        "handler-drops-more",
    ],
)
def test_request_head(overrides: dict[str, object], expected: bytes) -> None:
    assert _head(**overrides) == expected


@pytest.mark.parametrize(
    ("status", "has_length", "no_body", "version", "expected"),
    [
        (200, True, False, "1.1", LENGTH),
        (200, True, False, "1.0", LENGTH),
        (200, False, True, "1.1", LENGTH),  # the answer to HEAD
        (204, False, False, "1.1", LENGTH),
        (304, False, False, "1.0", LENGTH),
        (200, False, False, "1.1", CHUNKED),
        (500, False, False, "1.1", CHUNKED),
        (200, False, False, "1.0", CLOSE),
    ],
    ids=[
        "length",
        "length-http10",
        "head",
        "204",
        "304-http10",
        "unknown-length-chunked",
        "unknown-length-error",
        "unknown-length-http10-close",
    ],
)
def test_response_framing(
    status: int, has_length: bool, no_body: bool, version: str, expected: int
) -> None:
    assert response_framing(status, has_length, no_body, version) == expected


@pytest.mark.parametrize(
    ("framing", "keep_alive", "closing", "upgrade", "version", "expected"),
    [
        (LENGTH, True, False, False, "1.1", (True, b"")),
        (CHUNKED, True, False, False, "1.1", (True, b"")),
        (LENGTH, True, False, False, "1.0", (True, b"Connection: keep-alive\r\n")),
        (LENGTH, False, False, False, "1.1", (False, b"Connection: close\r\n")),
        (LENGTH, False, False, False, "1.0", (False, b"Connection: close\r\n")),
        (CLOSE, True, False, False, "1.0", (False, b"Connection: close\r\n")),
        (LENGTH, True, True, False, "1.1", (False, b"Connection: close\r\n")),
        (LENGTH, True, False, True, "1.1", (False, b"Connection: close\r\n")),
    ],
    ids=[
        "keep",
        "keep-chunked",
        "keep-http10-said",
        "client-closes",
        "http10-default-close",
        "close-delimited",
        "shutting-down",
        "upgrade-refused",
    ],
)
def test_persistence(
    framing: int,
    keep_alive: bool,
    closing: bool,
    upgrade: bool,
    version: str,
    expected: tuple[bool, bytes],
) -> None:
    assert persistence(framing, keep_alive, closing, upgrade, version) == expected
