"""Pod networks: a namespace and an IP per pod on the run's bridge, reachable from the
host and from each other, and gone when closed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable

import pytest

from zeroserve.local.sandbox.enter import preexec
from zeroserve.local.sandbox.network import Network, NetworkError
from zeroserve.local.sandbox.state import RunState
from zeroserve.local.starts import StartsUnderWay

from .conftest import TEST_CIDR, root_only

pytestmark = [root_only, pytest.mark.process]

SERVER = (
    "import socket,sys;s=socket.socket();s.bind(('0.0.0.0',9999));s.listen();print('up',flush=True)\n"
    "while True:\n c,_=s.accept();c.sendall(sys.argv[1].encode());c.close()"
)


def _names() -> tuple[str, str]:
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return netns, links


async def _hello_host(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"hello from the host")
    await writer.drain()
    writer.close()


async def _from_pod(netns_path: str, ip: str, port: int) -> str:
    """What a client inside the pod's namespace reads from ``ip:port``."""
    client = (
        "import socket,sys;c=socket.create_connection((sys.argv[1],int(sys.argv[2])),5);"
        "print(c.recv(100).decode())"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", client, ip, str(port),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        preexec_fn=preexec(netns_path=netns_path),
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err
    return out.decode().strip()


async def test_pods_get_their_own_ips_and_reach_each_other(run_state: RunState) -> None:
    net = await Network.create(run_state, TEST_CIDR)
    server = None
    try:
        assert net.gateway == "198.19.250.1"
        a = await net.add_pod("a")
        b = await net.add_pod("b")
        assert (a.ip, b.ip) == ("198.19.250.2", "198.19.250.3")
        netns, links = _names()
        assert a.netns in netns and b.netns in netns and net.bridge in links
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-c", SERVER, "hello from a",
            stdout=asyncio.subprocess.PIPE, preexec_fn=preexec(netns_path=a.netns_path),
        )  # fmt: skip
        assert server.stdout is not None
        assert await asyncio.wait_for(server.stdout.readline(), 10) == b"up\n"
        # from the host, at the pod's IP
        reader, writer = await asyncio.open_connection(a.ip, 9999)
        assert await reader.read() == b"hello from a"
        writer.close()
        # from pod b, across the bridge; and b reaches the host at the gateway's address
        host_side = await asyncio.start_server(_hello_host, net.gateway, 0)
        port = host_side.sockets[0].getsockname()[1]
        try:
            assert await _from_pod(b.netns_path, a.ip, 9999) == "hello from a"
            assert await _from_pod(b.netns_path, net.gateway, port) == "hello from the host"
        finally:
            host_side.close()
    finally:
        if server is not None:
            server.kill()
            await server.wait()
        await net.close()
    netns, links = _names()
    assert a.netns not in netns and b.netns not in netns
    assert net.bridge not in links and a.veth not in links


async def test_a_full_range_says_so_and_a_removed_pods_ip_is_given_again(
    run_state: RunState,
) -> None:
    net = await Network.create(run_state, "198.19.250.0/29")  # the gateway and 5 pods
    try:
        pods = [await net.add_pod(f"p{i}") for i in range(5)]
        with pytest.raises(NetworkError, match="no free pod IP"):
            await net.add_pod("one too many")
        await net.remove_pod(pods[2])
        assert pods[2].netns not in _names()[0]
        again = await net.add_pod("again")
        assert again.ip == pods[2].ip and again.netns != pods[2].netns
    finally:
        await net.close()


@pytest.mark.parametrize(
    ("cidr", "why"),
    [("nope", "does not appear"), ("fd00::/64", "IPv4"), ("198.19.250.0/30", "too small")],
)
async def test_a_bad_pod_cidr_names_the_flag(run_state: RunState, cidr: str, why: str) -> None:
    with pytest.raises(NetworkError, match="--pod-cidr") as e:
        await Network.create(run_state, cidr)
    assert why in str(e.value)


async def _until(predicate: Callable[[], bool], within: float = 20.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_spares_are_handed_out_at_once_and_made_again_later(run_state: RunState) -> None:
    net = await Network.create(run_state, TEST_CIDR, spares=2, spare_after=0.3)
    try:
        await _until(lambda: net.spare_state() == {"spares": 2, "ready": 2})
        made = {line.split()[0] for line in _names()[0].splitlines()}
        a = await net.add_pod("a")
        # the spare made ahead, renamed: no namespace was made for it just now
        assert a.name == "a" and a.netns in made
        assert {line.split()[0] for line in _names()[0].splitlines()} == made
        assert net.spare_state() == {"spares": 2, "ready": 1}
        b = await net.add_pod("b")
        assert b.netns in made and len({a.ip, b.ip}) == 2
        # the one it hands out works as one made on demand
        host_side = await asyncio.start_server(_hello_host, net.gateway, 0)
        try:
            port = host_side.sockets[0].getsockname()[1]
            assert await _from_pod(a.netns_path, net.gateway, port) == "hello from the host"
        finally:
            host_side.close()
        await _until(lambda: net.spare_state()["ready"] == 2)
        spares = {line.split()[0] for line in _names()[0].splitlines()} - made
        assert len(spares) == 2
    finally:
        await net.close()
    # closing removes the pods' namespaces and the spares'
    left = _names()[0]
    assert not any(n in left for n in (a.netns, b.netns, *spares))


async def test_spares_are_made_again_once_no_replica_is_starting(run_state: RunState) -> None:
    net = await Network.create(run_state, TEST_CIDR, spares=1, spare_after=0.05)
    net.starts = starts = StartsUnderWay()
    try:
        await _until(lambda: net.spare_state() == {"spares": 1, "ready": 1})
        starts.begin()  # the replica that takes it starts...
        await net.add_pod("a")
        await asyncio.sleep(0.3)  # ...for longer than spare_after
        assert net.spare_state() == {"spares": 1, "ready": 0}
        starts.end()  # it is ready: the spare is made now
        await _until(lambda: net.spare_state()["ready"] == 1)
    finally:
        await net.close()


def _mac(link: str) -> str:
    with open(f"/sys/class/net/{link}/address") as f:
        return f.read().strip()


async def test_the_gateway_keeps_its_mac_when_the_pod_with_the_lowest_one_goes(
    run_state: RunState,
) -> None:
    """A bridge takes its lowest port's MAC unless one is set: removing the pod whose
    veth had it moved the gateway's MAC, and the other pods' ARP entries sent to the old
    one, so they lost the host for 15-45 s (on the test cluster: the API server and DNS;
    a cold request waited for an autoscaler that could not renew its Lease)."""
    net = await Network.create(run_state, TEST_CIDR)
    host_side = await asyncio.start_server(_hello_host, net.gateway, 0)
    port = host_side.sockets[0].getsockname()[1]
    try:
        pods = [await net.add_pod(name) for name in ("a", "b", "c")]
        gateway_mac = _mac(net.bridge)
        lowest = min(pods, key=lambda p: int(_mac(p.veth).replace(":", ""), 16))
        survivor = next(p for p in pods if p is not lowest)
        # the survivor learns the gateway's MAC, then the lowest port goes
        assert await _from_pod(survivor.netns_path, net.gateway, port) == "hello from the host"
        await net.remove_pod(lowest)
        assert await _from_pod(survivor.netns_path, net.gateway, port) == "hello from the host"
        assert _mac(net.bridge) == gateway_mac
    finally:
        host_side.close()
        await net.close()
