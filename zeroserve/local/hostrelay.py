"""The host's loopback services, as pods reach them: relays on the bridge's address.

With pod sandboxes a queue-proxy runs in its pod's network namespace, where 127.0.0.1
is the pod's own loopback, as on Kubernetes (docs/local-mode.md, "Pod sandboxes"). A
collector that a user starts next to ``zeroserve up`` usually listens on the machine's
127.0.0.1, and the activator (a host process) reaches it there; the queue-proxies could
not. So the runtime gives the queue-proxies a pod's view of config-observability
(:func:`pod_view`): a ``tracing-endpoint`` on a loopback address becomes the same URL on
the bridge's address (the host, as a pod sees it) and a port where a
:class:`LoopbackRelay` listens and copies every connection to and from the loopback one
(docs/observability.md, "Tracing").
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from dataclasses import replace
from urllib.parse import urlsplit, urlunsplit

from zeroserve.observability import ObservabilityConfig

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_CHUNK = 65536


def loopback_port(url: str) -> int | None:
    """The port of ``url`` when its host is a loopback address (``localhost``,
    ``127.0.0.0/8``, ``::1``), else None."""
    parts = urlsplit(url)
    host = parts.hostname
    if host is None:
        return None
    if host != "localhost":
        try:
            if not ipaddress.ip_address(host).is_loopback:
                return None
        except ValueError:
            return None  # a name: resolved by the pod as by the host
    try:
        port = parts.port
    except ValueError:
        return None
    return port if port is not None else _DEFAULT_PORTS.get(parts.scheme)


class LoopbackRelay:
    """Listeners on ``bind_host`` (the bridge's address), one per loopback port asked for,
    each copying its connections to the same port on the host's 127.0.0.1."""

    def __init__(self, bind_host: str) -> None:
        self.bind_host = bind_host
        self._ports: dict[int, int] = {}
        """loopback port -> the relay's port on ``bind_host``."""
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def port_for(self, target: int) -> int:
        """The relay's port for 127.0.0.1:``target``, listening from this call on (the
        socket is bound and listening before this returns; connections wait in its
        backlog until the event loop serves them)."""
        port = self._ports.get(target)
        if port is not None:
            return port
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((self.bind_host, 0))
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        port = sock.getsockname()[1]
        self._ports[target] = port
        task = asyncio.get_running_loop().create_task(
            self._serve(sock, target), name=f"relay :{port} -> {LOOPBACK}:{target}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        log.info("relaying %s:%d to %s:%d for the pods", self.bind_host, port, LOOPBACK, target)
        return port

    async def _serve(self, sock: socket.socket, target: int) -> None:
        async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                up_reader, up_writer = await asyncio.open_connection(LOOPBACK, target)
            except OSError as e:
                log.warning("relay to %s:%d: %s", LOOPBACK, target, e)
                writer.close()
                return
            try:
                await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))
            finally:
                writer.close()
                up_writer.close()

        server = await asyncio.start_server(connection, sock=sock)
        self._servers.append(server)

    def pod_view(self, config: ObservabilityConfig) -> ObservabilityConfig:
        """``config`` as a pod's queue-proxy needs it: a loopback ``tracing-endpoint``
        through this relay; anything else as it is."""
        port = loopback_port(config.tracing_endpoint) if config.tracing_endpoint else None
        if port is None:
            return config
        relay = self.port_for(port)
        parts = urlsplit(config.tracing_endpoint)
        netloc = f"{self.bind_host}:{relay}"
        if parts.username is not None:
            netloc = parts.netloc.rsplit("@", 1)[0] + "@" + netloc
        endpoint = urlunsplit(parts._replace(netloc=netloc))
        return replace(config, tracing_endpoint=endpoint)

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()
        self._ports.clear()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One direction of a relayed connection, until its end (passed on as a half-close)."""
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.close()  # the other direction's read ends too
