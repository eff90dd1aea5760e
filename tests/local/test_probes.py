"""The kubelet's probes as the local runtime runs them (zeroserve/local/probes.py)."""

from __future__ import annotations

import asyncio
import datetime
import ssl
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.queueproxy.grpc_health import NOT_SERVING, HealthState, grpc_app
from zeroserve.local.probes import (
    ContainerProbes,
    Prober,
    ProbeSpec,
    exec_command,
    from_probe,
    grpc,
    http_get,
    tcp_socket,
)

FAST = ProbeSpec(period=0.02, timeout=1, success_threshold=2, failure_threshold=3)


def scripted(*results: bool) -> tuple[list[int], object]:
    """A handler answering ``results`` in turn (then the last forever); counts calls."""
    calls: list[int] = []

    async def handler(timeout: float) -> tuple[bool, str]:
        calls.append(1)
        i = min(len(calls), len(results)) - 1
        return results[i], "" if results[i] else "it said no"

    return calls, handler


def test_probe_spec_defaults_are_kubernetes_and_liveness_needs_success_threshold_1() -> None:
    assert ProbeSpec.of({}) == ProbeSpec(0, 10, 1, 1, 3)
    given = {"initialDelaySeconds": 2, "periodSeconds": 3, "timeoutSeconds": 4, "successThreshold": 5, "failureThreshold": 6}  # fmt: skip
    assert ProbeSpec.of(given) == ProbeSpec(2, 3, 4, 5, 6)
    with pytest.raises(ValueError, match=r"livenessProbe.successThreshold: must be 1"):
        ProbeSpec.of({"successThreshold": 2}, kind="liveness")


async def test_a_prober_flips_only_after_its_thresholds() -> None:
    _, handler = scripted(True, True, False, False, False, True, True)
    p = Prober("readiness", FAST, handler)  # type: ignore[arg-type]
    assert p.result is False  # readiness starts failed
    assert [await p.step() for _ in range(7)] == [None, True, None, None, False, None, True]
    live = Prober("liveness", ProbeSpec(failure_threshold=2), scripted(False)[1])  # type: ignore[arg-type]
    assert live.result is True  # liveness starts passed
    assert [await live.step(), await live.step()] == [None, False]
    assert live.failure == "Liveness probe failed: it said no"


async def test_startup_gates_liveness_and_readiness_and_a_failing_liveness_is_reported_once() -> (
    None
):
    startup_calls, startup = scripted(False, False, True)
    live_calls, liveness = scripted(True, True, False, False, False)
    events: list[object] = []
    probes = ContainerProbes(
        startup=Prober("startup", ProbeSpec(period=0.02, failure_threshold=5), startup),  # type: ignore[arg-type]
        liveness=Prober("liveness", ProbeSpec(period=0.02, failure_threshold=3), liveness),  # type: ignore[arg-type]
        readiness=None,
        on_ready=lambda ok: events.append(("ready", ok, len(live_calls))),
        on_unhealthy=lambda kind, msg: events.append((kind, msg)),
    )
    await asyncio.wait_for(probes.run(), 5)
    assert len(startup_calls) == 3 and probes.started
    # ready (no readiness probe) only once started, before liveness ever ran
    assert events == [("ready", True, 0), ("liveness", "Liveness probe failed: it said no")]
    assert len(live_calls) == 5


async def test_a_startup_probe_that_never_passes_makes_the_container_unhealthy() -> None:
    calls, startup = scripted(False)
    events: list[object] = []
    probes = ContainerProbes(
        startup=Prober("startup", ProbeSpec(period=0.01, failure_threshold=4), startup),  # type: ignore[arg-type]
        liveness=None,
        readiness=None,
        on_ready=lambda ok: events.append(ok),
        on_unhealthy=lambda kind, msg: events.append((kind, msg)),
    )
    await asyncio.wait_for(probes.run(), 5)
    assert events == [("startup", "Startup probe failed: it said no")]
    assert len(calls) == 4 and not probes.started


@asynccontextmanager
async def server(
    status: int = 200, delay: float = 0
) -> AsyncIterator[tuple[int, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        if request.path == "/moved":
            raise web.HTTPFound("/health")
        await asyncio.sleep(delay)
        return web.Response(status=status)

    app = web.Application()
    app.router.add_get("/{p:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1], seen
    finally:
        await runner.cleanup()


async def test_http_get_succeeds_on_2xx_3xx_and_says_why_otherwise() -> None:
    async with server(204) as (port, seen):
        h = http_get("127.0.0.1", port, "/health", headers=[{"name": "X-Probe", "value": "1"}])
        assert await h(1) == (True, "")
        assert seen[0]["User-Agent"].startswith("kube-probe/") and seen[0]["X-Probe"] == "1"
        assert await http_get("127.0.0.1", port, "/moved")(1) == (True, "")  # same host
    async with server(500) as (port, _):
        assert await http_get("127.0.0.1", port)(1) == (
            False,
            "HTTP probe failed with statuscode: 500",
        )
    async with server(200, delay=2) as (port, _):
        ok, why = await http_get("127.0.0.1", port)(0.2)
        assert not ok and "context deadline exceeded" in why


def _self_signed(tmp: Path) -> ssl.SSLContext:
    """A server context with a throwaway self-signed certificate (``cryptography``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "probe-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    return ctx


async def test_https_probes_trust_any_certificate_and_build_no_tls_context_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the kubelet's, an HTTPS probe does not verify the certificate. Every probe
    shares one client TLS context: with ``verify=False`` httpx made one per probe
    (loading the CA store, ~2.5 ms of CPU each, on the CPU the apps start on)."""

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=_self_signed(tmp_path))
    await site.start()
    port = runner.addresses[0][1]
    try:
        https = http_get("127.0.0.1", port, scheme="HTTPS")
        assert await https(2) == (True, "")  # the first probe may make the shared context
        made: list[object] = []
        real_new = ssl.SSLContext.__new__

        def counting_new(cls: type[ssl.SSLContext], *args: Any, **kwargs: Any) -> ssl.SSLContext:
            made.append(cls)
            return real_new(cls, *args, **kwargs)

        monkeypatch.setattr(ssl.SSLContext, "__new__", counting_new)
        for _ in range(3):
            assert await https(2) == (True, "")
        assert made == []
    finally:
        await runner.cleanup()


async def test_tcp_socket_connects_or_says_refused() -> None:
    async with server() as (port, _):
        assert await tcp_socket("127.0.0.1", port)(1) == (True, "")
    ok, why = await tcp_socket("127.0.0.1", port)(1)
    assert not ok and why.startswith(f"dial tcp 127.0.0.1:{port}: connect:")


@pytest.mark.process
async def test_exec_passes_on_exit_0_fails_otherwise_and_is_killed_at_its_timeout() -> None:
    env = {"WHO": "probe"}
    ok = exec_command([sys.executable, "-c", "import os; assert os.environ['WHO'] == 'probe'"], env=env, cwd=None)  # fmt: skip
    assert await ok(5) == (True, "")
    bad = exec_command(
        [sys.executable, "-c", "print('nope'); raise SystemExit(3)"], env={}, cwd=None
    )
    passed, why = await bad(5)
    assert not passed and "exited with 3" in why and why.endswith("nope")
    slow = exec_command([sys.executable, "-c", "import time; time.sleep(30)"], env={}, cwd=None)
    passed, why = await asyncio.wait_for(slow(0.3), 10)
    assert not passed and "timed out" in why


async def test_grpc_needs_serving() -> None:
    state = HealthState()
    async with grpc_app(state) as port:
        assert await grpc("127.0.0.1", port)(2) == (True, "")
        state.statuses[""] = NOT_SERVING
        ok, why = await grpc("127.0.0.1", port)(2)
        assert not ok and "NOT_SERVING" in why


async def test_from_probe_takes_the_containers_port_for_port_0_and_refuses_named_ports() -> None:
    async with server() as (port, seen):
        h = from_probe({"httpGet": {"path": "/x"}}, host="127.0.0.1", port=port, env={}, cwd=None)
        assert await h(1) == (True, "")
        assert len(seen) == 1
    with pytest.raises(ValueError, match="named ports"):
        from_probe({"tcpSocket": {"port": "http"}}, host="h", port=1, env={}, cwd=None)
    with pytest.raises(ValueError, match="one of httpGet"):
        from_probe({}, host="h", port=1, env={}, cwd=None)
