"""Ports for the apps of local replicas.

A Knative container binds ``$PORT`` itself, so the runtime has to name a free
port before the app starts, and the port stays unclaimed until the app gets to
``bind`` (a Python app takes a few hundred milliseconds). A port found with
``bind(('', 0))`` comes from the kernel's ephemeral range, which is also where
every queue-proxy's own ports (bound to 0) and every outgoing connection's
local port come from: during a burst dozens of those are taken in that window,
and when one lands on the app's port, the app cannot bind it while its
queue-proxy forwards requests, probes included, to whoever holds it.

So app ports come from a range the kernel never hands out by itself: just
below ``net.ipv4.ip_local_port_range`` (or above it when there is no room
below), and one allocator remembers which ones live replicas hold.
"""

from __future__ import annotations

import errno
import logging
import random
import socket
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LINUX_DEFAULT_EPHEMERAL = (32768, 60999)
SPAN = 8192
"""How many ports the allocator draws from."""
LOWEST = 1024
"""Below this, ports are privileged."""


def ephemeral_range(path: Path = EPHEMERAL_RANGE_FILE) -> tuple[int, int]:
    """The kernel's ephemeral port range (inclusive); Linux's default if unreadable."""
    try:
        low, high = (int(x) for x in path.read_text().split())
    except (OSError, ValueError):
        return LINUX_DEFAULT_EPHEMERAL
    return low, high


def app_port_range(ephemeral: tuple[int, int]) -> range | None:
    """Up to ``SPAN`` ports outside ``ephemeral``: below it when there is room, else above."""
    low, high = ephemeral
    below = range(max(LOWEST, low - SPAN), low)
    above = range(high + 1, min(65536, high + 1 + SPAN))
    best = max((below, above), key=len)
    return best if len(best) >= 64 else None


def _bindable(host: str, port: int) -> bool:
    # No SO_REUSEADDR: a port with TIME_WAIT connections is skipped too, since
    # an app that does not set the option could not bind it.
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def kernel_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now, chosen by the kernel."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class PortAllocator:
    """Hands out app ports outside the ephemeral range, each to one holder at a time."""

    def __init__(
        self, ports: Sequence[int] | None = None, rng: random.Random | None = None
    ) -> None:
        self.ports = ports if ports is not None else app_port_range(ephemeral_range())
        self._held: set[int] = set()
        self._rng = rng or random.Random()
        if self.ports is None:
            log.warning(
                "no room outside the ephemeral port range %s; app ports come from the kernel and "
                "may collide with other processes' ports",
                ephemeral_range(),
            )

    @property
    def held(self) -> frozenset[int]:
        return frozenset(self._held)

    def acquire(self, host: str = "127.0.0.1") -> int:
        """A free port from the range, held until :meth:`release`."""
        if self.ports is None:
            return kernel_port(host)
        for _ in range(256):
            port = self._rng.choice(self.ports)
            if port not in self._held and _bindable(host, port):
                self._held.add(port)
                return port
        # Random tries keep failing: the range is nearly full, so walk it once.
        for port in self.ports:
            if port not in self._held and _bindable(host, port):
                self._held.add(port)
                return port
        raise OSError(f"no free port for an app in {min(self.ports)}-{max(self.ports)} on {host}")

    def release(self, port: int) -> None:
        self._held.discard(port)


_default: PortAllocator | None = None


def default_allocator() -> PortAllocator:
    """The allocator shared by every replica this process starts."""
    global _default
    if _default is None:
        _default = PortAllocator()
    return _default


class PortInUse(OSError):
    """A listener ``zeroserve up`` is about to open is already served by someone."""


def check_listen_free(host: str, port: int) -> None:
    """Raise ``OSError`` (``PortInUse`` for EADDRINUSE) when ``host:port`` cannot be
    listened on alone: another listener holds it, whoever it is.

    ``zeroserve up``'s activators share their ports with SO_REUSEPORT, and the kernel
    lets every process of the same user that sets it join, so a second ``up`` on the
    same port would start without error and take half of the first one's requests
    (each routing only its own services: 404s). A bind without SO_REUSEPORT fails
    where any listener holds the port, with or without it, so the check is made
    before the first activator binds; SO_REUSEADDR keeps a port that only has
    TIME_WAIT connections (a previous run's) usable, as the activator's own bind does.
    """
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise PortInUse(e.errno, e.strerror) from None
            raise
