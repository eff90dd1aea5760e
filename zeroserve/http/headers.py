"""Header rules of the proxy hop: hop-by-hop removal, ``Forwarded``, error attribution.

Pure functions over ``bytes``; the connection code calls them while it builds
the head it forwards.
"""

from __future__ import annotations

import functools
import re

# RFC 9110 section 7.6.1 plus the legacy ones every reverse proxy drops.
# Lower-case, as the parser hands names over.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

FORWARD_DROP = HOP_BY_HOP | {b"host", b"x-forwarded-for", b"expect", b"http2-settings"}
"""Never forwarded as they came: hop-by-hop, and the ones a hop writes itself."""

PROPAGATION_HEADERS = frozenset(
    {
        b"traceparent",
        b"tracestate",
        b"b3",
        b"x-b3-traceid",
        b"x-b3-spanid",
        b"x-b3-parentspanid",
        b"x-b3-sampled",
        b"x-b3-flags",
    }
)
"""Trace context headers (lower-case): read from the request while tracing is on, and
then replaced by the hop's own on the forwarded request. With tracing off they pass
through untouched."""

_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def _forwarded_value(value: bytes) -> bytes:
    """A ``Forwarded`` parameter value: a token, or a quoted string (RFC 7239)."""
    if _TOKEN.match(value):
        return value
    escaped = value.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    return b'"' + escaped + b'"'


def _forwarded_node(node: bytes) -> bytes:
    # IPv6 addresses go in brackets (RFC 7239 section 6); the brackets and
    # colons then force a quoted string.
    if b":" in node and not node.startswith(b"["):
        node = b"[" + node + b"]"
    return _forwarded_value(node)


@functools.lru_cache(maxsize=1024)
def synthesize_forwarded(xff: bytes | None, xfh: bytes | None, xfp: bytes | None) -> bytes | None:
    """Build ``Forwarded`` from ``X-Forwarded-For/-Host/-Proto`` (upstream's shim).

    The first ``for=`` element carries ``host`` and ``proto``; later proxies in
    ``X-Forwarded-For`` become further ``for=`` elements. Returns None when
    none of the three headers is present.

    Memoized: a queue-proxy behind the activator or an ingress sees the same few
    triples again and again (one per client address); building one takes 1.5 µs, a
    lookup 0.08 (``timeit``): a sixth of the queue-proxy's fast path behind the
    activator (benchmarks/hoppython.py).
    """
    if not (xff or xfh or xfp):
        return None
    nodes = [n.strip() for n in xff.split(b",")] if xff else []
    nodes = [n for n in nodes if n]
    first: list[bytes] = []
    if nodes:
        first.append(b"for=" + _forwarded_node(nodes[0]))
    if xfh:
        first.append(b"host=" + _forwarded_value(xfh.strip()))
    if xfp:
        first.append(b"proto=" + _forwarded_value(xfp.strip()))
    elements = [b";".join(first)]
    elements.extend(b"for=" + _forwarded_node(n) for n in nodes[1:])
    return b", ".join(elements)


def connection_tokens(value: bytes) -> set[bytes]:
    """The lower-cased tokens of a ``Connection`` header value."""
    return {t.strip().lower() for t in value.split(b",") if t.strip()}


def error_header(hop: bytes, reason: bytes) -> bytes:
    """The attribution line every platform-generated error carries."""
    return b"X-Zeroserve-Error: " + hop + b"; reason=" + reason + b"\r\n"


# gRPC's status codes for the platform's own answers (grpc/grpc doc/statuscodes.md and
# doc/http-grpc-status-mapping.md; a timeout is DEADLINE_EXCEEDED, as the hop knows it).
GRPC_INTERNAL = 13
_GRPC_CODES = {
    400: GRPC_INTERNAL,
    401: 16,  # UNAUTHENTICATED
    403: 7,  # PERMISSION_DENIED
    404: 12,  # UNIMPLEMENTED: no route
    408: 4,  # DEADLINE_EXCEEDED
    413: 8,  # RESOURCE_EXHAUSTED
    429: 14,  # UNAVAILABLE
    502: 14,
    503: 14,  # queue full, activation timeout, draining
    504: 4,  # DEADLINE_EXCEEDED: the request timed out
}
_GRPC_MESSAGE_SAFE = frozenset(range(0x20, 0x7F)) - {ord("%")}


def is_grpc(content_type: bytes | None) -> bool:
    """Whether a request's ``Content-Type`` is gRPC's (``application/grpc``, ``+proto``...)."""
    return content_type is not None and content_type.lower().startswith(b"application/grpc")


def grpc_error_headers(status: int, message: bytes) -> bytes:
    """The ``grpc-status`` and ``grpc-message`` lines of a platform error (gRPC's
    PROTOCOL-HTTP2.md: the message percent-encoded)."""
    code = _GRPC_CODES.get(status, 2)  # UNKNOWN
    encoded = b"".join(
        bytes((c,)) if c in _GRPC_MESSAGE_SAFE else b"%%%02X" % c for c in message.strip()
    )
    return b"grpc-status: %d\r\ngrpc-message: %s\r\n" % (code, encoded)
