"""Readiness of the user container, probed the way the kubelet would.

``SERVING_READINESS_PROBE`` holds the user container's readiness probe as
JSON (a Kubernetes ``Probe``: ``httpGet``, ``tcpSocket`` or ``grpc`` plus
timing fields). With ``periodSeconds: 0`` (Knative's default) a check retries every
5 ms for its first 2 s, then every 50 ms (Knative's interval), until
``successThreshold`` consecutive successes or 10 s; otherwise it is a single attempt. Concurrent checks share one in-flight probe
(docs/queue-proxy.md, "Health checks").
"""

from __future__ import annotations

import asyncio
import errno
import importlib.util
import ipaddress
import json
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any

from zeroserve.envconfig import ConfigError
from zeroserve.grpchealth import (
    HEALTH_CHECK_METHOD,
    HEALTH_SERVING,
    decode_health_status,
    encode_health_request,
)

__all__ = ["decode_health_status", "encode_health_request"]  # the codec, for its tests

AGGRESSIVE_INTERVAL = 0.05
"""Knative's retry interval (``pkg/queue/readiness/probe.go``, ``retryInterval``)."""
AGGRESSIVE_FAST_INTERVAL = 0.005
AGGRESSIVE_FAST_FOR = 2.0
"""A check retries every 5 ms for its first 2 s: a cold start's first request waits for
the first attempt after the app listens (25 ms on average at Knative's 50 ms), and a
refused connect on the pod's own address costs about 0.1 ms of CPU. An app still
starting after 2 s is probed at Knative's pace."""
AGGRESSIVE_ATTEMPT_TIMEOUT = 0.1
AGGRESSIVE_BUDGET = 10.0
PROBE_USER_AGENT = b"kube-probe/1.31"

_PROBE_KEYS = {
    "httpGet",
    "tcpSocket",
    "grpc",
    "exec",
    "initialDelaySeconds",
    "timeoutSeconds",
    "periodSeconds",
    "successThreshold",
    "failureThreshold",
    "terminationGracePeriodSeconds",
}


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    """A parsed readiness probe of the user container."""

    kind: str
    """``"http"``, ``"tcp"`` or ``"grpc"``."""
    host: str
    port: int
    path: str = "/"
    https: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    service: str = ""
    """gRPC: the ``service`` asked about in the health check ("" = the whole server)."""
    period: float = 0.0
    """0: aggressive mode (retry every 50 ms)."""
    timeout: float = 0.0
    """Per-attempt timeout; 0: 100 ms in aggressive mode, 1 s otherwise."""
    success_threshold: int = 1


def parse_probe(
    text: str, user_port: int, var: str = "SERVING_READINESS_PROBE"
) -> ProbeSpec | None:
    """Parse the probe JSON; None when empty. Errors name the variable and field."""
    if not text.strip():
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{var}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{var}: must be a JSON object (a Kubernetes Probe)")
    unknown = set(data) - _PROBE_KEYS
    if unknown:
        raise ConfigError(f"{var}: unsupported field(s) {', '.join(sorted(unknown))}")
    if "exec" in data:
        raise ConfigError(f"{var}.exec: exec probes are run by the kubelet, not the queue-proxy")

    def number(key: str, minimum: float) -> float:
        v = data.get(key, 0)
        if isinstance(v, bool) or not isinstance(v, int | float) or v < minimum:
            raise ConfigError(f"{var}.{key}: must be a number >= {minimum:g}, got {v!r}")
        return float(v)

    period = number("periodSeconds", 0)
    timeout = number("timeoutSeconds", 0)
    success = int(number("successThreshold", 0)) or 1

    def port_of(section: str, obj: dict[str, Any]) -> int:
        p = obj.get("port", 0)
        if isinstance(p, str) and p.isdigit():
            p = int(p)
        if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p <= 65535:
            raise ConfigError(f"{var}.{section}.port: must be a port number, got {p!r}")
        # Knative rewrites the probe to the user port; 0 means "the user port".
        return p or user_port

    if "httpGet" in data:
        obj = data["httpGet"]
        if not isinstance(obj, dict):
            raise ConfigError(f"{var}.httpGet: must be an object")
        path = obj.get("path", "/") or "/"
        if not isinstance(path, str) or not path.startswith("/"):
            raise ConfigError(f"{var}.httpGet.path: must start with '/', got {path!r}")
        scheme = str(obj.get("scheme", "HTTP")).upper()
        if scheme not in ("HTTP", "HTTPS"):
            raise ConfigError(f"{var}.httpGet.scheme: must be HTTP or HTTPS, got {scheme!r}")
        headers = []
        for i, hdr in enumerate(obj.get("httpHeaders") or []):
            if not isinstance(hdr, dict) or not isinstance(hdr.get("name"), str):
                raise ConfigError(f"{var}.httpGet.httpHeaders[{i}]: needs a string name")
            headers.append((hdr["name"], str(hdr.get("value", ""))))
        return ProbeSpec(
            kind="http",
            host=str(obj.get("host") or "127.0.0.1"),
            port=port_of("httpGet", obj),
            path=path,
            https=scheme == "HTTPS",
            headers=tuple(headers),
            period=period,
            timeout=timeout,
            success_threshold=success,
        )
    if "tcpSocket" in data:
        obj = data["tcpSocket"]
        if not isinstance(obj, dict):
            raise ConfigError(f"{var}.tcpSocket: must be an object")
        return ProbeSpec(
            kind="tcp",
            host=str(obj.get("host") or "127.0.0.1"),
            port=port_of("tcpSocket", obj),
            period=period,
            timeout=timeout,
            success_threshold=success,
        )
    if "grpc" in data:
        obj = data["grpc"]
        if not isinstance(obj, dict):
            raise ConfigError(f"{var}.grpc: must be an object")
        p = obj.get("port", 0)
        # GRPCAction.port is an int32, never a named port or a string
        if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p <= 65535:
            raise ConfigError(f"{var}.grpc.port: must be a port number, got {p!r}")
        service = obj.get("service")
        if service is None:
            service = ""
        if not isinstance(service, str):
            raise ConfigError(f"{var}.grpc.service: must be a string, got {service!r}")
        if importlib.util.find_spec("grpc") is None:  # locates grpcio without importing it
            raise ConfigError(f"{var}.grpc: gRPC probes need the grpcio package")
        return ProbeSpec(
            kind="grpc",
            host="127.0.0.1",  # like upstream: the app in the same pod, whatever the probe says
            port=p or user_port,
            service=service,
            period=period,
            timeout=timeout,
            success_threshold=success,
        )
    raise ConfigError(f"{var}: needs httpGet, tcpSocket or grpc")


def retry_interval(elapsed: float) -> float:
    """How long a check waits before its next attempt, ``elapsed`` seconds after it began."""
    return AGGRESSIVE_FAST_INTERVAL if elapsed < AGGRESSIVE_FAST_FOR else AGGRESSIVE_INTERVAL


EXPECTED_SHARE = 8
"""Before the app is expected to listen, a check waits this share of the time left."""


def expected_interval(interval: float, left: float) -> float:
    """The wait before the next attempt when the app is expected to listen in ``left``
    seconds (``interval``: :func:`retry_interval`'s): an eighth of the time left, within
    ``interval`` and Knative's 50 ms. So an app that listens sooner than expected is
    seen within an eighth of its lead (at most 50 ms, Knative's own pace), and one that
    starts as expected costs about half the attempts of probing every 5 ms."""
    return max(interval, min(AGGRESSIVE_INTERVAL, left / EXPECTED_SHARE))


REFUSED = "refused"
"""What :func:`connect_now` says of a port nothing listens on."""


def connect_now(host: str, port: int) -> socket.socket | str | None:
    """Connect to ``host:port`` (an IP address) without waiting, from a non-blocking
    socket: :data:`REFUSED` when the connect was refused before the call returned, the
    connected socket when it was established before the call returned, else None (in
    flight, or another error: the caller tries the ordinary way).

    On the same machine (the pod's own app, on loopback) the kernel handles the SYN
    and its reset or its accept within the ``connect(2)`` call, so this settles an
    attempt at an app still starting in about 6 us of CPU and no event-loop round trip,
    where ``asyncio.open_connection`` costs a transport, a task step and a wake-up for
    the refusal (docs/queue-proxy.md, "Health checks")."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError:
        return None
    try:
        sock.setblocking(False)
        err = sock.connect_ex((host, port))
        if err == errno.EINPROGRESS:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err == errno.ECONNREFUSED:
            sock.close()
            return REFUSED
        if err == 0:
            sock.getpeername()  # ENOTCONN while the handshake is still in flight
            return sock
    except OSError:
        pass
    sock.close()
    return None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def probe_once(spec: ProbeSpec, timeout: float, sock: socket.socket | None = None) -> bool:
    """One attempt: TCP connect, or HTTP GET answered 200-399; ``sock``: a connection
    to the app already made (:func:`connect_now`), which the attempt then uses."""
    try:
        async with asyncio.timeout(timeout):
            if spec.kind == "tcp":
                if sock is not None:
                    sock.close()
                    return True
                _, writer = await asyncio.open_connection(spec.host, spec.port)
                writer.close()
                return True
            ctx = None
            if spec.https:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE  # the kubelet does not verify either
            if sock is not None:
                where: dict[str, Any] = {"sock": sock}
                if ctx is not None:
                    where["server_hostname"] = spec.host
            else:
                where = {"host": spec.host, "port": spec.port}
            sock = None  # the transport owns it now
            reader, writer = await asyncio.open_connection(ssl=ctx, **where)
            try:
                lines = [
                    b"GET " + spec.path.encode() + b" HTTP/1.1",
                    b"Host: " + f"{spec.host}:{spec.port}".encode(),
                    b"User-Agent: " + PROBE_USER_AGENT,
                    b"Accept: */*",
                    b"Connection: close",
                ]
                lines += [f"{k}: {v}".encode() for k, v in spec.headers]
                writer.write(b"\r\n".join(lines) + b"\r\n\r\n")
                status_line = await reader.readline()
            finally:
                writer.close()
            parts = status_line.split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
                return False
            return 200 <= int(parts[1]) < 400
    except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
        return False
    finally:
        if sock is not None:
            sock.close()


# The channel reconnects at most this long after the app went away or was not up yet;
# gRPC's default backoff (1 s growing to 120 s) would hide an app that came up meanwhile.
GRPC_RECONNECT_BACKOFF_MS = 50


class GrpcHealthCheck:
    """``grpc.health.v1.Health/Check`` against the app, over one channel kept for the
    prober's lifetime (opened at the first check, on the running loop).

    grpcio is imported here, so a queue-proxy without a gRPC probe never loads it.
    """

    def __init__(self, port: int, service: str) -> None:
        self.target = f"127.0.0.1:{port}"
        self.service = service
        self._channel: Any = None
        self._check: Any = None
        self._rpc_error: type[Exception] = Exception

    def _open(self) -> None:
        import grpc

        self._rpc_error = grpc.RpcError
        self._channel = grpc.aio.insecure_channel(
            self.target,
            options=[
                ("grpc.primary_user_agent", PROBE_USER_AGENT.decode()),
                ("grpc.enable_http_proxy", 0),  # the app is on loopback, never behind a proxy
                ("grpc.initial_reconnect_backoff_ms", GRPC_RECONNECT_BACKOFF_MS),
                ("grpc.max_reconnect_backoff_ms", GRPC_RECONNECT_BACKOFF_MS),
            ],
        )
        self._check = self._channel.unary_unary(
            HEALTH_CHECK_METHOD,
            request_serializer=encode_health_request,
            response_deserializer=decode_health_status,
        )

    async def __call__(self, timeout: float) -> bool:
        """One attempt: True only for a SERVING answer within ``timeout``. Any RPC
        error is a failure: UNAVAILABLE while the app starts, UNIMPLEMENTED when it
        has no health service, DEADLINE_EXCEEDED, INTERNAL for an undecodable reply."""
        if self._channel is None:
            self._open()
        try:
            status = await self._check(self.service, timeout=timeout)
        except (self._rpc_error, ValueError):
            return False
        return bool(status == HEALTH_SERVING)

    def close(self) -> asyncio.Task[None] | None:
        """Close the channel (cancelling a call in flight); the task to await, if any."""
        channel, self._channel = self._channel, None
        if channel is None:
            return None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None  # no loop left: the channel's finalizer closes it
        # With no grace, Channel.close() finishes in its first step.
        return loop.create_task(channel.close(), name="readiness-grpc-close")


class ReadinessProber:
    """Answers "is the app ready?" with single-flight probing of ``spec``."""

    def __init__(self, spec: ProbeSpec | None, *, expected_at: float = 0.0) -> None:
        self.spec = spec
        self.expected_at = expected_at
        """The ``time.monotonic()`` at which the app is expected to listen (0: unknown);
        until then an aggressive check waits :func:`expected_interval` between attempts.
        Each attempt at an app still starting wakes this process on the app's CPU (about
        0.09 ms of CPU there; docs/queue-proxy.md, "Health checks")."""
        self._inflight: asyncio.Task[bool] | None = None
        self._grpc = (
            GrpcHealthCheck(spec.port, spec.service)
            if spec is not None and spec.kind == "grpc"
            else None
        )
        self._closing: asyncio.Task[None] | None = None
        self.last_result = spec is None
        self._connect_first = (
            spec is not None and spec.kind in ("http", "tcp") and _is_ip(spec.host)
        )
        """Aggressive attempts start with :func:`connect_now` (an IP address only: a name
        would be resolved, blocking, by ``connect``)."""

    async def check(self) -> bool:
        if self.spec is None:
            return True
        task = self._inflight
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(
                self._run(self.spec), name="readiness-probe"
            )
            self._inflight = task
        # shield: one caller going away must not cancel the others' probe
        return await asyncio.shield(task)

    async def _attempt(self, spec: ProbeSpec, timeout: float) -> bool:
        if self._grpc is not None:
            return await self._grpc(timeout)
        return await probe_once(spec, timeout)

    async def _fast_attempt(self, spec: ProbeSpec, timeout: float) -> bool:
        """An attempt of the aggressive loop: one refused at once costs no event-loop
        round trip; a connection made at once is used for the attempt."""
        if not self._connect_first:
            return await self._attempt(spec, timeout)
        got = connect_now(spec.host, spec.port)
        if got == REFUSED:
            return False
        return await probe_once(spec, timeout, got if isinstance(got, socket.socket) else None)

    async def _run(self, spec: ProbeSpec) -> bool:
        if spec.period > 0:
            ok = await self._attempt(spec, spec.timeout or 1.0)
        else:
            ok = await self._aggressive(spec)
        self.last_result = ok
        return ok

    async def _aggressive(self, spec: ProbeSpec) -> bool:
        loop = asyncio.get_running_loop()
        began = loop.time()
        give_up = began + AGGRESSIVE_BUDGET
        attempt_timeout = spec.timeout or AGGRESSIVE_ATTEMPT_TIMEOUT
        streak = 0
        while True:
            if await self._fast_attempt(spec, attempt_timeout):
                streak += 1
                if streak >= spec.success_threshold:
                    return True
            else:
                streak = 0
            now = loop.time()
            interval = retry_interval(now - began)
            if self.expected_at:
                interval = expected_interval(interval, self.expected_at - time.monotonic())
            if now + interval > give_up:
                return False
            await asyncio.sleep(interval)

    def close(self) -> None:
        if self._inflight is not None:
            self._inflight.cancel()
        if self._grpc is not None:
            self._closing = self._grpc.close() or self._closing

    async def aclose(self) -> None:
        """``close()``, then wait until the probe in flight ended and the gRPC channel
        (if any) is closed."""
        self.close()
        pending = [t for t in (self._inflight, self._closing) if t is not None]
        if pending:
            await asyncio.wait(pending)
