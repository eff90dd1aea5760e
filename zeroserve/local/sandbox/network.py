"""A pod's network: its own network namespace and IP on a bridge the run makes.

What a CNI bridge plugin does for a Kubernetes pod, with iproute2: one bridge per run
(``zs-<run>``, the first address of a free /24 of ``--pod-cidr``), and per pod a
network namespace (``zs-<run>-<n>``) holding one end of a veth pair (``eth0``, the
pod's IP, a default route via the bridge), the other end on the bridge. Pods reach
each other and the host (the bridge's address) across the bridge; nothing is set up
for the world beyond the machine (no NAT, the host's firewall is left alone).

Every name is journaled (:mod:`.state`) before it is made. Interface names stay
within the kernel's 15 characters.

With ``spares`` (``zeroserve up`` sets as many as it keeps standby queue-proxies),
that many pods' namespaces are kept made ahead: :meth:`Network.add_pod` hands one out
at once (the ``ip`` commands take 6 ms on an idle machine, 15-50 ms during a cold
start, on the cold start's path), and the missing ones are made ``spare_after``
seconds later and, with ``starts``, once no replica is starting, off that path
(docs/local-mode.md, "Standby queue-proxies").
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from ..starts import StartsUnderWay
from .state import RunState

DEFAULT_POD_CIDR = "198.18.0.0/16"
"""Inside 198.18.0.0/15, which RFC 2544 reserves for benchmarking: not an ordinary
network's range."""


SPARE_AFTER = 1.0
"""Seconds after a spare is taken that the missing ones are made (as the standby
queue-proxies: zeroserve/local/standby.py ``REFILL_AFTER``)."""


class NetworkError(RuntimeError):
    """A pod network cannot be made; the message names the flag or the step."""


async def _ip(*args: str, batch: str | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(
        "ip",
        *args,
        stdin=asyncio.subprocess.PIPE if batch is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate(batch.encode() if batch is not None else None)
    text = out.decode(errors="replace").strip()
    if proc.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)} failed: {text}")
    return text


def sandbox_unavailable() -> str | None:
    """None when pod sandboxes can be made here; else why not, in words for the user."""
    if not sys.platform.startswith("linux"):
        return "not Linux"
    if os.geteuid() != 0:
        return "not root"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    if shutil.which("unshare") is None:
        return "no `unshare` command (util-linux)"
    probe = subprocess.run(
        ["unshare", "--net", "--mount", "true"], capture_output=True, text=True, timeout=10
    )
    if probe.returncode != 0:
        return f"cannot create a network namespace: {probe.stderr.strip() or probe.returncode}"
    return None


@dataclass(frozen=True)
class PodNetwork:
    name: str
    """The pod's name."""
    netns: str
    """``ip netns`` name."""
    netns_path: str
    ip: str
    """The pod's IP."""
    gateway: str
    """The bridge's IP: the host, as the pod sees it."""
    veth: str
    """The host's end of the veth pair."""


def _free_subnet(cidr: str) -> ipaddress.IPv4Network:
    """A /24 of ``cidr`` (or ``cidr`` itself when smaller) that no interface uses."""
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError as e:
        raise NetworkError(f"--pod-cidr {cidr!r}: {e}") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise NetworkError(f"--pod-cidr {cidr!r}: must be an IPv4 range")
    if net.prefixlen > 29:
        raise NetworkError(f"--pod-cidr {cidr!r}: too small (at most /29)")
    used = _addresses_in_use()
    candidates = [net] if net.prefixlen >= 24 else net.subnets(new_prefix=24)
    for sub in candidates:
        if not any(a in sub for a in used):
            return sub
    raise NetworkError(f"--pod-cidr {cidr!r}: every /24 in it is in use on this machine")


def _addresses_in_use() -> list[ipaddress.IPv4Address]:
    """Every IPv4 address (and its network's) on this machine's interfaces."""
    out = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout
    found: list[ipaddress.IPv4Address] = []
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            iface = ipaddress.IPv4Interface(parts[parts.index("inet") + 1])
            found += [iface.ip, iface.network.network_address]
    return found


class Network:
    """One run's bridge and its pods' namespaces."""

    def __init__(
        self,
        state: RunState,
        subnet: ipaddress.IPv4Network,
        *,
        spares: int = 0,
        spare_after: float = SPARE_AFTER,
    ) -> None:
        self.state = state
        self.subnet = subnet
        hosts = subnet.hosts()
        self.gateway = str(next(hosts))
        self._free = [str(h) for h in hosts]
        self.bridge = f"zs-{state.run_id}"
        self._pods: dict[str, PodNetwork] = {}
        self._n = 0
        self.spares = spares
        """Pod networks kept made ahead (0: none)."""
        self.spare_after = spare_after
        """Seconds after a spare is taken that the missing ones are made."""
        self._spare: list[PodNetwork] = []
        self._spare_task: asyncio.Task[None] | None = None
        self._spare_timer: asyncio.TimerHandle | None = None
        self.starts = StartsUnderWay()
        """The runtime's replica starts under way: spares are made once there are none
        (``zeroserve up`` sets the runtime's; this one's never are)."""
        self._spare_waits = False

    @classmethod
    async def create(
        cls,
        state: RunState,
        pod_cidr: str = DEFAULT_POD_CIDR,
        *,
        spares: int = 0,
        spare_after: float = SPARE_AFTER,
    ) -> Network:
        """Pick a free /24 of ``pod_cidr`` and make the bridge, with its address, up
        (and start making the ``spares``)."""
        net = cls(state, _free_subnet(pod_cidr), spares=spares, spare_after=spare_after)
        state.record("link", net.bridge)
        # A bridge's own MAC address is its lowest port's unless one is set: removing the
        # pod whose veth had it would change the gateway's MAC under every other pod, and
        # their ARP entries would send to the old one (dropped) until they expire, 15-45
        # s without the host (the test cluster's API server and DNS, the activators).
        mac = "02:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(5))
        await _ip(
            "-batch",
            "-",
            batch=(
                f"link add {net.bridge} address {mac} type bridge\n"
                f"addr add {net.gateway}/{net.subnet.prefixlen} dev {net.bridge}\n"
                f"link set {net.bridge} up\n"
            ),
        )
        net._schedule_spare(0)
        return net

    async def add_pod(self, name: str) -> PodNetwork:
        """A network namespace for pod ``name``: lo up, eth0 with the next free IP on the
        bridge, a default route via the bridge (the spare, when one is ready)."""
        spare = self._spare.pop(0) if self._spare else None
        self._schedule_spare()
        if spare is not None:
            pod = replace(spare, name=name)
            self._pods[pod.netns] = pod
            return pod
        return await self._make(name)

    def spare_state(self) -> dict[str, int]:
        """``spares`` (wanted) and ``ready``."""
        return {"spares": self.spares, "ready": len(self._spare)}

    def _schedule_spare(self, delay: float | None = None) -> None:
        if self.spares <= len(self._spare) or self._spare_timer is not None:
            return
        if self._spare_waits:
            return
        if self._spare_task is not None and not self._spare_task.done():
            return
        loop = asyncio.get_running_loop()
        self._spare_timer = loop.call_later(
            self.spare_after if delay is None else delay, self._start_spare
        )

    def _start_spare(self) -> None:
        self._spare_timer = None
        self._spare_waits = True
        self.starts.when_quiet(self._make_spares_now)

    def _make_spares_now(self) -> None:
        self._spare_waits = False
        if self.spares <= len(self._spare):
            return  # closed meanwhile
        self._spare_task = asyncio.get_running_loop().create_task(
            self._make_spares(), name="spare pod networks"
        )

    async def _make_spares(self) -> None:
        while len(self._spare) < self.spares and self._free:
            try:
                self._spare.append(await self._make(""))
            except NetworkError as e:
                print(f"zeroserve: a spare pod network: {e}", file=sys.stderr, flush=True)
                return

    async def _make(self, name: str) -> PodNetwork:
        if not self._free:
            raise NetworkError(f"no free pod IP left in {self.subnet} (--pod-cidr)")
        self._n += 1
        netns = f"zs-{self.state.run_id}-{self._n}"
        veth = f"zv{self.state.run_id}{self._n:x}"[:15]
        ip = self._free.pop(0)
        self.state.record("netns", netns)
        self.state.record("link", veth)
        pod = PodNetwork(name, netns, f"/run/netns/{netns}", ip, self.gateway, veth)
        try:
            await _ip(
                "-batch",
                "-",
                batch=(
                    f"netns add {netns}\n"
                    f"link add {veth} type veth peer name eth0 netns {netns}\n"
                    f"link set {veth} master {self.bridge} up\n"
                ),
            )
            await _ip(
                "-n",
                netns,
                "-batch",
                "-",
                batch=(
                    "link set lo up\n"
                    f"addr add {ip}/{self.subnet.prefixlen} dev eth0\n"
                    "link set eth0 up\n"
                    f"route add default via {self.gateway}\n"
                ),
            )
        except NetworkError:
            await self.remove_pod(pod)
            raise
        self._pods[netns] = pod
        return pod

    async def remove_pod(self, pod: PodNetwork) -> None:
        """Remove the pod's namespace (its veth goes with it) and free its IP."""
        self._pods.pop(pod.netns, None)
        if Path(pod.netns_path).exists():
            await _ip("netns", "delete", pod.netns)
        if Path(f"/sys/class/net/{pod.veth}").exists():
            # usually gone with its peer's namespace, perhaps a moment later
            with contextlib.suppress(NetworkError):
                await _ip("link", "delete", pod.veth)
        self.state.forget("link", pod.veth)
        self.state.forget("netns", pod.netns)
        if ipaddress.ip_address(pod.ip) in self.subnet and pod.ip not in self._free:
            self._free.append(pod.ip)

    async def close(self) -> None:
        """Remove every pod's namespace (and the spare's), then the bridge."""
        self.spares = 0
        if self._spare_timer is not None:
            self._spare_timer.cancel()
            self._spare_timer = None
        if self._spare_task is not None:
            self._spare_task.cancel()
            await asyncio.gather(self._spare_task, return_exceptions=True)
        self._spare = []
        for pod in list(self._pods.values()):
            await self.remove_pod(pod)
        if Path(f"/sys/class/net/{self.bridge}").exists():
            await _ip("link", "delete", self.bridge)
        self.state.forget("link", self.bridge)
