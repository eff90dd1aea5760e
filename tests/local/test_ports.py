"""App ports of local replicas: outside the kernel's ephemeral range, one holder each."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import pytest

from zeroserve.local.ports import (
    LINUX_DEFAULT_EPHEMERAL,
    PortAllocator,
    app_port_range,
    default_allocator,
    ephemeral_range,
)


def test_the_range_is_below_the_ephemeral_range_when_there_is_room() -> None:
    assert app_port_range((32768, 60999)) == range(24576, 32768)
    assert app_port_range((5000, 60000)) == range(60001, 65536)  # more room above than below
    assert app_port_range((1024, 65535)) is None


def test_the_ephemeral_range_is_read_from_the_kernel_file(tmp_path: Path) -> None:
    f = tmp_path / "range"
    f.write_text("40000\t50000\n")
    assert ephemeral_range(f) == (40000, 50000)
    f.write_text("garbage")
    assert ephemeral_range(f) == LINUX_DEFAULT_EPHEMERAL
    assert ephemeral_range(tmp_path / "missing") == LINUX_DEFAULT_EPHEMERAL


def test_ports_never_come_from_where_the_kernel_picks_its_own() -> None:
    # The queue-proxies bind port 0 and every outgoing connection takes a local
    # port from the ephemeral range: an app port in there can be taken by one of
    # them before the app binds it (then the app dies and its queue-proxy sends
    # requests to a stranger's port).
    low, high = ephemeral_range()
    alloc = PortAllocator()
    if alloc.ports is None:
        pytest.skip(f"this machine's ephemeral range {low}-{high} leaves no room for app ports")
    ports = [alloc.acquire() for _ in range(50)]
    assert not [p for p in ports if low <= p <= high]
    assert len(set(ports)) == 50  # one holder each
    taken = []
    try:
        for _ in range(200):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            taken.append(s)
        assert not {s.getsockname()[1] for s in taken} & set(ports)
    finally:
        for s in taken:
            s.close()


def test_a_port_in_use_is_skipped_and_a_released_one_comes_back() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            other = free.getsockname()[1]
        ports = sorted([taken, other])
        alloc = PortAllocator(ports, rng=random.Random(1))
        assert alloc.acquire() == other
        with pytest.raises(OSError, match=f"no free port for an app in {ports[0]}-{ports[1]}"):
            alloc.acquire()
        alloc.release(other)
        assert alloc.acquire() == other


def test_replicas_share_one_allocator() -> None:
    assert default_allocator() is default_allocator()
