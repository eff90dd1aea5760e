"""The kubelet's probes, for local replicas.

Handlers as the kubelet's (kubernetes ``pkg/probe/{http,tcp,grpc,exec}``), each a
function ``(timeout) -> (ok, message)`` with the kubelet's messages; a :class:`Prober`
is one probe of one container as a kubelet worker runs it
(``pkg/kubelet/prober/worker.go``): a result that flips only after
``successThreshold`` successes or ``failureThreshold`` failures in a row, readiness
starting as failed and liveness and startup as passed. :class:`ContainerProbes` puts a
container's three together: liveness and readiness wait until the startup probe
passed; a startup or liveness probe that fails for good reports the container
unhealthy once (the replica then kills it).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from zeroserve.local.sandbox.enter import EnterPlan, spawn

USER_AGENT = "kube-probe/1.31"
"""What the kubelet sends (``kube-probe/<major>.<minor>``); the queue-proxy tells a
kubelet probe by it (Knative's ``pkg/queue``)."""
MAX_REDIRECTS = 10

Handler = Callable[[float], Awaitable[tuple[bool, str]]]
"""(timeout in seconds) -> (ok, the kubelet's message when not ok)."""


@dataclass(frozen=True)
class ProbeSpec:
    """A probe's timing, with Kubernetes' defaults for a 0 or missing field."""

    initial_delay: float = 0
    period: float = 10
    timeout: float = 1
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def of(cls, probe: Mapping[str, Any], *, kind: str = "readiness") -> ProbeSpec:
        """``probe``'s timing; liveness and startup probes need ``successThreshold`` 1
        (as the API server's validation)."""
        success = int(probe.get("successThreshold") or 1)
        if kind in ("liveness", "startup") and success != 1:
            raise ValueError(f"{kind}Probe.successThreshold: must be 1, got {success}")
        return cls(
            initial_delay=float(probe.get("initialDelaySeconds") or 0),
            period=float(probe.get("periodSeconds") or 10),
            timeout=float(probe.get("timeoutSeconds") or 1),
            success_threshold=success,
            failure_threshold=int(probe.get("failureThreshold") or 3),
        )


# ----- handlers ------------------------------------------------------------------------------


@functools.cache
def unverified_tls() -> ssl.SSLContext:
    """The TLS context of every HTTPS probe: the kubelet does not verify a probe's
    certificate. One for all probes: with ``verify=False`` httpx builds a new context
    for each client, about 2.5 ms of CPU per probe, next to the apps of the same CPU."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def http_get(
    host: str,
    port: int,
    path: str = "/",
    *,
    scheme: str = "HTTP",
    headers: Sequence[Mapping[str, str]] = (),
    source: str | None = None,
) -> Handler:
    """An HTTP GET; 200-399 is a success. Redirects to the same host are followed (up to
    10); one to another host counts as a success, as the kubelet's. ``source``: the local
    address to connect from (the test cluster's mesh, tests/cluster/mesh.py)."""
    import httpx

    if scheme.upper() not in ("HTTP", "HTTPS"):
        raise ValueError(f"httpGet.scheme: must be HTTP or HTTPS, got {scheme!r}")
    extra = {h["name"]: h["value"] for h in headers}
    extra.setdefault("User-Agent", USER_AGENT)
    bracketed = f"[{host}]" if ":" in host else host
    url = f"{scheme.lower()}://{bracketed}:{port}{path if path.startswith('/') else '/' + path}"

    async def probe(timeout: float) -> tuple[bool, str]:
        target = url
        try:
            tls = unverified_tls()
            transport = (
                None
                if source is None
                else httpx.AsyncHTTPTransport(local_address=source, verify=tls)
            )
            async with httpx.AsyncClient(
                timeout=timeout, verify=tls, transport=transport
            ) as client:
                for _ in range(MAX_REDIRECTS + 1):
                    r = await client.get(target, headers=extra)
                    if r.is_redirect and "location" in r.headers:
                        nxt = str(r.url.join(r.headers["location"]))
                        if urlsplit(nxt).hostname != urlsplit(target).hostname:
                            return True, ""
                        target = nxt
                        continue
                    break
        except httpx.TimeoutException:
            return False, f'Get "{target}": context deadline exceeded'
        except httpx.HTTPError as e:
            return False, f'Get "{target}": {e or type(e).__name__}'
        if 200 <= r.status_code < 400:
            return True, ""
        return False, f"HTTP probe failed with statuscode: {r.status_code}"

    return probe


def tcp_socket(host: str, port: int, *, source: str | None = None) -> Handler:
    """A TCP connect; a connection is a success. ``source``: as :func:`http_get`'s."""
    local = None if source is None else (source, 0)

    async def probe(timeout: float) -> tuple[bool, str]:
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, local_addr=local), timeout
            )
        except TimeoutError:
            return False, f"dial tcp {address}: i/o timeout"
        except OSError as e:
            return False, f"dial tcp {address}: connect: {e.strerror or e}"
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True, ""

    return probe


def grpc(host: str, port: int, service: str = "") -> Handler:
    """A ``grpc.health.v1.Health/Check``; ``SERVING`` is a success (``zeroserve/grpchealth.py``
    codes the messages, as for the queue-proxy)."""

    async def probe(timeout: float) -> tuple[bool, str]:
        import grpc as grpclib

        from zeroserve.grpchealth import (
            HEALTH_CHECK_METHOD,
            HEALTH_SERVING,
            decode_health_status,
            encode_health_request,
        )

        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        options = [("grpc.primary_user_agent", USER_AGENT), ("grpc.enable_http_proxy", 0)]
        async with grpclib.aio.insecure_channel(target, options=options) as channel:
            check = channel.unary_unary(
                HEALTH_CHECK_METHOD,
                request_serializer=encode_health_request,
                response_deserializer=decode_health_status,
            )
            try:
                status = await check(service, timeout=timeout)
            except grpclib.aio.AioRpcError as e:
                if e.code() == grpclib.StatusCode.DEADLINE_EXCEEDED:
                    return False, f"timeout: health rpc did not complete within {timeout:g}s"
                return False, f"error: health rpc probe failed: {e.code().name}: {e.details()}"
        if status == HEALTH_SERVING:
            return True, ""
        names = {0: "UNKNOWN", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
        return False, f"service unhealthy (responded with {names.get(status, status)!r})"

    return probe


def exec_command(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | None,
    enter: EnterPlan | None = None,
) -> Handler:
    """Run ``command`` (in its own session, killed at the timeout); exit 0 is a success.
    ``enter``: what it does before the command, through :func:`.sandbox.enter.spawn`
    (the ``zeroserve-enter`` helper where it is built)."""
    argv = [str(a) for a in command]

    async def probe(timeout: float) -> tuple[bool, str]:
        try:
            stdio: dict[str, Any] = {
                "stdin": asyncio.subprocess.DEVNULL,
                "stdout": asyncio.subprocess.PIPE,
                "stderr": asyncio.subprocess.STDOUT,
            }
            if enter is not None:
                proc = await spawn(argv, enter, env=dict(env), cwd=cwd, **stdio)
            else:
                proc = await asyncio.create_subprocess_exec(
                    *argv, env=dict(env), cwd=cwd, start_new_session=True, **stdio
                )
        except (OSError, ValueError) as e:
            return False, f"exec {argv[:1]}: {e}"
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            return False, f"command {argv!r} timed out"
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        if proc.returncode == 0:
            return True, ""
        text = out.decode(errors="replace").strip()[-200:]
        return False, f"command {argv!r} exited with {proc.returncode}" + (
            f": {text}" if text else ""
        )

    return probe


def from_probe(
    probe: Mapping[str, Any],
    *,
    host: str,
    port: int,
    env: Mapping[str, str],
    cwd: str | None,
    enter: EnterPlan | None = None,
) -> Handler:
    """The handler a Kubernetes Probe names; a handler port 0 or missing is ``port``
    (the container's). Named ports are not supported (ValueError naming it)."""

    def port_of(handler: Mapping[str, Any], kind: str) -> int:
        value = handler.get("port") or 0
        if isinstance(value, str) and not value.isdigit():
            raise ValueError(f"{kind}.port: named ports ({value!r}) are not supported locally")
        return int(value) or port

    if isinstance(probe.get("httpGet"), Mapping):
        h = probe["httpGet"]
        return http_get(
            str(h.get("host") or host),
            port_of(h, "httpGet"),
            str(h.get("path") or "/"),
            scheme=str(h.get("scheme") or "HTTP"),
            headers=h.get("httpHeaders") or (),
        )
    if isinstance(probe.get("tcpSocket"), Mapping):
        t = probe["tcpSocket"]
        return tcp_socket(str(t.get("host") or host), port_of(t, "tcpSocket"))
    if isinstance(probe.get("grpc"), Mapping):
        g = probe["grpc"]
        return grpc(host, port_of(g, "grpc"), str(g.get("service") or ""))
    if isinstance(probe.get("exec"), Mapping):
        command = probe["exec"].get("command") or ()
        return exec_command(command, env=env, cwd=cwd, enter=enter)
    raise ValueError("a probe needs one of httpGet, tcpSocket, grpc, exec")


# ----- probers -------------------------------------------------------------------------------


class Prober:
    """One probe of one container, as a kubelet worker."""

    def __init__(self, kind: str, spec: ProbeSpec, handler: Handler) -> None:
        self.kind = kind
        self.spec = spec
        self.handler = handler
        self.result = kind != "readiness"
        """Readiness starts failed; liveness and startup start passed."""
        self.last_message = ""
        self._successes = 0
        self._failures = 0

    async def step(self) -> bool | None:
        """Run the handler once; the new result if it flipped, else None."""
        ok, message = await self.handler(self.spec.timeout)
        if ok:
            self._successes, self._failures = self._successes + 1, 0
        else:
            self._successes, self._failures = 0, self._failures + 1
            self.last_message = message
        if not self.result and ok and self._successes >= self.spec.success_threshold:
            self.result = True
            return True
        if self.result and not ok and self._failures >= self.spec.failure_threshold:
            self.result = False
            return False
        return None

    @property
    def failure(self) -> str:
        """The kubelet's event text for the last failure: ``Liveness probe failed: ...``."""
        return f"{self.kind.capitalize()} probe failed: {self.last_message}"


class ContainerProbes:
    """A container's startup, liveness and readiness probes together (see the module
    doc). No readiness probe: ready once started."""

    def __init__(
        self,
        *,
        startup: Prober | None,
        liveness: Prober | None,
        readiness: Prober | None,
        on_ready: Callable[[bool], None],
        on_unhealthy: Callable[[str, str], None],
    ) -> None:
        self.startup = startup
        self.liveness = liveness
        self.readiness = readiness
        self.on_ready = on_ready
        self.on_unhealthy = on_unhealthy
        self.started = startup is None

    async def run(self) -> None:
        """Until cancelled, or until the container is unhealthy."""
        if self.startup is not None:
            self.startup.result = False  # it must pass once, then it is done
            await asyncio.sleep(self.startup.spec.initial_delay)
            while True:
                ok, message = await self.startup.handler(self.startup.spec.timeout)
                if ok:
                    break
                self.startup.last_message = message
                self.startup._failures += 1
                if self.startup._failures >= self.startup.spec.failure_threshold:
                    self.on_unhealthy("startup", self.startup.failure)
                    return
                await asyncio.sleep(self.startup.spec.period)
            self.started = True
        if self.readiness is None:
            self.on_ready(True)
        loops = [asyncio.ensure_future(self._loop(p)) for p in (self.readiness, self.liveness) if p]
        if not loops:
            return
        try:
            # the readiness loop runs forever; the liveness loop returns when it fails
            await asyncio.wait(loops, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)

    async def _loop(self, prober: Prober) -> None:
        await asyncio.sleep(prober.spec.initial_delay)
        while True:
            flipped = await prober.step()
            if prober.kind == "liveness" and flipped is False:
                self.on_unhealthy("liveness", prober.failure)
                return  # ends run(): the container is being killed
            if prober.kind == "readiness" and flipped is not None:
                self.on_ready(flipped)
            await asyncio.sleep(prober.spec.period)
