"""The proxy hop's HTTP/1.1 decisions, as plain functions (docs/http.md, "Framing").

The asyncio protocols in ``server.py`` and ``upstream.py`` move bytes; what those bytes
say about the message is decided here, from values only, so each rule is a table test in
tests/http/test_framing.py (as h11 keeps ``_body_framing`` and ``_keep_alive`` apart from
its connection):

- :func:`request_head`: the head forwarded upstream (hop-by-hop fields dropped, ``Host``,
  ``X-Forwarded-For``, the request's own framing and upgrade);
- :func:`response_framing`: how a response's body is delimited towards the client;
- :func:`persistence`: whether the client connection stays open after the response, and
  the ``Connection`` field that says so.

Each is called once per request on the hot path; none allocates more than the head it
returns.
"""

from __future__ import annotations

from collections.abc import Iterable

from .headers import connection_tokens

LENGTH = 0
"""The body is delimited as the upstream delimited it (Content-Length, or no body)."""
CHUNKED = 1
"""The upstream's length is unknown: chunked towards an HTTP/1.1 client."""
CLOSE = 2
"""The upstream's length is unknown and the client speaks HTTP/1.0: closing ends the body."""


def request_head(
    method: bytes,
    target: bytes,
    lines: Iterable[tuple[bytes, bytes]],
    drop: frozenset[bytes],
    host: bytes,
    client_ip: bytes,
    forwarded_for: bytes | None,
    connection: bytes | None,
    transfer_encoding: bytes | None,
    upgrade: bytes | None,
    extra: bytes = b"",
) -> bytes:
    """The request head sent upstream, always as HTTP/1.1.

    ``lines`` are the client's header lines as ``(lower-case name, b"Name: value\\r\\n")``;
    those named in ``drop`` are left out, and so are the names the client's ``Connection``
    field lists (they are hop-by-hop too, RFC 9110 section 7.6.1). ``Host`` is ``host``;
    ``X-Forwarded-For`` gets ``client_ip`` appended to the client's own list. A chunked
    request keeps its ``Transfer-Encoding`` (the body is relayed chunk by chunk, RFC 9112
    section 7.1); an upgrade (``upgrade`` is the client's ``Upgrade`` value, None if it
    asked for none) is asked for again, since ``Connection`` and ``Upgrade`` are
    hop-by-hop. ``extra`` is header lines the hop adds.
    """
    if connection is not None:
        listed = connection_tokens(connection) - {b"close", b"keep-alive", b"upgrade"}
        if listed:
            drop = drop | listed
    parts = [method, b" ", target, b" HTTP/1.1\r\n"]
    for lname, line in lines:
        if lname not in drop:
            parts.append(line)
    parts.append(b"Host: " + host + b"\r\n")
    parts.append(
        b"X-Forwarded-For: "
        + (forwarded_for + b", " + client_ip if forwarded_for else client_ip)
        + b"\r\n"
    )
    if transfer_encoding is not None:
        parts.append(b"Transfer-Encoding: " + transfer_encoding + b"\r\n")
    if upgrade is not None:
        parts.append(b"Connection: Upgrade\r\nUpgrade: " + upgrade + b"\r\n")
    if extra:
        parts.append(extra)
    parts.append(b"\r\n")
    return b"".join(parts)


def response_framing(status: int, has_length: bool, no_body: bool, client_version: str) -> int:
    """How the response body is delimited towards the client: LENGTH, CHUNKED or CLOSE.

    A response that has a length, or no body (``no_body``: the answer to a HEAD request;
    or a 204 or 304, RFC 9112 section 6.3, items 1 and 2), passes as the upstream framed it; one whose end the
    upstream marks by chunking or by closing is re-chunked for an HTTP/1.1 client, and
    delimited by closing the connection for an HTTP/1.0 client, which knows no chunking
    (RFC 9112 section 6.3, item 8; section 7).
    """
    if has_length or no_body or status in (204, 304):
        return LENGTH
    if client_version == "1.1":
        return CHUNKED
    return CLOSE


def persistence(
    framing: int, keep_alive: bool, closing: bool, upgrade: bool, client_version: str
) -> tuple[bool, bytes]:
    """Whether the client connection persists after this response, and the ``Connection``
    field to send.

    ``keep_alive`` is what the client asked (httptools' reading of its version and
    ``Connection`` field, RFC 9112 section 9.3); the hop closes anyway when the body is
    delimited by the close, when it is shutting down (``closing``), or after a request
    that asked for an upgrade the upstream did not grant. An HTTP/1.0 client that asked to
    keep the connection is told so explicitly (RFC 9112 appendix C.2.2).
    """
    if framing == CLOSE or not keep_alive or closing or upgrade:
        return False, b"Connection: close\r\n"
    if client_version == "1.0":
        return True, b"Connection: keep-alive\r\n"
    return True, b""
