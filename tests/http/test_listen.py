"""Where a ``Server`` listens (zeroserve/http/server.py, ``bound_socket``): an IP
address is bound without resolving it, as ``create_server`` would bind it."""

from __future__ import annotations

import asyncio
import shutil
import socket

import pytest

from zeroserve.http.server import Handler, Server, bound_socket


@pytest.mark.parametrize(
    ("host", "family"),
    [("127.0.0.1", socket.AF_INET), ("0.0.0.0", socket.AF_INET), ("::1", socket.AF_INET6)],
    ids=["loopback", "any-ipv4", "ipv6"],
)
def test_an_address_is_bound_here(host: str, family: int) -> None:
    if family == socket.AF_INET6 and not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        sock = bound_socket(host, 0, backlog=16, reuse_port=False)
    except OSError as e:  # ::1 missing on this machine
        pytest.skip(f"cannot bind {host}: {e}")
    assert sock is not None
    with sock:
        assert sock.family == family and not sock.getblocking()
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        assert sock.getsockname()[1] > 0
        if family == socket.AF_INET6:  # as asyncio's create_server: no dual stack
            assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)


def test_reuse_port_is_set_when_asked() -> None:
    sock = bound_socket("127.0.0.1", 0, backlog=16, reuse_port=True)
    assert sock is not None
    with sock:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)


@pytest.mark.parametrize("host", ["localhost", ""], ids=["name", "all-interfaces"])
def test_a_name_is_left_to_create_server(host: str) -> None:
    assert bound_socket(host, 0, backlog=16, reuse_port=False) is None


def test_a_port_in_use_is_an_os_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            bound_socket("127.0.0.1", taken.getsockname()[1], backlog=16, reuse_port=False)


async def test_a_server_listens_on_the_socket_it_bound() -> None:
    server = Server(Handler())
    port = await server.listen("127.0.0.1", 0)
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
    finally:
        server.stop_listening()


@pytest.mark.process
@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
async def test_the_server_keeps_the_backlog_it_asked_for() -> None:
    """create_server listens again on a socket it is given, by default with a backlog of
    100: a burst of 2,000 connections would then wait for SYN retransmits."""
    server = Server(Handler())
    port = await server.listen("127.0.0.1", 0, backlog=2048)
    try:
        ss = await asyncio.create_subprocess_exec(
            "ss", "-ltnH", f"sport = :{port}", stdout=asyncio.subprocess.PIPE
        )
        out, _ = await ss.communicate()
        assert out.split()[2] == b"2048"  # Send-Q of a listening socket: its backlog
    finally:
        server.stop_listening()
