"""HPACK coders that remember their answers while the dynamic table stays the same.

A gRPC client sends the same header fields on every call, and after the first call
each is in the dynamic table: the block it sends is the same bytes each time, and
decodes to the same fields. The same holds for what a hop sends. Decoding and encoding
those blocks anew is about a third of what the ``h2`` library does per call (profiled
in docs/http.md, "HTTP/2", "Cost"), so these subclasses of ``hpack``'s coders keep the last
blocks' results and use one again only when nothing could make it differ:

- the dynamic table has not changed since (a counter, :class:`CountingTable`, goes up
  on every insertion and every size change; entries are only ever evicted by an
  insertion or a size change);
- coding the block itself changed nothing (a block that inserts a field or carries a
  table size update is never kept);
- the limits it was checked against are the same (the decoder's
  ``max_header_list_size`` and ``max_allowed_table_size``), and for the encoder the
  same ``huffman`` choice and the same "never index" marks.

Everything else (what a block means, errors, Huffman coding) is ``hpack``'s own work:
a miss calls it, and a hit returns what it returned. :func:`install` gives an
``h2`` connection a pair before it exchanges any frame.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from hpack import Decoder, Encoder, HeaderTuple
from hpack.table import HeaderTable

if TYPE_CHECKING:
    from h2.connection import H2Connection

CACHE_SIZE = 64
"""Blocks remembered per coder; when full, the memory starts again (a connection's
calls use a handful of distinct blocks)."""


class CountingTable(HeaderTable):
    """``hpack``'s dynamic table, counting its changes in ``generation``."""

    def __init__(self) -> None:
        super().__init__()
        self.generation = 0

    def add(self, name: bytes, value: bytes) -> None:
        self.generation += 1
        super().add(name, value)

    def _set_maxsize(self, newmax: int) -> None:
        self.generation += 1
        HeaderTable.maxsize.fset(self, newmax)  # type: ignore[attr-defined]

    maxsize = property(HeaderTable.maxsize.fget, _set_maxsize)  # type: ignore[attr-defined]


class CachingDecoder(Decoder):
    """``hpack.Decoder`` that returns a remembered decoding of an unchanged block."""

    def __init__(self, max_header_list_size: int = 2**16) -> None:
        super().__init__(max_header_list_size)
        self.header_table: CountingTable = CountingTable()
        self._cache: dict[bytes, tuple[tuple[int, int, int, bool], list[HeaderTuple]]] = {}

    def decode(self, data: bytes, raw: bool = False) -> list[HeaderTuple]:
        key = bytes(data)
        state = (
            self.header_table.generation,
            self.max_header_list_size,
            self.max_allowed_table_size,
            raw,
        )
        hit = self._cache.get(key)
        if hit is not None and hit[0] == state:
            return list(hit[1])
        headers = list(super().decode(data, raw))
        if self.header_table.generation == state[0]:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = (state, headers)
        return list(headers)


class CachingEncoder(Encoder):
    """``hpack.Encoder`` that returns a remembered encoding of the same fields."""

    def __init__(self) -> None:
        super().__init__()
        self.header_table: CountingTable = CountingTable()
        self._cache: dict[tuple[Any, ...], tuple[int, bytes]] = {}

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        if isinstance(headers, dict) or self.header_table.resized:
            return super().encode(headers, huffman)  # (a size update goes first: not kept)
        fields = list(headers)
        key = (huffman, *(_field_key(h) for h in fields))
        generation = self.header_table.generation
        hit = self._cache.get(key)
        if hit is not None and hit[0] == generation:
            return hit[1]
        block = super().encode(fields, huffman)
        if self.header_table.generation == generation:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = (generation, block)
        return block


def _field_key(h: Iterable[Any]) -> tuple[Any, ...]:
    """A field as its encoding depends on it: name, value and "never index"."""
    if isinstance(h, HeaderTuple):
        return (h[0], h[1], not h.indexable)
    t = tuple(h)
    return (t[0], t[1], bool(t[2]) if len(t) > 2 else False)


def install(conn: H2Connection) -> None:
    """Give ``conn`` caching coders; call it before any frame is sent or received."""
    old = conn.decoder
    decoder = CachingDecoder(old.max_header_list_size)
    decoder.max_allowed_table_size = old.max_allowed_table_size
    conn.decoder = decoder
    conn.encoder = CachingEncoder()
