"""Forwarded synthesis and Connection tokens."""

from __future__ import annotations

import pytest

from zeroserve.http.headers import connection_tokens, error_header, synthesize_forwarded


@pytest.mark.parametrize(
    ("xff", "xfh", "xfp", "expected"),
    [
        (None, None, None, None),
        (b"203.0.113.7", None, None, b"for=203.0.113.7"),
        (
            b"203.0.113.7, 10.0.0.1",
            b"example.com",
            b"https",
            b"for=203.0.113.7;host=example.com;proto=https, for=10.0.0.1",
        ),
        (b"2001:db8::1", None, b"http", b'for="[2001:db8::1]";proto=http'),
        (None, b"example.com:8080", None, b'host="example.com:8080"'),
        (b" a , ,b ", None, None, b"for=a, for=b"),
        (b'x"y', None, None, b'for="x\\"y"'),
    ],
    ids=[
        "none",
        "one-hop",
        "chain-with-host-proto",
        "ipv6-quoted",
        "host-with-port-quoted",
        "blank-elements-skipped",
        "quote-escaped",
    ],
)
def test_synthesize_forwarded(xff, xfh, xfp, expected) -> None:  # type: ignore[no-untyped-def]
    assert synthesize_forwarded(xff, xfh, xfp) == expected


def test_connection_tokens_are_lowercased_and_trimmed() -> None:
    assert connection_tokens(b"Keep-Alive, X-Foo ,,close") == {b"keep-alive", b"x-foo", b"close"}


def test_error_header_line() -> None:
    assert (
        error_header(b"queue-proxy", b"timeout")
        == b"X-Zeroserve-Error: queue-proxy; reason=timeout\r\n"
    )
