"""The caching HPACK coders (zeroserve/http/hpackcache.py) answer exactly as ``hpack``'s
own would, whatever the sequence of header lists, table size changes and limits."""

from __future__ import annotations

from typing import Any

import pytest
from hpack import Decoder, Encoder, NeverIndexedHeaderTuple
from hpack.exceptions import OversizedHeaderListError
from hypothesis import given, settings
from hypothesis import strategies as st

from zeroserve.http.hpackcache import CachingDecoder, CachingEncoder

GRPC_CALL = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/ping.PingService/Ping"),
    (b":authority", b"grpc-ping.default.localhost"),
    (b"content-type", b"application/grpc"),
    (b"te", b"trailers"),
]

_names = st.sampled_from([b":path", b"content-type", b"x-a", b"x-b", b"grpc-timeout"])
_values = st.sampled_from([b"1", b"2", b"/a", b"application/grpc", b"x" * 300])
_field = st.tuples(_names, _values, st.booleans()).map(
    lambda t: NeverIndexedHeaderTuple(t[0], t[1]) if t[2] else (t[0], t[1])
)
_step = st.one_of(
    st.lists(_field, max_size=6).map(lambda fields: ("headers", fields)),
    st.sampled_from([0, 64, 256, 4096]).map(lambda size: ("resize", size)),
)


def _outcome(decoder: Decoder, block: bytes) -> tuple[str, Any]:
    try:
        return "ok", decoder.decode(block, raw=True)
    except Exception as e:  # hpack's own errors included: they must be the same
        return "error", type(e)


@settings(max_examples=300, deadline=None)
@given(st.lists(_step, min_size=1, max_size=30), st.booleans())
def test_every_block_and_every_decoding_is_hpacks_own(steps: list, huffman: bool) -> None:
    plain_enc, cached_enc = Encoder(), CachingEncoder()
    plain_dec, cached_dec = Decoder(), CachingDecoder()
    for kind, arg in steps:
        if kind == "resize":
            # the peer's SETTINGS_HEADER_TABLE_SIZE: the encoder's next block announces it
            plain_enc.header_table_size = cached_enc.header_table_size = arg
            continue
        block = cached_enc.encode(list(arg), huffman)
        assert block == plain_enc.encode(list(arg), huffman)
        got, expected = _outcome(cached_dec, block), _outcome(plain_dec, block)
        assert got == expected
        if got[0] == "error":
            # (hpack's encoder forgets a size change set twice: its own decoder then
            # fails the same way; the pair is out of step from here on)
            return
        assert got[1] == [(f[0], f[1]) for f in arg]
        # and each field as the same kind ("never index" or not)
        assert [type(h) for h in got[1]] == [type(h) for h in expected[1]]


def test_the_same_call_twice_is_coded_once() -> None:
    enc, dec = CachingEncoder(), CachingDecoder()
    first = enc.encode(GRPC_CALL)  # inserts the fields: not kept
    second = enc.encode(GRPC_CALL)  # all indexed now: kept
    assert len(second) < len(first)
    assert enc.encode(GRPC_CALL) is second
    assert dec.decode(first, raw=True) == GRPC_CALL
    once = dec.decode(second, raw=True)
    again = dec.decode(second, raw=True)
    assert once == again == GRPC_CALL and again is not once  # a list of its own each time


def test_a_size_update_is_sent_once_and_a_changed_table_is_not_answered_from_memory() -> None:
    enc, plain = CachingEncoder(), Encoder()
    for e in (enc, plain):
        e.encode(GRPC_CALL)
        e.encode(GRPC_CALL)
        e.header_table_size = 0  # evicts everything; the next block starts with the update
    assert enc.encode(GRPC_CALL) == plain.encode(GRPC_CALL)
    assert enc.encode(GRPC_CALL) == plain.encode(GRPC_CALL)  # the update is not repeated


def test_a_lowered_header_list_limit_applies_to_a_remembered_block() -> None:
    enc, dec = CachingEncoder(), CachingDecoder()
    dec.decode(enc.encode(GRPC_CALL), raw=True)
    block = enc.encode(GRPC_CALL)
    assert dec.decode(block, raw=True) == GRPC_CALL
    dec.max_header_list_size = 100
    with pytest.raises(OversizedHeaderListError):
        dec.decode(block, raw=True)
